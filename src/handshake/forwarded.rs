//! Trusted proxies: the address ranges whose `X-Forwarded-For`,
//! `X-Real-IP` and `X-Forwarded-Proto` the proxy believes.
//!
//! A client can write anything in those fields, so by default the proxy
//! replaces them with what it knows (the connecting address, its own
//! scheme). A peer inside a trusted range (a load balancer or CDN in front)
//! speaks for its clients: its `X-Forwarded-For` list is kept and the peer
//! appended, as HAProxy's `option forwardfor` and nginx's
//! `$proxy_add_x_forwarded_for` behind `set_real_ip_from` do.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::handshake::fields::tokens;

/// An address range: `10.0.0.0/8`, `fd00::/8`, or one address
/// (`127.0.0.1`, `::1`). IPv4-mapped IPv6 peers (`::ffff:10.1.2.3`) match
/// IPv4 ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// Why a range did not parse, worded as what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error(
        "{0:?} is not an address range: use ADDRESS or ADDRESS/BITS, e.g. 10.0.0.0/8 or 127.0.0.1"
    )]
    Syntax(String),
    #[error("{text:?}: the prefix length must be at most {max} for this address")]
    Prefix { text: String, max: u8 },
    #[error("{text:?} has bits set past the prefix: did you mean {fixed}?")]
    HostBits { text: String, fixed: Cidr },
}

impl Cidr {
    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(ip)), 32, self.prefix) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(ip), 128, self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// `bits` (an address `width` bits wide) with everything past the first
/// `prefix` bits cleared.
fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    let host = u32::from(width - prefix);
    if host >= 128 {
        0
    } else {
        bits >> host << host
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let syntax = || CidrError::Syntax(text.to_string());
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, bits)) if !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit()) => {
                (addr, Some(bits.parse::<u8>().map_err(|_| syntax())?))
            }
            Some(_) => return Err(syntax()),
            None => (text, None),
        };
        let written: IpAddr = addr.parse().map_err(|_| syntax())?;
        let width = if written.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(width);
        if prefix > width {
            return Err(CidrError::Prefix {
                text: text.to_string(),
                max: width,
            });
        }
        // An IPv4-mapped IPv6 range is kept as the IPv4 range it covers,
        // since peers are compared in their canonical form.
        let (net, prefix) = match written.to_canonical() {
            IpAddr::V4(v4) if written.is_ipv6() && prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
            _ => (written, prefix),
        };
        let (bits, width) = match net {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        };
        let kept = masked(bits, width, prefix);
        if kept != bits {
            let net = match net {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(kept).expect("32 bits"))),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(kept)),
            };
            return Err(CidrError::HostBits {
                text: text.to_string(),
                fixed: Cidr { net, prefix },
            });
        }
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The trusted ranges; empty (the default) trusts no one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(ranges: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(ranges)
    }

    /// Whether a peer at `ip` may speak for its clients.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(ip))
    }

    /// The client a request from a trusted `peer` stands for, nginx's
    /// `real_ip_recursive on`: walking `X-Forwarded-For` (every line, in
    /// order) from the right, the first hop that is not itself trusted.
    /// A hop that is not an address ends the walk at the hop before it; a
    /// chain of trusted hops only gives its leftmost.
    pub fn client_of<'v>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'v [u8]>,
    ) -> IpAddr {
        let mut client = peer;
        for hop in forwarded_for.flat_map(tokens).rev() {
            if !self.trusts(client) {
                break;
            }
            match std::str::from_utf8(hop).ok().and_then(|h| h.parse().ok()) {
                Some(ip) => client = ip,
                None => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "10.0.0.0/8",
                &["10.0.0.1", "10.255.255.255", "::ffff:10.1.2.3"],
                &["11.0.0.0", "9.255.255.255", "::1"],
            ),
            ("127.0.0.1", &["127.0.0.1"], &["127.0.0.2"]),
            ("0.0.0.0/0", &["1.2.3.4", "255.255.255.255"], &["::1"]),
            ("192.168.1.128/25", &["192.168.1.200"], &["192.168.1.127"]),
            ("::1", &["::1"], &["::2", "127.0.0.1"]),
            ("fd00::/8", &["fd12:3456::1"], &["fe80::1"]),
            ("::/0", &["2001:db8::1"], &["10.0.0.1"]),
            ("::ffff:10.0.0.0/104", &["10.9.9.9"], &["11.0.0.1"]),
            (
                "::ffff:10.0.0.1",
                &["10.0.0.1", "::ffff:10.0.0.1"],
                &["10.0.0.2"],
            ),
        ];
        for (text, inside, outside) in cases {
            let range: Cidr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            for a in *inside {
                assert!(range.contains(ip(a)), "{text} should hold {a}");
            }
            for a in *outside {
                assert!(!range.contains(ip(a)), "{text} should not hold {a}");
            }
        }
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
    }

    #[test]
    fn bad_ranges_say_what_to_write() {
        let cases = [
            ("10.0.0.0/33", "at most 32"),
            ("::/129", "at most 128"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("fd00::1/8", "did you mean fd00::/8?"),
            ("10.0.0.0/", "not an address range"),
            ("10.0.0.0/+8", "not an address range"),
            ("10.0.0.0/8/8", "not an address range"),
            ("localhost", "not an address range"),
            ("", "not an address range"),
            ("10.0.0/8", "not an address range"),
        ];
        for (text, want) in cases {
            let err = text.parse::<Cidr>().expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        ]);
        let cases: &[(&str, &[&str], &str)] = &[
            ("127.0.0.1", &[], "127.0.0.1"),
            ("127.0.0.1", &["203.0.113.7"], "203.0.113.7"),
            ("127.0.0.1", &["6.6.6.6, 203.0.113.7"], "203.0.113.7"),
            ("127.0.0.1", &["203.0.113.7, 10.0.0.5"], "203.0.113.7"),
            (
                "127.0.0.1",
                &["203.0.113.7", "10.0.0.5, 10.0.0.6"],
                "203.0.113.7",
            ),
            ("127.0.0.1", &["10.0.0.5, 10.0.0.6"], "10.0.0.5"),
            ("127.0.0.1", &["6.6.6.6, unknown, 10.0.0.5"], "10.0.0.5"),
            ("127.0.0.1", &[" , "], "127.0.0.1"),
            ("192.0.2.1", &["6.6.6.6"], "192.0.2.1"),
        ];
        for (peer, lines, want) in cases {
            let got = trusted.client_of(ip(peer), lines.iter().map(|l| l.as_bytes()));
            assert_eq!(got, ip(want), "{peer} {lines:?}");
        }
        assert!(!TrustedProxies::default().trusts(ip("127.0.0.1")));
    }
}
