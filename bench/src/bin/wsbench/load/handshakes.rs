//! `wsbench handshakes`: connection churn. Each of `--conns` slots loops:
//! TCP connect, upgrade, one 16-byte echo, Close, then waits for the
//! server's Close and for the server to close TCP first (RFC 6455 §7.1.1,
//! which keeps TIME_WAIT off the client). Reports completed cycles per
//! second, upgrade latency (connect start to 101) and cycle latency
//! (connect start to the Close echo).

use std::io;
use std::time::{Duration, Instant};

use mio::Token;
use wsbench::ws::{close_payload, encode_frame, random_mask, Opcode};

use super::conn::{Conn, ConnError, Progress, Received};
use super::{Plan, Reactor, Tally, DEADLINE_SCAN};
use crate::cli::HandshakesArgs;
use crate::error::SetupError;
use crate::report::{per_second, Checks, Errors, Json, Latency, Outcome};

/// Payload bytes of the one echo per cycle.
const MESSAGE_SIZE: usize = 16;

/// Longest a whole cycle may take before it counts as a timeout.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait, after the Close echo, for the server to close TCP
/// before closing from this side anyway.
const EOF_GRACE: Duration = Duration::from_secs(1);

/// RFC 6455 §7.4.1: 1000 "indicates a normal closure".
const CLOSE_NORMAL: u16 = 1000;

/// Where a slot's current connection is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Upgrading,
    AwaitEcho,
    AwaitClose,
    AwaitEof { since: Instant },
}

#[derive(Debug)]
struct Slot {
    conn: Conn,
    step: Step,
    started: Instant,
}

#[derive(Debug, Default)]
struct Stats {
    cycles: u64,
    upgrade: Latency,
    cycle: Latency,
    /// Cycles where the server did not close TCP within [`EOF_GRACE`].
    lingering: u64,
    checks: Checks,
}

impl Tally for Stats {
    fn merge(&mut self, other: &Stats) {
        self.cycles += other.cycles;
        self.upgrade.merge(&other.upgrade);
        self.cycle.merge(&other.cycle);
        self.lingering += other.lingering;
        self.checks.merge(&other.checks);
    }
}

/// The run's plan and the Close frame that ends every cycle.
struct Shared<'a> {
    plan: Plan<'a, HandshakesArgs>,
    close_frame: Vec<u8>,
}

pub fn run(args: &HandshakesArgs) -> Result<Outcome, SetupError> {
    let mut close_frame = Vec::new();
    let reason = close_payload(CLOSE_NORMAL, "");
    encode_frame(
        &mut close_frame,
        true,
        Opcode::Close,
        &reason,
        Some(random_mask()),
    );
    let shared = Shared {
        plan: Plan::new(args, &args.load, args.conns, args.src_ips, MESSAGE_SIZE)?,
        close_frame,
    };
    let plan = &shared.plan;
    let total = plan.run("poll", |index| run_thread(&shared, index))?;
    Ok(outcome(args, plan.threads, &total))
}

/// What handling an event decided for a slot.
enum Next {
    Keep,
    /// The cycle is over (successfully or not): drop and restart the slot.
    Done,
}

fn run_thread(shared: &Shared<'_>, index: usize) -> io::Result<Stats> {
    let plan = &shared.plan;
    let args = plan.args;
    let ids = plan.ids(index);
    let mut stats = Stats::default();
    let reactor = Reactor::new();
    plan.barrier.wait();
    let mut reactor = reactor?;
    let mut slots: Vec<Option<Slot>> = (0..ids.len()).map(|_| None).collect();
    let start = Instant::now();
    let deadline = start + args.duration;
    for (index, slot) in slots.iter_mut().enumerate() {
        *slot = begin(
            shared,
            &reactor,
            ids.start + index,
            index,
            &mut stats.checks.errors,
        );
    }
    let mut next_scan = start + DEADLINE_SCAN;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        reactor.wait(Some((deadline - now).min(DEADLINE_SCAN)))?;
        let now = Instant::now();
        for event in reactor.events.iter() {
            let index = event.token().0;
            let Some(slot) = slots.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            reactor.frames.clear();
            let result = slot
                .conn
                .on_event(event, &mut reactor.scratch, &mut reactor.frames)
                .and_then(|progress| {
                    advance(
                        shared,
                        slot,
                        progress,
                        &reactor.frames,
                        now,
                        deadline,
                        &mut stats,
                    )
                });
            let finished = match result {
                Ok(Next::Keep) => false,
                Ok(Next::Done) => true,
                Err(err) => {
                    stats.checks.errors.record(&err);
                    true
                }
            };
            if finished {
                if let Some(mut slot) = slots[index].take() {
                    slot.conn.deregister(reactor.poll.registry());
                }
                if now < deadline {
                    slots[index] = begin(
                        shared,
                        &reactor,
                        ids.start + index,
                        index,
                        &mut stats.checks.errors,
                    );
                }
            }
        }
        if now >= next_scan {
            next_scan = now + DEADLINE_SCAN;
            for (index, entry) in slots.iter_mut().enumerate() {
                let expired = match entry {
                    // A connect that failed outright is retried here, at most
                    // once per scan, instead of in a tight loop.
                    None => true,
                    Some(slot) => match slot.step {
                        Step::AwaitEof { since } if now - since > EOF_GRACE => {
                            stats.lingering += 1;
                            true
                        }
                        _ if now - slot.started > CYCLE_TIMEOUT => {
                            let err = ConnError::Timeout("a handshake cycle");
                            stats.checks.errors.record(&err);
                            true
                        }
                        _ => false,
                    },
                };
                if expired {
                    if let Some(mut slot) = entry.take() {
                        slot.conn.deregister(reactor.poll.registry());
                    }
                    *entry = begin(
                        shared,
                        &reactor,
                        ids.start + index,
                        index,
                        &mut stats.checks.errors,
                    );
                }
            }
        }
    }
    Ok(stats)
}

/// Starts a new cycle in slot `index` (token `index`), or counts why it could not.
fn begin(
    shared: &Shared<'_>,
    reactor: &Reactor,
    global: usize,
    index: usize,
    errors: &mut Errors,
) -> Option<Slot> {
    let started = Instant::now();
    let conn = shared.plan.start(global).and_then(|mut conn| {
        conn.register(reactor.poll.registry(), Token(index))
            .map_err(ConnError::Connect)?;
        Ok(conn)
    });
    match conn {
        Ok(conn) => Some(Slot {
            conn,
            step: Step::Upgrading,
            started,
        }),
        Err(err) => {
            errors.record(&err);
            None
        }
    }
}

/// Moves a slot through its cycle on the frames and progress of one event.
fn advance(
    shared: &Shared<'_>,
    slot: &mut Slot,
    progress: Progress,
    frames: &[Received],
    now: Instant,
    deadline: Instant,
    stats: &mut Stats,
) -> Result<Next, ConnError> {
    let plan = &shared.plan;
    if progress.opened {
        stats.upgrade.record(now - slot.started);
        if let Some(negotiated) = slot.conn.negotiated() {
            stats.checks.tls.record(&negotiated);
        }
        plan.template.append(slot.conn.out_mut(), 0);
        slot.step = Step::AwaitEcho;
    }
    for frame in frames {
        match (slot.step, frame.opcode) {
            (_, Opcode::Ping | Opcode::Pong) => {}
            (Step::AwaitEcho, Opcode::Close) => {
                return Err(ConnError::Closed("Close before the echo"))
            }
            (Step::AwaitEcho, _) => {
                if let Err(mismatch) = plan.template.check(frame, 0) {
                    stats.checks.mismatch(&mismatch);
                }
                slot.conn.out_mut().extend_from_slice(&shared.close_frame);
                slot.step = Step::AwaitClose;
            }
            (Step::AwaitClose, Opcode::Close) => {
                complete(slot, now, deadline, stats);
            }
            (_, other) => {
                return Err(ConnError::Handshake(format!(
                    "unexpected {other:?} frame in the cycle"
                )));
            }
        }
    }
    if progress.eof {
        return match slot.step {
            // RFC 6455 §7.1.1 lets the server close TCP right after its Close;
            // an EOF instead of the Close echo also ends the cycle.
            Step::AwaitClose => {
                complete(slot, now, deadline, stats);
                Ok(Next::Done)
            }
            Step::AwaitEof { .. } => Ok(Next::Done),
            Step::Upgrading | Step::AwaitEcho => Err(ConnError::Closed("EOF before the echo")),
        };
    }
    slot.conn.flush()?;
    Ok(Next::Keep)
}

/// Counts a finished cycle (if it ended in time) and waits for the server's EOF.
fn complete(slot: &mut Slot, now: Instant, deadline: Instant, stats: &mut Stats) {
    if now <= deadline {
        stats.cycles += 1;
        stats.cycle.record(now - slot.started);
    }
    slot.step = Step::AwaitEof { since: now };
}

fn outcome(args: &HandshakesArgs, threads: usize, stats: &Stats) -> Outcome {
    let elapsed = args.duration;
    let rate = per_second(stats.cycles, elapsed);
    let ok = stats.checks.clean() && stats.cycles > 0;
    let mut summary = format!(
        "handshakes {}: {} slots, {} threads, {:.1} s: {:.0} handshakes/s ({} cycles); \
         upgrade latency {}; cycle latency {}; {}, mismatches {}, server left open {}",
        args.load.url,
        args.conns,
        threads,
        elapsed.as_secs_f64(),
        rate,
        stats.cycles,
        stats.upgrade,
        stats.cycle,
        stats.checks.errors,
        stats.checks.mismatches,
        stats.lingering,
    );
    summary.push_str(&stats.checks.tls.to_string());
    let json = Json::new()
        .str("mode", "handshakes")
        .str("url", &args.load.url.url)
        .uint("threads", threads as u64)
        .uint("conns", u64::from(args.conns))
        .float("duration_s", elapsed.as_secs_f64())
        .uint("handshakes", stats.cycles)
        .float("handshakes_per_s", rate)
        .raw("upgrade_latency", &stats.upgrade.json())
        .raw("cycle_latency", &stats.cycle.json())
        .uint("server_left_open", stats.lingering);
    let json = stats.checks.json(json).bool("ok", ok).finish();
    Outcome { summary, json, ok }
}
