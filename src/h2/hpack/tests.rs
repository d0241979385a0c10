//! HPACK against RFC 7541 Appendix C (every example, decoded and encoded
//! octet for octet, with the dynamic table after each), table size
//! updates, integer edge cases, and the limits a hostile peer meets.

use super::table::DynamicTable;
use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

const GENEROUS: Limits = Limits {
    max_string: 1 << 16,
    max_list: 1 << 20,
};

type Fields = Vec<(String, String)>;

fn decode(d: &mut Decoder, block: &[u8]) -> Result<Fields, DecodeError> {
    let mut out = Vec::new();
    let size = d.decode(block, |n, v| {
        out.push((
            String::from_utf8(n.to_vec()).expect("utf-8"),
            String::from_utf8(v.to_vec()).expect("utf-8"),
        ))
    })?;
    assert!(!size.over_limit);
    let counted: usize = out.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
    assert_eq!(size.list_size, counted);
    Ok(out)
}

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn table(t: &DynamicTable) -> Vec<(String, String)> {
    (0..t.len())
        .map(|i| {
            let (n, v) = t.get(i).expect("in range");
            (
                String::from_utf8_lossy(n).into(),
                String::from_utf8_lossy(v).into(),
            )
        })
        .collect()
}

/// One step of an Appendix C series: the fields, the block the RFC
/// prints, and the dynamic table's size after it.
struct Step {
    fields: &'static [(&'static str, &'static str)],
    hex: &'static str,
    table_size: usize,
}

/// Decodes and encodes a series over one connection each way, checking
/// the octets, the fields and both tables after every step.
fn run_series(table_max: usize, huffman: bool, steps: &[Step]) {
    let mut dec = Decoder::new(table_max, GENEROUS);
    let mut enc = Encoder::new(table_max, table_max, huffman);
    for (n, step) in steps.iter().enumerate() {
        let block = hex(step.hex);
        assert_eq!(
            decode(&mut dec, &block).expect("valid"),
            fields(step.fields),
            "step {n}"
        );
        assert_eq!(
            dec.table().size(),
            step.table_size,
            "decoder table after step {n}"
        );
        let mut out = Vec::new();
        enc.encode(
            step.fields
                .iter()
                .map(|(n, v)| Field::new(n.as_bytes(), v.as_bytes())),
            &mut out,
        );
        assert_eq!(out, block, "encoding of step {n}");
        assert_eq!(
            table(enc.table()),
            table(dec.table()),
            "tables after step {n}"
        );
    }
}

#[test]
fn c1_integers() {
    // C.1.1: 10 with a 5-bit prefix.
    let mut out = Vec::new();
    encode_integer(10, 5, 0, &mut out);
    assert_eq!(out, [0x0a]);
    assert_eq!(decode_integer(&out, 5), Ok((10, 1)));
    // C.1.2: 1337 with a 5-bit prefix.
    out.clear();
    encode_integer(1337, 5, 0, &mut out);
    assert_eq!(out, [0x1f, 0x9a, 0x0a]);
    assert_eq!(decode_integer(&out, 5), Ok((1337, 3)));
    // C.1.3: 42 at an octet boundary.
    out.clear();
    encode_integer(42, 8, 0, &mut out);
    assert_eq!(out, [0x2a]);
    assert_eq!(decode_integer(&out, 8), Ok((42, 1)));
}

#[test]
fn integer_limits_and_round_trips() {
    for n in 1..=8u8 {
        for value in [
            0,
            1,
            (1 << n) - 2,
            (1 << n) - 1,
            1 << n,
            127,
            128,
            16_383,
            1 << 20,
            u32::MAX as usize,
        ] {
            let mut out = Vec::new();
            encode_integer(value, n, 0, &mut out);
            assert_eq!(
                decode_integer(&out, n),
                Ok((value, out.len())),
                "{value} in {n} bits"
            );
            for end in 0..out.len() {
                assert!(
                    decode_integer(&out[..end], n).is_err(),
                    "truncated at {end}"
                );
            }
        }
    }
    // 2^32 is past the limit, and so are long runs of continuation octets,
    // even ones that add nothing (0x80).
    let mut out = Vec::new();
    encode_integer(1 << 32, 5, 0, &mut out);
    assert_eq!(
        decode_integer(&out, 5),
        Err(DecodeError("integer too large"))
    );
    assert!(decode_integer(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], 5).is_err());
    assert!(decode_integer(&[0xff; 64], 5).is_err());
    // A continuation octet without its high bit ends the integer.
    assert_eq!(decode_integer(&[0x1f; 64], 5), Ok((62, 2)));
}

#[test]
fn c2_1_literal_with_indexing() {
    let mut d = Decoder::new(4096, GENEROUS);
    let block = hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572");
    assert_eq!(
        decode(&mut d, &block),
        Ok(fields(&[("custom-key", "custom-header")]))
    );
    assert_eq!(d.table().size(), 55);
    assert_eq!(table(d.table()), fields(&[("custom-key", "custom-header")]));
    let mut e = Encoder::new(4096, 4096, false);
    let mut out = Vec::new();
    e.encode([Field::new(b"custom-key", b"custom-header")], &mut out);
    assert_eq!(out, block);
}

#[test]
fn c2_2_literal_without_indexing() {
    let mut d = Decoder::new(4096, GENEROUS);
    let block = hex("040c2f73616d706c652f70617468");
    assert_eq!(
        decode(&mut d, &block),
        Ok(fields(&[(":path", "/sample/path")]))
    );
    assert!(d.table().is_empty());
    let mut e = Encoder::new(4096, 4096, false);
    let mut out = Vec::new();
    let field = Field {
        indexing: Indexing::Without,
        ..Field::new(b":path", b"/sample/path")
    };
    e.encode([field], &mut out);
    assert_eq!(out, block);
    assert!(e.table().is_empty());
}

#[test]
fn c2_3_literal_never_indexed() {
    let mut d = Decoder::new(4096, GENEROUS);
    let block = hex("100870617373776f726406736563726574");
    assert_eq!(
        decode(&mut d, &block),
        Ok(fields(&[("password", "secret")]))
    );
    assert!(d.table().is_empty());
    let mut e = Encoder::new(4096, 4096, false);
    let mut out = Vec::new();
    let field = Field {
        indexing: Indexing::Never,
        ..Field::new(b"password", b"secret")
    };
    e.encode([field], &mut out);
    assert_eq!(out, block);
}

#[test]
fn c2_4_indexed() {
    let mut d = Decoder::new(4096, GENEROUS);
    assert_eq!(decode(&mut d, &[0x82]), Ok(fields(&[(":method", "GET")])));
    assert!(d.table().is_empty());
    let mut e = Encoder::new(4096, 4096, false);
    let mut out = Vec::new();
    e.encode([Field::new(b":method", b"GET")], &mut out);
    assert_eq!(out, [0x82]);
}

const REQ1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQ2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQ3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const RESP1: &[(&str, &str)] = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const RESP2: &[(&str, &str)] = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const RESP3: &[(&str, &str)] = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
    ("location", "https://www.example.com"),
    ("content-encoding", "gzip"),
    (
        "set-cookie",
        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    ),
];

#[test]
fn c3_requests_without_huffman() {
    run_series(
        4096,
        false,
        &[
            Step {
                fields: REQ1,
                hex: "828684410f7777772e6578616d706c652e636f6d",
                table_size: 57,
            },
            Step {
                fields: REQ2,
                hex: "828684be58086e6f2d6361636865",
                table_size: 110,
            },
            Step {
                fields: REQ3,
                hex: "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
                table_size: 164,
            },
        ],
    );
}

#[test]
fn c4_requests_with_huffman() {
    run_series(
        4096,
        true,
        &[
            Step {
                fields: REQ1,
                hex: "828684418cf1e3c2e5f23a6ba0ab90f4ff",
                table_size: 57,
            },
            Step {
                fields: REQ2,
                hex: "828684be5886a8eb10649cbf",
                table_size: 110,
            },
            Step {
                fields: REQ3,
                hex: "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
                table_size: 164,
            },
        ],
    );
}

#[test]
fn c5_responses_without_huffman_with_eviction() {
    run_series(
        256,
        false,
        &[
            Step {
                fields: RESP1,
                hex: "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
                table_size: 222,
            },
            Step { fields: RESP2, hex: "4803333037c1c0bf", table_size: 222 },
            Step {
                fields: RESP3,
                hex: "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
                table_size: 215,
            },
        ],
    );
}

#[test]
fn c6_responses_with_huffman_with_eviction() {
    run_series(
        256,
        true,
        &[
            Step {
                fields: RESP1,
                hex: "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
                table_size: 222,
            },
            Step { fields: RESP2, hex: "4883640effc1c0bf", table_size: 222 },
            Step {
                fields: RESP3,
                hex: "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
                table_size: 215,
            },
        ],
    );
}

#[test]
fn table_size_updates() {
    let mut d = Decoder::new(4096, GENEROUS);
    decode(
        &mut d,
        &hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"),
    )
    .expect("valid");
    assert_eq!(d.table().len(), 1);
    // An update to 0 then back to 4096, before a field: the table empties.
    assert_eq!(
        decode(&mut d, &[0x20, 0x3f, 0xe1, 0x1f, 0x82]),
        Ok(fields(&[(":method", "GET")]))
    );
    assert!(d.table().is_empty());
    assert_eq!(d.table().max(), 4096);
    // After a field: refused.
    assert!(decode(&mut d, &[0x82, 0x20]).is_err());
    // Above our setting: refused.
    let mut out = Vec::new();
    encode_integer(4097, 5, 0x20, &mut out);
    assert!(decode(&mut Decoder::new(4096, GENEROUS), &out).is_err());
    // An update alone is a valid (empty) block.
    assert_eq!(
        decode(&mut Decoder::new(4096, GENEROUS), &[0x20]),
        Ok(vec![])
    );

    // We lower our setting: the next block must start with an update no
    // larger than it.
    let mut d = Decoder::new(4096, GENEROUS);
    d.set_max_table_size(100);
    assert_eq!(
        decode(&mut d, &[0x82]),
        Err(DecodeError("table size update required first"))
    );
    let mut d = Decoder::new(4096, GENEROUS);
    d.set_max_table_size(100);
    out.clear();
    encode_integer(200, 5, 0x20, &mut out);
    assert!(decode(&mut d, &out).is_err());
    let mut d = Decoder::new(4096, GENEROUS);
    d.set_max_table_size(100);
    out.clear();
    encode_integer(100, 5, 0x20, &mut out);
    out.push(0x82);
    assert_eq!(decode(&mut d, &out), Ok(fields(&[(":method", "GET")])));
    assert_eq!(d.table().max(), 100);
    assert_eq!(
        decode(&mut d, &[0x82]),
        Ok(fields(&[(":method", "GET")])),
        "only the first block"
    );
}

#[test]
fn the_encoder_signals_table_size_changes() {
    let mut e = Encoder::new(4096, 4096, false);
    let mut d = Decoder::new(4096, GENEROUS);
    // The peer lowers its setting to 0 then raises it to 1000 between
    // blocks: the smallest, then the final size (§4.2).
    e.set_max_table_size(0);
    e.set_max_table_size(1000);
    d.set_max_table_size(1000);
    let mut out = Vec::new();
    e.encode([Field::new(b"x-a", b"1")], &mut out);
    let mut want = vec![0x20];
    encode_integer(1000, 5, 0x20, &mut want);
    assert!(out.starts_with(&want), "{out:02x?}");
    assert_eq!(decode(&mut d, &out), Ok(fields(&[("x-a", "1")])));
    assert_eq!(d.table().max(), 1000);
    // Our cap bounds what the peer's setting can make us keep.
    let mut e = Encoder::new(1 << 20, 256, false);
    assert_eq!(e.table().max(), 256);
    e.set_max_table_size(1 << 16);
    assert_eq!(e.table().max(), 256);
    // No change, no update.
    out.clear();
    e.encode([Field::new(b":method", b"GET")], &mut out);
    assert_eq!(out, [0x82]);
}

#[test]
fn malformed_blocks_are_decoding_errors() {
    let cases: &[(&str, &[u8])] = &[
        ("index 0", &[0x80]),
        ("index past the tables", &[0xbe]),
        ("truncated index", &[0xff]),
        ("truncated size update", &[0x3f]),
        ("truncated literal name length", &[0x40]),
        ("string past the end", &[0x40, 0x05, b'a']),
        ("value missing", &[0x40, 0x01, b'a']),
        ("literal naming a missing entry", &[0x7e, 0x01, b'a']),
        ("invalid Huffman padding", &[0x40, 0x81, 0x00, 0x00]),
        ("Huffman EOS", &[0x40, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00]),
    ];
    for (what, block) in cases {
        assert!(
            Decoder::new(4096, GENEROUS)
                .decode(block, |_, _| {})
                .is_err(),
            "{what}"
        );
    }
}

#[test]
fn a_string_longer_than_the_limit_is_refused_raw_or_huffman() {
    let limits = Limits {
        max_string: 8,
        max_list: 1 << 20,
    };
    let mut raw = vec![0x00, 0x01, b'n', 0x09];
    raw.extend_from_slice(b"123456789");
    assert_eq!(
        Decoder::new(4096, limits).decode(&raw, |_, _| {}),
        Err(DecodeError("string longer than the limit"))
    );
    let mut ok = vec![0x00, 0x01, b'n', 0x08];
    ok.extend_from_slice(b"12345678");
    assert!(Decoder::new(4096, limits).decode(&ok, |_, _| {}).is_ok());
    // Nine '0's Huffman-encoded are 6 octets: the limit is on the output.
    let mut enc = Vec::new();
    huffman::encode(b"000000000", &mut enc);
    let mut block = vec![0x00, 0x01, b'n', 0x80 | enc.len() as u8];
    block.extend_from_slice(&enc);
    assert_eq!(
        Decoder::new(4096, limits).decode(&block, |_, _| {}),
        Err(DecodeError("string longer than the limit"))
    );
}

#[test]
fn the_string_limit_is_on_literals_not_on_static_entries() {
    // Found by the `hpack` fuzz target (its oracle, not the decoder, was
    // wrong): index 20, `access-control-allow-origin`, is 27 octets and
    // passes under a 16-octet string limit, as it costs the peer nothing
    // to name and us nothing to hand over.
    let limits = Limits {
        max_string: 16,
        max_list: 1024,
    };
    let mut names = Vec::new();
    Decoder::new(4096, limits)
        .decode(&[0x94], |n, _| names.push(n.to_vec()))
        .expect("valid");
    assert_eq!(names, [b"access-control-allow-origin".to_vec()]);
    // The same name as a literal is refused.
    let mut block = vec![0x00, 27];
    block.extend_from_slice(b"access-control-allow-origin");
    block.push(0);
    assert!(Decoder::new(4096, limits)
        .decode(&block, |_, _| {})
        .is_err());
}

#[test]
fn an_hpack_bomb_is_cut_off_at_the_list_limit() {
    // One 4000-octet value in the table, then 10 000 one-octet references
    // to it: 40 MB of header list from 10 KB of input.
    let limits = Limits {
        max_string: 4096,
        max_list: 16 << 10,
    };
    let mut d = Decoder::new(4096, limits);
    let mut block = vec![0x40, 0x01, b'x'];
    encode_integer(4000, 7, 0, &mut block);
    block.extend_from_slice(&[b'a'; 4000]);
    block.extend_from_slice(&[0xbe; 10_000]);
    let mut handed = 0usize;
    let mut count = 0;
    let size = d
        .decode(&block, |n, v| {
            handed += n.len() + v.len();
            count += 1;
        })
        .expect("a valid block");
    assert!(size.over_limit);
    assert!(size.list_size <= limits.max_list);
    assert!(handed <= limits.max_list, "handed {handed} octets");
    assert_eq!(count, 4, "four 4033-octet fields fit in 16 KiB");
    // The table stayed in step: the next block can use the entry.
    let next = d
        .decode(&[0xbe], |n, v| assert_eq!((n, v.len()), (&b"x"[..], 4000)))
        .expect("valid");
    assert!(!next.over_limit);
}

#[test]
fn the_dynamic_table_never_outgrows_its_size() {
    let mut d = Decoder::new(256, GENEROUS);
    for i in 0..1000u32 {
        let name = format!("x-{i}");
        let mut block = vec![0x40, name.len() as u8];
        block.extend_from_slice(name.as_bytes());
        block.push(i as u8 % 100);
        block.extend(std::iter::repeat_n(b'v', usize::from(i as u8 % 100)));
        decode(&mut d, &block).expect("valid");
        assert!(d.table().size() <= 256);
    }
}

#[test]
fn encode_then_decode_round_trips_through_eviction() {
    for huffman in [false, true] {
        let mut e = Encoder::new(300, 300, huffman);
        let mut d = Decoder::new(300, GENEROUS);
        for round in 0..50usize {
            let value = format!("value-{}", round % 7).repeat(round % 5 + 1);
            let indexing = [Indexing::Incremental, Indexing::Without, Indexing::Never][round % 3];
            let list = [
                Field::new(b":status", b"200"),
                Field {
                    indexing,
                    ..Field::new(b"x-custom", value.as_bytes())
                },
                Field::new(b"content-type", b"text/html; charset=utf-8"),
                Field::new(b"x-\xff\x00binary", b"\x00\x01\xfe"),
            ];
            let mut out = Vec::new();
            e.encode(list, &mut out);
            let mut got = Vec::new();
            d.decode(&out, |n, v| got.push((n.to_vec(), v.to_vec())))
                .expect("valid");
            let want: Vec<_> = list
                .iter()
                .map(|f| (f.name.to_vec(), f.value.to_vec()))
                .collect();
            assert_eq!(got, want, "round {round}");
            assert_eq!(table(e.table()), table(d.table()));
        }
    }
}
