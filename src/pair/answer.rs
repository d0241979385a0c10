//! The Answer, File, Discard and Linger phases: the proxy's own answers
//! (errors and redirects), static files, the unread body of a request so
//! answered (dropped before the next request), and the lingering close
//! after an answer, so that the client reads the answer rather than a
//! reset.

use super::request::{Request, DISCARD_LIMIT};
use super::{write_out, Core, Ctx, Phase, Step};
use crate::access_log::Ending;
use crate::buffer::Buf;
use crate::files;
use crate::framing::body::Body;
use crate::handshake::answer::{self, Reject};
use crate::handshake::request::Kind;
use crate::relay::copy::READS_PER_TURN;
use crate::relay::Got;
use crate::timer;
use crate::token::Side;
use crate::{debug, info};

/// The proxy's own answer, being written.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) out: Buf,
    /// The rest of the request's body, to read and drop after the answer
    /// (`None`: nothing left, or the connection closes anyway).
    pub(super) unread: Option<Body>,
}

/// A static file: the head in `out`, then the bytes of `file` from
/// `offset` (advancing as they go out) up to `end`.
#[derive(Debug)]
pub(super) struct File {
    pub(super) out: Buf,
    pub(super) file: std::fs::File,
    pub(super) offset: u64,
    pub(super) end: u64,
    /// As for [`Answer`].
    pub(super) unread: Option<Body>,
}

/// Reading and dropping the body of a request answered by the proxy, so
/// that the next request can be read.
#[derive(Debug)]
pub(super) struct Discard {
    body: Body,
    /// Bytes still allowed before the connection is closed instead.
    left: u64,
}

impl Discard {
    pub(super) fn new(body: Body) -> Discard {
        Discard {
            body,
            left: DISCARD_LIMIT,
        }
    }
}

/// Answers with the proxy's own error response: then the connection
/// closes, or (with `unread`, the rest of the request's body) carries on
/// as `Core::persistence` says. Whatever the pair held upstream is closed.
pub(super) fn refuse(
    core: &mut Core,
    reject: Reject,
    unread: Option<Body>,
    ctx: &mut Ctx<'_>,
) -> Step {
    core.answered(reject.status.code(), ctx);
    core.ended(Ending::Answered);
    if reject.status.code() < 500 {
        info!(
            "client {}: {} {}",
            core.client_addr,
            reject.status.code(),
            reject.why
        );
    }
    core.close_upstream(ctx.config, ctx.kept);
    let mut out = ctx.relay.bufs.pool.take();
    core.persistence = core.persistence_now(ctx);
    let edits = core.edits(ctx.config);
    let written = answer::write_head(&mut out, reject, b"", edits, core.persistence).and_then(
        |()| match core.kind {
            Kind::Plain { head: true } => Ok(()),
            _ => answer::write_body(&mut out, reject),
        },
    );
    if written.is_err() {
        debug_assert!(false, "an answer always fits a pooled buffer");
        ctx.relay.bufs.pool.give(out);
        return Step::Close;
    }
    Step::Enter(Phase::Answer(Answer { out, unread }))
}

/// Writes the answer; done once it is all out.
pub(super) fn write(a: &mut Answer, core: &mut Core) -> Step {
    write_out(&mut core.client, &mut a.out).unwrap_or(Step::Done)
}

/// Writes a static file's head, then its bytes with sendfile (through the
/// scratch buffer under TLS).
pub(super) fn write_file(f: &mut File, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    let left = f.end - f.offset;
    if !core.client.is_plain_socket() && left > 0 && left <= f.out.space().len() as u64 {
        // A small file over TLS: its bytes join the head, so both go out
        // in one record and one write, as nginx's SSL buffer does.
        let room = f.out.space();
        match files::read_into(&f.file, &mut f.offset, f.end, room) {
            Ok(n) => f.out.fill(n),
            Err(e) => {
                debug!("client {}: reading a file failed: {e}", core.client_addr);
                return Step::Close;
            }
        }
    }
    if !f.out.is_empty() {
        // The file's bytes follow the head: one segment for both.
        let more = f.offset < f.end;
        let written = match more {
            true => core.client.conn().write_all_more(f.out.data()),
            false => core.client.conn().write_all(f.out.data()),
        };
        match written {
            Ok(n) => f.out.consume(n),
            Err(_) => return Step::Close,
        }
        if !f.out.is_empty() {
            return Step::Wait;
        }
    }
    let before = f.offset;
    let client = &mut core.client;
    let sent = if let Some(tcp) = client.tcp().filter(|_| !client.is_tls()) {
        files::send(tcp, &f.file, &mut f.offset, f.end)
    } else {
        let scratch = &mut ctx.relay.bufs.scratch;
        scratch.clear();
        let mut conn = client.conn();
        files::send_through(
            |b| conn.write_all(b),
            &f.file,
            &mut f.offset,
            f.end,
            scratch.space(),
        )
    };
    match sent {
        Ok(true) => Step::Done,
        Ok(false) => {
            if f.offset > before {
                core.arm(ctx, ctx.config.timeouts.response);
            }
            Step::Wait
        }
        Err(e) => {
            debug!("client {}: sending a file failed: {e}", core.client_addr);
            Step::Close
        }
    }
}

/// Reads the unread body of a request the proxy answered, dropping it;
/// the bytes after it are the next request. A body longer than
/// [`DISCARD_LIMIT`] closes the connection instead.
pub(super) fn discard_body(
    d: &mut Discard,
    core: &mut Core,
    closing: bool,
    ctx: &mut Ctx<'_>,
) -> Step {
    let bufs = &mut ctx.relay.bufs;
    let mut client = core.client.conn();
    for _ in 0..READS_PER_TURN {
        bufs.scratch.clear();
        let room = bufs.scratch.space().len();
        let n = match client.read(bufs.scratch.space()) {
            Ok(Got::Bytes(n)) => n,
            Ok(Got::Blocked) => return Step::Wait,
            Ok(Got::Eof) | Err(_) => return Step::Close,
        };
        bufs.scratch.fill(n);
        let advance = match d.body.advance(bufs.scratch.data()) {
            Ok(advance) => advance,
            Err(e) => {
                debug!("client {}: {e} in a dropped body", core.client_addr);
                return Step::Linger;
            }
        };
        if advance.done {
            let rest = bufs.scratch.len() - advance.used;
            if rest > 0 {
                let mut ahead = bufs.take_scratch();
                ahead.consume(advance.used);
                core.ahead = Some(Box::new(ahead));
            }
            return Step::Enter(Phase::Request(Request::after(core.ahead.take())));
        }
        d.left = d.left.saturating_sub(advance.used as u64);
        if d.left == 0 {
            debug!(
                "client {}: body past {DISCARD_LIMIT} bytes after the answer, closing",
                core.client_addr
            );
            return Step::Linger;
        }
        let drained = n < room && !closing && !client.peer_ended();
        ctx.wheel.arm(
            ctx.key,
            &mut core.timer,
            timer::deadline(ctx.now, ctx.config.timeouts.linger),
        );
        if drained {
            return Step::Wait;
        }
    }
    Step::Yield(Side::Client)
}

/// Most bytes a lingering close reads and drops. The linger is there so
/// that a client still sending when the proxy's last answer went out (the
/// rest of a body, a pipelined request) reads that answer instead of a
/// reset: closing with input unread sends RST. What was in flight then is
/// a request or two, a send window's worth; a client that sends on past
/// that is not waiting for an answer, and without a bound a header bomb
/// that reconnects at full speed would have the proxy read for it for the
/// whole linger timeout. Past it the connection closes, with a reset if
/// more input waits: the answer had its chance. The linger's time is
/// bounded too: its timeout runs once, from its start, not anew with each
/// read.
pub const LINGER_LIMIT: u32 = 64 * 1024;

/// The write side is shut; what the client sends is read and dropped.
#[derive(Debug)]
pub(super) struct Linger {
    /// Bytes still to read before closing anyway.
    left: u32,
}

impl Linger {
    pub(super) fn new() -> Linger {
        Linger { left: LINGER_LIMIT }
    }
}

/// Shuts the client's write side and reads until it closes, so the last
/// answer is read rather than lost to a reset (a close with unread input
/// sends RST), for at most [`LINGER_LIMIT`] bytes and the linger timeout.
pub(super) fn linger(l: &mut Linger, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    core.client.conn().shutdown_write();
    core.arm(ctx, ctx.config.timeouts.linger);
    discard(l, core, ctx)
}

/// Reads and drops what the client sends while lingering.
pub(super) fn discard(l: &mut Linger, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    let scratch = &mut ctx.relay.bufs.scratch;
    let mut client = core.client.conn();
    for _ in 0..READS_PER_TURN {
        scratch.clear();
        let room = scratch.space().len().min(l.left as usize);
        match client.read(&mut scratch.space()[..room]) {
            Ok(Got::Bytes(n)) => {
                ctx.metrics.linger_bytes.add(n as u64);
                // n <= room <= left.
                l.left -= n as u32;
                if l.left == 0 {
                    debug!(
                        "client {}: sent {LINGER_LIMIT} bytes after the answer, closing",
                        core.client_addr
                    );
                    return Step::Close;
                }
            }
            Ok(Got::Blocked) => return Step::Wait,
            Ok(Got::Eof) | Err(_) => return Step::Close,
        }
    }
    Step::Yield(Side::Client)
}
