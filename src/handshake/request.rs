//! The client's request head: parsed in place with httparse, validated, and
//! rewritten for the upstream in one pass.
//!
//! A WebSocket upgrade (RFC 6455 §4.1: GET, HTTP/1.1, `Upgrade: websocket`,
//! `Connection` listing `upgrade`, a 16-byte base64 `Sec-WebSocket-Key`,
//! `Sec-WebSocket-Version: 13`) goes upstream with the hop-by-hop fields
//! replaced by `Upgrade: websocket` and `Connection: upgrade`. Any other
//! request goes upstream with `Connection: close`, as nginx's
//! `map $http_upgrade $connection_upgrade { default upgrade; '' close; }`
//! does. Both get `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Real-IP`
//! from what the proxy knows (a client's own are dropped; a trusted peer's
//! are kept and extended, see `forwarded.rs`); every other field, `Host`
//! and `Sec-WebSocket-*` included, passes byte for byte in its original
//! order.

use std::net::IpAddr;

use crate::buffer::{Buf, Full};
use crate::framing::body::Body;
use crate::framing::frames::Frames;
use crate::handshake::answer::{Reject, Status};
use crate::handshake::edits::{RequestEdits, Vars};
use crate::handshake::fields::{
    is_clean_value, is_hop_by_hop, tokens, ConnectionTokens, Framing, Persistence,
};
use crate::handshake::forwarded::TrustedProxies;

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
#[derive(Debug)]
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
    /// Whether the client asked to keep its connection after the answer.
    pub fn persistence(&self) -> Persistence {
        Persistence::requested(self.minor, &self.connection)
    }

    /// RFC 9110 §9.2.2: a request that can be sent again with the same
    /// effect, so one that met a kept connection the upstream had closed
    /// is retried on a fresh one.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        )
    }

    /// `Expect: 100-continue`: the client may wait for a 100 before it
    /// sends its body (RFC 9110 §10.1.1).
    pub fn expects_continue(&self) -> bool {
        self.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("expect") && h.value.eq_ignore_ascii_case(b"100-continue")
        })
    }

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
        Err(httparse::Error::HeaderName) if has_obs_fold(input) => {
            return Err(bad("obsolete line folding in a header field"))
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
        check_upgrade(method, minor, &connection, &framing, headers)?;
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

/// RFC 9112 §5.2: a field line continued on the next (starting with SP or
/// HTAB) within the head. httparse refuses it as a bad name; saying why
/// helps whoever sent it.
fn has_obs_fold(input: &[u8]) -> bool {
    let mut rest = input;
    while let Some(i) = memchr::memchr(b'\n', rest) {
        rest = &rest[i + 1..];
        match rest.first() {
            Some(b' ' | b'\t') => return true,
            // The empty line ends the head.
            Some(b'\n') | None => return false,
            Some(b'\r') if rest.get(1) == Some(&b'\n') => return false,
            Some(_) => {}
        }
    }
    false
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
    framing: &Framing,
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
    // Everything after an upgrade's head is tunnel data to the proxy; an
    // upstream that refuses the upgrade would read a body, and whatever
    // follows it, as HTTP.
    if framing.transfer_encoding || framing.content_length.is_some_and(|n| n > 0) {
        return Err(bad("a WebSocket upgrade cannot carry a body"));
    }
    if !connection.contains(b"upgrade") {
        return Err(bad("Connection header must list upgrade"));
    }
    match occurrences(headers, "sec-websocket-key") {
        Occurs::Once(key) if is_websocket_key(key) => {}
        Occurs::Once(_) => {
            return Err(bad(
                "invalid Sec-WebSocket-Key (must be 16 bytes in base64)",
            ))
        }
        Occurs::Never => return Err(bad("missing Sec-WebSocket-Key")),
        Occurs::Repeated => return Err(bad("Sec-WebSocket-Key sent more than once")),
    }
    match occurrences(headers, "sec-websocket-version") {
        Occurs::Once(b"13") => Ok(()),
        Occurs::Once(_) => Err(Reject::new(
            Status::UpgradeRequired,
            "unsupported Sec-WebSocket-Version (this proxy speaks 13)",
        )),
        Occurs::Never => Err(bad("missing Sec-WebSocket-Version")),
        Occurs::Repeated => Err(bad("Sec-WebSocket-Version sent more than once")),
    }
}

/// How often a field appears in a head.
enum Occurs<'a> {
    Never,
    Once(&'a [u8]),
    Repeated,
}

fn occurrences<'a>(headers: &[httparse::Header<'a>], name: &str) -> Occurs<'a> {
    let mut found = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    match (found.next(), found.next()) {
        (None, _) => Occurs::Never,
        (Some(h), None) => Occurs::Once(h.value),
        (Some(_), Some(_)) => Occurs::Repeated,
    }
}

/// The value of a field that must appear exactly once.
fn single<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    match occurrences(headers, name) {
        Occurs::Once(value) => Some(value),
        Occurs::Never | Occurs::Repeated => None,
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

/// How the upstream's version of a request differs from the client's.
#[derive(Clone, Copy, Debug)]
pub struct Rewrite<'a> {
    /// The route's rewrite of the client's target.
    pub target: &'a str,
    /// What `$host` stands for in the route's edits.
    pub host: &'a str,
    /// The route's request field edits.
    pub edits: &'a RequestEdits,
    /// Whose forwarding fields are believed.
    pub proxies: &'a TrustedProxies,
    /// The upstream connection may stay open for further requests (a
    /// plain HTTP/1.1 request to a group that keeps connections): no
    /// `Connection: close`.
    pub reuse: bool,
}

/// Writes the upstream's version of `head` into `out`: the rewritten
/// target, the client's end-to-end fields, the route's edits, and the
/// proxy's own fields.
pub fn write_upstream(
    out: &mut Buf,
    head: &Head<'_, '_>,
    peer: Peer,
    rewrite: &Rewrite<'_>,
) -> Result<(), Full> {
    let Rewrite {
        target,
        host,
        edits,
        proxies,
        reuse,
    } = *rewrite;
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
            if !reuse || head.minor == 0 {
                out.put(b"Connection: close\r\n")?;
            }
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
    // A client's forwarding fields are its word; only a trusted peer's
    // (a balancer in front) are passed on, the peer appended.
    let trusted = proxies.trusts(peer.ip);
    let sent = |name: &'static str| {
        head.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    if !edits.sets("x-forwarded-for") {
        out.put(b"X-Forwarded-For: ")?;
        if trusted {
            // The peer's list, merged into one line, then the peer.
            for hop in sent("x-forwarded-for").flat_map(tokens) {
                out.put(hop)?;
                out.put(b", ")?;
            }
        }
        out.put_display(peer.ip)?;
        out.put(b"\r\n")?;
    }
    if !edits.sets("x-forwarded-proto") {
        let proto = match head.single("x-forwarded-proto") {
            Some(proto) if trusted => proto,
            _ => peer.scheme.as_bytes(),
        };
        put_field(out, "X-Forwarded-Proto", proto)?;
    }
    if !edits.sets("x-real-ip") {
        match head.single("x-real-ip") {
            Some(real) if trusted => put_field(out, "X-Real-IP", real)?,
            _ => {
                let client = if trusted {
                    proxies.client_of(peer.ip, sent("x-forwarded-for"))
                } else {
                    peer.ip
                };
                out.put(b"X-Real-IP: ")?;
                out.put_display(client)?;
                out.put(b"\r\n")?;
            }
        }
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

    /// Parses and writes with no route edits and no trusted proxies, the
    /// target unchanged.
    fn rewrite(
        input: &[u8],
        max_head: usize,
        peer: Peer,
        out: &mut Buf,
    ) -> Result<Option<Forward>, Reject> {
        rewrite_trusting(input, max_head, peer, &TrustedProxies::default(), out)
    }

    fn rewrite_trusting(
        input: &[u8],
        max_head: usize,
        peer: Peer,
        proxies: &TrustedProxies,
        out: &mut Buf,
    ) -> Result<Option<Forward>, Reject> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Some(head) = parse(input, max_head, &mut headers)? else {
            return Ok(None);
        };
        let edits = RequestEdits::default();
        let rewrite = Rewrite {
            target: head.target,
            host: "",
            edits: &edits,
            proxies,
            reuse: false,
        };
        write_upstream(out, &head, peer, &rewrite)
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
    fn an_upgrade_may_say_its_body_is_empty() {
        let input = UPGRADE.replace("Origin", "Content-Length: 0\r\nOrigin");
        let (fwd, _) = forwarded(&input);
        assert_eq!(fwd.kind, Kind::Upgrade);
        assert_eq!(fwd.body, Body::Frames(Frames::new(true)));
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
        // (Transfer-Encoding on an upgrade is refused: see refusals_table.)
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
    fn forwarding_fields_are_replaced_unless_the_peer_is_trusted() {
        let sent = "X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nx-forwarded-for: 3.3.3.3\r\n\
                    X-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nOrigin";
        let only_xff = "X-Forwarded-For: 203.0.113.7, 10.9.9.9\r\nOrigin";
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let untrusted = TrustedProxies::new(vec!["192.0.2.0/24".parse().unwrap()]);
        // (fields sent, trust list, the three lines the upstream gets)
        let cases: &[(&str, &TrustedProxies, [&str; 3])] = &[
            (
                sent,
                &TrustedProxies::default(),
                [
                    "X-Forwarded-For: 10.1.2.3",
                    "X-Forwarded-Proto: http",
                    "X-Real-IP: 10.1.2.3",
                ],
            ),
            (
                sent,
                &untrusted,
                [
                    "X-Forwarded-For: 10.1.2.3",
                    "X-Forwarded-Proto: http",
                    "X-Real-IP: 10.1.2.3",
                ],
            ),
            (
                sent,
                &trusted,
                [
                    "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3",
                    "X-Forwarded-Proto: https",
                    "X-Real-IP: 6.6.6.6",
                ],
            ),
            (
                only_xff,
                &trusted,
                [
                    "X-Forwarded-For: 203.0.113.7, 10.9.9.9, 10.1.2.3",
                    "X-Forwarded-Proto: http",
                    "X-Real-IP: 203.0.113.7",
                ],
            ),
            (
                "Origin",
                &trusted,
                [
                    "X-Forwarded-For: 10.1.2.3",
                    "X-Forwarded-Proto: http",
                    "X-Real-IP: 10.1.2.3",
                ],
            ),
        ];
        for (fields, proxies, want) in cases {
            let input = UPGRADE.replace("Origin", fields);
            let mut out = Buf::with_capacity(8192);
            rewrite_trusting(input.as_bytes(), 16 * 1024, PEER, proxies, &mut out)
                .unwrap()
                .unwrap();
            let head = String::from_utf8(out.data().to_vec()).unwrap();
            for line in want {
                assert!(
                    lines(&head).contains(line),
                    "{fields:?} {proxies:?}: {head}"
                );
            }
            let lower = head.to_ascii_lowercase();
            for name in ["x-forwarded-for", "x-forwarded-proto", "x-real-ip"] {
                assert_eq!(lower.matches(name).count(), 1, "{name} once: {head}");
            }
        }
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
            (
                UPGRADE.replace("Origin", "Content-Length: 5\r\nOrigin"),
                Status::BadRequest,
                "cannot carry a body",
            ),
            (
                UPGRADE.replace("Origin", "Transfer-Encoding: chunked\r\nOrigin"),
                Status::BadRequest,
                "cannot carry a body",
            ),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n".into(), Status::BadRequest, "obsolete line folding"),
            ("GET / HTTP/1.1\nHost: a\nX: a\n\tb\n\n".into(), Status::BadRequest, "obsolete line folding"),
            ("GET / HTTP/1.1\r\nHost: a\r\nX(: b\r\n\r\n".into(), Status::BadRequest, "invalid header name"),
            (UPGRADE.replace("Connection: Upgrade", "Connection: keep-alive"), Status::BadRequest, "Connection"),
            (
                UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                Status::BadRequest,
                "missing Sec-WebSocket-Key",
            ),
            (
                UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
                Status::BadRequest,
                "invalid Sec-WebSocket-Key",
            ),
            (
                UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ"),
                Status::BadRequest,
                "invalid Sec-WebSocket-Key",
            ),
            (
                UPGRADE.replace("Origin", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin"),
                Status::BadRequest,
                "Sec-WebSocket-Key sent more than once",
            ),
            (
                UPGRADE.replace("Sec-WebSocket-Version: 13\r\n", ""),
                Status::BadRequest,
                "missing Sec-WebSocket-Version",
            ),
            (
                UPGRADE.replace("Origin", "Sec-WebSocket-Version: 13\r\nOrigin"),
                Status::BadRequest,
                "Sec-WebSocket-Version sent more than once",
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
