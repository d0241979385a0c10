//! The tunnel after a 101: bytes both ways intact, half-close and reset
//! passed on, backpressure bounding memory, idle timeout.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// An upstream that answers 101 then hands the raw tunnel to `script`.
fn tunnel_upstream<F>(script: F) -> RawUpstream
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    RawUpstream::start(move |mut stream| {
        if accept_upgrade(&mut stream).is_ok() {
            script(stream);
        }
    })
}

/// Opens a tunnel through `proxy` and returns the client's raw stream.
fn open_tunnel(proxy: &Proxy) -> TcpStream {
    let mut stream = send(
        proxy.addr(),
        upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
    );
    let (head, rest) = ws::read_head(&mut stream).unwrap();
    assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
    assert!(rest.is_empty());
    stream
}

/// Hands the upstream's end of each tunnel to the test.
fn handoff_upstream() -> (RawUpstream, mpsc::Receiver<TcpStream>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let upstream = tunnel_upstream(move |stream| tx.lock().unwrap().send(stream).unwrap());
    (upstream, rx)
}

#[test]
fn one_mib_each_way_at_once_arrives_intact() {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_to(&[upstream.addr], &[]);
    let client = open_tunnel(&proxy);
    let server = ends.recv_timeout(IO_TIMEOUT).unwrap();
    const MIB: usize = 1 << 20;
    let up = pattern(MIB, 1);
    let down = pattern(MIB, 2);

    // Each end writes and reads at the same time, so neither direction can
    // finish by waiting for the other.
    let exchange = |mut end: TcpStream, out: Vec<u8>| {
        let mut writer = end.try_clone().unwrap();
        let w = thread::spawn(move || write_and_shut(&mut writer, &out));
        let got = read_all(&mut end);
        w.join().unwrap();
        got
    };
    let (up2, down2) = (up.clone(), down.clone());
    let c = thread::spawn(move || exchange(client, up2));
    let s = thread::spawn(move || exchange(server, down2));
    let at_upstream = s.join().unwrap();
    let at_client = c.join().unwrap();
    assert!(
        at_upstream == up,
        "client→upstream bytes differ ({} received)",
        at_upstream.len()
    );
    assert!(
        at_client == down,
        "upstream→client bytes differ ({} received)",
        at_client.len()
    );
}

#[test]
fn client_half_close_keeps_the_other_direction_open() {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = open_tunnel(&proxy);
    let mut server = ends.recv_timeout(IO_TIMEOUT).unwrap();

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

#[test]
fn upstream_half_close_keeps_the_other_direction_open() {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = open_tunnel(&proxy);
    let mut server = ends.recv_timeout(IO_TIMEOUT).unwrap();

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

#[test]
fn a_reset_is_passed_on_in_both_directions() {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_to(&[upstream.addr], &[]);

    let mut client = open_tunnel(&proxy);
    let server = ends.recv_timeout(IO_TIMEOUT).unwrap();
    reset(server);
    expect_reset(&mut client);

    let client = open_tunnel(&proxy);
    let mut server = ends.recv_timeout(IO_TIMEOUT).unwrap();
    reset(client);
    expect_reset(&mut server);
}

#[test]
fn a_stalled_reader_stops_the_writer_and_bounds_memory() {
    let _w = watchdog();
    const TOTAL: usize = 64 << 20;
    let written = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&written);
    let upstream = tunnel_upstream(move |mut stream| {
        let data = pattern(TOTAL, 7);
        for piece in data.chunks(64 * 1024) {
            if stream.write_all(piece).is_err() {
                return;
            }
            counter.fetch_add(piece.len(), Ordering::SeqCst);
        }
        let _ = stream.shutdown(Shutdown::Write);
        let _ = read_all(&mut stream);
    });
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = open_tunnel(&proxy);
    let baseline = proxy.rss_bytes();

    // Until the client reads, the upstream can only fill the socket buffers
    // on both hops, then its writes block: wait until it stops advancing.
    let mut last = usize::MAX;
    let mut still_since = Instant::now();
    let stalled = eventually(Duration::from_secs(20), || {
        let now = written.load(Ordering::SeqCst);
        if now != last {
            last = now;
            still_since = Instant::now();
        }
        still_since.elapsed() > Duration::from_millis(500)
    });
    assert!(stalled, "the writer never stalled");
    let in_flight = written.load(Ordering::SeqCst);
    assert!(in_flight < TOTAL, "64 MiB went through with nobody reading");
    let growth = proxy.rss_bytes().saturating_sub(baseline);
    assert!(
        growth < 4 << 20,
        "proxy RSS grew {growth} bytes while {in_flight} bytes waited for a stalled reader"
    );

    let got = read_all(&mut client);
    assert_eq!(got.len(), TOTAL);
    assert!(
        got == pattern(TOTAL, 7),
        "bytes lost or reordered after the stall"
    );
}

#[test]
fn idle_tunnels_close_after_the_idle_timeout_and_busy_ones_stay() {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_to(&[upstream.addr], &["--idle-timeout", "1s"]);

    // Busy: a byte every 300 ms keeps one tunnel open past the timeout,
    // on a thread so it stays busy while the idle one is watched.
    let mut busy = open_tunnel(&proxy);
    let mut busy_server = ends.recv_timeout(IO_TIMEOUT).unwrap();
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
    let mut idle = open_tunnel(&proxy);
    let mut idle_server = ends.recv_timeout(IO_TIMEOUT).unwrap();
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
