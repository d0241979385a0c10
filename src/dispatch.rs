//! What the proxy does with a parsed request head: redirect it to HTTPS,
//! refuse it, serve a file, or forward it to an upstream server. This is
//! where the listener, the Host, the route, the origin allow-list, the path
//! rewrite, the header edits and the balancer meet; the pair only carries
//! the decision out.

use std::fs::File;
use std::net::IpAddr;
use std::ops::Range;
use std::time::Instant;

use crate::buffer::Buf;
use crate::config::{Config, Serves, Target};
use crate::files::{self, Lookup};
use crate::framing::body::Body;
use crate::handshake::answer::{self, Reject, Status};
use crate::handshake::edits::Vars;
use crate::handshake::fields::Persistence;
use crate::handshake::request::{self, Head, Kind, Peer, Rewrite};
use crate::route;
use crate::upstream::{self, Attempt, Balance, HashKey, Picker};

/// The decision, with the site and route it was made under (their
/// response fields go on the proxy's own answers).
#[derive(Debug)]
pub struct Plan {
    pub site: Option<usize>,
    pub route: Option<usize>,
    pub action: Action,
}

#[derive(Debug)]
pub enum Action {
    /// `out` holds a complete answer with this status: a redirect, or a
    /// file's answer with no body to send (304, 416, one to HEAD).
    Reply { status: u16 },
    /// Answer with the proxy's own error.
    Refuse(Reject),
    /// `out` holds the response head (200 or 206, as `status` says); the
    /// `bytes` of `file` follow, from `bytes.start` up to `bytes.end`.
    Serve {
        file: File,
        status: u16,
        bytes: Range<u64>,
    },
    /// `out` holds the rewritten head and the first `taken` early bytes,
    /// those that belong to the request; `body` frames what the client
    /// sends next.
    Forward {
        group: usize,
        kind: Kind,
        body: Body,
        attempt: Attempt,
        taken: usize,
    },
}

/// Everything a decision reads besides the head.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub config: &'a Config,
    pub listener: usize,
    pub peer: Peer,
    pub picker: &'a mut Picker,
    pub now: Instant,
    /// What the proxy's own answers (a redirect, a file) say about the
    /// client's connection.
    pub persistence: Persistence,
}

const fn refuse(status: Status, why: &'static str) -> Action {
    Action::Refuse(Reject::new(status, why))
}

/// Decides what to do with `head`; `early` is what the client sent after
/// it. Writes whatever the decision sends into `out`.
pub fn decide(head: &Head<'_, '_>, early: &[u8], inputs: Inputs<'_>, out: &mut Buf) -> Plan {
    let config = inputs.config;
    let mut plan = Plan {
        site: None,
        route: None,
        // A placeholder: every return below sets the action.
        action: Action::Reply { status: 0 },
    };
    let host = match head.single("host") {
        Some(value) => match route::host_name(value) {
            Some(host) => host,
            None => {
                plan.action = refuse(Status::BadRequest, "invalid Host header");
                return plan;
            }
        },
        None => "".into(),
    };
    let listener = &config.listeners[inputs.listener];
    if listener.tls.is_none() && head.path().starts_with(crate::acme::HTTP01_PREFIX) {
        if let Some(answer) = crate::acme::REGISTRY.http01(head.path()) {
            plan.action = http01(&answer, head, inputs.persistence, out);
            return plan;
        }
    }
    let site = match &listener.serves {
        Serves::RedirectHttps { port } => {
            plan.action = redirect(&host, *port, head.target, inputs.persistence, out);
            return plan;
        }
        Serves::Sites(hosts) => hosts.find(&host),
    };
    plan.site = Some(site);
    let site_config = &config.sites[site];
    let Some(matched) = site_config.routes.find(head.path()) else {
        plan.action = refuse(Status::NotFound, "no route for this path");
        return plan;
    };
    let route_id = site_config.route_ids[matched];
    plan.route = Some(route_id);
    let route = &config.routes[route_id];
    if let Some(access) = &route.access {
        if !access.allows(inputs.peer.ip) {
            plan.action = refuse(Status::Forbidden, "client address not allowed");
            return plan;
        }
    }

    if let Some(rule) = &route.rewrite_redirect {
        let port = config.listeners[inputs.listener].addr.port();
        let scheme = inputs.peer.scheme;
        if let Some(location) = rule.location(head.target, scheme, &host, Some(port)) {
            plan.action = reply_redirect(out, rule.status, &location, inputs.persistence);
            return plan;
        }
    }
    let target = match &route.path_edit {
        None => head.target.into(),
        Some(edit) => match edit.apply(head.target) {
            Ok(None) => head.target.into(),
            Ok(Some(rewritten)) => std::borrow::Cow::Owned(rewritten),
            Err(why) => {
                plan.action = refuse(Status::BadRequest, why);
                return plan;
            }
        },
    };
    plan.action = match &route.target {
        Target::Files(root) => serve(head, root, &target, route, inputs.persistence, out),
        Target::FilesThenUpstream { root, group } => {
            let path = target.split_once('?').map_or(&*target, |(p, _)| p);
            let file = head.kind != Kind::Upgrade
                && (head.method == "GET" || head.method == "HEAD")
                && !matches!(root.lookup(path), Lookup::NotFound);
            if file {
                serve(head, root, &target, route, inputs.persistence, out)
            } else if !origin_allowed(head, route) {
                refuse(Status::Forbidden, "origin not allowed")
            } else {
                forward(head, early, *group, &target, &host, route, inputs, out)
            }
        }
        Target::Status(status) => refuse(*status, "answered so by the route"),
        Target::Redirect(to) => {
            let vars = Vars {
                host: &host,
                remote_addr: inputs.peer.ip,
                scheme: inputs.peer.scheme,
                request_uri: head.target,
            };
            let location = to.to.render(&vars);
            reply_redirect(out, to.status, &location, inputs.persistence)
        }
        Target::Upstream(group) => {
            if !origin_allowed(head, route) {
                plan.action = refuse(Status::Forbidden, "origin not allowed");
                return plan;
            }
            forward(head, early, *group, &target, &host, route, inputs, out)
        }
    };
    plan
}

/// RFC 8555 §8.3: the key authorization, as `application/octet-stream`,
/// to an ACME validator's GET. It comes before routing and before a
/// `redirect_https` 308 (Let's Encrypt follows redirects, other CAs may
/// not), and only while the ACME thread waits for that token.
fn http01(answer: &str, head: &Head<'_, '_>, persistence: Persistence, out: &mut Buf) -> Action {
    let mut written =
        out.put(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ");
    written = written.and_then(|()| out.put_decimal(answer.len() as u64));
    written = written.and_then(|()| out.put(b"\r\n"));
    written = written.and_then(|()| out.put(persistence.line()));
    written = written.and_then(|()| out.put(b"\r\n"));
    if head.method != "HEAD" {
        written = written.and_then(|()| out.put(answer.as_bytes()));
    }
    match written {
        Ok(()) => Action::Reply { status: 200 },
        Err(_) => refuse(Status::HeaderTooLarge, "ACME answer too long"),
    }
}

/// A redirect with `status` to `location`, written into `out`.
fn reply_redirect(out: &mut Buf, status: u16, location: &str, persistence: Persistence) -> Action {
    match answer::write_redirect_with(out, status, &[location.as_bytes()], persistence) {
        Ok(()) => Action::Reply { status },
        Err(_) => refuse(
            Status::HeaderTooLarge,
            "request target too long to redirect",
        ),
    }
}

/// Whether an upgrade's `Origin` is on the route's list (a request that
/// is not an upgrade, or has no `Origin`, passes).
fn origin_allowed(head: &Head<'_, '_>, route: &crate::config::Route) -> bool {
    if head.kind != Kind::Upgrade {
        return true;
    }
    match (&route.origins, head.single("origin")) {
        (Some(allowed), Some(origin)) => allowed.allows(origin),
        _ => true,
    }
}

fn redirect(
    host: &str,
    port: Option<u16>,
    target: &str,
    persistence: Persistence,
    out: &mut Buf,
) -> Action {
    if host.is_empty() {
        return refuse(
            Status::BadRequest,
            "a redirect to HTTPS needs the Host header",
        );
    }
    let mut port_text = String::new();
    if let Some(port) = port.filter(|&p| p != 443) {
        port_text = format!(":{port}");
    }
    let location: [&[u8]; 4] = [
        b"https://",
        host.as_bytes(),
        port_text.as_bytes(),
        target.as_bytes(),
    ];
    match answer::write_redirect(out, &location, persistence) {
        Ok(()) => Action::Reply { status: 308 },
        Err(_) => refuse(
            Status::HeaderTooLarge,
            "request target too long to redirect",
        ),
    }
}

fn serve(
    head: &Head<'_, '_>,
    root: &files::Root,
    target: &str,
    route: &crate::config::Route,
    persistence: Persistence,
    out: &mut Buf,
) -> Action {
    if head.kind == Kind::Upgrade {
        return refuse(Status::NotFound, "no WebSocket endpoint at this path");
    }
    if head.method != "GET" && head.method != "HEAD" {
        return refuse(Status::MethodNotAllowed, "files are read with GET or HEAD");
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let found = match root.lookup(path) {
        Lookup::Found(found) => found,
        Lookup::NotFound => return refuse(Status::NotFound, "file not found"),
        Lookup::Status(code) => return refuse(status_for(code), "file not found"),
        Lookup::Refused { status, why } => return refuse(status_for(status), why),
    };
    let answer = match files::answer(&found, head.headers) {
        Ok(answer) => answer,
        Err(files::Unsatisfiable) => {
            return unsatisfiable(head, found.len, route, persistence, out)
        }
    };
    let status = answer.status();
    let written = files::write_head(out, &found, &answer)
        .and_then(|()| route.response.write_added(out, status))
        .and_then(|()| out.put(persistence.line()))
        .and_then(|()| out.put(b"\r\n"));
    if written.is_err() {
        return refuse(Status::HeaderTooLarge, "response head too large");
    }
    let bytes = answer.bytes(found.len);
    if head.method == "HEAD" || bytes.is_empty() {
        // Nothing follows the head: the file is closed at once.
        return Action::Reply { status };
    }
    Action::Serve {
        file: found.file,
        status,
        bytes,
    }
}

/// A 416 for a file `len` bytes long: the proxy's own answer, with the
/// `Content-Range: bytes */LEN` RFC 9110 §15.5.17 asks of it; to HEAD
/// without its body.
fn unsatisfiable(
    head: &Head<'_, '_>,
    len: u64,
    route: &crate::config::Route,
    persistence: Persistence,
    out: &mut Buf,
) -> Action {
    const WHY: &str = "the Range asks for no byte the file has";
    let reject = Reject::new(Status::RangeNotSatisfiable, WHY);
    let range = format!("Content-Range: bytes */{len}\r\n");
    let mut written =
        answer::write_head(out, reject, range.as_bytes(), &route.response, persistence);
    if head.method != "HEAD" {
        written = written.and_then(|()| answer::write_body(out, reject));
    }
    match written {
        Ok(()) => Action::Reply {
            status: Status::RangeNotSatisfiable.code(),
        },
        Err(_) => refuse(Status::HeaderTooLarge, "response head too large"),
    }
}

/// The proxy's own statuses for a `try_files` `=CODE` or a refusal.
fn status_for(code: u16) -> Status {
    match code {
        400 => Status::BadRequest,
        403 => Status::Forbidden,
        405 => Status::MethodNotAllowed,
        502 => Status::BadGateway,
        504 => Status::GatewayTimeout,
        _ => Status::NotFound,
    }
}

#[allow(clippy::too_many_arguments)]
fn forward(
    head: &Head<'_, '_>,
    early: &[u8],
    group: usize,
    target: &str,
    host: &str,
    route: &crate::config::Route,
    inputs: Inputs<'_>,
    out: &mut Buf,
) -> Action {
    let config_group = &inputs.config.groups[group];
    let rewrite = Rewrite {
        target,
        host,
        edits: &route.request,
        proxies: &inputs.config.trusted_proxies,
        reuse: config_group.keepalive.idle > 0,
    };
    if request::write_upstream(out, head, inputs.peer, &rewrite).is_err() {
        return refuse(
            Status::HeaderTooLarge,
            "request head too large once rewritten",
        );
    }
    let mut body = head.body.clone();
    let taken = match body.advance(early) {
        Ok(advance) => advance.used,
        Err(_) => return refuse(Status::BadRequest, "malformed chunked body"),
    };
    if out.put(&early[..taken]).is_err() {
        return refuse(Status::HeaderTooLarge, "request head too large");
    }
    let octets;
    let key = match &config_group.balance {
        Balance::Hash(HashKey::ClientIp) => {
            octets = ip_octets(inputs.peer.ip);
            Some(&octets.0[..octets.1])
        }
        Balance::Hash(key) => upstream::key_of(key, head.headers, head.target),
        _ => None,
    };
    let attempt = inputs.picker.first(group, config_group, key, inputs.now);
    Action::Forward {
        group,
        kind: head.kind,
        body,
        attempt,
        taken,
    }
}

/// An address's bytes (IPv4-mapped IPv6 as IPv4), for hashing.
fn ip_octets(ip: IpAddr) -> ([u8; 16], usize) {
    let mut bytes = [0; 16];
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            (bytes, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}
