//! `wsbench send`: one text message through a WebSocket endpoint and back,
//! for demos and smoke tests: blocking, over TCP (ws://) or rustls (wss://).

use std::io::{self, Cursor, Read, Write};
use std::net::TcpStream;

use rustls::StreamOwned;
use wsbench::ws::{
    check_upgrade_response, close_payload, encode_frame, random_key, random_mask, read_frame,
    read_head, upgrade_request, Frame, HandshakeError, Head, Opcode,
};

use crate::cli::SendArgs;
use crate::tls::TlsClient;

/// RFC 6455 §7.4.1: 1000 "indicates a normal closure".
const CLOSE_NORMAL: u16 = 1000;

/// Sends `args.message` and returns the echoed text.
pub fn run(args: &SendArgs) -> io::Result<String> {
    let target = &args.url;
    let tls = TlsClient::from_args(target, &args.tls)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))?;
    let stream = TcpStream::connect_timeout(&target.addr, args.timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(args.timeout))?;
    stream.set_write_timeout(Some(args.timeout))?;
    match tls {
        None => exchange(stream, args),
        Some(client) => {
            let conn = client.connect().map_err(io::Error::other)?;
            exchange(StreamOwned::new(conn, stream), args)
        }
    }
}

/// The upgrade, the message, its echo and the closing handshake on `stream`.
fn exchange(mut stream: impl Read + Write, args: &SendArgs) -> io::Result<String> {
    let target = &args.url;
    let key = random_key();
    stream.write_all(&upgrade_request(&target.host, &target.path, &key, &[]))?;
    let (head, early) = read_head(&mut stream)?;
    let head = Head::parse(&head).map_err(HandshakeError::Head)?;
    check_upgrade_response(&head, &key)?;
    let mut peer = Peer {
        early: Cursor::new(early),
        stream,
    };
    peer.send(Opcode::Text, args.message.as_bytes())?;
    let mut echoed = Vec::new();
    loop {
        let frame = peer.recv().map_err(|err| match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no echo within {:.1} s", args.timeout.as_secs_f64()),
            ),
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection without an echo",
            ),
            _ => err,
        })?;
        match frame.opcode {
            Opcode::Ping => peer.send(Opcode::Pong, &frame.payload)?,
            Opcode::Pong => {}
            Opcode::Text | Opcode::Continuation => {
                echoed.extend_from_slice(&frame.payload);
                if frame.fin {
                    break;
                }
            }
            Opcode::Close => {
                return Err(io::Error::other(format!(
                    "the server sent Close (code {:?}) instead of an echo",
                    frame.close_code()
                )));
            }
            Opcode::Binary => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the echo came back as a Binary frame, expected Text",
                ));
            }
        }
    }
    // The echo is what was asked for; a sloppy closing handshake does not undo it.
    let _ = peer.close();
    String::from_utf8(echoed)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the echo is not valid UTF-8"))
}

/// An upgraded connection: bytes that came with the 101, then the stream.
struct Peer<S> {
    early: Cursor<Vec<u8>>,
    stream: S,
}

impl<S: Read + Write> Peer<S> {
    /// One final, masked frame (RFC 6455 §5.3: clients mask every frame).
    fn send(&mut self, opcode: Opcode, payload: &[u8]) -> io::Result<()> {
        let mut wire = Vec::with_capacity(payload.len() + 14);
        encode_frame(&mut wire, true, opcode, payload, Some(random_mask()));
        self.stream.write_all(&wire)?;
        self.stream.flush()
    }

    fn recv(&mut self) -> io::Result<Frame> {
        read_frame(&mut Read::chain(&mut self.early, &mut self.stream))
    }

    /// Sends Close and waits for the server's, skipping a few other frames.
    fn close(&mut self) -> io::Result<()> {
        self.send(Opcode::Close, &close_payload(CLOSE_NORMAL, ""))?;
        for _ in 0..16 {
            if self.recv()?.opcode == Opcode::Close {
                break;
            }
        }
        Ok(())
    }
}
