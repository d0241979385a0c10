//! The command line (clap derive). Doc comments here are the `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::target::{parse_url, Target};

/// WebSocket echo backend and load generator for wsproxy-fast.
///
/// Load modes print one human-readable summary line on stdout; with --json
/// they print one JSON object on stdout instead and the summary on stderr.
/// Exit status: 0 when every connection and echo was good, 1 when a run
/// finished with connection errors or echo mismatches, 2 on bad flags or a
/// failure to set up.
#[derive(Debug, Parser)]
#[command(name = "wsbench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a fast WebSocket echo backend (mio, one SO_REUSEPORT listener per
    /// thread) until killed. Prints `listening on ADDR` to stderr once bound.
    EchoServer(EchoServerArgs),
    /// Send one text message and print the echoed text.
    Send(SendArgs),
    /// Closed loop: every connection keeps --inflight messages outstanding;
    /// reports messages/s, payload Gbit/s and round-trip latency.
    Echo(EchoArgs),
    /// Open loop: send --rate messages/s on a fixed schedule; latency is
    /// measured from each message's scheduled send time.
    Rate(RateArgs),
    /// Each of --conns slots loops: connect, upgrade, one 16-byte echo,
    /// close; reports handshakes/s and handshake latency.
    Handshakes(HandshakesArgs),
    /// Open --conns connections, hold them idle, then check each still echoes.
    Hold(HoldArgs),
    /// Hostile clients for a set time: a connection flood, slowloris, slow
    /// readers, header bombs or idle connections (see --kind); says
    /// `attacking` on stderr once they are all connected, then reports
    /// connections opened, failed and closed by the server.
    Attack(AttackArgs),
    /// Keyed clients of a fleet of proxies: every key connects --rounds
    /// times, and must reach the same backend each time (the 101's
    /// X-Upstream field, from echo-server --name); reports keys seen on more
    /// than one backend (violations) and failed connection attempts.
    Keys(KeysArgs),
    /// Steady keyed echo load on a fleet: --conns connections, a message
    /// every --interval-ms each; a connection the server closes or drops is
    /// opened again at once. Reports messages unanswered at a close, failed
    /// connection attempts by kind, outages and key violations.
    Steady(SteadyArgs),
    /// Mixed load for a set time (long echo streams, paced bulk streams,
    /// connection churn, injected aborts), checking every echoed byte of
    /// every stream against what was sent, and checksums at each stream's
    /// end; reports streams, bytes checked, aborts and any failure.
    Soak(SoakArgs),
}

/// Parses seconds, fractions allowed (`2.5`), into a positive duration.
fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs.is_finite()) {
        return Err("seconds must be positive".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Debug, Args)]
pub struct EchoServerArgs {
    /// Address to listen on; port 0 picks a free port (printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Reactor threads, each with its own listener on the same port.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
    /// Name this backend in every 101 answer (`X-Upstream: NAME`), so that
    /// a client behind proxies learns which backend it reached (`keys` and
    /// `steady` read it). Off by default: the answer carries no such field.
    #[arg(long, value_name = "NAME", value_parser = parse_field_value)]
    pub name: Option<String>,
}

/// A header field value: visible ASCII and spaces, nothing that could end
/// the line.
fn parse_field_value(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        Ok(text.to_owned())
    } else {
        Err("a name is printable ASCII (letters, digits, punctuation, spaces)".into())
    }
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Where to connect: ws://HOST:PORT/PATH, or wss:// over TLS (Host
    /// header = HOST:PORT as written; SNI = HOST).
    #[arg(long, value_name = "ws[s]://HOST:PORT/PATH", value_parser = parse_url)]
    pub url: Target,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Give up after this many seconds without an answer.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub timeout: Duration,
    /// The text to send.
    pub message: String,
}

/// Flags shared by every load mode.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Where to connect: ws://HOST:PORT/PATH, or wss:// for WebSocket over
    /// TLS (Host header = HOST:PORT as written; SNI = HOST).
    #[arg(long, value_name = "ws[s]://HOST:PORT/PATH", value_parser = parse_url)]
    pub url: Target,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Load-generator threads, one mio reactor each; connections are split
    /// evenly across them.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
    /// Print one JSON object on stdout (the summary line goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Most opening handshakes in flight at once, across all threads: keeps
    /// a large --conns from overflowing the server's listen backlog.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub open_concurrency: u32,
}

/// How to speak TLS to a wss:// URL (refused with a ws:// one).
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// wss://: trust the CA certificate(s) in this PEM file (and no other).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// wss://: accept any server certificate (the handshake signature is
    /// still checked).
    #[arg(long)]
    pub insecure: bool,
    /// wss://: share one in-memory session store across all connections, so
    /// that handshakes after the first resume (TLS 1.3 tickets, up to 1024
    /// kept; TLS 1.2 session IDs or tickets); the report says how many did.
    /// Without it resumption is off: every handshake is a full one.
    #[arg(long)]
    pub resume: bool,
    /// wss://: offer only this cipher suite (repeatable, or comma-separated),
    /// e.g. TLS13_AES_128_GCM_SHA256; naming only TLS 1.3 suites offers only
    /// TLS 1.3. Default: rustls' (ring) suites, TLS 1.3 and 1.2.
    #[arg(long = "tls-suite", value_name = "NAME", value_delimiter = ',')]
    pub suites: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Concurrent connections.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,
    /// Payload bytes per message; the first 8 carry a sequence number that
    /// the echo must return.
    #[arg(long, value_name = "BYTES", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub size: u32,
    /// Messages each connection keeps outstanding.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub inflight: u32,
    /// Measurement time in seconds, after all connections are open.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// Bind connections round-robin to 127.0.0.1..=127.0.0.N (1: no bind).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub src_ips: u32,
}

#[derive(Debug, Args)]
pub struct RateArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Concurrent connections; scheduled messages go to them in turn.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,
    /// Payload bytes per message (the first 8 carry a sequence number).
    #[arg(long, value_name = "BYTES", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub size: u32,
    /// Target messages per second, across all connections.
    #[arg(long, value_name = "MSGS_PER_SEC", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// Seconds of scheduled sends, after all connections are open (late
    /// echoes are awaited for up to 2 s more).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// Bind connections round-robin to 127.0.0.1..=127.0.0.N (1: no bind).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub src_ips: u32,
}

#[derive(Debug, Args)]
pub struct HandshakesArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Concurrent slots, each running one connection at a time.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,
    /// Seconds to run.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// Bind connections round-robin to 127.0.0.1..=127.0.0.N (1: no bind);
    /// spreads TIME_WAIT over more 4-tuples for long runs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub src_ips: u32,
}

#[derive(Debug, Args)]
pub struct HoldArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Connections to open and hold.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,
    /// Seconds to hold them idle after `held N` is printed on stderr.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub hold: Duration,
    /// Bind connections round-robin to 127.0.0.1..=127.0.0.N, so that more
    /// connections than one address has ephemeral ports can be opened.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub src_ips: u32,
    /// How long the probe echoes, all sent at once after the hold, may take
    /// to come back: tens of thousands through several hops on a small
    /// machine take longer than the default.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub probe_timeout: Duration,
}

/// What `attack` does with each of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttackKind {
    /// Connect, send a garbage request line (every other connection) and
    /// close at once with a reset; again, flat out, one connection at a
    /// time per thread (--conns is not used).
    Flood,
    /// Send a request line, then a header line every --interval, never
    /// the end of the head.
    Slowloris,
    /// Upgrade, send one 1 MiB message to be echoed, and read 16 bytes of
    /// what comes back every --interval.
    SlowReader,
    /// Send a request head with a 1 MiB header line, close, and start
    /// again, flat out.
    HeaderBomb,
    /// Connect and send nothing.
    Idle,
}

impl AttackKind {
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::Flood => "flood",
            AttackKind::Slowloris => "slowloris",
            AttackKind::SlowReader => "slow-reader",
            AttackKind::HeaderBomb => "header-bomb",
            AttackKind::Idle => "idle",
        }
    }
}

#[derive(Debug, Args)]
pub struct AttackArgs {
    /// Where to attack: ws://HOST:PORT/PATH (plain TCP only); the path and
    /// Host are those of the requests sent.
    #[arg(long, value_name = "ws://HOST:PORT/PATH", value_parser = parse_url)]
    pub url: Target,
    /// The attack.
    #[arg(long, value_enum)]
    pub kind: AttackKind,
    /// Connections held at once (a connection the server closes is opened
    /// again at once).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,
    /// Threads; connections are split evenly across them.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
    /// Seconds to attack.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// Say `attacking` after this many seconds even if not every
    /// connection could be opened yet.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub ramp: Duration,
    /// Seconds between a slowloris connection's header lines, and between
    /// a slow reader's reads.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub interval: Duration,
    /// Bind connections round-robin to 127.0.0.1..=127.0.0.N (1: no bind).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub src_ips: u32,
    /// Print one JSON object on stdout (the summary line goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }

    #[test]
    fn parses_a_load_mode() {
        let cli = Cli::try_parse_from([
            "wsbench",
            "echo",
            "--url",
            "ws://127.0.0.1:9/x",
            "--conns",
            "3",
            "--json",
        ])
        .unwrap();
        let Command::Echo(args) = cli.command else {
            panic!("parsed as another subcommand");
        };
        assert_eq!((args.conns, args.size, args.inflight), (3, 64, 1));
        assert!(args.load.json);
        assert_eq!(args.load.url.path, "/x");
    }

    #[test]
    fn parses_tls_flags() {
        let cli = Cli::try_parse_from([
            "wsbench",
            "handshakes",
            "--url",
            "wss://127.0.0.1:9/",
            "--ca",
            "ca.pem",
            "--resume",
            "--tls-suite",
            "TLS13_AES_128_GCM_SHA256,TLS13_AES_256_GCM_SHA384",
        ])
        .unwrap();
        let Command::Handshakes(args) = cli.command else {
            panic!("parsed as another subcommand");
        };
        assert!(args.load.url.tls && args.load.tls.resume && !args.load.tls.insecure);
        assert_eq!(args.load.tls.suites.len(), 2);
        let both = ["--ca", "ca.pem", "--insecure"];
        let url = ["wsbench", "echo", "--url", "wss://127.0.0.1:9/"];
        assert!(Cli::try_parse_from(url.iter().chain(&both)).is_err());
    }
}

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Where to connect: ws://HOST:PORT/PATH (plain TCP only).
    #[arg(long, value_name = "ws://HOST:PORT/PATH", value_parser = parse_url)]
    pub url: Target,
    /// Seconds to run; streams in progress then finish with a clean close.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub duration: Duration,
    /// Seed of every stream's plan and bytes (default: from the clock; the
    /// report prints it, and each failure names its stream's own seed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Connections carrying echo streams: 200-2000 messages of 1 B-4 KiB,
    /// one at a time, 0-2 ms apart.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub echo_conns: u32,
    /// Connections carrying bulk streams: 4-64 messages of 16 KiB-1 MiB, 4
    /// in flight, paced to --bulk-rate.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub bulk_conns: u32,
    /// Payload bytes per second each bulk connection sends at most (0: no limit).
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    pub bulk_rate: u64,
    /// Slots running churn streams: connect, upgrade, 1-3 messages of
    /// 1-512 B, close.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub churn_conns: u32,
    /// Churn streams per second across all churn slots (at most).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub churn_rate: u32,
    /// Percent of streams that end in an injected fault instead of a clean
    /// close, split evenly: RST mid-stream, FIN without Close mid-stream,
    /// RST during the opening handshake.
    #[arg(long, value_name = "PERCENT", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub abort_percent: u32,
    /// Print one JSON object on stdout (the summary line goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Flags of the keyed modes' requests.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The query argument that carries the key (the proxies' `hash_key =
    /// "query:NAME"`).
    #[arg(long, value_name = "NAME", default_value = "key")]
    pub key_query: String,
    /// Keys are this prefix and the client's index.
    #[arg(long, value_name = "TEXT", default_value = "k")]
    pub key_prefix: String,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Where to connect: ws://HOST:PORT/PATH; the key is appended as a
    /// query argument.
    #[arg(long, value_name = "ws://HOST:PORT/PATH", value_parser = parse_url)]
    pub url: Target,
    /// Distinct keys (clients).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub keys: u32,
    /// Connections per key: every key once, then every key again.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Client threads, each one connection at a time.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Print one JSON object on stdout (the summary line goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SteadyArgs {
    /// Where to connect: ws://HOST:PORT/PATH; the key is appended as a
    /// query argument.
    #[arg(long, value_name = "ws://HOST:PORT/PATH", value_parser = parse_url)]
    pub url: Target,
    /// Connections (one thread and one key each).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub conns: u32,
    /// Milliseconds between two messages of a connection (one in flight).
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_ms: u64,
    /// Seconds to run; then every connection closes cleanly.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// End the run early, as at --duration, once this file exists.
    #[arg(long, value_name = "PATH")]
    pub stop_file: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Print one JSON object on stdout (the summary line goes to stderr).
    #[arg(long)]
    pub json: bool,
}
