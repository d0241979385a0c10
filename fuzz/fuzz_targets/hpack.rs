//! Fuzz target: the HPACK decoder (`h2::hpack::Decoder`) with its limits,
//! on a sequence of field blocks sharing one dynamic table, as one
//! connection's HEADERS would bring them.
//!
//! The first input octet picks the table size and limits; then each block
//! is one length octet and that many octets. Besides panics it checks the
//! limits: no string handed over is longer than `max_string` (or the
//! longest static table entry), the list
//! handed over never exceeds `max_list`, the table never exceeds its size;
//! and what decoded re-encodes (our encoder, with and without Huffman) and
//! decodes again to the same fields.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproxy_fast::h2::hpack::table::STATIC;
use wsproxy_fast::h2::hpack::{Decoder, Encoder, Field, Limits};

fuzz_target!(|input: &[u8]| {
    let Some((&pick, mut rest)) = input.split_first() else {
        return;
    };
    let table_size = [0, 64, 256, 4096][usize::from(pick & 3)];
    let limits = Limits {
        max_string: [16, 256, 8192][usize::from((pick >> 2) % 3)],
        max_list: [64, 1024, 65_536][usize::from((pick >> 4) % 3)],
    };
    let huffman = pick & 0x80 != 0;
    let mut decoder = Decoder::new(table_size, limits);
    let mut encoder = Encoder::new(table_size, table_size, huffman);
    // The string limit is on literals; a static entry may be longer.
    let longest_static = STATIC
        .iter()
        .map(|(n, v)| n.len().max(v.len()))
        .max()
        .unwrap_or(0);
    let max_string = limits.max_string.max(longest_static);
    let mut mirror = Decoder::new(
        table_size,
        Limits {
            max_string: usize::MAX,
            max_list: usize::MAX,
        },
    );
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let (block, tail) = tail.split_at(n);
        rest = tail;
        let mut fields = Vec::new();
        let result = decoder.decode(block, |name, value| {
            assert!(name.len() <= max_string && value.len() <= max_string);
            fields.push((name.to_vec(), value.to_vec()));
        });
        assert!(decoder.table().size() <= decoder.table().max());
        assert!(decoder.table().max() <= table_size);
        let Ok(size) = result else {
            return;
        };
        let handed: usize = fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        assert_eq!(handed, size.list_size);
        assert!(size.list_size <= limits.max_list);
        let mut out = Vec::new();
        encoder.encode(fields.iter().map(|(n, v)| Field::new(n, v)), &mut out);
        let mut again = Vec::new();
        mirror
            .decode(&out, |n, v| again.push((n.to_vec(), v.to_vec())))
            .expect("our own encoding decodes");
        assert_eq!(again, fields);
    }
});
