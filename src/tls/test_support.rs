//! Test helpers for the TLS modules: a temporary directory, an rcgen CA that
//! writes leaf certificate/key files, and an in-memory handshake that pumps
//! a client and a server connection through byte vectors (no sockets).

use super::{upstream_config, CertFiles, UpstreamSettings};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ClientConnection, ConnectionCommon, ServerConnection, SideData};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Round trips after which a handshake still moving bytes is a bug: a full
/// TLS 1.2 handshake takes 2, and TLS 1.3 tickets one more.
const MAX_ROUND_TRIPS: usize = 16;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("wsproxy-tls-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Clone, Copy, Debug)]
pub enum KeyAlg {
    P256,
    P384,
    Ed25519,
    /// The checked-in tests/data/tls/rsa.key: rcgen's ring backend cannot
    /// generate RSA keys (scripts/make-test-rsa-key.sh makes a new one).
    Rsa,
}

impl KeyAlg {
    fn generate(self) -> KeyPair {
        match self {
            KeyAlg::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyAlg::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyAlg::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
            KeyAlg::Rsa => KeyPair::from_pem(include_str!("../../tests/data/tls/rsa.key")),
        }
        .unwrap()
    }
}

/// A self-signed CA that signs leaf certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// Writes `{stem}.pem` (the leaf for `names`) and `{stem}.key` in `dir`.
    pub fn write_leaf(&self, dir: &TempDir, stem: &str, names: &[&str], alg: KeyAlg) -> CertFiles {
        let key = alg.generate();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        CertFiles {
            cert: dir.write(&format!("{stem}.pem"), &cert.pem()),
            key: dir.write(&format!("{stem}.key"), &key.serialize_pem()),
        }
    }

    /// Whether the first certificate in `pem` is `der`.
    pub fn pem_has(pem: &str, der: &[u8]) -> bool {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            == der
    }
}

/// An upstream `ClientConfig` trusting `ca`, after `tweak` edits the settings.
pub fn client_config(ca: &Ca, tweak: impl FnOnce(&mut UpstreamSettings)) -> Arc<ClientConfig> {
    let dir = TempDir::new("client");
    let mut settings = UpstreamSettings {
        ca: Some(dir.write("ca.pem", &ca.pem)),
        ..UpstreamSettings::default()
    };
    tweak(&mut settings);
    upstream_config(&settings).unwrap()
}

/// Pumps both sides until neither has anything to send; the first error
/// either side reports.
pub fn handshake(c: &mut ClientConnection, s: &mut ServerConnection) -> Result<(), rustls::Error> {
    for _ in 0..MAX_ROUND_TRIPS {
        let sent = transfer(&mut **c, &mut **s)?;
        let answered = transfer(&mut **s, &mut **c)?;
        if !sent && !answered {
            return match c.is_handshaking() || s.is_handshaking() {
                true => Err(rustls::Error::General("handshake stalled".into())),
                false => Ok(()),
            };
        }
    }
    panic!("handshake still moving bytes after {MAX_ROUND_TRIPS} round trips")
}

/// Moves everything `from` wants to write into `to`; whether anything moved.
fn transfer<A: SideData, B: SideData>(
    from: &mut ConnectionCommon<A>,
    to: &mut ConnectionCommon<B>,
) -> Result<bool, rustls::Error> {
    let mut bytes = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut bytes).unwrap();
    }
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets()?;
    }
    Ok(!bytes.is_empty())
}

/// The leaf certificate the server presented to `c`.
pub fn peer_cert(c: &ClientConnection) -> Vec<u8> {
    c.peer_certificates().unwrap()[0].to_vec()
}
