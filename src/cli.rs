//! The command line. The doc comments here are the `--help` text.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

use crate::config;
use crate::log::Level;
use crate::relay::Policy;
use crate::upstream::Keepalive;

/// A WebSocket reverse proxy for edge nodes holding very many long-lived
/// connections.
///
/// Clients connect to each --listen address; WebSocket upgrades are passed to
/// an --upstream server with the hop-by-hop headers rewritten (what nginx
/// needs `proxy_http_version 1.1` and `proxy_set_header Upgrade/Connection`
/// for), and after the upstream's 101 the connection becomes a tunnel.
/// Plain HTTP requests are proxied too, one request per connection.
/// The flags that make up a configuration in quick mode: a file
/// (`--config`, `--nginx-config`) replaces them all, so it excludes them.
/// A new quick-mode flag goes here.
const QUICK_MODE: [&str; 35] = [
    "listen",
    "upstream",
    "workers",
    "idle_timeout",
    "handshake_timeout",
    "connect_timeout",
    "response_timeout",
    "max_header_bytes",
    "relay",
    "splice_pipes",
    "max_connections",
    "max_connections_per_ip",
    "tls_cert",
    "tls_key",
    "http2",
    "acme_domain",
    "acme_contact",
    "acme_storage",
    "acme_directory",
    "acme_ca",
    "upstream_ca",
    "admin",
    "proxy_protocol",
    "access_log",
    "access_log_format",
    "drain_timeout",
    "drain_spread",
    "trusted_proxy",
    "keepalive_timeout",
    "keepalive_requests",
    "upstream_keepalive",
    "ping_interval",
    "ping_timeout",
    "max_message_bytes",
    "source_address",
];

#[derive(Parser, Debug)]
#[command(name = "wsproxy-fast", version, max_term_width = 100)]
#[command(after_help = "\
Examples:
  wsproxy-fast --listen 0.0.0.0:8080 --upstream 127.0.0.1:9000 --workers auto
  wsproxy-fast --listen [::]:8080 --listen 0.0.0.0:8080 \\
               --upstream 10.0.0.5:9000 --upstream 10.0.0.6:9000 --idle-timeout 24h
  wsproxy-fast --config examples/my-api.toml
  wsproxy-fast --check --config wsproxy.toml
  wsproxy-fast --nginx-config /etc/nginx/nginx.conf
  wsproxy-fast import-nginx /etc/nginx/nginx.conf -o wsproxy.toml

Durations: 500ms, 10s, 5m, 1h, or a bare number of seconds, as in nginx
(--idle-timeout 30 is 30s; so is idle = 30 in a file).
SIGINT or SIGTERM stops the proxy; it exits 0.")]
pub struct Cli {
    /// Read listeners, sites, routes and upstream groups from this TOML file
    /// (see examples/) instead of the flags below, which it replaces.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = QUICK_MODE
    )]
    pub config: Option<PathBuf>,

    /// Run this nginx configuration as it is: it is translated into the
    /// configuration file's form (notes on what changes are logged at
    /// startup) and replaces the flags below, like --config. SIGHUP reads
    /// it again. `wsproxy-fast import-nginx FILE` writes the translation.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "config",
        conflicts_with_all = QUICK_MODE
    )]
    pub nginx_config: Option<PathBuf>,

    /// nginx's prefix (its -p): where relative `root` and `access_log`
    /// paths start; `include` and `ssl_certificate` start from the nginx
    /// file's directory. Default: /usr/share/nginx (Debian's).
    #[arg(long, value_name = "DIR", requires = "nginx_config")]
    pub nginx_prefix: Option<PathBuf>,

    /// Validate the configuration (the file, or the flags), print every
    /// problem with its location, and exit: 0 when it is valid.
    #[arg(long)]
    pub check: bool,

    /// Address to accept clients on: IP:PORT, e.g. 0.0.0.0:8080 or [::]:8080,
    /// or HOST:PORT, e.g. localhost:8080, for every address the name
    /// resolves to at startup (repeatable; an IPv6 address listens on IPv6
    /// only, so list both).
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,

    /// Upstream server to proxy to: HOST:PORT, or wss://HOST[:PORT] over
    /// TLS (repeatable; servers take new connections in turn, and one that
    /// refuses is skipped for the next).
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: Vec<String>,

    /// Terminate TLS on every --listen address with this PEM certificate
    /// chain (leaf first); needs --tls-key. TLS 1.2 and 1.3, ALPN
    /// http/1.1, session tickets and a session cache. SIGHUP re-reads it.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key (PKCS#8, RSA or EC) for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Offer HTTP/2 on the TLS listeners (ALPN h2 before http/1.1):
    /// browsers then send a page's requests and open its WebSockets
    /// (RFC 8441) as streams of one connection. Upstreams are still spoken
    /// to in HTTP/1.1.
    #[arg(long)]
    pub http2: bool,

    /// Terminate TLS on every --listen address with a certificate for NAME
    /// that the proxy gets and renews itself from an ACME CA (Let's
    /// Encrypt unless --acme-directory says), answering the CA's
    /// tls-alpn-01 challenge on those addresses (so one of them must be
    /// what NAME's port 443 reaches). Repeatable: one certificate for all
    /// the names. Instead of --tls-cert.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub acme_domain: Vec<String>,

    /// Contact for the ACME account, e.g. mailto:ops@example.com (the CA
    /// writes before a certificate expires or a policy changes).
    #[arg(long, value_name = "URL", requires = "acme_domain")]
    pub acme_contact: Option<String>,

    /// Where the ACME account key and certificates are kept (created
    /// 0700; keep it across restarts). Default: /var/lib/wsproxy-fast/acme.
    #[arg(long, value_name = "DIR", requires = "acme_domain")]
    pub acme_storage: Option<PathBuf>,

    /// The ACME CA's directory URL, or "staging" for Let's Encrypt's
    /// staging CA. Default: Let's Encrypt.
    #[arg(long, value_name = "URL", requires = "acme_domain")]
    pub acme_directory: Option<String>,

    /// Trust this PEM CA certificate for the ACME server's own HTTPS (a
    /// private CA: step-ca, Pebble) instead of the system's.
    #[arg(long, value_name = "FILE", requires = "acme_domain")]
    pub acme_ca: Option<PathBuf>,

    /// Every client connection starts with a PROXY protocol v1 or v2
    /// header (from an L4 load balancer, e.g. HAProxy `send-proxy`, AWS
    /// NLB): the client it names is what logs, X-Forwarded-For, hashing
    /// and per-address limits use. A connection without one is closed.
    #[arg(long)]
    pub proxy_protocol: bool,

    /// Log one line per finished exchange (client, route, upstream, status,
    /// handshake time, tunnel duration, bytes each way, who closed and
    /// why): `off`, `stdout`, or a file path (appended to).
    #[arg(long, value_name = "off|stdout|PATH", default_value = "off")]
    pub access_log: crate::access_log::Destination,

    /// Access log lines as `text` (key=value) or `json` (one object per
    /// line).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub access_log_format: crate::access_log::Format,

    /// Serve GET /metrics (Prometheus) and GET /healthz on this address,
    /// e.g. 127.0.0.1:9901. No authentication: keep it on loopback or a
    /// management network.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,

    /// Believe the X-Forwarded-For, X-Real-IP and X-Forwarded-Proto of
    /// peers in this range (a load balancer in front): ADDRESS or
    /// ADDRESS/BITS, e.g. 10.0.0.0/8 (repeatable). Their X-Forwarded-For is
    /// kept and the peer appended; anyone else's is replaced by the peer's
    /// address.
    #[arg(long, value_name = "CIDR")]
    pub trusted_proxy: Vec<crate::handshake::forwarded::Cidr>,

    /// Verify wss:// upstream servers against the CA certificates in this
    /// PEM file instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,

    /// Worker threads, each with its own event loop and listening socket:
    /// `auto` for one per usable core (cgroup CPU limits honoured), or a
    /// number.
    #[arg(long, value_name = "auto|N", default_value_t = Workers::Auto)]
    pub workers: Workers,

    /// Close a tunnel after this long with no byte in either direction
    /// (0 = never). nginx's default cuts WebSockets at 60 s; this one does not.
    #[arg(long, value_name = "DURATION", default_value_t = Span(config::IDLE_TIMEOUT))]
    pub idle_timeout: Span,

    /// On SIGTERM or SIGINT, the longest to wait for tunnels to close after
    /// each got a WebSocket Close frame (1001, Going Away) at a frame
    /// boundary; then the rest are closed and the process exits
    /// (0 = close everything at once).
    #[arg(long, value_name = "DURATION", default_value_t = Span(config::DRAIN_TIMEOUT))]
    pub drain_timeout: Span,

    /// Spread a drain's Close frames evenly over this window so clients do
    /// not all reconnect at once (capped at --drain-timeout).
    #[arg(long, value_name = "DURATION", default_value_t = Span(config::DRAIN_SPREAD))]
    pub drain_spread: Span,

    /// Answer 408 to a client that has not sent a whole request head by then.
    #[arg(long, value_name = "DURATION", default_value_t = Span(config::HANDSHAKE_TIMEOUT))]
    pub handshake_timeout: Span,

    /// Give up on an upstream server that has not accepted the connection by
    /// then and try the next one (504 when none is left).
    #[arg(long, value_name = "DURATION", default_value_t = Span(config::CONNECT_TIMEOUT))]
    pub connect_timeout: Span,

    /// Answer 504 when the upstream has not answered the request by then;
    /// also the longest pause inside a plain HTTP response.
    #[arg(long, value_name = "DURATION", default_value_t = Span(config::RESPONSE_TIMEOUT))]
    pub response_timeout: Span,

    /// Keep a client connection open this long between two requests
    /// (HTTP/1.1 keep-alive); 0 = one request per connection.
    #[arg(long, value_name = "DURATION", default_value_t = Span(config::KEEPALIVE_TIMEOUT))]
    pub keepalive_timeout: Span,

    /// Most requests one client connection carries; the last one's answer
    /// closes it.
    #[arg(long, value_name = "N", default_value_t = config::KEEPALIVE_REQUESTS)]
    pub keepalive_requests: u32,

    /// Idle connections each worker keeps open to the upstream servers for
    /// later plain requests (nginx's upstream `keepalive`); 0 = a new
    /// connection per request.
    #[arg(long, value_name = "N", default_value_t = Keepalive::default().idle)]
    pub upstream_keepalive: usize,

    /// Connect to the upstream servers from this local address, e.g.
    /// 10.0.0.2 (repeatable: connections take them in turn, and one with
    /// no free port to a server is passed over for the next). Each address
    /// adds a local port range's worth of connections to each server. A
    /// server connects from those of its own family; with none of its
    /// family, from the address the kernel picks.
    #[arg(long, value_name = "IP")]
    pub source_address: Vec<std::net::IpAddr>,

    /// Send the client a WebSocket Ping after this long without a byte
    /// from it; its Pong is kept from the upstream. Off unless set.
    #[arg(long, value_name = "DURATION")]
    pub ping_interval: Option<Span>,

    /// After a Ping, a client silent this much longer is taken for gone:
    /// the upstream gets Close 1001 and the client's socket is closed
    /// [default: 20s].
    #[arg(long, value_name = "DURATION", requires = "ping_interval")]
    pub ping_timeout: Option<Span>,

    /// Largest WebSocket message a client may send, its fragments added
    /// up; past it the client gets Close 1009 (Message Too Big) and the
    /// upstream Close 1001. Off unless set.
    #[arg(long, value_name = "BYTES")]
    pub max_message_bytes: Option<u64>,

    /// Largest request head accepted, in bytes; a larger one gets 431.
    #[arg(long, value_name = "BYTES", default_value_t = config::MAX_HEAD_BYTES)]
    pub max_header_bytes: usize,

    /// Most client connections at once. At it, a new client takes the slot
    /// of a connection idle between requests or, failing that, of the
    /// oldest one still sending its request head; with neither, new
    /// clients get 503 and, 64 refusals later per worker, accepting pauses
    /// until some close [default: what the open-file limit allows, about
    /// half of it].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Most client connections from one IP address; past it 429 (0 = no
    /// limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_connections_per_ip: usize,

    /// How tunnels move bytes: `splice` keeps them in the kernel
    /// (socket → pipe → socket), `copy` reads and writes through one buffer
    /// per worker, `auto` copies chatty directions and splices streaming ones.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = Policy::Auto)]
    pub relay: Policy,

    /// Most pipes the splice relay may hold at once across all workers
    /// [default: three quarters of what fs.pipe-user-pages-soft allows, at
    /// most 4096]. Pipes are held only while bytes are in flight; beyond
    /// the limit tunnels copy.
    #[arg(long, value_name = "N")]
    pub splice_pipes: Option<usize>,

    /// Serve a Unix control socket at PATH, through which a new process
    /// (--takeover PATH) takes the listening sockets over. Also
    /// `control_socket` in a configuration file, which this overrides.
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,

    /// Take the listening sockets over from the process serving the
    /// control socket PATH: accept on them, then have it stop accepting
    /// and drain its tunnels as SIGTERM does. With the same flags or
    /// --config as a normal start (this binary may be newer); add
    /// --control-socket PATH to be taken over in turn. Listeners this
    /// configuration lacks are closed, new ones bound.
    #[arg(long, value_name = "PATH")]
    pub takeover: Option<PathBuf>,

    /// Log detail on stderr.
    #[arg(long, value_name = "LEVEL", value_enum, default_value_t = Level::Info)]
    pub log_level: Level,
}

/// `--workers`: `auto` or a count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    Auto,
    Count(NonZeroUsize),
}

impl FromStr for Workers {
    type Err = String;

    fn from_str(s: &str) -> Result<Workers, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Workers::Auto);
        }
        s.parse::<NonZeroUsize>()
            .map(Workers::Count)
            .map_err(|_| "use `auto` or a number of workers from 1 up".to_string())
    }
}

impl fmt::Display for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workers::Auto => f.write_str("auto"),
            Workers::Count(n) => write!(f, "{n}"),
        }
    }
}

/// A duration: `500ms`, `10s`, `5m`, `1h`, or a bare number of seconds
/// (nginx reads its time settings that way). The flags and the file both
/// parse durations here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Span, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().map_err(|_| {
            format!("`{s}` is not a duration: use e.g. 500ms, 10s, 5m, 1h, or 30 for seconds")
        })?;
        let scale = match unit {
            "ms" => Duration::from_millis(1),
            "" | "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => {
                return Err(format!(
                    "unknown unit `{unit}` in `{s}`: use ms, s, m or h (a bare number is seconds)"
                ))
            }
        };
        scale
            .checked_mul(u32::try_from(n).map_err(|_| format!("`{s}` is too long"))?)
            .map(Span)
            .ok_or_else(|| format!("`{s}` is too long"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_millis() != 0 || d.is_zero() {
            write!(f, "{}ms", d.as_millis())
        } else if d.as_secs() % 3600 == 0 {
            write!(f, "{}h", d.as_secs() / 3600)
        } else if d.as_secs() % 60 == 0 {
            write!(f, "{}m", d.as_secs() / 60)
        } else {
            write!(f, "{}s", d.as_secs())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_print() {
        let ok = [
            ("500ms", 500, "500ms"),
            ("10s", 10_000, "10s"),
            ("90", 90_000, "90s"),
            ("5m", 300_000, "5m"),
            ("1h", 3_600_000, "1h"),
            ("0", 0, "0ms"),
            // A bare number is seconds, as nginx reads `proxy_read_timeout 30`.
            ("30", 30_000, "30s"),
            (" 7200 ", 7_200_000, "2h"),
            ("1500ms", 1_500, "1500ms"),
        ];
        for (text, millis, shown) in ok {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.0, Duration::from_millis(millis), "{text}");
            assert_eq!(span.to_string(), shown);
            assert_eq!(shown.parse::<Span>().unwrap(), span, "display round-trips");
        }
        for bad in [
            "",
            "s",
            "10x",
            "1.5s",
            "1.5",
            "-1s",
            "-30",
            "30 s",
            "99999999999h",
        ] {
            let err = bad.parse::<Span>().unwrap_err();
            assert!(err.contains(&format!("`{}`", bad.trim())), "{bad:?}: {err}");
        }
    }

    #[test]
    fn workers_parse() {
        assert_eq!("auto".parse::<Workers>(), Ok(Workers::Auto));
        assert_eq!(
            "4".parse::<Workers>(),
            Ok(Workers::Count(NonZeroUsize::new(4).unwrap()))
        );
        assert!("0".parse::<Workers>().is_err());
        assert!("many".parse::<Workers>().is_err());
    }

    #[test]
    fn acme_flags_are_quick_mode_and_need_a_domain() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("wsproxy-fast").chain(args.iter().copied()))
                .map(|_| ())
                .map_err(|e| e.kind())
        };
        use clap::error::ErrorKind;
        assert_eq!(
            parse(&[
                "--listen",
                "0.0.0.0:443",
                "--upstream",
                "127.0.0.1:9000",
                "--acme-domain",
                "a.test",
                "--acme-domain",
                "b.test",
                "--acme-contact",
                "ops@a.test"
            ]),
            Ok(())
        );
        assert_eq!(
            parse(&["--acme-contact", "ops@a.test"]),
            Err(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            parse(&["--config", "w.toml", "--acme-domain", "a.test"]),
            Err(ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            parse(&[
                "--acme-domain",
                "a.test",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem"
            ]),
            Err(ErrorKind::ArgumentConflict)
        );
    }

    #[test]
    fn help_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

/// Translate an nginx configuration file into the TOML configuration
/// file's form (for `--config`).
///
/// Each block of the output is preceded by a comment naming the nginx
/// file and line it came from. Notes on stderr name each directive whose
/// meaning changes or that is dropped, and why. When a directive cannot be
/// expressed, every such directive is listed with what to do, nothing is
/// written, and the exit status is 1.
#[derive(Parser, Debug)]
#[command(
    name = "wsproxy-fast import-nginx",
    bin_name = "wsproxy-fast import-nginx",
    version,
    max_term_width = 100
)]
pub struct ImportCli {
    /// The nginx configuration file, e.g. /etc/nginx/nginx.conf.
    #[arg(value_name = "NGINX_CONF")]
    pub nginx_conf: PathBuf,

    /// Write the TOML here instead of stdout.
    #[arg(short, long, value_name = "OUT.toml")]
    pub output: Option<PathBuf>,

    /// nginx's prefix (its -p): where relative `root` and `access_log`
    /// paths start.
    #[arg(long, value_name = "DIR", default_value = crate::nginx::DEFAULT_PREFIX)]
    pub nginx_prefix: PathBuf,
}
