//! SETTINGS parameters (RFC 9113 §6.5.2, and RFC 8441 §3 for
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL`): their identifiers, the ranges a
//! receiver enforces, and how a frame's payload reads and writes.
//!
//! A frame's parameters are read into [`Settings`], one `Option` per known
//! parameter: the last value of a repeated parameter wins, which is what
//! processing them in order ends with. Unknown identifiers are ignored
//! (§6.5.2: "MUST ignore").

use super::error::{ConnError, ErrorCode};

/// `SETTINGS_HEADER_TABLE_SIZE`: the HPACK dynamic table size the sender's
/// decoder allows, in octets.
pub const HEADER_TABLE_SIZE: u16 = 0x1;
/// `SETTINGS_ENABLE_PUSH`: 0 or 1.
pub const ENABLE_PUSH: u16 = 0x2;
/// `SETTINGS_MAX_CONCURRENT_STREAMS`: streams the sender lets the peer open.
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// `SETTINGS_INITIAL_WINDOW_SIZE`: the initial stream window, in octets.
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
/// `SETTINGS_MAX_FRAME_SIZE`: the largest frame payload the sender accepts.
pub const MAX_FRAME_SIZE: u16 = 0x5;
/// `SETTINGS_MAX_HEADER_LIST_SIZE`: advisory, the largest field section
/// (names, values and 32 octets per field) the sender accepts.
pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
/// `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3): 0 or 1; 1 lets the
/// peer send extended CONNECT (`:protocol`).
pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// One parameter's length on the wire: a 16-bit identifier and a 32-bit
/// value (§6.5.1).
pub const PARAMETER_LEN: usize = 6;

/// The smallest `SETTINGS_MAX_FRAME_SIZE`, also its initial value (§6.5.2).
pub const MIN_MAX_FRAME_SIZE: u32 = 1 << 14;
/// The largest `SETTINGS_MAX_FRAME_SIZE`: 2^24 - 1 (§6.5.2).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest flow-control window: 2^31 - 1 (§6.9.1).
pub const MAX_WINDOW_SIZE: u32 = (1 << 31) - 1;
/// The initial value of `SETTINGS_INITIAL_WINDOW_SIZE` and of the
/// connection window: 65 535 octets (§6.5.2, §6.9.2).
pub const DEFAULT_WINDOW_SIZE: u32 = 65_535;
/// The initial value of `SETTINGS_HEADER_TABLE_SIZE`: 4096 octets.
pub const DEFAULT_HEADER_TABLE_SIZE: u32 = 4096;

/// The parameters of one SETTINGS frame; `None` for a parameter it does
/// not carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `SETTINGS_HEADER_TABLE_SIZE`.
    pub header_table_size: Option<u32>,
    /// `SETTINGS_ENABLE_PUSH`.
    pub enable_push: Option<bool>,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub max_concurrent_streams: Option<u32>,
    /// `SETTINGS_INITIAL_WINDOW_SIZE`, at most [`MAX_WINDOW_SIZE`].
    pub initial_window_size: Option<u32>,
    /// `SETTINGS_MAX_FRAME_SIZE`, within
    /// [`MIN_MAX_FRAME_SIZE`]..=[`MAX_MAX_FRAME_SIZE`].
    pub max_frame_size: Option<u32>,
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`.
    pub max_header_list_size: Option<u32>,
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL`.
    pub enable_connect_protocol: Option<bool>,
}

/// A 0/1 parameter's value, or `err` for any other.
fn flag(value: u32, err: ConnError) -> Result<bool, ConnError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(err),
    }
}

impl Settings {
    /// Reads a SETTINGS payload (not an ACK's, which is empty). The frame
    /// codec has already checked that its length is a multiple of
    /// [`PARAMETER_LEN`].
    pub fn parse(payload: &[u8]) -> Result<Self, ConnError> {
        debug_assert_eq!(payload.len() % PARAMETER_LEN, 0);
        let mut settings = Self::default();
        for param in payload.chunks_exact(PARAMETER_LEN) {
            let id = u16::from_be_bytes([param[0], param[1]]);
            let value = u32::from_be_bytes([param[2], param[3], param[4], param[5]]);
            match id {
                HEADER_TABLE_SIZE => settings.header_table_size = Some(value),
                ENABLE_PUSH => {
                    let err = ConnError::new(ErrorCode::ProtocolError, "ENABLE_PUSH not 0 or 1");
                    settings.enable_push = Some(flag(value, err)?);
                }
                MAX_CONCURRENT_STREAMS => settings.max_concurrent_streams = Some(value),
                INITIAL_WINDOW_SIZE => {
                    if value > MAX_WINDOW_SIZE {
                        // §6.5.2: "MUST be treated as a connection error of
                        // type FLOW_CONTROL_ERROR".
                        return Err(ConnError::new(
                            ErrorCode::FlowControlError,
                            "INITIAL_WINDOW_SIZE above 2^31-1",
                        ));
                    }
                    settings.initial_window_size = Some(value);
                }
                MAX_FRAME_SIZE => {
                    if !(MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) {
                        return Err(ConnError::new(
                            ErrorCode::ProtocolError,
                            "MAX_FRAME_SIZE outside 2^14..=2^24-1",
                        ));
                    }
                    settings.max_frame_size = Some(value);
                }
                MAX_HEADER_LIST_SIZE => settings.max_header_list_size = Some(value),
                ENABLE_CONNECT_PROTOCOL => {
                    let err = ConnError::new(
                        ErrorCode::ProtocolError,
                        "ENABLE_CONNECT_PROTOCOL not 0 or 1",
                    );
                    settings.enable_connect_protocol = Some(flag(value, err)?);
                }
                _ => {}
            }
        }
        Ok(settings)
    }

    /// The parameters this carries, in identifier order.
    pub fn parameters(&self) -> impl Iterator<Item = (u16, u32)> {
        [
            (HEADER_TABLE_SIZE, self.header_table_size),
            (ENABLE_PUSH, self.enable_push.map(u32::from)),
            (MAX_CONCURRENT_STREAMS, self.max_concurrent_streams),
            (INITIAL_WINDOW_SIZE, self.initial_window_size),
            (MAX_FRAME_SIZE, self.max_frame_size),
            (MAX_HEADER_LIST_SIZE, self.max_header_list_size),
            (
                ENABLE_CONNECT_PROTOCOL,
                self.enable_connect_protocol.map(u32::from),
            ),
        ]
        .into_iter()
        .filter_map(|(id, value)| value.map(|v| (id, v)))
    }

    /// The payload's length in octets.
    pub fn encoded_len(&self) -> usize {
        self.parameters().count() * PARAMETER_LEN
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for (id, value) in self.parameters() {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(params: &[(u16, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (id, value) in params {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        out
    }

    #[test]
    fn ranges_are_enforced_with_the_rfc_codes() {
        let cases: &[(u16, u32, Option<ErrorCode>)] = &[
            (ENABLE_PUSH, 0, None),
            (ENABLE_PUSH, 1, None),
            (ENABLE_PUSH, 2, Some(ErrorCode::ProtocolError)),
            (INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE, None),
            (
                INITIAL_WINDOW_SIZE,
                MAX_WINDOW_SIZE + 1,
                Some(ErrorCode::FlowControlError),
            ),
            (
                MAX_FRAME_SIZE,
                MIN_MAX_FRAME_SIZE - 1,
                Some(ErrorCode::ProtocolError),
            ),
            (MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE, None),
            (MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE, None),
            (
                MAX_FRAME_SIZE,
                MAX_MAX_FRAME_SIZE + 1,
                Some(ErrorCode::ProtocolError),
            ),
            (ENABLE_CONNECT_PROTOCOL, 1, None),
            (ENABLE_CONNECT_PROTOCOL, 2, Some(ErrorCode::ProtocolError)),
            (HEADER_TABLE_SIZE, u32::MAX, None),
            (MAX_CONCURRENT_STREAMS, 0, None),
            (MAX_HEADER_LIST_SIZE, u32::MAX, None),
            (0x7, 99, None),
            (0xffff, u32::MAX, None),
        ];
        for &(id, value, want) in cases {
            let got = Settings::parse(&payload(&[(id, value)]))
                .err()
                .map(|e| e.code);
            assert_eq!(got, want, "id {id:#x} value {value}");
        }
    }

    #[test]
    fn the_last_value_wins_unknown_ids_are_ignored_and_encoding_round_trips() {
        let s = Settings::parse(&payload(&[
            (INITIAL_WINDOW_SIZE, 10),
            (0x99, 1),
            (INITIAL_WINDOW_SIZE, 20),
            (ENABLE_CONNECT_PROTOCOL, 1),
        ]))
        .expect("valid");
        assert_eq!(s.initial_window_size, Some(20));
        assert_eq!(s.enable_connect_protocol, Some(true));
        assert_eq!(s.header_table_size, None);
        let mut out = Vec::new();
        s.encode(&mut out);
        assert_eq!(out.len(), s.encoded_len());
        assert_eq!(
            out,
            payload(&[(INITIAL_WINDOW_SIZE, 20), (ENABLE_CONNECT_PROTOCOL, 1)])
        );
        assert_eq!(Settings::parse(&out), Ok(s));
    }
}
