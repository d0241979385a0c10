//! A worker's side of `on_down = "drain"`: when the health checker marks
//! an upstream server down, each worker drains its own tunnels to that
//! server as a shutdown drains them (a Close frame, 1001, each way; see
//! [`Pair::drain`]), their turns spread evenly over `[drain] spread`, each
//! closed by `[drain] timeout` at the latest.

use std::sync::Arc;
use std::time::Instant;

use super::{Ctx, Worker};
use crate::access_log::Ending;
use crate::info;
use crate::pair::Pair;
use crate::timer::{self, Tick};

/// Which server the checker marked down, by group and server name (as
/// every configuration generation names it).
#[derive(Debug, PartialEq, Eq)]
pub struct ServerDown {
    pub group: String,
    pub server: String,
}

/// A tunnel waiting for its drain turn.
#[derive(Debug)]
struct Turn {
    at: Instant,
    key: usize,
    /// The drain's deadline on the timer wheel.
    until: Tick,
    /// The server it was queued for: the pair in the slot when the turn
    /// comes may be a newer one.
    down: Arc<ServerDown>,
}

/// The tunnels of down servers waiting for their turn, earliest first.
#[derive(Debug, Default)]
pub(super) struct DownDrains {
    turns: Vec<Turn>,
}

impl DownDrains {
    /// When the next turn comes, if one waits.
    pub(super) fn next(&self) -> Option<Instant> {
        self.turns.first().map(|t| t.at)
    }

    /// Queues `turns`, keeping the queue in order (a stable sort: turns
    /// due at the same moment keep their order).
    fn add(&mut self, turns: impl Iterator<Item = Turn>) {
        self.turns.extend(turns);
        self.turns.sort_by_key(|t| t.at);
    }

    /// The turns due at `now`, taken off the queue.
    fn due(&mut self, now: Instant) -> Vec<Turn> {
        let n = self.turns.partition_point(|t| t.at <= now);
        self.turns.drain(..n).collect()
    }
}

/// Whether `pair` is a tunnel to `down`'s server under its configuration.
fn goes_to(worker: &Worker, pair: &Pair, down: &ServerDown) -> bool {
    pair.tunnel_route(&worker.gens[pair.gen()].config)
        .is_some_and(|(_, _, group, server)| group == down.group && server == down.server)
}

impl Worker {
    /// Queues every tunnel to `down`'s server for its drain turn.
    pub(super) fn server_down(&mut self, down: Arc<ServerDown>, now: Instant) {
        if self.drain.is_some() {
            // Stopping: every tunnel has its turn already.
            return;
        }
        let keys: Vec<usize> = self
            .pairs
            .iter()
            .filter(|(_, pair)| goes_to(self, pair, &down))
            .map(|(key, _)| key)
            .collect();
        if keys.is_empty() {
            return;
        }
        let drain = self.gens[self.current].config.drain;
        let until = timer::deadline(self.now, drain.timeout);
        info!(
            "upstream {} server {} is down: draining {} over {}",
            down.group,
            down.server,
            crate::log::count(keys.len(), "tunnel"),
            crate::log::Rounded(drain.spread)
        );
        let n = keys.len() as u32;
        self.down
            .add(keys.into_iter().enumerate().map(|(i, key)| Turn {
                at: now + drain.spread * i as u32 / n,
                key,
                until,
                down: Arc::clone(&down),
            }));
    }

    /// Drains the tunnels whose turn came and that still go to the server.
    pub(super) fn down_turns(&mut self, now: Instant) {
        if self.down.next().is_none_or(|at| at > now) {
            return;
        }
        for turn in self.down.due(now) {
            let Some(pair) = self.pairs.get(turn.key) else {
                continue;
            };
            if !goes_to(self, pair, &turn.down) {
                continue;
            }
            let pair = &mut self.pairs[turn.key];
            let mut ctx = ctx!(self, turn.key, pair.gen());
            let outcome = pair.drain(turn.until, Ending::Unhealthy, &mut ctx);
            self.settle(turn.key, outcome);
        }
    }
}
