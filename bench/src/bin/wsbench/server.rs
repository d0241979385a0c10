//! `wsbench echo-server`: a fast WebSocket echo backend.
//!
//! One mio reactor per thread, each with its own `SO_REUSEPORT` listener on
//! the same port, edge-triggered readiness and a slab of connections. Frames
//! are echoed as they stream in ([`FrameWalker`]): payload bytes are unmasked
//! from the per-thread read buffer into the per-thread write buffer and
//! written straight out. Only a partial write parks bytes in a per-connection
//! buffer, and while bytes are parked the connection is not read
//! (backpressure). An idle connection owns no buffer.
//!
//! Requests are answered by [`reply_to`], exactly as by the test
//! `EchoServer`: plain HTTP gets `200` and `echo server: <METHOD> <PATH>`.
//! With `--name NAME` every 101 also carries `X-Upstream: NAME`, so a client
//! behind proxies and balancers learns which backend answered.

use std::io::{self, Read, Write};
use std::mem;
use std::net::SocketAddr;
use std::thread;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use wsbench::ws::{
    apply_mask, close_payload, encode_frame, encode_header, find_head_end, reply_to, Head, Opcode,
    ProtocolError, Reply, MAX_HEAD_LEN,
};

use crate::error::SetupError;
use crate::frames::{FrameWalker, Piece};
use crate::net;

/// The listener's token. Connection tokens are slab keys, which stay far below.
const LISTENER: Token = Token(usize::MAX);

/// Bytes per `read` into the per-thread buffer (64 KiB): batches many small
/// frames, or a large slice of a big one, per system call.
const READ_CHUNK: usize = 64 * 1024;

/// Readiness events taken per `poll` call.
const EVENTS_PER_POLL: usize = 1024;

/// RFC 6455 §7.4.1: 1002 "indicates that an endpoint is terminating the
/// connection due to a protocol error".
const CLOSE_PROTOCOL_ERROR: u16 = 1002;

/// Answer to a request head that does not end within [`MAX_HEAD_LEN`] bytes.
const HEAD_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
    Content-Length: 0\r\nConnection: close\r\n\r\n";

/// Answer to a request head that is not UTF-8.
const NOT_TEXT: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The field naming this backend in its 101 answers (`--name`).
const NAME_FIELD: &str = "X-Upstream";

/// Binds one listener per thread, prints `listening on ADDR` to stderr and
/// serves until the process is killed; `name` goes into every 101.
pub fn run(listen: SocketAddr, threads: usize, name: Option<&str>) -> Result<(), SetupError> {
    let threads = threads.max(1);
    let listeners = net::reuseport_listeners(listen, threads)
        .map_err(|err| SetupError::io(format!("bind {listen}"), err))?;
    let bound = listeners[0]
        .local_addr()
        .map_err(|err| SetupError::io("read the bound address", err))?;
    let reactors = listeners
        .into_iter()
        .map(|listener| Reactor::new(listener, name))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|err| SetupError::io("create a reactor", err))?;
    eprintln!("listening on {bound}");
    let mut handles = Vec::with_capacity(threads);
    for (index, reactor) in reactors.into_iter().enumerate() {
        let handle = thread::Builder::new()
            .name(format!("echo-{index}"))
            .spawn(move || reactor.run())
            .map_err(|err| SetupError::io("spawn a reactor thread", err))?;
        handles.push(handle);
    }
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(SetupError::io("poll", err)),
            Err(_) => return Err(SetupError::Usage("a reactor thread panicked".into())),
        }
    }
    Ok(())
}

/// What the worker does with a connection after handling its readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Continue,
    Close,
}

/// What the frame being received turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameReply {
    /// Echo it with this opcode (Ping becomes Pong).
    Echo(Opcode),
    /// Echo the Close, then stop reading and close once flushed.
    EchoThenClose,
    /// Drop it (an unsolicited Pong).
    Discard,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the request head; holds a head split across reads
    /// (empty, without an allocation, until that happens).
    Request { head: Vec<u8> },
    /// Echoing frames.
    Echo {
        walker: FrameWalker,
        reply: FrameReply,
    },
    /// The last answer is written or parked: flush it, then close.
    Closing,
}

/// Why echoing stopped in the middle of a read.
#[derive(Debug)]
enum Stop {
    /// The peer broke the framing rules: answer 1002 and close.
    Protocol(ProtocolError),
    /// A client frame without a masking key (RFC 6455 §5.1: "The server MUST
    /// close the connection upon receiving a frame that is not masked").
    Unmasked,
    /// A Close was echoed; later bytes are ignored.
    Closed,
}

impl From<ProtocolError> for Stop {
    fn from(err: ProtocolError) -> Stop {
        Stop::Protocol(err)
    }
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    phase: Phase,
    /// Output the socket did not take; empty (and unallocated) when drained.
    parked: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            phase: Phase::Request { head: Vec::new() },
            parked: Vec::new(),
        }
    }

    /// Handles readiness: flush parked output, then read, echo and write
    /// until the socket is drained or the peer stops taking bytes.
    /// `field` is the `X-Upstream` line for 101 answers, or empty.
    fn drive(
        &mut self,
        read_closed: bool,
        field: &[u8],
        scratch: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Outcome {
        if !self.parked.is_empty() {
            match write_until_blocked(&mut self.stream, &self.parked) {
                Ok(written) if written == self.parked.len() => self.parked = Vec::new(),
                Ok(written) => {
                    self.parked.drain(..written);
                    return Outcome::Continue;
                }
                Err(_) => return Outcome::Close,
            }
        }
        loop {
            if matches!(self.phase, Phase::Closing) {
                return Outcome::Close;
            }
            let read = match self.stream.read(scratch) {
                Ok(0) => return Outcome::Close,
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Outcome::Continue,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Outcome::Close,
            };
            out.clear();
            self.ingest(&scratch[..read], field, out);
            match write_until_blocked(&mut self.stream, out) {
                Ok(written) if written == out.len() => {}
                Ok(written) => {
                    // Backpressure: park the rest and read nothing more until
                    // the socket is writable again.
                    self.parked = out[written..].to_vec();
                    return Outcome::Continue;
                }
                Err(_) => return Outcome::Close,
            }
            // A short read drained the socket; new bytes bring a new edge.
            // After a hang-up, read on to see the EOF now.
            if read < scratch.len() && !read_closed {
                return if matches!(self.phase, Phase::Closing) {
                    Outcome::Close
                } else {
                    Outcome::Continue
                };
            }
        }
    }

    /// Consumes bytes read from the client, appending the answer to `out`.
    fn ingest(&mut self, input: &[u8], field: &[u8], out: &mut Vec<u8>) {
        match &mut self.phase {
            Phase::Request { head } => {
                let buffered;
                let (head_bytes, end) = if head.is_empty() {
                    match find_head_end(input) {
                        Some(end) => (input, end),
                        None => return self.park_head(input, out),
                    }
                } else {
                    head.extend_from_slice(input);
                    match find_head_end(head) {
                        Some(end) => {
                            buffered = mem::take(head);
                            (buffered.as_slice(), end)
                        }
                        None => return self.park_head(&[], out),
                    }
                };
                self.answer(&head_bytes[..end], field, out);
                if !head_bytes[end..].is_empty() {
                    self.ingest(&head_bytes[end..], field, out);
                }
            }
            Phase::Echo { walker, reply } => match echo(walker, reply, input, out) {
                Ok(()) => {}
                Err(Stop::Closed) => self.phase = Phase::Closing,
                Err(Stop::Protocol(err)) => self.fail(&err.to_string(), out),
                Err(Stop::Unmasked) => self.fail("unmasked frame", out),
            },
            Phase::Closing => {}
        }
    }

    /// Answers a protocol error with Close 1002 and `why` as the reason
    /// (all reasons used are far below the 123-byte limit of RFC 6455 §5.5).
    fn fail(&mut self, why: &str, out: &mut Vec<u8>) {
        let reason = close_payload(CLOSE_PROTOCOL_ERROR, why);
        encode_frame(out, true, Opcode::Close, &reason, None);
        self.phase = Phase::Closing;
    }

    /// Keeps an incomplete head (appending `more`), refusing one that grows
    /// past [`MAX_HEAD_LEN`].
    fn park_head(&mut self, more: &[u8], out: &mut Vec<u8>) {
        if let Phase::Request { head } = &mut self.phase {
            head.extend_from_slice(more);
            if head.len() > MAX_HEAD_LEN {
                out.extend_from_slice(HEAD_TOO_LARGE);
                self.phase = Phase::Closing;
            }
        }
    }

    /// Answers a complete request head and moves to the next phase.
    fn answer(&mut self, head_bytes: &[u8], field: &[u8], out: &mut Vec<u8>) {
        let reply = match Head::parse(head_bytes) {
            Ok(head) => reply_to(&head),
            Err(_) => Reply::Close(NOT_TEXT.to_vec()),
        };
        match reply {
            Reply::Upgrade(response) => {
                // The head ends with an empty line: the field goes before it.
                let (fields, end) = response.split_at(response.len() - 2);
                out.extend_from_slice(fields);
                out.extend_from_slice(field);
                out.extend_from_slice(end);
                self.phase = Phase::Echo {
                    walker: FrameWalker::default(),
                    reply: FrameReply::Discard,
                };
            }
            Reply::Close(response) => {
                out.extend_from_slice(&response);
                self.phase = Phase::Closing;
            }
        }
    }
}

/// Echoes the frames in `input` into `out` as they stream past.
fn echo(
    walker: &mut FrameWalker,
    reply: &mut FrameReply,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Stop> {
    walker.feed(input, |piece| {
        match piece {
            Piece::Header(header) => {
                if header.mask.is_none() {
                    return Err(Stop::Unmasked);
                }
                *reply = match header.opcode {
                    Opcode::Pong => FrameReply::Discard,
                    Opcode::Ping => FrameReply::Echo(Opcode::Pong),
                    Opcode::Close => FrameReply::EchoThenClose,
                    data => FrameReply::Echo(data),
                };
                let opcode = match *reply {
                    FrameReply::Echo(opcode) => opcode,
                    FrameReply::EchoThenClose => Opcode::Close,
                    FrameReply::Discard => return Ok(()),
                };
                encode_header(out, header.fin, opcode, header.payload_len, None);
            }
            Piece::Payload { data, offset, mask } => {
                if *reply != FrameReply::Discard {
                    let start = out.len();
                    out.extend_from_slice(data);
                    if let Some(key) = mask {
                        apply_mask(&mut out[start..], key, offset);
                    }
                }
            }
            Piece::End => {
                if *reply == FrameReply::EchoThenClose {
                    return Err(Stop::Closed);
                }
            }
        }
        Ok(())
    })
}

/// Writes as much of `buf` as the socket takes; returns the bytes written.
/// WouldBlock ends the attempt and is not an error.
fn write_until_blocked(stream: &mut TcpStream, buf: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < buf.len() {
        match stream.write(&buf[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(written)
}

/// One thread's event loop.
struct Reactor {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    /// `X-Upstream: NAME\r\n` for 101 answers, or empty without `--name`.
    field: Vec<u8>,
    /// Bytes just read; shared by every connection of this thread.
    scratch: Vec<u8>,
    /// The answer to `scratch`; shared likewise.
    out: Vec<u8>,
}

impl Reactor {
    fn new(mut listener: TcpListener, name: Option<&str>) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Reactor {
            poll,
            listener,
            conns: Slab::new(),
            field: name.map_or_else(Vec::new, |name| {
                format!("{NAME_FIELD}: {name}\r\n").into_bytes()
            }),
            scratch: vec![0; READ_CHUNK],
            out: Vec::with_capacity(READ_CHUNK + 2 * MAX_HEAD_LEN),
        })
    }

    /// Runs until `poll` itself fails.
    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        loop {
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    Token(key) => {
                        let read_closed = event.is_read_closed() || event.is_error();
                        self.ready(key, read_closed);
                    }
                }
            }
        }
    }

    /// Accepts until the backlog is empty (edge-triggered).
    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    // Latency matters more than segment count for echoes.
                    let _ = stream.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    // Both interests once, for good: under edge-triggered
                    // readiness, backpressure is simply not reading.
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    match self
                        .poll
                        .registry()
                        .register(&mut stream, Token(entry.key()), interest)
                    {
                        Ok(()) => {
                            entry.insert(Conn::new(stream));
                        }
                        Err(err) => eprintln!("echo-server: register a connection: {err}"),
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    // E.g. EMFILE: the connection stays queued and is taken
                    // on the next listener edge.
                    eprintln!("echo-server: accept: {err}");
                    return;
                }
            }
        }
    }

    fn ready(&mut self, key: usize, read_closed: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let outcome = conn.drive(read_closed, &self.field, &mut self.scratch, &mut self.out);
        if outcome == Outcome::Close {
            let mut conn = self.conns.remove(key);
            // The socket is closed on drop either way; deregistering first
            // keeps the poller's view exact.
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Shutdown, TcpStream as StdStream};
    use std::time::Duration;
    use wsbench::ws::{read_head, Client, Opcode};

    fn start() -> SocketAddr {
        start_named(None)
    }

    fn start_named(name: Option<&str>) -> SocketAddr {
        let listener = net::reuseport_listeners("127.0.0.1:0".parse().unwrap(), 1)
            .unwrap()
            .pop()
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let reactor = Reactor::new(listener, name).unwrap();
        // The reactor thread runs until the test process exits.
        thread::spawn(move || reactor.run());
        addr
    }

    #[test]
    fn echoes_like_the_test_server() {
        let addr = start();
        let mut client = Client::connect(addr, "/").unwrap();
        for len in [0, 1, 125, 126, 65535, 65536, 300_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            client.send(Opcode::Binary, &payload).unwrap();
            let frame = client.recv().unwrap();
            assert_eq!(frame.opcode, Opcode::Binary);
            assert_eq!(frame.payload, payload, "len {len}");
        }
        client.send_frame(false, Opcode::Text, b"frag").unwrap();
        client.send(Opcode::Continuation, b"ment").unwrap();
        let first = client.recv().unwrap();
        let second = client.recv().unwrap();
        assert_eq!(
            (first.fin, first.opcode, first.payload.as_slice()),
            (false, Opcode::Text, &b"frag"[..])
        );
        assert_eq!((second.fin, second.opcode), (true, Opcode::Continuation));
        client.send(Opcode::Ping, b"p").unwrap();
        assert_eq!(client.recv().unwrap().opcode, Opcode::Pong);
        assert_eq!(client.close(1000).unwrap(), Some(1000));
        client
            .stream()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut rest = Vec::new();
        client.stream().read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the server closes after echoing Close");
    }

    #[test]
    fn a_name_goes_into_the_101_only() {
        let addr = start_named(Some("up-2"));
        let mut client = Client::connect(addr, "/").unwrap();
        let head = client.response_head();
        assert!(
            head.split("\r\n").any(|line| line == "X-Upstream: up-2"),
            "{head}"
        );
        client.send(Opcode::Text, b"same bytes back").unwrap();
        assert_eq!(client.recv().unwrap().payload, b"same bytes back");
        let unnamed = Client::connect(start(), "/").unwrap();
        assert!(!unnamed.response_head().contains("X-Upstream"));
    }

    #[test]
    fn plain_http_and_unmasked_frames() {
        let addr = start();
        let mut plain = StdStream::connect(addr).unwrap();
        plain
            .write_all(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        plain.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.ends_with("echo server: GET /x\n"), "{response}");

        let mut raw = StdStream::connect(addr).unwrap();
        let key = wsbench::ws::random_key();
        let mut wire = wsbench::ws::upgrade_request("h", "/", &key, &[]);
        encode_frame(&mut wire, true, Opcode::Text, b"no mask", None);
        raw.write_all(&wire).unwrap();
        raw.shutdown(Shutdown::Write).unwrap();
        let (head, rest) = read_head(&mut raw).unwrap();
        assert!(head.starts_with(b"HTTP/1.1 101"));
        let mut all = rest;
        raw.read_to_end(&mut all).unwrap();
        let (frame, _) = wsbench::ws::decode_frame(&all).unwrap().unwrap();
        assert_eq!(frame.close_code(), Some(CLOSE_PROTOCOL_ERROR));
    }

    #[test]
    fn a_slow_reader_gets_everything_through_backpressure() {
        let addr = start();
        let mut client = Client::connect(addr, "/").unwrap();
        let payload = vec![0x5a; 1 << 20];
        // 16 MiB in flight overfills both socket buffers, so the server must
        // park output and stop reading until the client catches up.
        let mut writer = client.stream().try_clone().unwrap();
        let sender = thread::spawn(move || {
            for _ in 0..16 {
                let mut wire = Vec::new();
                encode_frame(
                    &mut wire,
                    true,
                    Opcode::Binary,
                    &payload,
                    Some([1, 2, 3, 4]),
                );
                writer.write_all(&wire).unwrap();
            }
        });
        thread::sleep(Duration::from_millis(200));
        for _ in 0..16 {
            let frame = client.recv().unwrap();
            assert_eq!(frame.payload.len(), 1 << 20);
            assert!(frame.payload.iter().all(|&b| b == 0x5a));
        }
        sender.join().unwrap();
    }
}
