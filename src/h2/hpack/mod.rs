//! HPACK, header compression for HTTP/2 (RFC 7541): a [`Decoder`] for the
//! field blocks a client sends and an [`Encoder`] for ours, both sans I/O
//! over byte slices and `Vec`s.
//!
//! # Why our own
//!
//! The crates that offer HPACK on its own were weighed against what an
//! edge proxy needs of a decoder fed by strangers: bounded memory (a
//! dynamic table no larger than the `SETTINGS_HEADER_TABLE_SIZE` we send, a
//! cap on the decoded header list and on a single string, enforced while
//! decoding so a bomb is cut off early), no panic on any input, no
//! allocation per field, and upkeep.
//!
//! - `hpack` (0.3.0, 2016, unmaintained): panics on the one-octet input
//!   `0x3f` (RUSTSEC-2023-0085), no list or string limits, a `Vec` per
//!   field.
//! - `fluke-hpack` / `loona-hpack` (its 2023 fork, last release 0.4.3 in
//!   November 2024): the same decoder; the fork adds a cap on the table
//!   size updates a peer may ask for, but still no header list or string
//!   cap, and `fluke-hpack` kept the `0x3f` panic (reported in 2026).
//! - `httlib-hpack` (last release 2021): no limits, unmaintained.
//! - `h2`'s HPACK is internal to that crate, not a public API.
//!
//! None bounds what a block decodes to, so the cap would sit after a
//! decoder that has already built the output. HPACK is small (integers,
//! strings, a Huffman code, two tables), fully specified and has test
//! vectors (Appendix C, all in `tests.rs`), so it is written here.
//!
//! # Limits
//!
//! [`Limits`] holds the decoder's bounds. A string longer than
//! `max_string` is a decoding error (§5.1 and §5.2 allow an implementation
//! limit), so a connection error COMPRESSION_ERROR. A header list longer
//! than `max_list` (as RFC 9113 §6.5.2 counts it) stops the fields reaching
//! the caller at once, but the rest of the block is still decoded so the
//! dynamic table stays in step with the peer's (RFC 9113 §4.3); the caller
//! then refuses the one stream. Fields are handed to the caller borrowed
//! from the input, the table or one scratch buffer: a block that names a
//! large table entry a thousand times costs a thousand index lookups, not
//! a thousand copies.

pub mod decoder;
pub mod encoder;
pub mod huffman;
pub mod table;

pub use decoder::{BlockSize, Decoder, Limits};
pub use encoder::{Encoder, Field, Indexing};

/// Why a field block did not decode: a decoding error, which RFC 9113
/// §4.3 makes a connection error COMPRESSION_ERROR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("HPACK decoding error: {0}")]
pub struct DecodeError(pub &'static str);

/// The largest integer the decoder accepts (§5.1 lets it set a limit):
/// 2^32 - 1, more than any length or index can usefully be.
const MAX_INTEGER: u64 = u32::MAX as u64;

/// Reads an integer with an `n`-bit prefix (§5.1) from the front of
/// `input`; returns it and the octets it took.
pub fn decode_integer(input: &[u8], n: u8) -> Result<(usize, usize), DecodeError> {
    debug_assert!((1..=8).contains(&n));
    let Some(&first) = input.first() else {
        return Err(DecodeError("truncated integer"));
    };
    let mask = ((1u16 << n) - 1) as u8;
    let mut value = u64::from(first & mask);
    if value < u64::from(mask) {
        return Ok((value as usize, 1));
    }
    let mut shift = 0u32;
    for (i, &b) in input.iter().enumerate().skip(1) {
        value += u64::from(b & 0x7f) << shift;
        if value > MAX_INTEGER {
            return Err(DecodeError("integer too large"));
        }
        if b & 0x80 == 0 {
            return Ok((value as usize, i + 1));
        }
        shift += 7;
        if shift > 28 {
            // A sixth continuation octet (or zero padding) cannot keep
            // the value under 2^32.
            return Err(DecodeError("integer too long"));
        }
    }
    Err(DecodeError("truncated integer"))
}

/// Appends `value` with an `n`-bit prefix to `out`; `flags` holds the
/// bits above the prefix in the first octet.
pub fn encode_integer(value: usize, n: u8, flags: u8, out: &mut Vec<u8>) {
    debug_assert!((1..=8).contains(&n));
    let mask = (1usize << n) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests;
