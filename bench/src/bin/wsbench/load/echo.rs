//! `wsbench echo`: closed-loop throughput and latency. Each connection keeps
//! `--inflight` messages outstanding and sends the next one as soon as an
//! echo returns; every echo's round trip goes into the histogram and its
//! sequence number and length are checked.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use super::conn::{Conn, ConnError};
use super::{fail, take_echoes, Plan, Reactor, Tally};
use crate::cli::EchoArgs;
use crate::error::SetupError;
use crate::report::{per_second, Checks, Errors, Json, Latency, Outcome};

/// A connection and its outstanding messages.
#[derive(Debug)]
struct Slot {
    conn: Conn,
    /// Send times of outstanding messages, oldest first (echoes keep order).
    sent: VecDeque<Instant>,
    next_seq: u64,
    expect_seq: u64,
}

#[derive(Debug, Default)]
struct Stats {
    opened: u64,
    messages: u64,
    payload_bytes: u64,
    latency: Latency,
    checks: Checks,
}

impl Tally for Stats {
    fn merge(&mut self, other: &Stats) {
        self.opened += other.opened;
        self.messages += other.messages;
        self.payload_bytes += other.payload_bytes;
        self.latency.merge(&other.latency);
        self.checks.merge(&other.checks);
    }
}

pub fn run(args: &EchoArgs) -> Result<Outcome, SetupError> {
    let plan = Plan::new(
        args,
        &args.load,
        args.conns,
        args.src_ips,
        args.size as usize,
    )?;
    let total = plan.run("poll", |index| run_thread(&plan, index))?;
    Ok(outcome(args, plan.threads, &total))
}

fn run_thread(plan: &Plan<'_, EchoArgs>, index: usize) -> io::Result<Stats> {
    let args = plan.args;
    let mut stats = Stats::default();
    let prepared = plan.open(index, &mut stats.checks);
    // Every thread reaches the barrier, even after a failure, so none waits forever.
    plan.start_measuring(index);
    let (mut reactor, conns) = prepared?;
    let inflight = args.inflight as usize;
    let mut slots: Vec<Option<Slot>> = conns
        .into_iter()
        .map(|conn| {
            conn.map(|conn| Slot {
                conn,
                sent: VecDeque::with_capacity(inflight),
                next_seq: 0,
                expect_seq: 0,
            })
        })
        .collect();
    stats.opened = slots.iter().flatten().count() as u64;

    let start = Instant::now();
    let deadline = start + args.duration;
    for entry in &mut slots {
        let Some(slot) = entry.as_mut() else {
            continue;
        };
        for _ in 0..inflight {
            plan.template.append(slot.conn.out_mut(), slot.next_seq);
            slot.next_seq += 1;
            slot.sent.push_back(start);
        }
        if let Err(err) = slot.conn.flush() {
            drop_slot(entry, &reactor, &mut stats.checks.errors, &err);
        }
    }

    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        reactor.wait(Some(deadline - now))?;
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
                    let frames = &reactor.frames;
                    take_echoes(
                        &plan.template,
                        frames,
                        &mut slot.expect_seq,
                        &mut stats.checks,
                        |echo| {
                            if let Some(sent_at) = slot.sent.pop_front() {
                                stats.latency.record(now.saturating_duration_since(sent_at));
                            }
                            stats.messages += 1;
                            stats.payload_bytes += echo.len;
                            if now < deadline {
                                plan.template.append(slot.conn.out_mut(), slot.next_seq);
                                slot.next_seq += 1;
                                slot.sent.push_back(now);
                            }
                        },
                    )?;
                    if progress.eof {
                        return Err(ConnError::Closed("EOF during the run"));
                    }
                    slot.conn.flush()
                });
            if let Err(err) = result {
                drop_slot(&mut slots[index], &reactor, &mut stats.checks.errors, &err);
            }
        }
    }
    Ok(stats)
}

fn drop_slot(slot: &mut Option<Slot>, reactor: &Reactor, errors: &mut Errors, err: &ConnError) {
    let mut conn = slot.take().map(|slot| slot.conn);
    fail(&mut conn, reactor.poll.registry(), errors, err);
}

fn outcome(args: &EchoArgs, threads: usize, stats: &Stats) -> Outcome {
    let elapsed: Duration = args.duration;
    let rate = per_second(stats.messages, elapsed);
    // Each payload byte crosses the wire once in each direction; this is one direction.
    let gbits = per_second(stats.payload_bytes, elapsed) * 8.0 / 1e9;
    let ok = stats.checks.clean() && stats.opened == u64::from(args.conns) && stats.messages > 0;
    let mut summary = format!(
        "echo {}: {} conns x {} B, inflight {}, {} threads, {:.1} s: {:.0} msg/s, \
         {:.3} Gbit/s payload each way; latency {}; {}, mismatches {}",
        args.load.url,
        args.conns,
        args.size,
        args.inflight,
        threads,
        elapsed.as_secs_f64(),
        rate,
        gbits,
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
        .str("mode", "echo")
        .str("url", &args.load.url.url)
        .uint("threads", threads as u64)
        .uint("conns", u64::from(args.conns))
        .uint("opened", stats.opened)
        .uint("size", u64::from(args.size))
        .uint("inflight", u64::from(args.inflight))
        .float("duration_s", elapsed.as_secs_f64())
        .uint("messages", stats.messages)
        .float("msgs_per_s", rate)
        .float("payload_gbit_per_s_each_way", gbits)
        .raw("latency", &stats.latency.json());
    let json = stats.checks.json(json).bool("ok", ok).finish();
    Outcome { summary, json, ok }
}
