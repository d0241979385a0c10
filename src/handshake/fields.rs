//! Header-field rules shared by request and response rewriting: the
//! hop-by-hop set, `Connection` token lists, and the two framing headers.

use memchr::memchr;

/// Most distinct tokens one message's `Connection` headers may carry; a
/// longer list is refused rather than half-honoured.
pub const MAX_CONNECTION_TOKENS: usize = 16;

/// Hop-by-hop fields (RFC 9110 §7.6.1 and the legacy `Proxy-Connection`),
/// dropped at every hop and replaced by the proxy's own where needed.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Splits a comma-separated field value into trimmed, non-empty tokens.
pub fn tokens(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// The tokens of every `Connection` header in a message.
#[derive(Debug)]
pub struct ConnectionTokens<'a> {
    tokens: [&'a [u8]; MAX_CONNECTION_TOKENS],
    len: usize,
}

/// A `Connection` header listed more than [`MAX_CONNECTION_TOKENS`] tokens.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyTokens;

impl<'a> ConnectionTokens<'a> {
    pub fn collect(headers: &[httparse::Header<'a>]) -> Result<Self, TooManyTokens> {
        let mut set = ConnectionTokens {
            tokens: [&[]; MAX_CONNECTION_TOKENS],
            len: 0,
        };
        for h in headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        {
            for token in tokens(h.value) {
                if set.contains(token) {
                    continue;
                }
                if set.len == MAX_CONNECTION_TOKENS {
                    return Err(TooManyTokens);
                }
                set.tokens[set.len] = token;
                set.len += 1;
            }
        }
        Ok(set)
    }

    pub fn contains(&self, token: &[u8]) -> bool {
        self.tokens[..self.len]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(token))
    }
}

/// What an answer tells the client about its connection (RFC 9112 §9.3):
/// the `Connection` line the proxy writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// The connection closes after this answer: `Connection: close`.
    Close,
    /// HTTP/1.1 stays open by default: no field needed.
    Persistent,
    /// HTTP/1.0 stays open only when told: `Connection: keep-alive`.
    KeepAlive,
}

impl Persistence {
    /// What a client asked for: HTTP/1.1 is persistent unless its
    /// `Connection` lists `close`; HTTP/1.0 only if it lists `keep-alive`.
    pub fn requested(minor: u8, connection: &ConnectionTokens<'_>) -> Persistence {
        if connection.contains(b"close") {
            Persistence::Close
        } else if minor >= 1 {
            Persistence::Persistent
        } else if connection.contains(b"keep-alive") {
            Persistence::KeepAlive
        } else {
            Persistence::Close
        }
    }

    /// Whether the connection stays open after the answer.
    pub fn keeps(self) -> bool {
        self != Persistence::Close
    }

    /// The header line that says so (empty for HTTP/1.1's default).
    pub fn line(self) -> &'static [u8] {
        match self {
            Persistence::Close => b"Connection: close\r\n",
            Persistence::Persistent => b"",
            Persistence::KeepAlive => b"Connection: keep-alive\r\n",
        }
    }
}

/// What the framing headers of a message say.
#[derive(Debug, PartialEq, Eq)]
pub struct Framing {
    /// The one agreed `Content-Length`, if any was sent.
    pub content_length: Option<u64>,
    /// A `Transfer-Encoding` header was sent.
    pub transfer_encoding: bool,
    /// `chunked` is the final transfer coding.
    pub chunked: bool,
}

/// The `Content-Length` headers disagree or are not a decimal number.
#[derive(Debug, PartialEq, Eq)]
pub struct BadContentLength;

impl Framing {
    /// Reads `Content-Length` (every value must be the same decimal number,
    /// RFC 9112 §6.3 item 5) and `Transfer-Encoding`.
    pub fn read(headers: &[httparse::Header<'_>]) -> Result<Framing, BadContentLength> {
        let mut framing = Framing {
            content_length: None,
            transfer_encoding: false,
            chunked: false,
        };
        for h in headers {
            if h.name.eq_ignore_ascii_case("content-length") {
                for token in h.value.split(|&b| b == b',') {
                    let n = parse_decimal(token.trim_ascii()).ok_or(BadContentLength)?;
                    if framing.content_length.is_some_and(|cl| cl != n) {
                        return Err(BadContentLength);
                    }
                    framing.content_length = Some(n);
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                framing.transfer_encoding = true;
                if let Some(last) = tokens(h.value).last() {
                    framing.chunked = last.eq_ignore_ascii_case(b"chunked");
                }
            }
        }
        Ok(framing)
    }
}

/// Parses a non-empty run of ASCII digits that fits in a u64.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// True when `value` holds no CR, LF or NUL: safe to copy into a head.
pub fn is_clean_value(value: &[u8]) -> bool {
    memchr(b'\r', value).is_none() && memchr(b'\n', value).is_none() && memchr(0, value).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
        httparse::Header {
            name,
            value: value.as_bytes(),
        }
    }

    #[test]
    fn connection_tokens_are_a_case_insensitive_list() {
        let headers = [
            h("Connection", "keep-alive, Upgrade"),
            h("Host", "x"),
            h("connection", " X-Secret ,,"),
        ];
        let set = ConnectionTokens::collect(&headers).unwrap();
        assert!(set.contains(b"upgrade"));
        assert!(set.contains(b"KEEP-ALIVE"));
        assert!(set.contains(b"x-secret"));
        assert!(!set.contains(b"host"));
        let long = (0..=MAX_CONNECTION_TOKENS)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(ConnectionTokens::collect(&[h("Connection", &long)]).is_err());
        let repeated = vec!["close"; 40].join(",");
        assert!(
            ConnectionTokens::collect(&[h("Connection", &repeated)]).is_ok(),
            "duplicates count once"
        );
    }

    #[test]
    fn framing_table() {
        let ok = |content_length, transfer_encoding, chunked| {
            Ok(Framing {
                content_length,
                transfer_encoding,
                chunked,
            })
        };
        let cases: Vec<(Vec<httparse::Header>, Result<Framing, BadContentLength>)> = vec![
            (vec![], ok(None, false, false)),
            (vec![h("Content-Length", "42")], ok(Some(42), false, false)),
            (
                vec![h("content-length", "42"), h("Content-Length", "42")],
                ok(Some(42), false, false),
            ),
            (
                vec![h("Content-Length", "42, 42")],
                ok(Some(42), false, false),
            ),
            (
                vec![h("Content-Length", "42"), h("Content-Length", "43")],
                Err(BadContentLength),
            ),
            (vec![h("Content-Length", "-1")], Err(BadContentLength)),
            (vec![h("Content-Length", "")], Err(BadContentLength)),
            (vec![h("Content-Length", "0x10")], Err(BadContentLength)),
            (
                vec![h("Content-Length", "99999999999999999999")],
                Err(BadContentLength),
            ),
            (
                vec![h("Transfer-Encoding", "chunked")],
                ok(None, true, true),
            ),
            (
                vec![h("Transfer-Encoding", "gzip, Chunked")],
                ok(None, true, true),
            ),
            (
                vec![h("Transfer-Encoding", "chunked, gzip")],
                ok(None, true, false),
            ),
            (
                vec![
                    h("Transfer-Encoding", "chunked"),
                    h("Transfer-Encoding", "identity"),
                ],
                ok(None, true, false),
            ),
        ];
        for (headers, want) in cases {
            assert_eq!(Framing::read(&headers), want, "{headers:?}");
        }
    }

    #[test]
    fn hop_by_hop_and_clean_values() {
        for name in [
            "Connection",
            "KEEP-ALIVE",
            "Proxy-Connection",
            "TE",
            "Trailer",
            "Transfer-Encoding",
            "Upgrade",
        ] {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in [
            "Host",
            "Sec-WebSocket-Key",
            "Content-Length",
            "Upgrade-Insecure-Requests",
        ] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
        assert!(is_clean_value(b"a b\tc"));
        assert!(!is_clean_value(b"a\r\nX: y"));
        assert!(!is_clean_value(b"a\0"));
    }
}
