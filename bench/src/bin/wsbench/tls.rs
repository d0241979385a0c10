//! wss:// for the load modes: the rustls client configuration built from
//! the flags (a trusted CA or no verification at all, the cipher suites
//! offered, session resumption on or off), and the tally of what each
//! connection's TLS handshake negotiated.
//!
//! One [`ClientConfig`] is shared by every connection of a run, across
//! threads, so with `--resume` its in-memory session store hands tickets
//! from earlier handshakes to later ones; without it resumption is
//! disabled and every handshake is a full one.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, NamedGroup,
    ProtocolVersion, RootCertStore, SignatureScheme, SupportedCipherSuite,
};

use crate::cli::TlsArgs;
use crate::error::SetupError;
use crate::report::Json;
use crate::target::Target;

/// Server names the `--resume` store remembers (a run uses one).
const SESSION_STORE_SIZE: usize = 256;

/// TLS 1.3 tickets the `--resume` store keeps per server name. rustls' own
/// in-memory store keeps 8, which 50 handshakes in flight drain: then many
/// handshakes are full for want of a ticket, by how fast the server issues
/// them, not by what it can resume. 1024 (a few hundred KB) never runs dry
/// while the server issues at least one ticket per handshake.
const TICKETS_PER_SERVER: usize = 1024;

/// What every TLS connection of a run is made from.
#[derive(Debug, Clone)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    /// SNI and the name the certificate is checked against: the URL's host.
    pub name: ServerName<'static>,
}

impl TlsClient {
    /// The TLS client for `url`: `None` for ws://. Flags that make no sense
    /// for the URL's scheme are refused.
    pub fn from_args(url: &Target, args: &TlsArgs) -> Result<Option<TlsClient>, SetupError> {
        let usage = |message: String| SetupError::Usage(message);
        if !url.tls {
            let given = [
                (args.ca.is_some(), "--ca"),
                (args.insecure, "--insecure"),
                (args.resume, "--resume"),
                (!args.suites.is_empty(), "--tls-suite"),
            ];
            return match given.iter().find(|(set, _)| *set) {
                Some((_, flag)) => Err(usage(format!(
                    "{flag} applies to wss:// URLs only, and {url} is ws://"
                ))),
                None => Ok(None),
            };
        }
        let provider = Arc::new(provider(&args.suites).map_err(usage)?);
        let versions = versions(&provider.cipher_suites);
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|err| usage(format!("--tls-suite: {err}")))?;
        let mut config = match (&args.ca, args.insecure) {
            (Some(ca), false) => builder
                .with_root_certificates(roots(ca).map_err(usage)?)
                .with_no_client_auth(),
            (None, true) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth(),
            _ => {
                return Err(usage(format!(
                    "{url} is wss://: give --ca FILE (the CA that signed the server's \
                     certificate) or --insecure (no verification)"
                )))
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = if args.resume {
            Resumption::store(Arc::new(TicketStore::default()))
        } else {
            Resumption::disabled()
        };
        Ok(Some(TlsClient {
            config: Arc::new(config),
            name: server_name(url).map_err(usage)?,
        }))
    }

    /// A client connection that has queued its ClientHello.
    pub fn connect(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(self.config.clone(), self.name.clone())
    }
}

/// The ring provider, offering only the suites named (all when none is).
fn provider(names: &[String]) -> Result<CryptoProvider, String> {
    let mut provider = ring::default_provider();
    if names.is_empty() {
        return Ok(provider);
    }
    let known = || {
        ring::ALL_CIPHER_SUITES
            .iter()
            .map(|suite| format!("{:?}", suite.suite()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut suites = Vec::new();
    for name in names {
        let suite = ring::ALL_CIPHER_SUITES
            .iter()
            .find(|suite| format!("{:?}", suite.suite()).eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("--tls-suite {name}: unknown; known: {}", known()))?;
        suites.push(*suite);
    }
    provider.cipher_suites = suites;
    Ok(provider)
}

/// The protocol versions the offered suites belong to, so that naming only
/// TLS 1.3 suites offers only TLS 1.3.
fn versions(suites: &[SupportedCipherSuite]) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut versions = Vec::new();
    if suites
        .iter()
        .any(|s| s.version() == &rustls::version::TLS13)
    {
        versions.push(&rustls::version::TLS13);
    }
    if suites
        .iter()
        .any(|s| s.version() == &rustls::version::TLS12)
    {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

/// Every certificate in the PEM file `path`, as trust anchors.
fn roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let mut roots = RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(path).map_err(|err| format!("--ca {shown}: {err}"))?;
    for cert in certs {
        let cert = cert.map_err(|err| format!("--ca {shown}: {err}"))?;
        roots
            .add(cert)
            .map_err(|err| format!("--ca {shown}: {err}"))?;
    }
    if roots.is_empty() {
        return Err(format!("--ca {shown}: no certificate in the file"));
    }
    Ok(roots)
}

/// The URL's host without brackets or port: an IP address or a DNS name.
fn server_name(target: &Target) -> Result<ServerName<'static>, String> {
    let host = match target.host.rfind(']') {
        Some(bracket) => target.host[..bracket].trim_start_matches('['),
        None => target.host.split(':').next().unwrap_or_default(),
    };
    ServerName::try_from(host.to_owned())
        .map_err(|err| format!("{}: {host:?} is not a server name: {err}", target.url))
}

/// The `--resume` store: rustls' in-memory store, but holding up to
/// [`TICKETS_PER_SERVER`] TLS 1.3 tickets per server name instead of 8.
#[derive(Debug)]
struct TicketStore {
    /// Key-exchange hints and TLS 1.2 sessions.
    memory: ClientSessionMemoryCache,
    /// TLS 1.3 tickets by server name, oldest first; each is taken once.
    tickets: Mutex<HashMap<ServerName<'static>, VecDeque<Tls13ClientSessionValue>>>,
}

impl Default for TicketStore {
    fn default() -> TicketStore {
        TicketStore {
            memory: ClientSessionMemoryCache::new(SESSION_STORE_SIZE),
            tickets: Mutex::default(),
        }
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.memory.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.memory.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.memory.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.memory.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.memory.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        let mut tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        let queue = tickets.entry(server_name).or_default();
        if queue.len() == TICKETS_PER_SERVER {
            queue.pop_front();
        }
        queue.push_back(value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let mut tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        // The newest ticket: the least likely to have expired.
        tickets.get_mut(server_name)?.pop_back()
    }
}

/// `--insecure`: accepts any certificate, but still checks that the server
/// holds its key (the handshake signature), as `curl --insecure` does.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What one connection's finished handshake negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Protocol version and cipher suite, in words
    /// (`TLSv1_3 TLS13_AES_128_GCM_SHA256`).
    pub params: String,
    /// The key-exchange group (`X25519`); `None` for a TLS 1.2 resumption,
    /// which exchanges no key.
    pub group: Option<String>,
    pub resumed: bool,
}

impl Negotiated {
    /// `None` while `conn` is still handshaking.
    pub fn of(conn: &ClientConnection) -> Option<Negotiated> {
        if conn.is_handshaking() {
            return None;
        }
        let version = conn
            .protocol_version()
            .unwrap_or(ProtocolVersion::Unknown(0));
        let suite = conn.negotiated_cipher_suite()?.suite();
        Some(Negotiated {
            params: format!("{version:?} {suite:?}"),
            group: conn
                .negotiated_key_exchange_group()
                .map(|group| format!("{:?}", group.name())),
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
        })
    }
}

/// What a run's TLS handshakes negotiated: full against resumed, and
/// whether they all agreed on version, suite and group.
#[derive(Debug, Clone, Default)]
pub struct TlsTally {
    /// The first handshake's version and suite.
    pub params: Option<String>,
    /// The first key-exchange group seen.
    pub group: Option<String>,
    pub full: u64,
    pub resumed: u64,
    /// Handshakes whose version, suite or group differ from the first's.
    pub differing: u64,
}

impl TlsTally {
    pub fn record(&mut self, negotiated: &Negotiated) {
        if negotiated.resumed {
            self.resumed += 1;
        } else {
            self.full += 1;
        }
        if self.agrees(Some(&negotiated.params), negotiated.group.as_ref()) {
            self.params.get_or_insert_with(|| negotiated.params.clone());
            if self.group.is_none() {
                self.group.clone_from(&negotiated.group);
            }
        } else {
            self.differing += 1;
        }
    }

    pub fn merge(&mut self, other: &TlsTally) {
        self.full += other.full;
        self.resumed += other.resumed;
        self.differing += other.differing;
        if !self.agrees(other.params.as_ref(), other.group.as_ref()) {
            self.differing += 1;
        }
        if self.params.is_none() {
            self.params.clone_from(&other.params);
        }
        if self.group.is_none() {
            self.group.clone_from(&other.group);
        }
    }

    /// Whether `params` and `group` match what was seen first (an unknown
    /// on either side matches).
    fn agrees(&self, params: Option<&String>, group: Option<&String>) -> bool {
        let same = |mine: &Option<String>, theirs: Option<&String>| match (mine, theirs) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => true,
        };
        same(&self.params, params) && same(&self.group, group)
    }

    /// Resumed handshakes over all handshakes (0 when there were none).
    pub fn resumed_fraction(&self) -> f64 {
        let total = self.full + self.resumed;
        if total == 0 {
            0.0
        } else {
            self.resumed as f64 / total as f64
        }
    }

    /// `null` when no TLS handshake completed (a ws:// run), else
    /// `{"version":..,"suite":..,"group":..,"full":..,"resumed":..,"resumed_fraction":..,"differing":..}`.
    pub fn json(&self) -> String {
        let Some(params) = &self.params else {
            return "null".to_owned();
        };
        let (version, suite) = params.split_once(' ').unwrap_or((params, ""));
        Json::new()
            .str("version", version)
            .str("suite", suite)
            .opt_str("group", self.group.as_deref())
            .uint("full", self.full)
            .uint("resumed", self.resumed)
            .float("resumed_fraction", self.resumed_fraction())
            .uint("differing", self.differing)
            .finish()
    }
}

impl fmt::Display for TlsTally {
    /// `; TLS <version> <suite> <group>, F full + R resumed (P% resumed)`,
    /// or nothing for ws://.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(params) = &self.params else {
            return Ok(());
        };
        write!(
            f,
            "; TLS {params} {}, {} full + {} resumed ({:.1}% resumed)",
            self.group.as_deref().unwrap_or("(no key exchange)"),
            self.full,
            self.resumed,
            100.0 * self.resumed_fraction()
        )?;
        if self.differing > 0 {
            write!(f, ", {} with other parameters", self.differing)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::parse_url;

    #[test]
    fn suites_by_name_choose_the_versions() {
        let tls13 = provider(&["tls13_aes_128_gcm_sha256".into()]).unwrap();
        assert_eq!(tls13.cipher_suites.len(), 1);
        assert_eq!(versions(&tls13.cipher_suites), [&rustls::version::TLS13]);
        let all = provider(&[]).unwrap();
        assert_eq!(versions(&all.cipher_suites).len(), 2);
        assert!(provider(&["TLS_NULL_WITH_NULL_NULL".into()]).is_err());
    }

    #[test]
    fn server_names_come_from_the_host() {
        let name = |url: &str| server_name(&parse_url(url).unwrap()).unwrap();
        assert_eq!(
            name("wss://127.0.0.1:8443/x"),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        assert_eq!(
            name("wss://[::1]:8443/"),
            ServerName::try_from("::1").unwrap()
        );
        assert_eq!(
            name("wss://localhost/"),
            ServerName::try_from("localhost").unwrap()
        );
    }

    #[test]
    fn tally_counts_and_flags_differences() {
        let full = Negotiated {
            params: "TLSv1_3 TLS13_AES_128_GCM_SHA256".into(),
            group: Some("X25519".into()),
            resumed: false,
        };
        let resumed = Negotiated {
            resumed: true,
            ..full.clone()
        };
        let mut a = TlsTally::default();
        a.record(&full);
        a.record(&resumed);
        a.record(&Negotiated {
            group: None,
            ..resumed.clone()
        });
        assert_eq!(a.differing, 0);
        a.record(&Negotiated {
            group: Some("secp256r1".into()),
            ..full.clone()
        });
        assert_eq!(a.differing, 1);
        let mut b = TlsTally::default();
        b.record(&Negotiated {
            params: "TLSv1_2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
            group: Some("X25519".into()),
            resumed: false,
        });
        a.merge(&b);
        assert_eq!((a.full, a.resumed, a.differing), (3, 2, 2));
        assert_eq!(
            a.json(),
            r#"{"version":"TLSv1_3","suite":"TLS13_AES_128_GCM_SHA256","group":"X25519","full":3,"resumed":2,"resumed_fraction":0.400,"differing":2}"#
        );
        assert_eq!(TlsTally::default().json(), "null");
        assert_eq!(TlsTally::default().to_string(), "");
    }
}
