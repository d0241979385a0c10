//! What one HTTP/2 connection allows: the SETTINGS we send and the limits
//! against the published attacks, each with its default and why.

use std::time::Duration;

use crate::h2::block;
use crate::h2::settings::{DEFAULT_WINDOW_SIZE, MIN_MAX_FRAME_SIZE};

/// What a connection allows; the SETTINGS we send come from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub max_concurrent_streams: u32,
    /// `SETTINGS_INITIAL_WINDOW_SIZE`: what one stream may hold of ours.
    pub initial_window_size: u32,
    /// The connection's receive window (raised from 65 535 with a
    /// WINDOW_UPDATE at the start).
    pub connection_window: u32,
    /// `SETTINGS_MAX_FRAME_SIZE`.
    pub max_frame_size: u32,
    /// `SETTINGS_HEADER_TABLE_SIZE`: the HPACK table the peer may use.
    pub header_table_size: u32,
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`, enforced by the HPACK decoder.
    pub max_header_list_size: u32,
    /// The longest single decoded header name or value.
    pub max_header_string: u32,
    /// The largest compressed field block and its CONTINUATION count.
    pub block: block::Limits,
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441).
    pub enable_connect_protocol: bool,
    /// The HPACK table we keep for our responses, whatever the peer allows.
    pub encoder_table_cap: u32,
    /// Stream resets (by the peer, or by us for its faults) allowed per
    /// `reset_interval` before ENHANCE_YOUR_CALM.
    pub max_resets: u32,
    /// The interval `max_resets` and `max_empty_data` are counted over.
    pub reset_interval: Duration,
    /// DATA frames with no octets and no END_STREAM allowed per
    /// `reset_interval` (they cost us work and the peer nothing:
    /// CVE-2019-9518).
    pub max_empty_data: u32,
    /// Answers (SETTINGS ACK, PING ACK, RST_STREAM) we may owe the peer
    /// before the caller reports them written ([`Conn::flushed`]).
    pub max_owed_answers: u32,
}

impl Default for Config {
    /// What a browser needs and an edge node can hold per connection:
    /// 100 streams of at most 64 KiB each (a stream's window is all it may
    /// buffer), 1 MiB for the connection, 32 KiB of headers in at most 64
    /// KiB of compressed block, 200 resets per 10 s (a browser cancels a
    /// few per navigation; CVE-2023-44487 needs thousands per second).
    fn default() -> Self {
        Self {
            max_concurrent_streams: 100,
            initial_window_size: DEFAULT_WINDOW_SIZE,
            connection_window: 1 << 20,
            max_frame_size: MIN_MAX_FRAME_SIZE,
            header_table_size: 4096,
            max_header_list_size: 32 << 10,
            max_header_string: 16 << 10,
            block: block::Limits {
                max_block: 64 << 10,
                max_continuations: 32,
            },
            enable_connect_protocol: true,
            encoder_table_cap: 4096,
            max_resets: 200,
            reset_interval: Duration::from_secs(10),
            max_empty_data: 100,
            max_owed_answers: 1024,
        }
    }
}
