//! Runtime state every worker shares for a group's servers: passive health
//! (consecutive connect failures and until when a server is down), active
//! health (what the checker thread found: up or down, the runs of passed
//! and failed checks, the last check), and the number of live connections
//! each server holds, all in atomics.
//!
//! Every access is `Relaxed`. Each counter is a heuristic read on its own:
//! no other memory is published through it, so no ordering between
//! counters (or with anything else) is needed; each read-modify-write is
//! still atomic, so no update is lost. Two workers failing the same server
//! at once may race between the count and the deadline and count one
//! failure more or less; that moves a server's down time by one failure,
//! which passive health can afford.
//!
//! Active health has one writer, the checker thread; workers only read
//! whether a server is down. A server starts up, as HAProxy's do: checks
//! take it down after `fall` failures, so a proxy that starts (or reloads)
//! does not refuse traffic until the first checks have passed.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::check::Verdict;

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

/// Active health of one server: written by the checker thread only.
#[derive(Debug, Default)]
pub(super) struct Checked {
    /// Marked down by checks.
    down: AtomicBool,
    /// Consecutive passed checks, and failed ones; one of them is 0.
    good: AtomicU32,
    bad: AtomicU32,
    /// When the last check ended, in [`nanos`]; 0 when none has.
    at: AtomicU64,
    /// The last check's [`Verdict::encode`]; 0 when none has.
    verdict: AtomicU32,
    /// Checks passed and failed, ever.
    passed: AtomicU64,
    failed: AtomicU64,
}

/// A check moved a server across the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `fall` failed checks in a row took it down.
    Down,
    /// `rise` passed checks in a row brought it back.
    Up,
}

/// What checks say of one server, read at once for `/status` and
/// `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckState {
    pub down: bool,
    /// Consecutive passed checks, and failed ones.
    pub good: u32,
    pub bad: u32,
    /// When the last check ended, and its verdict.
    pub last: Option<(Instant, Verdict)>,
    pub passed: u64,
    pub failed: u64,
}

impl Checked {
    /// Counts one check's `verdict`, ended at `now`.
    fn record(&self, verdict: Verdict, now: Instant, fall: u32, rise: u32) -> Option<Change> {
        self.at.store(nanos(now).max(1), Relaxed);
        self.verdict.store(verdict.encode(), Relaxed);
        let down = self.down.load(Relaxed);
        if verdict.passed() {
            self.passed.fetch_add(1, Relaxed);
            self.bad.store(0, Relaxed);
            let good = self.good.load(Relaxed).saturating_add(1);
            self.good.store(good, Relaxed);
            if down && good >= rise {
                self.down.store(false, Relaxed);
                return Some(Change::Up);
            }
        } else {
            self.failed.fetch_add(1, Relaxed);
            self.good.store(0, Relaxed);
            let bad = self.bad.load(Relaxed).saturating_add(1);
            self.bad.store(bad, Relaxed);
            if !down && bad >= fall {
                self.down.store(true, Relaxed);
                return Some(Change::Down);
            }
        }
        None
    }

    fn state(&self) -> CheckState {
        let at = self.at.load(Relaxed);
        let epoch = *EPOCH.get_or_init(Instant::now);
        let last = Verdict::decode(self.verdict.load(Relaxed))
            .filter(|_| at > 0)
            .map(|v| (epoch + Duration::from_nanos(at), v));
        CheckState {
            down: self.down.load(Relaxed),
            good: self.good.load(Relaxed),
            bad: self.bad.load(Relaxed),
            last,
            passed: self.passed.load(Relaxed),
            failed: self.failed.load(Relaxed),
        }
    }

    fn copy(&self) -> Checked {
        Checked {
            down: AtomicBool::new(self.down.load(Relaxed)),
            good: AtomicU32::new(self.good.load(Relaxed)),
            bad: AtomicU32::new(self.bad.load(Relaxed)),
            at: AtomicU64::new(self.at.load(Relaxed)),
            verdict: AtomicU32::new(self.verdict.load(Relaxed)),
            passed: AtomicU64::new(self.passed.load(Relaxed)),
            failed: AtomicU64::new(self.failed.load(Relaxed)),
        }
    }
}

/// Shared health and connection counts for one group's servers.
#[derive(Debug)]
pub(super) struct Health {
    servers: Box<[Counters]>,
    /// Per server, in an `Arc` so that a reload can hand a server that
    /// stays to the new configuration with what checks found of it.
    checked: Box<[Arc<Checked>]>,
}

impl Health {
    /// Counters for `servers` servers, none failed, none open.
    pub(super) fn new(servers: usize) -> Health {
        // Start the epoch no later than the first group, so instants taken
        // after startup never saturate to 0.
        nanos(Instant::now());
        Health {
            servers: (0..servers).map(|_| Counters::default()).collect(),
            checked: (0..servers).map(|_| Arc::default()).collect(),
        }
    }

    /// Counts a check of `server`; see [`Checked::record`].
    pub(super) fn checked(
        &self,
        server: usize,
        verdict: Verdict,
        now: Instant,
        fall: u32,
        rise: u32,
    ) -> Option<Change> {
        self.checked[server].record(verdict, now, fall, rise)
    }

    /// Whether checks marked `server` down.
    pub(super) fn is_checked_down(&self, server: usize) -> bool {
        self.checked[server].down.load(Relaxed)
    }

    pub(super) fn check_state(&self, server: usize) -> CheckState {
        self.checked[server].state()
    }

    /// From now on `server` shares `from`'s server `other`'s active health.
    pub(super) fn share_checks(&mut self, server: usize, from: &Health, other: usize) {
        self.checked[server] = Arc::clone(&from.checked[other]);
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
            checked: self.checked.iter().map(|c| Arc::new(c.copy())).collect(),
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

    /// Verdicts in a row, `P` passed and `F` failed, and whether the server
    /// is down after each; fall 3, rise 2.
    #[test]
    fn checks_mark_down_after_fall_and_up_after_rise() {
        let table: &[(&str, &str, &str)] = &[
            ("starts up", "", ""),
            ("down at the 3rd failure", "FFF", "..D"),
            ("a pass breaks the run", "FFPFF", "....."),
            ("up at the 2nd pass", "FFFPP", "..DDU"),
            ("a failure breaks the rise", "FFFPFPP", "..DDDDU"),
            ("down again", "FFFPPFFF", "..DDU..D"),
        ];
        let t0 = Instant::now();
        for &(name, verdicts, want) in table {
            let h = Health::new(2);
            let mut got = String::new();
            let mut down = false;
            for (i, v) in verdicts.bytes().enumerate() {
                let verdict = match v {
                    b'P' => Verdict::Passed,
                    _ => Verdict::Status(500),
                };
                let change = h.checked(0, verdict, t0 + MS * i as u32, 3, 2);
                let now_down = h.is_checked_down(0);
                match change {
                    Some(Change::Down) => assert!(!down && now_down, "{name}"),
                    Some(Change::Up) => assert!(down && !now_down, "{name}"),
                    None => assert_eq!(down, now_down, "{name}"),
                }
                down = now_down;
                got.push(match change {
                    Some(Change::Down) => 'D',
                    Some(Change::Up) => 'U',
                    None if down => 'D',
                    None => '.',
                });
            }
            assert_eq!(got, want, "{name}");
            assert!(!h.is_checked_down(1), "{name}: the other server");
            let state = h.check_state(0);
            let passes = verdicts.bytes().filter(|&v| v == b'P').count() as u64;
            assert_eq!(state.passed, passes, "{name}");
            assert_eq!(state.failed, verdicts.len() as u64 - passes, "{name}");
        }
    }

    #[test]
    fn the_last_check_is_remembered_and_shared() {
        let t0 = Instant::now();
        let h = Health::new(1);
        assert_eq!(h.check_state(0).last, None);
        h.checked(0, Verdict::Refused, t0, 1, 1);
        let (at, verdict) = h.check_state(0).last.expect("a check");
        assert_eq!(verdict, Verdict::Refused);
        assert!(at.max(t0) - at.min(t0) < MS, "{at:?} vs {t0:?}");
        let mut next = Health::new(2);
        next.share_checks(1, &h, 0);
        assert!(next.is_checked_down(1) && !next.is_checked_down(0));
        h.checked(0, Verdict::Passed, t0, 1, 1);
        assert!(!next.is_checked_down(1), "shared, not copied");
        let snapshot = h.clone();
        h.checked(0, Verdict::Refused, t0, 1, 1);
        assert!(!snapshot.is_checked_down(0), "a clone is a snapshot");
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
