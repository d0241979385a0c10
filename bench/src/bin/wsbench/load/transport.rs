//! A load connection's byte stream: the TCP socket itself (ws://) or a
//! rustls client connection over it (wss://), behind one non-blocking
//! interface that keeps edge-triggered readiness correct.
//!
//! Reading with TLS: ciphertext comes off the socket with one `read` into
//! the first half of the scratch buffer (rustls' own `read_tls` takes at
//! most 4 KiB per system call), is fed to rustls from memory, and all the
//! plaintext each batch of records yields is drained at once into the
//! second half: plaintext left inside rustls would bring no new readiness
//! event. Writing: bytes go into rustls' writer (which holds plaintext back
//! until the handshake is done), and records go out with `write_tls` until
//! the socket is full. Records rustls makes while reading (the client's
//! Finished, alerts) go out on the next [`Transport::send`], which the
//! connection makes after every read.

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use rustls::ClientConnection;

use super::conn::ConnError;
use crate::tls::Negotiated;

#[derive(Debug)]
pub enum Transport {
    Plain(TcpStream),
    Tls {
        stream: TcpStream,
        tls: Box<ClientConnection>,
    },
}

impl Transport {
    /// The socket, for registration and connect checks.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(stream) | Transport::Tls { stream, .. } => stream,
        }
    }

    /// TLS records wait to be written: a send is due even with nothing queued.
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls { tls, .. } => tls.wants_write(),
        }
    }

    /// What the TLS handshake negotiated, once it is done; `None` for ws://.
    pub fn negotiated(&self) -> Option<Negotiated> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls { tls, .. } => Negotiated::of(tls),
        }
    }

    /// Sends from `data` until all of it is taken or the socket is full;
    /// returns how many bytes were taken (with TLS: accepted by rustls,
    /// whose records may still wait for the socket, see [`Self::wants_write`]).
    pub fn send(&mut self, data: &[u8]) -> Result<usize, ConnError> {
        match self {
            Transport::Plain(stream) => write_until_full(stream, data),
            Transport::Tls { stream, tls } => {
                let mut taken = 0;
                loop {
                    while tls.wants_write() {
                        match tls.write_tls(stream) {
                            Ok(0) => return Err(ConnError::Io(io::ErrorKind::WriteZero.into())),
                            Ok(_) => {}
                            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                                return Ok(taken)
                            }
                            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                            Err(err) => return Err(ConnError::Io(err)),
                        }
                    }
                    if taken == data.len() {
                        return Ok(taken);
                    }
                    // Short only when rustls' buffer is full: while it
                    // handshakes, or (after the loop above) never.
                    let accepted = tls.writer().write(&data[taken..]).map_err(ConnError::Io)?;
                    if accepted == 0 {
                        return Ok(taken);
                    }
                    taken += accepted;
                }
            }
        }
    }

    /// Reads until the socket is drained (or, after a hang-up, until EOF),
    /// passing every piece of plaintext to `sink` in order. Returns whether
    /// the server closed its side (TCP EOF or a TLS close_notify).
    pub fn receive(
        &mut self,
        read_closed: bool,
        scratch: &mut [u8],
        mut sink: impl FnMut(&[u8]) -> Result<(), ConnError>,
    ) -> Result<bool, ConnError> {
        match self {
            Transport::Plain(stream) => loop {
                let Some(read) = read_some(stream, scratch)? else {
                    return Ok(false);
                };
                if read == 0 {
                    return Ok(true);
                }
                sink(&scratch[..read])?;
                // A short read drained the socket; new bytes bring a new edge.
                // After a hang-up, read on to see the EOF now.
                if read < scratch.len() && !read_closed {
                    return Ok(false);
                }
            },
            Transport::Tls { stream, tls } => {
                let (cipher, plain) = scratch.split_at_mut(scratch.len() / 2);
                loop {
                    let Some(read) = read_some(stream, cipher)? else {
                        return Ok(false);
                    };
                    if read == 0 {
                        return Ok(true);
                    }
                    let mut fed = &cipher[..read];
                    while !fed.is_empty() {
                        tls.read_tls(&mut fed).map_err(ConnError::Io)?;
                        let state = match tls.process_new_packets() {
                            Ok(state) => state,
                            Err(err) => {
                                // Best effort: tell the server why (an alert).
                                let _ = tls.write_tls(stream);
                                return Err(ConnError::Tls(err));
                            }
                        };
                        let mut pending = state.plaintext_bytes_to_read();
                        while pending > 0 {
                            let got = tls.reader().read(plain).map_err(ConnError::Io)?;
                            sink(&plain[..got])?;
                            pending -= got;
                        }
                        if state.peer_has_closed() {
                            return Ok(true);
                        }
                    }
                    if read < cipher.len() && !read_closed {
                        return Ok(false);
                    }
                }
            }
        }
    }
}

/// One `read`: `Some(0)` at EOF, `None` when there is nothing to read now.
fn read_some(stream: &mut TcpStream, into: &mut [u8]) -> Result<Option<usize>, ConnError> {
    loop {
        match stream.read(into) {
            Ok(read) => return Ok(Some(read)),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(ConnError::Io(err)),
        }
    }
}

/// Writes from `data` until done or the socket is full; returns the count.
fn write_until_full(stream: &mut TcpStream, data: &[u8]) -> Result<usize, ConnError> {
    let mut written = 0;
    while written < data.len() {
        match stream.write(&data[written..]) {
            Ok(0) => return Err(ConnError::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(ConnError::Io(err)),
        }
    }
    Ok(written)
}
