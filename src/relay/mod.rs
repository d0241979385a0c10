//! Relaying bytes in one direction of a pair: the [`Flow`] state both
//! relays share, the worker's relay [`Resources`], and [`pump`], which picks
//! the relay for each turn.
//!
//! A flow reads its source, writes its destination, and parks bytes only
//! when the destination is full: in a pooled buffer (`copy.rs`) or in a pipe
//! (`splice.rs`). While bytes are parked the source is not read, which is
//! the backpressure. An idle flow holds neither a buffer nor a pipe.
//!
//! Which relay moves a tunnel's bytes is the [`Policy`]: `copy` always,
//! `splice` whenever a pipe is free, and `auto` (the default) starts every
//! direction on copy, one read and one write per message, and moves it to
//! splice once it streams, that is once a read fills the whole scratch
//! buffer. Plain HTTP bodies always take the copy relay, which frames them.

pub mod conn;
pub mod copy;
pub mod splice;
pub mod stream;
pub mod tls;
pub mod watch;

use std::io;

use crate::buffer::{Buf, Pool};
use crate::framing::body::{Body, BodyError};
use crate::framing::frames::{Frames, Going};
pub use conn::{Conn, Got, Put};
use copy::Buffers;
use splice::{Pipe, PipePool};
pub use tls::Tls;
use watch::{Peer, Watches};

/// Which relay tunnels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Copy until a direction streams, then splice it.
    Auto,
    /// Splice every tunnel direction while pipes are free, a frame at a
    /// time; runs of small frames (under 16 KiB) take the copy relay, where
    /// one read carries many.
    Splice,
    /// Always copy through userspace.
    Copy,
}

/// A worker's relay resources: scratch buffer, buffer pool, pipe pool.
#[derive(Debug)]
pub struct Resources {
    pub bufs: Buffers,
    pub pipes: PipePool,
    pub policy: Policy,
    /// State of the tunnels whose routes ask for pings or limits.
    pub watches: Watches,
}

impl Resources {
    pub fn new(policy: Policy, pipes: PipePool) -> Resources {
        Resources {
            bufs: Buffers::new(),
            pipes,
            policy,
            watches: Watches::default(),
        }
    }
}

/// Where a flow stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// Reading the source.
    Open,
    /// Writing what is parked, not reading the source: an upgrading
    /// client waits for the upstream's 101.
    Held,
    /// The message body ended: the source is not read again.
    Complete,
    /// The source sent EOF: the destination's write side is shut once the
    /// parked bytes are written.
    Eof,
    /// EOF passed on: the destination's write side is shut.
    Shut,
    /// A drain reached a frame boundary: the Close frame parked for the
    /// destination goes out, then the destination's write side is shut.
    Closing,
    /// Drained: the destination's write side is shut, and the source is
    /// read with its bytes dropped, so that the peer reads the Close frame
    /// rather than a reset, until its own Close frame or its EOF.
    Discard,
}

/// Bytes read from the source that the destination has not taken yet.
#[derive(Debug, Default)]
pub enum Parked {
    #[default]
    Nothing,
    Buf(Buf),
    Pipe(Pipe),
}

/// One direction of a pair.
#[derive(Debug)]
pub struct Flow {
    parked: Parked,
    /// Which source bytes still belong to this flow.
    body: Body,
    state: FlowState,
    /// The source reported EOF or an error: read it to the end even after a
    /// short read (edge-triggered readiness gives no second event for it).
    src_closing: bool,
    /// The last read from the source was short, so it was empty then. After
    /// parked bytes are flushed the source is not read at once: unparking
    /// re-registers it for reading, and epoll reports bytes already there.
    src_drained: bool,
    /// What the bytes have looked like lately: which relay suits them.
    mode: Mode,
    /// The other direction has finished, so this one's end closes the
    /// pair: its EOF needs no `shutdown`, as closing the destination sends
    /// the FIN (under TLS the `close_notify` still goes first).
    last: bool,
}

/// What a direction's recent bytes looked like, which decides its relay
/// under `auto` and `splice` (see [`Flow::splices`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Messages that each fit one read: copy (`auto`) or splice (`splice`).
    Chatty,
    /// A read filled the whole scratch buffer: splice under both.
    Streaming,
    /// The splice relay found a small frame ahead: copy until a read fills
    /// the scratch buffer again (a frame per splice would cost a system
    /// call or three per frame).
    SmallFrames,
}

/// How a pump stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pumped {
    /// Waiting for the source to be readable or the destination writable.
    Blocked,
    /// Used its turn with more to do: call again after other pairs ran.
    Yield,
    /// Nothing more will move: the flow is complete or shut.
    Finished,
}

/// What a pump did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes written to the destination.
    pub moved: usize,
    pub pumped: Pumped,
}

impl Progress {
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

    fn yielded(moved: usize) -> Progress {
        Progress {
            moved,
            pumped: Pumped::Yield,
        }
    }
}

/// Why a flow failed, by which end.
#[derive(Debug)]
pub enum Fault {
    Source(io::Error),
    Destination(io::Error),
    /// The source broke the message framing (plain HTTP only).
    Framing(BodyError),
}

impl Flow {
    pub fn new(body: Body) -> Flow {
        let state = if body.is_done() {
            FlowState::Complete
        } else {
            FlowState::Open
        };
        Flow {
            parked: Parked::Nothing,
            body,
            state,
            src_closing: false,
            src_drained: false,
            mode: Mode::Chatty,
            last: false,
        }
    }

    /// A flow that starts with `bytes` to write (a request or response head
    /// and whatever followed it); `src_drained` says the read that got them
    /// was short and its event reported no EOF, so the source is empty.
    pub fn with_pending(body: Body, bytes: Buf, src_drained: bool) -> Flow {
        let mut flow = Flow::new(body);
        if !bytes.is_empty() {
            flow.parked = Parked::Buf(bytes);
        }
        flow.src_drained = src_drained;
        flow
    }

    /// The source should be watched for reading.
    pub fn wants_read(&self) -> bool {
        matches!(self.parked, Parked::Nothing)
            && matches!(self.state, FlowState::Open | FlowState::Discard)
    }

    /// The destination should be watched for writing.
    pub fn wants_write(&self) -> bool {
        !matches!(self.parked, Parked::Nothing)
    }

    /// Everything that will ever move has moved.
    pub fn is_finished(&self) -> bool {
        matches!(self.parked, Parked::Nothing)
            && matches!(self.state, FlowState::Complete | FlowState::Shut)
    }

    /// Whether the message is through: the source will not be read again
    /// for it (its body ended), though parked bytes may still go out.
    pub fn is_complete(&self) -> bool {
        self.state == FlowState::Complete
    }

    /// Whether the source is held unread (an upgrade waiting for its 101).
    pub fn is_held(&self) -> bool {
        self.state == FlowState::Held
    }

    /// The whole message, when it was read whole and nothing of it has
    /// been written yet: a copy of it can be sent again.
    pub fn whole_message(&self) -> Option<&[u8]> {
        match (&self.parked, self.state) {
            (Parked::Buf(buf), FlowState::Complete) => Some(buf.data()),
            _ => None,
        }
    }

    /// Notes that the source reported EOF or an error.
    pub fn source_closing(&mut self) {
        self.src_closing = true;
    }

    /// With nothing parked: true when the source will not be read again.
    /// Passes a source's EOF (or a drain's Close frame) on by shutting the
    /// destination's write side (the peer may already be gone; its error
    /// shows on the next write or read, so a failed shutdown needs no
    /// handling here).
    fn ended(&mut self, dst: &mut Conn<'_>) -> bool {
        match self.state {
            FlowState::Open | FlowState::Held | FlowState::Discard => false,
            FlowState::Eof => {
                if !self.last || dst.plain_socket().is_none() {
                    dst.shutdown_write();
                }
                self.state = FlowState::Shut;
                true
            }
            FlowState::Closing => {
                dst.shutdown_write();
                if self.body.frames().is_some_and(Frames::answered) {
                    // The source has closed its side already.
                    self.state = FlowState::Shut;
                    return true;
                }
                self.state = FlowState::Discard;
                false
            }
            FlowState::Complete | FlowState::Shut => true,
        }
    }

    /// A splice turn moved little before the source ran dry: the
    /// direction chats rather than streams.
    fn stops_streaming(&mut self) {
        if self.mode == Mode::Streaming {
            self.mode = Mode::Chatty;
        }
    }

    /// The other direction has finished: this one's end closes the pair.
    pub fn set_last(&mut self) {
        self.last = true;
    }

    /// Stops reading the source; parked bytes still go out.
    pub fn hold(&mut self) {
        if self.state == FlowState::Open {
            self.state = FlowState::Held;
        }
    }

    /// Reads the source again, after writing `first` (bytes held back).
    pub fn resume(&mut self, first: Option<Buf>) {
        if self.state != FlowState::Held {
            return;
        }
        self.state = FlowState::Open;
        // The source was not watched meanwhile: it may hold bytes or EOF.
        self.src_drained = false;
        if let Some(buf) = first.filter(|b| !b.is_empty()) {
            debug_assert!(
                matches!(self.parked, Parked::Nothing),
                "the head went out before the answer came"
            );
            self.parked = Parked::Buf(buf);
        }
    }

    /// Starts a graceful drain of a tunnel direction: at its next frame
    /// boundary it sends a Close frame (1001, with `going`'s reason) and
    /// shuts. False when the direction carries no frames or is ending
    /// already.
    pub fn drain(&mut self, going: Going) -> bool {
        if self.state != FlowState::Open {
            return false;
        }
        match self.body.frames_mut() {
            Some(frames) => {
                frames.drain_for(going);
                true
            }
            None => false,
        }
    }

    /// A drain has reached a boundary: the Close frame is due now.
    fn close_due(&self) -> bool {
        self.state == FlowState::Open && self.body.frames().is_some_and(Frames::close_due)
    }

    fn is_draining(&self) -> bool {
        self.body.frames().is_some_and(Frames::is_draining)
    }

    /// Watches bytes a drain drops for the source's Close frame; true once
    /// it came.
    fn watch_close(&mut self, dropped: &[u8]) -> bool {
        self.body
            .frames_mut()
            .is_some_and(|frames| frames.watch_close(dropped))
    }

    /// Parks the Close frame that ends a drained direction (none when its
    /// bytes are not frames, or when a Close already went this way).
    fn park_close(&mut self, pool: &mut Pool, close: Option<(u16, &[u8])>) {
        debug_assert!(matches!(self.parked, Parked::Nothing));
        let mut out = pool.take();
        if let Some(frames) = self.body.frames() {
            // A Close frame (at most 129 bytes) always fits a pooled buffer.
            let _ = match close {
                Some((code, reason)) => frames.write_close_with(&mut out, mask_key(), code, reason),
                None => frames.write_close(&mut out, mask_key()),
            };
        }
        if out.is_empty() {
            pool.give(out);
        } else {
            self.parked = Parked::Buf(out);
        }
        self.state = FlowState::Closing;
    }

    /// Ends the direction now, though its tracker stands inside a frame:
    /// the source's frame was refused before any of it went on (`clean`),
    /// so the bytes relayed end on a boundary and the Close frame follows
    /// them; else they do not, and the direction ends with FIN alone.
    pub fn end_refused(&mut self, clean: bool) {
        if let Some(frames) = self.body.frames_mut() {
            frames.cut(clean);
        }
    }

    /// The destination is gone: drops what is parked for it and reads the
    /// source only to spot its Close frame or its end.
    pub fn abandon(&mut self, bufs: &mut Pool, pipes: &mut PipePool) {
        self.release(bufs, pipes);
        if !matches!(self.state, FlowState::Complete | FlowState::Shut) {
            self.state = FlowState::Discard;
        }
    }

    /// The frames this direction carries are being followed.
    pub fn follows_frames(&self) -> bool {
        self.body.frames().is_some_and(|f| !f.is_lost())
    }

    /// Gives a parked buffer or pipe back.
    pub fn release(&mut self, bufs: &mut Pool, pipes: &mut PipePool) {
        match std::mem::take(&mut self.parked) {
            Parked::Nothing => {}
            Parked::Buf(buf) => bufs.give(buf),
            Parked::Pipe(pipe) => pipes.give(pipe),
        }
    }

    /// Whether this turn should splice: tunnel bytes only (bodies are
    /// framed by the copy relay), never with a buffer still parked, never
    /// while draining (the Close frame goes through the copy relay).
    fn splices(&self, policy: Policy, pipes: &PipePool) -> bool {
        match &self.parked {
            Parked::Pipe(_) => true,
            Parked::Buf(_) => false,
            Parked::Nothing => {
                self.body.is_stream()
                    && self.state == FlowState::Open
                    && !self.is_draining()
                    && match policy {
                        Policy::Copy => false,
                        Policy::Splice => self.mode != Mode::SmallFrames,
                        Policy::Auto => self.mode == Mode::Streaming,
                    }
                    && pipes.available()
            }
        }
    }
}

/// Moves bytes from `src` to `dst` until one blocks, the flow ends, or the
/// turn is used up. A TLS side always takes the copy relay: its bytes must
/// pass through rustls.
///
/// `watched`: the tunnel's [`watch::Watch`] and the peer the flow goes
/// to. Where the proxy adds or takes out frames, or follows each header,
/// the copy relay carries the direction; a splice in flight finishes
/// first.
pub fn pump(
    flow: &mut Flow,
    src: &mut Conn<'_>,
    dst: &mut Conn<'_>,
    res: &mut Resources,
    watched: Option<(u32, Peer)>,
) -> Result<Progress, Fault> {
    let Resources {
        bufs,
        pipes,
        policy,
        watches,
    } = res;
    let mut watch = watched.and_then(|(key, to)| Some((watches.get_mut(key)?, to)));
    let hand_over = watch.as_ref().is_some_and(|(w, to)| w.needs_copy(*to));
    let splices = !hand_over || matches!(flow.parked, Parked::Pipe(_));
    let sockets = src.plain_socket().zip(dst.plain_socket());
    if let Some((from, to)) = sockets.filter(|_| splices && flow.splices(*policy, pipes)) {
        let progress = splice::pump(flow, from, to, pipes, hand_over)?;
        if let Some((w, to)) = watch.as_mut().filter(|_| progress.moved > 0) {
            // Spliced bytes are the source's own (the copy relay, which
            // also moves the proxy's frames, says when it reads).
            w.heard(to.other());
        }
        Ok(progress)
    } else {
        copy::pump(flow, src, dst, bufs, watch)
    }
}

/// A masking key for a frame the proxy sends an upstream: "derived from a
/// strong source of entropy" (RFC 6455 §5.3).
fn mask_key() -> [u8; 4] {
    (random() as u32).to_ne_bytes()
}

/// 64 random bits: the standard library's per-process random hash keys
/// (one set per thread), mixed with a counter.
fn random() -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, RandomState};
    thread_local! {
        static STATE: RandomState = RandomState::new();
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }
    let n = COUNT.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    STATE.with(|s| s.hash_one(n))
}
