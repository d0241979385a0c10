//! One soak stream: a WebSocket connection that sends a planned sequence of
//! Binary messages made of its seeded [`Pattern`], checks every byte of
//! every echo as it comes back, and ends the way its plan says: a clean
//! closing handshake, or one of the injected aborts.
//!
//! Two threads per stream: the writer sends (at most the plan's window of
//! messages ahead of the checker, each echo returning one credit), the
//! reader checks; so a large message never deadlocks against its own echo.
//! Every socket operation is bounded by [`IO_TIMEOUT`]: a stall fails the
//! stream instead of hanging the run.
//!
//! How a stream ends, and what is checked then:
//! - clean: the writer sends Close 1000 after its last message; the reader
//!   must see every message echoed, then the echoed Close 1000, then EOF,
//!   and both sides' [`Checksum`]s must agree.
//! - [`Abort::Drop`]: the writer half-closes (FIN, no Close frame) after
//!   some messages; the echo server answers everything it got and closes, so
//!   the reader must still see every sent message echoed, then EOF. This is
//!   the proxy's half-close propagation under test.
//! - [`Abort::Reset`]: the writer sets `SO_LINGER` 0 and the stream's socket
//!   is closed: an RST mid-stream, with bytes in flight. Echoes checked up
//!   to then count; nothing else can be.
//! - [`Abort::Handshake`]: a raw connection sends a prefix of the upgrade
//!   request (possibly all of it) and resets, before any 101.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;
use wsbench::ws::{
    close_payload, encode_frame, random_key, random_mask, upgrade_request, Client, Opcode,
};

use super::pattern::{Checksum, Pattern, SplitMix64};
use crate::target::Target;

/// Longest any read, write or wait for an echo may take before the stream
/// counts as stalled (and failed).
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// RFC 6455 §7.4.1: 1000 "indicates a normal closure".
const CLOSE_NORMAL: u16 = 1000;

/// Mixed into a stream's seed for each thing drawn from it, so message
/// sizes, payload bytes, pauses and the handshake cut are independent
/// sequences that the writer and the reader can each regenerate.
const SALT_SIZES: u64 = 0x5153_0001;
const SALT_PAYLOAD: u64 = 0x5153_0002;
const SALT_PAUSES: u64 = 0x5153_0003;
const SALT_CUT: u64 = 0x5153_0004;

/// The three kinds of load the soak mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Long streams of small messages, one at a time, with short pauses.
    Echo,
    /// Streams of large messages, several in flight, paced to a byte rate.
    Bulk,
    /// Short streams: connect, upgrade, a message or three, close.
    Churn,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Echo, Kind::Bulk, Kind::Churn];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo",
            Kind::Bulk => "bulk",
            Kind::Churn => "churn",
        }
    }

    /// What streams of this kind look like.
    fn profile(self) -> Profile {
        match self {
            Kind::Echo => Profile {
                messages: (200, 2000),
                size: (1, 4096),
                window: 1,
                pause_us: (0, 2000),
            },
            Kind::Bulk => Profile {
                messages: (4, 64),
                size: (16 << 10, 1 << 20),
                window: 4,
                pause_us: (0, 0),
            },
            Kind::Churn => Profile {
                messages: (1, 3),
                size: (1, 512),
                window: 1,
                pause_us: (0, 0),
            },
        }
    }
}

/// The ranges a stream's plan is drawn from (inclusive).
#[derive(Debug, Clone, Copy)]
struct Profile {
    messages: (u64, u64),
    /// Payload bytes per message, drawn on a log scale.
    size: (u64, u64),
    /// Messages the writer may be ahead of the checked echoes.
    window: u64,
    /// Pause after each message, in microseconds.
    pause_us: (u64, u64),
}

/// The injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// RST mid-stream (`SO_LINGER` 0, then close).
    Reset,
    /// FIN mid-stream without a Close frame.
    Drop,
    /// RST during the opening handshake.
    Handshake,
}

impl Abort {
    pub const ALL: [Abort; 3] = [Abort::Reset, Abort::Drop, Abort::Handshake];

    pub fn name(self) -> &'static str {
        match self {
            Abort::Reset => "reset",
            Abort::Drop => "drop",
            Abort::Handshake => "handshake",
        }
    }
}

/// Everything about one stream, drawn from its seed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: u64,
    pub seed: u64,
    pub kind: Kind,
    profile: Profile,
    messages: u64,
    /// The fault to inject and after how many messages (always fewer than
    /// `messages`; 0 for a handshake abort).
    abort: Option<(Abort, u64)>,
}

impl Plan {
    pub fn new(id: u64, seed: u64, kind: Kind, abort_percent: u32) -> Plan {
        let profile = kind.profile();
        let mut rng = SplitMix64::new(seed);
        let messages = rng.between(profile.messages.0, profile.messages.1);
        let abort = rng.chance(abort_percent).then(|| {
            let fault = Abort::ALL[rng.between(0, Abort::ALL.len() as u64 - 1) as usize];
            let after = match fault {
                Abort::Handshake => 0,
                _ => rng.between(0, messages - 1),
            };
            (fault, after)
        });
        Plan {
            id,
            seed,
            kind,
            profile,
            messages,
            abort,
        }
    }

    pub fn abort(&self) -> Option<Abort> {
        self.abort.map(|(fault, _)| fault)
    }

    /// Message sizes, in order: the writer and the reader each draw them.
    fn sizes(&self) -> impl Iterator<Item = usize> {
        let mut rng = SplitMix64::new(self.seed ^ SALT_SIZES);
        let (low, high) = self.profile.size;
        std::iter::repeat_with(move || rng.log_between(low, high) as usize)
    }

    /// The payload bytes: the writer and the reader each regenerate them.
    fn pattern(&self) -> Pattern {
        Pattern::new(self.seed ^ SALT_PAYLOAD)
    }

    fn describe(&self) -> String {
        format!(
            "stream {} ({}, seed {:#x})",
            self.id,
            self.kind.name(),
            self.seed
        )
    }
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Clean,
    Aborted(Abort),
    /// Lost, changed or late bytes, a refused upgrade, a wrong close: what
    /// the soak exists to find.
    Failed(String),
}

/// One stream's result.
#[derive(Debug, Clone)]
pub struct Report {
    pub kind: Kind,
    pub ended: Ended,
    pub messages_sent: u64,
    pub messages_checked: u64,
    pub bytes_sent: u64,
    /// Echoed payload bytes compared with the pattern and found equal.
    pub bytes_checked: u64,
}

/// Shared limits of a run that a stream obeys.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// After this, the writer sends no more messages and closes cleanly.
    pub deadline: Instant,
    /// Bulk streams send at most this many payload bytes per second.
    pub bulk_rate: u64,
}

/// Runs the stream `plan` against `target`.
pub fn run(target: &Target, plan: &Plan, limits: Limits) -> Report {
    let mut report = Report {
        kind: plan.kind,
        ended: Ended::Clean,
        messages_sent: 0,
        messages_checked: 0,
        bytes_sent: 0,
        bytes_checked: 0,
    };
    if plan.abort() == Some(Abort::Handshake) {
        report.ended = match handshake_abort(target, plan) {
            Ok(()) => Ended::Aborted(Abort::Handshake),
            Err(err) => Ended::Failed(format!("{}: handshake abort: {err}", plan.describe())),
        };
        return report;
    }
    let mut client =
        match Client::connect_with(target.addr, &target.path, &[("Host", &target.host)]) {
            Ok(client) => client,
            Err(err) => {
                report.ended =
                    Ended::Failed(format!("{}: connect/upgrade: {err}", plan.describe()));
                return report;
            }
        };
    let socket = match client.stream().try_clone() {
        Ok(socket) => socket,
        Err(err) => {
            report.ended = Ended::Failed(format!("{}: clone the socket: {err}", plan.describe()));
            return report;
        }
    };
    let aborting = AtomicBool::new(false);
    let (credit, credits) = mpsc::channel();
    let (written, read) = thread::scope(|scope| {
        let writer = scope.spawn(|| write_side(socket, plan, limits, credits, &aborting));
        let read = read_side(&mut client, plan, credit, &aborting);
        if read.is_err() {
            // Wake a writer blocked on a full socket; it fails fast.
            let _ = client.stream().shutdown(Shutdown::Both);
        }
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (written, read)
    });
    report.messages_sent = written.messages;
    report.bytes_sent = written.sum.bytes;
    let checked = match read {
        Ok(checked) => checked,
        Err((checked, why)) => {
            report.messages_checked = checked.messages;
            report.bytes_checked = checked.sum.bytes;
            report.ended = Ended::Failed(format!("{}: {why}", plan.describe()));
            return report;
        }
    };
    report.messages_checked = checked.messages;
    report.bytes_checked = checked.sum.bytes;
    report.ended = match &written.end {
        WriterEnd::Failed(why) => Ended::Failed(format!("{}: {why}", plan.describe())),
        WriterEnd::Aborted(Abort::Reset) => Ended::Aborted(Abort::Reset),
        end => match compare(&written, &checked) {
            Some(why) => Ended::Failed(format!("{}: {why}", plan.describe())),
            None if *end == WriterEnd::Closed => Ended::Clean,
            None => Ended::Aborted(Abort::Drop),
        },
    };
    report
}

/// Why the echoed stream differs from the sent one, if it does.
fn compare(written: &Written, checked: &Checked) -> Option<String> {
    if checked.messages != written.messages {
        return Some(format!(
            "{} messages sent, {} echoed before the end: {} lost",
            written.messages,
            checked.messages,
            written.messages.abs_diff(checked.messages)
        ));
    }
    if checked.sum != written.sum {
        return Some(format!(
            "checksums differ: sent {} bytes FNV-1a {:#018x}, echoed {} bytes {:#018x}",
            written.sum.bytes, written.sum.hash, checked.sum.bytes, checked.sum.hash
        ));
    }
    None
}

/// How the writer stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WriterEnd {
    /// All messages (or all until the deadline) sent, then Close 1000.
    Closed,
    Aborted(Abort),
    Failed(String),
}

#[derive(Debug)]
struct Written {
    end: WriterEnd,
    messages: u64,
    sum: Checksum,
}

/// What the reader found equal to the pattern.
#[derive(Debug, Default)]
struct Checked {
    messages: u64,
    sum: Checksum,
}

fn write_side(
    mut socket: TcpStream,
    plan: &Plan,
    limits: Limits,
    credits: Receiver<()>,
    aborting: &AtomicBool,
) -> Written {
    let mut written = Written {
        end: WriterEnd::Closed,
        messages: 0,
        sum: Checksum::default(),
    };
    let mut sizes = plan.sizes();
    let mut pattern = plan.pattern();
    let mut pauses = SplitMix64::new(plan.seed ^ SALT_PAUSES);
    let mut payload = Vec::new();
    let mut wire = Vec::new();
    let started = Instant::now();
    for index in 0..plan.messages {
        if let Some((fault, after)) = plan.abort {
            if index == after {
                written.end = inject(&socket, fault, aborting);
                return written;
            }
        }
        if Instant::now() >= limits.deadline {
            break;
        }
        if index >= plan.profile.window {
            match credits.recv_timeout(IO_TIMEOUT) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => {
                    written.end = WriterEnd::Failed(format!(
                        "no echo of message {} within {IO_TIMEOUT:?}",
                        index - plan.profile.window
                    ));
                    return written;
                }
                // The reader stopped; it reports why.
                Err(RecvTimeoutError::Disconnected) => return written,
            }
        }
        payload.resize(sizes.next().unwrap_or(1), 0);
        pattern.fill(&mut payload);
        wire.clear();
        encode_frame(
            &mut wire,
            true,
            Opcode::Binary,
            &payload,
            Some(random_mask()),
        );
        if let Err(err) = socket.write_all(&wire) {
            written.end = WriterEnd::Failed(format!("write message {index}: {err}"));
            return written;
        }
        written.sum.feed(&payload);
        written.messages += 1;
        let (low, high) = plan.profile.pause_us;
        if high > 0 {
            thread::sleep(Duration::from_micros(pauses.between(low, high)));
        }
        if plan.kind == Kind::Bulk {
            pace(started, written.sum.bytes, limits.bulk_rate);
        }
    }
    wire.clear();
    let close = close_payload(CLOSE_NORMAL, "");
    encode_frame(&mut wire, true, Opcode::Close, &close, Some(random_mask()));
    if let Err(err) = socket.write_all(&wire) {
        written.end = WriterEnd::Failed(format!("write Close: {err}"));
    }
    written
}

/// Sleeps until `bytes` sent since `started` is no more than `rate` per second.
fn pace(started: Instant, bytes: u64, rate: u64) {
    if rate == 0 {
        return;
    }
    let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
    let elapsed = started.elapsed();
    if due > elapsed {
        thread::sleep(due - elapsed);
    }
}

/// Injects `fault` on the stream's socket.
fn inject(socket: &TcpStream, fault: Abort, aborting: &AtomicBool) -> WriterEnd {
    aborting.store(true, Ordering::SeqCst);
    let result = match fault {
        // The RST goes out when the reader, woken by the read shutdown
        // (which sends nothing), drops the socket's last descriptor.
        Abort::Reset => SockRef::from(socket)
            .set_linger(Some(Duration::ZERO))
            .and_then(|()| socket.shutdown(Shutdown::Read)),
        Abort::Drop => socket.shutdown(Shutdown::Write),
        Abort::Handshake => unreachable!("handshake aborts never open a stream"),
    };
    match result {
        Ok(()) => WriterEnd::Aborted(fault),
        Err(err) => WriterEnd::Failed(format!("inject {}: {err}", fault.name())),
    }
}

/// Checks echoes until the stream ends; on failure also says why.
fn read_side(
    client: &mut Client,
    plan: &Plan,
    credit: Sender<()>,
    aborting: &AtomicBool,
) -> Result<Checked, (Checked, String)> {
    let mut checked = Checked::default();
    let mut sizes = plan.sizes();
    let mut pattern = plan.pattern();
    loop {
        let frame = match client.recv() {
            Ok(frame) => frame,
            // After an injected abort, the end of the stream is expected
            // (the writer compares what arrived before it with what it sent).
            Err(_) if aborting.load(Ordering::SeqCst) => return Ok(checked),
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                let why = format!("EOF without a Close after {} echoes", checked.messages);
                return Err((checked, why));
            }
            Err(err) => {
                let why = format!("read after {} echoes: {err}", checked.messages);
                return Err((checked, why));
            }
        };
        match frame.opcode {
            Opcode::Binary => {}
            Opcode::Close => return expect_end(client, checked, frame.close_code()),
            other => {
                let why = format!("echo {} came back as {other:?}", checked.messages);
                return Err((checked, why));
            }
        }
        let want = sizes.next().unwrap_or(1);
        if !frame.fin || frame.payload.len() != want {
            let why = format!(
                "echo {} has {} payload bytes (fin {}), sent {want}",
                checked.messages,
                frame.payload.len(),
                frame.fin
            );
            return Err((checked, why));
        }
        if let Err(at) = pattern.check(&frame.payload) {
            let why = format!(
                "echo {} differs from what was sent at payload byte {at} (stream byte {})",
                checked.messages,
                checked.sum.bytes + at as u64
            );
            return Err((checked, why));
        }
        checked.sum.feed(&frame.payload);
        checked.messages += 1;
        // The writer may have finished; a credit then goes nowhere.
        let _ = credit.send(());
    }
}

/// After the echoed Close: it must say 1000, and EOF must follow.
fn expect_end(
    client: &mut Client,
    checked: Checked,
    code: Option<u16>,
) -> Result<Checked, (Checked, String)> {
    if code != Some(CLOSE_NORMAL) {
        let why = format!("Close came back with code {code:?}, sent {CLOSE_NORMAL}");
        return Err((checked, why));
    }
    match client.recv() {
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(checked),
        Err(err) => Err((checked, format!("after the Close: {err}, not EOF"))),
        Ok(frame) => Err((
            checked,
            format!("a {:?} frame after the Close", frame.opcode),
        )),
    }
}

/// Connects, sends a prefix of the upgrade request and resets.
fn handshake_abort(target: &Target, plan: &Plan) -> io::Result<()> {
    let request = upgrade_request(&target.host, &target.path, &random_key(), &[]);
    let mut rng = SplitMix64::new(plan.seed ^ SALT_CUT);
    let cut = rng.between(0, request.len() as u64) as usize;
    let mut socket = TcpStream::connect_timeout(&target.addr, IO_TIMEOUT)?;
    socket.set_write_timeout(Some(IO_TIMEOUT))?;
    socket.write_all(&request[..cut])?;
    SockRef::from(&socket).set_linger(Some(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_their_profile_and_abort_inside_the_stream() {
        let mut aborts = [0; 3];
        for id in 0..2000 {
            for kind in Kind::ALL {
                let plan = Plan::new(id, SplitMix64::new(id).next_u64(), kind, 30);
                let profile = kind.profile();
                assert!((profile.messages.0..=profile.messages.1).contains(&plan.messages));
                if let Some((fault, after)) = plan.abort {
                    assert!(after < plan.messages);
                    aborts[Abort::ALL.iter().position(|a| *a == fault).unwrap()] += 1;
                }
                let sizes: Vec<_> = plan.sizes().take(5).collect();
                assert_eq!(sizes, plan.sizes().take(5).collect::<Vec<_>>());
                assert!(sizes
                    .iter()
                    .all(|&s| (profile.size.0..=profile.size.1).contains(&(s as u64))));
            }
        }
        // 30% of 6000 plans, split three ways: each kind of fault is drawn.
        assert!(aborts.iter().all(|&n| n > 400), "{aborts:?}");
        assert!(Plan::new(1, 1, Kind::Echo, 0).abort.is_none());
    }
}
