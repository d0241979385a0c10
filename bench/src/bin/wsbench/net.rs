//! Socket set-up with socket2: `SO_REUSEPORT` listeners for the echo
//! backend (options set before bind) and non-blocking client connects that
//! may bind a chosen source address first.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Listen backlog per listener: enough for connection bursts from `hold`;
/// the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds `count` non-blocking listeners sharing one port via `SO_REUSEPORT`,
/// so the kernel spreads accepted connections across threads. Port 0 is
/// resolved by the first bind and reused by the others.
///
/// A fixed port that another socket already holds is refused: otherwise
/// `SO_REUSEPORT` would let a second echo server of the same user silently
/// share the port with the first.
pub fn reuseport_listeners(
    addr: SocketAddr,
    count: usize,
) -> io::Result<Vec<mio::net::TcpListener>> {
    if addr.port() != 0 {
        // A plain bind fails with AddrInUse if any socket holds the port. The
        // probe is closed at once; a listener that never accepted leaves no
        // TIME_WAIT behind.
        drop(std::net::TcpListener::bind(addr)?);
    }
    let first = bind_listener(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind_listener(bound)?);
    }
    Ok(listeners)
}

fn bind_listener(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Starts a non-blocking connect with `TCP_NODELAY`, first binding `source`
/// (port 0) when given. Completion is signalled by writability.
pub fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<mio::net::TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(ip) = source {
        socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(err) => return Err(err),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}
