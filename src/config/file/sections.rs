//! The file's shape: each TOML section as a serde struct. Values that a
//! check may refuse keep their span (`Spanned`) so the problem is located.
//! Unknown keys are let through here and reported by `keys.rs`, so that
//! one misspelling does not hide the rest of the file's problems.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::access_log;
use crate::config::Removed;
use crate::relay::Policy;

#[derive(Deserialize)]
pub(super) struct FileSections {
    pub(super) workers: Option<Spanned<WorkersValue>>,
    pub(super) relay: Option<Policy>,
    pub(super) splice_pipes: Option<usize>,
    pub(super) max_header_bytes: Option<Spanned<usize>>,
    pub(super) admin: Option<Spanned<String>>,
    pub(super) control_socket: Option<String>,
    pub(super) access_log: Option<String>,
    pub(super) access_log_format: Option<access_log::Format>,
    #[serde(default)]
    pub(super) timeouts: TimeoutSection,
    #[serde(default)]
    pub(super) limits: LimitSection,
    #[serde(default)]
    pub(super) drain: DrainSection,
    #[serde(default)]
    pub(super) listener: Vec<Spanned<ListenerSection>>,
    #[serde(default)]
    pub(super) upstream: BTreeMap<Spanned<String>, Spanned<UpstreamSection>>,
    #[serde(default)]
    pub(super) server: Vec<Spanned<ServerSection>>,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<Spanned<String>>,
    pub(super) keepalive_timeout: Option<Spanned<DurationText>>,
    pub(super) keepalive_requests: Option<Spanned<u32>>,
    pub(super) source_addresses: Option<Vec<Spanned<String>>>,
}

/// A duration as written: `"500ms"`, `"10s"`, `"5m"`, `"1h"`, or a bare
/// number of seconds as nginx reads one, quoted or not (`idle = 30`). Kept
/// as text until `Span` parses it, so the file and the flags agree.
pub(super) struct DurationText(pub(super) String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DurationText, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = DurationText;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a duration such as \"500ms\", \"10s\", \"5m\", \"1h\", or seconds (30)",
                )
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DurationText, E> {
                Ok(DurationText(s.to_string()))
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<DurationText, E> {
                Ok(DurationText(n.to_string()))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<DurationText, E> {
                Ok(DurationText(n.to_string()))
            }
        }
        d.deserialize_any(Text)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum WorkersValue {
    Count(i64),
    Word(String),
}

#[derive(Deserialize, Default)]
pub(super) struct TimeoutSection {
    pub(super) handshake: Option<Spanned<DurationText>>,
    pub(super) connect: Option<Spanned<DurationText>>,
    pub(super) response: Option<Spanned<DurationText>>,
    pub(super) idle: Option<Spanned<DurationText>>,
}

#[derive(Deserialize, Default)]
pub(super) struct DrainSection {
    pub(super) timeout: Option<Spanned<DurationText>>,
    pub(super) spread: Option<Spanned<DurationText>>,
    pub(super) removed_routes: Option<Removed>,
}

#[derive(Deserialize, Default)]
pub(super) struct LimitSection {
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_worker: Option<usize>,
    pub(super) max_connections_per_ip: Option<usize>,
}

#[derive(Deserialize)]
pub(super) struct ListenerSection {
    pub(super) address: Spanned<String>,
    #[serde(default)]
    pub(super) redirect_https: bool,
    pub(super) redirect_port: Option<Spanned<u16>>,
    pub(super) tls: Option<Spanned<TlsSection>>,
    #[serde(default)]
    pub(super) proxy_protocol: bool,
    /// Offer HTTP/2 on this TLS listener.
    pub(super) http2: Option<Spanned<bool>>,
}

/// `[listener.tls]`: nginx's `ssl_certificate`, `ssl_protocols`,
/// `ssl_ciphers`, `ssl_session_cache`, `ssl_session_tickets`.
#[derive(Deserialize)]
pub(super) struct TlsSection {
    pub(super) cert: Option<Spanned<String>>,
    pub(super) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) certificates: Vec<Spanned<CertSection>>,
    pub(super) protocols: Option<Vec<Spanned<String>>>,
    pub(super) ciphers: Option<Vec<Spanned<String>>>,
    pub(super) session_cache: Option<usize>,
    pub(super) session_tickets: Option<bool>,
    pub(super) acme: Option<Spanned<AcmeSection>>,
}

/// `[listener.tls] acme = { … }`: a certificate got and renewed from an
/// ACME CA (Let's Encrypt unless `directory` says otherwise).
#[derive(Deserialize)]
pub(super) struct AcmeSection {
    pub(super) directory: Option<Spanned<String>>,
    pub(super) contact: Option<Spanned<Contact>>,
    #[serde(default)]
    pub(super) names: Vec<Spanned<String>>,
    pub(super) challenge: Option<Spanned<String>>,
    pub(super) storage: Option<Spanned<String>>,
    pub(super) ca: Option<Spanned<String>>,
}

/// `contact = "mailto:…"` or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Contact {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
pub(super) struct CertSection {
    pub(super) cert: String,
    pub(super) key: String,
}

/// `[upstream.NAME.tls]`, for its `wss://` and `https://` servers.
#[derive(Deserialize)]
pub(super) struct UpstreamTlsSection {
    pub(super) ca: Option<String>,
    pub(super) client_cert: Option<Spanned<String>>,
    pub(super) client_key: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) insecure_skip_verify: bool,
    pub(super) protocols: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
pub(super) struct UpstreamSection {
    pub(super) servers: Spanned<Vec<Spanned<String>>>,
    pub(super) balance: Option<Spanned<String>>,
    pub(super) hash_key: Option<Spanned<String>>,
    pub(super) max_fails: Option<u32>,
    pub(super) fail_timeout: Option<Spanned<DurationText>>,
    pub(super) tls: Option<Spanned<UpstreamTlsSection>>,
    pub(super) keepalive: Option<usize>,
    pub(super) keepalive_timeout: Option<Spanned<DurationText>>,
    pub(super) keepalive_requests: Option<Spanned<u32>>,
    pub(super) health: Option<Spanned<HealthSection>>,
    pub(super) source_addresses: Option<Vec<Spanned<String>>>,
}

/// `[upstream.NAME.health]`: active health checks of the group's servers.
#[derive(Deserialize)]
pub(super) struct HealthSection {
    pub(super) check: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) interval: Option<Spanned<DurationText>>,
    pub(super) timeout: Option<Spanned<DurationText>>,
    pub(super) fall: Option<Spanned<u32>>,
    pub(super) rise: Option<Spanned<u32>>,
    pub(super) host: Option<Spanned<String>>,
    pub(super) on_down: Option<Spanned<String>>,
}

#[derive(Deserialize)]
pub(super) struct ServerSection {
    #[serde(default)]
    pub(super) names: Vec<Spanned<String>>,
    pub(super) listen: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) default: bool,
    #[serde(default)]
    pub(super) request_headers: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) response_headers: Vec<Spanned<AddHeader>>,
    #[serde(default)]
    pub(super) hide_headers: Vec<Spanned<String>>,
    pub(super) origins: Option<Spanned<Vec<String>>>,
    pub(super) access: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(super) route: Vec<Spanned<RouteSection>>,
}

/// Settings a server and its routes share (a route's win), as written in
/// either section.
pub(super) struct HeaderSection<'a> {
    pub(super) request_headers: &'a BTreeMap<Spanned<String>, Spanned<String>>,
    pub(super) response_headers: &'a [Spanned<AddHeader>],
    pub(super) hide_headers: &'a [Spanned<String>],
    pub(super) origins: &'a Option<Spanned<Vec<String>>>,
    pub(super) access: &'a Option<Spanned<Vec<String>>>,
}

impl<'a> From<&'a ServerSection> for HeaderSection<'a> {
    fn from(s: &'a ServerSection) -> HeaderSection<'a> {
        HeaderSection {
            request_headers: &s.request_headers,
            response_headers: &s.response_headers,
            hide_headers: &s.hide_headers,
            origins: &s.origins,
            access: &s.access,
        }
    }
}

impl<'a> From<&'a RouteSection> for HeaderSection<'a> {
    fn from(r: &'a RouteSection) -> HeaderSection<'a> {
        HeaderSection {
            request_headers: &r.request_headers,
            response_headers: &r.response_headers,
            hide_headers: &r.hide_headers,
            origins: &r.origins,
            access: &r.access,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct AddHeader {
    pub(super) name: String,
    pub(super) value: String,
    #[serde(default)]
    pub(super) always: bool,
}

#[derive(Deserialize)]
pub(super) struct RouteSection {
    pub(super) location: Spanned<String>,
    pub(super) name: Option<Spanned<String>>,
    pub(super) upstream: Option<Spanned<String>>,
    pub(super) root: Option<Spanned<String>>,
    pub(super) try_files: Option<Spanned<Vec<String>>>,
    pub(super) rewrite: Option<Spanned<Rewrite>>,
    pub(super) strip_prefix: Option<Spanned<String>>,
    pub(super) redirect: Option<Spanned<RedirectSection>>,
    pub(super) status: Option<Spanned<u16>>,
    #[serde(default)]
    pub(super) request_headers: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub(super) response_headers: Vec<Spanned<AddHeader>>,
    #[serde(default)]
    pub(super) hide_headers: Vec<Spanned<String>>,
    pub(super) origins: Option<Spanned<Vec<String>>>,
    pub(super) access: Option<Spanned<Vec<String>>>,
    pub(super) idle_timeout: Option<Spanned<DurationText>>,
    pub(super) ping_interval: Option<Spanned<DurationText>>,
    pub(super) ping_timeout: Option<Spanned<DurationText>>,
    pub(super) ping_upstream: Option<Spanned<bool>>,
    pub(super) max_lifetime: Option<Spanned<DurationText>>,
    pub(super) lifetime_jitter: Option<Spanned<DurationText>>,
    pub(super) max_message_bytes: Option<Spanned<u64>>,
    pub(super) max_messages_per_s: Option<Spanned<u32>>,
    pub(super) max_bytes_per_s: Option<Spanned<u64>>,
    pub(super) max_messages_burst: Option<Spanned<u32>>,
    pub(super) max_bytes_burst: Option<Spanned<u64>>,
    pub(super) rate_limit_close_after: Option<Spanned<DurationText>>,
}

/// A route's `redirect = { status = 301, to = "https://$host$request_uri" }`.
#[derive(Deserialize)]
pub(super) struct RedirectSection {
    pub(super) status: Option<Spanned<u16>>,
    pub(super) to: Spanned<String>,
}

#[derive(Deserialize)]
pub(super) struct Rewrite {
    pub(super) pattern: String,
    pub(super) to: String,
    /// 301 or 302: answer a redirect when the pattern matches.
    pub(super) redirect: Option<u16>,
}
