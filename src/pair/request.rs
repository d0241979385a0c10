//! The Preface and Request phases: the PROXY protocol header a balancer
//! sends first, then the client's request head, read and handed to
//! [`dispatch`], whose plan becomes the next phase.

use std::io;

use super::connect::Reuse;
use super::head::{Fill, HeadReader};
use super::{answer, connect, index, Core, Ctx, Phase, Step, NONE};
use crate::buffer::{Buf, Pool};
use crate::dispatch::{self, Action, Inputs};
use crate::framing::body::Body;
use crate::handshake::answer::{Reject, Status};
use crate::handshake::fields::Persistence;
use crate::handshake::request::{self, Kind, MAX_HEADERS};
use crate::metrics::TlsSide;
use crate::proxy_protocol::{self, Origin};
use crate::relay::{conn, Flow, Got};
use crate::shed::Class;
use crate::timer;
use crate::{debug, info};

/// Reading the request head.
#[derive(Debug, Default)]
pub(super) struct Request {
    head: HeadReader,
    /// Kept open after an exchange, with no byte of the next request yet:
    /// holds no buffer, and a drain or a reload closes it at once.
    idle: bool,
}

/// Most body bytes the proxy reads and drops after answering a request
/// itself (a 404 to a POST, say) to keep the connection for the next
/// request; a longer body closes the connection after the answer.
pub(super) const DISCARD_LIMIT: u64 = 1 << 20;

impl Request {
    /// The request after an exchange: `ahead` holds what the client sent
    /// of it already, if anything.
    pub(super) fn after(ahead: Option<Box<Buf>>) -> Request {
        Request {
            idle: ahead.is_none(),
            head: HeadReader::seeded(ahead),
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        self.idle
    }

    pub(super) fn release(mut self, pool: &mut Pool) {
        self.head.clear(pool);
    }
}

/// A request's first turn: after an exchange, the keep-alive timeout runs
/// until its first byte (the handshake timeout once some came along);
/// the first request's runs since the accept. A connection that goes idle,
/// or whose next head (sent along with the last request) is unfinished,
/// queues itself for shedding; so does [`read`] when an idle one's next
/// head begins, and `Pair::start` for a first head.
pub(super) fn start(req: &mut Request, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    // Until its head is parsed, the request is nothing the last one was:
    // a 400 or 408 to it is no upgrade's answer, and has a body.
    core.kind = Kind::Plain { head: false };
    if core.served == 0 {
        return read(req, core, false, ctx);
    }
    if req.idle {
        ctx.metrics.keepalive_idle.add(1);
        core.queue_shed(ctx.shed, ctx.key, Class::Idle);
        core.arm(ctx, ctx.config.keepalive.timeout);
        // The socket was empty at the last read and no event said
        // otherwise since (the client stays registered for reading
        // through an exchange): the next request raises its own
        // event. A TLS session may hold it already, unannounced.
        if !core.client_readable && core.client.is_plain_socket() {
            return Step::Wait;
        }
        return read(req, core, false, ctx);
    }
    core.arm(ctx, ctx.config.timeouts.handshake);
    let step = read(req, core, false, ctx);
    if matches!(step, Step::Wait | Step::Yield(_)) {
        core.queue_shed(ctx.shed, ctx.key, Class::Head);
    }
    step
}

/// What the request said beyond its plan, for carrying the plan out.
struct Read {
    /// The read that brought the head's end was short: the socket is empty.
    drained: bool,
    /// Bytes the client sent after the head in the same read(s).
    early: usize,
    /// What the client asked for its connection, within the proxy's
    /// limits: an answer from upstream says this.
    asked: Persistence,
    /// What the proxy's own answer says: no more than `asked`, and
    /// `Close` when the body cannot be read and dropped to get to the
    /// next request.
    own: Persistence,
    /// The body still to come after the early bytes.
    unread: Body,
    idempotent: bool,
    /// HTTP/1.`minor`.
    minor: u8,
}

/// Reads and handles the request head. `closing`: the event reported EOF
/// or an error on the client.
pub(super) fn read(req: &mut Request, core: &mut Core, closing: bool, ctx: &mut Ctx<'_>) -> Step {
    if let Some(step) = plain_on_tls(core, ctx) {
        return step;
    }
    let limit = ctx.config.max_head;
    let peer = core.peer();
    loop {
        let handshaking = core.client.is_handshaking();
        let fill = req.head.fill(
            core.client.conn(),
            &mut ctx.relay.bufs.scratch,
            limit,
            limit,
            closing,
        );
        if core.client.chose_h2() {
            return match fill {
                Ok(Fill::Input { .. } | Fill::Blocked) => {
                    // The connection preface may have come with the
                    // handshake's last flight: it goes along.
                    core.ahead = req.head.rest(&mut ctx.relay.bufs, 0);
                    Step::Http2
                }
                _ => Step::Close,
            };
        }
        if handshaking && core.client.is_acme_validation() {
            debug!(
                "client {}: ACME tls-alpn-01 validation handshake done, closing",
                core.client_addr
            );
            return Step::Close;
        }
        let (input, drained) = match fill {
            Ok(Fill::Input { input, drained }) => {
                if drained {
                    core.client_readable = false;
                }
                (input, drained)
            }
            Ok(Fill::Blocked) => {
                core.client_readable = false;
                return Step::Wait;
            }
            Ok(Fill::Eof) => {
                if req.head.is_started() {
                    debug!(
                        "client {}: closed before finishing its request head",
                        core.client_addr
                    );
                }
                return Step::Close;
            }
            Err(e) if handshaking => return tls_refused(&e, core, ctx),
            Err(e) => {
                debug!(
                    "client {}: read failed during handshake: {e}",
                    core.client_addr
                );
                return Step::Close;
            }
        };
        if req.idle {
            // The next request has begun: it has the handshake timeout to
            // arrive whole.
            req.idle = false;
            ctx.metrics.keepalive_idle.sub(1);
            core.queue_shed(ctx.shed, ctx.key, Class::Head);
            let deadline = timer::deadline(ctx.now, ctx.config.timeouts.handshake);
            ctx.wheel.arm(ctx.key, &mut core.timer, deadline);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = match request::parse(input, limit, &mut headers) {
            Ok(None) => {
                req.head.keep(&mut ctx.relay.bufs, 0);
                continue;
            }
            Ok(Some(head)) => head,
            Err(reject) => return Step::Refuse(reject),
        };
        core.served = core.served.saturating_add(1);
        core.kind = head.kind;
        if core.served > 1 {
            // Each request on a kept connection is timed from its head.
            core.started = ctx.metrics.stamp(ctx.at);
        }
        let early = &input[head.head_len..];
        let mut unread = head.body.clone();
        let own_taken = match unread.advance(early) {
            Ok(advance) => advance.used,
            Err(_) => {
                return Step::Refuse(Reject::new(Status::BadRequest, "malformed chunked body"))
            }
        };
        let asked = if ctx.config.keepalive.allows(u32::from(core.served))
            && ctx.draining.is_none()
            && !ctx.stale
        {
            head.persistence()
        } else {
            Persistence::Close
        };
        let own = match &unread {
            _ if unread.is_done() => asked,
            // The client may wait for a 100 that will not come.
            _ if head.expects_continue() => Persistence::Close,
            Body::Length(n) if *n > DISCARD_LIMIT => Persistence::Close,
            _ => asked,
        };
        let read = Read {
            drained,
            early: early.len(),
            asked,
            own,
            unread,
            idempotent: head.is_idempotent(),
            minor: head.minor,
        };
        let mut out = ctx.relay.bufs.pool.take();
        let inputs = Inputs {
            config: ctx.config,
            listener: usize::from(core.listener),
            peer,
            picker: ctx.picker,
            now: ctx.at,
            persistence: own,
        };
        let plan = dispatch::decide(&head, early, inputs, &mut out);
        let used = head.head_len
            + match &plan.action {
                Action::Forward { taken, .. } => *taken,
                _ => own_taken,
            };
        core.ahead = req.head.rest(&mut ctx.relay.bufs, used);
        core.site = plan.site.map_or(NONE, index);
        core.route = plan.route.map_or(NONE, index);
        core.group = NONE;
        return carry_out(plan.action, out, read, core, ctx);
    }
}

/// No request head within the handshake timeout (408), or no next request
/// within the keep-alive timeout (closed quietly, as nginx does).
pub(super) fn timed_out(req: &mut Request, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    if req.idle {
        debug!(
            "client {}: no request within {:?} of the last one, closing",
            core.client_addr, ctx.config.keepalive.timeout
        );
        return Step::Close;
    }
    if core.client.is_handshaking() {
        info!(
            "client {}: TLS handshake not finished within {:?}, closing",
            core.client_addr, ctx.config.timeouts.handshake
        );
        ctx.metrics.tls_failed(TlsSide::Client);
        return Step::Close;
    }
    Step::Refuse(Reject::new(
        Status::RequestTimeout,
        "request head not received within the handshake timeout",
    ))
}

/// Reads the PROXY protocol header without taking a byte past it: peek,
/// parse, then read exactly the header. A malformed one closes the
/// connection, as the protocol says; a good one names the client that
/// logs, limits, hashing and X-Forwarded-For see.
pub(super) fn read_preface(core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    let scratch = &mut ctx.relay.bufs.scratch;
    scratch.clear();
    let room = &mut scratch.space()[..proxy_protocol::MAX_HEADER_BYTES];
    let Some(tcp) = core.client.tcp() else {
        return Step::Close;
    };
    let n = match conn::peek(tcp, room) {
        Ok(Got::Eof) => return Step::Close,
        Ok(Got::Bytes(n)) => n,
        Ok(Got::Blocked) => return Step::Wait,
        Err(e) => {
            debug!("client {}: read failed: {e}", core.client_addr);
            return Step::Close;
        }
    };
    let header = match proxy_protocol::parse(&room[..n]) {
        // The rest raises a new event when it arrives.
        Ok(None) => return Step::Wait,
        Ok(Some(header)) => header,
        Err(e) => {
            info!(
                "client {}: bad PROXY protocol header: {e}",
                core.client_addr
            );
            return Step::Close;
        }
    };
    let mut taken = 0;
    while taken < header.len {
        match conn::read(tcp, &mut room[taken..header.len]) {
            Ok(0) => return Step::Close,
            Ok(n) => taken += n,
            Err(e) => {
                debug!("client {}: read failed: {e}", core.client_addr);
                return Step::Close;
            }
        }
    }
    if let Origin::Tcp { source, .. } = header.origin {
        debug!(
            "client {}: PROXY v{} says the client is {source}",
            core.client_addr, header.version
        );
        core.client_addr = source;
    }
    // Refused or not, the address stays counted until the pair goes.
    core.ip_counted = true;
    if let Err(reject) = ctx
        .admission
        .admit_ip(&ctx.config.limits, core.client_addr.ip())
    {
        if core.client.is_tls() {
            debug!(
                "client {}: {} before TLS: closing",
                core.client_addr,
                reject.status.code()
            );
            return Step::Close;
        }
        return Step::Refuse(reject);
    }
    Step::Enter(Phase::Request(Request::default()))
}

/// On a TLS listener, before the handshake is done: a client that speaks
/// plain HTTP (its first byte a letter, where TLS records start with a
/// content type from 20 to 24) gets nginx's 400 in plain text.
fn plain_on_tls(core: &mut Core, ctx: &mut Ctx<'_>) -> Option<Step> {
    if !core.client.is_handshaking() {
        return None;
    }
    let mut first = [0u8; 1];
    match conn::peek(core.client.tcp()?, &mut first) {
        Ok(Got::Bytes(1)) if first[0].is_ascii_alphabetic() => {
            core.client_tls_failed(ctx);
            Some(Step::Refuse(Reject::new(
                Status::BadRequest,
                "plain HTTP request sent to an HTTPS port",
            )))
        }
        _ => None,
    }
}

/// The client's TLS handshake failed: rustls has sent an alert saying why;
/// log it, then linger so the client reads the alert, not a reset.
fn tls_refused(e: &io::Error, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    info!("client {}: TLS handshake failed: {e}", core.client_addr);
    core.client_tls_failed(ctx);
    Step::Linger
}

/// Acts on a request's plan; `out` holds what it wrote, ending with up to
/// `read.early` bytes the client sent after its head.
fn carry_out(action: Action, out: Buf, read: Read, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    // What the proxy answers itself leaves the body unread: it is read and
    // dropped after the answer, if the connection is to carry on.
    let unread = (read.own.keeps() && !read.unread.is_done()).then_some(read.unread);
    match action {
        Action::Reply { status } => {
            core.persistence = read.own;
            core.answered(status, ctx);
            Step::Enter(Phase::Answer(answer::Answer { out, unread }))
        }
        Action::Refuse(reject) => {
            ctx.relay.bufs.pool.give(out);
            // A request refused for what it asked, not for how it was
            // framed, leaves the connection usable.
            core.persistence = match reject.status {
                Status::Forbidden
                | Status::NotFound
                | Status::MethodNotAllowed
                | Status::UpgradeRequired => read.own,
                _ => Persistence::Close,
            };
            Step::Decline {
                reject,
                unread: unread.unwrap_or(Body::Empty),
            }
        }
        Action::Serve {
            file,
            status,
            bytes,
        } => {
            core.persistence = read.own;
            core.answered(status, ctx);
            Step::Enter(Phase::File(answer::File {
                out,
                file,
                offset: bytes.start,
                end: bytes.end,
                unread,
            }))
        }
        Action::Forward {
            group,
            kind,
            body,
            attempt,
            ..
        } => {
            core.persistence = read.asked;
            core.group = index(group);
            // The upstream head says `Connection: close` unless this
            // holds (see `dispatch`): then its connection may be kept.
            let reuse = if kind == Kind::Upgrade
                || read.minor == 0
                || ctx.config.groups[group].keepalive.idle == 0
            {
                Reuse::Never
            } else {
                Reuse::Any
            };
            let (out, held) = hold_early(kind, out, read.early, &mut ctx.relay.bufs.pool);
            let c2u = request_flow(kind, body, out, read.drained);
            Step::Enter(Phase::Connect(connect::Connect::new(
                c2u,
                kind,
                attempt,
                held,
                read.idempotent,
                reuse,
            )))
        }
    }
}

/// The flow that carries the request (its head in `out`) up. An upgrade's
/// flow waits for the 101 before it reads the client again.
fn request_flow(kind: Kind, body: Body, out: Buf, drained: bool) -> Flow {
    let mut c2u = Flow::with_pending(body, out, drained);
    if kind == Kind::Upgrade {
        c2u.hold();
    }
    c2u
}

/// An upgrade's head goes to the upstream at once, but nothing the client
/// sends after it does until the upstream answers 101: a client must wait
/// for the answer (RFC 6455 §4.1), and bytes behind an upgrade the upstream
/// refuses would otherwise reach it as a request of their own, past
/// routing and the forwarding fields (request smuggling). So the early
/// bytes of the first read are split off `out` into `held`, and the client
/// is not read again until the 101.
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
