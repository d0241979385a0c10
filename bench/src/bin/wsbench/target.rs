//! What the load modes connect to: a parsed `ws://` or `wss://`
//! `HOST:PORT/PATH` URL and the source addresses connections are spread over.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// Default port of the `ws` scheme (RFC 6455 §3).
const WS_DEFAULT_PORT: u16 = 80;

/// Default port of the `wss` scheme (RFC 6455 §3).
const WSS_DEFAULT_PORT: u16 = 443;

/// Largest `--src-ips`: source addresses are 127.0.0.1 ..= 127.0.0.250.
pub const MAX_SOURCE_IPS: u32 = 250;

/// A resolved `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As given on the command line, for reports.
    pub url: String,
    pub addr: SocketAddr,
    /// The `Host` header: the URL's authority as written.
    pub host: String,
    /// Path and query, at least `/`.
    pub path: String,
    /// `wss://`: the connection runs over TLS.
    pub tls: bool,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Parses and resolves `ws[s]://HOST[:PORT][/PATH]` (a clap value parser).
pub fn parse_url(url: &str) -> Result<Target, String> {
    let (rest, tls) = if let Some(rest) = url.strip_prefix("ws://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("wss://") {
        (rest, true)
    } else {
        return Err(format!(
            "{url:?} is not a ws:// or wss:// URL (expected ws://HOST:PORT/PATH)"
        ));
    };
    let default_port = if tls {
        WSS_DEFAULT_PORT
    } else {
        WS_DEFAULT_PORT
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_owned()),
    };
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    let resolved = if has_port {
        authority.to_socket_addrs()
    } else {
        (
            authority.trim_start_matches('[').trim_end_matches(']'),
            default_port,
        )
            .to_socket_addrs()
    };
    let addr = resolved
        .map_err(|err| format!("cannot resolve {authority:?}: {err}"))?
        .next()
        .ok_or_else(|| format!("{authority:?} resolves to no address"))?;
    Ok(Target {
        url: url.to_owned(),
        addr,
        host: authority.to_owned(),
        path,
        tls,
    })
}

/// The source addresses client sockets bind before connecting, round-robin,
/// so that many connections to one target do not exhaust one address's
/// ephemeral ports (about 28k on a default Linux port range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sources {
    count: u32,
}

impl Sources {
    /// `count` addresses 127.0.0.1 ..= 127.0.0.count; 1 means "let the
    /// kernel choose" (no bind). More than one needs an IPv4 loopback target.
    pub fn new(count: u32, target: &Target) -> Result<Sources, String> {
        if count == 0 || count > MAX_SOURCE_IPS {
            return Err(format!("--src-ips must be between 1 and {MAX_SOURCE_IPS}"));
        }
        let loopback_v4 = matches!(target.addr.ip(), IpAddr::V4(ip) if ip.is_loopback());
        if count > 1 && !loopback_v4 {
            return Err(format!(
                "--src-ips {count} binds 127.0.0.x source addresses, so the target must be \
                 an IPv4 loopback address, not {}",
                target.addr.ip()
            ));
        }
        Ok(Sources { count })
    }

    /// The source address for the connection with global index `index`.
    pub fn pick(&self, index: usize) -> Option<IpAddr> {
        (self.count > 1).then(|| {
            let last_octet = 1 + (index as u64 % u64::from(self.count)) as u8;
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("ws://127.0.0.1:9000/chat?room=1").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:9000", "/chat?room=1")
        );

        let t = parse_url("ws://127.0.0.1").unwrap();
        assert_eq!((t.addr.port(), t.path.as_str()), (80, "/"));

        let t = parse_url("ws://localhost:8080?x").unwrap();
        assert_eq!((t.addr.port(), t.path.as_str()), (8080, "/?x"));
        assert!(t.addr.ip().is_loopback());

        let t = parse_url("ws://[::1]:7000/").unwrap();
        assert_eq!(t.addr, "[::1]:7000".parse().unwrap());
        assert!(!t.tls);

        let t = parse_url("wss://127.0.0.1/x").unwrap();
        assert_eq!((t.addr.port(), t.path.as_str(), t.tls), (443, "/x", true));

        for bad in [
            "http://x/",
            "wss:///",
            "ws:///path",
            "ws://127.0.0.1:notaport/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sources_rotate_over_loopback() {
        let target = parse_url("ws://127.0.0.1:9000/").unwrap();
        let sources = Sources::new(3, &target).unwrap();
        let picked: Vec<_> = (0..4)
            .map(|i| sources.pick(i).unwrap().to_string())
            .collect();
        assert_eq!(picked, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]);
        assert_eq!(Sources::new(1, &target).unwrap().pick(5), None);
        assert!(Sources::new(0, &target).is_err());
        let v6 = parse_url("ws://[::1]:9000/").unwrap();
        assert!(Sources::new(2, &v6).is_err());
    }
}
