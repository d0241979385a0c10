//! How a route edits the request target before it goes upstream or to
//! the static root: nginx's `rewrite … break` with captures, and
//! prefix stripping; and nginx's `rewrite … redirect|permanent`, which
//! answers a redirect when its regex matches.

use regex::Regex;

use super::compile_regex;

/// How a route changes the request path before it goes upstream (or to
/// the static root).
#[derive(Clone, Debug)]
pub enum PathEdit {
    /// nginx `rewrite REGEX REPLACEMENT break`: if REGEX matches the path,
    /// the whole path becomes REPLACEMENT; no match leaves it unchanged.
    /// `replacement` is in regex's `Captures::expand` syntax (`${1}`);
    /// [`PathEdit::rewrite`] converts nginx's `$1`..`$9` to it. The regex
    /// sees the raw path, not percent-decoded.
    Rewrite { pattern: Regex, replacement: String },
    /// Remove this prefix, a whole path segment, from the path: `/api` turns
    /// `/api/x` into `/x` and `/api` into `/`, and leaves `/apix` alone.
    /// Stored without a trailing slash.
    StripPrefix(String),
}

impl PathEdit {
    /// nginx `rewrite pattern replacement break`. The replacement starts
    /// with `/` or a capture and may use `$1`..`$9` (`$1abc` is capture 1
    /// followed by `abc`); nginx's variables, redirects and flags are not
    /// supported.
    pub fn rewrite(pattern: &str, replacement: &str) -> Result<PathEdit, String> {
        let pattern = compile_regex(pattern, pattern)?;
        if !replacement.starts_with(['/', '$']) {
            return Err(format!(
                "rewrite replacement {replacement:?}: write a path starting with '/', as in \"/$1\" (or add redirect = 301 or 302 to answer a redirect)"
            ));
        }
        Ok(PathEdit::Rewrite {
            pattern,
            replacement: expansion(replacement)?,
        })
    }

    /// Strips `prefix`, which starts with '/' and is not "/" itself; a
    /// trailing slash is dropped (`/api/` strips as `/api`).
    pub fn strip_prefix(prefix: &str) -> Result<PathEdit, String> {
        if !prefix.starts_with('/') {
            return Err(format!(
                "strip prefix {prefix:?}: write a path starting with '/', as in \"/api\""
            ));
        }
        if prefix.contains(['?', '#'])
            || prefix
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(format!(
                "strip prefix {prefix:?}: write a plain path such as \"/api\", without query, spaces or control characters"
            ));
        }
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(format!(
                "strip prefix {prefix:?} removes nothing; write a path such as \"/api\" or leave it out"
            ));
        }
        Ok(PathEdit::StripPrefix(trimmed.to_owned()))
    }

    /// Applies the edit to an origin-form request target `path?query`.
    /// The query is kept after the new path, except that, as in nginx, a
    /// rewrite replacement containing '?' gets the original query appended
    /// after '&', unless it ends with '?', which drops the original query
    /// (and that '?'). `Ok(None)` when the target is unchanged; no
    /// allocation then. `Err` when a rewrite produces a target that does not
    /// start with '/' or contains a space, CR, LF or NUL.
    pub fn apply(&self, target: &str) -> Result<Option<String>, &'static str> {
        let path_end = target.find('?').unwrap_or(target.len());
        let (path, query) = target.split_at(path_end);
        match self {
            PathEdit::StripPrefix(prefix) => {
                let rest = match path.strip_prefix(prefix.as_str()) {
                    Some("") => "/",
                    Some(rest) if rest.starts_with('/') => rest,
                    _ => return Ok(None),
                };
                Ok(Some([rest, query].concat()))
            }
            PathEdit::Rewrite {
                pattern,
                replacement,
            } => {
                let Some(edited) = expand(pattern, replacement, path, query) else {
                    return Ok(None);
                };
                if !edited.starts_with('/') {
                    return Err("the rewritten path does not start with '/'");
                }
                if edited.contains([' ', '\r', '\n', '\0']) {
                    return Err("the rewritten path contains a space, CR, LF or NUL");
                }
                Ok((edited != target).then_some(edited))
            }
        }
    }
}

/// nginx `rewrite REGEX REPLACEMENT redirect|permanent`: when REGEX
/// matches the path, the route answers `status` with the replacement as
/// `Location` (captures filled in, the query kept as a path rewrite keeps
/// it); when it does not, the request goes on to the route's target
/// unchanged.
#[derive(Clone, Debug)]
pub struct RewriteRedirect {
    /// 301 (`permanent`) or 302 (`redirect`).
    pub status: u16,
    pattern: Regex,
    /// In `Captures::expand` syntax, as [`PathEdit::Rewrite`]'s.
    replacement: String,
}

/// The statuses a rewrite's redirect answers with: nginx's `permanent`
/// and `redirect` flags.
pub const REWRITE_REDIRECT_STATUSES: [u16; 2] = [301, 302];

impl RewriteRedirect {
    /// `replacement` is a path (`/new/$1`) or an `http://` or `https://`
    /// URL, with captures `$1`..`$9`.
    pub fn new(pattern: &str, replacement: &str, status: u16) -> Result<RewriteRedirect, String> {
        let pattern = compile_regex(pattern, pattern)?;
        if !REWRITE_REDIRECT_STATUSES.contains(&status) {
            return Err(format!(
                "a rewrite redirects with 301 (nginx's permanent) or 302 (redirect), not {status}"
            ));
        }
        let absolute = replacement.starts_with("http://") || replacement.starts_with("https://");
        if !absolute && !replacement.starts_with(['/', '$']) {
            return Err(format!(
                "rewrite replacement {replacement:?}: redirect to a path starting with '/' or to an http:// or https:// URL"
            ));
        }
        Ok(RewriteRedirect {
            status,
            pattern,
            replacement: expansion(replacement)?,
        })
    }

    /// Where to redirect the origin-form `target` to, or None when the
    /// pattern does not match its path. A replacement that is a path is
    /// made absolute as nginx makes it: `scheme://host`, then `:port` when
    /// the port is not the scheme's own. Without a `host` it stays a path.
    pub fn location(
        &self,
        target: &str,
        scheme: &str,
        host: &str,
        port: Option<u16>,
    ) -> Option<String> {
        let (path, query) = target.split_at(target.find('?').unwrap_or(target.len()));
        let edited = expand(&self.pattern, &self.replacement, path, query)?;
        if !edited.starts_with('/') || host.is_empty() {
            return Some(edited);
        }
        let default = if scheme == "https" { 443 } else { 80 };
        Some(match port.filter(|&p| p != default && p != 0) {
            Some(port) => format!("{scheme}://{host}:{port}{edited}"),
            None => format!("{scheme}://{host}{edited}"),
        })
    }
}

/// nginx's `$1`..`$9` in a replacement as `Captures::expand` syntax
/// (`${1}`), the replacement checked for what no target may hold.
fn expansion(replacement: &str) -> Result<String, String> {
    if replacement.contains([' ', '\r', '\n', '\0']) {
        return Err(format!(
            "rewrite replacement {replacement:?}: write it without spaces or control characters (percent-encode them)"
        ));
    }
    let mut expanded = String::with_capacity(replacement.len() + 8);
    let mut chars = replacement.chars();
    while let Some(c) = chars.next() {
        if c != '$' {
            expanded.push(c);
            continue;
        }
        match chars.next() {
            Some(digit @ '1'..='9') => {
                expanded.push_str("${");
                expanded.push(digit);
                expanded.push('}');
            }
            _ => {
                return Err(format!(
                    "rewrite replacement {replacement:?}: '$' is followed by a capture number 1 to 9, as in \"/$1\"; variables are not supported"
                ))
            }
        }
    }
    Ok(expanded)
}

/// `replacement` expanded with `pattern`'s captures in `path`, and the
/// `query` (empty or starting with '?') kept as nginx keeps it: appended
/// after '&' when the replacement has a '?', dropped (with that '?') when
/// it ends with one, else appended as it was. None when `pattern` does
/// not match.
fn expand(pattern: &Regex, replacement: &str, path: &str, query: &str) -> Option<String> {
    let captures = pattern.captures(path)?;
    let mut edited = String::with_capacity(replacement.len() + path.len() + query.len());
    captures.expand(replacement, &mut edited);
    if edited.ends_with('?') {
        edited.pop();
    } else if edited.contains('?') {
        if query.len() > 1 {
            edited.push('&');
            edited.push_str(&query[1..]);
        }
    } else {
        edited.push_str(query);
    }
    Some(edited)
}
