//! One side of a pair: its socket, the TLS session over it if any, and the
//! interest registered for it with the poll.

use std::io;
use std::net::Shutdown;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::relay::stream::StreamIo;
use crate::relay::{Conn, Tls};

/// A client's or an upstream's connection: a socket, under TLS or not, or
/// a stream of a client's HTTP/2 connection (no socket of its own).
#[derive(Debug)]
pub(super) struct End {
    /// `None` only for a stream. (`Option` costs nothing here: a
    /// descriptor is never -1.)
    tcp: Option<TcpStream>,
    /// The TLS session over the socket, or the stream: one pointer for
    /// either keeps a pair small.
    ext: Option<Box<Ext>>,
    polled: Polled,
    /// Requests sent over this connection (an upstream's, kept between
    /// requests), saturating.
    pub(super) uses: u16,
    /// An upstream's: its answer said the connection stays open, so it may
    /// carry another request once the answer is through.
    pub(super) reusable: bool,
}

/// A TLS session is over a kilobyte, a stream under a hundred bytes: the
/// session is boxed again so that a stream allocates only its own size.
#[derive(Debug)]
enum Ext {
    Tls(Box<Tls>),
    Stream(StreamIo),
}

impl End {
    pub(super) fn new(tcp: TcpStream) -> End {
        End {
            tcp: Some(tcp),
            ext: None,
            polled: Polled::OUT,
            uses: 0,
            reusable: false,
        }
    }

    /// A client that is one stream of an HTTP/2 connection.
    pub(super) fn stream(io: StreamIo) -> End {
        End {
            tcp: None,
            ext: Some(Box::new(Ext::Stream(io))),
            polled: Polled::OUT,
            uses: 0,
            reusable: false,
        }
    }

    /// This side as the relays see it.
    pub(super) fn conn(&mut self) -> Conn<'_> {
        match (&self.tcp, self.ext.as_deref_mut()) {
            (_, Some(Ext::Stream(s))) => Conn::Stream(s),
            (Some(tcp), Some(Ext::Tls(tls))) => Conn::Socket {
                tcp,
                tls: Some(tls),
            },
            (Some(tcp), None) => Conn::Socket { tcp, tls: None },
            (None, _) => unreachable!("an end without a socket is a stream"),
        }
    }

    /// The socket, unless this is a stream.
    pub(super) fn tcp(&self) -> Option<&TcpStream> {
        self.tcp.as_ref()
    }

    /// The TLS session over the socket, if any.
    pub(super) fn tls(&self) -> Option<&Tls> {
        match self.ext.as_deref() {
            Some(Ext::Tls(tls)) => Some(tls),
            _ => None,
        }
    }

    pub(super) fn is_tls(&self) -> bool {
        self.tls().is_some()
    }

    /// Starts (or, `None`, drops) the TLS session over the socket.
    pub(super) fn set_tls(&mut self, session: Option<Tls>) {
        if self.tcp.is_some() {
            self.ext = session.map(|tls| Box::new(Ext::Tls(Box::new(tls))));
        }
    }

    /// The stream, if this end is one.
    pub(super) fn stream_io(&mut self) -> Option<&mut StreamIo> {
        match self.ext.as_deref_mut() {
            Some(Ext::Stream(s)) => Some(s),
            _ => None,
        }
    }

    pub(super) fn is_stream(&self) -> bool {
        self.tcp.is_none()
    }

    /// Bytes reach the peer without passing through user space (no TLS,
    /// no HTTP/2 framing): sendfile and splice can move them.
    pub(super) fn is_plain_socket(&self) -> bool {
        self.tcp.is_some() && self.ext.is_none()
    }

    /// The socket and its TLS session: an HTTP/2 connection takes them
    /// over.
    pub(super) fn into_socket(self) -> Option<(TcpStream, Option<Tls>)> {
        let tls = match self.ext.map(|e| *e) {
            Some(Ext::Tls(tls)) => Some(*tls),
            _ => None,
        };
        Some((self.tcp?, tls))
    }

    /// The stream, given back to its connection when the pair goes.
    pub(super) fn into_stream(self) -> Option<StreamIo> {
        match self.ext.map(|e| *e) {
            Some(Ext::Stream(s)) => Some(s),
            _ => None,
        }
    }

    /// TLS records wait for the socket to take them.
    pub(super) fn wants_flush(&self) -> bool {
        self.tls().is_some_and(|t| t.wants_flush())
    }

    pub(super) fn is_handshaking(&self) -> bool {
        self.tls().is_some_and(|t| t.is_handshaking())
    }

    /// An ACME TLS-ALPN-01 validator's handshake is done: it has seen the
    /// challenge certificate, and RFC 8737 §3 has nothing follow it.
    pub(super) fn is_acme_validation(&self) -> bool {
        self.tls().is_some_and(|t| {
            !t.is_handshaking() && t.alpn_protocol() == Some(crate::acme::ALPN_ACME_TLS)
        })
    }

    /// The client's TLS handshake chose HTTP/2.
    pub(super) fn chose_h2(&self) -> bool {
        self.tls()
            .is_some_and(|t| !t.is_handshaking() && t.alpn_protocol() == Some(b"h2"))
    }

    /// Writes the TLS records waiting for the socket: `Ok(true)` once none
    /// is left (or there is no TLS), `Ok(false)` while the socket is full.
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        let (Some(tcp), Some(Ext::Tls(tls))) = (&self.tcp, self.ext.as_deref_mut()) else {
            return Ok(true);
        };
        if !tls.wants_flush() {
            return Ok(true);
        }
        match tls.flush(tcp) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The close that follows is to read as a reset, not a clean end: an
    /// RST (`SO_LINGER` 0), or RST_STREAM on a stream.
    pub(super) fn reset_on_close(&mut self) {
        match (&self.tcp, self.ext.as_deref_mut()) {
            (Some(tcp), _) => {
                let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
            }
            (None, Some(Ext::Stream(s))) => s.aborted = true,
            (None, _) => {}
        }
    }

    /// Nothing more goes to or comes from the peer, at once: both
    /// directions of the socket shut, or the stream reset.
    pub(super) fn cut(&mut self) {
        match (&self.tcp, self.ext.as_deref_mut()) {
            (Some(tcp), _) => {
                let _ = tcp.shutdown(Shutdown::Both);
            }
            (None, Some(Ext::Stream(s))) => {
                s.aborted = true;
                s.reset = true;
            }
            (None, _) => {}
        }
    }

    /// Drives the TLS handshake on: `Ok(true)` once it is done.
    pub(super) fn handshake(&mut self) -> io::Result<bool> {
        match (&self.tcp, self.ext.as_deref_mut()) {
            (Some(tcp), Some(Ext::Tls(tls))) => tls.handshake(tcp),
            _ => Ok(true),
        }
    }

    /// Brings the registration in line with `want` (`None`: not watched).
    /// `read_done`: the socket will not be read again, so a socket watched
    /// for reading only may stay in the poll's interest list while not
    /// watched. Edge-triggered, it reports nothing more but an error or a
    /// hang-up (ignored, see [`End::is_watched`]), and most such sockets are
    /// closed soon after: the `EPOLL_CTL_DEL` is saved. Watching again
    /// re-arms the socket (`EPOLL_CTL_MOD`), so readiness that came while it
    /// was not watched is reported then, as a fresh registration would.
    pub(super) fn watch(
        &mut self,
        registry: &Registry,
        token: Token,
        want: Option<Interest>,
        read_done: bool,
    ) -> io::Result<()> {
        let now = self.polled.watched();
        let Some(tcp) = &mut self.tcp else {
            // A stream is not polled: its connection reads what it wants.
            self.polled = want.map_or(Polled::OUT, Polled::watching);
            return Ok(());
        };
        self.polled = match want {
            _ if now == want => return Ok(()),
            Some(w) => return self.adopt(registry, token, w),
            // Readable edges would wake the worker for nothing (a paused
            // reader), writable ones too: out of the poll.
            None if !(read_done && now == Some(Interest::READABLE)) => {
                registry.deregister(tcp)?;
                Polled::OUT
            }
            None => Polled::DORMANT,
        };
        Ok(())
    }

    /// Whether the poll's events for this socket are to be acted on.
    pub(super) fn is_watched(&self) -> bool {
        self.polled.watched().is_some()
    }

    /// Registers the socket under `token` with `want`, whatever it was
    /// registered as before: a kept connection taken up by a pair, or
    /// handed back to the pool.
    pub(super) fn adopt(
        &mut self,
        registry: &Registry,
        token: Token,
        want: Interest,
    ) -> io::Result<()> {
        if let Some(tcp) = &mut self.tcp {
            if self.polled.in_poll() {
                registry.reregister(tcp, token, want)?;
            } else {
                registry.register(tcp, token, want)?;
            }
        }
        self.polled = Polled::watching(want);
        Ok(())
    }
}

/// How the poll has a socket, in one byte (a pair is kept small): what it
/// watches for, and whether the socket is in the poll's interest list at
/// all, which it may be while watched for nothing (see [`End::watch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Polled(u8);

impl Polled {
    const READ: u8 = 1;
    const WRITE: u8 = 2;
    const IN_POLL: u8 = 4;
    /// Not in the poll.
    const OUT: Polled = Polled(0);
    /// In the poll, watched for nothing.
    const DORMANT: Polled = Polled(Polled::IN_POLL);

    fn watching(want: Interest) -> Polled {
        let read = if want.is_readable() { Polled::READ } else { 0 };
        let write = if want.is_writable() { Polled::WRITE } else { 0 };
        Polled(Polled::IN_POLL | read | write)
    }

    fn watched(self) -> Option<Interest> {
        interest(self.0 & Polled::READ != 0, self.0 & Polled::WRITE != 0)
    }

    fn in_poll(self) -> bool {
        self.0 & Polled::IN_POLL != 0
    }
}

/// The interest for wanting to read and to write.
pub(super) fn interest(read: bool, write: bool) -> Option<Interest> {
    match (read, write) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polled_keeps_interest_and_membership_apart() {
        for want in [
            Interest::READABLE,
            Interest::WRITABLE,
            Interest::READABLE | Interest::WRITABLE,
        ] {
            let p = Polled::watching(want);
            assert_eq!(p.watched(), Some(want));
            assert!(p.in_poll());
        }
        assert_eq!(Polled::DORMANT.watched(), None);
        assert!(Polled::DORMANT.in_poll());
        assert_eq!(Polled::OUT.watched(), None);
        assert!(!Polled::OUT.in_poll());
    }
}
