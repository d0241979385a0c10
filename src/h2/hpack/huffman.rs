//! The Huffman code of HPACK (RFC 7541 §5.2, Appendix B): encoding into a
//! `Vec`, and decoding with a bound on the output.
//!
//! Decoding walks a binary tree built once from the code table (256
//! internal nodes, 257 leaves). A string ends on a symbol boundary or in
//! padding: at most 7 bits, all ones, the most significant bits of EOS.
//! Padding longer than 7 bits, padding with a zero bit, and an EOS symbol
//! in the string are decoding errors (§5.2).

use std::sync::OnceLock;

/// Why a Huffman string did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HuffmanError {
    /// Padding longer than 7 bits, padding that is not all ones, or EOS.
    Invalid,
    /// The decoded string would be longer than the caller's limit.
    TooLong,
}

/// The symbol number of EOS.
const EOS: u16 = 256;

/// The octets `input` takes Huffman-encoded.
pub fn encoded_len(input: &[u8]) -> usize {
    let bits: usize = input
        .iter()
        .map(|&b| usize::from(CODES[usize::from(b)].1))
        .sum();
    bits.div_ceil(8)
}

/// Appends `input` Huffman-encoded to `out`, padded with the high bits of
/// EOS (ones).
pub fn encode(input: &[u8], out: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in input {
        let (code, len) = CODES[usize::from(b)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        // Only the low `bits` (< 8) bits are still pending.
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1 << pad) - 1)) as u8);
    }
}

/// A child in the decoding tree: an internal node's index, or a leaf.
#[derive(Clone, Copy, Debug)]
enum Node {
    Branch(u16),
    Leaf(u16),
    /// Not reached by a complete code; kept so the tree can be built.
    Empty,
}

/// The decoding tree: node 0 is the root, each node has a 0 and a 1 child.
fn tree() -> &'static [[Node; 2]] {
    static TREE: OnceLock<Vec<[Node; 2]>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut nodes = vec![[Node::Empty; 2]];
        for (symbol, &(code, len)) in CODES.iter().enumerate() {
            let mut at = 0usize;
            for i in (0..len).rev() {
                let bit = ((code >> i) & 1) as usize;
                if i == 0 {
                    nodes[at][bit] = Node::Leaf(symbol as u16);
                } else {
                    at = match nodes[at][bit] {
                        Node::Branch(next) => usize::from(next),
                        Node::Empty => {
                            nodes.push([Node::Empty; 2]);
                            let next = nodes.len() - 1;
                            nodes[at][bit] = Node::Branch(next as u16);
                            next
                        }
                        Node::Leaf(_) => unreachable!("the code table is prefix-free"),
                    };
                }
            }
        }
        nodes
    })
}

/// Appends the decoding of `input` to `out`, refusing once `out` would
/// hold more than `max` octets.
pub fn decode(input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), HuffmanError> {
    let tree = tree();
    let mut node = 0usize;
    // Bits read since the last symbol, and whether they were all ones.
    let mut pending = 0u32;
    let mut ones = true;
    for &byte in input {
        for i in (0..8).rev() {
            let bit = usize::from((byte >> i) & 1);
            pending += 1;
            ones &= bit == 1;
            match tree[node][bit] {
                Node::Leaf(EOS) => return Err(HuffmanError::Invalid),
                Node::Leaf(symbol) => {
                    if out.len() >= max {
                        return Err(HuffmanError::TooLong);
                    }
                    out.push(symbol as u8);
                    node = 0;
                    pending = 0;
                    ones = true;
                }
                Node::Branch(next) => node = usize::from(next),
                Node::Empty => return Err(HuffmanError::Invalid),
            }
        }
    }
    if pending > 7 || !ones {
        return Err(HuffmanError::Invalid);
    }
    Ok(())
}

/// RFC 7541 Appendix B: each symbol's code (symbols 0–255, then EOS at
/// 256) as `(code, length in bits)`, the code in the low bits.
#[rustfmt::skip]
const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28), // 0
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28), // 4
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28), // 8
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28), // 12
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28), // 16
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28), // 20
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28), // 24
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28), // 28
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12), // 32
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11), // 36
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11), // 40
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6), // 44
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6), // 48
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6), // 52
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8), // 56
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10), // 60
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7), // 64
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7), // 68
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7), // 72
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7), // 76
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7), // 80
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7), // 84
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13), // 88
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6), // 92
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5), // 96
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6), // 100
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7), // 104
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5), // 108
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5), // 112
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7), // 116
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15), // 120
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28), // 124
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20), // 128
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23), // 132
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23), // 136
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23), // 140
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23), // 144
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23), // 148
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23), // 152
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24), // 156
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22), // 160
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21), // 164
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24), // 168
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23), // 172
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21), // 176
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23), // 180
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22), // 184
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23), // 188
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19), // 192
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25), // 196
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27), // 200
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25), // 204
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27), // 208
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24), // 212
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26), // 216
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27), // 220
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21), // 224
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23), // 228
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25), // 232
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23), // 236
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26), // 240
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27), // 244
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27), // 248
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26), // 252
    (0x3fffffff, 30), // 256
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_complete_and_canonical() {
        // Kraft's sum over 2^-len is exactly 1: no code word is missing or
        // extra, which a mistyped length or code would break.
        let sum: u64 = CODES.iter().map(|&(_, len)| 1u64 << (30 - len)).sum();
        assert_eq!(sum, 1 << 30);
        // Canonical: ordered by (length, symbol), each code is the previous
        // plus one, shifted to its length.
        let mut order: Vec<usize> = (0..CODES.len()).collect();
        order.sort_by_key(|&s| (CODES[s].1, s));
        let mut code = 0u32;
        let mut len = CODES[order[0]].1;
        for (n, &s) in order.iter().enumerate() {
            if n > 0 {
                code = (code + 1) << (CODES[s].1 - len);
                len = CODES[s].1;
            }
            assert_eq!(CODES[s].0, code, "symbol {s}");
        }
        assert_eq!(CODES[256], (0x3fff_ffff, 30), "EOS");
    }

    #[test]
    fn every_octet_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut enc = Vec::new();
        encode(&all, &mut enc);
        assert_eq!(enc.len(), encoded_len(&all));
        let mut dec = Vec::new();
        decode(&enc, &mut dec, usize::MAX).expect("valid");
        assert_eq!(dec, all);
        for b in 0..=255u8 {
            for n in 1..=9 {
                let input = vec![b; n];
                let mut enc = Vec::new();
                encode(&input, &mut enc);
                let mut dec = Vec::new();
                decode(&enc, &mut dec, n).expect("valid");
                assert_eq!(dec, input);
            }
        }
    }

    #[test]
    fn rfc_7541_c4_1_www_example_com() {
        let mut enc = Vec::new();
        encode(b"www.example.com", &mut enc);
        assert_eq!(
            enc,
            [0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]
        );
    }

    #[test]
    fn padding_and_eos_rules() {
        let mut out = Vec::new();
        // "0" is 00000 (5 bits): padded with 111 it is valid.
        assert_eq!(decode(&[0b0000_0111], &mut out, 10), Ok(()));
        assert_eq!(out, b"0");
        // Padding with a zero bit.
        out.clear();
        assert_eq!(
            decode(&[0b0000_0110], &mut out, 10),
            Err(HuffmanError::Invalid)
        );
        // 8 bits of padding: a whole octet of ones after a symbol boundary.
        out.clear();
        assert_eq!(
            decode(&[0b0000_0111, 0xff], &mut out, 10),
            Err(HuffmanError::Invalid)
        );
        // EOS itself (30 ones) then 2 ones of padding.
        out.clear();
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut out, 10),
            Err(HuffmanError::Invalid)
        );
        // Empty input is the empty string.
        out.clear();
        assert_eq!(decode(&[], &mut out, 0), Ok(()));
        assert!(out.is_empty());
    }

    #[test]
    fn the_output_limit_stops_decoding() {
        // '0' five bits each: 8 octets hold 12 of them.
        let mut enc = Vec::new();
        encode(&[b'0'; 12], &mut enc);
        let mut out = Vec::new();
        assert_eq!(decode(&enc, &mut out, 11), Err(HuffmanError::TooLong));
        assert_eq!(out.len(), 11);
        out.clear();
        assert_eq!(decode(&enc, &mut out, 12), Ok(()));
    }
}
