//! Fuzz target: a client's request head, parsed by
//! `handshake::request::parse` and carried through `dispatch::decide` as a
//! worker does (host, route, path edit, header edits, body framing of the
//! early bytes, the rewrite into the upstream head), under a fixed
//! configuration with several sites and routes, for two peers and both
//! listeners (one serving sites, one redirecting to HTTPS).
//!
//! Besides panics it checks what the proxy wrote, with the oracle in
//! `tests/common/heads.rs`: the rewritten head parses again, has no
//! hop-by-hop field but the proxy's own, passes every end-to-end field once
//! per input line, unchanged and in order, and holds no CR/LF in a value;
//! the early bytes that follow it are exactly those the body framing took.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use wsproxy_fast::buffer::{Buf, BUF_BYTES};
use wsproxy_fast::config::{self, Config};
use wsproxy_fast::dispatch::{self, Action, Inputs};
use wsproxy_fast::framing::body::Body;
use wsproxy_fast::handshake::request::{self, Kind, Peer, MAX_HEADERS};
use wsproxy_fast::upstream::Picker;

#[path = "../../tests/common/heads.rs"]
mod heads;

use heads::{Field, RequestCase};

/// The configuration every input runs under: routes with and without
/// header edits, a path rewrite, a prefix strip, an origin allow-list, a
/// hashing group, a default site, and a redirecting listener. The head
/// limit is small so inputs of a few KiB reach it.
const CONFIG: &str = r#"
max_header_bytes = 1024

[[listener]]
address = "127.0.0.1:1"

[[listener]]
address = "127.0.0.1:2"
redirect_https = true
redirect_port = 8443

[upstream.app]
servers = ["127.0.0.1:9"]

[upstream.sticky]
servers = ["127.0.0.1:9", "127.0.0.1:10", "127.0.0.1:11"]
balance = "hash"
hash_key = "header:X-User"

[upstream.by_query]
servers = ["127.0.0.1:9", "127.0.0.1:10"]
balance = "hash"
hash_key = "query:sid"

[[server]]
names = ["example.com", "*.example.org"]
request_headers = { Host = "$host", X-Scheme = "$scheme" }

[[server.route]]
location = "/ws"
upstream = "app"
origins = ["https://example.com"]

[[server.route]]
location = "^~ /api/"
upstream = "sticky"
strip_prefix = "/api"
request_headers = { X-Forwarded-For = "$remote_addr", X-Uri = "${request_uri}!", Cookie = "" }

[[server.route]]
location = "~ ^/r/"
upstream = "by_query"
rewrite = { pattern = '^/r/([a-z]*)(.*)$', to = '/$1/x$2' }

[[server]]
default = true

[[server.route]]
location = "/"
upstream = "app"

[[server.route]]
location = "= /exact"
upstream = "by_query"
request_headers = { X-Real-IP = "$remote_addr", X-Forwarded-Proto = "wss" }
"#;

fn config() -> &'static Config {
    static CONFIG_ONCE: OnceLock<Config> = OnceLock::new();
    CONFIG_ONCE.get_or_init(|| {
        config::parse(CONFIG, Path::new("fuzz.toml"), Path::new("."))
            .unwrap_or_else(|e| panic!("the fuzz configuration is invalid: {e}"))
    })
}

/// The peers each input is tried with.
const PEERS: [Peer; 2] = [
    Peer {
        ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        scheme: "http",
    },
    Peer {
        ip: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x77)),
        scheme: "https",
    },
];

fuzz_target!(|input: &[u8]| {
    let config = config();
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let head = match request::parse(input, config.max_head, &mut headers) {
        Ok(Some(head)) => head,
        Ok(None) => {
            assert!(input.len() < config.max_head, "partial past the limit");
            return;
        }
        Err(reject) => {
            assert!(!reject.why.is_empty());
            return;
        }
    };
    assert!(head.head_len <= input.len() && head.head_len <= config.max_head);
    let early = &input[head.head_len..];
    let fields: Vec<Field> = head
        .headers
        .iter()
        .map(|h| Field::new(h.name, h.value))
        .collect();
    let mut out = Buf::with_capacity(BUF_BYTES);
    for listener in 0..config.listeners.len() {
        for peer in PEERS {
            out.clear();
            let mut picker = Picker::new(&config.groups, 0);
            let inputs = Inputs {
                config,
                listener,
                peer,
                picker: &mut picker,
                now: Instant::now(),
                persistence: head.persistence(),
            };
            let plan = dispatch::decide(&head, early, inputs, &mut out);
            match plan.action {
                Action::Forward {
                    kind, body, group, ..
                } => {
                    assert_eq!(kind, head.kind);
                    let route = &config.routes[plan.route.expect("a forward has a route")];
                    let edited: Vec<&str> =
                        route.request.set.iter().map(|f| f.name.as_str()).collect();
                    let kept = config.groups[group].keepalive.idle > 0 && head.minor == 1;
                    check_forward(&out, &head, &fields, early, &edited, peer, (body, kept))
                }
                Action::Reply => check_redirect(out.data()),
                Action::Refuse(reject) => assert!(!reject.why.is_empty()),
                Action::Serve { .. } => panic!("the fuzz configuration serves no files"),
            }
        }
    }
});

/// The rewritten head and the early bytes after it.
fn check_forward(
    out: &Buf,
    head: &request::Head<'_, '_>,
    fields: &[Field],
    early: &[u8],
    edited: &[&str],
    peer: Peer,
    (body, kept): (Body, bool),
) {
    let written = out.data();
    let parsed = heads::parse_request(written)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(written)));
    assert_eq!(parsed.first.0, head.method);
    assert!(
        parsed.first.1.starts_with('/') && !parsed.first.1.contains([' ', '\r', '\n']),
        "target {:?}",
        parsed.first.1
    );
    assert_eq!(parsed.minor, head.minor);
    // The proxy writes the one agreed Content-Length itself, and
    // `Transfer-Encoding: chunked` for a plain request's chunked body.
    let content_length = first_length(fields);
    let chunked = matches!(head.body, Body::Chunked(_));
    let peer_text = peer.ip.to_string();
    let case = RequestCase {
        input: fields,
        upgrade: head.kind == Kind::Upgrade,
        kept,
        chunked,
        content_length,
        edited,
        peer: &peer_text,
        scheme: peer.scheme,
    };
    if let Err(e) = heads::check_request(&case, &parsed.fields) {
        panic!(
            "{e}\ninput fields: {fields:?}\nwritten: {:?}",
            String::from_utf8_lossy(written)
        );
    }
    // What follows the head: the early bytes the body framing took, no
    // more (a second request hidden behind the body stays behind).
    let taken = &written[parsed.len..];
    assert!(
        early.starts_with(taken),
        "the bytes after the head are not the client's"
    );
    let mut framing = head.body.clone();
    let advance = framing
        .advance(early)
        .expect("dispatch forwarded a broken body");
    assert_eq!(advance.used, taken.len());
    assert_eq!(framing, body, "the body state handed on");
}

/// The input's Content-Length (parse accepted it, so all its values
/// agree).
fn first_length(fields: &[Field]) -> Option<u64> {
    heads::client_framing(
        &fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("content-length"))
            .cloned()
            .collect::<Vec<_>>(),
    )
    .expect("parse accepted the Content-Length")
    .0
}

/// A redirect is a complete 308 with a clean `Location`.
fn check_redirect(written: &[u8]) {
    let parsed = heads::parse_response(written)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(written)));
    assert_eq!(parsed.first.0, "308");
    let location = heads::named(&parsed.fields, "location");
    let [location] = location.as_slice() else {
        panic!("no single Location: {:?}", String::from_utf8_lossy(written));
    };
    assert!(location.value.starts_with(b"https://"));
}
