//! The mio `Token` layout: reserved tokens at the top of the range, pair
//! tokens below them with the slab key and the side packed together.
//!
//! ```text
//! usize::MAX                     WAKER
//! usize::MAX - 1 - i             listener i (i < MAX_LISTENERS)
//! key << 2 | side                a pair's client (0) or upstream (1) socket
//! key << 2 | 2                   an idle upstream connection kept for reuse
//! key << 2 | 3                   an HTTP/2 client connection
//! ```

use mio::Token;

/// Which socket of a client/upstream pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client = 0,
    Upstream = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        }
    }
}

/// Wakes a worker for control messages (stop).
pub const WAKER: Token = Token(usize::MAX);

/// Most listening sockets one worker can hold.
pub const MAX_LISTENERS: usize = 1024;

const LISTENER_TOP: usize = usize::MAX - 1;

/// Lowest reserved token; pair tokens stay below it.
const RESERVED_FLOOR: usize = LISTENER_TOP - (MAX_LISTENERS - 1);

/// Which socket (or waker) a token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socket {
    Waker,
    Listener(usize),
    Pair {
        key: usize,
        side: Side,
    },
    /// An idle upstream connection in the worker's keep-alive pool.
    Kept(usize),
    /// An HTTP/2 client connection.
    Session(usize),
}

/// The low bits of a token below the reserved ones: what kind of socket.
const KIND_BITS: u32 = 2;
const KIND_MASK: usize = (1 << KIND_BITS) - 1;
const KEPT: usize = 2;
const SESSION: usize = 3;

pub fn listener(index: usize) -> Token {
    debug_assert!(index < MAX_LISTENERS);
    Token(LISTENER_TOP - index)
}

pub fn pair(key: usize, side: Side) -> Token {
    debug_assert!(
        key < RESERVED_FLOOR >> KIND_BITS,
        "slab key collides with reserved tokens"
    );
    Token(key << KIND_BITS | side as usize)
}

/// The token of kept upstream connection `key`.
pub fn kept(key: usize) -> Token {
    debug_assert!(
        key < RESERVED_FLOOR >> KIND_BITS,
        "slab key collides with reserved tokens"
    );
    Token(key << KIND_BITS | KEPT)
}

/// The token of HTTP/2 client connection `key`.
pub fn session(key: usize) -> Token {
    debug_assert!(
        key < RESERVED_FLOOR >> KIND_BITS,
        "slab key collides with reserved tokens"
    );
    Token(key << KIND_BITS | SESSION)
}

pub fn decode(token: Token) -> Socket {
    match token.0 {
        usize::MAX => Socket::Waker,
        t if t >= RESERVED_FLOOR => Socket::Listener(LISTENER_TOP - t),
        t => match t & KIND_MASK {
            0 => Socket::Pair {
                key: t >> KIND_BITS,
                side: Side::Client,
            },
            1 => Socket::Pair {
                key: t >> KIND_BITS,
                side: Side::Upstream,
            },
            KEPT => Socket::Kept(t >> KIND_BITS),
            _ => Socket::Session(t >> KIND_BITS),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let cases = [
            (WAKER, Socket::Waker),
            (listener(0), Socket::Listener(0)),
            (
                listener(MAX_LISTENERS - 1),
                Socket::Listener(MAX_LISTENERS - 1),
            ),
            (
                pair(0, Side::Client),
                Socket::Pair {
                    key: 0,
                    side: Side::Client,
                },
            ),
            (
                pair(0, Side::Upstream),
                Socket::Pair {
                    key: 0,
                    side: Side::Upstream,
                },
            ),
            (
                pair(123_456, Side::Upstream),
                Socket::Pair {
                    key: 123_456,
                    side: Side::Upstream,
                },
            ),
        ];
        for (token, target) in cases {
            assert_eq!(decode(token), target, "{token:?}");
        }
        assert_eq!(decode(kept(0)), Socket::Kept(0));
        assert_eq!(decode(kept(77)), Socket::Kept(77));
        assert_eq!(decode(session(5)), Socket::Session(5));
        assert_ne!(session(0), kept(0));
        assert_ne!(pair(1, Side::Client), pair(0, Side::Upstream));
        assert_ne!(kept(0), pair(0, Side::Upstream));
        assert_ne!(kept(0), pair(1, Side::Client));
    }
}
