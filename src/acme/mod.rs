//! Certificates from an ACME CA (RFC 8555), got and renewed by the proxy
//! itself: what a listener's `acme` table says, the thread that orders and
//! renews off the hot path, and the challenge answers the workers serve.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | `AcmeSettings`: the `acme` table / `--acme-*` flags, checked |
//! | `manager.rs` | the ACME thread: when to order, retries, storage, swapping certificates in |
//! | `client.rs` | the protocol: directory, nonces, account, order, challenges, finalize |
//! | `jws.rs` | the account key, JWK thumbprint, ES256 JWS |
//! | `http.rs` | a blocking HTTPS client for the CA |
//! | `store.rs` | the storage directory; a certificate's validity and serial |
//! | `challenge.rs` | challenge answers and metrics shared with the workers; the RFC 8737 and placeholder certificates |

mod challenge;
mod client;
mod http;
mod jws;
mod manager;
mod store;

pub use challenge::{placeholder, HTTP01_PREFIX, REGISTRY};
pub use client::ChallengeKind;
pub use manager::spawn;

use std::path::PathBuf;

use crate::tls::CertFiles;

/// Let's Encrypt's production directory: the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Let's Encrypt's staging directory (`directory = "staging"`): untrusted
/// certificates, generous rate limits, for trying a setup out.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// Where account keys and certificates are kept unless `storage` says.
pub const DEFAULT_STORAGE: &str = "/var/lib/wsproxy-fast/acme";

/// RFC 8737 §6.2: the ALPN protocol a TLS-ALPN-01 validator offers.
pub const ALPN_ACME_TLS: &[u8] = b"acme-tls/1";

/// One certificate the proxy gets from an ACME CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The CA's directory URL.
    pub directory: String,
    /// Account contacts, e.g. "mailto:ops@example.com".
    pub contact: Vec<String>,
    /// DNS names, lowercased, at least one; the first names the storage
    /// directory.
    pub names: Vec<String>,
    pub challenge: ChallengeKind,
    pub storage: PathBuf,
    /// Trust this PEM CA for the ACME server's own HTTPS (a private CA
    /// such as Pebble or step-ca) instead of the system's.
    pub ca: Option<PathBuf>,
}

impl AcmeSettings {
    /// Where this certificate's chain and key are kept.
    pub fn files(&self) -> CertFiles {
        let dir = store::cert_dir(&self.storage, &self.directory, &self.names[0]);
        CertFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// "a.test, b.test", for log lines.
    pub fn describe(&self) -> String {
        self.names.join(", ")
    }
}

/// `directory`: a URL, or `staging` / `production` for Let's Encrypt's.
pub fn directory_url(text: &str) -> Result<String, String> {
    match text.trim() {
        "staging" => Ok(LETS_ENCRYPT_STAGING.into()),
        "production" | "" => Ok(LETS_ENCRYPT.into()),
        url if url.starts_with("https://") => Ok(url.into()),
        other => Err(format!(
            "{other:?}: an ACME directory is an https:// URL, or \"staging\" / \"production\" for Let's Encrypt's"
        )),
    }
}

/// `challenge`: "tls-alpn-01" or "http-01".
pub fn challenge_kind(text: &str) -> Result<ChallengeKind, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "tls-alpn-01" => Ok(ChallengeKind::TlsAlpn01),
        "http-01" => Ok(ChallengeKind::Http01),
        "dns-01" => Err("dns-01 needs the DNS provider's API, which the proxy does not speak: use \"tls-alpn-01\" or \"http-01\"".into()),
        other => Err(format!(
            "{other:?}: unknown challenge: expected \"tls-alpn-01\" or \"http-01\""
        )),
    }
}

/// A name a certificate can be ordered for with the challenges the proxy
/// answers, lowercased.
pub fn check_name(text: &str) -> Result<String, String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.starts_with("*.") {
        return Err(format!(
            "{text:?}: a wildcard needs the dns-01 challenge, which the proxy does not answer; list each name"
        ));
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "{text:?}: an IP address: ACME here orders DNS names only"
        ));
    }
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        return Err(format!("{text:?}: not a DNS name"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse() {
        assert_eq!(directory_url("staging").unwrap(), LETS_ENCRYPT_STAGING);
        assert_eq!(directory_url("production").unwrap(), LETS_ENCRYPT);
        assert_eq!(
            directory_url("https://127.0.0.1:14000/dir").unwrap(),
            "https://127.0.0.1:14000/dir"
        );
        assert!(directory_url("http://ca.test/dir").is_err());
        assert_eq!(challenge_kind("HTTP-01").unwrap(), ChallengeKind::Http01);
        assert!(challenge_kind("dns-01")
            .unwrap_err()
            .contains("does not speak"));
        let names: &[(&str, Result<&str, &str>)] = &[
            ("Example.COM", Ok("example.com")),
            ("a-b.test.", Ok("a-b.test")),
            ("*.example.com", Err("wildcard")),
            ("127.0.0.1", Err("IP address")),
            ("-a.test", Err("not a DNS name")),
            ("a..test", Err("not a DNS name")),
            ("a_b.test", Err("not a DNS name")),
            ("", Err("not a DNS name")),
        ];
        for (input, want) in names {
            match (check_name(input), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want),
                (Err(got), Err(want)) => assert!(got.contains(want), "{input}: {got}"),
                (got, want) => panic!("{input}: {got:?} vs {want:?}"),
            }
        }
    }
}
