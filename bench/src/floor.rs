//! What the two floor relays (`floor-epoll`, `floor-uring`) share: their
//! command line and their `SO_REUSEPORT` listeners.
//!
//! A floor relay is the least work any WebSocket relay can do: accept, read
//! the client's head up to the blank line (no parsing), connect to one fixed
//! upstream, forward the head, then relay bytes both ways (the 101 included)
//! until either side closes. No routing, no timers, no frame parsing. It
//! exists to be measured beside wsproxy-fast (scripts/compare.sh).

use std::io;
use std::net::SocketAddr;

use clap::Parser;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Listen backlog per listener; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// The end of an HTTP/1.1 head (RFC 9112 section 2.1).
pub const HEAD_END: &[u8] = b"\r\n\r\n";

/// A head longer than this (bytes) closes the connection.
pub const MAX_HEAD: usize = 8192;

/// A floor relay: accept, forward the head to one upstream, relay bytes.
#[derive(Debug, Parser)]
pub struct FloorArgs {
    /// Address to listen on; port 0 picks one (printed as "listening on ADDR").
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The one upstream every connection goes to.
    #[arg(long)]
    pub upstream: SocketAddr,
    /// Worker threads, each with its own `SO_REUSEPORT` listener.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

/// Whether `head` holds a whole HTTP head.
pub fn head_complete(head: &[u8]) -> bool {
    head.windows(HEAD_END.len()).any(|w| w == HEAD_END)
}

/// Binds `count` non-blocking listeners sharing one port via `SO_REUSEPORT`
/// (port 0 is resolved by the first bind), with `TCP_NODELAY` set on the
/// listener so that accepted sockets inherit it without a system call each.
pub fn listeners(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let first = bind(addr)?;
    let bound = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(bind(bound)?);
    }
    Ok(all)
}

fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_blank_line() {
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(head_complete(b"GET / HTTP/1.1\r\n\r\nearly"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!head_complete(b""));
    }
}
