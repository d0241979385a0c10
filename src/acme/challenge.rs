//! What the ACME thread shares with the workers, process-wide: the
//! challenge answers being validated right now (HTTP-01 key authorizations
//! by token, TLS-ALPN-01 certificates by name), and the figures the
//! metrics page shows (certificate expiry per name, orders by outcome).
//! Also the certificates made here rather than issued: the RFC 8737
//! challenge certificate and the self-signed placeholder.
//!
//! It is a process-wide registry, not part of `Config`, because the ACME
//! thread outlives configuration reloads. Workers read it only for a
//! request under `/.well-known/acme-challenge/` on a plaintext listener or
//! a ClientHello offering `acme-tls/1`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use super::client::{ChallengeKind, Respond};
use super::jws::sha256;

/// RFC 8555 §8.3: where HTTP-01 answers are fetched from.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// How an order ended, for `wsproxy_acme_orders_total{outcome}`.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    Issued,
    /// A challenge failed (the CA could not validate a name).
    Invalid,
    RateLimited,
    /// The CA could not be reached: no order was made.
    Unreached,
    /// Anything else: the CA refused otherwise, or could not be reached,
    /// or storage failed.
    Failed,
}

const OUTCOMES: [(Outcome, &str); 5] = [
    (Outcome::Issued, "issued"),
    (Outcome::Invalid, "invalid"),
    (Outcome::RateLimited, "rate_limited"),
    (Outcome::Unreached, "unreached"),
    (Outcome::Failed, "failed"),
];

#[derive(Default)]
pub struct Registry {
    /// HTTP-01: token → key authorization.
    tokens: RwLock<HashMap<String, String>>,
    /// TLS-ALPN-01: lowercased name → its challenge certificate.
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// Name → its certificate's notAfter, UNIX seconds.
    expiry: Mutex<BTreeMap<String, u64>>,
    orders: [AtomicU64; 5],
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// The one registry.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

impl Registry {
    /// The key authorization for an HTTP-01 request path, if a challenge
    /// with that token is being validated.
    pub fn http01(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        tokens.get(token).cloned()
    }

    /// The TLS-ALPN-01 certificate for `name`, if one is being validated.
    pub fn tls_alpn01(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let alpn = self.alpn.read().unwrap_or_else(PoisonError::into_inner);
        alpn.get(&name.to_ascii_lowercase()).cloned()
    }

    pub fn set_expiry(&self, names: &[String], not_after: u64) {
        let mut expiry = self.expiry.lock().unwrap_or_else(PoisonError::into_inner);
        for name in names {
            expiry.insert(name.clone(), not_after);
        }
    }

    pub fn count(&self, outcome: Outcome) {
        self.orders[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// `wsproxy_certificate_expiry_seconds` and `wsproxy_acme_orders_total`,
    /// in Prometheus text.
    pub fn render(&self, out: &mut String, now_unix: u64) {
        let expiry = self.expiry.lock().unwrap_or_else(PoisonError::into_inner);
        if !expiry.is_empty() {
            let name = "wsproxy_certificate_expiry_seconds";
            crate::metrics::header(
                out,
                name,
                "gauge",
                "Seconds until the ACME certificate for this name expires.",
            );
            for (host, not_after) in expiry.iter() {
                let left = not_after.saturating_sub(now_unix);
                let _ = writeln!(
                    out,
                    "{name}{{name=\"{}\"}} {left}",
                    crate::metrics::label(host)
                );
            }
        }
        let name = "wsproxy_acme_orders_total";
        crate::metrics::header(out, name, "counter", "ACME orders, by how they ended (unreached: the CA could not be reached, no order made).");
        for (outcome, label) in OUTCOMES {
            let n = self.orders[outcome as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{outcome=\"{label}\"}} {n}");
        }
    }
}

impl Respond for Registry {
    fn publish(
        &self,
        kind: ChallengeKind,
        name: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), String> {
        match kind {
            ChallengeKind::Http01 => {
                let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
                tokens.insert(token.to_owned(), key_authorization.to_owned());
            }
            ChallengeKind::TlsAlpn01 => {
                let cert = tls_alpn01_certificate(name, key_authorization)?;
                let mut alpn = self.alpn.write().unwrap_or_else(PoisonError::into_inner);
                alpn.insert(name.to_ascii_lowercase(), Arc::new(cert));
            }
        }
        Ok(())
    }

    fn withdraw(&self, kind: ChallengeKind, name: &str, token: &str) {
        match kind {
            ChallengeKind::Http01 => {
                let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
                tokens.remove(token);
            }
            ChallengeKind::TlsAlpn01 => {
                let mut alpn = self.alpn.write().unwrap_or_else(PoisonError::into_inner);
                alpn.remove(&name.to_ascii_lowercase());
            }
        }
    }
}

/// A self-signed certificate for `names`, with `extensions`, as rustls
/// serves it.
fn self_signed(names: &[String], extensions: Vec<CustomExtension>) -> Result<CertifiedKey, String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
    params.custom_extensions = extensions;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

/// RFC 8737 §3: a certificate for `name` only, carrying the critical
/// acmeIdentifier extension (id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31)
/// with the SHA-256 digest of the key authorization.
pub fn tls_alpn01_certificate(name: &str, key_authorization: &str) -> Result<CertifiedKey, String> {
    let digest = sha256(key_authorization.as_bytes());
    self_signed(
        &[name.to_owned()],
        vec![CustomExtension::new_acme_identifier(&digest)],
    )
    .map_err(|e| format!("cannot make the tls-alpn-01 certificate for {name}: {e}"))
}

/// What a TLS listener serves for `names` until the CA has issued their
/// certificate: self-signed, so clients see a certificate error rather
/// than a handshake failure.
pub fn placeholder(names: &[String]) -> Result<CertifiedKey, String> {
    self_signed(names, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_what_is_published() {
        let registry = Registry::default();
        let path = format!("{HTTP01_PREFIX}tok1");
        assert_eq!(registry.http01(&path), None);
        registry
            .publish(ChallengeKind::Http01, "a.test", "tok1", "tok1.thumb")
            .unwrap();
        assert_eq!(registry.http01(&path).as_deref(), Some("tok1.thumb"));
        assert_eq!(registry.http01("/tok1"), None);
        assert_eq!(registry.http01(&format!("{HTTP01_PREFIX}tok2")), None);
        registry.withdraw(ChallengeKind::Http01, "a.test", "tok1");
        assert_eq!(registry.http01(&path), None);

        registry
            .publish(ChallengeKind::TlsAlpn01, "A.test", "t", "t.thumb")
            .unwrap();
        let cert = registry.tls_alpn01("a.TEST").expect("published");
        let der = cert.cert[0].as_ref();
        // The extension's OID (1.3.6.1.5.5.7.1.31), critical, and the digest.
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let at = der
            .windows(oid.len())
            .position(|w| w == oid)
            .expect("acmeIdentifier");
        let after = &der[at + oid.len()..];
        assert_eq!(&after[..3], &[0x01, 0x01, 0xff], "critical");
        let digest = sha256(b"t.thumb");
        assert!(der.windows(32).any(|w| w == digest));
        registry.withdraw(ChallengeKind::TlsAlpn01, "a.test", "t");
        assert!(registry.tls_alpn01("a.test").is_none());
    }

    #[test]
    fn metrics_text() {
        let registry = Registry::default();
        registry.set_expiry(&["a.test".into()], 1_000);
        registry.count(Outcome::Issued);
        registry.count(Outcome::Invalid);
        let mut out = String::new();
        registry.render(&mut out, 400);
        assert!(
            out.contains("wsproxy_certificate_expiry_seconds{name=\"a.test\"} 600\n"),
            "{out}"
        );
        assert!(
            out.contains("wsproxy_acme_orders_total{outcome=\"issued\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("wsproxy_acme_orders_total{outcome=\"invalid\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("wsproxy_acme_orders_total{outcome=\"failed\"} 0\n"),
            "{out}"
        );
    }
}
