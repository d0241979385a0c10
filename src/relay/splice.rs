//! The splice relay: `splice(2)` moves a tunnel's bytes socket → pipe →
//! socket inside the kernel, never through userspace.
//!
//! Pipes come from a per-worker [`PipePool`] and are held only while bytes
//! are in them: a pipe drained into the destination goes straight back, so
//! an idle tunnel holds no pipe, and free pipes are closed once the worker
//! finds them unused for a trim period, so an idle proxy holds none either.
//! When the pool is spent the copy relay carries the direction instead.
//!
//! EAGAIN from `splice(socket → pipe)` means "socket empty" *or* "pipe
//! full", and a short splice does not mean the socket is empty (the pipe
//! can run out of slots first). So a source counts as drained only when a
//! splice into an empty pipe says EAGAIN: under edge-triggered readiness
//! there is no second event for bytes left behind.
//!
//! Pipes count against `fs.pipe-user-pages-soft` (16384 pages by default:
//! 1024 pipes of 64 KiB per user, beyond which the kernel hands out
//! one-page pipes). The pool stays under three quarters of it unless
//! `--splice-pipes` says otherwise.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr;

use mio::net::TcpStream;

use super::copy::READS_PER_TURN;
use super::{Conn, Fault, Flow, FlowState, Mode, Parked, Progress};
use crate::buffer::BUF_BYTES;
use crate::framing::frames::{Ahead, Reach, MAX_HEADER};
use crate::sys;
use crate::warn;

/// Capacity of each pipe: the kernel's default, 16 pages.
pub const PIPE_BYTES: usize = 64 * 1024;

/// Most pipes a process uses when the soft limit does not say less.
pub const MAX_PIPES: usize = 4096;

/// Under `auto`, a splice turn that finds its source empty after moving
/// less than this goes back to the copy relay: the direction is chatting,
/// not streaming.
const STREAM_MIN_BYTES: usize = BUF_BYTES / 2;

/// A frame's last bytes, this many or fewer, are spliced together with
/// the next frame, whose header a peek reads past them: a 64 KiB message's
/// frame is 10 bytes longer than a pipe, and its tail would otherwise take
/// a splice of its own.
const TAIL_PEEK: usize = 256;

/// The most a splice turn peeks at: a tail and the next header.
const PEEK_BYTES: usize = TAIL_PEEK + MAX_HEADER;

/// A pipe and how many bytes sit in it.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    len: usize,
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pipe({} bytes)", self.len)
    }
}

/// A worker's pipes: reused while busy, closed when idle.
#[derive(Debug)]
pub struct PipePool {
    free: Vec<Pipe>,
    /// Most pipes this worker keeps open, free or in use.
    limit: usize,
    /// Pipes open now, free or in use.
    open: usize,
    /// A pipe was taken or given since the last trim check.
    touched: bool,
}

impl PipePool {
    pub fn new(limit: usize) -> PipePool {
        PipePool {
            free: Vec::new(),
            limit,
            open: 0,
            touched: false,
        }
    }

    /// A pipe can be had without waiting.
    pub fn available(&self) -> bool {
        !self.free.is_empty() || self.open < self.limit
    }

    /// An empty pipe, reused or new; `None` when the pool is spent.
    pub fn take(&mut self) -> Option<Pipe> {
        self.touched = true;
        if let Some(pipe) = self.free.pop() {
            return Some(pipe);
        }
        if self.open >= self.limit {
            return None;
        }
        match create() {
            Ok(pipe) => {
                self.open += 1;
                Some(pipe)
            }
            Err(e) => {
                // Out of descriptors or over the user's pipe budget: stop
                // growing; tunnels beyond this use the copy relay.
                warn!(
                    "cannot open another pipe ({e}); splicing with {} pipes, the rest copy \
                     (raise fs.pipe-user-pages-soft or the fd limit)",
                    self.open
                );
                self.limit = self.open;
                None
            }
        }
    }

    /// Takes a pipe back: kept if empty, closed if bytes are left in it.
    pub fn give(&mut self, pipe: Pipe) {
        self.touched = true;
        if pipe.len == 0 {
            self.free.push(pipe);
        } else {
            self.open -= 1;
        }
    }

    /// Pipes holding bytes now.
    pub fn in_use(&self) -> usize {
        self.open - self.free.len()
    }

    /// Free pipes now.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Closes every free pipe if none was taken or given since the last
    /// call; the worker calls this once per trim period.
    pub fn trim_idle(&mut self) {
        if !self.touched {
            self.open -= self.free.len();
            self.free.clear();
        }
        self.touched = false;
    }
}

/// The default pipe budget for a process: three quarters of what
/// `fs.pipe-user-pages-soft` allows in full-size pipes, at most [`MAX_PIPES`].
pub fn default_limit() -> usize {
    let soft_pages = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    match soft_pages {
        // 0 means no soft limit.
        Some(0) | None => MAX_PIPES,
        Some(pages) => (pages * 4096 / PIPE_BYTES * 3 / 4).clamp(1, MAX_PIPES),
    }
}

fn create() -> io::Result<Pipe> {
    let (read, write) = sys::pipe()?;
    // Over the soft limit the kernel silently hands out one-page pipes;
    // such a pipe is not worth splicing through.
    let size = sys::pipe_size(write.as_fd())?;
    if size < PIPE_BYTES {
        return Err(io::Error::other(format!(
            "the kernel granted a {size}-byte pipe (pipe-user-pages-soft reached)"
        )));
    }
    Ok(Pipe {
        read,
        write,
        len: 0,
    })
}

/// `splice(2)` between a socket and a pipe, non-blocking.
fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are borrowed, so open for the whole call;
        // null offsets are what splice requires for pipes and sockets; the
        // kernel moves at most `len` bytes between them and touches no
        // memory of ours.
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                ptr::null_mut(),
                to.as_raw_fd(),
                ptr::null_mut(),
                len,
                libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// How far one splice from the source may go: to the end of the current
/// WebSocket frame, so the flow always knows where frames begin.
enum Limit {
    /// Up to this many bytes; `peeked` of them (a header) were seen.
    Bytes { len: usize, peeked: usize },
    /// Nothing to splice now: return this.
    Stop(Progress),
}

/// The splice relay's turn: see [`super::pump`].
/// `hand_over`: once what is in the pipe is out, the copy relay takes the
/// direction.
pub fn pump(
    flow: &mut Flow,
    src: &TcpStream,
    dst: &TcpStream,
    pipes: &mut PipePool,
    hand_over: bool,
) -> Result<Progress, Fault> {
    debug_assert!(
        !matches!(flow.parked, Parked::Buf(_)),
        "buffers are the copy relay's"
    );
    let mut moved = 0;
    for _ in 0..READS_PER_TURN {
        if let Parked::Pipe(pipe) = &mut flow.parked {
            while pipe.len > 0 {
                match splice(pipe.read.as_fd(), dst.as_fd(), pipe.len) {
                    Ok(0) => return Err(Fault::Destination(io::ErrorKind::WriteZero.into())),
                    Ok(n) => {
                        pipe.len -= n;
                        moved += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(Progress::blocked(moved))
                    }
                    Err(e) => return Err(Fault::Destination(e)),
                }
            }
            if let Parked::Pipe(pipe) = std::mem::take(&mut flow.parked) {
                pipes.give(pipe);
            }
        }
        if flow.ended(&mut Conn::Socket {
            tcp: dst,
            tls: None,
        }) {
            return Ok(Progress::finished(moved));
        }
        if flow.is_draining() || hand_over {
            // The Close frame goes through the copy relay, and so do the
            // proxy's Pings and the Pongs it takes out.
            return Ok(Progress::yielded(moved));
        }
        let mut head = [0u8; PEEK_BYTES];
        let (len, peeked) = match limit(flow, src, &mut head, moved)? {
            Limit::Bytes { len, peeked } => (len, peeked),
            Limit::Stop(progress) => return Ok(progress),
        };
        let Some(mut pipe) = pipes.take() else {
            // Spent: the next turn goes to the copy relay.
            return Ok(Progress::yielded(moved));
        };
        match splice(src.as_fd(), pipe.write.as_fd(), len) {
            Ok(0) => {
                pipes.give(pipe);
                flow.state = FlowState::Eof;
            }
            Ok(n) => {
                if let Some(frames) = flow.body.frames_mut() {
                    // The header bytes peeked at went in first; the rest
                    // is payload of the same frame.
                    let seen = n.min(peeked);
                    frames.advance(&head[..seen]);
                    frames.skip((n - seen) as u64);
                }
                pipe.len = n;
                flow.parked = Parked::Pipe(pipe);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The pipe is empty, so it is the socket that is.
                pipes.give(pipe);
                if moved < STREAM_MIN_BYTES {
                    flow.stops_streaming();
                }
                return Ok(Progress::blocked(moved));
            }
            Err(e) => {
                pipes.give(pipe);
                return Err(Fault::Source(e));
            }
        }
    }
    Ok(Progress::yielded(moved))
}

/// How far the next splice may go. At a frame header, peeks at it (no
/// byte consumed): the splice then takes the header and its payload up to
/// the frame's end. Near a payload's end the peek reaches past the last
/// [`TAIL_PEEK`] bytes to the next header, so the tail and the next frame
/// go in one splice. A small frame ahead sends the direction back to the
/// copy relay, where one read takes many frames.
fn limit(
    flow: &mut Flow,
    src: &TcpStream,
    head: &mut [u8; PEEK_BYTES],
    moved: usize,
) -> Result<Limit, Fault> {
    let Some(frames) = flow.body.frames() else {
        return Ok(Limit::Bytes {
            len: PIPE_BYTES,
            peeked: 0,
        });
    };
    let left = match frames.reach() {
        Reach::Any => {
            return Ok(Limit::Bytes {
                len: PIPE_BYTES,
                peeked: 0,
            })
        }
        Reach::Payload(left) if left > TAIL_PEEK as u64 => {
            return Ok(Limit::Bytes {
                len: left.min(PIPE_BYTES as u64) as usize,
                peeked: 0,
            })
        }
        Reach::Payload(left) => left as usize,
        Reach::Header => 0,
    };
    let k = match src.peek(&mut head[..left + MAX_HEADER]) {
        Ok(k) => k,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            if moved < STREAM_MIN_BYTES {
                flow.stops_streaming();
            }
            return Ok(Limit::Stop(Progress::blocked(moved)));
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            return Ok(Limit::Stop(Progress::yielded(moved)))
        }
        Err(e) => return Err(Fault::Source(e)),
    };
    let ahead = match k {
        // EOF: the splice reads it.
        0 => Ahead::Lost,
        _ => frames.ahead(&head[..k]),
    };
    let bytes = |len: usize| Ok(Limit::Bytes { len, peeked: k });
    match ahead {
        // Not frames: the peeked bytes tell the flow so as they go.
        Ahead::Lost => bytes(PIPE_BYTES),
        // A small frame next: finish this one, then copy.
        Ahead::Frame(total) if total - (left as u64) < STREAM_MIN_BYTES as u64 => {
            if left > 0 {
                return bytes(left);
            }
            flow.mode = Mode::SmallFrames;
            Ok(Limit::Stop(Progress::yielded(moved)))
        }
        Ahead::Frame(total) => bytes(total.min(PIPE_BYTES as u64) as usize),
        // The next header is not all there: the tail alone.
        Ahead::Partial if left > 0 => bytes(left),
        // The rest of the header raises an event when it comes, unless the
        // peer is closing: then take what there is.
        Ahead::Partial if flow.src_closing => bytes(k),
        Ahead::Partial => Ok(Limit::Stop(Progress::blocked(moved))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_bounds_and_trims() {
        let mut pool = PipePool::new(2);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert!(pool.take().is_none(), "limit reached");
        assert!(!pool.available());
        assert_eq!(pool.in_use(), 2);
        pool.give(a);
        assert!(pool.available());
        let mut b = b;
        b.len = 10;
        pool.give(b);
        assert_eq!(
            (pool.open, pool.free_count()),
            (1, 1),
            "a pipe with bytes left is closed"
        );
        pool.trim_idle();
        assert_eq!(pool.free_count(), 1, "used since the last check: kept");
        pool.trim_idle();
        assert_eq!((pool.open, pool.free_count()), (0, 0), "idle: closed");
        assert!(pool.take().is_some(), "and the pool grows again");
    }

    #[test]
    fn default_limit_respects_the_soft_limit() {
        let limit = default_limit();
        assert!((1..=MAX_PIPES).contains(&limit));
    }
}
