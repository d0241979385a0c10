//! Fuzz target: an upstream's answer, read by
//! `handshake::response::rewrite` the way the pair reads it (interim 1xx
//! heads passed on one after another, then the 101 or the final head), for
//! each kind of request (upgrade, GET, HEAD) with and without route edits.
//!
//! Besides panics it checks what the proxy wrote, with the oracle in
//! `tests/common/heads.rs`: a final head parses again with the same status,
//! has no hop-by-hop field, passes every other field once per input line,
//! unchanged and in order, adds the route's fields, ends with
//! `Connection: close`, and frames its body the way the proxy relays it; a
//! rewritten 101 keeps the handshake's fields.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wsproxy_fast::buffer::{Buf, BUF_BYTES};
use wsproxy_fast::config::MAX_HEAD_BYTES;
use wsproxy_fast::framing::body::Body;
use wsproxy_fast::handshake::edits::ResponseEdits;
use wsproxy_fast::handshake::fields::Persistence;
use wsproxy_fast::handshake::request::Kind;
use wsproxy_fast::handshake::response::{self, Response, MAX_HEADERS};

#[path = "../../tests/common/heads.rs"]
mod heads;

use heads::{Field, ResponseCase};

/// The route's response edits: (name, value, always) added, names hidden.
const ADDED: [(&str, &str, bool); 2] = [
    ("Strict-Transport-Security", "max-age=31536000", true),
    ("X-Frame-Options", "DENY", false),
];
const HIDDEN: [&str; 2] = ["Server", "X-Powered-By"];

fn edits() -> &'static [ResponseEdits; 2] {
    static EDITS: OnceLock<[ResponseEdits; 2]> = OnceLock::new();
    EDITS.get_or_init(|| {
        let mut some = ResponseEdits::default();
        for (name, value, always) in ADDED {
            some.add(name, value, always).expect("a valid added field");
        }
        for name in HIDDEN {
            some.hide(name).expect("a valid hidden field");
        }
        [ResponseEdits::default(), some]
    })
}

/// The statuses nginx's `add_header` covers without `always` (and 101).
fn success(status: u16) -> bool {
    matches!(
        status,
        101 | 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

const KINDS: [Kind; 3] = [
    Kind::Upgrade,
    Kind::Plain { head: false },
    Kind::Plain { head: true },
];

fuzz_target!(|input: &[u8]| {
    // Small enough that fuzzed inputs reach it.
    const LIMIT: usize = 2048;
    let mut out = Buf::with_capacity(BUF_BYTES);
    for kind in KINDS {
        for (edited, edits) in edits().iter().enumerate() {
            for asked in ASKED {
                out.clear();
                read_answer(
                    input,
                    LIMIT.min(MAX_HEAD_BYTES),
                    (kind, asked),
                    edits,
                    edited == 1,
                    &mut out,
                );
            }
        }
    }
});

/// What the client's connection may be told: each is tried.
const ASKED: [Persistence; 3] = [
    Persistence::Close,
    Persistence::Persistent,
    Persistence::KeepAlive,
];

/// Reads interim heads then the answer, checking each.
fn read_answer(
    input: &[u8],
    limit: usize,
    (kind, asked): (Kind, Persistence),
    edits: &ResponseEdits,
    edited: bool,
    out: &mut Buf,
) {
    let mut at = 0;
    // Each interim head is at least `HTTP/1.1 1xx\r\n\r\n`, so this ends.
    loop {
        let before = out.len();
        let answer = match response::rewrite(&input[at..], limit, kind, edits, asked, out) {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                assert!(input.len() - at < limit, "partial past the limit");
                assert_eq!(out.len(), before, "wrote for a partial head");
                return;
            }
            Err(reject) => {
                assert!(!reject.why.is_empty());
                return;
            }
        };
        let rest = &input[at..];
        match answer {
            Response::Interim { head_len } => {
                assert!(head_len > 0 && head_len <= rest.len() && head_len <= limit);
                assert_eq!(out.len(), before, "an interim head passes as sent");
                let parsed =
                    heads::parse_response_as_sent(&rest[..head_len]).expect("an interim head");
                assert!(parsed.first.0.starts_with('1') && parsed.first.0 != "101");
                at += head_len;
            }
            Response::Switching {
                head_len,
                rewritten,
            } => {
                assert_eq!(kind, Kind::Upgrade, "101 to a plain request");
                assert!(head_len <= rest.len() && head_len <= limit);
                assert_eq!(rewritten, edited);
                if rewritten {
                    check_switching(&rest[..head_len], &out.data()[before..]);
                } else {
                    assert_eq!(out.len(), before, "an unedited 101 passes as sent");
                }
                return;
            }
            Response::Final {
                head_len,
                status,
                body,
                persistence,
                reusable,
            } => {
                assert!(head_len <= rest.len() && head_len <= limit);
                // Only the upstream's close ends a body without length.
                let until_close = body == Body::UntilClose;
                assert_eq!(persistence, if until_close { Persistence::Close } else { asked });
                assert!(!(reusable && until_close), "reused after a body read to its close");
                check_final(
                    &rest[..head_len],
                    &out.data()[before..],
                    (status, persistence),
                    kind,
                    &body,
                    edited,
                );
                return;
            }
        }
    }
}

fn fields_of(head: &[u8]) -> Vec<Field> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    res.parse(head).expect("the proxy parsed it");
    res.headers
        .iter()
        .map(|h| Field::new(h.name, h.value))
        .collect()
}

fn check_final(
    input: &[u8],
    written: &[u8],
    (status, persistence): (u16, Persistence),
    kind: Kind,
    body: &Body,
    edited: bool,
) {
    let parsed = heads::parse_response(written)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(written)));
    assert_eq!(parsed.len, written.len(), "the rewrite wrote past its head");
    assert_eq!(parsed.first.0, status.to_string());
    assert!(status >= 200);
    let fields = fields_of(input);
    let added: Vec<(&str, &str, bool)> = if edited {
        ADDED
            .iter()
            .map(|&(name, value, always)| (name, value, always || success(status)))
            .collect()
    } else {
        Vec::new()
    };
    let hidden: &[&str] = if edited { &HIDDEN } else { &[] };
    let case = ResponseCase {
        input: &fields,
        hidden,
        added: &added,
        connection: match persistence {
            Persistence::Close => Some(b"close"),
            Persistence::KeepAlive => Some(b"keep-alive"),
            Persistence::Persistent => None,
        },
    };
    if let Err(e) = heads::check_final_response(&case, &parsed.fields) {
        panic!(
            "{e}\ninput: {:?}\nwritten: {:?}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(written)
        );
    }
    // The client frames the body as the proxy relays it (RFC 9112 §6.3).
    let no_body = matches!(kind, Kind::Plain { head: true }) || status == 204 || status == 304;
    if no_body {
        assert_eq!(*body, Body::Empty);
        return;
    }
    let framing = heads::client_framing(&parsed.fields).unwrap_or_else(|e| {
        panic!(
            "{e}: the client cannot frame {:?}",
            String::from_utf8_lossy(written)
        )
    });
    let agrees = match (body, framing) {
        (Body::Length(n), (Some(m), false)) => *n == m,
        (Body::Chunked(_), (None, true)) => true,
        (Body::UntilClose, (None, false)) => true,
        _ => false,
    };
    assert!(
        agrees,
        "the proxy relays {body:?} but the client reads {framing:?} from {:?}",
        String::from_utf8_lossy(written)
    );
}

/// A 101 the route edited: the same fields but the hidden and replaced
/// ones, then the added ones; the handshake's own always there.
fn check_switching(input: &[u8], written: &[u8]) {
    let parsed = heads::parse_response(written)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(written)));
    assert_eq!(parsed.len, written.len());
    assert_eq!(parsed.first.0, "101");
    let fields = fields_of(input);
    let route_owned = |f: &&Field| {
        HIDDEN.iter().any(|h| f.name.eq_ignore_ascii_case(h))
            || ADDED.iter().any(|a| f.name.eq_ignore_ascii_case(a.0))
    };
    let expected: Vec<&Field> = fields.iter().filter(|f| !route_owned(f)).collect();
    let n = expected.len();
    let passed: Vec<&Field> = parsed.fields[..n.min(parsed.fields.len())].iter().collect();
    assert_eq!(passed, expected, "{:?}", String::from_utf8_lossy(written));
    let added: Vec<(&str, &[u8])> = parsed.fields[n..]
        .iter()
        .map(|f| (f.name.as_str(), f.value.as_slice()))
        .collect();
    let want: Vec<(&str, &[u8])> = ADDED.iter().map(|a| (a.0, a.1.as_bytes())).collect();
    assert_eq!(added, want);
}
