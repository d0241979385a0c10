//! Fuzz target: the HTTP/2 frame decoder (`h2::frame::decode`) on any
//! bytes, frame after frame as a connection reads them, with the field
//! block assembler behind it.
//!
//! The first input octet picks the advertised `SETTINGS_MAX_FRAME_SIZE`.
//! Besides panics it checks the decoder's contract: a frame takes at least
//! its 9-octet header and no more than the input; one octet less is "need
//! more", never a different answer; a decoded frame encodes back into
//! octets that decode to the same frame; and the assembler never holds a
//! block larger than its limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproxy_fast::h2::block::{Assembler, Limits};
use wsproxy_fast::h2::frame::{decode, Decoded, HEADER_LEN};
use wsproxy_fast::h2::settings::{MAX_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE};

const LIMITS: Limits = Limits {
    max_block: 1024,
    max_continuations: 8,
};

fuzz_target!(|input: &[u8]| {
    let Some((&pick, mut rest)) = input.split_first() else {
        return;
    };
    let max_frame_size = match pick % 3 {
        0 => MIN_MAX_FRAME_SIZE,
        1 => 64,
        _ => MAX_MAX_FRAME_SIZE,
    };
    let mut assembler = Assembler::new(LIMITS);
    loop {
        let decoded = match decode(rest, max_frame_size) {
            Ok(d) => d,
            Err(_) => return,
        };
        let len = match decoded {
            Decoded::NeedMore => {
                return;
            }
            Decoded::StreamError { error, len } => {
                assert_ne!(error.stream, 0, "a stream error names a stream");
                len
            }
            Decoded::Frame { frame, len } => {
                let mut out = Vec::new();
                frame.encode(&mut out);
                match decode(&out, MAX_MAX_FRAME_SIZE) {
                    Ok(Decoded::Frame {
                        frame: again,
                        len: l,
                    }) => {
                        assert_eq!(again, frame, "re-encoded frame decodes differently");
                        assert_eq!(l, out.len());
                    }
                    other => panic!("re-encoded {frame:?} decodes to {other:?}"),
                }
                match assembler.take(&frame) {
                    Ok(Some(block)) => assert!(block.fragment.len() <= LIMITS.max_block),
                    Ok(None) => {}
                    Err(_) => return,
                }
                len
            }
        };
        assert!(
            len >= HEADER_LEN && len <= rest.len(),
            "len {len} of {}",
            rest.len()
        );
        assert_eq!(
            decode(&rest[..len - 1], max_frame_size),
            Ok(Decoded::NeedMore)
        );
        rest = &rest[len..];
    }
});
