//! The client's request head: parsed in place with httparse, validated, and
//! rewritten for the upstream in one pass.
//!
//! A WebSocket upgrade (RFC 6455 §4.1: GET, HTTP/1.1, `Upgrade: websocket`,
//! `Connection` listing `upgrade`, a 16-byte base64 `Sec-WebSocket-Key`,
//! `Sec-WebSocket-Version: 13`) goes upstream with the hop-by-hop fields
//! replaced by `Upgrade: websocket` and `Connection: upgrade`. Any other
//! request goes upstream with `Connection: close`, as nginx's
//! `map $http_upgrade $connection_upgrade { default upgrade; '' close; }`
//! does. Both get `X-Forwarded-For` (appended), `X-Forwarded-Proto` and
//! `X-Real-IP`; every other field, `Host` and `Sec-WebSocket-*` included,
//! passes byte for byte in its original order.

use std::net::IpAddr;

use crate::buffer::{Buf, Full};
use crate::handshake::answer::{Reject, Status};
use crate::handshake::body::Body;
use crate::handshake::edits::{RequestEdits, Vars};
use crate::handshake::fields::{is_clean_value, is_hop_by_hop, tokens, ConnectionTokens, Framing};
use crate::relay::frames::Frames;

/// Most header fields in one request head.
pub const MAX_HEADERS: usize = 100;

/// Bytes the rewrite may add beyond the original head: the proxy's own
/// `Upgrade`, `Connection`, `X-Forwarded-*` and `X-Real-IP` lines with the
/// longest IPv6 address, with room to spare.
pub const REWRITE_SLACK: usize = 512;

/// What kind of exchange a request starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A WebSocket upgrade: after a 101 every byte is tunnel data.
    Upgrade,
    /// A plain HTTP request, answered once and then closed.
    Plain {
        /// The method was HEAD, so the response has no body.
        head: bool,
    },
}

/// Facts about the client connection that the rewrite records.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub ip: IpAddr,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub scheme: &'static str,
}

const fn bad(why: &'static str) -> Reject {
    Reject::new(Status::BadRequest, why)
}

const TOO_LARGE: Reject = Reject::new(Status::HeaderTooLarge, "request head too large");

/// Fields the proxy writes itself, so the client's copies are not passed on.
const SET_BY_PROXY: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
    "content-length",
];

/// A parsed and validated request head, borrowing the input it came from.
pub struct Head<'h, 'b> {
    /// Length of the head in the input; what follows is body or early
    /// tunnel data.
    pub head_len: usize,
    pub method: &'b str,
    /// The request target as sent (origin-form: path and query).
    pub target: &'b str,
    /// HTTP/1.`minor`.
    pub minor: u8,
    pub headers: &'h [httparse::Header<'b>],
    pub kind: Kind,
    /// Framing of the client bytes after the head.
    pub body: Body,
    connection: ConnectionTokens<'b>,
    framing: Framing,
}

impl<'b> Head<'_, 'b> {
    /// The value of a field that appears exactly once.
    pub fn single(&self, name: &str) -> Option<&'b [u8]> {
        single(self.headers, name)
    }

    /// The path part of the target, without the query.
    pub fn path(&self) -> &'b str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }
}

/// Parses and validates the head at the start of `input`, with `headers` as
/// httparse's field table. `Ok(None)` means the head is not complete yet.
pub fn parse<'h, 'b>(
    input: &'b [u8],
    max_head: usize,
    headers: &'h mut [httparse::Header<'b>],
) -> Result<Option<Head<'h, 'b>>, Reject> {
    let mut req = httparse::Request::new(headers);
    let head_len = match req.parse(input) {
        Ok(httparse::Status::Complete(n)) if n > max_head => return Err(TOO_LARGE),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() >= max_head => return Err(TOO_LARGE),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Reject::new(
                Status::HeaderTooLarge,
                "too many header fields",
            ))
        }
        Err(e) => return Err(bad(parse_error(e))),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(bad("incomplete request line"));
    };
    let headers: &'h [httparse::Header<'b>] = req.headers;

    let connection =
        ConnectionTokens::collect(headers).map_err(|_| bad("too many Connection tokens"))?;
    let framing =
        Framing::read(headers).map_err(|_| bad("invalid or conflicting Content-Length"))?;
    check_framing(&framing, minor)?;
    let hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    if hosts > 1 || (minor == 1 && hosts == 0) {
        return Err(bad("HTTP/1.1 request needs exactly one Host header"));
    }
    if method == "CONNECT" {
        return Err(Reject::new(
            Status::MethodNotAllowed,
            "CONNECT is not proxied",
        ));
    }
    if !target.starts_with('/') {
        return Err(bad("the request target must be a path (origin-form)"));
    }

    let wants_websocket = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("upgrade"))
        .flat_map(|h| tokens(h.value))
        .any(|t| t.eq_ignore_ascii_case(b"websocket"));
    let kind = if wants_websocket {
        check_upgrade(method, minor, &connection, headers)?;
        Kind::Upgrade
    } else {
        Kind::Plain {
            head: method == "HEAD",
        }
    };
    let body = match (kind, framing.chunked, framing.content_length) {
        // After the 101 the client sends frames, masked (RFC 6455 §5.3).
        (Kind::Upgrade, ..) => Body::Frames(Frames::new(true)),
        (_, true, _) => Body::chunked(),
        (_, false, Some(n)) => Body::Length(n),
        (_, false, None) => Body::Empty,
    };
    Ok(Some(Head {
        head_len,
        method,
        target,
        minor,
        headers,
        kind,
        body,
        connection,
        framing,
    }))
}

fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid method or request line",
        httparse::Error::Version => "invalid HTTP version",
        httparse::Error::Status | httparse::Error::TooManyHeaders => "malformed request head",
    }
}

/// RFC 9112 §6.1 and §6.3: the framing rules whose violations enable request
/// smuggling are refused outright.
fn check_framing(framing: &Framing, minor: u8) -> Result<(), Reject> {
    if framing.transfer_encoding && framing.content_length.is_some() {
        return Err(bad("both Content-Length and Transfer-Encoding"));
    }
    if framing.transfer_encoding && minor == 0 {
        return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    if framing.transfer_encoding && !framing.chunked {
        return Err(bad("Transfer-Encoding must end with chunked"));
    }
    Ok(())
}

/// RFC 6455 §4.1/§4.2.1: what a client's opening handshake must carry.
fn check_upgrade(
    method: &str,
    minor: u8,
    connection: &ConnectionTokens<'_>,
    headers: &[httparse::Header<'_>],
) -> Result<(), Reject> {
    if method != "GET" {
        return Err(Reject::new(
            Status::MethodNotAllowed,
            "a WebSocket upgrade must use GET",
        ));
    }
    if minor != 1 {
        return Err(bad("a WebSocket upgrade needs HTTP/1.1"));
    }
    if !connection.contains(b"upgrade") {
        return Err(bad("Connection header must list upgrade"));
    }
    match single(headers, "sec-websocket-key") {
        Some(key) if is_websocket_key(key) => {}
        _ => return Err(bad("missing or invalid Sec-WebSocket-Key")),
    }
    match single(headers, "sec-websocket-version") {
        Some(b"13") => Ok(()),
        Some(_) => Err(Reject::new(
            Status::UpgradeRequired,
            "unsupported Sec-WebSocket-Version (this proxy speaks 13)",
        )),
        None => Err(bad("missing Sec-WebSocket-Version")),
    }
}

/// The value of a field that must appear exactly once.
fn single<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    let mut found = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    match (found.next(), found.next()) {
        (Some(h), None) => Some(h.value),
        _ => None,
    }
}

/// A base64-encoded 16-byte value: 22 alphabet characters and `==`.
fn is_websocket_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Whether a client field is passed on unchanged.
fn passes(name: &str, connection: &ConnectionTokens<'_>) -> bool {
    if is_hop_by_hop(name) || SET_BY_PROXY.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        return false;
    }
    // Fields named in Connection are hop-by-hop too (RFC 9110 §7.6.1), but
    // Host and the handshake's own fields are end-to-end by definition: a
    // client cannot have them stripped by naming them.
    let end_to_end = name.eq_ignore_ascii_case("host")
        || name.len() >= 14 && name[..14].eq_ignore_ascii_case("sec-websocket-");
    end_to_end || !connection.contains(name.as_bytes())
}

/// Writes the upstream's version of `head` into `out`: `target` (the
/// route's rewrite of the client's), the client's end-to-end fields, the
/// route's `edits`, and the proxy's own fields. `host` fills `$host`.
pub fn write_upstream(
    out: &mut Buf,
    head: &Head<'_, '_>,
    target: &str,
    peer: Peer,
    edits: &RequestEdits,
    host: &str,
) -> Result<(), Full> {
    out.put(head.method.as_bytes())?;
    out.put(b" ")?;
    out.put(target.as_bytes())?;
    out.put(if head.minor == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    })?;
    for h in head
        .headers
        .iter()
        .filter(|h| passes(h.name, &head.connection) && !edits.sets(h.name))
    {
        debug_assert!(
            is_clean_value(h.value),
            "httparse admits no CR/LF/NUL in values"
        );
        put_field(out, h.name, h.value)?;
    }
    let vars = Vars {
        host,
        remote_addr: peer.ip,
        scheme: peer.scheme,
        request_uri: head.target,
    };
    for f in edits.set.iter().filter(|f| !f.value.is_empty()) {
        out.put(f.name.as_bytes())?;
        out.put(b": ")?;
        f.value.write(out, &vars)?;
        out.put(b"\r\n")?;
    }
    match head.kind {
        Kind::Upgrade => out.put(b"Upgrade: websocket\r\nConnection: upgrade\r\n")?,
        Kind::Plain { .. } => {
            out.put(b"Connection: close\r\n")?;
            // The chunked body passes through still encoded.
            if head.framing.chunked {
                out.put(b"Transfer-Encoding: chunked\r\n")?;
            }
        }
    }
    if let Some(n) = head.framing.content_length {
        out.put(b"Content-Length: ")?;
        out.put_decimal(n)?;
        out.put(b"\r\n")?;
    }
    if !edits.sets("x-forwarded-for") {
        // The client's list, merged into one line, then the client.
        out.put(b"X-Forwarded-For: ")?;
        for h in head
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
        {
            for hop in tokens(h.value) {
                out.put(hop)?;
                out.put(b", ")?;
            }
        }
        out.put_display(peer.ip)?;
        out.put(b"\r\n")?;
    }
    if !edits.sets("x-forwarded-proto") {
        put_field(out, "X-Forwarded-Proto", peer.scheme.as_bytes())?;
    }
    if !edits.sets("x-real-ip") {
        out.put(b"X-Real-IP: ")?;
        out.put_display(peer.ip)?;
        out.put(b"\r\n")?;
    }
    out.put(b"\r\n")
}

fn put_field(out: &mut Buf, name: &str, value: &[u8]) -> Result<(), Full> {
    out.put(name.as_bytes())?;
    out.put(b": ")?;
    out.put(value)?;
    out.put(b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const PEER: Peer = Peer {
        ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        scheme: "http",
    };

    const UPGRADE: &str = "GET /chat?room=1 HTTP/1.1\r\n\
        Host: example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Origin: http://example.com\r\n\r\n";

    /// What the tests check of a parsed head.
    #[derive(Debug, PartialEq, Eq)]
    struct Forward {
        head_len: usize,
        kind: Kind,
        body: Body,
    }

    /// Parses and writes with no route edits, the target unchanged.
    fn rewrite(
        input: &[u8],
        max_head: usize,
        peer: Peer,
        out: &mut Buf,
    ) -> Result<Option<Forward>, Reject> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Some(head) = parse(input, max_head, &mut headers)? else {
            return Ok(None);
        };
        write_upstream(out, &head, head.target, peer, &RequestEdits::default(), "")
            .map_err(|Full| Reject::new(Status::HeaderTooLarge, "too large once rewritten"))?;
        Ok(Some(Forward {
            head_len: head.head_len,
            kind: head.kind,
            body: head.body,
        }))
    }

    fn run(input: &str) -> Result<Option<(Forward, String)>, Reject> {
        let mut out = Buf::with_capacity(8192);
        Ok(rewrite(input.as_bytes(), 16 * 1024, PEER, &mut out)?
            .map(|fwd| (fwd, String::from_utf8(out.data().to_vec()).unwrap())))
    }

    fn forwarded(input: &str) -> (Forward, String) {
        run(input).expect("accepted").expect("complete")
    }

    fn rejected(input: &str) -> Reject {
        run(input).expect_err("refused")
    }

    fn lines(head: &str) -> Vec<&str> {
        head.split("\r\n").collect()
    }

    #[test]
    fn upgrade_is_rewritten() {
        let (fwd, head) = forwarded(UPGRADE);
        assert_eq!(fwd.kind, Kind::Upgrade);
        assert_eq!(fwd.body, Body::Frames(Frames::new(true)));
        assert_eq!(fwd.head_len, UPGRADE.len());
        assert_eq!(
            head,
            "GET /chat?room=1 HTTP/1.1\r\n\
             Host: example.com\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Origin: http://example.com\r\n\
             Upgrade: websocket\r\n\
             Connection: upgrade\r\n\
             X-Forwarded-For: 10.1.2.3\r\n\
             X-Forwarded-Proto: http\r\n\
             X-Real-IP: 10.1.2.3\r\n\r\n"
        );
    }

    #[test]
    fn firefox_connection_list_and_early_data() {
        let input = UPGRADE.replace("Connection: Upgrade", "Connection: keep-alive, Upgrade")
            + "\u{81}\u{5}early";
        let (fwd, head) = forwarded(&input);
        assert_eq!(fwd.kind, Kind::Upgrade);
        assert_eq!(
            &input.as_bytes()[fwd.head_len..],
            "\u{81}\u{5}early".as_bytes()
        );
        assert!(!head.to_ascii_lowercase().contains("keep-alive"));
    }

    #[test]
    fn hop_by_hop_and_connection_named_fields_are_dropped() {
        let input = UPGRADE.replace(
            "Connection: Upgrade\r\n",
            "Connection: Upgrade, X-Secret, Host, Sec-WebSocket-Key\r\n\
             Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
             Trailer: X-T\r\nX-Secret: 1\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n",
        );
        let input = input.replace(
            "TE: trailers\r\n",
            "TE: trailers\r\nTransfer-Encoding: chunked\r\n",
        );
        let (_, head) = forwarded(&input);
        let lower = head.to_ascii_lowercase();
        for gone in [
            "transfer-encoding",
            "keep-alive",
            "proxy-connection",
            "te:",
            "trailer",
            "x-secret",
            "6.6.6.6",
            "https",
        ] {
            assert!(!lower.contains(gone), "{gone} passed: {head}");
        }
        assert!(head.contains("Host: example.com\r\n"), "Host is end to end");
        assert!(
            head.contains("Sec-WebSocket-Key: "),
            "handshake fields are end to end"
        );
        assert_eq!(lower.matches("connection:").count(), 1);
        assert_eq!(lower.matches("upgrade:").count(), 1);
    }

    #[test]
    fn x_forwarded_for_appends_across_lines() {
        let input = UPGRADE.replace(
            "Origin",
            "X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nx-forwarded-for: 3.3.3.3\r\nOrigin",
        );
        let (_, head) = forwarded(&input);
        assert!(lines(&head).contains(&"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3"));
        assert_eq!(
            head.to_ascii_lowercase().matches("x-forwarded-for").count(),
            1
        );
    }

    #[test]
    fn plain_requests_go_with_connection_close() {
        let (fwd, head) =
            forwarded("GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(fwd.kind, Kind::Plain { head: false });
        assert_eq!(fwd.body, Body::Empty);
        assert!(head.starts_with("GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"));

        let (fwd, head) =
            forwarded("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(fwd.body, Body::Length(5));
        assert!(head.contains("Content-Length: 5\r\n"));

        let (fwd, head) =
            forwarded("POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(fwd.body, Body::chunked());
        assert!(head.contains("Transfer-Encoding: chunked\r\n"));

        let (fwd, _) = forwarded("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(fwd.kind, Kind::Plain { head: true });

        let (fwd, head) = forwarded("GET / HTTP/1.0\r\n\r\n");
        assert_eq!(fwd.kind, Kind::Plain { head: false });
        assert!(head.starts_with("GET / HTTP/1.0\r\n"));

        let (fwd, head) = forwarded("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: x\r\n\r\n");
        assert_eq!(
            fwd.kind,
            Kind::Plain { head: false },
            "non-WebSocket upgrades are ignored"
        );
        assert!(!head.to_ascii_lowercase().contains("h2c"));
        assert!(!head.contains("HTTP2-Settings"));
    }

    #[test]
    fn partial_and_too_large() {
        assert_eq!(run("GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
        let mut out = Buf::with_capacity(8192);
        let long = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "a".repeat(200));
        assert_eq!(
            rewrite(long.as_bytes(), 100, PEER, &mut out).unwrap_err(),
            TOO_LARGE
        );
        let complete = format!("{long}\r\n");
        assert_eq!(
            rewrite(complete.as_bytes(), 100, PEER, &mut out).unwrap_err(),
            TOO_LARGE
        );
        let many = format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS)
        );
        assert_eq!(rejected(&many).status, Status::HeaderTooLarge);
        let mut tiny = Buf::with_capacity(64);
        assert_eq!(
            rewrite(UPGRADE.as_bytes(), 16 * 1024, PEER, &mut tiny)
                .unwrap_err()
                .status,
            Status::HeaderTooLarge
        );
    }

    #[test]
    fn refusals_table() {
        let cases: &[(String, Status, &str)] = &[
            ("GARBAGE\r\n\r\n".into(), Status::BadRequest, ""),
            ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n".into(), Status::BadRequest, "header name"),
            ("GET / HTTP/1.1\r\n\r\n".into(), Status::BadRequest, "Host"),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), Status::BadRequest, "Host"),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
                Status::BadRequest,
                "both",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n".into(),
                Status::BadRequest,
                "Content-Length",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
                Status::BadRequest,
                "chunked",
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
                Status::BadRequest,
                "HTTP/1.0",
            ),
            ("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n".into(), Status::MethodNotAllowed, "CONNECT"),
            (UPGRADE.replace("GET", "POST"), Status::MethodNotAllowed, "GET"),
            (UPGRADE.replace("HTTP/1.1", "HTTP/1.0"), Status::BadRequest, "HTTP/1.1"),
            (UPGRADE.replace("Connection: Upgrade", "Connection: keep-alive"), Status::BadRequest, "Connection"),
            (
                UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                Status::BadRequest,
                "Sec-WebSocket-Key",
            ),
            (
                UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
                Status::BadRequest,
                "Sec-WebSocket-Key",
            ),
            (
                UPGRADE.replace("Origin", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin"),
                Status::BadRequest,
                "Sec-WebSocket-Key",
            ),
            (
                UPGRADE.replace("Sec-WebSocket-Version: 13\r\n", ""),
                Status::BadRequest,
                "Sec-WebSocket-Version",
            ),
            (
                UPGRADE.replace("Version: 13", "Version: 8"),
                Status::UpgradeRequired,
                "Sec-WebSocket-Version",
            ),
        ];
        for (input, status, why) in cases {
            let reject = rejected(input);
            assert_eq!(reject.status, *status, "{input:?}");
            assert!(reject.why.contains(why), "{input:?}: {}", reject.why);
        }
    }
}
