//! The WebSocket Origin allow-list of a route.

use super::hosts::{split_authority, trim_ows, valid_host, ServerName};

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
