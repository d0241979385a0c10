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
use crate::listener::{self, BindError, Listening};
use crate::worker::{Command, Reload};
use crate::{error, info, warn};

/// One configured listener's sockets.
#[derive(Debug)]
struct Bound {
    /// As written in the configuration (port 0 stays 0 across reloads).
    configured: SocketAddr,
    /// What the kernel gave.
    actual: SocketAddr,
    /// Bound here: one per worker, an `SO_REUSEPORT` group. Passed by a
    /// service manager: usually one, which every worker shares.
    sockets: Vec<TcpListener>,
    /// A service manager passed it and keeps it: never shut down.
    shared: bool,
}

impl Bound {
    fn serves(&self, addr: SocketAddr) -> bool {
        self.configured == addr || (addr.port() != 0 && self.actual == addr)
    }
}

/// The main thread's duplicates of every listening socket.
#[derive(Debug, Default)]
pub struct Sockets {
    bound: Vec<Bound>,
    /// Another process took them: nothing binds here again.
    handed_over: bool,
}

/// A second descriptor for the same listening socket.
fn duplicate(listener: &TcpListener) -> io::Result<TcpListener> {
    let socket = socket2::SockRef::from(listener).try_clone()?;
    Ok(TcpListener::from_std(std::net::TcpListener::from(socket)))
}

/// The sockets a set of workers gets for a configuration.
#[derive(Debug)]
pub struct Assigned {
    /// Per worker, its sockets, each naming its configured listener.
    pub per_worker: Vec<Vec<Listening>>,
    /// Every configured listener's address, as the kernel gave it, in
    /// order.
    pub addrs: Vec<SocketAddr>,
    /// Addresses bound for the first time, as the kernel gave them.
    pub added: Vec<SocketAddr>,
    /// How many listeners the configuration dropped.
    pub removed: usize,
}

/// One configured listener's sockets as they change hands: its address
/// as configured and as bound, whether a service manager shares it, and
/// its sockets.
pub type Group<'a> = (SocketAddr, SocketAddr, bool, &'a [TcpListener]);

impl Sockets {
    /// Listening sockets this process did not bind (a process handing its
    /// listeners over, or a service manager), for the listener whose
    /// address is `configured` or `actual`.
    pub fn adopt(
        &mut self,
        configured: SocketAddr,
        actual: SocketAddr,
        sockets: Vec<TcpListener>,
        shared: bool,
    ) {
        match self.bound.iter_mut().find(|b| b.actual == actual) {
            Some(b) => b.sockets.extend(sockets),
            None => self.bound.push(Bound {
                configured,
                actual,
                sockets,
                shared,
            }),
        }
    }

    /// Every listener's sockets, in order, for a hand-over.
    pub fn groups(&self) -> impl Iterator<Item = Group<'_>> {
        self.bound
            .iter()
            .map(|b| (b.configured, b.actual, b.shared, b.sockets.as_slice()))
    }

    /// How many listeners there are.
    pub fn len(&self) -> usize {
        self.bound.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bound.is_empty()
    }

    /// Closes this process's descriptors for every listener (another
    /// process has them now).
    pub fn release(&mut self) {
        self.bound.clear();
        self.handed_over = true;
    }

    /// Whether [`Sockets::release`] gave them away.
    pub fn handed_over(&self) -> bool {
        self.handed_over
    }

    /// Sockets for every listener of `config` over `workers` workers:
    /// the same socket for an address already bound, a new one otherwise.
    /// A group this process did not bind with fewer sockets than workers
    /// gets more joined to it. On an error nothing is bound and `self` is
    /// unchanged (but for sockets joined to a group it keeps).
    pub fn assign(
        &mut self,
        config: &Config,
        workers: usize,
        defer: Duration,
    ) -> Result<Assigned, BindError> {
        let mut next: Vec<Bound> = Vec::new();
        let mut added = Vec::new();
        let mut failed = None;
        for l in &config.listeners {
            if let Some(i) = self.bound.iter().position(|b| b.serves(l.addr)) {
                let mut b = self.bound.swap_remove(i);
                while !b.shared && b.sockets.len() < workers {
                    match listener::join(b.actual, defer) {
                        Ok(socket) => b.sockets.push(socket),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                next.push(b);
                if failed.is_some() {
                    break;
                }
                continue;
            }
            match listener::bind(l.addr, workers, defer) {
                Ok(b) => {
                    added.push(b.addr);
                    next.push(Bound {
                        configured: l.addr,
                        actual: b.addr,
                        sockets: b.sockets,
                        shared: false,
                    });
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let per_worker = match failed {
            None => per_worker(&next, workers),
            Some(e) => Err(e),
        };
        let per_worker = match per_worker {
            Ok(p) => p,
            Err(e) => {
                // Put back what this attempt took; drop what it bound.
                self.bound
                    .extend(next.into_iter().filter(|b| !added.contains(&b.actual)));
                return Err(e);
            }
        };
        let removed = self.bound.len();
        let addrs = next.iter().map(|b| b.actual).collect();
        self.bound = next;
        Ok(Assigned {
            per_worker,
            addrs,
            added,
            removed,
        })
    }
}

/// Spreads each listener's sockets over the workers: socket i to worker
/// i mod `workers`, and a worker left without one shares socket w mod n.
fn per_worker(bound: &[Bound], workers: usize) -> Result<Vec<Vec<Listening>>, BindError> {
    let mut per_worker: Vec<Vec<Listening>> = (0..workers).map(|_| Vec::new()).collect();
    for (index, b) in bound.iter().enumerate() {
        let n = b.sockets.len();
        for (w, worker) in per_worker.iter_mut().enumerate() {
            let mut mine: Vec<usize> = (w..n).step_by(workers).collect();
            if mine.is_empty() && n > 0 {
                mine.push(w % n);
            }
            for i in mine {
                let socket = duplicate(&b.sockets[i]).map_err(|e| BindError {
                    addr: b.actual,
                    why: format!("cannot duplicate the socket: {e}"),
                })?;
                worker.push(Listening {
                    index,
                    socket,
                    shared: b.shared,
                });
            }
        }
    }
    Ok(per_worker)
}

/// What the signal thread needs to reload.
#[derive(Debug)]
pub struct Reloader {
    /// The file given with --config or --nginx-config.
    pub source: config::Source,
    /// Shared with the control socket, which hands them over.
    pub sockets: Arc<Mutex<Sockets>>,
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
        // Held until the workers have the new sockets: a hand-over waits.
        let mut sockets = match self.sockets.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if sockets.handed_over() {
            warn!("SIGHUP ignored: the listeners were handed to another process");
            return;
        }
        let assigned = match sockets.assign(&config, workers, config.timeouts.handshake) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(listen: &str) -> Config {
        let cli = crate::cli::Cli::try_parse_from([
            "wsproxy-fast",
            "--listen",
            listen,
            "--upstream",
            "127.0.0.1:9",
        ])
        .unwrap();
        Config::from_cli(&cli).unwrap()
    }

    const DEFER: Duration = Duration::from_secs(1);

    fn sockets_each(assigned: &Assigned) -> Vec<usize> {
        assigned.per_worker.iter().map(Vec::len).collect()
    }

    #[test]
    fn a_passed_socket_is_shared_by_every_worker() {
        let passed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = passed.local_addr().unwrap();
        let mut sockets = Sockets::default();
        sockets.adopt(addr, addr, vec![TcpListener::from_std(passed)], true);
        let assigned = sockets
            .assign(&config(&addr.to_string()), 3, DEFER)
            .unwrap();
        assert_eq!(sockets_each(&assigned), [1, 1, 1]);
        assert!(assigned.added.is_empty(), "nothing bound");
        assert!(assigned.per_worker.iter().flatten().all(|l| l.shared));
    }

    #[test]
    fn a_group_handed_over_grows_or_spreads_to_the_workers() {
        let mut old = Sockets::default();
        let four = old.assign(&config("127.0.0.1:0"), 4, DEFER).unwrap();
        let addr = four.addrs[0];
        let group: Vec<TcpListener> = old.bound[0]
            .sockets
            .iter()
            .map(|s| duplicate(s).unwrap())
            .collect();
        // Four sockets, two workers: two each, none closed (their queues).
        let mut two = Sockets::default();
        two.adopt("127.0.0.1:0".parse().unwrap(), addr, group, false);
        let assigned = two.assign(&config("127.0.0.1:0"), 2, DEFER).unwrap();
        assert_eq!(sockets_each(&assigned), [2, 2]);
        // One socket, three workers: two more join its group.
        let one = vec![duplicate(&old.bound[0].sockets[0]).unwrap()];
        let mut three = Sockets::default();
        three.adopt("127.0.0.1:0".parse().unwrap(), addr, one, false);
        let assigned = three.assign(&config("127.0.0.1:0"), 3, DEFER).unwrap();
        assert_eq!(sockets_each(&assigned), [1, 1, 1]);
        assert_eq!(three.bound[0].sockets.len(), 3);
        assert_eq!(assigned.addrs, [addr]);
    }
}
