//! The validated configuration every worker reads: built from the command
//! line, checked once at startup, then shared read-only. Every default is a
//! named constant here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::access_log;
use crate::buffer::BUF_BYTES;
use crate::files::Root;
use crate::handshake::answer::Status;
use crate::handshake::edits::{RequestEdits, ResponseEdits, Template};
use crate::handshake::forwarded::TrustedProxies;
use crate::handshake::request::REWRITE_SLACK;
use crate::limits::Limits;
use crate::log;
use crate::relay::Policy;
use crate::route::{Access, Origins, PathEdit, RewriteRedirect, Routes, VirtualHosts};
use crate::tls::ServerTls;
use crate::upstream::{CheckKind, Group, OnDown};

mod addr;
mod file;
mod quick;
mod tunnel;

pub use addr::{
    is_tls_upstream, listen_addr, listen_addrs, listen_addrs_with, resolve, upstream_servers,
    ListenError, Resolver,
};
pub use file::{load, parse, parse_with, FileError, LoadError};
pub use tunnel::{Lifetime, Ping, Rate, TunnelPolicy, PING_TIMEOUT};

/// Where the configuration is read from, and read again on SIGHUP.
#[derive(Clone, Debug)]
pub enum Source {
    /// `--config FILE`.
    File(PathBuf),
    /// `--nginx-config FILE`, with nginx's prefix.
    Nginx { path: PathBuf, prefix: PathBuf },
}

impl Source {
    /// The file named on the command line.
    pub fn path(&self) -> &Path {
        match self {
            Source::File(path) | Source::Nginx { path, .. } => path,
        }
    }

    /// Reads and validates the configuration; an nginx file's notes are
    /// logged.
    pub fn load(&self) -> Result<Config, LoadError> {
        match self {
            Source::File(path) => load(path),
            Source::Nginx { path, prefix } => {
                let (config, notes) = crate::nginx::load(path, Some(prefix))?;
                for note in notes {
                    log::write(log::Level::Info, format_args!("nginx: {note}"));
                }
                Ok(config)
            }
        }
    }
}

/// Idle tunnels live an hour by default: long-lived connections are the
/// point, and nginx's 60 s `proxy_read_timeout` default is the complaint.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Time a client has to send its whole request head (slow-loris bound).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time an upstream server has to accept a connection before the next one
/// is tried; HAProxy's customary `timeout connect 5s`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time an upstream has to answer a request, nginx's
/// `proxy_read_timeout` default.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// After an answer the proxy closes, it reads and discards the client's
/// input this long so the client reads the answer instead of a reset
/// (nginx's `lingering_timeout`).
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(5);

/// After SIGTERM, the longest the process waits for drained tunnels to
/// close before it exits: under Kubernetes' default 30 s grace period.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The window a drain's Close frames are spread over, so that clients do
/// not all reconnect (to the next instance) in the same instant.
pub const DRAIN_SPREAD: Duration = Duration::from_secs(5);

/// Default request head limit, in bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Smallest head limit accepted: a browser's upgrade request with cookies
/// needs about this much.
pub const MIN_HEAD_BYTES: usize = 1024;

/// Largest head limit: a head and the proxy's additions must fit one
/// pooled buffer.
pub const MAX_HEAD_LIMIT: usize = BUF_BYTES - REWRITE_SLACK;

/// Most worker threads.
pub const MAX_WORKERS: usize = 1024;

/// How many consecutive failed connects mark an upstream server down
/// (nginx's `max_fails` default).
pub const MAX_FAILS: u32 = 1;

/// How long a server marked down is skipped (nginx's `fail_timeout`).
pub const FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// What an `[upstream.NAME.health]` table checks when it does not say:
/// that the server accepts a connection.
pub const HEALTH_CHECK: CheckKind = CheckKind::Tcp;

/// Request target of http and websocket checks.
pub const HEALTH_PATH: &str = "/";

/// From one check of a server to the next (HAProxy's `inter` is 2 s; a
/// WebSocket upstream's connections live long, so fewer checks do).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// A check not passed within this has failed.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Failed checks in a row that mark a server down (HAProxy's `fall`).
pub const HEALTH_FALL: u32 = 3;

/// Passed checks in a row that mark a down server up (HAProxy's `rise`).
pub const HEALTH_RISE: u32 = 2;

/// What happens to a server's tunnels when checks mark it down: they run
/// on (the server may only be refusing new work).
pub const HEALTH_ON_DOWN: OnDown = OnDown::Keep;

/// How long a client connection may sit idle between two requests before
/// the proxy closes it: nginx's `keepalive_timeout` default.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);

/// Requests one client connection may carry before the proxy closes it
/// after the last one's answer: nginx's `keepalive_requests` default.
pub const KEEPALIVE_REQUESTS: u32 = 1000;

/// What keeps a client connection open between exchanges (HTTP/1.1
/// persistent connections).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time allowed between requests; zero: one request per
    /// connection.
    pub timeout: Duration,
    /// Requests per connection.
    pub requests: u32,
}

impl Default for Keepalive {
    fn default() -> Keepalive {
        Keepalive {
            timeout: KEEPALIVE_TIMEOUT,
            requests: KEEPALIVE_REQUESTS,
        }
    }
}

impl Keepalive {
    /// Whether a connection that has carried `served` requests may carry
    /// another.
    pub fn allows(&self, served: u32) -> bool {
        !self.timeout.is_zero() && served < self.requests
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub handshake: Duration,
    pub connect: Duration,
    pub response: Duration,
    pub idle: Duration,
    pub linger: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            handshake: HANDSHAKE_TIMEOUT,
            connect: CONNECT_TIMEOUT,
            response: RESPONSE_TIMEOUT,
            idle: IDLE_TIMEOUT,
            linger: LINGER_TIMEOUT,
        }
    }
}

/// Everything the workers need, validated: listeners, the sites
/// (virtual servers) behind them, their routes, upstream groups, limits.
/// Sites, routes and groups are indexed by position; a pair records the
/// indices it uses.
pub struct Config {
    pub listeners: Vec<Listener>,
    pub sites: Vec<Site>,
    pub routes: Vec<Route>,
    pub groups: Vec<Group>,
    pub workers: usize,
    /// Request and response head limit, in bytes.
    pub max_head: usize,
    pub timeouts: Timeouts,
    pub relay: Policy,
    /// Most pipes each worker's splice relay may hold.
    pub pipes_per_worker: usize,
    pub limits: Limits,
    /// Where `/metrics` and `/healthz` are served, if anywhere.
    pub admin: Option<SocketAddr>,
    /// The Unix socket a new process takes the listeners over from
    /// (`--takeover`), if any.
    pub control_socket: Option<std::path::PathBuf>,
    /// Where finished exchanges are logged, and how.
    pub access_log: access_log::Destination,
    pub access_log_format: access_log::Format,
    /// Peers whose `X-Forwarded-For` is kept (and the peer appended);
    /// everyone else's is replaced.
    pub trusted_proxies: TrustedProxies,
    pub drain: Drain,
    /// Client connections kept open between requests.
    pub keepalive: Keepalive,
}

/// How tunnels end when the process stops or a reload removes their route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drain {
    /// After SIGTERM, the longest the process waits for tunnels to close
    /// (0: close them all at once and exit).
    pub timeout: Duration,
    /// The Close frames go out spread evenly over this window (at most
    /// `timeout`).
    pub spread: Duration,
    /// What a reload does to tunnels whose route or upstream server it
    /// removed.
    pub removed: Removed,
}

impl Default for Drain {
    fn default() -> Drain {
        Drain {
            timeout: DRAIN_TIMEOUT,
            spread: DRAIN_SPREAD,
            removed: Removed::Keep,
        }
    }
}

/// What happens to a tunnel whose route or upstream server a reload
/// removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Removed {
    /// It runs on under the configuration it started with.
    Keep,
    /// It gets a Close frame (1001) at once and `drain.timeout` to close.
    Drain,
    /// It is closed at once.
    Close,
}

impl Config {
    /// Whether site `site` (by name) still has a route at `location` that
    /// sends to upstream server `server` of group `group`: what a reload
    /// checks for the tunnels opened under the configuration before it.
    pub fn still_routes(&self, site: &str, location: &str, group: &str, server: &str) -> bool {
        self.sites.iter().filter(|s| s.name == site).any(|s| {
            s.route_ids.iter().any(|&r| {
                let route = &self.routes[r];
                route.location == location
                    && match route.target {
                        Target::Upstream(g) | Target::FilesThenUpstream { group: g, .. } => {
                            let g = &self.groups[g];
                            g.name == group && g.servers.iter().any(|sv| sv.name == server)
                        }
                        _ => false,
                    }
            })
        })
    }
}

impl Config {
    /// After a reload: each group that `old` has under the same name keeps
    /// what active checks found of the servers it keeps (see
    /// [`Group::keep_checks`]). Passive health starts afresh.
    pub fn keep_checks(&mut self, old: &Config) {
        for group in &mut self.groups {
            if let Some(before) = old.groups.iter().find(|g| g.name == group.name) {
                group.keep_checks(before);
            }
        }
    }
}

impl Config {
    /// What the configuration holds, in one line for the startup log and
    /// `--check`: "2 listeners, 1 site, 3 routes, 2 upstream groups: app
    /// (10.0.0.5:9000, 10.0.0.6:9000; http checks every 5s);
    /// 127.0.0.1:32000". Parts with nothing in them are left out.
    pub fn summary(&self) -> String {
        let mut parts = vec![log::count(self.listeners.len(), "listener").to_string()];
        for (n, noun) in [(self.sites.len(), "site"), (self.routes.len(), "route")] {
            if n > 0 {
                parts.push(log::count(n, noun).to_string());
            }
        }
        if !self.groups.is_empty() {
            let groups: Vec<String> = self
                .groups
                .iter()
                .map(|g| {
                    let addrs: Vec<String> = g.servers.iter().map(|s| s.addr.to_string()).collect();
                    let checks = g.check.as_ref().map_or(String::new(), |c| {
                        format!(
                            "; {} checks every {}",
                            c.kind.name(),
                            log::Rounded(c.interval)
                        )
                    });
                    // A route's `upstream = "127.0.0.1:9000"` is a group
                    // named for its one address: no need to say it twice.
                    if addrs.len() == 1 && addrs[0] == g.name {
                        g.name.clone()
                    } else {
                        format!("{} ({}{checks})", g.name, addrs.join(", "))
                    }
                })
                .collect();
            parts.push(format!(
                "{}: {}",
                log::count(self.groups.len(), "upstream group"),
                groups.join("; ")
            ));
        }
        parts.join(", ")
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listeners", &self.listeners.len())
            .field("sites", &self.sites.len())
            .field("routes", &self.routes.len())
            .field("groups", &self.groups)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// One address the proxy accepts clients on, and what it does with them.
#[derive(Debug)]
pub struct Listener {
    pub addr: SocketAddr,
    pub serves: Serves,
    /// Clients speak TLS first.
    pub tls: Option<ServerTls>,
    /// A PROXY protocol v1/v2 header comes first and names the client.
    pub proxy_protocol: bool,
}

#[derive(Debug)]
pub enum Serves {
    /// Requests go to the site their Host names.
    Sites(VirtualHosts),
    /// Every request is answered `308` to `https://HOST[:port]TARGET`.
    RedirectHttps { port: Option<u16> },
}

/// A virtual server: the names it answers to and its routes.
#[derive(Debug)]
pub struct Site {
    /// Its first name, or `_` for a catch-all, for logs.
    pub name: String,
    pub routes: Routes,
    /// `routes`' match index → index into [`Config::routes`].
    pub route_ids: Vec<usize>,
    /// Fields added to answers that no route of the site produced (404).
    pub response: ResponseEdits,
}

/// What a matched request is handed to.
#[derive(Debug)]
pub enum Target {
    /// An upstream group, by index into [`Config::groups`].
    Upstream(usize),
    /// Files under a static root.
    Files(Root),
    /// Files under a static root, and what none of the route's
    /// `try_files` entries finds goes to an upstream group (nginx's
    /// `try_files $uri @app` with `location @app { proxy_pass … }`).
    /// WebSocket upgrades and methods other than GET and HEAD go to the
    /// group at once.
    FilesThenUpstream { root: Root, group: usize },
    /// A redirect answered by the proxy (nginx's `return 301 URL`).
    Redirect(Redirect),
    /// Every request answered with this status (nginx's `return 404`).
    Status(Status),
}

/// A route's redirect: its status and where to, with `$host`,
/// `$scheme`, `$request_uri` and `$remote_addr` filled in per request.
#[derive(Clone, Debug)]
pub struct Redirect {
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    pub to: Template,
}

/// The statuses a route's redirect may answer with.
pub const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// A route of a site, with its server's settings folded in.
#[derive(Debug)]
pub struct Route {
    /// The location as written, for logs.
    pub location: String,
    /// What the metrics call it (the `route` label): the file's `name`,
    /// else the location as written. Routes may share a name, and then
    /// share their series.
    pub name: String,
    pub target: Target,
    /// Answers a redirect instead of `target` when its regex matches
    /// (nginx's `rewrite … redirect|permanent`).
    pub rewrite_redirect: Option<RewriteRedirect>,
    pub path_edit: Option<PathEdit>,
    pub request: RequestEdits,
    pub response: ResponseEdits,
    /// Origins a WebSocket upgrade may come from; `None` allows any.
    pub origins: Option<Origins>,
    /// Client addresses that may use the route (nginx's `allow` and
    /// `deny`); `None` lets every address in.
    pub access: Option<Access>,
    /// What the route's tunnels get besides relaying.
    pub tunnel: TunnelPolicy,
}

/// A command-line mistake, worded as what to change.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no --listen address given: add one, e.g. --listen 0.0.0.0:8080")]
    NoListen,
    #[error(
        "--nginx-prefix applies to an --nginx-config file: add --nginx-config FILE, or drop it"
    )]
    NginxPrefixAlone,
    #[error("--listen {}", .1.about(.0))]
    BadListen(String, ListenError),
    #[error("--admin {0:?} is not an address: use IP:PORT, e.g. 127.0.0.1:9901")]
    BadAdmin(String),
    #[error("--listen {0} is given twice")]
    DuplicateListen(SocketAddr),
    #[error("no --upstream given: add the server to proxy to, e.g. --upstream 127.0.0.1:9000")]
    NoUpstream,
    #[error(
        "--http2 needs TLS (browsers speak HTTP/2 over TLS only): add --tls-cert and --tls-key, or --acme-domain"
    )]
    Http2WithoutTls,
    #[error("--upstream {0:?}: {1}")]
    BadUpstream(String, String),
    #[error("--source-address {0}")]
    BadSource(String),
    #[error("--max-header-bytes {0} is out of range: use {MIN_HEAD_BYTES} to {MAX_HEAD_LIMIT}")]
    HeadLimit(usize),
    #[error("--workers {0} is more than {MAX_WORKERS}")]
    TooManyWorkers(usize),
    #[error("--{0} must be more than zero")]
    ZeroTimeout(&'static str),
    #[error("{0}")]
    Tls(String),
}

/// Descriptors kept for everything but client connections: listeners,
/// epoll, wakers, signals, logs.
const FD_RESERVE: u64 = 64;

/// As many connections as the open-file limit leaves room for: each holds
/// a client and an upstream socket. Splice pipes take two each, but at most
/// a quarter of the limit is set aside for them: past what is open, the
/// relay copies instead.
pub fn default_max_connections(pipes: usize) -> usize {
    let soft = crate::sys::nofile_limits().map_or(1024, |(soft, _)| soft);
    max_connections_for(soft, pipes)
}

fn max_connections_for(nofile: u64, pipes: usize) -> usize {
    let for_pipes = (2 * pipes as u64).min(nofile / 4);
    let spare = nofile.saturating_sub(FD_RESERVE + for_pipes);
    usize::try_from(spare / 2).unwrap_or(usize::MAX).max(1)
}

/// Cores this process may run on, honouring affinity masks and cgroup CPU
/// quotas (what `std::thread::available_parallelism` reads on Linux).
pub fn usable_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::addr::tests::localhost;
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn listen(c: &Config) -> Vec<SocketAddr> {
        c.listeners.iter().map(|l| l.addr).collect()
    }

    fn upstreams(c: &Config) -> Vec<SocketAddr> {
        c.groups[0].servers.iter().map(|s| s.addr).collect()
    }

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["wsproxy-fast"];
        argv.extend_from_slice(args);
        Config::from_cli(&Cli::try_parse_from(argv).expect("clap accepts"))
    }

    #[test]
    fn quick_mode_defaults() {
        let c = config(&["--listen", "0.0.0.0:8080", "--upstream", "127.0.0.1:9000"]).unwrap();
        assert_eq!(listen(&c), vec!["0.0.0.0:8080".parse().unwrap()]);
        assert_eq!(upstreams(&c), vec!["127.0.0.1:9000".parse().unwrap()]);
        assert_eq!(c.workers, usable_cores());
        assert_eq!(c.max_head, MAX_HEAD_BYTES);
        assert_eq!(c.timeouts.idle, IDLE_TIMEOUT);
        assert_eq!(c.timeouts.handshake, HANDSHAKE_TIMEOUT);
        assert_eq!(c.relay, Policy::Auto);
        assert!(c.pipes_per_worker >= 1);
    }

    #[test]
    fn default_connection_limit_follows_the_open_file_limit() {
        assert_eq!(max_connections_for(20_000, 768), 9_200);
        assert_eq!(max_connections_for(1024, 768), 352, "pipes get a quarter");
        assert_eq!(max_connections_for(1_048_576, 4096), 520_160);
        assert_eq!(max_connections_for(10, 0), 1);
    }

    #[test]
    fn addresses_table() {
        let c = config(&[
            "--listen",
            "[::]:8080",
            "--listen",
            "9090",
            "--upstream",
            "ws://127.0.0.1:9000/",
            "--upstream",
            "localhost:9001",
            "--workers",
            "3",
            "--idle-timeout",
            "24h",
            "--relay",
            "splice",
            "--splice-pipes",
            "10",
        ])
        .unwrap();
        assert_eq!(
            listen(&c),
            vec![
                "[::]:8080".parse().unwrap(),
                "0.0.0.0:9090".parse().unwrap()
            ]
        );
        let upstreams = upstreams(&c);
        assert_eq!(upstreams[0], "127.0.0.1:9000".parse().unwrap());
        let names: HashSet<&str> = c.groups[0]
            .servers
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names.len(), upstreams.len(), "each address is named apart");
        assert!(upstreams[1..]
            .iter()
            .all(|a| a.port() == 9001 && a.ip().is_loopback()));
        assert_eq!(c.workers, 3);
        assert_eq!(c.timeouts.idle, Duration::from_secs(86_400));
        assert_eq!(c.relay, Policy::Splice);
        assert_eq!(c.pipes_per_worker, 4, "10 pipes over 3 workers, rounded up");
    }

    #[test]
    fn a_bare_number_of_seconds_is_a_duration_on_the_command_line() {
        let base = ["--listen", "127.0.0.1:8080", "--upstream", "127.0.0.1:9000"];
        let args = [
            &base[..],
            &["--idle-timeout", "30", "--connect-timeout", "2"],
            &["--drain-timeout", "40", "--drain-spread", "500ms"],
        ]
        .concat();
        let c = config(&args).unwrap();
        assert_eq!(c.timeouts.idle, Duration::from_secs(30));
        assert_eq!(c.timeouts.connect, Duration::from_secs(2));
        assert_eq!(c.drain.timeout, Duration::from_secs(40));
        assert_eq!(c.drain.spread, Duration::from_millis(500));
        let bad = [&base[..], &["--idle-timeout", "1.5"]].concat();
        let err = Cli::try_parse_from([&["wsproxy-fast"][..], &bad].concat()).unwrap_err();
        assert!(
            err.to_string().contains("a bare number is seconds"),
            "{err}"
        );
    }

    #[test]
    fn a_listen_host_name_listens_on_each_of_its_addresses() {
        let c = config(&["--listen", "localhost:8185", "--upstream", "127.0.0.1:9000"]).unwrap();
        assert_eq!(listen(&c), localhost(8185));
        let err = config(&[
            "--listen",
            "localhost:8185",
            "--listen",
            "127.0.0.1:8185",
            "--upstream",
            "127.0.0.1:9000",
        ])
        .err();
        assert_eq!(
            err,
            Some(ConfigError::DuplicateListen(
                "127.0.0.1:8185".parse().unwrap()
            ))
        );
    }

    #[test]
    fn trusted_proxies_from_flags() {
        let base = ["--listen", "127.0.0.1:8080", "--upstream", "127.0.0.1:9000"];
        let c = config(&base).unwrap();
        assert!(!c.trusted_proxies.trusts("127.0.0.1".parse().unwrap()));
        let args = [
            &base[..],
            &["--trusted-proxy", "10.0.0.0/8"],
            &["--trusted-proxy", "::1"],
        ];
        let c = config(&args.concat()).unwrap();
        assert!(c.trusted_proxies.trusts("10.1.1.1".parse().unwrap()));
        assert!(c.trusted_proxies.trusts("::1".parse().unwrap()));
        assert!(!c.trusted_proxies.trusts("127.0.0.1".parse().unwrap()));
        let bad = [&base[..], &["--trusted-proxy", "10.0.0.1/8"]].concat();
        let err = Cli::try_parse_from([&["wsproxy-fast"][..], &bad].concat()).unwrap_err();
        assert!(
            err.to_string().contains("did you mean 10.0.0.0/8?"),
            "{err}"
        );
    }

    #[test]
    fn mistakes_table() {
        let up = ["--upstream", "127.0.0.1:9000"];
        let listen = ["--listen", "127.0.0.1:8080"];
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (up.to_vec(), "no --listen"),
            (listen.to_vec(), "no --upstream"),
            (
                [&["--listen", "nonsense"][..], &up].concat(),
                "is not an address: use IP:PORT or HOST:PORT",
            ),
            (
                [&["--listen", "300.1.1.1:80"][..], &up].concat(),
                "not an address",
            ),
            (
                [&["--listen", "localhost"][..], &up].concat(),
                "not an address",
            ),
            (
                [&["--listen", "no-such-host.invalid:80"][..], &up].concat(),
                "cannot resolve no-such-host.invalid",
            ),
            (
                [&listen[..], &up, &["--admin", "localhost"]].concat(),
                "--admin \"localhost\" is not an address",
            ),
            ([&listen[..], &listen, &up].concat(), "given twice"),
            (
                [&listen[..], &["--upstream", "127.0.0.1"]].concat(),
                "HOST:PORT",
            ),
            (
                [&listen[..], &["--upstream", "ftp://x:21"]].concat(),
                "unknown scheme",
            ),
            (
                [&listen[..], &["--upstream", "x:1/path"]].concat(),
                "without a path",
            ),
            (
                [&listen[..], &["--upstream", "no-such-host.invalid:80"]].concat(),
                "cannot resolve",
            ),
            (
                [&listen[..], &up, &["--max-header-bytes", "10"]].concat(),
                "out of range",
            ),
            (
                [&listen[..], &up, &["--workers", "5000"]].concat(),
                "more than",
            ),
            (
                [&listen[..], &up, &["--connect-timeout", "0"]].concat(),
                "more than zero",
            ),
        ];
        for (args, want) in cases {
            let err = config(&args).expect_err(&format!("{args:?}")).to_string();
            assert!(err.contains(want), "{args:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
