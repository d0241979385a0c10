//! An independent oracle for the proxy's head rewrites, shared by the
//! property tests (`tests/properties.rs`) and the fuzz targets (`fuzz/`,
//! which include this file by path). It re-parses what the proxy wrote with
//! httparse and checks it against the input line by line, with its own
//! lists of hop-by-hop and proxy-owned fields rather than the crate's, so a
//! mistake in those lists shows up as a failure instead of agreeing with
//! itself.
//!
//! Only `httparse` and `std` are used here: the fuzz crate compiles this
//! file as a module of its own.

#![allow(dead_code)] // each user checks a subset

/// One header field as bytes: name and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: Vec<u8>,
}

impl Field {
    pub fn new(name: &str, value: &[u8]) -> Field {
        Field {
            name: name.to_string(),
            value: value.to_vec(),
        }
    }

    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// RFC 9110 §7.6.1's hop-by-hop fields, the legacy `Proxy-Connection` and
/// `Trailer` (hop-by-hop in RFC 7230, and never forwarded on requests).
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request fields the proxy writes itself (the client's copies are
/// dropped, and its `X-Forwarded-For` list merged into the proxy's line).
pub const REQUEST_PROXY_SET: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
    "content-length",
];

/// Response fields dropped on the way to the client. `Transfer-Encoding`
/// and `Trailer` pass: the body is relayed still chunk-encoded, with its
/// trailers.
pub const RESPONSE_DROPPED: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
];

/// Response fields that frame the relayed body: they pass even when the
/// upstream names them in `Connection`, or the client would misread it.
pub const RESPONSE_FRAMING: [&str; 2] = ["content-length", "transfer-encoding"];

fn listed(list: &[&str], name: &str) -> bool {
    list.iter().any(|l| l.eq_ignore_ascii_case(name))
}

/// The comma-separated tokens of every field called `name`, lowercased.
pub fn tokens_of(fields: &[Field], name: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|f| f.is(name))
        .flat_map(|f| f.value.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// A head as the oracle reads it.
#[derive(Debug)]
pub struct Parsed {
    /// Request: method and target; response: status code and reason.
    pub first: (String, String),
    /// HTTP/1.`minor`.
    pub minor: u8,
    pub fields: Vec<Field>,
    /// Bytes the head takes; what follows is body or tunnel data.
    pub len: usize,
}

/// Most fields the oracle reads in one head.
const MAX_FIELDS: usize = 256;

/// Checks the head's line structure: every line ends in CRLF and holds no
/// other CR or LF (httparse alone would take a bare LF as a line end).
fn check_lines(head: &[u8]) -> Result<(), String> {
    let Some(lines) = head.strip_suffix(b"\r\n") else {
        return Err("the head does not end with an empty line".into());
    };
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let Some(text) = line.strip_suffix(b"\r\n") else {
            return Err(format!(
                "a line without CRLF: {:?}",
                String::from_utf8_lossy(line)
            ));
        };
        if text.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!(
                "CR or NUL inside a line: {:?}",
                String::from_utf8_lossy(text)
            ));
        }
    }
    Ok(())
}

fn fields_of(headers: &[httparse::Header<'_>]) -> Result<Vec<Field>, String> {
    headers
        .iter()
        .map(|h| {
            if h.value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
                Err(format!("CR, LF or NUL in the value of {}", h.name))
            } else {
                Ok(Field::new(h.name, h.value))
            }
        })
        .collect()
}

/// Parses a complete request head at the start of `bytes`.
pub fn parse_request(bytes: &[u8]) -> Result<Parsed, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("the request head is incomplete".into()),
        Err(e) => return Err(format!("the request head does not parse: {e}")),
    };
    check_lines(&bytes[..len])?;
    Ok(Parsed {
        first: (
            req.method.unwrap_or_default().to_string(),
            req.path.unwrap_or_default().to_string(),
        ),
        minor: req.version.unwrap_or_default(),
        fields: fields_of(req.headers)?,
        len,
    })
}

/// Parses a complete response head the proxy wrote at the start of
/// `bytes`: CRLF line ends only.
pub fn parse_response(bytes: &[u8]) -> Result<Parsed, String> {
    response(bytes, true)
}

/// Parses a complete response head the proxy passed on as the upstream
/// sent it (an interim 1xx), with whatever line ends httparse takes.
pub fn parse_response_as_sent(bytes: &[u8]) -> Result<Parsed, String> {
    response(bytes, false)
}

fn response(bytes: &[u8], strict: bool) -> Result<Parsed, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("the response head is incomplete".into()),
        Err(e) => return Err(format!("the response head does not parse: {e}")),
    };
    if strict {
        check_lines(&bytes[..len])?;
    }
    Ok(Parsed {
        first: (
            res.code.unwrap_or_default().to_string(),
            res.reason.unwrap_or_default().to_string(),
        ),
        minor: res.version.unwrap_or_default(),
        fields: fields_of(res.headers)?,
        len,
    })
}

/// Field lines whose name is `name`.
pub fn named<'a>(fields: &'a [Field], name: &str) -> Vec<&'a Field> {
    fields.iter().filter(|f| f.is(name)).collect()
}

/// Exactly one `name` line, with `value` (compared without case).
fn exactly_one(fields: &[Field], name: &str, value: &[u8]) -> Result<(), String> {
    match named(fields, name).as_slice() {
        [one] if one.value.eq_ignore_ascii_case(value) => Ok(()),
        found => Err(format!(
            "expected one {name}: {:?}, found {found:?}",
            String::from_utf8_lossy(value)
        )),
    }
}

/// Compares the fields that passed with those expected, in order, line by
/// line: a field dropped, split, merged, reordered or altered fails.
fn same_lines(passed: &[&Field], expected: &[&Field]) -> Result<(), String> {
    if passed == expected {
        return Ok(());
    }
    let first = passed
        .iter()
        .zip(expected)
        .position(|(p, e)| p != e)
        .unwrap_or(passed.len().min(expected.len()));
    Err(format!(
        "end-to-end fields differ at line {first}: passed {:?}, expected {:?}",
        passed.get(first),
        expected.get(first)
    ))
}

/// What the proxy was asked to do with a request, for the oracle.
pub struct RequestCase<'a> {
    /// The client's fields, in order.
    pub input: &'a [Field],
    /// A WebSocket upgrade (else a plain request).
    pub upgrade: bool,
    /// A plain request goes up on a connection that may be kept for the
    /// next (HTTP/1.1 to a group that keeps connections): no
    /// `Connection` field. Otherwise `Connection: close`.
    pub kept: bool,
    /// The request's body is chunked (plain requests only).
    pub chunked: bool,
    /// The one agreed `Content-Length`, if any.
    pub content_length: Option<u64>,
    /// Names the route sets (the client's copies are replaced).
    pub edited: &'a [&'a str],
    /// The client's address as the proxy writes it.
    pub peer: &'a str,
    pub scheme: &'a str,
}

/// Checks a rewritten request head's fields against its input: hop-by-hop
/// fields (those the client's `Connection` names included) are gone but
/// for the proxy's own; every other field passes once per input line,
/// in order, byte for byte; the proxy's fields are there once each.
pub fn check_request(case: &RequestCase<'_>, out: &[Field]) -> Result<(), String> {
    let named_in_connection = tokens_of(case.input, "connection");
    let end_to_end_anyway = |name: &str| {
        name.eq_ignore_ascii_case("host")
            || name.len() >= 14 && name[..14].eq_ignore_ascii_case("sec-websocket-")
    };
    let edited = |name: &str| listed(case.edited, name);
    let proxy_owned =
        |name: &str| listed(&HOP_BY_HOP, name) || listed(&REQUEST_PROXY_SET, name) || edited(name);
    let expected: Vec<&Field> = case
        .input
        .iter()
        .filter(|f| {
            !proxy_owned(&f.name)
                && (end_to_end_anyway(&f.name)
                    || !named_in_connection.contains(&f.name.to_ascii_lowercase()))
        })
        .collect();
    let passed: Vec<&Field> = out.iter().filter(|f| !proxy_owned(&f.name)).collect();
    same_lines(&passed, &expected)?;

    for f in out {
        let lower = f.name.to_ascii_lowercase();
        if named_in_connection.contains(&lower)
            && !end_to_end_anyway(&f.name)
            && !proxy_owned(&f.name)
        {
            return Err(format!("{} is named in Connection but passed", f.name));
        }
    }
    if case.upgrade {
        exactly_one(out, "upgrade", b"websocket")?;
        exactly_one(out, "connection", b"upgrade")?;
    } else {
        if case.kept {
            if !named(out, "connection").is_empty() {
                return Err("a request on a kept connection went up with Connection".into());
            }
        } else {
            exactly_one(out, "connection", b"close")?;
        }
        if !named(out, "upgrade").is_empty() {
            return Err("a plain request went up with Upgrade".into());
        }
    }
    for hop in ["keep-alive", "proxy-connection", "te", "trailer"] {
        if !named(out, hop).is_empty() {
            return Err(format!("hop-by-hop {hop} passed"));
        }
    }
    match (case.chunked, named(out, "transfer-encoding").as_slice()) {
        (false, []) => {}
        (true, [one]) if one.value == b"chunked" => {}
        (chunked, found) => {
            return Err(format!(
                "Transfer-Encoding {found:?} for a chunked={chunked} request"
            ))
        }
    }
    match (case.content_length, named(out, "content-length").as_slice()) {
        (None, []) => {}
        (Some(n), [one]) if one.value == n.to_string().as_bytes() => {}
        (want, found) => return Err(format!("Content-Length {found:?}, expected {want:?}")),
    }
    if !edited("x-forwarded-for") {
        let xff = named(out, "x-forwarded-for");
        let [line] = xff.as_slice() else {
            return Err(format!("{} X-Forwarded-For lines", xff.len()));
        };
        // No trusted proxy is configured: a client's own list is replaced
        // by the peer's address (tests/inputs.rs covers trusted peers).
        if line.value != case.peer.as_bytes() {
            return Err(format!(
                "X-Forwarded-For {:?}, expected {} alone",
                String::from_utf8_lossy(&line.value),
                case.peer
            ));
        }
    }
    if !edited("x-forwarded-proto") {
        exactly_one(out, "x-forwarded-proto", case.scheme.as_bytes())?;
    }
    if !edited("x-real-ip") {
        exactly_one(out, "x-real-ip", case.peer.as_bytes())?;
    }
    Ok(())
}

/// What the proxy was asked to do with a final (non-1xx) response.
pub struct ResponseCase<'a> {
    /// The upstream's fields, in order.
    pub input: &'a [Field],
    /// Upstream fields the route hides.
    pub hidden: &'a [&'a str],
    /// Fields the route adds (replacing the upstream's of that name), with
    /// whether they apply to this status.
    pub added: &'a [(&'a str, &'a str, bool)],
    /// The proxy's `Connection` value, which ends the head (`close` or
    /// `keep-alive`); `None`: no `Connection` field (HTTP/1.1 staying
    /// open).
    pub connection: Option<&'a [u8]>,
}

/// Checks a rewritten final response's fields: the hop-by-hop ones and
/// those the upstream's `Connection` names are gone (the framing fields
/// excepted), every other field passes once per input line, in order,
/// byte for byte, the route's additions follow, and the proxy's own
/// `Connection` field, if any, ends the head.
pub fn check_final_response(case: &ResponseCase<'_>, out: &[Field]) -> Result<(), String> {
    let named_in_connection = tokens_of(case.input, "connection");
    let route_owned = |name: &str| {
        listed(case.hidden, name) || case.added.iter().any(|a| a.0.eq_ignore_ascii_case(name))
    };
    let expected: Vec<&Field> = case
        .input
        .iter()
        .filter(|f| {
            !listed(&RESPONSE_DROPPED, &f.name)
                && !route_owned(&f.name)
                && (listed(&RESPONSE_FRAMING, &f.name)
                    || !named_in_connection.contains(&f.name.to_ascii_lowercase()))
        })
        .collect();
    let passed_and_added = match case.connection {
        Some(value) => {
            let Some(last) = out.last() else {
                return Err("no fields at all: the Connection field is missing".into());
            };
            if !last.is("connection") || last.value != value {
                return Err(format!(
                    "the last field is {last:?}, not Connection: {}",
                    String::from_utf8_lossy(value)
                ));
            }
            &out[..out.len() - 1]
        }
        None => out,
    };
    if passed_and_added.iter().any(|f| f.is("connection")) {
        return Err("a Connection field other than the proxy's last one".into());
    }
    let passed: Vec<&Field> = passed_and_added
        .iter()
        .filter(|f| !route_owned(&f.name))
        .collect();
    same_lines(&passed, &expected)?;
    let added: Vec<(&str, &[u8])> = passed_and_added
        .iter()
        .filter(|f| route_owned(&f.name))
        .map(|f| (f.name.as_str(), f.value.as_slice()))
        .collect();
    let want: Vec<(&str, &[u8])> = case
        .added
        .iter()
        .filter(|a| a.2)
        .map(|a| (a.0, a.1.as_bytes()))
        .collect();
    if added != want {
        return Err(format!("added fields {added:?}, expected {want:?}"));
    }
    for dropped in RESPONSE_DROPPED {
        if dropped != "connection" && !named(out, dropped).is_empty() {
            return Err(format!("hop-by-hop {dropped} passed"));
        }
    }
    Ok(())
}

/// How the client will frame the body after a response head with `fields`
/// (RFC 9112 §6.3), for a response that may carry one: `Some(n)` a
/// `Content-Length`, `None` with `chunked` true chunked, both unset: until
/// close. Errors on a head a client cannot frame.
pub fn client_framing(fields: &[Field]) -> Result<(Option<u64>, bool), String> {
    let codings = tokens_of(fields, "transfer-encoding");
    let lengths: Vec<&Field> = named(fields, "content-length");
    if !codings.is_empty() && !lengths.is_empty() {
        return Err("both Transfer-Encoding and Content-Length".into());
    }
    if let Some(last) = codings.last() {
        return Ok((None, last == "chunked"));
    }
    let mut length = None;
    for f in lengths {
        for token in f.value.split(|&b| b == b',') {
            let n = std::str::from_utf8(token.trim_ascii())
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or_else(|| format!("Content-Length {:?}", String::from_utf8_lossy(&f.value)))?;
            if length.is_some_and(|l| l != n) {
                return Err("Content-Length values disagree".into());
            }
            length = Some(n);
        }
    }
    Ok((length, false))
}
