//! Quick mode: the configuration the command-line flags make, one
//! catch-all site per `--listen` address sending everything to the
//! `--upstream` servers (the file's fuller shape is `file`'s).

use std::collections::HashSet;
use std::sync::Arc;

use rustls::ClientConfig;

use super::{
    default_max_connections, is_tls_upstream, listen_addr, listen_addrs, upstream_servers,
    usable_cores, Config, ConfigError, Drain, Keepalive, Listener, Ping, Removed, Route, Serves,
    Site, Target, Timeouts, TunnelPolicy, FAIL_TIMEOUT, LINGER_TIMEOUT, MAX_FAILS, MAX_HEAD_LIMIT,
    MAX_WORKERS, MIN_HEAD_BYTES, PING_TIMEOUT,
};
use crate::cli::{Cli, Workers};
use crate::handshake::edits::{RequestEdits, ResponseEdits};
use crate::handshake::forwarded::TrustedProxies;
use crate::limits::Limits;
use crate::relay::splice;
use crate::route::{Location, Routes, VirtualHosts};
use crate::tls::{self, CertFiles, ServerSettings, ServerTls, UpstreamSettings};
use crate::upstream::{Balance, Group, Server, Sources};

/// `--acme-domain` and its companions.
fn acme_from_cli(cli: &Cli) -> Result<crate::acme::AcmeSettings, ConfigError> {
    use crate::acme;
    let bad = |e: String| ConfigError::Tls(format!("--acme-*: {e}"));
    let mut names = Vec::new();
    for name in &cli.acme_domain {
        let name = acme::check_name(name).map_err(bad)?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let directory = match &cli.acme_directory {
        Some(text) => acme::directory_url(text).map_err(bad)?,
        None => acme::LETS_ENCRYPT.to_owned(),
    };
    // An address alone is taken as mail, as certbot's --email is.
    let contact = cli
        .acme_contact
        .iter()
        .map(|c| match c.contains(':') {
            true => c.clone(),
            false => format!("mailto:{c}"),
        })
        .collect();
    Ok(acme::AcmeSettings {
        directory,
        contact,
        names,
        challenge: acme::ChallengeKind::TlsAlpn01,
        storage: cli
            .acme_storage
            .clone()
            .unwrap_or_else(|| acme::DEFAULT_STORAGE.into()),
        ca: cli.acme_ca.clone(),
    })
}

impl Config {
    /// Quick mode: every `--listen` address serves one catch-all site whose
    /// one route sends everything to the `--upstream` servers in turn.
    pub fn from_cli(cli: &Cli) -> Result<Config, ConfigError> {
        if cli.nginx_prefix.is_some() {
            return Err(ConfigError::NginxPrefixAlone);
        }
        if cli.listen.is_empty() {
            return Err(ConfigError::NoListen);
        }
        if cli.http2 && cli.tls_cert.is_none() && cli.acme_domain.is_empty() {
            return Err(ConfigError::Http2WithoutTls);
        }
        let mut listeners = Vec::new();
        let mut seen = HashSet::new();
        for text in &cli.listen {
            let addrs =
                listen_addrs(text).map_err(|e| ConfigError::BadListen(text.to_string(), e))?;
            // One certificate set for all of a name's addresses: they share
            // the session cache and the reload.
            let tls = match (&cli.tls_cert, &cli.tls_key) {
                (Some(cert), Some(key)) => Some(
                    ServerTls::load(ServerSettings {
                        http2: cli.http2,
                        ..ServerSettings::new(vec![CertFiles {
                            cert: cert.clone(),
                            key: key.clone(),
                        }])
                    })
                    .map_err(|e| ConfigError::Tls(e.to_string()))?,
                ),
                _ if !cli.acme_domain.is_empty() => Some(
                    ServerTls::load(ServerSettings {
                        acme: Some(acme_from_cli(cli)?),
                        http2: cli.http2,
                        ..ServerSettings::new(Vec::new())
                    })
                    .map_err(|e| ConfigError::Tls(e.to_string()))?,
                ),
                _ => None,
            };
            for addr in addrs {
                if addr.port() != 0 && !seen.insert(addr) {
                    return Err(ConfigError::DuplicateListen(addr));
                }
                listeners.push(Listener {
                    addr,
                    serves: Serves::Sites(VirtualHosts::new(vec![(Vec::new(), 0)], 0)),
                    tls: tls.clone(),
                    proxy_protocol: cli.proxy_protocol,
                });
            }
        }
        if cli.upstream.is_empty() {
            return Err(ConfigError::NoUpstream);
        }
        let tls = if cli.upstream.iter().any(|u| is_tls_upstream(u)) {
            let settings = UpstreamSettings {
                ca: cli.upstream_ca.clone(),
                ..UpstreamSettings::default()
            };
            Some(tls::upstream_config(&settings).map_err(|e| ConfigError::Tls(e.to_string()))?)
        } else {
            None
        };
        let mut servers = Vec::new();
        for text in &cli.upstream {
            servers.extend(resolve_upstream(text, 1, tls.as_ref())?);
        }
        let sources =
            Sources::from_flags(&cli.source_address, &servers).map_err(ConfigError::BadSource)?;
        let workers = match cli.workers {
            Workers::Count(n) if n.get() > MAX_WORKERS => {
                return Err(ConfigError::TooManyWorkers(n.get()))
            }
            Workers::Count(n) => n.get(),
            Workers::Auto => usable_cores(),
        };
        if !(MIN_HEAD_BYTES..=MAX_HEAD_LIMIT).contains(&cli.max_header_bytes) {
            return Err(ConfigError::HeadLimit(cli.max_header_bytes));
        }
        let pings = [
            ("ping-interval", cli.ping_interval),
            ("ping-timeout", cli.ping_timeout),
        ];
        for (name, span) in [
            ("handshake-timeout", Some(cli.handshake_timeout)),
            ("connect-timeout", Some(cli.connect_timeout)),
            ("response-timeout", Some(cli.response_timeout)),
        ]
        .into_iter()
        .chain(pings)
        {
            if span.is_some_and(|s| s.0.is_zero()) {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        if cli.max_message_bytes == Some(0) {
            return Err(ConfigError::ZeroTimeout("max-message-bytes"));
        }
        let pipes = cli.splice_pipes.unwrap_or_else(splice::default_limit);
        let everything = Location::parse("/").expect("/ is a location");
        Ok(Config {
            listeners,
            sites: vec![Site {
                name: "_".into(),
                routes: Routes::new(vec![everything]),
                route_ids: vec![0],
                response: ResponseEdits::default(),
            }],
            routes: vec![Route {
                location: "/".into(),
                name: "/".into(),
                target: Target::Upstream(0),
                rewrite_redirect: None,
                path_edit: None,
                request: RequestEdits::default(),
                response: ResponseEdits::default(),
                origins: None,
                access: None,
                tunnel: TunnelPolicy {
                    ping: cli.ping_interval.map(|interval| Ping {
                        interval: interval.0,
                        timeout: cli.ping_timeout.map_or(PING_TIMEOUT, |t| t.0),
                        upstream: false,
                    }),
                    max_message_bytes: cli.max_message_bytes,
                    ..TunnelPolicy::default()
                },
            }],
            groups: vec![{
                let mut group = Group::new(
                    "upstream".into(),
                    servers,
                    Balance::RoundRobin,
                    MAX_FAILS,
                    FAIL_TIMEOUT,
                );
                group.keepalive.idle = cli.upstream_keepalive;
                group.sources = sources;
                group
            }],
            workers,
            max_head: cli.max_header_bytes,
            relay: cli.relay,
            pipes_per_worker: pipes.div_ceil(workers),
            limits: Limits {
                max_connections: cli
                    .max_connections
                    .unwrap_or_else(|| default_max_connections(pipes)),
                max_per_worker: 0,
                max_per_ip: cli.max_connections_per_ip,
            },
            admin: cli
                .admin
                .as_deref()
                .map(|text| listen_addr(text).ok_or_else(|| ConfigError::BadAdmin(text.into())))
                .transpose()?,
            access_log: cli.access_log.clone(),
            access_log_format: cli.access_log_format,
            control_socket: cli.control_socket.clone(),
            drain: Drain {
                timeout: cli.drain_timeout.0,
                spread: cli.drain_spread.0.min(cli.drain_timeout.0),
                removed: Removed::Keep,
            },
            trusted_proxies: TrustedProxies::new(cli.trusted_proxy.clone()),
            timeouts: Timeouts {
                handshake: cli.handshake_timeout.0,
                connect: cli.connect_timeout.0,
                response: cli.response_timeout.0,
                idle: cli.idle_timeout.0,
                linger: LINGER_TIMEOUT,
            },
            keepalive: Keepalive {
                timeout: cli.keepalive_timeout.0,
                requests: cli.keepalive_requests.max(1),
            },
        })
    }
}

fn resolve_upstream(
    text: &str,
    weight: u32,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Vec<Server>, ConfigError> {
    upstream_servers(text, weight, tls)
        .map_err(|why| ConfigError::BadUpstream(text.to_string(), why.to_string()))
}
