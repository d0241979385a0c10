//! The bytes a soak stream sends, and how they are checked: a seeded
//! SplitMix64 sequence that the sender and the checker each regenerate on
//! their own, so every echoed byte is compared with what it must be without
//! keeping what was sent; and a 64-bit FNV-1a checksum of each side's
//! bytes, compared once the stream ends.
//!
//! The same generator drives a stream's plan (message sizes, when to
//! abort): one seed reproduces a whole stream.

/// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state, one add and a
/// mix per output, every seed a full-period sequence. Not cryptographic;
/// it only has to make shifted, dropped or duplicated bytes show.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

/// The golden-ratio increment of SplitMix64.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `low..=high` (a slight modulo bias is of no concern here).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        debug_assert!(low <= high);
        low + self.next_u64() % (high - low + 1)
    }

    /// A value in `low..=high`, spread evenly on a log scale, so that small
    /// sizes are as common as large ones.
    pub fn log_between(&mut self, low: u64, high: u64) -> u64 {
        let (lo, hi) = ((low.max(1) as f64).ln(), (high.max(1) as f64).ln());
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((lo + unit * (hi - lo)).exp().round() as u64).clamp(low, high)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.next_u64() % 100 < u64::from(percent)
    }
}

/// A stream's payload bytes, in order, across message boundaries.
#[derive(Debug, Clone)]
pub struct Pattern {
    rng: SplitMix64,
    word: [u8; 8],
    /// Bytes of `word` already handed out.
    used: usize,
}

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern {
            rng: SplitMix64::new(seed),
            word: [0; 8],
            used: 8,
        }
    }

    /// Fills `out` with the next bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            if self.used == 8 {
                self.word = self.rng.next_u64().to_le_bytes();
                self.used = 0;
            }
            *byte = self.word[self.used];
            self.used += 1;
        }
    }

    /// Compares `got` with the next bytes of the stream; on a difference
    /// returns the index of the first byte that differs (the stream then
    /// stands past all of `got` either way).
    pub fn check(&mut self, got: &[u8]) -> Result<(), usize> {
        let mut first_bad = None;
        for (i, &byte) in got.iter().enumerate() {
            if self.used == 8 {
                self.word = self.rng.next_u64().to_le_bytes();
                self.used = 0;
            }
            if byte != self.word[self.used] && first_bad.is_none() {
                first_bad = Some(i);
            }
            self.used += 1;
        }
        first_bad.map_or(Ok(()), Err)
    }
}

/// 64-bit FNV-1a over every byte fed in, with the byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    pub hash: u64,
    pub bytes: u64,
}

/// FNV-1a 64-bit offset basis and prime (Fowler, Noll, Vo).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for Checksum {
    fn default() -> Checksum {
        Checksum {
            hash: FNV_OFFSET,
            bytes: 0,
        }
    }
}

impl Checksum {
    pub fn feed(&mut self, data: &[u8]) {
        for &byte in data {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
        self.bytes += data.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs for seed 0 of the reference implementation.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn pattern_is_the_same_however_it_is_cut() {
        let mut whole = vec![0; 1000];
        Pattern::new(7).fill(&mut whole);
        let mut pieces = Pattern::new(7);
        let mut joined = Vec::new();
        for len in [1, 7, 8, 9, 3, 972] {
            let mut piece = vec![0; len];
            pieces.fill(&mut piece);
            joined.extend_from_slice(&piece);
        }
        assert_eq!(joined, whole);
        let mut checker = Pattern::new(7);
        assert_eq!(checker.check(&whole[..500]), Ok(()));
        assert_eq!(checker.check(&whole[500..]), Ok(()));
    }

    #[test]
    fn check_finds_a_changed_dropped_or_other_seed_byte() {
        let mut sent = vec![0; 64];
        Pattern::new(1).fill(&mut sent);
        let mut changed = sent.clone();
        changed[40] ^= 1;
        assert_eq!(Pattern::new(1).check(&changed), Err(40));
        let mut checker = Pattern::new(1);
        assert_eq!(checker.check(&sent[..10]), Ok(()));
        assert!(
            checker.check(&sent[11..]).is_err(),
            "a dropped byte shifts the rest"
        );
        assert!(Pattern::new(2).check(&sent).is_err());
    }

    #[test]
    fn checksum_tells_order_and_length() {
        let mut a = Checksum::default();
        a.feed(b"ab");
        let mut b = Checksum::default();
        b.feed(b"ba");
        assert_ne!(a, b);
        let mut c = Checksum::default();
        c.feed(b"a");
        c.feed(b"b");
        assert_eq!(a, c);
        assert_eq!(a.bytes, 2);
    }

    #[test]
    fn ranges_stay_inside_their_bounds() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..10_000 {
            assert!((5..=9).contains(&rng.between(5, 9)));
            assert!((16..=1 << 20).contains(&rng.log_between(16, 1 << 20)));
        }
        assert!(!SplitMix64::new(4).chance(0));
        assert!(SplitMix64::new(4).chance(100));
    }
}
