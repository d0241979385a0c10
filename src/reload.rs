//! `SIGHUP` with a configuration file: read and validate it again, bind
//! the listeners it adds, and hand every worker the new configuration with
//! its sockets. Nothing restarts: workers switch for new clients at their
//! next wakeup, and open pairs keep the configuration they started with
//! until they close. A file that does not validate, or a listener that
//! cannot bind, changes nothing.
//!
//! The main thread keeps its own duplicate of every worker's listening
//! socket, by configured address, so a reload can give a listener that
//! stays to the workers again (same socket, no accept queue lost) and
//! close one that goes (the last descriptor closes with the old set).

use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use mio::net::TcpListener;
use mio::Waker;

use crate::config::{self, Config};
use crate::listener::{self, BindError};
use crate::worker::{Command, Reload};
use crate::{error, info, warn};

/// One configured listener's sockets, one per worker.
#[derive(Debug)]
struct Bound {
    /// As written in the configuration (port 0 stays 0 across reloads).
    configured: SocketAddr,
    /// What the kernel gave.
    actual: SocketAddr,
    sockets: Vec<TcpListener>,
}

/// The main thread's duplicates of every listening socket.
#[derive(Debug, Default)]
pub struct Sockets {
    bound: Vec<Bound>,
}

/// A second descriptor for the same listening socket.
fn duplicate(listener: &TcpListener) -> io::Result<TcpListener> {
    let socket = socket2::SockRef::from(listener).try_clone()?;
    Ok(TcpListener::from_std(std::net::TcpListener::from(socket)))
}

/// The sockets a set of workers gets for a configuration.
#[derive(Debug)]
pub struct Assigned {
    /// Per worker, one socket per configured listener, in order.
    pub per_worker: Vec<Vec<TcpListener>>,
    /// Addresses bound for the first time, as the kernel gave them.
    pub added: Vec<SocketAddr>,
    /// How many listeners the configuration dropped.
    pub removed: usize,
}

impl Sockets {
    /// Sockets for every listener of `config` over `workers` workers:
    /// the same socket for an address already bound, a new one otherwise.
    /// On an error nothing is bound and `self` is unchanged.
    pub fn assign(
        &mut self,
        config: &Config,
        workers: usize,
        defer: Duration,
    ) -> Result<Assigned, BindError> {
        let mut next = Vec::new();
        let mut added = Vec::new();
        for l in &config.listeners {
            if let Some(i) = self.bound.iter().position(|b| b.configured == l.addr) {
                next.push(self.bound.swap_remove(i));
                continue;
            }
            match listener::bind(l.addr, workers, defer) {
                Ok(b) => {
                    added.push(b.addr);
                    next.push(Bound {
                        configured: l.addr,
                        actual: b.addr,
                        sockets: b.sockets,
                    });
                }
                Err(e) => {
                    // Put back what this attempt took; drop what it bound.
                    self.bound
                        .extend(next.into_iter().filter(|b| !added.contains(&b.actual)));
                    return Err(e);
                }
            }
        }
        let mut per_worker: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
        for b in &next {
            for (worker, socket) in per_worker.iter_mut().zip(&b.sockets) {
                match duplicate(socket) {
                    Ok(dup) => worker.push(dup),
                    Err(e) => {
                        let addr = b.actual;
                        self.bound
                            .extend(next.into_iter().filter(|b| !added.contains(&b.actual)));
                        return Err(BindError {
                            addr,
                            why: format!("cannot duplicate the socket: {e}"),
                        });
                    }
                }
            }
        }
        let removed = self.bound.len();
        self.bound = next;
        Ok(Assigned {
            per_worker,
            added,
            removed,
        })
    }
}

/// What the signal thread needs to reload.
#[derive(Debug)]
pub struct Reloader {
    /// The file given with --config or --nginx-config.
    pub source: config::Source,
    pub sockets: Sockets,
    pub workers: Vec<(mpsc::Sender<Command>, Arc<Waker>)>,
    /// The configuration new clients get (the admin listener reads it).
    pub current: Arc<Mutex<Arc<Config>>>,
}

impl Reloader {
    /// Loads the file again and switches every worker to it; on any
    /// problem logs why and keeps the configuration in force.
    pub fn reload(&mut self) {
        let path = self.source.path().display();
        let mut config = match self.source.load() {
            Ok(config) => config,
            Err(e) => {
                for line in e.to_string().lines() {
                    error!("SIGHUP: {line}");
                }
                error!("SIGHUP: {path} not reloaded; the configuration in force stays");
                return;
            }
        };
        let workers = self.workers.len();
        if config.workers != workers {
            warn!(
                "SIGHUP: workers = {} takes a restart; keeping {workers}",
                config.workers
            );
        }
        let assigned = match self
            .sockets
            .assign(&config, workers, config.timeouts.handshake)
        {
            Ok(a) => a,
            Err(e) => {
                error!("SIGHUP: {e}; {path} not reloaded, the configuration in force stays");
                return;
            }
        };
        // Before any worker sees it, what checks found of the servers it
        // keeps: a server marked down stays down.
        match self.current.lock() {
            Ok(old) => config.keep_checks(&old),
            Err(poisoned) => config.keep_checks(&poisoned.into_inner()),
        }
        let config = Arc::new(config);
        for ((tx, waker), listeners) in self.workers.iter().zip(assigned.per_worker) {
            let reload = Reload {
                config: Arc::clone(&config),
                listeners,
            };
            if tx.send(Command::Reload(reload)).is_err() || waker.wake().is_err() {
                error!("SIGHUP: a worker did not take the new configuration");
            }
        }
        for addr in &assigned.added {
            info!("SIGHUP: listening on {addr}");
        }
        if let Ok(mut current) = self.current.lock() {
            *current = Arc::clone(&config);
        }
        let mut changed = Vec::new();
        if !assigned.added.is_empty() {
            changed.push(format!("{} new", assigned.added.len()));
        }
        if assigned.removed > 0 {
            changed.push(format!("{} closed", assigned.removed));
        }
        let listeners = if changed.is_empty() {
            String::new()
        } else {
            format!(" (listeners: {})", changed.join(", "))
        };
        info!("SIGHUP: reloaded {path}: {}{listeners}", config.summary());
    }
}
