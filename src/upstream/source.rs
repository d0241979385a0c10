//! Source addresses for upstream connections (nginx's `proxy_bind`,
//! HAProxy's `source`): which local addresses a group's connections come
//! from ([`Sources`]), how a connect binds to one and moves on to the next
//! when one has no free port ([`connect`]), a worker's rotation over them
//! ([`Spread`]), and the rate limit on saying that ports ran out
//! ([`Said`]).
//!
//! A connection is one (source address, source port, server address,
//! server port) tuple, so one source address reaches one server through
//! at most the local port range (`net.ipv4.ip_local_port_range`, 28232
//! ports by default). Each source address adds that many again. Binding
//! uses `IP_BIND_ADDRESS_NO_PORT`, so the port is chosen at connect time,
//! unique per server, not reserved at bind time across all of them.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

use crate::{sys, warn};

/// How often, at most, a worker says that source ports ran out (the first
/// time is said at once).
pub const EXHAUSTED_EVERY: Duration = Duration::from_secs(10);

/// A group's source addresses, by family. A server connects from those of
/// its own family; with none of its family, from the address the kernel
/// picks (as without any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sources {
    v4: Box<[IpAddr]>,
    v6: Box<[IpAddr]>,
    /// What to change when ports run out, in the words of where the
    /// addresses are set ("add addresses to source_addresses in
    /// [upstream.app]").
    fix: Box<str>,
}

/// None: the kernel picks every connection's source address.
impl Default for Sources {
    fn default() -> Sources {
        Sources::new(&[], "set source_addresses".into())
    }
}

impl Sources {
    /// `addrs` in the order given; `fix` names the setting to change.
    pub fn new(addrs: &[IpAddr], fix: String) -> Sources {
        let family = |v6: bool| {
            addrs
                .iter()
                .copied()
                .filter(|a| a.is_ipv6() == v6)
                .collect()
        };
        Sources {
            v4: family(false),
            v6: family(true),
            fix: fix.into(),
        }
    }

    /// Quick mode's `--source-address` flags for the `--upstream`
    /// servers; `Err` says the first problem.
    pub fn from_flags(addrs: &[IpAddr], servers: &[super::Server]) -> Result<Sources, String> {
        let to: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        if let Some((_, problem)) = problems(addrs, &to).into_iter().next() {
            return Err(problem);
        }
        let fix = match addrs {
            [] => "give --source-address",
            _ => "add more --source-address",
        };
        let sources = Sources::new(addrs, fix.into());
        let uncovered = to.iter().find(|s| sources.for_server(**s).is_empty());
        if let (Some(server), false) = (uncovered, addrs.is_empty()) {
            let family = if server.is_ipv6() { "IPv6" } else { "IPv4" };
            warn!(
                "no --source-address is {family}, so connections to {family} upstream \
                 servers such as {server} come from the address the kernel picks"
            );
        }
        Ok(sources)
    }

    /// The addresses a connection to `server` may come from; empty: the
    /// kernel picks.
    pub fn for_server(&self, server: SocketAddr) -> &[IpAddr] {
        if server.is_ipv6() {
            &self.v6
        } else {
            &self.v4
        }
    }

    /// What to change when ports run out.
    pub fn fix(&self) -> &str {
        &self.fix
    }
}

/// What is wrong with a list of source addresses for `servers`: each
/// problem with the index of the entry it is about.
pub fn problems(addrs: &[IpAddr], servers: &[SocketAddr]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let family = if addr.is_ipv6() { "IPv6" } else { "IPv4" };
        if addr.is_unspecified() || addr.is_multicast() {
            found.push((
                i,
                format!("{addr} cannot be a source address: give an address of this host"),
            ));
        } else if addrs[..i].contains(addr) {
            found.push((i, format!("{addr} is given twice")));
        } else if !servers.iter().any(|s| s.is_ipv6() == addr.is_ipv6()) {
            found.push((
                i,
                format!(
                    "{addr} is {family}, but no upstream server it applies to is \
                     {family}: no connection could come from it"
                ),
            ));
        }
    }
    found
}

/// Why [`connect`] gave no connection.
#[derive(Debug)]
pub enum Refused {
    /// No free source port to the server: from any of the source
    /// addresses, or (without any) from the one the kernel picks. The
    /// proxy's limit, not the server's fault.
    Exhausted,
    /// No source address could be bound (not an address of this host,
    /// say): the proxy's configuration, not the server's fault either.
    Bind(IpAddr, io::Error),
    /// The connect itself failed: the server's side.
    Connect(io::Error),
}

/// Starts a non-blocking connect to `server` from one of `sources`, the
/// one at `first` (modulo their count) first, moving on to the next while
/// one has no free port (or cannot be bound). Without sources, the kernel
/// picks the address.
pub fn connect(server: SocketAddr, sources: &[IpAddr], first: usize) -> Result<TcpStream, Refused> {
    if sources.is_empty() {
        return TcpStream::connect(server).map_err(|e| match e.raw_os_error() {
            Some(libc::EADDRNOTAVAIL) => Refused::Exhausted,
            _ => Refused::Connect(e),
        });
    }
    let mut unbound = None;
    let mut exhausted = false;
    for k in 0..sources.len() {
        let source = sources[(first + k) % sources.len()];
        match connect_from(server, source) {
            Ok(stream) => return Ok(stream),
            Err(Step::Exhausted) => exhausted = true,
            Err(Step::Bind(e)) => unbound = Some((source, e)),
            Err(Step::Connect(e)) => return Err(Refused::Connect(e)),
        }
    }
    match unbound {
        Some((source, e)) if !exhausted => Err(Refused::Bind(source, e)),
        _ => Err(Refused::Exhausted),
    }
}

/// How one source address failed.
enum Step {
    Exhausted,
    Bind(io::Error),
    Connect(io::Error),
}

fn connect_from(server: SocketAddr, source: IpAddr) -> Result<TcpStream, Step> {
    let socket = Socket::new(
        Domain::for_address(server),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )
    .map_err(Step::Connect)?;
    sys::set_bind_address_no_port(socket.as_fd()).map_err(Step::Bind)?;
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EADDRINUSE) => Step::Exhausted,
            _ => Step::Bind(e),
        })?;
    match socket.connect(&server.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::EADDRNOTAVAIL | libc::EADDRINUSE) => Step::Exhausted,
                _ => Step::Connect(e),
            })
        }
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// A blocking connect to `server` from `source` (if any) within
/// `timeout`, for the health checker: its checks take the path the
/// proxy's connections take.
pub fn connect_blocking(
    server: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> io::Result<std::net::TcpStream> {
    let Some(source) = source else {
        return std::net::TcpStream::connect_timeout(&server, timeout);
    };
    let socket = Socket::new(
        Domain::for_address(server),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    sys::set_bind_address_no_port(socket.as_fd())?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&server.into(), timeout)?;
    Ok(socket.into())
}

/// A worker's rotation over each group's source addresses and its
/// account of running out. Touches no shared state.
#[derive(Clone, Debug, Default)]
pub struct Spread {
    /// Per group (by index), the rotation's next position.
    next: Vec<usize>,
    /// Running out of ports, said at most every [`EXHAUSTED_EVERY`].
    pub exhausted: Said,
    /// Source addresses that could not be bound, likewise.
    pub unbound: Said,
}

impl Spread {
    pub fn new(groups: usize) -> Spread {
        Spread {
            next: vec![0; groups],
            exhausted: Said::default(),
            unbound: Said::default(),
        }
    }

    /// Where group `group`'s next connection starts in its source
    /// addresses (the caller takes it modulo their count). A group index
    /// of another configuration (a pair that a reload left on the old
    /// one) still gets a position.
    pub fn next(&mut self, group: usize) -> usize {
        match self.next.get_mut(group) {
            Some(at) => {
                let now = *at;
                *at = now.wrapping_add(1);
                now
            }
            None => 0,
        }
    }
}

/// A rate limit on a log line: the first occurrence is said at once, then
/// at most one line per [`EXHAUSTED_EVERY`], saying how many were not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Said {
    last: Option<Instant>,
    unsaid: u64,
}

impl Said {
    /// Another occurrence at `now`: `Some(n)` when it is to be said now,
    /// `n` the occurrences not said since the last line.
    pub fn occurred(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < EXHAUSTED_EVERY => {
                self.unsaid += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.unsaid))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(text: &[&str]) -> Vec<IpAddr> {
        text.iter().map(|t| t.parse().unwrap()).collect()
    }

    fn addrs(text: &[&str]) -> Vec<SocketAddr> {
        text.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn each_server_uses_its_family() {
        let s = Sources::new(&ips(&["10.0.0.2", "fd00::2", "10.0.0.3"]), String::new());
        let v4: SocketAddr = "10.0.0.5:9000".parse().unwrap();
        let v6: SocketAddr = "[fd00::5]:9000".parse().unwrap();
        assert_eq!(s.for_server(v4), &ips(&["10.0.0.2", "10.0.0.3"])[..]);
        assert_eq!(s.for_server(v6), &ips(&["fd00::2"])[..]);
        let only_v4 = Sources::new(&ips(&["10.0.0.2"]), String::new());
        assert!(only_v4.for_server(v6).is_empty(), "the kernel picks");
    }

    #[test]
    fn problems_name_the_entry() {
        /// (sources, servers, problems as (index, words in the message))
        type Case = (
            &'static [&'static str],
            &'static [&'static str],
            &'static [(usize, &'static str)],
        );
        let table: &[Case] = &[
            (&["10.0.0.2", "10.0.0.3"], &["10.0.0.5:80"], &[]),
            (&["10.0.0.2", "10.0.0.2"], &["10.0.0.5:80"], &[(1, "twice")]),
            (&["fd00::2"], &["10.0.0.5:80"], &[(0, "is IPv6")]),
            (&["10.0.0.2"], &["[fd00::5]:80"], &[(0, "is IPv4")]),
            (&["10.0.0.2", "fd00::2"], &["10.0.0.5:80", "[::1]:80"], &[]),
            (&["0.0.0.0"], &["10.0.0.5:80"], &[(0, "cannot be")]),
            (&["::"], &["[::1]:80"], &[(0, "cannot be")]),
        ];
        for &(sources, servers, want) in table {
            let got = problems(&ips(sources), &addrs(servers));
            assert_eq!(got.len(), want.len(), "{sources:?} → {got:?}");
            for ((i, message), (wi, words)) in got.iter().zip(want) {
                assert_eq!(i, wi, "{sources:?}");
                assert!(message.contains(words), "{message:?} lacks {words:?}");
            }
        }
    }

    #[test]
    fn the_rotation_goes_round_per_group() {
        let mut spread = Spread::new(2);
        assert_eq!([spread.next(0), spread.next(0), spread.next(1)], [0, 1, 0]);
        assert_eq!(spread.next(7), 0, "a group of another configuration");
    }

    #[test]
    fn running_out_is_said_at_once_then_every_ten_seconds() {
        let start = Instant::now();
        let mut said = Said::default();
        let at = |s: u64| start + Duration::from_secs(s);
        let got: Vec<Option<u64>> = [0, 1, 2, 9, 10, 11, 25]
            .into_iter()
            .map(|s| said.occurred(at(s)))
            .collect();
        assert_eq!(
            got,
            [Some(0), None, None, None, Some(3), None, Some(1)],
            "first at once; then one line per 10 s with the count between"
        );
    }

    #[test]
    fn a_connect_from_a_source_address_comes_from_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let sources = ips(&["127.0.0.2", "127.0.0.3"]);
        for (first, want) in [(0, "127.0.0.2"), (1, "127.0.0.3"), (2, "127.0.0.2")] {
            let stream = connect(server, &sources, first).expect("connects");
            let (accepted, from) = listener.accept().unwrap();
            assert_eq!(from.ip().to_string(), want);
            drop((stream, accepted));
        }
        let blocking = connect_blocking(server, Some(sources[1]), Duration::from_secs(5)).unwrap();
        assert_eq!(blocking.local_addr().unwrap().ip(), sources[1]);
    }

    #[test]
    fn an_address_not_of_this_host_is_a_bind_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        // TEST-NET-1 (RFC 5737): never an address of this host.
        let got = connect(server, &ips(&["192.0.2.1"]), 0);
        assert!(matches!(got, Err(Refused::Bind(..))), "{got:?}");
    }
}
