//! Static files: an nginx-like `root` plus `try_files`, from a raw request
//! path to an open regular file inside the root (or a refusal). The
//! response head for it is `head.rs`'s, sending its bytes `send.rs`'s.
//!
//! A request path is percent-decoded once, split on `/`, and refused if any
//! segment is `..` (it is never normalised); empty and `.` segments are
//! dropped. Each candidate is opened beneath the root's directory with
//! `openat2(RESOLVE_BENEATH)`: the kernel resolves the path and refuses, in
//! the same call, any way out of the root (an absolute symlink included).
//! Where it refused, or on a kernel without openat2, the candidate is
//! canonicalised instead and must still lie inside the canonical root, so
//! a symlink cannot lead out of it but an absolute one that stays inside
//! is followed. Only regular files are served.

mod conditional;
mod date;
mod head;
mod send;

pub use conditional::{answer, Answer, ETag, Unsatisfiable};
pub use head::{content_type, write_head};
pub use send::{read_into, send, send_through};

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The file a `$uri/` entry serves inside a directory.
const DIR_INDEX: &str = "index.html";

/// The `try_files` list used when none is given: the path as a file, then
/// as a directory (nginx's behaviour without `try_files`).
const DEFAULT_TRY_FILES: [TryFile; 2] = [TryFile::Uri, TryFile::UriDir];

/// One try_files entry: "$uri" (the path as a file), "$uri/" (the path as a
/// directory: its index.html), "/literal/path" (a file under the root, e.g.
/// "/index.html"), or "=404" (answer that status; only as the last entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TryFile {
    Uri,
    UriDir,
    Path(String),
    Status(u16),
}

impl TryFile {
    /// Parses one entry; `last` says whether it ends the list.
    fn parse(entry: &str, last: bool) -> Result<TryFile, String> {
        const FIX: &str = "use $uri, $uri/, a path starting with '/', or =code as the last entry";
        match entry {
            "$uri" => Ok(TryFile::Uri),
            "$uri/" => Ok(TryFile::UriDir),
            "" => Err(format!("try_files has an empty entry: {FIX}")),
            _ if entry.starts_with('$') => Err(format!(
                "try_files entry {entry:?} uses an unknown variable: {FIX}"
            )),
            _ if entry.starts_with('=') => {
                let code: u16 = entry[1..].parse().map_err(|_| {
                    format!("try_files entry {entry:?} is not a status code: write e.g. =404")
                })?;
                if !(400..=599).contains(&code) {
                    return Err(format!(
                        "try_files entry {entry:?} must be a 4xx or 5xx status"
                    ));
                }
                if !last {
                    return Err(format!(
                        "try_files entry {entry:?} must be the last entry: move it to the end"
                    ));
                }
                Ok(TryFile::Status(code))
            }
            _ if !entry.starts_with('/') => Err(format!(
                "try_files entry {entry:?} must start with '/': {FIX}"
            )),
            _ if entry.contains('$') => Err(format!(
                "try_files entry {entry:?}: variables inside a path are not supported; {FIX}"
            )),
            _ if entry.contains('\0') => Err(format!("try_files entry {entry:?} contains NUL")),
            _ if entry.split('/').any(|s| s == "..") => Err(format!(
                "try_files entry {entry:?} contains a \"..\" segment: name a file inside the root"
            )),
            _ => Ok(TryFile::Path(entry.to_owned())),
        }
    }
}

/// A static root: the directory (canonicalised at construction) and its
/// try_files list (default when none given: ["$uri", "$uri/"]).
#[derive(Debug)]
pub struct Root {
    dir: PathBuf,
    /// The root directory, open (`O_PATH`) for `openat2` beneath it.
    handle: Option<OwnedFd>,
    try_files: Vec<TryFile>,
}

/// Whether `openat2` works here: cleared at its first `ENOSYS` (a kernel
/// before 5.6) or `EPERM` (a seccomp filter that does not know it).
static OPENAT2: AtomicBool = AtomicBool::new(true);

/// The outcome of [`Root::lookup`].
#[derive(Debug)]
pub enum Lookup {
    /// An entry named a regular file inside the root; it is open.
    Found(Found),
    /// No entry matched and the list does not end in "=code": the caller
    /// answers 404.
    NotFound,
    /// The list ended in "=code".
    Status(u16),
    /// The path is refused: 400 for a bad percent-encoding, NUL, or a ".."
    /// segment (including encoded %2e%2e, and "%2f" decoding to '/' that
    /// forms one); 403 when the resolved file (after symlinks) lies outside
    /// the root or cannot be opened. `why` is a short phrase for the answer
    /// body and the log.
    Refused { status: u16, why: &'static str },
}

/// An open regular file to serve, with what its response head needs.
#[derive(Debug)]
pub struct Found {
    /// The file, opened read-only and close-on-exec.
    pub file: File,
    /// Its length in bytes when opened: the `Content-Length`.
    pub len: u64,
    /// From the extension of the name it was found under ([`content_type`]).
    pub content_type: &'static str,
    /// Its modification time in whole seconds since the Unix epoch
    /// (rounded towards the past), when the filesystem reports one: the
    /// `Last-Modified` and half the `ETag`.
    pub modified: Option<i64>,
}

/// What one candidate path came to.
enum Candidate {
    /// Nothing servable there: try the next entry.
    Skip,
    Found(Found),
    Refused(&'static str),
}

impl Root {
    /// `dir` must exist and be a directory; errors are one line saying what
    /// to fix (e.g. "root /x does not exist: create it or fix the path").
    /// try_files entries are validated (unknown `$var`, "=code" not last or
    /// not 4xx/5xx, literal not starting with '/').
    pub fn new(dir: &Path, try_files: &[String]) -> Result<Root, String> {
        let canonical = std::fs::canonicalize(dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!(
                "root {} does not exist: create it or fix the path",
                dir.display()
            ),
            io::ErrorKind::PermissionDenied => format!(
                "root {} cannot be reached (permission denied): grant the proxy's user access",
                dir.display()
            ),
            _ => format!("root {}: {e}", dir.display()),
        })?;
        if !canonical.is_dir() {
            return Err(format!(
                "root {} is not a directory: point root at a directory",
                dir.display()
            ));
        }
        let try_files = if try_files.is_empty() {
            DEFAULT_TRY_FILES.to_vec()
        } else {
            let last = try_files.len() - 1;
            try_files
                .iter()
                .enumerate()
                .map(|(i, entry)| TryFile::parse(entry, i == last))
                .collect::<Result<_, _>>()?
        };
        let handle = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&canonical)
            .ok()
            .map(OwnedFd::from);
        Ok(Root {
            dir: canonical,
            handle,
            try_files,
        })
    }

    /// Resolves a request path (raw from the request target,
    /// percent-encoded, query already removed) against the root, trying each
    /// entry in order. Never follows a path out of the root.
    pub fn lookup(&self, path: &str) -> Lookup {
        let decoded = match percent_decode(path.as_bytes()) {
            Some(decoded) => decoded,
            None => return refused(400, "bad percent-encoding"),
        };
        if decoded.contains(&0) {
            return refused(400, "NUL in path");
        }
        let mut uri = PathBuf::new();
        for segment in decoded.split(|&b| b == b'/') {
            match segment {
                b".." => return refused(400, "\"..\" in path"),
                b"" | b"." => {}
                _ => uri.push(OsStr::from_bytes(segment)),
            }
        }
        // "/app.js/" names a directory, as in nginx: `$uri` skips it.
        let names_dir = decoded.last() == Some(&b'/');
        for entry in &self.try_files {
            let candidate = match entry {
                TryFile::Uri if names_dir => continue,
                TryFile::Uri => self.check(&uri),
                TryFile::UriDir => self.check(&uri.join(DIR_INDEX)),
                TryFile::Path(literal) => self.check(Path::new(literal.trim_start_matches('/'))),
                TryFile::Status(code) => return Lookup::Status(*code),
            };
            match candidate {
                Candidate::Skip => {}
                Candidate::Found(found) => return Lookup::Found(found),
                Candidate::Refused(why) => return refused(403, why),
            }
        }
        Lookup::NotFound
    }

    /// Opens `candidate` (relative to the root) if, after symlinks, it is a
    /// regular file inside the root: beneath the root's directory in one
    /// call, else by the canonical path.
    fn check(&self, candidate: &Path) -> Candidate {
        let file = match self.open_beneath(candidate) {
            Some(Ok(file)) => file,
            Some(Err(e)) if absent(&e) => return Candidate::Skip,
            Some(Err(e)) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Candidate::Refused("cannot be read")
            }
            // A way out of the root, an absolute symlink (maybe back
            // in), or no openat2: decided by the canonical path.
            Some(Err(_)) | None => match self.open_canonical(&self.dir.join(candidate)) {
                Ok(file) => file,
                Err(outcome) => return outcome,
            },
        };
        let meta = match file.metadata() {
            Ok(meta) => meta,
            Err(_) => return Candidate::Refused("cannot be read"),
        };
        if !meta.is_file() {
            return Candidate::Skip;
        }
        Candidate::Found(Found {
            file,
            len: meta.len(),
            content_type: content_type(candidate),
            modified: meta.modified().ok().and_then(date::unix_secs),
        })
    }

    /// `openat2(RESOLVE_BENEATH)` of `relative` under the root's directory;
    /// `None` where openat2 cannot be used.
    fn open_beneath(&self, relative: &Path) -> Option<io::Result<File>> {
        let handle = self.handle.as_ref()?;
        if !OPENAT2.load(Ordering::Relaxed) {
            return None;
        }
        let path = if relative.as_os_str().is_empty() {
            CString::new(".")
        } else {
            CString::new(relative.as_os_str().as_bytes())
        };
        // A NUL was refused before this point.
        let path = path.ok()?;
        match crate::sys::open_beneath(handle.as_fd(), &path) {
            Ok(fd) => Some(Ok(File::from(fd))),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                OPENAT2.store(false, Ordering::Relaxed);
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Opens `candidate` (an absolute path under the root) by its canonical
    /// path, if that lies inside the root; else what to answer.
    fn open_canonical(&self, candidate: &Path) -> Result<File, Candidate> {
        let real = match std::fs::canonicalize(candidate) {
            Ok(real) => real,
            Err(e) if absent(&e) => return Err(Candidate::Skip),
            Err(_) => return Err(Candidate::Refused("cannot be read")),
        };
        if !real.starts_with(&self.dir) {
            return Err(Candidate::Refused("outside the root"));
        }
        // The canonical path holds no symlinks, so O_NOFOLLOW only catches
        // one swapped in since; O_NONBLOCK keeps a FIFO from blocking the
        // open (it is then skipped as not a regular file).
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&real)
        {
            Ok(file) => Ok(file),
            Err(e) if absent(&e) || e.raw_os_error() == Some(libc::ENXIO) => Err(Candidate::Skip),
            Err(_) => Err(Candidate::Refused("cannot be read")),
        }
    }
}

fn refused(status: u16, why: &'static str) -> Lookup {
    Lookup::Refused { status, why }
}

/// The error says nothing is there to serve (as opposed to something that
/// may not be read).
fn absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG)
    )
}

/// Decodes `%XX` escapes once; `None` for a `%` not followed by two hex
/// digits.
fn percent_decode(raw: &[u8]) -> Option<Vec<u8>> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hi = hex(*raw.get(i + 1)?)?;
            let lo = hex(*raw.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory under the system temp dir, removed when dropped (also
    /// when a test fails).
    pub(super) struct TempDir(pub(super) PathBuf);

    impl TempDir {
        pub(super) fn new(what: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("wsproxy-files-{what}-{}-{n}", std::process::id()));
            std::fs::create_dir(&dir).unwrap();
            TempDir(dir)
        }

        pub(super) fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[derive(Debug, PartialEq)]
    enum Want {
        /// Found, with this content type and exactly these bytes.
        File(&'static str, &'static [u8]),
        NotFound,
        Status(u16),
        Refused(u16),
    }

    fn outcome(lookup: Lookup) -> Want {
        match lookup {
            Lookup::Found(mut found) => {
                let mut bytes = Vec::new();
                found.file.read_to_end(&mut bytes).unwrap();
                assert_eq!(found.len, bytes.len() as u64);
                assert!(found.modified.is_some());
                let bytes: &'static [u8] = bytes.leak();
                Want::File(found.content_type, bytes)
            }
            Lookup::NotFound => Want::NotFound,
            Lookup::Status(code) => Want::Status(code),
            Lookup::Refused { status, why } => {
                assert!(!why.is_empty());
                Want::Refused(status)
            }
        }
    }

    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";
    const TXT: &str = "text/plain; charset=utf-8";
    const INDEX: &[u8] = b"<html>spa</html>";
    const APP: &[u8] = b"console.log(1)";
    const DOCS: &[u8] = b"<html>docs</html>";

    #[test]
    fn lookup_table() {
        use std::os::unix::fs::symlink;
        let root = TempDir::new("root");
        let other = TempDir::new("other");
        let secret = other.write("secret.txt", b"secret");
        root.write("index.html", INDEX);
        root.write("app.js", APP);
        root.write("docs/index.html", DOCS);
        root.write("docs/guide.txt", b"guide");
        root.write("a b.txt", b"spaced");
        symlink("app.js", root.0.join("link-in.js")).unwrap();
        symlink("../docs", root.0.join("docs/self")).unwrap();
        symlink(&secret, root.0.join("link-out.txt")).unwrap();
        symlink(&other.0, root.0.join("dir-out")).unwrap();
        symlink("missing.txt", root.0.join("dangling.txt")).unwrap();
        symlink("loop-b", root.0.join("loop-a")).unwrap();
        symlink("loop-a", root.0.join("loop-b")).unwrap();
        // Absolute, but back inside the root: openat2 refuses it, the
        // canonical path serves it.
        symlink(root.0.join("app.js"), root.0.join("abs-in.js")).unwrap();

        let default: &[&str] = &[];
        let spa: &[&str] = &["$uri", "/index.html"];
        let strict: &[&str] = &["$uri", "=404"];
        let file: &[&str] = &["$uri"];
        use Want::*;
        let table: &[(&[&str], &str, Want)] = &[
            (file, "/app.js", File(JS, APP)),
            (file, "//./app.js", File(JS, APP)),
            (file, "/%61pp.js", File(JS, APP)),
            (file, "/a%20b.txt", File(TXT, b"spaced")),
            (file, "/docs/guide.txt", File(TXT, b"guide")),
            (file, "/missing", NotFound),
            (file, "/docs", NotFound),
            (file, "/app.js/", NotFound),
            (file, "/dangling.txt", NotFound),
            (default, "/docs", File(HTML, DOCS)),
            (default, "/docs/", File(HTML, DOCS)),
            (default, "/", File(HTML, INDEX)),
            (default, "/app.js", File(JS, APP)),
            (default, "/nope/", NotFound),
            (spa, "/some/route", File(HTML, INDEX)),
            (spa, "/docs", File(HTML, INDEX)),
            (spa, "/app.js", File(JS, APP)),
            (strict, "/missing", Status(404)),
            (strict, "/app.js", File(JS, APP)),
            (&["$uri", "$uri/", "=503"], "/docs", File(HTML, DOCS)),
            (&["/docs/guide.txt"], "/anything", File(TXT, b"guide")),
            (&["/missing.html"], "/anything", NotFound),
            // Symlinks: inside the root they are served, out of it refused,
            // even when a fallback follows.
            (file, "/link-in.js", File(JS, APP)),
            (file, "/abs-in.js", File(JS, APP)),
            (file, "/docs/self/guide.txt", File(TXT, b"guide")),
            (file, "/link-out.txt", Refused(403)),
            (spa, "/link-out.txt", Refused(403)),
            (file, "/dir-out/secret.txt", Refused(403)),
            (default, "/dir-out", Refused(403)),
            (spa, "/loop-a", Refused(403)),
            // ".." in any spelling, never normalised.
            (spa, "/../index.html", Refused(400)),
            (spa, "/docs/..", Refused(400)),
            (spa, "/docs/../app.js", Refused(400)),
            (spa, "/%2e%2e/index.html", Refused(400)),
            (spa, "/%2E%2e%2findex.html", Refused(400)),
            (spa, "/..%2findex.html", Refused(400)),
            (spa, "/docs%2f%2e%2e%2fapp.js", Refused(400)),
            (spa, "/...", File(HTML, INDEX)),
            (spa, "/..a", File(HTML, INDEX)),
            // Bad encodings and NUL.
            (spa, "/%zz", Refused(400)),
            (spa, "/%2", Refused(400)),
            (spa, "/app.js%", Refused(400)),
            (spa, "/app.js%00.html", Refused(400)),
            (spa, "/%252e%252e/x", File(HTML, INDEX)),
        ];
        for (try_files, path, want) in table {
            let mut r = Root::new(&root.0, &strings(try_files)).unwrap();
            assert!(r.handle.is_some(), "the root's directory opens");
            assert_eq!(
                &outcome(r.lookup(path)),
                want,
                "try_files {try_files:?}, path {path:?}"
            );
            // The same without openat2, as on an older kernel.
            r.handle = None;
            assert_eq!(
                &outcome(r.lookup(path)),
                want,
                "by the canonical path: try_files {try_files:?}, path {path:?}"
            );
        }
    }

    #[test]
    fn unreadable_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let root = TempDir::new("perm");
        let locked = root.write("locked.txt", b"no");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        if File::open(&locked).is_ok() {
            // Running as root (or with CAP_DAC_OVERRIDE): nothing to test.
            return;
        }
        let r = Root::new(&root.0, &strings(&["$uri", "/index.html"])).unwrap();
        assert!(matches!(
            r.lookup("/locked.txt"),
            Lookup::Refused { status: 403, .. }
        ));
    }

    #[test]
    fn root_and_try_files_validation() {
        let root = TempDir::new("valid");
        let file = root.write("plain.txt", b"");
        let ok = |list: &[&str]| Root::new(&root.0, &strings(list)).map(|r| r.try_files.clone());
        assert_eq!(ok(&[]), Ok(vec![TryFile::Uri, TryFile::UriDir]));
        assert_eq!(
            ok(&["$uri", "$uri/", "/index.html", "=404"]),
            Ok(vec![
                TryFile::Uri,
                TryFile::UriDir,
                TryFile::Path("/index.html".into()),
                TryFile::Status(404)
            ])
        );
        let bad: &[(&[&str], &str)] = &[
            (&["$url"], "unknown variable"),
            (&["$uri", "$args"], "unknown variable"),
            (&["=404", "$uri"], "last entry"),
            (&["$uri", "=200"], "4xx or 5xx"),
            (&["$uri", "=600"], "4xx or 5xx"),
            (&["$uri", "=abc"], "not a status code"),
            (&["index.html"], "start with '/'"),
            (&["/$uri.html"], "not supported"),
            (&["/../etc/passwd"], "\"..\""),
            (&[""], "empty"),
        ];
        for (list, want) in bad {
            let err = ok(list).unwrap_err();
            assert!(err.contains(want), "{list:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        let missing = root.0.join("nope");
        let err = Root::new(&missing, &[]).unwrap_err();
        assert_eq!(
            err,
            format!(
                "root {} does not exist: create it or fix the path",
                missing.display()
            )
        );
        let err = Root::new(&file, &[]).unwrap_err();
        assert!(err.contains("is not a directory"), "{err}");
        let r = Root::new(&root.0.join("."), &[]).unwrap();
        assert_eq!(r.dir, std::fs::canonicalize(&root.0).unwrap());
    }
}
