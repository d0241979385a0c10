//! Table tests of request checking: each RFC 9113 §8 / RFC 8441 rule, the
//! error scope and code it yields, and a block gone through HPACK first.

use super::*;
use crate::h2::hpack::{Decoder, Encoder, Field, Limits};

const FITS: BlockSize = BlockSize {
    list_size: 0,
    over_limit: false,
};

fn build(connect_protocol: bool, fields: &[(&str, &str)]) -> Result<Request, RequestError> {
    let mut b = RequestBuilder::new(connect_protocol);
    for (n, v) in fields {
        b.field(n.as_bytes(), v.as_bytes());
    }
    b.finish(1, FITS)
}

fn reason(connect_protocol: bool, fields: &[(&str, &str)]) -> &'static str {
    match build(connect_protocol, fields) {
        Err(RequestError::Malformed(e)) => {
            assert_eq!((e.stream, e.code), (1, ErrorCode::ProtocolError));
            e.reason
        }
        other => panic!("expected a malformed request from {fields:?}, got {other:?}"),
    }
}

const GET: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "example.com"),
    (":path", "/index.html"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    GET.iter().chain(extra).copied().collect()
}

#[test]
fn a_plain_get() {
    let r = build(false, &with(&[("accept", "*/*"), ("te", "trailers")])).expect("valid");
    assert_eq!(r.method, b"GET");
    assert_eq!(r.authority.as_deref(), Some(&b"example.com"[..]));
    assert_eq!(
        r.target,
        Target::Origin {
            scheme: b"https".to_vec(),
            path: b"/index.html".to_vec()
        }
    );
    assert_eq!(r.fields.len(), 2);
    // :authority may be absent (Host carries it, or nothing does).
    let r = build(
        false,
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
            ("host", "a"),
        ],
    );
    assert!(r.is_ok());
    // OPTIONS *.
    let r = build(
        false,
        &[(":method", "OPTIONS"), (":scheme", "https"), (":path", "*")],
    );
    assert!(r.is_ok());
}

#[test]
fn malformed_requests() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[(":scheme", "https"), (":path", "/")], "no :method"),
        (
            &[(":method", "GET"), (":path", "/")],
            "no :scheme or no :path",
        ),
        (
            &[(":method", "GET"), (":scheme", "https")],
            "no :scheme or no :path",
        ),
        (
            &[(":method", "GET"), (":scheme", "https"), (":path", "")],
            "empty :path",
        ),
        (
            &[(":method", "GET"), (":scheme", "https"), (":path", "*")],
            ":path neither /… nor * for OPTIONS",
        ),
        (
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "http://a/"),
            ],
            ":path neither /… nor * for OPTIONS",
        ),
        (
            &[(":method", "G T"), (":scheme", "https"), (":path", "/")],
            ":method not a token",
        ),
        (
            &[
                (":method", "GET"),
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
            ],
            "duplicate pseudo-header",
        ),
        (
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                (":path", "/"),
            ],
            "duplicate pseudo-header",
        ),
        (
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                (":status", "200"),
            ],
            "unknown pseudo-header",
        ),
        (
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                (":foo", "x"),
            ],
            "unknown pseudo-header",
        ),
        (
            &[
                (":method", "GET"),
                ("accept", "*/*"),
                (":scheme", "https"),
                (":path", "/"),
            ],
            "pseudo-header after a regular field",
        ),
        (
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                (":authority", "u@example.com"),
            ],
            "invalid :authority",
        ),
        (
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                (":authority", ""),
            ],
            "invalid :authority",
        ),
        (
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", "a"),
                (":path", "/"),
                ("host", "b"),
            ],
            "host differs from :authority",
        ),
    ];
    for (fields, want) in cases {
        assert_eq!(reason(true, fields), *want, "{fields:?}");
    }
    // The same host in another case is the same entity.
    assert!(build(false, &with(&[("host", "EXAMPLE.com")])).is_ok());
}

#[test]
fn field_rules() {
    let cases: &[((&str, &str), &str)] = &[
        (("Accept", "*/*"), "invalid field name"),
        (("x-ok", "a\r\nx-smuggled: 1"), "invalid field value"),
        (("x-ok", "a\nb"), "invalid field value"),
        (("x-ok", "a\0b"), "invalid field value"),
        (("x-ok", " padded"), "invalid field value"),
        (("x-ok", "padded\t"), "invalid field value"),
        (("", "empty name"), "invalid field name"),
        (("x:y", "colon"), "invalid field name"),
        (("x y", "space"), "invalid field name"),
        (("x\u{7f}", "del"), "invalid field name"),
        (("connection", "keep-alive"), "connection-specific field"),
        (("keep-alive", "timeout=5"), "connection-specific field"),
        (("proxy-connection", "close"), "connection-specific field"),
        (
            ("transfer-encoding", "chunked"),
            "connection-specific field",
        ),
        (("upgrade", "websocket"), "connection-specific field"),
        (("te", "gzip"), "te other than trailers"),
        (("te", "trailers, gzip"), "te other than trailers"),
    ];
    for (field, want) in cases {
        assert_eq!(reason(false, &with(&[*field])), *want, "{field:?}");
    }
    // A pseudo-header value is checked too.
    assert_eq!(
        reason(
            false,
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/a\r\nb")
            ]
        ),
        "invalid field value"
    );
    // Inner spaces and obs-text are fine in a value.
    let mut b = RequestBuilder::new(false);
    for (n, v) in GET {
        b.field(n.as_bytes(), v.as_bytes());
    }
    b.field(b"x-ok", b"a b\t\xffc");
    assert!(b.finish(1, FITS).is_ok());
}

#[test]
fn extended_connect() {
    let ws = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", "/chat?room=1"),
        (":authority", "example.com"),
        ("sec-websocket-version", "13"),
        ("origin", "https://example.com"),
    ];
    let r = build(true, &ws).expect("valid");
    assert_eq!(
        r.target,
        Target::ExtendedConnect {
            protocol: b"websocket".to_vec(),
            scheme: b"https".to_vec(),
            path: b"/chat?room=1".to_vec()
        }
    );
    assert_eq!(r.fields.len(), 2);
    // Not advertised: malformed.
    assert_eq!(
        reason(false, &ws),
        ":protocol without ENABLE_CONNECT_PROTOCOL"
    );
    // :protocol on another method.
    let mut get_protocol = ws;
    get_protocol[0] = (":method", "GET");
    assert_eq!(reason(true, &get_protocol), ":protocol without CONNECT");
    // Missing :path, :scheme or :authority.
    for drop in [":path", ":scheme"] {
        let fields: Vec<_> = ws.iter().copied().filter(|(n, _)| *n != drop).collect();
        assert_eq!(
            reason(true, &fields),
            "extended CONNECT without :scheme or :path",
            "{drop}"
        );
    }
    let fields: Vec<_> = ws
        .iter()
        .copied()
        .filter(|(n, _)| *n != ":authority")
        .collect();
    assert_eq!(reason(true, &fields), "extended CONNECT without :authority");
    let mut empty = ws;
    empty[1] = (":protocol", "");
    assert_eq!(reason(true, &empty), "empty :protocol");
}

#[test]
fn plain_connect() {
    let r = build(
        false,
        &[(":method", "CONNECT"), (":authority", "example.com:443")],
    )
    .expect("valid");
    assert_eq!(r.target, Target::Connect);
    assert_eq!(
        reason(false, &[(":method", "CONNECT")]),
        "CONNECT without :authority"
    );
    assert_eq!(
        reason(
            false,
            &[
                (":method", "CONNECT"),
                (":authority", "a:1"),
                (":path", "/")
            ]
        ),
        "CONNECT with :scheme or :path"
    );
    assert_eq!(
        reason(
            false,
            &[
                (":method", "CONNECT"),
                (":authority", "a:1"),
                (":scheme", "https")
            ]
        ),
        "CONNECT with :scheme or :path"
    );
}

#[test]
fn the_first_error_wins_and_over_the_limit_is_431() {
    let mut b = RequestBuilder::new(false);
    b.field(b"Upper", b"x");
    b.field(b"connection", b"close");
    match b.finish(5, FITS) {
        Err(RequestError::Malformed(e)) => {
            assert_eq!((e.stream, e.reason), (5, "invalid field name"))
        }
        other => panic!("{other:?}"),
    }
    let mut b = RequestBuilder::new(false);
    for (n, v) in GET {
        b.field(n.as_bytes(), v.as_bytes());
    }
    let over = BlockSize {
        list_size: 100,
        over_limit: true,
    };
    assert_eq!(b.finish(7, over), Err(RequestError::TooLarge(7)));
}

#[test]
fn a_browser_websocket_through_hpack() {
    let mut enc = Encoder::new(4096, 4096, true);
    let mut block = Vec::new();
    enc.encode(
        [
            Field::new(b":method", b"CONNECT"),
            Field::new(b":protocol", b"websocket"),
            Field::new(b":scheme", b"https"),
            Field::new(b":path", b"/socket"),
            Field::new(b":authority", b"example.com"),
            Field::new(b"sec-websocket-version", b"13"),
            Field::new(b"sec-websocket-extensions", b"permessage-deflate"),
        ],
        &mut block,
    );
    let mut dec = Decoder::new(
        4096,
        Limits {
            max_string: 8192,
            max_list: 16 << 10,
        },
    );
    let mut b = RequestBuilder::new(true);
    let size = dec.decode(&block, |n, v| b.field(n, v)).expect("valid");
    let r = b.finish(1, size).expect("valid");
    assert!(matches!(r.target, Target::ExtendedConnect { .. }));
    // The same block when a tiny list limit cuts it off: 431, not malformed.
    let mut dec = Decoder::new(
        4096,
        Limits {
            max_string: 8192,
            max_list: 100,
        },
    );
    let mut b = RequestBuilder::new(true);
    let size = dec.decode(&block, |n, v| b.field(n, v)).expect("valid");
    assert_eq!(b.finish(1, size), Err(RequestError::TooLarge(1)));
}

#[test]
fn trailers() {
    let mut b = RequestBuilder::new(false);
    b.field(b"x-checksum", b"abc");
    assert_eq!(
        b.finish_trailers(3, FITS),
        Ok(vec![(b"x-checksum".to_vec(), b"abc".to_vec())])
    );
    let mut b = RequestBuilder::new(false);
    b.field(b":path", b"/");
    assert!(
        matches!(b.finish_trailers(3, FITS), Err(RequestError::Malformed(e)) if e.reason == "pseudo-header in trailers")
    );
    let mut b = RequestBuilder::new(false);
    b.field(b"transfer-encoding", b"chunked");
    assert!(matches!(
        b.finish_trailers(3, FITS),
        Err(RequestError::Malformed(_))
    ));
    let over = BlockSize {
        list_size: 10,
        over_limit: true,
    };
    assert_eq!(
        RequestBuilder::new(false).finish_trailers(3, over),
        Err(RequestError::TooLarge(3))
    );
}

#[test]
fn content_length() {
    let cl = |v: &'static str| build(false, &with(&[("content-length", v)]));
    assert_eq!(cl("42").map(|r| r.content_length), Ok(Some(42)));
    assert_eq!(cl("0").map(|r| r.content_length), Ok(Some(0)));
    assert_eq!(cl("7, 7").map(|r| r.content_length), Ok(Some(7)));
    assert_eq!(build(false, &GET).map(|r| r.content_length), Ok(None));
    for bad in ["", "-1", "4 2", "0x10", "+5", "99999999999999999999"] {
        assert_eq!(
            reason(false, &with(&[("content-length", bad)])),
            "invalid content-length",
            "{bad:?}"
        );
    }
    assert_eq!(
        reason(false, &with(&[("content-length", "1, 2")])),
        "conflicting content-length"
    );
    assert_eq!(
        reason(
            false,
            &with(&[("content-length", "1"), ("content-length", "2")])
        ),
        "conflicting content-length"
    );
}

#[test]
fn pseudo_headers_that_would_break_the_upstream_request_line() {
    let req = |method: &'static str,
               scheme: &'static str,
               authority: &'static str,
               path: &'static str| {
        vec![
            (":method", method),
            (":scheme", scheme),
            (":authority", authority),
            (":path", path),
        ]
    };
    let cases: &[(Vec<(&str, &str)>, &str)] = &[
        (
            req("GET", "https", "a.example", "/a b"),
            ":path with a space or control octet",
        ),
        (
            req("GET", "https", "a.example", "/a\tb"),
            ":path with a space or control octet",
        ),
        (
            req("GET", "https", "a.example", "/a\x7fb"),
            ":path with a space or control octet",
        ),
        (
            req("GET", "https", "a.example", "/caf\u{e9}"),
            ":path with a space or control octet",
        ),
        (req("GET", "ht tp", "a.example", "/"), "invalid :scheme"),
        (req("GET", "1http", "a.example", "/"), "invalid :scheme"),
        (req("GET", "", "a.example", "/"), "invalid :scheme"),
        (
            req("GET", "https", "a.example/evil", "/"),
            "invalid :authority",
        ),
        (
            req("GET", "https", "a.example?x", "/"),
            "invalid :authority",
        ),
        (req("GET", "https", "a example", "/"), "invalid :authority"),
    ];
    for (fields, want) in cases {
        assert_eq!(reason(true, fields), *want, "{fields:?}");
    }
    // What a request line may carry passes.
    for (scheme, authority, path) in [
        ("https", "a.example:8443", "/p?q=1&r=%20#f"),
        ("http", "[::1]:80", "/"),
        ("coap+tcp", "127.0.0.1", "/x"),
    ] {
        assert!(
            build(true, &req("GET", scheme, authority, path)).is_ok(),
            "{scheme} {authority} {path}"
        );
    }
    let ws = [
        (":method", "CONNECT"),
        (":protocol", "web socket"),
        (":scheme", "https"),
        (":path", "/"),
        (":authority", "a.example"),
    ];
    assert_eq!(reason(true, &ws), ":protocol not a token");
}
