//! The Tunnel phase: after a 101 both directions are opaque byte streams
//! (followed frame by frame), relayed until both are shut, an error, the
//! idle timeout, or a graceful drain.

use super::pump::{self, Dir};
use super::response::Response;
use super::{Core, Ctx, Outcome, Step};
use crate::access_log::Ending;
use crate::buffer::Pool;
use crate::relay::Flow;
use crate::timer::Tick;
use crate::{debug, info};

/// Bytes flowing both ways.
#[derive(Debug)]
pub(super) struct Tunnel {
    pub(super) c2u: Flow,
    pub(super) u2c: Flow,
    /// A graceful drain is under way: the pair's timer is its deadline.
    draining: bool,
}

impl Tunnel {
    /// The upgrade was accepted: what the client sent early goes first,
    /// then it is read again.
    pub(super) fn new(r: Response, u2c: Flow, pool: &mut Pool) -> Tunnel {
        let (mut c2u, held) = r.finish(pool);
        c2u.resume(held);
        Tunnel {
            c2u,
            u2c,
            draining: false,
        }
    }

    /// Both directions are done.
    pub(super) fn is_finished(&self) -> bool {
        self.c2u.is_finished() && self.u2c.is_finished()
    }
}

/// The tunnel's first turn: the 101 (and what came with it) goes to the
/// client; a worker that is draining drains the tunnel at once.
pub(super) fn start(t: &mut Tunnel, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    core.arm(ctx, ctx.config.timeouts.idle);
    let step = pump(t, Dir::Down, core, false, ctx);
    let Some(deadline) = ctx.draining else {
        return step;
    };
    if matches!(step, Step::Close) || !begin_drain(t, core, deadline, Ending::Shutdown, ctx) {
        return step;
    }
    let step = step.and(pump(t, Dir::Up, core, false, ctx));
    if matches!(step, Step::Close) {
        return step;
    }
    step.and(pump(t, Dir::Down, core, false, ctx))
}

/// Runs one direction's relay, then settles what its progress means.
pub(super) fn pump(
    t: &mut Tunnel,
    dir: Dir,
    core: &mut Core,
    closing: bool,
    ctx: &mut Ctx<'_>,
) -> Step {
    let flow = match dir {
        Dir::Up => &mut t.c2u,
        Dir::Down => &mut t.u2c,
    };
    let progress = match pump::run(flow, dir, core, closing, ctx) {
        // A tunnel's bytes run until its peers close: never a surplus.
        Ok(pump::Ran { progress, .. }) => progress,
        Err(fault) => return pump::fault(dir, fault, core, false, ctx),
    };
    // A draining tunnel keeps its deadline.
    let idle = (!t.draining).then_some(ctx.config.timeouts.idle);
    pump::count(&progress, dir, core, idle, ctx);
    // The first direction to finish says who closed.
    let finished = match dir {
        Dir::Up => t.c2u.is_finished(),
        Dir::Down => t.u2c.is_finished(),
    };
    if finished {
        core.ended(Ending::Closed(dir.source()));
    }
    if t.is_finished() {
        return match close_when_flushed(core) {
            Some(_) => Step::Close,
            None => Step::Wait,
        };
    }
    pump::waiting(&progress, dir)
}

/// Starts a graceful drain (see [`super::Pair::drain`]); false when one is
/// under way already.
pub(super) fn begin_drain(
    t: &mut Tunnel,
    core: &mut Core,
    deadline: Tick,
    why: Ending,
    ctx: &mut Ctx<'_>,
) -> bool {
    if t.draining {
        return false;
    }
    t.draining = true;
    let (up, down) = (t.c2u.drain(), t.u2c.drain());
    debug!(
        "client {}: draining the tunnel (to the upstream: {}, to the client: {})",
        core.client_addr,
        if up { "Close frame" } else { "ending" },
        if down { "Close frame" } else { "ending" },
    );
    core.ended(why);
    ctx.metrics.tunnels_drained.add(1);
    ctx.wheel.arm(ctx.key, &mut core.timer, deadline);
    true
}

/// The idle timeout, or a drain's deadline, passed.
pub(super) fn timed_out(t: &mut Tunnel, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    if t.draining {
        info!(
            "client {}: tunnel not closed by its peers within the drain timeout, closing",
            core.client_addr
        );
    } else {
        debug!(
            "client {}: tunnel idle for {:?}, closing",
            core.client_addr, ctx.config.timeouts.idle
        );
        core.ended(Ending::IdleTimeout);
    }
    Step::Close
}

/// A finished tunnel closes once no TLS record waits to be sent.
pub(super) fn close_when_flushed(core: &Core) -> Option<Outcome> {
    let waiting =
        core.client.wants_flush() || core.upstream.as_ref().is_some_and(|u| u.wants_flush());
    if waiting {
        return None;
    }
    debug!("client {}: tunnel closed by both ends", core.client_addr);
    Some(Outcome::Close)
}
