//! One side's connection as the relays and the pair see it: the socket,
//! and the TLS session over it if there is one. This is the I/O boundary:
//! `WouldBlock` stops being an error here and becomes [`Got::Blocked`] or
//! [`Put::Blocked`], and `EINTR` is retried, so no handler above matches
//! on error kinds.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

use super::tls::Tls;

/// What a read gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Got {
    /// This many bytes (never 0).
    Bytes(usize),
    /// The peer's EOF (`close_notify`, or FIN, under TLS).
    Eof,
    /// Nothing to read now: the next arrival raises an event.
    Blocked,
}

/// What a write took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// This many bytes (0 only for an empty write).
    Bytes(usize),
    /// The socket (or the TLS session's record queue) is full: wait until
    /// it is writable.
    Blocked,
}

/// One side's connection, borrowed for a turn.
#[derive(Debug)]
pub struct Conn<'a> {
    pub tcp: &'a TcpStream,
    pub tls: Option<&'a mut Tls>,
}

impl<'a> Conn<'a> {
    pub fn new(tcp: &'a TcpStream, tls: &'a mut Option<Box<Tls>>) -> Conn<'a> {
        Conn {
            tcp,
            tls: tls.as_deref_mut(),
        }
    }

    /// The same connection, for a call that takes a `Conn` by value.
    pub fn reborrow(&mut self) -> Conn<'_> {
        Conn {
            tcp: self.tcp,
            tls: self.tls.as_deref_mut(),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The peer's EOF waits inside the TLS session: unlike a socket's, it
    /// raises no event, so a short read must not be taken as "drained".
    pub fn peer_ended(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.peer_ended())
    }

    /// Reads plaintext either way.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<Got> {
        let read = match &mut self.tls {
            Some(tls) => tls.read(self.tcp, buf),
            None => read(self.tcp, buf),
        };
        match read {
            Ok(0) if !buf.is_empty() => Ok(Got::Eof),
            Ok(n) => Ok(Got::Bytes(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Got::Blocked),
            Err(e) => Err(e),
        }
    }

    /// Looks at the plaintext ahead without taking it: under TLS, what one
    /// record gave (the session reads the socket first if it holds none).
    pub fn peek(&mut self, buf: &mut [u8]) -> io::Result<Got> {
        match &mut self.tls {
            None => peek(self.tcp, buf),
            Some(tls) => match tls.peek(self.tcp, buf) {
                Ok(0) => Ok(Got::Eof),
                Ok(n) => Ok(Got::Bytes(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Got::Blocked),
                Err(e) => Err(e),
            },
        }
    }

    /// Writes plaintext either way.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<Put> {
        let written = match &mut self.tls {
            Some(tls) => tls.write(self.tcp, buf),
            None => write(self.tcp, buf),
        };
        match written {
            Ok(n) => Ok(Put::Bytes(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Put::Blocked),
            Err(e) => Err(e),
        }
    }

    /// Writes all of `buf` unless the socket fills, telling the kernel more
    /// follows at once (`MSG_MORE`, as `TCP_CORK` would): a response head
    /// and the file after it then leave in one segment instead of two.
    /// Under TLS a plain write: the records go out when flushed anyway.
    pub fn write_all_more(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        if self.tls.is_some() {
            return self.write_all(buf);
        }
        let len = buf.len();
        let socket = socket2::SockRef::from(self.tcp);
        while !buf.is_empty() {
            match socket.send_with_flags(buf, libc::MSG_MORE) {
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(len - buf.len())
    }

    /// Writes all of `buf` unless the socket fills: how much it took.
    pub fn write_all(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let len = buf.len();
        while !buf.is_empty() {
            match self.write(buf)? {
                Put::Bytes(n) => buf = &buf[n..],
                Put::Blocked => break,
            }
        }
        Ok(len - buf.len())
    }

    /// Passes EOF on: FIN, after `close_notify` under TLS.
    pub fn shutdown_write(&mut self) {
        match &mut self.tls {
            Some(tls) => tls.shutdown_write(self.tcp),
            None => {
                let _ = self.tcp.shutdown(Shutdown::Write);
            }
        }
    }
}

/// Looks at what the socket holds without taking it (no TLS: the PROXY
/// protocol header, and the first byte of what should be a TLS record).
pub fn peek(src: &TcpStream, buf: &mut [u8]) -> io::Result<Got> {
    loop {
        return match src.peek(buf) {
            Ok(0) => Ok(Got::Eof),
            Ok(n) => Ok(Got::Bytes(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Got::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

/// `read`, retried on EINTR.
pub fn read(mut src: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match src.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// `write`, retried on EINTR.
pub fn write(mut dst: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    loop {
        match dst.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
