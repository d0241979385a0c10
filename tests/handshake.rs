//! The opening handshake through the proxy: what reaches the upstream, what
//! reaches the client, and every refusal as an HTTP answer.

mod common;

use std::io::Write;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use ws::{EchoServer, Opcode};

/// An upstream that answers 101 and reports each request head it got.
fn recording_upstream() -> (RawUpstream, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let upstream = RawUpstream::start(move |mut stream| {
        if let Ok((head, _)) = accept_upgrade(&mut stream) {
            let _ = tx.lock().unwrap().send(head);
            // Hold the tunnel until the client goes.
            let _ = read_all(&mut stream);
        }
    });
    (upstream, rx)
}

#[test]
fn upgrade_reaches_echo_and_accept_key_checks_out() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &[]);
    // Client::connect verifies the 101 and Sec-WebSocket-Accept.
    let mut client = ws::Client::connect(proxy.addr(), "/chat").expect("upgrade through the proxy");
    for size in [0, 1, 125, 126, 65_535, 65_536, 200_000] {
        let payload = pattern(size, size as u64);
        client.send(Opcode::Binary, &payload).unwrap();
        let echoed = client.recv().unwrap();
        assert_eq!(echoed.opcode, Opcode::Binary);
        assert!(echoed.payload == payload, "echo of {size} bytes differs");
    }
    client.send_text("bye").unwrap();
    assert_eq!(client.recv().unwrap().text(), Some("bye"));
    assert_eq!(client.close(1000).unwrap(), Some(1000));
}

#[test]
fn firefox_connection_token_list_upgrades() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &[]);
    let key = ws::random_key();
    let head = upgrade_head(proxy.addr(), &key, "")
        .replace("Connection: Upgrade", "Connection: keep-alive, Upgrade");
    let mut stream = send(proxy.addr(), head.as_bytes());
    let (answer, _) = ws::read_head(&mut stream).unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert_eq!(status_of(&answer), 101, "{answer}");
    assert_eq!(
        field(&answer, "sec-websocket-accept"),
        Some(ws::accept_key(&key).as_str())
    );
}

#[test]
fn hop_by_hop_fields_are_replaced_and_end_to_end_ones_pass() {
    let _w = watchdog();
    let (upstream, heads) = recording_upstream();
    let proxy = proxy_to(&[upstream.addr], &[]);
    let key = ws::random_key();
    let extra =
        "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\n\
                 X-Secret: hidden\r\nX-Kept: visible\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
                 Origin: http://example.com\r\n";
    let head = upgrade_head(proxy.addr(), &key, extra).replace(
        "Connection: Upgrade",
        "Connection: keep-alive, Upgrade, X-Secret",
    );
    let mut client = send(proxy.addr(), head.as_bytes());
    let (answer, _) = ws::read_head(&mut client).unwrap();
    assert_eq!(status_of(std::str::from_utf8(&answer).unwrap()), 101);

    let seen = heads.recv_timeout(IO_TIMEOUT).unwrap();
    for gone in [
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "x-secret",
    ] {
        assert_eq!(
            field(&seen, gone),
            None,
            "{gone} reached the upstream:\n{seen}"
        );
    }
    assert_eq!(fields(&seen, "connection"), ["upgrade"]);
    assert_eq!(fields(&seen, "upgrade"), ["websocket"]);
    assert_eq!(
        field(&seen, "host"),
        Some(proxy.addr().to_string().as_str()),
        "Host is kept"
    );
    assert_eq!(field(&seen, "x-kept"), Some("visible"));
    assert_eq!(field(&seen, "sec-websocket-key"), Some(key.as_str()));
    assert_eq!(field(&seen, "sec-websocket-version"), Some("13"));
    assert_eq!(
        field(&seen, "sec-websocket-protocol"),
        Some("chat, superchat")
    );
    assert_eq!(
        field(&seen, "sec-websocket-extensions"),
        Some("permessage-deflate; client_max_window_bits")
    );
    assert!(seen.starts_with("GET /chat HTTP/1.1\r\n"), "{seen}");
}

#[test]
fn forwarding_fields_are_added_and_client_values_replaced() {
    let _w = watchdog();
    let (upstream, heads) = recording_upstream();
    let proxy = proxy_to(&[upstream.addr], &[]);
    let extra =
        "X-Forwarded-For: 203.0.113.7\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n";
    let mut client = send(
        proxy.addr(),
        upgrade_head(proxy.addr(), &ws::random_key(), extra).as_bytes(),
    );
    ws::read_head(&mut client).unwrap();
    let seen = heads.recv_timeout(IO_TIMEOUT).unwrap();
    // No --trusted-proxy: what a client says about itself is not passed on.
    assert_eq!(fields(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(fields(&seen, "x-real-ip"), ["127.0.0.1"]);
    assert_eq!(fields(&seen, "x-forwarded-proto"), ["http"]);
}

#[test]
fn early_frames_after_the_head_are_forwarded() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &[]);
    let key = ws::random_key();
    let mut bytes = upgrade_head(proxy.addr(), &key, "").into_bytes();
    ws::encode_frame(
        &mut bytes,
        true,
        Opcode::Text,
        b"sent before the 101",
        Some(ws::random_mask()),
    );
    // Head and frame leave in one write, so they arrive in one segment.
    let mut stream = send(proxy.addr(), &bytes);
    let (answer, rest) = ws::read_head(&mut stream).unwrap();
    assert_eq!(status_of(std::str::from_utf8(&answer).unwrap()), 101);
    let mut reader = std::io::Read::chain(std::io::Cursor::new(rest), &mut stream);
    let frame = ws::read_frame(&mut reader).unwrap();
    assert_eq!(frame.text(), Some("sent before the 101"));
}

#[test]
fn upstream_refusal_reaches_the_client_as_sent() {
    let _w = watchdog();
    let upstream = RawUpstream::start(|mut stream| {
        let _ = ws::read_head(&mut stream);
        let _ = stream.write_all(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\
              Connection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\nno entry.\n",
        );
        // Keep the connection open: the proxy must end the exchange by length.
        let _ = read_all(&mut stream);
    });
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = send(
        proxy.addr(),
        upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
    );
    let mut answers = Messages::new(&mut client);
    let (head, body) = answers.response(false);
    assert_eq!(status_of(&head), 403);
    assert_eq!(body, b"no entry.\n");
    // The client asked nothing of its connection: HTTP/1.1 keeps it, so
    // the proxy writes no Connection field, and drops the upstream's.
    assert_eq!(fields(&head, "connection"), Vec::<&str>::new());
    assert_eq!(field(&head, "keep-alive"), None);
    assert_eq!(field(&head, "content-type"), Some("text/plain"));
    drop(answers);
    // The refused upgrade leaves a connection that carries the next
    // request.
    client
        .write_all(b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answers = Messages::new(&mut client);
    let (head, _) = answers.response(false);
    assert_eq!(status_of(&head), 403);
    assert_eq!(fields(&head, "connection"), ["close"]);
    assert!(
        answers.closed(),
        "closed after the answer it asked to be the last"
    );
}

/// Sends `request` and expects the proxy's own answer, never touching the
/// upstream.
fn refused(request: &[u8], status: u16, why: &str) {
    let upstream = RawUpstream::start(|_| {});
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = send(proxy.addr(), request);
    let (head, body) = read_response(&mut client);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status_of(&head), status, "{head}{body}");
    assert!(body.contains(why), "body {body:?} should say {why:?}");
    assert_eq!(
        field(&head, "content-length"),
        Some(body.len().to_string().as_str())
    );
    // A request refused as malformed closes its connection: where the next
    // request would start is not to be trusted.
    assert_eq!(field(&head, "connection"), Some("close"), "{head}");
    assert_eq!(
        upstream.accepted(),
        0,
        "a refused request never reaches the upstream"
    );
    let logged = eventually(IO_TIMEOUT, || {
        proxy
            .log()
            .iter()
            .any(|l| l.contains(&format!(": {status} ")) && l.contains(why))
    });
    assert!(
        logged,
        "no log line names {status} and {why:?}: {:?}",
        proxy.log()
    );
}

#[test]
fn malformed_heads_get_400() {
    let _w = watchdog();
    refused(
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        400,
        "invalid header",
    );
    refused(
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        400,
        "",
    );
    refused(b"GET / HTTP/1.1\r\n\r\n", 400, "Host");
}

#[test]
fn content_length_with_transfer_encoding_gets_400() {
    let _w = watchdog();
    refused(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "both Content-Length and Transfer-Encoding",
    );
}

#[test]
fn broken_upgrades_say_what_is_wrong() {
    let _w = watchdog();
    let base = upgrade_head(
        "127.0.0.1:1".parse().unwrap(),
        "dGhlIHNhbXBsZSBub25jZQ==",
        "",
    );
    refused(
        base.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "")
            .as_bytes(),
        400,
        "Sec-WebSocket-Key",
    );
    refused(
        base.replace("Version: 13", "Version: 8").as_bytes(),
        426,
        "Sec-WebSocket-Version",
    );
    refused(base.replacen("GET", "POST", 1).as_bytes(), 405, "GET");
}

#[test]
fn oversized_heads_get_431() {
    let _w = watchdog();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nCookie: {}\r\n\r\n",
        "c".repeat(17 * 1024)
    );
    refused(big.as_bytes(), 431, "too large");
    let many = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        "X-A: b\r\n".repeat(150)
    );
    refused(many.as_bytes(), 431, "too many header fields");
}

#[test]
fn refusal_is_read_even_while_the_client_keeps_sending() {
    let _w = watchdog();
    let upstream = RawUpstream::start(|_| {});
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = connect(proxy.addr());
    let mut writer = client.try_clone().unwrap();
    // A bad head followed by a large body the proxy never asked for: closing
    // with it unread would reset the connection and lose the answer.
    let sender = std::thread::spawn(move || {
        let mut bytes = b"POST / HTTP/1.1\r\n\r\n".to_vec();
        bytes.extend(pattern(512 * 1024, 9));
        let _ = writer.write_all(&bytes);
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let (head, body) = read_response(&mut client);
    assert_eq!(status_of(&head), 400);
    assert!(String::from_utf8(body).unwrap().contains("Host"));
    sender.join().unwrap();
}

#[test]
fn plain_get_is_proxied_without_hop_by_hop_fields() {
    let _w = watchdog();
    let (tx, heads) = mpsc::channel();
    let tx = Mutex::new(tx);
    let upstream = RawUpstream::start(move |mut stream| {
        let (head, _) = ws::read_head(&mut stream).unwrap();
        tx.lock()
            .unwrap()
            .send(String::from_utf8(head).unwrap())
            .unwrap();
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhello\n",
        );
        // An upstream that ignores Connection: close and stays open.
        let _ = read_all(&mut stream);
    });
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = send(
        proxy.addr(),
        b"GET /index.html?x=1 HTTP/1.1\r\nHost: site\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n",
    );
    let (head, body) = read_response(&mut client);
    assert_eq!(status_of(&head), 200);
    assert_eq!(body, b"hello\n");
    // Kept open, as HTTP/1.1 is by default: no Connection field, and the
    // upstream's Keep-Alive is its own business.
    assert_eq!(fields(&head, "connection"), Vec::<&str>::new());
    assert_eq!(field(&head, "keep-alive"), None);

    let seen = heads.recv_timeout(IO_TIMEOUT).unwrap();
    assert!(seen.starts_with("GET /index.html?x=1 HTTP/1.1\r\n"));
    // The upstream connection may be kept for the next request too.
    assert_eq!(fields(&seen, "connection"), Vec::<&str>::new());
    assert_eq!(field(&seen, "host"), Some("site"));
    assert_eq!(field(&seen, "accept"), Some("*/*"));
    assert_eq!(field(&seen, "upgrade"), None);
}

/// What an upstream saw: the head, the body, and any bytes past the body.
type Seen = (String, Vec<u8>, Vec<u8>);

/// An upstream that reads a request with a `Content-Length` body, answers
/// with what it read, then reports anything that followed.
fn body_echo_upstream() -> (RawUpstream, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let upstream = RawUpstream::start(move |mut stream| {
        let (head, mut body) = ws::read_head(&mut stream).unwrap();
        let head = String::from_utf8(head).unwrap();
        let len: usize = field(&head, "content-length").map_or(0, |v| v.parse().unwrap());
        if body.len() < len {
            body.extend(read_exact(&mut stream, len - body.len()));
        }
        let extra = body.split_off(len);
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        stream.write_all(answer.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        // The proxy closes after the answer; whatever else arrives was
        // forwarded past the body.
        let mut after = extra;
        after.extend(read_all(&mut stream));
        tx.lock().unwrap().send((head, body, after)).unwrap();
    });
    (upstream, rx)
}

#[test]
fn plain_post_body_passes_intact_and_nothing_past_it() {
    let _w = watchdog();
    let (upstream, seen) = body_echo_upstream();
    // A connection per upstream request: whatever reaches the first one
    // past the body was forwarded as part of the POST.
    let proxy = proxy_to(&[upstream.addr], &["--upstream-keepalive", "0"]);
    let body = pattern(300 * 1024, 5);
    let mut client = connect(proxy.addr());
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).unwrap();
    for piece in body.chunks(7000) {
        client.write_all(piece).unwrap();
    }
    // A request behind the body is the next request: it must not reach
    // the upstream as part of this one, only as a request of its own that
    // the proxy read and rewrote.
    client
        .write_all(b"GET /next HTTP/1.1\r\nHost: a\r\nX-Real-IP: 6.6.6.6\r\n\r\n")
        .unwrap();
    let mut answers = Messages::new(&mut client);
    let (answer, echoed) = answers.response(false);
    assert_eq!(status_of(&answer), 200);
    assert!(echoed == body, "body changed on the way");
    let (next, _) = answers.response(false);
    assert_eq!(status_of(&next), 200);
    // Each upstream connection reports when the proxy closes it, in
    // either order.
    let mut reports: Vec<Seen> = (0..2)
        .map(|_| seen.recv_timeout(IO_TIMEOUT).unwrap())
        .collect();
    reports.sort_by_key(|(head, _, _)| !head.starts_with("POST"));
    let (up_head, up_body, after) = reports.remove(0);
    assert_eq!(field(&up_head, "connection"), Some("close"));
    assert!(up_body == body);
    assert!(
        after.is_empty(),
        "forwarded past the body: {:?}",
        String::from_utf8_lossy(&after)
    );
    let (next_head, next_body, _) = reports.remove(0);
    assert!(
        next_head.starts_with("GET /next HTTP/1.1\r\n"),
        "{next_head}"
    );
    assert_eq!(field(&next_head, "x-real-ip"), Some("127.0.0.1"));
    assert!(next_body.is_empty());
}

#[test]
fn chunked_bodies_pass_both_ways() {
    let _w = watchdog();
    let (tx, seen) = mpsc::channel();
    let tx = Mutex::new(tx);
    let request_body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec();
    let expected = request_body.clone();
    let upstream = RawUpstream::start(move |mut stream| {
        let (head, mut got) = ws::read_head(&mut stream).unwrap();
        while got.len() < expected.len() {
            let more = read_exact(&mut stream, 1);
            got.extend(more);
        }
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            )
            .unwrap();
        tx.lock()
            .unwrap()
            .send((String::from_utf8(head).unwrap(), got))
            .unwrap();
        let _ = read_all(&mut stream);
    });
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = connect(proxy.addr());
    client
        .write_all(b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    for piece in request_body.chunks(4) {
        client.write_all(piece).unwrap();
        client.flush().unwrap();
    }
    let (head, body) = read_response(&mut client);
    assert_eq!(status_of(&head), 200);
    assert_eq!(field(&head, "transfer-encoding"), Some("chunked"));
    assert_eq!(body, b"3\r\nabc\r\n0\r\n\r\n");
    let (up_head, up_body) = seen.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(field(&up_head, "transfer-encoding"), Some("chunked"));
    assert_eq!(up_body, request_body);
}

#[test]
fn head_response_ends_without_a_body() {
    let _w = watchdog();
    let upstream = RawUpstream::start(|mut stream| {
        let _ = ws::read_head(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        let _ = read_all(&mut stream);
    });
    let proxy = proxy_to(&[upstream.addr], &["--response-timeout", "30s"]);
    let start = std::time::Instant::now();
    let mut client = send(proxy.addr(), b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    let (head, body) = Messages::new(&mut client).response(true);
    assert_eq!(status_of(&head), 200);
    assert!(body.is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "HEAD waited for a body"
    );
}

#[test]
fn interim_100_continue_is_relayed() {
    let _w = watchdog();
    let upstream = RawUpstream::start(|mut stream| {
        let (head, _) = ws::read_head(&mut stream).unwrap();
        assert!(String::from_utf8(head)
            .unwrap()
            .contains("Expect: 100-continue"));
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
        let body = read_exact(&mut stream, 4);
        let answer = format!(
            "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\n{}",
            String::from_utf8(body).unwrap()
        );
        stream.write_all(answer.as_bytes()).unwrap();
        let _ = read_all(&mut stream);
    });
    let proxy = proxy_to(&[upstream.addr], &[]);
    let mut client = send(
        proxy.addr(),
        b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    let (interim, _) = ws::read_head(&mut client).unwrap();
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"data").unwrap();
    let (head, body) = read_response(&mut client);
    assert_eq!(status_of(&head), 201);
    assert_eq!(body, b"data");
}
