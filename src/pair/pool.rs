//! A worker's idle upstream connections, kept after a plain exchange for
//! the next request to the same server (nginx's upstream `keepalive`).
//!
//! Per group, at most `keepalive.idle` connections wait, oldest first; a
//! request takes the most recently kept one to its server, and a full
//! group closes its oldest. Each waits registered for reading under its
//! own token: an upstream that closes it (or sends what nobody asked for)
//! gets it dropped at once, and the worker's sweep drops those idle past
//! `keepalive.timeout`.
//!
//! A kept connection keeps its slot, and so its token, while a pair uses
//! it (the slot says which pair): events on it go to that pair, and taking
//! it up or handing it back changes no registration. A kept connection
//! costs one `epoll_ctl` in its life, when first kept, instead of two per
//! request. A pair that closes one gives its slot back ([`Kept::release`]).
//!
//! The pool serves the worker's current configuration only (groups by
//! index); a reload empties it of idle connections, and those in use go
//! when their pairs are done with them.

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
    slots: Slab<Slot>,
    /// Per group, the keys of its idle connections, oldest first.
    groups: Vec<VecDeque<usize>>,
    /// Idle connections (slots in use by pairs are not counted).
    idle: usize,
}

/// A kept connection's slot.
#[derive(Debug)]
enum Slot {
    Idle(Idle),
    /// In use by the pair with this slab key.
    Lent {
        pair: usize,
    },
}

/// One idle connection.
#[derive(Debug)]
struct Idle {
    end: End,
    group: u16,
    server: u16,
    since: Instant,
}

/// Who an event on a kept connection's token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The pool: the connection is idle.
    Pool,
    /// The pair with this slab key, which uses it.
    Pair(usize),
    /// Nobody any more: a stale event.
    Gone,
}

impl Kept {
    /// Idle connections held now.
    pub fn len(&self) -> usize {
        self.idle
    }

    pub fn is_empty(&self) -> bool {
        self.idle == 0
    }

    /// Who an event on slot `key`'s token is for.
    pub fn owner(&self, key: usize) -> Owner {
        match self.slots.get(key) {
            Some(Slot::Idle(_)) => Owner::Pool,
            Some(Slot::Lent { pair }) => Owner::Pair(*pair),
            None => Owner::Gone,
        }
    }

    /// The most recently kept connection to `server` of `group`, if any,
    /// lent to `pair`: still registered under its slot's token (the key
    /// returned), watched for reading.
    pub(super) fn take(&mut self, group: usize, server: usize, pair: usize) -> Option<(End, u32)> {
        let queue = self.groups.get_mut(group)?;
        let slots = &self.slots;
        let at = queue.iter().rposition(
            |&key| matches!(&slots[key], Slot::Idle(idle) if usize::from(idle.server) == server),
        )?;
        let key = queue.remove(at)?;
        let Slot::Idle(idle) = std::mem::replace(&mut self.slots[key], Slot::Lent { pair }) else {
            unreachable!("queued slots are idle");
        };
        self.idle -= 1;
        Some((idle.end, u32::try_from(key).expect("slab keys fit in u32")))
    }

    /// Keeps `end`, an idle connection to `server` of `group` (`slot`: the
    /// slot it was lent from, if it came from the pool); closes the
    /// group's oldest if that makes one too many. A connection that
    /// cannot be watched is closed instead.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put(
        &mut self,
        mut end: End,
        slot: Option<u32>,
        group: usize,
        server: usize,
        config: &Group,
        registry: &Registry,
        now: Instant,
    ) {
        let key = match slot {
            Some(key) => key as usize,
            None => self.slots.insert(Slot::Lent { pair: usize::MAX }),
        };
        let watched = match slot {
            Some(_) => end.watch(registry, token::kept(key), Some(Interest::READABLE), false),
            None => end.adopt(registry, token::kept(key), Interest::READABLE),
        };
        if config.keepalive.idle == 0 || watched.is_err() {
            if let Err(e) = watched {
                debug!("cannot watch a kept upstream connection: {e}; closing it");
            }
            self.slots.remove(key);
            return;
        }
        self.slots[key] = Slot::Idle(Idle {
            end,
            group: super::index(group),
            server: super::index(server),
            since: now,
        });
        self.idle += 1;
        if self.groups.len() <= group {
            self.groups.resize_with(group + 1, VecDeque::new);
        }
        let queue = &mut self.groups[group];
        queue.push_back(key);
        while queue.len() > config.keepalive.idle {
            if let Some(oldest) = queue.pop_front() {
                self.slots.remove(oldest);
                self.idle -= 1;
            }
        }
    }

    /// A pair closed the kept connection it used: its slot is free.
    pub(super) fn release(&mut self, slot: u32) {
        let key = slot as usize;
        if matches!(self.slots.get(key), Some(Slot::Lent { .. })) {
            self.slots.remove(key);
        }
    }

    /// Idle connection `key` is readable: the upstream closed it, failed,
    /// or sent bytes nobody asked for. Any of these ends it; a spurious
    /// event (or a TLS record with no data, such as a session ticket)
    /// leaves it kept.
    pub fn on_event(&mut self, key: usize, scratch: &mut Buf) {
        let Some(Slot::Idle(idle)) = self.slots.get_mut(key) else {
            return;
        };
        scratch.clear();
        let got = if idle.end.is_tls() {
            idle.end.conn().read(scratch.space())
        } else {
            match idle.end.tcp() {
                Some(tcp) => crate::relay::conn::peek(tcp, &mut scratch.space()[..1]),
                None => return,
            }
        };
        if let Ok(Got::Blocked) = got {
            return;
        }
        debug!(
            "kept upstream connection {:?} ended: {}",
            idle.end.tcp().map(|t| t.peer_addr()),
            match got {
                Ok(Got::Eof) => "closed by the upstream".to_string(),
                Ok(_) => "the upstream sent unasked bytes".to_string(),
                Err(e) => e.to_string(),
            }
        );
        self.remove_idle(key);
    }

    /// Closes the connections idle longer than their group's timeout.
    pub fn sweep(&mut self, groups: &[Group], now: Instant) {
        for (group, queue) in self.groups.iter_mut().enumerate() {
            let Some(limit) = groups.get(group).map(|g| g.keepalive.timeout) else {
                continue;
            };
            while let Some(&oldest) = queue.front() {
                let Slot::Idle(idle) = &self.slots[oldest] else {
                    unreachable!("queued slots are idle");
                };
                if now.saturating_duration_since(idle.since) < limit {
                    break;
                }
                queue.pop_front();
                self.slots.remove(oldest);
                self.idle -= 1;
            }
        }
    }

    /// Closes every idle connection (a reload: group indices change);
    /// those in use keep their slots until their pairs are done.
    pub fn clear(&mut self) {
        for queue in self.groups.drain(..) {
            for key in queue {
                self.slots.remove(key);
            }
        }
        self.idle = 0;
    }

    fn remove_idle(&mut self, key: usize) {
        let Slot::Idle(idle) = self.slots.remove(key) else {
            unreachable!("checked idle");
        };
        self.idle -= 1;
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
            .map(|&k| match &self.slots[k] {
                Slot::Idle(idle) => idle.server,
                Slot::Lent { .. } => u16::MAX,
            })
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
                backup: false,
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
            kept.put(e, None, 0, server, &g, poll.registry(), now);
        }
        assert_eq!(kept.servers(0), vec![1, 0], "the oldest went first");
        assert!(kept.take(0, 2, 7).is_none(), "none to server 2");
        let (lent, slot) = kept.take(0, 0, 7).unwrap();
        assert_eq!(
            kept.owner(slot as usize),
            Owner::Pair(7),
            "events go to the pair"
        );
        assert_eq!(kept.servers(0), vec![1]);
        assert_eq!(kept.len(), 1);
        assert!(kept.take(1, 0, 7).is_none(), "no such group");
        // Back from the pair: the same slot, idle again, newest.
        kept.put(lent, Some(slot), 0, 0, &g, poll.registry(), now);
        assert_eq!(kept.owner(slot as usize), Owner::Pool);
        assert_eq!(kept.servers(0), vec![1, 0]);
        // Closed by its pair instead: the slot goes.
        let (lent, slot) = kept.take(0, 0, 7).unwrap();
        drop(lent);
        kept.release(slot);
        assert_eq!(kept.owner(slot as usize), Owner::Gone);
        let (e, _peer) = end(&listener);
        kept.put(e, None, 0, 2, &group(0), poll.registry(), now);
        assert_eq!(kept.len(), 1, "keepalive = 0 keeps nothing");
        kept.clear();
        assert!(kept.is_empty());
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
        kept.put(a, None, 0, 0, &g, poll.registry(), start);
        let later = start + Duration::from_secs(30);
        kept.put(b, None, 0, 1, &g, poll.registry(), later);
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
