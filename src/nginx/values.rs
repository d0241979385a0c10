//! nginx's value syntaxes read into what the configuration file writes:
//! times (`1m30s`), sizes (`10m`), `proxy_pass` URLs, `listen` addresses,
//! redirect targets, and variables inside a value.

use std::time::Duration;

/// nginx's time: `500ms`, `30s`, `5m`, `1h`, `1d`, combined (`1m30s`), or
/// a bare number of seconds.
pub fn duration(text: &str) -> Option<Duration> {
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            "w" => Duration::from_secs(n.checked_mul(604_800)?),
            "M" => Duration::from_secs(n.checked_mul(2_592_000)?),
            "y" => Duration::from_secs(n.checked_mul(31_536_000)?),
            _ => return None,
        };
        total = total.checked_add(unit)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// A duration as the configuration file writes it.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}

/// nginx's size: `1024`, `8k`, `10m`, `1g` (case-insensitive), in bytes.
pub fn size(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let (digits, scale) = match lower.as_bytes().last()? {
        b'k' => (&lower[..lower.len() - 1], 1 << 10),
        b'm' => (&lower[..lower.len() - 1], 1 << 20),
        b'g' => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower.as_str(), 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// `proxy_pass`'s URL: scheme, the address as written, and the URI part
/// (`None` when there is none, not even `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyUrl {
    pub tls: bool,
    /// `HOST`, `HOST:PORT`, `[V6]:PORT`, or an upstream block's name.
    pub authority: String,
    pub uri: Option<String>,
}

pub fn proxy_url(text: &str) -> Result<ProxyUrl, String> {
    let (tls, rest) = if let Some(rest) = text.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = text.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(format!(
            "{text:?}: proxy_pass takes http://ADDRESS or https://ADDRESS (unix sockets are not supported)"
        ));
    };
    let split = rest.find(['/', '$']).unwrap_or(rest.len());
    // `http://$backend` is a variable host, not a URI.
    let split = if rest[split..].starts_with('$') && split == 0 {
        rest.find('/').unwrap_or(rest.len())
    } else {
        split
    };
    let (authority, uri) = rest.split_at(split);
    if authority.is_empty() || authority.starts_with("unix:") {
        return Err(format!(
            "{text:?}: proxy_pass needs a host or an upstream name (unix sockets are not supported)"
        ));
    }
    Ok(ProxyUrl {
        tls,
        authority: authority.to_string(),
        uri: (!uri.is_empty()).then(|| uri.to_string()),
    })
}

/// An upstream address as `HOST:PORT` (port 80 when none is written),
/// and `$proxy_host`'s value for it (no port when it is 80, as nginx).
pub fn host_port(authority: &str, default_port: u16) -> (String, String) {
    let has_port = authority.rsplit_once(':').is_some_and(|(host, port)| {
        !port.contains(']')
            && (!host.contains(':') || host.ends_with(']'))
            && port.parse::<u16>().is_ok()
    });
    if !has_port {
        return (format!("{authority}:{default_port}"), authority.to_string());
    }
    let (host, port) = authority.rsplit_once(':').expect("has_port found a colon");
    if port == default_port.to_string() {
        (authority.to_string(), host.to_string())
    } else {
        (authority.to_string(), authority.to_string())
    }
}

/// A `listen` address written as nginx takes it: `80`, `*:80`,
/// `1.2.3.4`, `1.2.3.4:80`, `[::]:80`, `localhost:8080`; as the
/// configuration file writes it.
pub fn listen_address(text: &str) -> Result<String, String> {
    if text.starts_with("unix:") {
        return Err(format!(
            "{text}: unix sockets are not supported: listen on IP:PORT"
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = text.parse().map_err(|_| format!("{text}: not a port"))?;
        return Ok(format!("0.0.0.0:{port}"));
    }
    if let Some(port) = text.strip_prefix("*:") {
        let port: u16 = port.parse().map_err(|_| format!("{text}: not a port"))?;
        return Ok(format!("0.0.0.0:{port}"));
    }
    if text.starts_with('[') {
        return match text.rsplit_once("]:") {
            Some(_) => Ok(text.to_string()),
            None if text.ends_with(']') => Ok(format!("{text}:80")),
            None => Err(format!("{text}: an IPv6 address is written [ADDR]:PORT")),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            let port: u16 = port.parse().map_err(|_| format!("{text}: not a port"))?;
            let host = if host == "*" { "0.0.0.0" } else { host };
            Ok(format!("{host}:{port}"))
        }
        Some(_) => Err(format!("{text}: not an address")),
        None => Ok(format!("{text}:80")),
    }
}

/// The port of a listen address as [`listen_address`] writes it.
pub fn port_of(address: &str) -> Option<u16> {
    address.rsplit_once(':')?.1.parse().ok()
}

/// The `$name`s a value uses (`$1` is a capture, named `1`).
pub fn variables(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        let braced = after.starts_with('{');
        let body = if braced { &after[1..] } else { after };
        let len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        if len > 0 {
            found.push(body[..len].to_string());
        }
        rest = &body[len..];
    }
    found
}

/// Escapes `text` so a regex matches it literally.
pub fn regex_literal(text: &str) -> String {
    regex::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let cases = [
            ("60", Some(60_000)),
            ("60s", Some(60_000)),
            ("1m30s", Some(90_000)),
            ("500ms", Some(500)),
            ("1h", Some(3_600_000)),
            ("1d", Some(86_400_000)),
            ("s", None),
            ("5x", None),
            ("", Some(0)),
        ];
        for (text, want) in cases {
            assert_eq!(duration(text).map(|d| d.as_millis() as u64), want, "{text}");
        }
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_text(Duration::from_secs(3600)), "3600s");
    }

    #[test]
    fn sizes() {
        assert_eq!(size("10m"), Some(10 << 20));
        assert_eq!(size("8K"), Some(8 << 10));
        assert_eq!(size("100"), Some(100));
        assert_eq!(size("m"), None);
    }

    #[test]
    fn proxy_urls() {
        let url = |tls, a: &str, uri: Option<&str>| ProxyUrl {
            tls,
            authority: a.into(),
            uri: uri.map(Into::into),
        };
        let cases = [
            ("http://app", Ok(url(false, "app", None))),
            ("http://app/", Ok(url(false, "app", Some("/")))),
            (
                "https://10.0.0.1:8443/x/",
                Ok(url(true, "10.0.0.1:8443", Some("/x/"))),
            ),
            (
                "http://app$request_uri",
                Ok(url(false, "app", Some("$request_uri"))),
            ),
            ("http://$backend", Ok(url(false, "$backend", None))),
            ("http://[::1]:9000", Ok(url(false, "[::1]:9000", None))),
        ];
        for (text, want) in cases {
            assert_eq!(proxy_url(text), want, "{text}");
        }
        assert!(proxy_url("http://unix:/tmp/s.sock").is_err());
        assert!(proxy_url("app").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(host_port("app", 80), ("app:80".into(), "app".into()));
        assert_eq!(
            host_port("127.0.0.1:32000", 80),
            ("127.0.0.1:32000".into(), "127.0.0.1:32000".into())
        );
        assert_eq!(host_port("h:80", 80), ("h:80".into(), "h".into()));
        assert_eq!(
            host_port("[::1]", 443),
            ("[::1]:443".into(), "[::1]".into())
        );
        let cases = [
            ("80", Ok("0.0.0.0:80")),
            ("*:8080", Ok("0.0.0.0:8080")),
            ("[::]:9000", Ok("[::]:9000")),
            ("127.0.0.1", Ok("127.0.0.1:80")),
            ("localhost:8080", Ok("localhost:8080")),
            ("[::1]", Ok("[::1]:80")),
        ];
        for (text, want) in cases {
            assert_eq!(
                listen_address(text).as_deref(),
                want.map_err(|e: &str| e.to_string()).as_deref(),
                "{text}"
            );
        }
        assert!(listen_address("unix:/run/x.sock").is_err());
        assert!(listen_address("99999").is_err());
    }

    #[test]
    fn variables_in_values() {
        assert_eq!(
            variables("https://$host$request_uri"),
            ["host", "request_uri"]
        );
        assert_eq!(variables("/x/${1}y$2"), ["1", "2"]);
        assert!(variables("plain $").is_empty());
    }
}
