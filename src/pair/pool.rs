//! A worker's idle upstream connections, kept after a plain exchange for
//! the next request to the same server (nginx's upstream `keepalive`).
//!
//! Per group, at most `keepalive.idle` connections wait, oldest first; a
//! request takes the most recently kept one to its server, and a full
//! group closes its oldest. Each waits registered for reading under its
//! own token: an upstream that closes it (or sends what nobody asked for)
//! gets it dropped at once, and the worker's sweep drops those idle past
//! `keepalive.timeout`. The pool serves the worker's current
//! configuration only (groups by index); a reload empties it.

use std::collections::VecDeque;
use std::time::Instant;

use mio::{Interest, Registry};
use slab::Slab;

use super::end::End;
use crate::buffer::Buf;
use crate::debug;
use crate::relay::Got;
use crate::token;
use crate::upstream::Group;

/// The pool.
#[derive(Debug, Default)]
pub struct Kept {
    idle: Slab<Idle>,
    /// Per group, the keys of its idle connections, oldest first.
    groups: Vec<VecDeque<usize>>,
}

/// One idle connection.
#[derive(Debug)]
struct Idle {
    end: End,
    group: u16,
    server: u16,
    since: Instant,
}

impl Kept {
    /// Idle connections held now.
    pub fn len(&self) -> usize {
        self.idle.len()
    }

    pub fn is_empty(&self) -> bool {
        self.idle.is_empty()
    }

    /// The most recently kept connection to `server` of `group`, if any;
    /// still registered, under the pool's token (see [`End::adopt`]).
    pub(super) fn take(&mut self, group: usize, server: usize) -> Option<End> {
        let queue = self.groups.get_mut(group)?;
        let at = queue
            .iter()
            .rposition(|&key| usize::from(self.idle[key].server) == server)?;
        let key = queue.remove(at)?;
        Some(self.idle.remove(key).end)
    }

    /// Keeps `end`, an idle connection to `server` of `group`; closes the
    /// group's oldest if that makes one too many. A connection that cannot
    /// be watched is closed instead.
    pub(super) fn put(
        &mut self,
        mut end: End,
        group: usize,
        server: usize,
        config: &Group,
        registry: &Registry,
        now: Instant,
    ) {
        if config.keepalive.idle == 0 {
            return;
        }
        if self.groups.len() <= group {
            self.groups.resize_with(group + 1, VecDeque::new);
        }
        let entry = self.idle.vacant_entry();
        let key = entry.key();
        if let Err(e) = end.adopt(registry, token::kept(key), Interest::READABLE) {
            debug!("cannot watch a kept upstream connection: {e}; closing it");
            return;
        }
        entry.insert(Idle {
            end,
            group: super::index(group),
            server: super::index(server),
            since: now,
        });
        let queue = &mut self.groups[group];
        queue.push_back(key);
        while queue.len() > config.keepalive.idle {
            if let Some(oldest) = queue.pop_front() {
                self.idle.remove(oldest);
            }
        }
    }

    /// Kept connection `key` is readable: the upstream closed it, failed,
    /// or sent bytes nobody asked for. Any of these ends it; a spurious
    /// event (or a TLS record with no data, such as a session ticket)
    /// leaves it kept.
    pub fn on_event(&mut self, key: usize, scratch: &mut Buf) {
        let Some(idle) = self.idle.get_mut(key) else {
            return;
        };
        scratch.clear();
        let got = if idle.end.tls.is_some() {
            idle.end.conn().read(scratch.space())
        } else {
            crate::relay::conn::peek(&idle.end.tcp, &mut scratch.space()[..1])
        };
        if let Ok(Got::Blocked) = got {
            return;
        }
        debug!(
            "kept upstream connection {:?} ended: {}",
            idle.end.tcp.peer_addr(),
            match got {
                Ok(Got::Eof) => "closed by the upstream".to_string(),
                Ok(_) => "the upstream sent unasked bytes".to_string(),
                Err(e) => e.to_string(),
            }
        );
        self.remove(key);
    }

    /// Closes the connections idle longer than their group's timeout.
    pub fn sweep(&mut self, groups: &[Group], now: Instant) {
        for (group, queue) in self.groups.iter_mut().enumerate() {
            let Some(limit) = groups.get(group).map(|g| g.keepalive.timeout) else {
                continue;
            };
            while let Some(&oldest) = queue.front() {
                if now.saturating_duration_since(self.idle[oldest].since) < limit {
                    break;
                }
                queue.pop_front();
                self.idle.remove(oldest);
            }
        }
    }

    /// Closes every kept connection (a reload: group indices change).
    pub fn clear(&mut self) {
        self.idle.clear();
        self.groups.clear();
    }

    fn remove(&mut self, key: usize) {
        let idle = self.idle.remove(key);
        if let Some(queue) = self.groups.get_mut(usize::from(idle.group)) {
            queue.retain(|&k| k != key);
        }
    }
}

/// What a closed kept connection was, for tests of the pool's order.
#[cfg(test)]
impl Kept {
    fn servers(&self, group: usize) -> Vec<u16> {
        self.groups[group]
            .iter()
            .map(|&k| self.idle[k].server)
            .collect()
    }
}

/// Registration is a no-op without a poll, so these tests use a real one.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{Balance, Keepalive, Server};
    use std::time::Duration;

    fn group(idle: usize) -> Group {
        let servers = (0..3)
            .map(|i| Server {
                addr: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                name: format!("s{i}"),
                weight: 1,
                tls: None,
            })
            .collect();
        let mut g = Group::new(
            "g".into(),
            servers,
            Balance::RoundRobin,
            1,
            Duration::from_secs(10),
        );
        g.keepalive = Keepalive {
            idle,
            ..Keepalive::default()
        };
        g
    }

    /// A connected socket pair's one end, as an `End`.
    fn end(listener: &std::net::TcpListener) -> (End, std::net::TcpStream) {
        let std = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        std.set_nonblocking(true).unwrap();
        let (peer, _) = listener.accept().unwrap();
        (End::new(mio::net::TcpStream::from_std(std)), peer)
    }

    #[test]
    fn takes_the_newest_to_the_server_and_bounds_each_group() {
        let poll = mio::Poll::new().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let g = group(2);
        let mut kept = Kept::default();
        let now = Instant::now();
        let mut peers = Vec::new();
        for server in [0, 1, 0] {
            let (e, peer) = end(&listener);
            peers.push(peer);
            kept.put(e, 0, server, &g, poll.registry(), now);
        }
        assert_eq!(kept.servers(0), vec![1, 0], "the oldest went first");
        assert!(kept.take(0, 2).is_none(), "none to server 2");
        assert!(kept.take(0, 0).is_some());
        assert_eq!(kept.servers(0), vec![1]);
        assert!(kept.take(1, 0).is_none(), "no such group");
        let (e, _peer) = end(&listener);
        kept.put(e, 0, 2, &group(0), poll.registry(), now);
        assert_eq!(kept.len(), 1, "keepalive = 0 keeps nothing");
    }

    #[test]
    fn closed_and_expired_connections_go() {
        let poll = mio::Poll::new().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let g = group(8);
        let mut kept = Kept::default();
        let start = Instant::now();
        let (a, peer_a) = end(&listener);
        let (b, _peer_b) = end(&listener);
        kept.put(a, 0, 0, &g, poll.registry(), start);
        kept.put(
            b,
            0,
            1,
            &g,
            poll.registry(),
            start + Duration::from_secs(30),
        );
        let mut scratch = Buf::with_capacity(64);
        kept.on_event(1, &mut scratch);
        assert_eq!(kept.len(), 2, "a spurious event keeps it");
        drop(peer_a);
        // The FIN crosses loopback at once; wait for it all the same.
        let deadline = Instant::now() + Duration::from_secs(5);
        while kept.len() == 2 && Instant::now() < deadline {
            kept.on_event(0, &mut scratch);
        }
        assert_eq!(kept.servers(0), vec![1], "the closed one went");
        let groups = [g];
        kept.sweep(&groups, start + Duration::from_secs(60));
        assert_eq!(kept.len(), 1, "kept for 30 s of its 60");
        kept.sweep(&groups, start + Duration::from_secs(91));
        assert!(kept.is_empty(), "past 60 s idle");
    }
}
