//! One HTTP/2 client connection as a worker keeps it: the socket and TLS
//! session, the sans-I/O connection state machine, the frames waiting for
//! the socket, and each stream's answer on its way out (see `h2.rs` for
//! how the worker drives it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Interest;

use crate::h2::bridge::{Answer, Head, Inbound};
use crate::h2::conn::Conn as H2;
use crate::h2::error::ErrorCode;
use crate::h2::hpack::Field;
use crate::info;
use crate::relay::stream::StreamIo;
use crate::relay::Tls;

/// Most of a stream's answer that waits for the peer's window; the pair
/// writing it blocks beyond this, as on a full socket.
pub(super) const STREAM_ROOM: usize = 64 << 10;

/// Frames waiting for the socket beyond which no stream gets more room.
pub(super) const OUT_HIGH: usize = 256 << 10;

/// One stream as the connection keeps it.
#[derive(Debug)]
pub(super) struct Slot {
    /// The pair serving it, until the pair is gone.
    pub(super) pair: Option<usize>,
    pub(super) inbound: Inbound,
    pub(super) answer: Answer,
    /// Answer DATA octets waiting for the peer's window.
    pub(super) pending: Vec<u8>,
    /// The answer is through (or the pair shut its side): END_STREAM once
    /// `pending` is out.
    pub(super) finishing: bool,
    /// END_STREAM or RST_STREAM went out.
    pub(super) ended: bool,
    pub(super) websocket: bool,
}

/// One HTTP/2 client connection.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) tcp: TcpStream,
    pub(super) tls: Option<Box<Tls>>,
    pub(super) h2: H2,
    pub(super) client_addr: SocketAddr,
    pub(super) listener: usize,
    pub(super) gen: usize,
    pub(super) ip_counted: bool,
    /// Octets read and not yet a whole frame.
    pub(super) input: Vec<u8>,
    /// Frames for the socket.
    pub(super) out: Vec<u8>,
    pub(super) streams: HashMap<u32, Slot>,
    pub(super) registered: Option<Interest>,
    /// Frames were added since the last write.
    pub(super) dirty: bool,
    /// A connection error, or the client's end: close once `out` is out.
    pub(super) closing: bool,
    /// Since when no stream has been open.
    pub(super) idle_since: Instant,
    pub(super) going_away: bool,
}

impl Session {
    pub(super) fn want(&self) -> Interest {
        let flush = !self.out.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_flush());
        if flush {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }

    /// How much more a stream's pair may write now.
    pub(super) fn room(&self, slot: &Slot) -> usize {
        if self.out.len() >= OUT_HIGH {
            return 0;
        }
        STREAM_ROOM.saturating_sub(slot.pending.len())
    }

    /// Sends what a stream's window allows of its pending DATA, and
    /// END_STREAM once the answer is through.
    pub(super) fn push(&mut self, id: u32, now: Instant) {
        let Some(slot) = self.streams.get_mut(&id) else {
            return;
        };
        if slot.ended || (slot.pending.is_empty() && !slot.finishing) {
            return;
        }
        let n = self
            .h2
            .send_data(id, &slot.pending, slot.finishing, now, &mut self.out);
        slot.pending.drain(..n);
        if slot.pending.is_empty() && slot.finishing {
            slot.ended = true;
        }
        if slot.pending.is_empty() {
            // An idle stream holds no buffer.
            slot.pending = Vec::new();
        }
        self.dirty = true;
    }

    pub(super) fn send_head(&mut self, id: u32, head: &Head) {
        let status = head.status.to_string();
        let mut fields = Vec::with_capacity(head.fields.len() + 1);
        fields.push(Field::new(b":status", status.as_bytes()));
        fields.extend(head.fields.iter().map(|(n, v)| Field::new(n, v)));
        self.h2
            .send_headers(id, fields, head.end_stream, &mut self.out);
        self.dirty = true;
    }

    /// Answers a stream the proxy does not carry, with a short text body.
    pub(super) fn refuse(&mut self, id: u32, status: u16, reason: &str, now: Instant) {
        let body = format!("{reason}\n");
        let length = body.len().to_string();
        let head = Head {
            status,
            fields: vec![
                (b"content-type".to_vec(), b"text/plain".to_vec()),
                (b"content-length".to_vec(), length.into_bytes()),
            ],
            end_stream: false,
        };
        self.send_head(id, &head);
        self.h2
            .send_data(id, body.as_bytes(), true, now, &mut self.out);
        if self.h2.is_open(id) {
            // The client's side is still open: its body is not wanted.
            self.h2.cancel(id, ErrorCode::NoError, &mut self.out);
        }
    }

    /// Frames what a stream's pair wrote and gives back the window for
    /// what it read; `io.room` says what it may write next.
    pub(super) fn sync(&mut self, io: &mut StreamIo, now: Instant) {
        let id = io.id;
        if io.consumed > 0 {
            self.h2.release(id, io.consumed, &mut self.out);
            io.consumed = 0;
            self.dirty = true;
        }
        let Some(slot) = self.streams.get_mut(&id) else {
            io.reset = true;
            io.room = 0;
            return;
        };
        if io.aborted {
            if !slot.ended {
                self.h2.cancel(id, ErrorCode::Cancel, &mut self.out);
            }
            slot.ended = true;
            slot.pending = Vec::new();
            io.reset = true;
            self.dirty = true;
            return;
        }
        let mut heads = Vec::new();
        if !io.outbound.is_empty() {
            // Taken whole: an idle stream holds no buffer.
            let bytes = io.take_outbound();
            let fed = slot.answer.feed(&bytes, &mut heads, &mut slot.pending);
            if let Err(reason) = fed {
                info!(
                    "client {}: stream {id}: {reason}; ending the stream",
                    self.client_addr
                );
                let answered = slot.answer.head_sent();
                slot.ended = true;
                slot.pending = Vec::new();
                io.reset = true;
                io.room = 0;
                if answered {
                    self.h2.cancel(id, ErrorCode::InternalError, &mut self.out);
                } else {
                    self.refuse(id, 502, reason, now);
                }
                self.dirty = true;
                return;
            }
        }
        if io.shut || slot.answer.is_done() {
            slot.finishing = true;
        }
        for head in &heads {
            if head.end_stream {
                if let Some(slot) = self.streams.get_mut(&id) {
                    slot.ended = true;
                    slot.finishing = true;
                }
            }
            self.send_head(id, head);
        }
        self.push(id, now);
        let slot = &self.streams[&id];
        io.room = if slot.ended { 0 } else { self.room(slot) };
    }
}
