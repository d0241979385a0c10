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
use std::sync::Barrier;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::Interest;
use wsbench::ws::Opcode;

use super::conn::{Conn, ConnError};
use super::message::Template;
use super::{fail, open_all, run_threads, share, Reactor, TIMER};
use crate::cli::RateArgs;
use crate::error::SetupError;
use crate::report::{per_second, Errors, Json, Latency, Outcome};
use crate::sys::TimerFd;
use crate::target::Sources;

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
    mismatches: u64,
    first_mismatch: Option<String>,
    errors: Errors,
}

impl Stats {
    fn merge(&mut self, other: &Stats) {
        self.opened += other.opened;
        self.sent += other.sent;
        self.received += other.received;
        self.skipped += other.skipped;
        self.unanswered += other.unanswered;
        self.latency.merge(&other.latency);
        self.mismatches += other.mismatches;
        if self.first_mismatch.is_none() {
            self.first_mismatch.clone_from(&other.first_mismatch);
        }
        self.errors.merge(&other.errors);
    }
}

struct Plan<'a> {
    args: &'a RateArgs,
    sources: Sources,
    threads: usize,
    template: Template,
    barrier: Barrier,
}

pub fn run(args: &RateArgs) -> Result<Outcome, SetupError> {
    let conns = args.conns as usize;
    let threads = usize::from(args.load.threads).min(conns);
    let plan = Plan {
        args,
        sources: Sources::new(args.src_ips, &args.load.url).map_err(SetupError::Usage)?,
        threads,
        template: Template::new(args.size as usize),
        barrier: Barrier::new(threads),
    };
    let mut total = Stats::default();
    for result in run_threads(threads, |index| run_thread(&plan, index)) {
        total.merge(&result.map_err(|err| SetupError::io("poll or timer", err))?);
    }
    Ok(outcome(args, threads, &total))
}

fn run_thread(plan: &Plan<'_>, index: usize) -> io::Result<Stats> {
    let args = plan.args;
    let mut stats = Stats::default();
    let concurrency = (args.load.open_concurrency as usize / plan.threads).max(1);
    let ids = share(args.conns as usize, plan.threads, index);
    let thread_rate = args.rate as f64 * ids.len() as f64 / f64::from(args.conns);
    let prepared = Reactor::new().and_then(|mut reactor| {
        let timer = TimerFd::new()?;
        reactor.poll.registry().register(
            &mut SourceFd(&timer.raw_fd()),
            TIMER,
            Interest::READABLE,
        )?;
        let url = &args.load.url;
        let conns = open_all(
            &mut reactor,
            url,
            plan.sources,
            ids,
            concurrency,
            &mut stats.errors,
        )?;
        Ok((reactor, timer, conns))
    });
    plan.barrier.wait();
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
                outstanding -= drop_slot(&mut slots[index], &reactor, &mut stats.errors, &err);
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
                    for echo in &reactor.frames {
                        match echo.opcode {
                            Opcode::Close => return Err(ConnError::Closed("Close during the run")),
                            Opcode::Ping | Opcode::Pong => continue,
                            _ => {}
                        }
                        if let Err(mismatch) = plan.template.check(echo, slot.expect_seq) {
                            stats.mismatches += 1;
                            if stats.first_mismatch.is_none() {
                                stats.first_mismatch = Some(mismatch.to_string());
                            }
                        }
                        slot.expect_seq += 1;
                        if let Some(due) = slot.due.pop_front() {
                            stats.latency.record(now.saturating_duration_since(due));
                            outstanding -= 1;
                        }
                        stats.received += 1;
                    }
                    if progress.eof {
                        return Err(ConnError::Closed("EOF during the run"));
                    }
                    slot.conn.flush()
                });
            if let Err(err) = result {
                outstanding -= drop_slot(&mut slots[index], &reactor, &mut stats.errors, &err);
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
    let ok = stats.errors.total() == 0
        && stats.mismatches == 0
        && stats.opened == u64::from(args.conns)
        && stats.received > 0;
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
        stats.errors,
        stats.mismatches,
    );
    if let Some(first) = &stats.first_mismatch {
        summary.push_str(&format!(" (first: {first})"));
    }
    if stats.opened < u64::from(args.conns) {
        summary.push_str(&format!(
            "; only {} of {} connections opened",
            stats.opened, args.conns
        ));
    }
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
        .raw("latency", &stats.latency.json())
        .uint("mismatches", stats.mismatches)
        .opt_str("first_mismatch", stats.first_mismatch.as_deref())
        .raw("errors", &stats.errors.json())
        .bool("ok", ok)
        .finish();
    Outcome { summary, json, ok }
}
