//! The Response and Exchange phases: the request (head and body) flows up
//! while the upstream's response head is read; 1xx answers pass on; a 101
//! opens a tunnel, any other answer is relayed to the client as a plain
//! exchange.

use super::connect::{Connect, Reuse};
use super::head::{Fill, HeadReader};
use super::pump::{self, Dir};
use super::{Core, Ctx, Phase, Step, NO_EDITS};
use crate::access_log::Ending;
use crate::buffer::{Buf, Pool, BUF_BYTES};
use crate::framing::body::Body;
use crate::framing::frames::Frames;
use crate::handshake::answer::{Reject, Status};
use crate::handshake::edits::ResponseEdits;
use crate::handshake::fields::Persistence;
use crate::handshake::request::{Kind, REWRITE_SLACK};
use crate::handshake::response::{self, Response as Head};
use crate::relay::splice::PipePool;
use crate::relay::{Fault, Flow};
use crate::{debug, warn};

/// Awaiting the response head.
#[derive(Debug)]
pub(super) struct Response {
    pub(super) c2u: Flow,
    kind: Kind,
    head: HeadReader,
    /// 1xx answers on their way to the client; the upstream is not read
    /// meanwhile.
    interim: Option<Buf>,
    /// What an upgrading client sent after its head, kept back until the
    /// upstream answers 101.
    held: Option<Box<Buf>>,
    /// Over a kept connection: a copy of the whole request, sent again
    /// over a fresh one if the kept one turns out closed before a byte of
    /// the answer (RFC 9110 §9.2.2: idempotent requests only).
    replay: Option<Box<Buf>>,
    /// The upstream connection may carry another request afterwards.
    reuse: Reuse,
}

/// A plain answer on its way to the client. Whether the upstream's
/// connection may carry another request afterwards is its `End`'s
/// (`reusable`): a field here would make every phase eight bytes bigger.
#[derive(Debug)]
pub(super) struct Exchange {
    pub(super) c2u: Flow,
    pub(super) u2c: Flow,
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
        persistence: Persistence,
        reusable: bool,
    },
    Bad(Reject),
}

impl Response {
    pub(super) fn new(c: Connect, pool: &mut Pool) -> Response {
        let replay = match c.c2u.whole_message() {
            Some(request) if c.reused && c.idempotent => {
                let mut copy = pool.take();
                // The request fit one buffer, so it fits its copy.
                let _ = copy.put(request);
                Some(Box::new(copy))
            }
            _ => None,
        };
        Response {
            c2u: c.c2u,
            kind: c.kind,
            head: HeadReader::default(),
            interim: None,
            held: c.held,
            replay,
            reuse: c.reuse,
        }
    }

    /// 1xx answers wait for the client to take them.
    pub(super) fn waits_for_client(&self) -> bool {
        self.interim.is_some()
    }

    pub(super) fn release(mut self, pool: &mut Pool, pipes: &mut PipePool) {
        self.c2u.release(pool, pipes);
        self.head.clear(pool);
        let held = self.held.map(|b| *b);
        let replay = self.replay.map(|b| *b);
        for buf in self.interim.into_iter().chain(held).chain(replay) {
            pool.give(buf);
        }
    }

    /// Once the answer came: the request's flow, and what the client sent
    /// early (a tunnel's to send, else dropped).
    pub(super) fn finish(mut self, pool: &mut Pool) -> (Flow, Option<Buf>) {
        self.head.clear(pool);
        let replay = self.replay.take().map(|b| *b);
        for buf in self.interim.take().into_iter().chain(replay) {
            pool.give(buf);
        }
        (self.c2u, self.held.map(|b| *b))
    }

    /// A kept connection failed before a byte of the answer came: the
    /// request goes again over a fresh connection, if it may.
    fn retry(&mut self, core: &mut Core, why: &str, ctx: &mut Ctx<'_>) -> Option<Step> {
        if self.head.is_started() || self.interim.is_some() {
            return None;
        }
        let request = self.replay.take()?;
        debug!(
            "upstream {}: a kept connection {why}; sending the request again on a new one (client {})",
            core.server_addr(ctx.config),
            core.client_addr
        );
        core.close_upstream(ctx.config, ctx.kept);
        let retry = Connect::retry(*request, self.kind, usize::from(core.server));
        Some(Step::Enter(Phase::Connect(retry)))
    }
}

impl Exchange {
    pub(super) fn new(r: Response, u2c: Flow, pool: &mut Pool) -> Exchange {
        let (c2u, held) = r.finish(pool);
        // Refused: the early bytes were never the upstream's to see.
        if let Some(buf) = held {
            pool.give(buf);
        }
        Exchange { c2u, u2c }
    }
}

/// Moves the request up while the response is awaited.
pub(super) fn pump_up(r: &mut Response, core: &mut Core, closing: bool, ctx: &mut Ctx<'_>) -> Step {
    match pump::run(&mut r.c2u, Dir::Up, core, closing, None, ctx) {
        Ok(pump::Ran { progress, surplus }) => {
            core.keep_ahead(surplus, ctx);
            let response = ctx.config.timeouts.response;
            pump::count(&progress, Dir::Up, core, Some(response), ctx);
            pump::waiting(&progress, Dir::Up)
        }
        Err(Fault::Destination(e)) if r.replay.is_some() => {
            let why = format!("failed while the request went out ({e})");
            r.retry(core, &why, ctx).unwrap_or(Step::Close)
        }
        Err(fault) => pump::fault(Dir::Up, fault, core, true, ctx),
    }
}

/// Reads and handles the response head. `closing`: the event reported EOF
/// or an error on the upstream.
pub(super) fn read(r: &mut Response, core: &mut Core, closing: bool, ctx: &mut Ctx<'_>) -> Step {
    let limit = ctx.config.max_head;
    let winding_down = ctx.winding_down();
    loop {
        if r.interim.is_some() {
            // Wait until the 1xx answers reach the client.
            return Step::Wait;
        }
        let Some(upstream) = &mut core.upstream else {
            return Step::Close;
        };
        let bufs = &mut ctx.relay.bufs;
        // The head, its rewrite and the bytes after it share one buffer.
        let first_room = BUF_BYTES - REWRITE_SLACK;
        let fill = r.head.fill(
            upstream.conn(),
            &mut bufs.scratch,
            first_room,
            limit,
            closing,
        );
        let (input, drained) = match fill {
            Ok(Fill::Input { input, drained }) => (input, drained),
            Ok(Fill::Blocked) => return Step::Wait,
            Ok(Fill::Eof) => {
                if let Some(step) = r.retry(core, "was closed", ctx) {
                    return step;
                }
                return failed(
                    core,
                    "closed the connection before answering",
                    Reject::new(
                        Status::BadGateway,
                        "upstream closed the connection before answering",
                    ),
                    ctx,
                );
            }
            Err(e) => {
                if let Some(step) = r.retry(core, &format!("failed ({e})"), ctx) {
                    return step;
                }
                return failed(
                    core,
                    &format!("read failed before the response: {e}"),
                    Reject::new(Status::BadGateway, "upstream reset the connection"),
                    ctx,
                );
            }
        };
        if let Some(copy) = r.replay.take() {
            // The answer has begun: this connection was good.
            bufs.pool.give(*copy);
        }
        let mut out = bufs.pool.take();
        let edits = match core.route {
            super::NONE => &NO_EDITS,
            route => &ctx.config.routes[usize::from(route)].response,
        };
        // Bytes the client sent behind a refused upgrade would be read as
        // its next request: such a connection closes after the answer.
        let persistence = if r.held.is_some() || winding_down {
            Persistence::Close
        } else {
            core.persistence
        };
        match parse(input, limit, r.kind, edits, persistence, &mut out) {
            Answered::Partial { consumed } => {
                r.head.keep(bufs, consumed);
                if out.is_empty() {
                    bufs.pool.give(out);
                    continue;
                }
                r.interim = Some(out);
                return write_interim(r, core, closing, ctx);
            }
            Answered::Tunnel { early } => {
                r.head.clear(&mut bufs.pool);
                core.answered(101, ctx);
                ctx.metrics.tunnel_opened(&core.tunnel_names(ctx.config));
                ctx.routes.tunnel_opened(core.route);
                core.started = ctx.now;
                debug!(
                    "client {}: tunnel open to upstream {}",
                    core.client_addr,
                    core.server_addr(ctx.config)
                );
                // The upstream's frames are not masked (RFC 6455 §5.1).
                let mut frames = Frames::new(false);
                frames.advance(&out.data()[out.len() - early..]);
                let u2c = Flow::with_pending(Body::Frames(frames), out, drained);
                return Step::Answered { u2c, tunnel: true };
            }
            Answered::Final {
                body,
                status,
                persistence,
                reusable,
            } => {
                r.head.clear(&mut bufs.pool);
                core.persistence = persistence;
                upstream.reusable = reusable && r.reuse != Reuse::Never;
                core.answered(status, ctx);
                debug!(
                    "client {}: upstream {} answered {status}",
                    core.client_addr,
                    core.server_addr(ctx.config)
                );
                let u2c = Flow::with_pending(body, out, drained);
                return Step::Answered { u2c, tunnel: false };
            }
            Answered::Bad(reject) => {
                bufs.pool.give(out);
                return failed(core, reject.why, reject, ctx);
            }
        }
    }
}

/// Writes the 1xx answers held in `interim`, then resumes reading the
/// response head.
pub(super) fn write_interim(
    r: &mut Response,
    core: &mut Core,
    closing: bool,
    ctx: &mut Ctx<'_>,
) -> Step {
    let Some(out) = &mut r.interim else {
        return Step::Wait;
    };
    match core.client.conn().write_all(out.data()) {
        Ok(n) => out.consume(n),
        Err(e) => {
            debug!("client {}: write failed: {e}", core.client_addr);
            return Step::Close;
        }
    }
    if !out.is_empty() {
        return Step::Wait;
    }
    if let Some(buf) = r.interim.take() {
        ctx.relay.bufs.pool.give(buf);
    }
    read(r, core, closing, ctx)
}

/// No response head within the response timeout (504), or the interim
/// answers stalled on their way to the client.
pub(super) fn timed_out(r: &mut Response, core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    if r.interim.is_some() {
        return stalled(core, ctx);
    }
    warn!(
        "upstream {}: no response within {:?} (client {})",
        core.server_addr(ctx.config),
        ctx.config.timeouts.response,
        core.client_addr
    );
    Step::Refuse(Reject::new(
        Status::GatewayTimeout,
        "upstream did not answer in time",
    ))
}

/// A plain answer paused longer than the response timeout.
pub(super) fn stalled(core: &mut Core, ctx: &mut Ctx<'_>) -> Step {
    warn!(
        "upstream {}: response stalled for {:?}, closing (client {})",
        core.server_addr(ctx.config),
        ctx.config.timeouts.response,
        core.client_addr
    );
    core.ended(Ending::Stalled);
    Step::Close
}

/// Runs one direction of a plain exchange; the exchange is over once the
/// answer has gone out whole.
pub(super) fn pump_exchange(
    x: &mut Exchange,
    dir: Dir,
    core: &mut Core,
    closing: bool,
    ctx: &mut Ctx<'_>,
) -> Step {
    let flow = match dir {
        Dir::Up => &mut x.c2u,
        Dir::Down => &mut x.u2c,
    };
    let (progress, surplus) = match pump::run(flow, dir, core, closing, None, ctx) {
        Ok(pump::Ran { progress, surplus }) => (progress, surplus),
        Err(fault) => return pump::fault(dir, fault, core, false, ctx),
    };
    match dir {
        Dir::Up => core.keep_ahead(surplus, ctx),
        Dir::Down => {
            if let Some(bytes) = surplus {
                // An upstream that sent more than its answer is not
                // trusted with another request.
                if let Some(upstream) = &mut core.upstream {
                    upstream.reusable = false;
                }
                ctx.relay.bufs.pool.give(*bytes);
            }
        }
    }
    let response = ctx.config.timeouts.response;
    pump::count(&progress, dir, core, Some(response), ctx);
    if x.u2c.is_finished() {
        core.ended(Ending::Complete);
        // Nor is one still owed part of this request.
        keep_upstream(core, x.c2u.is_finished(), ctx);
        return Step::Done;
    }
    pump::waiting(&progress, dir)
}

/// After a plain exchange: the upstream connection goes to the worker's
/// pool for the next request to its server, or is closed. `sent`: the
/// request went out whole.
fn keep_upstream(core: &mut Core, sent: bool, ctx: &mut Ctx<'_>) {
    let group = &ctx.config.groups[usize::from(core.group)];
    let server = usize::from(core.server);
    let slot = core.take_kept_slot();
    let Some(end) = core.upstream.take() else {
        return;
    };
    group.closed(server);
    // A pair under an older configuration closes it: the pool's groups
    // are the current configuration's.
    let keep = sent && !ctx.stale && end.reusable && u32::from(end.uses) < group.keepalive.requests;
    if keep {
        let index = usize::from(core.group);
        ctx.kept
            .put(end, slot, index, server, group, ctx.registry, ctx.at);
    } else if let Some(slot) = slot {
        drop(end);
        ctx.kept.release(slot);
    }
}

fn failed(core: &mut Core, why: &str, reject: Reject, ctx: &mut Ctx<'_>) -> Step {
    warn!(
        "upstream {}: {why} (client {})",
        core.server_addr(ctx.config),
        core.client_addr
    );
    Step::Refuse(reject)
}

/// Parses interim answers and the response head from `input`.
fn parse(
    input: &[u8],
    limit: usize,
    kind: Kind,
    edits: &ResponseEdits,
    persistence: Persistence,
    out: &mut Buf,
) -> Answered {
    let too_large = || {
        Answered::Bad(Reject::new(
            Status::BadGateway,
            "upstream response head too large",
        ))
    };
    let mut at = 0;
    loop {
        match response::rewrite(&input[at..], limit, kind, edits, persistence, out) {
            Ok(None) => return Answered::Partial { consumed: at },
            Ok(Some(Head::Interim { head_len })) => {
                if out.put(&input[at..at + head_len]).is_err() {
                    return too_large();
                }
                at += head_len;
            }
            Ok(Some(Head::Switching {
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
                    Err(_) => too_large(),
                };
            }
            Ok(Some(Head::Final {
                head_len,
                status,
                mut body,
                persistence,
                reusable,
            })) => {
                let rest = &input[at + head_len..];
                let Ok(advance) = body.advance(rest) else {
                    return Answered::Bad(Reject::new(
                        Status::BadGateway,
                        "upstream sent a malformed chunked body",
                    ));
                };
                if out.put(&rest[..advance.used]).is_err() {
                    return too_large();
                }
                return Answered::Final {
                    body,
                    status,
                    persistence,
                    reusable,
                };
            }
            Err(reject) => return Answered::Bad(reject),
        }
    }
}
