//! One load-generator connection on a mio reactor: a non-blocking connect
//! (optionally from a chosen source address; over TLS for wss://, see
//! `transport.rs`), the opening handshake checked
//! as RFC 6455 §4.1 requires, then incoming frames walked as they arrive,
//! keeping only each frame's opcode, length and first 8 payload bytes.
//!
//! Outgoing bytes are queued in the connection's buffer, whose capacity is
//! reused, so steady sending does not allocate.

use std::error::Error;
use std::fmt;
use std::io;
use std::mem;
use std::net::IpAddr;

use mio::event::Event;
use mio::{Interest, Registry, Token};
use wsbench::ws::{
    apply_mask, check_upgrade_response, find_head_end, random_key, upgrade_request, Head, Opcode,
    ProtocolError, MAX_HEAD_LEN,
};

use super::transport::Transport;
use crate::frames::{FrameWalker, Piece};
use crate::net;
use crate::target::Target;
use crate::tls::{Negotiated, TlsClient};

/// Payload bytes kept from each received frame: enough for a sequence number.
pub const PREFIX_LEN: usize = 8;

/// A connection failure, by kind; the load modes count them.
#[derive(Debug)]
pub enum ConnError {
    /// The TCP connect failed.
    Connect(io::Error),
    /// The server's answer to the upgrade was refused (status line included).
    Handshake(String),
    /// The TLS layer failed: a bad certificate, a handshake failure, an alert.
    Tls(rustls::Error),
    /// Reading or writing failed after connecting.
    Io(io::Error),
    /// The server broke the framing rules.
    Protocol(ProtocolError),
    /// The server closed (EOF or a Close frame) when it should not have.
    Closed(&'static str),
    /// A deadline passed; says what was awaited.
    Timeout(&'static str),
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Connect(err) => write!(f, "connect: {err}"),
            ConnError::Handshake(why) => write!(f, "handshake: {why}"),
            ConnError::Tls(err) => write!(f, "tls: {err}"),
            ConnError::Io(err) => write!(f, "i/o: {err}"),
            ConnError::Protocol(err) => write!(f, "protocol: {err}"),
            ConnError::Closed(what) => write!(f, "closed by the server: {what}"),
            ConnError::Timeout(what) => write!(f, "timed out waiting for {what}"),
        }
    }
}

impl Error for ConnError {}

impl From<ProtocolError> for ConnError {
    fn from(err: ProtocolError) -> ConnError {
        ConnError::Protocol(err)
    }
}

/// A received frame, reduced to what the load modes check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub opcode: Opcode,
    pub len: u64,
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
}

impl Received {
    fn start(opcode: Opcode, len: u64) -> Received {
        Received {
            opcode,
            len,
            prefix: [0; PREFIX_LEN],
            prefix_len: 0,
        }
    }

    /// Keeps the payload's first bytes, unmasked.
    fn capture(&mut self, data: &[u8], offset: u64, mask: Option<[u8; 4]>) {
        if offset >= PREFIX_LEN as u64 {
            return;
        }
        let from = offset as usize;
        let take = (PREFIX_LEN - from).min(data.len());
        let kept = &mut self.prefix[from..from + take];
        kept.copy_from_slice(&data[..take]);
        if let Some(key) = mask {
            apply_mask(kept, key, offset);
        }
        self.prefix_len = from + take;
    }

    /// The first `min(len, 8)` payload bytes.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix[..self.prefix_len]
    }
}

/// What a readiness event changed, beyond the frames it delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The handshake completed during this event.
    pub opened: bool,
    /// The server closed its side of the stream.
    pub eof: bool,
}

#[derive(Debug)]
enum Phase {
    /// TCP connect in progress; the request is already queued.
    Connecting { key: String },
    /// Request sent (or being sent); the response head arrives in `head`.
    Upgrading { key: String, head: Vec<u8> },
    /// Frames flow.
    Open,
}

#[derive(Debug)]
pub struct Conn {
    transport: Transport,
    out: Vec<u8>,
    inbound: Inbound,
}

/// What arrives: the upgrade's answer, then frames.
#[derive(Debug)]
struct Inbound {
    phase: Phase,
    walker: FrameWalker,
    incoming: Received,
}

impl Conn {
    /// Starts connecting to `target` from `source` (kernel's choice when
    /// `None`), over TLS when `tls` is given, and queues the upgrade request.
    pub fn start(
        target: &Target,
        tls: Option<&TlsClient>,
        source: Option<IpAddr>,
    ) -> Result<Conn, ConnError> {
        let stream = net::connect(target.addr, source).map_err(ConnError::Connect)?;
        let transport = match tls {
            None => Transport::Plain(stream),
            Some(client) => Transport::Tls {
                stream,
                tls: Box::new(client.connect().map_err(ConnError::Tls)?),
            },
        };
        let key = random_key();
        let out = upgrade_request(&target.host, &target.path, &key, &[]);
        Ok(Conn {
            transport,
            out,
            inbound: Inbound {
                phase: Phase::Connecting { key },
                walker: FrameWalker::default(),
                incoming: Received::start(Opcode::Continuation, 0),
            },
        })
    }

    /// Registers for both readiness kinds, once: under edge-triggered
    /// readiness an unwanted kind costs nothing.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            self.transport.socket(),
            token,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    pub fn deregister(&mut self, registry: &Registry) {
        // The socket closes on drop regardless; failure here changes nothing.
        let _ = registry.deregister(self.transport.socket());
    }

    /// What the TLS handshake negotiated, once done; `None` for ws://.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.transport.negotiated()
    }

    /// The send queue, for appending pre-encoded frames; see [`Conn::flush`].
    pub fn out_mut(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Queued bytes the socket has not taken yet.
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Frees the send queue's memory when it is empty (for idle connections).
    pub fn shrink(&mut self) {
        if self.out.is_empty() {
            self.out = Vec::new();
        }
    }

    /// Handles one readiness event: completes the connect, writes queued
    /// bytes, reads until drained, checks the handshake, and appends every
    /// complete frame to `frames`.
    pub fn on_event(
        &mut self,
        event: &Event,
        scratch: &mut [u8],
        frames: &mut Vec<Received>,
    ) -> Result<Progress, ConnError> {
        let mut progress = Progress::default();
        if let Phase::Connecting { key } = &mut self.inbound.phase {
            let socket = self.transport.socket();
            if let Some(err) = socket.take_error().map_err(ConnError::Connect)? {
                return Err(ConnError::Connect(err));
            }
            match socket.peer_addr() {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::NotConnected => return Ok(progress),
                Err(err) => return Err(ConnError::Connect(err)),
            }
            let key = mem::take(key);
            self.inbound.phase = Phase::Upgrading {
                key,
                head: Vec::new(),
            };
        }
        self.flush()?;
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            let read_closed = event.is_read_closed() || event.is_error();
            let inbound = &mut self.inbound;
            let eof = self.transport.receive(read_closed, scratch, |data| {
                inbound.ingest(data, frames, &mut progress)
            })?;
            progress.eof = eof;
            // TLS: handshake records made while reading, and the request
            // rustls held back until the handshake was done.
            self.flush()?;
        }
        Ok(progress)
    }

    /// Writes queued bytes until done or the socket is full.
    pub fn flush(&mut self) -> Result<(), ConnError> {
        if matches!(self.inbound.phase, Phase::Connecting { .. })
            || (self.out.is_empty() && !self.transport.wants_write())
        {
            return Ok(());
        }
        let written = self.transport.send(&self.out)?;
        if written == self.out.len() {
            self.out.clear();
        } else {
            self.out.drain(..written);
        }
        Ok(())
    }
}

impl Inbound {
    fn ingest(
        &mut self,
        data: &[u8],
        frames: &mut Vec<Received>,
        progress: &mut Progress,
    ) -> Result<(), ConnError> {
        let Phase::Upgrading { key, head } = &mut self.phase else {
            return self.walk(data, frames);
        };
        head.extend_from_slice(data);
        let Some(end) = find_head_end(head) else {
            if head.len() > MAX_HEAD_LEN {
                return Err(ConnError::Handshake(format!(
                    "no end of response head within {MAX_HEAD_LEN} bytes"
                )));
            }
            return Ok(());
        };
        let parsed =
            Head::parse(&head[..end]).map_err(|err| ConnError::Handshake(err.to_string()))?;
        check_upgrade_response(&parsed, key)
            .map_err(|err| ConnError::Handshake(err.to_string()))?;
        let head = mem::take(head);
        self.phase = Phase::Open;
        progress.opened = true;
        self.walk(&head[end..], frames)
    }

    fn walk(&mut self, data: &[u8], frames: &mut Vec<Received>) -> Result<(), ConnError> {
        let incoming = &mut self.incoming;
        self.walker.feed(data, |piece| {
            match piece {
                Piece::Header(header) => {
                    *incoming = Received::start(header.opcode, header.payload_len)
                }
                Piece::Payload { data, offset, mask } => incoming.capture(data, offset, mask),
                Piece::End => frames.push(*incoming),
            }
            Ok::<(), ConnError>(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_kept_across_pieces_and_unmasked() {
        let mask = [1, 2, 3, 4];
        let mut payload = *b"0123456789";
        apply_mask(&mut payload, mask, 0);
        let mut received = Received::start(Opcode::Binary, 10);
        received.capture(&payload[..3], 0, Some(mask));
        received.capture(&payload[3..], 3, Some(mask));
        assert_eq!(received.prefix(), b"01234567");

        let mut short = Received::start(Opcode::Text, 2);
        short.capture(b"ab", 0, None);
        assert_eq!(short.prefix(), b"ab");
    }
}
