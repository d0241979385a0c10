//! A worker's clock and timer wheel: handshake, connect, response, idle and
//! linger deadlines for every pair, at [`TICK`] resolution.
//!
//! Each pair carries a [`Timer`] with its deadline (`expires`) and the tick
//! of its one live wheel entry (`armed`). Moving a deadline later, which a
//! busy tunnel does on every read, is a plain store: the entry fires at the
//! old tick, sees the new deadline and re-arms itself. Moving it earlier
//! inserts a new entry and the old one goes stale; stale entries (a different
//! `armed` tick, or a different pair in the same slab slot, told apart by
//! `serial`) are dropped when their slot comes round.

use std::time::{Duration, Instant};

/// Timer resolution. Deadlines fire up to one tick late.
pub const TICK: Duration = Duration::from_millis(100);

/// Wheel slots: one revolution is `SLOTS` ticks (102.4 s). Longer deadlines
/// re-arm once per revolution, about 35 times in an hour-long idle tunnel.
const SLOTS: u32 = 1024;

/// Ticks since the worker started.
pub type Tick = u32;

/// Deadline meaning "no timeout".
pub const NEVER: Tick = Tick::MAX;

/// Converts durations to ticks relative to a worker's start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn tick_at(&self, at: Instant) -> Tick {
        let ticks = at.saturating_duration_since(self.start).as_millis() / TICK.as_millis();
        ticks.min(u128::from(NEVER - 1)) as Tick
    }

    pub fn instant_of(&self, tick: Tick) -> Instant {
        self.start + TICK * tick
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// `duration` in whole ticks, rounded up, so a deadline never fires early;
/// zero means [`NEVER`].
pub fn ticks(duration: Duration) -> Tick {
    if duration.is_zero() {
        return NEVER;
    }
    let ticks = duration.as_millis().div_ceil(TICK.as_millis());
    ticks.min(u128::from(NEVER - 1)) as Tick
}

/// The deadline `duration` after `now`.
pub fn deadline(now: Tick, duration: Duration) -> Tick {
    match ticks(duration) {
        NEVER => NEVER,
        t => now.saturating_add(t).min(NEVER - 1),
    }
}

/// A pair's timer state.
#[derive(Debug)]
pub struct Timer {
    /// Tells pairs that reused one slab slot apart.
    serial: u32,
    /// When the timer is due.
    expires: Tick,
    /// Tick of the live wheel entry, or [`NEVER`] when there is none.
    armed: Tick,
}

impl Timer {
    pub fn new(serial: u32) -> Timer {
        Timer {
            serial,
            expires: NEVER,
            armed: NEVER,
        }
    }

    /// The serial of the pair this timer belongs to.
    pub fn serial(&self) -> u32 {
        self.serial
    }
}

/// A slot entry: the pair's slab key and serial.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u32,
    serial: u32,
}

/// An entry whose slot came round.
#[derive(Clone, Copy, Debug)]
pub struct Expired {
    pub key: usize,
    serial: u32,
    tick: Tick,
}

/// What [`Wheel::settle`] decided for an expired entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// The pair's deadline has passed: act on it.
    Due,
    /// The entry was stale, or the deadline moved later and was re-armed.
    NotDue,
}

#[derive(Debug)]
pub struct Wheel {
    slots: Vec<Vec<Entry>>,
    /// Last tick whose slot was processed.
    processed: Tick,
    /// Entries in all slots, stale ones included.
    len: usize,
    /// A lower bound on the earliest non-empty slot's tick.
    next_due: Option<Tick>,
}

impl Wheel {
    pub fn new(now: Tick) -> Wheel {
        Wheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            processed: now,
            len: 0,
            next_due: None,
        }
    }

    /// Sets `timer` to fire at `expires`, inserting an entry only when no
    /// live entry fires at or before it.
    pub fn arm(&mut self, key: usize, timer: &mut Timer, expires: Tick) {
        timer.expires = expires;
        if expires == NEVER || (timer.armed != NEVER && timer.armed <= expires) {
            return;
        }
        timer.armed = self.insert(key, timer.serial, expires);
    }

    /// Clears the deadline; a live entry is dropped when it comes round.
    pub fn disarm(timer: &mut Timer) {
        timer.expires = NEVER;
    }

    fn insert(&mut self, key: usize, serial: u32, expires: Tick) -> Tick {
        let due = expires.max(self.processed + 1).min(self.processed + SLOTS);
        let key = u32::try_from(key).expect("slab key fits in u32");
        self.slots[(due % SLOTS) as usize].push(Entry { key, serial });
        self.len += 1;
        self.next_due = Some(self.next_due.map_or(due, |n| n.min(due)));
        due
    }

    /// Moves the wheel to `now`, appending every entry whose slot passed to
    /// `out`. Each must then be passed to [`Wheel::settle`].
    pub fn advance(&mut self, now: Tick, out: &mut Vec<Expired>) {
        if now <= self.processed {
            return;
        }
        if self.next_due.is_some_and(|due| due > now) {
            self.processed = now;
            return;
        }
        // Entries sit at ticks in processed+1..=processed+SLOTS, so walking
        // that window gives each slot the exact tick it was armed for, even
        // when the worker fell more than a revolution behind.
        let steps = (now - self.processed).min(SLOTS);
        for tick in (self.processed + 1)..=(self.processed + steps) {
            let slot = &mut self.slots[(tick % SLOTS) as usize];
            self.len -= slot.len();
            out.extend(slot.drain(..).map(|e| Expired {
                key: e.key as usize,
                serial: e.serial,
                tick,
            }));
        }
        self.processed = now;
        self.next_due = self.scan_next_due();
    }

    fn scan_next_due(&self) -> Option<Tick> {
        if self.len == 0 {
            return None;
        }
        (self.processed + 1..=self.processed + SLOTS)
            .find(|t| !self.slots[(t % SLOTS) as usize].is_empty())
    }

    /// Decides an expired entry against the pair now in its slab slot.
    pub fn settle(&mut self, expired: &Expired, timer: &mut Timer, now: Tick) -> Settled {
        if timer.serial != expired.serial || timer.armed != expired.tick {
            return Settled::NotDue;
        }
        timer.armed = NEVER;
        if timer.expires == NEVER {
            return Settled::NotDue;
        }
        if timer.expires <= now {
            return Settled::Due;
        }
        timer.armed = self.insert(expired.key, timer.serial, timer.expires);
        Settled::NotDue
    }

    /// How long a worker may sleep before the next slot is due; `None` when
    /// the wheel is empty.
    pub fn timeout(&self, clock: &Clock, now: Instant) -> Option<Duration> {
        self.next_due
            .map(|due| clock.instant_of(due).saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Advances and settles like a worker does, returning the keys due.
    fn run(wheel: &mut Wheel, timers: &mut [Timer], now: Tick) -> Vec<usize> {
        let mut expired = Vec::new();
        wheel.advance(now, &mut expired);
        let mut due = Vec::new();
        for e in &expired {
            if wheel.settle(e, &mut timers[e.key], now) == Settled::Due {
                due.push(e.key);
            }
        }
        due
    }

    #[test]
    fn ticks_round_up_and_zero_means_never() {
        assert_eq!(ticks(Duration::ZERO), NEVER);
        assert_eq!(ticks(Duration::from_millis(1)), 1);
        assert_eq!(ticks(Duration::from_millis(100)), 1);
        assert_eq!(ticks(Duration::from_millis(101)), 2);
        assert_eq!(ticks(Duration::from_secs(3600)), 36_000);
        assert_eq!(deadline(10, Duration::ZERO), NEVER);
        assert_eq!(deadline(10, Duration::from_secs(1)), 20);
    }

    #[test]
    fn fires_at_deadline_not_before() {
        let mut wheel = Wheel::new(0);
        let mut timers = vec![Timer::new(1)];
        wheel.arm(0, &mut timers[0], 5);
        assert_eq!(run(&mut wheel, &mut timers, 4), Vec::<usize>::new());
        assert_eq!(run(&mut wheel, &mut timers, 5), vec![0]);
        assert_eq!(
            run(&mut wheel, &mut timers, 6),
            Vec::<usize>::new(),
            "fires once"
        );
    }

    #[test]
    fn later_deadline_is_a_store_and_rearms() {
        let mut wheel = Wheel::new(0);
        let mut timers = vec![Timer::new(1)];
        wheel.arm(0, &mut timers[0], 5);
        wheel.arm(0, &mut timers[0], 9);
        assert_eq!(wheel.len, 1, "moving later inserts nothing");
        assert!(run(&mut wheel, &mut timers, 5).is_empty());
        assert!(run(&mut wheel, &mut timers, 8).is_empty());
        assert_eq!(run(&mut wheel, &mut timers, 9), vec![0]);
    }

    #[test]
    fn earlier_deadline_makes_old_entry_stale() {
        let mut wheel = Wheel::new(0);
        let mut timers = vec![Timer::new(1)];
        wheel.arm(0, &mut timers[0], 50);
        wheel.arm(0, &mut timers[0], 3);
        assert_eq!(run(&mut wheel, &mut timers, 3), vec![0]);
        wheel.arm(0, &mut timers[0], 100);
        assert!(
            run(&mut wheel, &mut timers, 50).is_empty(),
            "old entry at 50 is stale"
        );
        assert_eq!(run(&mut wheel, &mut timers, 100), vec![0]);
    }

    #[test]
    fn reused_slab_slot_is_told_apart_by_serial() {
        let mut wheel = Wheel::new(0);
        let mut timers = vec![Timer::new(1)];
        wheel.arm(0, &mut timers[0], 5);
        timers[0] = Timer::new(2);
        wheel.arm(0, &mut timers[0], 20);
        assert!(run(&mut wheel, &mut timers, 5).is_empty());
        assert_eq!(run(&mut wheel, &mut timers, 20), vec![0]);
    }

    #[test]
    fn deadlines_beyond_one_revolution() {
        let mut wheel = Wheel::new(0);
        let mut timers = vec![Timer::new(1), Timer::new(2)];
        let hour = ticks(Duration::from_secs(3600));
        wheel.arm(0, &mut timers[0], hour);
        wheel.arm(1, &mut timers[1], SLOTS + 7);
        let mut fired = Vec::new();
        for now in 1..=hour {
            for key in run(&mut wheel, &mut timers, now) {
                fired.push((key, now));
            }
        }
        assert_eq!(fired, vec![(1, SLOTS + 7), (0, hour)]);
    }

    #[test]
    fn late_advance_catches_up_and_disarm_drops() {
        let mut wheel = Wheel::new(0);
        let mut timers = vec![Timer::new(1), Timer::new(2), Timer::new(3)];
        wheel.arm(0, &mut timers[0], 3);
        wheel.arm(1, &mut timers[1], 7);
        wheel.arm(2, &mut timers[2], 8);
        Wheel::disarm(&mut timers[2]);
        let mut due = run(&mut wheel, &mut timers, 5000);
        due.sort();
        assert_eq!(due, vec![0, 1]);
        assert_eq!(wheel.len, 0);
        assert_eq!(wheel.next_due, None);
    }

    #[test]
    fn timeout_points_at_next_slot() {
        let clock = Clock::new();
        let mut wheel = Wheel::new(0);
        assert_eq!(wheel.timeout(&clock, clock.instant_of(0)), None);
        let mut timer = Timer::new(1);
        wheel.arm(0, &mut timer, 30);
        assert_eq!(wheel.timeout(&clock, clock.instant_of(10)), Some(TICK * 20));
        assert_eq!(
            wheel.timeout(&clock, clock.instant_of(40)),
            Some(Duration::ZERO),
            "overdue means poll without sleeping"
        );
    }
}
