//! Listening sockets: for each configured address, one socket per worker,
//! all bound with `SO_REUSEPORT` (set before `bind`) so the kernel spreads
//! new connections across the workers with no shared accept queue.
//!
//! `SO_REUSEPORT` would also let a second copy of the proxy bind the same
//! port and silently take half its connections, so each address is first
//! bound once without it: if anything already listens there, that fails
//! with "address in use" and the proxy refuses to start.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::sys;

/// Accept queue length per socket; the kernel caps it at
/// `net.core.somaxconn` (4096 by default since Linux 5.4).
pub const BACKLOG: i32 = 4096;

/// One configured address: the address actually bound (the real port when
/// 0 was asked for) and a socket for each worker.
#[derive(Debug)]
pub struct Bound {
    pub addr: SocketAddr,
    pub sockets: Vec<mio::net::TcpListener>,
}

/// An address that could not be listened on, worded as what to do.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {why}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub why: String,
}

/// Binds `addr` once per worker. `defer` is how long the kernel may hold a
/// connection that has sent nothing before handing it over anyway.
pub fn bind(addr: SocketAddr, workers: usize, defer: Duration) -> Result<Bound, BindError> {
    let fail = |e: io::Error| BindError {
        addr,
        why: explain(&e, addr),
    };
    if addr.port() != 0 {
        probe_exclusive(addr).map_err(fail)?;
    }
    let first = listen(addr, defer).map_err(fail)?;
    // With port 0 the first socket picks the port; the others join it.
    let bound = first.local_addr().map_err(fail)?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(listen(bound, defer).map_err(fail)?);
    }
    Ok(Bound {
        addr: bound,
        sockets,
    })
}

fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    // Restarting while old connections sit in TIME_WAIT must not fail.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // nginx's `listen [::]:80` default: IPv6 only, so an IPv4 listener
        // on the same port can coexist.
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

/// One more socket for the `SO_REUSEPORT` group listening on `addr` (a
/// worker more than the group had sockets for); no exclusive probe, the
/// group being this process's.
pub fn join(addr: SocketAddr, defer: Duration) -> Result<mio::net::TcpListener, BindError> {
    listen(addr, defer).map_err(|e| BindError {
        addr,
        why: explain(&e, addr),
    })
}

/// A listening socket this process did not bind (a service manager passed
/// it): what it listens on, made ready for a worker as [`bind`]'s are
/// (non-blocking, `TCP_NODELAY` for what it accepts, the same
/// `TCP_DEFER_ACCEPT`). An error when it is not a listening TCP socket.
pub fn adopt(
    fd: std::os::fd::OwnedFd,
    defer: Duration,
) -> io::Result<(SocketAddr, std::net::TcpListener)> {
    let socket = Socket::from(fd);
    let not_tcp = || io::Error::new(io::ErrorKind::InvalidInput, "not a TCP socket");
    if socket.r#type()? != Type::STREAM {
        return Err(not_tcp());
    }
    if !socket.is_listener()? {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not listening"));
    }
    let addr = socket.local_addr()?.as_socket().ok_or_else(not_tcp)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    let seconds = u32::try_from(defer.as_secs().max(1)).unwrap_or(u32::MAX);
    sys::set_defer_accept(socket.as_fd(), seconds)?;
    Ok((addr, socket.into()))
}

/// A worker's socket for one configured listener.
#[derive(Debug)]
pub struct Listening {
    /// Which listener of the configuration it serves.
    pub index: usize,
    pub socket: mio::net::TcpListener,
    /// Another process holds it too (a service manager that passed it):
    /// stopping leaves it open and its queue to them.
    pub shared: bool,
}

/// Fails if anything already listens on `addr`.
fn probe_exclusive(addr: SocketAddr) -> io::Result<()> {
    new_socket(addr)?.bind(&SockAddr::from(addr))
}

fn listen(addr: SocketAddr, defer: Duration) -> io::Result<mio::net::TcpListener> {
    let socket = new_socket(addr)?;
    socket.set_reuse_port(true)?;
    // Accepted sockets inherit TCP_NODELAY from their listener, which saves
    // a setsockopt per connection: small frames must not wait for Nagle.
    socket.set_tcp_nodelay(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(BACKLOG)?;
    let seconds = u32::try_from(defer.as_secs().max(1)).unwrap_or(u32::MAX);
    sys::set_defer_accept(socket.as_fd(), seconds)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

fn explain(e: &io::Error, addr: SocketAddr) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            "address already in use (another process listens there: stop it or pick another port)"
                .into()
        }
        Some(libc::EADDRNOTAVAIL) => format!("{} is not an address of this host", addr.ip()),
        Some(libc::EACCES) => {
            "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)".into()
        }
        Some(libc::EAFNOSUPPORT) => "IPv6 is not available on this host".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_binds_every_worker_to_one_port() {
        let bound = bind("127.0.0.1:0".parse().unwrap(), 3, Duration::from_secs(1)).unwrap();
        assert_ne!(bound.addr.port(), 0);
        assert_eq!(bound.sockets.len(), 3);
        for s in &bound.sockets {
            assert_eq!(s.local_addr().unwrap(), bound.addr);
        }
    }

    #[test]
    fn accepted_sockets_inherit_nodelay() {
        let bound = bind("127.0.0.1:0".parse().unwrap(), 1, Duration::from_secs(1)).unwrap();
        let mut client = std::net::TcpStream::connect(bound.addr).unwrap();
        // TCP_DEFER_ACCEPT holds back connections that sent nothing.
        std::io::Write::write_all(&mut client, b"x").unwrap();
        let (accepted, _) = loop {
            match bound.sockets[0].accept() {
                Ok(pair) => break pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert!(accepted.nodelay().unwrap());
    }

    #[test]
    fn a_port_in_use_is_refused() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = bind(holder.local_addr().unwrap(), 1, Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(err.to_string().contains("already in use"), "{err}");
    }

    #[test]
    fn a_second_proxy_cannot_share_the_port() {
        let first = bind("127.0.0.1:0".parse().unwrap(), 2, Duration::from_secs(1)).unwrap();
        let err = bind(first.addr, 2, Duration::from_secs(1)).err().unwrap();
        assert!(err.to_string().contains("already in use"), "{err}");
    }
}
