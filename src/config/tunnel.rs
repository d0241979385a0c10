//! What a route asks of its WebSocket tunnels besides relaying them:
//! proxy pings and dead-peer detection, its own idle timeout, a lifetime,
//! message-size and rate limits. All off unless set: a proxy is
//! transparent unless told otherwise.

use std::time::Duration;

/// How long a client has to answer the proxy's Ping (any byte counts)
/// when `ping_interval` is set without `ping_timeout`.
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// A route's tunnel policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelPolicy {
    /// Overrides the global idle timeout for this route's tunnels
    /// (`Some(ZERO)`: never).
    pub idle: Option<Duration>,
    pub ping: Option<Ping>,
    pub lifetime: Option<Lifetime>,
    /// The most a client's message may carry, its fragments added up
    /// (RFC 6455 §5.4): past it, Close 1009 to the client.
    pub max_message_bytes: Option<u64>,
    pub rate: Option<Rate>,
}

/// Proxy pings toward the client (and optionally the upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping {
    /// Silence from the peer after which the proxy sends a Ping.
    pub interval: Duration,
    /// Further silence after which the peer counts as gone.
    pub timeout: Duration,
    /// Ping the upstream too, by the same clock.
    pub upstream: bool,
}

/// A tunnel's longest life, ended like a drain (Close 1001 at a frame
/// boundary) so that long-lived clients move to servers added since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    pub max: Duration,
    /// Each tunnel's lifetime is `max` plus a random part of this, so
    /// tunnels opened together do not all end together.
    pub jitter: Duration,
}

/// Rate limits on what a client sends: over them the proxy stops reading
/// it (backpressure), so nothing is dropped or reordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub messages_per_s: Option<u32>,
    pub bytes_per_s: Option<u64>,
    /// Messages a client may send at once above the rate (default: one
    /// second's worth).
    pub message_burst: u32,
    /// Bytes likewise.
    pub byte_burst: u64,
    /// A client kept over the limit this long is closed with 1008.
    pub close_after: Option<Duration>,
}

impl TunnelPolicy {
    /// The route asks for anything a tunnel must keep state for.
    pub fn watches(&self) -> bool {
        *self != TunnelPolicy::default()
    }
}
