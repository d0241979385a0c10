//! The Connect phase: a connection to the chosen upstream server (and its
//! TLS handshake, to a `wss://` server), moving on past servers that
//! refuse or time out until one accepts or none is left.

use super::end::End;
use super::pump::{self, Dir};
use super::{Core, Ctx, Failure, Ready, Step};
use crate::buffer::{Buf, Pool};
use crate::framing::body::Body;
use crate::handshake::answer::{Reject, Status};
use crate::handshake::request::Kind;
use crate::metrics::TlsSide;
use crate::relay::splice::PipePool;
use crate::relay::{Fault, Flow, Tls};
use crate::upstream::source::{self, Refused};
use crate::upstream::{Attempt, Group};
use crate::{debug, warn};

/// Connecting; the rewritten request head waits in `c2u`.
#[derive(Debug)]
pub(super) struct Connect {
    pub(super) c2u: Flow,
    pub(super) kind: Kind,
    attempt: Attempt,
    /// What an upgrading client sent after its head, kept back until the
    /// upstream answers 101.
    pub(super) held: Option<Box<Buf>>,
    /// The request may be sent again with the same effect.
    pub(super) idempotent: bool,
    pub(super) reuse: Reuse,
    /// The connection is one the worker kept from an earlier request.
    pub(super) reused: bool,
}

/// Whether the upstream connection may be one kept from an earlier
/// request, or kept for a later one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reuse {
    /// Neither: an upgrade, an HTTP/1.0 request (sent with
    /// `Connection: close`), or a group that keeps no connections.
    Never,
    /// A fresh connection, which may be kept afterwards: the retry of a
    /// request whose kept connection had closed.
    Fresh,
    /// A kept connection if there is one to the chosen server.
    Any,
}

impl Connect {
    pub(super) fn new(
        c2u: Flow,
        kind: Kind,
        attempt: Attempt,
        held: Option<Box<Buf>>,
        idempotent: bool,
        reuse: Reuse,
    ) -> Connect {
        Connect {
            c2u,
            kind,
            attempt,
            held,
            idempotent,
            reuse,
            reused: false,
        }
    }

    /// Sends `request` (a copy of one whose kept connection closed before
    /// answering) to `server` again, over a fresh connection.
    pub(super) fn retry(request: Buf, kind: Kind, server: usize) -> Connect {
        Connect::new(
            Flow::with_pending(Body::Empty, request, false),
            kind,
            Attempt::new(server),
            None,
            true,
            Reuse::Fresh,
        )
    }

    pub(super) fn release(mut self, pool: &mut Pool, pipes: &mut PipePool) {
        self.c2u.release(pool, pipes);
        if let Some(buf) = self.held {
            pool.give(*buf);
        }
    }
}

/// Connects to the current attempt's server, moving on past servers that
/// fail at once.
pub(super) fn start(c: &mut Connect, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    let group = &ctx.config.groups[usize::from(core.group)];
    loop {
        let server = c.attempt.server();
        core.server = super::index(server);
        if c.reuse == Reuse::Any && take_kept(c, core, ctx) {
            return connected(core, ctx);
        }
        let addr = group.servers[server].addr;
        let sources = group.sources.for_server(addr);
        let first = ctx.picker.sources.next(usize::from(core.group));
        match source::connect(addr, sources, first) {
            Ok(stream) => {
                group.opened(server);
                // Small frames go out at once; a WebSocket is interactive.
                let _ = stream.set_nodelay(true);
                // A nearby upstream (loopback, same host) has usually
                // accepted before connect returns: go on now rather than
                // after a trip through epoll.
                if group.servers[server].tls.is_some() {
                    let connected = stream.peer_addr().is_ok();
                    core.upstream = Some(End::new(stream));
                    if connected {
                        return established(c, core, ctx);
                    }
                } else {
                    core.upstream = Some(End::new(stream));
                    if let Some(step) = send_early(c, core, ctx) {
                        return step;
                    }
                }
                core.arm(ctx, ctx.config.timeouts.connect);
                return Step::Wait;
            }
            Err(Refused::Connect(e)) => {
                warn!(
                    "upstream {addr}: connect failed: {e} (client {})",
                    core.client_addr
                );
                group.connect_failed(server, ctx.at);
                ctx.metrics.connect_failures.add(1);
            }
            // The proxy's own limit: the server is not to blame, so its
            // health is left alone; the next server may still have ports.
            Err(refused) => said_unusable(group, addr, refused, ctx),
        }
        match c.attempt.next(group, ctx.at) {
            Some(next) => c.attempt = next,
            None => {
                return Step::Refuse(Reject::new(
                    Status::BadGateway,
                    "no upstream server accepted the connection",
                ))
            }
        }
    }
}

/// Sends the request head over a plain connection whose connect is under
/// way: the send is the test of whether it has finished (a connection
/// still being made takes nothing, `EAGAIN`; a refused one fails with the
/// connect's error), one system call fewer than asking first. `None`:
/// still connecting.
fn send_early(c: &mut Connect, core: &mut Core, ctx: &mut Ctx<'_>) -> Option<Step> {
    match pump::run(&mut c.c2u, Dir::Up, core, false, None, ctx) {
        Ok(pump::Ran { progress, surplus }) if progress.moved > 0 => {
            core.keep_ahead(surplus, ctx);
            pump::count(
                &progress,
                Dir::Up,
                core,
                Some(ctx.config.timeouts.response),
                ctx,
            );
            Some(connected(core, ctx))
        }
        Ok(pump::Ran { surplus, .. }) => {
            // Nothing went out, so nothing was read past the head either.
            debug_assert!(surplus.is_none());
            core.keep_ahead(surplus, ctx);
            None
        }
        Err(Fault::Destination(e)) => Some(failed(c, core, &e.to_string(), Failure::Refused, ctx)),
        Err(fault) => Some(pump::fault(Dir::Up, fault, core, true, ctx)),
    }
}

/// Says (at most every few seconds per worker) that no source address
/// could reach `addr`, and what to change.
fn said_unusable(group: &Group, addr: std::net::SocketAddr, refused: Refused, ctx: &mut Ctx<'_>) {
    let spread = &mut ctx.picker.sources;
    let more = |unsaid: u64| match unsaid {
        0 => String::new(),
        n => format!(" ({n} more since last said)"),
    };
    match refused {
        Refused::Exhausted => {
            ctx.metrics.source_ports_exhausted.add(1);
            let Some(unsaid) = spread.exhausted.occurred(ctx.at) else {
                return;
            };
            let sources = group.sources.for_server(addr);
            let from = match sources {
                [] => String::new(),
                _ => {
                    let list: Vec<String> = sources.iter().map(ToString::to_string).collect();
                    format!(" from {}", list.join(", "))
                }
            };
            warn!(
                "no free source port to {addr}{from}: {} or widen net.ipv4.ip_local_port_range{}",
                group.sources.fix(),
                more(unsaid)
            );
        }
        Refused::Bind(source, e) => {
            let Some(unsaid) = spread.unbound.occurred(ctx.at) else {
                return;
            };
            warn!(
                "cannot connect to {addr} from source address {source}: {e}: \
                 is it an address of this host?{}",
                more(unsaid)
            );
        }
        Refused::Connect(_) => {}
    }
}

/// The upstream socket is ready: the connect finished (TCP), or the TLS
/// handshake can go on.
pub(super) fn on_ready(c: &mut Connect, core: &mut Core, ready: Ready, ctx: &mut Ctx<'_>) -> Step {
    let Some(upstream) = &core.upstream else {
        return Step::Wait;
    };
    if upstream.is_tls() {
        return handshake(c, core, ctx);
    }
    if !ready.writable {
        return Step::Wait;
    }
    let Some(tcp) = upstream.tcp() else {
        return Step::Close;
    };
    let error = match tcp.take_error() {
        Ok(Some(e)) | Err(e) => e,
        Ok(None) => match tcp.peer_addr() {
            Ok(_) => return established(c, core, ctx),
            // A spurious wakeup: the connect is still in progress.
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return Step::Wait,
            Err(e) => e,
        },
    };
    failed(c, core, &error.to_string(), Failure::Refused, ctx)
}

/// The connect (or the TLS handshake after it) did not finish within the
/// connect timeout.
pub(super) fn timed_out(c: &mut Connect, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    let timeout = ctx.config.timeouts.connect;
    let what = if core.upstream.as_ref().is_some_and(End::is_tls) {
        "TLS handshake"
    } else {
        "connect"
    };
    failed(
        c,
        core,
        &format!("no answer to {what} within {timeout:?}"),
        Failure::TimedOut,
        ctx,
    )
}

/// TCP is up: to a `wss://` server the TLS handshake comes next, within
/// the connect timeout; a failed one counts as a failed connect.
fn established(c: &mut Connect, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    let server = &core.group(ctx.config).servers[usize::from(core.server)];
    let Some(tls) = &server.tls else {
        return connected(core, ctx);
    };
    let session = match Tls::client(tls.config.clone(), tls.name.clone()) {
        Ok(session) => session,
        Err(e) => {
            return failed(
                c,
                core,
                &format!("cannot start TLS: {e}"),
                Failure::Tls,
                ctx,
            )
        }
    };
    if let Some(upstream) = &mut core.upstream {
        upstream.set_tls(Some(session));
    }
    core.arm(ctx, ctx.config.timeouts.connect);
    handshake(c, core, ctx)
}

fn handshake(c: &mut Connect, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    let addr = core.server_addr(ctx.config);
    let Some(upstream) = &mut core.upstream else {
        return Step::Close;
    };
    match upstream.handshake() {
        Ok(true) => {
            debug!(
                "upstream {addr}: TLS {} (client {})",
                upstream.tls().map_or_else(String::new, Tls::describe),
                core.client_addr
            );
            connected(core, ctx)
        }
        Ok(false) => Step::Wait,
        Err(e) => failed(
            c,
            core,
            &format!("TLS handshake failed: {e}"),
            Failure::Tls,
            ctx,
        ),
    }
}

/// Moves on to the next server, or answers 502 (504 after a timeout) when
/// none is left.
fn failed(
    c: &mut Connect,
    core: &mut Core,
    why: &str,
    failure: Failure,
    ctx: &mut Ctx<'_>,
) -> Step {
    ctx.metrics.connect_failures.add(1);
    if failure == Failure::Tls {
        ctx.metrics.tls_failed(TlsSide::Upstream);
    }
    let addr = core.server_addr(ctx.config);
    core.close_upstream(ctx.config, ctx.kept);
    let group = core.group(ctx.config);
    group.connect_failed(usize::from(core.server), ctx.at);
    match c.attempt.next(group, ctx.at) {
        Some(next) => {
            warn!(
                "upstream {addr}: connect failed: {why} (client {}); trying the next server",
                core.client_addr
            );
            c.attempt = next;
            start(c, core, ctx)
        }
        None => {
            warn!(
                "upstream {addr}: connect failed: {why} (client {})",
                core.client_addr
            );
            Step::Refuse(match failure {
                Failure::TimedOut => Reject::new(
                    Status::GatewayTimeout,
                    "upstream did not accept the connection in time",
                ),
                Failure::Refused => Reject::new(
                    Status::BadGateway,
                    "no upstream server accepted the connection",
                ),
                Failure::Tls => Reject::new(Status::BadGateway, "upstream TLS handshake failed"),
            })
        }
    }
}

/// Takes a kept connection to the chosen server, if the worker has one.
fn take_kept(c: &mut Connect, core: &mut Core, ctx: &mut Ctx<'_>) -> bool {
    if ctx.stale {
        // The pool's groups are the current configuration's.
        return false;
    }
    let (group, server) = (usize::from(core.group), usize::from(core.server));
    // Still registered under its slot's token, watched for reading: the
    // head goes out at once, then the answer is what comes.
    let Some((end, slot)) = ctx.kept.take(group, server, ctx.key) else {
        return false;
    };
    ctx.config.groups[group].opened(server);
    core.kept_slot = slot;
    ctx.metrics.upstream_reused.add(1);
    core.upstream = Some(end);
    c.reused = true;
    true
}

/// Connected (and the TLS handshake done): the request goes up.
fn connected(core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    core.group(ctx.config)
        .connect_succeeded(usize::from(core.server));
    if let Some(upstream) = &mut core.upstream {
        upstream.uses = upstream.uses.saturating_add(1);
    }
    Step::Connected
}
