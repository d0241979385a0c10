//! A client connection and its upstream connection: one slab entry, one
//! state machine. A client connection is a loop of exchanges; any of them
//! may be the upgrade that turns it into a tunnel.
//!
//! ```text
//!        ┌──────────────── next request (keep-alive) ◀──────────────────┐
//!        ▼                                                              │
//! Preface ─▶ Request ──head parsed, routed──▶ Connect ──connected──▶ Response
//!              │                               │ failed: next server      │
//!              │ own answer, redirect, file    ▼ none left: 502/504       │
//!              ▼                             Answer ─▶ Linger ─▶ closed   │
//!           Answer / File ──written──▶ (Discard the unread body) ─────────┤
//! Response ──101──▶ Tunnel ──both directions shut / error / idle / drained──▶ closed
//!          ──other──▶ Exchange ──answer relayed──▶ next request, or Linger ─┘
//! ```
//!
//! Each phase lives in its own file with its own data (`request.rs`,
//! `connect.rs`, `response.rs`, `tunnel.rs`, `answer.rs`); what the pair
//! keeps across phases is its [`Core`]. A phase's handlers return a
//! [`Step`] and never call another phase: [`Pair::apply`] is the one place
//! a phase changes, and it checks that the move is legal. Socket interest
//! is derived from the phase in [`Pair::interest`], and only the worker
//! removes pairs (an [`Outcome::Close`]).

#![warn(unreachable_pub)]

mod answer;
mod connect;
mod core;
mod end;
mod event;
mod h2;
mod head;
mod pool;
mod pump;
mod request;
mod response;
mod tunnel;

use std::mem;
use std::net::{IpAddr, SocketAddr};

use mio::net::TcpStream;
use mio::{Interest, Registry};

use self::core::Core;
use crate::access_log::{Ending, Sink};
use crate::buffer::Buf;
use crate::config::Config;
use crate::framing::body::Body;
use crate::handshake::answer::Reject;
use crate::handshake::edits::ResponseEdits;
use crate::handshake::fields::Persistence;
use crate::handshake::request::Kind;
use crate::metrics::{RouteSet, Shard};
use crate::relay::{Flow, Resources, Tls};
use crate::shed::Class;
use crate::timer::{self, Tick, Timer};
use crate::token::{self, Side};
use crate::{debug, info, warn};
pub use answer::LINGER_LIMIT;
use end::{interest, End};
pub use event::{Ctx, Outcome, Ready};
pub use h2::Handover;
pub use pool::{Kept, Owner};
use pump::Dir;

/// The phase a pair is in, with the data only that phase needs.
#[derive(Debug)]
enum Phase {
    /// On a PROXY protocol listener: waiting for the balancer's header,
    /// which names the real client.
    Preface,
    /// Reading the request head.
    Request(request::Request),
    /// Connecting to an upstream server, the rewritten head waiting.
    Connect(connect::Connect),
    /// Connected: the head and any body flow up while the response head is
    /// read.
    Response(response::Response),
    /// A plain answer flows to the client (and the rest of the request
    /// body up).
    Exchange(response::Exchange),
    /// A WebSocket tunnel after a 101: bytes flow both ways.
    Tunnel(tunnel::Tunnel),
    /// Writing the proxy's own answer.
    Answer(answer::Answer),
    /// Serving a static file.
    File(answer::File),
    /// Reading and dropping the body of a request the proxy answered
    /// itself, before the next request.
    Discard(answer::Discard),
    /// Write side shut; discarding input until EOF, the linger timeout or
    /// the linger's byte limit.
    Linger(answer::Linger),
    /// Transient, while a transition moves the old phase's parts.
    Moving,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Preface => "preface",
            Phase::Request(_) => "request",
            Phase::Connect(_) => "connect",
            Phase::Response(_) => "response",
            Phase::Exchange(_) => "exchange",
            Phase::Tunnel(_) => "tunnel",
            Phase::Answer(_) => "answer",
            Phase::File(_) => "file",
            Phase::Discard(_) => "discard",
            Phase::Linger(_) => "linger",
            Phase::Moving => "moving",
        }
    }

    /// Gives the phase's buffers and pipes back.
    fn release(self, res: &mut Resources) {
        let (pool, pipes) = (&mut res.bufs.pool, &mut res.pipes);
        match self {
            Phase::Connect(c) => c.release(pool, pipes),
            Phase::Response(r) => r.release(pool, pipes),
            Phase::Exchange(mut x) => {
                x.c2u.release(pool, pipes);
                x.u2c.release(pool, pipes);
            }
            Phase::Tunnel(t) => t.release(res),
            Phase::Answer(answer::Answer { out, .. }) | Phase::File(answer::File { out, .. }) => {
                pool.give(out)
            }
            Phase::Request(r) => r.release(pool),
            Phase::Preface | Phase::Discard(_) | Phase::Linger(_) | Phase::Moving => {}
        }
    }
}

/// The moves between phases a pair may make.
fn legal(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("preface", "request" | "answer")
            | ("request", "connect" | "answer" | "file" | "linger")
            | ("connect", "response" | "answer")
            | ("response", "exchange" | "tunnel" | "answer" | "connect")
            | (
                "exchange" | "answer" | "file",
                "request" | "discard" | "linger"
            )
            | ("discard", "request" | "linger")
    )
}

/// What a phase's handler asks of the pair; [`Pair::apply`] carries it
/// out.
#[derive(Debug)]
enum Step {
    /// Stay in this phase until the next event.
    Wait,
    /// Stay, with readable work left on this side: run again after other
    /// pairs.
    Yield(Side),
    /// Remove the pair.
    Close,
    /// Move to this phase and run its first turn.
    Enter(Phase),
    /// Connect: the upstream is connected (and its TLS handshake done),
    /// so the request goes up and the response is awaited.
    Connected,
    /// Response: the upstream answered. A tunnel after a 101, else a plain
    /// exchange; `u2c` carries the answer's head and what came with it.
    Answered { u2c: Flow, tunnel: bool },
    /// Answer with the proxy's own error response, then close.
    Refuse(Reject),
    /// Answer a request read whole (its head) with the proxy's own error
    /// response; the connection stays as `Core::persistence` says, after
    /// `unread`, the rest of its body, is read and dropped.
    Decline { reject: Reject, unread: Body },
    /// The answer went out whole: the exchange is over.
    Done,
    /// Shut the write side and read the client to its end.
    Linger,
    /// The client's TLS handshake chose HTTP/2.
    Http2,
}

impl Step {
    /// Combines two steps taken in one phase, which can only wait, yield
    /// or close.
    fn and(self, next: Step) -> Step {
        debug_assert!(
            matches!(self, Step::Wait | Step::Yield(_) | Step::Close)
                && matches!(next, Step::Wait | Step::Yield(_) | Step::Close),
            "only staying steps combine: {self:?}, {next:?}"
        );
        match (self, next) {
            (Step::Close, _) | (_, Step::Close) => Step::Close,
            (Step::Yield(side), _) | (_, Step::Yield(side)) => Step::Yield(side),
            _ => Step::Wait,
        }
    }
}

/// Why a connect to an upstream server failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Refused,
    TimedOut,
    Tls,
}

/// A site, route or group index not chosen yet.
const NONE: u16 = u16::MAX;

/// Response edits for answers made before a site was chosen.
static NO_EDITS: ResponseEdits = ResponseEdits {
    add: Vec::new(),
    hide: Vec::new(),
};

/// A client connection and whatever it is connected to.
#[derive(Debug)]
pub struct Pair {
    core: Core,
    phase: Phase,
}

impl Pair {
    pub fn new(
        client: TcpStream,
        client_addr: SocketAddr,
        listener: usize,
        serial: u32,
        gen: usize,
        ip_counted: bool,
    ) -> Pair {
        Pair::new_with(
            End::new(client),
            client_addr,
            listener,
            serial,
            gen,
            ip_counted,
        )
    }

    fn new_with(
        client: End,
        client_addr: SocketAddr,
        listener: usize,
        serial: u32,
        gen: usize,
        ip_counted: bool,
    ) -> Pair {
        Pair {
            core: Core {
                client,
                upstream: None,
                client_addr,
                listener: index(listener),
                site: NONE,
                route: NONE,
                group: NONE,
                server: 0,
                timer: Timer::new(serial),
                started: 0,
                record: None,
                gen: index(gen),
                served: 0,
                persistence: Persistence::Close,
                kind: Kind::Plain { head: false },
                client_readable: false,
                shed_stamp: 0,
                kept_slot: core::NO_SLOT,
                ahead: None,
                ip_counted,
            },
            phase: Phase::Request(request::Request::default()),
        }
    }

    /// Starts the handshake timer and reads the request head, which
    /// `TCP_DEFER_ACCEPT` usually has waiting already.
    pub fn start(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        let core = &mut self.core;
        core.begin(ctx);
        core.arm(ctx, ctx.config.timeouts.handshake);
        let listener = &ctx.config.listeners[usize::from(core.listener)];
        if let Some(tls) = &listener.tls {
            match Tls::server(tls.config().clone()) {
                Ok(session) => core.client.set_tls(Some(session)),
                Err(e) => {
                    warn!("client {}: cannot start TLS: {e}", core.client_addr);
                    return Outcome::Close;
                }
            }
        }
        let step = if listener.proxy_protocol {
            self.phase = Phase::Preface;
            request::read_preface(&mut self.core, ctx)
        } else {
            self.start_phase(ctx)
        };
        let outcome = self.apply(step, ctx);
        if outcome != Outcome::Close && self.sheddable() == Some(Class::Head) {
            // Deferred accept usually hands the head over whole: only a
            // head still unfinished after the first read is queued.
            self.core.queue_shed(ctx.shed, ctx.key, Class::Head);
        }
        outcome
    }

    /// Answers a client the limits refused, without reading its request.
    /// On a TLS listener the connection is just closed: an answer would
    /// cost a full handshake, the very work the limit is there to shed.
    pub fn refuse(&mut self, reject: Reject, ctx: &mut Ctx<'_>) -> Outcome {
        self.core.begin(ctx);
        let listener = &ctx.config.listeners[usize::from(self.core.listener)];
        if listener.proxy_protocol {
            // Nothing is known about the client yet, not even who it is.
            self.phase = Phase::Preface;
            return Outcome::Close;
        }
        if listener.tls.is_some() {
            debug!(
                "client {}: {} on a TLS listener: closing",
                self.core.client_addr,
                reject.status.code()
            );
            return Outcome::Close;
        }
        self.apply(Step::Refuse(reject), ctx)
    }

    /// The configuration generation (a worker's index) this pair uses.
    pub fn gen(&self) -> usize {
        usize::from(self.core.gen)
    }

    /// The pair's deadline on the worker's timer wheel.
    pub fn timer(&mut self) -> &mut Timer {
        &mut self.core.timer
    }

    /// The address the limits counted for this pair: none while a PROXY
    /// protocol header has not named the client yet.
    pub fn counted_ip(&self) -> Option<IpAddr> {
        self.core.ip_counted.then(|| self.core.client_addr.ip())
    }

    /// Handles readiness of one of the pair's sockets.
    pub fn on_ready(&mut self, side: Side, ready: Ready, ctx: &mut Ctx<'_>) -> Outcome {
        if side == Side::Client && ready.readable {
            self.core.client_readable = true;
        }
        if ready.writable {
            if let Some(outcome) = self.flush_tls(side) {
                return outcome;
            }
        }
        let core = &mut self.core;
        let step = match (&mut self.phase, side) {
            (Phase::Preface, Side::Client) if ready.readable => request::read_preface(core, ctx),
            (Phase::Request(r), Side::Client) if ready.readable => {
                request::read(r, core, ready.closing, ctx)
            }
            (Phase::Connect(c), Side::Upstream) => connect::on_ready(c, core, ready, ctx),
            (Phase::Response(_), _) => {
                let closing = ready.closing;
                let mut outcome = Outcome::Continue;
                match side {
                    Side::Client => {
                        if ready.writable {
                            // The upstream's read interest was dropped while
                            // 1xx bytes waited and comes back now: no hint
                            // is needed.
                            outcome = self.in_response(ctx, |r, core, ctx| {
                                response::write_interim(r, core, false, ctx)
                            });
                        }
                        if ready.readable && outcome != Outcome::Close {
                            outcome = outcome.and(self.in_response(ctx, |r, core, ctx| {
                                response::pump_up(r, core, closing, ctx)
                            }));
                        }
                    }
                    Side::Upstream => {
                        if ready.writable {
                            outcome = self.in_response(ctx, |r, core, ctx| {
                                response::pump_up(r, core, false, ctx)
                            });
                        }
                        if ready.readable && outcome != Outcome::Close {
                            outcome = outcome.and(self.in_response(ctx, |r, core, ctx| {
                                response::read(r, core, closing, ctx)
                            }));
                        }
                    }
                }
                return outcome;
            }
            (Phase::Exchange(_) | Phase::Tunnel(_), _) => {
                // Writable first: flushing parked bytes may let reading
                // resume.
                let (read_dir, write_dir) = match side {
                    Side::Client => (Dir::Up, Dir::Down),
                    Side::Upstream => (Dir::Down, Dir::Up),
                };
                let mut outcome = Outcome::Continue;
                if ready.writable {
                    outcome = self.pump(write_dir, false, ctx);
                }
                if ready.readable && outcome != Outcome::Close && self.flows() {
                    outcome = outcome.and(self.pump(read_dir, ready.closing, ctx));
                }
                return outcome;
            }
            (Phase::Answer(a), Side::Client) if ready.writable => answer::write(a, core),
            (Phase::File(f), Side::Client) if ready.writable => answer::write_file(f, core, ctx),
            (Phase::Discard(d), Side::Client) if ready.readable => {
                answer::discard_body(d, core, ready.closing, ctx)
            }
            (Phase::Linger(l), Side::Client) if ready.readable => answer::discard(l, core, ctx),
            _ => Step::Wait,
        };
        self.apply(step, ctx)
    }

    /// Handles the pair's deadline passing.
    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        let core = &mut self.core;
        let step = match &mut self.phase {
            Phase::Preface => {
                info!(
                    "client {}: no PROXY protocol header within {:?}, closing",
                    core.client_addr, ctx.config.timeouts.handshake
                );
                Step::Close
            }
            Phase::Request(r) => request::timed_out(r, core, ctx),
            Phase::Connect(c) => connect::timed_out(c, core, ctx),
            Phase::Response(r) => response::timed_out(r, core, ctx),
            Phase::Exchange(_) => response::stalled(core, ctx),
            Phase::Tunnel(t) => tunnel::timed_out(t, core, ctx),
            Phase::File(_) => {
                debug!(
                    "client {}: file transfer stalled for {:?}, closing",
                    core.client_addr, ctx.config.timeouts.response
                );
                Step::Close
            }
            Phase::Discard(_) => {
                debug!(
                    "client {}: request body not sent within {:?}, closing",
                    core.client_addr, ctx.config.timeouts.linger
                );
                Step::Close
            }
            Phase::Answer(_) | Phase::Linger(_) | Phase::Moving => Step::Close,
        };
        self.apply(step, ctx)
    }

    /// Ends a tunnel gracefully: each direction sends its peer a Close
    /// frame (1001, Going Away) at its next frame boundary and shuts its
    /// write side, then reads the peer to its end; whatever is left at
    /// `deadline` is closed. A pair that is not a tunnel (yet) is left
    /// alone: a handshake in flight finishes first.
    pub fn drain(&mut self, deadline: Tick, why: Ending, ctx: &mut Ctx<'_>) -> Outcome {
        if self.is_idle() {
            // Between two requests: nothing is lost by closing now.
            return Outcome::Close;
        }
        let Phase::Tunnel(t) = &mut self.phase else {
            return Outcome::Continue;
        };
        if !tunnel::begin_drain(t, &mut self.core, deadline, why, ctx) {
            return Outcome::Continue;
        }
        let outcome = self.pump(Dir::Up, false, ctx);
        if outcome == Outcome::Close || !self.flows() {
            return outcome;
        }
        outcome.and(self.pump(Dir::Down, false, ctx))
    }

    /// A client connection kept open between requests, with no byte of
    /// the next one yet.
    pub fn is_idle(&self) -> bool {
        matches!(&self.phase, Phase::Request(r) if r.is_idle())
    }

    /// Whether the pair may be shed at the connection limit, and as what:
    /// idle between requests, or still reading a request head (a PROXY
    /// protocol header and a TLS handshake included). See `shed`.
    pub fn sheddable(&self) -> Option<Class> {
        match &self.phase {
            Phase::Request(r) if r.is_idle() => Some(Class::Idle),
            Phase::Preface | Phase::Request(_) => Some(Class::Head),
            _ => None,
        }
    }

    /// The stamp of the pair's latest shedding entry: only that entry is
    /// live (see [`crate::shed`]).
    pub fn shed_stamp(&self) -> u16 {
        self.core.shed_stamp
    }

    /// Closes the pair to make room at the connection limit.
    pub fn shed(&mut self, class: Class) -> Outcome {
        debug!(
            "client {}: closed to make room at the connection limit ({})",
            self.core.client_addr,
            match class {
                Class::Idle => "idle between requests",
                Class::Head => "request head unfinished",
            }
        );
        Outcome::Close
    }

    /// A tunnel's site, route location, upstream group and server, by
    /// name: what a reload compares to find tunnels whose route or server
    /// it removed.
    pub fn tunnel_route<'c>(
        &self,
        config: &'c Config,
    ) -> Option<(&'c str, &'c str, &'c str, &'c str)> {
        if !matches!(self.phase, Phase::Tunnel(_)) {
            return None;
        }
        let names = self.core.tunnel_names(config);
        let site = &config.sites[usize::from(self.core.site)].name;
        let location = &config.routes[usize::from(self.core.route)].location;
        Some((site, location, names.group, names.server))
    }

    /// A reload removed this tunnel's route or server and says to close it.
    pub fn close_removed(&mut self) -> Outcome {
        info!(
            "client {}: closing the tunnel: a reload removed its route or upstream server",
            self.core.client_addr
        );
        self.core.ended(Ending::Removed);
        Outcome::Close
    }

    /// The interest each socket needs in the current phase:
    /// `[client, upstream]`.
    pub fn interest(&self) -> [Option<Interest>; 2] {
        // TLS records waiting for a socket need it writable, whatever the
        // phase.
        let c = self.core.client.wants_flush();
        let u = self.core.upstream.as_ref().is_some_and(End::wants_flush);
        match &self.phase {
            Phase::Preface => [interest(true, false), None],
            Phase::Request(_) | Phase::Discard(_) | Phase::Linger(_) => [interest(true, c), None],
            Phase::Connect(_) if self.core.upstream.as_ref().is_some_and(End::is_tls) => {
                [None, interest(true, u)]
            }
            Phase::Connect(_) => [None, interest(false, true)],
            Phase::Response(r) => [
                interest(keeps_reading(&r.c2u), r.waits_for_client() || c),
                interest(!r.waits_for_client(), r.c2u.wants_write() || u),
            ],
            Phase::Exchange(response::Exchange { c2u, u2c }) => [
                interest(keeps_reading(c2u), u2c.wants_write() || c),
                interest(u2c.wants_read(), c2u.wants_write() || u),
            ],
            Phase::Tunnel(tunnel::Tunnel { c2u, u2c, .. }) => [
                interest(c2u.wants_read(), u2c.wants_write() || c),
                interest(u2c.wants_read(), c2u.wants_write() || u),
            ],
            Phase::Answer(_) | Phase::File(_) => [interest(false, true), None],
            Phase::Moving => [None, None],
        }
    }

    /// Brings the registered interest in line with [`Pair::interest`].
    pub fn sync_interest(&mut self, registry: &Registry, key: usize) -> std::io::Result<()> {
        let [client, upstream] = self.interest();
        let [client_done, upstream_done] = self.reads_done();
        let core = &mut self.core;
        core.client.watch(
            registry,
            token::pair(key, Side::Client),
            client,
            client_done,
        )?;
        let token = core.upstream_token(key);
        if let Some(end) = &mut core.upstream {
            end.watch(registry, token, upstream, upstream_done)?;
        }
        Ok(())
    }

    /// Whether the client and the upstream will be read again in this
    /// phase: a relayed message or stream whose source ended.
    fn reads_done(&self) -> [bool; 2] {
        match &self.phase {
            Phase::Exchange(response::Exchange { c2u, u2c })
            | Phase::Tunnel(tunnel::Tunnel { c2u, u2c, .. }) => {
                [c2u.is_finished(), u2c.is_finished()]
            }
            _ => [false, false],
        }
    }

    /// Whether the poll's events for `side` are to be acted on: a socket
    /// not watched may still report an error or hang-up.
    pub fn watches(&self, side: Side) -> bool {
        match side {
            Side::Client => self.core.client.is_watched(),
            Side::Upstream => self.core.upstream.as_ref().is_some_and(End::is_watched),
        }
    }

    /// Releases everything before the worker drops the pair. `config` and
    /// `routes`: its own configuration and that configuration's route
    /// series.
    #[allow(clippy::too_many_arguments)]
    pub fn close(
        &mut self,
        res: &mut Resources,
        config: &Config,
        routes: &RouteSet,
        metrics: &Shard,
        now: Tick,
        log: &mut Sink,
        kept: &mut Kept,
    ) {
        let core = &mut self.core;
        let mut tunnel = None;
        if let Phase::Tunnel(_) = self.phase {
            let lived = timer::TICK * now.saturating_sub(core.started);
            metrics.tunnel_closed(&core.tunnel_names(config), lived);
            routes.tunnel_closed(core.route, lived);
            tunnel = Some(lived);
        }
        if self.is_idle() {
            metrics.keepalive_idle.sub(1);
        }
        let core = &mut self.core;
        core.log_exchange(config, tunnel, log);
        mem::replace(&mut self.phase, Phase::Moving).release(res);
        if let Some(ahead) = core.ahead.take() {
            res.bufs.pool.give(*ahead);
        }
        core.close_upstream(config, kept);
    }

    /// Carries out what a handler asked for, moving through as many phases
    /// as it takes to reach one that waits.
    fn apply(&mut self, mut step: Step, ctx: &mut Ctx<'_>) -> Outcome {
        loop {
            let from = self.phase.name();
            step = match step {
                Step::Wait => return Outcome::Continue,
                Step::Yield(side) => return Outcome::Yield(side),
                Step::Close => return Outcome::Close,
                Step::Enter(next) => self.enter(from, next, ctx),
                Step::Connected => match mem::replace(&mut self.phase, Phase::Moving) {
                    Phase::Connect(c) => {
                        let response = response::Response::new(c, &mut ctx.relay.bufs.pool);
                        self.enter(from, Phase::Response(response), ctx)
                    }
                    other => self.illegal(other, "connected"),
                },
                Step::Answered { u2c, tunnel } => {
                    match mem::replace(&mut self.phase, Phase::Moving) {
                        Phase::Response(r) => {
                            let pool = &mut ctx.relay.bufs.pool;
                            let next = if tunnel {
                                Phase::Tunnel(tunnel::Tunnel::new(r, u2c, pool))
                            } else {
                                Phase::Exchange(response::Exchange::new(r, u2c, pool))
                            };
                            self.enter(from, next, ctx)
                        }
                        other => self.illegal(other, "answered"),
                    }
                }
                Step::Refuse(reject) => {
                    self.core.persistence = Persistence::Close;
                    answer::refuse(&mut self.core, reject, None, ctx)
                }
                Step::Decline { reject, unread } => {
                    answer::refuse(&mut self.core, reject, Some(unread), ctx)
                }
                Step::Done => self.finish_exchange(ctx),
                Step::Linger => self.enter(from, Phase::Linger(answer::Linger::new()), ctx),
                Step::Http2 => return Outcome::Http2,
            };
        }
    }

    /// Moves from phase `from` to `next`, gives the old phase's buffers
    /// back, and runs the new phase's first turn.
    fn enter(&mut self, from: &'static str, next: Phase, ctx: &mut Ctx<'_>) -> Step {
        debug_assert!(
            legal(from, next.name()),
            "illegal move from {from} to {}",
            next.name()
        );
        if self.is_idle() {
            ctx.metrics.keepalive_idle.sub(1);
        }
        mem::replace(&mut self.phase, next).release(ctx.relay);
        self.start_phase(ctx)
    }

    /// The answer went out whole: logs the exchange, then reads the next
    /// request (after dropping the rest of this one's body, if the proxy
    /// answered it without reading it), or closes.
    fn finish_exchange(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let core = &mut self.core;
        core.log_exchange(ctx.config, None, ctx.log);
        let unread = match &mut self.phase {
            Phase::Answer(a) => a.unread.take(),
            Phase::File(f) => f.unread.take(),
            Phase::Exchange(x) => {
                // An upgrade the upstream refused left the client unread
                // after its head (bodyless): the next request starts there.
                if !x.c2u.is_complete() && !x.c2u.is_held() {
                    // The upstream answered before the request body was
                    // through: where the next request starts is unknown.
                    core.persistence = Persistence::Close;
                }
                None
            }
            _ => None,
        };
        if !core.persistence.keeps() || ctx.winding_down() {
            return Step::Linger;
        }
        match unread.filter(|body| !body.is_done()) {
            Some(body) => Step::Enter(Phase::Discard(answer::Discard::new(body))),
            None => Step::Enter(Phase::Request(request::Request::after(core.ahead.take()))),
        }
    }

    /// A step that does not fit the phase: a bug. Closes the pair rather
    /// than carry on in a state nothing expects.
    fn illegal(&mut self, phase: Phase, step: &str) -> Step {
        debug_assert!(false, "{step} in phase {}", phase.name());
        warn!(
            "client {}: internal error: {step} in phase {}; closing",
            self.core.client_addr,
            phase.name()
        );
        self.phase = phase;
        Step::Close
    }

    /// The first turn of the phase just entered.
    fn start_phase(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let core = &mut self.core;
        match &mut self.phase {
            Phase::Request(r) => request::start(r, core, ctx),
            Phase::Connect(c) => connect::start(c, core, ctx),
            Phase::Response(r) => {
                core.arm(ctx, ctx.config.timeouts.response);
                response::pump_up(r, core, false, ctx)
            }
            Phase::Exchange(x) => response::pump_exchange(x, Dir::Down, core, false, ctx),
            Phase::Tunnel(t) => tunnel::start(t, core, ctx),
            Phase::Answer(a) => {
                core.arm(ctx, ctx.config.timeouts.linger);
                answer::write(a, core)
            }
            Phase::File(f) => {
                core.arm(ctx, ctx.config.timeouts.response);
                answer::write_file(f, core, ctx)
            }
            Phase::Discard(d) => {
                core.arm(ctx, ctx.config.timeouts.linger);
                answer::discard_body(d, core, false, ctx)
            }
            Phase::Linger(l) => answer::linger(l, core, ctx),
            Phase::Preface | Phase::Moving => Step::Wait,
        }
    }

    /// Runs `turn` if the pair is (still) awaiting its response.
    fn in_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        turn: impl FnOnce(&mut response::Response, &mut Core, &mut Ctx<'_>) -> Step,
    ) -> Outcome {
        let Phase::Response(r) = &mut self.phase else {
            // An earlier turn of the same event moved the pair on.
            return Outcome::Continue;
        };
        let step = turn(r, &mut self.core, ctx);
        self.apply(step, ctx)
    }

    /// Whether the phase relays bytes in both directions.
    fn flows(&self) -> bool {
        matches!(self.phase, Phase::Exchange(_) | Phase::Tunnel(_))
    }

    /// Runs one direction's relay in a flowing phase.
    fn pump(&mut self, dir: Dir, closing: bool, ctx: &mut Ctx<'_>) -> Outcome {
        let core = &mut self.core;
        let step = match &mut self.phase {
            Phase::Exchange(x) => response::pump_exchange(x, dir, core, closing, ctx),
            Phase::Tunnel(t) => tunnel::pump(t, dir, core, closing, ctx),
            _ => Step::Wait,
        };
        self.apply(step, ctx)
    }

    /// Writes TLS records waiting for `side`'s socket. `Some`: the outcome
    /// to return at once (a broken socket, or a tunnel that was waiting
    /// only for its last records).
    fn flush_tls(&mut self, side: Side) -> Option<Outcome> {
        let core = &mut self.core;
        let end = match side {
            Side::Client => &mut core.client,
            Side::Upstream => core.upstream.as_mut()?,
        };
        if let Err(e) = end.flush() {
            debug!(
                "{} {}: TLS write failed: {e}",
                side.name(),
                core.client_addr
            );
            return Some(Outcome::Close);
        }
        match &self.phase {
            Phase::Tunnel(t) if t.is_finished() => tunnel::close_when_flushed(core),
            _ => None,
        }
    }
}

/// Whether the client stays registered for reading while its request
/// flows up (or has): while the flow reads, and once the request is
/// complete too, when the next request's bytes are nobody's to read until
/// this exchange is over. A readable event then finds nothing to do, and
/// the next request's first turn reads without waiting for one, so the
/// registration can stay as the Request phase wants it instead of being
/// dropped and made again for every request (two `epoll_ctl` calls saved).
/// Not while bytes are parked: the flow then waits for its source's next
/// event, which must not be spent meanwhile.
fn keeps_reading(c2u: &Flow) -> bool {
    c2u.wants_read() || (c2u.is_complete() && !c2u.wants_write())
}

/// Writes `out` to `end` until it is empty (`None`) or the socket is full
/// or broken (the step to take).
fn write_out(end: &mut End, out: &mut Buf) -> Option<Step> {
    match end.conn().write_all(out.data()) {
        Ok(n) => {
            out.consume(n);
            (!out.is_empty()).then_some(Step::Wait)
        }
        Err(_) => Some(Step::Close),
    }
}

/// A configuration index as stored in a pair.
fn index(i: usize) -> u16 {
    u16::try_from(i).expect("configuration indices fit in u16")
}

#[cfg(test)]
mod tests;
