//! The connection state machine driven by a scripted client: preface and
//! SETTINGS, requests in and out, stream states, GOAWAY. Flow control is
//! tested in `flow.rs`, the attack limits in `limits.rs`; both use the
//! client and server here.

use super::*;
use crate::h2::frame::{FLAG_END_HEADERS, HEADERS};
use crate::h2::hpack::Encoder;
use crate::h2::request::Target;
use std::time::Duration;

/// A client: its encoder, and the bytes it has yet to send.
struct Client {
    enc: Encoder,
    bytes: Vec<u8>,
}

impl Client {
    fn new() -> Self {
        let mut bytes = PREFACE.to_vec();
        Frame::Settings {
            ack: false,
            settings: Settings::default(),
        }
        .encode(&mut bytes);
        Self {
            enc: Encoder::new(4096, 4096, true),
            bytes,
        }
    }

    fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) {
        let mut block = Vec::new();
        self.enc.encode(
            fields
                .iter()
                .map(|(n, v)| Field::new(n.as_bytes(), v.as_bytes())),
            &mut block,
        );
        frame::encode_field_block(&mut self.bytes, stream, &block, end_stream, 16_384);
    }

    fn get(&mut self, stream: u32) {
        self.headers(stream, &GET, true);
    }

    fn frame(&mut self, f: Frame<'_>) {
        f.encode(&mut self.bytes);
    }
}

const GET: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "a.example"),
    (":path", "/"),
];
const POST: [(&str, &str); 4] = [
    (":method", "POST"),
    (":scheme", "https"),
    (":authority", "a.example"),
    (":path", "/up"),
];

struct Server {
    conn: Conn,
    out: Vec<u8>,
    now: Instant,
}

/// What one `feed` produced, owned.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Request(u32, bool),
    TooLarge(u32),
    Data(u32, Vec<u8>, bool),
    Trailers(u32, usize),
    Reset(u32, u32),
    Window(u32),
    PingAck,
    GoAway(u32),
}

impl Server {
    fn new(config: Config) -> Self {
        let now = Instant::now();
        let mut conn = Conn::new(config);
        let mut out = Vec::new();
        conn.start(now, &mut out);
        Self { conn, out, now }
    }

    fn feed(&mut self, client: &mut Client) -> Result<Vec<Seen>, ConnError> {
        let mut events = Vec::new();
        let bytes = std::mem::take(&mut client.bytes);
        let taken = self
            .conn
            .receive(&bytes, self.now, &mut self.out, &mut events)?;
        assert_eq!(taken, bytes.len(), "whole frames were fed");
        Ok(events
            .into_iter()
            .map(|e| match e {
                Event::Request {
                    stream, end_stream, ..
                } => Seen::Request(stream, end_stream),
                Event::TooLarge { stream } => Seen::TooLarge(stream),
                Event::Data {
                    stream,
                    data,
                    end_stream,
                } => Seen::Data(stream, data.to_vec(), end_stream),
                Event::Trailers { stream, fields } => Seen::Trailers(stream, fields.len()),
                Event::Reset { stream, code } => Seen::Reset(stream, code),
                Event::WindowOpened { stream } => Seen::Window(stream),
                Event::PingAck { .. } => Seen::PingAck,
                Event::GoAway { last_stream, .. } => Seen::GoAway(last_stream),
            })
            .collect())
    }

    /// The frames written since the last call.
    fn written(&mut self) -> Vec<Frame<'static>> {
        let bytes: &'static [u8] = Vec::leak(std::mem::take(&mut self.out));
        let mut frames = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            match frame::decode(rest, crate::h2::settings::MAX_MAX_FRAME_SIZE) {
                Ok(Decoded::Frame { frame, len }) => {
                    frames.push(frame);
                    rest = &rest[len..];
                }
                other => panic!("the server wrote {other:?}"),
            }
        }
        frames
    }
}

fn rst(stream: u32, code: ErrorCode) -> Frame<'static> {
    Frame::RstStream {
        stream,
        code: code.to_u32(),
    }
}

fn goaway_code(frames: &[Frame<'_>]) -> Option<u32> {
    frames.iter().find_map(|f| match f {
        Frame::GoAway { code, .. } => Some(*code),
        _ => None,
    })
}

fn opened() -> (Server, Client) {
    let mut s = Server::new(Config::default());
    let mut c = Client::new();
    assert_eq!(s.feed(&mut c), Ok(vec![]));
    let w = s.written();
    assert!(
        matches!(w[0], Frame::Settings { ack: false, settings } if settings.enable_connect_protocol == Some(true))
    );
    assert!(
        matches!(w[1], Frame::WindowUpdate { stream: 0, increment } if increment == (1 << 20) - 65_535)
    );
    assert!(matches!(w[2], Frame::Settings { ack: true, .. }));
    (s, c)
}

mod flow;
mod limits;

#[test]
fn preface_and_first_settings() {
    // The preface may arrive in pieces.
    let mut s = Server::new(Config::default());
    let mut events = Vec::new();
    assert_eq!(
        s.conn
            .receive(&PREFACE[..10], s.now, &mut s.out, &mut events),
        Ok(0)
    );
    // A wrong preface (an HTTP/1.1 request) is refused.
    let mut s = Server::new(Config::default());
    let err = s
        .conn
        .receive(b"GET / HTTP/1.1\r\n", s.now, &mut s.out, &mut events)
        .expect_err("refused");
    assert_eq!(err.code, ErrorCode::ProtocolError);
    assert_eq!(
        goaway_code(&s.written()),
        Some(ErrorCode::ProtocolError.to_u32())
    );
    assert!(s.conn.is_closed());
    // The first frame has to be SETTINGS.
    let mut s = Server::new(Config::default());
    let mut c = Client {
        enc: Encoder::new(4096, 4096, false),
        bytes: PREFACE.to_vec(),
    };
    c.frame(Frame::Ping {
        ack: false,
        data: [0; 8],
    });
    assert_eq!(
        s.feed(&mut c).expect_err("refused").code,
        ErrorCode::ProtocolError
    );
}

#[test]
fn settings_ack_is_tracked_and_ping_answered() {
    let (mut s, mut c) = opened();
    assert!(s.conn.settings_unacked_since().is_some());
    c.frame(Frame::Settings {
        ack: true,
        settings: Settings::default(),
    });
    c.frame(Frame::Ping {
        ack: false,
        data: *b"12345678",
    });
    assert_eq!(s.feed(&mut c), Ok(vec![]));
    assert!(s.conn.settings_unacked_since().is_none());
    assert_eq!(
        s.written(),
        [Frame::Ping {
            ack: true,
            data: *b"12345678"
        }]
    );
    s.conn.ping(*b"abcdefgh", &mut s.out);
    c.frame(Frame::Ping {
        ack: true,
        data: *b"abcdefgh",
    });
    assert_eq!(s.feed(&mut c), Ok(vec![Seen::PingAck]));
}

#[test]
fn a_request_and_its_response() {
    let (mut s, mut c) = opened();
    c.get(1);
    let mut events = Vec::new();
    let bytes = std::mem::take(&mut c.bytes);
    s.conn
        .receive(&bytes, s.now, &mut s.out, &mut events)
        .expect("valid");
    match &events[..] {
        [Event::Request {
            stream: 1,
            request,
            end_stream: true,
        }] => {
            assert_eq!(
                request.target,
                Target::Origin {
                    scheme: b"https".to_vec(),
                    path: b"/".to_vec()
                }
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.conn.active_streams(), 1);
    s.conn
        .send_headers(1, [Field::new(b":status", b"200")], false, &mut s.out);
    assert_eq!(s.conn.send_data(1, b"hello", true, s.now, &mut s.out), 5);
    assert_eq!(s.conn.active_streams(), 0, "both sides ended");
    let w = s.written();
    assert!(matches!(
        w[0],
        Frame::Headers {
            stream: 1,
            end_stream: false,
            end_headers: true,
            ..
        }
    ));
    assert_eq!(
        w[1],
        Frame::Data {
            stream: 1,
            end_stream: true,
            data: b"hello",
            pad: None
        }
    );
}

#[test]
fn a_body_trailers_and_stream_states() {
    let (mut s, mut c) = opened();
    c.headers(1, &POST, false);
    c.frame(Frame::Data {
        stream: 1,
        end_stream: false,
        data: b"abc",
        pad: Some(4),
    });
    c.headers(1, &[("x-checksum", "1")], true);
    assert_eq!(
        s.feed(&mut c),
        Ok(vec![
            Seen::Request(1, false),
            Seen::Data(1, b"abc".to_vec(), false),
            Seen::Trailers(1, 1)
        ])
    );
    // Trailers without END_STREAM are a stream error.
    c.headers(3, &POST, false);
    c.headers(3, &[("x-checksum", "1")], false);
    assert_eq!(
        s.feed(&mut c),
        Ok(vec![Seen::Request(3, false), Seen::Reset(3, 1)])
    );
    assert!(s.written().contains(&rst(3, ErrorCode::ProtocolError)));
    // Trailers with a pseudo-header are malformed.
    c.headers(5, &POST, false);
    c.headers(5, &[(":path", "/again")], true);
    assert_eq!(
        s.feed(&mut c),
        Ok(vec![Seen::Request(5, false), Seen::Reset(5, 1)])
    );
    // DATA after END_STREAM: STREAM_CLOSED on that stream.
    c.frame(Frame::Data {
        stream: 1,
        end_stream: false,
        data: b"late",
        pad: None,
    });
    assert_eq!(s.feed(&mut c), Ok(vec![Seen::Reset(1, 5)]));
    // Late frames on a stream we reset are ignored.
    c.frame(Frame::Data {
        stream: 1,
        end_stream: false,
        data: b"later",
        pad: None,
    });
    c.frame(Frame::WindowUpdate {
        stream: 1,
        increment: 10,
    });
    assert_eq!(s.feed(&mut c), Ok(vec![]));
}

#[test]
fn idle_and_closed_stream_errors() {
    type Script = fn(&mut Client);
    let cases: &[(&str, Script, ErrorCode)] = &[
        (
            "DATA on an idle stream",
            |c| {
                c.frame(Frame::Data {
                    stream: 5,
                    end_stream: false,
                    data: b"x",
                    pad: None,
                })
            },
            ErrorCode::ProtocolError,
        ),
        (
            "RST_STREAM on an idle stream",
            |c| c.frame(rst(5, ErrorCode::Cancel)),
            ErrorCode::ProtocolError,
        ),
        (
            "WINDOW_UPDATE on an idle stream",
            |c| {
                c.frame(Frame::WindowUpdate {
                    stream: 5,
                    increment: 1,
                })
            },
            ErrorCode::ProtocolError,
        ),
        ("an even stream", |c| c.get(2), ErrorCode::ProtocolError),
        (
            "a stream id going down",
            |c| {
                c.get(5);
                c.get(3)
            },
            ErrorCode::StreamClosed,
        ),
    ];
    for (what, script, code) in cases {
        let (mut s, mut c) = opened();
        script(&mut c);
        assert_eq!(s.feed(&mut c).expect_err(what).code, *code, "{what}");
        assert_eq!(goaway_code(&s.written()), Some(code.to_u32()), "{what}");
    }
}

#[test]
fn data_on_a_stream_closed_both_ways_is_a_connection_error() {
    let (mut s, mut c) = opened();
    c.get(1);
    s.feed(&mut c).expect("valid");
    s.conn
        .send_headers(1, [Field::new(b":status", b"204")], true, &mut s.out);
    assert_eq!(s.conn.active_streams(), 0);
    c.frame(Frame::Data {
        stream: 1,
        end_stream: false,
        data: b"x",
        pad: None,
    });
    assert_eq!(
        s.feed(&mut c).expect_err("closed").code,
        ErrorCode::StreamClosed
    );
}

#[test]
fn malformed_requests_and_too_large_ones() {
    let (mut s, mut c) = opened();
    c.headers(
        1,
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
            ("connection", "close"),
        ],
        true,
    );
    assert_eq!(s.feed(&mut c), Ok(vec![]));
    assert!(s.written().contains(&rst(1, ErrorCode::ProtocolError)));
    // The HPACK table stayed in step: the next request decodes.
    c.get(3);
    assert_eq!(s.feed(&mut c), Ok(vec![Seen::Request(3, true)]));
    // Over the header list limit: 431 is the caller's answer.
    let mut s = Server::new(Config {
        max_header_list_size: 200,
        ..Config::default()
    });
    let mut c = Client::new();
    let big = "x".repeat(300);
    c.headers(
        1,
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
            ("cookie", &big),
        ],
        true,
    );
    assert_eq!(s.feed(&mut c), Ok(vec![Seen::TooLarge(1)]));
}

#[test]
fn extended_connect_depends_on_the_setting() {
    let ws = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", "/ws"),
        (":authority", "a.example"),
    ];
    let (mut s, mut c) = opened();
    c.headers(1, &ws, false);
    assert_eq!(s.feed(&mut c), Ok(vec![Seen::Request(1, false)]));
    let mut s = Server::new(Config {
        enable_connect_protocol: false,
        ..Config::default()
    });
    let mut c = Client::new();
    c.headers(1, &ws, false);
    assert_eq!(s.feed(&mut c), Ok(vec![]));
    assert!(s.written().contains(&rst(1, ErrorCode::ProtocolError)));
}

#[test]
fn a_headers_stream_error_is_a_connection_error() {
    // HEADERS depending on itself cannot be decoded, so the HPACK state
    // would be lost: the connection ends.
    let (mut s, mut c) = opened();
    let mut raw = vec![
        0,
        0,
        6,
        HEADERS,
        FLAG_END_HEADERS | frame::FLAG_PRIORITY,
        0,
        0,
        0,
        1,
    ];
    raw.extend_from_slice(&[0, 0, 0, 1, 0, 0x82]);
    c.bytes.extend_from_slice(&raw);
    assert_eq!(
        s.feed(&mut c).expect_err("refused").code,
        ErrorCode::ProtocolError
    );
    // On an open stream, a PRIORITY frame's stream error resets just that
    // stream; on an idle one, which cannot be reset, it ends the
    // connection.
    let (mut s, mut c) = opened();
    c.headers(3, &POST, false);
    assert_eq!(s.feed(&mut c), Ok(vec![Seen::Request(3, false)]));
    c.frame(Frame::Priority {
        stream: 3,
        priority: frame::Priority {
            exclusive: false,
            dependency: 3,
            weight: 0,
        },
    });
    assert_eq!(s.feed(&mut c), Ok(vec![Seen::Reset(3, 1)]));
    assert!(s.written().contains(&rst(3, ErrorCode::ProtocolError)));
    c.frame(Frame::Priority {
        stream: 5,
        priority: frame::Priority {
            exclusive: false,
            dependency: 5,
            weight: 0,
        },
    });
    assert_eq!(
        s.feed(&mut c).expect_err("idle").code,
        ErrorCode::ProtocolError
    );
    assert!(!s
        .written()
        .iter()
        .any(|f| matches!(f, Frame::RstStream { stream: 5, .. })));
}

#[test]
fn goaway_drains() {
    let (mut s, mut c) = opened();
    c.headers(1, &POST, false);
    s.feed(&mut c).expect("valid");
    s.conn.go_away(ErrorCode::NoError, &mut s.out);
    assert!(matches!(
        s.written()[..],
        [Frame::GoAway {
            last_stream: 1,
            code: 0,
            ..
        }]
    ));
    // Streams above the last are ignored; the open one carries on.
    c.get(3);
    c.frame(Frame::Data {
        stream: 1,
        end_stream: true,
        data: b"x",
        pad: None,
    });
    assert_eq!(s.feed(&mut c), Ok(vec![Seen::Data(1, b"x".to_vec(), true)]));
    // So is its DATA, and a later GOAWAY still names stream 1.
    c.frame(Frame::Data {
        stream: 3,
        end_stream: false,
        data: b"y",
        pad: None,
    });
    assert_eq!(s.feed(&mut c), Ok(vec![]));
    s.conn.go_away(ErrorCode::NoError, &mut s.out);
    assert!(matches!(
        s.written()[..],
        [Frame::GoAway { last_stream: 1, .. }]
    ));
    // Nothing is sent on a stream whose our side ended.
    assert!(!s
        .conn
        .send_headers(3, [Field::new(b":status", b"200")], true, &mut s.out));
    assert!(s
        .conn
        .send_headers(1, [Field::new(b":status", b"200")], true, &mut s.out));
    assert!(!s
        .conn
        .send_headers(1, [Field::new(b":status", b"200")], true, &mut s.out));
    // The peer's GOAWAY is an event.
    c.frame(Frame::GoAway {
        last_stream: 0,
        code: 0,
        debug: b"",
    });
    assert_eq!(s.feed(&mut c), Ok(vec![Seen::GoAway(0)]));
}

#[test]
fn partial_frames_are_left_for_later() {
    let (mut s, mut c) = opened();
    c.get(1);
    let bytes = std::mem::take(&mut c.bytes);
    let mut events = Vec::new();
    let taken = s
        .conn
        .receive(&bytes[..bytes.len() - 1], s.now, &mut s.out, &mut events)
        .expect("valid");
    assert_eq!(taken, 0);
    assert!(events.is_empty());
    let taken = s
        .conn
        .receive(&bytes, s.now, &mut s.out, &mut events)
        .expect("valid");
    assert_eq!(taken, bytes.len());
    assert_eq!(events.len(), 1);
}
