//! HTTP/1.1 message body framing (RFC 9112 §6–7): how many of the bytes
//! after a head belong to the message. The relay forwards exactly those and
//! no more, so a second request hidden behind a body never reaches the
//! upstream unparsed.
//!
//! Chunked bodies are tracked byte by byte through sizes, extensions and
//! trailers (data runs are skipped in one step) and passed on unchanged.
//! Bare LF line endings are refused, as in the strict reading of RFC 9112
//! §2.2 that closes off chunk-size smuggling.

use super::frames::Frames;

/// The framing of one message body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// No body (a GET without Content-Length, a HEAD response, 204, 304).
    Empty,
    /// `Content-Length` bytes still to come.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// Everything until the sender closes (a response without length).
    UntilClose,
    /// A WebSocket tunnel's bytes until the sender closes, followed frame
    /// by frame so that a drain can end it on a boundary.
    Frames(Frames),
}

/// Where a chunked body stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunked {
    state: ChunkState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading hex digits; `digits` so far.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: optional whitespace and `;ext` up to CR.
    Extension {
        size: u64,
    },
    /// CR seen after the size line; LF next.
    SizeLf {
        size: u64,
    },
    /// Chunk data bytes still to come.
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    /// CR of the final empty line seen; LF ends the body.
    EndLf,
    Done,
}

/// Most hex digits in a chunk size (16 digits hold a u64).
const MAX_SIZE_DIGITS: u8 = 16;

/// The body's framing is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("invalid chunk size line")]
    ChunkSize,
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("invalid trailer section")]
    Trailer,
}

/// The outcome of feeding bytes to a [`Body`].
#[derive(Debug, PartialEq, Eq)]
pub struct Advance {
    /// Leading bytes that belong to the body.
    pub used: usize,
    /// The body ended within them.
    pub done: bool,
}

impl Body {
    pub fn chunked() -> Body {
        Body::Chunked(Chunked {
            state: ChunkState::Size { size: 0, digits: 0 },
        })
    }

    /// True once no further byte belongs to the body.
    pub fn is_done(&self) -> bool {
        match self {
            Body::Empty | Body::Length(0) => true,
            Body::Chunked(c) => c.state == ChunkState::Done,
            Body::Length(_) | Body::UntilClose | Body::Frames(_) => false,
        }
    }

    /// Consumes the leading bytes of `bytes` that belong to the body.
    pub fn advance(&mut self, bytes: &[u8]) -> Result<Advance, BodyError> {
        match self {
            Body::Empty => Ok(Advance {
                used: 0,
                done: true,
            }),
            Body::Length(left) => {
                let used = (*left).min(bytes.len() as u64);
                *left -= used;
                Ok(Advance {
                    used: used as usize,
                    done: *left == 0,
                })
            }
            Body::UntilClose => Ok(Advance {
                used: bytes.len(),
                done: false,
            }),
            Body::Chunked(c) => c.advance(bytes),
            Body::Frames(frames) => Ok(Advance {
                used: frames.advance(bytes),
                done: false,
            }),
        }
    }

    /// The frames of a WebSocket tunnel's direction, if it is one.
    pub fn frames(&self) -> Option<&Frames> {
        match self {
            Body::Frames(frames) => Some(frames),
            _ => None,
        }
    }

    pub fn frames_mut(&mut self) -> Option<&mut Frames> {
        match self {
            Body::Frames(frames) => Some(frames),
            _ => None,
        }
    }

    /// Bytes that run until the sender closes: what the splice relay may
    /// carry.
    pub fn is_stream(&self) -> bool {
        matches!(self, Body::UntilClose | Body::Frames(_))
    }
}

impl Chunked {
    fn advance(&mut self, bytes: &[u8]) -> Result<Advance, BodyError> {
        use ChunkState::*;
        let mut i = 0;
        while i < bytes.len() {
            if self.state == Done {
                break;
            }
            if let Data { left } = self.state {
                let take = left.min((bytes.len() - i) as u64);
                i += take as usize;
                self.state = if take == left {
                    DataCr
                } else {
                    Data { left: left - take }
                };
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.state = match (self.state, b) {
                (Size { size, digits }, _) if b.is_ascii_hexdigit() => {
                    if digits == MAX_SIZE_DIGITS {
                        return Err(BodyError::ChunkSize);
                    }
                    let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                    Size {
                        size: size << 4 | digit,
                        digits: digits + 1,
                    }
                }
                (Size { digits: 0, .. }, _) => return Err(BodyError::ChunkSize),
                (Size { size, .. }, b'\r') => SizeLf { size },
                (Size { size, .. }, b';' | b' ' | b'\t') => Extension { size },
                (Size { .. }, _) => return Err(BodyError::ChunkSize),
                (Extension { size }, b'\r') => SizeLf { size },
                (Extension { .. }, b'\n') => return Err(BodyError::ChunkSize),
                (Extension { size }, _) => Extension { size },
                (SizeLf { size: 0 }, b'\n') => TrailerStart,
                (SizeLf { size }, b'\n') => Data { left: size },
                (SizeLf { .. }, _) => return Err(BodyError::ChunkSize),
                (DataCr, b'\r') => DataLf,
                (DataCr, _) => return Err(BodyError::ChunkEnd),
                (DataLf, b'\n') => Size { size: 0, digits: 0 },
                (DataLf, _) => return Err(BodyError::ChunkEnd),
                (TrailerStart, b'\r') => EndLf,
                (TrailerStart | TrailerLine, b'\n') => return Err(BodyError::Trailer),
                (TrailerLine, b'\r') => TrailerLf,
                (TrailerStart | TrailerLine, _) => TrailerLine,
                (TrailerLf, b'\n') => TrailerStart,
                (TrailerLf, _) => return Err(BodyError::Trailer),
                (EndLf, b'\n') => Done,
                (EndLf, _) => return Err(BodyError::Trailer),
                (Data { .. } | Done, _) => unreachable!("handled above"),
            };
        }
        Ok(Advance {
            used: i,
            done: self.state == Done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns (bytes used, done).
    fn feed(mut body: Body, input: &[u8], step: usize) -> Result<(usize, bool), BodyError> {
        let mut used = 0;
        for piece in input.chunks(step) {
            let adv = body.advance(piece)?;
            used += adv.used;
            if adv.done {
                return Ok((used, true));
            }
            assert_eq!(adv.used, piece.len(), "an unfinished body uses every byte");
        }
        Ok((used, body.is_done()))
    }

    #[test]
    fn length_and_empty() {
        assert_eq!(feed(Body::Length(5), b"helloGET /", 64), Ok((5, true)));
        assert_eq!(feed(Body::Length(5), b"hel", 64), Ok((3, false)));
        assert_eq!(feed(Body::Length(0), b"x", 64), Ok((0, true)));
        assert_eq!(feed(Body::Empty, b"x", 64), Ok((0, true)));
        assert_eq!(feed(Body::UntilClose, b"abc", 1), Ok((3, false)));
    }

    #[test]
    fn chunked_table() {
        let ok: &[(&[u8], usize)] = &[
            (b"0\r\n\r\n", 5),
            (b"5\r\nhello\r\n0\r\n\r\n", 15),
            (b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 15),
            (b"A\r\n0123456789\r\n0\r\n\r\n", 20),
            (b"a;name=value\r\n0123456789\r\n0\r\n\r\n", 31),
            (b"3 ;x\r\nabc\r\n0\r\n\r\n", 16),
            (b"3\r\nabc\r\n0\r\nExpires: never\r\nX: y\r\n\r\n", 35),
            (b"000003\r\nabc\r\n0\r\n\r\n", 18),
        ];
        for (input, used) in ok {
            for step in [1, 2, 3, 7, 1024] {
                assert_eq!(
                    feed(Body::chunked(), input, step),
                    Ok((*used, true)),
                    "{:?} step {step}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn chunked_incomplete() {
        for input in [
            &b"5\r\nhel"[..],
            b"5\r\nhello\r\n",
            b"0\r\n",
            b"0\r\nX: y\r\n",
        ] {
            let (used, done) = feed(Body::chunked(), input, 1).unwrap();
            assert_eq!((used, done), (input.len(), false));
        }
    }

    #[test]
    fn chunked_refuses_malformed() {
        let bad: &[(&[u8], BodyError)] = &[
            (b"\r\n", BodyError::ChunkSize),
            (b"x\r\n", BodyError::ChunkSize),
            (b"5\nhello\r\n", BodyError::ChunkSize),
            (b"5;ext\nhello", BodyError::ChunkSize),
            (b"-5\r\n", BodyError::ChunkSize),
            (b"11111111111111111\r\n", BodyError::ChunkSize),
            (b"5\r\nhelloX\r\n", BodyError::ChunkEnd),
            (b"5\r\nhello\rX", BodyError::ChunkEnd),
            (b"5\r\nhello\n0\r\n\r\n", BodyError::ChunkEnd),
            (b"0\r\n\n", BodyError::Trailer),
            (b"0\r\nX: y\n\r\n", BodyError::Trailer),
            (b"0\r\n\rX", BodyError::Trailer),
        ];
        for (input, err) in bad {
            assert_eq!(
                feed(Body::chunked(), input, 1),
                Err(*err),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
