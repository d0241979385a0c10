//! Version 2: the binary header with its signature, address block and
//! TLVs.

use super::*;

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
pub(super) fn parse_v2(input: &[u8]) -> Result<Header, Stop> {
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
