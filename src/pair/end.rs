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
    /// What the poll watches for; `None` while not registered.
    registered: Option<Interest>,
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
            registered: None,
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
    pub(super) fn watch(
        &mut self,
        registry: &Registry,
        token: Token,
        want: Option<Interest>,
    ) -> io::Result<()> {
        match (self.registered, want) {
            (a, b) if a == b => return Ok(()),
            (None, Some(w)) => registry.register(&mut self.tcp, token, w)?,
            (Some(_), Some(w)) => registry.reregister(&mut self.tcp, token, w)?,
            (Some(_), None) => registry.deregister(&mut self.tcp)?,
            (None, None) => {}
        }
        self.registered = want;
        Ok(())
    }
}

impl End {
    /// Registers the socket under `token` with `want`, whatever it was
    /// registered as before: a kept connection taken up by a pair, or
    /// handed back to the pool.
    pub(super) fn adopt(
        &mut self,
        registry: &Registry,
        token: Token,
        want: Interest,
    ) -> io::Result<()> {
        match self.registered {
            Some(_) => registry.reregister(&mut self.tcp, token, want)?,
            None => registry.register(&mut self.tcp, token, want)?,
        }
        self.registered = Some(want);
        Ok(())
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
