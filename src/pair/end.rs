//! One side of a pair: its socket, the TLS session over it if any, and the
//! interest registered for it with the poll.

use std::io;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::relay::{Conn, Tls};

/// A client's or an upstream's connection.
#[derive(Debug)]
pub(super) struct End {
    pub(super) tcp: TcpStream,
    pub(super) tls: Option<Box<Tls>>,
    polled: Polled,
    /// Requests sent over this connection (an upstream's, kept between
    /// requests), saturating.
    pub(super) uses: u16,
    /// An upstream's: its answer said the connection stays open, so it may
    /// carry another request once the answer is through.
    pub(super) reusable: bool,
}

impl End {
    pub(super) fn new(tcp: TcpStream) -> End {
        End {
            tcp,
            tls: None,
            polled: Polled::OUT,
            uses: 0,
            reusable: false,
        }
    }

    /// This side as the relays see it.
    pub(super) fn conn(&mut self) -> Conn<'_> {
        Conn::new(&self.tcp, &mut self.tls)
    }

    /// TLS records wait for the socket to take them.
    pub(super) fn wants_flush(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_flush())
    }

    pub(super) fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// An ACME TLS-ALPN-01 validator's handshake is done: it has seen the
    /// challenge certificate, and RFC 8737 §3 has nothing follow it.
    pub(super) fn is_acme_validation(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| {
            !t.is_handshaking() && t.alpn_protocol() == Some(crate::acme::ALPN_ACME_TLS)
        })
    }

    /// Writes the TLS records waiting for the socket: `Ok(true)` once none
    /// is left (or there is no TLS), `Ok(false)` while the socket is full.
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_mut().filter(|t| t.wants_flush()) else {
            return Ok(true);
        };
        match tls.flush(&self.tcp) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
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
        self.polled = match want {
            _ if now == want => return Ok(()),
            Some(w) => return self.adopt(registry, token, w),
            // Readable edges would wake the worker for nothing (a paused
            // reader), writable ones too: out of the poll.
            None if !(read_done && now == Some(Interest::READABLE)) => {
                registry.deregister(&mut self.tcp)?;
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
        if self.polled.in_poll() {
            registry.reregister(&mut self.tcp, token, want)?;
        } else {
            registry.register(&mut self.tcp, token, want)?;
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
