//! `floor-epoll`: the least work a WebSocket relay can do on epoll, measured
//! beside wsproxy-fast by scripts/compare.sh (see `wsbench::floor`).
//!
//! One mio reactor per worker (epoll, edge-triggered), each with its own
//! `SO_REUSEPORT` listener. Per connection: accept (`TCP_NODELAY` inherited
//! from the listener), read the head into a growing buffer until the blank
//! line, connect the upstream (`TCP_NODELAY` set), write the head when the
//! connect completes, then relay. Both sockets are registered once for
//! reading and writing and never re-registered; closing them removes them
//! from epoll, so there is no deregistration either.
//!
//! Buffers: one 64 KiB scratch buffer per worker that every read lands in,
//! written on at once to the other side (one read and one write per
//! message). A connection holds a buffer of its own only while the other
//! side would not take all of it (the rest waits there, and its source is
//! not read until it has gone).
//!
//! A read shorter than the scratch buffer drained the socket (stream
//! sockets return what is queued, up to the length asked), so no read is
//! made only to see `WouldBlock`, unless the event also said the peer's FIN
//! is in (then reads go on to the end of stream). Either side's end of
//! stream or error closes both.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread;

use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use wsbench::floor::{head_complete, listeners, FloorArgs, MAX_HEAD};

/// The listener's token; a pair's are `2 * key + side`.
const LISTENER: Token = Token(usize::MAX);
/// The scratch buffer every read lands in (bytes).
const SCRATCH: usize = 64 * 1024;
/// Readiness events taken per `epoll_wait`.
const EVENTS: usize = 1024;

const CLIENT: usize = 0;
const UPSTREAM: usize = 1;

enum Phase {
    /// Reading the client's head.
    Head(Vec<u8>),
    /// Connecting to the upstream; the head waits to be written.
    Connecting(Vec<u8>),
    /// Relaying both ways.
    Relay,
}

struct Pair {
    sockets: [Option<TcpStream>; 2],
    phase: Phase,
    /// Bytes read from side `1 - i` that side `i` has not taken yet, and how
    /// many of them have gone.
    pending: [Option<(Vec<u8>, usize)>; 2],
    /// Side `i` became readable while its bytes could not be relayed yet.
    missed: [bool; 2],
    /// Side `i` has sent its FIN: a short read no longer means drained, as
    /// no edge will come for the end of stream already queued.
    hup: [bool; 2],
}

/// What a handler tells the loop.
enum Outcome {
    Continue,
    Close,
}

fn main() -> ExitCode {
    let args = FloorArgs::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("floor-epoll: {err}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &FloorArgs) -> io::Result<()> {
    let all = listeners(args.listen, args.workers.max(1))?;
    println!("listening on {}", all[0].local_addr()?);
    let upstream = args.upstream;
    let workers: Vec<_> = all
        .into_iter()
        .map(|listener| thread::spawn(move || worker(TcpListener::from_std(listener), upstream)))
        .collect();
    for handle in workers {
        handle.join().expect("a worker panicked")?;
    }
    Ok(())
}

fn worker(mut listener: TcpListener, upstream: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(EVENTS);
    let mut pairs: Slab<Pair> = Slab::new();
    let mut scratch = vec![0u8; SCRATCH];
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
        for event in &events {
            if event.token() == LISTENER {
                accept(&listener, &poll, &mut pairs);
                continue;
            }
            let (key, side) = (event.token().0 / 2, event.token().0 % 2);
            let Some(pair) = pairs.get_mut(key) else {
                continue;
            };
            let mut outcome = Outcome::Continue;
            if event.is_read_closed() || event.is_error() {
                pair.hup[side] = true;
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                outcome = readable(pair, key, side, &poll, upstream, &mut scratch);
            }
            if matches!(outcome, Outcome::Continue) && event.is_writable() {
                outcome = writable(pair, side, &mut scratch);
            }
            if matches!(outcome, Outcome::Close) {
                // Dropping the sockets closes them, which also takes them
                // out of epoll.
                pairs.remove(key);
            }
        }
    }
}

fn accept(listener: &TcpListener, poll: &Poll, pairs: &mut Slab<Pair>) {
    loop {
        match listener.accept() {
            Ok((mut client, _)) => {
                let entry = pairs.vacant_entry();
                let token = Token(2 * entry.key() + CLIENT);
                let interest = Interest::READABLE | Interest::WRITABLE;
                if poll
                    .registry()
                    .register(&mut client, token, interest)
                    .is_ok()
                {
                    entry.insert(Pair {
                        sockets: [Some(client), None],
                        phase: Phase::Head(Vec::new()),
                        pending: [None, None],
                        missed: [false, false],
                        hup: [false, false],
                    });
                }
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            // WouldBlock: all accepted; anything else (EMFILE, a connection
            // reset before accept) is retried on the next edge.
            Err(_) => return,
        }
    }
}

fn readable(
    pair: &mut Pair,
    key: usize,
    side: usize,
    poll: &Poll,
    upstream: SocketAddr,
    scratch: &mut [u8],
) -> Outcome {
    match &mut pair.phase {
        Phase::Head(head) if side == CLIENT => {
            let client = pair.sockets[CLIENT]
                .as_mut()
                .expect("a pair has its client");
            loop {
                match client.read(scratch) {
                    Ok(0) => return Outcome::Close,
                    Ok(n) => {
                        head.extend_from_slice(&scratch[..n]);
                        if n < scratch.len() && !pair.hup[CLIENT] {
                            break;
                        }
                    }
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return Outcome::Close,
                }
            }
            if head.len() > MAX_HEAD {
                return Outcome::Close;
            }
            if !head_complete(head) {
                return Outcome::Continue;
            }
            let Ok(mut stream) = TcpStream::connect(upstream) else {
                return Outcome::Close;
            };
            let token = Token(2 * key + UPSTREAM);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if stream.set_nodelay(true).is_err()
                || poll
                    .registry()
                    .register(&mut stream, token, interest)
                    .is_err()
            {
                return Outcome::Close;
            }
            pair.sockets[UPSTREAM] = Some(stream);
            let head = std::mem::take(head);
            pair.phase = Phase::Connecting(head);
            Outcome::Continue
        }
        Phase::Relay => relay(pair, side, scratch),
        _ => {
            pair.missed[side] = true;
            Outcome::Continue
        }
    }
}

fn writable(pair: &mut Pair, side: usize, scratch: &mut [u8]) -> Outcome {
    if let Phase::Connecting(head) = &mut pair.phase {
        if side != UPSTREAM {
            return Outcome::Continue;
        }
        // The connect completed (or failed: then the write says so).
        let head = std::mem::take(head);
        pair.phase = Phase::Relay;
        pair.pending[UPSTREAM] = Some((head, 0));
    }
    if !matches!(pair.phase, Phase::Relay) {
        return Outcome::Continue;
    }
    let Some((bytes, done)) = pair.pending[side].as_mut() else {
        return Outcome::Continue;
    };
    let socket = pair.sockets[side]
        .as_mut()
        .expect("a relaying pair has both sockets");
    while *done < bytes.len() {
        match socket.write(&bytes[*done..]) {
            Ok(n) => *done += n,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Outcome::Continue,
            Err(_) => return Outcome::Close,
        }
    }
    pair.pending[side] = None;
    // The source was left unread while its bytes waited here.
    let source = 1 - side;
    if std::mem::take(&mut pair.missed[source]) {
        return relay(pair, source, scratch);
    }
    Outcome::Continue
}

/// Relays what side `from` has to the other side: one read and one write
/// per message.
fn relay(pair: &mut Pair, from: usize, scratch: &mut [u8]) -> Outcome {
    let to = 1 - from;
    if pair.pending[to].is_some() {
        pair.missed[from] = true;
        return Outcome::Continue;
    }
    let [client, upstream] = &mut pair.sockets;
    let (Some(client), Some(upstream)) = (client.as_mut(), upstream.as_mut()) else {
        return Outcome::Close;
    };
    let (source, sink) = if from == CLIENT {
        (client, upstream)
    } else {
        (upstream, client)
    };
    loop {
        let n = match source.read(scratch) {
            Ok(0) => return Outcome::Close,
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Outcome::Continue,
            Err(_) => return Outcome::Close,
        };
        let mut done = 0;
        while done < n {
            match sink.write(&scratch[done..n]) {
                Ok(m) => done += m,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    pair.pending[to] = Some((scratch[done..n].to_vec(), 0));
                    pair.missed[from] = true;
                    return Outcome::Continue;
                }
                Err(_) => return Outcome::Close,
            }
        }
        if n < scratch.len() && !pair.hup[from] {
            return Outcome::Continue;
        }
    }
}
