//! Addresses as written → socket addresses: where to listen (`IP:PORT`,
//! `PORT`, or a host name for each address it resolves to) and the
//! upstream servers (`HOST:PORT` and `ws[s]://`/`http[s]://` URLs).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use crate::upstream::{Server, UpstreamTls};

/// Why a listen address is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ListenError {
    NotAnAddress,
    /// The host, and the resolver's reason.
    Unresolved(String, String),
}

impl ListenError {
    /// What is wrong with `text`, worded as what to change.
    pub fn about(&self, text: &str) -> String {
        match self {
            ListenError::NotAnAddress => format!(
                "{text:?} is not an address: use IP:PORT or HOST:PORT, \
                 e.g. 0.0.0.0:8080, [::]:8080 or localhost:8080"
            ),
            ListenError::Unresolved(host, why) => {
                format!("{text:?}: cannot resolve {host}: {why}")
            }
        }
    }
}

/// Where to accept clients: `IP:PORT`, a bare `PORT` (every IPv4
/// address), or `HOST:PORT`, which means every address the name resolves
/// to now, as nginx's `listen localhost:8080` does. A name's addresses
/// come back in the resolver's order, each once.
pub fn listen_addrs(text: &str) -> Result<Vec<SocketAddr>, ListenError> {
    listen_addrs_with(text, resolve)
}

/// How a host name becomes addresses: [`resolve`], or a stand-in in tests.
pub type Resolver = fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>;

/// The system's resolver (`getaddrinfo`), as `ToSocketAddrs` asks it.
pub fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

/// [`listen_addrs`], with names resolved by `resolver`.
pub fn listen_addrs_with(text: &str, resolver: Resolver) -> Result<Vec<SocketAddr>, ListenError> {
    if let Some(addr) = listen_addr(text) {
        return Ok(vec![addr]);
    }
    let (host, port) = text.rsplit_once(':').ok_or(ListenError::NotAnAddress)?;
    let port: u16 = port.parse().map_err(|_| ListenError::NotAnAddress)?;
    // A mistyped IP address ("300.1.1.1", "[::1") is not a name to look up.
    let ip_like =
        host.contains([':', '[', ']']) || host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if host.is_empty() || ip_like {
        return Err(ListenError::NotAnAddress);
    }
    let unresolved = |why: String| ListenError::Unresolved(host.to_string(), why);
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in resolver(host, port).map_err(|e| unresolved(e.to_string()))? {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(unresolved("it has no address".into()));
    }
    Ok(addrs)
}

/// `IP:PORT`, or a bare `PORT` meaning every IPv4 address.
pub fn listen_addr(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    text.trim_start_matches(':')
        .parse::<u16>()
        .ok()
        .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
}

/// An upstream written as `wss://` or `https://`: spoken to over TLS.
pub fn is_tls_upstream(text: &str) -> bool {
    text.starts_with("wss://") || text.starts_with("https://")
}

/// `HOST:PORT`, `ws://HOST[:PORT]` or `http://…` (port 80 by default), or
/// `wss://HOST[:PORT]` or `https://…` (port 443, over TLS with `tls`),
/// resolved once at startup; a name with several addresses adds each as a
/// server. TLS sends the host as SNI and verifies the certificate for it.
pub fn upstream_servers(
    text: &str,
    weight: u32,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Vec<Server>, String> {
    let bad = |why: &str| why.to_string();
    let (rest, default_port, secure) = match text.split_once("://") {
        None => (text, None, false),
        Some(("ws" | "http", rest)) => (rest, Some(80), false),
        Some(("wss" | "https", rest)) => (rest, Some(443), true),
        Some((scheme, _)) => {
            return Err(format!(
                "unknown scheme {scheme}://: use HOST:PORT, ws://, http://, wss:// or https://"
            ))
        }
    };
    let bare = rest.trim_end_matches('/');
    if bare.contains('/') {
        return Err(bad("an upstream is HOST:PORT without a path"));
    }
    // Without a port ("host", "[::1]") a scheme supplies one.
    let has_port = bare.rsplit_once(':').is_some_and(|(host, port)| {
        !port.contains(']') && (!host.contains(':') || host.ends_with(']'))
    });
    let with_port = match (has_port, default_port) {
        (false, Some(port)) => format!("{bare}:{port}"),
        _ => bare.to_string(),
    };
    let host = with_port
        .rsplit_once(':')
        .map_or(with_port.as_str(), |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let tls = match (secure, tls) {
        (false, _) => None,
        (true, None) => return Err(bad("no TLS client settings for a wss:// server")),
        (true, Some(config)) => Some(UpstreamTls {
            config: config.clone(),
            name: ServerName::try_from(host.to_string())
                .map_err(|e| format!("{host:?} cannot be a TLS server name: {e}"))?,
        }),
    };
    let server = |addr, name: String| Server {
        addr,
        name,
        weight,
        tls: tls.clone(),
        backup: false,
    };
    if let Ok(addr) = with_port.parse::<SocketAddr>() {
        return Ok(vec![server(addr, bare.to_string())]);
    }
    if with_port
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(bad("use HOST:PORT, e.g. 127.0.0.1:9000"));
    }
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve it: {e}")))?
        .collect();
    match addrs.len() {
        0 => Err(bad("the name resolves to no address")),
        1 => Ok(vec![server(addrs[0], bare.to_string())]),
        // Each address is a server of its own, and its own name: the hash
        // ring places servers by name.
        _ => Ok(addrs
            .into_iter()
            .map(|addr| server(addr, format!("{bare}={addr}")))
            .collect()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What `localhost` resolves to here, with `port`.
    pub(crate) fn localhost(port: u16) -> Vec<SocketAddr> {
        let mut addrs = Vec::new();
        for addr in ("localhost", port).to_socket_addrs().unwrap() {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        addrs
    }

    #[test]
    fn listen_addresses_table() {
        let ok: [(&str, Vec<SocketAddr>); 5] = [
            ("127.0.0.1:80", vec!["127.0.0.1:80".parse().unwrap()]),
            ("[::1]:443", vec!["[::1]:443".parse().unwrap()]),
            ("8080", vec!["0.0.0.0:8080".parse().unwrap()]),
            (":8080", vec!["0.0.0.0:8080".parse().unwrap()]),
            ("localhost:8185", localhost(8185)),
        ];
        for (text, want) in ok {
            assert_eq!(listen_addrs(text), Ok(want), "{text}");
        }
        assert!(localhost(8185).iter().all(|a| a.ip().is_loopback()));
        for text in [
            "localhost",
            "300.1.1.1:80",
            "1.2.3:80",
            "[::1:80",
            "::1:80x",
            ":",
            "localhost:99999",
            ":80:",
        ] {
            assert_eq!(listen_addrs(text), Err(ListenError::NotAnAddress), "{text}");
        }
        let err = listen_addrs("no-such-host.invalid:80").unwrap_err();
        assert!(
            matches!(&err, ListenError::Unresolved(host, _) if host == "no-such-host.invalid"),
            "{err:?}"
        );
        assert!(err
            .about("no-such-host.invalid:80")
            .starts_with("\"no-such-host.invalid:80\": cannot resolve no-such-host.invalid: "));
    }

    /// `dual.test` has an IPv4 and an IPv6 address, and says the first
    /// twice (a resolver may); every other name is unknown.
    pub(crate) fn dual_stack(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        match host {
            "dual.test" => Ok(["127.0.0.1", "::1", "127.0.0.1"]
                .iter()
                .map(|ip| SocketAddr::new(ip.parse().unwrap(), port))
                .collect()),
            _ => Err(std::io::Error::other("unknown name")),
        }
    }

    #[test]
    fn a_name_gives_each_of_its_addresses_once() {
        assert_eq!(
            listen_addrs_with("dual.test:8185", dual_stack),
            Ok(vec![
                "127.0.0.1:8185".parse().unwrap(),
                "[::1]:8185".parse().unwrap()
            ])
        );
        assert_eq!(
            listen_addrs_with("other.test:80", dual_stack),
            Err(ListenError::Unresolved(
                "other.test".into(),
                "unknown name".into()
            ))
        );
    }
}
