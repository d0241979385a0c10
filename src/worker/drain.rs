//! A worker's drain (SIGTERM, or a hand-over to a new process): stop
//! accepting, then give every pair its turn to be drained, spread evenly
//! over the drain window; see the module documentation of `worker`.

use std::collections::VecDeque;
use std::net::Shutdown;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Ctx, Worker};
use crate::access_log::Ending;
use crate::pair::Outcome;
use crate::timer::{self, Tick};
use crate::{debug, info};

/// Stop accepting and drain every tunnel: Close frames spread over
/// `spread`, everything closed by `deadline`.
#[derive(Debug)]
pub struct Drain {
    pub deadline: Instant,
    pub spread: Duration,
    /// Another process has taken the listening sockets over: leave their
    /// queues to it and the sockets open.
    pub handing_over: bool,
    /// Told once this worker has let go of its listeners.
    pub released: Option<mpsc::Sender<()>>,
}

/// A drain under way.
#[derive(Debug)]
pub(super) struct Draining {
    pub(super) deadline: Instant,
    /// `deadline` on the timer wheel: draining tunnels' timers.
    pub(super) until: Tick,
    /// Pairs waiting for their turn, with when it comes, earliest first.
    pub(super) queue: VecDeque<(Instant, usize)>,
}

impl Worker {
    /// Stops accepting and queues every pair for its drain turn; see the
    /// module's documentation.
    pub(super) fn start_draining(&mut self, command: Drain, now: Instant) {
        let Drain {
            deadline,
            spread,
            handing_over,
            released,
        } = command;
        if self.drain.is_some() {
            return;
        }
        // Clients the kernel queued already were in flight: take them all,
        // unless another process takes over the socket with its queue.
        if self.accept_paused_until.is_none() && !handing_over {
            for i in 0..self.listeners.len() {
                if !self.listeners[i].shared {
                    self.accept(i, usize::MAX, now);
                }
            }
        }
        self.to_accept.clear();
        for mut listener in self.listeners.drain(..) {
            if self.accept_paused_until.is_none() {
                let _ = self.poll.registry().deregister(&mut listener.socket);
            }
            // The socket is shared with the main thread's copy (kept for
            // reloads): shutting it, not just closing this descriptor,
            // makes the kernel refuse new clients at once. One that
            // another process holds, or takes over, stays open for it.
            if !handing_over && !listener.shared {
                let _ = socket2::SockRef::from(&listener.socket).shutdown(Shutdown::Both);
            }
        }
        if let Some(released) = released {
            let _ = released.send(());
        }
        self.accept_paused_until = None;
        self.kept.clear();
        self.close_idle(|_| true);
        self.retire_sessions(None);
        let keys: Vec<usize> = self.pairs.iter().map(|(key, _)| key).collect();
        let n = keys.len().max(1) as u32;
        let queue = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| (now + spread * i as u32 / n, key))
            .collect();
        let until = timer::deadline(self.now, deadline.saturating_duration_since(now));
        debug!(
            "draining {} over {}, until {} from now",
            crate::log::count(self.pairs.len(), "connection"),
            crate::log::Rounded(spread),
            crate::log::Rounded(deadline.saturating_duration_since(now))
        );
        self.drain = Some(Draining {
            deadline,
            until,
            queue,
        });
    }

    /// Drains the pairs whose turn came. True when the worker is done:
    /// no pair left, or the deadline passed (the rest are closed).
    pub(super) fn drain_turns(&mut self, now: Instant) -> bool {
        let Some(drain) = &mut self.drain else {
            return false;
        };
        let until = drain.until;
        let mut due = Vec::new();
        while let Some(&(at, key)) = drain.queue.front() {
            if at > now {
                break;
            }
            drain.queue.pop_front();
            due.push(key);
        }
        let past = now >= drain.deadline;
        for key in due {
            let Some(pair) = self.pairs.get_mut(key) else {
                continue;
            };
            let mut ctx = ctx!(self, key, pair.gen());
            let outcome = pair.drain(until, Ending::Shutdown, &mut ctx);
            self.settle(key, outcome);
        }
        if past && !self.pairs.is_empty() {
            info!(
                "drain timeout: closing {} connections still open",
                self.pairs.len()
            );
            let keys: Vec<usize> = self.pairs.iter().map(|(key, _)| key).collect();
            for key in keys {
                self.settle(key, Outcome::Close);
            }
        }
        if past {
            let keys: Vec<usize> = self.sessions.iter().map(|(key, _)| key).collect();
            for key in keys {
                self.close_session(key);
            }
        }
        self.pairs.is_empty() && self.sessions.is_empty()
    }
}
