//! `wsbench`: small, dependency-light WebSocket (RFC 6455) building blocks
//! shared by wsproxy-fast's integration tests and the `wsbench` load tool.
//!
//! Everything lives in [`ws`]:
//!
//! | module | owns |
//! |---|---|
//! | `ws::frame` | opcodes, frame header encode/decode (partial buffers), masking, blocking frame reads |
//! | `ws::handshake` | the GUID, `Sec-WebSocket-Accept`, random keys and masks, the client request head |
//! | `ws::http` | finding and reading an HTTP/1.1 head, header lookup, the echo servers' answer |
//! | `ws::client` | a blocking test [`ws::Client`] with a verified opening handshake |
//! | `ws::echo_server` | a blocking, thread-per-connection test [`ws::EchoServer`] |
//!
//! [`floor`] holds what the two floor relays (`floor-epoll`, `floor-uring`)
//! share: their command line and listeners.
//!
//! The `wsbench` binary (under `src/bin/wsbench/`) adds the mio echo backend
//! and the load modes on top of these primitives; `h2ws` (under
//! `src/bin/h2ws/`) carries WebSockets over HTTP/2 (RFC 8441) with the
//! proxy's own frame codec and HPACK, for `scripts/h2-bench.sh`.

pub mod floor;
pub mod ws;
