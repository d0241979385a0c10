//! TLS clients for the integration tests: blocking rustls streams that
//! trust one CA (a test's own, or the examples' demo CA).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{connect, ws};

pub type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// A client trusting only the CA certificates in `ca_pem`, offering
/// `versions` and ALPN http/1.1.
pub fn client_config(
    ca_pem: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A client trusting the examples' demo CA (`examples/certs/ca.pem`).
pub fn demo_client() -> Arc<ClientConfig> {
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/certs/ca.pem");
    let pem = std::fs::read(ca).unwrap();
    Arc::new(client_config(
        &pem,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    ))
}

/// A TLS connection to `addr` asking for (and verifying) `name`, with the
/// handshake done.
pub fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> io::Result<TlsClient> {
    let tcp = connect(addr);
    let name = ServerName::try_from(name.to_string()).map_err(io::Error::other)?;
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Sends `text` over TLS to `addr` as `name` (demo CA) and reads the whole
/// answer, which must end with `close_notify`: (head, body).
pub fn tls_request(addr: SocketAddr, name: &str, text: &str) -> (String, Vec<u8>) {
    let mut stream = tls_connect(addr, demo_client(), name).expect("TLS handshake");
    stream.write_all(text.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut all = Vec::new();
    stream
        .read_to_end(&mut all)
        .expect("the answer, then close_notify");
    let end = ws::find_head_end(&all)
        .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(&all)));
    (
        String::from_utf8(all[..end].to_vec()).unwrap(),
        all[end..].to_vec(),
    )
}
