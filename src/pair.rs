//! A client connection and its upstream connection: one slab entry, one
//! state machine.
//!
//! ```text
//! Request ──head parsed, rewritten──▶ Connect ──connected──▶ Response
//!    │                                  │ refused/timeout: next server
//!    │                                  ▼ none left: 502/504
//!    ▼ bad head / timeout            Answer ──written──▶ Linger ──EOF/timeout──▶ closed
//! Response ──101──▶ Relay (tunnel)  ──both directions shut / error / idle──▶ closed
//!          ──other──▶ Relay (plain) ──response relayed──▶ Linger
//! ```
//!
//! Handlers return an [`Outcome`]; only the worker removes pairs. Socket
//! interest is derived from the state in [`Pair::interest`] and applied by
//! [`Pair::sync_interest`] after every handler.

use std::fs::File;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry};

use crate::access_log::{self, Ending, Exchange, Sink};
use crate::buffer::{Buf, Pool, BUF_BYTES};
use crate::config::Config;
use crate::dispatch::{self, Action, Inputs};
use crate::files;
use crate::handshake::answer::{self, Reject, Status};
use crate::handshake::body::Body;
use crate::handshake::edits::ResponseEdits;
use crate::handshake::request::{self, Kind, Peer, MAX_HEADERS, REWRITE_SLACK};
use crate::handshake::response::{self, Response};
use crate::limits::Admission;
use crate::metrics::{Shard, TlsSide, TunnelNames};
use crate::proxy_protocol::{self, Origin};
use crate::relay::copy::{self, READS_PER_TURN};
use crate::relay::frames::Frames;
use crate::relay::{self, Conn, Fault, Flow, Progress, Pumped, Resources, Tls};
use crate::timer::{self, Tick, Timer, Wheel};
use crate::token::{self, Side};
use crate::upstream::{Attempt, Group, Picker};
use crate::{debug, info, warn};

/// The worker state a handler may use.
pub struct Ctx<'a> {
    /// This pair's slab key.
    pub key: usize,
    pub now: Tick,
    /// The same moment as `now`, for upstream health shared by workers.
    pub at: Instant,
    pub config: &'a Config,
    pub relay: &'a mut Resources,
    pub wheel: &'a mut Wheel,
    pub picker: &'a mut Picker,
    pub metrics: &'a Shard,
    pub admission: &'a Admission,
    /// The worker is draining until then: a tunnel that opens now is
    /// drained at once.
    pub draining: Option<Tick>,
}

/// What a socket event reported.
#[derive(Clone, Copy, Debug)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// The peer sent EOF or the socket has an error: read to the end.
    pub closing: bool,
}

impl Ready {
    pub const READABLE: Ready = Ready {
        readable: true,
        writable: false,
        closing: false,
    };

    pub fn from_event(event: &mio::event::Event) -> Ready {
        let closing = event.is_read_closed() || event.is_error();
        Ready {
            readable: event.is_readable() || closing,
            writable: event.is_writable() || event.is_write_closed() || event.is_error(),
            closing,
        }
    }
}

/// What the worker does with a pair after a handler ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// Readable work is left on this side: run it again after other pairs.
    Yield(Side),
    /// Remove the pair; dropping it closes both sockets.
    Close,
}

impl Outcome {
    /// Combines the outcomes of two steps of one event.
    fn and(self, next: Outcome) -> Outcome {
        match (self, next) {
            (Outcome::Close, _) | (_, Outcome::Close) => Outcome::Close,
            (Outcome::Yield(side), _) | (_, Outcome::Yield(side)) => Outcome::Yield(side),
            _ => Outcome::Continue,
        }
    }
}

/// A relay direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// Client to upstream.
    Up,
    /// Upstream to client.
    Down,
}

impl Dir {
    fn source(self) -> Side {
        match self {
            Dir::Up => Side::Client,
            Dir::Down => Side::Upstream,
        }
    }
}

enum Phase {
    /// On a PROXY protocol listener: waiting for the balancer's header,
    /// which names the real client.
    Preface,
    /// Reading the request head; `partial` holds a head that spans reads.
    Request { partial: Vec<u8> },
    /// Connecting to an upstream server; the rewritten head waits in `c2u`.
    /// `held`: what an upgrading client sent after its head, kept back
    /// until the upstream answers 101 (see [`Pair::hold_early`]).
    Connect {
        c2u: Flow,
        kind: Kind,
        attempt: Attempt,
        held: Option<Box<Buf>>,
    },
    /// Connected: the head and any body flow up while the response head is
    /// read. `interim` holds 1xx answers on their way to the client.
    Response {
        c2u: Flow,
        kind: Kind,
        partial: Vec<u8>,
        interim: Option<Buf>,
        held: Option<Box<Buf>>,
    },
    /// Bytes flow both ways: a WebSocket tunnel after a 101, or a plain
    /// response being relayed.
    Relay { c2u: Flow, u2c: Flow, tunnel: bool },
    /// Writing the proxy's own answer.
    Answer { out: Buf },
    /// Serving a static file: the head in `out`, then `len` bytes of
    /// `file` from `offset`.
    File {
        out: Buf,
        file: File,
        offset: u64,
        len: u64,
    },
    /// Write side shut; discarding input until EOF or the linger timeout.
    Linger,
    /// Transient, while a transition moves the old state's parts.
    Moving,
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

pub struct Pair {
    client: TcpStream,
    upstream: Option<TcpStream>,
    /// The TLS sessions over the client's and the upstream's sockets, on a
    /// TLS listener and to a `wss://` server.
    client_tls: Option<Box<Tls>>,
    upstream_tls: Option<Box<Tls>>,
    client_addr: SocketAddr,
    /// Which configured listener accepted the client.
    listener: u16,
    /// The site and route serving the request, and the upstream group and
    /// server in use or last tried; [`NONE`] until chosen.
    site: u16,
    route: u16,
    group: u16,
    server: u16,
    phase: Phase,
    pub timer: Timer,
    /// When the handshake began ([`Shard::stamp`]); once a tunnel, the
    /// tick it opened.
    started: u32,
    /// What the access log will say, while it is on.
    exchange: Option<Box<Exchange>>,
    /// Interest registered for the client and upstream sockets.
    registered: [Option<Interest>; 2],
    /// The worker's configuration generation this pair uses.
    gen: u16,
    /// A graceful drain is under way: the timer is its deadline.
    draining: bool,
}

/// What one parse of a response head's bytes produced.
enum Answered {
    /// More bytes needed; the first `consumed` were interim answers.
    Partial {
        consumed: usize,
    },
    /// A 101; the last `early` bytes of the output are frames the upstream
    /// sent right after it.
    Tunnel {
        early: usize,
    },
    Final {
        body: Body,
        status: u16,
    },
    Bad(Reject),
}

impl Pair {
    pub fn new(
        client: TcpStream,
        client_addr: SocketAddr,
        listener: usize,
        serial: u32,
        gen: usize,
    ) -> Pair {
        Pair {
            client,
            upstream: None,
            client_tls: None,
            upstream_tls: None,
            client_addr,
            listener: index(listener),
            site: NONE,
            route: NONE,
            group: NONE,
            server: 0,
            phase: Phase::Request {
                partial: Vec::new(),
            },
            timer: Timer::new(serial),
            started: 0,
            exchange: None,
            registered: [None, None],
            gen: index(gen),
            draining: false,
        }
    }

    /// Starts the handshake timer and reads the request head, which
    /// `TCP_DEFER_ACCEPT` usually has waiting already.
    pub fn start(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        self.started = ctx.metrics.stamp(ctx.at);
        if ctx.config.access_log != access_log::Target::Off {
            self.exchange = Some(Box::default());
        }
        self.arm(ctx, ctx.config.timeouts.handshake);
        if let Some(tls) = &ctx.config.listeners[usize::from(self.listener)].tls {
            match Tls::server(tls.config().clone()) {
                Ok(session) => self.client_tls = Some(Box::new(session)),
                Err(e) => {
                    warn!("client {}: cannot start TLS: {e}", self.client_addr);
                    return Outcome::Close;
                }
            }
        }
        if ctx.config.listeners[usize::from(self.listener)].proxy_protocol {
            self.phase = Phase::Preface;
            return self.read_preface(ctx);
        }
        self.read_request(false, ctx)
    }

    /// Answers a client the limits refused, without reading its request.
    /// On a TLS listener the connection is just closed: an answer would
    /// cost a full handshake, the very work the limit is there to shed.
    pub fn refuse(&mut self, reject: Reject, ctx: &mut Ctx<'_>) -> Outcome {
        self.started = ctx.metrics.stamp(ctx.at);
        if ctx.config.access_log != access_log::Target::Off {
            self.exchange = Some(Box::default());
        }
        let listener = &ctx.config.listeners[usize::from(self.listener)];
        if listener.proxy_protocol {
            // Nothing is known about the client yet, not even who it is.
            self.phase = Phase::Preface;
            return Outcome::Close;
        }
        if listener.tls.is_some() {
            debug!(
                "client {}: {} on a TLS listener: closing",
                self.client_addr,
                reject.status.code()
            );
            return Outcome::Close;
        }
        self.answer(reject, ctx)
    }

    /// The configuration generation (a worker's index) this pair uses.
    pub fn gen(&self) -> usize {
        usize::from(self.gen)
    }

    /// The address the limits counted for this pair: none while a PROXY
    /// protocol header has not named the client yet.
    pub fn counted_ip(&self, config: &Config) -> Option<std::net::IpAddr> {
        let preface = config.listeners[usize::from(self.listener)].proxy_protocol
            && matches!(self.phase, Phase::Preface);
        (!preface).then(|| self.client_addr.ip())
    }

    /// Handles readiness of one of the pair's sockets.
    pub fn on_ready(&mut self, side: Side, ready: Ready, ctx: &mut Ctx<'_>) -> Outcome {
        if ready.writable {
            if let Some(outcome) = self.flush_tls(side) {
                return outcome;
            }
        }
        match (&self.phase, side) {
            (Phase::Preface, Side::Client) if ready.readable => self.read_preface(ctx),
            (Phase::Request { .. }, Side::Client) if ready.readable => {
                self.read_request(ready.closing, ctx)
            }
            (Phase::Connect { .. }, Side::Upstream) if self.upstream_tls.is_some() => {
                self.upstream_handshake(ctx)
            }
            (Phase::Connect { .. }, Side::Upstream) if ready.writable => self.finish_connect(ctx),
            (Phase::Response { .. }, Side::Client) => {
                let mut outcome = Outcome::Continue;
                if ready.writable {
                    // The upstream's read interest was dropped while 1xx
                    // bytes waited and comes back now: no hint is needed.
                    outcome = self.flush_interim(false, ctx);
                }
                if ready.readable && matches!(self.phase, Phase::Response { .. }) {
                    outcome = outcome.and(self.pump(Dir::Up, ready.closing, ctx));
                }
                outcome
            }
            (Phase::Response { .. }, Side::Upstream) => {
                let mut outcome = Outcome::Continue;
                if ready.writable {
                    outcome = self.pump(Dir::Up, false, ctx);
                }
                if ready.readable && matches!(self.phase, Phase::Response { .. }) {
                    outcome = outcome.and(self.read_response(ready.closing, ctx));
                }
                outcome
            }
            (Phase::Relay { .. }, _) => {
                // Writable first: flushing parked bytes may let reading resume.
                let (read_dir, write_dir) = match side {
                    Side::Client => (Dir::Up, Dir::Down),
                    Side::Upstream => (Dir::Down, Dir::Up),
                };
                let mut outcome = Outcome::Continue;
                if ready.writable {
                    outcome = self.pump(write_dir, false, ctx);
                }
                if ready.readable
                    && outcome != Outcome::Close
                    && matches!(self.phase, Phase::Relay { .. })
                {
                    outcome = outcome.and(self.pump(read_dir, ready.closing, ctx));
                }
                outcome
            }
            (Phase::Answer { .. }, Side::Client) if ready.writable => self.write_answer(ctx),
            (Phase::File { .. }, Side::Client) if ready.writable => self.write_file(ctx),
            (Phase::Linger, Side::Client) if ready.readable => {
                self.discard(&mut ctx.relay.bufs.scratch)
            }
            _ => Outcome::Continue,
        }
    }

    /// Handles the pair's deadline passing.
    pub fn on_timeout(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        match &self.phase {
            Phase::Preface => {
                info!(
                    "client {}: no PROXY protocol header within {:?}, closing",
                    self.client_addr, ctx.config.timeouts.handshake
                );
                Outcome::Close
            }
            Phase::Request { .. }
                if self.client_tls.as_ref().is_some_and(|t| t.is_handshaking()) =>
            {
                info!(
                    "client {}: TLS handshake not finished within {:?}, closing",
                    self.client_addr, ctx.config.timeouts.handshake
                );
                ctx.metrics.tls_failed(TlsSide::Client);
                Outcome::Close
            }
            Phase::Request { .. } => self.answer(
                Reject::new(
                    Status::RequestTimeout,
                    "request head not received within the handshake timeout",
                ),
                ctx,
            ),
            Phase::Connect { .. } => {
                let timeout = ctx.config.timeouts.connect;
                let what = if self.upstream_tls.is_some() {
                    "TLS handshake"
                } else {
                    "connect"
                };
                self.connect_failed(
                    &format!("no answer to {what} within {timeout:?}"),
                    Failure::TimedOut,
                    ctx,
                )
            }
            Phase::Response { interim: None, .. } => {
                warn!(
                    "upstream {}: no response within {:?} (client {})",
                    self.server_addr(ctx),
                    ctx.config.timeouts.response,
                    self.client_addr
                );
                self.answer(
                    Reject::new(Status::GatewayTimeout, "upstream did not answer in time"),
                    ctx,
                )
            }
            Phase::Relay { tunnel: true, .. } if self.draining => {
                info!(
                    "client {}: tunnel not closed by its peers within the drain timeout, closing",
                    self.client_addr
                );
                Outcome::Close
            }
            Phase::Relay { tunnel: true, .. } => {
                debug!(
                    "client {}: tunnel idle for {:?}, closing",
                    self.client_addr, ctx.config.timeouts.idle
                );
                self.ended(Ending::IdleTimeout);
                Outcome::Close
            }
            Phase::Relay { tunnel: false, .. } | Phase::Response { .. } => {
                warn!(
                    "upstream {}: response stalled for {:?}, closing (client {})",
                    self.server_addr(ctx),
                    ctx.config.timeouts.response,
                    self.client_addr
                );
                self.ended(Ending::Stalled);
                Outcome::Close
            }
            Phase::File { .. } => {
                debug!(
                    "client {}: file transfer stalled for {:?}, closing",
                    self.client_addr, ctx.config.timeouts.response
                );
                Outcome::Close
            }
            Phase::Answer { .. } | Phase::Linger | Phase::Moving => Outcome::Close,
        }
    }

    /// The interest each socket needs in the current state:
    /// `[client, upstream]`.
    pub fn interest(&self) -> [Option<Interest>; 2] {
        // TLS records waiting for a socket need it writable, whatever the
        // state.
        let flush = |tls: &Option<Box<Tls>>| tls.as_ref().is_some_and(|t| t.wants_flush());
        let (c, u) = (flush(&self.client_tls), flush(&self.upstream_tls));
        match &self.phase {
            Phase::Preface => [interest(true, false), None],
            Phase::Request { .. } | Phase::Linger => [interest(true, c), None],
            Phase::Connect { .. } if self.upstream_tls.is_some() => [None, interest(true, u)],
            Phase::Connect { .. } => [None, interest(false, true)],
            Phase::Response { c2u, interim, .. } => [
                interest(c2u.wants_read(), interim.is_some() || c),
                interest(interim.is_none(), c2u.wants_write() || u),
            ],
            Phase::Relay { c2u, u2c, .. } => [
                interest(c2u.wants_read(), u2c.wants_write() || c),
                interest(u2c.wants_read(), c2u.wants_write() || u),
            ],
            Phase::Answer { .. } | Phase::File { .. } => [interest(false, true), None],
            Phase::Moving => [None, None],
        }
    }

    /// Writes TLS records waiting for `side`'s socket. `Some`: the outcome
    /// to return at once (a broken socket, or a tunnel that was waiting
    /// only for its last records).
    fn flush_tls(&mut self, side: Side) -> Option<Outcome> {
        let (tcp, tls) = match side {
            Side::Client => (&self.client, &mut self.client_tls),
            Side::Upstream => (self.upstream.as_ref()?, &mut self.upstream_tls),
        };
        let tls = tls.as_mut().filter(|t| t.wants_flush())?;
        match tls.flush(tcp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) => {
                debug!(
                    "{} {}: TLS write failed: {e}",
                    side.name(),
                    self.client_addr
                );
                return Some(Outcome::Close);
            }
        }
        match &self.phase {
            Phase::Relay {
                c2u,
                u2c,
                tunnel: true,
            } if c2u.is_finished() && u2c.is_finished() => self.close_when_flushed(),
            _ => None,
        }
    }

    /// A finished tunnel closes once no TLS record waits to be sent.
    fn close_when_flushed(&self) -> Option<Outcome> {
        let waiting = |tls: &Option<Box<Tls>>| tls.as_ref().is_some_and(|t| t.wants_flush());
        if waiting(&self.client_tls) || waiting(&self.upstream_tls) {
            return None;
        }
        debug!("client {}: tunnel closed by both ends", self.client_addr);
        Some(Outcome::Close)
    }

    /// Brings the registered interest in line with [`Pair::interest`].
    pub fn sync_interest(&mut self, registry: &Registry, key: usize) -> io::Result<()> {
        let [client, upstream] = self.interest();
        update(
            registry,
            &mut self.client,
            token::pair(key, Side::Client),
            &mut self.registered[0],
            client,
        )?;
        if let Some(stream) = &mut self.upstream {
            update(
                registry,
                stream,
                token::pair(key, Side::Upstream),
                &mut self.registered[1],
                upstream,
            )?;
        }
        Ok(())
    }

    /// Returns the pair's buffers to the pool before it is dropped.
    pub fn release(&mut self, res: &mut Resources) {
        let (pool, pipes) = (&mut res.bufs.pool, &mut res.pipes);
        match mem::replace(&mut self.phase, Phase::Moving) {
            Phase::Connect { mut c2u, held, .. } => {
                c2u.release(pool, pipes);
                if let Some(buf) = held {
                    pool.give(*buf);
                }
            }
            Phase::Response {
                mut c2u,
                interim,
                held,
                ..
            } => {
                c2u.release(pool, pipes);
                if let Some(buf) = interim {
                    pool.give(buf);
                }
                if let Some(buf) = held {
                    pool.give(*buf);
                }
            }
            Phase::Relay {
                mut c2u, mut u2c, ..
            } => {
                c2u.release(pool, pipes);
                u2c.release(pool, pipes);
            }
            Phase::Answer { out } | Phase::File { out, .. } => pool.give(out),
            Phase::Preface | Phase::Request { .. } | Phase::Linger | Phase::Moving => {}
        }
    }

    /// Releases everything before the worker drops the pair.
    pub fn close(
        &mut self,
        res: &mut Resources,
        config: &Config,
        metrics: &Shard,
        now: Tick,
        log: &mut Sink,
    ) {
        let mut tunnel = None;
        if let Phase::Relay { tunnel: true, .. } = self.phase {
            let lived = timer::TICK * now.saturating_sub(self.started);
            metrics.tunnel_closed(&self.tunnel_names(config), lived);
            tunnel = Some(lived);
        }
        if let Some(x) = self.exchange.take().filter(|x| x.status != 0) {
            let line = access_log::Line {
                client: self.client_addr,
                route: (self.route != NONE)
                    .then(|| config.routes[usize::from(self.route)].location.as_str()),
                upstream: (self.group != NONE).then(|| {
                    config.groups[usize::from(self.group)].servers[usize::from(self.server)]
                        .name
                        .as_str()
                }),
                tunnel,
            };
            log.record(&line, &x);
        }
        self.release(res);
        self.set_upstream(None, config);
    }

    /// The names a tunnel's gauges go by.
    fn tunnel_names<'c>(&self, config: &'c Config) -> TunnelNames<'c> {
        let group = &config.groups[usize::from(self.group)];
        TunnelNames {
            route: &config.routes[usize::from(self.route)].location,
            group: &group.name,
            server: &group.servers[usize::from(self.server)].name,
        }
    }

    /// Counts the answer the client got, for the metrics and the log.
    fn answered(&mut self, code: u16, ctx: &Ctx<'_>) {
        let us = ctx.metrics.answered(code, self.started, ctx.at);
        if let Some(x) = &mut self.exchange {
            x.status = code;
            x.handshake_us = us;
        }
    }

    /// Notes who ended the exchange (the first note stands).
    fn ended(&mut self, ending: Ending) {
        if let Some(x) = &mut self.exchange {
            x.end(ending);
        }
    }

    fn arm(&mut self, ctx: &mut Ctx<'_>, after: Duration) {
        ctx.wheel
            .arm(ctx.key, &mut self.timer, timer::deadline(ctx.now, after));
    }

    fn group<'c>(&self, config: &'c Config) -> &'c Group {
        &config.groups[usize::from(self.group)]
    }

    fn server_addr(&self, ctx: &Ctx<'_>) -> SocketAddr {
        self.group(ctx.config).servers[usize::from(self.server)].addr
    }

    /// The fields the proxy's own answers carry: the route's, else the
    /// site's.
    fn edits<'c>(&self, config: &'c Config) -> &'c ResponseEdits {
        if self.route != NONE {
            &config.routes[usize::from(self.route)].response
        } else if self.site != NONE {
            &config.sites[usize::from(self.site)].response
        } else {
            &NO_EDITS
        }
    }

    fn peer(&self) -> Peer {
        Peer {
            ip: self.client_addr.ip(),
            scheme: if self.client_tls.is_some() {
                "https"
            } else {
                "http"
            },
        }
    }

    // ----- Request -------------------------------------------------------

    /// Reads and handles the request head. `closing`: the event reported
    /// EOF or an error on the client.
    fn read_request(&mut self, closing: bool, ctx: &mut Ctx<'_>) -> Outcome {
        let limit = ctx.config.max_head;
        let peer = self.peer();
        if let Some(outcome) = self.plain_on_tls(ctx) {
            return outcome;
        }
        loop {
            let Phase::Request { partial } = &mut self.phase else {
                return Outcome::Continue;
            };
            let bufs = &mut ctx.relay.bufs;
            bufs.scratch.clear();
            // Read at most what the head limit leaves room for: bytes past it
            // wait in the kernel until the head is dealt with.
            let room = limit - partial.len();
            let mut client = Conn::new(&self.client, &mut self.client_tls);
            let n = match client.read(&mut bufs.scratch.space()[..room]) {
                Ok(0) => {
                    if !partial.is_empty() {
                        debug!(
                            "client {}: closed before finishing its request head",
                            self.client_addr
                        );
                    }
                    return Outcome::Close;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Continue,
                Err(e) if self.client_tls.as_ref().is_some_and(|t| t.is_handshaking()) => {
                    return self.tls_refused(&e, ctx)
                }
                Err(e) => {
                    debug!(
                        "client {}: read failed during handshake: {e}",
                        self.client_addr
                    );
                    return Outcome::Close;
                }
            };
            bufs.scratch.fill(n);
            // A short read emptied the socket, unless the event also said
            // EOF (or TLS holds it): that is still to be read, and nothing
            // will say so again.
            let drained = n < room && !closing && !ended(&self.client_tls);
            let from_scratch = partial.is_empty();
            if !from_scratch {
                partial.extend_from_slice(bufs.scratch.data());
            }
            let input: &[u8] = if from_scratch {
                bufs.scratch.data()
            } else {
                partial
            };
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let head = match request::parse(input, limit, &mut headers) {
                Ok(None) => {
                    if from_scratch {
                        partial.extend_from_slice(bufs.scratch.data());
                    }
                    continue;
                }
                Ok(Some(head)) => head,
                Err(reject) => return self.answer(reject, ctx),
            };
            let mut out = bufs.pool.take();
            let inputs = Inputs {
                config: ctx.config,
                listener: usize::from(self.listener),
                peer,
                picker: ctx.picker,
                now: ctx.at,
            };
            let early = input.len() - head.head_len;
            let plan = dispatch::decide(&head, &input[head.head_len..], inputs, &mut out);
            *partial = Vec::new();
            self.site = plan.site.map_or(NONE, index);
            self.route = plan.route.map_or(NONE, index);
            return self.carry_out(plan.action, out, drained, early, ctx);
        }
    }

    /// Reads the PROXY protocol header without taking a byte past it:
    /// peek, parse, then read exactly the header. A malformed one closes
    /// the connection, as the protocol says; a good one names the client
    /// that logs, limits, hashing and X-Forwarded-For see.
    fn read_preface(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        let scratch = &mut ctx.relay.bufs.scratch;
        scratch.clear();
        let room = &mut scratch.space()[..proxy_protocol::MAX_HEADER_BYTES];
        let n = match self.client.peek(room) {
            Ok(0) => return Outcome::Close,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Continue,
            Err(e) => {
                debug!("client {}: read failed: {e}", self.client_addr);
                return Outcome::Close;
            }
        };
        let header = match proxy_protocol::parse(&room[..n]) {
            // The rest raises a new event when it arrives.
            Ok(None) => return Outcome::Continue,
            Ok(Some(header)) => header,
            Err(e) => {
                info!(
                    "client {}: bad PROXY protocol header: {e}",
                    self.client_addr
                );
                return Outcome::Close;
            }
        };
        let mut taken = 0;
        while taken < header.len {
            match copy::read(&self.client, &mut room[taken..header.len]) {
                Ok(0) => return Outcome::Close,
                Ok(n) => taken += n,
                Err(e) => {
                    debug!("client {}: read failed: {e}", self.client_addr);
                    return Outcome::Close;
                }
            }
        }
        if let Origin::Tcp { source, .. } = header.origin {
            debug!(
                "client {}: PROXY v{} says the client is {source}",
                self.client_addr, header.version
            );
            self.client_addr = source;
        }
        self.phase = Phase::Request {
            partial: Vec::new(),
        };
        if let Err(reject) = ctx
            .admission
            .admit_ip(&ctx.config.limits, self.client_addr.ip())
        {
            if self.client_tls.is_some() {
                debug!(
                    "client {}: {} before TLS: closing",
                    self.client_addr,
                    reject.status.code()
                );
                return Outcome::Close;
            }
            return self.answer(reject, ctx);
        }
        self.read_request(false, ctx)
    }

    /// On a TLS listener, before the handshake is done: a client that
    /// speaks plain HTTP (its first byte a letter, where TLS records start
    /// with a content type from 20 to 24) gets nginx's 400 in plain text.
    fn plain_on_tls(&mut self, ctx: &mut Ctx<'_>) -> Option<Outcome> {
        if !self.client_tls.as_ref()?.is_handshaking() {
            return None;
        }
        let mut first = [0u8; 1];
        match self.client.peek(&mut first) {
            Ok(1) if first[0].is_ascii_alphabetic() => {
                ctx.metrics.tls_failed(TlsSide::Client);
                self.client_tls = None;
                Some(self.answer(
                    Reject::new(
                        Status::BadRequest,
                        "plain HTTP request sent to an HTTPS port",
                    ),
                    ctx,
                ))
            }
            _ => None,
        }
    }

    /// The client's TLS handshake failed: rustls has sent an alert saying
    /// why; log it, then linger so the client reads the alert, not a reset.
    fn tls_refused(&mut self, e: &io::Error, ctx: &mut Ctx<'_>) -> Outcome {
        info!("client {}: TLS handshake failed: {e}", self.client_addr);
        ctx.metrics.tls_failed(TlsSide::Client);
        self.client_tls = None;
        self.linger(ctx)
    }

    /// Acts on a request's plan; `out` holds what it wrote, ending with up
    /// to `early` bytes the client sent after its head.
    fn carry_out(
        &mut self,
        action: Action,
        out: Buf,
        drained: bool,
        early: usize,
        ctx: &mut Ctx<'_>,
    ) -> Outcome {
        match action {
            Action::Reply => {
                self.answered(308, ctx);
                self.phase = Phase::Answer { out };
                self.arm(ctx, ctx.config.timeouts.linger);
                self.write_answer(ctx)
            }
            Action::Refuse(reject) => {
                ctx.relay.bufs.pool.give(out);
                self.answer(reject, ctx)
            }
            Action::Serve { file, len } => {
                self.answered(200, ctx);
                self.phase = Phase::File {
                    out,
                    file,
                    offset: 0,
                    len,
                };
                self.arm(ctx, ctx.config.timeouts.response);
                self.write_file(ctx)
            }
            Action::Forward {
                group,
                kind,
                body,
                attempt,
            } => {
                self.group = index(group);
                let (out, held) = hold_early(kind, out, early, &mut ctx.relay.bufs.pool);
                let mut c2u = Flow::with_pending(body, out, drained);
                if kind == Kind::Upgrade {
                    c2u.hold();
                }
                self.phase = Phase::Connect {
                    c2u,
                    kind,
                    attempt,
                    held,
                };
                self.connect(ctx)
            }
        }
    }

    // ----- Connect -------------------------------------------------------

    /// Connects to the current attempt's server, moving on past servers
    /// that fail at once.
    fn connect(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        let group = &ctx.config.groups[usize::from(self.group)];
        loop {
            let Phase::Connect { attempt, .. } = &mut self.phase else {
                return Outcome::Continue;
            };
            let server = attempt.server();
            self.server = index(server);
            let addr = group.servers[server].addr;
            match TcpStream::connect(addr) {
                Ok(stream) => {
                    group.opened(server);
                    // Small frames go out at once; a WebSocket is interactive.
                    let _ = stream.set_nodelay(true);
                    // A nearby upstream (loopback, same host) has usually
                    // accepted before connect returns: send the head now
                    // rather than after a trip through epoll.
                    let connected = stream.peer_addr().is_ok();
                    self.upstream = Some(stream);
                    self.upstream_tls = None;
                    self.registered[Side::Upstream as usize] = None;
                    if connected {
                        return self.established(ctx);
                    }
                    self.arm(ctx, ctx.config.timeouts.connect);
                    return Outcome::Continue;
                }
                Err(e) => {
                    warn!(
                        "upstream {addr}: connect failed: {e} (client {})",
                        self.client_addr
                    );
                    group.connect_failed(server, ctx.at);
                    ctx.metrics.connect_failures.add(1);
                    match attempt.next(group, ctx.at) {
                        Some(next) => *attempt = next,
                        None => {
                            return self.answer(
                                Reject::new(
                                    Status::BadGateway,
                                    "no upstream server accepted the connection",
                                ),
                                ctx,
                            )
                        }
                    }
                }
            }
        }
    }

    /// Closes the upstream socket, if any. Dropping it also removes it
    /// from epoll.
    fn set_upstream(&mut self, stream: Option<TcpStream>, config: &Config) {
        if self.upstream.take().is_some() {
            self.group(config).closed(usize::from(self.server));
        }
        self.upstream_tls = None;
        self.upstream = stream;
        self.registered[Side::Upstream as usize] = None;
    }

    fn finish_connect(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        let Some(stream) = &self.upstream else {
            return Outcome::Continue;
        };
        let error = match stream.take_error() {
            Ok(Some(e)) | Err(e) => e,
            Ok(None) => match stream.peer_addr() {
                Ok(_) => return self.established(ctx),
                // A spurious wakeup: the connect is still in progress.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Outcome::Continue,
                Err(e) => e,
            },
        };
        self.connect_failed(&error.to_string(), Failure::Refused, ctx)
    }

    /// TCP is up: to a `wss://` server the TLS handshake comes next, within
    /// the connect timeout; a failed one counts as a failed connect.
    fn established(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        let server = &self.group(ctx.config).servers[usize::from(self.server)];
        let Some(tls) = &server.tls else {
            return self.connected(ctx);
        };
        match Tls::client(tls.config.clone(), tls.name.clone()) {
            Ok(session) => self.upstream_tls = Some(Box::new(session)),
            Err(e) => {
                return self.connect_failed(&format!("cannot start TLS: {e}"), Failure::Tls, ctx)
            }
        }
        self.arm(ctx, ctx.config.timeouts.connect);
        self.upstream_handshake(ctx)
    }

    fn upstream_handshake(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        let addr = self.server_addr(ctx);
        let (Some(tcp), Some(tls)) = (&self.upstream, &mut self.upstream_tls) else {
            return Outcome::Close;
        };
        match tls.handshake(tcp) {
            Ok(true) => {
                debug!(
                    "upstream {addr}: TLS {} (client {})",
                    tls.describe(),
                    self.client_addr
                );
                self.connected(ctx)
            }
            Ok(false) => Outcome::Continue,
            Err(e) => self.connect_failed(&format!("TLS handshake failed: {e}"), Failure::Tls, ctx),
        }
    }

    /// Moves on to the next server, or answers 502 (504 after a timeout)
    /// when none is left.
    fn connect_failed(&mut self, why: &str, failure: Failure, ctx: &mut Ctx<'_>) -> Outcome {
        ctx.metrics.connect_failures.add(1);
        if failure == Failure::Tls {
            ctx.metrics.tls_failed(TlsSide::Upstream);
        }
        let addr = self.server_addr(ctx);
        self.set_upstream(None, ctx.config);
        let group = self.group(ctx.config);
        group.connect_failed(usize::from(self.server), ctx.at);
        let Phase::Connect { attempt, .. } = &mut self.phase else {
            return Outcome::Close;
        };
        match attempt.next(group, ctx.at) {
            Some(next) => {
                warn!(
                    "upstream {addr}: connect failed: {why} (client {}); trying the next server",
                    self.client_addr
                );
                *attempt = next;
                self.connect(ctx)
            }
            None => {
                warn!(
                    "upstream {addr}: connect failed: {why} (client {})",
                    self.client_addr
                );
                let reject = match failure {
                    Failure::TimedOut => Reject::new(
                        Status::GatewayTimeout,
                        "upstream did not accept the connection in time",
                    ),
                    Failure::Refused => Reject::new(
                        Status::BadGateway,
                        "no upstream server accepted the connection",
                    ),
                    Failure::Tls => {
                        Reject::new(Status::BadGateway, "upstream TLS handshake failed")
                    }
                };
                self.answer(reject, ctx)
            }
        }
    }

    fn connected(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        self.group(ctx.config)
            .connect_succeeded(usize::from(self.server));
        let Phase::Connect {
            c2u, kind, held, ..
        } = mem::replace(&mut self.phase, Phase::Moving)
        else {
            unreachable!("connected outside Connect");
        };
        self.phase = Phase::Response {
            c2u,
            kind,
            partial: Vec::new(),
            interim: None,
            held,
        };
        self.arm(ctx, ctx.config.timeouts.response);
        self.pump(Dir::Up, false, ctx)
    }

    // ----- Response ------------------------------------------------------

    /// Reads and handles the response head. `closing`: the event reported
    /// EOF or an error on the upstream.
    fn read_response(&mut self, closing: bool, ctx: &mut Ctx<'_>) -> Outcome {
        let limit = ctx.config.max_head;
        loop {
            let Phase::Response {
                kind,
                partial,
                interim,
                ..
            } = &mut self.phase
            else {
                return Outcome::Continue;
            };
            if interim.is_some() {
                // Wait until the 1xx answers reach the client.
                return Outcome::Continue;
            }
            let Some(upstream) = &self.upstream else {
                return Outcome::Close;
            };
            let bufs = &mut ctx.relay.bufs;
            bufs.scratch.clear();
            // The head, its rewrite and the bytes after it share one buffer.
            let room = if partial.is_empty() {
                BUF_BYTES - REWRITE_SLACK
            } else {
                limit - partial.len()
            };
            let n = match Conn::new(upstream, &mut self.upstream_tls)
                .read(&mut bufs.scratch.space()[..room])
            {
                Ok(0) => {
                    return self.upstream_failed(
                        "closed the connection before answering",
                        Reject::new(
                            Status::BadGateway,
                            "upstream closed the connection before answering",
                        ),
                        ctx,
                    )
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Continue,
                Err(e) => {
                    return self.upstream_failed(
                        &format!("read failed before the response: {e}"),
                        Reject::new(Status::BadGateway, "upstream reset the connection"),
                        ctx,
                    )
                }
            };
            bufs.scratch.fill(n);
            // A short read emptied the socket, unless the event also said
            // EOF (or TLS holds it): that is still to be read, and nothing
            // will say so again.
            let drained = n < room && !closing && !ended(&self.upstream_tls);
            let from_scratch = partial.is_empty();
            if !from_scratch {
                partial.extend_from_slice(bufs.scratch.data());
            }
            let input: &[u8] = if from_scratch {
                bufs.scratch.data()
            } else {
                partial
            };
            let mut out = bufs.pool.take();
            let edits = match self.route {
                NONE => &NO_EDITS,
                route => &ctx.config.routes[usize::from(route)].response,
            };
            let answered = parse_response(input, limit, *kind, edits, &mut out);
            match answered {
                Answered::Partial { consumed } => {
                    if from_scratch {
                        partial.extend_from_slice(&bufs.scratch.data()[consumed..]);
                    } else {
                        partial.drain(..consumed);
                    }
                    if out.is_empty() {
                        bufs.pool.give(out);
                        continue;
                    }
                    *interim = Some(out);
                    return self.flush_interim(closing, ctx);
                }
                Answered::Tunnel { early } => {
                    self.answered(101, ctx);
                    ctx.metrics.tunnel_opened(&self.tunnel_names(ctx.config));
                    self.started = ctx.now;
                    debug!(
                        "client {}: tunnel open to upstream {}",
                        self.client_addr,
                        self.server_addr(ctx)
                    );
                    self.arm(ctx, ctx.config.timeouts.idle);
                    // The upstream's frames are not masked (RFC 6455 §5.1).
                    let mut frames = Frames::new(false);
                    frames.advance(&out.data()[out.len() - early..]);
                    let u2c = Flow::with_pending(Body::Frames(frames), out, drained);
                    let outcome = self.relay(u2c, true, ctx);
                    return match ctx.draining {
                        Some(deadline) if outcome != Outcome::Close => {
                            outcome.and(self.drain(deadline, Ending::Shutdown, ctx))
                        }
                        _ => outcome,
                    };
                }
                Answered::Final { body, status } => {
                    self.answered(status, ctx);
                    debug!(
                        "client {}: upstream {} answered {status}",
                        self.client_addr,
                        self.server_addr(ctx)
                    );
                    return self.relay(Flow::with_pending(body, out, drained), false, ctx);
                }
                Answered::Bad(reject) => {
                    bufs.pool.give(out);
                    return self.upstream_failed(reject.why, reject, ctx);
                }
            }
        }
    }

    /// Writes the 1xx answers held in `interim`, then resumes reading the
    /// response head.
    fn flush_interim(&mut self, closing: bool, ctx: &mut Ctx<'_>) -> Outcome {
        let Phase::Response {
            interim: Some(out), ..
        } = &mut self.phase
        else {
            return Outcome::Continue;
        };
        let mut client = Conn::new(&self.client, &mut self.client_tls);
        loop {
            match client.write(out.data()) {
                Ok(n) => {
                    out.consume(n);
                    if out.is_empty() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Continue,
                Err(e) => {
                    debug!("client {}: write failed: {e}", self.client_addr);
                    return Outcome::Close;
                }
            }
        }
        if let Phase::Response { interim, .. } = &mut self.phase {
            if let Some(buf) = interim.take() {
                ctx.relay.bufs.pool.give(buf);
            }
        }
        self.read_response(closing, ctx)
    }

    /// Enters `Relay` with `u2c` carrying the response head and what came
    /// with it.
    fn relay(&mut self, u2c: Flow, tunnel: bool, ctx: &mut Ctx<'_>) -> Outcome {
        let Phase::Response { mut c2u, held, .. } = mem::replace(&mut self.phase, Phase::Moving)
        else {
            unreachable!("relay outside Response");
        };
        let held = held.map(|b| *b);
        if tunnel {
            // Upgraded: what the client sent early goes first, then it is
            // read again.
            c2u.resume(held);
        } else if let Some(buf) = held {
            // Refused: the early bytes were never the upstream's to see.
            ctx.relay.bufs.pool.give(buf);
        }
        self.phase = Phase::Relay { c2u, u2c, tunnel };
        self.pump(Dir::Down, false, ctx)
    }

    fn upstream_failed(&mut self, why: &str, reject: Reject, ctx: &mut Ctx<'_>) -> Outcome {
        warn!(
            "upstream {}: {why} (client {})",
            self.server_addr(ctx),
            self.client_addr
        );
        self.answer(reject, ctx)
    }

    // ----- Relay ---------------------------------------------------------

    /// Runs one direction's relay, then settles what its progress means.
    fn pump(&mut self, dir: Dir, closing: bool, ctx: &mut Ctx<'_>) -> Outcome {
        let Some(upstream) = &self.upstream else {
            return Outcome::Close;
        };
        let (flow, tunnel) = match (&mut self.phase, dir) {
            (Phase::Response { c2u, .. }, Dir::Up) => (c2u, false),
            (Phase::Relay { c2u, tunnel, .. }, Dir::Up) => (c2u, *tunnel),
            (Phase::Relay { u2c, tunnel, .. }, Dir::Down) => (u2c, *tunnel),
            _ => return Outcome::Continue,
        };
        let mut client = Conn::new(&self.client, &mut self.client_tls);
        let mut upstream = Conn::new(upstream, &mut self.upstream_tls);
        let (src, dst) = match dir {
            Dir::Up => (&mut client, &mut upstream),
            Dir::Down => (&mut upstream, &mut client),
        };
        if closing {
            flow.source_closing();
        }
        match relay::pump(flow, src, dst, ctx.relay) {
            Ok(progress) => self.progressed(dir, progress, tunnel, ctx),
            Err(fault) => self.fault(dir, fault, ctx),
        }
    }

    fn progressed(
        &mut self,
        dir: Dir,
        progress: Progress,
        tunnel: bool,
        ctx: &mut Ctx<'_>,
    ) -> Outcome {
        if progress.moved > 0 {
            let bytes = match dir {
                Dir::Up => &ctx.metrics.bytes_up,
                Dir::Down => &ctx.metrics.bytes_down,
            };
            bytes.add(progress.moved as u64);
            if let Some(x) = &mut self.exchange {
                match dir {
                    Dir::Up => x.bytes_up += progress.moved as u64,
                    Dir::Down => x.bytes_down += progress.moved as u64,
                }
            }
            let timeouts = &ctx.config.timeouts;
            // A draining tunnel keeps its deadline.
            if !self.draining {
                self.arm(
                    ctx,
                    if tunnel {
                        timeouts.idle
                    } else {
                        timeouts.response
                    },
                );
            }
        }
        if let Phase::Relay { c2u, u2c, tunnel } = &self.phase {
            // The first direction to finish says who closed.
            let first = *tunnel
                && match dir {
                    Dir::Up => c2u.is_finished(),
                    Dir::Down => u2c.is_finished(),
                };
            if first {
                self.ended(Ending::Closed(log_side(dir.source())));
            }
            let Phase::Relay { c2u, u2c, tunnel } = &self.phase else {
                unreachable!("checked above");
            };
            if *tunnel && c2u.is_finished() && u2c.is_finished() {
                return self.close_when_flushed().unwrap_or(Outcome::Continue);
            }
            if !*tunnel && u2c.is_finished() {
                return self.finish_exchange(ctx);
            }
        }
        match progress.pumped {
            Pumped::Yield => Outcome::Yield(dir.source()),
            Pumped::Blocked | Pumped::Finished => Outcome::Continue,
        }
    }

    /// A plain exchange is over: close the upstream, shut the client's
    /// write side and linger.
    fn finish_exchange(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        self.ended(Ending::Complete);
        self.release(ctx.relay);
        self.set_upstream(None, ctx.config);
        self.linger(ctx)
    }

    fn fault(&mut self, dir: Dir, fault: Fault, ctx: &mut Ctx<'_>) -> Outcome {
        let (failed, e) = match fault {
            Fault::Source(e) => (dir.source(), e),
            Fault::Destination(e) => (dir.source().other(), e),
            Fault::Framing(e) => {
                let side = dir.source();
                if side == Side::Client && matches!(self.phase, Phase::Response { .. }) {
                    return self.answer(
                        Reject::new(Status::BadRequest, "malformed chunked body"),
                        ctx,
                    );
                }
                info!(
                    "{} {}: {e}; closing",
                    side.name(),
                    self.peer_name(side, ctx)
                );
                self.ended(Ending::Reset(log_side(side)));
                return Outcome::Close;
            }
        };
        self.ended(Ending::Reset(log_side(failed)));
        debug!(
            "{} {}: {e}; closing the pair (client {})",
            failed.name(),
            self.peer_name(failed, ctx),
            self.client_addr
        );
        // Pass a reset on: the other end learns the stream broke rather
        // than seeing a clean end.
        let survivor = match failed.other() {
            Side::Client => Some(&self.client),
            Side::Upstream => self.upstream.as_ref(),
        };
        if let Some(stream) = survivor {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
        Outcome::Close
    }

    fn peer_name(&self, side: Side, ctx: &Ctx<'_>) -> SocketAddr {
        match side {
            Side::Client => self.client_addr,
            Side::Upstream => self.server_addr(ctx),
        }
    }

    /// Ends a tunnel gracefully: each direction sends its peer a Close
    /// frame (1001, Going Away) at its next frame boundary and shuts its
    /// write side, then reads the peer to its end; whatever is left at
    /// `deadline` is closed. A pair that is not a tunnel (yet) is left
    /// alone: a handshake in flight finishes first.
    pub fn drain(&mut self, deadline: Tick, why: Ending, ctx: &mut Ctx<'_>) -> Outcome {
        let Phase::Relay {
            c2u,
            u2c,
            tunnel: true,
        } = &mut self.phase
        else {
            return Outcome::Continue;
        };
        if self.draining {
            return Outcome::Continue;
        }
        self.draining = true;
        let (up, down) = (c2u.drain(), u2c.drain());
        debug!(
            "client {}: draining the tunnel (to the upstream: {}, to the client: {})",
            self.client_addr,
            if up { "Close frame" } else { "ending" },
            if down { "Close frame" } else { "ending" },
        );
        self.ended(why);
        ctx.metrics.tunnels_drained.add(1);
        ctx.wheel.arm(ctx.key, &mut self.timer, deadline);
        let outcome = self.pump(Dir::Up, false, ctx);
        if outcome == Outcome::Close || !matches!(self.phase, Phase::Relay { .. }) {
            return outcome;
        }
        outcome.and(self.pump(Dir::Down, false, ctx))
    }

    /// A tunnel's site, route location, upstream group and server, by
    /// name: what a reload compares to find tunnels whose route or server
    /// it removed.
    pub fn tunnel_route<'c>(
        &self,
        config: &'c Config,
    ) -> Option<(&'c str, &'c str, &'c str, &'c str)> {
        if !matches!(self.phase, Phase::Relay { tunnel: true, .. }) {
            return None;
        }
        let names = self.tunnel_names(config);
        let site = &config.sites[usize::from(self.site)].name;
        Some((site, names.route, names.group, names.server))
    }

    /// A reload removed this tunnel's route or server and says to close it.
    pub fn close_removed(&mut self) -> Outcome {
        info!(
            "client {}: closing the tunnel: a reload removed its route or upstream server",
            self.client_addr
        );
        self.ended(Ending::Removed);
        Outcome::Close
    }

    // ----- Answer and Linger ---------------------------------------------

    /// Answers with the proxy's own error response, then lingers.
    fn answer(&mut self, reject: Reject, ctx: &mut Ctx<'_>) -> Outcome {
        self.answered(reject.status.code(), ctx);
        self.ended(Ending::Answered);
        if reject.status.code() < 500 {
            info!(
                "client {}: {} {}",
                self.client_addr,
                reject.status.code(),
                reject.why
            );
        }
        self.release(ctx.relay);
        self.set_upstream(None, ctx.config);
        let mut out = ctx.relay.bufs.pool.take();
        if answer::write(&mut out, reject, self.edits(ctx.config)).is_err() {
            debug_assert!(false, "an answer always fits a pooled buffer");
            ctx.relay.bufs.pool.give(out);
            return Outcome::Close;
        }
        self.phase = Phase::Answer { out };
        self.arm(ctx, ctx.config.timeouts.linger);
        self.write_answer(ctx)
    }

    fn write_answer(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        let Phase::Answer { out } = &mut self.phase else {
            return Outcome::Continue;
        };
        if let Some(unfinished) = write_out(Conn::new(&self.client, &mut self.client_tls), out) {
            return unfinished;
        }
        self.release(ctx.relay);
        self.linger(ctx)
    }

    /// Writes a static file's head, then its bytes with sendfile (through
    /// the scratch buffer under TLS).
    fn write_file(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        let Phase::File {
            out,
            file,
            offset,
            len,
        } = &mut self.phase
        else {
            return Outcome::Continue;
        };
        let mut client = Conn::new(&self.client, &mut self.client_tls);
        if let Some(unfinished) = write_out(client.reborrow(), out) {
            return unfinished;
        }
        let before = *offset;
        let sent = if client.is_tls() {
            let scratch = &mut ctx.relay.bufs.scratch;
            scratch.clear();
            files::send_through(|b| client.write(b), file, offset, *len, scratch.space())
        } else {
            files::send(&self.client, file, offset, *len)
        };
        match sent {
            Ok(true) => {}
            Ok(false) => {
                if *offset > before {
                    self.arm(ctx, ctx.config.timeouts.response);
                }
                return Outcome::Continue;
            }
            Err(e) => {
                debug!("client {}: sending a file failed: {e}", self.client_addr);
                return Outcome::Close;
            }
        }
        self.release(ctx.relay);
        self.linger(ctx)
    }

    /// Shuts the client's write side and reads until it closes, so the
    /// last answer is read rather than lost to a reset (a close with unread
    /// input sends RST).
    fn linger(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        Conn::new(&self.client, &mut self.client_tls).shutdown_write();
        self.phase = Phase::Linger;
        self.arm(ctx, ctx.config.timeouts.linger);
        self.discard(&mut ctx.relay.bufs.scratch)
    }

    fn discard(&mut self, scratch: &mut Buf) -> Outcome {
        let mut client = Conn::new(&self.client, &mut self.client_tls);
        for _ in 0..READS_PER_TURN {
            scratch.clear();
            match client.read(scratch.space()) {
                Ok(0) => return Outcome::Close,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Continue,
                Err(_) => return Outcome::Close,
            }
        }
        Outcome::Yield(Side::Client)
    }
}

/// An upgrade's head goes to the upstream at once, but nothing the client
/// sends after it does until the upstream answers 101: a client must wait
/// for the answer (RFC 6455 §4.1), and bytes behind an upgrade the upstream
/// refuses would otherwise reach it as a request of their own, past
/// routing and the forwarding fields (request smuggling). So the early
/// bytes of the first read are split off `out` into `held`, and the
/// client is not read again until the 101.
fn hold_early(kind: Kind, mut out: Buf, early: usize, pool: &mut Pool) -> (Buf, Option<Box<Buf>>) {
    if kind != Kind::Upgrade || early == 0 {
        return (out, None);
    }
    let early = early.min(out.len());
    let mut held = pool.take();
    let at = out.len() - early;
    // Both come from the pool: the early bytes fit.
    let _ = held.put(&out.data()[at..]);
    out.truncate(at);
    (out, Some(Box::new(held)))
}

/// Parses interim answers and the response head from `input`.
fn parse_response(
    input: &[u8],
    limit: usize,
    kind: Kind,
    edits: &ResponseEdits,
    out: &mut Buf,
) -> Answered {
    let mut at = 0;
    loop {
        match response::rewrite(&input[at..], limit, kind, edits, out) {
            Ok(None) => return Answered::Partial { consumed: at },
            Ok(Some(Response::Interim { head_len })) => {
                if out.put(&input[at..at + head_len]).is_err() {
                    return Answered::Bad(Reject::new(
                        Status::BadGateway,
                        "upstream response head too large",
                    ));
                }
                at += head_len;
            }
            Ok(Some(Response::Switching {
                head_len,
                rewritten,
            })) => {
                // The 101 (unless the route edited it into `out`) and any
                // frames after it go to the client as sent.
                let from = if rewritten { at + head_len } else { at };
                return match out.put(&input[from..]) {
                    Ok(()) => Answered::Tunnel {
                        early: input.len() - at - head_len,
                    },
                    Err(_) => Answered::Bad(Reject::new(
                        Status::BadGateway,
                        "upstream response head too large",
                    )),
                };
            }
            Ok(Some(Response::Final {
                head_len,
                status,
                mut body,
            })) => {
                let rest = &input[at + head_len..];
                let Ok(advance) = body.advance(rest) else {
                    return Answered::Bad(Reject::new(
                        Status::BadGateway,
                        "upstream sent a malformed chunked body",
                    ));
                };
                if out.put(&rest[..advance.used]).is_err() {
                    return Answered::Bad(Reject::new(
                        Status::BadGateway,
                        "upstream response head too large",
                    ));
                }
                return Answered::Final { body, status };
            }
            Err(reject) => return Answered::Bad(reject),
        }
    }
}

/// Writes `out` to the client until it is empty (`None`) or the socket is
/// full or broken (the outcome to return).
fn write_out(mut client: Conn<'_>, out: &mut Buf) -> Option<Outcome> {
    while !out.is_empty() {
        match client.write(out.data()) {
            Ok(n) => out.consume(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(Outcome::Continue),
            Err(_) => return Some(Outcome::Close),
        }
    }
    None
}

fn log_side(side: Side) -> access_log::Side {
    match side {
        Side::Client => access_log::Side::Client,
        Side::Upstream => access_log::Side::Upstream,
    }
}

/// The peer's EOF waits inside this TLS session.
fn ended(tls: &Option<Box<Tls>>) -> bool {
    tls.as_ref().is_some_and(|t| t.peer_ended())
}

/// A configuration index as stored in a pair.
fn index(i: usize) -> u16 {
    u16::try_from(i).expect("configuration indices fit in u16")
}

fn interest(read: bool, write: bool) -> Option<Interest> {
    match (read, write) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

fn update(
    registry: &Registry,
    stream: &mut TcpStream,
    token: mio::Token,
    current: &mut Option<Interest>,
    want: Option<Interest>,
) -> io::Result<()> {
    match (*current, want) {
        (a, b) if a == b => return Ok(()),
        (None, Some(w)) => registry.register(stream, token, w)?,
        (Some(_), Some(w)) => registry.reregister(stream, token, w)?,
        (Some(_), None) => registry.deregister(stream)?,
        (None, None) => {}
    }
    *current = want;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every open connection costs one slab slot: a `Pair` plus the slab
    /// entry's tag. Keep it from growing unnoticed (256 bytes on x86_64
    /// since TLS sessions, metrics stamps and the access log record were
    /// added, each behind a pointer; the idle-pair RSS target is 512 bytes
    /// all told).
    #[test]
    fn a_pair_stays_small() {
        let size = std::mem::size_of::<Pair>();
        assert!(size <= 256, "Pair grew to {size} bytes");
        assert!(
            std::mem::size_of::<Flow>() <= 64,
            "Flow grew to {} bytes",
            std::mem::size_of::<Flow>()
        );
    }
}
