//! Fixed-size byte buffers and the per-worker pool they come from.
//!
//! Every buffer a worker uses has the same size, [`BUF_BYTES`], so any buffer
//! can take any role: the worker's read scratch, a pair's parked remainder
//! after a partial write, a rewritten request head. A parked remainder is the
//! scratch buffer itself, swapped out for a fresh one from the pool, so bytes
//! are never copied just to be parked.

/// Size of every pooled buffer, in bytes. Two TLS records' worth: large
/// enough that bulk relaying needs few syscalls, small enough that a
/// direction parked behind a slow reader costs what HAProxy's two 16 KiB
/// buffers do.
pub const BUF_BYTES: usize = 32 * 1024;

/// Free buffers a worker keeps for reuse, beyond which returned buffers go
/// back to the allocator (8 MiB per worker at [`BUF_BYTES`]).
pub const POOL_KEEP: usize = 256;

/// A fixed-capacity byte buffer with a filled region `start..end`.
/// Offsets are `u32` (buffers are far below 4 GiB): 24 bytes in all, which
/// keeps a flow parking one within 64 bytes.
pub struct Buf {
    bytes: Box<[u8]>,
    start: u32,
    end: u32,
}

/// The bytes did not fit in the buffer's free space.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

impl std::fmt::Debug for Buf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buf({} of {} bytes)", self.len(), self.capacity())
    }
}

impl Buf {
    /// A zeroed buffer of `capacity` bytes (tests use small ones).
    pub fn with_capacity(capacity: usize) -> Buf {
        assert!(u32::try_from(capacity).is_ok(), "a buffer under 4 GiB");
        Buf {
            bytes: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The filled bytes not yet consumed.
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.start as usize..self.end as usize]
    }

    /// The free space after the filled bytes.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.bytes[self.end as usize..]
    }

    /// Marks `n` bytes of [`Buf::space`] as filled.
    pub fn fill(&mut self, n: usize) {
        debug_assert!(
            self.end as usize + n <= self.bytes.len(),
            "fill past capacity"
        );
        self.end += n as u32;
    }

    /// Drops `n` bytes from the front of [`Buf::data`].
    pub fn consume(&mut self, n: usize) {
        debug_assert!(
            self.start as usize + n <= self.end as usize,
            "consume past filled bytes"
        );
        self.start += n as u32;
        if self.start == self.end {
            self.clear();
        }
    }

    /// Moves the filled bytes to the front, so that all the free space
    /// follows them.
    pub fn compact(&mut self) {
        if self.start > 0 {
            self.bytes
                .copy_within(self.start as usize..self.end as usize, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Keeps only the first `len` bytes of [`Buf::data`].
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.end = self.start + len as u32;
        }
    }

    /// Appends `bytes`, or leaves the buffer unchanged if they do not fit.
    pub fn put(&mut self, bytes: &[u8]) -> Result<(), Full> {
        let space = self.space();
        if bytes.len() > space.len() {
            return Err(Full);
        }
        space[..bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len() as u32;
        Ok(())
    }

    /// Appends `n` in decimal.
    pub fn put_decimal(&mut self, mut n: u64) -> Result<(), Full> {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..])
    }

    /// Appends `value` formatted with `Display`, without allocating.
    pub fn put_display(&mut self, value: impl std::fmt::Display) -> Result<(), Full> {
        use std::io::Write;
        let space = self.space();
        let room = space.len();
        let mut cursor = std::io::Cursor::new(space);
        write!(cursor, "{value}").map_err(|_| Full)?;
        let n = cursor.position() as usize;
        debug_assert!(n <= room);
        self.fill(n);
        Ok(())
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn capacity(&self) -> usize {
        self.bytes.len()
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// A worker's stock of free buffers. Not shared: each worker owns one.
pub struct Pool {
    free: Vec<Box<[u8]>>,
    /// A buffer was taken or given since the last trim check.
    touched: bool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} free)", self.free.len())
    }
}

impl Pool {
    pub fn new() -> Pool {
        Pool {
            free: Vec::new(),
            touched: false,
        }
    }

    /// An empty buffer of [`BUF_BYTES`], reused if one is free.
    pub fn take(&mut self) -> Buf {
        self.touched = true;
        match self.free.pop() {
            Some(bytes) => Buf {
                bytes,
                start: 0,
                end: 0,
            },
            None => Buf::with_capacity(BUF_BYTES),
        }
    }

    /// Returns a buffer for reuse; its contents are discarded.
    pub fn give(&mut self, buf: Buf) {
        self.touched = true;
        if self.free.len() < POOL_KEEP && buf.bytes.len() == BUF_BYTES {
            self.free.push(buf.bytes);
        }
    }

    /// Buffers currently free in the pool.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Frees every pooled buffer if none was taken or given since the last
    /// call, so a burst of handshakes leaves no memory behind once it is
    /// over. Returns how many were freed.
    pub fn trim_idle(&mut self) -> usize {
        let freed = if self.touched { 0 } else { self.free.len() };
        if freed > 0 {
            self.free = Vec::new();
        }
        self.touched = false;
        freed
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_consume_put() {
        let mut b = Buf::with_capacity(8);
        assert!(b.is_empty());
        b.space()[..3].copy_from_slice(b"abc");
        b.fill(3);
        assert_eq!(b.data(), b"abc");
        b.consume(1);
        assert_eq!(b.data(), b"bc");
        b.truncate(5);
        assert_eq!(b.data(), b"bc", "truncate never grows");
        assert_eq!(b.put(b"defgh"), Ok(()));
        assert_eq!(b.data(), b"bcdefgh");
        assert_eq!(b.put(b"xy"), Err(Full), "only one byte of space left");
        assert_eq!(b.data(), b"bcdefgh", "a failed put changes nothing");
        b.consume(2);
        b.compact();
        assert_eq!(b.data(), b"defgh");
        assert_eq!(b.space().len(), 3, "compacting frees the front");
        b.consume(5);
        assert!(b.is_empty());
        b.put_decimal(0).unwrap();
        b.put_decimal(1234567).unwrap();
        assert_eq!(b.data(), b"01234567");
        b.clear();
        let mut ip = Buf::with_capacity(12);
        ip.put_display(std::net::Ipv4Addr::LOCALHOST).unwrap();
        assert_eq!(ip.data(), b"127.0.0.1");
        assert_eq!(ip.put_display("four"), Err(Full));
        assert_eq!(
            ip.data(),
            b"127.0.0.1",
            "a failed put_display changes nothing"
        );
        assert_eq!(b.space().len(), 8, "fully consumed buffer rewinds");
    }

    #[test]
    fn pool_reuses_and_bounds() {
        let mut pool = Pool::new();
        let a = pool.take();
        assert_eq!(a.capacity(), BUF_BYTES);
        pool.give(a);
        assert_eq!(pool.free_count(), 1);
        let mut b = pool.take();
        assert_eq!(pool.free_count(), 0);
        b.put(b"x").unwrap();
        pool.give(b);
        assert!(pool.take().is_empty(), "a reused buffer starts empty");
        for _ in 0..POOL_KEEP + 10 {
            pool.give(Buf::with_capacity(BUF_BYTES));
        }
        assert_eq!(pool.free_count(), POOL_KEEP);
        pool.give(Buf::with_capacity(16));
        assert_eq!(
            pool.free_count(),
            POOL_KEEP,
            "odd-sized buffers are not pooled"
        );
    }
}
