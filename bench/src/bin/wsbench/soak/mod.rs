//! `wsbench soak`: mixed load for a set time, every byte checked.
//!
//! One thread per slot runs streams back to back until the deadline:
//! `--echo-conns` slots of echo streams, `--bulk-conns` of bulk streams and
//! `--churn-conns` of churn streams (paced so that all together start at
//! most `--churn-rate` per second). Each stream is planned from its own
//! seed (derived from the run's `--seed` and the stream's number) and
//! `--abort-percent` of them end in an injected fault; see `stream.rs` for
//! what is checked how. Once a second a progress line goes to stderr:
//!
//! `soak: t=SECS streams=N clean=N aborted=N failed=N checked_bytes=N`
//!
//! The run is clean (exit status 0) when no stream failed and every kind
//! of stream completed at least one clean stream.

mod pattern;
mod stream;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use self::pattern::SplitMix64;
use self::stream::{Abort, Ended, Kind, Limits, Plan, Report};
use crate::cli::SoakArgs;
use crate::error::SetupError;
use crate::report::{string_array, Json, Outcome};

/// Failure messages kept for the report (the count covers all of them).
const MAX_FAILURES_KEPT: usize = 20;

/// Spreads stream numbers over the seed space before mixing (2^32 / φ).
const STREAM_SPREAD: u64 = 0x9e37_79b9;

/// How often the progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Counts of one kind of stream.
#[derive(Debug, Default, Clone, Copy)]
struct KindCounts {
    streams: u64,
    clean: u64,
    /// By [`Abort::ALL`] order.
    aborted: [u64; 3],
    failed: u64,
}

impl KindCounts {
    fn aborted_total(&self) -> u64 {
        self.aborted.iter().sum()
    }
}

/// The run's counts, added to as streams end.
#[derive(Debug, Default)]
struct Totals {
    /// By [`Kind::ALL`] order.
    kinds: [KindCounts; 3],
    messages_sent: u64,
    messages_checked: u64,
    bytes_sent: u64,
    bytes_checked: u64,
    failures: Vec<String>,
}

impl Totals {
    fn add(&mut self, report: &Report) {
        let counts = &mut self.kinds[kind_index(report.kind)];
        counts.streams += 1;
        match &report.ended {
            Ended::Clean => counts.clean += 1,
            Ended::Aborted(fault) => counts.aborted[abort_index(*fault)] += 1,
            Ended::Failed(why) => {
                counts.failed += 1;
                if self.failures.len() < MAX_FAILURES_KEPT {
                    self.failures.push(why.clone());
                }
            }
        }
        self.messages_sent += report.messages_sent;
        self.messages_checked += report.messages_checked;
        self.bytes_sent += report.bytes_sent;
        self.bytes_checked += report.bytes_checked;
    }

    fn sum(&self) -> KindCounts {
        let mut all = KindCounts::default();
        for counts in &self.kinds {
            all.streams += counts.streams;
            all.clean += counts.clean;
            all.failed += counts.failed;
            for (total, n) in all.aborted.iter_mut().zip(counts.aborted) {
                *total += n;
            }
        }
        all
    }
}

fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

fn abort_index(fault: Abort) -> usize {
    Abort::ALL.iter().position(|a| *a == fault).unwrap_or(0)
}

pub fn run(args: &SoakArgs) -> Result<Outcome, SetupError> {
    if args.url.tls {
        return Err(SetupError::Usage(
            "soak speaks plain ws:// only (its client is a blocking TCP one)".into(),
        ));
    }
    if args.echo_conns + args.bulk_conns + args.churn_conns == 0 {
        return Err(SetupError::Usage(
            "soak needs at least one connection".into(),
        ));
    }
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let started = Instant::now();
    let limits = Limits {
        deadline: started + args.duration,
        bulk_rate: args.bulk_rate,
    };
    let next_id = AtomicU64::new(0);
    let totals = Mutex::new(Totals::default());
    let done = AtomicBool::new(false);
    let churn_gap =
        Duration::from_secs_f64(f64::from(args.churn_conns) / f64::from(args.churn_rate));
    let slots: Vec<Kind> = [
        (Kind::Echo, args.echo_conns),
        (Kind::Bulk, args.bulk_conns),
        (Kind::Churn, args.churn_conns),
    ]
    .into_iter()
    .flat_map(|(kind, n)| std::iter::repeat_n(kind, n as usize))
    .collect();

    thread::scope(|scope| {
        let progress = scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                thread::sleep(PROGRESS_EVERY);
                let totals = totals.lock().unwrap_or_else(|e| e.into_inner());
                let all = totals.sum();
                eprintln!(
                    "soak: t={:.0} streams={} clean={} aborted={} failed={} checked_bytes={}",
                    started.elapsed().as_secs_f64(),
                    all.streams,
                    all.clean,
                    all.aborted_total(),
                    all.failed,
                    totals.bytes_checked
                );
            }
        });
        let workers: Vec<_> = slots
            .iter()
            .map(|&kind| {
                let (next_id, totals) = (&next_id, &totals);
                thread::Builder::new()
                    .name(format!("soak-{}", kind.name()))
                    .spawn_scoped(scope, move || {
                        let mut next_start = Instant::now();
                        while Instant::now() < limits.deadline {
                            let id = next_id.fetch_add(1, Ordering::SeqCst);
                            let stream_seed =
                                SplitMix64::new(seed ^ id.wrapping_mul(STREAM_SPREAD)).next_u64();
                            let plan = Plan::new(id, stream_seed, kind, args.abort_percent);
                            let report = stream::run(&args.url, &plan, limits);
                            totals
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .add(&report);
                            if kind == Kind::Churn {
                                next_start += churn_gap;
                                if let Some(wait) =
                                    next_start.checked_duration_since(Instant::now())
                                {
                                    thread::sleep(wait);
                                }
                            }
                        }
                    })
            })
            .collect();
        for worker in workers {
            match worker {
                Ok(handle) => {
                    if let Err(panic) = handle.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                Err(err) => eprintln!("wsbench soak: cannot start a slot thread: {err}"),
            }
        }
        done.store(true, Ordering::SeqCst);
        let _ = progress.join();
    });
    let totals = totals.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(outcome(args, seed, started.elapsed(), &totals))
}

fn outcome(args: &SoakArgs, seed: u64, elapsed: Duration, totals: &Totals) -> Outcome {
    let all = totals.sum();
    let every_kind_ran = Kind::ALL
        .iter()
        .zip(&totals.kinds)
        .zip([args.echo_conns, args.bulk_conns, args.churn_conns])
        .all(|((_, counts), slots)| slots == 0 || counts.clean > 0);
    let ok = all.failed == 0 && every_kind_ran && all.streams > 0;
    let mut summary = format!(
        "soak {} for {:.1} s (seed {seed}): {} streams, {} clean, {} aborted on purpose \
         (reset {}, drop {}, handshake {}), {} failed; {} messages and {} bytes sent, \
         {} messages and {} bytes echoed and checked",
        args.url,
        elapsed.as_secs_f64(),
        all.streams,
        all.clean,
        all.aborted_total(),
        all.aborted[0],
        all.aborted[1],
        all.aborted[2],
        all.failed,
        totals.messages_sent,
        totals.bytes_sent,
        totals.messages_checked,
        totals.bytes_checked,
    );
    for (kind, counts) in Kind::ALL.iter().zip(&totals.kinds) {
        let _ = write!(
            summary,
            "; {}: {} streams, {} clean, {} aborted, {} failed",
            kind.name(),
            counts.streams,
            counts.clean,
            counts.aborted_total(),
            counts.failed
        );
    }
    if !every_kind_ran {
        summary.push_str("; a kind of stream never completed cleanly");
    }
    if let Some(first) = totals.failures.first() {
        let _ = write!(summary, "; first failure: {first}");
    }
    let mut kinds = Json::new();
    for (kind, counts) in Kind::ALL.iter().zip(&totals.kinds) {
        let json = Json::new()
            .uint("streams", counts.streams)
            .uint("clean", counts.clean)
            .uint("aborted", counts.aborted_total())
            .uint("failed", counts.failed)
            .finish();
        kinds = kinds.raw(kind.name(), &json);
    }
    let mut aborted = Json::new();
    for (fault, n) in Abort::ALL.iter().zip(all.aborted) {
        aborted = aborted.uint(fault.name(), n);
    }
    let json = Json::new()
        .str("mode", "soak")
        .str("url", &args.url.url)
        .uint("seed", seed)
        .float("duration_s", elapsed.as_secs_f64())
        .uint("abort_percent", u64::from(args.abort_percent))
        .uint("streams", all.streams)
        .uint("clean", all.clean)
        .raw("aborted", &aborted.finish())
        .uint("failed", all.failed)
        .raw("kinds", &kinds.finish())
        .uint("messages_sent", totals.messages_sent)
        .uint("messages_checked", totals.messages_checked)
        .uint("bytes_sent", totals.bytes_sent)
        .uint("bytes_checked", totals.bytes_checked)
        .raw("failures", &string_array(&totals.failures))
        .bool("ok", ok)
        .finish();
    Outcome { summary, json, ok }
}
