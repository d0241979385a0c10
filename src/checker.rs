//! The active health checker: one thread per process, off the workers'
//! reactors, that checks every server of every group with a
//! `[upstream.NAME.health]` once per interval, whatever the number of
//! workers. What it finds goes into the group's shared atomics
//! ([`Group::check_ended`]), which every worker's picker reads at once; a
//! server it marks down under `on_down = "drain"` has its tunnels drained
//! by each worker, told through its command channel and waker.
//!
//! Each check runs in a short-lived thread of its own (blocking sockets
//! with the check's timeout), so a server that hangs delays no other
//! server's checks; a server is never checked twice at once. The checker
//! follows the configuration in force: it reads it each time it wakes,
//! at least every [`FOLLOW_RELOAD`], so a reload's new groups and servers
//! are checked from then on. A group and server that a reload keeps (same
//! names) keep their state and their schedule (see [`Config::keep_checks`]).

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mio::Waker;

use crate::config::Config;
use crate::upstream::{probe, Change, Group, OnDown, Verdict};
use crate::worker::{Command, ServerDown};
use crate::{error, info, warn};

/// Longest the checker sleeps before it looks at the configuration in
/// force again: a reload's new servers wait at most this for their first
/// check.
const FOLLOW_RELOAD: Duration = Duration::from_secs(1);

/// A server as the checker tells it apart across reloads: group and
/// server names.
type Key = (String, String);

/// When a server's next check starts, and whether one is running.
#[derive(Debug)]
struct Slot {
    next: Instant,
    running: bool,
}

/// One check's end, sent back by its thread.
struct Ended {
    config: Arc<Config>,
    group: usize,
    server: usize,
    verdict: Verdict,
    at: Instant,
}

/// Starts the checker thread. It runs until the process exits.
pub fn spawn(
    current: Arc<Mutex<Arc<Config>>>,
    workers: Vec<(mpsc::Sender<Command>, Arc<Waker>)>,
) -> io::Result<()> {
    thread::Builder::new()
        .name("health".into())
        .spawn(move || run(&current, &workers))?;
    Ok(())
}

fn in_force(current: &Mutex<Arc<Config>>) -> Arc<Config> {
    match current.lock() {
        Ok(c) => Arc::clone(&c),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

fn run(current: &Mutex<Arc<Config>>, workers: &[(mpsc::Sender<Command>, Arc<Waker>)]) {
    let (tx, rx) = mpsc::channel::<Ended>();
    let mut slots: HashMap<Key, Slot> = HashMap::new();
    loop {
        let config = in_force(current);
        let now = Instant::now();
        let mut wake = now + FOLLOW_RELOAD;
        let mut seen = HashSet::new();
        for (g, group) in config.groups.iter().enumerate() {
            let Some(check) = &group.check else {
                continue;
            };
            for (s, server) in group.servers.iter().enumerate() {
                let key = (group.name.clone(), server.name.clone());
                let slot = slots.entry(key.clone()).or_insert(Slot {
                    next: now,
                    running: false,
                });
                seen.insert(key);
                if slot.running {
                    continue;
                }
                if slot.next <= now {
                    slot.running = start(&config, g, s, &tx);
                    // From the start of one check to the start of the next.
                    slot.next = now + check.interval;
                }
                if !slot.running {
                    wake = wake.min(slot.next);
                }
            }
        }
        // Servers a reload removed are forgotten once their check is over.
        slots.retain(|key, slot| slot.running || seen.contains(key));
        let mut ended = match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
            Ok(ended) => Some(ended),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        while let Some(e) = ended {
            let group = &e.config.groups[e.group];
            let server = &group.servers[e.server];
            if let Some(slot) = slots.get_mut(&(group.name.clone(), server.name.clone())) {
                slot.running = false;
            }
            if let Some(change) = group.check_ended(e.server, e.verdict, e.at) {
                announce(group, e.server, change, e.verdict, workers);
            }
            ended = rx.try_recv().ok();
        }
    }
}

/// Checks started so far: which source address the next one uses.
static CHECKS_STARTED: AtomicUsize = AtomicUsize::new(0);

/// Starts checking server `s` of group `g` in a thread of its own; false
/// when the thread could not start (said, and retried at the next
/// interval).
fn start(config: &Arc<Config>, g: usize, s: usize, tx: &mpsc::Sender<Ended>) -> bool {
    let config = Arc::clone(config);
    let tx = tx.clone();
    let spawned = thread::Builder::new()
        .name("health-check".into())
        .spawn(move || {
            let group = &config.groups[g];
            let server = &group.servers[s];
            let check = group
                .check
                .as_ref()
                .expect("only groups with checks are checked");
            // Checks take the proxy's path: each from the group's next
            // source address, in turn.
            let sources = group.sources.for_server(server.addr);
            let turn = CHECKS_STARTED.fetch_add(1, Ordering::Relaxed);
            let source = (!sources.is_empty()).then(|| sources[turn % sources.len()]);
            let verdict = probe(
                server.addr,
                source,
                &server.name,
                server.tls.as_ref(),
                check,
            );
            let at = Instant::now();
            let _ = tx.send(Ended {
                config: Arc::clone(&config),
                group: g,
                server: s,
                verdict,
                at,
            });
        });
    match spawned {
        Ok(_) => true,
        Err(e) => {
            error!("cannot start a health check thread: {e}");
            false
        }
    }
}

/// Says that a server went down or came back, and has its tunnels
/// drained when the group says so.
fn announce(
    group: &Group,
    server: usize,
    change: Change,
    last: Verdict,
    workers: &[(mpsc::Sender<Command>, Arc<Waker>)],
) {
    let check = group.check.as_ref().expect("a change comes from a check");
    let name = &group.servers[server].name;
    let kind = check.kind.name();
    match change {
        Change::Up => info!(
            "upstream {} server {name}: marked up after {} passed {kind} checks",
            group.name, check.rise
        ),
        Change::Down => {
            let drain = check.on_down == OnDown::Drain;
            warn!(
                "upstream {} server {name}: marked down after {} failed {kind} checks \
                 (last: {last}); {}",
                group.name,
                check.fall,
                if drain {
                    "draining its tunnels"
                } else {
                    "no new connections go to it, open tunnels stay"
                }
            );
            if (0..group.servers.len()).all(|i| group.check_state(i).down) {
                warn!(
                    "upstream {}: every server is marked down; new connections try them all \
                     rather than none",
                    group.name
                );
            }
            if !drain {
                return;
            }
            let down = Arc::new(ServerDown {
                group: group.name.clone(),
                server: name.clone(),
            });
            for (tx, waker) in workers {
                if tx.send(Command::ServerDown(Arc::clone(&down))).is_err() || waker.wake().is_err()
                {
                    error!(
                        "upstream {} server {name}: a worker did not take the drain",
                        group.name
                    );
                }
            }
        }
    }
}
