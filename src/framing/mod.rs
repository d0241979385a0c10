//! Where messages end, below both the handshake and the relays: HTTP/1.1
//! body framing (`Content-Length`, chunked, until close) and WebSocket
//! frame boundaries. Pure state machines over byte slices; they never
//! touch a socket, so `handshake/` and `relay/` both build on them and
//! neither imports the other.

pub mod body;
pub mod frames;
