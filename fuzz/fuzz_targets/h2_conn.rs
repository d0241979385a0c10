//! Fuzz target: one HTTP/2 server connection (`h2::conn::Conn`) fed any
//! bytes after the client preface, in the pieces the input's first octet
//! picks, with the caller's side played as the worker plays it: every
//! DATA octet released, answers sent on the streams that asked, the
//! output "flushed" between reads.
//!
//! Besides panics it checks that the connection never reports more open
//! streams than `SETTINGS_MAX_CONCURRENT_STREAMS`, that what it writes is
//! whole frames, and that once closed it takes nothing more.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use wsproxy_fast::h2::conn::{Config, Conn, Event, PREFACE};
use wsproxy_fast::h2::frame::{decode, Decoded};
use wsproxy_fast::h2::hpack::Field;
use wsproxy_fast::h2::settings::MAX_MAX_FRAME_SIZE;

fuzz_target!(|input: &[u8]| {
    let Some((&pick, body)) = input.split_first() else {
        return;
    };
    let piece = usize::from(pick % 64) + 1;
    let config = Config {
        max_concurrent_streams: 4,
        ..Config::default()
    };
    let mut conn = Conn::new(config);
    let mut now = Instant::now();
    let mut out = Vec::new();
    conn.start(now, &mut out);
    let mut wire = PREFACE.to_vec();
    wire.extend_from_slice(body);
    let mut pending: Vec<u8> = Vec::new();
    for chunk in wire.chunks(piece) {
        pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        let taken = match conn.receive(&pending, now, &mut out, &mut events) {
            Ok(n) => n,
            Err(_) => {
                assert!(conn.is_closed());
                let mut more = Vec::new();
                assert_eq!(conn.receive(b"\0\0\0\x04\0\0\0\0\0", now, &mut out, &mut more), Ok(0));
                break;
            }
        };
        let mut answers = Vec::new();
        for event in &events {
            match event {
                Event::Data { stream, data, .. } => answers.push((*stream, data.len() as u32, false)),
                Event::Request { stream, .. } | Event::TooLarge { stream } => {
                    answers.push((*stream, 0, true))
                }
                _ => {}
            }
        }
        drop(events);
        for (stream, n, answer) in answers {
            if n > 0 {
                conn.release(stream, n, &mut out);
            }
            if answer {
                conn.send_headers(stream, [Field::new(b":status", b"200")], false, &mut out);
                conn.send_data(stream, b"hello", true, now, &mut out);
            }
        }
        assert!(conn.active_streams() <= 4, "{} streams open", conn.active_streams());
        pending.drain(..taken);
        conn.flushed();
        now += Duration::from_millis(7);
    }
    let mut rest = &out[..];
    while !rest.is_empty() {
        match decode(rest, MAX_MAX_FRAME_SIZE) {
            Ok(Decoded::Frame { len, .. }) | Ok(Decoded::StreamError { len, .. }) => rest = &rest[len..],
            other => panic!("our output is not whole frames: {other:?}"),
        }
    }
});
