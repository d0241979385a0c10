//! Attacks on the proxy's capacity: a flood of new connections is taken a
//! turn's share at a time without stranding any in the kernel's queue; a
//! client that keeps sending after the proxy's last answer gets a bounded
//! read, then a reset.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ws::EchoServer;

/// An upgrade through the proxy, answered.
fn upgrade(stream: &mut TcpStream) -> u16 {
    let (head, _) = ws::read_head(stream).unwrap();
    status_of(&String::from_utf8(head).unwrap())
}

#[test]
fn clients_queued_past_one_turns_share_are_all_served() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &[]);
    let addr = proxy.addr();
    // Stopped, the proxy's one worker cannot accept: the kernel completes
    // the handshakes and queues every client, head and all. Resumed, it
    // gets one edge-triggered event for the lot and takes 64 a turn; no
    // further event comes for the rest, so it must come back for them by
    // itself.
    proxy.signal(libc::SIGSTOP);
    let mut clients: Vec<TcpStream> = (0..300)
        .map(|_| send(addr, upgrade_head(addr, &ws::random_key(), "").as_bytes()))
        .collect();
    proxy.signal(libc::SIGCONT);
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(upgrade(client), 101, "client {i}");
    }
}

#[test]
fn after_a_431_the_proxy_reads_at_most_its_linger_limit() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &["--admin", "127.0.0.1:0"]);
    let mut client = connect(proxy.addr());
    let mut writer = client.try_clone().unwrap();
    let bomb = thread::spawn(move || {
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Bomb: ".to_vec();
        head.resize(1 << 20, b'a');
        // The proxy resets the connection before the end, unless the
        // socket buffers took it all first.
        let _ = writer.write_all(&head);
    });
    assert_eq!(upgrade(&mut client), 431);
    bomb.join().unwrap();
    // Having read its limit, the proxy closes with input unread: a reset,
    // which fails the next write. Without a limit it would read all the
    // client sends (these writes included) until the 5 s linger timeout.
    let sent = Instant::now();
    assert!(
        eventually(Duration::from_secs(3), || client.write(b"a").is_err()),
        "still lingering after {:?}",
        sent.elapsed()
    );
    // The proxy's own count, not the bytes the client's kernel took:
    // loopback's socket buffers grow to megabytes, so what was written
    // could not tell 64 KiB read from all of it. Closed, the count is
    // final; the client sent far more than the limit, so it is reached.
    let read = proxy.metric("wsproxy_linger_bytes_total");
    assert_eq!(read, f64::from(wsproxy_fast::pair::LINGER_LIMIT));
}
