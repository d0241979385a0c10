//! `wsbench send`: one text message through a WebSocket endpoint and back,
//! for demos and smoke tests. Uses the library's blocking client.

use std::io;

use wsbench::ws::{Client, Opcode};

use crate::cli::SendArgs;

/// RFC 6455 §7.4.1: 1000 "indicates a normal closure".
const CLOSE_NORMAL: u16 = 1000;

/// Sends `args.message` and returns the echoed text.
pub fn run(args: &SendArgs) -> io::Result<String> {
    let target = &args.url;
    let mut client = Client::connect_with(target.addr, &target.path, &[("Host", &target.host)])?;
    client.stream().set_read_timeout(Some(args.timeout))?;
    client.stream().set_write_timeout(Some(args.timeout))?;
    client.send_text(&args.message)?;
    let mut echoed = Vec::new();
    loop {
        let frame = client.recv().map_err(|err| match err.kind() {
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
            Opcode::Ping => client.send(Opcode::Pong, &frame.payload)?,
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
    let _ = client.close(CLOSE_NORMAL);
    String::from_utf8(echoed)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the echo is not valid UTF-8"))
}
