//! A streaming frame walker: follows WebSocket frames across arbitrary read
//! boundaries and hands out payload bytes as they arrive, so neither the echo
//! backend nor the load generator ever buffers a whole message.
//!
//! Only an incomplete header (at most 14 bytes) is carried between reads, in
//! a fixed array inside the walker.

use wsbench::ws::{decode_header, FrameHeader, ProtocolError, MAX_HEADER_LEN};

/// One step through the byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A complete header; its payload follows in `Payload` pieces.
    Header(FrameHeader),
    /// Payload bytes, still masked if `mask` is set. `offset` is the position
    /// of `data[0]` within the payload, as `apply_mask` expects.
    Payload {
        data: &'a [u8],
        offset: u64,
        mask: Option<[u8; 4]>,
    },
    /// The frame's payload is complete (also sent for empty payloads).
    End,
}

/// Where the walker is between calls to [`FrameWalker::feed`].
#[derive(Debug, Clone, Copy)]
enum State {
    /// Before or inside a header; `len` bytes of it are saved in `partial`.
    Header {
        partial: [u8; MAX_HEADER_LEN],
        len: usize,
    },
    /// Inside a payload, `offset` bytes of it already handed out.
    Payload { header: FrameHeader, offset: u64 },
}

/// Follows frames through a byte stream; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct FrameWalker {
    state: State,
}

impl Default for FrameWalker {
    fn default() -> FrameWalker {
        FrameWalker {
            state: State::Header {
                partial: [0; MAX_HEADER_LEN],
                len: 0,
            },
        }
    }
}

impl FrameWalker {
    /// Walks `input`, calling `on_piece` for every header, payload slice and
    /// frame end it completes. A bad header stops the walk with its error;
    /// an error from `on_piece` stops it too.
    pub fn feed<E: From<ProtocolError>>(
        &mut self,
        mut input: &[u8],
        mut on_piece: impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        while !input.is_empty() {
            match &mut self.state {
                State::Payload { header, offset } => {
                    let left = header.payload_len - *offset;
                    let take = left.min(input.len() as u64) as usize;
                    on_piece(Piece::Payload {
                        data: &input[..take],
                        offset: *offset,
                        mask: header.mask,
                    })?;
                    input = &input[take..];
                    *offset += take as u64;
                    if *offset == header.payload_len {
                        *self = FrameWalker::default();
                        on_piece(Piece::End)?;
                    }
                }
                State::Header { partial, len } => {
                    let header = if *len == 0 {
                        // Fast path: the header is usually whole in `input`.
                        match decode_header(input)? {
                            Some(header) => {
                                input = &input[header.header_len..];
                                header
                            }
                            None => {
                                // decode_header only waits for < 14 bytes.
                                partial[..input.len()].copy_from_slice(input);
                                *len = input.len();
                                return Ok(());
                            }
                        }
                    } else {
                        let take = (MAX_HEADER_LEN - *len).min(input.len());
                        partial[*len..*len + take].copy_from_slice(&input[..take]);
                        match decode_header(&partial[..*len + take])? {
                            Some(header) => {
                                input = &input[header.header_len - *len..];
                                header
                            }
                            None => {
                                *len += take;
                                return Ok(());
                            }
                        }
                    };
                    on_piece(Piece::Header(header))?;
                    if header.payload_len == 0 {
                        *self = FrameWalker::default();
                        on_piece(Piece::End)?;
                    } else {
                        self.state = State::Payload { header, offset: 0 };
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsbench::ws::{apply_mask, decode_frame, encode_frame, Frame, Opcode};

    /// Reassembles whole frames from pieces.
    fn walk(chunks: &[&[u8]]) -> Result<Vec<Frame>, ProtocolError> {
        let mut walker = FrameWalker::default();
        let mut frames = Vec::new();
        let mut current: Option<Frame> = None;
        for chunk in chunks {
            walker.feed(chunk, |piece| {
                match piece {
                    Piece::Header(header) => {
                        current = Some(Frame {
                            fin: header.fin,
                            opcode: header.opcode,
                            payload: Vec::new(),
                        });
                    }
                    Piece::Payload { data, offset, mask } => {
                        let frame = current.as_mut().expect("payload after a header");
                        assert_eq!(frame.payload.len() as u64, offset);
                        let start = frame.payload.len();
                        frame.payload.extend_from_slice(data);
                        if let Some(key) = mask {
                            apply_mask(&mut frame.payload[start..], key, offset);
                        }
                    }
                    Piece::End => frames.push(current.take().expect("end after a header")),
                }
                Ok::<(), ProtocolError>(())
            })?;
        }
        Ok(frames)
    }

    fn sample_stream() -> (Vec<u8>, Vec<Frame>) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        let frames = [
            (Opcode::Text, vec![b'a'; 5], Some([9, 8, 7, 6])),
            (Opcode::Ping, Vec::new(), None),
            (
                Opcode::Binary,
                (0..300u32).map(|i| i as u8).collect(),
                Some([1, 2, 3, 4]),
            ),
            (Opcode::Close, vec![3, 232], None),
        ];
        for (opcode, payload, mask) in frames {
            let start = wire.len();
            encode_frame(&mut wire, true, opcode, &payload, mask);
            expected.push(decode_frame(&wire[start..]).unwrap().unwrap().0);
        }
        (wire, expected)
    }

    #[test]
    fn whole_stream_in_one_piece() {
        let (wire, expected) = sample_stream();
        assert_eq!(walk(&[&wire]).unwrap(), expected);
    }

    #[test]
    fn every_two_way_split() {
        let (wire, expected) = sample_stream();
        for cut in 0..=wire.len() {
            let (a, b) = wire.split_at(cut);
            assert_eq!(walk(&[a, b]).unwrap(), expected, "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte() {
        let (wire, expected) = sample_stream();
        let chunks: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(walk(&chunks).unwrap(), expected);
    }

    #[test]
    fn a_bad_header_is_an_error_even_when_split() {
        let bad = [0x81, 0x05, b'h', b'e', b'l', b'l', b'o', 0xc2, 0x00];
        for cut in 0..=bad.len() {
            let (a, b) = bad.split_at(cut);
            assert_eq!(
                walk(&[a, b]),
                Err(ProtocolError::ReservedBits(0b100)),
                "cut at {cut}"
            );
        }
    }
}
