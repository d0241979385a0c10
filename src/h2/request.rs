//! A decoded field block checked into a request: the pseudo-header rules
//! of RFC 9113 §8.3, the field rules of §8.2 (no upper case, no
//! connection-specific fields, `te` only as `trailers`, no CR, LF or NUL
//! in a value), and extended CONNECT (RFC 8441 §4).
//!
//! [`RequestBuilder`] takes the fields as the HPACK decoder hands them
//! over (the decoder has to see the whole block through whatever this
//! finds, to keep its table in step), remembers the first rule broken, and
//! [`RequestBuilder::finish`] gives the request or the stream error:
//! every malformed request is a stream error PROTOCOL_ERROR (§8.1.1); a
//! field section over the HPACK list limit is answered 431 (§10.5.1).

use super::error::{ErrorCode, StreamError};
use super::hpack::BlockSize;

/// Regular fields in order, names lower case: `(name, value)`.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// What the request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A request with `:scheme` and `:path` (any method but CONNECT).
    Origin {
        /// `:scheme`.
        scheme: Vec<u8>,
        /// `:path`, never empty: `/…`, or `*` for OPTIONS.
        path: Vec<u8>,
    },
    /// A CONNECT without `:protocol` (§8.5): a tunnel to `:authority`.
    Connect,
    /// Extended CONNECT (RFC 8441 §4): `:protocol` over the stream, e.g.
    /// `websocket`, to `:path` on `:authority`.
    ExtendedConnect {
        /// `:protocol`.
        protocol: Vec<u8>,
        /// `:scheme`.
        scheme: Vec<u8>,
        /// `:path`.
        path: Vec<u8>,
    },
}

/// A request's head, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `:method`.
    pub method: Vec<u8>,
    /// `:authority`, required for CONNECT of both kinds.
    pub authority: Option<Vec<u8>>,
    /// The pseudo-headers beside the method and authority.
    pub target: Target,
    /// The regular fields.
    pub fields: Fields,
    /// The body's length as `content-length` gives it: the DATA of the
    /// stream has to add up to it (§8.1.1).
    pub content_length: Option<u64>,
}

/// Why a block is not a request the stream can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Malformed (§8.1.1): reset the stream with PROTOCOL_ERROR.
    #[error(transparent)]
    Malformed(StreamError),
    /// Over the header list limit: answer 431 on `stream`.
    #[error("stream {0}: header list too large")]
    TooLarge(u32),
}

/// Connection-specific fields (§8.2.2): a request carrying one is
/// malformed.
const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
];

/// The request being gathered from one field block.
#[derive(Debug)]
pub struct RequestBuilder {
    connect_protocol: bool,
    method: Option<Vec<u8>>,
    scheme: Option<Vec<u8>>,
    authority: Option<Vec<u8>>,
    path: Option<Vec<u8>>,
    protocol: Option<Vec<u8>>,
    fields: Fields,
    /// The first rule broken.
    error: Option<&'static str>,
}

/// Whether `name` is a valid field name (§8.2.1), pseudo-header colon
/// aside: not empty, no upper case, no colon, no octet outside `0x21..=0x7e`.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&c| (0x21..=0x7e).contains(&c) && !c.is_ascii_uppercase() && c != b':')
}

/// Whether `value` is a valid field value (§8.2.1): no NUL, CR or LF, and
/// no leading or trailing space or tab.
fn valid_value(value: &[u8]) -> bool {
    let edge = |c: Option<&u8>| matches!(c, Some(b' ' | b'\t'));
    !value.iter().any(|&c| matches!(c, 0 | b'\r' | b'\n'))
        && !edge(value.first())
        && !edge(value.last())
}

/// Whether `method` is a token (RFC 9110 §5.6.2).
fn is_token(method: &[u8]) -> bool {
    !method.is_empty()
        && method
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

impl RequestBuilder {
    /// A builder for one block; `connect_protocol` says whether we sent
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` (RFC 8441 §3).
    pub fn new(connect_protocol: bool) -> Self {
        Self {
            connect_protocol,
            method: None,
            scheme: None,
            authority: None,
            path: None,
            protocol: None,
            fields: Vec::new(),
            error: None,
        }
    }

    fn fail(&mut self, reason: &'static str) {
        self.error.get_or_insert(reason);
    }

    /// Takes one field, in block order.
    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if !valid_value(value) {
            return self.fail("invalid field value");
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            if !self.fields.is_empty() {
                return self.fail("pseudo-header after a regular field");
            }
            let slot = match pseudo {
                b"method" => &mut self.method,
                b"scheme" => &mut self.scheme,
                b"authority" => &mut self.authority,
                b"path" => &mut self.path,
                b"protocol" => &mut self.protocol,
                _ => return self.fail("unknown pseudo-header"),
            };
            if slot.is_some() {
                return self.fail("duplicate pseudo-header");
            }
            *slot = Some(value.to_vec());
            return;
        }
        if !valid_name(name) {
            return self.fail("invalid field name");
        }
        if CONNECTION_SPECIFIC.contains(&name) {
            return self.fail("connection-specific field");
        }
        if name == b"te" && value != b"trailers" {
            return self.fail("te other than trailers");
        }
        self.fields.push((name.to_vec(), value.to_vec()));
    }

    /// The fields of a trailer section (§8.1), once the whole block has
    /// been decoded into this: malformed if it holds a pseudo-header.
    pub fn finish_trailers(self, stream: u32, size: BlockSize) -> Result<Fields, RequestError> {
        let malformed = |reason| malformed(stream, reason);
        if let Some(reason) = self.error {
            return Err(malformed(reason));
        }
        let pseudo = [
            &self.method,
            &self.scheme,
            &self.authority,
            &self.path,
            &self.protocol,
        ];
        if pseudo.iter().any(|p| p.is_some()) {
            return Err(malformed("pseudo-header in trailers"));
        }
        if size.over_limit {
            return Err(RequestError::TooLarge(stream));
        }
        Ok(self.fields)
    }

    /// The request, once the whole block has been decoded into this.
    pub fn finish(self, stream: u32, size: BlockSize) -> Result<Request, RequestError> {
        let malformed = |reason| malformed(stream, reason);
        if let Some(reason) = self.error {
            return Err(malformed(reason));
        }
        if size.over_limit {
            return Err(RequestError::TooLarge(stream));
        }
        let Some(method) = self.method else {
            return Err(malformed("no :method"));
        };
        if !is_token(&method) {
            return Err(malformed(":method not a token"));
        }
        if let Some(authority) = &self.authority {
            // §8.3.1: no userinfo; an empty one says nothing; and it is a
            // host and port (RFC 3986 §3.2), never a path or a query.
            let stray = |b: &u8| !visible(*b) || matches!(b, b'@' | b'/' | b'?' | b'#');
            if authority.is_empty() || authority.iter().any(stray) {
                return Err(malformed("invalid :authority"));
            }
        }
        let host = self.fields.iter().find(|(n, _)| n == b"host");
        if let (Some(authority), Some((_, host))) = (&self.authority, host) {
            // §8.3.1: a Host naming another entity than :authority.
            if !authority.eq_ignore_ascii_case(host) {
                return Err(malformed("host differs from :authority"));
            }
        }
        let connect = method == b"CONNECT";
        let target = match (connect, self.protocol) {
            (true, None) => {
                // §8.5: :authority only.
                if self.scheme.is_some() || self.path.is_some() {
                    return Err(malformed("CONNECT with :scheme or :path"));
                }
                if self.authority.is_none() {
                    return Err(malformed("CONNECT without :authority"));
                }
                Target::Connect
            }
            (false, Some(_)) => return Err(malformed(":protocol without CONNECT")),
            (true, Some(protocol)) => {
                // RFC 8441 §4: only if we allowed it; then :scheme, :path
                // and :authority as for any request.
                if !self.connect_protocol {
                    return Err(malformed(":protocol without ENABLE_CONNECT_PROTOCOL"));
                }
                if protocol.is_empty() {
                    return Err(malformed("empty :protocol"));
                }
                let (Some(scheme), Some(path)) = (self.scheme, self.path) else {
                    return Err(malformed("extended CONNECT without :scheme or :path"));
                };
                if self.authority.is_none() {
                    return Err(malformed("extended CONNECT without :authority"));
                }
                check_path(&method, &path).map_err(malformed)?;
                check_scheme(&scheme).map_err(malformed)?;
                if !is_token(&protocol) {
                    return Err(malformed(":protocol not a token"));
                }
                Target::ExtendedConnect {
                    protocol,
                    scheme,
                    path,
                }
            }
            (false, None) => {
                let (Some(scheme), Some(path)) = (self.scheme, self.path) else {
                    return Err(malformed("no :scheme or no :path"));
                };
                check_path(&method, &path).map_err(malformed)?;
                check_scheme(&scheme).map_err(malformed)?;
                Target::Origin { scheme, path }
            }
        };
        let content_length = content_length(&self.fields).map_err(malformed)?;
        Ok(Request {
            method,
            authority: self.authority,
            target,
            fields: self.fields,
            content_length,
        })
    }
}

/// The body length `content-length` fields give: digits only, every
/// field (and every comma-separated element) the same (RFC 9110 §8.6).
fn content_length(fields: &Fields) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for (_, value) in fields.iter().filter(|(n, _)| n == b"content-length") {
        for element in value.split(|&c| c == b',') {
            let digits = element.trim_ascii();
            if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
                return Err("invalid content-length");
            }
            let n = digits
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length");
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Whether `b` may stand in a request line's target or a Host: printable
/// ASCII but space. The request goes on to an HTTP/1.1 upstream, where a
/// space would end the target and a control octet is never valid.
fn visible(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// §8.3.1: `:path` is not empty, and is `/…` or, for OPTIONS, `*`; and it
/// is one request-target (RFC 9112 §3.2) to the upstream.
fn check_path(method: &[u8], path: &[u8]) -> Result<(), &'static str> {
    if !path.iter().all(|&b| visible(b)) {
        return Err(":path with a space or control octet");
    }
    match path {
        [] => Err("empty :path"),
        [b'/', ..] => Ok(()),
        b"*" if method == b"OPTIONS" => Ok(()),
        _ => Err(":path neither /… nor * for OPTIONS"),
    }
}

/// `:scheme` as RFC 3986 §3.1 spells a scheme: a letter, then letters,
/// digits, `+`, `-` or `.`.
fn check_scheme(scheme: &[u8]) -> Result<(), &'static str> {
    match scheme.split_first() {
        Some((first, rest))
            if first.is_ascii_alphabetic()
                && rest
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')) =>
        {
            Ok(())
        }
        _ => Err("invalid :scheme"),
    }
}

/// A malformed field section (RFC 9113 §8.1.1): the stream is reset with
/// PROTOCOL_ERROR.
fn malformed(stream: u32, reason: &'static str) -> RequestError {
    RequestError::Malformed(StreamError {
        stream,
        code: ErrorCode::ProtocolError,
        reason,
    })
}

#[cfg(test)]
mod tests;
