//! The Tunnel phase: after a 101 both directions are opaque byte streams
//! (followed frame by frame), relayed until both are shut, an error, the
//! idle timeout, or a graceful drain. A route's tunnel policy (pings,
//! lifetime, limits) is kept in the tunnel's watch and acted on here when
//! its deadlines come.

use std::time::Duration;

use super::pump::{self, Dir};
use super::response::Response;
use super::{Core, Ctx, Outcome, Step};
use crate::access_log::Ending;
use crate::buffer::Pool;
use crate::framing::frames::Going;
use crate::metrics::{LimitKind, RouteEvent};
use crate::relay::watch::{self, Breach, Due, End, Peer, Watch};
use crate::relay::{Flow, Resources};
use crate::timer::{self, Tick};
use crate::token::Side;
use crate::{debug, info};

/// The tunnel has no watch: its route asks for nothing beyond relaying.
const NO_WATCH: u32 = u32::MAX;

/// Most deadlines one settling acts on before it re-arms for the next
/// tick (each either moves the next deadline on or ends the tunnel; the
/// bound only guards against a loop).
const SETTLE_ROUNDS: usize = 4;

/// Shortest time a tunnel the policy ends gets to close gracefully.
const POLICY_CLOSE_MIN: Duration = Duration::from_secs(1);

/// Bytes flowing both ways.
#[derive(Debug)]
pub(super) struct Tunnel {
    pub(super) c2u: Flow,
    pub(super) u2c: Flow,
    /// Its [`Watch`] in the worker's `Watches`, or [`NO_WATCH`]. Kept
    /// apart so that a tunnel whose route asks for nothing stays small.
    watch: u32,
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
            watch: NO_WATCH,
            draining: false,
        }
    }

    fn watch_key(&self) -> Option<u32> {
        (self.watch != NO_WATCH).then_some(self.watch)
    }

    /// Gives the flows' buffers and pipes and the watch back.
    pub(super) fn release(mut self, res: &mut Resources) {
        self.c2u.release(&mut res.bufs.pool, &mut res.pipes);
        self.u2c.release(&mut res.bufs.pool, &mut res.pipes);
        if let Some(key) = self.watch_key() {
            res.watches.remove(key, &mut res.bufs.pool);
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
    let policy = ctx
        .config
        .routes
        .get(usize::from(core.route))
        .map(|r| &r.tunnel)
        .filter(|p| p.watches());
    match policy {
        Some(p) => {
            // Its first settling, after the first turn, arms the timer.
            let w = Watch::new(p, ctx.config.timeouts.idle, ctx.now, watch::jitter());
            t.watch = ctx.relay.watches.insert(w);
        }
        None => core.arm(ctx, ctx.config.timeouts.idle),
    }
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

/// Runs one direction's relay, then settles what its progress means and,
/// in a watched tunnel, what is due.
pub(super) fn pump(
    t: &mut Tunnel,
    dir: Dir,
    core: &mut Core,
    closing: bool,
    ctx: &mut Ctx<'_>,
) -> Step {
    let step = relay(t, dir, core, closing, ctx);
    if matches!(step, Step::Close) || t.watch_key().is_none() {
        return step;
    }
    step.and(settle(t, core, ctx))
}

/// One direction's relay turn and what its progress means.
fn relay(t: &mut Tunnel, dir: Dir, core: &mut Core, closing: bool, ctx: &mut Ctx<'_>) -> Step {
    let watch = t.watch_key();
    if let Some(w) = watch.and_then(|key| ctx.relay.watches.get_mut(key)) {
        w.now = ctx.now;
    }
    let flow = match dir {
        Dir::Up => &mut t.c2u,
        Dir::Down => &mut t.u2c,
    };
    let progress = match pump::run(flow, dir, core, closing, watch, ctx) {
        // A tunnel's bytes run until its peers close: never a surplus.
        Ok(pump::Ran { progress, .. }) => progress,
        Err(fault) => return pump::fault(dir, fault, core, false, ctx),
    };
    // A draining tunnel keeps its deadline; a watched one settles its own.
    let idle = (!t.draining && watch.is_none()).then_some(ctx.config.timeouts.idle);
    pump::count(&progress, dir, core, idle, ctx);
    if let Some(w) = watch.and_then(|key| ctx.relay.watches.get_mut(key)) {
        for _ in 0..w.take_pings() {
            ctx.routes.event(core.route, RouteEvent::PingSent);
        }
    }
    // The first direction to finish says who closed.
    let finished = match dir {
        Dir::Up => t.c2u.is_finished(),
        Dir::Down => t.u2c.is_finished(),
    };
    if finished {
        core.ended(Ending::Closed(dir.source()));
        match dir {
            Dir::Up => t.u2c.set_last(),
            Dir::Down => t.c2u.set_last(),
        }
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
    if !wind_down(t, core, deadline, why, ctx) {
        return false;
    }
    ctx.metrics.tunnels_drained.add(1);
    true
}

/// Sends each peer a Close frame at its next frame boundary (the watch,
/// if the policy ends the tunnel, says which) and closes what is left at
/// `deadline`; false when the tunnel is winding down already.
fn wind_down(
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
    let going = match why {
        Ending::Unhealthy => Going::ServerDown,
        Ending::Removed => Going::RouteRemoved,
        _ => Going::Shutdown,
    };
    let (up, down) = (t.c2u.drain(going), t.u2c.drain(going));
    debug!(
        "client {}: draining the tunnel (to the upstream: {}, to the client: {})",
        core.client_addr,
        if up { "Close frame" } else { "ending" },
        if down { "Close frame" } else { "ending" },
    );
    core.ended(why);
    ctx.wheel.arm(ctx.key, &mut core.timer, deadline);
    true
}

/// The idle timeout, a drain's deadline, or a watched tunnel's deadline
/// passed.
pub(super) fn timed_out(t: &mut Tunnel, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    if !t.draining && t.watch_key().is_some() {
        return settle(t, core, ctx);
    }
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

/// Acts on what a watched tunnel has due (a Ping to send, a silent peer,
/// the idle timeout, its lifetime, a throttled client to read again, a
/// breach of its limits) and arms the pair's timer for the next deadline.
fn settle(t: &mut Tunnel, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    let mut step = Step::Wait;
    for _ in 0..SETTLE_ROUNDS {
        if t.draining {
            // The drain's deadline rules now.
            return step;
        }
        let Some(w) = t.watch_key().and_then(|key| ctx.relay.watches.get_mut(key)) else {
            return step;
        };
        w.now = ctx.now;
        let next = match w.due() {
            Due::Later(tick) => {
                ctx.wheel.arm(ctx.key, &mut core.timer, tick);
                return step;
            }
            // The relay toward the peer sends it at a frame boundary.
            Due::Ping(Peer::Client) => relay(t, Dir::Down, core, false, ctx),
            Due::Ping(Peer::Upstream) => relay(t, Dir::Up, core, false, ctx),
            Due::Resume => relay(t, Dir::Up, core, false, ctx),
            Due::Dead(peer) => return step.and(unresponsive(t, core, peer, ctx)),
            Due::Idle => {
                debug!(
                    "client {}: tunnel idle for {:?}, closing",
                    core.client_addr,
                    timer::TICK * w.idle()
                );
                core.ended(Ending::IdleTimeout);
                return Step::Close;
            }
            Due::Lifetime => {
                w.end(End::Lifetime);
                debug!(
                    "client {}: the tunnel lived its route's max_lifetime, draining it",
                    core.client_addr
                );
                return step.and(policy_close(t, core, Ending::Lifetime, ctx));
            }
            Due::Breach(b) => return step.and(breached(t, core, b, ctx)),
        };
        step = step.and(next);
        if matches!(step, Step::Close) {
            return step;
        }
    }
    core.arm(ctx, timer::TICK);
    step
}

/// Ends a tunnel by its policy the way a drain does: Close frames at the
/// boundaries, then whatever is left closed at the drain's deadline.
fn policy_close(t: &mut Tunnel, core: &mut Core, why: Ending, ctx: &mut Ctx<'_>) -> Step {
    let grace = ctx.config.drain.timeout.max(POLICY_CLOSE_MIN);
    if !wind_down(t, core, timer::deadline(ctx.now, grace), why, ctx) {
        return Step::Wait;
    }
    let step = relay(t, Dir::Up, core, false, ctx);
    if matches!(step, Step::Close) {
        return step;
    }
    step.and(relay(t, Dir::Down, core, false, ctx))
}

/// A client broke its route's limits: it gets Close 1009 or 1008, the
/// upstream Close 1001.
fn breached(t: &mut Tunnel, core: &mut Core, b: Breach, ctx: &mut Ctx<'_>) -> Step {
    info!(
        "client {}: {}; closing the tunnel",
        core.client_addr,
        match b {
            Breach::TooBig => "sent a message larger than the route's max_message_bytes",
            Breach::Rate => "stayed over the route's rate limit for rate_limit_close_after",
        }
    );
    let (why, kind) = match b {
        Breach::TooBig => (Ending::TooBig, LimitKind::MessageSize),
        Breach::Rate => (Ending::RateLimited, LimitKind::Rate),
    };
    ctx.routes.event(core.route, RouteEvent::LimitClose(kind));
    policy_close(t, core, why, ctx)
}

/// A peer stayed silent past its Ping's timeout: it is gone. Its socket is
/// shut both ways and nothing more goes to it; the other peer gets Close
/// 1001 at its next boundary and FIN.
fn unresponsive(t: &mut Tunnel, core: &mut Core, peer: Peer, ctx: &mut Ctx<'_>) -> Step {
    let side = match peer {
        Peer::Client => Side::Client,
        Peer::Upstream => Side::Upstream,
    };
    info!(
        "{} {}: unresponsive: no byte within ping_interval + ping_timeout; closing the tunnel (client {})",
        side.name(),
        core.peer_name(side, ctx.config),
        core.client_addr
    );
    if let Some(w) = t.watch_key().and_then(|key| ctx.relay.watches.get_mut(key)) {
        w.end(End::Dead(peer));
    }
    ctx.routes.event(core.route, RouteEvent::PeerDead);
    let gone = match peer {
        Peer::Client => Some(&mut core.client),
        Peer::Upstream => core.upstream.as_mut(),
    };
    if let Some(end) = gone {
        end.cut();
    }
    let toward = match peer {
        Peer::Client => &mut t.u2c,
        Peer::Upstream => &mut t.c2u,
    };
    toward.abandon(&mut ctx.relay.bufs.pool, &mut ctx.relay.pipes);
    policy_close(t, core, Ending::Unresponsive(side), ctx)
}
