//! Reading HTTP/1.1 messages off a test's socket by their framing, not by
//! the connection's end: a kept-alive connection stays open after each
//! answer, and pipelined answers follow each other on it.
//!
//! Written from RFC 9112 §6.3 for the tests, independently of the proxy's
//! own framing code, so that one can check the other.

use std::io::Read;
use std::net::TcpStream;

use super::{field, status_of, ws};

/// Reads messages one after another from a stream, keeping what arrives
/// past the current one for the next.
pub struct Messages<'a, R: Read = TcpStream> {
    stream: &'a mut R,
    buf: Vec<u8>,
}

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (a HEAD answer, 1xx, 204, 304, or a request without one).
    Empty,
    Length(usize),
    Chunked,
    /// Until the sender closes (an answer without length).
    UntilClose,
}

impl<'a, R: Read> Messages<'a, R> {
    pub fn new(stream: &'a mut R) -> Messages<'a, R> {
        Messages {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next response's head and body (chunked bodies as sent, still
    /// encoded). `to_head`: it answers a HEAD request, so has no body.
    pub fn response(&mut self, to_head: bool) -> (String, Vec<u8>) {
        let head = self.head();
        let status = status_of(&head);
        let framing = if to_head || (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::Empty
        } else {
            framing_of(&head, Framing::UntilClose)
        };
        let body = self.body(framing);
        (head, body)
    }

    /// The next request's head and body.
    pub fn request(&mut self) -> (String, Vec<u8>) {
        let head = self.head();
        let body = self.body(framing_of(&head, Framing::Empty));
        (head, body)
    }

    /// Whatever arrived past the messages read so far, then up to EOF.
    pub fn rest(mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        let _ = self.stream.read_to_end(&mut out);
        out
    }

    /// Whether another message comes: bytes are buffered already, or a
    /// read brings some (false at EOF or a read error).
    pub fn peek_more(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The bytes read past the messages so far, without reading more.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads until the peer closes, expecting nothing more: true if the
    /// connection ended cleanly with no further byte.
    pub fn closed(self) -> bool {
        self.rest().is_empty()
    }

    fn head(&mut self) -> String {
        loop {
            if let Some(end) = ws::find_head_end(&self.buf) {
                let rest = self.buf.split_off(end);
                let head = std::mem::replace(&mut self.buf, rest);
                return String::from_utf8(head).expect("a head is text");
            }
            self.more("a head");
        }
    }

    fn body(&mut self, framing: Framing) -> Vec<u8> {
        match framing {
            Framing::Empty => Vec::new(),
            Framing::Length(n) => {
                while self.buf.len() < n {
                    self.more("a body");
                }
                let rest = self.buf.split_off(n);
                std::mem::replace(&mut self.buf, rest)
            }
            Framing::Chunked => loop {
                if let Some(end) = chunked_end(&self.buf) {
                    let rest = self.buf.split_off(end);
                    break std::mem::replace(&mut self.buf, rest);
                }
                self.more("a chunked body");
            },
            Framing::UntilClose => {
                let _ = self.stream.read_to_end(&mut self.buf);
                std::mem::take(&mut self.buf)
            }
        }
    }

    fn more(&mut self, what: &str) {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => panic!(
                "the connection closed in the middle of {what}: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!(
                "no more of {what} ({e}); had {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }
}

/// The framing a head declares; `otherwise` when it declares none.
pub fn framing_of(head: &str, otherwise: Framing) -> Framing {
    if field(head, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().ends_with("chunked"))
    {
        return Framing::Chunked;
    }
    match field(head, "content-length") {
        Some(n) => Framing::Length(n.parse().expect("a decimal Content-Length")),
        None => otherwise,
    }
}

/// Where a complete chunked body ends in `bytes`, if it does.
fn chunked_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&bytes[at..line_end]).expect("a chunk size line");
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .expect("a hex chunk size");
        at = line_end + 2;
        if size == 0 {
            // Trailer lines, then the empty line.
            loop {
                let end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
                if end == at {
                    return Some(at + 2);
                }
                at = end + 2;
            }
        }
        if bytes.len() < at + size + 2 {
            return None;
        }
        at += size + 2;
    }
}

/// Reads one response off `stream` by its framing.
pub fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    Messages::new(stream).response(false)
}
