//! The copy relay: read into the worker's one scratch buffer, write
//! straight out. Only a partial write parks the rest, and it parks the
//! scratch buffer itself (a fresh one takes its place), so no byte is copied
//! twice and an idle flow holds nothing.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

use super::{Fault, Flow, FlowState, Progress, Pumped};
use crate::buffer::{Buf, Pool};

/// Reads one pump may do before yielding to other pairs (512 KiB at
/// 32 KiB a read), so one bulk flow cannot starve a worker's other pairs.
pub const READS_PER_TURN: usize = 16;

/// The worker's relay buffers: the scratch every read lands in, and the
/// pool that parked and handshake buffers come from.
pub struct Buffers {
    pub scratch: Buf,
    pub pool: Pool,
}

impl Buffers {
    pub fn new() -> Buffers {
        let mut pool = Pool::new();
        Buffers {
            scratch: pool.take(),
            pool,
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

/// Moves bytes from `src` to `dst` until one blocks, the flow ends, or the
/// turn is used up.
pub fn pump(
    flow: &mut Flow,
    src: &TcpStream,
    dst: &TcpStream,
    bufs: &mut Buffers,
) -> Result<Progress, Fault> {
    let mut moved = 0;
    for _ in 0..READS_PER_TURN {
        if let Some(parked) = &mut flow.pending {
            match write(dst, parked.data()) {
                Ok(n) => {
                    moved += n;
                    parked.consume(n);
                    if !parked.is_empty() {
                        continue;
                    }
                    flow.release(&mut bufs.pool);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(blocked(moved)),
                Err(e) => return Err(Fault::Destination(e)),
            }
        }
        match flow.state {
            FlowState::Open => {}
            FlowState::Eof => {
                // The peer may already be gone; its error shows on the next
                // write or read, so a failed shutdown needs no handling here.
                let _ = dst.shutdown(Shutdown::Write);
                flow.state = FlowState::Shut;
                return Ok(finished(moved));
            }
            FlowState::Complete | FlowState::Shut => return Ok(finished(moved)),
        }

        let scratch = &mut bufs.scratch;
        scratch.clear();
        let room = scratch.space().len();
        let n = match read(src, scratch.space()) {
            Ok(0) => {
                flow.state = FlowState::Eof;
                continue;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(blocked(moved)),
            Err(e) => return Err(Fault::Source(e)),
        };
        scratch.fill(n);
        let advance = flow.body.advance(scratch.data()).map_err(Fault::Framing)?;
        if advance.done {
            flow.state = FlowState::Complete;
        }
        let body = &scratch.data()[..advance.used];
        let written = match if body.is_empty() {
            Ok(0)
        } else {
            write(dst, body)
        } {
            Ok(w) => w,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(Fault::Destination(e)),
        };
        moved += written;
        if written < advance.used {
            let mut parked = bufs.take_scratch();
            parked.truncate(advance.used);
            parked.consume(written);
            flow.pending = Some(parked);
            return Ok(blocked(moved));
        }
        // A short read drained the socket: under edge-triggered readiness
        // the next arrival raises a new event, so skip the read that would
        // only say WouldBlock, unless the peer is closing (its EOF raised
        // the event we are handling and will raise no other).
        if n < room && !flow.src_closing && flow.state == FlowState::Open {
            return Ok(blocked(moved));
        }
    }
    Ok(Progress {
        moved,
        pumped: Pumped::Yield,
    })
}

fn blocked(moved: usize) -> Progress {
    Progress {
        moved,
        pumped: Pumped::Blocked,
    }
}

fn finished(moved: usize) -> Progress {
    Progress {
        moved,
        pumped: Pumped::Finished,
    }
}

/// `read`, retried on EINTR.
pub fn read(mut src: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match src.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `write`, retried on EINTR.
pub fn write(mut dst: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    loop {
        match dst.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
