//! WebSocket frame boundaries in one direction of a tunnel (RFC 6455
//! §5.2): header lengths only, never payload. A graceful drain sends its
//! Close frame only between two frames, so each direction knows at every
//! moment whether the bytes it has relayed end on a boundary.
//!
//! The copy relay feeds every chunk it reads through [`Frames::advance`],
//! which skips a payload in one step: the cost is a few branches per frame,
//! not per byte. The splice relay cannot see the bytes it moves, so it
//! keeps the count by splicing no further than the end of the current
//! frame and peeking at the next header (at most [`MAX_HEADER`] bytes,
//! `recv(MSG_PEEK)`) before splicing on: one small extra system call per
//! spliced frame, and no byte copied.
//!
//! Bytes that cannot be WebSocket frames (a reserved opcode, a control
//! frame that is fragmented or longer than 125 bytes, a mask bit on the
//! wrong side, a length with its top bit set) make the tracker *lost*: the
//! tunnel is relayed as before, and a drain ends it with a plain FIN
//! instead of a Close frame.

use crate::buffer::{Buf, Full};

/// Longest frame header: 2 bytes, an 8-byte extended length, a 4-byte
/// masking key.
pub const MAX_HEADER: usize = 14;

/// Close status 1001, Going Away: "an endpoint is going away, such as a
/// server going down" (RFC 6455 §7.4.1).
pub const GOING_AWAY: u16 = 1001;

/// Why a drain ends a direction: the reason its Close frame gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Going {
    /// The proxy is stopping (or handing its listeners to another).
    Shutdown,
    /// Health checks marked the upstream server down.
    ServerDown,
    /// A reload removed the tunnel's route or server.
    RouteRemoved,
}

impl Going {
    /// The reason sent with [`GOING_AWAY`].
    pub fn reason(self) -> &'static [u8] {
        match self {
            Going::Shutdown => b"proxy shutting down",
            Going::ServerDown => b"upstream server down",
            Going::RouteRemoved => b"route removed",
        }
    }

    fn bits(self) -> u8 {
        (match self {
            Going::Shutdown => 0,
            Going::ServerDown => 1,
            Going::RouteRemoved => 2,
        }) << GOING_SHIFT
    }

    fn from_bits(flags: u8) -> Going {
        match (flags & GOING_MASK) >> GOING_SHIFT {
            1 => Going::ServerDown,
            2 => Going::RouteRemoved,
            _ => Going::Shutdown,
        }
    }
}

/// Opcode of a Close frame (RFC 6455 §5.5.1).
const OP_CLOSE: u8 = 0x8;

/// The bytes are not WebSocket frames: boundaries are unknown.
const LOST: u8 = 1;
/// A drain is under way: stop at the next boundary.
const DRAIN: u8 = 2;
/// A Close frame went through: its sender is closing on its own, and a
/// second Close must not follow it.
const CLOSED: u8 = 4;
/// While draining, past the boundary: the source's own Close frame came,
/// so its closing handshake is done and nothing more will follow.
const ANSWERED: u8 = 8;
/// A drain stopped [`Frames::advance`] at a boundary. Kept apart from the
/// position: watching the dropped bytes for a Close moves it on.
const STOPPED: u8 = 16;
/// Two bits: the drain's [`Going`].
const GOING_SHIFT: u8 = 5;
const GOING_MASK: u8 = 0b11 << GOING_SHIFT;

/// Where one direction's byte stream stands among its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frames {
    /// Payload bytes of the current frame still to come; while a header is
    /// read, its extended length accumulates here.
    left: u64,
    /// Header bytes read of the current frame; 0 outside a header.
    got: u8,
    /// The current header's length once its second byte is known, else 0.
    need: u8,
    /// The current frame's first byte: FIN, RSV and opcode.
    first: u8,
    flags: u8,
    /// This direction's frames are masked (client to server, RFC 6455
    /// §5.3). A `bool`, not a flag bit: its spare values let `Body` keep
    /// its tag inside, so a tunnel's flow stays 64 bytes.
    masked: bool,
}

/// How far the splice relay may move a direction's bytes in one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// As far as it likes: the bytes are not frames.
    Any,
    /// This many bytes, to the end of the current frame's payload.
    Payload(u64),
    /// The next bytes are (part of) a header: peek at them first.
    Header,
}

/// A frame header, as [`Frames::advance_with`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// FIN, RSV and opcode.
    pub first: u8,
    /// Payload length.
    pub len: u64,
}

impl Header {
    pub fn opcode(self) -> u8 {
        self.first & 0x0f
    }

    /// The last frame of its message.
    pub fn fin(self) -> bool {
        self.first & 0x80 != 0
    }
}

/// What the caller of [`Frames::advance_with`] makes of a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The frame goes on.
    Pass,
    /// Not yet: stop before the frame, which is followed again later.
    Pause,
    /// Never: the direction ends before the frame.
    Refuse,
}

/// How far [`Frames::advance_with`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Followed {
    /// This many bytes belong to the direction.
    All(usize),
    /// The bytes before `at` belong; the frame at `at` waits, the
    /// tracker standing before it.
    Paused { at: usize },
    /// A header was refused: the bytes before `at` belong. `clean`: the
    /// refused frame began at `at`; else it began in bytes followed
    /// earlier, which went on already, and `at` is 0.
    Refused { at: usize, clean: bool },
}

/// What a peek at the bytes ahead showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ahead {
    /// A whole header: the current frame ends this many bytes ahead,
    /// header included.
    Frame(u64),
    /// The header is not all there yet.
    Partial,
    /// Not a WebSocket frame.
    Lost,
}

impl Frames {
    /// A direction whose frames carry a masking key (`masked`: client to
    /// upstream) or not (upstream to client).
    pub fn new(masked: bool) -> Frames {
        Frames {
            left: 0,
            got: 0,
            need: 0,
            first: 0,
            flags: 0,
            masked,
        }
    }

    /// Follows `bytes` through the frames; returns how many belong to this
    /// direction: all of them, unless a drain is under way, then those up
    /// to the next boundary.
    pub fn advance(&mut self, bytes: &[u8]) -> usize {
        match self.advance_with(bytes, |_| Verdict::Pass) {
            Followed::All(n) => n,
            Followed::Paused { at } | Followed::Refused { at, .. } => at,
        }
    }

    /// [`Frames::advance`], showing `seen` every header as it completes;
    /// when `seen` refuses one or pauses before it, stops before that
    /// frame.
    pub fn advance_with(
        &mut self,
        bytes: &[u8],
        mut seen: impl FnMut(Header) -> Verdict,
    ) -> Followed {
        if self.flags & (DRAIN | STOPPED) == DRAIN | STOPPED {
            return Followed::All(0);
        }
        let mut i = 0;
        // Where the header being read began among `bytes`, if it did.
        let mut head_at = None;
        // The tracker before that header, to go back to on a pause.
        let mut before = *self;
        while i < bytes.len() {
            if self.flags & LOST != 0 {
                return Followed::All(bytes.len());
            }
            if self.got == 0 {
                if self.left > 0 {
                    let take = self.left.min((bytes.len() - i) as u64);
                    self.left -= take;
                    i += take as usize;
                    continue;
                }
                if self.flags & DRAIN != 0 {
                    self.flags |= STOPPED;
                    break;
                }
                head_at = Some(i);
                before = *self;
            }
            self.header_byte(bytes[i]);
            i += 1;
            if self.got == 0 && self.flags & LOST == 0 {
                let header = Header {
                    first: self.first,
                    len: self.left,
                };
                match seen(header) {
                    Verdict::Pass => {}
                    // A header begun in bytes followed earlier has gone on
                    // in part: the frame cannot wait any more.
                    Verdict::Pause if head_at.is_none() => {}
                    Verdict::Pause => {
                        *self = before;
                        return Followed::Paused {
                            at: head_at.unwrap_or(0),
                        };
                    }
                    Verdict::Refuse => {
                        return Followed::Refused {
                            at: head_at.unwrap_or(0),
                            clean: head_at.is_some(),
                        }
                    }
                }
            }
        }
        Followed::All(i)
    }

    /// Counts `n` payload bytes the splice relay moved; they lie within the
    /// current frame ([`Frames::reach`] said so).
    pub fn skip(&mut self, n: u64) {
        if self.flags & LOST == 0 {
            debug_assert!(self.got == 0 && n <= self.left, "spliced past a frame");
            self.left -= n.min(self.left);
        }
    }

    /// How far the splice relay may go before it must look at a header.
    pub fn reach(&self) -> Reach {
        if self.flags & LOST != 0 {
            Reach::Any
        } else if self.got == 0 && self.left > 0 {
            Reach::Payload(self.left)
        } else {
            Reach::Header
        }
    }

    /// Reads the bytes ahead (`peeked`, not consumed) without moving: how
    /// far off the first frame that starts among them ends, so a splice
    /// can stop exactly there. At a boundary or in a header that is the
    /// current frame; in a payload whose last bytes are all in `peeked`,
    /// the frame after it.
    pub fn ahead(&self, peeked: &[u8]) -> Ahead {
        let mut probe = *self;
        probe.flags &= !DRAIN;
        let mut from = 0;
        if probe.got == 0 && probe.left > 0 {
            if probe.left >= peeked.len() as u64 {
                return Ahead::Partial;
            }
            from = probe.left as usize;
            probe.left = 0;
        }
        for (i, &b) in peeked.iter().enumerate().skip(from) {
            probe.header_byte(b);
            if probe.flags & LOST != 0 {
                return Ahead::Lost;
            }
            if probe.got == 0 {
                return Ahead::Frame(i as u64 + 1 + probe.left);
            }
        }
        Ahead::Partial
    }

    /// The bytes relayed so far end between two frames.
    pub fn at_boundary(&self) -> bool {
        self.got == 0 && self.left == 0 && self.flags & LOST == 0
    }

    pub fn is_lost(&self) -> bool {
        self.flags & LOST != 0
    }

    /// Ends the direction where it stands, inside a frame whose header was
    /// refused: at a boundary as far as the destination knows if the
    /// refused frame sent nothing on (`clean`), else lost, so that no
    /// Close frame follows a partial header.
    pub fn cut(&mut self, clean: bool) {
        self.got = 0;
        self.need = 0;
        self.left = 0;
        self.flags |= if clean { DRAIN | STOPPED } else { DRAIN | LOST };
    }

    /// Starts a drain: [`Frames::advance`] stops at the next boundary.
    pub fn drain(&mut self) {
        self.drain_for(Going::Shutdown);
    }

    /// [`Frames::drain`], its Close frame giving `going` as the reason.
    pub fn drain_for(&mut self, going: Going) {
        self.flags = (self.flags & !GOING_MASK) | DRAIN | going.bits();
    }

    pub fn is_draining(&self) -> bool {
        self.flags & DRAIN != 0
    }

    /// Draining, and the relayed bytes allow ending the direction now: on a
    /// boundary, or not frames at all.
    pub fn close_due(&self) -> bool {
        self.is_draining() && (self.flags & STOPPED != 0 || self.at_boundary() || self.is_lost())
    }

    /// Follows bytes the drain drops (read past the boundary, or after the
    /// Close frame went out) to spot the source's own Close frame. True
    /// once it has come: the source's side of the closing handshake is
    /// done.
    pub fn watch_close(&mut self, bytes: &[u8]) -> bool {
        if self.flags & (LOST | ANSWERED) == 0 {
            let before = self.flags & CLOSED;
            let drain = self.flags & DRAIN;
            self.flags &= !(DRAIN | CLOSED);
            self.advance(bytes);
            if self.flags & CLOSED != 0 {
                self.flags |= ANSWERED;
            }
            self.flags = (self.flags & !CLOSED) | before | drain;
        }
        self.flags & ANSWERED != 0
    }

    /// The source's Close frame came during the drain.
    pub fn answered(&self) -> bool {
        self.flags & ANSWERED != 0
    }

    /// Writes the Close frame (1001, Going Away) that ends this direction
    /// on a drain, masked with `key` toward an upstream. Writes nothing when
    /// the bytes are not frames or a Close already went this way: then the
    /// direction ends with FIN alone.
    pub fn write_close(&self, out: &mut Buf, key: [u8; 4]) -> Result<(), Full> {
        let reason = Going::from_bits(self.flags).reason();
        self.write_close_with(out, key, GOING_AWAY, reason)
    }

    /// [`Frames::write_close`] with another status and reason (at most 123
    /// bytes).
    pub fn write_close_with(
        &self,
        out: &mut Buf,
        key: [u8; 4],
        code: u16,
        reason: &[u8],
    ) -> Result<(), Full> {
        if self.flags & (LOST | CLOSED) != 0 {
            return Ok(());
        }
        let reason = &reason[..reason.len().min(123)];
        let mut payload = [0u8; 125];
        let payload = &mut payload[..2 + reason.len()];
        payload[..2].copy_from_slice(&code.to_be_bytes());
        payload[2..].copy_from_slice(reason);
        let len = payload.len() as u8;
        debug_assert!(len <= 125, "a control frame's payload fits in 125 bytes");
        if !self.masked {
            out.put(&[0x80 | OP_CLOSE, len])?;
            return out.put(payload);
        }
        out.put(&[0x80 | OP_CLOSE, 0x80 | len])?;
        out.put(&key)?;
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
        out.put(payload)
    }

    fn header_byte(&mut self, b: u8) {
        match self.got {
            0 => {
                // Data opcodes 0-2 and control opcodes 8-10; the rest are
                // reserved (RFC 6455 §5.2). RSV bits belong to extensions.
                if !matches!(b & 0x0f, 0x0..=0x2 | 0x8..=0xa) {
                    return self.lose();
                }
                self.first = b;
            }
            1 => {
                let masked = b & 0x80 != 0;
                if masked != self.masked {
                    return self.lose();
                }
                let len7 = b & 0x7f;
                let control = self.first & 0x08 != 0;
                // Control frames are never fragmented and carry at most 125
                // bytes (RFC 6455 §5.5).
                if control && (len7 > 125 || self.first & 0x80 == 0) {
                    return self.lose();
                }
                let extended = match len7 {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                self.need = 2 + extended + if masked { 4 } else { 0 };
                self.left = if extended == 0 { u64::from(len7) } else { 0 };
            }
            got => {
                let extended = self.need - 2 - if self.masked { 4 } else { 0 };
                if got < 2 + extended {
                    self.left = self.left << 8 | u64::from(b);
                }
            }
        }
        self.got += 1;
        if self.got == self.need {
            // "the most significant bit MUST be 0" (RFC 6455 §5.2).
            if self.left >> 63 != 0 {
                return self.lose();
            }
            if self.first & 0x0f == OP_CLOSE {
                self.flags |= CLOSED;
            }
            self.got = 0;
            self.need = 0;
        }
    }

    fn lose(&mut self) {
        self.flags |= LOST;
        self.got = 0;
        self.left = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame header: FIN + `opcode`, `len` encoded as short as possible,
    /// a mask key when `masked`.
    fn header(opcode: u8, len: u64, masked: bool) -> Vec<u8> {
        let mut h = vec![0x80 | opcode];
        let m = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => h.push(m | len as u8),
            126..=0xffff => {
                h.push(m | 126);
                h.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                h.push(m | 127);
                h.extend_from_slice(&len.to_be_bytes());
            }
        }
        if masked {
            h.extend_from_slice(&[1, 2, 3, 4]);
        }
        h
    }

    fn frame(opcode: u8, len: usize, masked: bool) -> Vec<u8> {
        let mut f = header(opcode, len as u64, masked);
        f.extend((0..len).map(|i| (i * 7) as u8));
        f
    }

    /// A stream of frames and the offsets where each one ends.
    fn stream(masked: bool) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for (op, len) in [
            (1, 5),
            (2, 0),
            (9, 3),
            (2, 126),
            (0x0, 300),
            (2, 70_000),
            (1, 125),
            (10, 0),
        ] {
            bytes.extend(frame(op, len, masked));
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    /// Deterministic chunk sizes from 1 to `max`.
    fn chunkings(len: usize, seed: u64, max: usize) -> Vec<usize> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut sizes = Vec::new();
        let mut total = 0;
        while total < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = ((x >> 33) as usize % max + 1).min(len - total);
            sizes.push(n);
            total += n;
        }
        sizes
    }

    #[test]
    fn boundaries_are_found_in_any_chunking() {
        for masked in [false, true] {
            let (bytes, ends) = stream(masked);
            for seed in 0..200 {
                let mut f = Frames::new(masked);
                let mut at = 0;
                for n in chunkings(bytes.len(), seed, 1 + (seed as usize % 40) * 100) {
                    assert_eq!(f.advance(&bytes[at..at + n]), n);
                    at += n;
                    assert_eq!(f.at_boundary(), ends.contains(&at), "at {at}, seed {seed}");
                }
                assert!(!f.is_lost());
            }
        }
    }

    #[test]
    fn a_drain_stops_at_the_next_boundary() {
        let (bytes, ends) = stream(true);
        for start in [0, 1, 3, 6, 200, 1000, 60_000, bytes.len() - 1] {
            let mut f = Frames::new(true);
            assert_eq!(f.advance(&bytes[..start]), start);
            f.drain();
            // Where the drain may stop: here on a boundary, else the end of
            // the frame under way.
            let next = match start {
                0 => 0,
                _ => *ends.iter().find(|&&e| e >= start).unwrap(),
            };
            let taken = f.advance(&bytes[start..]);
            assert_eq!(start + taken, next, "drain from {start}");
            assert!(f.close_due());
            assert_eq!(f.advance(&bytes[next..]), 0, "nothing past the boundary");
        }
    }

    #[test]
    fn watching_what_a_drain_drops_leaves_the_close_due() {
        // One read took a frame's tail and part of the next frame: the
        // bytes past the boundary are dropped and watched for a Close,
        // and the Close is still due after that.
        let (bytes, ends) = stream(true);
        let start = ends[3] - 10;
        let mut f = Frames::new(true);
        assert_eq!(f.advance(&bytes[..start]), start);
        f.drain();
        let read = &bytes[start..ends[4] - 5];
        let taken = f.advance(read);
        assert_eq!(start + taken, ends[3]);
        assert!(!f.watch_close(&read[taken..]));
        assert!(f.close_due(), "the Close goes out at the boundary");
        assert_eq!(f.advance(&bytes[ends[4] - 5..]), 0, "nothing past it");
    }

    #[test]
    fn splicing_by_reach_and_peek_keeps_count() {
        let (bytes, ends) = stream(false);
        let mut f = Frames::new(false);
        let mut at = 0;
        while at < bytes.len() {
            let n = match f.reach() {
                Reach::Any => unreachable!("frames are valid"),
                Reach::Payload(left) => {
                    let n = (left as usize).min(4096);
                    f.skip(n as u64);
                    n
                }
                Reach::Header => {
                    let peeked = &bytes[at..(at + MAX_HEADER).min(bytes.len())];
                    let Ahead::Frame(total) = f.ahead(peeked) else {
                        panic!("whole header at {at}");
                    };
                    assert!(ends.contains(&(at + total as usize)));
                    // Splice part of it, as a short splice would.
                    let n = (total as usize).min(3);
                    assert_eq!(f.advance(&bytes[at..at + n]), n);
                    n
                }
            };
            at += n;
            assert_eq!(f.at_boundary(), ends.contains(&at), "at {at}");
        }
        assert_eq!(Frames::new(false).ahead(&[0x82]), Ahead::Partial);
        // Near a payload's end, a peek reaches past it to the next frame.
        let mut f = Frames::new(false);
        let big = frame(2, 70_000, false);
        let next = frame(1, 5, false);
        f.advance(&big[..big.len() - 3]);
        let mut peeked = big[big.len() - 3..].to_vec();
        peeked.extend(&next);
        assert_eq!(f.ahead(&peeked), Ahead::Frame(3 + next.len() as u64));
        assert_eq!(f.ahead(&peeked[..4]), Ahead::Partial, "next header cut");
        assert_eq!(f.ahead(&peeked[..2]), Ahead::Partial, "tail not all there");
        assert_eq!(
            Frames::new(false).ahead(&header(2, 70_000, false)[..5]),
            Ahead::Partial
        );
    }

    #[test]
    fn bytes_that_are_not_frames_are_lost() {
        let cases: [&[u8]; 6] = [
            b"GET / HTTP/1.1\r\n",     // opcode 7
            &[0x83, 0x00],             // reserved data opcode
            &[0x08, 0x00],             // fragmented Close
            &[0x89, 126, 0, 200],      // Ping longer than 125
            &[0x82, 0x85, 1, 2, 3, 4], // masked toward the client
            &[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0],
        ];
        for bytes in cases {
            let mut f = Frames::new(false);
            assert_eq!(f.advance(bytes), bytes.len());
            assert!(f.is_lost(), "{bytes:?}");
            assert_eq!(f.reach(), Reach::Any);
            f.drain();
            assert!(f.close_due(), "a lost direction ends at once");
        }
        let mut up = Frames::new(true);
        up.advance(&[0x82, 0x01, b'x']);
        assert!(up.is_lost(), "unmasked toward the upstream");
    }

    #[test]
    fn the_sources_close_is_spotted_among_dropped_bytes() {
        let (bytes, ends) = stream(true);
        let mut f = Frames::new(true);
        f.advance(&bytes[..1000]);
        f.drain();
        let taken = f.advance(&bytes[1000..]);
        let at = 1000 + taken;
        assert!(ends.contains(&at));
        let mut rest = bytes[at..].to_vec();
        rest.extend(frame(8, 2, true));
        let (a, b) = rest.split_at(rest.len() - 3);
        assert!(!f.watch_close(a), "no Close yet");
        assert!(f.watch_close(b), "the Close came");
        assert!(f.answered() && f.is_draining());
    }

    #[test]
    fn close_frames_are_well_formed_and_only_once() {
        let mut out = Buf::with_capacity(64);
        Frames::new(false).write_close(&mut out, [0; 4]).unwrap();
        let mut expect = vec![0x88, 21, 0x03, 0xe9];
        expect.extend_from_slice(b"proxy shutting down");
        assert_eq!(out.data(), &expect[..]);

        let mut out = Buf::with_capacity(64);
        let key = [0x11, 0x22, 0x33, 0x44];
        Frames::new(true).write_close(&mut out, key).unwrap();
        let data = out.data();
        assert_eq!(&data[..6], &[0x88, 0x80 | 21, 0x11, 0x22, 0x33, 0x44]);
        let unmasked: Vec<u8> = data[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(unmasked, expect[2..]);
        // The frame it wrote is one the tracker reads as a whole Close.
        let mut f = Frames::new(true);
        assert_eq!(f.advance(data), data.len());
        assert!(f.at_boundary());

        // A Close already passed: the drain adds none.
        let mut out = Buf::with_capacity(64);
        f.write_close(&mut out, key).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_drain_says_why_in_its_close_frame() {
        for (going, reason) in [
            (Going::Shutdown, &b"proxy shutting down"[..]),
            (Going::ServerDown, b"upstream server down"),
            (Going::RouteRemoved, b"route removed"),
        ] {
            let mut f = Frames::new(false);
            f.drain_for(going);
            assert!(f.is_draining());
            let mut out = Buf::with_capacity(64);
            f.write_close(&mut out, [0; 4]).unwrap();
            let data = out.data();
            assert_eq!(&data[..2], &[0x88, 2 + reason.len() as u8]);
            assert_eq!(&data[2..4], &GOING_AWAY.to_be_bytes());
            assert_eq!(&data[4..], reason);
        }
    }
}
