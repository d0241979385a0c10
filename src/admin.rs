//! The admin listener: `GET /metrics` (Prometheus text, every worker's
//! shard merged), `GET /status` (upstream servers' state, JSON) and
//! `GET /healthz`, served one connection at a time by a
//! thread of its own, off the workers' reactors. Bind it to loopback or a
//! management network: it has no authentication.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::Config;
use crate::metrics::{self, Shard};
use crate::worker::Control;
use crate::{debug, warn};

/// A scraper must send its request within this.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request head read; an admin request is one short line.
const MAX_REQUEST: usize = 4096;

/// The admin listener's thread: waits on the listener and a waker, which
/// ends it once another process has taken the listener over.
#[derive(Debug)]
pub struct Admin {
    poll: Poll,
    listener: mio::net::TcpListener,
}

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

impl Admin {
    /// Watches `listener`; the waker stops [`Admin::serve`] once
    /// `control.handed_over` is set.
    pub fn new(listener: TcpListener) -> io::Result<(Admin, Arc<Waker>)> {
        listener.set_nonblocking(true)?;
        let mut listener = mio::net::TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok((Admin { poll, listener }, waker))
    }

    /// Serves the admin endpoints until the process exits or hands the
    /// listener over.
    pub fn serve(
        mut self,
        shards: Vec<Arc<Shard>>,
        current: Arc<Mutex<Arc<Config>>>,
        control: Arc<Control>,
    ) {
        let mut events = Events::with_capacity(4);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() != io::ErrorKind::Interrupted {
                    warn!("admin: {e}");
                    return;
                }
            }
            // Checked before accepting: once the listener is another
            // process's, every client queued on it is that process's.
            if control.handed_over.load(Ordering::Acquire) {
                return;
            }
            loop {
                let stream = match self.listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        warn!("admin: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                        break;
                    }
                };
                // The configuration in force: a reload swaps it.
                let config = match current.lock() {
                    Ok(c) => Arc::clone(&c),
                    Err(poisoned) => Arc::clone(&poisoned.into_inner()),
                };
                let draining = control.draining.load(Ordering::Acquire);
                let stream = TcpStream::from(std::os::fd::OwnedFd::from(stream));
                let answered = stream
                    .set_nonblocking(false)
                    .and_then(|()| answer(stream, &shards, &config, draining));
                if let Err(e) = answered {
                    debug!("admin: {e}");
                }
                if control.handed_over.load(Ordering::Acquire) {
                    return;
                }
            }
        }
    }
}

fn answer(
    mut stream: TcpStream,
    shards: &[Arc<Shard>],
    config: &Config,
    draining: bool,
) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, target) = (words.next(), words.next());
    let path = target.map(|t| t.split(|&b| b == b'?').next().unwrap_or_default());
    let (status, kind, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(shards, config),
        ),
        (Some(b"GET"), Some(b"/status")) => (
            "200 OK",
            "application/json",
            crate::status::render_json(shards, config, std::time::Instant::now()),
        ),
        // A load balancer stops sending new clients to a draining proxy.
        (Some(b"GET"), Some(b"/healthz")) if draining => (
            "503 Service Unavailable",
            "text/plain",
            "draining\n".to_string(),
        ),
        (Some(b"GET"), Some(b"/healthz")) => ("200 OK", "text/plain", "ok\n".to_string()),
        (Some(b"GET"), _) => (
            "404 Not Found",
            "text/plain",
            "the admin listener serves /metrics, /status and /healthz\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
