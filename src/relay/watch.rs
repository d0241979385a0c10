//! What a tunnel keeps when its route asks for more than relaying: when
//! each peer was last heard from, the proxy's own Pings and the Pongs it
//! waits for, how far the client's current message has grown, and the
//! token buckets of its rate limits. One per watched tunnel, held in the
//! worker's [`Watches`] so that a pair stays small when its route asks
//! for nothing.
//!
//! Everything here stands on the frame tracker (`framing/frames.rs`): a
//! Ping goes out only between two frames toward its peer, a Pong is looked
//! for only at a frame boundary, and message sizes add up the lengths in
//! frame headers. A direction whose bytes are not frames gets none of it.

use std::time::Duration;

use slab::Slab;

use crate::buffer::{Buf, Full};
use crate::config::TunnelPolicy;
use crate::framing::frames::{Header, Verdict, GOING_AWAY};
use crate::timer::{self, Tick, NEVER};

/// Length of the payload of the proxy's Pings: long enough that a Pong of
/// the client's own is not taken for the proxy's by chance.
pub const PING_PAYLOAD: usize = 8;

/// The longest frame the proxy pings or waits for: a masked Ping or Pong
/// with its payload (2 + 4 + 8 bytes).
pub const PING_FRAME: usize = 2 + 4 + PING_PAYLOAD;

/// Opcodes (RFC 6455 §5.2).
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

/// Close status 1008, Policy Violation (RFC 6455 §7.4.1): sent to a client
/// kept over its rate limit too long.
pub const POLICY_VIOLATION: u16 = 1008;

/// Close status 1009, Message Too Big (RFC 6455 §7.4.1).
pub const MESSAGE_TOO_BIG: u16 = 1009;

/// The two peers of a tunnel, as indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Client = 0,
    Upstream = 1,
}

impl Peer {
    /// The peer a direction's frames come from when it reads `masked`
    /// frames (client to upstream).
    pub fn source_of(masked: bool) -> Peer {
        if masked {
            Peer::Client
        } else {
            Peer::Upstream
        }
    }

    pub fn other(self) -> Peer {
        match self {
            Peer::Client => Peer::Upstream,
            Peer::Upstream => Peer::Client,
        }
    }

    /// Frames toward this peer are masked when it is the upstream.
    fn masked_toward(self) -> bool {
        self == Peer::Upstream
    }
}

/// Where the proxy's pinging of one peer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pinging {
    /// Off for this peer.
    Off,
    /// Heard from lately: nothing to do until the interval passes.
    Quiet,
    /// Silent for an interval: a Ping goes out at the next boundary
    /// toward the peer.
    Wanted,
    /// The Ping went out at this tick: its Pong is taken out of the
    /// stream when it comes, until the timeout passes.
    Sent(Tick),
}

/// Why the tunnel must end by the route's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breach {
    /// A client message grew past `max_message_bytes`.
    TooBig,
    /// The client stayed over its rate limit for `rate_limit_close_after`.
    Rate,
}

impl Breach {
    /// The status of the Close the client gets.
    pub fn code(self) -> u16 {
        match self {
            Breach::TooBig => MESSAGE_TOO_BIG,
            Breach::Rate => POLICY_VIOLATION,
        }
    }

    pub fn reason(self) -> &'static [u8] {
        match self {
            Breach::TooBig => b"message too big",
            Breach::Rate => b"rate limit exceeded",
        }
    }
}

/// What a deadline asks of the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Nothing yet: the next deadline is this tick.
    Later(Tick),
    /// A Ping is wanted toward this peer: pump the direction toward it.
    Ping(Peer),
    /// Silent past its Ping's timeout: the peer is gone.
    Dead(Peer),
    /// No byte either way for the idle timeout.
    Idle,
    /// The tunnel lived its lifetime: drain it.
    Lifetime,
    /// A throttled client may be read again.
    Resume,
    /// The client stayed over its rate limit too long.
    Breach(Breach),
}

/// A token bucket in thousandths of a unit, which may go into debt by
/// one read's worth: the rate holds on average, nothing is cut short.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Thousandths of a unit per tick.
    per_tick: u64,
    /// Most thousandths it holds.
    cap: i64,
    level: i64,
}

impl Bucket {
    fn new(per_s: u64, burst: u64) -> Bucket {
        let per_tick = per_s.saturating_mul(1000) / (1000 / timer::TICK.as_millis() as u64);
        let cap = i64::try_from(burst.saturating_mul(1000)).unwrap_or(i64::MAX);
        Bucket {
            per_tick: per_tick.max(1),
            cap,
            level: cap,
        }
    }

    fn refill(&mut self, ticks: Tick) {
        let add = i64::try_from(self.per_tick.saturating_mul(u64::from(ticks))).unwrap_or(i64::MAX);
        self.level = self.level.saturating_add(add).min(self.cap);
    }

    fn take(&mut self, units: u64) {
        let units = i64::try_from(units.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.level = self.level.saturating_sub(units);
    }

    /// Whole units available now (0 in debt).
    fn available(&self) -> u64 {
        (self.level.max(0) / 1000) as u64
    }

    /// Ticks until at least one unit is there again.
    fn ticks_to_one(&self) -> Tick {
        let short = 1000 - self.level.min(1000);
        (short as u64)
            .div_ceil(self.per_tick)
            .min(u64::from(NEVER - 1)) as Tick
    }
}

/// The client's rate limits.
#[derive(Debug)]
struct Limiter {
    messages: Option<Bucket>,
    bytes: Option<Bucket>,
    refilled: Tick,
    /// Since when reading the client has been held back without the
    /// client once running dry; `NEVER` when it is not.
    over_since: Tick,
    close_after: Tick,
    /// Client bytes read past a rate pause, not yet followed.
    stash: Option<Buf>,
}

/// One watched tunnel's state.
#[derive(Debug)]
pub struct Watch {
    /// The worker's clock, set before every turn.
    pub now: Tick,
    idle: Tick,
    ping_every: Tick,
    ping_grace: Tick,
    pinging: [Pinging; 2],
    heard: [Tick; 2],
    heard_any: Tick,
    lifetime_end: Tick,
    max_message: u64,
    /// Payload bytes of the client's current message so far.
    message: u64,
    /// Boxed: most watched routes have no rate limit.
    limiter: Option<Box<Limiter>>,
    /// Reading the client is held back by the rate limits.
    throttled: bool,
    breach: Option<Breach>,
    end: Option<End>,
    /// Pings written since the tunnel last counted them.
    pings: u8,
}

/// Why the policy drains a tunnel, besides a breach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Lifetime,
    /// This peer did not answer its Ping.
    Dead(Peer),
}

impl Watch {
    /// A tunnel opening at `now` on a route with `policy`; `idle` is the
    /// global idle timeout, which the route may override; `jitter` picks
    /// this tunnel's share of the lifetime's jitter (0..=1).
    pub fn new(policy: &TunnelPolicy, idle: Duration, now: Tick, jitter: f64) -> Watch {
        let ping = policy.ping;
        let on = |on: bool| if on { Pinging::Quiet } else { Pinging::Off };
        let lifetime_end = policy.lifetime.map_or(NEVER, |l| {
            timer::deadline(now, l.max + l.jitter.mul_f64(jitter.clamp(0.0, 1.0)))
        });
        let limiter = policy.rate.map(|r| {
            Box::new(Limiter {
                messages: r
                    .messages_per_s
                    .map(|m| Bucket::new(u64::from(m), u64::from(r.message_burst))),
                bytes: r.bytes_per_s.map(|b| Bucket::new(b, r.byte_burst)),
                refilled: now,
                over_since: NEVER,
                close_after: r.close_after.map_or(NEVER, timer::ticks),
                stash: None,
            })
        });
        Watch {
            now,
            idle: timer::ticks(policy.idle.unwrap_or(idle)),
            ping_every: ping.map_or(NEVER, |p| timer::ticks(p.interval)),
            ping_grace: ping.map_or(NEVER, |p| timer::ticks(p.timeout)),
            pinging: [on(ping.is_some()), on(ping.is_some_and(|p| p.upstream))],
            heard: [now; 2],
            heard_any: now,
            lifetime_end,
            max_message: policy.max_message_bytes.unwrap_or(u64::MAX),
            message: 0,
            limiter,
            throttled: false,
            breach: None,
            end: None,
            pings: 0,
        }
    }

    /// The idle timeout this tunnel keeps.
    pub fn idle(&self) -> Tick {
        self.idle
    }

    /// Bytes came from `peer` (or went to it): it is alive.
    pub fn heard(&mut self, peer: Peer) {
        self.heard[peer as usize] = self.now;
        self.heard_any = self.now;
        if self.pinging[peer as usize] == Pinging::Wanted {
            self.pinging[peer as usize] = Pinging::Quiet;
        }
    }

    /// Bytes went to `peer`: the tunnel is not idle, though the peer is
    /// not heard from.
    pub fn moved(&mut self) {
        self.heard_any = self.now;
    }

    /// The earliest tick something is due, and what.
    pub fn due(&mut self) -> Due {
        let now = self.now;
        if let Some(b) = self.breach {
            return Due::Breach(b);
        }
        let mut next = NEVER;
        let mut at = |tick: Tick, what: Due| -> Option<Due> {
            if tick <= now {
                return Some(what);
            }
            next = next.min(tick);
            None
        };
        for peer in [Peer::Client, Peer::Upstream] {
            let i = peer as usize;
            if self.pinging[i] == Pinging::Off {
                continue;
            }
            let silent = self.heard[i].saturating_add(self.ping_every);
            if let Some(d) = at(silent.saturating_add(self.ping_grace), Due::Dead(peer)) {
                return d;
            }
            if let Pinging::Sent(sent) = self.pinging[i] {
                // Past its timeout a Pong is no longer waited for: a late
                // one passes to the other peer like any unsolicited Pong.
                if sent.saturating_add(self.ping_grace) <= now {
                    self.pinging[i] = Pinging::Quiet;
                }
            }
            if self.pinging[i] == Pinging::Quiet {
                if let Some(d) = at(silent, Due::Ping(peer)) {
                    self.pinging[i] = Pinging::Wanted;
                    return d;
                }
            }
        }
        if let Some(d) = at(self.lifetime_end, Due::Lifetime) {
            return d;
        }
        if self.idle != NEVER {
            if let Some(d) = at(self.heard_any.saturating_add(self.idle), Due::Idle) {
                return d;
            }
        }
        if let Some(l) = &self.limiter {
            if l.over_since != NEVER {
                let close = l.over_since.saturating_add(l.close_after);
                if let Some(d) = at(close, Due::Breach(Breach::Rate)) {
                    self.breach = Some(Breach::Rate);
                    return d;
                }
            }
        }
        if self.throttled {
            let resume = self.resume_at();
            if let Some(d) = at(resume, Due::Resume) {
                return d;
            }
        }
        Due::Later(next)
    }

    /// A Ping is due toward `peer`, to go out at its next frame boundary.
    pub fn ping_wanted(&self, peer: Peer) -> bool {
        self.pinging[peer as usize] == Pinging::Wanted
    }

    /// A Pong from `peer` is waited for.
    pub fn pong_awaited(&self, peer: Peer) -> bool {
        matches!(self.pinging[peer as usize], Pinging::Sent(_))
    }

    /// Writes the Ping toward `peer` and counts it sent.
    pub fn write_ping(&mut self, peer: Peer, out: &mut Buf, key: [u8; 4]) -> Result<(), Full> {
        write_control(out, OP_PING, peer.masked_toward(), key)?;
        self.pinging[peer as usize] = Pinging::Sent(self.now);
        self.pings = self.pings.saturating_add(1);
        Ok(())
    }

    /// Pings written since the last call, for the route's counter.
    pub fn take_pings(&mut self) -> u8 {
        std::mem::take(&mut self.pings)
    }

    /// Reads the bytes at a frame boundary from `peer` (peeked, not taken):
    /// whether they are the Pong to the proxy's Ping.
    pub fn pong(&self, peer: Peer, ahead: &[u8]) -> Pong {
        let masked = peer == Peer::Client;
        let mut want = [0u8; PING_FRAME];
        let key = match masked {
            true if ahead.len() >= 6 => [ahead[2], ahead[3], ahead[4], ahead[5]],
            _ => [0; 4],
        };
        let len = {
            let mut out = Buf::with_capacity(PING_FRAME);
            // A control frame always fits its own length's buffer.
            let _ = write_control(&mut out, OP_PONG, masked, key);
            want[..out.len()].copy_from_slice(out.data());
            out.len()
        };
        // Before the whole masking key is in, any key will do.
        let keyed = if masked { 6 } else { 2 };
        if masked && ahead.len() < keyed {
            let seen = ahead.len().min(2);
            return match ahead[..seen] == want[..seen] {
                true => Pong::Partial,
                false => Pong::Other,
            };
        }
        let seen = ahead.len().min(len);
        if ahead[..seen] != want[..seen] {
            Pong::Other
        } else if seen < len {
            Pong::Partial
        } else {
            Pong::Ours(len)
        }
    }

    /// The proxy's Pong from `peer` came and was taken out.
    pub fn ponged(&mut self, peer: Peer) {
        self.heard(peer);
        self.pinging[peer as usize] = Pinging::Quiet;
    }

    /// Follows a frame header from the client: message sizes and the
    /// message rate. A frame that breaks the size limit is refused; a
    /// message that begins when the rate allows none waits.
    pub fn client_header(&mut self, header: Header) -> Verdict {
        let message = match header.opcode() {
            0x1 | 0x2 => header.len,
            0x0 => self.message.saturating_add(header.len),
            _ => return Verdict::Pass,
        };
        if message > self.max_message && self.breach.is_none() {
            self.breach = Some(Breach::TooBig);
            return Verdict::Refuse;
        }
        if header.opcode() != 0x0 && self.breach.is_none() {
            if let Some(m) = self.limiter.as_mut().and_then(|l| l.messages.as_mut()) {
                if m.available() == 0 {
                    self.throttled = true;
                    return Verdict::Pause;
                }
                m.take(1);
            }
        }
        self.message = message;
        Verdict::Pass
    }

    /// Keeps client bytes read past a pause until the rate allows them.
    pub fn stash(&mut self, bytes: Buf) {
        let now = self.now;
        let Some(l) = self.limiter.as_mut() else {
            debug_assert!(false, "only a rate pauses");
            return;
        };
        debug_assert!(l.stash.is_none(), "one pause at a time");
        l.stash = Some(bytes);
        if l.over_since == NEVER {
            l.over_since = now;
        }
    }

    /// The client bytes kept from a pause, once the rate allows some.
    pub fn unstash(&mut self) -> Option<Buf> {
        if !self.has_stash() || self.client_allowance() == 0 {
            return None;
        }
        self.limiter.as_mut().and_then(|l| l.stash.take())
    }

    /// Client bytes are kept from a pause.
    pub fn has_stash(&self) -> bool {
        self.limiter.as_ref().is_some_and(|l| l.stash.is_some())
    }

    /// Gives the kept bytes' buffer back.
    pub fn release(&mut self, pool: &mut crate::buffer::Pool) {
        if let Some(buf) = self.limiter.as_mut().and_then(|l| l.stash.take()) {
            pool.give(buf);
        }
    }

    /// The route limits the client's messages or rate: its bytes must be
    /// seen frame by frame.
    pub fn follows_client(&self) -> bool {
        self.max_message != u64::MAX || self.limiter.is_some()
    }

    /// How many bytes the client may send now (`usize::MAX`: no byte
    /// limit); 0 throttles it.
    pub fn client_allowance(&mut self) -> usize {
        if self.breach.is_some() {
            // Ending: read on to the boundary the Close goes after.
            self.throttled = false;
            return usize::MAX;
        }
        let now = self.now;
        let Some(l) = self.limiter.as_mut() else {
            return usize::MAX;
        };
        let ticks = now.saturating_sub(l.refilled);
        if ticks > 0 {
            l.refilled = now;
            for b in [&mut l.messages, &mut l.bytes].into_iter().flatten() {
                b.refill(ticks);
            }
        }
        // Out of messages, only a stash's pause holds the client back: a
        // message under way may go on.
        let messages_out = l.stash.is_some() && l.messages.is_some_and(|m| m.available() == 0);
        let allow = match (messages_out, &l.bytes) {
            (true, _) => 0,
            (false, Some(b)) => usize::try_from(b.available()).unwrap_or(usize::MAX),
            (false, None) => usize::MAX,
        };
        self.throttled = allow == 0;
        if self.throttled && l.over_since == NEVER {
            l.over_since = now;
        }
        allow
    }

    /// The client sent `n` bytes; `dry`: it has nothing more now, so it is
    /// not over its limit.
    pub fn client_sent(&mut self, n: usize, dry: bool) {
        if let Some(l) = self.limiter.as_mut() {
            if let Some(b) = l.bytes.as_mut() {
                b.take(n as u64);
            }
            if dry {
                l.over_since = NEVER;
            }
        }
    }

    /// The rate limits hold the client back.
    pub fn is_throttled(&self) -> bool {
        self.throttled
    }

    /// When a throttled client may be read again.
    fn resume_at(&self) -> Tick {
        let Some(l) = &self.limiter else {
            return self.now;
        };
        let wait = [l.messages, l.bytes]
            .into_iter()
            .flatten()
            .map(|b| b.ticks_to_one())
            .max()
            .unwrap_or(0);
        l.refilled.saturating_add(wait.max(1))
    }

    /// The policy ends the tunnel for `why` (its drain carries the reason).
    pub fn end(&mut self, why: End) {
        self.end = Some(why);
    }

    /// The status and reason of the Close frame toward `to` that ends the
    /// tunnel by the policy; `None`: a drain's own.
    pub fn close_for(&self, to: Peer) -> Option<(u16, &'static [u8])> {
        if let Some(b) = self.breach {
            return Some(match to {
                Peer::Client => (b.code(), b.reason()),
                Peer::Upstream => (GOING_AWAY, b"client broke the route's limits"),
            });
        }
        match self.end? {
            End::Lifetime => Some((GOING_AWAY, b"tunnel lifetime reached")),
            End::Dead(_) => Some((GOING_AWAY, b"peer not answering")),
        }
    }

    /// Why the policy ends the tunnel, if it does.
    pub fn breach(&self) -> Option<Breach> {
        self.breach
    }

    /// Directions that must take the copy relay now, because the proxy
    /// adds or takes out frames there or follows every header: toward
    /// `to`.
    pub fn needs_copy(&self, to: Peer) -> bool {
        let from = to.other();
        self.ping_wanted(to)
            || self.pong_awaited(from)
            || (from == Peer::Client && self.follows_client())
    }
}

/// What the bytes at a boundary are, against the Pong the proxy awaits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pong {
    /// The whole Pong, this long.
    Ours(usize),
    /// A beginning that could still be it.
    Partial,
    /// Anything else: relay it.
    Other,
}

/// The proxy's Ping payload: the same for every tunnel of the process,
/// unlikely for anyone else's.
fn payload() -> [u8; PING_PAYLOAD] {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::OnceLock;
    static PAYLOAD: OnceLock<[u8; PING_PAYLOAD]> = OnceLock::new();
    *PAYLOAD.get_or_init(|| RandomState::new().hash_one(0x7773_7078u64).to_ne_bytes())
}

/// A Ping or Pong with the proxy's payload, masked with `key` when `masked`.
fn write_control(out: &mut Buf, opcode: u8, masked: bool, key: [u8; 4]) -> Result<(), Full> {
    let mut body = payload();
    if masked {
        out.put(&[0x80 | opcode, 0x80 | PING_PAYLOAD as u8])?;
        out.put(&key)?;
        for (i, b) in body.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    } else {
        out.put(&[0x80 | opcode, PING_PAYLOAD as u8])?;
    }
    out.put(&body)
}

/// A tunnel's share of its lifetime's jitter, in 0..=1.
pub fn jitter() -> f64 {
    super::random() as f64 / u64::MAX as f64
}

/// The worker's watched tunnels, by the index each tunnel keeps.
#[derive(Debug, Default)]
pub struct Watches {
    slab: Slab<Watch>,
}

impl Watches {
    pub fn insert(&mut self, watch: Watch) -> u32 {
        let key = self.slab.insert(watch);
        u32::try_from(key).expect("fewer watched tunnels than pairs, which fit a u32")
    }

    pub fn get_mut(&mut self, key: u32) -> Option<&mut Watch> {
        self.slab.get_mut(key as usize)
    }

    pub fn remove(&mut self, key: u32, pool: &mut crate::buffer::Pool) {
        if self.slab.contains(key as usize) {
            self.slab.remove(key as usize).release(pool);
        }
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Ping, Rate};

    fn pinged(interval: u64, timeout: u64) -> Watch {
        let policy = TunnelPolicy {
            ping: Some(Ping {
                interval: Duration::from_secs(interval),
                timeout: Duration::from_secs(timeout),
                upstream: false,
            }),
            ..TunnelPolicy::default()
        };
        Watch::new(&policy, Duration::ZERO, 0, 0.0)
    }

    /// A watch is kept for every tunnel of a watched route, beside its
    /// pair (idle-pair RSS target: 512 bytes all told).
    #[test]
    fn a_watch_stays_small() {
        let size = std::mem::size_of::<Watch>();
        assert!(size <= 80, "Watch grew to {size} bytes");
    }

    #[test]
    fn a_silent_client_is_pinged_then_found_dead() {
        let mut w = pinged(1, 2);
        assert_eq!(w.due(), Due::Later(10));
        w.now = 10;
        assert_eq!(w.due(), Due::Ping(Peer::Client));
        assert!(w.ping_wanted(Peer::Client));
        let mut out = Buf::with_capacity(32);
        w.write_ping(Peer::Client, &mut out, [0; 4]).unwrap();
        assert_eq!(out.data()[..2], [0x89, 8]);
        assert!(w.pong_awaited(Peer::Client));
        assert_eq!(w.due(), Due::Later(30));
        w.now = 30;
        assert_eq!(w.due(), Due::Dead(Peer::Client));
    }

    #[test]
    fn any_byte_counts_as_life() {
        let mut w = pinged(1, 2);
        w.now = 10;
        assert_eq!(w.due(), Due::Ping(Peer::Client));
        w.now = 15;
        w.heard(Peer::Client);
        assert!(!w.ping_wanted(Peer::Client), "a wanted Ping is dropped");
        assert_eq!(w.due(), Due::Later(25));
    }

    #[test]
    fn only_the_proxys_pong_is_recognised() {
        let mut w = pinged(1, 2);
        w.now = 10;
        w.due();
        let mut ping = Buf::with_capacity(32);
        w.write_ping(Peer::Client, &mut ping, [0; 4]).unwrap();
        // The client's Pong echoes the payload, masked.
        let key = [9, 8, 7, 6];
        let mut pong = vec![0x8a, 0x88];
        pong.extend_from_slice(&key);
        pong.extend(
            ping.data()[2..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4]),
        );
        assert_eq!(w.pong(Peer::Client, &pong), Pong::Ours(PING_FRAME));
        assert_eq!(w.pong(Peer::Client, &pong[..5]), Pong::Partial);
        let mut other = pong.clone();
        other[13] ^= 1;
        assert_eq!(w.pong(Peer::Client, &other), Pong::Other);
        // The same payload unmasked is not a client's frame.
        assert_eq!(w.pong(Peer::Client, &[0x8a, 0x08, 1]), Pong::Other);
        assert_eq!(w.pong(Peer::Client, &[0x81, 0x88]), Pong::Other);
    }

    #[test]
    fn a_message_is_limited_across_its_fragments() {
        let policy = TunnelPolicy {
            max_message_bytes: Some(1000),
            ..TunnelPolicy::default()
        };
        let mut w = Watch::new(&policy, Duration::ZERO, 0, 0.0);
        let h = |first: u8, len: u64| Header { first, len };
        assert_eq!(w.client_header(h(0x01, 400)), Verdict::Pass);
        assert_eq!(
            w.client_header(h(0x89, 5)),
            Verdict::Pass,
            "a Ping between fragments"
        );
        assert_eq!(w.client_header(h(0x00, 400)), Verdict::Pass);
        assert_eq!(w.client_header(h(0x80, 201)), Verdict::Refuse);
        assert_eq!(w.breach(), Some(Breach::TooBig));
        let mut w = Watch::new(&policy, Duration::ZERO, 0, 0.0);
        for _ in 0..10 {
            assert_eq!(
                w.client_header(h(0x82, 1000)),
                Verdict::Pass,
                "each message on its own"
            );
        }
    }

    #[test]
    fn a_bucket_holds_the_rate_on_average() {
        let policy = TunnelPolicy {
            rate: Some(Rate {
                messages_per_s: None,
                bytes_per_s: Some(1000),
                message_burst: 0,
                byte_burst: 100,
                close_after: Some(Duration::from_secs(1)),
            }),
            ..TunnelPolicy::default()
        };
        let mut w = Watch::new(&policy, Duration::ZERO, 0, 0.0);
        let mut sent = 0;
        for tick in 0..100 {
            w.now = tick;
            let allow = w.client_allowance();
            let n = allow.min(150);
            sent += n;
            w.client_sent(n, false);
            if w.breach().is_some() {
                break;
            }
        }
        // 100 of burst, then 100 bytes a tick for 99 ticks, give or take
        // one read of debt.
        assert!((9900..=10100).contains(&sent), "{sent}");
        let mut w = Watch::new(&policy, Duration::ZERO, 0, 0.0);
        w.client_sent(500, false);
        assert_eq!(w.client_allowance(), 0);
        assert!(w.is_throttled());
        assert_eq!(w.due(), Due::Later(5));
        w.now = 10;
        assert_eq!(w.due(), Due::Breach(Breach::Rate));
    }

    #[test]
    fn lifetimes_spread_over_the_jitter() {
        let policy = TunnelPolicy {
            lifetime: Some(crate::config::Lifetime {
                max: Duration::from_secs(10),
                jitter: Duration::from_secs(10),
            }),
            ..TunnelPolicy::default()
        };
        let mut early = Watch::new(&policy, Duration::ZERO, 0, 0.0);
        let mut late = Watch::new(&policy, Duration::ZERO, 0, 1.0);
        assert_eq!(early.due(), Due::Later(100));
        assert_eq!(late.due(), Due::Later(200));
    }
}
