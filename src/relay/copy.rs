//! The copy relay: read into the worker's one scratch buffer, write
//! straight out. Only a partial write parks the rest, and it parks the
//! scratch buffer itself (a fresh one takes its place), so no byte is copied
//! twice and an idle flow holds nothing.

use super::watch::{Peer, Pong, Watch, PING_FRAME};
use super::{mask_key, Conn, Fault, Flow, FlowState, Got, Mode, Parked, Progress, Put};
use crate::buffer::{Buf, Pool};
use crate::framing::body::Advance;
use crate::framing::frames::{Ahead, Followed, Frames, Reach};

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

/// The copy relay's turn: see [`super::pump`]. `watch`: the tunnel's
/// watch and the peer this flow goes to.
pub fn pump(
    flow: &mut Flow,
    src: &mut Conn<'_>,
    dst: &mut Conn<'_>,
    bufs: &mut Buffers,
    mut watch: Option<(&mut Watch, Peer)>,
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
            let close = watch.as_ref().and_then(|(w, to)| w.close_for(*to));
            flow.park_close(&mut bufs.pool, close);
            continue;
        }
        if flow.state == FlowState::Held {
            return Ok(Progress::blocked(moved));
        }
        let mut limit = usize::MAX;
        if let Some((w, to)) = watch.as_mut() {
            match watched(flow, src, &mut bufs.pool, w, *to)? {
                Watched::Read(most) => limit = most,
                Watched::Again => continue,
                Watched::Wait => return Ok(Progress::blocked(moved)),
            }
        }

        // Client bytes a rate pause kept go before any still in the socket.
        let unstashed = match watch.as_mut() {
            Some((w, Peer::Upstream)) => w.unstash(),
            _ => None,
        };
        let from_stash = unstashed.is_some();
        let scratch = &mut bufs.scratch;
        scratch.clear();
        let (n, room) = match unstashed {
            Some(stash) => {
                // They came from one read: they fit.
                let _ = scratch.put(stash.data());
                let n = stash.len();
                bufs.pool.give(stash);
                (n, usize::MAX)
            }
            None => {
                let space = scratch.space();
                let room = space.len().min(limit);
                let n = match src.read(&mut space[..room]) {
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
                (n, room)
            }
        };
        if src.peer_ended() {
            flow.src_closing = true;
        }
        if let Some((w, to)) = watch.as_mut() {
            w.heard(to.other());
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
        let mut paused = false;
        let advance = match watch.as_mut() {
            Some((w, Peer::Upstream)) if w.follows_client() && flow.follows_frames() => {
                if !from_stash {
                    w.client_sent(n, n < room);
                }
                let scratch = &bufs.scratch;
                let (advance, pause) = follow_client(flow, w, scratch.data());
                if let Some(at) = pause {
                    let mut stash = bufs.pool.take();
                    // Bytes of one read fit any buffer.
                    let _ = stash.put(&bufs.scratch.data()[at..]);
                    w.stash(stash);
                    paused = true;
                }
                advance
            }
            _ => flow
                .body
                .advance(bufs.scratch.data())
                .map_err(Fault::Framing)?,
        };
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
        flow.src_drained = !from_stash && n < room;
        if written < advance.used {
            let mut parked = bufs.take_scratch();
            parked.truncate(advance.used);
            parked.consume(written);
            flow.parked = Parked::Buf(parked);
            return Ok(Progress::blocked(moved));
        }
        if paused {
            // The rest waits for the rate: the watch's timer resumes it.
            return Ok(Progress::blocked(moved));
        }
        if from_stash {
            // The socket may hold more, with no event to say so.
            continue;
        }
        if n == room && limit >= room {
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

/// What a watched flow does before its next read.
enum Watched {
    /// Read at most this many bytes: the proxy has a frame to add or look
    /// for at the end of them, or the client's rate allows no more.
    Read(usize),
    /// The proxy parked a frame of its own or took one out: go round.
    Again,
    /// Nothing to read now: the Pong awaited is not all there, or the
    /// client is held back by its rate limits.
    Wait,
}

/// The proxy's part in a watched tunnel's direction toward `to`: its Ping
/// parked at a frame boundary, the Pong to it taken out, the client's
/// rate. Only while the flow is open and follows frames.
fn watched(
    flow: &mut Flow,
    src: &mut Conn<'_>,
    pool: &mut Pool,
    w: &mut Watch,
    to: Peer,
) -> Result<Watched, Fault> {
    let Some(frames) = flow.body.frames() else {
        return Ok(Watched::Read(usize::MAX));
    };
    if flow.state != FlowState::Open || frames.is_lost() || frames.is_draining() {
        return Ok(Watched::Read(usize::MAX));
    }
    let from = to.other();
    let mut limit = usize::MAX;
    if w.ping_wanted(to) {
        if frames.at_boundary() {
            debug_assert!(matches!(flow.parked, Parked::Nothing));
            let mut out = pool.take();
            // A 14-byte frame always fits a pooled buffer.
            let _ = w.write_ping(to, &mut out, mask_key());
            flow.parked = Parked::Buf(out);
            return Ok(Watched::Again);
        }
        limit = to_frame_end(frames);
    }
    if w.pong_awaited(from) {
        if !frames.at_boundary() {
            limit = limit.min(to_frame_end(frames));
        } else {
            let mut ahead = [0u8; PING_FRAME];
            match src.peek(&mut ahead).map_err(Fault::Source)? {
                Got::Bytes(k) => match w.pong(from, &ahead[..k]) {
                    Pong::Ours(len) => {
                        take_exactly(src, len)?;
                        w.ponged(from);
                        return Ok(Watched::Again);
                    }
                    // More of it will raise an event. Under TLS a peek
                    // sees one record's plaintext: a Pong split over two
                    // records is relayed like any other.
                    Pong::Partial if !src.is_tls() => return Ok(Watched::Wait),
                    Pong::Partial | Pong::Other => match frames.ahead(&ahead[..k]) {
                        Ahead::Frame(len) => {
                            limit = limit.min(usize::try_from(len).unwrap_or(usize::MAX))
                        }
                        Ahead::Partial => limit = limit.min(k),
                        Ahead::Lost => {}
                    },
                },
                Got::Blocked => return Ok(Watched::Wait),
                Got::Eof => {}
            }
        }
    }
    if from == Peer::Client && w.follows_client() {
        match w.client_allowance() {
            0 => return Ok(Watched::Wait),
            allow => limit = limit.min(allow),
        }
    }
    Ok(Watched::Read(limit))
}

/// Bytes to the end of the current frame; one at a time inside a header
/// (rare: a read ended in one).
fn to_frame_end(frames: &Frames) -> usize {
    match frames.reach() {
        Reach::Any => usize::MAX,
        Reach::Payload(n) => usize::try_from(n).unwrap_or(usize::MAX),
        Reach::Header => 1,
    }
}

/// Reads and drops the `len` bytes a peek showed (the proxy's Pong).
fn take_exactly(src: &mut Conn<'_>, len: usize) -> Result<(), Fault> {
    let mut sink = [0u8; PING_FRAME];
    let mut got = 0;
    while got < len {
        match src.read(&mut sink[got..len]).map_err(Fault::Source)? {
            Got::Bytes(n) => got += n,
            // A peek saw them; they cannot be gone.
            Got::Eof | Got::Blocked => {
                return Err(Fault::Source(std::io::ErrorKind::UnexpectedEof.into()))
            }
        }
    }
    Ok(())
}

/// Follows the client's frames through `bytes`, each header shown to the
/// watch; a frame that breaks the message limit is refused before any of
/// it goes on, and the direction ends there; a message the rate does not
/// allow yet pauses the flow before it (the second value: where the bytes
/// that wait begin).
fn follow_client(flow: &mut Flow, w: &mut Watch, bytes: &[u8]) -> (Advance, Option<usize>) {
    let Some(frames) = flow.body.frames_mut() else {
        let all = Advance {
            used: bytes.len(),
            done: false,
        };
        return (all, None);
    };
    let (used, pause) = match frames.advance_with(bytes, |h| w.client_header(h)) {
        Followed::All(n) => (n, None),
        Followed::Paused { at } => (at, Some(at)),
        Followed::Refused { at, clean } => {
            flow.end_refused(clean);
            (at, None)
        }
    };
    (Advance { used, done: false }, pause)
}
