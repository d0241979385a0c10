//! Where to connect and how: the https:// URL taken apart, the rustls
//! client configuration (one CA, ALPN `h2` or `http/1.1`), and a connect
//! that finishes the TLS handshake and checks what ALPN chose.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A TLS stream over TCP, blocking.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// The server every connection of a run goes to.
pub struct Endpoint {
    pub addr: SocketAddr,
    /// HOST:PORT as written: the `:authority` or `Host`.
    pub authority: String,
    pub path: String,
    /// One HTTP/1.1 WebSocket per connection (ALPN http/1.1), not HTTP/2.
    pub http1: bool,
    /// The longest any one read may block.
    pub timeout: Duration,
    name: ServerName<'static>,
    config: Arc<ClientConfig>,
}

impl Endpoint {
    pub fn new(url: &str, ca: &Path, http1: bool, timeout: Duration) -> Result<Self, String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("{url:?} is not an https:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let host = match authority.rfind(']') {
            Some(bracket) => authority[..bracket].trim_start_matches('['),
            None => authority.split(':').next().unwrap_or_default(),
        };
        let addr = authority
            .to_socket_addrs()
            .map_err(|err| format!("{authority}: {err} (a port is required)"))?
            .next()
            .ok_or_else(|| format!("{authority} resolves to no address"))?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|err| format!("{host:?} is not a server name: {err}"))?;
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|err| format!("--ca {}: {err}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|err| format!("--ca {}: {err}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|err| format!("--ca {}: {err}", ca.display()))?;
        }
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("TLS versions: {err}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![if http1 {
            b"http/1.1".to_vec()
        } else {
            b"h2".to_vec()
        }];
        Ok(Self {
            addr,
            authority: authority.to_owned(),
            path: path.to_owned(),
            http1,
            timeout,
            name,
            config: Arc::new(config),
        })
    }

    /// A TLS connection whose handshake is done and whose ALPN is the one
    /// offered.
    pub fn connect(&self) -> Result<Tls, String> {
        let tcp =
            TcpStream::connect(self.addr).map_err(|err| format!("connect {}: {err}", self.addr))?;
        tcp.set_nodelay(true)
            .and_then(|()| tcp.set_read_timeout(Some(self.timeout)))
            .map_err(|err| format!("socket options: {err}"))?;
        let conn = ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(|err| format!("TLS: {err}"))?;
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|err| format!("TLS handshake with {}: {err}", self.addr))?;
        }
        let want: &[u8] = if self.http1 { b"http/1.1" } else { b"h2" };
        match tls.conn.alpn_protocol() {
            Some(got) if got == want => Ok(tls),
            // A server without ALPN speaks HTTP/1.1.
            None if self.http1 => Ok(tls),
            got => Err(format!(
                "ALPN: offered {:?}, the server chose {:?}",
                String::from_utf8_lossy(want),
                got.map(String::from_utf8_lossy)
            )),
        }
    }
}
