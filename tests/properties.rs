//! Property tests (proptest) in the normal test run: the request and
//! response rewrites against the oracle in `common/heads.rs` for generated
//! heads, chunked body framing for random chunkings, and the tunnel relay
//! (`--relay copy` and `splice`) delivering exactly the bytes sent for
//! random write sizes both ways. The fuzz targets under `fuzz/` check the
//! same rewrite properties on arbitrary bytes; these run on every
//! `cargo test`, on heads built to be valid so no case is wasted.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
use std::sync::{mpsc, Mutex};
use std::thread;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use wsproxy_fast::buffer::{Buf, BUF_BYTES};
use wsproxy_fast::framing::body::Body;
use wsproxy_fast::handshake::edits::{RequestEdits, ResponseEdits};
use wsproxy_fast::handshake::fields::Persistence;
use wsproxy_fast::handshake::forwarded::TrustedProxies;
use wsproxy_fast::handshake::request::{self, Kind, Peer, MAX_HEADERS};
use wsproxy_fast::handshake::response::{self, Response};

use common::heads::{self, Field, RequestCase, ResponseCase};
use common::*;

// ----- Generated heads ------------------------------------------------------

/// Names the generated fields draw from besides random tokens: the
/// hop-by-hop ones, the proxy's own, and end-to-end ones a `Connection`
/// list may name.
const NAMES: [&str; 16] = [
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Upgrade",
    "X-Secret",
    "X-Other",
    "Accept",
    "Cookie",
    "Server",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "X-Forwarded-For",
    "X-Real-IP",
    "X-Forwarded-Proto",
];

/// Names a generated field may not have: the request needs exactly one of
/// each (or, for framing, the generator sets them on purpose).
const RESERVED: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "sec-websocket-key",
    "sec-websocket-version",
];

/// `name` with each letter's case flipped where `flips` says.
fn recase(name: &str, flips: &[bool]) -> String {
    name.chars()
        .zip(flips.iter().cycle())
        .map(|(c, &flip)| {
            if flip && c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else if flip {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn field_name() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        3 => select(&NAMES[..]).prop_map(str::to_string),
        1 => "[A-Za-z][A-Za-z0-9-]{0,10}",
    ];
    (base, prop::collection::vec(any::<bool>(), 1..8))
        .prop_map(|(name, flips)| recase(&name, &flips))
        .prop_filter("a reserved name", |name| {
            !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
        })
}

/// A field value: visible ASCII, inner spaces and tabs, obs-text; no
/// leading or trailing whitespace (httparse trims it).
fn plain_value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => 0x21u8..0x7f,
            1 => Just(b' '),
            1 => Just(b'\t'),
            1 => 0x80u8..=0xff,
        ],
        0..24,
    )
    .prop_map(|v| v.trim_ascii().to_vec())
}

/// A comma list of names, as a `Connection` value: any spacing, empty
/// elements, any case.
fn name_list() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(
            prop_oneof![
                field_name(),
                Just("keep-alive".to_string()),
                Just("close".to_string()),
                Just("content-length".to_string()),
                Just("Host".to_string()),
            ],
            1..4,
        ),
        select(vec![",", ", ", " ,", ",,", " , "]),
    )
        .prop_map(|(names, sep)| names.join(sep).into_bytes())
}

/// A comma list of addresses, as an `X-Forwarded-For` value.
fn hop_list() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            "[0-9a-f]{1,4}::[0-9a-f]{1,4}",
            Just("unknown".to_string()),
        ],
        1..4,
    )
    .prop_map(|hops| hops.join(", ").into_bytes())
}

/// A field whose value suits its name.
fn field() -> impl Strategy<Value = Field> {
    field_name().prop_flat_map(|name| {
        let value = match name.to_ascii_lowercase().as_str() {
            "connection" => name_list().boxed(),
            "x-forwarded-for" => hop_list().boxed(),
            _ => plain_value().boxed(),
        };
        value.prop_map(move |value| Field {
            name: name.clone(),
            value,
        })
    })
}

/// One of the few generated fields, or `None`, placed at `at` among them.
fn insert_at(fields: &mut Vec<Field>, at: usize, field: Field) {
    let at = at % (fields.len() + 1);
    fields.insert(at, field);
}

#[derive(Clone, Debug)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        2 => Just(Framing::None),
        1 => (0u64..100_000).prop_map(Framing::Length),
        1 => Just(Framing::Chunked),
    ]
}

#[derive(Debug)]
struct RequestSpec {
    upgrade: bool,
    method: &'static str,
    target: String,
    fields: Vec<Field>,
    framing: Framing,
}

impl RequestSpec {
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        for f in &self.fields {
            out.extend_from_slice(f.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&f.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// A valid request head: a WebSocket upgrade (with its required fields at
/// random places, `Connection` listing `upgrade` among others) or a plain
/// request (possibly with a body), around random fields.
fn request_spec() -> impl Strategy<Value = RequestSpec> {
    (
        any::<bool>(),
        select(vec!["GET", "POST", "HEAD", "DELETE"]),
        "/[a-z0-9/._-]{0,12}(\\?[a-z=&0-9]{0,8})?",
        prop::collection::vec(field(), 0..12),
        prop::collection::vec(any::<usize>(), 6),
        name_list(),
        framing(),
    )
        .prop_map(
            |(upgrade, method, target, mut fields, places, more_tokens, framing)| {
                insert_at(&mut fields, places[0], Field::new("Host", b"example.com"));
                let method = if upgrade { "GET" } else { method };
                // An upgrade carries no body: one that says it does is
                // refused (a row of tests/inputs.rs); `Content-Length: 0`
                // is allowed.
                let framing = match (upgrade, framing) {
                    (true, Framing::Length(_)) => Framing::Length(0),
                    (true, Framing::Chunked) => Framing::None,
                    (_, framing) => framing,
                };
                if upgrade {
                    let mut connection = b"Upgrade, ".to_vec();
                    connection.extend_from_slice(&more_tokens);
                    insert_at(
                        &mut fields,
                        places[1],
                        Field::new("connection", &connection),
                    );
                    insert_at(&mut fields, places[2], Field::new("Upgrade", b"websocket"));
                    insert_at(
                        &mut fields,
                        places[3],
                        Field::new("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                    );
                    insert_at(
                        &mut fields,
                        places[4],
                        Field::new("Sec-WebSocket-Version", b"13"),
                    );
                }
                match framing {
                    Framing::None => {}
                    Framing::Length(n) => insert_at(
                        &mut fields,
                        places[5],
                        Field::new("Content-Length", n.to_string().as_bytes()),
                    ),
                    Framing::Chunked => insert_at(
                        &mut fields,
                        places[5],
                        Field::new("Transfer-Encoding", b"chunked"),
                    ),
                }
                RequestSpec {
                    upgrade,
                    method,
                    target,
                    fields,
                    framing,
                }
            },
        )
        .prop_filter("too many Connection tokens", |spec| {
            let mut distinct = heads::tokens_of(&spec.fields, "connection");
            distinct.sort();
            distinct.dedup();
            distinct.len() <= 16
        })
        .prop_filter("a plain request asking for websocket", |spec| {
            spec.upgrade || !heads::tokens_of(&spec.fields, "upgrade").contains(&"websocket".into())
        })
}

fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        Just(Peer {
            ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            scheme: "http",
        }),
        Just(Peer {
            ip: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)),
            scheme: "https",
        }),
    ]
}

/// Fields a route sets in the edited case; `Cookie` with an empty value
/// removes the client's.
const SET: [(&str, &str); 3] = [
    ("X-Other", "$remote_addr"),
    ("Cookie", ""),
    ("X-Forwarded-Proto", "wss"),
];

fn request_edits(edited: bool) -> RequestEdits {
    let mut edits = RequestEdits::default();
    if edited {
        for (name, value) in SET {
            edits.set(name, value).unwrap();
        }
    }
    edits
}

proptest! {
    /// The upstream head parses; no hop-by-hop field but the proxy's own;
    /// every end-to-end field once per input line, unchanged, in order; no
    /// CR/LF in a value (see `heads::check_request`).
    #[test]
    fn request_rewrite_keeps_end_to_end_fields_and_drops_hop_by_hop(
        spec in request_spec(),
        peer in peer(),
        edited in any::<bool>(),
        reuse in any::<bool>(),
    ) {
        let input = spec.bytes();
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = request::parse(&input, BUF_BYTES, &mut headers)
            .map_err(|r| TestCaseError::fail(format!("refused: {}", r.why)))?
            .expect("a complete head");
        prop_assert_eq!(head.kind == Kind::Upgrade, spec.upgrade);
        prop_assert_eq!(head.head_len, input.len());
        let edits = request_edits(edited);
        let mut out = Buf::with_capacity(BUF_BYTES);
        let proxies = TrustedProxies::new(Vec::new());
        let rewrite = request::Rewrite {
            target: head.target,
            host: "example.com",
            edits: &edits,
            proxies: &proxies,
            reuse,
        };
        request::write_upstream(&mut out, &head, peer, &rewrite)
            .expect("fits");
        let parsed = heads::parse_request(out.data()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(parsed.len, out.len());
        prop_assert_eq!(&parsed.first, &(spec.method.to_string(), spec.target.clone()));
        let edited_names: Vec<&str> = if edited { SET.iter().map(|s| s.0).collect() } else { vec![] };
        let peer_text = peer.ip.to_string();
        let case = RequestCase {
            input: &spec.fields,
            upgrade: spec.upgrade,
            kept: reuse,
            chunked: !spec.upgrade && matches!(spec.framing, Framing::Chunked),
            content_length: match spec.framing {
                Framing::Length(n) => Some(n),
                _ => None,
            },
            edited: &edited_names,
            peer: &peer_text,
            scheme: peer.scheme,
        };
        heads::check_request(&case, &parsed.fields).map_err(|e| {
            TestCaseError::fail(format!("{e}\nwritten: {:?}", String::from_utf8_lossy(out.data())))
        })?;
    }
}

// ----- Generated responses ----------------------------------------------------

#[derive(Debug)]
struct ResponseSpec {
    status: u16,
    fields: Vec<Field>,
    framing: Framing,
    kind: Kind,
    edited: bool,
}

impl ResponseSpec {
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} Reason Text\r\n", self.status).into_bytes();
        for f in &self.fields {
            out.extend_from_slice(f.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&f.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// A final response: random fields (a `Connection` list possibly naming
/// the framing fields), one framing, answering an upgrade, a GET or a HEAD.
fn response_spec() -> impl Strategy<Value = ResponseSpec> {
    (
        select(vec![
            200u16, 201, 204, 206, 301, 304, 403, 404, 426, 500, 502,
        ]),
        prop::collection::vec(field(), 0..12),
        any::<usize>(),
        framing(),
        select(vec![
            Kind::Upgrade,
            Kind::Plain { head: false },
            Kind::Plain { head: true },
        ]),
        any::<bool>(),
    )
        .prop_map(|(status, mut fields, place, framing, kind, edited)| {
            match framing {
                Framing::None => {}
                Framing::Length(n) => insert_at(
                    &mut fields,
                    place,
                    Field::new("Content-Length", n.to_string().as_bytes()),
                ),
                Framing::Chunked => insert_at(
                    &mut fields,
                    place,
                    Field::new("Transfer-Encoding", b"chunked"),
                ),
            }
            ResponseSpec {
                status,
                fields,
                framing,
                kind,
                edited,
            }
        })
        .prop_filter("too many Connection tokens", |spec| {
            let mut distinct = heads::tokens_of(&spec.fields, "connection");
            distinct.sort();
            distinct.dedup();
            distinct.len() <= 16
        })
}

/// The route's response edits in the edited case: (name, value, always).
const ADD: [(&str, &str, bool); 2] = [
    ("Strict-Transport-Security", "max-age=63072000", true),
    ("X-Frame-Options", "DENY", false),
];
const HIDE: [&str; 2] = ["Server", "X-Secret"];

fn response_edits(edited: bool) -> ResponseEdits {
    let mut edits = ResponseEdits::default();
    if edited {
        for (name, value, always) in ADD {
            edits.add(name, value, always).unwrap();
        }
        for name in HIDE {
            edits.hide(name).unwrap();
        }
    }
    edits
}

proptest! {
    /// The client's head parses with the same status; no hop-by-hop field
    /// but `Connection: close` (the body's own `Transfer-Encoding` aside);
    /// every other field once per input line, unchanged, in order; the
    /// route's additions; and the framing the client reads is the one the
    /// proxy relays by.
    #[test]
    fn response_rewrite_keeps_end_to_end_fields_and_the_framing(
        spec in response_spec(),
        asked in select(vec![Persistence::Close, Persistence::Persistent, Persistence::KeepAlive]),
    ) {
        let input = spec.bytes();
        let edits = response_edits(spec.edited);
        let mut out = Buf::with_capacity(BUF_BYTES);
        let answer = response::rewrite(&input, BUF_BYTES, spec.kind, &edits, asked, &mut out)
            .map_err(|r| TestCaseError::fail(format!("refused: {}", r.why)))?
            .expect("a complete head");
        let Response::Final { head_len, status, body, persistence, reusable } = answer else {
            return Err(TestCaseError::fail(format!("not a final answer: {answer:?}")));
        };
        // Only the upstream's close ends a body without length: the
        // client's connection cannot outlive it, nor can the upstream's be
        // reused.
        let until_close = body == Body::UntilClose;
        prop_assert_eq!(persistence, if until_close { Persistence::Close } else { asked });
        let upstream_closes = heads::tokens_of(&spec.fields, "connection")
            .iter()
            .any(|t| t.eq_ignore_ascii_case("close"));
        prop_assert_eq!(reusable, !until_close && !upstream_closes);
        prop_assert_eq!(head_len, input.len());
        prop_assert_eq!(status, spec.status);
        let parsed = heads::parse_response(out.data()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(parsed.len, out.len());
        prop_assert_eq!(&parsed.first.0, &spec.status.to_string());
        let success = matches!(spec.status, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308);
        let added: Vec<(&str, &str, bool)> = if spec.edited {
            ADD.iter().map(|&(n, v, always)| (n, v, always || success)).collect()
        } else {
            vec![]
        };
        let hidden: &[&str] = if spec.edited { &HIDE } else { &[] };
        let connection: Option<&[u8]> = match persistence {
            Persistence::Close => Some(b"close"),
            Persistence::KeepAlive => Some(b"keep-alive"),
            Persistence::Persistent => None,
        };
        let case = ResponseCase { input: &spec.fields, hidden, added: &added, connection };
        heads::check_final_response(&case, &parsed.fields).map_err(|e| {
            TestCaseError::fail(format!("{e}\nwritten: {:?}", String::from_utf8_lossy(out.data())))
        })?;

        let no_body = matches!(spec.kind, Kind::Plain { head: true })
            || spec.status == 204
            || spec.status == 304;
        if no_body {
            prop_assert_eq!(body, Body::Empty);
        } else {
            let read = heads::client_framing(&parsed.fields).map_err(TestCaseError::fail)?;
            let agrees = match (&spec.framing, &body, read) {
                (Framing::Length(n), Body::Length(m), (Some(k), false)) => n == m && *m == k,
                (Framing::Chunked, Body::Chunked(_), (None, true)) => true,
                (Framing::None, Body::UntilClose, (None, false)) => true,
                _ => false,
            };
            prop_assert!(agrees, "sent {:?}, relayed {:?}, the client reads {:?}", spec.framing, body, read);
        }
    }
}

// ----- Chunked body framing -------------------------------------------------------

/// A chunked body: chunks (sizes in any case of hex, with or without
/// extensions), the last chunk, trailers; then bytes that are not the
/// body's.
fn chunked_body() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        prop::collection::vec(
            (
                prop::collection::vec(any::<u8>(), 1..300),
                any::<bool>(),
                any::<bool>(),
            ),
            0..6,
        ),
        prop::collection::vec("[A-Za-z-]{1,8}: [ -~]{0,10}", 0..3),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(chunks, trailers, after)| {
            let mut body = Vec::new();
            for (data, upper, extension) in chunks {
                let size = if upper {
                    format!("{:X}", data.len())
                } else {
                    format!("{:x}", data.len())
                };
                body.extend_from_slice(size.as_bytes());
                if extension {
                    body.extend_from_slice(b";name=\"v\"");
                }
                body.extend_from_slice(b"\r\n");
                body.extend_from_slice(&data);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\n");
            for t in trailers {
                body.extend_from_slice(t.as_bytes());
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"\r\n");
            (body, after)
        })
}

/// Splits `len` bytes at the sorted, deduplicated `cuts`.
fn pieces(len: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
    at.push(0);
    at.push(len);
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| (w[0], w[1])).collect()
}

proptest! {
    /// However the bytes arrive, the body takes exactly its own bytes and
    /// says done at its last one; what follows is left alone.
    #[test]
    fn chunked_body_ends_exactly_at_its_end_for_any_chunking(
        (body, after) in chunked_body(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut stream = body.clone();
        stream.extend_from_slice(&after);
        let mut framing = Body::chunked();
        let mut used = 0;
        let mut done = false;
        for (from, to) in pieces(stream.len(), &cuts) {
            let advance = framing.advance(&stream[from..to]).map_err(|e| {
                TestCaseError::fail(format!("{e} at {from}..{to} of {:?}", String::from_utf8_lossy(&body)))
            })?;
            used += advance.used;
            if advance.done {
                done = true;
                break;
            }
            prop_assert_eq!(advance.used, to - from, "an unfinished body takes every byte");
        }
        prop_assert!(done, "the body never ended");
        prop_assert!(framing.is_done());
        prop_assert_eq!(used, body.len());
    }
}

// ----- The relay ---------------------------------------------------------------

/// An upstream that answers 101 and hands its end of each tunnel to the
/// test.
fn handoff_upstream() -> (RawUpstream, mpsc::Receiver<TcpStream>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let upstream = RawUpstream::start(move |mut stream| {
        if let Ok((_, early)) = accept_upgrade(&mut stream) {
            assert!(early.is_empty());
            tx.lock().unwrap().send(stream).unwrap();
        }
    });
    (upstream, rx)
}

/// Writes `data` in pieces of the sizes in `sizes` (cycled), then shuts
/// the write side; reads to EOF meanwhile and returns what arrived.
fn exchange(mut end: TcpStream, data: Vec<u8>, sizes: Vec<usize>) -> Vec<u8> {
    let mut writer = end.try_clone().unwrap();
    let w = thread::spawn(move || {
        use std::io::Write;
        let mut at = 0;
        for size in sizes.iter().cycle() {
            if at == data.len() {
                break;
            }
            let to = (at + size).min(data.len());
            writer.write_all(&data[at..to]).expect("write");
            at = to;
        }
        writer
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
    });
    let got = read_all(&mut end);
    w.join().unwrap();
    got
}

/// Longest stream each way in one case, in bytes.
const MAX_STREAM: usize = 256 * 1024;

/// Cases per relay: each opens a tunnel through a real proxy process.
const RELAY_CASES: u32 = 16;

/// Random streams both ways at once through one proxy, each written in
/// random piece sizes: each side reads exactly the other's bytes, in order.
fn relay_delivers_exactly_the_bytes_sent(relay: &str) {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_to(&[upstream.addr], &["--relay", relay]);
    let mut runner = TestRunner::new(RunnerConfig {
        cases: RELAY_CASES,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let sizes = || {
        prop::collection::vec(
            prop_oneof![1usize..64, 64usize..4096, 4096usize..40_000],
            1..16,
        )
    };
    let case = (0..MAX_STREAM, 0..MAX_STREAM, any::<u64>(), sizes(), sizes());
    runner
        .run(&case, |(up_len, down_len, seed, up_sizes, down_sizes)| {
            let mut client = send(
                proxy.addr(),
                upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
            );
            let (head, rest) = ws::read_head(&mut client).unwrap();
            prop_assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
            prop_assert!(rest.is_empty());
            let server = ends.recv_timeout(IO_TIMEOUT).expect("the upstream's end");
            let (up, down) = (pattern(up_len, seed), pattern(down_len, !seed));
            let (up2, down2) = (up.clone(), down.clone());
            let c = thread::spawn(move || exchange(client, up2, up_sizes));
            let s = thread::spawn(move || exchange(server, down2, down_sizes));
            let at_upstream = s.join().unwrap();
            let at_client = c.join().unwrap();
            prop_assert!(
                at_upstream == up,
                "client→upstream: {} of {} bytes, first difference at {:?}",
                at_upstream.len(),
                up.len(),
                first_difference(&at_upstream, &up)
            );
            prop_assert!(
                at_client == down,
                "upstream→client: {} of {} bytes, first difference at {:?}",
                at_client.len(),
                down.len(),
                first_difference(&at_client, &down)
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("--relay {relay}: {e}"));
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

#[test]
fn relay_copy_delivers_exactly_the_bytes_sent() {
    relay_delivers_exactly_the_bytes_sent("copy");
}

#[test]
fn relay_splice_delivers_exactly_the_bytes_sent() {
    relay_delivers_exactly_the_bytes_sent("splice");
}

// ----- Pipelined requests on a kept connection ---------------------------------

/// One request of a pipeline: its method, target and body as sent (a
/// chunked one still encoded).
#[derive(Clone, Debug)]
struct Piped {
    method: &'static str,
    target: String,
    body: PipedBody,
}

#[derive(Clone, Debug)]
enum PipedBody {
    None,
    Length(Vec<u8>),
    Chunked(Vec<u8>),
}

impl Piped {
    fn bytes(&self) -> Vec<u8> {
        let mut out =
            format!("{} {} HTTP/1.1\r\nHost: a\r\n", self.method, self.target).into_bytes();
        match &self.body {
            PipedBody::None => out.extend_from_slice(b"\r\n"),
            PipedBody::Length(body) => {
                out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                out.extend_from_slice(body);
            }
            PipedBody::Chunked(body) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                out.extend_from_slice(body);
            }
        }
        out
    }

    /// The body bytes the upstream must get: exactly the request's own.
    fn body_bytes(&self) -> &[u8] {
        match &self.body {
            PipedBody::None => b"",
            PipedBody::Length(b) | PipedBody::Chunked(b) => b,
        }
    }
}

fn piped() -> impl Strategy<Value = Piped> {
    (
        select(vec!["GET", "POST", "PUT", "DELETE"]),
        "/[a-z]{1,6}",
        prop_oneof![
            Just(PipedBody::None),
            // Bodies that may themselves look like requests.
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..20_000),
                Just(b"GET /hidden HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
            ]
            .prop_map(PipedBody::Length),
            chunked_body().prop_map(|(body, _)| PipedBody::Chunked(body)),
        ],
    )
        .prop_map(|(method, target, body)| Piped {
            method,
            target,
            body,
        })
}

/// An upstream that answers each request on a kept connection with its
/// target in `X-Target` and its body, as it arrived, as the answer's body.
fn mirror_upstream() -> RawUpstream {
    RawUpstream::start(|mut stream| loop {
        let mut requests = Messages::new(&mut stream);
        if !requests.peek_more() {
            return;
        }
        let (head, body) = requests.request();
        drop(requests);
        let target = head.split(' ').nth(1).unwrap_or("").to_string();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nX-Target: {target}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        use std::io::Write;
        if stream.write_all(answer.as_bytes()).is_err() || stream.write_all(&body).is_err() {
            return;
        }
    })
}

/// Cases: each is a client connection through a real proxy process.
const PIPELINE_CASES: u32 = 24;

/// However requests are pipelined and however their bytes are cut into
/// writes, each is answered in order, and each reaches the upstream with
/// exactly its own body: bytes past a body are the next request, never
/// part of this one (the upstream mirrors what it got).
#[test]
fn pipelined_requests_reach_the_upstream_whole_and_in_order() {
    let _w = watchdog_for(std::time::Duration::from_secs(120));
    let upstream = mirror_upstream();
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut runner = TestRunner::new(RunnerConfig {
        cases: PIPELINE_CASES,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let sizes = prop::collection::vec(
        prop_oneof![1usize..16, 16usize..2000, 2000usize..40_000],
        1..12,
    );
    let case = (prop::collection::vec(piped(), 1..6), sizes);
    runner
        .run(&case, |(requests, sizes)| {
            let mut client = connect(proxy.addr());
            let mut writer = client.try_clone().unwrap();
            let bytes: Vec<u8> = requests.iter().flat_map(Piped::bytes).collect();
            let w = thread::spawn(move || {
                use std::io::Write;
                let mut at = 0;
                for size in sizes.iter().cycle() {
                    if at == bytes.len() {
                        break;
                    }
                    let to = (at + size).min(bytes.len());
                    writer.write_all(&bytes[at..to]).expect("write");
                    at = to;
                }
            });
            let mut answers = Messages::new(&mut client);
            for (i, request) in requests.iter().enumerate() {
                let (head, body) = answers.response(false);
                prop_assert_eq!(status_of(&head), 200, "request {}: {}", i, head);
                prop_assert_eq!(common::field(&head, "x-target"), Some(request.target.as_str()), "request {}", i);
                prop_assert!(
                    body == request.body_bytes(),
                    "request {} ({} {}): the upstream got {} body bytes, sent {}, first difference at {:?}",
                    i,
                    request.method,
                    request.target,
                    body.len(),
                    request.body_bytes().len(),
                    first_difference(&body, request.body_bytes())
                );
            }
            prop_assert!(answers.buffered().is_empty(), "an answer nobody asked for");
            w.join().unwrap();
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
