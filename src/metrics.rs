//! Per-worker counters and histograms, merged when the admin listener is
//! scraped, and their Prometheus text rendering.
//!
//! Each worker owns one [`Shard`] and is its only writer: a counter is
//! bumped with a relaxed load and store (no locked read-modify-write, no
//! cache line shared with another writer), and the scrape only reads. The
//! two histograms are hdrhistograms behind a mutex that the worker takes
//! once per handshake or tunnel, never per message, and the scrape takes
//! briefly to merge. Per-route series are in [`route`].

mod route;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::config::Config;
use crate::shed::Class;
pub use route::{LimitKind, RouteEvent, RouteSet};

/// Status codes counted apart; others land in "other".
const CODES: [u16; 22] = [
    101, 200, 204, 206, 301, 302, 304, 308, 400, 401, 403, 404, 405, 408, 416, 426, 429, 431, 500,
    502, 503, 504,
];

/// Prometheus buckets (upper bounds, seconds) for the handshake time:
/// accept to the answer's head, TLS included.
const HANDSHAKE_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets (seconds) for how long tunnels lived.
const TUNNEL_BUCKETS: [f64; 10] = [
    1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 43_200.0, 86_400.0, 604_800.0,
];

/// Largest handshake time recorded, in microseconds (a minute; slower
/// ones are clamped to it).
const HANDSHAKE_MAX_US: u64 = 60_000_000;

/// Largest tunnel lifetime recorded, in milliseconds (thirty days).
const TUNNEL_MAX_MS: u64 = 30 * 24 * 3600 * 1000;

/// A count written by one thread only.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        // One writer: a plain load and store is exact and cheaper than
        // fetch_add's locked instruction.
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    /// For gauges: the value wraps below zero and sums back on scrape.
    pub fn sub(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_sub(n), Ordering::Relaxed);
    }

    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Which side a TLS handshake failed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsSide {
    Client = 0,
    Upstream = 1,
}

/// One worker's metrics.
#[derive(Debug)]
pub struct Shard {
    /// The worker's time origin for handshake stamps.
    epoch: Instant,
    pub accepted: Counter,
    /// Handshakes by the status the client got, indexed like [`CODES`],
    /// "other" last.
    answered: [Counter; CODES.len() + 1],
    pub connect_failures: Counter,
    /// Upstream connects given up for want of a free source port.
    pub source_ports_exhausted: Counter,
    /// Tunnels ended by a drain (shutdown, or a reload that removed their
    /// route or server).
    pub tunnels_drained: Counter,
    tls_failures: [Counter; 2],
    pub pipes_in_use: Counter,
    /// Client connections kept open between requests, with no byte of the
    /// next one yet.
    pub keepalive_idle: Counter,
    /// Idle upstream connections kept for later requests.
    pub upstream_kept: Counter,
    /// Requests sent over a kept upstream connection.
    pub upstream_reused: Counter,
    /// Open HTTP/2 client connections.
    pub h2_connections: Counter,
    /// Streams opened on HTTP/2 connections: WebSockets (extended
    /// CONNECT), and other requests.
    pub h2_websocket_streams_total: Counter,
    pub h2_request_streams_total: Counter,
    /// Open WebSocket streams on HTTP/2 connections.
    pub h2_websocket_streams: Counter,
    /// Bytes read from clients and dropped while lingering after the
    /// proxy's last answer.
    pub linger_bytes: Counter,
    /// Client connections closed to make room at the connection limit:
    /// idle between requests, and with their request head unfinished.
    shed: [Counter; 2],
    /// Open tunnels by (group, server) name: keyed by name, so tunnels
    /// opened under an older configuration (a reload keeps them) still
    /// count against theirs. Touched once per tunnel opened or closed,
    /// never per message; the lock is this worker's.
    tunnels: Mutex<Tunnels>,
    /// The series of every route name this worker has served, by name:
    /// locked when a configuration arrives ([`Shard::route_set`]) and by
    /// the scrape, never by a pair, which goes through its
    /// configuration's [`RouteSet`]. Tunnel bytes are counted there too.
    routes: Mutex<BTreeMap<String, Arc<route::Series>>>,
    /// Microseconds from accept to the answer's head.
    handshake_us: Mutex<Histogram<u64>>,
    /// Milliseconds tunnels lived.
    tunnel_ms: Mutex<Histogram<u64>>,
}

/// Open tunnels by upstream server name.
#[derive(Debug, Default)]
struct Tunnels {
    by_server: HashMap<(String, String), i64>,
}

/// Where a tunnel goes, by the names the metrics use.
#[derive(Debug)]
pub struct TunnelNames<'a> {
    pub group: &'a str,
    pub server: &'a str,
}

impl Tunnels {
    fn add(&mut self, names: &TunnelNames<'_>, delta: i64) {
        let key = (names.group.to_string(), names.server.to_string());
        *self.by_server.entry(key).or_insert(0) += delta;
    }
}

fn histogram(max: u64) -> Mutex<Histogram<u64>> {
    Mutex::new(Histogram::new_with_bounds(1, max, 2).expect("static histogram bounds are valid"))
}

impl Shard {
    pub fn new() -> Arc<Shard> {
        Arc::new(Shard {
            epoch: Instant::now(),
            accepted: Counter::default(),
            answered: Default::default(),
            connect_failures: Counter::default(),
            source_ports_exhausted: Counter::default(),
            tunnels_drained: Counter::default(),
            tls_failures: Default::default(),
            pipes_in_use: Counter::default(),
            keepalive_idle: Counter::default(),
            upstream_kept: Counter::default(),
            h2_connections: Counter::default(),
            h2_websocket_streams_total: Counter::default(),
            h2_request_streams_total: Counter::default(),
            h2_websocket_streams: Counter::default(),
            upstream_reused: Counter::default(),
            linger_bytes: Counter::default(),
            shed: Default::default(),
            tunnels: Mutex::default(),
            routes: Mutex::default(),
            handshake_us: histogram(HANDSHAKE_MAX_US),
            tunnel_ms: histogram(TUNNEL_MAX_MS),
        })
    }

    /// A handshake's start: microseconds since the worker began, wrapping
    /// every 71 minutes (far longer than any handshake lasts).
    pub fn stamp(&self, at: Instant) -> u32 {
        at.saturating_duration_since(self.epoch).as_micros() as u32
    }

    /// A handshake started at `stamp` was answered `code` at `at`.
    /// Returns the handshake's time in microseconds.
    pub fn answered(&self, code: u16, stamp: u32, at: Instant) -> u32 {
        let slot = CODES.iter().position(|&c| c == code).unwrap_or(CODES.len());
        self.answered[slot].add(1);
        let us = self.stamp(at).wrapping_sub(stamp);
        if let Ok(mut h) = self.handshake_us.lock() {
            h.saturating_record(u64::from(us).clamp(1, HANDSHAKE_MAX_US));
        }
        us
    }

    /// A connection was closed to make room at the connection limit.
    pub fn shed(&self, class: Class) {
        self.shed[class as usize].add(1);
    }

    pub fn tls_failed(&self, side: TlsSide) {
        self.tls_failures[side as usize].add(1);
    }

    pub fn tunnel_opened(&self, names: &TunnelNames<'_>) {
        if let Ok(mut t) = self.tunnels.lock() {
            t.add(names, 1);
        }
    }

    pub fn tunnel_closed(&self, names: &TunnelNames<'_>, lived: Duration) {
        if let Ok(mut t) = self.tunnels.lock() {
            t.add(names, -1);
        }
        if let Ok(mut h) = self.tunnel_ms.lock() {
            let ms = u64::try_from(lived.as_millis()).unwrap_or(u64::MAX);
            h.saturating_record(ms.clamp(1, TUNNEL_MAX_MS));
        }
    }
}

/// Sums one counter over every shard.
fn sum(shards: &[Arc<Shard>], f: impl Fn(&Shard) -> u64) -> u64 {
    shards.iter().map(|s| f(s)).fold(0, u64::wrapping_add)
}

/// Open tunnels by (group, server) name, every worker's added up.
pub fn tunnels_by_server(shards: &[Arc<Shard>]) -> BTreeMap<(String, String), i64> {
    let mut by_server = BTreeMap::new();
    for shard in shards {
        let Ok(t) = shard.tunnels.lock() else {
            continue;
        };
        for (server, n) in &t.by_server {
            *by_server.entry(server.clone()).or_insert(0) += n;
        }
    }
    by_server
}

/// Escapes a label value (Prometheus text format: backslash, quote,
/// newline).
pub(crate) fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Merges the shards' histogram and writes it with `bounds` (seconds);
/// `unit` is the recorded unit in seconds.
fn write_histogram(
    out: &mut String,
    name: &str,
    help: &str,
    histograms: &[&Mutex<Histogram<u64>>],
    bounds: &[f64],
    unit: f64,
) {
    let mut merged: Option<Histogram<u64>> = None;
    for h in histograms {
        let Ok(h) = h.lock() else { continue };
        match &mut merged {
            None => merged = Some(h.clone()),
            Some(m) => {
                let _ = m.add(&*h);
            }
        }
    }
    header(out, name, "histogram", help);
    let Some(merged) = merged else {
        return;
    };
    for bound in bounds {
        let top = (bound / unit) as u64;
        let count = merged.count_between(0, top);
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", merged.len());
    // hdrhistogram keeps counts, not the exact sum: the mean times the
    // count is within its 1% precision.
    let _ = writeln!(
        out,
        "{name}_sum {}",
        merged.mean() * merged.len() as f64 * unit
    );
    let _ = writeln!(out, "{name}_count {}", merged.len());
}

/// The Prometheus text exposition of every worker's shard.
pub fn render(shards: &[Arc<Shard>], config: &Config) -> String {
    let mut out = String::new();
    let name = "wsproxy_connections_accepted_total";
    header(&mut out, name, "counter", "Client connections accepted.");
    let _ = writeln!(out, "{name} {}", sum(shards, |s| s.accepted.get()));

    let name = "wsproxy_handshakes_total";
    header(
        &mut out,
        name,
        "counter",
        "Requests answered, by the status the client got (101: a tunnel opened).",
    );
    for (slot, code) in CODES
        .iter()
        .map(|c| c.to_string())
        .chain(["other".to_string()])
        .enumerate()
    {
        let n = sum(shards, |s| s.answered[slot].get());
        if n > 0 || code == "101" {
            let _ = writeln!(out, "{name}{{code=\"{code}\"}} {n}");
        }
    }

    // Every server of the current configuration, at 0 if idle, plus any
    // an older configuration's tunnels still hold.
    let mut by_server: BTreeMap<(String, String), i64> = config
        .groups
        .iter()
        .flat_map(|g| {
            g.servers
                .iter()
                .map(|s| ((g.name.clone(), s.name.clone()), 0))
        })
        .collect();
    for shard in shards {
        let Ok(t) = shard.tunnels.lock() else {
            continue;
        };
        for (server, n) in &t.by_server {
            *by_server.entry(server.clone()).or_insert(0) += n;
        }
    }
    let name = "wsproxy_upstream_tunnels_active";
    header(&mut out, name, "gauge", "Open tunnels, by upstream server.");
    for ((group, server), n) in &by_server {
        let _ = writeln!(
            out,
            "{name}{{group=\"{}\",server=\"{}\"}} {n}",
            label(group),
            label(server)
        );
    }

    let name = "wsproxy_tunnel_bytes_total";
    header(&mut out, name, "counter", "Bytes relayed, by direction.");
    let [up, down] = route::bytes(shards);
    let _ = writeln!(out, "{name}{{direction=\"client_to_upstream\"}} {up}");
    let _ = writeln!(out, "{name}{{direction=\"upstream_to_client\"}} {down}");

    let name = "wsproxy_upstream_connect_failures_total";
    header(
        &mut out,
        name,
        "counter",
        "Upstream connects refused, timed out or failed their TLS handshake.",
    );
    let _ = writeln!(out, "{name} {}", sum(shards, |s| s.connect_failures.get()));

    let name = "wsproxy_upstream_source_ports_exhausted_total";
    header(
        &mut out,
        name,
        "counter",
        "Upstream connects given up because no source address had a free port to the server.",
    );
    let n = sum(shards, |s| s.source_ports_exhausted.get());
    let _ = writeln!(out, "{name} {n}");

    let name = "wsproxy_tunnels_drained_total";
    header(
        &mut out,
        name,
        "counter",
        "Tunnels sent a Close frame (1001) by a drain: shutdown, a reload that removed their route, or their upstream server marked down by health checks.",
    );
    let _ = writeln!(out, "{name} {}", sum(shards, |s| s.tunnels_drained.get()));

    let name = "wsproxy_tls_handshake_failures_total";
    header(
        &mut out,
        name,
        "counter",
        "TLS handshakes that failed, by side.",
    );
    for (side, i) in [("client", 0), ("upstream", 1)] {
        let n = sum(shards, |s| s.tls_failures[i].get());
        let _ = writeln!(out, "{name}{{side=\"{side}\"}} {n}");
    }

    let name = "wsproxy_splice_pipes_in_use";
    header(
        &mut out,
        name,
        "gauge",
        "Pipes holding tunnel bytes right now.",
    );
    let _ = writeln!(out, "{name} {}", sum(shards, |s| s.pipes_in_use.get()));

    let name = "wsproxy_client_connections_idle";
    header(
        &mut out,
        name,
        "gauge",
        "Client connections kept open between two requests.",
    );
    let _ = writeln!(out, "{name} {}", sum(shards, |s| s.keepalive_idle.get()));

    let name = "wsproxy_upstream_connections_idle";
    header(
        &mut out,
        name,
        "gauge",
        "Idle upstream connections kept for later requests.",
    );
    let _ = writeln!(out, "{name} {}", sum(shards, |s| s.upstream_kept.get()));

    let name = "wsproxy_h2_connections";
    header(&mut out, name, "gauge", "Open HTTP/2 client connections.");
    let _ = writeln!(out, "{name} {}", sum(shards, |s| s.h2_connections.get()));

    let name = "wsproxy_h2_streams_total";
    header(
        &mut out,
        name,
        "counter",
        "Streams opened on HTTP/2 client connections, by kind: WebSockets (RFC 8441 extended CONNECT) and other requests.",
    );
    let n = sum(shards, |s| s.h2_websocket_streams_total.get());
    let _ = writeln!(out, "{name}{{kind=\"websocket\"}} {n}");
    let n = sum(shards, |s| s.h2_request_streams_total.get());
    let _ = writeln!(out, "{name}{{kind=\"request\"}} {n}");

    let name = "wsproxy_h2_websocket_streams";
    header(
        &mut out,
        name,
        "gauge",
        "Open WebSockets carried as streams of HTTP/2 client connections.",
    );
    let _ = writeln!(
        out,
        "{name} {}",
        sum(shards, |s| s.h2_websocket_streams.get())
    );

    let name = "wsproxy_upstream_connections_reused_total";
    header(
        &mut out,
        name,
        "counter",
        "Requests sent over a kept upstream connection.",
    );
    let _ = writeln!(out, "{name} {}", sum(shards, |s| s.upstream_reused.get()));

    let name = "wsproxy_connections_shed_total";
    header(
        &mut out,
        name,
        "counter",
        "Client connections closed to make room at the connection limit, by state: idle between requests, or request head unfinished.",
    );
    for class in [Class::Idle, Class::Head] {
        let n = sum(shards, |s| s.shed[class as usize].get());
        let _ = writeln!(out, "{name}{{state=\"{}\"}} {n}", class.name());
    }

    let name = "wsproxy_linger_bytes_total";
    header(
        &mut out,
        name,
        "counter",
        "Bytes read from clients and dropped while closing after the proxy's last answer, a bounded amount per connection.",
    );
    let _ = writeln!(out, "{name} {}", sum(shards, |s| s.linger_bytes.get()));

    let handshakes: Vec<_> = shards.iter().map(|s| &s.handshake_us).collect();
    write_histogram(
        &mut out,
        "wsproxy_handshake_duration_seconds",
        "Accept to the answer's head (TLS and upstream connect included).",
        &handshakes,
        &HANDSHAKE_BUCKETS,
        1e-6,
    );
    let tunnels: Vec<_> = shards.iter().map(|s| &s.tunnel_ms).collect();
    write_histogram(
        &mut out,
        "wsproxy_tunnel_duration_seconds",
        "How long closed tunnels lived.",
        &tunnels,
        &TUNNEL_BUCKETS,
        1e-3,
    );
    route::render(&mut out, shards, config);
    crate::status::write_metrics(&mut out, config, Instant::now());
    let acme = config
        .listeners
        .iter()
        .any(|l| l.tls.as_ref().is_some_and(|t| t.acme().is_some()));
    if acme {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        crate::acme::REGISTRY.render(&mut out, now);
    }
    out
}
