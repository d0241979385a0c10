//! Attacks on the proxy's capacity: a flood of new connections is taken a
//! turn's share at a time without stranding any in the kernel's queue, and
//! so are the deadlines of connections that time out together; a
//! client that keeps sending after the proxy's last answer gets a bounded
//! read, then a reset; and at the connection limit, connections with no
//! work in progress (idle between requests, request head unfinished) give
//! their slots to new clients, when closing one brings the proxy under its
//! limit.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ws::EchoServer;

/// An upgrade through the proxy, answered.
fn upgrade(stream: &mut TcpStream) -> u16 {
    let (head, _) = ws::read_head(stream).unwrap();
    status_of(&String::from_utf8(head).unwrap())
}

/// Whether the proxy has closed `stream` (EOF or reset) rather than left
/// it waiting: a read that would block means it is still held.
fn is_closed(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// An upstream answering every request on a connection with a short 200;
/// with `hold`, its first answer waits until `hold` is sent to.
fn ok_upstream(hold: Option<mpsc::Receiver<()>>) -> RawUpstream {
    let hold = Mutex::new(hold);
    RawUpstream::start(move |mut stream| {
        let mut first = true;
        while ws::read_head(&mut stream).is_ok() {
            if std::mem::take(&mut first) {
                if let Some(held) = hold.lock().unwrap().as_ref() {
                    let _ = held.recv();
                }
            }
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                .is_err()
            {
                return;
            }
        }
    })
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
fn clients_timing_out_together_are_all_answered() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &["--handshake-timeout", "1s"]);
    let addr = proxy.addr();
    // Opened within a tick or two, their deadlines fall together: more
    // than one turn's share of them. No event follows the last ones, so
    // the worker must come back for them by itself.
    let mut dribblers: Vec<TcpStream> = (0..400)
        .map(|_| send(addr, b"GET /chat HTTP/1.1\r\nHost: a\r\n"))
        .collect();
    let sent = Instant::now();
    for (i, dribbler) in dribblers.iter_mut().enumerate() {
        let (head, _) = read_response(dribbler);
        assert_eq!(status_of(&head), 408, "dribbler {i}");
    }
    // Left for a later wake-up instead (the lingering closes' deadlines,
    // 5 s on), the last would come seconds late.
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(3), "the last 408 after {took:?}");
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

#[test]
fn at_the_connection_limit_the_oldest_unfinished_head_makes_room() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(
        &[echo.addr],
        &["--max-connections", "50", "--admin", "127.0.0.1:0"],
    );
    let addr = proxy.addr();
    let mut dribblers: Vec<TcpStream> = (0..50)
        .map(|_| send(addr, b"GET /chat HTTP/1.1\r\nHost: a\r\n"))
        .collect();
    assert!(eventually(IO_TIMEOUT, || proxy
        .metric("wsproxy_connections_accepted_total")
        == 50.0));

    let asked = Instant::now();
    let mut client = ws::Client::connect(addr, "/").expect("served at the limit");
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(1), "served after {took:?}");
    client.send_text("through").unwrap();
    assert_eq!(client.recv().unwrap().payload, b"through");

    let shed = "wsproxy_connections_shed_total{state=\"head\"}";
    assert_eq!(proxy.metric(shed), 1.0);
    let (oldest, rest) = dribblers.split_first_mut().unwrap();
    assert!(is_closed(oldest), "the oldest dribbler made room");
    for (i, held) in rest.iter_mut().enumerate() {
        assert!(!is_closed(held), "dribbler {} kept its slot", i + 1);
    }
}

#[test]
fn at_the_connection_limit_an_idle_keepalive_connection_goes_first() {
    let _w = watchdog();
    let upstream = ok_upstream(None);
    let proxy = proxy_to(
        &[upstream.addr],
        &["--max-connections", "3", "--admin", "127.0.0.1:0"],
    );
    let addr = proxy.addr();
    let get = b"GET /page HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut idle = send(addr, get);
    assert_eq!(status_of(&read_response(&mut idle).0), 200);
    // Two dribblers, queued after the idle one went idle: even so, the
    // idle one goes first.
    let mut dribblers: Vec<TcpStream> = (0..2)
        .map(|_| send(addr, b"GET /page HTTP/1.1\r\n"))
        .collect();
    assert!(eventually(IO_TIMEOUT, || proxy
        .metric("wsproxy_connections_accepted_total")
        == 3.0));

    let mut client = send(addr, get);
    let (head, body) = read_response(&mut client);
    assert_eq!((status_of(&head), body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(
        proxy.metric("wsproxy_connections_shed_total{state=\"idle\"}"),
        1.0
    );
    assert_eq!(
        proxy.metric("wsproxy_connections_shed_total{state=\"head\"}"),
        0.0
    );
    assert!(is_closed(&mut idle), "the idle connection made room");
    for held in &mut dribblers {
        assert!(!is_closed(held), "dribblers kept their slots");
    }
}

#[test]
fn past_the_connection_limit_no_connection_is_shed_in_vain() {
    let _w = watchdog();
    // The upstream holds its first answer until the test says so.
    let (release, held) = mpsc::channel::<()>();
    let upstream = ok_upstream(Some(held));
    let proxy = proxy_to(
        &[upstream.addr],
        &["--max-connections", "1", "--admin", "127.0.0.1:0"],
    );
    let addr = proxy.addr();
    let get = b"GET /page HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut kept = send(addr, get);
    assert!(eventually(IO_TIMEOUT, || upstream.accepted() == 1));
    // Refused at the limit (nothing to shed: the request is in flight),
    // this client stays counted while the proxy lingers on it.
    let mut refused = send(addr, get);
    assert_eq!(status_of(&read_response(&mut refused).0), 503);
    release.send(()).unwrap();
    assert_eq!(status_of(&read_response(&mut kept).0), 200);

    // The first connection is idle now, but closing it would leave the
    // proxy still at its limit: the next client is refused, and the idle
    // connection keeps its place.
    let mut next = send(addr, get);
    assert_eq!(status_of(&read_response(&mut next).0), 503);
    assert_eq!(
        proxy.metric("wsproxy_connections_shed_total{state=\"idle\"}"),
        0.0
    );
    assert!(!is_closed(&mut kept), "the idle connection was kept");
    drop(refused);
}
