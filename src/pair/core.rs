//! What a pair keeps across phases: both ends, who the client is, the
//! route and upstream server in use, the deadline, the access log record,
//! and the client connection's keep-alive state; with the bookkeeping every
//! phase shares.

use std::net::SocketAddr;
use std::time::Duration;

use super::end::End;
use super::pool::Kept;
use super::{Ctx, NONE, NO_EDITS};
use crate::access_log::{self, Ending, Sink};
use crate::buffer::Buf;
use crate::config::Config;
use crate::handshake::edits::ResponseEdits;
use crate::handshake::fields::Persistence;
use crate::handshake::request::{Kind, Peer};
use crate::metrics::{TlsSide, TunnelNames};
use crate::shed::{Class, Shed};
use crate::timer::{self, Timer};
use crate::token::{self, Side};

/// No kept slot.
pub(super) const NO_SLOT: u32 = u32::MAX;
use crate::upstream::Group;

/// What a pair keeps across phases.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) client: End,
    /// The upstream connection, from Connect on.
    pub(super) upstream: Option<End>,
    pub(super) client_addr: SocketAddr,
    /// Which configured listener accepted the client.
    pub(super) listener: u16,
    /// The site and route serving the request, and the upstream group and
    /// server in use or last tried; [`NONE`] until chosen.
    pub(super) site: u16,
    pub(super) route: u16,
    pub(super) group: u16,
    pub(super) server: u16,
    pub(super) timer: Timer,
    /// When the handshake began ([`Shard::stamp`]); once a tunnel, the
    /// tick it opened.
    pub(super) started: u32,
    /// What the access log will say, while it is on.
    pub(super) record: Option<Box<access_log::Exchange>>,
    /// The worker's configuration generation this pair uses.
    pub(super) gen: u16,
    /// Requests read on this connection, saturating.
    pub(super) served: u16,
    /// What the current exchange's answer says of the connection: closed
    /// after it, or kept for the next request.
    pub(super) persistence: Persistence,
    /// The worker's pool slot of the upstream connection while it is a
    /// kept one ([`NO_SLOT`] otherwise): its events come under that
    /// slot's token.
    pub(super) kept_slot: u32,
    /// A readable event came for the client since a read last found its
    /// socket empty: the next request may be there. Lets a kept
    /// connection's next request wait for its event instead of a read that
    /// would find nothing (one system call per request).
    pub(super) client_readable: bool,
    /// The stamp of this pair's latest entry in the worker's shedding
    /// queues (0: none): its earlier entries are stale.
    pub(super) shed_stamp: u16,
    /// What the current request asks for: a HEAD's answers carry no body,
    /// the proxy's own included (a body would be read as the next answer),
    /// and an upgrade's answer is counted for its route. A plain GET's
    /// until a request head is parsed.
    pub(super) kind: Kind,
    /// Bytes of the next request(s), read along with the current one
    /// (pipelining).
    pub(super) ahead: Option<Box<Buf>>,
    /// The connection limits counted `client_addr`'s address (not yet,
    /// while a PROXY protocol header has not named the client).
    pub(super) ip_counted: bool,
}

impl Core {
    /// Stamps the handshake's start and opens the access log record.
    pub(super) fn begin(&mut self, ctx: &Ctx<'_>) {
        self.started = ctx.metrics.stamp(ctx.at);
        if ctx.config.access_log != access_log::Destination::Off {
            self.record = Some(Box::default());
        }
    }

    /// Counts the answer the client got, for the metrics (its route's too,
    /// if it answers an upgrade) and the log.
    pub(super) fn answered(&mut self, code: u16, ctx: &Ctx<'_>) {
        let us = ctx.metrics.answered(code, self.started, ctx.at);
        if self.kind == Kind::Upgrade {
            ctx.routes.upgrade_answered(self.route, code);
        }
        if let Some(x) = &mut self.record {
            x.status = code;
            x.handshake_us = us;
        }
    }

    /// Writes the exchange's access log line, if it has one, and readies
    /// the record for the next exchange. `tunnel`: how long it lived, if
    /// it was one.
    pub(super) fn log_exchange(
        &mut self,
        config: &Config,
        tunnel: Option<Duration>,
        log: &mut Sink,
    ) {
        let Some(x) = self.record.as_mut().filter(|x| x.status != 0) else {
            return;
        };
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
        log.record(&line, x);
        **x = access_log::Exchange::default();
    }

    /// What an answer written now says of the connection: what the
    /// exchange allows, unless the worker began draining or a reload
    /// replaced the pair's configuration since the request came.
    pub(super) fn persistence_now(&self, ctx: &Ctx<'_>) -> Persistence {
        if ctx.winding_down() {
            Persistence::Close
        } else {
            self.persistence
        }
    }

    /// Keeps `bytes`, read past the end of the current request, as the
    /// start of the next.
    pub(super) fn keep_ahead(&mut self, bytes: Option<Box<Buf>>, ctx: &mut Ctx<'_>) {
        let Some(bytes) = bytes else {
            return;
        };
        // Either the request's early bytes held its whole body (and the
        // rest is ahead already), or the relay read past it: not both.
        debug_assert!(self.ahead.is_none(), "two sets of bytes ahead");
        if let Some(old) = self.ahead.replace(bytes) {
            ctx.relay.bufs.pool.give(*old);
        }
    }

    /// Notes who ended the exchange (the first note stands).
    pub(super) fn ended(&mut self, ending: Ending) {
        if let Some(x) = &mut self.record {
            x.end(ending);
        }
    }

    pub(super) fn arm(&mut self, ctx: &mut Ctx<'_>, after: Duration) {
        ctx.wheel
            .arm(ctx.key, &mut self.timer, timer::deadline(ctx.now, after));
    }

    pub(super) fn group<'c>(&self, config: &'c Config) -> &'c Group {
        &config.groups[usize::from(self.group)]
    }

    pub(super) fn server_addr(&self, config: &Config) -> SocketAddr {
        self.group(config).servers[usize::from(self.server)].addr
    }

    pub(super) fn peer_name(&self, side: Side, config: &Config) -> SocketAddr {
        match side {
            Side::Client => self.client_addr,
            Side::Upstream => self.server_addr(config),
        }
    }

    /// Closes the upstream connection, if any (dropping a socket also
    /// removes it from the poll), and gives its slot back if it was a kept
    /// one.
    pub(super) fn close_upstream(&mut self, config: &Config, kept: &mut Kept) {
        if self.upstream.take().is_some() {
            self.group(config).closed(usize::from(self.server));
        }
        if let Some(slot) = self.take_kept_slot() {
            kept.release(slot);
        }
    }

    /// The upstream socket's token: its kept slot's while it is a kept
    /// connection, else the pair's own.
    pub(super) fn upstream_token(&self, key: usize) -> mio::Token {
        match self.kept_slot {
            NO_SLOT => token::pair(key, Side::Upstream),
            slot => token::kept(slot as usize),
        }
    }

    /// The kept slot the upstream connection came from, if any, now
    /// forgotten.
    /// Queues the pair (slab key `key`) for shedding as `class` (see
    /// [`crate::shed`]).
    pub(super) fn queue_shed(&mut self, shed: &mut Shed, key: usize, class: Class) {
        self.shed_stamp = shed.push(class, key);
    }

    pub(super) fn take_kept_slot(&mut self) -> Option<u32> {
        let slot = std::mem::replace(&mut self.kept_slot, NO_SLOT);
        (slot != NO_SLOT).then_some(slot)
    }

    /// The fields the proxy's own answers carry: the route's, else the
    /// site's.
    pub(super) fn edits<'c>(&self, config: &'c Config) -> &'c ResponseEdits {
        if self.route != NONE {
            &config.routes[usize::from(self.route)].response
        } else if self.site != NONE {
            &config.sites[usize::from(self.site)].response
        } else {
            &NO_EDITS
        }
    }

    /// What the request rewrite records about the client.
    pub(super) fn peer(&self) -> Peer {
        Peer {
            ip: self.client_addr.ip(),
            scheme: if !self.client.is_plain_socket() {
                "https"
            } else {
                "http"
            },
        }
    }

    /// The names a tunnel's server gauge goes by.
    pub(super) fn tunnel_names<'c>(&self, config: &'c Config) -> TunnelNames<'c> {
        let group = &config.groups[usize::from(self.group)];
        TunnelNames {
            group: &group.name,
            server: &group.servers[usize::from(self.server)].name,
        }
    }

    /// The client's TLS handshake failed, or the client spoke plain HTTP
    /// to a TLS port: counted, and the session dropped.
    pub(super) fn client_tls_failed(&mut self, ctx: &Ctx<'_>) {
        ctx.metrics.tls_failed(TlsSide::Client);
        self.client.set_tls(None);
    }
}
