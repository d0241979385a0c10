//! Socket activation, as systemd does it (`sd_listen_fds(3)`): a service
//! manager that opened the listening sockets passes them as descriptors
//! 3, 4, … with `LISTEN_FDS` (how many), `LISTEN_PID` (for which process)
//! and `LISTEN_FDNAMES` (their names, `:`-separated). The manager keeps
//! them open across restarts, so clients queue instead of being refused,
//! and two processes given the same socket share it.
//!
//! Each passed socket serves the listener (or the admin endpoints) with
//! its address; every worker accepts from it. Stopping leaves it open.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::{listener, sys, warn};

/// Passed descriptors, taken at startup before anything else opens one.
#[derive(Debug, Default)]
pub struct Passed {
    fds: Vec<(OwnedFd, String)>,
}

/// A passed listening socket, ready for the workers.
#[derive(Debug)]
pub struct Inherited {
    pub addr: SocketAddr,
    /// Its `LISTEN_FDNAMES` name (systemd's default: the socket unit's).
    pub name: String,
    pub socket: std::net::TcpListener,
}

impl Passed {
    /// Takes the descriptors passed to this process, if any, and removes
    /// the variables so nothing started later mistakes them for its own.
    /// Variables meant for another process (`LISTEN_PID`) are ignored.
    pub fn take() -> Result<Passed, String> {
        let pid = std::env::var("LISTEN_PID").ok();
        let count = std::env::var("LISTEN_FDS").ok();
        let names = std::env::var("LISTEN_FDNAMES").ok();
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(name);
        }
        let (Some(pid), Some(count)) = (pid, count) else {
            return Ok(Passed::default());
        };
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return Ok(Passed::default());
        }
        let count: usize = count
            .trim()
            .parse()
            .map_err(|_| format!("LISTEN_FDS={count:?} is not a count"))?;
        let fds = sys::take_inherited(count)
            .map_err(|e| format!("LISTEN_FDS={count}: a passed descriptor: {e}"))?;
        let names: Vec<String> = names
            .map(|n| n.split(':').map(str::to_string).collect())
            .unwrap_or_default();
        let fds = fds
            .into_iter()
            .enumerate()
            .map(|(i, fd)| (fd, names.get(i).cloned().unwrap_or_default()))
            .collect();
        Ok(Passed { fds })
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// The passed listening TCP sockets, set up as [`listener::bind`]'s
    /// are; anything else passed is closed with a warning.
    pub fn listeners(self, defer: Duration) -> Vec<Inherited> {
        let mut out = Vec::new();
        for (fd, name) in self.fds {
            match listener::adopt(fd, defer) {
                Ok((addr, socket)) => out.push(Inherited { addr, name, socket }),
                Err(e) => warn!("a passed socket ({name:?}) is not usable: {e}; closing it"),
            }
        }
        out
    }
}
