//! `wsbench rate`: open-loop load. Messages fall due on a fixed schedule
//! (each thread takes a share of `--rate` proportional to its connections)
//! and go to the thread's connections in turn. Latency is measured from each
//! message's *scheduled* time, so a stalled target or generator shows up as
//! latency instead of silently lowering the load (no coordinated omission).
//!
//! A `timerfd` wakes the reactor at the next due time with sub-millisecond
//! precision; epoll's own timeout only has whole milliseconds.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::Interest;

use super::conn::{Conn, ConnError};
use super::{fail, take_echoes, Plan, Reactor, Tally, TIMER};
use crate::cli::RateArgs;
use crate::error::SetupError;
use crate::report::{per_second, Checks, Errors, Json, Latency, Outcome};
use crate::sys::TimerFd;

/// How long to wait for outstanding echoes after the last scheduled send.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Queued bytes above which a due message is skipped rather than queued
/// (4 MiB per connection): bounds memory when the target falls far behind.
const MAX_QUEUED_BYTES: usize = 4 << 20;

#[derive(Debug)]
struct Slot {
    conn: Conn,
    /// Scheduled times of outstanding messages, oldest first.
    due: VecDeque<Instant>,
    next_seq: u64,
    expect_seq: u64,
    /// Has bytes queued in this round, not yet flushed.
    dirty: bool,
}

#[derive(Debug, Default)]
struct Stats {
    opened: u64,
    sent: u64,
    received: u64,
    skipped: u64,
    unanswered: u64,
    latency: Latency,
    checks: Checks,
}

impl Tally for Stats {
    fn merge(&mut self, other: &Stats) {
        self.opened += other.opened;
        self.sent += other.sent;
        self.received += other.received;
        self.skipped += other.skipped;
        self.unanswered += other.unanswered;
        self.latency.merge(&other.latency);
        self.checks.merge(&other.checks);
    }
}

pub fn run(args: &RateArgs) -> Result<Outcome, SetupError> {
    let plan = Plan::new(
        args,
        &args.load,
        args.conns,
        args.src_ips,
        args.size as usize,
    )?;
    let total = plan.run("poll or timer", |index| run_thread(&plan, index))?;
    Ok(outcome(args, plan.threads, &total))
}

fn run_thread(plan: &Plan<'_, RateArgs>, index: usize) -> io::Result<Stats> {
    let args = plan.args;
    let mut stats = Stats::default();
    let thread_rate = args.rate as f64 * plan.ids(index).len() as f64 / f64::from(args.conns);
    let prepared = Reactor::new().and_then(|mut reactor| {
        let timer = TimerFd::new()?;
        reactor.poll.registry().register(
            &mut SourceFd(&timer.raw_fd()),
            TIMER,
            Interest::READABLE,
        )?;
        let conns = plan.open_on(&mut reactor, index, &mut stats.checks)?;
        Ok((reactor, timer, conns))
    });
    plan.start_measuring(index);
    let (mut reactor, timer, conns) = prepared?;
    let mut slots: Vec<Option<Slot>> = conns
        .into_iter()
        .map(|conn| {
            conn.map(|conn| Slot {
                conn,
                due: VecDeque::new(),
                next_seq: 0,
                expect_seq: 0,
                dirty: false,
            })
        })
        .collect();
    stats.opened = slots.iter().flatten().count() as u64;

    let start = Instant::now();
    let deadline = start + args.duration;
    let mut scheduled: u64 = 0;
    let mut next_due = start;
    let mut cursor = 0;
    let mut dirty: Vec<usize> = Vec::with_capacity(slots.len());
    let mut outstanding: u64 = 0;
    let mut armed_for: Option<Instant> = None;
    let mut sending = thread_rate > 0.0 && stats.opened > 0;
    let mut drain_deadline = deadline + DRAIN_TIMEOUT;

    loop {
        let now = Instant::now();
        while sending && next_due <= now {
            if next_due >= deadline {
                sending = false;
                drain_deadline = now.max(deadline) + DRAIN_TIMEOUT;
                break;
            }
            let Some(index) = next_live(&slots, &mut cursor) else {
                sending = false;
                break;
            };
            let slot = slots[index]
                .as_mut()
                .expect("next_live returns a live slot");
            if slot.conn.queued() > MAX_QUEUED_BYTES {
                stats.skipped += 1;
            } else {
                plan.template.append(slot.conn.out_mut(), slot.next_seq);
                slot.next_seq += 1;
                slot.due.push_back(next_due);
                stats.sent += 1;
                outstanding += 1;
                if !slot.dirty {
                    slot.dirty = true;
                    dirty.push(index);
                }
            }
            scheduled += 1;
            next_due = start + Duration::from_secs_f64(scheduled as f64 / thread_rate);
        }
        for index in dirty.drain(..) {
            let Some(slot) = slots[index].as_mut() else {
                continue;
            };
            slot.dirty = false;
            if let Err(err) = slot.conn.flush() {
                outstanding -=
                    drop_slot(&mut slots[index], &reactor, &mut stats.checks.errors, &err);
            }
        }

        let timeout = if sending {
            // Re-arm only when no earlier wake-up is pending: due times only
            // move forward, so this costs about one timerfd_settime per expiry.
            if armed_for.is_none_or(|at| at <= now || at > next_due) {
                timer.arm(next_due.saturating_duration_since(now))?;
                armed_for = Some(next_due);
            }
            None
        } else if outstanding == 0 || now >= drain_deadline {
            break;
        } else {
            Some(drain_deadline - now)
        };
        reactor.wait(timeout)?;
        let now = Instant::now();
        for event in reactor.events.iter() {
            if event.token() == TIMER {
                timer.acknowledge();
                armed_for = None;
                continue;
            }
            let index = event.token().0;
            let Some(slot) = slots.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            reactor.frames.clear();
            let result = slot
                .conn
                .on_event(event, &mut reactor.scratch, &mut reactor.frames)
                .and_then(|progress| {
                    let frames = &reactor.frames;
                    take_echoes(
                        &plan.template,
                        frames,
                        &mut slot.expect_seq,
                        &mut stats.checks,
                        |_| {
                            if let Some(due) = slot.due.pop_front() {
                                stats.latency.record(now.saturating_duration_since(due));
                                outstanding -= 1;
                            }
                            stats.received += 1;
                        },
                    )?;
                    if progress.eof {
                        return Err(ConnError::Closed("EOF during the run"));
                    }
                    slot.conn.flush()
                });
            if let Err(err) = result {
                outstanding -=
                    drop_slot(&mut slots[index], &reactor, &mut stats.checks.errors, &err);
            }
        }
    }
    stats.unanswered = outstanding;
    Ok(stats)
}

/// The next live slot at or after `cursor`, advancing it round-robin.
fn next_live(slots: &[Option<Slot>], cursor: &mut usize) -> Option<usize> {
    for _ in 0..slots.len() {
        let index = *cursor;
        *cursor = (*cursor + 1) % slots.len();
        if slots[index].is_some() {
            return Some(index);
        }
    }
    None
}

/// Drops a failed slot; returns how many of its messages were outstanding.
fn drop_slot(
    slot: &mut Option<Slot>,
    reactor: &Reactor,
    errors: &mut Errors,
    err: &ConnError,
) -> u64 {
    let lost = slot.as_ref().map_or(0, |slot| slot.due.len() as u64);
    let mut conn = slot.take().map(|slot| slot.conn);
    fail(&mut conn, reactor.poll.registry(), errors, err);
    lost
}

fn outcome(args: &RateArgs, threads: usize, stats: &Stats) -> Outcome {
    let elapsed = args.duration;
    let achieved = per_second(stats.received, elapsed);
    let ok = stats.checks.clean() && stats.opened == u64::from(args.conns) && stats.received > 0;
    let mut summary = format!(
        "rate {}: {} conns x {} B, {} threads, target {} msg/s for {:.1} s: achieved {:.0} msg/s \
         (sent {}, received {}, skipped {}, unanswered {}); latency from schedule {}; {}, \
         mismatches {}",
        args.load.url,
        args.conns,
        args.size,
        threads,
        args.rate,
        elapsed.as_secs_f64(),
        achieved,
        stats.sent,
        stats.received,
        stats.skipped,
        stats.unanswered,
        stats.latency,
        stats.checks.errors,
        stats.checks.mismatches,
    );
    if let Some(first) = &stats.checks.first_mismatch {
        summary.push_str(&format!(" (first: {first})"));
    }
    if stats.opened < u64::from(args.conns) {
        summary.push_str(&format!(
            "; only {} of {} connections opened",
            stats.opened, args.conns
        ));
    }
    summary.push_str(&stats.checks.tls.to_string());
    let json = Json::new()
        .str("mode", "rate")
        .str("url", &args.load.url.url)
        .uint("threads", threads as u64)
        .uint("conns", u64::from(args.conns))
        .uint("opened", stats.opened)
        .uint("size", u64::from(args.size))
        .uint("target_rate", args.rate)
        .float("duration_s", elapsed.as_secs_f64())
        .uint("sent", stats.sent)
        .uint("received", stats.received)
        .uint("skipped", stats.skipped)
        .uint("unanswered", stats.unanswered)
        .float("achieved_msgs_per_s", achieved)
        .raw("latency", &stats.latency.json());
    let json = stats.checks.json(json).bool("ok", ok).finish();
    Outcome { summary, json, ok }
}
