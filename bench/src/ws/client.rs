//! A blocking WebSocket client for tests: one `std::net::TcpStream`, a
//! verified opening handshake, masked sends and whole-frame receives.
//!
//! Every socket operation is bounded by [`DEFAULT_IO_TIMEOUT`] (changeable
//! through [`Client::stream`]), so a peer that stops answering fails a test
//! instead of hanging it.

use std::io::{self, Cursor, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::frame::{close_payload, encode_frame, read_frame, Frame, Opcode};
use super::handshake::{
    check_upgrade_response, random_key, random_mask, upgrade_request, HandshakeError,
};
use super::http::{read_head, Head};

/// Connect, read and write timeout applied to every client socket.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames a [`Client::close`] skips while waiting for the peer's Close,
/// so a peer that keeps streaming cannot keep it waiting forever.
const MAX_FRAMES_BEFORE_CLOSE: usize = 1024;

/// A connected WebSocket client whose opening handshake succeeded.
#[derive(Debug)]
pub struct Client {
    /// Bytes that arrived after the response head, then the socket.
    reader: io::Chain<Cursor<Vec<u8>>, TcpStream>,
    head: String,
}

impl Client {
    /// Connects to `addr` and upgrades `path`, with `Host` set to `addr`.
    pub fn connect(addr: SocketAddr, path: &str) -> io::Result<Client> {
        Client::connect_with(addr, path, &[])
    }

    /// Connects to `addr` and upgrades `path`, adding `extra_headers` to the
    /// request. A `Host` among them replaces the default `Host: addr`.
    ///
    /// A refusal (any status but 101) or a bad `Sec-WebSocket-Accept` is an
    /// `io::Error` whose message starts with the server's status line; the
    /// inner error is a [`HandshakeError`] for callers that downcast.
    pub fn connect_with(
        addr: SocketAddr,
        path: &str,
        extra_headers: &[(&str, &str)],
    ) -> io::Result<Client> {
        let default_host = addr.to_string();
        let host = extra_headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("host"))
            .map_or(default_host.as_str(), |(_, value)| value);
        let extras: Vec<(&str, &str)> = extra_headers
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
            .copied()
            .collect();

        let mut stream = TcpStream::connect_timeout(&addr, DEFAULT_IO_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(DEFAULT_IO_TIMEOUT))?;
        stream.set_write_timeout(Some(DEFAULT_IO_TIMEOUT))?;

        let key = random_key();
        stream.write_all(&upgrade_request(host, path, &key, &extras))?;
        let (head_bytes, rest) = read_head(&mut stream)?;
        let head = Head::parse(&head_bytes).map_err(HandshakeError::Head)?;
        check_upgrade_response(&head, &key)?;
        let head = head.as_str().to_owned();
        Ok(Client {
            reader: Cursor::new(rest).chain(stream),
            head,
        })
    }

    /// Sends one final frame with a fresh masking key (RFC 6455 §5.3: a
    /// client MUST mask every frame it sends).
    pub fn send(&mut self, opcode: Opcode, payload: &[u8]) -> io::Result<()> {
        self.send_frame(true, opcode, payload)
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send(Opcode::Text, text.as_bytes())
    }

    /// Sends one frame, final or not, masked.
    pub fn send_frame(&mut self, fin: bool, opcode: Opcode, payload: &[u8]) -> io::Result<()> {
        let mut wire = Vec::with_capacity(payload.len() + 14);
        encode_frame(&mut wire, fin, opcode, payload, Some(random_mask()));
        self.stream().write_all(&wire)
    }

    /// Receives the next frame of any kind (pings are not answered here).
    pub fn recv(&mut self) -> io::Result<Frame> {
        read_frame(&mut self.reader)
    }

    /// Starts the closing handshake (RFC 6455 §5.5.1) with `code` and waits
    /// for the peer's Close, skipping other frames. Returns the peer's code,
    /// `None` if its Close had none or it closed the stream without one.
    /// The socket itself closes when the client is dropped.
    pub fn close(&mut self, code: u16) -> io::Result<Option<u16>> {
        self.send(Opcode::Close, &close_payload(code, ""))?;
        for _ in 0..MAX_FRAMES_BEFORE_CLOSE {
            match self.recv() {
                Ok(frame) if frame.opcode == Opcode::Close => return Ok(frame.close_code()),
                Ok(_) => continue,
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(err) => return Err(err),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no Close within {MAX_FRAMES_BEFORE_CLOSE} frames"),
        ))
    }

    /// The socket, for raw writes, shutdowns and timeouts. Bytes that arrived
    /// with the handshake and are not yet consumed by [`Client::recv`] are
    /// in [`Client::buffered`], not in the socket.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut().1
    }

    /// Received bytes not yet consumed by [`Client::recv`].
    pub fn buffered(&self) -> &[u8] {
        let cursor = self.reader.get_ref().0;
        let consumed = (cursor.position() as usize).min(cursor.get_ref().len());
        &cursor.get_ref()[consumed..]
    }

    /// The server's 101 response head, without its blank line.
    pub fn response_head(&self) -> &str {
        &self.head
    }
}
