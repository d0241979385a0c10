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

/// A cursor over a v1 line that never reads past the input or past
/// [`V1_MAX_LINE`].
struct Line<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Line<'a> {
    fn next(&mut self) -> Result<u8, Stop> {
        if self.pos >= V1_MAX_LINE {
            return Err(ProxyError::V1TooLong.into());
        }
        let b = *self.input.get(self.pos).ok_or(Stop::More)?;
        self.pos += 1;
        Ok(b)
    }

    /// The bytes from `start` up to the cursor, the last one read excluded.
    fn before_last(&self, start: usize) -> &'a [u8] {
        self.input
            .get(start..self.pos.saturating_sub(1))
            .unwrap_or_default()
    }
}

/// What a v1 field holds.
#[derive(Clone, Copy)]
enum Kind {
    Address(V1Family),
    Port,
}

impl Kind {
    /// Whether `so_far` can still begin a valid field of this kind. Exact
    /// for ports (every prefix of a valid port is one); for addresses the
    /// alphabet and the length, the full check waiting for the field's end.
    fn allows(self, so_far: &[u8]) -> bool {
        let Some(&last) = so_far.last() else {
            return true;
        };
        match self {
            Kind::Address(V1Family::Tcp4) => {
                so_far.len() <= V1_IPV4_CHARS && (last.is_ascii_digit() || last == b'.')
            }
            Kind::Address(V1Family::Tcp6) => {
                so_far.len() <= V1_IPV6_CHARS
                    && (last.is_ascii_hexdigit() || last == b':' || last == b'.')
            }
            Kind::Port => port(so_far).is_some(),
        }
    }

    fn error(self, field: V1Field) -> ProxyError {
        match self {
            Kind::Address(family) => ProxyError::V1Address { field, family },
            Kind::Port => ProxyError::V1Port(field),
        }
    }
}

/// A v1 port: 1 to 5 decimal digits, no leading zero, at most 65535.
fn port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty()
        || digits.len() > V1_PORT_DIGITS
        || (digits.len() > 1 && digits.first() == Some(&b'0'))
    {
        return None;
    }
    let mut value: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(d - b'0');
    }
    u16::try_from(value).ok()
}

/// A complete v1 address of `family`. `std` refuses IPv4 octets with
/// leading zeros, as the spec does.
fn address(text: &[u8], family: V1Family) -> Option<IpAddr> {
    let text = std::str::from_utf8(text).ok()?;
    match family {
        V1Family::Tcp4 => text.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        V1Family::Tcp6 => text.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
    }
}

/// Reads one v1 field and the single byte that ends it (a space, or CR for
/// the destination port); returns the field's bytes.
fn field<'a>(line: &mut Line<'a>, which: V1Field, kind: Kind) -> Result<&'a [u8], Stop> {
    let last_field = which == V1Field::DestinationPort;
    let end = if last_field { b'\r' } else { b' ' };
    let start = line.pos;
    loop {
        let b = line.next()?;
        let value = line.before_last(start);
        if b == b' ' && value.is_empty() {
            return Err(ProxyError::V1DoubleSpace(which).into());
        }
        if b == end {
            return Ok(value);
        }
        let so_far = line.input.get(start..line.pos).unwrap_or_default();
        if !kind.allows(so_far) {
            return Err(match b {
                b'\r' | b'\n' if !last_field => ProxyError::V1MissingField(which.next()),
                b' ' | b'\n' if last_field => ProxyError::V1LineEnd,
                _ => kind.error(which),
            }
            .into());
        }
    }
}

impl V1Field {
    /// The field after this one, for "the line ends before ...".
    fn next(self) -> V1Field {
        match self {
            V1Field::Protocol => V1Field::SourceAddress,
            V1Field::SourceAddress => V1Field::DestinationAddress,
            V1Field::DestinationAddress => V1Field::SourcePort,
            V1Field::SourcePort | V1Field::DestinationPort => V1Field::DestinationPort,
        }
    }
}

/// "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", or "PROXY UNKNOWN"
/// followed by anything up to CRLF.
fn parse_v1(input: &[u8]) -> Result<Header, Stop> {
    let mut line = Line { input, pos: 0 };
    for &want in V1_PREFIX {
        if line.next()? != want {
            return Err(ProxyError::NotProxy.into());
        }
    }
    // "exactly one space : " " ( \x20 )"
    if line.next()? != b' ' {
        return Err(ProxyError::V1Protocol.into());
    }

    let start = line.pos;
    let end = loop {
        let b = line.next()?;
        if matches!(b, b' ' | b'\r' | b'\n') {
            break b;
        }
        let so_far = line.input.get(start..line.pos).unwrap_or_default();
        if !V1_PROTOCOLS.iter().any(|p| p.starts_with(so_far)) {
            return Err(ProxyError::V1Protocol.into());
        }
    };
    let protocol = line.before_last(start);
    if protocol.is_empty() && end == b' ' {
        return Err(ProxyError::V1DoubleSpace(V1Field::Protocol).into());
    }

    let family = match protocol {
        V1_UNKNOWN => {
            // "the rest of the line before the CRLF may be omitted by the
            // sender, and the receiver must ignore anything presented
            // before the CRLF is found."
            let mut b = end;
            if b == b'\n' {
                return Err(ProxyError::V1LineEnd.into());
            }
            while b != b'\r' {
                b = line.next()?;
                if b == b'\n' {
                    return Err(ProxyError::V1LineEnd.into());
                }
            }
            if line.next()? != b'\n' {
                return Err(ProxyError::V1LineEnd.into());
            }
            return Ok(Header {
                origin: Origin::Local,
                len: line.pos,
                version: 1,
            });
        }
        V1_TCP4 => V1Family::Tcp4,
        V1_TCP6 => V1Family::Tcp6,
        _ => return Err(ProxyError::V1Protocol.into()),
    };
    if end != b' ' {
        return Err(ProxyError::V1MissingField(V1Field::SourceAddress).into());
    }

    let mut addresses = [IpAddr::V4(Ipv4Addr::UNSPECIFIED); 2];
    for (slot, which) in addresses
        .iter_mut()
        .zip([V1Field::SourceAddress, V1Field::DestinationAddress])
    {
        let kind = Kind::Address(family);
        let text = field(&mut line, which, kind)?;
        *slot = address(text, family).ok_or(kind.error(which))?;
    }
    let mut ports = [0u16; 2];
    for (slot, which) in ports
        .iter_mut()
        .zip([V1Field::SourcePort, V1Field::DestinationPort])
    {
        let text = field(&mut line, which, Kind::Port)?;
        *slot = port(text).ok_or(Kind::Port.error(which))?;
    }
    if line.next()? != b'\n' {
        return Err(ProxyError::V1LineEnd.into());
    }
    let [source, destination] = addresses;
    let [source_port, destination_port] = ports;
    Ok(Header {
        origin: Origin::Tcp {
            source: SocketAddr::new(source, source_port),
            destination: SocketAddr::new(destination, destination_port),
        },
        len: line.pos,
        version: 1,
    })
}

/// Address block bytes a v2 family/transport byte needs, or None for a
/// byte the spec does not define ("other values are unspecified and must
/// not be emitted in version 2 of this protocol and must be rejected as
/// invalid by receivers").
fn v2_address_bytes(family: u8) -> Option<usize> {
    match family {
        V2_UNSPEC => Some(0),
        // "Address length is 2*4 + 2*2 = 12 bytes."
        V2_TCP4 | V2_UDP4 => Some(12),
        // "Address length is 2*16 + 2*2 = 36 bytes."
        V2_TCP6 | V2_UDP6 => Some(36),
        // "Address length is 2*108 = 216 bytes."
        V2_UNIX_STREAM | V2_UNIX_DGRAM => Some(216),
        _ => None,
    }
}

/// A TCP address block: source address, destination address (N bytes
/// each), source port, destination port, all in network byte order.
fn v2_tcp<const N: usize>(block: &[u8]) -> Option<Origin>
where
    IpAddr: From<[u8; N]>,
{
    let (source, rest) = block.split_first_chunk::<N>()?;
    let (destination, rest) = rest.split_first_chunk::<N>()?;
    let (source_port, rest) = rest.split_first_chunk::<2>()?;
    let (destination_port, _tlvs) = rest.split_first_chunk::<2>()?;
    Some(Origin::Tcp {
        source: SocketAddr::new(IpAddr::from(*source), u16::from_be_bytes(*source_port)),
        destination: SocketAddr::new(
            IpAddr::from(*destination),
            u16::from_be_bytes(*destination_port),
        ),
    })
}

/// The binary header: signature, version/command, family/transport,
/// big-endian length, then that many bytes of addresses and TLVs. Each
/// byte is checked as soon as it has arrived.
fn parse_v2(input: &[u8]) -> Result<Header, Stop> {
    let seen = input.len().min(V2_SIGNATURE.len());
    if input.get(..seen) != V2_SIGNATURE.get(..seen) {
        return Err(ProxyError::NotProxy.into());
    }
    let byte = |i: usize| input.get(i).copied().ok_or(Stop::More);

    let version_command = byte(12)?;
    let version = version_command >> 4;
    if version != V2_VERSION {
        return Err(ProxyError::V2Version(version).into());
    }
    // "Receivers must drop connections presenting unexpected values here."
    let command = version_command & 0x0f;
    if command != V2_LOCAL && command != V2_PROXY {
        return Err(ProxyError::V2Command(command).into());
    }

    // LOCAL: "discard the protocol block including the family which is
    // ignored", so only PROXY has its family checked.
    let family = byte(13)?;
    let needs = if command == V2_PROXY {
        v2_address_bytes(family).ok_or(ProxyError::V2Family(family))?
    } else {
        0
    };

    let len = usize::from(u16::from_be_bytes([byte(14)?, byte(15)?]));
    let total = V2_FIXED_BYTES + len;
    if total > MAX_HEADER_BYTES {
        return Err(ProxyError::TooLong { len: total }.into());
    }
    let short = ProxyError::V2ShortAddress { family, len, needs };
    if len < needs {
        return Err(short.into());
    }
    // "The receiver must not start to parse an address before the whole
    // address block is received."
    let block = input.get(V2_FIXED_BYTES..total).ok_or(Stop::More)?;
    let origin = match (command, family) {
        (V2_PROXY, V2_TCP4) => v2_tcp::<4>(block).ok_or(short)?,
        (V2_PROXY, V2_TCP6) => v2_tcp::<16>(block).ok_or(short)?,
        // LOCAL, UNSPEC, UDP and unix: "use the real connection endpoints".
        _ => Origin::Local,
    };
    Ok(Header {
        origin,
        len: total,
        version: 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(source: &str, destination: &str) -> Origin {
        Origin::Tcp {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    /// Asserts every strict prefix of `header` is "read more".
    fn prefixes_wait(header: &[u8]) {
        for n in 0..header.len() {
            assert_eq!(
                parse(&header[..n]),
                Ok(None),
                "prefix {n} of {:?}",
                header.escape_ascii().to_string()
            );
        }
    }

    /// A v2 header: signature, the two command bytes, length, block.
    fn v2(version_command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(version_command);
        h.push(family);
        h.extend_from_slice(&(block.len() as u16).to_be_bytes());
        h.extend_from_slice(block);
        h
    }

    /// 12-byte TCP over IPv4 block: 192.168.0.1:56324 -> 10.0.0.11:443.
    const TCP4_BLOCK: [u8; 12] = [192, 168, 0, 1, 10, 0, 0, 11, 0xdc, 0x04, 0x01, 0xbb];

    fn tcp6_block() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&65535u16.to_be_bytes());
        b.extend_from_slice(&80u16.to_be_bytes());
        b
    }

    #[test]
    fn v1_valid_table() {
        let longest_unknown = format!("PROXY UNKNOWN {}\r\n", "x".repeat(91));
        assert_eq!(longest_unknown.len(), V1_MAX_LINE);
        let longest_tcp6 = format!(
            "PROXY TCP6 {0} {0} 65535 65535\r\n",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(longest_tcp6.len(), 104);
        let cases: &[(&str, Origin)] = &[
            (
                "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
                tcp("192.168.0.1:56324", "192.168.0.11:443"),
            ),
            (
                "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n",
                tcp("255.255.255.255:65535", "0.0.0.0:0"),
            ),
            (
                "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
                tcp("[2001:db8::1]:1", "[::1]:65535"),
            ),
            (
                "PROXY TCP6 ::ffff:1.2.3.4 FE80::A 8080 80\r\n",
                tcp("[::ffff:1.2.3.4]:8080", "[fe80::a]:80"),
            ),
            (
                &longest_tcp6,
                tcp(
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                ),
            ),
            ("PROXY UNKNOWN\r\n", Origin::Local),
            (
                "PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n",
                Origin::Local,
            ),
            ("PROXY UNKNOWN  anything\tat all \r\n", Origin::Local),
            (&longest_unknown, Origin::Local),
        ];
        for (line, origin) in cases {
            prefixes_wait(line.as_bytes());
            for trailer in [&b""[..], b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00"] {
                let mut input = line.as_bytes().to_vec();
                input.extend_from_slice(trailer);
                let want = Header {
                    origin: *origin,
                    len: line.len(),
                    version: 1,
                };
                assert_eq!(parse(&input), Ok(Some(want)), "{line:?}");
            }
        }
    }

    #[test]
    fn v1_invalid_table() {
        use ProxyError::*;
        use V1Family::*;
        use V1Field::*;
        let too_long_unknown = format!("PROXY UNKNOWN {}\r\n", "x".repeat(92));
        let no_crlf = format!("PROXY UNKNOWN {}", "x".repeat(200));
        let long_tcp6 = format!(
            "PROXY TCP6 {0} {0} 65535 65535\r\n",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
        );
        let cases: &[(&str, ProxyError)] = &[
            ("GET / HTTP/1.1\r\n", NotProxy),
            ("G", NotProxy),
            ("\x16\x03\x01", NotProxy),
            ("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", NotProxy),
            ("PROXI", NotProxy),
            ("PROXY\r\n", V1Protocol),
            ("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", V1Protocol),
            ("PROXY tcp4", V1Protocol),
            ("PROXY TCP ", V1Protocol),
            ("PROXY UNKNOWNX\r\n", V1Protocol),
            (
                "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
                V1DoubleSpace(Protocol),
            ),
            (
                "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
                V1DoubleSpace(SourceAddress),
            ),
            (
                "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
                V1DoubleSpace(DestinationAddress),
            ),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",
                V1DoubleSpace(SourcePort),
            ),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
                V1DoubleSpace(DestinationPort),
            ),
            ("PROXY TCP4\r\n", V1MissingField(SourceAddress)),
            ("PROXY TCP4 1.2.3.4\r\n", V1MissingField(DestinationAddress)),
            ("PROXY TCP4 1.2.3.4 5.6.7.8\r\n", V1MissingField(SourcePort)),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
                V1MissingField(DestinationPort),
            ),
            (
                "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
                V1Address {
                    field: SourceAddress,
                    family: Tcp4,
                },
            ),
            (
                "PROXY TCP4 1.2.3.4 5.6.7 1 2\r\n",
                V1Address {
                    field: DestinationAddress,
                    family: Tcp4,
                },
            ),
            (
                "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
                V1Address {
                    field: SourceAddress,
                    family: Tcp4,
                },
            ),
            (
                "PROXY TCP4 1.2.3.4x",
                V1Address {
                    field: SourceAddress,
                    family: Tcp4,
                },
            ),
            (
                "PROXY TCP4 1111.2222.3333.4444",
                V1Address {
                    field: SourceAddress,
                    family: Tcp4,
                },
            ),
            // Family mismatch: refused at the first ':' for TCP4, at the
            // field's end for TCP6.
            (
                "PROXY TCP4 ::1 ::1 1 2\r\n",
                V1Address {
                    field: SourceAddress,
                    family: Tcp4,
                },
            ),
            (
                "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
                V1Address {
                    field: SourceAddress,
                    family: Tcp6,
                },
            ),
            (
                "PROXY TCP6 ::1 ::g 1 2\r\n",
                V1Address {
                    field: DestinationAddress,
                    family: Tcp6,
                },
            ),
            (
                "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
                V1Address {
                    field: SourceAddress,
                    family: Tcp6,
                },
            ),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", V1Port(SourcePort)),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
                V1Port(DestinationPort),
            ),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 100000", V1Port(SourcePort)),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", V1Port(SourcePort)),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 00", V1Port(SourcePort)),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n",
                V1Port(DestinationPort),
            ),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", V1LineEnd),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", V1LineEnd),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", V1LineEnd),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", V1LineEnd),
            ("PROXY UNKNOWN\n", V1LineEnd),
            ("PROXY UNKNOWN\rX\r\n", V1LineEnd),
            ("PROXY UNKNOWN a\nb\r\n", V1LineEnd),
            (&too_long_unknown, V1TooLong),
            (&no_crlf, V1TooLong),
            (&long_tcp6, V1TooLong),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input.as_bytes()), Err(want.clone()), "{input:?}");
        }
    }

    #[test]
    fn v1_refuses_early() {
        // Bytes that cannot become a header are refused on arrival, not
        // after 107 bytes: the receiver "is recommended to abort the
        // connection as soon as possible".
        for (input, refused_at) in [
            ("GET / HTTP/1.1\r\n", 1),
            ("PROXY TCP4 ::1 ::1 1 2\r\n", 12),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", 32),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", 29),
            ("PROXY TCPX", 10),
        ] {
            let bytes = input.as_bytes();
            assert_eq!(parse(&bytes[..refused_at - 1]), Ok(None), "{input:?}");
            assert!(parse(&bytes[..refused_at]).is_err(), "{input:?}");
        }
    }

    #[test]
    fn v2_valid_table() {
        let tcp6 = tcp6_block();
        let mut tcp4_tlvs = TCP4_BLOCK.to_vec();
        // PP2_TYPE_AUTHORITY "example.com", then PP2_TYPE_NOOP of 3 bytes.
        tcp4_tlvs.extend_from_slice(b"\x02\x00\x0bexample.com\x04\x00\x03\0\0\0");
        let mut tcp6_tlvs = tcp6.clone();
        // AWS NLB's VPC endpoint ID (type 0xEA, subtype 0x01).
        tcp6_tlvs.extend_from_slice(b"\xea\x00\x17\x01vpce-08d2bf15fac5001c9");
        let largest = vec![0u8; MAX_HEADER_BYTES - V2_FIXED_BYTES];
        let v4 = tcp("192.168.0.1:56324", "10.0.0.11:443");
        let v6 = tcp("[2001:db8::1]:65535", "[2001:db8::2]:80");
        let cases: &[(Vec<u8>, Origin)] = &[
            (v2(0x21, V2_TCP4, &TCP4_BLOCK), v4),
            (v2(0x21, V2_TCP4, &tcp4_tlvs), v4),
            (v2(0x21, V2_TCP6, &tcp6), v6),
            (v2(0x21, V2_TCP6, &tcp6_tlvs), v6),
            (v2(0x20, V2_UNSPEC, b""), Origin::Local),
            // LOCAL ignores the family and whatever block is there.
            (v2(0x20, V2_TCP4, &TCP4_BLOCK), Origin::Local),
            (v2(0x20, 0xff, b""), Origin::Local),
            (v2(0x21, V2_UNSPEC, b""), Origin::Local),
            (v2(0x21, V2_UNSPEC, &TCP4_BLOCK), Origin::Local),
            (v2(0x21, V2_UDP4, &TCP4_BLOCK), Origin::Local),
            (v2(0x21, V2_UDP6, &tcp6), Origin::Local),
            (v2(0x21, V2_UNIX_STREAM, &[0; 216]), Origin::Local),
            (v2(0x21, V2_UNIX_DGRAM, &[0; 216]), Origin::Local),
            (v2(0x21, V2_UNSPEC, &largest), Origin::Local),
        ];
        for (header, origin) in cases {
            prefixes_wait(header);
            let mut input = header.clone();
            input.extend_from_slice(b"\x16\x03\x01\x02\x00 client hello");
            let want = Header {
                origin: *origin,
                len: header.len(),
                version: 2,
            };
            assert_eq!(parse(&input), Ok(Some(want)), "{header:02x?}");
        }
    }

    #[test]
    fn v2_invalid_table() {
        use ProxyError::*;
        let mut bad_signature = v2(0x21, V2_TCP4, &TCP4_BLOCK);
        bad_signature[7] = b'q';
        let mut too_long = v2(0x21, V2_UNSPEC, b"");
        too_long[14..16].copy_from_slice(&4081u16.to_be_bytes());
        let mut max_len = v2(0x21, V2_UNSPEC, b"");
        max_len[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        let short = |family, len, needs| V2ShortAddress { family, len, needs };
        let cases: &[(Vec<u8>, ProxyError)] = &[
            (bad_signature, NotProxy),
            (b"\r\n\r\n\r\n".to_vec(), NotProxy),
            (v2(0x11, V2_TCP4, &TCP4_BLOCK), V2Version(1)),
            (v2(0x31, V2_TCP4, &TCP4_BLOCK), V2Version(3)),
            (v2(0x01, V2_TCP4, &TCP4_BLOCK), V2Version(0)),
            (v2(0x22, V2_TCP4, &TCP4_BLOCK), V2Command(2)),
            (v2(0x2f, V2_TCP4, &TCP4_BLOCK), V2Command(0xf)),
            (v2(0x21, 0x13, &TCP4_BLOCK), V2Family(0x13)),
            (v2(0x21, 0x41, &TCP4_BLOCK), V2Family(0x41)),
            (v2(0x21, 0x01, &TCP4_BLOCK), V2Family(0x01)),
            (v2(0x21, V2_TCP4, &TCP4_BLOCK[..11]), short(V2_TCP4, 11, 12)),
            (v2(0x21, V2_TCP4, b""), short(V2_TCP4, 0, 12)),
            (v2(0x21, V2_TCP6, &TCP4_BLOCK), short(V2_TCP6, 12, 36)),
            (v2(0x21, V2_UDP6, &[0; 35]), short(V2_UDP6, 35, 36)),
            (
                v2(0x21, V2_UNIX_STREAM, &[0; 108]),
                short(V2_UNIX_STREAM, 108, 216),
            ),
            (too_long, TooLong { len: 16 + 4081 }),
            (max_len, TooLong { len: 16 + 65535 }),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Err(want.clone()), "{input:02x?}");
        }
    }

    #[test]
    fn v2_refuses_early() {
        // Bad bytes are refused when they arrive, before the block does.
        let header = v2(0x21, V2_TCP4, &TCP4_BLOCK);
        assert_eq!(parse(&header[..12]), Ok(None));
        assert_eq!(
            parse(&[0x0d, 0x0a, 0x0d, 0x0a, 0x01]),
            Err(ProxyError::NotProxy)
        );
        let mut bad = header.clone();
        bad[12] = 0x11;
        assert_eq!(parse(&bad[..13]), Err(ProxyError::V2Version(1)));
        bad = header.clone();
        bad[13] = 0x99;
        assert_eq!(parse(&bad[..14]), Err(ProxyError::V2Family(0x99)));
        bad = header.clone();
        bad[15] = 4;
        assert!(matches!(
            parse(&bad[..16]),
            Err(ProxyError::V2ShortAddress { .. })
        ));
    }

    /// xorshift64 (Marsaglia 2003): deterministic bytes without a
    /// dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Checks what must hold for any input: no panic, `len` within the
    /// input and the bound, a parsed header's prefixes all wait, and an
    /// error stays an error however many bytes follow. Returns which of
    /// the three outcomes it was (parsed, waiting, refused).
    fn check(input: &[u8]) -> usize {
        match parse(input) {
            Ok(Some(h)) => {
                assert!(h.len <= input.len() && h.len <= MAX_HEADER_BYTES);
                assert_eq!(parse(&input[..h.len]), Ok(Some(h)));
                prefixes_wait(&input[..h.len]);
                0
            }
            Ok(None) => {
                assert!(input.len() < MAX_HEADER_BYTES);
                1
            }
            Err(e) => {
                let mut longer = input.to_vec();
                longer.extend_from_slice(b"\r\n 1.2.3.4");
                assert_eq!(parse(&longer), Err(e));
                2
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let seeds: Vec<Vec<u8>> = vec![
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /".to_vec(),
            b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n".to_vec(),
            b"PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n".to_vec(),
            v2(0x21, V2_TCP4, &TCP4_BLOCK),
            v2(0x21, V2_TCP6, &tcp6_block()),
            v2(0x20, V2_UNSPEC, b""),
        ];
        let alphabet = b"PROXY TCP46UNKOW0123456789.:abcdef\r\n\0QUIT\x11\x21 ";
        let mut outcomes = [0usize; 3];
        for round in 0..6000 {
            let input: Vec<u8> = match round % 3 {
                // Uniform random bytes, a random length.
                0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
                // A valid header with a few bytes changed and cut anywhere.
                1 => {
                    let mut v = seeds[rng.below(seeds.len())].clone();
                    for _ in 0..=rng.below(3) {
                        let i = rng.below(v.len());
                        v[i] = rng.next() as u8;
                    }
                    v.truncate(rng.below(v.len() + 1));
                    v
                }
                // A valid start, then bytes from the protocol's alphabet.
                _ => {
                    let seed = &seeds[rng.below(seeds.len())];
                    let mut v = seed[..rng.below(seed.len() + 1)].to_vec();
                    for _ in 0..rng.below(120) {
                        v.push(alphabet[rng.below(alphabet.len())]);
                    }
                    v
                }
            };
            outcomes[check(&input)] += 1;
        }
        // The mutated inputs must reach every outcome, or the loop tests
        // little beyond the first byte.
        assert!(outcomes.iter().all(|&n| n > 100), "{outcomes:?}");
    }
}
