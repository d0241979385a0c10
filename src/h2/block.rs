//! A field block gathered from one HEADERS frame and the CONTINUATION
//! frames that follow it (RFC 9113 §4.3, §6.10), bounded against the
//! CONTINUATION flood (2024): a cap on the octets gathered, checked before
//! each fragment is copied, and on the number of CONTINUATION frames, so
//! empty ones cannot spin the connection either.
//!
//! A block that arrives whole in its HEADERS frame is handed back
//! borrowed, never copied; a gathered one is handed back owned, so an idle
//! connection keeps no buffer.

use std::borrow::Cow;

use super::error::{ConnError, ErrorCode};
use super::frame::Frame;

/// The bounds of one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most octets of compressed field block, all fragments together.
    pub max_block: usize,
    /// The most CONTINUATION frames after one HEADERS.
    pub max_continuations: usize,
}

/// A complete field block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block<'a> {
    /// The stream the HEADERS opened or continued.
    pub stream: u32,
    /// The HEADERS frame's END_STREAM.
    pub end_stream: bool,
    /// The field block, for the HPACK decoder.
    pub fragment: Cow<'a, [u8]>,
}

#[derive(Debug)]
enum State {
    Idle,
    Gathering {
        stream: u32,
        end_stream: bool,
        continuations: usize,
        buf: Vec<u8>,
    },
}

/// Gathers the blocks of one connection; between HEADERS and the last
/// CONTINUATION no other frame may arrive (§6.10).
#[derive(Debug)]
pub struct Assembler {
    state: State,
    limits: Limits,
}

const TOO_BIG: ConnError = ConnError::new(ErrorCode::EnhanceYourCalm, "field block too large");

impl Assembler {
    /// An assembler gathering nothing yet.
    pub fn new(limits: Limits) -> Self {
        Self {
            state: State::Idle,
            limits,
        }
    }

    /// The stream whose CONTINUATION is awaited, if any.
    pub fn expecting(&self) -> Option<u32> {
        match self.state {
            State::Idle => None,
            State::Gathering { stream, .. } => Some(stream),
        }
    }

    /// Takes a frame of the connection. HEADERS and CONTINUATION feed the
    /// block and return it once END_HEADERS arrives; any other frame only
    /// has to be allowed here (not in the middle of a block).
    pub fn take<'a>(&mut self, frame: &Frame<'a>) -> Result<Option<Block<'a>>, ConnError> {
        match (&mut self.state, *frame) {
            (
                State::Idle,
                Frame::Headers {
                    stream,
                    end_stream,
                    end_headers,
                    fragment,
                    ..
                },
            ) => {
                if fragment.len() > self.limits.max_block {
                    return Err(TOO_BIG);
                }
                if end_headers {
                    return Ok(Some(Block {
                        stream,
                        end_stream,
                        fragment: Cow::Borrowed(fragment),
                    }));
                }
                self.state = State::Gathering {
                    stream,
                    end_stream,
                    continuations: 0,
                    buf: fragment.to_vec(),
                };
                Ok(None)
            }
            (State::Idle, Frame::Continuation { .. }) => Err(ConnError::new(
                ErrorCode::ProtocolError,
                "CONTINUATION without HEADERS",
            )),
            (State::Idle, _) => Ok(None),
            (
                State::Gathering {
                    stream,
                    continuations,
                    buf,
                    ..
                },
                Frame::Continuation {
                    stream: on,
                    end_headers,
                    fragment,
                },
            ) if on == *stream => {
                *continuations += 1;
                if *continuations > self.limits.max_continuations {
                    return Err(ConnError::new(
                        ErrorCode::EnhanceYourCalm,
                        "too many CONTINUATION frames",
                    ));
                }
                if buf.len() + fragment.len() > self.limits.max_block {
                    return Err(TOO_BIG);
                }
                buf.extend_from_slice(fragment);
                if !end_headers {
                    return Ok(None);
                }
                let State::Gathering {
                    stream,
                    end_stream,
                    buf,
                    ..
                } = std::mem::replace(&mut self.state, State::Idle)
                else {
                    unreachable!("matched Gathering above");
                };
                Ok(Some(Block {
                    stream,
                    end_stream,
                    fragment: Cow::Owned(buf),
                }))
            }
            (State::Gathering { .. }, _) => Err(ConnError::new(
                ErrorCode::ProtocolError,
                "frame inside a field block",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_block: 100,
        max_continuations: 3,
    };

    fn headers(stream: u32, end_headers: bool, fragment: &[u8]) -> Frame<'_> {
        Frame::Headers {
            stream,
            end_stream: true,
            end_headers,
            priority: None,
            fragment,
            pad: None,
        }
    }

    fn cont(stream: u32, end_headers: bool, fragment: &[u8]) -> Frame<'_> {
        Frame::Continuation {
            stream,
            end_headers,
            fragment,
        }
    }

    #[test]
    fn a_whole_block_is_borrowed_and_a_gathered_one_owned() {
        let mut a = Assembler::new(LIMITS);
        let block = a
            .take(&headers(1, true, b"abc"))
            .expect("ok")
            .expect("whole");
        assert!(matches!(block.fragment, Cow::Borrowed(b"abc")));
        assert!(block.end_stream);
        assert_eq!(a.take(&headers(3, false, b"ab")), Ok(None));
        assert_eq!(a.expecting(), Some(3));
        assert_eq!(a.take(&cont(3, false, b"")), Ok(None));
        let block = a.take(&cont(3, true, b"cd")).expect("ok").expect("whole");
        assert_eq!((block.stream, &block.fragment[..]), (3, &b"abcd"[..]));
        assert!(matches!(block.fragment, Cow::Owned(_)));
        assert_eq!(a.expecting(), None);
        // Other frames pass between blocks.
        assert_eq!(
            a.take(&Frame::Ping {
                ack: false,
                data: [0; 8]
            }),
            Ok(None)
        );
    }

    #[test]
    fn sequencing_rules() {
        let code = |r: Result<Option<Block<'_>>, ConnError>| r.expect_err("refused").code;
        let mut a = Assembler::new(LIMITS);
        assert_eq!(code(a.take(&cont(1, true, b""))), ErrorCode::ProtocolError);
        let mut a = Assembler::new(LIMITS);
        a.take(&headers(1, false, b"")).expect("ok");
        assert_eq!(code(a.take(&cont(3, true, b""))), ErrorCode::ProtocolError);
        let mut a = Assembler::new(LIMITS);
        a.take(&headers(1, false, b"")).expect("ok");
        assert_eq!(
            code(a.take(&Frame::Ping {
                ack: false,
                data: [0; 8]
            })),
            ErrorCode::ProtocolError
        );
        let mut a = Assembler::new(LIMITS);
        a.take(&headers(1, false, b"")).expect("ok");
        assert_eq!(
            code(a.take(&headers(1, true, b""))),
            ErrorCode::ProtocolError
        );
        let mut a = Assembler::new(LIMITS);
        a.take(&headers(1, false, b"")).expect("ok");
        let data = Frame::Data {
            stream: 1,
            end_stream: false,
            data: b"",
            pad: None,
        };
        assert_eq!(code(a.take(&data)), ErrorCode::ProtocolError);
    }

    #[test]
    fn continuation_flood_limits() {
        let code = |r: Result<Option<Block<'_>>, ConnError>| r.expect_err("refused").code;
        // Too many frames, even empty ones.
        let mut a = Assembler::new(LIMITS);
        a.take(&headers(1, false, b"")).expect("ok");
        for _ in 0..LIMITS.max_continuations {
            assert_eq!(a.take(&cont(1, false, b"")), Ok(None));
        }
        assert_eq!(
            code(a.take(&cont(1, true, b""))),
            ErrorCode::EnhanceYourCalm
        );
        // Too many octets, refused before they are copied.
        let mut a = Assembler::new(LIMITS);
        a.take(&headers(1, false, &[0; 60])).expect("ok");
        assert_eq!(
            code(a.take(&cont(1, false, &[0; 41]))),
            ErrorCode::EnhanceYourCalm
        );
        let mut a = Assembler::new(LIMITS);
        a.take(&headers(1, false, &[0; 60])).expect("ok");
        assert!(a.take(&cont(1, true, &[0; 40])).expect("ok").is_some());
        // A single HEADERS over the limit.
        let mut a = Assembler::new(LIMITS);
        assert_eq!(
            code(a.take(&headers(1, true, &[0; 101]))),
            ErrorCode::EnhanceYourCalm
        );
    }
}
