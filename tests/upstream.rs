//! Upstream servers: round-robin, failover, and every upstream failure
//! answered with 502 or 504 and logged against the upstream.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use ws::EchoServer;

/// An address nothing listens on: bound once, then released.
fn dead_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn upgrade(proxy: &Proxy) -> (String, Vec<u8>) {
    let mut client = send(
        proxy.addr(),
        upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
    );
    read_response(&mut client)
}

#[test]
fn a_dead_upstream_gets_502_naming_the_upstream() {
    let _w = watchdog();
    let dead = dead_address();
    let proxy = proxy_to(&[dead], &[]);
    let (head, body) = upgrade(&proxy);
    assert_eq!(status_of(&head), 502);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("no upstream server accepted"));
    assert!(
        proxy.wait_for_log(&format!("upstream {dead}: connect failed")),
        "{:?}",
        proxy.log()
    );
}

#[test]
fn a_refusing_server_is_skipped_for_the_next() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[dead_address(), echo.addr], &[]);
    for _ in 0..6 {
        let mut client = ws::Client::connect(proxy.addr(), "/").expect("the live server answers");
        client.send_text("ping").unwrap();
        assert_eq!(client.recv().unwrap().text(), Some("ping"));
    }
    assert_eq!(echo.connections(), 6);
}

#[test]
fn servers_take_connections_in_turn() {
    let _w = watchdog();
    let a = EchoServer::start();
    let b = EchoServer::start();
    let proxy = proxy_to(&[a.addr, b.addr], &[]);
    for _ in 0..10 {
        let mut client = ws::Client::connect(proxy.addr(), "/").unwrap();
        client.close(1000).unwrap();
    }
    assert_eq!((a.connections(), b.connections()), (5, 5));
}

/// A listener whose accept queue is full, so new SYNs go unanswered and a
/// connect hangs: a stand-in for an unreachable server.
fn blackhole() -> (socket2::Socket, Vec<TcpStream>) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    // Fill the queue; the connect that times out shows it is full.
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => return (socket, fillers),
        }
    }
    panic!("could not fill the accept queue of a backlog-0 listener");
}

#[test]
fn an_upstream_that_never_accepts_gets_504() {
    let _w = watchdog();
    let (hole, _fillers) = blackhole();
    let addr = hole.local_addr().unwrap().as_socket().unwrap();
    let proxy = proxy_to(&[addr], &["--connect-timeout", "500ms"]);
    let start = Instant::now();
    let (head, body) = upgrade(&proxy);
    assert_eq!(status_of(&head), 504, "{head}");
    assert!(String::from_utf8(body).unwrap().contains("did not accept"));
    assert!(start.elapsed() >= Duration::from_millis(450));
    assert!(
        proxy.wait_for_log("no answer to connect"),
        "{:?}",
        proxy.log()
    );
}

#[test]
fn an_upstream_that_never_answers_gets_504() {
    let _w = watchdog();
    let upstream = RawUpstream::start(|mut stream| {
        let _ = ws::read_head(&mut stream);
        let _ = read_all(&mut stream);
    });
    let proxy = proxy_to(&[upstream.addr], &["--response-timeout", "500ms"]);
    let (head, body) = upgrade(&proxy);
    assert_eq!(status_of(&head), 504);
    assert!(String::from_utf8(body).unwrap().contains("did not answer"));
    assert!(proxy.wait_for_log("no response within"));
}

#[test]
fn garbage_or_silence_from_the_upstream_gets_502() {
    let _w = watchdog();
    let cases: [(&[u8], &str); 3] = [
        (b"SSH-2.0-OpenSSH_9.2p1\r\n\r\n", "malformed response head"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Len",
            "closed the connection before answering",
        ),
        (b"", "closed the connection before answering"),
    ];
    for (reply, why) in cases {
        let upstream = RawUpstream::start(move |mut stream| {
            let _ = ws::read_head(&mut stream);
            let _ = stream.write_all(reply);
        });
        let proxy = proxy_to(&[upstream.addr], &[]);
        let (head, _) = upgrade(&proxy);
        assert_eq!(status_of(&head), 502, "{reply:?}");
        assert!(proxy.wait_for_log(why), "{reply:?}: {:?}", proxy.log());
    }
}

#[test]
fn a_101_with_bytes_and_eof_in_one_segment_reaches_the_client_whole() {
    let _w = watchdog();
    // The 101, the tunnel's last bytes and the FIN all arrive before the
    // proxy reads: its one read gets the 101 and the bytes, and the EOF is
    // only in the event's flags. Regression: the EOF was never read.
    let upstream = RawUpstream::start(|mut stream| {
        let (head, _) = ws::read_head(&mut stream).unwrap();
        let head = String::from_utf8(head).unwrap();
        let key = field(&head, "sec-websocket-key").unwrap();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\nlast bytes",
            ws::accept_key(key)
        );
        stream.write_all(answer.as_bytes()).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let _ = read_all(&mut stream);
    });
    let proxy = proxy_to(&[upstream.addr], &[]);
    for _ in 0..50 {
        let mut client = send(
            proxy.addr(),
            upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
        );
        let (head, rest) = ws::read_head(&mut client).unwrap();
        assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
        let mut got = rest;
        got.extend(read_all(&mut client));
        assert_eq!(got, b"last bytes");
    }
}

#[test]
fn an_upstream_dying_mid_tunnel_closes_the_client_promptly() {
    let _w = watchdog();
    let upstream = RawUpstream::start(|mut stream| {
        if accept_upgrade(&mut stream).is_ok() {
            let _ = stream.write_all(b"last bytes");
        }
        // Dropping the stream closes it: the upstream is gone.
    });
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = send(
        proxy.addr(),
        upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
    );
    let (head, rest) = ws::read_head(&mut client).unwrap();
    assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
    let start = Instant::now();
    let mut got = rest;
    got.extend(read_all(&mut client));
    assert_eq!(got, b"last bytes");
    assert!(start.elapsed() < Duration::from_secs(2));
}
