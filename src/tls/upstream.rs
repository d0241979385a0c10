//! TLS towards upstream servers: `UpstreamSettings` → a rustls
//! `ClientConfig` (trusted roots, optional client certificate, ALPN
//! http/1.1, in-memory resumption), and the name a connection verifies.

use super::certs::{load_certified_key, read_certificates, CertFiles};
use super::{TlsError, ALPN_HTTP11};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    ring, verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::SingleCertAndKey;
use rustls::SupportedProtocolVersion;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How one upstream group speaks TLS.
#[derive(Clone, Debug, Default)]
pub struct UpstreamSettings {
    /// PEM file of CA certificates to trust; None: the system's roots
    /// (rustls-native-certs).
    pub ca: Option<PathBuf>,
    /// A client certificate to present (mutual TLS).
    pub client_cert: Option<CertFiles>,
    /// Accept any certificate (still checks handshake signatures). The
    /// caller logs the warning.
    pub insecure_skip_verify: bool,
    /// Empty: TLS 1.2 and 1.3.
    pub versions: Vec<&'static SupportedProtocolVersion>,
}

/// ALPN "http/1.1", in-memory resumption on (rustls' default client
/// resumption).
pub fn upstream_config(settings: &UpstreamSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let versions = match settings.versions.as_slice() {
        [] => rustls::DEFAULT_VERSIONS,
        chosen => chosen,
    };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|source| TlsError::Rustls {
            context: "upstream TLS protocols",
            source,
        })?;
    let builder = if settings.insecure_skip_verify {
        let verifier = AcceptAnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    } else {
        builder.with_root_certificates(roots(settings.ca.as_deref())?)
    };
    let mut config = match &settings.client_cert {
        Some(files) => {
            let key = load_certified_key(files, &provider)?;
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(key)))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate in `ca`, or the system's roots.
fn roots(ca: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in read_certificates(path)? {
                roots.add(cert).map_err(|e| TlsError::BadCa {
                    path: path.into(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let detail = match found.errors.first() {
                    Some(error) => format!(" ({error})"),
                    None => String::new(),
                };
                return Err(TlsError::NoSystemRoots { detail });
            }
        }
    }
    Ok(roots)
}

/// The SNI / verification name for an upstream host ("backend.internal",
/// "10.0.0.7", "[::1]" or "::1"). An IP literal is verified against the
/// certificate's IP SANs and sends no SNI (RFC 6066 §3).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let refused =
        || format!("{host:?} is not a DNS name or IP address usable as a TLS server name");
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6
            .parse::<Ipv6Addr>()
            .map(|ip| ServerName::IpAddress(IpAddr::V6(ip).into()))
            .map_err(|_| refused()),
        None => ServerName::try_from(host.to_owned()).map_err(|_| refused()),
    }
}

/// `insecure_skip_verify`: trusts whatever certificate the upstream sends
/// but still checks it signed the handshake, so the key exchange is bound
/// to the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_support::{client_config, handshake, Ca, KeyAlg, TempDir};
    use crate::tls::{ServerSettings, ServerTls};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::server::WebPkiClientVerifier;
    use rustls::{CertificateError, ClientConnection, ServerConfig, ServerConnection};

    fn connect(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
        host: &str,
    ) -> Result<(), rustls::Error> {
        let mut c = ClientConnection::new(client, server_name(host).unwrap())?;
        let mut s = ServerConnection::new(server)?;
        handshake(&mut c, &mut s)?;
        assert_eq!(c.alpn_protocol(), Some(ALPN_HTTP11));
        Ok(())
    }

    #[test]
    fn verifies_against_the_ca_file() {
        let dir = TempDir::new("upstream");
        let ca = Ca::new("upstream CA");
        let other = Ca::new("other CA");
        let files = ca.write_leaf(&dir, "up", &["up.test", "10.0.0.7"], KeyAlg::P256);
        let server = ServerTls::load(ServerSettings::new(vec![files])).unwrap();
        let server = || Arc::clone(server.config());

        connect(client_config(&ca, |_| {}), server(), "up.test").unwrap();
        connect(client_config(&ca, |_| {}), server(), "10.0.0.7").unwrap();

        let err = connect(client_config(&ca, |_| {}), server(), "other.test").unwrap_err();
        assert!(
            matches!(
                &err,
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
            ),
            "{err:?}"
        );
        let err = connect(client_config(&other, |_| {}), server(), "up.test").unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );

        let insecure = client_config(&other, |s| s.insecure_skip_verify = true);
        connect(Arc::clone(&insecure), server(), "up.test").unwrap();
        connect(insecure, server(), "other.test").unwrap();
    }

    #[test]
    fn presents_the_client_certificate() {
        let dir = TempDir::new("mtls");
        let ca = Ca::new("mtls CA");
        let server_files = ca.write_leaf(&dir, "up", &["up.test"], KeyAlg::P256);
        let client_files = ca.write_leaf(&dir, "proxy", &["proxy.test"], KeyAlg::Ed25519);
        let mut client_roots = RootCertStore::empty();
        client_roots
            .add(
                read_certificates(&dir.write("ca.pem", &ca.pem))
                    .unwrap()
                    .remove(0),
            )
            .unwrap();
        let provider = Arc::new(ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(client_roots),
            Arc::clone(&provider),
        )
        .build()
        .unwrap();
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                read_certificates(&server_files.cert).unwrap(),
                PrivateKeyDer::from_pem_file(&server_files.key).unwrap(),
            )
            .unwrap();
        server.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        let server = Arc::new(server);

        let with_cert = client_config(&ca, |s| s.client_cert = Some(client_files.clone()));
        connect(with_cert, Arc::clone(&server), "up.test").unwrap();
        let without = client_config(&ca, |_| {});
        let err = connect(without, server, "up.test").unwrap_err();
        assert!(
            matches!(err, rustls::Error::NoCertificatesPresented),
            "{err:?}"
        );

        let mismatched = CertFiles {
            cert: client_files.cert.clone(),
            key: server_files.key.clone(),
        };
        let settings = UpstreamSettings {
            client_cert: Some(mismatched),
            ..UpstreamSettings::default()
        };
        let err = upstream_config(&settings).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn ca_file_errors() {
        let dir = TempDir::new("ca");
        let cases = [
            (dir.write("empty.pem", ""), "no certificate found"),
            (dir.path("missing.pem"), "cannot read"),
            (
                dir.write(
                    "junk.pem",
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                ),
                "not a usable CA certificate",
            ),
        ];
        for (path, want) in cases {
            let settings = UpstreamSettings {
                ca: Some(path.clone()),
                ..UpstreamSettings::default()
            };
            let err = upstream_config(&settings).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{}: {want}", path.display())),
                "{err}"
            );
        }
    }

    #[test]
    fn server_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("backend.internal", Some("DnsName(\"backend.internal\")")),
            ("10.0.0.7", Some("IpAddress(V4(Ipv4Addr([10, 0, 0, 7])))")),
            ("[::1]", Some("IpAddress(V6(")),
            ("::1", Some("IpAddress(V6(")),
            ("", None),
            ("bad host", None),
            ("[backend]", None),
        ];
        for (host, want) in cases {
            match (server_name(host), want) {
                (Ok(name), Some(want)) => {
                    let shown = format!("{name:?}");
                    assert!(shown.starts_with(want), "{host}: {shown}");
                }
                (Err(msg), None) => assert!(msg.contains("not a DNS name or IP address"), "{msg}"),
                (got, want) => panic!("{host}: got {got:?}, want {want:?}"),
            }
        }
    }
}
