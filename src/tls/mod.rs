//! TLS settings → rustls configs: the names accepted for protocol versions
//! and cipher suites, the errors a person sees when a certificate, key or CA
//! file is unusable, and (in the submodules) the listener's reloadable
//! `ServerConfig` and the upstream `ClientConfig`.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | `parse_version`, `parse_cipher`, `TlsError`, the ring provider |
//! | `certs.rs` | PEM cert/key files → `CertifiedKey`; the SNI certificate resolver |
//! | `server.rs` | `ServerSettings` → `ServerTls` (shared `ServerConfig`, `reload`) |
//! | `upstream.rs` | `UpstreamSettings` → `ClientConfig`; `server_name` |
//!
//! Only rustls' *ring* provider is used (it builds with a C compiler alone).

mod certs;
mod server;
#[cfg(test)]
pub(crate) mod test_support;
mod upstream;

pub use certs::CertFiles;
pub use server::{ServerSettings, ServerTls, DEFAULT_SESSION_CACHE};
pub use upstream::{server_name, upstream_config, UpstreamSettings};

use rustls::crypto::{ring, CryptoProvider};
use rustls::{ProtocolVersion, SupportedCipherSuite, SupportedProtocolVersion};
use std::io;
use std::path::PathBuf;

/// The application protocol of a listener without HTTP/2: a WebSocket
/// upgrade is an HTTP/1.1 request (RFC 6455 §4.1) (RFC 7301 ALPN id).
const ALPN_HTTP11: &[u8] = b"http/1.1";
/// HTTP/2 over TLS (RFC 9113 §3.2).
pub const ALPN_H2: &[u8] = b"h2";

/// Also accepted from clients that offer only HTTP/1.0 (`curl --http1.0`),
/// as nginx does: the request reader speaks both.
const ALPN_HTTP10: &[u8] = b"http/1.0";

/// A startup or reload failure; each names the file and what would fix it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: malformed PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no certificate found (expected a PEM \"BEGIN CERTIFICATE\" block)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: not a usable X.509 certificate: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{}: no private key found (expected PKCS#8, RSA or EC PEM)", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: unsupported key type: {reason} (use RSA, ECDSA P-256/P-384 or Ed25519)", path.display())]
    UnsupportedKey { path: PathBuf, reason: String },
    #[error("{}: does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("{}: not a usable CA certificate: {reason}", path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error("no system CA certificates found{detail}: set the group's tls.ca")]
    NoSystemRoots { detail: String },
    #[error("no certificates configured: a TLS listener needs at least one cert/key pair")]
    NoCertificates,
    #[error("no configured cipher suite works with {version}: add one to `ciphers` or remove {version} from `protocols`")]
    NoCipherForVersion { version: &'static str },
    #[error("{context}: {source}")]
    Rustls {
        context: &'static str,
        #[source]
        source: rustls::Error,
    },
}

/// "TLSv1.2" | "TLSv1.3" (nginx spelling, case-insensitive; also "1.2"/"1.3").
/// Older versions are refused with the reason; anything else names the
/// accepted values.
pub fn parse_version(s: &str) -> Result<&'static SupportedProtocolVersion, String> {
    const ONLY: &str = "rustls implements only TLS 1.2 and 1.3; remove it from `protocols`";
    match s.trim().to_ascii_lowercase().as_str() {
        "tlsv1.2" | "1.2" => Ok(&rustls::version::TLS12),
        "tlsv1.3" | "1.3" => Ok(&rustls::version::TLS13),
        "sslv2" => Err(format!(
            "{s}: refused: prohibited by RFC 6176 (2011), broken beyond repair; {ONLY}"
        )),
        "sslv3" => Err(format!(
            "{s}: refused: prohibited by RFC 7568 (2015), broken by POODLE; {ONLY}"
        )),
        "tlsv1" | "tlsv1.0" | "1.0" | "tlsv1.1" | "1.1" => Err(format!(
            "{s}: refused: deprecated by RFC 8996 (2021): no AEAD ciphers, MD5/SHA-1 in the handshake; {ONLY}"
        )),
        _ => Err(format!(
            "{s:?}: unknown TLS version: expected \"TLSv1.2\" or \"TLSv1.3\""
        )),
    }
}

/// A cipher suite by name: rustls' name ("TLS13_AES_128_GCM_SHA256",
/// "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256") or the IANA TLS 1.3 name
/// ("TLS_AES_128_GCM_SHA256"); case-insensitive. Unknown names get the list
/// the ring provider offers.
pub fn parse_cipher(s: &str) -> Result<SupportedCipherSuite, String> {
    let want = s.trim().to_ascii_uppercase();
    ring::ALL_CIPHER_SUITES
        .iter()
        .copied()
        .find(|suite| {
            let name = suite_name(*suite);
            // rustls spells the TLS 1.3 suites "TLS13_…"; IANA spells them "TLS_…".
            want == name || want == name.replacen("TLS13_", "TLS_", 1)
        })
        .ok_or_else(|| {
            let offered: Vec<&str> = ring::ALL_CIPHER_SUITES
                .iter()
                .map(|suite| suite_name(*suite))
                .collect();
            format!(
                "{s:?}: unknown cipher suite; the ring provider offers: {}",
                offered.join(", ")
            )
        })
}

fn suite_name(suite: SupportedCipherSuite) -> &'static str {
    suite.suite().as_str().unwrap_or("unknown")
}

/// nginx's spelling of a version, for messages.
fn version_name(version: &SupportedProtocolVersion) -> &'static str {
    match version.version {
        ProtocolVersion::TLSv1_2 => "TLSv1.2",
        ProtocolVersion::TLSv1_3 => "TLSv1.3",
        _ => "an unsupported TLS version",
    }
}

/// The ring provider, its suites narrowed to `ciphers` (in that order) when
/// any are given.
fn provider(ciphers: &[SupportedCipherSuite]) -> CryptoProvider {
    let mut provider = ring::default_provider();
    if !ciphers.is_empty() {
        provider.cipher_suites = ciphers.to_vec();
    }
    provider
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let cases: &[(&str, Result<ProtocolVersion, &str>)] = &[
            ("TLSv1.2", Ok(ProtocolVersion::TLSv1_2)),
            ("tlsv1.3", Ok(ProtocolVersion::TLSv1_3)),
            ("1.2", Ok(ProtocolVersion::TLSv1_2)),
            (" 1.3 ", Ok(ProtocolVersion::TLSv1_3)),
            ("SSLv2", Err("RFC 6176")),
            ("SSLv3", Err("RFC 7568")),
            ("TLSv1", Err("RFC 8996")),
            ("TLSv1.0", Err("RFC 8996")),
            ("TLSv1.1", Err("RFC 8996")),
            ("1.1", Err("RFC 8996")),
            ("TLSv1.4", Err("expected \"TLSv1.2\" or \"TLSv1.3\"")),
            ("", Err("expected \"TLSv1.2\" or \"TLSv1.3\"")),
        ];
        for (input, want) in cases {
            match (parse_version(input), want) {
                (Ok(got), Ok(want)) => assert_eq!(got.version, *want, "{input}"),
                (Err(msg), Err(want)) => {
                    assert!(msg.contains(want), "{input}: {msg}");
                    assert!(!msg.contains('\n'), "{input}: one line");
                }
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
        let refused = parse_version("TLSv1.1").unwrap_err();
        assert!(refused.contains("remove it from `protocols`"), "{refused}");
    }

    #[test]
    fn ciphers() {
        let cases: &[(&str, Option<&str>)] = &[
            ("TLS13_AES_128_GCM_SHA256", Some("TLS13_AES_128_GCM_SHA256")),
            ("TLS_AES_128_GCM_SHA256", Some("TLS13_AES_128_GCM_SHA256")),
            (
                "tls_chacha20_poly1305_sha256",
                Some("TLS13_CHACHA20_POLY1305_SHA256"),
            ),
            (
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
            ),
            (
                "tls_ecdhe_rsa_with_aes_256_gcm_sha384",
                Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
            ),
            ("TLS_RSA_WITH_AES_128_CBC_SHA", None),
            ("ECDHE-RSA-AES128-GCM-SHA256", None),
            ("", None),
        ];
        for (input, want) in cases {
            match (parse_cipher(input), want) {
                (Ok(got), Some(want)) => assert_eq!(suite_name(got), *want, "{input}"),
                (Err(msg), None) => {
                    assert!(msg.contains("TLS13_AES_256_GCM_SHA384"), "{msg}");
                    assert!(
                        msg.contains("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
                        "{msg}"
                    );
                }
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }
}
