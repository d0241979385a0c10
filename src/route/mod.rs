//! Routing decisions, all pure: which site serves a Host (`server_name`
//! matching), which `location` serves a path (nginx's precedence), how a
//! route edits the request target before it goes upstream (regex rewrite,
//! prefix strip), which WebSocket Origins a client may connect from, and
//! which client addresses may use a route (`allow`/`deny`).
//! Matching borrows and does not allocate; only an edited target does.

use std::fmt;

use regex::Regex;

mod access;
mod hosts;
mod origins;
mod rewrite;
#[cfg(test)]
mod tests;

pub use access::Access;
pub use hosts::{host_name, ServerName, VirtualHosts};
pub use origins::Origins;
pub use rewrite::{PathEdit, RewriteRedirect, REWRITE_REDIRECT_STATUSES};

/// One `location`, written as in nginx: `= /exact`, `/prefix`, `^~ /prefix`
/// (a prefix that, when it is the longest prefix match, wins over regexes),
/// `~ regex` (case-sensitive) or `~* regex` (case-insensitive).
///
/// A `~*` regex is stored with a leading `(?i)`, which is how `Display`
/// tells it from `~`.
#[derive(Clone, Debug)]
pub enum Location {
    Exact(String),
    Prefix { path: String, beats_regex: bool },
    Regex(Regex),
}

impl Location {
    /// Parses nginx's `location` argument. Errors are one line, worded as
    /// what to write instead.
    pub fn parse(text: &str) -> Result<Location, String> {
        const FORM: &str =
            r#"a location is "= /path", "/prefix", "^~ /prefix", "~ regex" or "~* regex""#;
        let text = text.trim();
        let (modifier, arg) = ["~*", "^~", "~", "="]
            .into_iter()
            .find_map(|m| text.strip_prefix(m).map(|rest| (m, rest.trim_start())))
            .unwrap_or(("", text));
        if arg.is_empty() {
            return Err(format!("{text:?}: {FORM}"));
        }
        match modifier {
            "~" => compile_regex(arg, arg).map(Location::Regex),
            "~*" => compile_regex(&format!("(?i){arg}"), arg).map(Location::Regex),
            _ if !arg.starts_with('/') => Err(format!(
                "{text:?}: a location path starts with '/', as in \"/api\"; {FORM}"
            )),
            _ if arg.bytes().any(|b| b.is_ascii_whitespace()) => {
                Err(format!("{text:?}: a location path has no spaces; {FORM}"))
            }
            "=" => Ok(Location::Exact(arg.to_owned())),
            _ => Ok(Location::Prefix {
                path: arg.to_owned(),
                beats_regex: modifier == "^~",
            }),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Exact(path) => write!(f, "= {path}"),
            Location::Prefix {
                path,
                beats_regex: true,
            } => write!(f, "^~ {path}"),
            Location::Prefix { path, .. } => f.write_str(path),
            Location::Regex(re) => match re.as_str().strip_prefix("(?i)") {
                Some(pattern) => write!(f, "~* {pattern}"),
                None => write!(f, "~ {}", re.as_str()),
            },
        }
    }
}

/// Compiles `pattern`; an error names `shown` (what the person wrote) and
/// regex's reason, on one line.
fn compile_regex(pattern: &str, shown: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|err| {
        let text = err.to_string();
        let reason = text
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("invalid");
        let reason = reason.strip_prefix("error: ").unwrap_or(reason);
        format!("{shown:?} is not a valid regex: {reason}")
    })
}

/// A server's locations in configuration order.
#[derive(Clone, Debug)]
pub struct Routes {
    locations: Vec<Location>,
}

impl Routes {
    pub fn new(locations: Vec<Location>) -> Routes {
        Routes { locations }
    }

    /// Index (into the Vec given to `new`) of the location that serves
    /// `path` (the request path, without query), by nginx's rules: an exact
    /// match wins at once; otherwise the longest matching prefix is
    /// remembered; if it is `^~`, it wins; otherwise regexes are tried in
    /// configuration order and the first match wins; otherwise the longest
    /// prefix; otherwise `None`. Of two equal prefixes the first counts.
    pub fn find(&self, path: &str) -> Option<usize> {
        let mut longest: Option<(usize, usize, bool)> = None;
        for (i, location) in self.locations.iter().enumerate() {
            match location {
                Location::Exact(exact) if exact == path => return Some(i),
                Location::Prefix {
                    path: prefix,
                    beats_regex,
                } if path.starts_with(prefix.as_str())
                    && longest.is_none_or(|(_, len, _)| prefix.len() > len) =>
                {
                    longest = Some((i, prefix.len(), *beats_regex));
                }
                _ => {}
            }
        }
        if let Some((i, _, true)) = longest {
            return Some(i);
        }
        let regex_match = self
            .locations
            .iter()
            .position(|location| matches!(location, Location::Regex(re) if re.is_match(path)));
        regex_match.or(longest.map(|(i, _, _)| i))
    }
}
