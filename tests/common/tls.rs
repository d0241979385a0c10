//! TLS clients for the integration tests: blocking rustls streams that
//! trust one CA (a test's own, or the examples' demo CA).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::connect;

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

/// Sends `text` over TLS to `addr` as `name` (demo CA) and reads the
/// answer by its framing: (head, body).
pub fn tls_request(addr: SocketAddr, name: &str, text: &str) -> (String, Vec<u8>) {
    let mut stream = tls_connect(addr, demo_client(), name).expect("TLS handshake");
    stream.write_all(text.as_bytes()).unwrap();
    stream.flush().unwrap();
    super::Messages::new(&mut stream).response(text.starts_with("HEAD "))
}

/// A TLS 1.2 ClientHello naming `sni` in its server_name extension, as
/// bytes on the wire. rustls' client only sends DNS names there, but
/// OpenSSL clients send whatever host the URL has: `[::1]` (brackets and
/// all) for `wss://[::1]:8443/`. It offers ECDHE with AES-GCM and
/// ChaCha20 (RFC 5289, RFC 7905) over P-256 or X25519, so a TLS 1.2 server
/// answers with its certificate in the clear.
pub fn client_hello_tls12(sni: &[u8]) -> Vec<u8> {
    fn u16_len(bytes: &[u8]) -> [u8; 2] {
        u16::try_from(bytes.len()).unwrap().to_be_bytes()
    }
    fn extension(kind: u16, body: &[u8]) -> Vec<u8> {
        [&kind.to_be_bytes()[..], &u16_len(body), body].concat()
    }
    let host_name = [&[0u8][..], &u16_len(sni), sni].concat(); // name_type host_name (0)
    let extensions = [
        extension(0x0000, &[&u16_len(&host_name)[..], &host_name].concat()), // server_name
        extension(0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]), // supported_groups: x25519, secp256r1
        extension(0x000b, &[1, 0]),                         // ec_point_formats: uncompressed
        // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256, ed25519
        extension(
            0x000d,
            &[0, 8, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x08, 0x07],
        ),
        extension(0x0017, &[]), // extended_master_secret
    ]
    .concat();
    let suites = [
        0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x2c, 0xc0, 0x30, 0xcc, 0xa9, 0xcc, 0xa8, // ECDHE AEAD
        0x00, 0xff, // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
    ];
    let body = [
        &[0x03, 0x03][..], // TLS 1.2
        &[0x42; 32],       // random: nothing here depends on it
        &[0],              // no session id
        &u16_len(&suites),
        &suites,
        &[1, 0], // compression: null only
        &u16_len(&extensions),
        &extensions,
    ]
    .concat();
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let handshake = [&[1u8][..], &len[1..], &body].concat(); // client_hello (1)
    [&[0x16, 0x03, 0x01][..], &u16_len(&handshake), &handshake].concat()
}

/// What a server answered a ClientHello with.
#[derive(Debug, PartialEq, Eq)]
pub enum HelloAnswer {
    /// The first certificate of its Certificate message (the leaf), DER.
    Certificate(Vec<u8>),
    /// A fatal alert, by its description (RFC 8446 §6: 47 is
    /// illegal_parameter).
    Alert(u8),
}

/// Reads records until the server's Certificate message (TLS 1.2 sends it
/// unencrypted) or an alert.
pub fn read_hello_answer(stream: &mut TcpStream) -> io::Result<HelloAnswer> {
    let mut handshake = Vec::new();
    loop {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header)?;
        let mut record = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
        stream.read_exact(&mut record)?;
        match header[0] {
            21 if record.len() == 2 => return Ok(HelloAnswer::Alert(record[1])),
            22 => handshake.extend_from_slice(&record),
            other => return Err(io::Error::other(format!("unexpected record type {other}"))),
        }
        // Handshake messages: type (1), length (3), body.
        let mut at = 0;
        while handshake.len() >= at + 4 {
            let len =
                u32::from_be_bytes([0, handshake[at + 1], handshake[at + 2], handshake[at + 3]]);
            let end = at + 4 + len as usize;
            if handshake.len() < end {
                break;
            }
            if handshake[at] == 11 {
                // certificate (11): a 3-byte list length, then each
                // certificate as a 3-byte length and its DER.
                let list = &handshake[at + 4..end];
                let first = u32::from_be_bytes([0, list[3], list[4], list[5]]) as usize;
                return Ok(HelloAnswer::Certificate(list[6..6 + first].to_vec()));
            }
            at = end;
        }
    }
}
