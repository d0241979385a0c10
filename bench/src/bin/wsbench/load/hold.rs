//! `wsbench hold`: many idle connections. Opens `--conns` connections
//! (source addresses rotating over 127.0.0.1..=127.0.0.N), prints
//! `held N` on stderr once every one has opened or failed, holds them idle
//! for `--hold` seconds while watching for any the server drops, then sends
//! one 16-byte message on each and counts the survivors whose echo returns.
//!
//! Scripts wait for the `held` line to sample the server's memory while the
//! connections are idle. Connections free their send buffers once open, so
//! the generator's own footprint stays small too.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::{Duration, Instant};

use wsbench::ws::Opcode;

use super::conn::ConnError;
use super::{add_up, fail, Plan, Tally, DEADLINE_SCAN};
use crate::cli::HoldArgs;
use crate::error::SetupError;
use crate::report::{per_second, Checks, Json, Latency, Outcome};

/// Payload bytes of the probe message sent on every connection after the hold.
const PROBE_SIZE: usize = 16;

#[derive(Debug, Default)]
struct Stats {
    opened: u64,
    /// Connections the server closed, or that failed, during the hold.
    dropped: u64,
    survivors: u64,
    probe: Latency,
    checks: Checks,
}

impl Tally for Stats {
    fn merge(&mut self, other: &Stats) {
        self.opened += other.opened;
        self.dropped += other.dropped;
        self.survivors += other.survivors;
        self.probe.merge(&other.probe);
        self.checks.merge(&other.checks);
    }
}

pub fn run(args: &HoldArgs) -> Result<Outcome, SetupError> {
    let plan = Plan::new(args, &args.load, args.conns, args.src_ips, PROBE_SIZE)?;
    let threads = plan.threads;
    // Set by this thread when the hold is over.
    let probe_now = AtomicBool::new(false);
    let started = Instant::now();
    let (opened_tx, opened_rx) = mpsc::channel::<u64>();
    let (results, open_time, held) = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let opened_tx = opened_tx.clone();
                let (plan, probe_now) = (&plan, &probe_now);
                scope.spawn(move || run_thread(plan, probe_now, index, &opened_tx))
            })
            .collect();
        drop(opened_tx);
        // Each thread reports once, after opening; a thread that died early
        // drops its sender, which ends the loop.
        let held: u64 = opened_rx.iter().take(threads).sum();
        let open_time = started.elapsed();
        eprintln!("held {held}");
        thread::sleep(args.hold);
        probe_now.store(true, Ordering::SeqCst);
        let results: Vec<_> = handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        (results, open_time, held)
    });
    let total = add_up(results, "poll")?;
    Ok(outcome(args, threads, &total, open_time, held))
}

fn run_thread(
    plan: &Plan<'_, HoldArgs>,
    probe_now: &AtomicBool,
    index: usize,
    opened_tx: &Sender<u64>,
) -> io::Result<Stats> {
    let mut stats = Stats::default();
    let prepared = plan.open(index, &mut stats.checks);
    let opened = prepared
        .as_ref()
        .map_or(0, |(_, conns)| conns.iter().flatten().count());
    stats.opened = opened as u64;
    // The main thread only waits for this count; it is gone only if it panicked.
    let _ = opened_tx.send(stats.opened);
    let (mut reactor, mut conns) = prepared?;
    for conn in conns.iter_mut().flatten() {
        conn.shrink();
    }

    // Hold: idle, but still notice connections the server drops.
    while !probe_now.load(Ordering::SeqCst) {
        reactor.wait(Some(DEADLINE_SCAN))?;
        for event in reactor.events.iter() {
            let index = event.token().0;
            let Some(conn) = conns.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            reactor.frames.clear();
            let failure = match conn.on_event(event, &mut reactor.scratch, &mut reactor.frames) {
                Ok(progress) if progress.eof => Some(ConnError::Closed("EOF during the hold")),
                Ok(_) if reactor.frames.iter().any(|f| f.opcode == Opcode::Close) => {
                    Some(ConnError::Closed("Close during the hold"))
                }
                Ok(_) => None,
                Err(err) => Some(err),
            };
            if let Some(err) = failure {
                stats.dropped += 1;
                fail(
                    &mut conns[index],
                    reactor.poll.registry(),
                    &mut stats.checks.errors,
                    &err,
                );
            }
        }
    }

    // Probe: one message on every survivor.
    let sent_at = Instant::now();
    let mut waiting = 0u64;
    for entry in &mut conns {
        let Some(conn) = entry.as_mut() else {
            continue;
        };
        plan.template.append(conn.out_mut(), 0);
        match conn.flush() {
            Ok(()) => waiting += 1,
            Err(err) => fail(
                entry,
                reactor.poll.registry(),
                &mut stats.checks.errors,
                &err,
            ),
        }
    }
    let give_up = sent_at + plan.args.probe_timeout;
    while waiting > 0 {
        let now = Instant::now();
        if now >= give_up {
            break;
        }
        reactor.wait(Some(give_up - now))?;
        let now = Instant::now();
        for event in reactor.events.iter() {
            let index = event.token().0;
            let Some(conn) = conns.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            reactor.frames.clear();
            let result = conn.on_event(event, &mut reactor.scratch, &mut reactor.frames);
            let echo = reactor
                .frames
                .iter()
                .find(|f| !matches!(f.opcode, Opcode::Ping | Opcode::Pong));
            let failure = match (result, echo) {
                (Err(err), _) => Some(err),
                (Ok(_), Some(echo)) => {
                    if let Err(mismatch) = plan.template.check(echo, 0) {
                        stats.checks.mismatch(&mismatch);
                    } else {
                        stats.survivors += 1;
                        stats.probe.record(now - sent_at);
                    }
                    waiting -= 1;
                    // Answered: close it now, so the rest are not disturbed.
                    if let Some(mut conn) = conns[index].take() {
                        conn.deregister(reactor.poll.registry());
                    }
                    None
                }
                (Ok(progress), None) if progress.eof => {
                    Some(ConnError::Closed("EOF before the probe echo"))
                }
                (Ok(_), None) => None,
            };
            if let Some(err) = failure {
                waiting -= 1;
                fail(
                    &mut conns[index],
                    reactor.poll.registry(),
                    &mut stats.checks.errors,
                    &err,
                );
            }
        }
    }
    for slot in conns.iter_mut().filter(|slot| slot.is_some()) {
        fail(
            slot,
            reactor.poll.registry(),
            &mut stats.checks.errors,
            &ConnError::Timeout("the probe echo"),
        );
    }
    Ok(stats)
}

fn outcome(
    args: &HoldArgs,
    threads: usize,
    stats: &Stats,
    open_time: Duration,
    held: u64,
) -> Outcome {
    let open_rate = per_second(held, open_time);
    let ok = stats.checks.clean()
        && stats.opened == u64::from(args.conns)
        && stats.survivors == u64::from(args.conns);
    let mut summary = format!(
        "hold {}: {} conns, {} threads: opened {} in {:.2} s ({:.0} conns/s), held {:.1} s, \
         dropped during hold {}, survivors {} of {}; probe latency {}; {}, mismatches {}",
        args.load.url,
        args.conns,
        threads,
        held,
        open_time.as_secs_f64(),
        open_rate,
        args.hold.as_secs_f64(),
        stats.dropped,
        stats.survivors,
        args.conns,
        stats.probe,
        stats.checks.errors,
        stats.checks.mismatches,
    );
    summary.push_str(&stats.checks.tls.to_string());
    let json = Json::new()
        .str("mode", "hold")
        .str("url", &args.load.url.url)
        .uint("threads", threads as u64)
        .uint("conns", u64::from(args.conns))
        .uint("opened", held)
        .float("open_s", open_time.as_secs_f64())
        .float("open_per_s", open_rate)
        .float("hold_s", args.hold.as_secs_f64())
        .uint("dropped_during_hold", stats.dropped)
        .uint("survivors", stats.survivors)
        .raw("probe_latency", &stats.probe.json());
    let json = stats.checks.json(json).bool("ok", ok).finish();
    Outcome { summary, json, ok }
}
