//! Connection limits: how many client connections the process, a worker
//! and one client address may hold. A connection over a limit is still
//! accepted and answered (503 over capacity, 429 for one address's excess)
//! so the client learns why; past a further margin of such answers the
//! worker stops accepting until connections close, and the kernel queues
//! the rest.
//!
//! The counts are shared by every worker. They change once per accepted
//! and once per closed connection, never per byte relayed.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::handshake::answer::{Reject, Status};

/// Connections a worker may hold beyond a limit only to answer them 503 or
/// 429; past it the worker pauses accepting.
pub const REFUSE_MARGIN: usize = 64;

/// Locks the per-address counts are spread over, so workers accepting at
/// once rarely wait for each other.
const SHARDS: usize = 16;

/// The limits, from the configuration; 0 means none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Client connections in the whole process.
    pub max_connections: usize,
    /// Client connections in one worker.
    pub max_per_worker: usize,
    /// Client connections from one IP address.
    pub max_per_ip: usize,
}

impl Limits {
    /// Whether a worker holding `held` connections, in a process holding
    /// `total`, should stop accepting: it is past a limit by more than the
    /// connections it may hold just to refuse.
    pub fn paused(&self, total: usize, held: usize) -> bool {
        self.past(total, held, REFUSE_MARGIN)
    }

    /// Whether every connection slot is taken: a new connection is refused
    /// unless one is shed to make room (see `shed`), and a worker that
    /// paused stays paused until a connection fits, so the first client it
    /// takes from the kernel's queue is served rather than refused.
    pub fn full(&self, total: usize, held: usize) -> bool {
        self.past(total, held, 0)
    }

    fn past(&self, total: usize, held: usize, margin: usize) -> bool {
        let past = |limit: usize, n: usize| limit != 0 && n >= limit + margin;
        past(self.max_connections, total) || past(self.max_per_worker, held)
    }
}

/// The shared counts.
#[derive(Debug)]
pub struct Admission {
    total: AtomicUsize,
    per_ip: Vec<Mutex<HashMap<IpAddr, usize>>>,
    shard_of: RandomState,
}

impl Default for Admission {
    fn default() -> Admission {
        Admission {
            total: AtomicUsize::new(0),
            per_ip: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            shard_of: RandomState::new(),
        }
    }
}

impl Admission {
    /// Counts a new connection from `ip` on a worker already holding
    /// `held`, and says whether to serve it or refuse it. Either way the
    /// connection is counted until [`Admission::release`]. `ip` is `None`
    /// while the real address is not known yet (a PROXY protocol listener
    /// learns it from the header): [`Admission::admit_ip`] counts it then.
    pub fn admit(&self, limits: &Limits, held: usize, ip: Option<IpAddr>) -> Result<(), Reject> {
        // Relaxed: the count is a bound, not a synchronisation point.
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let from_ip = ip.map(|ip| self.count_ip(limits, ip));
        let over = |limit: usize, n: usize| limit != 0 && n > limit;
        if over(limits.max_connections, total) || over(limits.max_per_worker, held + 1) {
            return Err(Reject::new(
                Status::ServiceUnavailable,
                "the proxy is at its connection limit",
            ));
        }
        match from_ip {
            Some(n) => Self::ip_verdict(limits, n),
            None => Ok(()),
        }
    }

    /// Counts a connection's address once it is known (after
    /// `admit(.., None)`); refused or not, it stays counted until
    /// released.
    pub fn admit_ip(&self, limits: &Limits, ip: IpAddr) -> Result<(), Reject> {
        let n = self.count_ip(limits, ip);
        Self::ip_verdict(limits, n)
    }

    /// The address's count after adding this connection (0: no per-address
    /// limit, nothing counted).
    fn count_ip(&self, limits: &Limits, ip: IpAddr) -> usize {
        if limits.max_per_ip == 0 {
            return 0;
        }
        let mut counts = self.shard(ip);
        let n = counts.entry(ip).or_insert(0);
        *n += 1;
        *n
    }

    fn ip_verdict(limits: &Limits, from_ip: usize) -> Result<(), Reject> {
        if limits.max_per_ip != 0 && from_ip > limits.max_per_ip {
            return Err(Reject::new(
                Status::TooManyRequests,
                "too many connections from this address",
            ));
        }
        Ok(())
    }

    /// Uncounts a connection [`Admission::admit`] counted, and its address
    /// if that was counted.
    pub fn release(&self, limits: &Limits, ip: Option<IpAddr>) {
        let before = self.total.fetch_sub(1, Ordering::Relaxed);
        debug_assert!(before > 0, "released more connections than admitted");
        let Some(ip) = ip else {
            return;
        };
        if limits.max_per_ip != 0 {
            let mut counts = self.shard(ip);
            if let Some(n) = counts.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }

    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn shard(&self, ip: IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        let shard = self.shard_of.hash_one(ip) as usize % SHARDS;
        // A panic while holding the lock cannot leave a count half-updated.
        self.per_ip[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn limits_table() {
        let limits = Limits {
            max_connections: 3,
            max_per_worker: 0,
            max_per_ip: 2,
        };
        let admission = Admission::default();
        let status = |r: Result<(), Reject>| r.err().map(|r| r.status.code());
        assert_eq!(status(admission.admit(&limits, 0, Some(ip(1)))), None);
        assert_eq!(status(admission.admit(&limits, 1, Some(ip(1)))), None);
        assert_eq!(status(admission.admit(&limits, 2, Some(ip(1)))), Some(429));
        assert_eq!(status(admission.admit(&limits, 3, Some(ip(2)))), Some(503));
        assert_eq!(admission.total(), 4, "refused connections count too");
        for _ in 0..3 {
            admission.release(&limits, Some(ip(1)));
        }
        admission.release(&limits, Some(ip(2)));
        assert_eq!(admission.total(), 0);
        assert_eq!(status(admission.admit(&limits, 0, Some(ip(1)))), None);
        assert!(admission
            .per_ip
            .iter()
            .all(|s| s.lock().unwrap().len() <= 1));
    }

    #[test]
    fn per_worker_limit_and_pausing() {
        let limits = Limits {
            max_connections: 0,
            max_per_worker: 2,
            max_per_ip: 0,
        };
        let admission = Admission::default();
        assert!(admission.admit(&limits, 1, Some(ip(1))).is_ok());
        assert_eq!(
            admission.admit(&limits, 2, Some(ip(1))).unwrap_err().status,
            Status::ServiceUnavailable
        );
        assert!(!limits.paused(1000, 2 + REFUSE_MARGIN - 1));
        assert!(limits.paused(0, 2 + REFUSE_MARGIN));
        assert!(limits.full(0, 2), "paused until one fits");
        assert!(!limits.full(0, 1));
        assert!(!Limits::default().paused(usize::MAX - 1, usize::MAX - 1));
    }
}
