//! Upstream groups: their servers and balancing rule ([`Group`]), which
//! server a new connection tries first ([`Picker`], one per worker), and
//! the order of the others when a connect fails ([`Attempt`]).
//! A backup server takes connections only while every other server of
//! its group is down (nginx's `backup`).
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | groups, smooth weighted round-robin, least-connections, backups, attempts |
//! | `hash.rs` | hash keys from a request, the consistent-hash ring |
//! | `health.rs` | passive and active health and live counts, shared through atomics |
//! | `check.rs` | active health checks: their settings, the probe, its verdict |
//! | `source.rs` | source addresses: binding before connect, their rotation, running out of ports |
//!
//! Balancing state (round-robin positions) is per worker and touches no
//! shared memory; health and live counts are shared by every worker.

mod check;
mod hash;
mod health;
pub mod source;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub(crate) use check::{accept_for, websocket_key};
pub use check::{probe, CheckKind, HealthCheck, OnDown, Verdict};
use hash::Ring;
pub use hash::{key_of, HashKey};
use health::Health;
pub use health::{Change, CheckState};
pub use source::Sources;
use source::Spread;

/// One upstream server of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Where to connect.
    pub addr: SocketAddr,
    /// As written in the config, for logs; also names its points on the
    /// hash ring, so renaming a server moves its keys.
    pub name: String,
    /// Relative share of new connections, at least 1.
    pub weight: u32,
    /// TLS to a `wss://` or `https://` server.
    pub tls: Option<UpstreamTls>,
    /// A standby: picked only while every primary (non-backup) server of
    /// the group is down.
    pub backup: bool,
}

/// How to speak TLS to one server: the group's client settings and the
/// name to send as SNI and to verify the certificate against.
#[derive(Clone)]
pub struct UpstreamTls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub name: rustls::pki_types::ServerName<'static>,
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &UpstreamTls) -> bool {
        self.name == other.name && std::sync::Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for UpstreamTls {}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpstreamTls({:?})", self.name)
    }
}

/// How a group spreads new connections over its servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round-robin, as nginx's.
    RoundRobin,
    /// The server with the fewest open connections per unit of weight.
    LeastConn,
    /// Consistent hashing on a request key; round-robin when the key is absent.
    Hash(HashKey),
}

/// Idle connections to a group's servers that each worker keeps for later
/// plain requests: nginx's `keepalive`, `keepalive_timeout` and
/// `keepalive_requests` in an `upstream` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Most idle connections a worker keeps to the group (the least
    /// recently used go first); 0 turns keeping off.
    pub idle: usize,
    /// How long an idle connection is kept.
    pub timeout: Duration,
    /// Requests one connection carries before it is closed.
    pub requests: u32,
}

/// nginx's defaults for an upstream's `keepalive` (on by default in nginx
/// since 1.29.7): 32 idle connections, 60 s, 1000 requests.
impl Default for Keepalive {
    fn default() -> Keepalive {
        Keepalive {
            idle: 32,
            timeout: Duration::from_secs(60),
            requests: 1000,
        }
    }
}

/// An upstream group: configuration plus its shared runtime state (health
/// and live counts, atomics). Lives inside the Arc'd config, so every
/// worker sees the same health and counts. A clone snapshots that state
/// and then keeps its own.
#[derive(Clone, Debug)]
pub struct Group {
    /// The group's name in the config.
    pub name: String,
    /// At least one, at most `u16::MAX`.
    pub servers: Vec<Server>,
    /// The balancing rule.
    pub balance: Balance,
    /// Consecutive connect failures that mark a server down; 0 = never.
    pub max_fails: u32,
    /// How long a down server is skipped, and the most time between two
    /// failures that still count as consecutive.
    pub fail_timeout: Duration,
    /// Idle connections kept for plain requests.
    pub keepalive: Keepalive,
    /// Active health checks of its servers, if configured.
    pub check: Option<HealthCheck>,
    /// Local addresses its connections come from; none: the kernel picks.
    pub sources: Sources,
    /// Only for [`Balance::Hash`].
    ring: Option<Ring>,
    health: Health,
}

impl Group {
    /// A group with fresh health. The caller has validated the servers: at
    /// least one, at most `u16::MAX`, every weight at least 1, at least one
    /// not a backup.
    pub fn new(
        name: String,
        servers: Vec<Server>,
        balance: Balance,
        max_fails: u32,
        fail_timeout: Duration,
    ) -> Group {
        debug_assert!(!servers.is_empty(), "group {name} has no servers");
        debug_assert!(
            servers.iter().all(|s| s.weight >= 1),
            "group {name}: weight 0"
        );
        debug_assert!(
            servers.iter().any(|s| !s.backup),
            "group {name}: only backup servers"
        );
        assert!(
            servers.len() <= usize::from(u16::MAX),
            "group {name}: too many servers"
        );
        let ring = matches!(balance, Balance::Hash(_)).then(|| Ring::new(&servers));
        let health = Health::new(servers.len());
        Group {
            name,
            servers,
            balance,
            max_fails,
            fail_timeout,
            keepalive: Keepalive::default(),
            check: None,
            sources: Sources::default(),
            ring,
            health,
        }
    }

    /// Passive health: a connect to `server` failed (refused or timed out).
    /// After `max_fails` consecutive failures, each within `fail_timeout`
    /// of the previous, the server is skipped until `fail_timeout` has
    /// passed since the last failure (nginx semantics). A failure right
    /// after that down time (the probe) marks it down again at once.
    pub fn connect_failed(&self, server: usize, now: Instant) {
        self.health
            .failed(server, now, self.max_fails, self.fail_timeout);
    }

    /// A connect to `server` succeeded: its failure count resets.
    pub fn connect_succeeded(&self, server: usize) {
        self.health.succeeded(server);
    }

    /// Whether `server` is to be skipped at `now`: passive health or
    /// active checks say it is down (either is enough).
    pub fn is_down(&self, server: usize, now: Instant) -> bool {
        self.health.is_checked_down(server) || self.health.is_down(server, now, self.max_fails)
    }

    /// Which servers may take a new connection at `now`: those up, and of
    /// the backups only while every primary server is down. Health is read
    /// once for the primaries, then once per server asked about.
    pub fn usable(&self, now: Instant) -> impl Fn(usize) -> bool + '_ {
        let standby = self.primaries_down(now, |_| false);
        move |i| !self.is_down(i, now) && (standby || !self.servers[i].backup)
    }

    /// Whether every primary server is down at `now` or `out` (already
    /// tried, say).
    fn primaries_down(&self, now: Instant, out: impl Fn(usize) -> bool) -> bool {
        let mut primaries = self.servers.iter().enumerate().filter(|(_, s)| !s.backup);
        primaries.all(|(i, _)| out(i) || self.is_down(i, now))
    }

    /// Whether `server` is a primary (not a backup).
    fn is_primary(&self, server: usize) -> bool {
        !self.servers[server].backup
    }

    /// Whether passive health alone has `server` down at `now`.
    pub fn is_passively_down(&self, server: usize, now: Instant) -> bool {
        self.health.is_down(server, now, self.max_fails)
    }

    /// Active health: a check of `server` ended at `now` with `verdict`.
    /// Returns the change it made, if it crossed `fall` or `rise`. Only
    /// the checker thread calls this. Without a check configured nothing
    /// changes.
    pub fn check_ended(&self, server: usize, verdict: Verdict, now: Instant) -> Option<Change> {
        let check = self.check.as_ref()?;
        self.health
            .checked(server, verdict, now, check.fall, check.rise)
    }

    /// What checks found of `server`.
    pub fn check_state(&self, server: usize) -> CheckState {
        self.health.check_state(server)
    }

    /// After a reload: each server that `old` (the same group in the
    /// configuration before) has under the same name keeps what checks
    /// found of it, shared, so the checker's next verdicts reach both.
    /// Other servers start afresh (up), and so does every server of a
    /// group that no longer has checks.
    pub fn keep_checks(&mut self, old: &Group) {
        if self.check.is_none() {
            return;
        }
        for i in 0..self.servers.len() {
            let name = &self.servers[i].name;
            if let Some(j) = old.servers.iter().position(|s| &s.name == name) {
                self.health.share_checks(i, &old.health, j);
            }
        }
    }

    /// Least-connections bookkeeping: a connection to `server` was opened.
    /// Each call pairs with one [`Group::closed`].
    pub fn opened(&self, server: usize) {
        self.health.opened(server);
    }

    /// A connection to `server` counted by [`Group::opened`] closed.
    pub fn closed(&self, server: usize) {
        self.health.closed(server);
    }

    /// Open connections to `server`, across all workers.
    pub fn active(&self, server: usize) -> u32 {
        self.health.active(server)
    }
}

/// A worker's balancing state for every group (smooth weighted round-robin
/// positions, as nginx's ngx_http_upstream_round_robin), indexed like the
/// config's groups. Touches no shared state except reading health/counts.
#[derive(Clone, Debug)]
pub struct Picker {
    /// Per group, each server's current weight.
    current: Vec<Box<[i64]>>,
    /// Per group, the rotation over its source addresses; and running
    /// out of source ports, as said.
    pub sources: Spread,
}

impl Picker {
    /// `worker`: the worker id, so workers start their rotations at
    /// different servers: worker `w` begins `w` picks into the sequence.
    pub fn new(groups: &[Group], worker: usize) -> Picker {
        let current = groups.iter().map(|group| {
            let mut current = vec![0; group.servers.len()].into_boxed_slice();
            // The primaries' sequence repeats every `total` picks.
            let primaries = group.servers.iter().filter(|s| !s.backup);
            let total: u64 = primaries.map(|s| u64::from(s.weight)).sum();
            for _ in 0..(worker as u64 % total.max(1)) {
                smooth(&mut current, group, |i| group.is_primary(i));
            }
            current
        });
        Picker {
            current: current.collect(),
            sources: Spread::new(groups.len()),
        }
    }

    /// The first server for a new connection to group `index`. `key`: the
    /// hash key bytes when the group hashes (for ClientIp the caller passes
    /// the IP's octets); a hashing group with key None falls back to
    /// round-robin. Down servers are skipped, and backups while a primary
    /// is up ([`Group::usable`]); if every server is down, pick among the
    /// primaries as if none were (better to try than to refuse). LeastConn:
    /// the usable server with the fewest active/weight, ties broken by this
    /// worker's smooth weighted round-robin so equal counts spread.
    pub fn first(
        &mut self,
        index: usize,
        group: &Group,
        key: Option<&[u8]>,
        now: Instant,
    ) -> Attempt {
        let current = &mut self.current[index];
        debug_assert_eq!(
            current.len(),
            group.servers.len(),
            "group {index} is not {}",
            group.name
        );
        let up = group.usable(now);
        let primary = |i: usize| group.is_primary(i);
        let server = match (&group.balance, &group.ring, key) {
            (Balance::Hash(_), Some(ring), Some(key)) => Some(ring.lookup(hash::hash(key), up)),
            (Balance::LeastConn, ..) => {
                least_conn(current, group, up).or_else(|| least_conn(current, group, primary))
            }
            _ => smooth(current, group, up),
        };
        let server = server
            .or_else(|| smooth(current, group, primary))
            .unwrap_or(0);
        Attempt::new(server)
    }
}

/// The `usable` server with the fewest open connections per unit of
/// weight; ties go to a step of [`smooth`] among the tied. None when no
/// server is usable. Counts read twice may have moved in between (other
/// workers); if that leaves no server tied, any usable one will do.
fn least_conn(current: &mut [i64], group: &Group, usable: impl Fn(usize) -> bool) -> Option<usize> {
    let load = |i: usize| {
        (
            u64::from(group.active(i)),
            u64::from(group.servers[i].weight),
        )
    };
    // a/wa < b/wb  ⇔  a·wb < b·wa, exact in integers (u32 · u32 fits u64).
    let fewer = |a: (u64, u64), b: (u64, u64)| a.0 * b.1 < b.0 * a.1;
    let min = (0..current.len())
        .filter(|&i| usable(i))
        .map(load)
        .reduce(|a, b| if fewer(b, a) { b } else { a })?;
    smooth(current, group, |i| usable(i) && !fewer(min, load(i)))
        .or_else(|| smooth(current, group, &usable))
}

/// One step of nginx's smooth weighted round-robin over the servers that
/// are `usable`: each gains its weight, the highest (first on a tie) is
/// picked and loses the total. Over `total` steps each server is picked
/// `weight` times, interleaved. None when no server is usable.
fn smooth(current: &mut [i64], group: &Group, usable: impl Fn(usize) -> bool) -> Option<usize> {
    let mut total = 0;
    let mut best: Option<usize> = None;
    for (i, server) in group.servers.iter().enumerate().filter(|&(i, _)| usable(i)) {
        current[i] += i64::from(server.weight);
        total += i64::from(server.weight);
        if best.is_none_or(|b| current[i] > current[b]) {
            best = Some(i);
        }
    }
    let best = best?;
    current[best] -= total;
    Some(best)
}

/// One connection's walk through a group's servers: the first pick, then
/// each other server at most once, in index order after the first (the
/// primaries, then the backups), until one accepts.
///
/// The rule for down servers: each step skips servers that are down at
/// that step, and backups while some primary server is neither down nor
/// tried (so a walk reaches the backups once every primary has failed it,
/// as nginx's); the walk ends once every untried server is skipped —
/// unless every server of the group is down, in which case nothing is
/// skipped (as [`Picker::first`]: better to try than to refuse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    first: u16,
    server: u16,
}

impl Attempt {
    /// A walk that starts at `server`.
    pub fn new(server: usize) -> Attempt {
        let server = u16::try_from(server).expect("group size checked by Group::new");
        Attempt {
            first: server,
            server,
        }
    }

    /// The server this attempt connects to.
    pub fn server(self) -> usize {
        usize::from(self.server)
    }

    /// The next server to try after this one failed, or None when every
    /// server has been tried or every untried one is down (see the type's
    /// rule).
    pub fn next(self, group: &Group, now: Instant) -> Option<Attempt> {
        let n = group.servers.len();
        let first = usize::from(self.first);
        // Walk order: the primaries in index order from `first`, then the
        // backups likewise; the servers before this one have been tried.
        let order = |i: usize| (group.servers[i].backup, (i + n - first) % n);
        let here = order(self.server());
        let untried = (0..n).filter(|&i| order(i) > here);
        let standby = group.primaries_down(now, |i| order(i) <= here);
        let usable = |i: usize| !group.is_down(i, now) && (standby || group.is_primary(i));
        let found = untried
            .clone()
            .filter(|&i| usable(i))
            .min_by_key(|&i| order(i));
        let server = match found {
            Some(up) => up,
            None if (0..n).all(|i| group.is_down(i, now)) => untried.min_by_key(|&i| order(i))?,
            None => return None,
        };
        Some(Attempt {
            server: server as u16,
            ..self
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The servers a connection tries from `first`, with `down` failed
    /// beforehand and, if `mark`, each tried one failing too.
    fn walk(g: &Group, first: usize, down: &[usize], mark: bool) -> Vec<usize> {
        let now = Instant::now();
        down.iter().for_each(|&s| g.connect_failed(s, now));
        let mut seen = Vec::new();
        let mut attempt = Some(Attempt::new(first));
        while let Some(a) = attempt {
            seen.push(a.server());
            if mark {
                g.connect_failed(a.server(), now);
            }
            attempt = a.next(g, now);
        }
        seen
    }

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn group(weights: &[u32], balance: Balance) -> Group {
        let servers = weights.iter().enumerate().map(|(i, &weight)| Server {
            addr: SocketAddr::from(([10, 0, 0, i as u8 + 1], 80)),
            name: format!("10.0.0.{}:80", i + 1),
            weight,
            tls: None,
            backup: false,
        });
        Group::new("g".into(), servers.collect(), balance, 1, TIMEOUT)
    }

    /// A group whose servers at `backups` are backups.
    fn with_backups(weights: &[u32], backups: &[usize], balance: Balance) -> Group {
        let mut servers = group(weights, balance.clone()).servers;
        backups.iter().for_each(|&i| servers[i].backup = true);
        Group::new("g".into(), servers, balance, 1, TIMEOUT)
    }

    fn picks(picker: &mut Picker, g: &Group, key: Option<&[u8]>, n: usize) -> Vec<usize> {
        let now = Instant::now();
        (0..n)
            .map(|_| picker.first(0, g, key, now).server())
            .collect()
    }

    #[test]
    fn round_robin_sequences() {
        let table: &[(&[u32], usize, &[usize])] = &[
            // nginx's own example: { a, a, b, a, c, a, a }.
            (&[5, 1, 1], 0, &[0, 0, 1, 0, 2, 0, 0, 0, 0, 1]),
            (&[1, 1, 1], 0, &[0, 1, 2, 0, 1, 2, 0]),
            (&[1, 1, 1], 1, &[1, 2, 0, 1, 2, 0, 1]),
            (&[1, 1, 1], 5, &[2, 0, 1, 2]),
            (&[1, 2], 0, &[1, 0, 1, 1, 0, 1]),
            (&[7], 3, &[0, 0, 0]),
        ];
        for &(weights, worker, want) in table {
            let g = group(weights, Balance::RoundRobin);
            let mut picker = Picker::new(std::slice::from_ref(&g), worker);
            assert_eq!(
                picks(&mut picker, &g, None, want.len()),
                want,
                "{weights:?} worker {worker}"
            );
        }
    }

    #[test]
    fn workers_start_at_different_servers() {
        let g = group(&[1, 1, 1], Balance::RoundRobin);
        let groups = std::slice::from_ref(&g);
        let now = Instant::now();
        let a = Picker::new(groups, 0).first(0, &g, None, now);
        let b = Picker::new(groups, 1).first(0, &g, None, now);
        assert_ne!(a.server(), b.server());
    }

    #[test]
    fn pickers_keep_a_position_per_group() {
        let groups = [
            group(&[1, 1], Balance::RoundRobin),
            group(&[1, 1, 1], Balance::RoundRobin),
        ];
        let mut picker = Picker::new(&groups, 0);
        let now = Instant::now();
        let mut pick = |i: usize| picker.first(i, &groups[i], None, now).server();
        assert_eq!(
            [pick(0), pick(1), pick(1), pick(0), pick(1)],
            [0, 0, 1, 1, 2]
        );
    }

    #[test]
    fn round_robin_skips_down_servers() {
        let g = group(&[1, 1, 1], Balance::RoundRobin);
        let mut picker = Picker::new(std::slice::from_ref(&g), 0);
        let now = Instant::now();
        g.connect_failed(1, now);
        assert_eq!(picks(&mut picker, &g, None, 4), [0, 2, 0, 2]);
        g.connect_failed(0, now);
        g.connect_failed(2, now);
        assert_eq!(
            picks(&mut picker, &g, None, 3).len(),
            3,
            "all down: still picks"
        );
        let later = now + TIMEOUT;
        assert!((0..3).all(|i| !g.is_down(i, later)));
    }

    #[test]
    fn least_conn_picks_the_fewest_per_weight() {
        /// (weights, opened per server, down, want)
        type Case = (&'static [u32], &'static [u32], &'static [usize], usize);
        let table: &[Case] = &[
            (&[1, 1, 1], &[2, 1, 0], &[], 2),
            (&[1, 1, 1], &[0, 1, 1], &[], 0),
            (&[1, 1, 1], &[2, 1, 0], &[2], 1),
            (&[1, 2], &[1, 1], &[], 1),
            (&[1, 2], &[1, 3], &[], 0),
            (&[1, 1], &[3, 5], &[0, 1], 0),
        ];
        for &(weights, opened, down, want) in table {
            let g = group(weights, Balance::LeastConn);
            for (server, &n) in opened.iter().enumerate() {
                (0..n).for_each(|_| g.opened(server));
            }
            let now = Instant::now();
            down.iter().for_each(|&s| g.connect_failed(s, now));
            let mut picker = Picker::new(std::slice::from_ref(&g), 0);
            let got = picker.first(0, &g, None, now).server();
            assert_eq!(got, want, "{weights:?} opened {opened:?} down {down:?}");
        }
    }

    #[test]
    fn least_conn_spreads_ties() {
        let g = group(&[1, 1, 1], Balance::LeastConn);
        let groups = std::slice::from_ref(&g);
        assert_eq!(
            picks(&mut Picker::new(groups, 0), &g, None, 6),
            [0, 1, 2, 0, 1, 2]
        );
        assert_eq!(picks(&mut Picker::new(groups, 1), &g, None, 3), [1, 2, 0]);
        // Opening as it picks fills the servers evenly.
        let mut picker = Picker::new(groups, 0);
        let now = Instant::now();
        for _ in 0..9 {
            g.opened(picker.first(0, &g, None, now).server());
        }
        assert_eq!([g.active(0), g.active(1), g.active(2)], [3, 3, 3]);
        g.closed(1);
        assert_eq!(picker.first(0, &g, None, now).server(), 1);
    }

    #[test]
    fn hash_groups_follow_the_key() {
        let g = group(&[1, 1, 1, 1], Balance::Hash(HashKey::ClientIp));
        let mut picker = Picker::new(std::slice::from_ref(&g), 0);
        let now = Instant::now();
        let key: &[u8] = &[192, 0, 2, 7];
        let home = picker.first(0, &g, Some(key), now).server();
        assert!((0..5).all(|_| picker.first(0, &g, Some(key), now).server() == home));
        assert_eq!(
            picks(&mut picker, &g, None, 4),
            [0, 1, 2, 3],
            "no key: round-robin"
        );
        g.connect_failed(home, now);
        let moved = picker.first(0, &g, Some(key), now).server();
        assert_ne!(moved, home, "the key's server is down");
        (0..4).for_each(|i| g.connect_failed(i, now));
        assert_eq!(
            picker.first(0, &g, Some(key), now).server(),
            home,
            "all down"
        );
        g.connect_succeeded(home);
        assert_eq!(
            picker.first(0, &g, Some(key), now).server(),
            home,
            "back up"
        );
    }

    #[test]
    fn attempts_walk_the_servers_once() {
        /// (servers, first, down before the walk, failures mark down, want)
        type Case = (usize, usize, &'static [usize], bool, &'static [usize]);
        let table: &[Case] = &[
            (1, 0, &[], false, &[0]),
            (3, 1, &[], false, &[1, 2, 0]),
            (4, 1, &[2], false, &[1, 3, 0]),
            (4, 3, &[0, 1], false, &[3, 2]),
            (4, 2, &[0, 1, 2, 3], false, &[2, 3, 0, 1]),
            (3, 0, &[1, 2], true, &[0, 1, 2]),
            (3, 0, &[2], true, &[0, 1, 2]),
        ];
        for &(servers, first, down, mark, want) in table {
            let g = group(&vec![1; servers], Balance::RoundRobin);
            let seen = walk(&g, first, down, mark);
            assert_eq!(seen, want, "{servers} servers from {first}, down {down:?}");
        }
    }

    #[test]
    fn checks_mark_down_and_a_reload_keeps_it_while_it_checks() {
        let check = HealthCheck {
            kind: CheckKind::Http,
            path: "/".into(),
            interval: TIMEOUT,
            timeout: TIMEOUT,
            fall: 2,
            rise: 1,
            host: None,
            on_down: OnDown::Keep,
        };
        let mut g = group(&[1, 1], Balance::RoundRobin);
        let now = Instant::now();
        assert_eq!(
            g.check_ended(0, Verdict::Refused, now),
            None,
            "no checks, no change"
        );
        g.check = Some(check);
        assert_eq!(g.check_ended(0, Verdict::Refused, now), None);
        assert_eq!(
            g.check_ended(0, Verdict::Status(500), now),
            Some(Change::Down)
        );
        assert!(g.is_down(0, now) && !g.is_passively_down(0, now));
        let mut picker = Picker::new(std::slice::from_ref(&g), 0);
        assert_eq!(picks(&mut picker, &g, None, 3), [1, 1, 1]);
        let first = picker.first(0, &g, None, now);
        assert_eq!(first.next(&g, now), None, "an attempt skips it too");

        let mut kept = group(&[1, 1, 1], Balance::RoundRobin);
        kept.check = g.check.clone();
        kept.keep_checks(&g);
        assert!(kept.is_down(0, now) && !kept.is_down(2, now));
        let mut unchecked = group(&[1, 1], Balance::RoundRobin);
        unchecked.keep_checks(&g);
        assert!(
            !unchecked.is_down(0, now),
            "no checks: no check keeps it down"
        );
        assert_eq!(g.check_ended(0, Verdict::Passed, now), Some(Change::Up));
        assert!(!kept.is_down(0, now), "shared with the kept group");
    }

    #[test]
    fn backups_take_connections_only_while_every_primary_is_down() {
        let ip: &[u8] = &[192, 0, 2, 7];
        /// (balance, key, weights, backups, down, want from four picks)
        type Case = (
            Balance,
            Option<&'static [u8]>,
            &'static [usize],
            &'static [usize],
            &'static [usize],
        );
        let table: &[Case] = &[
            (Balance::RoundRobin, None, &[2], &[], &[0, 1, 0, 1]),
            (Balance::RoundRobin, None, &[2], &[0], &[1, 1, 1, 1]),
            (Balance::RoundRobin, None, &[2], &[0, 1], &[2, 2, 2, 2]),
            (Balance::RoundRobin, None, &[1, 2], &[0], &[1, 2, 1, 2]),
            (Balance::RoundRobin, None, &[1, 2], &[0, 2], &[1, 1, 1, 1]),
            (Balance::RoundRobin, None, &[2], &[0, 1, 2], &[0, 1, 0, 1]),
            (Balance::LeastConn, None, &[2], &[], &[0, 1, 0, 1]),
            (Balance::LeastConn, None, &[2], &[0, 1], &[2, 2, 2, 2]),
            (Balance::LeastConn, None, &[2], &[0, 1, 2], &[0, 1, 0, 1]),
            (
                Balance::Hash(HashKey::ClientIp),
                Some(ip),
                &[2],
                &[0, 1],
                &[2, 2, 2, 2],
            ),
            (
                Balance::Hash(HashKey::ClientIp),
                None,
                &[2],
                &[0, 1],
                &[2, 2, 2, 2],
            ),
        ];
        for (balance, key, backups, down, want) in table {
            let g = with_backups(&[1, 1, 1], backups, balance.clone());
            let now = Instant::now();
            down.iter().for_each(|&s| g.connect_failed(s, now));
            let mut picker = Picker::new(std::slice::from_ref(&g), 0);
            let got = picks(&mut picker, &g, *key, 4);
            assert_eq!(got, *want, "{balance:?} backups {backups:?} down {down:?}");
        }
    }

    #[test]
    fn a_hashed_key_never_lands_on_a_backup_while_a_primary_is_up() {
        let g = with_backups(&[1, 1, 1], &[2], Balance::Hash(HashKey::ClientIp));
        let mut picker = Picker::new(std::slice::from_ref(&g), 0);
        let now = Instant::now();
        for k in 0..200u8 {
            let key: &[u8] = &[10, 0, 0, k];
            assert_ne!(picker.first(0, &g, Some(key), now).server(), 2, "key {k}");
        }
        g.connect_failed(0, now);
        g.connect_failed(1, now);
        for k in 0..200u8 {
            let key: &[u8] = &[10, 0, 0, k];
            assert_eq!(picker.first(0, &g, Some(key), now).server(), 2, "key {k}");
        }
    }

    #[test]
    fn attempts_reach_the_backups_after_every_primary() {
        /// (backups, first, down before the walk, failures mark down, want)
        type Case = (
            &'static [usize],
            usize,
            &'static [usize],
            bool,
            &'static [usize],
        );
        let table: &[Case] = &[
            // Failures mark down: the backup comes after both primaries.
            (&[1], 0, &[], true, &[0, 2, 1]),
            (&[0], 1, &[], true, &[1, 2, 0]),
            // Failures leave them up (max_fails 0): tried is enough.
            (&[1], 0, &[], false, &[0, 2, 1]),
            (&[2], 1, &[], false, &[1, 0, 2]),
            // Primaries down before the walk starts at a backup.
            (&[2], 2, &[0, 1], false, &[2]),
            (&[1, 2], 1, &[0], false, &[1, 2]),
            // Everything down: every server, in order.
            (&[2], 0, &[0, 1, 2], false, &[0, 1, 2]),
        ];
        for &(backups, first, down, mark, want) in table {
            let g = with_backups(&[1, 1, 1], backups, Balance::RoundRobin);
            let seen = walk(&g, first, down, mark);
            assert_eq!(
                seen, want,
                "backups {backups:?} from {first}, down {down:?}"
            );
        }
    }

    #[test]
    fn attempt_stays_small() {
        assert_eq!(std::mem::size_of::<Attempt>(), 4);
        assert_eq!(std::mem::size_of::<Option<Attempt>>(), 6);
    }
}
