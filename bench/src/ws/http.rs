//! Just enough HTTP/1.1 (RFC 9112) for an opening handshake: finding the end
//! of a head, reading one from a blocking stream while keeping the bytes that
//! follow it, and looking up headers and comma-separated tokens.
//!
//! This is a test and benchmark tool, not a validating parser: lines must end
//! in CRLF and the head must be UTF-8.

use std::error::Error;
use std::fmt;
use std::io::{self, Read};

/// Largest head in bytes that [`read_head`] accepts (16 KiB): well above any
/// handshake these tools send or expect, small enough to bound a bad peer.
pub const MAX_HEAD_LEN: usize = 16 * 1024;

/// Bytes [`read_head`] asks for per read call.
const READ_CHUNK: usize = 4096;

/// The blank line that ends a head.
const HEAD_END: &[u8] = b"\r\n\r\n";

/// Why a head could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The peer closed the stream after `received` bytes, before the blank line.
    Closed { received: usize },
    /// No blank line within [`MAX_HEAD_LEN`] bytes.
    TooLarge,
    /// The head is not UTF-8.
    NotText,
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Closed { received: 0 } => write!(f, "connection closed before any response"),
            HeadError::Closed { received } => {
                write!(
                    f,
                    "connection closed after {received} bytes of an incomplete head"
                )
            }
            HeadError::TooLarge => write!(f, "head longer than {MAX_HEAD_LEN} bytes"),
            HeadError::NotText => write!(f, "head is not UTF-8"),
        }
    }
}

impl Error for HeadError {}

impl From<HeadError> for io::Error {
    fn from(err: HeadError) -> io::Error {
        let kind = match err {
            HeadError::Closed { .. } => io::ErrorKind::UnexpectedEof,
            HeadError::TooLarge | HeadError::NotText => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, err)
    }
}

/// The length of the head at the start of `buf`, blank line included, once
/// the whole head is present.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(HEAD_END.len())
        .position(|window| window == HEAD_END)
        .map(|at| at + HEAD_END.len())
}

/// Reads a head from a blocking reader. Returns the head (blank line
/// included) and whatever bytes arrived after it, which belong to the next
/// protocol layer.
pub fn read_head(reader: &mut impl Read) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => {
                return Err(HeadError::Closed {
                    received: buf.len(),
                }
                .into())
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        // The blank line may straddle two reads: rescan the last 3 old bytes.
        let scan_from = buf.len().saturating_sub(HEAD_END.len() - 1);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_head_end(&buf[scan_from..]) {
            let rest = buf.split_off(scan_from + end);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD_LEN {
            return Err(HeadError::TooLarge.into());
        }
    }
}

/// A parsed view of an HTTP/1.1 head.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// The head without its final blank line.
    text: &'a str,
}

impl<'a> Head<'a> {
    /// Views a head; trailing CRLFs and anything after the blank line are ignored.
    pub fn parse(bytes: &'a [u8]) -> Result<Head<'a>, HeadError> {
        let end = find_head_end(bytes).map_or(bytes.len(), |end| end - HEAD_END.len());
        let text = std::str::from_utf8(&bytes[..end]).map_err(|_| HeadError::NotText)?;
        Ok(Head {
            text: text.trim_end_matches("\r\n"),
        })
    }

    /// The head as text, without the blank line.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The request line or status line.
    pub fn start_line(&self) -> &'a str {
        self.text.split("\r\n").next().unwrap_or("")
    }

    /// `(method, target, version)` of a request line.
    pub fn request_line(&self) -> Option<(&'a str, &'a str, &'a str)> {
        let mut parts = self.start_line().split(' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(method), Some(target), Some(version), None)
                if !method.is_empty() && !target.is_empty() && version.starts_with("HTTP/1.") =>
            {
                Some((method, target, version))
            }
            _ => None,
        }
    }

    /// The status code of a status line.
    pub fn status_code(&self) -> Option<u16> {
        let mut parts = self.start_line().splitn(3, ' ');
        let version = parts.next()?;
        if !version.starts_with("HTTP/1.") {
            return None;
        }
        parts.next()?.parse().ok()
    }

    /// Header fields in order, values trimmed. Lines without a colon are skipped.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.text
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim(), value.trim()))
    }

    /// The first value of a header, the name matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Whether any field `name` lists `token` in its comma-separated value,
    /// both compared case-insensitively (`Connection: keep-alive, Upgrade`).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .flat_map(|(_, value)| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = "GET /chat?x=1 HTTP/1.1\r\nHost: example\r\n\
                           Connection: keep-alive, Upgrade\r\nX-Dup: a\r\nx-dup: b\r\n\r\n";

    #[test]
    fn head_end_is_found_after_the_blank_line() {
        assert_eq!(find_head_end(REQUEST.as_bytes()), Some(REQUEST.len()));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(find_head_end(b"\r\n\r\nrest"), Some(4));
    }

    #[test]
    fn lookups() {
        let head = Head::parse(REQUEST.as_bytes()).unwrap();
        assert_eq!(head.request_line(), Some(("GET", "/chat?x=1", "HTTP/1.1")));
        assert_eq!(head.header("host"), Some("example"));
        assert_eq!(head.header("X-DUP"), Some("a"));
        assert!(head.has_token("connection", "upgrade"));
        assert!(head.has_token("Connection", "KEEP-ALIVE"));
        assert!(!head.has_token("Connection", "close"));
        assert_eq!(head.headers().count(), 4);
        assert_eq!(head.status_code(), None);

        let response = Head::parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").unwrap();
        assert_eq!(response.status_code(), Some(101));
        assert_eq!(response.start_line(), "HTTP/1.1 101 Switching Protocols");
        assert_eq!(
            Head::parse(b"garbage\r\n\r\n").unwrap().request_line(),
            None
        );
    }

    /// A reader that returns at most `step` bytes per call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_head_keeps_the_bytes_after_it_at_any_split() {
        let wire = format!("{REQUEST}\u{81}\u{5}early");
        for step in [1, 2, 3, 5, 4096] {
            let mut reader = Trickle {
                data: wire.as_bytes(),
                step,
            };
            let (head, rest) = read_head(&mut reader).unwrap();
            assert_eq!(head, REQUEST.as_bytes(), "step {step}");
            let mut all = rest;
            reader.read_to_end(&mut all).unwrap();
            assert_eq!(all, &wire.as_bytes()[REQUEST.len()..], "step {step}");
        }
    }

    #[test]
    fn read_head_errors() {
        let err = read_head(&mut &b"HTTP/1.1 200 OK\r\n"[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let endless = vec![b'a'; MAX_HEAD_LEN + READ_CHUNK];
        let err = read_head(&mut endless.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
