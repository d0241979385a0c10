//! The upstream's response head: a 101 starts the tunnel and passes on
//! byte for byte; interim 1xx answers pass on unchanged; any other answer is
//! relayed with its status, fields and body intact, but with the hop-by-hop
//! fields replaced by the proxy's own `Connection` line: whether the
//! client's connection stays open is the proxy's business, not the
//! upstream's.

use crate::buffer::{Buf, Full};
use crate::framing::body::Body;
use crate::handshake::answer::{Reject, Status};
use crate::handshake::edits::ResponseEdits;
use crate::handshake::fields::{ConnectionTokens, Framing, Persistence};
use crate::handshake::request::Kind;

/// Most header fields in one response head.
pub const MAX_HEADERS: usize = 100;

/// How an upstream answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Response {
    /// `1xx` other than 101: pass on the `head_len` bytes and read on.
    Interim { head_len: usize },
    /// `101 Switching Protocols` to an upgrade; the tunnel starts right
    /// after it. `rewritten`: the route edits its fields, so the head was
    /// written to `out`; otherwise it passes on byte for byte.
    Switching { head_len: usize, rewritten: bool },
    /// A final answer, rewritten into `out`; `body` frames the bytes after
    /// `head_len`. `persistence`: what the rewritten head told the client
    /// (no more than asked; `Close` when only the upstream's close ends
    /// the body). `reusable`: the upstream keeps its connection open for
    /// another request once the body is through.
    Final {
        head_len: usize,
        status: u16,
        body: Body,
        persistence: Persistence,
        reusable: bool,
    },
}

const fn bad(why: &'static str) -> Reject {
    Reject::new(Status::BadGateway, why)
}

/// Parses the response head at the start of `input`, answering `request`.
/// A [`Response::Final`], and a 101 that `edits` change, are written to
/// `out`; `persistence` is what the client may be told of its connection.
/// `Ok(None)`: not complete yet.
pub fn rewrite(
    input: &[u8],
    max_head: usize,
    request: Kind,
    edits: &ResponseEdits,
    persistence: Persistence,
    out: &mut Buf,
) -> Result<Option<Response>, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(input) {
        Ok(httparse::Status::Complete(n)) if n > max_head => {
            return Err(bad("upstream response head too large"))
        }
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() >= max_head => {
            return Err(bad("upstream response head too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(bad("upstream sent a malformed response head")),
    };
    let (Some(minor), Some(code)) = (res.version, res.code) else {
        return Err(bad("upstream sent a malformed response head"));
    };
    // RFC 9110 §15: "All valid status codes are within the range of 100 to
    // 599"; httparse takes any three digits, and `052` would be written on
    // as the two-digit `52`.
    if code < 100 {
        return Err(bad("upstream sent a status code below 100"));
    }
    match (code, request) {
        (101, Kind::Upgrade) if edits.is_empty() => {
            return Ok(Some(Response::Switching {
                head_len,
                rewritten: false,
            }))
        }
        (101, Kind::Upgrade) => {
            write_switching(out, res.reason.unwrap_or(""), res.headers, edits)
                .map_err(|Full| bad("upstream response head too large"))?;
            return Ok(Some(Response::Switching {
                head_len,
                rewritten: true,
            }));
        }
        (101, Kind::Plain { .. }) => {
            return Err(bad("upstream switched protocols on a plain request"))
        }
        (100..=199, _) => return Ok(Some(Response::Interim { head_len })),
        _ => {}
    }

    let headers = res.headers;
    let framing =
        Framing::read(headers).map_err(|_| bad("upstream sent an invalid Content-Length"))?;
    if framing.transfer_encoding && framing.content_length.is_some() {
        return Err(bad(
            "upstream sent both Content-Length and Transfer-Encoding",
        ));
    }
    // RFC 9112 §6.3, in order.
    let body = if matches!(request, Kind::Plain { head: true }) || code == 204 || code == 304 {
        Body::Empty
    } else if framing.chunked {
        Body::chunked()
    } else if framing.transfer_encoding {
        Body::UntilClose
    } else if let Some(n) = framing.content_length {
        Body::Length(n)
    } else {
        Body::UntilClose
    };

    let connection = ConnectionTokens::collect(headers)
        .map_err(|_| bad("upstream sent too many Connection tokens"))?;
    // A body that ends only when the upstream closes ends the client's
    // connection too: nothing else would tell the client where it ends.
    let until_close = body == Body::UntilClose;
    let persistence = if until_close {
        Persistence::Close
    } else {
        persistence
    };
    let reusable = minor >= 1 && !until_close && !connection.contains(b"close");
    let head = Head {
        minor,
        code,
        reason: res.reason.unwrap_or(""),
        headers,
        connection: &connection,
        persistence,
    };
    write_head(out, &head, edits).map_err(|Full| bad("upstream response head too large"))?;
    Ok(Some(Response::Final {
        head_len,
        status: code,
        body,
        persistence,
        reusable,
    }))
}

/// Response fields dropped on the way to the client, with those the
/// upstream's `Connection` names. `TE` only means something in a request.
const DROPPED: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
];

/// The fields that frame the body, which passes through as it came (a
/// chunked one still encoded): the client must read them even when the
/// upstream names them in `Connection`, or it would take the chunk sizes
/// for content.
const FRAMING: [&str; 2] = ["content-length", "transfer-encoding"];

fn passes(name: &str, connection: &ConnectionTokens<'_>) -> bool {
    let is = |list: &[&str]| list.iter().any(|d| d.eq_ignore_ascii_case(name));
    !is(&DROPPED) && (is(&FRAMING) || !connection.contains(name.as_bytes()))
}

/// The parts of a final answer's head the rewrite needs.
struct Head<'a, 'h> {
    minor: u8,
    code: u16,
    reason: &'a str,
    headers: &'a [httparse::Header<'h>],
    connection: &'a ConnectionTokens<'h>,
    persistence: Persistence,
}

fn write_head(out: &mut Buf, head: &Head<'_, '_>, edits: &ResponseEdits) -> Result<(), Full> {
    out.put(if head.minor == 0 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    })?;
    out.put_decimal(u64::from(head.code))?;
    out.put(b" ")?;
    out.put(head.reason.as_bytes())?;
    out.put(b"\r\n")?;
    for h in head
        .headers
        .iter()
        .filter(|h| passes(h.name, head.connection) && edits.passes(h.name))
    {
        put_field(out, h)?;
    }
    edits.write_added(out, head.code)?;
    out.put(head.persistence.line())?;
    out.put(b"\r\n")
}

/// A 101 with the route's fields hidden and added; the handshake's own
/// fields (`Upgrade`, `Connection`, `Sec-WebSocket-*`) always pass.
fn write_switching(
    out: &mut Buf,
    reason: &str,
    headers: &[httparse::Header<'_>],
    edits: &ResponseEdits,
) -> Result<(), Full> {
    out.put(b"HTTP/1.1 101 ")?;
    out.put(reason.as_bytes())?;
    out.put(b"\r\n")?;
    for h in headers.iter().filter(|h| edits.passes(h.name)) {
        put_field(out, h)?;
    }
    edits.write_added(out, 101)?;
    out.put(b"\r\n")
}

fn put_field(out: &mut Buf, h: &httparse::Header<'_>) -> Result<(), Full> {
    out.put(h.name.as_bytes())?;
    out.put(b": ")?;
    out.put(h.value)?;
    out.put(b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: Kind = Kind::Plain { head: false };

    fn run(input: &str, request: Kind) -> Result<Option<(Response, String)>, Reject> {
        let mut out = Buf::with_capacity(4096);
        Ok(rewrite(
            input.as_bytes(),
            16 * 1024,
            request,
            &NO_EDITS,
            Persistence::Close,
            &mut out,
        )?
        .map(|r| (r, String::from_utf8(out.data().to_vec()).unwrap())))
    }

    const NO_EDITS: ResponseEdits = ResponseEdits {
        add: Vec::new(),
        hide: Vec::new(),
    };

    #[test]
    fn edits_rewrite_a_101_and_a_final_answer() {
        let mut edits = ResponseEdits::default();
        edits
            .add("Strict-Transport-Security", "max-age=31536000", true)
            .unwrap();
        edits.hide("Server").unwrap();
        let head =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Server: up\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let mut out = Buf::with_capacity(4096);
        let r = rewrite(
            head.as_bytes(),
            16 * 1024,
            Kind::Upgrade,
            &edits,
            Persistence::Close,
            &mut out,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            r,
            Response::Switching {
                head_len: head.len(),
                rewritten: true
            }
        );
        assert_eq!(
            String::from_utf8(out.data().to_vec()).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Strict-Transport-Security: max-age=31536000\r\n\r\n"
        );
        let mut out = Buf::with_capacity(4096);
        rewrite(
            b"HTTP/1.1 404 Not Found\r\nServer: up\r\nX-Powered-By: php\r\nContent-Length: 0\r\n\r\n",
            16 * 1024,
            Kind::Upgrade,
            &edits,
            Persistence::Close,
            &mut out,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8(out.data().to_vec()).unwrap(),
            "HTTP/1.1 404 Not Found\r\nX-Powered-By: php\r\nContent-Length: 0\r\n\
             Strict-Transport-Security: max-age=31536000\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn switching_passes_untouched() {
        let head =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let input = format!("{head}\u{81}\u{2}hi");
        let (r, out) = run(&input, Kind::Upgrade).unwrap().unwrap();
        assert_eq!(
            r,
            Response::Switching {
                head_len: head.len(),
                rewritten: false
            }
        );
        assert_eq!(out, "", "a 101 is forwarded from the input, not rewritten");
        assert_eq!(run(&input, GET).unwrap_err().status, Status::BadGateway);
    }

    #[test]
    fn final_answers_are_relayed_with_connection_close() {
        let (r, out) = run(
            "HTTP/1.1 403 Forbidden\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n\
             Content-Length: 6\r\nServer: up\r\n\r\ndenied",
            Kind::Upgrade,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            r,
            Response::Final {
                status: 403,
                body: Body::Length(6),
                ..
            }
        ));
        assert_eq!(
            out,
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\nServer: up\r\nConnection: close\r\n\r\n"
        );
    }

    /// Found by the `response_head` fuzz target (fuzz/README.md): an
    /// upstream naming a framing field in `Connection` had it dropped while
    /// the body was still relayed by it, so the client read chunk sizes as
    /// content. `TE` means nothing in a response and is dropped too.
    #[test]
    fn framing_fields_named_in_connection_still_frame_the_body() {
        let (r, out) = run(
            "HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding, close, TE\r\nTE: trailers\r\n\
             Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            GET,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            r,
            Response::Final {
                body: Body::Chunked(_),
                ..
            }
        ));
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let (_, out) = run(
            "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\nok",
            GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn body_framing_table() {
        let cases: &[(&str, Kind, Body)] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                GET,
                Body::Length(5),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                GET,
                Body::chunked(),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                GET,
                Body::UntilClose,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", GET, Body::UntilClose),
            ("HTTP/1.0 200 OK\r\n\r\n", GET, Body::UntilClose),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Kind::Plain { head: true },
                Body::Empty,
            ),
            ("HTTP/1.1 204 No Content\r\n\r\n", GET, Body::Empty),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                GET,
                Body::Empty,
            ),
        ];
        for (input, request, want) in cases {
            let (r, _) = run(input, *request).unwrap().unwrap();
            let Response::Final { body, .. } = r else {
                panic!("{input}")
            };
            assert_eq!(&body, want, "{input}");
        }
    }

    #[test]
    fn interim_partial_and_garbage() {
        assert_eq!(
            run("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", GET)
                .unwrap()
                .unwrap()
                .0,
            Response::Interim { head_len: 25 }
        );
        assert_eq!(run("HTTP/1.1 200 OK\r\nContent-", GET).unwrap(), None);
        for garbage in [
            "SSH-2.0-OpenSSH_9.2\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "\0\0\0\r\n\r\n",
            // Found by the response_head fuzz target: rewritten as `52`.
            "HTTP/1.0 052 Bad Gateway\r\n\r\n",
            "HTTP/1.1 000 OK\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert_eq!(
                run(garbage, GET).unwrap_err().status,
                Status::BadGateway,
                "{garbage:?}"
            );
        }
        assert_eq!(
            run(
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                GET
            )
            .unwrap_err()
            .why,
            "upstream sent both Content-Length and Transfer-Encoding"
        );
        let mut out = Buf::with_capacity(4096);
        let big = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(300));
        assert_eq!(
            rewrite(
                big.as_bytes(),
                100,
                GET,
                &NO_EDITS,
                Persistence::Close,
                &mut out
            )
            .unwrap_err()
            .status,
            Status::BadGateway
        );
    }
}
