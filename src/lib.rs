//! wsproxy-fast: a WebSocket reverse proxy built from one mio reactor per
//! core. The README's "Code map" says which file owns what.

#![warn(missing_debug_implementations, unsafe_op_in_unsafe_fn)]

pub mod access_log;
pub mod acme;
pub mod activation;
pub mod admin;
pub mod buffer;
pub mod checker;
pub mod cli;
pub mod config;
pub mod control;
pub mod dispatch;
pub mod files;
pub mod framing;
pub mod h2;
pub mod handshake;
pub mod limits;
pub mod listener;
pub mod log;
pub mod metrics;
pub mod nginx;
pub mod pair;
pub mod proxy_protocol;
pub mod relay;
pub mod reload;
pub mod route;
pub mod shed;
pub mod status;
pub mod sys;
pub mod timer;
pub mod tls;
pub mod token;
pub mod upstream;
pub mod worker;
