//! The messages the load modes send: one pre-encoded, masked Binary frame
//! per thread. Each send copies it into the connection's send queue and
//! stamps a sequence number into the first payload bytes (masking the stamp
//! in place), so nothing is encoded or allocated per message. Each echo is
//! checked for opcode, length and sequence number.

use std::fmt;

use wsbench::ws::{encode_frame, random_mask, Opcode};

use super::conn::Received;

/// Payload bytes that carry the little-endian sequence number (fewer when
/// the payload is shorter).
pub const SEQ_LEN: usize = 8;

/// Modulus of the filler pattern after the sequence number: a prime, so a
/// shifted or truncated payload does not line up with the original.
const FILLER_PERIOD: usize = 251;

#[derive(Debug, Clone)]
pub struct Template {
    frame: Vec<u8>,
    payload_at: usize,
    mask: [u8; 4],
    size: usize,
}

/// How an echo differed from what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Opcode(Opcode),
    Length { expected: u64, got: u64 },
    Sequence { expected: u64, got: Vec<u8> },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Opcode(opcode) => write!(f, "echo came back as {opcode:?}, sent Binary"),
            Mismatch::Length { expected, got } => {
                write!(f, "echo has {got} payload bytes, sent {expected}")
            }
            Mismatch::Sequence { expected, got } => {
                write!(
                    f,
                    "echo carries sequence bytes {got:02x?}, expected message {expected}"
                )
            }
        }
    }
}

impl Template {
    /// A Binary frame with a `size`-byte payload and a random masking key.
    pub fn new(size: usize) -> Template {
        let payload: Vec<u8> = (0..size).map(|i| (i % FILLER_PERIOD) as u8).collect();
        let mask = random_mask();
        let mut frame = Vec::with_capacity(size + wsbench::ws::MAX_HEADER_LEN);
        encode_frame(&mut frame, true, Opcode::Binary, &payload, Some(mask));
        Template {
            payload_at: frame.len() - size,
            frame,
            mask,
            size,
        }
    }

    fn stamp_len(&self) -> usize {
        SEQ_LEN.min(self.size)
    }

    /// Appends the frame to `out` carrying sequence number `seq`.
    pub fn append(&self, out: &mut Vec<u8>, seq: u64) {
        let start = out.len() + self.payload_at;
        out.extend_from_slice(&self.frame);
        let stamp = seq.to_le_bytes();
        for (i, byte) in stamp[..self.stamp_len()].iter().enumerate() {
            out[start + i] = byte ^ self.mask[i % self.mask.len()];
        }
    }

    /// Checks an echo of message `seq`.
    pub fn check(&self, echo: &Received, seq: u64) -> Result<(), Mismatch> {
        if echo.opcode != Opcode::Binary {
            return Err(Mismatch::Opcode(echo.opcode));
        }
        if echo.len != self.size as u64 {
            return Err(Mismatch::Length {
                expected: self.size as u64,
                got: echo.len,
            });
        }
        let stamp = seq.to_le_bytes();
        if echo.prefix() != &stamp[..self.stamp_len()] {
            return Err(Mismatch::Sequence {
                expected: seq,
                got: echo.prefix().to_vec(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench::ws::decode_frame;

    #[test]
    fn stamped_frames_decode_to_the_sequence_number() {
        for size in [1, 8, 64, 70_000] {
            let template = Template::new(size);
            let mut out = vec![0xee];
            template.append(&mut out, 0x0102_0304_0506_0708);
            template.append(&mut out, 7);
            let (first, used) = decode_frame(&out[1..]).unwrap().unwrap();
            let (second, _) = decode_frame(&out[1 + used..]).unwrap().unwrap();
            let n = size.min(SEQ_LEN);
            assert_eq!(first.payload.len(), size);
            assert_eq!(
                first.payload[..n],
                0x0102_0304_0506_0708u64.to_le_bytes()[..n]
            );
            assert_eq!(second.payload[..n], 7u64.to_le_bytes()[..n]);
            assert_eq!(first.payload[n..], second.payload[n..]);
        }
    }
}
