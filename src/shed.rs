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
//! Cheap to keep: a pair is queued (slab key and stamp) when it
//! starts a head or goes idle, never scanned. Entries go stale as pairs
//! move on or close, and a pair's earlier entries when it is queued again
//! (it keeps the stamp of its latest only, so a kept connection idle for
//! the hundredth time is queued as newly idle, once). Stale entries are
//! dropped when they reach the front, and the queues are compacted once
//! they hold more than twice as many entries as the worker has pairs:
//! then at most one per pair stays, so compaction is amortized O(1) per
//! entry.

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

/// A pair as queued: its slab key and the stamp it was queued with. A
/// pair holds the stamp of its latest entry; stamps count a worker's
/// entries, so a later pair in the same slot holds another. 16 bits keep
/// a pair within its memory budget: a stale entry passes for live only
/// if its pair was queued again a multiple of 65,536 entries later, and
/// then it puts that pair out of its place in line, no worse (a pair is
/// only ever shed for what it is now).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub key: usize,
    pub stamp: u16,
}

/// A worker's shedding candidates, oldest first in each class.
#[derive(Debug, Default)]
pub struct Shed {
    idle: VecDeque<Entry>,
    heads: VecDeque<Entry>,
    /// The last stamp given; 0 is never given (a pair never queued).
    stamps: u16,
}

impl Shed {
    /// Queues the pair at `key`, which just became `class`; returns the
    /// entry's stamp, for the pair to keep.
    pub fn push(&mut self, class: Class, key: usize) -> u16 {
        self.stamps = self.stamps.wrapping_add(1).max(1);
        let stamp = self.stamps;
        self.queue(class).push_back(Entry { key, stamp });
        stamp
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

    /// Pairs by slab key: the stamp each holds and what it is now.
    type Now = HashMap<usize, (u16, Class)>;

    fn still(now: &Now) -> impl Fn(Entry, Class) -> bool + '_ {
        |entry, class| now.get(&entry.key) == Some(&(entry.stamp, class))
    }

    #[test]
    fn idle_first_then_heads_oldest_first_skipping_stale_entries() {
        let mut shed = Shed::default();
        let mut now = Now::new();
        // Pair 1 started a head, then finished it: stale.
        shed.push(Class::Head, 1);
        // Pair 2 is still reading its head.
        let two = shed.push(Class::Head, 2);
        now.insert(2, (two, Class::Head));
        // Pair 3 went idle, then started its next head.
        shed.push(Class::Idle, 3);
        // Pair 4 went idle, served a request and went idle again: it is
        // the newest idle one, not the oldest.
        shed.push(Class::Idle, 4);
        // Slot 5's pair was queued and closed; another took the slot and
        // reads its head.
        shed.push(Class::Head, 5);
        let six = shed.push(Class::Idle, 6);
        now.insert(6, (six, Class::Idle));
        let three = shed.push(Class::Head, 3);
        now.insert(3, (three, Class::Head));
        let four = shed.push(Class::Idle, 4);
        now.insert(4, (four, Class::Idle));
        let five = shed.push(Class::Head, 5);
        now.insert(5, (five, Class::Head));
        let order: Vec<_> = std::iter::from_fn(|| shed.pick(still(&now)))
            .map(|(e, class)| (e.key, class))
            .collect();
        assert_eq!(
            order,
            [
                (6, Class::Idle),
                (4, Class::Idle),
                (2, Class::Head),
                (3, Class::Head),
                (5, Class::Head)
            ]
        );
        assert!(shed.is_empty(), "stale entries dropped on the way");
    }

    #[test]
    fn peek_keeps_the_candidate() {
        let mut shed = Shed::default();
        let stamp = shed.push(Class::Head, 7);
        let entry = Entry { key: 7, stamp };
        assert_eq!(shed.peek(|_, _| true), Some((entry, Class::Head)));
        assert_eq!(shed.pick(|_, _| true), Some((entry, Class::Head)));
        assert_eq!(shed.peek(|_, _| true), None);
    }

    #[test]
    fn compaction_waits_for_twice_the_pairs() {
        let mut shed = Shed::default();
        let mut now = Now::new();
        for key in 0..100 {
            let stamp = shed.push(Class::Head, key);
            if key >= 90 {
                now.insert(key, (stamp, Class::Head));
            }
        }
        shed.compact(50, still(&now));
        assert_eq!(shed.len(), 100, "under 2 x 50 + slack: left alone");
        shed.compact(10, still(&now));
        assert_eq!(shed.len(), 10, "past it: only live entries stay");
        assert_eq!(shed.pick(|_, _| true).map(|(e, _)| e.key), Some(90));
    }

    #[test]
    fn a_pair_queued_again_and_again_keeps_one_entry() {
        // A kept connection goes idle after every request: compaction
        // leaves one entry for it, however many requests it served, so
        // the queue stays within its bound and is not scanned every turn.
        let mut shed = Shed::default();
        let mut now = Now::new();
        for _ in 0..1000 {
            for key in 0..10 {
                let stamp = shed.push(Class::Idle, key);
                now.insert(key, (stamp, Class::Idle));
            }
            shed.compact(10, still(&now));
            assert!(shed.len() <= 2 * 10 + COMPACT_SLACK + 10);
        }
        shed.compact(0, still(&now));
        assert_eq!(shed.len(), 10);
    }
}
