//! Runtime state every worker shares for a group's servers: passive health
//! (consecutive connect failures and until when a server is down) and the
//! number of live connections each server holds, all in atomics.
//!
//! Every access is `Relaxed`. Each counter is a heuristic read on its own:
//! no other memory is published through it, so no ordering between
//! counters (or with anything else) is needed; each read-modify-write is
//! still atomic, so no update is lost. Two workers failing the same server
//! at once may race between the count and the deadline and count one
//! failure more or less; that moves a server's down time by one failure,
//! which passive health can afford.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The process-wide instant deadlines count from, so they fit in an `AtomicU64`.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// `now` as nanoseconds since [`EPOCH`]; instants before it read as 0.
/// `u64` nanoseconds last 584 years.
fn nanos(now: Instant) -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Debug, Default)]
struct Counters {
    /// Failures in the current run, each within `fail_timeout` of the last.
    fails: AtomicU32,
    /// Last failure plus `fail_timeout`, in [`nanos`]: failures before it
    /// extend the run, and while `fails >= max_fails` the server is down
    /// until then. 0 when it never failed.
    until: AtomicU64,
    /// Open connections to the server, across all workers.
    active: AtomicU32,
}

/// Shared health and connection counts for one group's servers.
#[derive(Debug)]
pub(super) struct Health {
    servers: Box<[Counters]>,
}

impl Health {
    /// Counters for `servers` servers, none failed, none open.
    pub(super) fn new(servers: usize) -> Health {
        // Start the epoch no later than the first group, so instants taken
        // after startup never saturate to 0.
        nanos(Instant::now());
        Health {
            servers: (0..servers).map(|_| Counters::default()).collect(),
        }
    }

    /// Counts a failure at `now`. A failure more than `fail_timeout` after
    /// the previous one starts a new run, unless the server had reached
    /// `max_fails`: then it was down and this failure was the probe after
    /// its down time, so it is down again at once (as nginx does).
    pub(super) fn failed(&self, server: usize, now: Instant, max_fails: u32, timeout: Duration) {
        if max_fails == 0 {
            return;
        }
        let s = &self.servers[server];
        let now = nanos(now);
        let fresh = now >= s.until.load(Relaxed) && s.fails.load(Relaxed) < max_fails;
        if fresh {
            s.fails.store(1, Relaxed);
        } else {
            let _ = s
                .fails
                .fetch_update(Relaxed, Relaxed, |f| Some(f.saturating_add(1)));
        }
        // `fetch_max`: a failure reported late by a slower worker must not
        // shorten a deadline a newer one set.
        s.until
            .fetch_max(now.saturating_add(duration_nanos(timeout)), Relaxed);
    }

    /// Ends `server`'s run of failures.
    pub(super) fn succeeded(&self, server: usize) {
        self.servers[server].fails.store(0, Relaxed);
    }

    /// Whether `server` reached `max_fails` and its deadline is after `now`.
    pub(super) fn is_down(&self, server: usize, now: Instant, max_fails: u32) -> bool {
        let s = &self.servers[server];
        max_fails > 0 && s.fails.load(Relaxed) >= max_fails && nanos(now) < s.until.load(Relaxed)
    }

    /// Counts a connection opened to `server`.
    pub(super) fn opened(&self, server: usize) {
        self.servers[server].active.fetch_add(1, Relaxed);
    }

    /// Counts a connection to `server` closed; pairs with [`Health::opened`].
    pub(super) fn closed(&self, server: usize) {
        let was = self.servers[server].active.fetch_sub(1, Relaxed);
        debug_assert!(was > 0, "closed() without opened() on server {server}");
    }

    /// Connections open to `server`, across all workers.
    pub(super) fn active(&self, server: usize) -> u32 {
        self.servers[server].active.load(Relaxed)
    }
}

/// A clone is a snapshot: it starts from the current counts and then
/// lives on its own.
impl Clone for Health {
    fn clone(&self) -> Health {
        let servers = self.servers.iter().map(|s| Counters {
            fails: AtomicU32::new(s.fails.load(Relaxed)),
            until: AtomicU64::new(s.until.load(Relaxed)),
            active: AtomicU32::new(s.active.load(Relaxed)),
        });
        Health {
            servers: servers.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);
    const MS: Duration = Duration::from_millis(1);

    /// Steps: (milliseconds after t0, event, down afterwards at that time);
    /// events: `F` a failed connect, `S` a successful one, `.` none.
    #[test]
    fn failures_mark_down_until_the_timeout() {
        #[rustfmt::skip]
        type Step = (u32, u8, bool);
        let table: &[(&str, u32, &[Step])] = &[
            (
                "down after the 2nd",
                2,
                &[(0, b'F', false), (1, b'F', true)],
            ),
            (
                "down until 10 s after the last failure",
                2,
                &[
                    (0, b'F', false),
                    (1_000, b'F', true),
                    (10_999, b'.', true),
                    (11_000, b'.', false),
                ],
            ),
            (
                "success resets",
                2,
                &[(0, b'F', false), (1, b'S', false), (2, b'F', false)],
            ),
            (
                "success revives",
                2,
                &[(0, b'F', false), (1, b'F', true), (2, b'S', false)],
            ),
            (
                "failures farther apart than fail_timeout do not add up",
                2,
                &[
                    (0, b'F', false),
                    (10_000, b'F', false),
                    (19_999, b'F', true),
                ],
            ),
            (
                "a failed probe after the down time is down again",
                2,
                &[
                    (0, b'F', false),
                    (1, b'F', true),
                    (10_001, b'.', false),
                    (10_001, b'F', true),
                ],
            ),
            ("max_fails 1", 1, &[(0, b'F', true)]),
            (
                "max_fails 0 never marks down",
                0,
                &[(0, b'F', false), (1, b'F', false), (2, b'F', false)],
            ),
        ];
        let t0 = Instant::now();
        for &(name, max_fails, steps) in table {
            let h = Health::new(2);
            for &(ms, event, down) in steps {
                let now = t0 + MS * ms;
                match event {
                    b'F' => h.failed(0, now, max_fails, TIMEOUT),
                    b'S' => h.succeeded(0),
                    _ => {}
                }
                assert_eq!(h.is_down(0, now, max_fails), down, "{name} at {ms} ms");
                assert!(!h.is_down(1, now, max_fails), "{name}: the other server");
            }
        }
    }

    #[test]
    fn down_ends_when_fail_timeout_has_passed() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let h = Health::new(1);
        h.failed(0, t0, 2, TIMEOUT);
        h.failed(0, t0 + MS, 2, TIMEOUT);
        let last = t0 + MS;
        let table = [
            (last, true),
            (last + TIMEOUT - MS, true),
            (last + TIMEOUT, false),
            (last + TIMEOUT * 2, false),
        ];
        for (now, down) in table {
            assert_eq!(h.is_down(0, now, 2), down, "{:?} after", now - t0);
        }
    }

    #[test]
    fn active_counts_open_and_close() {
        let h = Health::new(2);
        h.opened(1);
        h.opened(1);
        h.opened(0);
        h.closed(1);
        assert_eq!((h.active(0), h.active(1)), (1, 1));
        let snapshot = h.clone();
        h.closed(0);
        assert_eq!((h.active(0), snapshot.active(0)), (0, 1));
    }
}
