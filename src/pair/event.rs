//! The contract between the worker and a pair: what a handler may use of
//! the worker ([`Ctx`]), what a socket event reported ([`Ready`]), and what
//! the worker does with the pair afterwards ([`Outcome`]).

use std::time::Instant;

use mio::Registry;

use super::pool::Kept;
use crate::access_log::Sink;
use crate::config::Config;
use crate::limits::Admission;
use crate::metrics::{RouteSet, Shard};
use crate::relay::Resources;
use crate::shed::Shed;
use crate::timer::{Tick, Wheel};
use crate::token::Side;
use crate::upstream::Picker;

/// The worker state a handler may use.
#[derive(Debug)]
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
    /// The series of the routes of `config`, by route index: a pair's
    /// route counters are `routes`' entry at its `Core::route`.
    pub routes: &'a RouteSet,
    pub admission: &'a Admission,
    /// The worker is draining until then: a tunnel that opens now is
    /// drained at once, and a connection closes after its exchange.
    pub draining: Option<Tick>,
    /// A reload replaced the pair's configuration: its exchange finishes,
    /// then the connection closes.
    pub stale: bool,
    /// Where the pair's sockets are registered.
    pub registry: &'a Registry,
    /// The worker's kept upstream connections. Only pairs under the
    /// current configuration take and give back (the pool's group indices
    /// are its: see `stale`); every pair gives back the slot of a kept
    /// connection it closes.
    pub kept: &'a mut Kept,
    /// The worker's access log lines.
    pub log: &'a mut Sink,
    /// The worker's candidates for shedding at the connection limit: a
    /// pair queues itself when it starts a request head or goes idle.
    pub shed: &'a mut Shed,
}

impl Ctx<'_> {
    /// The worker is draining, or a reload replaced the pair's
    /// configuration: a connection closes after its exchange.
    pub fn winding_down(&self) -> bool {
        self.draining.is_some() || self.stale
    }
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
    /// The client's TLS handshake chose HTTP/2: the worker's HTTP/2
    /// connection takes the socket over (see [`super::Pair::into_h2`]).
    Http2,
}

impl Outcome {
    /// Combines the outcomes of two steps of one event.
    pub fn and(self, next: Outcome) -> Outcome {
        match (self, next) {
            (Outcome::Close, _) | (_, Outcome::Close) => Outcome::Close,
            (Outcome::Http2, _) | (_, Outcome::Http2) => Outcome::Http2,
            (Outcome::Yield(side), _) | (_, Outcome::Yield(side)) => Outcome::Yield(side),
            _ => Outcome::Continue,
        }
    }
}
