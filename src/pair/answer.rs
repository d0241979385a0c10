//! The Answer, File and Linger phases: the proxy's own answers (errors and
//! redirects), static files, and the lingering close after an answer, so
//! that the client reads the answer rather than a reset.

use super::{write_out, Core, Ctx, Phase, Step};
use crate::access_log::Ending;
use crate::buffer::Buf;
use crate::files;
use crate::handshake::answer::{self, Reject};
use crate::relay::copy::READS_PER_TURN;
use crate::relay::Got;
use crate::token::Side;
use crate::{debug, info};

/// The proxy's own answer, being written.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) out: Buf,
}

/// A static file: the head in `out`, then `len` bytes of `file` from
/// `offset`.
#[derive(Debug)]
pub(super) struct File {
    pub(super) out: Buf,
    pub(super) file: std::fs::File,
    pub(super) offset: u64,
    pub(super) len: u64,
}

/// Answers with the proxy's own error response (then lingers). Whatever
/// the pair held upstream is closed.
pub(super) fn refuse(core: &mut Core, reject: Reject, ctx: &mut Ctx<'_>) -> Step {
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
    core.set_upstream(None, ctx.config);
    let mut out = ctx.relay.bufs.pool.take();
    if answer::write(&mut out, reject, core.edits(ctx.config)).is_err() {
        debug_assert!(false, "an answer always fits a pooled buffer");
        ctx.relay.bufs.pool.give(out);
        return Step::Close;
    }
    Step::Enter(Phase::Answer(Answer { out }))
}

/// Writes the answer; done once it is all out.
pub(super) fn write(a: &mut Answer, core: &mut Core) -> Step {
    write_out(&mut core.client, &mut a.out).unwrap_or(Step::Done)
}

/// Writes a static file's head, then its bytes with sendfile (through the
/// scratch buffer under TLS).
pub(super) fn write_file(f: &mut File, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    if let Some(unfinished) = write_out(&mut core.client, &mut f.out) {
        return unfinished;
    }
    let before = f.offset;
    let client = &mut core.client;
    let sent = if client.tls.is_some() {
        let scratch = &mut ctx.relay.bufs.scratch;
        scratch.clear();
        let mut conn = client.conn();
        files::send_through(
            |b| conn.write_all(b),
            &f.file,
            &mut f.offset,
            f.len,
            scratch.space(),
        )
    } else {
        files::send(&client.tcp, &f.file, &mut f.offset, f.len)
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

/// Shuts the client's write side and reads until it closes, so the last
/// answer is read rather than lost to a reset (a close with unread input
/// sends RST).
pub(super) fn linger(core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    core.client.conn().shutdown_write();
    core.arm(ctx, ctx.config.timeouts.linger);
    discard(core, &mut ctx.relay.bufs.scratch)
}

/// Reads and drops what the client sends while lingering.
pub(super) fn discard(core: &mut Core, scratch: &mut Buf) -> Step {
    let mut client = core.client.conn();
    for _ in 0..READS_PER_TURN {
        scratch.clear();
        match client.read(scratch.space()) {
            Ok(Got::Bytes(_)) => {}
            Ok(Got::Blocked) => return Step::Wait,
            Ok(Got::Eof) | Err(_) => return Step::Close,
        }
    }
    Step::Yield(Side::Client)
}
