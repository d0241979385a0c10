//! HTTP/2 error codes (RFC 9113 §7) and the two scopes an error has
//! (§5.4): a connection error ends the connection with GOAWAY, a stream
//! error ends one stream with RST_STREAM and leaves the others running.

use std::fmt;

/// An error code of RFC 9113 §7, as carried by RST_STREAM and GOAWAY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0x0: graceful shutdown, or no error.
    NoError,
    /// 0x1: a generic protocol error.
    ProtocolError,
    /// 0x2: an internal error.
    InternalError,
    /// 0x3: the peer broke the flow-control protocol.
    FlowControlError,
    /// 0x4: SETTINGS were not acknowledged in time.
    SettingsTimeout,
    /// 0x5: a frame arrived after the stream was half-closed.
    StreamClosed,
    /// 0x6: a frame had an invalid size.
    FrameSizeError,
    /// 0x7: the stream was refused before any processing.
    RefusedStream,
    /// 0x8: the stream is no longer needed.
    Cancel,
    /// 0x9: the field-block compression context cannot be kept.
    CompressionError,
    /// 0xa: the tunnel of a CONNECT request failed.
    ConnectError,
    /// 0xb: the peer behaves in a way that may cause excessive load.
    EnhanceYourCalm,
    /// 0xc: the transport does not meet minimum security requirements.
    InadequateSecurity,
    /// 0xd: the request has to be made over HTTP/1.1.
    Http11Required,
}

impl ErrorCode {
    /// The code's number on the wire.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::NoError => 0x0,
            Self::ProtocolError => 0x1,
            Self::InternalError => 0x2,
            Self::FlowControlError => 0x3,
            Self::SettingsTimeout => 0x4,
            Self::StreamClosed => 0x5,
            Self::FrameSizeError => 0x6,
            Self::RefusedStream => 0x7,
            Self::Cancel => 0x8,
            Self::CompressionError => 0x9,
            Self::ConnectError => 0xa,
            Self::EnhanceYourCalm => 0xb,
            Self::InadequateSecurity => 0xc,
            Self::Http11Required => 0xd,
        }
    }

    /// The code a number names; `None` for an unknown code, which a
    /// receiver must not treat as special (RFC 9113 §7: "MAY be treated as
    /// INTERNAL_ERROR").
    pub fn from_u32(code: u32) -> Option<Self> {
        Some(match code {
            0x0 => Self::NoError,
            0x1 => Self::ProtocolError,
            0x2 => Self::InternalError,
            0x3 => Self::FlowControlError,
            0x4 => Self::SettingsTimeout,
            0x5 => Self::StreamClosed,
            0x6 => Self::FrameSizeError,
            0x7 => Self::RefusedStream,
            0x8 => Self::Cancel,
            0x9 => Self::CompressionError,
            0xa => Self::ConnectError,
            0xb => Self::EnhanceYourCalm,
            0xc => Self::InadequateSecurity,
            0xd => Self::Http11Required,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::NoError => "NO_ERROR",
            Self::ProtocolError => "PROTOCOL_ERROR",
            Self::InternalError => "INTERNAL_ERROR",
            Self::FlowControlError => "FLOW_CONTROL_ERROR",
            Self::SettingsTimeout => "SETTINGS_TIMEOUT",
            Self::StreamClosed => "STREAM_CLOSED",
            Self::FrameSizeError => "FRAME_SIZE_ERROR",
            Self::RefusedStream => "REFUSED_STREAM",
            Self::Cancel => "CANCEL",
            Self::CompressionError => "COMPRESSION_ERROR",
            Self::ConnectError => "CONNECT_ERROR",
            Self::EnhanceYourCalm => "ENHANCE_YOUR_CALM",
            Self::InadequateSecurity => "INADEQUATE_SECURITY",
            Self::Http11Required => "HTTP_1_1_REQUIRED",
        };
        f.write_str(name)
    }
}

/// A connection error (RFC 9113 §5.4.1): the connection ends with a
/// GOAWAY carrying `code`. `reason` is for the log, not the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("connection error {code}: {reason}")]
pub struct ConnError {
    /// What GOAWAY says.
    pub code: ErrorCode,
    /// Which rule the peer broke, for the log.
    pub reason: &'static str,
}

impl ConnError {
    /// A connection error with `code`, for `reason`.
    pub const fn new(code: ErrorCode, reason: &'static str) -> Self {
        Self { code, reason }
    }
}

/// A stream error (RFC 9113 §5.4.2): stream `stream` ends with a
/// RST_STREAM carrying `code`; the connection goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stream {stream} error {code}: {reason}")]
pub struct StreamError {
    /// The stream to reset (never 0).
    pub stream: u32,
    /// What RST_STREAM says.
    pub code: ErrorCode,
    /// Which rule the peer broke, for the log.
    pub reason: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_unknown_codes_are_none() {
        for n in 0..=0xd {
            let code = ErrorCode::from_u32(n).expect("0x0..=0xd are all defined");
            assert_eq!(code.to_u32(), n);
        }
        assert_eq!(ErrorCode::from_u32(0xe), None);
        assert_eq!(ErrorCode::from_u32(u32::MAX), None);
        assert_eq!(ErrorCode::EnhanceYourCalm.to_string(), "ENHANCE_YOUR_CALM");
    }
}
