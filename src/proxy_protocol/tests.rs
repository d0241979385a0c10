//! Table tests of both versions, every prefix of every header, and the
//! refusals.

use super::*;

fn tcp(source: &str, destination: &str) -> Origin {
    Origin::Tcp {
        source: source.parse().unwrap(),
        destination: destination.parse().unwrap(),
    }
}

/// Asserts every strict prefix of `header` is "read more".
fn prefixes_wait(header: &[u8]) {
    for n in 0..header.len() {
        assert_eq!(
            parse(&header[..n]),
            Ok(None),
            "prefix {n} of {:?}",
            header.escape_ascii().to_string()
        );
    }
}

/// A v2 header: signature, the two command bytes, length, block.
fn v2(version_command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(version_command);
    h.push(family);
    h.extend_from_slice(&(block.len() as u16).to_be_bytes());
    h.extend_from_slice(block);
    h
}

/// 12-byte TCP over IPv4 block: 192.168.0.1:56324 -> 10.0.0.11:443.
const TCP4_BLOCK: [u8; 12] = [192, 168, 0, 1, 10, 0, 0, 11, 0xdc, 0x04, 0x01, 0xbb];

fn tcp6_block() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    b.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
    b.extend_from_slice(&65535u16.to_be_bytes());
    b.extend_from_slice(&80u16.to_be_bytes());
    b
}

#[test]
fn v1_valid_table() {
    let longest_unknown = format!("PROXY UNKNOWN {}\r\n", "x".repeat(91));
    assert_eq!(longest_unknown.len(), V1_MAX_LINE);
    let longest_tcp6 = format!(
        "PROXY TCP6 {0} {0} 65535 65535\r\n",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    );
    assert_eq!(longest_tcp6.len(), 104);
    let cases: &[(&str, Origin)] = &[
        (
            "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            tcp("192.168.0.1:56324", "192.168.0.11:443"),
        ),
        (
            "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n",
            tcp("255.255.255.255:65535", "0.0.0.0:0"),
        ),
        (
            "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
            tcp("[2001:db8::1]:1", "[::1]:65535"),
        ),
        (
            "PROXY TCP6 ::ffff:1.2.3.4 FE80::A 8080 80\r\n",
            tcp("[::ffff:1.2.3.4]:8080", "[fe80::a]:80"),
        ),
        (
            &longest_tcp6,
            tcp(
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
            ),
        ),
        ("PROXY UNKNOWN\r\n", Origin::Local),
        (
            "PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n",
            Origin::Local,
        ),
        ("PROXY UNKNOWN  anything\tat all \r\n", Origin::Local),
        (&longest_unknown, Origin::Local),
    ];
    for (line, origin) in cases {
        prefixes_wait(line.as_bytes());
        for trailer in [&b""[..], b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00"] {
            let mut input = line.as_bytes().to_vec();
            input.extend_from_slice(trailer);
            let want = Header {
                origin: *origin,
                len: line.len(),
                version: 1,
            };
            assert_eq!(parse(&input), Ok(Some(want)), "{line:?}");
        }
    }
}

#[test]
fn v1_invalid_table() {
    use ProxyError::*;
    use V1Family::*;
    use V1Field::*;
    let too_long_unknown = format!("PROXY UNKNOWN {}\r\n", "x".repeat(92));
    let no_crlf = format!("PROXY UNKNOWN {}", "x".repeat(200));
    let long_tcp6 = format!(
        "PROXY TCP6 {0} {0} 65535 65535\r\n",
        "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
    );
    let cases: &[(&str, ProxyError)] = &[
        ("GET / HTTP/1.1\r\n", NotProxy),
        ("G", NotProxy),
        ("\x16\x03\x01", NotProxy),
        ("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", NotProxy),
        ("PROXI", NotProxy),
        ("PROXY\r\n", V1Protocol),
        ("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", V1Protocol),
        ("PROXY tcp4", V1Protocol),
        ("PROXY TCP ", V1Protocol),
        ("PROXY UNKNOWNX\r\n", V1Protocol),
        (
            "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            V1DoubleSpace(Protocol),
        ),
        (
            "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            V1DoubleSpace(SourceAddress),
        ),
        (
            "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            V1DoubleSpace(DestinationAddress),
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",
            V1DoubleSpace(SourcePort),
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
            V1DoubleSpace(DestinationPort),
        ),
        ("PROXY TCP4\r\n", V1MissingField(SourceAddress)),
        ("PROXY TCP4 1.2.3.4\r\n", V1MissingField(DestinationAddress)),
        ("PROXY TCP4 1.2.3.4 5.6.7.8\r\n", V1MissingField(SourcePort)),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            V1MissingField(DestinationPort),
        ),
        (
            "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
            V1Address {
                field: SourceAddress,
                family: Tcp4,
            },
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7 1 2\r\n",
            V1Address {
                field: DestinationAddress,
                family: Tcp4,
            },
        ),
        (
            "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            V1Address {
                field: SourceAddress,
                family: Tcp4,
            },
        ),
        (
            "PROXY TCP4 1.2.3.4x",
            V1Address {
                field: SourceAddress,
                family: Tcp4,
            },
        ),
        (
            "PROXY TCP4 1111.2222.3333.4444",
            V1Address {
                field: SourceAddress,
                family: Tcp4,
            },
        ),
        // Family mismatch: refused at the first ':' for TCP4, at the
        // field's end for TCP6.
        (
            "PROXY TCP4 ::1 ::1 1 2\r\n",
            V1Address {
                field: SourceAddress,
                family: Tcp4,
            },
        ),
        (
            "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            V1Address {
                field: SourceAddress,
                family: Tcp6,
            },
        ),
        (
            "PROXY TCP6 ::1 ::g 1 2\r\n",
            V1Address {
                field: DestinationAddress,
                family: Tcp6,
            },
        ),
        (
            "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
            V1Address {
                field: SourceAddress,
                family: Tcp6,
            },
        ),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", V1Port(SourcePort)),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            V1Port(DestinationPort),
        ),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 100000", V1Port(SourcePort)),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", V1Port(SourcePort)),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 00", V1Port(SourcePort)),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n",
            V1Port(DestinationPort),
        ),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", V1LineEnd),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", V1LineEnd),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", V1LineEnd),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", V1LineEnd),
        ("PROXY UNKNOWN\n", V1LineEnd),
        ("PROXY UNKNOWN\rX\r\n", V1LineEnd),
        ("PROXY UNKNOWN a\nb\r\n", V1LineEnd),
        (&too_long_unknown, V1TooLong),
        (&no_crlf, V1TooLong),
        (&long_tcp6, V1TooLong),
    ];
    for (input, want) in cases {
        assert_eq!(parse(input.as_bytes()), Err(want.clone()), "{input:?}");
    }
}

#[test]
fn v1_refuses_early() {
    // Bytes that cannot become a header are refused on arrival, not
    // after 107 bytes: the receiver "is recommended to abort the
    // connection as soon as possible".
    for (input, refused_at) in [
        ("GET / HTTP/1.1\r\n", 1),
        ("PROXY TCP4 ::1 ::1 1 2\r\n", 12),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", 32),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", 29),
        ("PROXY TCPX", 10),
    ] {
        let bytes = input.as_bytes();
        assert_eq!(parse(&bytes[..refused_at - 1]), Ok(None), "{input:?}");
        assert!(parse(&bytes[..refused_at]).is_err(), "{input:?}");
    }
}

#[test]
fn v2_valid_table() {
    let tcp6 = tcp6_block();
    let mut tcp4_tlvs = TCP4_BLOCK.to_vec();
    // PP2_TYPE_AUTHORITY "example.com", then PP2_TYPE_NOOP of 3 bytes.
    tcp4_tlvs.extend_from_slice(b"\x02\x00\x0bexample.com\x04\x00\x03\0\0\0");
    let mut tcp6_tlvs = tcp6.clone();
    // AWS NLB's VPC endpoint ID (type 0xEA, subtype 0x01).
    tcp6_tlvs.extend_from_slice(b"\xea\x00\x17\x01vpce-08d2bf15fac5001c9");
    let largest = vec![0u8; MAX_HEADER_BYTES - V2_FIXED_BYTES];
    let v4 = tcp("192.168.0.1:56324", "10.0.0.11:443");
    let v6 = tcp("[2001:db8::1]:65535", "[2001:db8::2]:80");
    let cases: &[(Vec<u8>, Origin)] = &[
        (v2(0x21, V2_TCP4, &TCP4_BLOCK), v4),
        (v2(0x21, V2_TCP4, &tcp4_tlvs), v4),
        (v2(0x21, V2_TCP6, &tcp6), v6),
        (v2(0x21, V2_TCP6, &tcp6_tlvs), v6),
        (v2(0x20, V2_UNSPEC, b""), Origin::Local),
        // LOCAL ignores the family and whatever block is there.
        (v2(0x20, V2_TCP4, &TCP4_BLOCK), Origin::Local),
        (v2(0x20, 0xff, b""), Origin::Local),
        (v2(0x21, V2_UNSPEC, b""), Origin::Local),
        (v2(0x21, V2_UNSPEC, &TCP4_BLOCK), Origin::Local),
        (v2(0x21, V2_UDP4, &TCP4_BLOCK), Origin::Local),
        (v2(0x21, V2_UDP6, &tcp6), Origin::Local),
        (v2(0x21, V2_UNIX_STREAM, &[0; 216]), Origin::Local),
        (v2(0x21, V2_UNIX_DGRAM, &[0; 216]), Origin::Local),
        (v2(0x21, V2_UNSPEC, &largest), Origin::Local),
    ];
    for (header, origin) in cases {
        prefixes_wait(header);
        let mut input = header.clone();
        input.extend_from_slice(b"\x16\x03\x01\x02\x00 client hello");
        let want = Header {
            origin: *origin,
            len: header.len(),
            version: 2,
        };
        assert_eq!(parse(&input), Ok(Some(want)), "{header:02x?}");
    }
}

#[test]
fn v2_invalid_table() {
    use ProxyError::*;
    let mut bad_signature = v2(0x21, V2_TCP4, &TCP4_BLOCK);
    bad_signature[7] = b'q';
    let mut too_long = v2(0x21, V2_UNSPEC, b"");
    too_long[14..16].copy_from_slice(&4081u16.to_be_bytes());
    let mut max_len = v2(0x21, V2_UNSPEC, b"");
    max_len[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    let short = |family, len, needs| V2ShortAddress { family, len, needs };
    let cases: &[(Vec<u8>, ProxyError)] = &[
        (bad_signature, NotProxy),
        (b"\r\n\r\n\r\n".to_vec(), NotProxy),
        (v2(0x11, V2_TCP4, &TCP4_BLOCK), V2Version(1)),
        (v2(0x31, V2_TCP4, &TCP4_BLOCK), V2Version(3)),
        (v2(0x01, V2_TCP4, &TCP4_BLOCK), V2Version(0)),
        (v2(0x22, V2_TCP4, &TCP4_BLOCK), V2Command(2)),
        (v2(0x2f, V2_TCP4, &TCP4_BLOCK), V2Command(0xf)),
        (v2(0x21, 0x13, &TCP4_BLOCK), V2Family(0x13)),
        (v2(0x21, 0x41, &TCP4_BLOCK), V2Family(0x41)),
        (v2(0x21, 0x01, &TCP4_BLOCK), V2Family(0x01)),
        (v2(0x21, V2_TCP4, &TCP4_BLOCK[..11]), short(V2_TCP4, 11, 12)),
        (v2(0x21, V2_TCP4, b""), short(V2_TCP4, 0, 12)),
        (v2(0x21, V2_TCP6, &TCP4_BLOCK), short(V2_TCP6, 12, 36)),
        (v2(0x21, V2_UDP6, &[0; 35]), short(V2_UDP6, 35, 36)),
        (
            v2(0x21, V2_UNIX_STREAM, &[0; 108]),
            short(V2_UNIX_STREAM, 108, 216),
        ),
        (too_long, TooLong { len: 16 + 4081 }),
        (max_len, TooLong { len: 16 + 65535 }),
    ];
    for (input, want) in cases {
        assert_eq!(parse(input), Err(want.clone()), "{input:02x?}");
    }
}

#[test]
fn v2_refuses_early() {
    // Bad bytes are refused when they arrive, before the block does.
    let header = v2(0x21, V2_TCP4, &TCP4_BLOCK);
    assert_eq!(parse(&header[..12]), Ok(None));
    assert_eq!(
        parse(&[0x0d, 0x0a, 0x0d, 0x0a, 0x01]),
        Err(ProxyError::NotProxy)
    );
    let mut bad = header.clone();
    bad[12] = 0x11;
    assert_eq!(parse(&bad[..13]), Err(ProxyError::V2Version(1)));
    bad = header.clone();
    bad[13] = 0x99;
    assert_eq!(parse(&bad[..14]), Err(ProxyError::V2Family(0x99)));
    bad = header.clone();
    bad[15] = 4;
    assert!(matches!(
        parse(&bad[..16]),
        Err(ProxyError::V2ShortAddress { .. })
    ));
}

/// xorshift64 (Marsaglia 2003): deterministic bytes without a
/// dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Checks what must hold for any input: no panic, `len` within the
/// input and the bound, a parsed header's prefixes all wait, and an
/// error stays an error however many bytes follow. Returns which of
/// the three outcomes it was (parsed, waiting, refused).
fn check(input: &[u8]) -> usize {
    match parse(input) {
        Ok(Some(h)) => {
            assert!(h.len <= input.len() && h.len <= MAX_HEADER_BYTES);
            assert_eq!(parse(&input[..h.len]), Ok(Some(h)));
            prefixes_wait(&input[..h.len]);
            0
        }
        Ok(None) => {
            assert!(input.len() < MAX_HEADER_BYTES);
            1
        }
        Err(e) => {
            let mut longer = input.to_vec();
            longer.extend_from_slice(b"\r\n 1.2.3.4");
            assert_eq!(parse(&longer), Err(e));
            2
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let seeds: Vec<Vec<u8>> = vec![
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /".to_vec(),
        b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n".to_vec(),
        b"PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n".to_vec(),
        v2(0x21, V2_TCP4, &TCP4_BLOCK),
        v2(0x21, V2_TCP6, &tcp6_block()),
        v2(0x20, V2_UNSPEC, b""),
    ];
    let alphabet = b"PROXY TCP46UNKOW0123456789.:abcdef\r\n\0QUIT\x11\x21 ";
    let mut outcomes = [0usize; 3];
    for round in 0..6000 {
        let input: Vec<u8> = match round % 3 {
            // Uniform random bytes, a random length.
            0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            // A valid header with a few bytes changed and cut anywhere.
            1 => {
                let mut v = seeds[rng.below(seeds.len())].clone();
                for _ in 0..=rng.below(3) {
                    let i = rng.below(v.len());
                    v[i] = rng.next() as u8;
                }
                v.truncate(rng.below(v.len() + 1));
                v
            }
            // A valid start, then bytes from the protocol's alphabet.
            _ => {
                let seed = &seeds[rng.below(seeds.len())];
                let mut v = seed[..rng.below(seed.len() + 1)].to_vec();
                for _ in 0..rng.below(120) {
                    v.push(alphabet[rng.below(alphabet.len())]);
                }
                v
            }
        };
        outcomes[check(&input)] += 1;
    }
    // The mutated inputs must reach every outcome, or the loop tests
    // little beyond the first byte.
    assert!(outcomes.iter().all(|&n| n > 100), "{outcomes:?}");
}
