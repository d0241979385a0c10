//! Table tests of the frame codec: every rule the decoder enforces, with
//! the error code and scope RFC 9113 gives it, and encode/decode round
//! trips.

use super::*;
use crate::h2::settings::{self, Settings};

const MAX: u32 = settings::MIN_MAX_FRAME_SIZE;

fn raw(length: usize, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    raw(payload.len(), kind, flags, stream, payload)
}

fn one(bytes: &[u8]) -> Frame<'_> {
    match decode(bytes, MAX) {
        Ok(Decoded::Frame { frame, len }) => {
            assert_eq!(len, bytes.len());
            frame
        }
        other => panic!("expected a frame from {bytes:02x?}, got {other:?}"),
    }
}

fn conn_code(bytes: &[u8]) -> ErrorCode {
    match decode(bytes, MAX) {
        Err(e) => e.code,
        other => panic!("expected a connection error from {bytes:02x?}, got {other:?}"),
    }
}

fn stream_code(bytes: &[u8]) -> (u32, ErrorCode) {
    match decode(bytes, MAX) {
        Ok(Decoded::StreamError { error, len }) => {
            assert_eq!(len, bytes.len(), "a stream error skips the whole frame");
            (error.stream, error.code)
        }
        other => panic!("expected a stream error from {bytes:02x?}, got {other:?}"),
    }
}

#[test]
fn need_more_until_the_whole_frame_is_there() {
    let bytes = frame(PING, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
    for end in 0..bytes.len() {
        assert_eq!(
            decode(&bytes[..end], MAX),
            Ok(Decoded::NeedMore),
            "at {end}"
        );
    }
    assert!(matches!(
        decode(&bytes, MAX),
        Ok(Decoded::Frame { len: 17, .. })
    ));
}

#[test]
fn a_frame_over_max_frame_size_is_refused_from_its_header_alone() {
    let header = raw(MAX as usize + 1, DATA, 0, 1, &[]);
    assert_eq!(conn_code(&header), ErrorCode::FrameSizeError);
    let at_max = frame(DATA, 0, 1, &vec![0; MAX as usize]);
    assert!(matches!(one(&at_max), Frame::Data { data, .. } if data.len() == MAX as usize));
    // A larger advertised size admits it.
    let big = frame(DATA, 0, 1, &vec![0; MAX as usize + 1]);
    assert!(matches!(decode(&big, MAX + 1), Ok(Decoded::Frame { .. })));
}

#[test]
fn stream_identifier_rules_per_type() {
    for kind in [DATA, HEADERS, PRIORITY, RST_STREAM, CONTINUATION] {
        let payload: &[u8] = match kind {
            PRIORITY => &[0, 0, 0, 0, 16],
            RST_STREAM => &[0, 0, 0, 8],
            _ => &[],
        };
        assert_eq!(
            conn_code(&frame(kind, 0, 0, payload)),
            ErrorCode::ProtocolError,
            "type {kind}"
        );
    }
    assert_eq!(
        conn_code(&frame(SETTINGS, 0, 1, &[])),
        ErrorCode::ProtocolError
    );
    assert_eq!(
        conn_code(&frame(PING, 0, 3, &[0; 8])),
        ErrorCode::ProtocolError
    );
    assert_eq!(
        conn_code(&frame(GOAWAY, 0, 1, &[0; 8])),
        ErrorCode::ProtocolError
    );
    // WINDOW_UPDATE is valid on both.
    assert!(matches!(
        one(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 1])),
        Frame::WindowUpdate {
            stream: 0,
            increment: 1
        }
    ));
    assert!(matches!(
        one(&frame(WINDOW_UPDATE, 0, 5, &[0, 0, 0, 1])),
        Frame::WindowUpdate {
            stream: 5,
            increment: 1
        }
    ));
}

#[test]
fn the_reserved_bit_is_ignored_on_receipt_and_cleared_on_send() {
    let bytes = frame(DATA, 0, RESERVED_BIT | 3, b"x");
    let f = one(&bytes);
    assert_eq!(f.stream(), 3);
    // A stream id of only the reserved bit is stream 0.
    assert_eq!(
        conn_code(&frame(DATA, 0, RESERVED_BIT, b"x")),
        ErrorCode::ProtocolError
    );
    assert!(matches!(
        one(&frame(WINDOW_UPDATE, 0, 0, &[0x80, 0, 0, 9])),
        Frame::WindowUpdate { increment: 9, .. }
    ));
    assert!(matches!(
        one(&frame(GOAWAY, 0, 0, &[0x80, 0, 0, 7, 0, 0, 0, 0])),
        Frame::GoAway { last_stream: 7, .. }
    ));
    let mut out = Vec::new();
    Frame::WindowUpdate {
        stream: RESERVED_BIT | 1,
        increment: RESERVED_BIT | 2,
    }
    .encode(&mut out);
    assert_eq!(out, frame(WINDOW_UPDATE, 0, 1, &[0, 0, 0, 2]));
}

#[test]
fn fixed_lengths() {
    assert_eq!(
        conn_code(&frame(PING, 0, 0, &[0; 7])),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_code(&frame(PING, FLAG_ACK, 0, &[0; 9])),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_code(&frame(RST_STREAM, 0, 1, &[0; 3])),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_code(&frame(RST_STREAM, 0, 1, &[0; 5])),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_code(&frame(WINDOW_UPDATE, 0, 1, &[0; 3])),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_code(&frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 1, 0])),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        stream_code(&frame(PRIORITY, 0, 3, &[0; 4])),
        (3, ErrorCode::FrameSizeError)
    );
    assert_eq!(
        stream_code(&frame(PRIORITY, 0, 3, &[0; 6])),
        (3, ErrorCode::FrameSizeError)
    );
    assert_eq!(
        conn_code(&frame(SETTINGS, 0, 0, &[0; 5])),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_code(&frame(SETTINGS, 0, 0, &[0; 7])),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_code(&frame(SETTINGS, FLAG_ACK, 0, &[0; 6])),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_code(&frame(GOAWAY, 0, 0, &[0; 7])),
        ErrorCode::FrameSizeError
    );
    assert!(matches!(
        one(&frame(SETTINGS, FLAG_ACK, 0, &[])),
        Frame::Settings { ack: true, .. }
    ));
    assert!(matches!(
        one(&frame(SETTINGS, 0, 0, &[])),
        Frame::Settings { ack: false, .. }
    ));
    assert!(matches!(
        one(&frame(GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 2, b'h', b'i'])),
        Frame::GoAway {
            last_stream: 1,
            code: 2,
            debug: b"hi"
        }
    ));
}

#[test]
fn settings_values_are_range_checked() {
    let p = |id: u16, v: u32| {
        let mut b = id.to_be_bytes().to_vec();
        b.extend_from_slice(&v.to_be_bytes());
        frame(SETTINGS, 0, 0, &b)
    };
    assert_eq!(
        conn_code(&p(settings::ENABLE_PUSH, 2)),
        ErrorCode::ProtocolError
    );
    assert_eq!(
        conn_code(&p(settings::INITIAL_WINDOW_SIZE, 1 << 31)),
        ErrorCode::FlowControlError
    );
    assert_eq!(
        conn_code(&p(settings::MAX_FRAME_SIZE, 100)),
        ErrorCode::ProtocolError
    );
    assert_eq!(
        conn_code(&p(settings::MAX_FRAME_SIZE, 1 << 24)),
        ErrorCode::ProtocolError
    );
    assert_eq!(
        conn_code(&p(settings::ENABLE_CONNECT_PROTOCOL, 7)),
        ErrorCode::ProtocolError
    );
    match one(&p(settings::ENABLE_CONNECT_PROTOCOL, 1)) {
        Frame::Settings {
            ack: false,
            settings,
        } => {
            assert_eq!(settings.enable_connect_protocol, Some(true))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn window_increment_zero_is_a_stream_or_connection_error() {
    assert_eq!(
        stream_code(&frame(WINDOW_UPDATE, 0, 7, &[0; 4])),
        (7, ErrorCode::ProtocolError)
    );
    assert_eq!(
        conn_code(&frame(WINDOW_UPDATE, 0, 0, &[0; 4])),
        ErrorCode::ProtocolError
    );
    // Only the reserved bit set is still an increment of 0.
    assert_eq!(
        conn_code(&frame(WINDOW_UPDATE, 0, 0, &[0x80, 0, 0, 0])),
        ErrorCode::ProtocolError
    );
}

#[test]
fn padding_rules() {
    // DATA: pad length 2, data "ab", two pad octets.
    let bytes = frame(
        DATA,
        FLAG_PADDED | FLAG_END_STREAM,
        1,
        &[2, b'a', b'b', 0, 0],
    );
    let f = one(&bytes);
    assert_eq!(
        f,
        Frame::Data {
            stream: 1,
            end_stream: true,
            data: b"ab",
            pad: Some(2)
        }
    );
    assert_eq!(f.flow_len(), 5, "padding counts against flow control");
    // Padding as long as the payload (pad length octet included), or longer.
    assert_eq!(
        conn_code(&frame(DATA, FLAG_PADDED, 1, &[3, 0, 0])),
        ErrorCode::ProtocolError
    );
    assert!(matches!(
        one(&frame(DATA, FLAG_PADDED, 1, &[2, 0, 0])),
        Frame::Data {
            data: b"",
            pad: Some(2),
            ..
        }
    ));
    assert_eq!(
        conn_code(&frame(DATA, FLAG_PADDED, 1, &[9, 0])),
        ErrorCode::ProtocolError
    );
    // PADDED without even the pad length octet.
    assert_eq!(
        conn_code(&frame(DATA, FLAG_PADDED, 1, &[])),
        ErrorCode::FrameSizeError
    );
    // Empty data with all the padding the frame can hold is fine.
    assert!(matches!(
        one(&frame(DATA, FLAG_PADDED, 1, &[1, 0])),
        Frame::Data { data: b"", .. }
    ));
    // HEADERS with padding and priority: pad length counts past the priority.
    let bytes = frame(
        HEADERS,
        FLAG_PADDED | FLAG_PRIORITY | FLAG_END_HEADERS,
        3,
        &[1, 0x80, 0, 0, 1, 15, 0x82, 0],
    );
    let f = one(&bytes);
    assert_eq!(
        f,
        Frame::Headers {
            stream: 3,
            end_stream: false,
            end_headers: true,
            priority: Some(Priority {
                exclusive: true,
                dependency: 1,
                weight: 15
            }),
            fragment: &[0x82],
            pad: Some(1),
        }
    );
    // HEADERS whose padding eats into the priority fields.
    assert_eq!(
        conn_code(&frame(
            HEADERS,
            FLAG_PADDED | FLAG_PRIORITY,
            3,
            &[3, 0, 0, 0, 1, 15]
        )),
        ErrorCode::FrameSizeError
    );
    assert_eq!(
        conn_code(&frame(HEADERS, FLAG_PADDED, 3, &[2, 0])),
        ErrorCode::ProtocolError
    );
}

#[test]
fn a_stream_depending_on_itself_is_a_stream_error() {
    assert_eq!(
        stream_code(&frame(PRIORITY, 0, 5, &[0, 0, 0, 5, 0])),
        (5, ErrorCode::ProtocolError)
    );
    assert_eq!(
        stream_code(&frame(
            HEADERS,
            FLAG_PRIORITY | FLAG_END_HEADERS,
            5,
            &[0, 0, 0, 5, 0, 0x82]
        )),
        (5, ErrorCode::ProtocolError)
    );
    assert!(matches!(
        one(&frame(PRIORITY, 0, 5, &[0, 0, 0, 3, 0])),
        Frame::Priority { stream: 5, .. }
    ));
}

#[test]
fn push_promise_from_a_client_is_a_protocol_error() {
    assert_eq!(
        conn_code(&frame(PUSH_PROMISE, FLAG_END_HEADERS, 1, &[0, 0, 0, 2])),
        ErrorCode::ProtocolError
    );
}

#[test]
fn unknown_types_are_returned_to_be_ignored() {
    let bytes = frame(0xfa, 0xff, 9, b"whatever");
    let f = one(&bytes);
    assert_eq!(
        f,
        Frame::Unknown {
            kind: 0xfa,
            flags: 0xff,
            stream: 9,
            payload: b"whatever"
        }
    );
    // Still bound by the frame size.
    assert_eq!(
        conn_code(&raw(MAX as usize + 1, 0xfa, 0, 0, &[])),
        ErrorCode::FrameSizeError
    );
}

#[test]
fn unknown_flags_are_ignored() {
    assert!(matches!(
        one(&frame(PING, 0xfe, 0, &[0; 8])),
        Frame::Ping { ack: false, .. }
    ));
    assert!(matches!(
        one(&frame(RST_STREAM, 0xff, 1, &[0, 0, 0, 8])),
        Frame::RstStream { code: 8, .. }
    ));
}

#[test]
fn every_frame_round_trips() {
    let settings = Settings {
        header_table_size: Some(0),
        enable_push: Some(false),
        max_concurrent_streams: Some(100),
        initial_window_size: Some(1 << 20),
        max_frame_size: Some(1 << 16),
        max_header_list_size: Some(16 << 10),
        enable_connect_protocol: Some(true),
    };
    let prio = Priority {
        exclusive: false,
        dependency: 1,
        weight: 200,
    };
    let frames = [
        Frame::Data {
            stream: 1,
            end_stream: false,
            data: b"hello",
            pad: None,
        },
        Frame::Data {
            stream: 1,
            end_stream: true,
            data: b"",
            pad: Some(7),
        },
        Frame::Headers {
            stream: 3,
            end_stream: true,
            end_headers: false,
            priority: Some(prio),
            fragment: b"\x82\x84",
            pad: Some(3),
        },
        Frame::Headers {
            stream: 3,
            end_stream: false,
            end_headers: true,
            priority: None,
            fragment: b"",
            pad: None,
        },
        Frame::Priority {
            stream: 5,
            priority: prio,
        },
        Frame::RstStream {
            stream: 7,
            code: 0xdead,
        },
        Frame::Settings {
            ack: false,
            settings,
        },
        Frame::Settings {
            ack: true,
            settings: Settings::default(),
        },
        Frame::Ping {
            ack: true,
            data: *b"12345678",
        },
        Frame::GoAway {
            last_stream: 9,
            code: 11,
            debug: b"calm",
        },
        Frame::WindowUpdate {
            stream: 0,
            increment: settings::MAX_WINDOW_SIZE,
        },
        Frame::Continuation {
            stream: 3,
            end_headers: true,
            fragment: b"\x86",
        },
        Frame::Unknown {
            kind: 0x20,
            flags: 1,
            stream: 0,
            payload: b"x",
        },
    ];
    let mut stream = Vec::new();
    for f in &frames {
        f.encode(&mut stream);
    }
    let mut rest = &stream[..];
    for want in &frames {
        match decode(rest, settings::MAX_MAX_FRAME_SIZE).expect("valid") {
            Decoded::Frame { frame, len } => {
                assert_eq!(&frame, want);
                rest = &rest[len..];
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(rest.is_empty());
}

#[test]
fn a_field_block_is_split_into_headers_and_continuations() {
    let block: Vec<u8> = (0..=255).collect();
    let mut out = Vec::new();
    encode_field_block(&mut out, 1, &block, true, 100);
    let mut rest = &out[..];
    let mut gathered = Vec::new();
    let mut kinds = Vec::new();
    while !rest.is_empty() {
        let Ok(Decoded::Frame { frame, len }) = decode(rest, MAX) else {
            panic!()
        };
        match frame {
            Frame::Headers {
                end_stream,
                end_headers,
                fragment,
                ..
            } => {
                assert!(end_stream);
                kinds.push((HEADERS, end_headers));
                gathered.extend_from_slice(fragment);
            }
            Frame::Continuation {
                end_headers,
                fragment,
                ..
            } => {
                kinds.push((CONTINUATION, end_headers));
                gathered.extend_from_slice(fragment);
            }
            other => panic!("{other:?}"),
        }
        rest = &rest[len..];
    }
    assert_eq!(gathered, block);
    assert_eq!(
        kinds,
        [
            (HEADERS, false),
            (CONTINUATION, false),
            (CONTINUATION, true)
        ]
    );
    // A block that fits is one HEADERS with END_HEADERS; so is an empty one.
    for block in [&b"\x82"[..], b""] {
        out.clear();
        encode_field_block(&mut out, 1, block, false, MAX);
        assert!(matches!(
            one(&out),
            Frame::Headers {
                end_headers: true,
                ..
            }
        ));
    }
}
