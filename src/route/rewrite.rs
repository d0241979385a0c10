//! How a route edits the request target before it goes upstream or to
//! the static root: nginx's `rewrite … break` with captures, and
//! prefix stripping.

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
                "rewrite replacement {replacement:?}: write a path starting with '/', as in \"/$1\" (redirects are not supported)"
            ));
        }
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
        Ok(PathEdit::Rewrite {
            pattern,
            replacement: expanded,
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
                let Some(captures) = pattern.captures(path) else {
                    return Ok(None);
                };
                let mut edited = String::with_capacity(replacement.len() + target.len());
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
