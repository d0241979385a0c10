//! HPACK's indexing tables (RFC 7541 §2.3): the static table of Appendix A
//! and a dynamic table bounded in octets as §4.1 counts them (name, value
//! and 32 octets per entry). Index 1..=61 is static, 62 and up dynamic,
//! newest first.

use std::collections::VecDeque;

/// RFC 7541 Appendix A, index 1 first.
pub const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The octets an entry counts for (§4.1): "the sum of its name's length
/// in octets, its value's length in octets, and 32".
pub const ENTRY_OVERHEAD: usize = 32;

/// An entry's size as §4.1 counts it.
pub fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + ENTRY_OVERHEAD
}

/// One dynamic table entry: a name and a value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// The dynamic table: entries newest first, never more than `max` octets.
#[derive(Debug, Default)]
pub struct DynamicTable {
    entries: VecDeque<Entry>,
    size: usize,
    max: usize,
}

impl DynamicTable {
    /// An empty table of at most `max` octets.
    pub fn new(max: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            max,
        }
    }

    /// The octets the entries count for.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The table's maximum size.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at `i`, 0 the newest (HPACK index 62).
    pub fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.entries.get(i).map(|(n, v)| (&n[..], &v[..]))
    }

    /// Changes the maximum size, evicting the oldest entries until the
    /// rest fit (§4.3).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
        self.evict_to(max);
    }

    /// Adds an entry (§4.4): the oldest entries are evicted until it fits;
    /// an entry larger than the whole table empties it and is not added.
    pub fn insert(&mut self, name: Box<[u8]>, value: Box<[u8]>) {
        let size = entry_size(&name, &value);
        if size > self.max {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max - size);
        self.entries.push_front((name, value));
        self.size += size;
        debug_assert!(self.size <= self.max);
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let (n, v) = self
                .entries
                .pop_back()
                .expect("a non-zero size has an entry to evict");
            self.size -= entry_size(&n, &v);
        }
    }

    /// The index (0 newest) of the first entry with `name` and `value`, and
    /// of the first with `name` alone.
    pub fn find(&self, name: &[u8], value: &[u8]) -> (Option<usize>, Option<usize>) {
        let mut by_name = None;
        for (i, (n, v)) in self.entries.iter().enumerate() {
            if &n[..] == name {
                if &v[..] == value {
                    return (Some(i), by_name.or(Some(i)));
                }
                by_name = by_name.or(Some(i));
            }
        }
        (None, by_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    #[test]
    fn static_table_spot_checks() {
        assert_eq!(STATIC[0], (&b":authority"[..], &b""[..]));
        assert_eq!(STATIC[7], (&b":status"[..], &b"200"[..]));
        assert_eq!(STATIC[15].1, b"gzip, deflate");
        assert_eq!(STATIC[54].0, b"set-cookie");
        assert_eq!(STATIC[60].0, b"www-authenticate");
    }

    #[test]
    fn eviction_keeps_the_size_bounded_and_the_newest_first() {
        // Each entry: 1 + 1 + 32 = 34 octets; 100 octets hold two.
        let mut t = DynamicTable::new(100);
        t.insert(b("a"), b("1"));
        t.insert(b("b"), b("2"));
        assert_eq!((t.len(), t.size()), (2, 68));
        t.insert(b("c"), b("3"));
        assert_eq!((t.len(), t.size()), (2, 68));
        assert_eq!(t.get(0), Some((&b"c"[..], &b"3"[..])));
        assert_eq!(t.get(1), Some((&b"b"[..], &b"2"[..])));
        assert_eq!(t.get(2), None);
        assert_eq!(t.find(b"b", b"2"), (Some(1), Some(1)));
        assert_eq!(t.find(b"b", b"9"), (None, Some(1)));
        assert_eq!(t.find(b"a", b"1"), (None, None));
        t.set_max(40);
        assert_eq!((t.len(), t.size()), (1, 34));
        // Larger than the whole table: emptied, not added.
        t.insert(b("long name"), b("long value"));
        assert!(t.is_empty());
        assert_eq!(t.size(), 0);
        t.set_max(0);
        t.insert(b(""), b(""));
        assert!(t.is_empty());
    }
}
