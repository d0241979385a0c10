//! A TLS session over one side's socket, driven by the relays as if it were
//! the socket itself: [`Tls::read`] hands out plaintext, [`Tls::write`]
//! takes plaintext, and `WouldBlock` keeps its meaning.
//!
//! Two rules keep edge-triggered readiness honest:
//!
//! - **A short read means the socket said `WouldBlock` (or EOF).** A read
//!   keeps decrypting until the caller's buffer is full or the socket is
//!   empty, so the relays' "short read: drained, wait for the next event"
//!   holds; a full read may leave plaintext inside rustls, and the relays
//!   read again after a full read anyway.
//! - **Encrypted bytes wait inside rustls, bounded.** A write first flushes
//!   what earlier writes left; while any is left it answers `WouldBlock`,
//!   so the caller parks its bytes and stops reading its source
//!   (backpressure), exactly as on a full socket. At most one write's worth
//!   (the 32 KiB scratch buffer, as records) waits here. The owner keeps
//!   the socket watched for writing while [`Tls::wants_flush`] says so.
//!
//! Half-close: [`Tls::shutdown_write`] queues a `close_notify` and sends FIN
//! once it is flushed; a peer's `close_notify`, or a FIN without one (many
//! clients skip it), reads as EOF.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// Where the write side stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteSide {
    Open,
    /// `close_notify` queued: FIN once every record is flushed.
    Closing,
    Shut,
}

/// One side's TLS session.
pub struct Tls {
    conn: Connection,
    write_side: WriteSide,
    /// The peer's end (`close_notify` or FIN) is inside the session: the
    /// socket will raise no event for it, so the next read must be made.
    peer_ended: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("handshaking", &self.conn.is_handshaking())
            .field("write_side", &self.write_side)
            .finish_non_exhaustive()
    }
}

/// The socket as rustls reads it, noting whether a read came back short:
/// the socket held less than rustls had room for, so it is empty now.
struct Socket<'a> {
    tcp: &'a TcpStream,
    short: bool,
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (&mut &*self.tcp).read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

/// A TLS failure as an `io::Error` whose message is rustls' reason.
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Tls {
    /// The server end of a client's connection.
    pub fn server(config: Arc<ServerConfig>) -> Result<Tls, rustls::Error> {
        Ok(Tls::new(ServerConnection::new(config)?.into()))
    }

    /// The client end of a connection to an upstream server `name`.
    pub fn client(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Tls, rustls::Error> {
        Ok(Tls::new(ClientConnection::new(config, name)?.into()))
    }

    fn new(conn: Connection) -> Tls {
        Tls {
            conn,
            write_side: WriteSide::Open,
            peer_ended: false,
        }
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The peer's EOF has been received, though maybe not yet read.
    pub fn peer_ended(&self) -> bool {
        self.peer_ended
    }

    /// Encrypted bytes wait for the socket to take them.
    pub fn wants_flush(&self) -> bool {
        self.conn.wants_write() || self.write_side == WriteSide::Closing
    }

    /// The application protocol agreed by ALPN, once the handshake chose one.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The name the client asked for (SNI), on a server session.
    pub fn server_name(&self) -> Option<&str> {
        match &self.conn {
            Connection::Server(server) => server.server_name(),
            Connection::Client(_) => None,
        }
    }

    /// How the handshake went: resumed or full, version, suite; for logs
    /// and tests.
    pub fn describe(&self) -> String {
        let version = self
            .conn
            .protocol_version()
            .map_or("-".to_string(), |v| format!("{v:?}"));
        let suite = self
            .conn
            .negotiated_cipher_suite()
            .map_or("-".to_string(), |s| format!("{:?}", s.suite()));
        let kind = self
            .conn
            .handshake_kind()
            .map_or("-".to_string(), |k| format!("{k:?}"));
        format!("{version} {suite} {kind}")
    }

    /// Reads plaintext into `buf`: `Ok(0)` at the peer's EOF, `WouldBlock`
    /// when the socket is empty and no plaintext is held. Handshake and
    /// other records the session must answer are flushed on the way.
    pub fn read(&mut self, tcp: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        // A socket read came back short: the socket is empty, so another
        // would only say WouldBlock (one system call saved per message).
        let mut emptied = false;
        loop {
            match self.conn.reader().read(&mut buf[filled..]) {
                // `close_notify` received (or `buf` is empty).
                Ok(0) => {
                    self.peer_ended |= !buf.is_empty();
                    return Ok(filled);
                }
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        return Ok(filled);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket ended without `close_notify`: many peers just
                // close, so this is an EOF like any other.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.peer_ended = true;
                    return Ok(filled);
                }
                Err(e) => return Err(e),
            }
            if emptied {
                return match filled {
                    0 => Err(io::ErrorKind::WouldBlock.into()),
                    _ => Ok(filled),
                };
            }
            match self.receive(tcp) {
                Ok(short) => emptied = short,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
                Err(e) => return Err(e),
            }
        }
    }

    /// Copies the plaintext ahead into `buf` without taking it: as much as
    /// the first record held, `Ok(0)` at the peer's end, `WouldBlock` when
    /// there is none.
    pub fn peek(&mut self, tcp: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::BufRead;
        let mut emptied = false;
        loop {
            let mut reader = self.conn.reader();
            match reader.fill_buf() {
                Ok([]) => {
                    self.peer_ended = true;
                    return Ok(0);
                }
                Ok(ahead) => {
                    let n = ahead.len().min(buf.len());
                    buf[..n].copy_from_slice(&ahead[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.peer_ended = true;
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
            if emptied {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            emptied = self.receive(tcp)?;
        }
    }

    /// Reads records from the socket and processes them, answering what
    /// the session must answer (handshake, alerts). `WouldBlock`: the
    /// socket is empty; `Ok(true)`: it is empty now, the read took less
    /// than rustls had room for. After the socket's EOF the reader reports
    /// it.
    fn receive(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        let mut socket = Socket { tcp, short: false };
        let got = loop {
            match self.conn.read_tls(&mut socket) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let got = got?;
        self.peer_ended |= got == 0;
        if got == 0 && self.conn.is_handshaking() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed during the TLS handshake",
            ));
        }
        if let Err(e) = self.conn.process_new_packets() {
            // rustls queued an alert saying why: send it before giving up.
            let _ = self.flush(tcp);
            return Err(tls_error(e));
        }
        match self.flush(tcp) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(socket.short),
        }
    }

    /// Advances the handshake: `Ok(true)` once it is done, `Ok(false)`
    /// while it waits for the peer or the socket.
    pub fn handshake(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        loop {
            match self.flush(tcp) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
            if !self.conn.is_handshaking() {
                return Ok(true);
            }
            match self.receive(tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Encrypts some of `buf`: how many bytes were taken, or `WouldBlock`
    /// while records from earlier writes still wait for the socket.
    pub fn write(&mut self, tcp: &TcpStream, buf: &[u8]) -> io::Result<usize> {
        self.flush(tcp)?;
        let n = self.conn.writer().write(buf)?;
        match self.flush(tcp) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(n),
        }
    }

    /// Writes waiting records to the socket: `Ok` once none is left (and
    /// FIN sent after a `close_notify`), `WouldBlock` while the socket is
    /// full.
    pub fn flush(&mut self, tcp: &TcpStream) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut &*tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.write_side == WriteSide::Closing {
            self.write_side = WriteSide::Shut;
            tcp.shutdown(Shutdown::Write)?;
        }
        Ok(())
    }

    /// Ends the write side: `close_notify`, then FIN once flushed. A peer
    /// already gone shows its error on the next read, so failures here
    /// need no handling.
    pub fn shutdown_write(&mut self, tcp: &TcpStream) {
        if self.write_side != WriteSide::Open {
            return;
        }
        self.conn.send_close_notify();
        self.write_side = WriteSide::Closing;
        let _ = self.flush(tcp);
    }
}
