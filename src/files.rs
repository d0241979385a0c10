//! Static files: an nginx-like `root` plus `try_files`, from a raw request
//! path to an open regular file inside the root (or a refusal), the 200
//! response head for it, and sending its bytes with `sendfile(2)`.
//!
//! A request path is percent-decoded once, split on `/`, and refused if any
//! segment is `..` (it is never normalised); empty and `.` segments are
//! dropped. Each candidate is canonicalised and must still lie inside the
//! canonical root, so a symlink cannot lead out of it. Only regular files
//! are served.

use crate::buffer::{Buf, Full};
use crate::sys;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

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
    try_files: Vec<TryFile>,
}

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
    /// Its modification time, when the filesystem reports one.
    pub modified: Option<SystemTime>,
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
        Ok(Root {
            dir: canonical,
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
        let mut uri = self.dir.clone();
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
                TryFile::Path(literal) => {
                    let relative = literal.trim_start_matches('/');
                    self.check(&self.dir.join(relative))
                }
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

    /// Opens `candidate` if, after symlinks, it is a regular file inside the
    /// root.
    fn check(&self, candidate: &Path) -> Candidate {
        let real = match std::fs::canonicalize(candidate) {
            Ok(real) => real,
            Err(e) if absent(&e) => return Candidate::Skip,
            Err(_) => return Candidate::Refused("cannot be read"),
        };
        if !real.starts_with(&self.dir) {
            return Candidate::Refused("outside the root");
        }
        // The canonical path holds no symlinks, so O_NOFOLLOW only catches
        // one swapped in since; O_NONBLOCK keeps a FIFO from blocking the
        // open (it is then skipped as not a regular file).
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&real)
        {
            Ok(file) => file,
            Err(e) if absent(&e) || e.raw_os_error() == Some(libc::ENXIO) => {
                return Candidate::Skip
            }
            Err(_) => return Candidate::Refused("cannot be read"),
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
            modified: meta.modified().ok(),
        })
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

/// Content-Type by extension (case-insensitive): html/htm "text/html;
/// charset=utf-8", css, js/mjs "text/javascript; charset=utf-8", json, map,
/// txt "text/plain; charset=utf-8", svg, png, jpg/jpeg, gif, webp, avif,
/// ico, wasm "application/wasm", woff, woff2, ttf, otf, xml, pdf, mp4, webm,
/// mp3, ogg, csv, md; anything else "application/octet-stream".
pub fn content_type(path: &Path) -> &'static str {
    const TYPES: [(&str, &str); 29] = [
        ("html", "text/html; charset=utf-8"),
        ("htm", "text/html; charset=utf-8"),
        ("css", "text/css; charset=utf-8"),
        ("js", "text/javascript; charset=utf-8"),
        ("mjs", "text/javascript; charset=utf-8"),
        ("json", "application/json"),
        ("map", "application/json"),
        ("txt", "text/plain; charset=utf-8"),
        ("svg", "image/svg+xml"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("avif", "image/avif"),
        ("ico", "image/x-icon"),
        ("wasm", "application/wasm"),
        ("woff", "font/woff"),
        ("woff2", "font/woff2"),
        ("ttf", "font/ttf"),
        ("otf", "font/otf"),
        ("xml", "application/xml"),
        ("pdf", "application/pdf"),
        ("mp4", "video/mp4"),
        ("webm", "video/webm"),
        ("mp3", "audio/mpeg"),
        ("ogg", "audio/ogg"),
        ("csv", "text/csv; charset=utf-8"),
        ("md", "text/markdown; charset=utf-8"),
    ];
    let Some(ext) = path.extension().and_then(OsStr::to_str) else {
        return "application/octet-stream";
    };
    TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(ext))
        .map_or("application/octet-stream", |&(_, ty)| ty)
}

/// Writes "HTTP/1.1 200 OK\r\nContent-Type: …\r\nContent-Length:
/// …\r\nLast-Modified: <IMF-fixdate>\r\n" (no blank line: the caller
/// appends its own fields and the final CRLF). Last-Modified only when
/// `modified` is Some (and within years 0000–9999). A failed write leaves
/// `out` unchanged.
pub fn write_head(out: &mut Buf, found: &Found) -> Result<(), Full> {
    let mark = out.len();
    let written = put_head(out, found);
    if written.is_err() {
        out.truncate(mark);
    }
    written
}

fn put_head(out: &mut Buf, found: &Found) -> Result<(), Full> {
    out.put(b"HTTP/1.1 200 OK\r\nContent-Type: ")?;
    out.put(found.content_type.as_bytes())?;
    out.put(b"\r\nContent-Length: ")?;
    out.put_decimal(found.len)?;
    out.put(b"\r\n")?;
    if let Some(date) = found.modified.and_then(http_date) {
        out.put(b"Last-Modified: ")?;
        out.put(&date)?;
        out.put(b"\r\n")?;
    }
    Ok(())
}

/// `time` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. "Sun, 06 Nov 1994
/// 08:49:37 GMT"; `None` outside years 0000–9999, which it cannot write.
fn http_date(time: SystemTime) -> Option<[u8; 29]> {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok()?,
        Err(before) => {
            // Round towards the past: 0.5 s before the epoch is 23:59:59.
            let d = before.duration();
            let whole = i64::try_from(d.as_secs()).ok()?;
            -whole - i64::from(d.subsec_nanos() > 0)
        }
    };
    imf_fixdate(secs)
}

/// Seconds since the Unix epoch as an IMF-fixdate.
fn imf_fixdate(secs: i64) -> Option<[u8; 29]> {
    const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    // 1970-01-01 was a Thursday.
    let weekday = (days + 4).rem_euclid(7) as usize;
    let two = |n: i64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    let mut out = [0u8; 29];
    out[0..3].copy_from_slice(DAYS[weekday]);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&two(day));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    out[12..14].copy_from_slice(&two(year / 100));
    out[14..16].copy_from_slice(&two(year % 100));
    out[16] = b' ';
    out[17..19].copy_from_slice(&two(of_day / 3600));
    out[19] = b':';
    out[20..22].copy_from_slice(&two(of_day / 60 % 60));
    out[22] = b':';
    out[23..25].copy_from_slice(&two(of_day % 60));
    out[25..29].copy_from_slice(b" GMT");
    Some(out)
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01, in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Sends as much of the file as the socket takes: sendfile(2) from
/// `*offset` until `len`, advancing `offset`; Ok(true) when all sent,
/// Ok(false) on WouldBlock (wait for writable), Err on other errors
/// (`UnexpectedEof` when the file ends before `len`: it shrank while
/// being sent). Retries EINTR.
pub fn send(socket: &impl AsFd, found_file: &File, offset: &mut u64, len: u64) -> io::Result<bool> {
    while *offset < len {
        let count = usize::try_from(len - *offset).unwrap_or(usize::MAX);
        let mut at = i64::try_from(*offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset past i64::MAX"))?;
        match sys::sendfile(socket.as_fd(), found_file.as_fd(), &mut at, count) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being sent",
                ))
            }
            Ok(n) => {
                *offset += n as u64;
                debug_assert_eq!(at as u64, *offset, "sendfile advanced the offset by n");
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// What [`send`] does, for a socket sendfile cannot write to (a TLS
/// session): reads the file at `offset` into `scratch` and hands it to
/// `write`, which takes what it can. `Ok(false)`: the writer is full.
pub fn send_through(
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
    found_file: &File,
    offset: &mut u64,
    len: u64,
    scratch: &mut [u8],
) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    while *offset < len {
        let want = usize::try_from(len - *offset)
            .unwrap_or(usize::MAX)
            .min(scratch.len());
        let n = match found_file.read_at(&mut scratch[..want], *offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being sent",
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        match write(&scratch[..n]) {
            Ok(0) => return Ok(false),
            Ok(taken) => *offset += taken as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// A directory under the system temp dir, removed when dropped (also
    /// when a test fails).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(what: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("wsproxy-files-{what}-{}-{n}", std::process::id()));
            std::fs::create_dir(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
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
            let r = Root::new(&root.0, &strings(try_files)).unwrap();
            assert_eq!(
                &outcome(r.lookup(path)),
                want,
                "try_files {try_files:?}, path {path:?}"
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

    #[test]
    fn content_types() {
        let table = [
            ("index.html", "text/html; charset=utf-8"),
            ("INDEX.HTM", "text/html; charset=utf-8"),
            ("a/b.c/app.Js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "text/javascript; charset=utf-8"),
            ("s.css", "text/css; charset=utf-8"),
            ("d.json", "application/json"),
            ("app.js.map", "application/json"),
            ("r.txt", "text/plain; charset=utf-8"),
            ("i.svg", "image/svg+xml"),
            ("i.PNG", "image/png"),
            ("i.jpg", "image/jpeg"),
            ("i.jpeg", "image/jpeg"),
            ("i.gif", "image/gif"),
            ("i.webp", "image/webp"),
            ("i.avif", "image/avif"),
            ("favicon.ico", "image/x-icon"),
            ("m.wasm", "application/wasm"),
            ("f.woff", "font/woff"),
            ("f.woff2", "font/woff2"),
            ("f.ttf", "font/ttf"),
            ("f.otf", "font/otf"),
            ("x.xml", "application/xml"),
            ("d.pdf", "application/pdf"),
            ("v.mp4", "video/mp4"),
            ("v.webm", "video/webm"),
            ("a.mp3", "audio/mpeg"),
            ("a.ogg", "audio/ogg"),
            ("t.csv", "text/csv; charset=utf-8"),
            ("README.md", "text/markdown; charset=utf-8"),
            ("Makefile", "application/octet-stream"),
            (".html", "application/octet-stream"),
            ("archive.tar.gz", "application/octet-stream"),
            ("x.exe", "application/octet-stream"),
        ];
        for (name, want) in table {
            assert_eq!(content_type(Path::new(name)), want, "{name}");
        }
    }

    #[test]
    fn imf_fixdates() {
        let table: [(i64, &str); 8] = [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_709_210_096, "Thu, 29 Feb 2024 12:34:56 GMT"),
            (-1, "Wed, 31 Dec 1969 23:59:59 GMT"),
            (-2_208_988_800, "Mon, 01 Jan 1900 00:00:00 GMT"),
            (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (-62_167_219_200, "Sat, 01 Jan 0000 00:00:00 GMT"),
        ];
        for (secs, want) in table {
            let got = imf_fixdate(secs).unwrap();
            assert_eq!(std::str::from_utf8(&got).unwrap(), want, "{secs}");
        }
        assert_eq!(imf_fixdate(253_402_300_800), None, "year 10000");
        assert_eq!(imf_fixdate(-62_167_219_201), None, "year -1");
        let before = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(
            &http_date(before).unwrap(),
            b"Wed, 31 Dec 1969 23:59:59 GMT"
        );
        let after = UNIX_EPOCH + Duration::new(784_111_777, 999_999_999);
        assert_eq!(&http_date(after).unwrap(), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn head_fields() {
        let dir = TempDir::new("head");
        let path = dir.write("x.css", b"body{}");
        let found = |modified| Found {
            file: File::open(&path).unwrap(),
            len: 6,
            content_type: content_type(&path),
            modified,
        };
        let mut out = Buf::with_capacity(256);
        let dated = found(Some(UNIX_EPOCH + Duration::from_secs(784_111_777)));
        write_head(&mut out, &dated).unwrap();
        assert_eq!(
            out.data(),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/css; charset=utf-8\r\n\
              Content-Length: 6\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        );
        out.clear();
        write_head(&mut out, &found(None)).unwrap();
        assert_eq!(
            out.data(),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/css; charset=utf-8\r\nContent-Length: 6\r\n"
        );
        let mut small = Buf::with_capacity(80);
        small.put(b"kept").unwrap();
        assert_eq!(write_head(&mut small, &dated), Err(Full));
        assert_eq!(small.data(), b"kept", "a failed write_head changes nothing");
    }

    #[test]
    fn send_a_mebibyte_over_tcp() {
        const LEN: usize = 1 << 20;
        let dir = TempDir::new("send");
        let bytes: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
        let path = dir.write("big.bin", &bytes);
        let file = File::open(&path).unwrap();

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        // A small send buffer so the socket fills long before 1 MiB.
        socket2::SockRef::from(&server)
            .set_send_buffer_size(16 * 1024)
            .unwrap();

        let (go, wait) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            wait.recv().unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });

        let deadline = Instant::now() + Duration::from_secs(10);
        let mut offset = 0u64;
        let all = send(&server, &file, &mut offset, LEN as u64).unwrap();
        assert!(!all, "the client is not reading yet: WouldBlock");
        assert!(offset > 0 && offset < LEN as u64, "sent {offset}");
        go.send(()).unwrap();
        while !send(&server, &file, &mut offset, LEN as u64).unwrap() {
            assert!(Instant::now() < deadline, "stalled at {offset}");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(offset, LEN as u64);
        assert!(send(&server, &file, &mut offset, LEN as u64).unwrap());
        drop(server);
        let got = reader.join().unwrap();
        assert!(got == bytes, "received {} bytes, not the file", got.len());

        // A file shorter than promised is an error, not a hang.
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut offset = LEN as u64;
        let err = send(&server, &file, &mut offset, LEN as u64 + 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
