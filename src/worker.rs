//! One worker: a single-threaded mio reactor that owns its listening
//! sockets, a slab of pairs, a timer wheel and its buffers. Nothing here is
//! shared with other workers except the read-only configuration and the
//! stop flag, read only when the waker fires.
//!
//! The loop: poll (sleeping until the next timer slot at most), dispatch
//! events, re-run pairs that yielded, fire due timers, start the drains
//! whose turn came. Only the worker (this file and its `down.rs`) removes
//! pairs from the slab.
//!
//! A drain (SIGTERM): the worker takes the clients already queued on its
//! listeners, shuts the listeners (new clients are refused by the kernel),
//! lets handshakes in flight finish, and gives each tunnel its turn to be
//! drained (a Close frame each way, see [`Pair::drain`]) at moments spread
//! evenly over the drain window. It returns once its last pair is gone, or
//! at the deadline, closing whatever is left. When another process has
//! taken the listeners over (`--takeover`), or a service manager holds
//! them, the worker only lets go of its descriptors: their queues and the
//! open sockets are the other process's.
//!
//! A server that health checks mark down under `on_down = "drain"` has its
//! tunnels drained the same way, the rest of the worker running on
//! (`down.rs`).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Waker};
use slab::Slab;

use crate::access_log::{Ending, Sink};
use crate::config::{Config, Removed};
use crate::limits::Admission;
use crate::listener::Listening;
use crate::metrics::{RouteSet, Shard};
use crate::pair::{Ctx, Kept, Outcome, Owner, Pair, Ready};
use crate::relay::splice::PipePool;
use crate::relay::Resources;
use crate::shed::{Class, Entry, Shed};
use crate::timer::{self, Clock, Expired, Settled, Tick, Wheel};
use crate::token::{self, Side, Socket};
use crate::upstream::Picker;
use crate::{debug, error, info, warn};

pub use down::ServerDown;

/// Events taken from the kernel per poll.
const EVENTS_PER_POLL: usize = 1024;

/// How long accepting pauses after running out of file descriptors or
/// memory, so a full process does not spin on a listener it cannot serve.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Most connections a worker takes from one listener per turn (HAProxy's
/// `tune.maxaccept` default). With deferred accept each one is handled
/// inline, its head read and often its upstream connect started, at 10 µs
/// or more apiece: a flood of connections would otherwise keep the worker
/// in its accept loop, and every tunnel and handshake it holds would wait.
/// 64 keeps a turn's accepting under a millisecond or two, and is still
/// tens of thousands of accepts a second per worker.
const ACCEPTS_PER_TURN: usize = 64;

/// Most deadlines a worker acts on per turn. Connections opened together
/// time out together: a slowloris crowd's 3000 handshake timeouts fall in
/// one tick, each an answer written and a linger begun, tens of
/// milliseconds during which the worker's tunnels would wait. The rest
/// are acted on in the next turns, a few milliseconds late.
const TIMEOUTS_PER_TURN: usize = 128;

/// How often a worker closes kept upstream connections idle past their
/// group's `keepalive_timeout`.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How often a worker frees pipes and buffers that went unused for a whole
/// period: long enough that a busy worker keeps reusing them, short enough
/// that a burst of handshakes does not leave megabytes resident.
const TRIM_AFTER: Duration = Duration::from_secs(2);

/// What the main thread holds to control a worker.
#[derive(Debug)]
pub struct Control {
    pub stop: AtomicBool,
    /// Another process took the listeners: the admin endpoints stop here.
    pub handed_over: AtomicBool,
    /// A drain is under way: `/healthz` says so.
    pub draining: AtomicBool,
    /// Client connections held, for the connection limits.
    pub admission: Admission,
}

impl Control {
    pub fn new() -> Arc<Control> {
        Arc::new(Control {
            stop: AtomicBool::new(false),
            handed_over: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            admission: Admission::default(),
        })
    }
}

/// A handler's view of the worker, borrowing the fields a pair may use
/// (all but the slab, which holds the pair itself).
macro_rules! ctx {
    ($worker:ident, $key:expr, $gen:expr) => {{
        let gen = $gen;
        let current = gen == $worker.current;
        let generation = &mut $worker.gens[gen];
        Ctx {
            key: $key,
            now: $worker.now,
            at: $worker.at,
            config: &generation.config,
            relay: &mut $worker.relay,
            wheel: &mut $worker.wheel,
            picker: &mut generation.picker,
            metrics: &$worker.metrics,
            routes: &generation.routes,
            admission: &$worker.control.admission,
            draining: $worker.drain.as_ref().map(|d| d.until),
            stale: !current,
            registry: $worker.poll.registry(),
            kept: &mut $worker.kept,
            log: &mut $worker.access,
            shed: &mut $worker.shed,
        }
    }};
}

mod down;
mod drain;
mod h2;
mod session;

pub use drain::Drain;
use drain::Draining;

/// A configuration this worker serves with: the current one, or an older
/// one that pairs accepted before a reload still use (they hold indices
/// into it), with its round-robin state.
#[derive(Debug)]
struct Generation {
    config: Arc<Config>,
    picker: Picker,
    /// Its routes' metrics series in this worker's shard.
    routes: RouteSet,
    /// Pairs that use it; an old generation goes when its last pair does.
    pairs: usize,
}

/// A new configuration and this worker's sockets for its listeners, in
/// its order.
#[derive(Debug)]
pub struct Reload {
    pub config: Arc<Config>,
    pub listeners: Vec<Listening>,
}

/// What the main thread tells a worker, after waking it.
#[derive(Debug)]
pub enum Command {
    Reload(Reload),
    Drain(Drain),
    /// The health checker marked an upstream server down, and its group
    /// says to drain its tunnels.
    ServerDown(Arc<ServerDown>),
}

#[derive(Debug)]
pub struct Worker {
    id: usize,
    poll: Poll,
    listeners: Vec<Listening>,
    /// Accepting is paused until then (out of descriptors, or past the
    /// connection limits).
    accept_paused_until: Option<Instant>,
    /// The last pause was for the connection limits: said once, not at
    /// every re-check, and it lasts until a connection fits again.
    at_limit: bool,
    /// Pairs to close first at the connection limit, to make room.
    shed: Shed,
    /// Pairs are being shed to make room: said once, until a connection
    /// fits again without.
    shedding: bool,
    pairs: Slab<Pair>,
    clock: Clock,
    now: Tick,
    wheel: Wheel,
    /// Timer entries whose slot came round, not yet acted on: this turn's
    /// share, then the next turns'.
    expired: Vec<Expired>,
    relay: Resources,
    /// When idle pipes are next checked for closing.
    next_trim: Instant,
    /// When the current events were polled.
    at: Instant,
    /// The configurations in use; `current` takes new clients.
    gens: Slab<Generation>,
    current: usize,
    commands: mpsc::Receiver<Command>,
    control: Arc<Control>,
    drain: Option<Draining>,
    /// Pairs that used their turn with work left: (key, side to re-read).
    again: Vec<(usize, Side)>,
    /// Listeners to accept from this turn: readiness reported, or
    /// connections left queued after the last turn's share. An
    /// edge-triggered listener raises no new event for clients already in
    /// its queue, so the worker comes back to those by itself.
    to_accept: Vec<usize>,
    /// Tells pairs that reuse a slab slot apart in the timer wheel.
    serial: u32,
    /// This worker's counters; the admin listener reads them.
    metrics: Arc<Shard>,
    /// Access log lines waiting for the end of this turn.
    access: Sink,
    /// Idle upstream connections kept for later requests.
    kept: Kept,
    /// When kept connections are next checked for their idle timeout.
    next_sweep: Instant,
    /// Tunnels to servers marked down, waiting for their drain turn.
    down: down::DownDrains,
    /// HTTP/2 client connections; their streams are pairs.
    sessions: Slab<session::Session>,
    /// Sessions with frames to write at the end of the turn.
    dirty_sessions: Vec<usize>,
    /// Stream pairs waiting to write whose stream has room again.
    stream_wakes: Vec<usize>,
    /// Sessions with more to read after their turn's share.
    sessions_again: Vec<usize>,
}

impl Worker {
    /// Builds worker `id` around its listeners; the returned waker stops it
    /// once `control.stop` is set.
    pub fn new(
        id: usize,
        listeners: Vec<Listening>,
        config: Arc<Config>,
        control: Arc<Control>,
        metrics: Arc<Shard>,
        access: Sink,
        commands: mpsc::Receiver<Command>,
    ) -> io::Result<(Worker, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), token::WAKER)?);
        let mut listeners = listeners;
        for (i, listener) in listeners.iter_mut().enumerate() {
            poll.registry().register(
                &mut listener.socket,
                token::listener(i),
                Interest::READABLE,
            )?;
        }
        let clock = Clock::new();
        let mut gens = Slab::new();
        let current = gens.insert(Generation {
            picker: Picker::new(&config.groups, id),
            routes: metrics.route_set(&config),
            config: Arc::clone(&config),
            pairs: 0,
        });
        let worker = Worker {
            id,
            poll,
            listeners,
            accept_paused_until: None,
            at_limit: false,
            shed: Shed::default(),
            shedding: false,
            pairs: Slab::new(),
            clock,
            now: 0,
            wheel: Wheel::new(0),
            expired: Vec::new(),
            relay: Resources::new(config.relay, PipePool::new(config.pipes_per_worker)),
            next_trim: Instant::now() + TRIM_AFTER,
            at: Instant::now(),
            gens,
            current,
            commands,
            control,
            drain: None,
            again: Vec::new(),
            to_accept: Vec::new(),
            serial: 0,
            metrics,
            access,
            kept: Kept::default(),
            next_sweep: Instant::now() + SWEEP_EVERY,
            down: down::DownDrains::default(),
            sessions: Slab::new(),
            dirty_sessions: Vec::new(),
            stream_wakes: Vec::new(),
            sessions_again: Vec::new(),
        };
        Ok((worker, waker))
    }

    /// Runs until stopped. Open pairs are dropped (closed) on return.
    pub fn run(&mut self) -> io::Result<()> {
        crate::log::set_worker(self.id);
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            self.now = self.clock.tick_at(now);
            self.at = now;
            for event in events.iter() {
                match token::decode(event.token()) {
                    Socket::Waker => {
                        if self.control.stop.load(Ordering::Acquire) {
                            debug!("stopping with {} open pairs", self.pairs.len());
                            self.access.flush();
                            return Ok(());
                        }
                        while let Ok(command) = self.commands.try_recv() {
                            match command {
                                Command::Reload(reload) => self.switch(reload),
                                Command::Drain(drain) => self.start_draining(drain, now),
                                Command::ServerDown(down) => self.server_down(down, now),
                            }
                        }
                    }
                    Socket::Listener(i) => {
                        if !self.to_accept.contains(&i) {
                            self.to_accept.push(i);
                        }
                    }
                    Socket::Pair { key, side } => self.on_event(key, side, event),
                    Socket::Session(key) => self.on_session_event(key, event),
                    Socket::Kept(key) => match self.kept.owner(key) {
                        Owner::Pool => self.kept.on_event(key, &mut self.relay.bufs.scratch),
                        Owner::Pair(pair) => self.on_event(pair, Side::Upstream, event),
                        Owner::Gone => {}
                    },
                }
            }
            self.run_again();
            self.run_stream_wakes();
            self.run_sessions_again();
            // After the pairs' events: under a flood of new connections,
            // the connections already held are served first.
            self.accept_turn(now);
            self.expire();
            self.down_turns(now);
            if self.drain.is_some() && self.drain_turns(now) {
                self.access.flush();
                return Ok(());
            }
            let pairs = &self.pairs;
            self.shed
                .compact(pairs.len(), |e, class| still(pairs, e, class));
            self.sweep_kept(now);
            self.flush_sessions();
            self.metrics
                .pipes_in_use
                .set(self.relay.pipes.in_use() as u64);
            self.metrics.upstream_kept.set(self.kept.len() as u64);
            self.access.flush();
            self.resume_accepting(now);
            self.trim_idle(now);
        }
    }

    /// Sleep no longer than the next timer slot or accept pause; not at all
    /// when pairs, listeners or deadlines wait for another turn.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.again.is_empty()
            || !self.to_accept.is_empty()
            || !self.expired.is_empty()
            || !self.dirty_sessions.is_empty()
            || !self.stream_wakes.is_empty()
            || !self.sessions_again.is_empty()
        {
            return Some(Duration::ZERO);
        }
        let spare = self.relay.pipes.free_count() + self.relay.bufs.pool.free_count();
        let trim = (spare > 0).then(|| self.next_trim.saturating_duration_since(now));
        let accept = self
            .accept_paused_until
            .map(|until| until.saturating_duration_since(now));
        let drain = self.drain.as_ref().map(|d| {
            let next = d.queue.front().map_or(d.deadline, |&(at, _)| at);
            next.saturating_duration_since(now)
        });
        let sweep = (!self.kept.is_empty() || !self.sessions.is_empty())
            .then(|| self.next_sweep.saturating_duration_since(now));
        let down = self.down.next().map(|at| at.saturating_duration_since(now));
        [
            self.wheel.timeout(&self.clock, now),
            accept,
            trim,
            drain,
            sweep,
            down,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Closes kept upstream connections idle past their group's timeout.
    fn sweep_kept(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.kept.sweep(&self.gens[self.current].config.groups, now);
        self.sweep_sessions(now);
        self.next_sweep = now + SWEEP_EVERY;
    }

    /// Closes the client connections idle between two requests that
    /// `close` picks, at once: nothing is lost by it.
    fn close_idle(&mut self, close: impl Fn(&Pair) -> bool) {
        let idle: Vec<usize> = self
            .pairs
            .iter()
            .filter(|(_, pair)| pair.is_idle() && close(pair))
            .map(|(key, _)| key)
            .collect();
        for key in idle {
            self.settle(key, Outcome::Close);
        }
    }

    /// Frees pipes and buffers that sat unused for a whole trim period, so
    /// an idle proxy holds neither.
    fn trim_idle(&mut self, now: Instant) {
        if now < self.next_trim {
            return;
        }
        self.relay.pipes.trim_idle();
        if self.relay.bufs.pool.trim_idle() > 0 {
            crate::sys::release_free_memory();
        }
        self.next_trim = now + TRIM_AFTER;
    }

    /// Takes this turn's share of new connections from each listener that
    /// has some; a listener that may have more stays on the list.
    fn accept_turn(&mut self, now: Instant) {
        let mut ready = std::mem::take(&mut self.to_accept);
        ready.retain(|&i| self.accept(i, ACCEPTS_PER_TURN, now) == Accepted::Some);
        // Nothing adds to the list while accepting.
        debug_assert!(self.to_accept.is_empty());
        self.to_accept = ready;
    }

    /// Accepts up to `most` connections from listener `index`: whether
    /// they were all there were ([`Accepted::All`]) or more may wait.
    fn accept(&mut self, index: usize, most: usize, now: Instant) -> Accepted {
        if self.accept_paused_until.is_some() {
            // Resuming re-registers the listeners, which reports what waits.
            return Accepted::All;
        }
        for _ in 0..most {
            let limits = &self.gens[self.current].config.limits;
            let (total, held) = (self.control.admission.total(), self.pairs.len());
            let full = if self.at_limit {
                limits.full(total, held)
            } else {
                limits.paused(total, held)
            };
            if full && !self.can_make_room() {
                if !self.at_limit {
                    warn!(
                        "connection limits reached ({} connections in the process, {} here); \
                         new clients wait in the kernel's queue",
                        self.control.admission.total(),
                        self.pairs.len()
                    );
                    self.at_limit = true;
                }
                self.pause_accepting(now);
                return Accepted::All;
            }
            self.at_limit = false;
            // An event of this batch may name a listener a drain or a
            // reload has since taken away.
            let Some(listener) = self.listeners.get(index) else {
                return Accepted::All;
            };
            match listener.socket.accept() {
                Ok((stream, addr)) => self.admit(stream, addr, listener.index),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::All,
                Err(e) if is_transient_accept_error(&e) => continue,
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays
                    // queued in the kernel. Stop watching the listeners for
                    // a moment instead of waking for it again and again.
                    warn!("accept failed: {e}; pausing accepts for {ACCEPT_PAUSE:?}");
                    self.pause_accepting(now);
                    return Accepted::All;
                }
            }
        }
        Accepted::Some
    }

    fn pause_accepting(&mut self, now: Instant) {
        self.to_accept.clear();
        for listener in &mut self.listeners {
            if let Err(e) = self.poll.registry().deregister(&mut listener.socket) {
                error!("cannot pause listener: {e}");
            }
        }
        self.accept_paused_until = Some(now + ACCEPT_PAUSE);
    }

    fn resume_accepting(&mut self, now: Instant) {
        if self.accept_paused_until.is_none_or(|until| until > now) {
            return;
        }
        self.accept_paused_until = None;
        // Registering reports connections already queued, so none is missed.
        for (i, listener) in self.listeners.iter_mut().enumerate() {
            if let Err(e) = self.poll.registry().register(
                &mut listener.socket,
                token::listener(i),
                Interest::READABLE,
            ) {
                error!("cannot resume listener: {e}");
            }
        }
    }

    /// Whether closing one of this worker's pairs would make room for a
    /// new client: a pair to shed is at hand, and the limits are reached
    /// but no further. Past them (clients refused there still count until
    /// they close) the next client is refused either way, and shedding a
    /// pair would gain it nothing.
    fn can_make_room(&mut self) -> bool {
        let limits = &self.gens[self.current].config.limits;
        let (total, held) = (self.control.admission.total(), self.pairs.len());
        if limits.full(total.saturating_sub(1), held.saturating_sub(1)) {
            return false;
        }
        let pairs = &self.pairs;
        self.shed.peek(|e, class| still(pairs, e, class)).is_some()
    }

    /// At the connection limit, closes the first of this worker's pairs
    /// to shed (see `shed`), if that makes room for a new client: the
    /// limits are the process's, but a worker can only close its own
    /// pairs.
    fn make_room(&mut self) {
        let limits = &self.gens[self.current].config.limits;
        if !limits.full(self.control.admission.total(), self.pairs.len()) {
            self.shedding = false;
            return;
        }
        if !self.can_make_room() {
            return;
        }
        let pairs = &self.pairs;
        let Some((entry, class)) = self.shed.pick(|e, class| still(pairs, e, class)) else {
            return;
        };
        if !self.shedding {
            warn!(
                "connection limits reached ({} connections in the process, {} here); \
                 closing idle connections and unfinished request heads to make room",
                self.control.admission.total(),
                self.pairs.len()
            );
            self.shedding = true;
        }
        self.metrics.shed(class);
        let outcome = self.pairs[entry.key].shed(class);
        self.settle(entry.key, outcome);
    }

    fn admit(&mut self, stream: TcpStream, addr: SocketAddr, listener: usize) {
        self.make_room();
        self.serial = self.serial.wrapping_add(1);
        // Behind a PROXY protocol listener the address is the balancer's:
        // the client's is counted once its header says who it is.
        let config = &self.gens[self.current].config;
        let known_ip = (!config.listeners[listener].proxy_protocol).then(|| addr.ip());
        self.metrics.accepted.add(1);
        let admitted = self
            .control
            .admission
            .admit(&config.limits, self.pairs.len(), known_ip);
        let entry = self.pairs.vacant_entry();
        let key = entry.key();
        debug!("client {addr}: accepted as pair {key}");
        let gen = self.current;
        self.gens[gen].pairs += 1;
        let pair = entry.insert(Pair::new(
            stream,
            addr,
            listener,
            self.serial,
            gen,
            known_ip.is_some(),
        ));
        let mut ctx = ctx!(self, key, gen);
        let outcome = match admitted {
            Ok(()) => pair.start(&mut ctx),
            Err(reject) => pair.refuse(reject, &mut ctx),
        };
        self.settle(key, outcome);
    }

    /// A socket event for pair `key`, unless the pair no longer watches
    /// that side (see [`crate::pair::Pair::watches`]).
    fn on_event(&mut self, key: usize, side: Side, event: &mio::event::Event) {
        if self.pairs.get(key).is_some_and(|pair| pair.watches(side)) {
            self.dispatch(key, side, Ready::from_event(event));
        }
    }

    fn dispatch(&mut self, key: usize, side: Side, ready: Ready) {
        // An event can outlive its pair within one batch; the slot may even
        // hold a newer pair, which treats the spurious readiness as a hint.
        let Some(pair) = self.pairs.get_mut(key) else {
            return;
        };
        let mut ctx = ctx!(self, key, pair.gen());
        let outcome = pair.on_ready(side, ready, &mut ctx);
        self.settle(key, outcome);
    }

    fn run_again(&mut self) {
        let mut again = std::mem::take(&mut self.again);
        for (key, side) in again.drain(..) {
            self.dispatch(key, side, Ready::READABLE);
        }
        if self.again.is_empty() {
            // Keep the allocation for the next round.
            self.again = again;
        }
    }

    /// Acts on up to [`TIMEOUTS_PER_TURN`] pairs whose deadline passed;
    /// the rest stay queued for the next turn.
    fn expire(&mut self) {
        self.wheel.advance(self.now, &mut self.expired);
        let mut expired = std::mem::take(&mut self.expired);
        let (mut seen, mut acted) = (0, 0);
        for e in &expired {
            if acted == TIMEOUTS_PER_TURN {
                break;
            }
            seen += 1;
            let Some(pair) = self.pairs.get_mut(e.key) else {
                continue;
            };
            if self.wheel.settle(e, pair.timer(), self.now) != Settled::Due {
                continue;
            }
            acted += 1;
            let mut ctx = ctx!(self, e.key, pair.gen());
            let outcome = pair.on_timeout(&mut ctx);
            self.settle(e.key, outcome);
        }
        expired.drain(..seen);
        // Nothing adds to the list while acting on it.
        debug_assert!(self.expired.is_empty());
        self.expired = expired;
    }

    /// Applies a handler's outcome: re-derive interest, queue another turn,
    /// or remove the pair.
    fn settle(&mut self, key: usize, outcome: Outcome) {
        if outcome == Outcome::Http2 {
            self.take_h2(key);
            return;
        }
        let stream = self.pairs[key].is_stream();
        if stream {
            self.sync_stream(key);
        }
        if outcome != Outcome::Close {
            let pair = &mut self.pairs[key];
            match pair.sync_interest(self.poll.registry(), key) {
                Ok(()) => {
                    if let Outcome::Yield(side) = outcome {
                        self.again.push((key, side));
                    }
                    return;
                }
                Err(e) => error!("cannot watch pair {key}'s sockets: {e}; closing it"),
            }
        }
        let mut pair = self.pairs.remove(key);
        let gen = pair.gen();
        let config = &self.gens[gen].config;
        pair.close(
            &mut self.relay,
            config,
            &self.gens[gen].routes,
            &self.metrics,
            self.now,
            &mut self.access,
            &mut self.kept,
        );
        if !stream {
            // A stream's connection holds its client's place in the limits.
            self.control
                .admission
                .release(&config.limits, pair.counted_ip());
        }
        self.gens[gen].pairs -= 1;
        if self.gens[gen].pairs == 0 && gen != self.current {
            self.gens.remove(gen);
        }
        if stream {
            self.stream_closed(pair);
        }
    }

    /// After a reload: drains or closes the tunnels whose route or upstream
    /// server the new configuration no longer has, as it says.
    fn end_removed(&mut self) {
        let config = Arc::clone(&self.gens[self.current].config);
        if config.drain.removed == Removed::Keep {
            return;
        }
        let removed: Vec<usize> = self
            .pairs
            .iter()
            .filter(|(_, pair)| pair.gen() != self.current)
            .filter(|(_, pair)| {
                pair.tunnel_route(&self.gens[pair.gen()].config)
                    .is_some_and(|(site, route, group, server)| {
                        !config.still_routes(site, route, group, server)
                    })
            })
            .map(|(key, _)| key)
            .collect();
        if removed.is_empty() {
            return;
        }
        info!(
            "reload removed the route or server of {} tunnels: {}",
            removed.len(),
            match config.drain.removed {
                Removed::Drain => "draining them",
                _ => "closing them",
            }
        );
        let until = timer::deadline(self.now, config.drain.timeout);
        for key in removed {
            let pair = &mut self.pairs[key];
            let outcome = match config.drain.removed {
                Removed::Drain => {
                    let mut ctx = ctx!(self, key, pair.gen());
                    pair.drain(until, Ending::Removed, &mut ctx)
                }
                _ => pair.close_removed(),
            };
            self.settle(key, outcome);
        }
    }

    /// Serves new clients with a reloaded configuration and its listeners;
    /// pairs already open keep the configuration they started with.
    fn switch(&mut self, reload: Reload) {
        if self.drain.is_some() {
            // Stopping: no listener comes back.
            return;
        }
        let paused = self.accept_paused_until.is_some();
        for listener in &mut self.listeners {
            if !paused {
                let _ = self.poll.registry().deregister(&mut listener.socket);
            }
        }
        self.listeners = reload.listeners;
        // Registering the new listeners reports what waits on them.
        self.to_accept.clear();
        if !paused {
            for (i, listener) in self.listeners.iter_mut().enumerate() {
                if let Err(e) = self.poll.registry().register(
                    &mut listener.socket,
                    token::listener(i),
                    Interest::READABLE,
                ) {
                    error!("cannot watch a reloaded listener: {e}");
                }
            }
        }
        let old = self.current;
        // The pool's group indices are the old configuration's.
        self.kept.clear();
        self.current = self.gens.insert(Generation {
            picker: Picker::new(&reload.config.groups, self.id),
            routes: self.metrics.route_set(&reload.config),
            config: reload.config,
            pairs: 0,
        });
        if self.gens[old].pairs == 0 {
            self.gens.remove(old);
        }
        debug!(
            "configuration reloaded; {} open pairs keep older ones ({} in use)",
            self.pairs.len(),
            self.gens.len()
        );
        self.end_removed();
        // Connections kept open between requests belong to the old
        // configuration: close them, as an exchange in flight will be.
        let current = self.current;
        self.close_idle(|pair| pair.gen() != current);
        // HTTP/2 connections too: their streams in flight finish, new ones
        // come on a new connection.
        self.retire_sessions(Some(current));
    }
}

/// Whether a shedding candidate is still the pair it was queued as, and
/// still in that state.
fn still(pairs: &Slab<Pair>, entry: Entry, class: Class) -> bool {
    pairs
        .get(entry.key)
        .is_some_and(|pair| pair.shed_stamp() == entry.stamp && pair.sheddable() == Some(class))
}

/// What one listener's accepting left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Accepted {
    /// Its queue is empty (or accepting paused): its next event says when
    /// there are more.
    All,
    /// The turn's share was taken; more may be queued.
    Some,
}

/// Accept errors about one connection (it was aborted before we took it),
/// not about the process.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) || matches!(e.raw_os_error(), Some(libc::EPROTO | libc::EPERM))
}
