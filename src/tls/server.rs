//! A listener's TLS: `ServerSettings` → one rustls `ServerConfig` shared by
//! every worker thread, with SNI certificate selection, session resumption,
//! and certificates that `reload` swaps without touching live connections.

use super::certs::{CertFiles, CertSet, SniResolver};
use super::{provider, version_name, TlsError, ALPN_H2, ALPN_HTTP10, ALPN_HTTP11};
use crate::acme::{AcmeSettings, ChallengeKind, ALPN_ACME_TLS};
use rustls::crypto::{ring, CryptoProvider};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache};
use rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use std::fmt;
use std::sync::Arc;

/// Server-side session cache entries per listener. An entry is about 300
/// bytes (a 32-byte session ID kept twice, a ~110-byte encoded session, three
/// allocations), so a full cache costs about 3 MiB, and rustls reserves
/// about 1 MiB of it up front. With tickets on, TLS 1.3 clients resume
/// from tickets and never touch it; it serves TLS 1.2 clients that resume by
/// session ID, and about 10 k of them reconnecting at once (a redeploy of a
/// client fleet) still resume instead of paying a full handshake each.
pub const DEFAULT_SESSION_CACHE: usize = 10_240;

/// TLS 1.3 tickets sent after each full handshake. A WebSocket client holds
/// one long-lived connection and reconnects one at a time, using one ticket
/// (they are single-use) and getting a fresh one from the new connection;
/// rustls' default of 2 would, with stateful resumption, spend a cache entry
/// on a ticket that is never used.
const TLS13_TICKETS: usize = 1;

/// What a listener's TLS is built from.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Chain + key pairs; the first answers clients without SNI or with a
    /// name no certificate has.
    pub certificates: Vec<CertFiles>,
    /// Empty: TLS 1.2 and 1.3.
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// Empty: the provider's defaults, in its order.
    pub ciphers: Vec<SupportedCipherSuite>,
    /// Server-side session cache entries (TLS 1.2 session IDs, TLS 1.3
    /// stateful resumption); 0 turns it off.
    pub session_cache: usize,
    /// Stateless session tickets (TLS 1.2 tickets and TLS 1.3 tickets),
    /// rotated by rustls' ring Ticketer (new key every 6 h, 12 h lifetime).
    pub tickets: bool,
    /// A certificate the proxy gets from an ACME CA (before `certificates`).
    pub acme: Option<AcmeSettings>,
    /// Offer HTTP/2 (ALPN `h2`, first).
    pub http2: bool,
}

impl ServerSettings {
    /// Both versions, the default ciphers, `DEFAULT_SESSION_CACHE`, tickets on.
    pub fn new(certificates: Vec<CertFiles>) -> ServerSettings {
        ServerSettings {
            certificates,
            versions: Vec::new(),
            ciphers: Vec::new(),
            session_cache: DEFAULT_SESSION_CACHE,
            tickets: true,
            acme: None,
            http2: false,
        }
    }
}

/// A listener's TLS: one rustls `ServerConfig` shared by all worker
/// threads, whose certificates can be swapped. A clone shares all of it
/// (certificates, session cache, ticket keys): the addresses a listener's
/// host name resolves to serve as one.
#[derive(Clone)]
pub struct ServerTls {
    certificates: Vec<CertFiles>,
    acme: Option<AcmeSettings>,
    provider: Arc<CryptoProvider>,
    resolver: Arc<SniResolver>,
    config: Arc<ServerConfig>,
}

impl ServerTls {
    pub fn load(settings: ServerSettings) -> Result<ServerTls, TlsError> {
        let provider = Arc::new(provider(&settings.ciphers));
        let versions = match settings.versions.as_slice() {
            [] => rustls::DEFAULT_VERSIONS,
            chosen => chosen,
        };
        for version in versions {
            if !provider
                .cipher_suites
                .iter()
                .any(|suite| suite.version().version == version.version)
            {
                return Err(TlsError::NoCipherForVersion {
                    version: version_name(version),
                });
            }
        }
        let tls_alpn01 = settings
            .acme
            .as_ref()
            .is_some_and(|a| a.challenge == ChallengeKind::TlsAlpn01);
        let resolver = Arc::new(SniResolver::new(
            CertSet::load(
                &settings.certificates,
                settings.acme.as_ref(),
                false,
                &provider,
            )?,
            tls_alpn01,
        ));
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(|source| TlsError::Rustls {
                context: "TLS protocols and ciphers",
                source,
            })?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec(), ALPN_HTTP10.to_vec()];
        if settings.http2 {
            // rustls picks by the server's order: h2 wherever it is offered.
            config.alpn_protocols.insert(0, ALPN_H2.to_vec());
        }
        if tls_alpn01 {
            // Last: a client offering http/1.1 too still gets http/1.1.
            config.alpn_protocols.push(ALPN_ACME_TLS.to_vec());
        }
        config.session_storage = match settings.session_cache {
            0 => Arc::new(NoServerSessionStorage {}),
            entries => ServerSessionMemoryCache::new(entries),
        };
        if settings.tickets {
            config.ticketer = ring::Ticketer::new().map_err(|source| TlsError::Rustls {
                context: "creating session ticket keys",
                source,
            })?;
        }
        // With neither tickets nor a cache, nothing could resume from a ticket.
        let resumable = settings.tickets || settings.session_cache > 0;
        config.send_tls13_tickets = if resumable { TLS13_TICKETS } else { 0 };
        Ok(ServerTls {
            certificates: settings.certificates,
            acme: settings.acme,
            provider,
            resolver,
            config: Arc::new(config),
        })
    }

    /// The config every new handshake uses (clone the Arc per accepted
    /// connection).
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Re-reads every certificate and key file. Ok: new handshakes use them
    /// (live connections keep theirs), and the session cache and ticket keys
    /// survive. Err: the old certificates stay. Returns the count loaded.
    pub fn reload(&self) -> Result<usize, TlsError> {
        let set = CertSet::load(&self.certificates, self.acme.as_ref(), true, &self.provider)?;
        let count = set.len();
        self.resolver.replace(set);
        Ok(count)
    }

    /// The certificate an ACME CA provides for this listener, if any.
    pub fn acme(&self) -> Option<&AcmeSettings> {
        self.acme.as_ref()
    }

    /// The names the certificates answer, in configuration order (for a
    /// startup log line), e.g. ["example.com", "*.example.com"].
    pub fn names(&self) -> Vec<String> {
        self.resolver.current().names().to_vec()
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("certificates", &self.certificates)
            .field("names", &self.names())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_support::{client_config, handshake, peer_cert, Ca, KeyAlg, TempDir};
    use crate::tls::{parse_cipher, parse_version};
    use rustls::client::Tls12Resumption;
    use rustls::{ClientConnection, HandshakeKind, ServerConnection};

    /// One full in-memory handshake; the leaf the client saw and the kind.
    fn connect(
        tls: &ServerTls,
        client: &Arc<rustls::ClientConfig>,
        sni: &str,
    ) -> Result<(Vec<u8>, Option<HandshakeKind>), rustls::Error> {
        let name = crate::tls::server_name(sni).unwrap();
        let mut c = ClientConnection::new(Arc::clone(client), name)?;
        let mut s = ServerConnection::new(Arc::clone(tls.config()))?;
        handshake(&mut c, &mut s)?;
        assert_eq!(c.alpn_protocol(), Some(ALPN_HTTP11));
        assert_eq!(s.alpn_protocol(), Some(ALPN_HTTP11));
        Ok((peer_cert(&c), c.handshake_kind()))
    }

    #[test]
    fn alpn_prefers_http_1_1_and_takes_http_1_0_alone() {
        let dir = TempDir::new("alpn");
        let ca = Ca::new("alpn CA");
        let leaf = ca.write_leaf(&dir, "a", &["a.test"], KeyAlg::P256);
        let tls = ServerTls::load(ServerSettings::new(vec![leaf])).unwrap();
        for (offered, agreed) in [
            (vec![b"http/1.0".to_vec()], Some(ALPN_HTTP10)),
            (
                vec![b"http/1.0".to_vec(), b"http/1.1".to_vec()],
                Some(ALPN_HTTP11),
            ),
        ] {
            let mut config = (*client_config(&ca, |_| {})).clone();
            config.alpn_protocols = offered;
            let name = crate::tls::server_name("a.test").unwrap();
            let mut c = ClientConnection::new(Arc::new(config), name).unwrap();
            let mut s = ServerConnection::new(Arc::clone(tls.config())).unwrap();
            handshake(&mut c, &mut s).unwrap();
            assert_eq!(s.alpn_protocol(), agreed);
        }
    }

    #[test]
    fn sni_selects_certificate() {
        let dir = TempDir::new("sni");
        let ca = Ca::new("sni CA");
        let a = ca.write_leaf(&dir, "a", &["a.test"], KeyAlg::P256);
        let b = ca.write_leaf(&dir, "b", &["b.test", "*.b.test"], KeyAlg::Rsa);
        let tls = ServerTls::load(ServerSettings::new(vec![a.clone(), b.clone()])).unwrap();
        assert_eq!(tls.names(), ["a.test", "b.test", "*.b.test"]);
        let pem = |files: &CertFiles| std::fs::read_to_string(&files.cert).unwrap();
        let (a_pem, b_pem) = (pem(&a), pem(&b));
        // A verifying client refuses the fallback certificate for a name it
        // lacks, so this one checks only signatures, to see what came back.
        let client = client_config(&ca, |s| s.insecure_skip_verify = true);
        let cases = [
            ("a.test", &a_pem),
            ("b.test", &b_pem),
            ("x.sub.b.test", &a_pem), // a wildcard covers one label only
            ("x.b.test", &b_pem),
            ("unknown.test", &a_pem),
            ("127.0.0.1", &a_pem), // an IP literal sends no SNI
        ];
        for (sni, want) in cases {
            let (got, _) = connect(&tls, &client, sni).unwrap_or_else(|e| panic!("{sni}: {e}"));
            assert!(Ca::pem_has(want, &got), "{sni}");
        }
        let verifying = client_config(&ca, |_| {});
        for sni in ["a.test", "b.test", "x.b.test"] {
            connect(&tls, &verifying, sni).unwrap_or_else(|e| panic!("{sni}: {e}"));
        }
    }

    #[test]
    fn versions_and_ciphers() {
        let dir = TempDir::new("versions");
        let ca = Ca::new("versions CA");
        let a = ca.write_leaf(&dir, "a", &["a.test"], KeyAlg::P256);
        let tls12 = ServerSettings {
            versions: vec![parse_version("TLSv1.2").unwrap()],
            ..ServerSettings::new(vec![a.clone()])
        };
        let tls = ServerTls::load(tls12).unwrap();
        let only13 = client_config(&ca, |s| s.versions = vec![parse_version("1.3").unwrap()]);
        let err = connect(&tls, &only13, "a.test").unwrap_err();
        assert!(matches!(err, rustls::Error::PeerIncompatible(_)), "{err}");
        let only12 = client_config(&ca, |s| s.versions = vec![parse_version("1.2").unwrap()]);
        connect(&tls, &only12, "a.test").unwrap();

        let mismatched = ServerSettings {
            versions: vec![parse_version("TLSv1.3").unwrap()],
            ciphers: vec![parse_cipher("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256").unwrap()],
            ..ServerSettings::new(vec![a.clone()])
        };
        let err = ServerTls::load(mismatched).unwrap_err().to_string();
        assert_eq!(
            err,
            "no configured cipher suite works with TLSv1.3: add one to `ciphers` or remove TLSv1.3 from `protocols`"
        );

        let chacha = ServerSettings {
            ciphers: vec![parse_cipher("TLS_CHACHA20_POLY1305_SHA256").unwrap()],
            versions: vec![parse_version("TLSv1.3").unwrap()],
            ..ServerSettings::new(vec![a])
        };
        let tls = ServerTls::load(chacha).unwrap();
        let name = crate::tls::server_name("a.test").unwrap();
        let mut c = ClientConnection::new(client_config(&ca, |_| {}), name).unwrap();
        let mut s = ServerConnection::new(Arc::clone(tls.config())).unwrap();
        handshake(&mut c, &mut s).unwrap();
        let suite = s.negotiated_cipher_suite().unwrap();
        assert_eq!(
            suite.suite().as_str(),
            Some("TLS13_CHACHA20_POLY1305_SHA256")
        );
    }

    #[test]
    fn resumption() {
        let dir = TempDir::new("resume");
        let ca = Ca::new("resume CA");
        let a = ca.write_leaf(&dir, "a", &["a.test"], KeyAlg::P256);
        let tls12 = || vec![parse_version("TLSv1.2").unwrap()];
        let tls13 = || vec![parse_version("TLSv1.3").unwrap()];
        // (tickets, session cache, client versions, TLS 1.2 tickets allowed, resumes)
        let cases = [
            (true, DEFAULT_SESSION_CACHE, tls13(), true, true),
            (true, 0, tls13(), true, true),
            (false, DEFAULT_SESSION_CACHE, tls13(), true, true),
            (true, 0, tls12(), true, true),
            (false, DEFAULT_SESSION_CACHE, tls12(), false, true),
            (false, 0, tls13(), true, false),
            (false, 0, tls12(), false, false),
        ];
        for (tickets, session_cache, versions, tls12_tickets, resumes) in cases {
            let what = format!("tickets {tickets}, cache {session_cache}, {versions:?}");
            let tls = ServerTls::load(ServerSettings {
                tickets,
                session_cache,
                ..ServerSettings::new(vec![a.clone()])
            })
            .unwrap();
            let client = client_config(&ca, |s| s.versions = versions.clone());
            let mut client = Arc::unwrap_or_clone(client);
            if !tls12_tickets {
                client.resumption = client
                    .resumption
                    .tls12_resumption(Tls12Resumption::SessionIdOnly);
            }
            let client = Arc::new(client);
            let (_, first) = connect(&tls, &client, "a.test").unwrap();
            assert_eq!(first, Some(HandshakeKind::Full), "{what}");
            let (_, second) = connect(&tls, &client, "a.test").unwrap();
            let want = if resumes {
                HandshakeKind::Resumed
            } else {
                HandshakeKind::Full
            };
            assert_eq!(second, Some(want), "{what}");
        }
    }

    #[test]
    fn reload_swaps_certificates() {
        let dir = TempDir::new("reload");
        let ca = Ca::new("reload CA");
        let a = ca.write_leaf(&dir, "a", &["a.test"], KeyAlg::P256);
        let old_pem = std::fs::read_to_string(&a.cert).unwrap();
        let tls = ServerTls::load(ServerSettings::new(vec![a.clone()])).unwrap();
        // A new ClientConfig per handshake, so none resumes (a resumed
        // handshake sends no certificate; clones share the session store).
        let fresh = || client_config(&ca, |_| {});
        let (got, _) = connect(&tls, &fresh(), "a.test").unwrap();
        assert!(Ca::pem_has(&old_pem, &got));

        let renewed = ca.write_leaf(&dir, "a", &["a.test", "new.a.test"], KeyAlg::Ed25519);
        assert_eq!(renewed, a);
        let new_pem = std::fs::read_to_string(&a.cert).unwrap();
        assert_eq!(tls.reload().unwrap(), 1);
        assert_eq!(tls.names(), ["a.test", "new.a.test"]);
        let (got, _) = connect(&tls, &fresh(), "a.test").unwrap();
        assert!(Ca::pem_has(&new_pem, &got));

        std::fs::write(&a.key, "garbage").unwrap();
        let err = tls.reload().unwrap_err().to_string();
        assert!(err.contains("no private key found"), "{err}");
        let (got, _) = connect(&tls, &fresh(), "a.test").unwrap();
        assert!(Ca::pem_has(&new_pem, &got), "the old certificate stays");
        assert_eq!(tls.names(), ["a.test", "new.a.test"]);
    }

    #[test]
    fn an_acme_listener_serves_a_placeholder_then_what_storage_holds() {
        let dir = TempDir::new("acme");
        let ca = Ca::new("acme CA");
        let acme = AcmeSettings {
            directory: "https://ca.test/dir".into(),
            contact: Vec::new(),
            names: vec!["a.test".into()],
            challenge: ChallengeKind::TlsAlpn01,
            storage: dir.path("storage"),
            ca: None,
        };
        let tls = ServerTls::load(ServerSettings {
            acme: Some(acme.clone()),
            ..ServerSettings::new(Vec::new())
        })
        .unwrap();
        assert_eq!(tls.names(), ["a.test"], "the placeholder's names");
        assert_eq!(
            tls.config().alpn_protocols.last().map(Vec::as_slice),
            Some(ALPN_ACME_TLS)
        );
        // Not yet issued: a verifying client refuses the placeholder.
        let verifying = || client_config(&ca, |_| {});
        assert!(connect(&tls, &verifying(), "a.test").is_err());

        // The ACME thread writes the chain and key, then reloads.
        let issued = ca.write_leaf(&dir, "issued", &["a.test"], KeyAlg::P256);
        let stored = acme.files();
        std::fs::create_dir_all(stored.cert.parent().unwrap()).unwrap();
        std::fs::copy(&issued.cert, &stored.cert).unwrap();
        std::fs::copy(&issued.key, &stored.key).unwrap();
        assert_eq!(tls.reload().unwrap(), 1);
        let (got, _) = connect(&tls, &verifying(), "a.test").unwrap();
        let pem = std::fs::read_to_string(&issued.cert).unwrap();
        assert!(Ca::pem_has(&pem, &got));

        // A key that no longer matches (a reload between the two writes):
        // the certificate in use stays.
        let other = ca.write_leaf(&dir, "other", &["a.test"], KeyAlg::P256);
        std::fs::copy(&other.key, &stored.key).unwrap();
        assert!(tls.reload().is_err());
        let (got, _) = connect(&tls, &verifying(), "a.test").unwrap();
        assert!(Ca::pem_has(&pem, &got));
    }

    #[test]
    fn debug_is_short() {
        let dir = TempDir::new("debug");
        let ca = Ca::new("debug CA");
        let a = ca.write_leaf(&dir, "a", &["a.test"], KeyAlg::P256);
        let shown = format!(
            "{:?}",
            ServerTls::load(ServerSettings::new(vec![a])).unwrap()
        );
        assert!(shown.starts_with("ServerTls {"), "{shown}");
        assert!(
            shown.contains("a.test") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }
}
