//! Which client connections a worker closes first when the proxy is at its
//! connection limit, so that a new client is served rather than refused.
//!
//! Only connections that hold no work in progress are shed, in this order:
//!
//! 1. **Idle keep-alive connections**, longest idle first: served already,
//!    with no byte of a next request. HTTP lets a server close such a
//!    connection at any moment (RFC 9112 §9.6), and clients open a new one
//!    when they need it: nothing is lost but a reconnect. nginx reuses its
//!    "reusable" connections first for the same reason.
//! 2. **Connections still reading their request head**, oldest first (a
//!    PROXY protocol header or a TLS handshake counts as part of the
//!    head). A client sends its head in one go, and deferred accept hands
//!    it over whole: a head still unfinished is a slow link or a dribbler
//!    holding a slot (slowloris), the more likely so the older it is.
//!    Shedding it loses at most a request that has not been read yet.
//!
//! Never shed: tunnels, requests being forwarded, answers being written,
//! lingering closes. Idle connections go before unfinished heads because
//! closing an idle one costs its client a reconnect at most, while an
//! unfinished head may be a real client's request half sent.
//!
//! Cheap to keep: a pair is queued (slab key and serial, 8 bytes) when it
//! starts a head or goes idle, never scanned. Entries go stale as pairs
//! move on or close; they are dropped when they reach the front, and the
//! queues are compacted once they hold more than twice as many entries as
//! the worker has pairs (so compaction is amortized O(1) per entry).

use std::collections::VecDeque;

/// Entries a queue may hold beyond twice the worker's pairs before it is
/// compacted: small queues are left alone.
const COMPACT_SLACK: usize = 64;

/// What makes a pair worth shedding (the discriminant indexes metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Kept open between two requests, with no byte of the next one.
    Idle = 0,
    /// Still reading a request head.
    Head = 1,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Idle => "idle",
            Class::Head => "head",
        }
    }
}

/// A pair as queued: its slab key and serial (a later pair in the same
/// slot has another serial).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub key: usize,
    pub serial: u32,
}

/// A worker's shedding candidates, oldest first in each class.
#[derive(Debug, Default)]
pub struct Shed {
    idle: VecDeque<Entry>,
    heads: VecDeque<Entry>,
}

impl Shed {
    /// Queues a pair that just became `class`.
    pub fn push(&mut self, class: Class, key: usize, serial: u32) {
        self.queue(class).push_back(Entry { key, serial });
    }

    /// The first candidate still `class` as queued, by `still`, dropping
    /// stale entries on the way; it stays queued.
    pub fn peek(&mut self, still: impl Fn(Entry, Class) -> bool) -> Option<(Entry, Class)> {
        for class in [Class::Idle, Class::Head] {
            let queue = self.queue(class);
            while let Some(&entry) = queue.front() {
                if still(entry, class) {
                    return Some((entry, class));
                }
                queue.pop_front();
            }
        }
        None
    }

    /// Takes the first candidate, as [`Shed::peek`] finds it.
    pub fn pick(&mut self, still: impl Fn(Entry, Class) -> bool) -> Option<(Entry, Class)> {
        let (entry, class) = self.peek(still)?;
        self.queue(class).pop_front();
        Some((entry, class))
    }

    /// Drops the stale entries of a queue grown past twice `pairs`.
    pub fn compact(&mut self, pairs: usize, still: impl Fn(Entry, Class) -> bool) {
        for class in [Class::Idle, Class::Head] {
            let queue = self.queue(class);
            if queue.len() > 2 * pairs + COMPACT_SLACK {
                queue.retain(|&e| still(e, class));
            }
        }
    }

    /// Entries queued, stale ones included.
    pub fn len(&self) -> usize {
        self.idle.len() + self.heads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.idle.clear();
        self.heads.clear();
    }

    fn queue(&mut self, class: Class) -> &mut VecDeque<Entry> {
        match class {
            Class::Idle => &mut self.idle,
            Class::Head => &mut self.heads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn e(key: usize, serial: u32) -> Entry {
        Entry { key, serial }
    }

    #[test]
    fn idle_first_then_heads_oldest_first_skipping_stale_entries() {
        let mut shed = Shed::default();
        // Pair 1 started a head, then finished it: stale. Pair 2 is still
        // reading. Pair 3 went idle, then started its next head. Pair 4
        // went idle and stays so; slot 5 was reused by another pair.
        shed.push(Class::Head, 1, 1);
        shed.push(Class::Head, 2, 2);
        shed.push(Class::Idle, 3, 3);
        shed.push(Class::Head, 5, 5);
        shed.push(Class::Idle, 4, 4);
        shed.push(Class::Head, 3, 3);
        let now: HashMap<Entry, Class> = [
            (e(2, 2), Class::Head),
            (e(3, 3), Class::Head),
            (e(4, 4), Class::Idle),
            (e(5, 6), Class::Head),
        ]
        .into();
        let still = |entry: Entry, class: Class| now.get(&entry) == Some(&class);
        let order: Vec<_> = std::iter::from_fn(|| shed.pick(still)).collect();
        assert_eq!(
            order,
            [
                (e(4, 4), Class::Idle),
                (e(2, 2), Class::Head),
                (e(3, 3), Class::Head)
            ]
        );
        assert!(shed.is_empty(), "stale entries dropped on the way");
    }

    #[test]
    fn peek_keeps_the_candidate() {
        let mut shed = Shed::default();
        shed.push(Class::Head, 7, 1);
        assert_eq!(shed.peek(|_, _| true), Some((e(7, 1), Class::Head)));
        assert_eq!(shed.pick(|_, _| true), Some((e(7, 1), Class::Head)));
        assert_eq!(shed.peek(|_, _| true), None);
    }

    #[test]
    fn compaction_waits_for_twice_the_pairs() {
        let mut shed = Shed::default();
        for key in 0..100 {
            shed.push(Class::Head, key, 0);
        }
        let live = |entry: Entry, _| entry.key >= 90;
        shed.compact(50, live);
        assert_eq!(shed.len(), 100, "under 2 x 50 + slack: left alone");
        shed.compact(10, live);
        assert_eq!(shed.len(), 10, "past it: only live entries stay");
        assert_eq!(shed.pick(|_, _| true), Some((e(90, 0), Class::Head)));
    }
}
