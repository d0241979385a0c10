//! The control socket (`--control-socket PATH`): how a new process, maybe
//! a new binary, takes this one's listening sockets over (`--takeover
//! PATH`), so an upgrade refuses no client. The same sockets change hands,
//! queues and all, as nginx's re-exec and HAProxy's `-x` do it.
//!
//! A Unix `SOCK_SEQPACKET` socket, so every message arrives whole, with
//! the descriptors it carries (`SCM_RIGHTS`). The new process speaks
//! first; the old one serves one hand-over at a time:
//!
//! ```text
//! new → old  TAKEOVER 1 <pid>
//! old → new  LISTENER <configured> <bound> <shared 0|1>   + its sockets (≤ 253 a message)
//!            ADMIN <address>                              + the admin socket, if any
//!            CONTROL <path>                               + this control socket
//!            END <pid>
//! new → old  READY            (its workers accept on them now)
//! old → new  STOPPED          (no worker of the old accepts any more; it drains)
//! ```
//!
//! The old process stops accepting only after READY: until then both
//! accept from the same sockets, and if the new one dies first the old one
//! goes on as before. `ERROR <why>` instead of an answer ends it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::reload::Sockets;
use crate::{error, info, listener, sys};

const HELLO: &str = "TAKEOVER 1";

/// Longest wait for the other side's next message. Generous: the new
/// process starts its workers between END and READY.
const PATIENCE: Duration = Duration::from_secs(60);

/// Longest message text.
const MAX_MESSAGE: usize = 4096;

/// The listening control socket.
#[derive(Debug)]
pub struct ControlSocket {
    socket: Socket,
    path: PathBuf,
}

impl ControlSocket {
    /// Listens on `path`. A socket file left by a process that is gone is
    /// replaced; one a live process serves is an error saying to take it
    /// over instead.
    pub fn bind(path: &Path) -> io::Result<ControlSocket> {
        let addr = SockAddr::unix(path)?;
        let socket = Socket::new(Domain::UNIX, Type::SEQPACKET.cloexec(), None)?;
        match socket.bind(&addr) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let probe = Socket::new(Domain::UNIX, Type::SEQPACKET.cloexec(), None)?;
                if probe.connect(&addr).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!(
                            "a running process serves it: start with --takeover {} to take \
                             its listeners over",
                            path.display()
                        ),
                    ));
                }
                std::fs::remove_file(path)?;
                socket.bind(&addr)?;
            }
            Err(e) => return Err(e),
        }
        socket.listen(16)?;
        Ok(ControlSocket {
            socket,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What the serving side hands over, and how it stops.
pub struct Giver {
    pub sockets: Arc<Mutex<Sockets>>,
    /// A second descriptor for the admin listener, if there is one.
    pub admin: Option<std::net::TcpListener>,
    /// Whether this process is draining already (its listeners are shut:
    /// nothing to hand over).
    pub draining: Box<dyn Fn() -> bool + Send>,
    /// Called once the new process (its pid) accepts: stop accepting,
    /// drain, and return once no worker accepts any more.
    pub stop: Box<dyn FnMut(u32) + Send>,
}

impl std::fmt::Debug for Giver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Giver")
            .field("sockets", &self.sockets)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// Serves the control socket until a hand-over succeeds (then the socket
/// is the new process's) or it fails to accept.
pub fn serve(control: ControlSocket, mut giver: Giver) {
    loop {
        let conn = match control.socket.accept() {
            Ok((conn, _)) => conn,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                error!("control socket {}: {e}", control.path.display());
                return;
            }
        };
        match give(&conn, &control, &mut giver) {
            Ok(()) => return,
            Err(e) => error!("takeover refused: {e}; this process goes on serving"),
        }
    }
}

/// One hand-over, from HELLO to STOPPED.
fn give(conn: &Socket, control: &ControlSocket, giver: &mut Giver) -> Result<(), String> {
    conn.set_read_timeout(Some(PATIENCE))
        .and_then(|()| conn.set_write_timeout(Some(PATIENCE)))
        .map_err(|e| e.to_string())?;
    let (hello, _) = receive(conn.as_fd()).map_err(|e| format!("reading the request: {e}"))?;
    let pid: u32 = hello
        .strip_prefix(HELLO)
        .and_then(|rest| rest.trim().parse().ok())
        .ok_or_else(|| format!("not a takeover request: {hello:?}"))?;
    let fail = |why: String| {
        let _ = send(conn.as_fd(), &format!("ERROR {why}"), &[]);
        why
    };
    // Held to the end: a reload cannot change the sockets meanwhile.
    let mut sockets = giver.sockets.lock().unwrap_or_else(|p| p.into_inner());
    if sockets.handed_over() || (giver.draining)() {
        return Err(fail(
            "this process is draining: its listeners are shut".into(),
        ));
    }
    let lost = |e: io::Error| format!("process {pid} went away: {e}");
    for (configured, actual, shared, group) in sockets.groups() {
        for chunk in group.chunks(sys::MAX_FDS_PER_MESSAGE) {
            let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|s| s.as_fd()).collect();
            let text = format!("LISTENER {configured} {actual} {}", u8::from(shared));
            send(conn.as_fd(), &text, &fds).map_err(lost)?;
        }
    }
    if let Some(admin) = &giver.admin {
        let addr = admin.local_addr().map_err(|e| e.to_string())?;
        send(conn.as_fd(), &format!("ADMIN {addr}"), &[admin.as_fd()]).map_err(lost)?;
    }
    let path = control.path.display();
    send(
        conn.as_fd(),
        &format!("CONTROL {path}"),
        &[control.socket.as_fd()],
    )
    .map_err(lost)?;
    send(conn.as_fd(), &format!("END {}", std::process::id()), &[]).map_err(lost)?;
    match receive(conn.as_fd()) {
        Ok((text, _)) if text == "READY" => {}
        Ok((text, _)) if text.is_empty() => {
            return Err(format!("process {pid} stopped before it was ready"))
        }
        Ok((text, _)) => return Err(format!("process {pid} answered {text:?}")),
        Err(e) => return Err(format!("process {pid} did not get ready: {e}")),
    }
    (giver.stop)(pid);
    sockets.release();
    giver.admin = None;
    // It has the sockets: a failure to tell it changes nothing here.
    let _ = send(conn.as_fd(), "STOPPED", &[]);
    Ok(())
}

/// What a process taking over received.
#[derive(Debug)]
pub struct Taken {
    /// The old process.
    pub from: u32,
    /// Per listener: configured and bound address, shared with a service
    /// manager, its sockets.
    pub listeners: Vec<(SocketAddr, SocketAddr, bool, Vec<mio::net::TcpListener>)>,
    pub admin: Option<std::net::TcpListener>,
    pub control: Option<ControlSocket>,
    count: usize,
    conn: Socket,
}

impl Taken {
    /// Tells the old process that this one accepts now, and waits until
    /// it has stopped accepting.
    pub fn confirm(&self) -> io::Result<()> {
        send(self.conn.as_fd(), "READY", &[])?;
        let (text, _) = receive(self.conn.as_fd())?;
        if text == "STOPPED" {
            return Ok(());
        }
        Err(io::Error::other(match text.strip_prefix("ERROR ") {
            Some(why) => why.to_string(),
            None => format!("it answered {text:?}"),
        }))
    }

    /// How many listeners came over.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// Why a takeover did not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot take over from {path}: {why}")]
pub struct TakeoverError {
    path: PathBuf,
    why: String,
}

/// Connects to the process serving `path` and receives its sockets. The
/// old process goes on accepting until [`Taken::confirm`]. `defer` is the
/// `TCP_DEFER_ACCEPT` of this configuration.
pub fn take_over(path: &Path, defer: Duration) -> Result<Taken, TakeoverError> {
    let fail = |why: String| TakeoverError {
        path: path.to_path_buf(),
        why,
    };
    let conn = Socket::new(Domain::UNIX, Type::SEQPACKET.cloexec(), None)
        .and_then(|s| {
            s.set_read_timeout(Some(PATIENCE))?;
            s.set_write_timeout(Some(PATIENCE))?;
            s.connect(&SockAddr::unix(path)?)?;
            Ok(s)
        })
        .map_err(|e| {
            fail(match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    format!("{e} (is a process running with --control-socket there?)")
                }
                _ => e.to_string(),
            })
        })?;
    send(
        conn.as_fd(),
        &format!("{HELLO} {}", std::process::id()),
        &[],
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut taken = Taken {
        from: 0,
        listeners: Vec::new(),
        admin: None,
        control: None,
        count: 0,
        conn,
    };
    loop {
        let (text, fds) = receive(taken.conn.as_fd()).map_err(|e| fail(e.to_string()))?;
        let mut words = text.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("LISTENER"), Some(configured), Some(actual), Some(shared)) => {
                let configured = parse_addr(configured).map_err(fail)?;
                let actual = parse_addr(actual).map_err(fail)?;
                let mut sockets = Vec::with_capacity(fds.len());
                for fd in fds {
                    let (addr, socket) = listener::adopt(fd, defer)
                        .map_err(|e| fail(format!("a socket for {actual}: {e}")))?;
                    if addr != actual {
                        return Err(fail(format!("a socket for {actual} listens on {addr}")));
                    }
                    sockets.push(mio::net::TcpListener::from_std(socket));
                }
                match taken.listeners.last_mut() {
                    Some(last) if last.1 == actual => last.3.extend(sockets),
                    _ => taken
                        .listeners
                        .push((configured, actual, shared == "1", sockets)),
                }
            }
            (Some("ADMIN"), Some(_), None, None) => {
                taken.admin = fds.into_iter().next().map(std::net::TcpListener::from);
            }
            (Some("CONTROL"), Some(_), ..) => {
                let old = PathBuf::from(text["CONTROL ".len()..].to_string());
                if let Some(fd) = fds.into_iter().next() {
                    taken.control = Some(ControlSocket {
                        socket: Socket::from(fd),
                        path: old,
                    });
                }
            }
            (Some("END"), Some(pid), None, None) => {
                taken.from = pid
                    .parse()
                    .map_err(|_| fail(format!("bad END: {text:?}")))?;
                taken.count = taken.listeners.len();
                return Ok(taken);
            }
            (Some("ERROR"), ..) => return Err(fail(text["ERROR ".len()..].to_string())),
            _ if text.is_empty() => return Err(fail("it closed the connection".into())),
            _ => return Err(fail(format!("unexpected message {text:?}"))),
        }
    }
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("bad address {text:?} in the hand-over"))
}

fn send(conn: BorrowedFd<'_>, text: &str, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    sys::send_with_fds(conn, text.as_bytes(), fds)
}

/// One message: its text (empty when the peer closed) and descriptors.
fn receive(conn: BorrowedFd<'_>) -> io::Result<(String, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, fds) = sys::recv_with_fds(conn, &mut buf)?;
    buf.truncate(n);
    String::from_utf8(buf)
        .map(|text| (text, fds))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not text"))
}

/// Logs what a takeover brought.
pub fn log_taken(taken: &Taken) {
    info!(
        "took over {} from process {}; it stops accepting and drains its tunnels",
        crate::log::count(taken.count(), "listener"),
        taken.from
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wsproxy-control-{}-{name}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("control.sock")
    }

    fn bound_sockets(workers: usize) -> (SocketAddr, Sockets) {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "wsproxy-fast",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
        ])
        .unwrap();
        let config = crate::config::Config::from_cli(&cli).unwrap();
        let mut sockets = Sockets::default();
        let assigned = sockets
            .assign(&config, workers, Duration::from_secs(1))
            .unwrap();
        (assigned.addrs[0], sockets)
    }

    /// Serves `path` with `sockets` on a thread; what `stop` was told.
    fn giver(
        path: &Path,
        sockets: Sockets,
        draining: bool,
    ) -> (Arc<AtomicU32>, std::thread::JoinHandle<()>) {
        let control = ControlSocket::bind(path).unwrap();
        let stopped = Arc::new(AtomicU32::new(0));
        let told = Arc::clone(&stopped);
        let giver = Giver {
            sockets: Arc::new(Mutex::new(sockets)),
            admin: None,
            draining: Box::new(move || draining),
            stop: Box::new(move |pid| told.store(pid, Ordering::SeqCst)),
        };
        (stopped, std::thread::spawn(move || serve(control, giver)))
    }

    #[test]
    fn the_same_sockets_change_hands_and_the_old_process_stops_after_ready() {
        let path = temp_path("hand");
        let (addr, sockets) = bound_sockets(2);
        // A client queued before the hand-over is accepted after it.
        let mut queued = std::net::TcpStream::connect(addr).unwrap();
        // TCP_DEFER_ACCEPT holds back connections that sent nothing.
        std::io::Write::write_all(&mut queued, b"x").unwrap();
        let (stopped, serving) = giver(&path, sockets, false);
        let taken = take_over(&path, Duration::from_secs(1)).unwrap();
        assert_eq!(taken.from, std::process::id());
        assert_eq!(taken.count(), 1);
        let (configured, actual, shared, group) = &taken.listeners[0];
        assert_eq!(configured.port(), 0);
        assert_eq!(*actual, addr);
        assert!(!shared);
        assert_eq!(group.len(), 2);
        assert_eq!(taken.control.as_ref().unwrap().path(), path);
        assert_eq!(stopped.load(Ordering::SeqCst), 0, "not before READY");
        taken.confirm().unwrap();
        assert_eq!(stopped.load(Ordering::SeqCst), std::process::id());
        serving.join().unwrap();
        let local = queued.local_addr().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let accepted = loop {
            if let Some(a) = group.iter().find_map(|s| s.accept().ok()) {
                break a;
            }
            assert!(std::time::Instant::now() < deadline, "the queued client");
            std::thread::yield_now();
        };
        assert_eq!(accepted.1, local);
    }

    #[test]
    fn a_taker_that_leaves_before_ready_changes_nothing() {
        let path = temp_path("leave");
        let (_, sockets) = bound_sockets(1);
        let (stopped, serving) = giver(&path, sockets, false);
        drop(take_over(&path, Duration::from_secs(1)).unwrap());
        // The next one is served: the first changed nothing.
        let taken = take_over(&path, Duration::from_secs(1)).unwrap();
        assert_eq!(stopped.load(Ordering::SeqCst), 0);
        taken.confirm().unwrap();
        serving.join().unwrap();
        assert_eq!(stopped.load(Ordering::SeqCst), std::process::id());
    }

    #[test]
    fn a_draining_process_refuses() {
        let path = temp_path("drain");
        let (_, sockets) = bound_sockets(1);
        let (_stopped, _serving) = giver(&path, sockets, true);
        let err = take_over(&path, Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("draining"), "{err}");
    }

    #[test]
    fn a_served_path_is_refused_and_a_stale_one_replaced() {
        let path = temp_path("stale");
        let first = ControlSocket::bind(&path).unwrap();
        let err = ControlSocket::bind(&path).unwrap_err();
        assert!(err.to_string().contains("--takeover"), "{err}");
        drop(first);
        // The file stays behind; nobody serves it.
        assert!(path.exists());
        ControlSocket::bind(&path).unwrap();
        let nobody = temp_path("nobody");
        let err = take_over(&nobody, Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("--control-socket"), "{err}");
    }
}
