//! The copy relay: read into the worker's one scratch buffer, write
//! straight out. Only a partial write parks the rest, and it parks the
//! scratch buffer itself (a fresh one takes its place), so no byte is copied
//! twice and an idle flow holds nothing.

use super::{Conn, Fault, Flow, FlowState, Got, Mode, Parked, Progress, Put};
use crate::buffer::{Buf, Pool};

/// Reads one pump may do before yielding to other pairs (512 KiB at
/// 32 KiB a read), so one bulk flow cannot starve a worker's other pairs.
pub const READS_PER_TURN: usize = 16;

/// The worker's relay buffers: the scratch every read lands in, and the
/// pool that parked and handshake buffers come from.
#[derive(Debug)]
pub struct Buffers {
    pub scratch: Buf,
    pub pool: Pool,
    /// Bytes the last pump read past the end of its flow's message (the
    /// next request of a client that pipelines, or bytes an upstream
    /// should not have sent): the caller of a pump takes them right after
    /// it, so a flow needs no room of its own for them.
    pub surplus: Option<Box<Buf>>,
}

impl Buffers {
    pub fn new() -> Buffers {
        let mut pool = Pool::new();
        Buffers {
            scratch: pool.take(),
            pool,
            surplus: None,
        }
    }

    /// Swaps the scratch buffer out (to be parked) for a fresh one.
    pub fn take_scratch(&mut self) -> Buf {
        let fresh = self.pool.take();
        std::mem::replace(&mut self.scratch, fresh)
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers::new()
    }
}

/// The copy relay's turn: see [`super::pump`].
pub fn pump(
    flow: &mut Flow,
    src: &mut Conn<'_>,
    dst: &mut Conn<'_>,
    bufs: &mut Buffers,
) -> Result<Progress, Fault> {
    debug_assert!(
        !matches!(flow.parked, Parked::Pipe(_)),
        "pipes are the splice relay's"
    );
    let mut moved = 0;
    for _ in 0..READS_PER_TURN {
        if let Parked::Buf(parked) = &mut flow.parked {
            match dst.write(parked.data()) {
                Ok(Put::Bytes(n)) => {
                    moved += n;
                    parked.consume(n);
                    if !parked.is_empty() {
                        continue;
                    }
                    if let Parked::Buf(buf) = std::mem::take(&mut flow.parked) {
                        bufs.pool.give(buf);
                    }
                    if flow.src_drained
                        && !flow.src_closing
                        && flow.state == FlowState::Open
                        && !flow.close_due()
                    {
                        return Ok(Progress::blocked(moved));
                    }
                }
                Ok(Put::Blocked) => return Ok(Progress::blocked(moved)),
                Err(e) => return Err(Fault::Destination(e)),
            }
        }
        if flow.ended(dst) {
            return Ok(Progress::finished(moved));
        }
        if flow.close_due() {
            flow.park_close(&mut bufs.pool);
            continue;
        }
        if flow.state == FlowState::Held {
            return Ok(Progress::blocked(moved));
        }

        let scratch = &mut bufs.scratch;
        scratch.clear();
        let room = scratch.space().len();
        let n = match src.read(scratch.space()) {
            Ok(Got::Eof) if flow.state == FlowState::Discard => {
                flow.state = FlowState::Shut;
                continue;
            }
            Ok(Got::Eof) => {
                flow.state = FlowState::Eof;
                continue;
            }
            Ok(Got::Bytes(n)) => n,
            Ok(Got::Blocked) => return Ok(Progress::blocked(moved)),
            Err(e) => return Err(Fault::Source(e)),
        };
        scratch.fill(n);
        if src.peer_ended() {
            flow.src_closing = true;
        }
        if flow.state == FlowState::Discard {
            // After the Close frame nothing more goes this way; the
            // source's own Close ends its side.
            if flow.watch_close(scratch.data()) {
                flow.state = FlowState::Shut;
                continue;
            }
            if n < room && !flow.src_closing {
                return Ok(Progress::blocked(moved));
            }
            continue;
        }
        let advance = flow.body.advance(scratch.data()).map_err(Fault::Framing)?;
        if advance.done {
            flow.state = FlowState::Complete;
            if advance.used < n {
                // Past the message's end: the next message, kept for the
                // pair (copied, as the scratch buffer may be parked).
                debug_assert!(bufs.surplus.is_none(), "the last surplus was taken");
                let mut surplus = bufs.pool.take();
                let _ = surplus.put(&bufs.scratch.data()[advance.used..]);
                bufs.surplus = Some(Box::new(surplus));
            }
        }
        let scratch = &mut bufs.scratch;
        if advance.used < n && flow.close_due() {
            // Read past the boundary a drain stops at: dropped, but the
            // source's Close may be among them.
            flow.watch_close(&scratch.data()[advance.used..]);
        }
        let body = &scratch.data()[..advance.used];
        let written = match if body.is_empty() {
            Ok(Put::Bytes(0))
        } else {
            dst.write(body)
        } {
            Ok(Put::Bytes(w)) => w,
            Ok(Put::Blocked) => 0,
            Err(e) => return Err(Fault::Destination(e)),
        };
        moved += written;
        // Set before parking too: after a full read the source may hold
        // more (inside a TLS session, where no event will say so), so the
        // flow reads again once the parked bytes are out.
        flow.src_drained = n < room;
        if written < advance.used {
            let mut parked = bufs.take_scratch();
            parked.truncate(advance.used);
            parked.consume(written);
            flow.parked = Parked::Buf(parked);
            return Ok(Progress::blocked(moved));
        }
        if n == room {
            if flow.mode != Mode::Streaming {
                // A full read: this direction streams. Yield once so the
                // next turn can pick the splice relay.
                flow.mode = Mode::Streaming;
                return Ok(Progress::yielded(moved));
            }
            continue;
        }
        // A short read drained the socket: under edge-triggered readiness
        // the next arrival raises a new event, so skip the read that would
        // only say WouldBlock, unless the peer is closing (its EOF raised
        // the event we are handling and will raise no other).
        if !flow.src_closing && flow.state == FlowState::Open && !flow.close_due() {
            return Ok(Progress::blocked(moved));
        }
    }
    Ok(Progress::yielded(moved))
}
