//! HTTP/2 (RFC 9113) with extended CONNECT (RFC 8441), sans I/O: the
//! pieces read bytes from a slice and write bytes into a caller's `Vec`,
//! and never touch a socket or a clock.
//!
//! | file | owns |
//! |---|---|
//! | `error.rs` | the error codes of RFC 9113 §7 and connection vs stream errors |
//! | `frame.rs` | the frame codec: one frame from a slice, one frame into a `Vec` |
//! | `settings.rs` | the SETTINGS parameters, their ranges and their encoding |
//! | `hpack/` | header compression (RFC 7541): integers, strings, Huffman, tables, decoder, encoder |
//! | `bridge.rs` | a stream's request as an HTTP/1.1 head, and the HTTP/1.1 answer back as a response head and DATA |
//! | `block.rs` | a field block gathered from HEADERS and CONTINUATION frames, bounded |
//! | `request.rs` | a decoded field block checked into a request (RFC 9113 §8.3, RFC 8441 §4) |
//! | `conn.rs` | one server connection as a state machine: streams, flow control, limits |

pub mod block;
pub mod bridge;
pub mod conn;
pub mod error;
pub mod frame;
pub mod hpack;
pub mod request;
pub mod settings;

pub use error::{ConnError, ErrorCode, StreamError};
