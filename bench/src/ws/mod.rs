//! WebSocket protocol primitives (RFC 6455) and blocking test peers.
//!
//! Items are defined in the submodules and re-exported here, so callers
//! write `wsbench::ws::Client`, `wsbench::ws::encode_frame`, and so on.

mod base64;
pub mod client;
pub mod echo_server;
pub mod frame;
pub mod handshake;
pub mod http;

pub use client::{Client, DEFAULT_IO_TIMEOUT};
pub use echo_server::{reply_to, EchoServer, Reply};
pub use frame::{
    apply_mask, close_payload, decode_frame, decode_header, encode_frame, encode_header,
    read_frame, read_raw_frame, Frame, FrameHeader, Opcode, ProtocolError, MAX_CONTROL_PAYLOAD,
    MAX_HEADER_LEN, MAX_READ_PAYLOAD,
};
pub use handshake::{
    accept_key, check_upgrade_response, random_key, random_mask, upgrade_request, HandshakeError,
    GUID,
};
pub use http::{find_head_end, read_head, Head, HeadError, MAX_HEAD_LEN};
