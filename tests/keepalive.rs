//! Persistent connections (RFC 9112 §9): a client connection carries
//! request after request, pipelined or not, any of which may be the
//! upgrade that makes it a tunnel; bodies are framed exactly, so bytes past
//! one are the next request; `keepalive_requests` and `keepalive_timeout`
//! end a connection between answers, never inside one. Upstream
//! connections are kept per worker and reused, and a kept one that turns
//! out closed is retried when the request allows it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// What an upstream connection handler saw: the connection's number and
/// each request head it read.
type Seen = (usize, String);

/// An upstream that answers every request on a connection, in order, with
/// `METHOD TARGET conn=N req=M` and what it saw of the body, until the
/// proxy closes; an upgrade gets a 101 and its bytes echoed. Each head it
/// reads goes to the returned channel.
fn keepalive_upstream() -> (RawUpstream, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let connections = AtomicUsize::new(0);
    let upstream = RawUpstream::start(move |mut stream| {
        let conn = connections.fetch_add(1, Ordering::SeqCst) + 1;
        let mut served = 0;
        loop {
            let mut messages = Messages::new(&mut stream);
            if !messages_pending(&mut messages) {
                return;
            }
            let (head, body) = messages.request();
            drop(messages);
            served += 1;
            tx.lock().unwrap().send((conn, head.clone())).unwrap();
            if field(&head, "upgrade").is_some() {
                let key = field(&head, "sec-websocket-key").unwrap();
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    ws::accept_key(key)
                );
                stream.write_all(answer.as_bytes()).unwrap();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stream.read(&mut chunk) {
                    if n == 0 || stream.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                }
                return;
            }
            let first = head.split("\r\n").next().unwrap().to_string();
            let text = format!(
                "{} conn={conn} req={served} body={}",
                first.trim_end_matches(" HTTP/1.1"),
                body.len()
            );
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            );
            if stream.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    (upstream, rx)
}

/// Whether another request comes on the connection (false at EOF).
fn messages_pending(messages: &mut Messages<'_>) -> bool {
    messages.peek_more()
}

fn body_text(body: Vec<u8>) -> String {
    String::from_utf8(body).unwrap()
}

#[test]
fn three_pipelined_requests_in_one_write_are_answered_in_order() {
    let _w = watchdog();
    let (upstream, seen) = keepalive_upstream();
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = connect(proxy.addr());
    client
        .write_all(
            b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /two HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut answers = Messages::new(&mut client);
    for (i, path) in ["/one", "/two", "/three"].iter().enumerate() {
        let (head, body) = answers.response(false);
        assert_eq!(status_of(&head), 200);
        let body = body_text(body);
        assert!(body.starts_with(&format!("GET {path} ")), "{i}: {body}");
        let last = i == 2;
        assert_eq!(
            field(&head, "connection"),
            last.then_some("close"),
            "{head}"
        );
    }
    assert!(answers.closed(), "FIN after the last answer, nothing more");
    // One upstream connection carried all three, in order.
    let heads: Vec<Seen> = seen.try_iter().collect();
    assert_eq!(heads.len(), 3);
    assert!(heads.iter().all(|(conn, _)| *conn == 1), "{heads:?}");
    assert_eq!(upstream.accepted(), 1);
}

#[test]
fn a_body_then_a_get_on_one_connection_content_length_and_chunked() {
    let _w = watchdog();
    let (upstream, _seen) = keepalive_upstream();
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = connect(proxy.addr());
    let mut answers_for = |request: &[u8], want: &[&str]| {
        client.write_all(request).unwrap();
        let mut answers = Messages::new(&mut client);
        for want in want {
            let (head, body) = answers.response(false);
            assert_eq!(status_of(&head), 200, "{head}");
            let body = body_text(body);
            assert!(
                body.starts_with(want),
                "{body:?} should start with {want:?}"
            );
        }
        assert!(answers.buffered().is_empty());
    };
    // A Content-Length body, with the next request in the same write.
    answers_for(
        b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello worldGET /after HTTP/1.1\r\nHost: a\r\n\r\n",
        &["POST /form conn=1 req=1 body=11", "GET /after conn=1 req=2 body=0"],
    );
    // A chunked body (with a trailer), then a GET, each in its own write.
    answers_for(
        b"POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        // The upstream reads chunked bodies by their framing too.
        &["POST /chunks conn=1 req=3"],
    );
    answers_for(
        b"GET /last HTTP/1.1\r\nHost: a\r\n\r\n",
        &["GET /last conn=1 req=4"],
    );
}

#[test]
fn an_upgrade_after_two_plain_requests_on_one_connection() {
    let _w = watchdog();
    let (upstream, seen) = keepalive_upstream();
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = connect(proxy.addr());
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    {
        let mut answers = Messages::new(&mut client);
        for path in ["/a", "/b"] {
            let (head, body) = answers.response(false);
            assert_eq!(status_of(&head), 200);
            assert!(body_text(body).starts_with(&format!("GET {path} ")));
        }
    }
    let key = ws::random_key();
    client
        .write_all(upgrade_head(proxy.addr(), &key, "").as_bytes())
        .unwrap();
    let (head, rest) = ws::read_head(&mut client).unwrap();
    let head = String::from_utf8(head).unwrap();
    assert_eq!(status_of(&head), 101, "{head}");
    assert!(rest.is_empty());
    client.write_all(b"tunnel bytes").unwrap();
    assert_eq!(read_exact(&mut client, 12), b"tunnel bytes");
    // The plain requests shared a kept connection; the upgrade took its own.
    let heads: Vec<Seen> = seen.try_iter().collect();
    assert_eq!(heads.len(), 3, "{heads:?}");
    assert_eq!((heads[0].0, heads[1].0), (1, 1));
    assert_eq!(heads[2].0, 2, "an upgrade never rides a kept connection");
}

#[test]
fn keepalive_requests_closes_after_the_last_answer() {
    let _w = watchdog();
    let (upstream, _seen) = keepalive_upstream();
    let proxy = proxy_to(&[upstream.addr], &["--keepalive-requests", "3"]);
    let mut client = connect(proxy.addr());
    for i in 1..=3 {
        client
            .write_all(b"GET /n HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut answers = Messages::new(&mut client);
        let (head, body) = answers.response(false);
        assert_eq!(status_of(&head), 200);
        assert!(body_text(body).contains(&format!("req={i}")));
        if i < 3 {
            assert_eq!(field(&head, "connection"), None);
        } else {
            assert_eq!(field(&head, "connection"), Some("close"));
            assert!(answers.closed(), "the FIN follows the third answer whole");
        }
    }
}

#[test]
fn keepalive_timeout_closes_an_idle_connection_between_answers() {
    let _w = watchdog();
    let (upstream, _seen) = keepalive_upstream();
    let proxy = proxy_to(
        &[upstream.addr],
        &["--keepalive-timeout", "1s", "--admin", "127.0.0.1:0"],
    );
    let mut client = connect(proxy.addr());
    client
        .write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let answered = Instant::now();
    let mut answers = Messages::new(&mut client);
    let (head, body) = answers.response(false);
    assert_eq!(status_of(&head), 200);
    assert!(body_text(body).starts_with("GET /x "));
    assert!(eventually(Duration::from_secs(5), || proxy
        .metric("wsproxy_client_connections_idle")
        == 1.0));
    // Nothing more: a clean FIN once the idle second is over.
    assert!(answers.closed());
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(5),
        "closed after {idle:?}"
    );
    assert!(eventually(Duration::from_secs(5), || proxy
        .metric("wsproxy_client_connections_idle")
        == 0.0));
}

#[test]
fn http_1_0_stays_open_only_when_it_asks() {
    let _w = watchdog();
    let (upstream, seen) = keepalive_upstream();
    let proxy = proxy_to(&[upstream.addr], &[]);
    // Without keep-alive: one answer, then the connection closes.
    let mut client = send(proxy.addr(), b"GET /plain HTTP/1.0\r\n\r\n");
    let mut answers = Messages::new(&mut client);
    let (head, body) = answers.response(false);
    assert!(head.starts_with("HTTP/1."), "{head}");
    assert_eq!(field(&head, "connection"), Some("close"));
    assert!(body_text(body).starts_with("GET /plain HTTP/1.0"));
    assert!(answers.closed());
    // With keep-alive: told so, and a second request is served.
    let mut client = send(
        proxy.addr(),
        b"GET /kept HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let (head, _) = Messages::new(&mut client).response(false);
    assert_eq!(field(&head, "connection"), Some("keep-alive"), "{head}");
    client
        .write_all(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let (head, body) = Messages::new(&mut client).response(false);
    assert_eq!(status_of(&head), 200);
    assert!(body_text(body).starts_with("GET /again HTTP/1.0"));
    // HTTP/1.0 goes up with Connection: close: no kept upstream for it.
    let heads: Vec<Seen> = seen.try_iter().collect();
    assert!(heads
        .iter()
        .all(|(_, h)| field(h, "connection") == Some("close")));
}

#[test]
fn the_upstream_sees_many_requests_on_one_kept_connection() {
    let _w = watchdog();
    let (upstream, seen) = keepalive_upstream();
    let proxy = proxy_to(&[upstream.addr], &["--admin", "127.0.0.1:0"]);
    // Separate client connections, one after another: the worker's pool
    // hands the same upstream connection to each.
    for i in 1..=5 {
        let mut client = send(
            proxy.addr(),
            b"GET /r HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        let (head, body) = read_response(&mut client);
        assert_eq!(status_of(&head), 200);
        assert!(body_text(body).contains(&format!("conn=1 req={i}")));
    }
    assert_eq!(upstream.accepted(), 1);
    let heads: Vec<Seen> = seen.try_iter().collect();
    assert!(heads.iter().all(|(_, h)| field(h, "connection").is_none()));
    assert_eq!(
        proxy.metric("wsproxy_upstream_connections_reused_total"),
        4.0
    );
    // The gauge is set at the end of the worker's turn, which may come
    // after the client has read the answer.
    assert!(eventually(IO_TIMEOUT, || proxy
        .metric("wsproxy_upstream_connections_idle")
        == 1.0));
}

#[test]
fn upstream_keepalive_0_uses_a_connection_per_request() {
    let _w = watchdog();
    let (upstream, seen) = keepalive_upstream();
    let proxy = proxy_to(&[upstream.addr], &["--upstream-keepalive", "0"]);
    let mut client = connect(proxy.addr());
    for _ in 0..3 {
        client
            .write_all(b"GET /r HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let (head, _) = Messages::new(&mut client).response(false);
        assert_eq!(status_of(&head), 200);
    }
    let heads: Vec<Seen> = seen.try_iter().collect();
    assert_eq!(upstream.accepted(), 3);
    assert!(heads
        .iter()
        .all(|(_, h)| field(h, "connection") == Some("close")));
}

/// An upstream that answers a connection's first request and keeps it,
/// then closes it on reading the second without answering: a kept
/// connection that turns out dead when reused.
fn closes_on_reuse() -> (RawUpstream, Arc<AtomicUsize>) {
    let dead = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&dead);
    let upstream = RawUpstream::start(move |mut stream| {
        let (head, _) = Messages::new(&mut stream).request();
        let text = head.split("\r\n").next().unwrap().to_string();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        stream.write_all(answer.as_bytes()).unwrap();
        let mut buf = [0u8; 1024];
        if matches!(stream.read(&mut buf), Ok(n) if n > 0) {
            count.fetch_add(1, Ordering::SeqCst);
        }
        // Dropped unanswered.
    });
    (upstream, dead)
}

#[test]
fn a_stale_kept_connection_retries_a_get_and_answers_a_post_502() {
    let _w = watchdog();
    let (upstream, dead) = closes_on_reuse();
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = connect(proxy.addr());
    let ask = |client: &mut TcpStream, request: &[u8]| {
        client.write_all(request).unwrap();
        Messages::new(client).response(false)
    };
    let (head, _) = ask(&mut client, b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(status_of(&head), 200);
    // The GET meets the kept connection, which closes on it: sent again on
    // a new one, answered there.
    let (head, body) = ask(&mut client, b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(body_text(body), "GET /2 HTTP/1.1");
    assert_eq!(dead.load(Ordering::SeqCst), 1);
    assert_eq!(upstream.accepted(), 2);
    // A POST may not be sent twice: 502.
    let (head, _) = ask(
        &mut client,
        b"POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(status_of(&head), 502, "{head}");
    assert_eq!(dead.load(Ordering::SeqCst), 2);
    assert_eq!(upstream.accepted(), 2, "no second try for the POST");
}

#[test]
fn sigterm_closes_idle_kept_connections_at_once_and_finishes_the_rest() {
    let _w = watchdog();
    let (slow_tx, slow_rx) = mpsc::channel::<()>();
    let slow_rx = Mutex::new(slow_rx);
    let upstream = RawUpstream::start(move |mut stream| {
        let (head, _) = Messages::new(&mut stream).request();
        if head.starts_with("GET /slow") {
            // Answer only once the drain has begun.
            let _ = slow_rx.lock().unwrap().recv_timeout(IO_TIMEOUT);
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    let proxy = proxy_to(
        &[upstream.addr],
        &["--drain-timeout", "10s", "--drain-spread", "5s"],
    );
    // An idle kept connection, after one answer.
    let mut idle = send(proxy.addr(), b"GET /fast HTTP/1.1\r\nHost: a\r\n\r\n");
    let (head, _) = Messages::new(&mut idle).response(false);
    assert_eq!(field(&head, "connection"), None);
    // And one in the middle of an exchange.
    let mut busy = send(proxy.addr(), b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    thread_wait_for_upstream(&upstream, 2);
    let started = Instant::now();
    proxy.signal(libc::SIGTERM);
    assert!(proxy.wait_for_log("draining"));
    assert!(Messages::new(&mut idle).closed(), "the idle one closes");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "closed at once, not at its drain turn: {:?}",
        started.elapsed()
    );
    slow_tx.send(()).unwrap();
    let mut answers = Messages::new(&mut busy);
    let (head, body) = answers.response(false);
    assert_eq!(status_of(&head), 200);
    assert_eq!(body, b"ok");
    assert_eq!(field(&head, "connection"), Some("close"), "{head}");
    assert!(answers.closed());
}

/// Waits until the upstream accepted `n` connections.
fn thread_wait_for_upstream(upstream: &RawUpstream, n: usize) {
    assert!(
        eventually(IO_TIMEOUT, || upstream.accepted() >= n),
        "the upstream got {} connections, not {n}",
        upstream.accepted()
    );
}

#[test]
fn a_refused_request_with_a_body_leaves_the_connection_usable() {
    let _w = watchdog();
    let (upstream, _seen) = keepalive_upstream();
    let dir = TempDir::new();
    dir.write("index.html", "home\n");
    let config = dir.write(
        "proxy.toml",
        &format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n\n\
             [[server]]\n\
             [[server.route]]\nlocation = \"/api/\"\nupstream = \"{}\"\n\
             [[server.route]]\nlocation = \"/\"\nroot = \"{}\"\n",
            upstream.addr,
            dir.0.display()
        ),
    );
    let proxy = Proxy::start(&["--config", config.to_str().unwrap()]);
    let mut client = connect(proxy.addr());
    // A POST to a file: 405, its body read and dropped, then the GET.
    client
        .write_all(
            b"POST /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nxxxxxGET /index.html HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .unwrap();
    let mut answers = Messages::new(&mut client);
    let (head, _) = answers.response(false);
    assert_eq!(status_of(&head), 405, "{head}");
    assert_eq!(field(&head, "connection"), None);
    let (head, body) = answers.response(false);
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(body, b"home\n");
    drop(answers);
    // A body that comes after the answer is dropped as it arrives.
    client
        .write_all(b"POST /nothing-here HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n")
        .unwrap();
    let (head, _) = Messages::new(&mut client).response(false);
    assert_eq!(status_of(&head), 405, "{head}");
    client
        .write_all(b"abcdefGET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let (head, body) = Messages::new(&mut client).response(false);
    assert_eq!(status_of(&head), 200, "{head}");
    assert!(body_text(body).starts_with("GET /api/x "));
    // The proxy's own answer to a HEAD has no body, or the next answer
    // would start with it.
    client
        .write_all(
            b"HEAD /missing HTTP/1.1\r\nHost: a\r\n\r\nGET /index.html HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .unwrap();
    let mut answers = Messages::new(&mut client);
    let (head, _) = answers.response(true);
    assert_eq!(status_of(&head), 404, "{head}");
    let (head, body) = answers.response(false);
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(body, b"home\n");
    drop(answers);
    // A client waiting for 100-continue is not waited for: closed.
    client
        .write_all(
            b"PUT /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let mut answers = Messages::new(&mut client);
    let (head, _) = answers.response(false);
    assert_eq!(status_of(&head), 405);
    assert_eq!(field(&head, "connection"), Some("close"));
    assert!(answers.closed());
}

#[test]
fn a_reload_closes_idle_kept_connections_and_ends_the_rest_after_their_exchange() {
    let _w = watchdog();
    let (slow_tx, slow_rx) = mpsc::channel::<()>();
    let slow_rx = Mutex::new(slow_rx);
    let (got_tx, got_rx) = mpsc::channel::<()>();
    let got_tx = Mutex::new(got_tx);
    let upstream = RawUpstream::start(move |mut stream| loop {
        let mut requests = Messages::new(&mut stream);
        if !requests.peek_more() {
            return;
        }
        let (head, _) = requests.request();
        drop(requests);
        if head.starts_with("GET /slow") {
            // Answer only once the reload has happened.
            got_tx.lock().unwrap().send(()).unwrap();
            let _ = slow_rx.lock().unwrap().recv_timeout(IO_TIMEOUT);
        }
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    });
    let dir = TempDir::new();
    let config = dir.write(
        "proxy.toml",
        &format!(
            "workers = 1\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
             [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"{}\"\n",
            upstream.addr
        ),
    );
    let proxy = Proxy::start(&["--config", config.to_str().unwrap()]);
    let mut idle = send(proxy.addr(), b"GET /fast HTTP/1.1\r\nHost: a\r\n\r\n");
    let (head, _) = Messages::new(&mut idle).response(false);
    assert_eq!(field(&head, "connection"), None);
    let mut busy = send(proxy.addr(), b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    got_rx
        .recv_timeout(IO_TIMEOUT)
        .expect("the slow request reached the upstream");
    proxy.signal(libc::SIGHUP);
    assert!(proxy.wait_for_log("SIGHUP: reloaded"));
    assert!(Messages::new(&mut idle).closed(), "the idle one closes");
    slow_tx.send(()).unwrap();
    let mut answers = Messages::new(&mut busy);
    let (head, body) = answers.response(false);
    assert_eq!((status_of(&head), body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(field(&head, "connection"), Some("close"), "{head}");
    assert!(answers.closed());
    // New clients are served under the new configuration, kept as before.
    let mut fresh = send(proxy.addr(), b"GET /new HTTP/1.1\r\nHost: a\r\n\r\n");
    let (head, _) = Messages::new(&mut fresh).response(false);
    assert_eq!((status_of(&head), field(&head, "connection")), (200, None));
}

#[test]
fn each_exchange_on_a_kept_connection_gets_its_access_log_line_at_once() {
    let _w = watchdog();
    let (upstream, _seen) = keepalive_upstream();
    let dir = TempDir::new();
    let path = dir.0.join("access.log");
    let proxy = proxy_to(&[upstream.addr], &["--access-log", path.to_str().unwrap()]);
    let mut client = connect(proxy.addr());
    client
        .write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        .unwrap();
    let mut answers = Messages::new(&mut client);
    answers.response(false);
    answers.response(false);
    // Both lines, while the connection is still open.
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(5), || read().lines().count() == 2),
        "{}",
        read()
    );
    for line in read().lines() {
        for want in [
            "status=200",
            &format!("upstream={}", upstream.addr),
            "closed_by=proxy reason=\"response complete\"",
        ] {
            assert!(line.contains(want), "{want} in {line}");
        }
    }
    drop(answers);
}
