//! Consistent hashing: which request bytes a hashing group keys on
//! ([`key_of`]), and the ring of virtual points that maps a key's hash to
//! a server. The hash is hand-written and fixed (FNV-1a, then murmur3's
//! fmix64 finaliser), so every process, restart and build maps a key to
//! the same server, and two proxies in front of one group agree.

use super::Server;

/// Which part of a request a hashing group keys on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address; the caller hashes its octets.
    ClientIp,
    /// A request header's value; the name is stored lowercased.
    Header(String),
    /// A cookie's value, from the `Cookie` header(s); names are case-sensitive.
    Cookie(String),
    /// A query parameter's raw (not percent-decoded) value from the target.
    Query(String),
}

/// Extracts the hash key for `key` from a parsed request: a header's value
/// (first occurrence, case-insensitive name), a cookie's value from the
/// Cookie header(s) ("a=1; sid=xyz"), or a query parameter's raw value
/// from the target ("/socket.io/?EIO=4&transport=websocket&sid=abc").
/// ClientIp returns None here (the caller hashes the IP bytes). Empty
/// values count as absent.
pub fn key_of<'a>(
    key: &HashKey,
    headers: &[httparse::Header<'a>],
    target: &'a str,
) -> Option<&'a [u8]> {
    let value = match key {
        HashKey::ClientIp => None,
        HashKey::Header(name) => values(headers, name).next().map(<[u8]>::trim_ascii),
        HashKey::Cookie(name) => values(headers, "cookie")
            .flat_map(|v| v.split(|&b| b == b';'))
            .find_map(|pair| param(pair.trim_ascii(), name)),
        HashKey::Query(name) => {
            let query = target.split_once('?')?.1;
            let query = query.split_once('#').map_or(query, |(q, _)| q);
            query
                .as_bytes()
                .split(|&b| b == b'&')
                .find_map(|pair| param(pair, name))
        }
    };
    value.filter(|v| !v.is_empty())
}

/// The values of the headers called `name`, in order.
fn values<'a, 'h>(
    headers: &'h [httparse::Header<'a>],
    name: &'h str,
) -> impl Iterator<Item = &'a [u8]> + 'h {
    let named = headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name));
    named.map(|h| h.value)
}

/// The value of `pair` ("name=value") when its name is `name`.
fn param<'a>(pair: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let value = pair.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
    Some(value.trim_ascii())
}

/// The stable 64-bit hash of `bytes`.
pub(super) fn hash(bytes: &[u8]) -> u64 {
    // FNV-1a 64-bit offset basis and prime (draft-eastlake-fnv).
    let fnv = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    fmix64(fnv)
}

/// murmur3's 64-bit finaliser: FNV's low bits mix poorly, this spreads them.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Virtual points per unit of weight: enough that 4 equal servers get
/// 25% ± a few points each (ketama uses 160 too).
const POINTS_PER_WEIGHT: u64 = 160;

/// Most points in one ring (3 MiB; 1638 units of weight): heavier groups
/// are scaled down to fit, at the cost that removing a server then also
/// moves a few keys between the others.
const MAX_POINTS: u64 = 1 << 18;

/// Points sorted by hash; point `i` is `hashes[i]` owned by `servers[i]`.
#[derive(Clone, Debug)]
pub(super) struct Ring {
    hashes: Box<[u64]>,
    servers: Box<[u16]>,
}

impl Ring {
    /// Server `i`'s points hash "name#0", "name#1", ... so they depend on
    /// its name and weight only, not on the other servers.
    pub(super) fn new(servers: &[Server]) -> Ring {
        let total: u64 = servers
            .iter()
            .map(|s| u64::from(s.weight) * POINTS_PER_WEIGHT)
            .sum();
        let mut points: Vec<(u64, u16)> = Vec::new();
        for (index, server) in servers.iter().enumerate() {
            let mut count = u64::from(server.weight) * POINTS_PER_WEIGHT;
            if total > MAX_POINTS {
                count = (count * MAX_POINTS / total).max(1);
            }
            let index = u16::try_from(index).expect("group size checked by Group::new");
            points.extend(
                (0..count).map(|i| (hash(format!("{}#{i}", server.name).as_bytes()), index)),
            );
        }
        points.sort_unstable();
        let (hashes, servers) = points.into_iter().unzip::<_, _, Vec<_>, Vec<_>>();
        Ring {
            hashes: hashes.into(),
            servers: servers.into(),
        }
    }

    /// The server owning the first point at or after `hash` (wrapping)
    /// that is `usable`; if none is, the first point's owner regardless.
    pub(super) fn lookup(&self, hash: u64, usable: impl Fn(usize) -> bool) -> usize {
        let start = self.hashes.partition_point(|&h| h < hash) % self.hashes.len();
        let (before, after) = self.servers.split_at(start);
        let mut owners = after.iter().chain(before).map(|&s| usize::from(s));
        owners
            .find(|&s| usable(s))
            .unwrap_or_else(|| usize::from(self.servers[start]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(weights: &[u32]) -> Vec<Server> {
        let names = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];
        (0..weights.len())
            .map(|i| Server {
                addr: names[i].parse().unwrap(),
                name: names[i].to_string(),
                weight: weights[i],
                tls: None,
                backup: false,
            })
            .collect()
    }

    /// Where each of 10 000 keys lands, by server name.
    fn placements(servers: &[Server]) -> Vec<&str> {
        let ring = Ring::new(servers);
        let keys = (0..10_000).map(|k| hash(format!("client-{k}").as_bytes()));
        keys.map(|h| servers[ring.lookup(h, |_| true)].name.as_str())
            .collect()
    }

    fn shares(servers: &[Server]) -> Vec<f64> {
        let placed = placements(servers);
        let count = |name: &str| placed.iter().filter(|&&p| p == name).count();
        servers
            .iter()
            .map(|s| count(&s.name) as f64 / placed.len() as f64)
            .collect()
    }

    #[test]
    fn hash_is_stable() {
        // FNV-1a's published vectors, through fmix64.
        assert_eq!(hash(b""), fmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(hash(b"a"), fmix64(0xaf63_dc4c_8601_ec8c));
        assert_eq!(hash(b"foobar"), fmix64(0x8594_4171_f739_67e8));
        assert_eq!(fmix64(0), 0);
    }

    #[test]
    fn same_key_same_server() {
        let servers = servers(&[1, 1, 1, 1]);
        assert_eq!(placements(&servers), placements(&servers));
        let ring = Ring::new(&servers);
        for key in ["a", "user-42", "10.1.2.3"] {
            let first = ring.lookup(hash(key.as_bytes()), |_| true);
            assert!((0..5).all(|_| ring.lookup(hash(key.as_bytes()), |_| true) == first));
        }
    }

    #[test]
    fn weights_set_shares() {
        let table: &[(&[u32], &[f64])] = &[
            (&[1, 1, 1, 1], &[0.25, 0.25, 0.25, 0.25]),
            (&[1, 3], &[0.25, 0.75]),
            (&[2, 2, 4], &[0.25, 0.25, 0.5]),
        ];
        for &(weights, want) in table {
            let got = shares(&servers(weights));
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() <= 0.05, "weights {weights:?}: shares {got:?}");
            }
        }
    }

    #[test]
    fn removing_a_server_moves_only_its_keys() {
        let all = servers(&[1, 1, 1, 1]);
        let before = placements(&all);
        for gone in 0..all.len() {
            let mut rest = all.clone();
            let removed = rest.remove(gone).name;
            let after = placements(&rest);
            let mut moved = 0;
            for (b, a) in before.iter().zip(&after) {
                if *b == removed {
                    moved += 1;
                } else {
                    assert_eq!(b, a, "a key moved off {b}, which stayed");
                }
            }
            let share = moved as f64 / before.len() as f64;
            assert!(
                (share - 0.25).abs() <= 0.05,
                "removing {removed} moved {share}"
            );
        }
    }

    #[test]
    fn lookup_walks_past_unusable_servers() {
        let servers = servers(&[1, 1, 1]);
        let ring = Ring::new(&servers);
        for k in 0..100 {
            let h = hash(format!("k{k}").as_bytes());
            let home = ring.lookup(h, |_| true);
            let moved = ring.lookup(h, |s| s != home);
            assert_ne!(moved, home);
            assert_eq!(
                ring.lookup(h, |_| false),
                home,
                "none usable: the home server"
            );
        }
    }

    #[test]
    fn heavy_weights_are_capped() {
        let ring = Ring::new(&servers(&[u32::MAX, 1]));
        assert!(ring.hashes.len() as u64 <= MAX_POINTS + 1);
        assert!(ring.servers.contains(&1), "the light server keeps a point");
    }

    #[test]
    fn keys_come_from_headers_cookies_and_query() {
        let h = |name, value: &'static str| httparse::Header {
            name,
            value: value.as_bytes(),
        };
        let headers = [
            h("Host", "example.com"),
            h("X-User", "alice"),
            h("x-user", "bob"),
            h("X-Empty", ""),
            h("Cookie", "a=1; sid=xyz"),
            h("cookie", "theme=dark;token=t0k; blank="),
        ];
        let target = "/socket.io/?EIO=4&transport=websocket&sid=abc&e=&flag#frag";
        let header = |n: &str| HashKey::Header(n.to_string());
        let cookie = |n: &str| HashKey::Cookie(n.to_string());
        let query = |n: &str| HashKey::Query(n.to_string());
        let table: &[(HashKey, &str, Option<&str>)] = &[
            (HashKey::ClientIp, target, None),
            (header("x-user"), target, Some("alice")),
            (header("host"), target, Some("example.com")),
            (header("x-missing"), target, None),
            (header("x-empty"), target, None),
            (cookie("sid"), target, Some("xyz")),
            (cookie("a"), target, Some("1")),
            (cookie("token"), target, Some("t0k")),
            (cookie("theme"), target, Some("dark")),
            (cookie("SID"), target, None),
            (cookie("si"), target, None),
            (cookie("blank"), target, None),
            (cookie("missing"), target, None),
            (query("sid"), target, Some("abc")),
            (query("EIO"), target, Some("4")),
            (query("transport"), target, Some("websocket")),
            (query("e"), target, None),
            (query("flag"), target, None),
            (query("frag"), target, None),
            (query("sid"), "/socket.io/", None),
            (query("sid"), "/?sid=a%20b", Some("a%20b")),
        ];
        for (key, target, want) in table {
            let got = key_of(key, &headers, target);
            assert_eq!(got, want.map(str::as_bytes), "{key:?} in {target}");
        }
        assert_eq!(
            key_of(&cookie("sid"), &headers[..1], target),
            None,
            "no Cookie header"
        );
    }
}
