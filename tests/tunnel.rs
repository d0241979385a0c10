//! The tunnel after a 101, run against every relay (`--relay copy`,
//! `splice` and `auto`): bytes both ways intact, a 64 MiB stream, early
//! data, half-close and reset passed on, a slow reader bounding memory.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Runs a scenario once per relay, as three tests.
macro_rules! for_each_relay {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn copy() {
                super::$scenario("copy")
            }
            #[test]
            fn splice() {
                super::$scenario("splice")
            }
            #[test]
            fn auto() {
                super::$scenario("auto")
            }
        }
    )*};
}

for_each_relay!(
    one_mib_each_way_at_once,
    sixty_four_mib_stream,
    early_data_follows_the_head,
    head_bytes_and_eof_at_once,
    client_half_close,
    upstream_half_close,
    resets_pass_both_ways,
    slow_reader_bounds_memory,
);

/// An upstream that answers 101 then hands its end of each tunnel, and
/// the bytes that came right after the head, to the test.
fn handoff_upstream() -> (RawUpstream, mpsc::Receiver<(TcpStream, Vec<u8>)>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let upstream = RawUpstream::start(move |mut stream| {
        if let Ok((_, early)) = accept_upgrade(&mut stream) {
            tx.lock().unwrap().send((stream, early)).unwrap();
        }
    });
    (upstream, rx)
}

fn proxy_with(relay: &str, upstream: &RawUpstream) -> Proxy {
    proxy_to(&[upstream.addr], &["--relay", relay])
}

/// Opens a tunnel through `proxy`: the client's stream and the upstream's.
fn open_tunnel(
    proxy: &Proxy,
    ends: &mpsc::Receiver<(TcpStream, Vec<u8>)>,
) -> (TcpStream, TcpStream) {
    let mut client = send(
        proxy.addr(),
        upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
    );
    let (head, rest) = ws::read_head(&mut client).unwrap();
    assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
    assert!(rest.is_empty());
    let (server, early) = ends.recv_timeout(IO_TIMEOUT).unwrap();
    assert!(early.is_empty());
    (client, server)
}

/// Writes `out` and reads to EOF at the same time; returns what was read.
fn exchange(mut end: TcpStream, out: Vec<u8>) -> Vec<u8> {
    let mut writer = end.try_clone().unwrap();
    let w = thread::spawn(move || write_and_shut(&mut writer, &out));
    let got = read_all(&mut end);
    w.join().unwrap();
    got
}

fn one_mib_each_way_at_once(relay: &str) {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_with(relay, &upstream);
    let (client, server) = open_tunnel(&proxy, &ends);
    const MIB: usize = 1 << 20;
    let (up, down) = (pattern(MIB, 1), pattern(MIB, 2));
    let (up2, down2) = (up.clone(), down.clone());
    let c = thread::spawn(move || exchange(client, up2));
    let s = thread::spawn(move || exchange(server, down2));
    let at_upstream = s.join().unwrap();
    let at_client = c.join().unwrap();
    assert!(
        at_upstream == up,
        "client→upstream differs ({} bytes arrived)",
        at_upstream.len()
    );
    assert!(
        at_client == down,
        "upstream→client differs ({} bytes arrived)",
        at_client.len()
    );
}

fn sixty_four_mib_stream(relay: &str) {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_with(relay, &upstream);
    let (mut client, mut server) = open_tunnel(&proxy, &ends);
    const TOTAL: usize = 64 << 20;
    const PIECE: usize = 1 << 20;
    let writer = thread::spawn(move || {
        for i in 0..TOTAL / PIECE {
            server.write_all(&pattern(PIECE, i as u64)).unwrap();
        }
        server.shutdown(Shutdown::Write).unwrap();
        server
    });
    let mut piece = vec![0; PIECE];
    for i in 0..TOTAL / PIECE {
        client.read_exact(&mut piece).unwrap();
        assert!(piece == pattern(PIECE, i as u64), "MiB {i} differs");
    }
    assert_eq!(read_all(&mut client), b"", "EOF after the stream");
    drop(writer.join().unwrap());
}

fn early_data_follows_the_head(relay: &str) {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_with(relay, &upstream);
    let early = pattern(3000, 11);
    let mut bytes = upgrade_head(proxy.addr(), &ws::random_key(), "").into_bytes();
    bytes.extend(&early);
    let mut client = send(proxy.addr(), &bytes);
    let (head, _) = ws::read_head(&mut client).unwrap();
    assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
    let (mut server, mut got) = ends.recv_timeout(IO_TIMEOUT).unwrap();
    if got.len() < early.len() {
        got.extend(read_exact(&mut server, early.len() - got.len()));
    }
    assert!(got == early, "early bytes changed on the way");
    // And the tunnel carries on after them.
    client.write_all(b"then more").unwrap();
    assert_eq!(read_exact(&mut server, 9), b"then more");
}

/// The rest of the head, early bytes and the client's FIN arrive together
/// after a first part of the head: the upstream must get the bytes and
/// then EOF.
fn head_bytes_and_eof_at_once(relay: &str) {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_to(
        &[upstream.addr],
        &["--relay", relay, "--log-level", "debug"],
    );
    let head = upgrade_head(proxy.addr(), &ws::random_key(), "");
    let (first, rest) = head.split_at(20);
    let mut client = send(proxy.addr(), first.as_bytes());
    // The worker logs the accept in the handler that then reads the first
    // part at once and starts watching the client for the rest.
    assert!(proxy.wait_for_log("accepted"));
    let mut tail = rest.as_bytes().to_vec();
    tail.extend_from_slice(b"early then EOF");
    write_and_shut(&mut client, &tail);
    let (head, _) = ws::read_head(&mut client).unwrap();
    assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
    let (mut server, mut got) = ends.recv_timeout(IO_TIMEOUT).unwrap();
    got.extend(read_all(&mut server));
    assert_eq!(got, b"early then EOF");
}

fn client_half_close(relay: &str) {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_with(relay, &upstream);
    let (mut client, mut server) = open_tunnel(&proxy, &ends);
    write_and_shut(&mut client, b"last words");
    assert_eq!(
        read_all(&mut server),
        b"last words",
        "upstream sees the data then EOF"
    );
    // The upstream can still answer after the client's EOF.
    let reply = pattern(200_000, 3);
    write_and_shut(&mut server, &reply);
    assert!(read_all(&mut client) == reply);
}

fn upstream_half_close(relay: &str) {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_with(relay, &upstream);
    let (mut client, mut server) = open_tunnel(&proxy, &ends);
    write_and_shut(&mut server, b"server done");
    assert_eq!(read_all(&mut client), b"server done");
    let late = pattern(200_000, 4);
    write_and_shut(&mut client, &late);
    assert!(read_all(&mut server) == late);
}

/// Resets `stream`: SO_LINGER 0, then close.
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

fn expect_reset(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("read {n} bytes instead of a reset"),
    }
}

fn resets_pass_both_ways(relay: &str) {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_with(relay, &upstream);

    let (mut client, server) = open_tunnel(&proxy, &ends);
    reset(server);
    expect_reset(&mut client);

    let (client, mut server) = open_tunnel(&proxy, &ends);
    reset(client);
    expect_reset(&mut server);
}

/// A client reading 1 KiB/s while the upstream writes as fast as it can:
/// the writer is held back, the proxy's memory stays put, and every byte
/// arrives in order once the reader catches up.
fn slow_reader_bounds_memory(relay: &str) {
    let _w = watchdog();
    const TOTAL: usize = 32 << 20;
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_with(relay, &upstream);
    let baseline_pipes = proxy.pipe_count();
    let (mut client, mut server) = open_tunnel(&proxy, &ends);
    let baseline_rss = proxy.rss_bytes();

    let written = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&written);
    let writer = thread::spawn(move || {
        server
            .set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        for piece in pattern(TOTAL, 7).chunks(64 * 1024) {
            server.write_all(piece).unwrap();
            counter.fetch_add(piece.len(), Ordering::SeqCst);
        }
        server.shutdown(Shutdown::Write).unwrap();
        server
    });

    let mut got = Vec::with_capacity(TOTAL);
    let mut kib = [0u8; 1024];
    let mut peak_rss = 0;
    let mut peak_pipes = 0;
    for _ in 0..3 {
        client.read_exact(&mut kib).unwrap();
        got.extend_from_slice(&kib);
        thread::sleep(Duration::from_secs(1));
        peak_rss = peak_rss.max(proxy.rss_bytes());
        peak_pipes = peak_pipes.max(proxy.pipe_count() - baseline_pipes);
    }
    let in_flight = written.load(Ordering::SeqCst);
    assert!(
        in_flight < TOTAL,
        "{TOTAL} bytes were taken with the reader at 1 KiB/s"
    );
    let growth = peak_rss.saturating_sub(baseline_rss);
    assert!(
        growth < 4 << 20,
        "proxy RSS grew {growth} bytes behind a slow reader"
    );
    match relay {
        // A stalled direction parks its bytes in a pipe, not in memory.
        "splice" | "auto" => assert!(
            peak_pipes >= 1,
            "{relay}: no pipe held while the reader stalled"
        ),
        _ => assert_eq!(peak_pipes, 0, "the copy relay opened a pipe"),
    }

    got.extend(read_all(&mut client));
    assert_eq!(got.len(), TOTAL);
    assert!(
        got == pattern(TOTAL, 7),
        "bytes lost or reordered behind the slow reader"
    );
    drop(writer.join().unwrap());
}

#[test]
fn idle_tunnels_close_after_the_idle_timeout_and_busy_ones_stay() {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_to(&[upstream.addr], &["--idle-timeout", "1s"]);

    // Busy: a byte every 300 ms keeps one tunnel open past the timeout,
    // on a thread so it stays busy while the idle one is watched.
    let (mut busy, mut busy_server) = open_tunnel(&proxy, &ends);
    let chatter = thread::spawn(move || {
        for i in 0..10u8 {
            busy.write_all(&[i]).unwrap();
            assert_eq!(read_exact(&mut busy_server, 1), [i]);
            thread::sleep(Duration::from_millis(300));
        }
        (busy, busy_server)
    });

    // Idle: closed on both sides after about a second.
    let start = Instant::now();
    let (mut idle, mut idle_server) = open_tunnel(&proxy, &ends);
    assert_eq!(read_all(&mut idle), b"");
    assert_eq!(read_all(&mut idle_server), b"");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");

    let (mut busy, mut busy_server) = chatter.join().unwrap();
    busy.write_all(b"still here").unwrap();
    assert_eq!(read_exact(&mut busy_server, 10), b"still here");
}

#[test]
fn a_spent_pipe_pool_falls_back_to_copy() {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    // One pipe for eight streaming directions: most turns find none free.
    let proxy = proxy_to(
        &[upstream.addr],
        &["--relay", "splice", "--splice-pipes", "1"],
    );
    let tunnels: Vec<_> = (0..4).map(|_| open_tunnel(&proxy, &ends)).collect();
    const LEN: usize = 4 << 20;
    let runs: Vec<_> = tunnels
        .into_iter()
        .enumerate()
        .flat_map(|(i, (client, server))| {
            let seed = 100 + 2 * i as u64;
            [
                thread::spawn(move || (exchange(client, pattern(LEN, seed)), seed + 1)),
                thread::spawn(move || (exchange(server, pattern(LEN, seed + 1)), seed)),
            ]
        })
        .collect();
    for run in runs {
        let (got, seed) = run.join().unwrap();
        assert!(
            got == pattern(LEN, seed),
            "stream {seed} differs ({} bytes)",
            got.len()
        );
    }
}
