//! Certificate files: a PEM chain + key pair → a checked `CertifiedKey` and
//! the DNS names it answers; the set of them a listener serves; and the SNI
//! resolver that picks one per handshake and can be swapped on reload.

use super::TlsError;
use crate::acme::{AcmeSettings, ALPN_ACME_TLS, REGISTRY};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::InconsistentKeys;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

/// A certificate chain file (leaf first) and its private key file, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every certificate in a PEM file, in file order; none is an error.
pub(super) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

fn pem_error(path: &Path, error: pem::Error) -> TlsError {
    let path = path.into();
    match error {
        pem::Error::Io(source) => TlsError::Io { path, source },
        // Only `from_pem_file` (the key) reports this; an iterator over a
        // file without certificates is empty instead.
        pem::Error::NoItemsFound => TlsError::NoKey { path },
        other => TlsError::Pem {
            path,
            reason: other.to_string(),
        },
    }
}

/// Loads a chain and key, and checks the key belongs to the leaf.
pub(super) fn load_certified_key(
    files: &CertFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = read_certificates(&files.cert)?;
    let key_der = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem_error(&files.key, e))?;
    let key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::UnsupportedKey {
            path: files.key.clone(),
            reason: match e {
                rustls::Error::General(reason) => reason,
                other => other.to_string(),
            },
        })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // Every ring signing key reports its public key, so this means a
        // provider that cannot tell; there is nothing to compare.
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                key: files.key.clone(),
                cert: files.cert.clone(),
            })
        }
        Err(other) => Err(TlsError::BadCertificate {
            path: files.cert.clone(),
            reason: other.to_string(),
        }),
    }
}

/// The DNS names in a leaf certificate's subjectAltName, lowercased
/// ("*.example.com" included as written). The subject CN is not read: RFC
/// 6125 §6.4.4 and browsers ignore it when a SAN is present.
fn dns_names(path: &Path, leaf: &CertificateDer<'_>) -> Result<Vec<String>, TlsError> {
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|e| TlsError::BadCertificate {
        path: path.into(),
        reason: e.to_string(),
    })?;
    Ok(cert
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect())
}

/// The certificates one listener serves, indexed by name.
///
/// Two certificates claiming the same exact name (or the same wildcard):
/// the first in the configuration wins.
pub(super) struct CertSet {
    keys: Vec<Arc<CertifiedKey>>,
    /// Every name, in configuration order, each once.
    names: Vec<String>,
    /// Lowercased exact name → index into `keys`.
    exact: HashMap<String, usize>,
    /// "*.example.com" stored as "example.com" → index into `keys`.
    wildcard: HashMap<String, usize>,
}

impl CertSet {
    /// The certificate ACME keeps for `acme` (first, so it answers
    /// clients without SNI) and then `files`. Until storage holds an ACME
    /// certificate, a self-signed placeholder for its names stands in; one
    /// that is there but does not load is an error on a `reload` (the
    /// certificates in use stay: a reload may land between the new key and
    /// the new chain being written) and a placeholder at startup (the ACME
    /// thread says why and orders another).
    pub(super) fn load(
        files: &[CertFiles],
        acme: Option<&AcmeSettings>,
        reload: bool,
        provider: &CryptoProvider,
    ) -> Result<CertSet, TlsError> {
        if files.is_empty() && acme.is_none() {
            return Err(TlsError::NoCertificates);
        }
        let mut set = CertSet {
            keys: Vec::with_capacity(files.len() + 1),
            names: Vec::new(),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        };
        if let Some(acme) = acme {
            let stored = acme.files();
            let key = match load_certified_key(&stored, provider) {
                Ok(key) => key,
                Err(e) if reload && stored.cert.exists() => return Err(e),
                Err(_) => crate::acme::placeholder(&acme.names).map_err(|reason| {
                    TlsError::BadCertificate {
                        path: stored.cert.clone(),
                        reason: format!("cannot make a placeholder: {reason}"),
                    }
                })?,
            };
            let names = match dns_names(&stored.cert, &key.cert[0]) {
                Ok(names) => names,
                Err(_) => acme.names.clone(),
            };
            set.add(key, names);
        }
        for pair in files {
            let key = load_certified_key(pair, provider)?;
            let names = dns_names(&pair.cert, &key.cert[0])?;
            set.add(key, names);
        }
        Ok(set)
    }

    fn add(&mut self, key: CertifiedKey, names: Vec<String>) {
        let index = self.keys.len();
        for name in names {
            let slot = match name.strip_prefix("*.") {
                Some(suffix) => self.wildcard.entry(suffix.to_owned()),
                None => self.exact.entry(name.clone()),
            };
            slot.or_insert(index);
            if !self.names.contains(&name) {
                self.names.push(name);
            }
        }
        self.keys.push(Arc::new(key));
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn names(&self) -> &[String] {
        &self.names
    }

    /// Exact name (case-insensitive), then a `*.suffix` wildcard, then the
    /// first certificate. A TLS wildcard covers exactly one label (RFC 6125
    /// §6.4.3), so the only wildcard that can match "x.sub.b.test" is
    /// "*.sub.b.test": the longest match is the only one.
    fn choose(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let found = sni.and_then(|name| {
            let name = name.to_ascii_lowercase();
            self.exact.get(&name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        &self.keys[found.copied().unwrap_or(0)]
    }
}

impl fmt::Debug for CertSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertSet")
            .field("certificates", &self.keys.len())
            .field("names", &self.names)
            .finish()
    }
}

/// Picks a certificate by SNI from a set that `replace` swaps for new
/// handshakes (live connections keep the `CertifiedKey` they were given).
///
/// With `tls_alpn01`, a ClientHello offering ALPN `acme-tls/1` is an ACME
/// validator: it gets the RFC 8737 challenge certificate for its SNI while
/// one is being validated, and no certificate (a failed handshake)
/// otherwise; the worker closes such a connection once its handshake is
/// done.
#[derive(Debug)]
pub(super) struct SniResolver {
    set: RwLock<Arc<CertSet>>,
    tls_alpn01: bool,
}

impl SniResolver {
    pub(super) fn new(set: CertSet, tls_alpn01: bool) -> SniResolver {
        SniResolver {
            set: RwLock::new(Arc::new(set)),
            tls_alpn01,
        }
    }

    pub(super) fn current(&self) -> Arc<CertSet> {
        // A writer only swaps an Arc, so a poisoned lock still holds a whole set.
        Arc::clone(&self.set.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn replace(&self, set: CertSet) {
        *self.set.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if self.tls_alpn01 {
            let mut offered = hello.alpn().into_iter().flatten();
            if offered.any(|p| p == ALPN_ACME_TLS) {
                return REGISTRY.tls_alpn01(hello.server_name()?);
            }
        }
        Some(Arc::clone(self.current().choose(hello.server_name())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_support::{Ca, KeyAlg, TempDir};
    use rustls::crypto::ring;

    fn load(files: &CertFiles) -> Result<CertifiedKey, TlsError> {
        load_certified_key(files, &ring::default_provider())
    }

    #[test]
    fn key_types_load() {
        let dir = TempDir::new("keys");
        let ca = Ca::new("keys CA");
        for alg in [KeyAlg::P256, KeyAlg::P384, KeyAlg::Ed25519, KeyAlg::Rsa] {
            let files = ca.write_leaf(&dir, &format!("{alg:?}"), &["k.test"], alg);
            let key = load(&files).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            assert_eq!(key.cert.len(), 1, "{alg:?}");
        }
    }

    #[test]
    fn load_errors() {
        let dir = TempDir::new("errors");
        let ca = Ca::new("errors CA");
        let a = ca.write_leaf(&dir, "a", &["a.test"], KeyAlg::P256);
        let b = ca.write_leaf(&dir, "b", &["b.test"], KeyAlg::P256);
        let empty = dir.write("empty.pem", "");
        let junk = dir.write("junk.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
        let missing = dir.path("missing.pem");
        // An X25519 key (made by `openssl genpkey -algorithm X25519`): a
        // key-exchange key, which cannot sign.
        let x25519 = dir.write(
            "x25519.key",
            "-----BEGIN PRIVATE KEY-----\n\
             MC4CAQAwBQYDK2VuBCIEIFApIJR3E3gnqGghhFPsHio9w2bKGLT8DPYebK5HkRx2\n\
             -----END PRIVATE KEY-----\n",
        );
        let pair = |cert: &PathBuf, key: &PathBuf| CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        };
        let show = |p: &PathBuf| p.display().to_string();
        let cases: Vec<(CertFiles, String)> = vec![
            (
                pair(&a.cert, &b.key),
                format!(
                    "{}: does not match the certificate in {}",
                    show(&b.key),
                    show(&a.cert)
                ),
            ),
            (
                pair(&empty, &a.key),
                format!(
                    "{}: no certificate found (expected a PEM \"BEGIN CERTIFICATE\" block)",
                    show(&empty)
                ),
            ),
            (
                pair(&a.key, &a.key),
                format!("{}: no certificate found", show(&a.key)),
            ),
            (
                pair(&junk, &a.key),
                format!("{}: malformed PEM", show(&junk)),
            ),
            (
                pair(&missing, &a.key),
                format!("{}: cannot read: ", show(&missing)),
            ),
            (
                pair(&a.cert, &missing),
                format!("{}: cannot read: ", show(&missing)),
            ),
            (
                pair(&a.cert, &empty),
                format!(
                    "{}: no private key found (expected PKCS#8, RSA or EC PEM)",
                    show(&empty)
                ),
            ),
            (
                pair(&a.cert, &a.cert),
                format!("{}: no private key found", show(&a.cert)),
            ),
            (
                pair(&a.cert, &x25519),
                format!("{}: unsupported key type: ", show(&x25519)),
            ),
        ];
        for (files, want) in cases {
            let err = load(&files).map(|_| ()).unwrap_err().to_string();
            assert!(
                err.starts_with(&want),
                "{files:?}\n got: {err}\nwant: {want}"
            );
        }
    }

    #[test]
    fn choose_by_name() {
        let dir = TempDir::new("choose");
        let ca = Ca::new("choose CA");
        let files = vec![
            ca.write_leaf(&dir, "a", &["a.test", "*.a.test"], KeyAlg::P256),
            ca.write_leaf(&dir, "b", &["b.test", "*.b.test", "a.test"], KeyAlg::P256),
            ca.write_leaf(&dir, "c", &["c.test", "*.sub.b.test"], KeyAlg::Ed25519),
        ];
        let set = CertSet::load(&files, None, false, &ring::default_provider()).unwrap();
        let index = |sni: Option<&str>| {
            let chosen = set.choose(sni);
            set.keys
                .iter()
                .position(|k| Arc::ptr_eq(k, chosen))
                .unwrap()
        };
        let cases: &[(Option<&str>, usize)] = &[
            (Some("a.test"), 0),
            (Some("A.Test"), 0),
            (Some("b.test"), 1),
            (Some("x.b.test"), 1),
            (Some("x.sub.b.test"), 2),
            (Some("sub.b.test"), 1),
            (Some("y.x.b.test"), 0),
            (Some("c.test"), 2),
            (Some("x.a.test"), 0),
            (Some("unknown.test"), 0),
            (Some("test"), 0),
            (None, 0),
        ];
        for (sni, want) in cases {
            assert_eq!(index(*sni), *want, "{sni:?}");
        }
        assert_eq!(
            set.names(),
            [
                "a.test",
                "*.a.test",
                "b.test",
                "*.b.test",
                "c.test",
                "*.sub.b.test"
            ]
        );
    }

    #[test]
    fn no_certificates() {
        let err = CertSet::load(&[], None, false, &ring::default_provider()).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificates), "{err}");
    }
}
