//! One side's connection as the relays and the pair see it: the socket,
//! and the TLS session over it if there is one. This is the I/O boundary:
//! `WouldBlock` stops being an error here and becomes [`Got::Blocked`] or
//! [`Put::Blocked`], and `EINTR` is retried, so no handler above matches
//! on error kinds.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

use super::stream::StreamIo;
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

/// One side's connection, borrowed for a turn: a socket (under TLS or
/// not), or an HTTP/2 stream.
#[derive(Debug)]
pub enum Conn<'a> {
    Socket {
        tcp: &'a TcpStream,
        tls: Option<&'a mut Tls>,
    },
    Stream(&'a mut StreamIo),
}

impl<'a> Conn<'a> {
    pub fn new(tcp: &'a TcpStream, tls: &'a mut Option<Box<Tls>>) -> Conn<'a> {
        Conn::Socket {
            tcp,
            tls: tls.as_deref_mut(),
        }
    }

    /// The same connection, for a call that takes a `Conn` by value.
    pub fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Socket { tcp, tls } => Conn::Socket {
                tcp,
                tls: tls.as_deref_mut(),
            },
            Conn::Stream(s) => Conn::Stream(s),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Socket { tls: Some(_), .. })
    }

    /// The socket, when bytes can go to and from it without passing
    /// through user space (no TLS, no HTTP/2 framing): what splice needs.
    pub fn plain_socket(&self) -> Option<&'a TcpStream> {
        match self {
            Conn::Socket { tcp, tls: None } => Some(tcp),
            _ => None,
        }
    }

    /// The peer's EOF waits inside the TLS session or the stream: unlike a
    /// socket's, it raises no event, so a short read must not be taken as
    /// "drained".
    pub fn peer_ended(&self) -> bool {
        match self {
            Conn::Socket { tls, .. } => tls.as_ref().is_some_and(|t| t.peer_ended()),
            // Its END_STREAM (or reset) came with the DATA just read, and
            // no event will say so again.
            Conn::Stream(s) => s.inbound_ended || s.reset,
        }
    }

    /// Reads plaintext either way.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<Got> {
        let read = match self {
            Conn::Socket {
                tcp,
                tls: Some(tls),
            } => tls.read(tcp, buf),
            Conn::Socket { tcp, tls: None } => read(tcp, buf),
            Conn::Stream(s) => s.read(buf),
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
        let peeked = match self {
            Conn::Socket { tcp, tls: None } => return peek(tcp, buf),
            Conn::Socket {
                tcp,
                tls: Some(tls),
            } => tls.peek(tcp, buf),
            Conn::Stream(s) => s.peek(buf),
        };
        match peeked {
            Ok(0) => Ok(Got::Eof),
            Ok(n) => Ok(Got::Bytes(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Got::Blocked),
            Err(e) => Err(e),
        }
    }

    /// Writes plaintext either way.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<Put> {
        let written = match self {
            Conn::Socket {
                tcp,
                tls: Some(tls),
            } => tls.write(tcp, buf),
            Conn::Socket { tcp, tls: None } => write(tcp, buf),
            Conn::Stream(s) => s.write(buf),
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
    /// Under TLS or on a stream a plain write: the records or frames go out
    /// when flushed anyway.
    pub fn write_all_more(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let Some(tcp) = self.plain_socket() else {
            return self.write_all(buf);
        };
        let len = buf.len();
        let socket = socket2::SockRef::from(tcp);
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

    /// Passes EOF on: FIN, after `close_notify` under TLS; END_STREAM on
    /// a stream.
    pub fn shutdown_write(&mut self) {
        match self {
            Conn::Socket {
                tcp,
                tls: Some(tls),
            } => tls.shutdown_write(tcp),
            Conn::Socket { tcp, tls: None } => {
                let _ = tcp.shutdown(Shutdown::Write);
            }
            Conn::Stream(s) => s.shutdown_write(),
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
