//! Version 1: the human-readable `PROXY TCP4 …\r\n` line.

use super::*;

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
pub(super) fn parse_v1(input: &[u8]) -> Result<Header, Stop> {
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
