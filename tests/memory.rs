//! Memory per idle connection: thousands of idle tunnels, or client
//! connections kept open between requests, cost a few hundred bytes of
//! proxy memory each and hold no buffer and no pipe.
//!
//! 5000 tunnels keep 10000 descriptors open in this process and in the
//! proxy, within the 20000 per-process limit; relays are measured one
//! after the other so two runs never overlap.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Tunnels held in all.
const PAIRS: usize = 5000;
/// Tunnels opened before the first RSS reading, so one-time growth (slab,
/// timer wheel, allocator arenas) is not charged to the pairs measured.
const WARM: usize = 1000;
/// The target: proxy RSS per idle pair (tunnel or kept-alive client).
const MAX_BYTES_PER_PAIR: u64 = 512;

/// An upstream on one thread: answers 101 to `count` connections in turn
/// and hands all of them back, still open.
fn holding_upstream(count: usize) -> (std::net::SocketAddr, thread::JoinHandle<Vec<TcpStream>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = thread::spawn(move || {
        (0..count)
            .map(|_| {
                let (mut stream, _) = listener.accept().unwrap();
                configure(&stream);
                accept_upgrade(&mut stream).unwrap();
                stream
            })
            .collect()
    });
    (addr, held)
}

fn open(proxy: &Proxy) -> TcpStream {
    let mut client = send(
        proxy.addr(),
        upgrade_head(proxy.addr(), "dGhlIHNhbXBsZSBub25jZQ==", "").as_bytes(),
    );
    let (head, _) = ws::read_head(&mut client).unwrap();
    assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
    client
}

/// The proxy's RSS once it has stopped changing for a whole idle-trim
/// period and then some (the worker frees unused pools every 2 s).
fn settled_rss(proxy: &Proxy) -> u64 {
    let mut last = proxy.rss_bytes();
    let mut since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    while since.elapsed() < Duration::from_millis(4500) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(250));
        let now = proxy.rss_bytes();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    last
}

#[test]
fn idle_pairs_cost_under_512_bytes_and_hold_no_pipe() {
    let _w = watchdog_for(Duration::from_secs(300));
    // The last run keeps a watch per tunnel (pings and a message limit),
    // beside the pair: its state must fit the same budget.
    let policy = ["--ping-interval", "1h", "--max-message-bytes", "1048576"];
    for (relay, extra) in [
        ("auto", &[][..]),
        ("splice", &[]),
        ("copy", &[]),
        ("auto", &policy[..]),
    ] {
        let (addr, held) = holding_upstream(PAIRS);
        let args: Vec<&str> = ["--relay", relay].iter().chain(extra).copied().collect();
        let proxy = proxy_to(&[addr], &args);
        let baseline_pipes = proxy.pipe_count();

        let mut clients: Vec<TcpStream> = (0..WARM).map(|_| open(&proxy)).collect();
        // Stream through a few tunnels so the relay's pipes and buffers
        // get used before the proxy goes idle.
        for client in clients.iter_mut().take(10) {
            client.write_all(&pattern(256 * 1024, 1)).unwrap();
        }
        let before = settled_rss(&proxy);
        clients.extend((WARM..PAIRS).map(|_| open(&proxy)));
        let after = settled_rss(&proxy);
        let per_pair = after.saturating_sub(before) / (PAIRS - WARM) as u64;
        eprintln!(
            "relay {relay} {extra:?}: {PAIRS} idle tunnels, RSS {before} -> {after} bytes, {per_pair} bytes per added pair, {} pipes",
            proxy.pipe_count() - baseline_pipes
        );
        assert!(
            per_pair <= MAX_BYTES_PER_PAIR,
            "{relay}: {per_pair} bytes per idle pair"
        );
        assert_eq!(
            proxy.pipe_count(),
            baseline_pipes,
            "{relay}: pipes held while idle"
        );

        drop(clients);
        drop(held.join().unwrap());
    }
}

/// An upstream that answers every request on its connections with a small
/// JSON body, keeping them open.
fn answering_upstream() -> RawUpstream {
    RawUpstream::start(|mut stream| loop {
        let mut requests = Messages::new(&mut stream);
        if !requests.peek_more() {
            return;
        }
        let _ = requests.request();
        drop(requests);
        let body = br#"{"ok":true}"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body).is_err() {
            return;
        }
    })
}

/// A client connection kept open after one proxied answer.
fn kept(proxy: &Proxy) -> TcpStream {
    let mut client = send(proxy.addr(), b"GET /api HTTP/1.1\r\nHost: a\r\n\r\n");
    let (head, _) = Messages::new(&mut client).response(false);
    assert_eq!(status_of(&head), 200);
    assert_eq!(field(&head, "connection"), None, "kept open");
    client
}

#[test]
fn idle_kept_alive_connections_cost_under_512_bytes() {
    let _w = watchdog_for(Duration::from_secs(300));
    let upstream = answering_upstream();
    let proxy = proxy_to(&[upstream.addr], &["--admin", "127.0.0.1:0"]);
    let mut clients: Vec<TcpStream> = (0..WARM).map(|_| kept(&proxy)).collect();
    let before = settled_rss(&proxy);
    clients.extend((WARM..PAIRS).map(|_| kept(&proxy)));
    let after = settled_rss(&proxy);
    let per_connection = after.saturating_sub(before) / (PAIRS - WARM) as u64;
    let idle = proxy.metric("wsproxy_client_connections_idle");
    eprintln!(
        "{PAIRS} idle kept-alive connections ({idle} by the gauge), RSS {before} -> {after} bytes, \
         {per_connection} bytes per added connection; the upstream took {} connections",
        upstream.accepted()
    );
    assert_eq!(idle, PAIRS as f64);
    assert!(
        per_connection <= MAX_BYTES_PER_PAIR,
        "{per_connection} bytes per idle kept-alive connection"
    );
    // Kept upstream connections served them all, each for the group's
    // default 1000 requests.
    assert_eq!(upstream.accepted(), PAIRS.div_ceil(1000));
    drop(clients);
}
