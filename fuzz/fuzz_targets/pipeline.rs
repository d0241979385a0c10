//! Pipelined requests on a kept connection: the input is what a client
//! sends, request after request. Each head is parsed with
//! `handshake::request::parse` and its body framed with `framing::body`, fed
//! in the pieces a reader would see, as the proxy does; the bytes past a
//! body are the next request. Checks that every request consumes at least
//! its head, that a body never takes more than its own bytes, that the
//! cut does not depend on how the bytes arrived, and that a chunked body
//! ends exactly where an independent, line-by-line reading of RFC 9112
//! §7.1 ends it (and is refused when that reading refuses it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproxy_fast::framing::body::Body;
use wsproxy_fast::handshake::request::{self, Kind, MAX_HEADERS};

/// Request head limit, small enough that fuzzed inputs reach it.
const LIMIT: usize = 1024;

/// Most requests followed in one input.
const MAX_REQUESTS: usize = 64;

fuzz_target!(|input: &[u8]| {
    // The first byte picks the read size the body is fed in.
    let Some((&step, stream)) = input.split_first() else {
        return;
    };
    let step = usize::from(step % 16) + 1;
    let mut rest = stream;
    for _ in 0..MAX_REQUESTS {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = match request::parse(rest, LIMIT, &mut headers) {
            Ok(Some(head)) => head,
            Ok(None) | Err(_) => return,
        };
        assert!(head.head_len > 0 && head.head_len <= rest.len().min(LIMIT));
        if head.kind == Kind::Upgrade {
            // What follows an upgrade is tunnel data, never a request.
            return;
        }
        let after = &rest[head.head_len..];
        let whole = framed(head.body.clone(), after, after.len().max(1));
        let pieces = framed(head.body.clone(), after, step);
        assert_eq!(whole, pieces, "the cut depends on how the bytes arrived");
        if let Body::Chunked(_) = head.body {
            match (whole, oracle_chunked(after)) {
                (Framed::Done(used), Oracle::Complete(end)) => assert_eq!(used, end),
                (Framed::Done(used), other) => panic!("the body ended at {used}; the oracle: {other:?}"),
                (Framed::Refused, Oracle::Complete(end)) => {
                    panic!("a body the oracle reads to {end} was refused")
                }
                (Framed::Open, Oracle::Complete(end)) => panic!("the oracle ends the body at {end}"),
                (Framed::Open, Oracle::Invalid) => panic!("an invalid body was taken whole"),
                (Framed::Refused | Framed::Open, _) => {}
            }
        }
        match whole {
            Framed::Done(used) => rest = &after[used..],
            Framed::Open | Framed::Refused => return,
        }
    }
});

/// Where a body's framing left the bytes after its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framed {
    /// The body ended after this many bytes; the rest is the next request.
    Done(usize),
    /// Every byte belongs to the body, and it goes on.
    Open,
    /// The framing is broken.
    Refused,
}

/// Feeds `bytes` to `body` `step` bytes at a time, as reads deliver them.
fn framed(mut body: Body, bytes: &[u8], step: usize) -> Framed {
    if body.is_done() {
        return Framed::Done(0);
    }
    let mut at = 0;
    while at < bytes.len() {
        let to = (at + step).min(bytes.len());
        let advance = match body.advance(&bytes[at..to]) {
            Ok(advance) => advance,
            Err(_) => return Framed::Refused,
        };
        assert!(advance.used <= to - at, "took bytes it was not given");
        if advance.done {
            assert!(body.is_done());
            return Framed::Done(at + advance.used);
        }
        assert_eq!(advance.used, to - at, "an unfinished body takes every byte");
        at = to;
    }
    Framed::Open
}

/// What the line-by-line reading makes of a chunked body.
#[derive(Debug)]
enum Oracle {
    Complete(usize),
    Incomplete,
    Invalid,
}

/// RFC 9112 §7.1, strictly (CRLF only, at most 16 hex digits), read a line
/// at a time.
fn oracle_chunked(b: &[u8]) -> Oracle {
    let mut at = 0;
    loop {
        let size_line = match line(b, at) {
            Line::Whole(end) => &b[at..end],
            Line::Partial => return Oracle::Incomplete,
            Line::BareLf => return Oracle::Invalid,
        };
        let digits = size_line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if digits == 0 || digits > 16 {
            return Oracle::Invalid;
        }
        match size_line.get(digits) {
            None | Some(b' ' | b'\t' | b';') => {}
            Some(_) => return Oracle::Invalid,
        }
        let text = std::str::from_utf8(&size_line[..digits]).expect("hex digits");
        let size = u64::from_str_radix(text, 16).expect("16 hex digits fit");
        at += size_line.len() + 2;
        if size == 0 {
            // Trailer lines, then the empty one.
            loop {
                match line(b, at) {
                    Line::Whole(end) if end == at => return Oracle::Complete(at + 2),
                    Line::Whole(end) => at = end + 2,
                    Line::Partial => return Oracle::Incomplete,
                    Line::BareLf => return Oracle::Invalid,
                }
            }
        }
        let Ok(size) = usize::try_from(size) else {
            return Oracle::Incomplete;
        };
        let Some(data_end) = at.checked_add(size) else {
            return Oracle::Incomplete;
        };
        if b.len() < data_end.saturating_add(2) {
            // The CRLF after the data must be what there is of it.
            let tail = b.get(data_end..).unwrap_or(&[]);
            return if b"\r\n".starts_with(tail) {
                Oracle::Incomplete
            } else {
                Oracle::Invalid
            };
        }
        if &b[data_end..data_end + 2] != b"\r\n" {
            return Oracle::Invalid;
        }
        at = data_end + 2;
    }
}

/// A line from `at`: where its CRLF starts.
enum Line {
    Whole(usize),
    Partial,
    /// An LF not preceded by CR, or a CR not followed by LF.
    BareLf,
}

fn line(b: &[u8], at: usize) -> Line {
    let mut i = at;
    while i < b.len() {
        match b[i] {
            b'\n' => return Line::BareLf,
            b'\r' => {
                return match b.get(i + 1) {
                    Some(b'\n') => Line::Whole(i),
                    Some(_) => Line::BareLf,
                    None => Line::Partial,
                }
            }
            _ => i += 1,
        }
    }
    Line::Partial
}
