//! Which site serves a request: `server_name` entries (exact, `*.` and
//! `.` wildcards, `~` regexes), the virtual hosts of a listener, and the
//! Host header read as a name.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use regex::Regex;

use super::compile_regex;

/// A `server_name`: `example.com` (exact, case-insensitive) or
/// `*.example.com` (any name ending in `.example.com`, at any depth, but not
/// `example.com` itself). Names are stored lowercased, without a trailing
/// dot; a bracketed IPv6 literal such as `[::1]` is an exact name; or
/// `~regex`, matched against the lowercased host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerName {
    Exact(String),
    Wildcard {
        /// `.example.com`, lowercased.
        suffix: String,
    },
    Regex(HostRegex),
}

/// A `~regex` server name; two are the same name when their patterns are.
#[derive(Clone, Debug)]
pub struct HostRegex(Regex);

impl PartialEq for HostRegex {
    fn eq(&self, other: &HostRegex) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for HostRegex {}

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
        if let Some(pattern) = text.strip_prefix('~') {
            return compile_regex(pattern, text).map(|re| ServerName::Regex(HostRegex(re)));
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
            ServerName::Regex(re) => re.0.is_match(&host.to_ascii_lowercase()),
        }
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerName::Exact(name) => f.write_str(name),
            ServerName::Wildcard { suffix } => write!(f, "*{suffix}"),
            ServerName::Regex(re) => write!(f, "~{}", re.0.as_str()),
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
    /// `(regex, site)`, in configuration order.
    regexes: Vec<(Regex, usize)>,
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
        let mut regexes = Vec::new();
        for (names, site) in sites {
            for name in names {
                match name {
                    ServerName::Exact(name) => {
                        exact.entry(name).or_insert(site);
                    }
                    ServerName::Wildcard { suffix } => wildcards.push((suffix, site)),
                    ServerName::Regex(re) => regexes.push((re.0, site)),
                }
            }
        }
        wildcards.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        VirtualHosts {
            exact,
            wildcards,
            regexes,
            default,
        }
    }

    /// nginx precedence: exact name, then the longest matching wildcard,
    /// then the first matching regex, then default. `host` is already
    /// normalised by [`host_name`].
    pub fn find(&self, host: &str) -> usize {
        if let Some(&site) = self.exact.get(host) {
            return site;
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|&(_, site)| site)
            .or_else(|| {
                self.regexes
                    .iter()
                    .find(|(re, _)| re.is_match(host))
                    .map(|&(_, site)| site)
            })
            .unwrap_or(self.default)
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
pub(super) fn trim_ows(mut value: &[u8]) -> &[u8] {
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
pub(super) fn split_authority(value: &[u8]) -> Option<(&[u8], Option<u16>)> {
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

pub(super) fn valid_host(host: &[u8]) -> bool {
    reg_name(host) || ip_literal(host)
}
