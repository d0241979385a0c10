//! The HTTP/1.1 side of the comparison: a group of WebSockets, each its own
//! TLS connection with an RFC 6455 opening handshake, driven in rounds.

use std::io::{Cursor, Read, Write};

use wsbench::ws::{
    check_upgrade_response, close_payload, encode_frame, random_key, random_mask, read_frame,
    read_head, upgrade_request, Head, Opcode,
};

use crate::tls::{Endpoint, Tls};

/// One WebSocket: bytes that came with the 101, then the TLS stream.
type Socket = std::io::Chain<Cursor<Vec<u8>>, Tls>;

/// A lane's HTTP/1.1 WebSockets.
pub struct Group {
    sockets: Vec<Socket>,
}

impl Group {
    /// Opens `count` WebSockets, one after the other.
    pub fn open(endpoint: &Endpoint, count: usize) -> Result<Self, String> {
        let mut sockets = Vec::with_capacity(count);
        for _ in 0..count {
            let mut tls = endpoint.connect()?;
            let key = random_key();
            let request = upgrade_request(&endpoint.authority, &endpoint.path, &key, &[]);
            tls.write_all(&request)
                .map_err(|err| format!("upgrade request: {err}"))?;
            let (head, rest) =
                read_head(&mut tls).map_err(|err| format!("upgrade answer: {err}"))?;
            let parsed = Head::parse(&head).map_err(|err| format!("upgrade answer: {err}"))?;
            check_upgrade_response(&parsed, &key)
                .map_err(|err| format!("upgrade answer: {err}"))?;
            sockets.push(Cursor::new(rest).chain(tls));
        }
        Ok(Self { sockets })
    }

    /// Sends `payloads[i]` on WebSocket `i`, then reads every echo and
    /// checks it.
    pub fn echo_round(&mut self, payloads: &[Vec<u8>]) -> Result<(), String> {
        let mut out = Vec::new();
        for (socket, payload) in self.sockets.iter_mut().zip(payloads.iter()) {
            out.clear();
            encode_frame(&mut out, true, Opcode::Binary, payload, Some(random_mask()));
            socket
                .get_mut()
                .1
                .write_all(&out)
                .map_err(|err| format!("send: {err}"))?;
        }
        for (socket, payload) in self.sockets.iter_mut().zip(payloads.iter()) {
            let frame = read_frame(socket).map_err(|err| format!("echo: {err}"))?;
            if frame.opcode != Opcode::Binary || frame.payload != *payload {
                return Err(format!(
                    "echo: a {:?} frame of {} bytes is not the {} bytes sent",
                    frame.opcode,
                    frame.payload.len(),
                    payload.len()
                ));
            }
        }
        Ok(())
    }

    /// Closes every WebSocket with a Close handshake.
    pub fn close_all(&mut self) -> Result<(), String> {
        let mut out = Vec::new();
        for socket in &mut self.sockets {
            out.clear();
            encode_frame(
                &mut out,
                true,
                Opcode::Close,
                &close_payload(1000, ""),
                Some(random_mask()),
            );
            socket
                .get_mut()
                .1
                .write_all(&out)
                .map_err(|err| format!("close: {err}"))?;
        }
        for socket in &mut self.sockets {
            loop {
                let frame = read_frame(socket).map_err(|err| format!("close: {err}"))?;
                if frame.opcode == Opcode::Close {
                    break;
                }
            }
        }
        self.sockets.clear();
        Ok(())
    }
}
