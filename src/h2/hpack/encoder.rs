//! The HPACK encoder (RFC 7541 §6): fields in, a field block appended to a
//! `Vec`. A field matched whole by a table entry is sent as its index;
//! otherwise as a literal naming the first table entry with its name, the
//! static table searched before the dynamic one (the choices RFC 7541
//! Appendix C makes, so its examples come out octet for octet).

use super::encode_integer;
use super::huffman;
use super::table::{DynamicTable, STATIC};

/// How a literal field may be indexed (§6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indexing {
    /// Added to the dynamic table (§6.2.1).
    Incremental,
    /// Not added (§6.2.2).
    Without,
    /// Not added, here nor by any intermediary re-encoding it (§6.2.3):
    /// for values such as credentials.
    Never,
}

/// One field to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name, lower case.
    pub name: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// How a literal of it may be indexed.
    pub indexing: Indexing,
}

impl<'a> Field<'a> {
    /// A field that may be indexed.
    pub fn new(name: &'a [u8], value: &'a [u8]) -> Self {
        Self {
            name,
            value,
            indexing: Indexing::Incremental,
        }
    }
}

/// An encoder for one direction of one connection.
#[derive(Debug)]
pub struct Encoder {
    table: DynamicTable,
    /// The most table we are willing to keep, whatever the peer allows.
    cap: usize,
    /// The smallest table size set since the last block: a size update
    /// (and another for the current size, if larger) is owed at the start
    /// of the next block (§4.2).
    pending: Option<usize>,
    /// Huffman-encode a string unless that makes it longer (RFC 7541
    /// Appendix C.6.2 Huffman-encodes "307" at the same length).
    huffman: bool,
}

impl Encoder {
    /// An encoder with a table of `max_table_size` octets (the peer's
    /// `SETTINGS_HEADER_TABLE_SIZE`, 4096 until it says otherwise), never
    /// more than `cap`.
    pub fn new(max_table_size: usize, cap: usize, huffman: bool) -> Self {
        Self {
            table: DynamicTable::new(max_table_size.min(cap)),
            cap,
            pending: None,
            huffman,
        }
    }

    /// The dynamic table.
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// The peer's new `SETTINGS_HEADER_TABLE_SIZE`: the table follows it
    /// (within our cap) and the change is signalled at the start of the
    /// next block.
    pub fn set_max_table_size(&mut self, peer_max: usize) {
        let max = peer_max.min(self.cap);
        if max == self.table.max() {
            return;
        }
        self.pending = Some(self.pending.map_or(max, |p| p.min(max)));
        self.table.set_max(max);
    }

    /// Appends one field block holding `fields` to `out`.
    pub fn encode<'f>(&mut self, fields: impl IntoIterator<Item = Field<'f>>, out: &mut Vec<u8>) {
        if let Some(smallest) = self.pending.take() {
            if smallest < self.table.max() {
                encode_integer(smallest, 5, 0x20, out);
            }
            encode_integer(self.table.max(), 5, 0x20, out);
        }
        for field in fields {
            self.encode_field(field, out);
        }
    }

    fn encode_field(&mut self, field: Field<'_>, out: &mut Vec<u8>) {
        let Field {
            name,
            value,
            indexing,
        } = field;
        let mut name_index = None;
        for (i, &(n, v)) in STATIC.iter().enumerate() {
            if n == name {
                if v == value && indexing != Indexing::Never {
                    encode_integer(i + 1, 7, 0x80, out);
                    return;
                }
                name_index = name_index.or(Some(i + 1));
            }
        }
        let (whole, by_name) = self.table.find(name, value);
        if let Some(i) = whole.filter(|_| indexing != Indexing::Never) {
            encode_integer(i + 62, 7, 0x80, out);
            return;
        }
        let name_index = name_index.or(by_name.map(|i| i + 62)).unwrap_or(0);
        let (prefix, flags) = match indexing {
            Indexing::Incremental => (6, 0x40),
            Indexing::Without => (4, 0x00),
            Indexing::Never => (4, 0x10),
        };
        encode_integer(name_index, prefix, flags, out);
        if name_index == 0 {
            self.encode_string(name, out);
        }
        self.encode_string(value, out);
        if indexing == Indexing::Incremental {
            self.table.insert(name.into(), value.into());
        }
    }

    fn encode_string(&self, s: &[u8], out: &mut Vec<u8>) {
        let len = huffman::encoded_len(s);
        if self.huffman && len <= s.len() {
            encode_integer(len, 7, 0x80, out);
            huffman::encode(s, out);
        } else {
            encode_integer(s.len(), 7, 0, out);
            out.extend_from_slice(s);
        }
    }
}
