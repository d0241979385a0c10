//! Moving bytes for the phases that have flows (the request body while the
//! response is awaited, a plain exchange, a tunnel): one direction's relay
//! turn over the pair's two ends, the byte counts it adds to, and what a
//! relay fault means.

use std::time::Duration;

use super::{Core, Ctx, Step};
use crate::access_log::Ending;
use crate::buffer::Buf;
use crate::relay::watch::Peer;
use crate::relay::{self, Fault, Flow, Progress, Pumped};
use crate::token::Side;
use crate::{debug, info};

/// A relay direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dir {
    /// Client to upstream.
    Up,
    /// Upstream to client.
    Down,
}

impl Dir {
    pub(super) fn source(self) -> Side {
        match self {
            Dir::Up => Side::Client,
            Dir::Down => Side::Upstream,
        }
    }

    /// The peer the direction's bytes go to.
    pub(super) fn destination(self) -> Peer {
        match self {
            Dir::Up => Peer::Upstream,
            Dir::Down => Peer::Client,
        }
    }
}

/// What a relay turn did, and the bytes it read past the end of the
/// flow's message, if any.
pub(super) struct Ran {
    pub(super) progress: Progress,
    pub(super) surplus: Option<Box<Buf>>,
}

/// Runs one relay turn of `flow` in direction `dir`. `closing`: the
/// source's event reported EOF or an error. `watch`: a tunnel's watch key.
pub(super) fn run(
    flow: &mut Flow,
    dir: Dir,
    core: &mut Core,
    closing: bool,
    watch: Option<u32>,
    ctx: &mut Ctx<'_>,
) -> Result<Ran, Fault> {
    let Some(upstream) = core.upstream.as_mut() else {
        return Err(Fault::Destination(std::io::ErrorKind::NotConnected.into()));
    };
    let mut client = core.client.conn();
    let mut upstream = upstream.conn();
    let (src, dst) = match dir {
        Dir::Up => (&mut client, &mut upstream),
        Dir::Down => (&mut upstream, &mut client),
    };
    if closing {
        flow.source_closing();
    }
    let watched = watch.map(|key| (key, dir.destination()));
    let pumped = relay::pump(flow, src, dst, ctx.relay, watched);
    let surplus = ctx.relay.bufs.surplus.take();
    match pumped {
        Ok(progress) => Ok(Ran { progress, surplus }),
        Err(fault) => {
            if let Some(bytes) = surplus {
                ctx.relay.bufs.pool.give(*bytes);
            }
            Err(fault)
        }
    }
}

/// Counts what a turn moved and, if it moved anything, pushes the pair's
/// deadline out by `timeout` (`None`: a draining tunnel keeps its own).
pub(super) fn count(
    progress: &Progress,
    dir: Dir,
    core: &mut Core,
    timeout: Option<Duration>,
    ctx: &mut Ctx<'_>,
) {
    if progress.moved == 0 {
        return;
    }
    let moved = progress.moved as u64;
    // Counted against the route only (the process-wide total is their
    // sum, made by the scrape): one indexed add per turn that moved
    // bytes, as the total alone cost before.
    match dir {
        Dir::Up => ctx.routes.bytes_up(core.route, moved),
        Dir::Down => ctx.routes.bytes_down(core.route, moved),
    }
    if let Some(x) = &mut core.record {
        match dir {
            Dir::Up => x.bytes_up += moved,
            Dir::Down => x.bytes_down += moved,
        }
    }
    if let Some(after) = timeout {
        core.arm(ctx, after);
    }
}

/// The step for how a turn stopped, when nothing else happened.
pub(super) fn waiting(progress: &Progress, dir: Dir) -> Step {
    match progress.pumped {
        Pumped::Yield => Step::Yield(dir.source()),
        Pumped::Blocked | Pumped::Finished => Step::Wait,
    }
}

/// A relay failed. `request_body`: the request body was still being read
/// for a response not yet begun, so a framing error is the client's bad
/// request and gets a 400.
pub(super) fn fault(
    dir: Dir,
    fault: Fault,
    core: &mut Core,
    request_body: bool,
    ctx: &mut Ctx<'_>,
) -> Step {
    let (failed, e) = match fault {
        Fault::Source(e) => (dir.source(), e),
        Fault::Destination(e) => (dir.source().other(), e),
        Fault::Framing(e) => {
            let side = dir.source();
            if side == Side::Client && request_body {
                return Step::Refuse(crate::handshake::answer::Reject::new(
                    crate::handshake::answer::Status::BadRequest,
                    "malformed chunked body",
                ));
            }
            info!(
                "{} {}: {e}; closing",
                side.name(),
                core.peer_name(side, ctx.config)
            );
            core.ended(Ending::Reset(side));
            return Step::Close;
        }
    };
    core.ended(Ending::Reset(failed));
    debug!(
        "{} {}: {e}; closing the pair (client {})",
        failed.name(),
        core.peer_name(failed, ctx.config),
        core.client_addr
    );
    // Pass a reset on: the other end learns the stream broke rather than
    // seeing a clean end.
    let survivor = match failed.other() {
        Side::Client => Some(&mut core.client),
        Side::Upstream => core.upstream.as_mut(),
    };
    if let Some(end) = survivor {
        end.reset_on_close();
    }
    Step::Close
}
