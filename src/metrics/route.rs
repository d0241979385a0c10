//! Per-route series, labelled by the route's name: open tunnels, upgrades
//! by the status they got, how long tunnels lived, bytes each way, and
//! what the tunnel policy did on the route's tunnels (Pings, dead peers,
//! closes at a limit).
//!
//! A shard keeps one [`Series`] per route name it has served since the
//! process started. Each configuration a worker serves (the current one,
//! and older ones that pairs opened before a reload still use) carries a
//! [`RouteSet`]: its route indices resolved to those series once, when the
//! configuration arrives. A pair reaches its route's counters through its
//! own configuration's set by the route index it already keeps: one
//! bounds-checked index and one pointer, no name looked up, no string
//! made, no lock taken. So a tunnel opened before a reload that renamed or
//! removed its route is still counted, and closed, under the name it
//! opened with.
//!
//! Routes that share a name share their series, wherever they are in the
//! configuration: the name is a label the operator chooses, and choosing
//! the same one twice asks for one sum (a route without a name goes by its
//! location, so every site's `/` route is one series unless named apart).
//! A name stays once served, at its last values, until the process exits:
//! counters never go back, and names come only from the configuration, so
//! they are as many as the operator wrote.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::{header, label, Counter, Shard, CODES, TUNNEL_BUCKETS};
use crate::config::Config;

/// What the tunnel policy did or found on one of a route's tunnels;
/// counted with [`RouteSet::event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteEvent {
    /// The proxy sent a Ping of its own to see whether a peer is there.
    PingSent,
    /// A peer answered none of the proxy's Pings in time: the tunnel was
    /// closed as dead.
    PeerDead,
    /// The proxy closed the tunnel because a limit was broken.
    LimitClose(LimitKind),
}

/// Which limit a tunnel broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// A message longer than the limit: Close 1009, "message too big"
    /// (RFC 6455 §7.4.1).
    MessageSize = 0,
    /// A client stayed over its route's message or byte rate for
    /// `rate_limit_close_after`: Close 1008, "policy violation" (RFC 6455
    /// §7.4.1).
    Rate = 1,
}

impl LimitKind {
    const ALL: [LimitKind; 2] = [LimitKind::MessageSize, LimitKind::Rate];

    /// The `reason` label.
    fn name(self) -> &'static str {
        match self {
            LimitKind::MessageSize => "message_size",
            LimitKind::Rate => "rate",
        }
    }
}

/// One route name's counters in one shard (its worker is the only
/// writer).
#[derive(Debug, Default)]
pub struct Series {
    /// Open tunnels (a gauge: wraps below zero in one shard, sums back).
    tunnels: Counter,
    /// Answers to WebSocket upgrades, indexed like [`CODES`], "other"
    /// last.
    upgrades: [Counter; CODES.len() + 1],
    /// Bytes relayed: client → upstream, upstream → client.
    bytes: [Counter; 2],
    /// Closed tunnels by how long they lived: bucket `i` holds those
    /// within `TUNNEL_BUCKETS[i]` and above the bound before (not
    /// cumulative: the scrape adds them up), the last those above all.
    lived: [Counter; TUNNEL_BUCKETS.len() + 1],
    /// The closed tunnels' lifetimes added up, in milliseconds.
    lived_ms: Counter,
    pings: Counter,
    dead: Counter,
    /// Closes at a limit, indexed by [`LimitKind`].
    limits: [Counter; 2],
}

/// A configuration's routes, by index, resolved to one shard's series.
#[derive(Debug, Default)]
pub struct RouteSet(Box<[Arc<Series>]>);

impl Shard {
    /// Resolves `config`'s routes to this shard's series by name, adding
    /// the names it has not served yet: once per configuration a worker
    /// serves (at start and at each reload), never per connection.
    pub fn route_set(&self, config: &Config) -> RouteSet {
        let mut names = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let series = config
            .routes
            .iter()
            .map(|route| Arc::clone(names.entry(route.name.clone()).or_default()))
            .collect();
        RouteSet(series)
    }
}

impl RouteSet {
    /// Route `route`'s series; `None` for no route (`NONE`).
    fn get(&self, route: u16) -> Option<&Series> {
        self.0.get(usize::from(route)).map(|s| &**s)
    }

    /// The answer to a WebSocket upgrade on `route`: `101`, or the refusal
    /// the proxy or the upstream gave.
    pub fn upgrade_answered(&self, route: u16, code: u16) {
        if let Some(s) = self.get(route) {
            let slot = CODES.iter().position(|&c| c == code).unwrap_or(CODES.len());
            s.upgrades[slot].add(1);
        }
    }

    pub fn tunnel_opened(&self, route: u16) {
        if let Some(s) = self.get(route) {
            s.tunnels.add(1);
        }
    }

    pub fn tunnel_closed(&self, route: u16, lived: Duration) {
        let Some(s) = self.get(route) else {
            return;
        };
        s.tunnels.sub(1);
        let ms = u64::try_from(lived.as_millis()).unwrap_or(u64::MAX);
        let bucket = TUNNEL_BUCKETS
            .iter()
            .position(|&bound| ms as f64 <= bound * 1e3)
            .unwrap_or(TUNNEL_BUCKETS.len());
        s.lived[bucket].add(1);
        s.lived_ms.add(ms);
    }

    /// Bytes a relay turn moved from the client to the upstream. A turn
    /// that moved bytes adds them here as it goes (one indexed add, in
    /// place of the process-wide counter, which the scrape sums from the
    /// routes): a tunnel open for days shows its traffic as it flows, not
    /// when it closes.
    #[inline]
    pub fn bytes_up(&self, route: u16, n: u64) {
        debug_assert!(self.get(route).is_some(), "bytes relayed without a route");
        if let Some(s) = self.get(route) {
            s.bytes[0].add(n);
        }
    }

    /// Bytes a relay turn moved from the upstream to the client; as
    /// [`RouteSet::bytes_up`].
    #[inline]
    pub fn bytes_down(&self, route: u16, n: u64) {
        debug_assert!(self.get(route).is_some(), "bytes relayed without a route");
        if let Some(s) = self.get(route) {
            s.bytes[1].add(n);
        }
    }

    /// Counts what the tunnel policy did on a tunnel of `route` (a pair's
    /// route index under its own configuration, `Core::route`; pass it
    /// with that configuration's set, `Ctx::routes`).
    pub fn event(&self, route: u16, event: RouteEvent) {
        let Some(s) = self.get(route) else {
            return;
        };
        match event {
            RouteEvent::PingSent => s.pings.add(1),
            RouteEvent::PeerDead => s.dead.add(1),
            RouteEvent::LimitClose(kind) => s.limits[kind as usize].add(1),
        }
    }
}

/// One route name's counters summed over the shards.
#[derive(Debug, Default)]
struct Totals {
    /// Open tunnels; signed, as a shard's gauge may be below zero alone.
    tunnels: i64,
    upgrades: [u64; CODES.len() + 1],
    bytes: [u64; 2],
    lived: [u64; TUNNEL_BUCKETS.len() + 1],
    lived_ms: u64,
    pings: u64,
    dead: u64,
    limits: [u64; 2],
}

impl Totals {
    fn add(&mut self, s: &Series) {
        fn sum<const N: usize>(to: &mut [u64; N], from: &[Counter; N]) {
            for (t, f) in to.iter_mut().zip(from) {
                *t = t.wrapping_add(f.get());
            }
        }
        self.tunnels = self.tunnels.wrapping_add(s.tunnels.get() as i64);
        sum(&mut self.upgrades, &s.upgrades);
        sum(&mut self.bytes, &s.bytes);
        sum(&mut self.lived, &s.lived);
        self.lived_ms = self.lived_ms.wrapping_add(s.lived_ms.get());
        self.pings = self.pings.wrapping_add(s.pings.get());
        self.dead = self.dead.wrapping_add(s.dead.get());
        sum(&mut self.limits, &s.limits);
    }
}

/// Every route name's totals: the current configuration's names (at 0 if
/// no shard has served them yet) and every name a shard has served.
fn totals(shards: &[Arc<Shard>], config: &Config) -> BTreeMap<String, Totals> {
    let mut all: BTreeMap<String, Totals> = config
        .routes
        .iter()
        .map(|r| (r.name.clone(), Totals::default()))
        .collect();
    for shard in shards {
        let names = shard.routes.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, series) in names.iter() {
            match all.get_mut(name.as_str()) {
                Some(t) => t.add(series),
                None => {
                    let mut t = Totals::default();
                    t.add(series);
                    all.insert(name.clone(), t);
                }
            }
        }
    }
    all
}

/// Bytes relayed by every shard, client → upstream and upstream →
/// client: the sum of the route series (every relayed byte belongs to a
/// route).
pub(super) fn bytes(shards: &[Arc<Shard>]) -> [u64; 2] {
    let mut bytes = [0u64; 2];
    for shard in shards {
        let names = shard.routes.lock().unwrap_or_else(PoisonError::into_inner);
        for series in names.values() {
            for (b, c) in bytes.iter_mut().zip(&series.bytes) {
                *b = b.wrapping_add(c.get());
            }
        }
    }
    bytes
}

/// Writes the per-route families.
pub(super) fn render(out: &mut String, shards: &[Arc<Shard>], config: &Config) {
    let all = totals(shards, config);
    let routes: Vec<(String, &Totals)> = all.iter().map(|(n, t)| (label(n), t)).collect();

    let name = "wsproxy_tunnels_active";
    header(out, name, "gauge", "Open tunnels, by route.");
    for (route, t) in &routes {
        let _ = writeln!(out, "{name}{{route=\"{route}\"}} {}", t.tunnels);
    }

    let name = "wsproxy_route_upgrades_total";
    header(
        out,
        name,
        "counter",
        "WebSocket upgrade requests answered, by route and the status the client got (101: a tunnel opened; others: the proxy's or the upstream's refusal).",
    );
    let codes: Vec<String> = CODES
        .iter()
        .map(|c| c.to_string())
        .chain(["other".to_string()])
        .collect();
    for (route, t) in &routes {
        for (code, n) in codes.iter().zip(t.upgrades) {
            if n > 0 || code == "101" {
                let _ = writeln!(out, "{name}{{route=\"{route}\",code=\"{code}\"}} {n}");
            }
        }
    }

    let name = "wsproxy_route_bytes_total";
    header(
        out,
        name,
        "counter",
        "Bytes relayed, by route and direction (tunnels, and plain exchanges' heads and bodies).",
    );
    for (route, t) in &routes {
        for (direction, n) in ["client_to_upstream", "upstream_to_client"]
            .iter()
            .zip(t.bytes)
        {
            let _ = writeln!(
                out,
                "{name}{{route=\"{route}\",direction=\"{direction}\"}} {n}"
            );
        }
    }

    let name = "wsproxy_route_tunnel_duration_seconds";
    header(
        out,
        name,
        "histogram",
        "How long closed tunnels lived, by route.",
    );
    for (route, t) in &routes {
        let mut count = 0;
        for (bound, n) in TUNNEL_BUCKETS.iter().zip(t.lived) {
            count += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
            );
        }
        count += t.lived[TUNNEL_BUCKETS.len()];
        let _ = writeln!(
            out,
            "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "{name}_sum{{route=\"{route}\"}} {}",
            t.lived_ms as f64 / 1e3
        );
        let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {count}");
    }

    let name = "wsproxy_route_pings_sent_total";
    header(
        out,
        name,
        "counter",
        "Pings the proxy sent to see whether a tunnel's peer is there, by route.",
    );
    for (route, t) in &routes {
        let _ = writeln!(out, "{name}{{route=\"{route}\"}} {}", t.pings);
    }

    let name = "wsproxy_route_peers_unresponsive_total";
    header(
        out,
        name,
        "counter",
        "Tunnels closed because a peer answered none of the proxy's Pings in time, by route.",
    );
    for (route, t) in &routes {
        let _ = writeln!(out, "{name}{{route=\"{route}\"}} {}", t.dead);
    }

    let name = "wsproxy_route_limit_closes_total";
    header(
        out,
        name,
        "counter",
        "Tunnels the proxy closed for breaking a limit, by route and limit: message_size (Close 1009) or rate (Close 1008).",
    );
    for (route, t) in &routes {
        for kind in LimitKind::ALL {
            let _ = writeln!(
                out,
                "{name}{{route=\"{route}\",reason=\"{}\"}} {}",
                kind.name(),
                t.limits[kind as usize]
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config;

    /// Three routes: two share the name "chat", one goes by its location.
    const FILE: &str = "[[listener]]\naddress = \"127.0.0.1:1\"\n\
        [[server]]\nnames = [\"a.test\"]\n\
        [[server.route]]\nlocation = \"/chat\"\nname = \"chat\"\nupstream = \"127.0.0.1:2\"\n\
        [[server.route]]\nlocation = \"/\"\nupstream = \"127.0.0.1:2\"\n\
        [[server]]\nnames = [\"b.test\"]\n\
        [[server.route]]\nlocation = \"/talk\"\nname = \"chat\"\nupstream = \"127.0.0.1:2\"\n";

    fn loaded(text: &str) -> Config {
        config::parse(text, Path::new("t.toml"), Path::new(".")).expect("a good file")
    }

    fn lines_of<'t>(text: &'t str, family: &str) -> Vec<&'t str> {
        text.lines()
            .filter(|l| l.starts_with(family) && !l.starts_with('#'))
            .collect()
    }

    #[test]
    fn route_events_render_by_route_and_reason() {
        let config = loaded(FILE);
        let shards = [Shard::new(), Shard::new()];
        let sets: Vec<RouteSet> = shards.iter().map(|s| s.route_set(&config)).collect();
        // Route 0 and 2 are both "chat"; route 1 is "/".
        sets[0].event(0, RouteEvent::PingSent);
        sets[1].event(2, RouteEvent::PingSent);
        sets[1].event(1, RouteEvent::PingSent);
        sets[0].event(0, RouteEvent::PeerDead);
        sets[0].event(2, RouteEvent::LimitClose(LimitKind::MessageSize));
        sets[1].event(1, RouteEvent::LimitClose(LimitKind::Rate));
        sets[1].event(1, RouteEvent::LimitClose(LimitKind::Rate));
        // No route: nothing counted, nothing broken.
        sets[0].event(u16::MAX, RouteEvent::PeerDead);
        let text = super::super::render(&shards, &config);
        assert_eq!(
            lines_of(&text, "wsproxy_route_pings_sent_total"),
            [
                "wsproxy_route_pings_sent_total{route=\"/\"} 1",
                "wsproxy_route_pings_sent_total{route=\"chat\"} 2",
            ]
        );
        assert_eq!(
            lines_of(&text, "wsproxy_route_peers_unresponsive_total"),
            [
                "wsproxy_route_peers_unresponsive_total{route=\"/\"} 0",
                "wsproxy_route_peers_unresponsive_total{route=\"chat\"} 1",
            ]
        );
        assert_eq!(
            lines_of(&text, "wsproxy_route_limit_closes_total"),
            [
                "wsproxy_route_limit_closes_total{route=\"/\",reason=\"message_size\"} 0",
                "wsproxy_route_limit_closes_total{route=\"/\",reason=\"rate\"} 2",
                "wsproxy_route_limit_closes_total{route=\"chat\",reason=\"message_size\"} 1",
                "wsproxy_route_limit_closes_total{route=\"chat\",reason=\"rate\"} 0",
            ]
        );
    }

    #[test]
    fn tunnels_upgrades_bytes_and_lifetimes_render_by_route() {
        let config = loaded(FILE);
        let shard = Shard::new();
        let set = shard.route_set(&config);
        set.upgrade_answered(0, 101);
        set.upgrade_answered(2, 101);
        set.upgrade_answered(1, 403);
        set.upgrade_answered(1, 418);
        set.tunnel_opened(0);
        set.tunnel_opened(2);
        set.tunnel_closed(2, Duration::from_millis(1500));
        set.bytes_up(0, 10);
        set.bytes_down(2, 7);
        let text = super::super::render(&[shard], &config);
        let want = [
            "wsproxy_tunnels_active{route=\"/\"} 0",
            "wsproxy_tunnels_active{route=\"chat\"} 1",
            "wsproxy_route_upgrades_total{route=\"/\",code=\"101\"} 0",
            "wsproxy_route_upgrades_total{route=\"/\",code=\"403\"} 1",
            "wsproxy_route_upgrades_total{route=\"/\",code=\"other\"} 1",
            "wsproxy_route_upgrades_total{route=\"chat\",code=\"101\"} 2",
            "wsproxy_route_bytes_total{route=\"chat\",direction=\"client_to_upstream\"} 10",
            "wsproxy_route_bytes_total{route=\"chat\",direction=\"upstream_to_client\"} 7",
            "wsproxy_route_tunnel_duration_seconds_bucket{route=\"chat\",le=\"1\"} 0",
            "wsproxy_route_tunnel_duration_seconds_bucket{route=\"chat\",le=\"10\"} 1",
            "wsproxy_route_tunnel_duration_seconds_bucket{route=\"chat\",le=\"+Inf\"} 1",
            "wsproxy_route_tunnel_duration_seconds_sum{route=\"chat\"} 1.5",
            "wsproxy_route_tunnel_duration_seconds_count{route=\"chat\"} 1",
            "wsproxy_tunnel_bytes_total{direction=\"client_to_upstream\"} 10",
            "wsproxy_tunnel_bytes_total{direction=\"upstream_to_client\"} 7",
        ];
        for line in want {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn a_name_is_escaped_and_stays_after_its_configuration_goes() {
        let shard = Shard::new();
        let old = loaded(&FILE.replace("name = \"chat\"", "name = \"a \\\"q\\\" \\\\ b\""));
        let set = shard.route_set(&old);
        set.tunnel_opened(0);
        let new = loaded(FILE);
        let _current = shard.route_set(&new);
        // The tunnel opened under the old configuration closes through
        // its own set: the old name's gauge goes back to 0.
        set.tunnel_closed(0, Duration::from_secs(1));
        drop(set);
        let text = super::super::render(&[shard], &new);
        assert_eq!(
            lines_of(&text, "wsproxy_tunnels_active"),
            [
                "wsproxy_tunnels_active{route=\"/\"} 0",
                "wsproxy_tunnels_active{route=\"a \\\"q\\\" \\\\ b\"} 0",
                "wsproxy_tunnels_active{route=\"chat\"} 0",
            ]
        );
    }
}
