//! The HAProxy PROXY protocol, versions 1 and 2 (haproxy.org
//! `doc/proxy-protocol.txt`, revision 2020/03/05): the header a load
//! balancer puts in front of a client connection to say which client it
//! relays. A pure, allocation-free parser over the first bytes a client
//! connection delivers; the worker calls it before TLS or HTTP on a listener
//! configured with `proxy_protocol = true`, and skips `Header::len` bytes.
//!
//! It works on any prefix: every call re-reads the bytes from the start (at
//! most [`MAX_HEADER_BYTES`]), answers "read more" while they can still
//! become a valid header, and refuses as soon as they cannot, so a plain
//! `GET / HTTP/1.1` or a TLS ClientHello is refused at its first byte
//! rather than after a timeout. The spec asks for exactly that: "It is
//! recommended to abort the connection as soon as possible so that the
//! sender gets a chance to notice the anomaly and log it."
//!
//! Strictness, where the spec leaves a choice:
//! - v1 ports and IPv4 octets with a leading zero are refused (the spec:
//!   "Heading zeroes are not permitted ... to avoid any possible confusion
//!   with octal numbers").
//! - v1 IPv6 addresses are whatever `std` parses (the spec's hex groups and
//!   `::`, plus the embedded-IPv4 tail that `inet_pton` also takes), at most
//!   45 characters; the 107-byte line bound holds regardless.
//! - v1 `UNKNOWN` lines may carry anything before CRLF, but a bare CR or LF
//!   is refused ("The receiver must not tolerate a single CR or LF
//!   character to end the line").
//! - v2 TLVs are skipped by the header length without being read ("a
//!   receiver may choose to skip over and ignore those bytes").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[cfg(test)]
mod tests;
mod v1;
mod v2;

use v1::parse_v1;
use v2::parse_v2;

/// Largest header accepted, in bytes. v1 lines are at most 107 bytes; a v2
/// header is 16 bytes plus its length field (up to 65535), of which the
/// addresses take at most 216 (AF_UNIX) and the rest are TLVs. Cloud load
/// balancers send a few dozen bytes of TLVs (AWS NLB's VPC endpoint ID,
/// GCP's PSC connection ID, Azure's Private Link ID), but HAProxy with
/// `send-proxy-v2-ssl-cn`, a unique ID (up to 128 bytes) and the authority
/// (SNI, up to 255) can pass 512. 4096 is nginx's bound for the same
/// header (`NGX_PROXY_PROTOCOL_MAX_HEADER`), so any sender nginx accepts we
/// accept too, and it fits many times over in one 32 KiB client buffer.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Longest v1 line, CRLF included, in bytes. The spec's worst case:
/// "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n" =>
/// 107 chars, and "If the CRLF sequence is not found in the first 107
/// characters, the receiver should declare the line invalid."
const V1_MAX_LINE: usize = 107;

/// "a string identifying the protocol : "PROXY" ( \x50 \x52 \x4F \x58 \x59 )"
const V1_PREFIX: &[u8] = b"PROXY";

/// The v1 protocol names: "only "TCP4" ... and "TCP6" ... are allowed.
/// Other, unsupported, or unknown protocols must be reported with the name
/// "UNKNOWN"".
const V1_TCP4: &[u8] = b"TCP4";
const V1_TCP6: &[u8] = b"TCP6";
const V1_UNKNOWN: &[u8] = b"UNKNOWN";
const V1_PROTOCOLS: [&[u8]; 3] = [V1_TCP4, V1_TCP6, V1_UNKNOWN];

/// Longest textual IPv4 address, in characters: "255.255.255.255".
const V1_IPV4_CHARS: usize = 15;
/// Longest textual IPv6 address, in characters, embedded-IPv4 tail
/// included: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" (the C
/// `INET6_ADDRSTRLEN` less its NUL).
const V1_IPV6_CHARS: usize = 45;
/// Longest port, in digits: "65535".
const V1_PORT_DIGITS: usize = 5;

/// "The binary header format starts with a constant 12 bytes block
/// containing the protocol signature : \x0D \x0A \x0D \x0A \x00 \x0D \x0A
/// \x51 \x55 \x49 \x54 \x0A"
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Bytes before the address block: signature, version/command, family,
/// length. "the length of the protocol header in bytes is always exactly
/// 16 + this value".
const V2_FIXED_BYTES: usize = 16;
/// "The highest four bits contains the version. As of this specification,
/// it must always be sent as \x2 and the receiver must only accept this
/// value."
const V2_VERSION: u8 = 0x2;
/// "\x0 : LOCAL : the connection was established on purpose by the proxy
/// without being relayed."
const V2_LOCAL: u8 = 0x0;
/// "\x1 : PROXY : the connection was established on behalf of another
/// node, and reflects the original connection endpoints."
const V2_PROXY: u8 = 0x1;

/// The family/transport bytes "expected in practice" (spec §2.2).
const V2_UNSPEC: u8 = 0x00;
const V2_TCP4: u8 = 0x11;
const V2_UDP4: u8 = 0x12;
const V2_TCP6: u8 = 0x21;
const V2_UDP6: u8 = 0x22;
const V2_UNIX_STREAM: u8 = 0x31;
const V2_UNIX_DGRAM: u8 = 0x32;

/// What the header said about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A proxied TCP connection: the real client (source) and the address
    /// it connected to (destination).
    Tcp {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v1 `UNKNOWN`, or v2 LOCAL / UNSPEC family / UDP / unix: keep the
    /// connection's own addresses ("use the real connection's parameters as
    /// if there were no PROXY protocol header on the wire").
    Local,
}

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub origin: Origin,
    /// Bytes the header took, to skip; what follows is the client's stream.
    pub len: usize,
    /// 1 (text) or 2 (binary).
    pub version: u8,
}

/// A v1 field, to say which one was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V1Field {
    Protocol,
    SourceAddress,
    DestinationAddress,
    SourcePort,
    DestinationPort,
}

impl std::fmt::Display for V1Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            V1Field::Protocol => "protocol",
            V1Field::SourceAddress => "source address",
            V1Field::DestinationAddress => "destination address",
            V1Field::SourcePort => "source port",
            V1Field::DestinationPort => "destination port",
        })
    }
}

/// The address family a v1 line announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V1Family {
    Tcp4,
    Tcp6,
}

impl std::fmt::Display for V1Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            V1Family::Tcp4 => "IPv4 (TCP4)",
            V1Family::Tcp6 => "IPv6 (TCP6)",
        })
    }
}

/// Why the bytes are not a PROXY header. The connection is closed: "Any
/// sequence which does not exactly match the protocol must be discarded and
/// cause the receiver to abort the connection."
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "no PROXY header (the listener expects one: is the load balancer sending PROXY protocol?)"
    )]
    NotProxy,
    #[error("v1 line longer than 107 bytes (no CRLF within them)")]
    V1TooLong,
    #[error("v1: protocol is not TCP4, TCP6 or UNKNOWN")]
    V1Protocol,
    #[error("v1: two spaces before the {0} (fields are separated by exactly one)")]
    V1DoubleSpace(V1Field),
    #[error("v1: the line ends before the {0}")]
    V1MissingField(V1Field),
    #[error("v1: bad {field} (expected an {family} address)")]
    V1Address { field: V1Field, family: V1Family },
    #[error("v1: bad {0} (decimal 0-65535 without leading zeros)")]
    V1Port(V1Field),
    #[error("v1: the line must end in CRLF (a bare CR or LF, or more after the destination port)")]
    V1LineEnd,
    #[error("v2: unsupported version nibble {0:#x} (only 2 is defined)")]
    V2Version(u8),
    #[error("v2: unsupported command nibble {0:#x} (LOCAL is 0, PROXY is 1)")]
    V2Command(u8),
    #[error("v2: unknown address family/transport byte {0:#04x}")]
    V2Family(u8),
    #[error(
        "v2: address block shorter than the family needs ({len} bytes; family {family:#04x} needs {needs})"
    )]
    V2ShortAddress {
        family: u8,
        len: usize,
        needs: usize,
    },
    #[error("header longer than MAX_HEADER_BYTES ({len} > {max} bytes)", max = MAX_HEADER_BYTES)]
    TooLong { len: usize },
}

/// Parses a PROXY header at the start of `input`.
///
/// `Ok(None)`: a prefix of a valid header, read more (it is then shorter
/// than [`MAX_HEADER_BYTES`]). `Ok(Some(header))`: parsed; the bytes after
/// `header.len` belong to the client's stream (TLS ClientHello or HTTP).
/// `Err`: not a PROXY header or a malformed one; close the connection.
pub fn parse(input: &[u8]) -> Result<Option<Header>, ProxyError> {
    // "if the incoming byte count is 16 or above and the 13 first bytes
    // match the protocol signature block ... version 2 ... otherwise, if
    // ... the 5 first characters match ... "PROXY" then the protocol must
    // be parsed as version 1 ... otherwise ... the connection must be
    // dropped." The first byte already tells the three apart.
    let parsed = match input.first() {
        None => return Ok(None),
        Some(b'P') => parse_v1(input),
        Some(b'\r') => parse_v2(input),
        Some(_) => return Err(ProxyError::NotProxy),
    };
    match parsed {
        Ok(header) => {
            debug_assert!(header.len <= input.len() && header.len <= MAX_HEADER_BYTES);
            Ok(Some(header))
        }
        Err(Stop::More) => {
            debug_assert!(input.len() < MAX_HEADER_BYTES);
            Ok(None)
        }
        Err(Stop::Bad(e)) => Err(e),
    }
}

/// Why a parse stopped short of a header.
enum Stop {
    /// The bytes so far are a valid prefix.
    More,
    Bad(ProxyError),
}

impl From<ProxyError> for Stop {
    fn from(e: ProxyError) -> Stop {
        Stop::Bad(e)
    }
}
