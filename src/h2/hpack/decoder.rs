//! The HPACK decoder (RFC 7541 §3, §6): one field block in, each field
//! handed to a callback, the dynamic table kept in step with the peer's
//! encoder, within [`Limits`].

use super::huffman::{self, HuffmanError};
use super::table::{entry_size, DynamicTable, STATIC};
use super::{decode_integer, DecodeError};

/// The decoder's bounds besides the table size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest string (name or value, after Huffman decoding), in
    /// octets; longer is a decoding error.
    pub max_string: usize,
    /// The largest header list, counted as RFC 9113 §6.5.2 counts it (names
    /// and values plus 32 octets per field); past it no more fields reach
    /// the caller and the block is reported [`BlockSize::over_limit`].
    pub max_list: usize,
}

/// What a decoded block amounted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSize {
    /// The header list's size, as RFC 9113 §6.5.2 counts it, up to the
    /// field that crossed the limit.
    pub list_size: usize,
    /// The list crossed [`Limits::max_list`]: the fields from the one that
    /// crossed it on were not handed over.
    pub over_limit: bool,
}

/// A decoder for one direction of one connection.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// Our `SETTINGS_HEADER_TABLE_SIZE` (acknowledged): the most a table
    /// size update may ask for.
    max_allowed: usize,
    /// We lowered the table size below the table's: the next block has to
    /// start with a size update (§4.2).
    update_required: bool,
    limits: Limits,
    name: Vec<u8>,
    value: Vec<u8>,
}

fn lookup(table: &DynamicTable, index: usize) -> Result<(&[u8], &[u8]), DecodeError> {
    match index {
        0 => Err(DecodeError("index 0")),
        1..=61 => Ok(STATIC[index - 1]),
        _ => table
            .get(index - 62)
            .ok_or(DecodeError("index past the dynamic table")),
    }
}

/// Reads a string literal (§5.2) at `*pos` into `buf`.
fn read_string(
    block: &[u8],
    pos: &mut usize,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<(), DecodeError> {
    buf.clear();
    let rest = &block[*pos..];
    let huffman = rest.first().is_some_and(|b| b & 0x80 != 0);
    let (len, n) = decode_integer(rest, 7)?;
    let body = rest
        .get(n..n.saturating_add(len))
        .ok_or(DecodeError("string past the end of the block"))?;
    *pos += n + len;
    if huffman {
        huffman::decode(body, buf, max).map_err(|e| match e {
            HuffmanError::Invalid => DecodeError("invalid Huffman string"),
            HuffmanError::TooLong => DecodeError("string longer than the limit"),
        })
    } else if len > max {
        Err(DecodeError("string longer than the limit"))
    } else {
        buf.extend_from_slice(body);
        Ok(())
    }
}

/// Counts a field against the list limit and hands it over while under it.
fn deliver(
    size: &mut BlockSize,
    max_list: usize,
    emit: &mut impl FnMut(&[u8], &[u8]),
    name: &[u8],
    value: &[u8],
) {
    if size.over_limit {
        return;
    }
    let after = size.list_size + entry_size(name, value);
    if after > max_list {
        size.over_limit = true;
        return;
    }
    size.list_size = after;
    emit(name, value);
}

impl Decoder {
    /// A decoder whose dynamic table may grow to `max_table_size` octets:
    /// the `SETTINGS_HEADER_TABLE_SIZE` we send (4096 unless we say less).
    pub fn new(max_table_size: usize, limits: Limits) -> Self {
        Self {
            table: DynamicTable::new(max_table_size),
            max_allowed: max_table_size,
            update_required: false,
            limits,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// The dynamic table.
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Our new `SETTINGS_HEADER_TABLE_SIZE`, once the peer acknowledged it.
    /// Below the table's current size, the peer's next block has to start
    /// with a table size update no larger (§4.2).
    pub fn set_max_table_size(&mut self, max: usize) {
        self.max_allowed = max;
        if max < self.table.max() {
            self.update_required = true;
        }
    }

    /// Decodes one whole field block, handing each field to `emit` in
    /// order, borrowed. An error leaves the table out of step with the
    /// peer's: the connection has to end (COMPRESSION_ERROR).
    pub fn decode(
        &mut self,
        block: &[u8],
        mut emit: impl FnMut(&[u8], &[u8]),
    ) -> Result<BlockSize, DecodeError> {
        let mut size = BlockSize {
            list_size: 0,
            over_limit: false,
        };
        let max_list = self.limits.max_list;
        let max_string = self.limits.max_string;
        if self.update_required && block.first().is_none_or(|b| b & 0xe0 != 0x20) {
            return Err(DecodeError("table size update required first"));
        }
        let mut fields_seen = false;
        let mut pos = 0;
        while pos < block.len() {
            let b = block[pos];
            if b & 0x80 != 0 {
                // §6.1 indexed field.
                let (index, n) = decode_integer(&block[pos..], 7)?;
                pos += n;
                let (name, value) = lookup(&self.table, index)?;
                deliver(&mut size, max_list, &mut emit, name, value);
                fields_seen = true;
            } else if b & 0xe0 == 0x20 {
                // §6.3 dynamic table size update, only before the fields.
                if fields_seen {
                    return Err(DecodeError("table size update after a field"));
                }
                let (max, n) = decode_integer(&block[pos..], 5)?;
                pos += n;
                if max > self.max_allowed {
                    return Err(DecodeError("table size update above our setting"));
                }
                self.table.set_max(max);
                self.update_required = false;
            } else {
                // §6.2 literals: with incremental indexing (01, 6-bit
                // index), without indexing (0000) or never indexed (0001),
                // 4-bit index.
                let indexing = b & 0xc0 == 0x40;
                let prefix = if indexing { 6 } else { 4 };
                let (index, n) = decode_integer(&block[pos..], prefix)?;
                pos += n;
                if index == 0 {
                    read_string(block, &mut pos, &mut self.name, max_string)?;
                    read_string(block, &mut pos, &mut self.value, max_string)?;
                    deliver(&mut size, max_list, &mut emit, &self.name, &self.value);
                } else {
                    let (name, _) = lookup(&self.table, index)?;
                    read_string(block, &mut pos, &mut self.value, max_string)?;
                    if indexing {
                        // The entry named may be evicted by the insertion
                        // (§4.4): keep a copy of its name first.
                        self.name.clear();
                        self.name.extend_from_slice(name);
                        deliver(&mut size, max_list, &mut emit, &self.name, &self.value);
                    } else {
                        deliver(&mut size, max_list, &mut emit, name, &self.value);
                    }
                }
                if indexing {
                    self.table
                        .insert(self.name.as_slice().into(), self.value.as_slice().into());
                }
                fields_seen = true;
            }
        }
        Ok(size)
    }
}
