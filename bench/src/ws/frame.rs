//! WebSocket framing (RFC 6455 §5): opcodes, header encoding and decoding,
//! masking, and blocking frame reads.
//!
//! [`decode_header`] works on any prefix of a frame, so non-blocking code can
//! call it on whatever bytes have arrived; it returns `Ok(None)` until the
//! whole header is present and reports protocol errors as early as the bytes
//! allow. Payloads are never copied by the decoder: callers unmask in place
//! with [`apply_mask`], which accepts an offset so a payload may be unmasked
//! piece by piece as it arrives.

use std::error::Error;
use std::fmt;
use std::io::{self, Read};

/// Longest possible frame header in bytes: 2 fixed bytes, up to 8 bytes of
/// extended payload length and a 4-byte masking key (RFC 6455 §5.2).
pub const MAX_HEADER_LEN: usize = 14;

/// Largest control frame payload in bytes. RFC 6455 §5.5: "All control
/// frames MUST have a payload length of 125 bytes or less and MUST NOT be
/// fragmented."
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Largest payload in bytes that [`read_frame`] will allocate (64 MiB), so a
/// corrupt length in a test fails with an error instead of exhausting memory.
pub const MAX_READ_PAYLOAD: u64 = 64 << 20;

/// First header byte: FIN flag.
const FIN_BIT: u8 = 0x80;
/// First header byte: RSV1..RSV3, which must be 0 without a negotiated extension.
const RSV_BITS: u8 = 0x70;
/// First header byte: the opcode nibble.
const OPCODE_BITS: u8 = 0x0f;
/// Second header byte: MASK flag.
const MASK_BIT: u8 = 0x80;
/// Second header byte: the 7-bit payload length.
const LEN_BITS: u8 = 0x7f;
/// 7-bit length value announcing a 16-bit extended length (RFC 6455 §5.2).
const LEN_16: u8 = 126;
/// 7-bit length value announcing a 64-bit extended length (RFC 6455 §5.2).
const LEN_64: u8 = 127;
/// Size of the masking key in bytes.
const MASK_LEN: usize = 4;

/// A frame opcode (RFC 6455 §5.2, §11.8). Reserved opcodes are rejected by the
/// decoder, so they have no variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xa,
}

impl Opcode {
    /// The opcode for a 4-bit value, `None` for reserved values.
    pub fn from_u8(value: u8) -> Option<Opcode> {
        match value {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xa => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Control frames are those whose opcode has the high bit set (RFC 6455 §5.5).
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: Opcode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes the header occupies on the wire; the payload starts here.
    pub header_len: usize,
}

/// A whole frame with an unmasked payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The status code of a Close frame, if it carries one (RFC 6455 §5.5.1).
    pub fn close_code(&self) -> Option<u16> {
        match (self.opcode, self.payload.as_slice()) {
            (Opcode::Close, [hi, lo, ..]) => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }

    /// The payload of a Text frame as UTF-8, `None` for other frames or
    /// invalid UTF-8.
    pub fn text(&self) -> Option<&str> {
        match self.opcode {
            Opcode::Text => std::str::from_utf8(&self.payload).ok(),
            _ => None,
        }
    }
}

/// A frame header that breaks RFC 6455 §5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// RSV1..RSV3 set (the 3-bit value is carried) without a negotiated extension.
    ReservedBits(u8),
    /// An opcode reserved for future use.
    ReservedOpcode(u8),
    /// A control frame without FIN.
    FragmentedControl(Opcode),
    /// A control frame whose payload is longer than [`MAX_CONTROL_PAYLOAD`].
    ControlTooLong(Opcode),
    /// A 64-bit length with the most significant bit set (RFC 6455 §5.2).
    LengthOverflow(u64),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBits(bits) => {
                write!(f, "reserved bits {bits:#05b} set without an extension")
            }
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::FragmentedControl(op) => write!(f, "fragmented {op:?} frame"),
            ProtocolError::ControlTooLong(op) => {
                write!(f, "{op:?} payload longer than {MAX_CONTROL_PAYLOAD} bytes")
            }
            ProtocolError::LengthOverflow(len) => {
                write!(f, "64-bit payload length {len:#x} has its top bit set")
            }
        }
    }
}

impl Error for ProtocolError {}

impl From<ProtocolError> for io::Error {
    fn from(err: ProtocolError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, err)
    }
}

/// Appends a frame header for a payload of `payload_len` bytes, choosing the
/// shortest length encoding as RFC 6455 §5.2 requires.
pub fn encode_header(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    payload_len: u64,
    mask: Option<[u8; 4]>,
) {
    let fin_bit = if fin { FIN_BIT } else { 0 };
    let mask_bit = if mask.is_some() { MASK_BIT } else { 0 };
    out.push(fin_bit | opcode.as_u8());
    match payload_len {
        0..=125 => out.push(mask_bit | payload_len as u8),
        126..=0xffff => {
            out.push(mask_bit | LEN_16);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | LEN_64);
            out.extend_from_slice(&payload_len.to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// Appends a whole frame; with `mask` the payload is masked as a client must
/// (RFC 6455 §5.3).
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    encode_header(out, fin, opcode, payload.len() as u64, mask);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// The payload of a Close frame: the status code, then a UTF-8 reason
/// (RFC 6455 §5.5.1).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// Header length implied by the second header byte.
fn header_len_for(second_byte: u8) -> usize {
    let extended = match second_byte & LEN_BITS {
        LEN_16 => 2,
        LEN_64 => 8,
        _ => 0,
    };
    let mask = if second_byte & MASK_BIT != 0 {
        MASK_LEN
    } else {
        0
    };
    2 + extended + mask
}

/// Decodes the frame header at the start of `buf`.
///
/// `Ok(None)` means "not enough bytes yet"; errors are reported as soon as
/// the offending byte is present, even if the header is incomplete.
pub fn decode_header(buf: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first & RSV_BITS != 0 {
        return Err(ProtocolError::ReservedBits((first & RSV_BITS) >> 4));
    }
    let raw_opcode = first & OPCODE_BITS;
    let opcode = Opcode::from_u8(raw_opcode).ok_or(ProtocolError::ReservedOpcode(raw_opcode))?;
    let fin = first & FIN_BIT != 0;
    if opcode.is_control() && !fin {
        return Err(ProtocolError::FragmentedControl(opcode));
    }
    let Some(&second) = buf.get(1) else {
        return Ok(None);
    };
    let len7 = second & LEN_BITS;
    if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
        return Err(ProtocolError::ControlTooLong(opcode));
    }
    let header_len = header_len_for(second);
    if buf.len() < header_len {
        return Ok(None);
    }
    let (payload_len, mask_at) = match len7 {
        LEN_16 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        LEN_64 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthOverflow(len));
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    let mask = (second & MASK_BIT != 0).then(|| {
        [
            buf[mask_at],
            buf[mask_at + 1],
            buf[mask_at + 2],
            buf[mask_at + 3],
        ]
    });
    Ok(Some(FrameHeader {
        fin,
        opcode,
        mask,
        payload_len,
        header_len,
    }))
}

/// Decodes a whole frame at the start of `buf`, unmasking a copy of its
/// payload. Returns the frame and the bytes it occupied, or `Ok(None)` until
/// the whole frame is present.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
    let Some(header) = decode_header(buf)? else {
        return Ok(None);
    };
    let available = (buf.len() - header.header_len) as u64;
    if available < header.payload_len {
        return Ok(None);
    }
    let end = header.header_len + header.payload_len as usize;
    let mut payload = buf[header.header_len..end].to_vec();
    if let Some(key) = header.mask {
        apply_mask(&mut payload, key, 0);
    }
    let frame = Frame {
        fin: header.fin,
        opcode: header.opcode,
        payload,
    };
    Ok(Some((frame, end)))
}

/// XORs `data` with the masking key (RFC 6455 §5.3). `offset` is the position
/// of `data[0]` within the payload, so a payload split across reads can be
/// unmasked piece by piece. Masking and unmasking are the same operation.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: u64) {
    let mut key = mask;
    key.rotate_left((offset % MASK_LEN as u64) as usize);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = data.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, hence of 4: the key restarts.
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % MASK_LEN];
    }
}

/// Reads one frame from a blocking reader and returns its header together
/// with the unmasked payload. EOF before the first byte is `UnexpectedEof`.
pub fn read_raw_frame(reader: &mut impl Read) -> io::Result<(FrameHeader, Vec<u8>)> {
    let mut buf = [0u8; MAX_HEADER_LEN];
    reader.read_exact(&mut buf[..2])?;
    let header_len = header_len_for(buf[1]);
    reader.read_exact(&mut buf[2..header_len])?;
    let header = decode_header(&buf[..header_len])?
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "incomplete frame header"))?;
    if header.payload_len > MAX_READ_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "frame payload of {} bytes exceeds the {MAX_READ_PAYLOAD}-byte read limit",
                header.payload_len
            ),
        ));
    }
    let mut payload = vec![0u8; header.payload_len as usize];
    reader.read_exact(&mut payload)?;
    if let Some(key) = header.mask {
        apply_mask(&mut payload, key, 0);
    }
    Ok((header, payload))
}

/// Reads one frame from a blocking reader, unmasking its payload.
pub fn read_frame(reader: &mut impl Read) -> io::Result<Frame> {
    let (header, payload) = read_raw_frame(reader)?;
    Ok(Frame {
        fin: header.fin,
        opcode: header.opcode,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn rfc6455_section_5_7_examples() {
        let mut out = Vec::new();
        encode_frame(&mut out, true, Opcode::Text, b"Hello", None);
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);

        out.clear();
        encode_frame(&mut out, true, Opcode::Text, b"Hello", Some(MASK));
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(out, masked);
        let (frame, used) = decode_frame(&masked).unwrap().unwrap();
        assert_eq!(used, masked.len());
        assert_eq!(frame.text(), Some("Hello"));

        out.clear();
        encode_frame(&mut out, false, Opcode::Text, b"Hel", None);
        encode_frame(&mut out, true, Opcode::Continuation, b"lo", None);
        assert_eq!(out, [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);

        out.clear();
        encode_header(&mut out, true, Opcode::Binary, 256, None);
        assert_eq!(out, [0x82, 0x7e, 0x01, 0x00]);

        out.clear();
        encode_header(&mut out, true, Opcode::Binary, 65536, None);
        assert_eq!(out, [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn round_trips_at_every_length_boundary() {
        let cases = [
            (0, 2),
            (1, 2),
            (125, 2),
            (126, 4),
            (127, 4),
            (65535, 4),
            (65536, 10),
            (100_000, 10),
        ];
        for (len, unmasked_header) in cases {
            for mask in [None, Some(MASK)] {
                let payload = pattern(len);
                let mut wire = Vec::new();
                encode_frame(&mut wire, true, Opcode::Binary, &payload, mask);
                let header = decode_header(&wire).unwrap().unwrap();
                let expected_header = unmasked_header + if mask.is_some() { 4 } else { 0 };
                assert_eq!(
                    header.header_len, expected_header,
                    "len {len} mask {mask:?}"
                );
                assert_eq!(header.payload_len, len as u64);
                assert_eq!(header.mask, mask);
                assert_eq!(wire.len(), expected_header + len);
                if mask.is_some() && len > 0 {
                    assert_ne!(&wire[expected_header..], payload.as_slice());
                }
                let (frame, used) = decode_frame(&wire).unwrap().unwrap();
                assert_eq!(used, wire.len());
                assert_eq!(frame.payload, payload, "len {len} mask {mask:?}");
                assert!(frame.fin);
                assert_eq!(frame.opcode, Opcode::Binary);
                let read = read_frame(&mut wire.as_slice()).unwrap();
                assert_eq!(read, frame);
            }
        }
    }

    #[test]
    fn partial_buffers_decode_to_none() {
        for len in [5, 126, 65536] {
            let mut wire = Vec::new();
            encode_frame(&mut wire, true, Opcode::Text, &pattern(len), Some(MASK));
            let header_len = decode_header(&wire).unwrap().unwrap().header_len;
            for cut in 0..header_len {
                assert_eq!(decode_header(&wire[..cut]), Ok(None), "len {len} cut {cut}");
            }
            for cut in [0, 1, header_len, wire.len() - 1] {
                assert_eq!(decode_frame(&wire[..cut]), Ok(None), "len {len} cut {cut}");
            }
            let mut two = wire.clone();
            two.extend_from_slice(&wire);
            let (_, used) = decode_frame(&two).unwrap().unwrap();
            assert_eq!(used, wire.len(), "a frame ends where the next begins");
        }
    }

    #[test]
    fn mask_applies_piecewise_at_any_split() {
        let payload = pattern(37);
        let mut whole = payload.clone();
        apply_mask(&mut whole, MASK, 0);
        for split in 0..payload.len() {
            let mut pieces = payload.clone();
            let (head, tail) = pieces.split_at_mut(split);
            apply_mask(head, MASK, 0);
            apply_mask(tail, MASK, split as u64);
            assert_eq!(pieces, whole, "split at {split}");
        }
        apply_mask(&mut whole, MASK, 0);
        assert_eq!(whole, payload, "masking twice restores the payload");
    }

    #[test]
    fn protocol_errors_are_reported_early() {
        let cases: [(&[u8], ProtocolError); 6] = [
            (&[0xc1], ProtocolError::ReservedBits(0b100)),
            (&[0x83], ProtocolError::ReservedOpcode(0x3)),
            (&[0x8b], ProtocolError::ReservedOpcode(0xb)),
            (&[0x09], ProtocolError::FragmentedControl(Opcode::Ping)),
            (&[0x88, 0x7e], ProtocolError::ControlTooLong(Opcode::Close)),
            (
                &[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0],
                ProtocolError::LengthOverflow(1 << 63),
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode_header(bytes), Err(expected), "bytes {bytes:02x?}");
        }
    }

    #[test]
    fn close_code_and_text_helpers() {
        let close = Frame {
            fin: true,
            opcode: Opcode::Close,
            payload: close_payload(1001, "going away"),
        };
        assert_eq!(close.close_code(), Some(1001));
        assert_eq!(close.text(), None);
        let empty_close = Frame {
            payload: Vec::new(),
            ..close
        };
        assert_eq!(empty_close.close_code(), None);
    }

    #[test]
    fn read_frame_rejects_eof_and_huge_lengths() {
        let err = read_frame(&mut [0x81u8].as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut huge = Vec::new();
        encode_header(&mut huge, true, Opcode::Binary, MAX_READ_PAYLOAD + 1, None);
        let err = read_frame(&mut huge.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
