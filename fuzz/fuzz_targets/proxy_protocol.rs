//! Fuzz target: `proxy_protocol::parse` on any bytes, and on every prefix
//! of them, as a worker calls it while the header arrives.
//!
//! Besides panics it checks the parser's contract: an accepted header is
//! no longer than the input or `MAX_HEADER_BYTES` and parses the same from
//! its own bytes; "read more" is only said below `MAX_HEADER_BYTES`; and a
//! prefix's answer never changes as more bytes arrive (once refused, always
//! refused with the same error; once accepted, the same header).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproxy_fast::proxy_protocol::{parse, Header, ProxyError, MAX_HEADER_BYTES};

fuzz_target!(|input: &[u8]| {
    let whole = parse(input);
    if let Ok(Some(header)) = &whole {
        check_header(header, input);
    }
    if let Ok(None) = whole {
        assert!(
            input.len() < MAX_HEADER_BYTES,
            "read more at {} bytes",
            input.len()
        );
    }
    // Every prefix, as the bytes arrive one at a time.
    let mut settled: Option<Result<Header, ProxyError>> = None;
    for end in 0..=input.len() {
        let now = parse(&input[..end]);
        match (&settled, now) {
            (None, Ok(None)) => {}
            (None, Ok(Some(header))) => {
                assert_eq!(header.len, end, "accepted before its last byte arrived");
                settled = Some(Ok(header));
            }
            (None, Err(e)) => settled = Some(Err(e)),
            (Some(before), now) => {
                let now = now.map(|h| h.expect("an accepted header went back to read more"));
                assert_eq!(&now, before, "the answer changed at {end} bytes");
            }
        }
    }
    let settled = settled.map(|r| r.map(Some));
    assert_eq!(settled.unwrap_or(Ok(None)), whole);
});

fn check_header(header: &Header, input: &[u8]) {
    assert!(
        header.len <= input.len(),
        "{header:?} longer than the input"
    );
    assert!(header.len <= MAX_HEADER_BYTES, "{header:?} over the limit");
    assert!(header.version == 1 || header.version == 2);
    assert_eq!(parse(&input[..header.len]), Ok(Some(*header)));
}
