//! Upstreams that speak WebSocket and report what they receive, and the
//! client's side of a closing handshake.

use std::io::{Cursor, Read, Write};
use std::sync::mpsc;
use std::sync::Mutex;

use super::{accept_upgrade, RawUpstream, IO_TIMEOUT};
use wsbench::ws::{self, Frame, Opcode};

/// What a WebSocket upstream saw on one tunnel.
#[derive(Debug)]
pub enum Seen {
    Frame(Frame),
    /// The proxy closed the connection (EOF or reset).
    End,
}

/// An upstream that speaks WebSocket: answers 101, reports every frame it
/// receives, answers a Close with a Close and then closes, as servers do.
/// With `greeting`, it sends that frame right after the 101.
pub fn ws_upstream(greeting: Option<Vec<u8>>) -> (RawUpstream, mpsc::Receiver<Seen>) {
    ws_upstream_with(greeting, false)
}

/// [`ws_upstream`] that also echoes every data frame as it came (same
/// opcode, same FIN, so fragments stay fragments), unmasked.
pub fn ws_echo_upstream() -> (RawUpstream, mpsc::Receiver<Seen>) {
    ws_upstream_with(None, true)
}

fn ws_upstream_with(greeting: Option<Vec<u8>>, echo: bool) -> (RawUpstream, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let upstream = RawUpstream::start(move |mut stream| {
        let tx = tx.lock().unwrap().clone();
        let Ok((_, rest)) = accept_upgrade(&mut stream) else {
            return;
        };
        if let Some(frame) = &greeting {
            stream.write_all(frame).unwrap();
        }
        let mut writer = stream.try_clone().unwrap();
        let mut reader = Cursor::new(rest).chain(stream);
        while let Ok(frame) = ws::read_frame(&mut reader) {
            let close = frame.opcode == Opcode::Close;
            let code = frame.close_code();
            if echo && !frame.opcode.is_control() {
                let mut out = Vec::new();
                ws::encode_frame(&mut out, frame.fin, frame.opcode, &frame.payload, None);
                if writer.write_all(&out).is_err() {
                    break;
                }
            }
            let _ = tx.send(Seen::Frame(frame));
            if close {
                let mut out = Vec::new();
                let reason = ws::close_payload(code.unwrap_or(1000), "");
                ws::encode_frame(&mut out, true, Opcode::Close, &reason, None);
                let _ = writer.write_all(&out);
                break;
            }
        }
        let _ = tx.send(Seen::End);
    });
    (upstream, rx)
}

/// The next frame the upstream saw, skipping none.
pub fn next_frame(rx: &mpsc::Receiver<Seen>) -> Frame {
    match rx
        .recv_timeout(IO_TIMEOUT)
        .expect("the upstream saw something")
    {
        Seen::Frame(frame) => frame,
        Seen::End => panic!("the upstream saw the end before a frame"),
    }
}

/// A client's Close frame (masked) with `code`.
pub fn masked_close(code: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let payload = ws::close_payload(code, "");
    ws::encode_frame(
        &mut out,
        true,
        Opcode::Close,
        &payload,
        Some(ws::random_mask()),
    );
    out
}

/// Answers a Close the way clients do, then reads to the proxy's FIN.
pub fn answer_close(client: &mut ws::Client) {
    client.stream().write_all(&masked_close(1001)).unwrap();
    let mut rest = Vec::new();
    client
        .stream()
        .read_to_end(&mut rest)
        .expect("the proxy ends the stream with FIN, not a reset");
    assert!(rest.is_empty(), "nothing after the Close: {rest:?}");
}
