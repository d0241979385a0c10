//! Reading a head that may span several reads, for requests and responses
//! alike: one read at a time into the worker's scratch buffer, parsed in
//! place when the head came whole (the common case), gathered in a pooled
//! buffer only when it did not. A reader can also start with bytes read
//! earlier (a pipelined request that came with the previous one), which it
//! hands out before reading the socket.

use std::io;

use crate::buffer::{Buf, Pool};
use crate::relay::copy::Buffers;
use crate::relay::{Conn, Got};

/// The part of a head read so far.
#[derive(Debug, Default)]
pub(super) struct HeadReader {
    /// Never empty: an empty one goes back to the pool.
    partial: Option<Box<Buf>>,
    /// `partial` holds bytes nobody has parsed yet (read along with an
    /// earlier message): the next fill hands them out as they are.
    unparsed: bool,
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
    /// A reader that starts with `bytes` read earlier.
    pub(super) fn seeded(bytes: Option<Box<Buf>>) -> HeadReader {
        let partial = bytes.filter(|b| !b.is_empty());
        HeadReader {
            unparsed: partial.is_some(),
            partial,
        }
    }

    /// Whether part of a head is waiting for the rest.
    pub(super) fn is_started(&self) -> bool {
        self.partial.is_some()
    }

    /// Reads once from `conn` (or hands out unparsed bytes first): at most
    /// `first_room` bytes for a new head, else what `limit` leaves room for
    /// (bytes past it wait in the kernel). `closing`: the event reported
    /// EOF, so a short read does not mean the socket is empty.
    pub(super) fn fill<'a>(
        &'a mut self,
        mut conn: Conn<'_>,
        scratch: &'a mut Buf,
        first_room: usize,
        limit: usize,
        closing: bool,
    ) -> io::Result<Fill<'a>> {
        if std::mem::take(&mut self.unparsed) {
            // Whether the socket holds more is unknown: not drained.
            return Ok(Fill::Input {
                input: self.partial.as_deref().map_or(&[], Buf::data),
                drained: false,
            });
        }
        scratch.clear();
        let room = match &self.partial {
            None => first_room,
            Some(partial) => limit.saturating_sub(partial.len()).max(1),
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
        match &mut self.partial {
            None => Ok(Fill::Input {
                input: scratch.data(),
                drained,
            }),
            Some(partial) => {
                partial.compact();
                // The head limit is below a buffer's size: this fits.
                let _ = partial.put(scratch.data());
                Ok(Fill::Input {
                    input: partial.data(),
                    drained,
                })
            }
        }
    }

    /// The head is not complete: keeps the input from `consumed` on (what
    /// came before was handled) for the next read to add to.
    pub(super) fn keep(&mut self, bufs: &mut Buffers, consumed: usize) {
        match &mut self.partial {
            // The input was the scratch buffer itself.
            None => {
                let rest = &bufs.scratch.data()[consumed..];
                if !rest.is_empty() {
                    let mut partial = bufs.pool.take();
                    let _ = partial.put(rest);
                    self.partial = Some(Box::new(partial));
                }
            }
            Some(partial) => {
                partial.consume(consumed);
                if partial.is_empty() {
                    self.clear(&mut bufs.pool);
                }
            }
        }
    }

    /// The head was handled: what the input held past its first `used`
    /// bytes (a pipelined request), without copying it, and the reader
    /// emptied.
    pub(super) fn rest(&mut self, bufs: &mut Buffers, used: usize) -> Option<Box<Buf>> {
        let mut rest = match self.partial.take() {
            Some(partial) => partial,
            None => {
                if bufs.scratch.len() <= used {
                    return None;
                }
                Box::new(bufs.take_scratch())
            }
        };
        rest.consume(used.min(rest.len()));
        if rest.is_empty() {
            bufs.pool.give(*rest);
            return None;
        }
        Some(rest)
    }

    /// Gives what was gathered back to the pool.
    pub(super) fn clear(&mut self, pool: &mut Pool) {
        self.unparsed = false;
        if let Some(partial) = self.partial.take() {
            pool.give(*partial);
        }
    }
}
