//! The HTTP/2 frame codec (RFC 9113 §4, §6), server side: [`decode`] reads
//! one frame from the front of a byte slice, borrowing its payload, and
//! [`Frame::encode`] appends one frame to a caller's `Vec`.
//!
//! The decoder checks everything a frame can be judged by alone: its size
//! against our `SETTINGS_MAX_FRAME_SIZE` (from the 9-octet header, before
//! the payload has arrived), the stream identifier each type requires, the
//! fixed lengths, padding, the parameter ranges of SETTINGS, a zero window
//! increment, a stream depending on itself. What needs the connection's
//! state (stream states, CONTINUATION sequencing, flow control) is the
//! caller's. The reserved bit of a stream identifier is ignored on receipt
//! and sent as 0 (§4.1). Frames of unknown types are returned as
//! [`Frame::Unknown`] for the caller to ignore (§4.1: "MUST ignore").

use super::error::{ConnError, ErrorCode, StreamError};
use super::settings::{Settings, PARAMETER_LEN};

/// The frame header's length: 24-bit length, type, flags, 31-bit stream.
pub const HEADER_LEN: usize = 9;

/// Frame type DATA.
pub const DATA: u8 = 0x0;
/// Frame type HEADERS.
pub const HEADERS: u8 = 0x1;
/// Frame type PRIORITY.
pub const PRIORITY: u8 = 0x2;
/// Frame type RST_STREAM.
pub const RST_STREAM: u8 = 0x3;
/// Frame type SETTINGS.
pub const SETTINGS: u8 = 0x4;
/// Frame type PUSH_PROMISE.
pub const PUSH_PROMISE: u8 = 0x5;
/// Frame type PING.
pub const PING: u8 = 0x6;
/// Frame type GOAWAY.
pub const GOAWAY: u8 = 0x7;
/// Frame type WINDOW_UPDATE.
pub const WINDOW_UPDATE: u8 = 0x8;
/// Frame type CONTINUATION.
pub const CONTINUATION: u8 = 0x9;

/// Flag END_STREAM (DATA, HEADERS).
pub const FLAG_END_STREAM: u8 = 0x1;
/// Flag ACK (SETTINGS, PING).
pub const FLAG_ACK: u8 = 0x1;
/// Flag END_HEADERS (HEADERS, CONTINUATION).
pub const FLAG_END_HEADERS: u8 = 0x4;
/// Flag PADDED (DATA, HEADERS).
pub const FLAG_PADDED: u8 = 0x8;
/// Flag PRIORITY (HEADERS).
pub const FLAG_PRIORITY: u8 = 0x20;

/// The reserved high bit of a 32-bit stream field.
const RESERVED_BIT: u32 = 1 << 31;

/// The priority fields of HEADERS and PRIORITY (§5.3.2, deprecated by RFC
/// 9113 but still parsed so their length and self-dependency are checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    /// The E flag.
    pub exclusive: bool,
    /// The stream depended on.
    pub dependency: u32,
    /// The weight minus one, as on the wire.
    pub weight: u8,
}

impl Priority {
    /// The 5 octets on the wire.
    const LEN: usize = 5;

    fn parse(b: &[u8]) -> Self {
        let word = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        Self {
            exclusive: word & RESERVED_BIT != 0,
            dependency: word & !RESERVED_BIT,
            weight: b[4],
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let e = if self.exclusive { RESERVED_BIT } else { 0 };
        out.extend_from_slice(&(e | (self.dependency & !RESERVED_BIT)).to_be_bytes());
        out.push(self.weight);
    }
}

/// One frame, its payload borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// DATA (§6.1).
    Data {
        /// Never 0.
        stream: u32,
        /// END_STREAM.
        end_stream: bool,
        /// The data, padding removed.
        data: &'a [u8],
        /// The pad length when PADDED was set.
        pad: Option<u8>,
    },
    /// HEADERS (§6.2).
    Headers {
        /// Never 0.
        stream: u32,
        /// END_STREAM.
        end_stream: bool,
        /// END_HEADERS: no CONTINUATION follows.
        end_headers: bool,
        /// The priority fields when PRIORITY was set.
        priority: Option<Priority>,
        /// The field block fragment, padding removed.
        fragment: &'a [u8],
        /// The pad length when PADDED was set.
        pad: Option<u8>,
    },
    /// PRIORITY (§6.3): accepted and ignored.
    Priority {
        /// Never 0.
        stream: u32,
        /// The fields.
        priority: Priority,
    },
    /// RST_STREAM (§6.4).
    RstStream {
        /// Never 0.
        stream: u32,
        /// The error code as sent; [`ErrorCode::from_u32`] names it.
        code: u32,
    },
    /// SETTINGS (§6.5); an ACK carries no parameters.
    Settings {
        /// ACK.
        ack: bool,
        /// The parameters, all within their ranges.
        settings: Settings,
    },
    /// PING (§6.7).
    Ping {
        /// ACK.
        ack: bool,
        /// The opaque data an answer echoes.
        data: [u8; 8],
    },
    /// GOAWAY (§6.8).
    GoAway {
        /// The last stream the sender may have processed.
        last_stream: u32,
        /// The error code as sent.
        code: u32,
        /// Opaque diagnostic data.
        debug: &'a [u8],
    },
    /// WINDOW_UPDATE (§6.9); the increment is never 0.
    WindowUpdate {
        /// 0 for the connection window.
        stream: u32,
        /// 1..=2^31-1.
        increment: u32,
    },
    /// CONTINUATION (§6.10).
    Continuation {
        /// Never 0.
        stream: u32,
        /// END_HEADERS.
        end_headers: bool,
        /// The field block fragment.
        fragment: &'a [u8],
    },
    /// A frame of a type this codec does not know, to be ignored.
    Unknown {
        /// The type octet.
        kind: u8,
        /// The flags octet.
        flags: u8,
        /// The stream, reserved bit cleared.
        stream: u32,
        /// The payload.
        payload: &'a [u8],
    },
}

/// What [`decode`] found at the front of its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// The input ends inside a frame (its header was acceptable so far).
    NeedMore,
    /// A whole frame, `len` octets with its header.
    Frame {
        /// The frame.
        frame: Frame<'a>,
        /// Octets it took from the input.
        len: usize,
    },
    /// A whole frame that is a stream error: reset the stream, skip `len`
    /// octets and go on.
    StreamError {
        /// The error.
        error: StreamError,
        /// Octets to skip.
        len: usize,
    },
}

fn conn(code: ErrorCode, reason: &'static str) -> ConnError {
    ConnError::new(code, reason)
}

/// Reads the frame at the front of `buf`. `max_frame_size` is the
/// `SETTINGS_MAX_FRAME_SIZE` we advertised. A PUSH_PROMISE is a connection
/// error: a client cannot push (§8.4).
pub fn decode(buf: &[u8], max_frame_size: u32) -> Result<Decoded<'_>, ConnError> {
    if buf.len() < HEADER_LEN {
        return Ok(Decoded::NeedMore);
    }
    let length = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
    let kind = buf[3];
    let flags = buf[4];
    let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & !RESERVED_BIT;
    if length > max_frame_size {
        // §4.2: a size error in a frame that can alter the connection's
        // state is a connection error; any endpoint may treat the others so
        // too (§5.4.1), and none of them fits the buffer anyway.
        return Err(conn(
            ErrorCode::FrameSizeError,
            "frame larger than MAX_FRAME_SIZE",
        ));
    }
    check_stream_id(kind, stream)?;
    let len = HEADER_LEN + length as usize;
    if buf.len() < len {
        return Ok(Decoded::NeedMore);
    }
    let payload = &buf[HEADER_LEN..len];
    let stream_error = |code, reason| Decoded::StreamError {
        error: StreamError {
            stream,
            code,
            reason,
        },
        len,
    };
    let frame = match kind {
        DATA => {
            let (data, pad) = unpad(flags, payload)?;
            Frame::Data {
                stream,
                end_stream: flags & FLAG_END_STREAM != 0,
                data,
                pad,
            }
        }
        HEADERS => {
            let (rest, pad) = unpad(flags, payload)?;
            let (priority, fragment) = if flags & FLAG_PRIORITY != 0 {
                if rest.len() < Priority::LEN {
                    return Err(conn(
                        ErrorCode::FrameSizeError,
                        "HEADERS too short for its priority",
                    ));
                }
                let priority = Priority::parse(rest);
                if priority.dependency == stream {
                    return Ok(stream_error(
                        ErrorCode::ProtocolError,
                        "stream depends on itself",
                    ));
                }
                (Some(priority), &rest[Priority::LEN..])
            } else {
                (None, rest)
            };
            Frame::Headers {
                stream,
                end_stream: flags & FLAG_END_STREAM != 0,
                end_headers: flags & FLAG_END_HEADERS != 0,
                priority,
                fragment,
                pad,
            }
        }
        PRIORITY => {
            if payload.len() != Priority::LEN {
                // §6.3: a stream error of type FRAME_SIZE_ERROR.
                return Ok(stream_error(
                    ErrorCode::FrameSizeError,
                    "PRIORITY not 5 octets",
                ));
            }
            let priority = Priority::parse(payload);
            if priority.dependency == stream {
                return Ok(stream_error(
                    ErrorCode::ProtocolError,
                    "stream depends on itself",
                ));
            }
            Frame::Priority { stream, priority }
        }
        RST_STREAM => {
            let code: [u8; 4] = payload
                .try_into()
                .map_err(|_| conn(ErrorCode::FrameSizeError, "RST_STREAM not 4 octets"))?;
            Frame::RstStream {
                stream,
                code: u32::from_be_bytes(code),
            }
        }
        SETTINGS => {
            let ack = flags & FLAG_ACK != 0;
            if ack && !payload.is_empty() {
                return Err(conn(
                    ErrorCode::FrameSizeError,
                    "SETTINGS ACK with a payload",
                ));
            }
            if payload.len() % PARAMETER_LEN != 0 {
                return Err(conn(
                    ErrorCode::FrameSizeError,
                    "SETTINGS not a multiple of 6 octets",
                ));
            }
            Frame::Settings {
                ack,
                settings: Settings::parse(payload)?,
            }
        }
        PUSH_PROMISE => return Err(conn(ErrorCode::ProtocolError, "PUSH_PROMISE from a client")),
        PING => {
            let data: [u8; 8] = payload
                .try_into()
                .map_err(|_| conn(ErrorCode::FrameSizeError, "PING not 8 octets"))?;
            Frame::Ping {
                ack: flags & FLAG_ACK != 0,
                data,
            }
        }
        GOAWAY => {
            if payload.len() < 8 {
                return Err(conn(
                    ErrorCode::FrameSizeError,
                    "GOAWAY shorter than 8 octets",
                ));
            }
            let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            Frame::GoAway {
                last_stream: last & !RESERVED_BIT,
                code: u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
                debug: &payload[8..],
            }
        }
        WINDOW_UPDATE => {
            let word: [u8; 4] = payload
                .try_into()
                .map_err(|_| conn(ErrorCode::FrameSizeError, "WINDOW_UPDATE not 4 octets"))?;
            let increment = u32::from_be_bytes(word) & !RESERVED_BIT;
            if increment == 0 {
                // §6.9: a stream error, or a connection error on stream 0.
                if stream == 0 {
                    return Err(conn(
                        ErrorCode::ProtocolError,
                        "connection window increment of 0",
                    ));
                }
                return Ok(stream_error(
                    ErrorCode::ProtocolError,
                    "window increment of 0",
                ));
            }
            Frame::WindowUpdate { stream, increment }
        }
        CONTINUATION => Frame::Continuation {
            stream,
            end_headers: flags & FLAG_END_HEADERS != 0,
            fragment: payload,
        },
        _ => Frame::Unknown {
            kind,
            flags,
            stream,
            payload,
        },
    };
    Ok(Decoded::Frame { frame, len })
}

/// The stream identifier rule of each type (§6): frames about a stream
/// need one, frames about the connection must have 0.
fn check_stream_id(kind: u8, stream: u32) -> Result<(), ConnError> {
    match kind {
        DATA | HEADERS | PRIORITY | RST_STREAM | PUSH_PROMISE | CONTINUATION if stream == 0 => {
            Err(conn(ErrorCode::ProtocolError, "stream frame on stream 0"))
        }
        SETTINGS | PING | GOAWAY if stream != 0 => Err(conn(
            ErrorCode::ProtocolError,
            "connection frame on a stream",
        )),
        _ => Ok(()),
    }
}

/// Removes the padding of DATA and HEADERS (§6.1): with PADDED, the first
/// octet is the pad length, and padding as long as the rest of the payload
/// or longer is a PROTOCOL_ERROR.
fn unpad(flags: u8, payload: &[u8]) -> Result<(&[u8], Option<u8>), ConnError> {
    if flags & FLAG_PADDED == 0 {
        return Ok((payload, None));
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(conn(
            ErrorCode::FrameSizeError,
            "PADDED frame without a pad length",
        ));
    };
    if usize::from(pad) >= payload.len() {
        return Err(conn(ErrorCode::ProtocolError, "padding fills the frame"));
    }
    Ok((&rest[..rest.len() - usize::from(pad)], Some(pad)))
}

fn put_header(out: &mut Vec<u8>, length: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(length < 1 << 24, "a frame's length has 24 bits");
    out.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & !RESERVED_BIT).to_be_bytes());
}

fn flag(set: bool, flag: u8) -> u8 {
    if set {
        flag
    } else {
        0
    }
}

impl Frame<'_> {
    /// The number of octets DATA counts against flow control: the whole
    /// payload, padding and pad length included (§6.9.1); 0 for others.
    pub fn flow_len(&self) -> u32 {
        match self {
            Frame::Data { data, pad, .. } => {
                let padding = pad.map_or(0, |p| 1 + u32::from(p));
                data.len() as u32 + padding
            }
            _ => 0,
        }
    }

    /// The stream this frame is on (0 for the connection).
    pub fn stream(&self) -> u32 {
        match *self {
            Frame::Data { stream, .. }
            | Frame::Headers { stream, .. }
            | Frame::Priority { stream, .. }
            | Frame::RstStream { stream, .. }
            | Frame::WindowUpdate { stream, .. }
            | Frame::Continuation { stream, .. }
            | Frame::Unknown { stream, .. } => stream,
            Frame::Settings { .. } | Frame::Ping { .. } | Frame::GoAway { .. } => 0,
        }
    }

    /// Appends the frame, header and payload, to `out`. The caller keeps
    /// within the peer's `SETTINGS_MAX_FRAME_SIZE` (see
    /// [`encode_field_block`] for HEADERS); padding octets are zeros.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Frame::Data {
                stream,
                end_stream,
                data,
                pad,
            } => {
                let padded = pad.map_or(0, |p| 1 + usize::from(p));
                let flags = flag(end_stream, FLAG_END_STREAM) | flag(pad.is_some(), FLAG_PADDED);
                put_header(out, data.len() + padded, DATA, flags, stream);
                put_padded(out, pad, |out| out.extend_from_slice(data));
            }
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                priority,
                fragment,
                pad,
            } => {
                let padded = pad.map_or(0, |p| 1 + usize::from(p));
                let prio_len = priority.map_or(0, |_| Priority::LEN);
                let flags = flag(end_stream, FLAG_END_STREAM)
                    | flag(end_headers, FLAG_END_HEADERS)
                    | flag(pad.is_some(), FLAG_PADDED)
                    | flag(priority.is_some(), FLAG_PRIORITY);
                put_header(
                    out,
                    fragment.len() + padded + prio_len,
                    HEADERS,
                    flags,
                    stream,
                );
                put_padded(out, pad, |out| {
                    if let Some(p) = priority {
                        p.encode(out);
                    }
                    out.extend_from_slice(fragment);
                });
            }
            Frame::Priority { stream, priority } => {
                put_header(out, Priority::LEN, PRIORITY, 0, stream);
                priority.encode(out);
            }
            Frame::RstStream { stream, code } => {
                put_header(out, 4, RST_STREAM, 0, stream);
                out.extend_from_slice(&code.to_be_bytes());
            }
            Frame::Settings { ack, settings } => {
                put_header(
                    out,
                    settings.encoded_len(),
                    SETTINGS,
                    flag(ack, FLAG_ACK),
                    0,
                );
                settings.encode(out);
            }
            Frame::Ping { ack, data } => {
                put_header(out, 8, PING, flag(ack, FLAG_ACK), 0);
                out.extend_from_slice(&data);
            }
            Frame::GoAway {
                last_stream,
                code,
                debug,
            } => {
                put_header(out, 8 + debug.len(), GOAWAY, 0, 0);
                out.extend_from_slice(&(last_stream & !RESERVED_BIT).to_be_bytes());
                out.extend_from_slice(&code.to_be_bytes());
                out.extend_from_slice(debug);
            }
            Frame::WindowUpdate { stream, increment } => {
                put_header(out, 4, WINDOW_UPDATE, 0, stream);
                out.extend_from_slice(&(increment & !RESERVED_BIT).to_be_bytes());
            }
            Frame::Continuation {
                stream,
                end_headers,
                fragment,
            } => {
                let flags = flag(end_headers, FLAG_END_HEADERS);
                put_header(out, fragment.len(), CONTINUATION, flags, stream);
                out.extend_from_slice(fragment);
            }
            Frame::Unknown {
                kind,
                flags,
                stream,
                payload,
            } => {
                put_header(out, payload.len(), kind, flags, stream);
                out.extend_from_slice(payload);
            }
        }
    }
}

fn put_padded(out: &mut Vec<u8>, pad: Option<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    if let Some(p) = pad {
        out.push(p);
    }
    body(out);
    if let Some(p) = pad {
        out.resize(out.len() + usize::from(p), 0);
    }
}

/// Appends a whole field block as one HEADERS frame followed by as many
/// CONTINUATION frames as `max_frame_size` (the peer's
/// `SETTINGS_MAX_FRAME_SIZE`) requires, END_HEADERS on the last.
pub fn encode_field_block(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: u32,
) {
    let max = (max_frame_size as usize).max(1);
    let mut chunks = block.chunks(max);
    let first = chunks.next().unwrap_or(&[]);
    let mut rest = chunks.peekable();
    Frame::Headers {
        stream,
        end_stream,
        end_headers: rest.peek().is_none(),
        priority: None,
        fragment: first,
        pad: None,
    }
    .encode(out);
    while let Some(fragment) = rest.next() {
        Frame::Continuation {
            stream,
            end_headers: rest.peek().is_none(),
            fragment,
        }
        .encode(out);
    }
}

#[cfg(test)]
mod tests;
