//! Routing decisions, all pure: which site serves a Host (`server_name`
//! matching), which `location` serves a path (nginx's precedence), how a
//! route edits the request target before it goes upstream (regex rewrite,
//! prefix strip), and which WebSocket Origins a client may connect from.
//! Matching borrows and does not allocate; only an edited target does.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use regex::Regex;

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

/// A `server_name`: `example.com` (exact, case-insensitive) or
/// `*.example.com` (any name ending in `.example.com`, at any depth, but not
/// `example.com` itself). Names are stored lowercased, without a trailing
/// dot; a bracketed IPv6 literal such as `[::1]` is an exact name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerName {
    Exact(String),
    Wildcard {
        /// `.example.com`, lowercased.
        suffix: String,
    },
}

impl ServerName {
    /// Parses one name; errors are one line, worded as what to write instead.
    pub fn parse(text: &str) -> Result<ServerName, String> {
        const FORM: &str =
            r#"a server_name is a host name such as "example.com" or "*.example.com""#;
        if text.is_empty() {
            return Err(format!("an empty server_name: {FORM}"));
        }
        if text.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(format!(
                "{text:?}: write one name per entry, without spaces"
            ));
        }
        if text.starts_with('~') {
            return Err(format!(
                "{text:?}: regex server names are not supported; {FORM}"
            ));
        }
        if let Some(rest) = text.strip_prefix('.') {
            return Err(format!("{text:?}: write both {rest:?} and \"*{text}\""));
        }
        let (wildcard, name) = match text.strip_prefix("*.") {
            Some(name) => (true, name),
            None => (false, text),
        };
        if name.contains('*') {
            return Err(format!(
                "{text:?}: '*' is allowed only as a leading \"*.\", as in \"*.example.com\""
            ));
        }
        if !wildcard && ip_literal(name.as_bytes()) {
            return Ok(ServerName::Exact(name.to_ascii_lowercase()));
        }
        if name.contains(':') && !name.starts_with('[') {
            return Err(format!(
                "{text:?}: a server_name has no port (the port belongs to the listener) \
                 and IPv6 addresses are written in brackets, as in \"[::1]\""
            ));
        }
        let name = name.strip_suffix('.').unwrap_or(name);
        if !reg_name(name.as_bytes()) {
            return Err(format!(
                "{text:?}: {FORM}, made of letters, digits, '-', '_' and '.'"
            ));
        }
        let name = name.to_ascii_lowercase();
        Ok(if wildcard {
            ServerName::Wildcard {
                suffix: format!(".{name}"),
            }
        } else {
            ServerName::Exact(name)
        })
    }

    /// Whether `host` (a host name without port) is this name, ignoring case.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            ServerName::Exact(name) => host.eq_ignore_ascii_case(name),
            ServerName::Wildcard { suffix } => {
                let host = host.as_bytes();
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerName::Exact(name) => f.write_str(name),
            ServerName::Wildcard { suffix } => write!(f, "*{suffix}"),
        }
    }
}

/// Virtual hosts on one listener: which site (an index the caller chose)
/// serves a Host.
#[derive(Clone, Debug)]
pub struct VirtualHosts {
    exact: HashMap<String, usize>,
    /// `(suffix, site)`, longest suffix first, configuration order within a length.
    wildcards: Vec<(String, usize)>,
    default: usize,
}

impl VirtualHosts {
    /// `sites`: (names, site index) in configuration order; `default`: the
    /// site for a host that matches no name (nginx: the first server on the
    /// listener unless one is marked default). A name given twice belongs
    /// to its first site, as nginx keeps the first on "conflicting server name".
    pub fn new(sites: Vec<(Vec<ServerName>, usize)>, default: usize) -> VirtualHosts {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for (names, site) in sites {
            for name in names {
                match name {
                    ServerName::Exact(name) => {
                        exact.entry(name).or_insert(site);
                    }
                    ServerName::Wildcard { suffix } => wildcards.push((suffix, site)),
                }
            }
        }
        wildcards.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        VirtualHosts {
            exact,
            wildcards,
            default,
        }
    }

    /// nginx precedence: exact name, then the longest matching wildcard,
    /// then default. `host` is already normalised by [`host_name`].
    pub fn find(&self, host: &str) -> usize {
        if let Some(&site) = self.exact.get(host) {
            return site;
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map_or(self.default, |&(_, site)| site)
    }
}

/// The host name from a Host header value: port removed, lowercased, one
/// trailing dot removed, IPv6 literal kept with its brackets (`[::1]:8080`
/// becomes `[::1]`). Surrounding spaces and tabs (RFC 9110 OWS) are
/// ignored. `None` if the value is not a plausible host: empty, whitespace
/// inside, a character outside letters, digits, `-`, `_` and `.`, an empty
/// label, non-ASCII, or a port that is not 1 to 5 digits up to 65535.
/// Borrows unless the value has upper-case letters.
pub fn host_name(value: &[u8]) -> Option<Cow<'_, str>> {
    let (host, _port) = split_authority(trim_ows(value))?;
    let host = host.strip_suffix(b".").unwrap_or(host);
    if !valid_host(host) {
        return None;
    }
    let host = std::str::from_utf8(host).ok()?;
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

/// Removes leading and trailing spaces and tabs.
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// Splits `host[:port]` (host possibly a bracketed IPv6 literal) into the
/// host, unchecked, and the port. `None` when what follows the host is not
/// `:` and a port.
fn split_authority(value: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let split = if value.first() == Some(&b'[') {
        value.iter().position(|&b| b == b']')? + 1
    } else {
        value.iter().position(|&b| b == b':').unwrap_or(value.len())
    };
    let (host, rest) = value.split_at(split);
    let port = match rest {
        [] => None,
        [b':', digits @ ..] if (1..=5).contains(&digits.len()) => {
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            Some(std::str::from_utf8(digits).ok()?.parse().ok()?)
        }
        _ => return None,
    };
    Some((host, port))
}

/// A DNS-style name: dot-separated, non-empty labels of letters, digits,
/// `-` and `_`, at most 253 bytes.
fn reg_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split(|&b| b == b'.').all(|label| {
            !label.is_empty()
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A bracketed IPv6 literal, loosely: `[` hex digits, `:` and `.` `]`.
fn ip_literal(host: &[u8]) -> bool {
    match host {
        [b'[', inner @ .., b']'] => {
            inner.contains(&b':')
                && inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        _ => false,
    }
}

fn valid_host(host: &[u8]) -> bool {
    reg_name(host) || ip_literal(host)
}

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

/// Origins a WebSocket upgrade may come from: entries like
/// `https://example.com`, `https://*.example.com` (any subdomain),
/// `http://localhost:3000`, or `*` (anything, including `null` and
/// values that are not origins). Scheme and host compare ignoring case; the
/// port must match exactly, so an entry without a port matches only an
/// Origin without one. Whether a request without an Origin header may
/// upgrade is the caller's decision.
#[derive(Clone, Debug)]
pub struct Origins {
    any: bool,
    entries: Vec<OriginEntry>,
}

#[derive(Clone, Debug)]
struct OriginEntry {
    /// Lowercased.
    scheme: String,
    host: ServerName,
    port: Option<u16>,
}

impl Origins {
    /// Parses the allow-list; errors are one line, naming the entry and
    /// what to write instead.
    pub fn new(entries: &[String]) -> Result<Origins, String> {
        let mut origins = Origins {
            any: false,
            entries: Vec::with_capacity(entries.len()),
        };
        for entry in entries {
            if entry == "*" {
                origins.any = true;
            } else {
                origins.entries.push(origin_entry(entry)?);
            }
        }
        Ok(origins)
    }

    /// `origin` is the Origin header's raw value (e.g.
    /// `b"https://app.example.com"` or `b"null"`).
    pub fn allows(&self, origin: &[u8]) -> bool {
        if self.any {
            return true;
        }
        let origin = trim_ows(origin);
        let Some(sep) = origin.windows(3).position(|w| w == b"://") else {
            return false;
        };
        let scheme = &origin[..sep];
        let Some((host, port)) = split_authority(&origin[sep + 3..]) else {
            return false;
        };
        let Some(host) = std::str::from_utf8(host)
            .ok()
            .filter(|h| valid_host(h.as_bytes()))
        else {
            return false;
        };
        self.entries.iter().any(|entry| {
            entry.port == port
                && scheme.eq_ignore_ascii_case(entry.scheme.as_bytes())
                && entry.host.matches(host)
        })
    }
}

/// Parses one allow-list entry other than `*`.
fn origin_entry(text: &str) -> Result<OriginEntry, String> {
    const FORM: &str = r#"an allowed origin is "scheme://host[:port]", such as "https://example.com", "https://*.example.com" or "http://localhost:3000", or "*""#;
    let Some((scheme, authority)) = text.split_once("://") else {
        return Err(format!("{text:?}: {FORM}"));
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return Err(format!(
            "{text:?}: the scheme is missing or invalid; {FORM}"
        ));
    }
    if let Some(end) = authority.find(['/', '?', '#']) {
        return Err(format!(
            "{text:?}: an origin has no path; write \"{scheme}://{}\"",
            &authority[..end]
        ));
    }
    let bad_host = || format!("{text:?}: the host or port is invalid; {FORM}");
    let (host, port) = split_authority(authority.as_bytes()).ok_or_else(bad_host)?;
    let host = std::str::from_utf8(host).map_err(|_| bad_host())?;
    if host.ends_with('.') {
        return Err(bad_host());
    }
    Ok(OriginEntry {
        scheme: scheme.to_ascii_lowercase(),
        host: ServerName::parse(host).map_err(|_| bad_host())?,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(locations: &[&str]) -> Routes {
        Routes::new(
            locations
                .iter()
                .map(|text| Location::parse(text).unwrap())
                .collect(),
        )
    }

    #[test]
    fn location_parses_and_displays_in_nginx_syntax() {
        let cases = [
            ("= /exact", "= /exact"),
            ("=/exact", "= /exact"),
            ("/prefix", "/prefix"),
            ("  /prefix/  ", "/prefix/"),
            ("^~ /api/socket/", "^~ /api/socket/"),
            ("^~/static", "^~ /static"),
            (r"~ \.js$", r"~ \.js$"),
            (r"~* \.JS$", r"~* \.JS$"),
            (r"~*\.png$", r"~* \.png$"),
            ("~ ^/a b$", "~ ^/a b$"),
            ("/", "/"),
        ];
        for (text, shown) in cases {
            let location = Location::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(location.to_string(), shown, "{text:?}");
            let again = Location::parse(&location.to_string()).unwrap();
            assert_eq!(again.to_string(), shown, "{text:?} round trip");
        }
    }

    #[test]
    fn location_rejects_with_one_line_advice() {
        let cases = [
            ("", "a location is"),
            ("api", "a location is"),
            ("@named", "a location is"),
            ("=", "a location is"),
            ("~*", "a location is"),
            ("= api", "starts with '/'"),
            ("^~ api", "starts with '/'"),
            ("/a b", "no spaces"),
            ("~ (unclosed", "is not a valid regex: unclosed group"),
            ("~* [z-a]", "is not a valid regex"),
        ];
        for (text, expected) in cases {
            let err = Location::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{text:?}: {err}");
        }
    }

    #[test]
    fn routes_follow_nginx_precedence() {
        let config = routes(&[
            "/",                 // 0
            "/api/",             // 1
            "= /api/health",     // 2
            "^~ /api/socket/",   // 3
            r"~ \.js$",          // 4
            r"~* \.PNG$",        // 5
            "/api/long/prefix/", // 6
            r"~ ^/api/long/",    // 7
            "/static/",          // 8
            "/static/img/",      // 9
        ]);
        let cases = [
            ("/api/health", Some(2)),           // exact beats all
            ("/api/health/", Some(1)),          // exact is exact
            ("/api/socket/x.js", Some(3)),      // ^~ longest prefix beats regex
            ("/api/socket/", Some(3)),          // ^~ alone
            ("/api/other.js", Some(4)),         // regex beats plain prefix
            ("/api/long/prefix/x", Some(7)),    // longer plain prefix loses to regex
            ("/api/long/prefix/x.js", Some(4)), // first regex in config order
            ("/static/img/a.png", Some(5)),     // ~* ignores case
            ("/static/img/A.Png", Some(5)),
            ("/static/img/a.gif", Some(9)), // longest prefix, not first
            ("/static/a.gif", Some(8)),
            ("/api/x", Some(1)),
            ("/elsewhere", Some(0)),
            ("/api", Some(0)), // "/api/" does not match "/api"
        ];
        for (path, expected) in cases {
            assert_eq!(config.find(path), expected, "{path}");
        }
    }

    #[test]
    fn routes_order_independence_and_no_match() {
        let shorter_last = routes(&["/a/b/c", "/a"]);
        let shorter_first = routes(&["/a", "/a/b/c"]);
        assert_eq!(shorter_last.find("/a/b/c/d"), Some(0));
        assert_eq!(shorter_first.find("/a/b/c/d"), Some(1));
        assert_eq!(shorter_first.find("/a/b"), Some(0));

        // A ^~ that is not the longest prefix does not stop the regexes.
        let not_longest = routes(&["^~ /a", "/a/b", r"~ \.js$"]);
        assert_eq!(not_longest.find("/a/b/x.js"), Some(2));
        assert_eq!(not_longest.find("/a/x.js"), Some(0));

        let none = routes(&["= /only", "/api", r"~ ^/ws$"]);
        for path in ["/", "/other", "/onlyx", "/ws/", "/Only"] {
            assert_eq!(none.find(path), None, "{path}");
        }
        assert_eq!(none.find("/ws"), Some(2));
        assert_eq!(routes(&[]).find("/"), None);
    }

    #[test]
    fn host_name_normalises() {
        let cases: [(&[u8], Option<&str>); 27] = [
            (b"example.com", Some("example.com")),
            (b"Example.COM", Some("example.com")),
            (b"example.com:8080", Some("example.com")),
            (b"example.com.", Some("example.com")),
            (b"example.com.:443", Some("example.com")),
            (b" example.com\t", Some("example.com")),
            (b"localhost", Some("localhost")),
            (b"127.0.0.1:80", Some("127.0.0.1")),
            (b"[::1]:8080", Some("[::1]")),
            (b"[::1]", Some("[::1]")),
            (b"[2001:DB8::1]", Some("[2001:db8::1]")),
            (b"my_host-1.internal", Some("my_host-1.internal")),
            (b"", None),
            (b".", None),
            (b":80", None),
            (b"example.com:", None),
            (b"example.com:65536", None),
            (b"example.com:123456", None),
            (b"example.com:+80", None),
            (b"example.com:80:80", None),
            (b"exa mple.com", None),
            (b"example.com/path", None),
            (b"user@example.com", None),
            (b"ex\xc3\xa4mple.com", None),
            (b"a..b", None),
            (b"::1", None),
            (b"[::1", None),
        ];
        for (value, expected) in cases {
            let got = host_name(value);
            assert_eq!(
                got.as_deref(),
                expected,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert!(matches!(
            host_name(b"example.com:80"),
            Some(Cow::Borrowed(_))
        ));
        assert!(matches!(host_name(b"Example.com"), Some(Cow::Owned(_))));
    }

    #[test]
    fn server_name_parses() {
        let cases = [
            ("example.com", "example.com"),
            ("Example.COM", "example.com"),
            ("example.com.", "example.com"),
            ("*.Example.com", "*.example.com"),
            ("*.a.b.example.com", "*.a.b.example.com"),
            ("localhost", "localhost"),
            ("_", "_"),
            ("[::1]", "[::1]"),
            ("10.0.0.1", "10.0.0.1"),
        ];
        for (text, shown) in cases {
            let name = ServerName::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(name.to_string(), shown, "{text:?}");
        }
        assert_eq!(
            ServerName::parse("*.example.com").unwrap(),
            ServerName::Wildcard {
                suffix: ".example.com".into()
            }
        );
    }

    #[test]
    fn server_name_rejects_with_one_line_advice() {
        let cases = [
            ("", "empty"),
            ("example.com www.example.com", "without spaces"),
            ("example.com:8080", "no port"),
            ("::1", "brackets"),
            ("www.*.com", "leading \"*.\""),
            ("example.*", "leading \"*.\""),
            ("*", "leading \"*.\""),
            ("*.", "a server_name is"),
            ("*example.com", "leading \"*.\""),
            (".example.com", "\"*.example.com\""),
            ("~^www\\.", "regex"),
            ("a/b", "a server_name is"),
            ("a..b", "a server_name is"),
            ("*.[::1]", "a server_name is"),
        ];
        for (text, expected) in cases {
            let err = ServerName::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{text:?}: {err}");
        }
    }

    #[test]
    fn virtual_hosts_follow_nginx_precedence() {
        let names = |list: &[&str]| -> Vec<ServerName> {
            list.iter().map(|n| ServerName::parse(n).unwrap()).collect()
        };
        let hosts = VirtualHosts::new(
            vec![
                (names(&["*.example.com"]), 10),
                (names(&["api.example.com", "example.com"]), 11),
                (names(&["*.eu.example.com"]), 12),
                (names(&["*.api.example.com"]), 13),
                (names(&["example.com", "other.org"]), 14), // duplicate: the first keeps it
            ],
            99,
        );
        let cases = [
            ("api.example.com", 11), // exact beats wildcard
            ("example.com", 11),     // not matched by *.example.com
            ("www.example.com", 10),
            ("a.b.c.example.com", 10), // any depth
            ("x.eu.example.com", 12),  // longest wildcard, though configured later
            ("v1.api.example.com", 13),
            ("eu.example.com", 10),
            ("other.org", 14),
            ("unknown.net", 99), // default
            ("", 99),
            ("xexample.com", 99),
        ];
        for (host, site) in cases {
            assert_eq!(hosts.find(host), site, "{host}");
        }
    }

    #[test]
    fn server_name_matches_ignoring_case() {
        let wildcard = ServerName::parse("*.example.com").unwrap();
        let exact = ServerName::parse("example.com").unwrap();
        let cases = [
            ("a.example.com", true, false),
            ("A.Example.COM", true, false),
            ("example.com", false, true),
            ("EXAMPLE.com", false, true),
            (".example.com", false, false),
            ("badexample.com", false, false),
        ];
        for (host, wild, ex) in cases {
            assert_eq!(wildcard.matches(host), wild, "{host}");
            assert_eq!(exact.matches(host), ex, "{host}");
        }
    }

    #[test]
    fn rewrite_replaces_the_path_and_keeps_the_query() {
        let cases = [
            // (pattern, replacement, target, result)
            (
                r"^/(api)/(socket)/(.*)$",
                "/$2/$3",
                "/api/socket/test?x=1",
                Some("/socket/test?x=1"),
            ),
            (
                r"^/(api)/(socket)/(.*)$",
                "/$2/$3",
                "/api/socket/test",
                Some("/socket/test"),
            ),
            (
                r"^/(api)/(socket)/(.*)$",
                "/$2/$3",
                "/api/other/test?x=1",
                None,
            ),
            (
                r"^/v(\d)/(.*)$",
                "/$2/v$1abc",
                "/v2/users",
                Some("/users/v2abc"),
            ),
            (r"^/old", "/new", "/old/x?y", Some("/new?y")),
            // The whole path is replaced, not only the match.
            (r"foo", "/bar", "/a/foo/b", Some("/bar")),
            // Replacement with '?': the original query follows '&'.
            (r"^/p/(.*)$", "/q?id=$1", "/p/7?x=1", Some("/q?id=7&x=1")),
            (r"^/p/(.*)$", "/q?id=$1", "/p/7", Some("/q?id=7")),
            (r"^/p/(.*)$", "/q?id=$1", "/p/7?", Some("/q?id=7")),
            // Trailing '?': the original query is dropped.
            (r"^/p/(.*)$", "/q?id=$1?", "/p/7?x=1", Some("/q?id=7")),
            (r"^/p/(.*)$", "/q/$1?", "/p/7?x=1", Some("/q/7")),
            // The regex sees only the path.
            (r"x=1", "/never", "/p?x=1", None),
            (r"^/p$", "/p", "/p?x=1", None), // unchanged
            // An empty original query is kept as written.
            (r"^/a$", "/b", "/a?", Some("/b?")),
            (r"^(/.*)$", "$1/", "/a?k", Some("/a/?k")),
        ];
        for (pattern, replacement, target, expected) in cases {
            let edit = PathEdit::rewrite(pattern, replacement).unwrap();
            assert_eq!(
                edit.apply(target).unwrap().as_deref(),
                expected,
                "{pattern} {replacement} {target}"
            );
        }
    }

    #[test]
    fn rewrite_rejects_bad_input_and_bad_results() {
        let construction = [
            ("(", "/x", "not a valid regex"),
            ("^/a", "http://other/", "starting with '/'"),
            ("^/a", "x", "starting with '/'"),
            ("^/a", "/a b", "without spaces"),
            ("^/a", "/$host", "capture number"),
            ("^/a", "/$0", "capture number"),
            ("^/a", "/x$", "capture number"),
            ("^/a", "/${1}", "capture number"),
        ];
        for (pattern, replacement, expected) in construction {
            let err = PathEdit::rewrite(pattern, replacement).unwrap_err();
            assert!(err.contains(expected), "{pattern} {replacement}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let results = [
            (r"^/(.*)$", "$1", "/x", "does not start with '/'"),
            (r"^/(.*)$", "$1", "/", "does not start with '/'"),
            (r"^/a(.*)$", "/b$1", "/a%20 x", "space"),
        ];
        for (pattern, replacement, target, expected) in results {
            let err = PathEdit::rewrite(pattern, replacement)
                .unwrap()
                .apply(target)
                .unwrap_err();
            assert!(err.contains(expected), "{target}: {err}");
        }
        let PathEdit::Rewrite { replacement, .. } = PathEdit::rewrite("^/(a)", "/$1abc$2").unwrap()
        else {
            unreachable!()
        };
        assert_eq!(replacement, "/${1}abc${2}");
    }

    #[test]
    fn strip_prefix_removes_a_whole_segment() {
        let cases = [
            ("/api", "/api/x", Some("/x")),
            ("/api", "/api", Some("/")),
            ("/api", "/api?q=1", Some("/?q=1")),
            ("/api", "/api/x/y?q=1", Some("/x/y?q=1")),
            ("/api/", "/api/x", Some("/x")),
            ("/api/", "/api", Some("/")),
            ("/api", "/apix", None),
            ("/api", "/other/api/x", None),
            ("/api", "/", None),
            ("/api", "/API/x", None),
            ("/a/b", "/a/b/c", Some("/c")),
            ("/a/b", "/a/bc", None),
            ("/api", "/api//x", Some("//x")),
        ];
        for (prefix, target, expected) in cases {
            let edit = PathEdit::strip_prefix(prefix).unwrap();
            assert_eq!(
                edit.apply(target).unwrap().as_deref(),
                expected,
                "{prefix} {target}"
            );
        }
        for (prefix, expected) in [
            ("api", "starting with '/'"),
            ("", "starting with '/'"),
            ("/", "removes nothing"),
            ("//", "removes nothing"),
            ("/a?b", "plain path"),
            ("/a b", "plain path"),
        ] {
            let err = PathEdit::strip_prefix(prefix).unwrap_err();
            assert!(err.contains(expected), "{prefix:?}: {err}");
        }
    }

    #[test]
    fn origins_allow_listed_schemes_hosts_and_ports() {
        let entries: Vec<String> = [
            "https://example.com",
            "https://*.example.com",
            "http://localhost:3000",
            "HTTPS://Upper.Example.ORG",
            "https://[::1]:8443",
            "chrome-extension://abcdef",
        ]
        .map(String::from)
        .into();
        let origins = Origins::new(&entries).unwrap();
        let cases: [(&[u8], bool); 24] = [
            (b"https://example.com", true),
            (b"HTTPS://EXAMPLE.COM", true),
            (b" https://example.com ", true),
            (b"http://example.com", false),      // scheme
            (b"https://example.com:443", false), // port must match exactly
            (b"https://app.example.com", true),
            (b"https://a.b.example.com", true),
            (b"https://badexample.com", false),
            (b"https://example.com.evil.net", false),
            (b"https://evil.net/example.com", false),
            (b"http://localhost:3000", true),
            (b"http://localhost", false),
            (b"http://localhost:3001", false),
            (b"https://upper.example.org", true),
            (b"https://[::1]:8443", true),
            (b"https://[::1]", false),
            (b"chrome-extension://abcdef", true),
            (b"null", false),
            (b"", false),
            (b"example.com", false),
            (b"https://example.com/", false),
            (b"https://user@example.com", false),
            (b"https://example.com:", false),
            (b"https://ex\xc3\xa4mple.com", false),
        ];
        for (origin, allowed) in cases {
            assert_eq!(
                origins.allows(origin),
                allowed,
                "{:?}",
                String::from_utf8_lossy(origin)
            );
        }

        let any = Origins::new(&["https://example.com".into(), "*".into()]).unwrap();
        for origin in [&b"null"[..], b"https://anything.net", b"garbage"] {
            assert!(any.allows(origin));
        }
        assert!(!Origins::new(&[]).unwrap().allows(b"https://example.com"));
    }

    #[test]
    fn origins_reject_entries_with_one_line_advice() {
        let cases = [
            ("example.com", "scheme://host[:port]"),
            ("", "scheme://host[:port]"),
            ("null", "scheme://host[:port]"),
            ("://example.com", "scheme is missing"),
            ("1http://example.com", "scheme is missing"),
            ("https://example.com/", "write \"https://example.com\""),
            ("https://example.com/app", "write \"https://example.com\""),
            ("https://example.com?x", "no path"),
            ("https://", "host or port is invalid"),
            ("https://example.com:99999", "host or port is invalid"),
            ("https://user@example.com", "host or port is invalid"),
            ("https://*", "host or port is invalid"),
            ("https://www.*.com", "host or port is invalid"),
            ("https://example.com.", "host or port is invalid"),
            ("https://exa mple.com", "host or port is invalid"),
        ];
        for (entry, expected) in cases {
            let err = Origins::new(&[entry.to_string()]).unwrap_err();
            assert!(err.contains(expected), "{entry:?}: {err}");
            assert!(!err.contains('\n'), "{entry:?}: {err}");
        }
    }
}
