//! The HTTP side of the proxy: the client's request head (parse, validate,
//! rewrite), the upstream's response head, the proxy's own error answers,
//! and which peers' forwarding fields are believed. Pure functions over
//! byte slices; the sockets live in `pair/`, body framing in `framing/`.

pub mod answer;
pub mod edits;
pub mod fields;
pub mod forwarded;
pub mod request;
pub mod response;
