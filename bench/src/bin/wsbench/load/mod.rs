//! The load modes (`echo`, `rate`, `handshakes`, `hold`) and what they
//! share: per-thread reactors, the [`Plan`] of a run (threads, their share
//! of the connections, source addresses, the message template), adding up
//! per-thread counts, opening many connections with bounded concurrency and
//! a deadline each, and checking echoes.
//!
//! Every mode runs one mio reactor per thread. A connection's token is its
//! index in the thread's slot vector; [`TIMER`] is the one reserved token.

pub mod conn;
pub mod echo;
pub mod handshakes;
pub mod hold;
pub mod message;
pub mod rate;
pub mod transport;

use std::io;
use std::ops::Range;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Registry, Token};
use wsbench::ws::Opcode;

use self::conn::{Conn, ConnError, Received};
use self::message::Template;
use crate::cli::LoadArgs;
use crate::error::SetupError;
use crate::report::{Checks, Errors};
use crate::target::Sources;
use crate::tls::TlsClient;

/// Token of a thread's timer (used by `rate`); connection tokens are slot
/// indices, which stay far below it.
pub const TIMER: Token = Token(usize::MAX);

/// Bytes per read into a thread's scratch buffer (64 KiB).
const READ_CHUNK: usize = 64 * 1024;

/// Readiness events taken per `poll` call.
const EVENTS_PER_POLL: usize = 1024;

/// How long a connection may take to connect and complete its upgrade.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often per-connection deadlines are checked.
pub const DEADLINE_SCAN: Duration = Duration::from_millis(100);

/// One thread's reactor and the buffers its connections share.
#[derive(Debug)]
pub struct Reactor {
    pub poll: Poll,
    pub events: Events,
    /// Bytes just read, shared by all connections of the thread.
    pub scratch: Vec<u8>,
    /// Frames completed by the last event, reused across events.
    pub frames: Vec<Received>,
}

impl Reactor {
    pub fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poll: Poll::new()?,
            events: Events::with_capacity(EVENTS_PER_POLL),
            scratch: vec![0; READ_CHUNK],
            frames: Vec::new(),
        })
    }

    /// Waits for readiness; an interrupted wait returns no events.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                self.events.clear();
                Ok(())
            }
            other => other,
        }
    }
}

/// One thread's counts, which add up into the run's total.
pub trait Tally: Default {
    fn merge(&mut self, other: &Self);
}

/// Settings every thread of a run shares.
#[derive(Debug)]
pub struct Plan<'a, A> {
    /// The mode's flags.
    pub args: &'a A,
    /// The flags every mode has.
    pub load: &'a LoadArgs,
    /// Connections (or, for `handshakes`, slots) across all threads.
    pub conns: usize,
    pub sources: Sources,
    /// For wss://: the TLS client every connection is made from.
    pub tls: Option<TlsClient>,
    /// Threads in use: `--threads`, but no more than connections.
    pub threads: usize,
    /// The message the mode sends.
    pub template: Template,
    /// Where threads wait for each other before measuring, so that all
    /// measure over the same time.
    pub barrier: Barrier,
}

impl<'a, A: Sync> Plan<'a, A> {
    /// A plan for `conns` connections from `src_ips` source addresses,
    /// sending messages with `message_size` payload bytes.
    pub fn new(
        args: &'a A,
        load: &'a LoadArgs,
        conns: u32,
        src_ips: u32,
        message_size: usize,
    ) -> Result<Plan<'a, A>, SetupError> {
        let conns = conns as usize;
        let threads = usize::from(load.threads).min(conns);
        Ok(Plan {
            args,
            load,
            conns,
            sources: Sources::new(src_ips, &load.url).map_err(SetupError::Usage)?,
            tls: TlsClient::from_args(&load.url, &load.tls)?,
            threads,
            template: Template::new(message_size),
            barrier: Barrier::new(threads),
        })
    }

    /// The global connection indices thread `index` owns.
    pub fn ids(&self, index: usize) -> Range<usize> {
        share(self.conns, self.threads, index)
    }

    /// Starts connection `global` (its source address picked by that index).
    pub fn start(&self, global: usize) -> Result<Conn, ConnError> {
        Conn::start(&self.load.url, self.tls.as_ref(), self.sources.pick(global))
    }

    /// Opens thread `index`'s connections on `reactor` ([`open_all`]), with
    /// its share of `--open-concurrency`.
    pub fn open_on(
        &self,
        reactor: &mut Reactor,
        index: usize,
        checks: &mut Checks,
    ) -> io::Result<Vec<Option<Conn>>> {
        let concurrency = (self.load.open_concurrency as usize / self.threads).max(1);
        let ids = self.ids(index);
        open_all(
            reactor,
            |global| self.start(global),
            ids,
            concurrency,
            checks,
        )
    }

    /// A new reactor with thread `index`'s connections opened on it.
    pub fn open(&self, index: usize, checks: &mut Checks) -> io::Result<OpenThread> {
        let mut reactor = Reactor::new()?;
        let conns = self.open_on(&mut reactor, index, checks)?;
        Ok((reactor, conns))
    }

    /// Waits until every thread has opened its connections; the first
    /// thread then says `measuring` on stderr, for scripts that start
    /// something once the connections are up (`scripts/attack.sh` starts
    /// its attack then).
    pub fn start_measuring(&self, index: usize) {
        self.barrier.wait();
        if index == 0 {
            eprintln!("measuring");
        }
    }

    /// Runs `work(index)` on every thread and adds up their counts; the
    /// first failure in thread order ends the run as a set-up error saying
    /// `what` failed.
    pub fn run<S: Tally + Send>(
        &self,
        what: &'static str,
        work: impl Fn(usize) -> io::Result<S> + Sync,
    ) -> Result<S, SetupError> {
        add_up(run_threads(self.threads, work), what)
    }
}

/// Adds up the threads' counts in thread order; the first failure ends the
/// run as a set-up error saying `what` failed.
pub fn add_up<S: Tally>(results: Vec<io::Result<S>>, what: &'static str) -> Result<S, SetupError> {
    let mut total = S::default();
    for result in results {
        total.merge(&result.map_err(|err| SetupError::io(what, err))?);
    }
    Ok(total)
}

/// A thread's reactor and its connections, slot `i` holding token `i`.
pub type OpenThread = (Reactor, Vec<Option<Conn>>);

/// Checks the echoes among one event's `frames`, in order: a Close fails the
/// connection, Pings and Pongs are skipped, and any other frame must be
/// message `*expect_seq` (a mismatch is counted in `checks`, not fatal).
/// `on_echo` runs after each echo's check.
pub fn take_echoes(
    template: &Template,
    frames: &[Received],
    expect_seq: &mut u64,
    checks: &mut Checks,
    mut on_echo: impl FnMut(&Received),
) -> Result<(), ConnError> {
    for echo in frames {
        match echo.opcode {
            Opcode::Close => return Err(ConnError::Closed("Close during the run")),
            Opcode::Ping | Opcode::Pong => continue,
            _ => {}
        }
        if let Err(mismatch) = template.check(echo, *expect_seq) {
            checks.mismatch(&mismatch);
        }
        *expect_seq += 1;
        on_echo(echo);
    }
    Ok(())
}

/// The global connection indices that thread `index` of `threads` owns:
/// contiguous, sizes differing by at most one.
pub fn share(total: usize, threads: usize, index: usize) -> Range<usize> {
    let base = total / threads;
    let extra = total % threads;
    let start = index * base + index.min(extra);
    let len = base + usize::from(index < extra);
    start..start + len
}

/// Runs `work(index)` on `threads` scoped threads and returns the results
/// in thread order.
pub fn run_threads<T: Send>(threads: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..threads)
            .map(|index| scope.spawn(move || work(index)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Drops a failed connection: counts the error and deregisters the socket.
pub fn fail(slot: &mut Option<Conn>, registry: &Registry, errors: &mut Errors, err: &ConnError) {
    errors.record(err);
    if let Some(mut conn) = slot.take() {
        conn.deregister(registry);
    }
}

/// Opens connections for the global indices `ids` with `start`, at most
/// `concurrency` handshakes in flight, each within [`OPEN_TIMEOUT`]. Slot
/// `i` (token `i`) holds connection `ids.start + i`, or `None` if it
/// failed; failures are counted in `checks`, and so is what each TLS
/// handshake negotiated.
pub fn open_all(
    reactor: &mut Reactor,
    start: impl Fn(usize) -> Result<Conn, ConnError>,
    ids: Range<usize>,
    concurrency: usize,
    checks: &mut Checks,
) -> io::Result<Vec<Option<Conn>>> {
    let errors = &mut checks.errors;
    let tls = &mut checks.tls;
    let count = ids.len();
    let mut conns: Vec<Option<Conn>> = (0..count).map(|_| None).collect();
    let mut started: Vec<Option<Instant>> = vec![None; count];
    let mut next = 0;
    let mut opening = 0;
    let mut next_scan = Instant::now() + DEADLINE_SCAN;
    loop {
        while opening < concurrency && next < count {
            let index = next;
            next += 1;
            let opened = start(ids.start + index).and_then(|mut conn| {
                conn.register(reactor.poll.registry(), Token(index))
                    .map_err(ConnError::Connect)?;
                Ok(conn)
            });
            match opened {
                Ok(conn) => {
                    conns[index] = Some(conn);
                    started[index] = Some(Instant::now());
                    opening += 1;
                }
                Err(err) => errors.record(&err),
            }
        }
        if opening == 0 {
            return Ok(conns);
        }
        reactor.wait(Some(DEADLINE_SCAN))?;
        let registry = reactor.poll.registry();
        for event in reactor.events.iter() {
            let index = event.token().0;
            let Some(conn) = conns.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            reactor.frames.clear();
            let result = conn.on_event(event, &mut reactor.scratch, &mut reactor.frames);
            let failure = match result {
                Ok(progress) if progress.eof => Some(ConnError::Closed("EOF while opening")),
                Ok(progress) => {
                    if progress.opened {
                        started[index] = None;
                        opening -= 1;
                        if let Some(negotiated) = conn.negotiated() {
                            tls.record(&negotiated);
                        }
                    }
                    None
                }
                Err(err) => Some(err),
            };
            if let Some(err) = failure {
                if started[index].take().is_some() {
                    opening -= 1;
                }
                fail(&mut conns[index], registry, errors, &err);
            }
        }
        let now = Instant::now();
        if now >= next_scan {
            next_scan = now + DEADLINE_SCAN;
            for index in 0..count {
                if started[index].is_some_and(|at| now - at > OPEN_TIMEOUT) {
                    started[index] = None;
                    opening -= 1;
                    let err = ConnError::Timeout("the connection to open");
                    fail(&mut conns[index], registry, errors, &err);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_everything_once() {
        for (total, threads) in [(10, 3), (2, 2), (7, 1), (5, 5), (100, 7)] {
            let ranges: Vec<_> = (0..threads).map(|i| share(total, threads, i)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[threads - 1].end, total);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert!(pair[0].len().abs_diff(pair[1].len()) <= 1);
            }
        }
    }
}
