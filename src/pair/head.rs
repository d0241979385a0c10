//! Reading a head that may span several reads, for requests and responses
//! alike: one read at a time into the worker's scratch buffer, parsed in
//! place when the head came whole (the common case), gathered in a
//! growing copy only when it did not.

use std::io;

use crate::buffer::Buf;
use crate::relay::{Conn, Got};

/// The part of a head read so far.
#[derive(Debug, Default)]
pub(super) struct HeadReader {
    partial: Vec<u8>,
}

/// What one read produced.
pub(super) enum Fill<'a> {
    /// The bytes to parse: everything read of the head so far. `drained`:
    /// the read was short and the event reported no EOF, so the socket is
    /// empty (edge-triggered: the next arrival raises an event).
    Input { input: &'a [u8], drained: bool },
    /// The peer closed.
    Eof,
    /// Nothing more to read now.
    Blocked,
}

impl HeadReader {
    /// Whether part of a head is waiting for the rest.
    pub(super) fn is_started(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Reads once from `conn`: at most `first_room` bytes for a new head,
    /// else what `limit` leaves room for (bytes past it wait in the
    /// kernel). `closing`: the event reported EOF, so a short read does
    /// not mean the socket is empty.
    pub(super) fn fill<'a>(
        &'a mut self,
        mut conn: Conn<'_>,
        scratch: &'a mut Buf,
        first_room: usize,
        limit: usize,
        closing: bool,
    ) -> io::Result<Fill<'a>> {
        scratch.clear();
        let room = if self.partial.is_empty() {
            first_room
        } else {
            limit - self.partial.len()
        };
        let n = match conn.read(&mut scratch.space()[..room])? {
            Got::Bytes(n) => n,
            Got::Eof => return Ok(Fill::Eof),
            Got::Blocked => return Ok(Fill::Blocked),
        };
        scratch.fill(n);
        // A TLS session may hold the peer's EOF, which no event will
        // report: that is still to be read.
        let drained = n < room && !closing && !conn.peer_ended();
        if self.partial.is_empty() {
            return Ok(Fill::Input {
                input: scratch.data(),
                drained,
            });
        }
        self.partial.extend_from_slice(scratch.data());
        Ok(Fill::Input {
            input: &self.partial,
            drained,
        })
    }

    /// The head is not complete: keeps the input from `consumed` on (what
    /// came before was handled) for the next read to add to.
    pub(super) fn keep(&mut self, scratch: &Buf, consumed: usize) {
        // Input gathered here is never empty; an empty gathering means the
        // input was the scratch buffer itself.
        if self.partial.is_empty() {
            self.partial.extend_from_slice(&scratch.data()[consumed..]);
        } else {
            self.partial.drain(..consumed);
        }
    }

    /// The head was handled: frees what was gathered.
    pub(super) fn clear(&mut self) {
        self.partial = Vec::new();
    }
}
