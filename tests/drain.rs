//! Graceful drain: SIGTERM sends both ends of every tunnel a Close frame
//! (1001, Going Away) at a frame boundary and the process exits within the
//! drain timeout; a reload that removes a route drains or closes its
//! tunnels when told to.

mod common;

use std::io::{Cursor, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::upstreams::{answer_close, next_frame, ws_upstream, Seen};
use common::*;
use ws::{EchoServer, Frame, Opcode};

const GOING_AWAY: u16 = 1001;

/// The client reads frames until a Close, which it returns.
fn close_from_proxy(client: &mut ws::Client) -> Frame {
    loop {
        let frame = client.recv().expect("a Close before the end");
        if frame.opcode == Opcode::Close {
            return frame;
        }
    }
}

#[test]
fn sigterm_sends_close_1001_both_ways_and_exits_within_the_drain_timeout() {
    let _w = watchdog();
    for relay in ["copy", "splice"] {
        let (upstream, seen) = ws_upstream(None);
        let mut proxy = proxy_to(
            &[upstream.addr],
            &[
                "--relay",
                relay,
                "--drain-timeout",
                "10s",
                "--drain-spread",
                "0s",
                "--admin",
                "127.0.0.1:0",
            ],
        );
        let mut client = ws::Client::connect(proxy.addr(), "/").unwrap();
        client.send_text("before").unwrap();
        assert_eq!(next_frame(&seen).payload, b"before");
        assert_eq!(proxy.metric(r#"wsproxy_tunnels_active{route="/"}"#), 1.0);

        let signalled = Instant::now();
        proxy.signal(libc::SIGTERM);
        let close = close_from_proxy(&mut client);
        assert_eq!(close.close_code(), Some(GOING_AWAY), "{relay}");
        assert_eq!(&close.payload[2..], b"proxy shutting down", "{relay}");
        let up = next_frame(&seen);
        assert_eq!(up.opcode, Opcode::Close, "{relay}");
        assert_eq!(up.close_code(), Some(GOING_AWAY), "{relay}");
        assert!(matches!(seen.recv_timeout(IO_TIMEOUT).unwrap(), Seen::End));
        // Draining: no new clients; the health check says so.
        assert!(
            TcpStream::connect(proxy.addr()).is_err(),
            "the listener is shut"
        );
        let (head, _) = read_response(&mut send(
            proxy.admin_addr(),
            b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        ));
        assert_eq!(status_of(&head), 503, "{head}");

        answer_close(&mut client);
        let status = proxy
            .wait_exit(Duration::from_secs(10))
            .expect("exits within the drain timeout");
        assert_eq!(status.code(), Some(0));
        let took = signalled.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "both peers answered at once, yet it took {took:?} of a 10 s drain timeout"
        );
    }
}

/// A frame in flight when the drain starts is delivered whole; the Close
/// follows it, in both directions and through both relays.
#[test]
fn the_close_waits_for_the_frame_under_way() {
    let _w = watchdog();
    let big = pattern(300_000, 7);
    for relay in ["copy", "splice"] {
        // The upstream's frame to the client: header and half the payload
        // first, the rest after the signal.
        let mut down = Vec::new();
        ws::encode_frame(&mut down, true, Opcode::Binary, &big, None);
        // Client to upstream: a masked frame, also cut in two.
        let mut up = Vec::new();
        ws::encode_frame(&mut up, true, Opcode::Binary, &big, Some(ws::random_mask()));
        let half = up.len() / 2;
        let (upstream_tx, upstream_rx) = mpsc::channel::<Vec<u8>>();
        let upstream_rx = Mutex::new(Some(upstream_rx));
        let (seen_tx, seen) = mpsc::channel();
        let seen_tx = Mutex::new(seen_tx);
        let (half_tx, half_seen) = mpsc::channel();
        let half_tx = Mutex::new(half_tx);
        let upstream = RawUpstream::start(move |mut stream| {
            let parts = upstream_rx.lock().unwrap().take().unwrap();
            let seen = seen_tx.lock().unwrap().clone();
            let half_tx = half_tx.lock().unwrap().clone();
            let (_, rest) = accept_upgrade(&mut stream).unwrap();
            let mut writer = stream.try_clone().unwrap();
            std::thread::spawn(move || {
                for part in parts {
                    if writer.write_all(&part).is_err() {
                        return;
                    }
                }
            });
            let mut reader = Cursor::new(rest).chain(stream);
            let mut first = vec![0u8; half];
            reader.read_exact(&mut first).unwrap();
            half_tx.send(()).unwrap();
            let mut reader = Cursor::new(first).chain(reader);
            while let Ok(frame) = ws::read_frame(&mut reader) {
                let close = frame.opcode == Opcode::Close;
                let _ = seen.send(frame);
                if close {
                    break;
                }
            }
        });
        let mut proxy = proxy_to(
            &[upstream.addr],
            &["--relay", relay, "--drain-timeout", "5s"],
        );
        let mut client = ws::Client::connect(proxy.addr(), "/").unwrap();

        let (up_first, up_rest) = up.split_at(half);
        client.stream().write_all(up_first).unwrap();
        let (down_first, down_rest) = down.split_at(down.len() / 2);
        upstream_tx.send(down_first.to_vec()).unwrap();
        // Wait until the proxy has relayed part of both, so the drain
        // starts mid-frame.
        let mut head = [0u8; 10];
        client.stream().read_exact(&mut head).unwrap();
        assert_eq!(head[..2], [0x82, 127], "the frame's header came through");
        half_seen.recv_timeout(IO_TIMEOUT).unwrap();

        proxy.signal(libc::SIGTERM);
        assert!(proxy.wait_for_log("draining"));
        client.stream().write_all(up_rest).unwrap();
        upstream_tx.send(down_rest.to_vec()).unwrap();
        drop(upstream_tx);

        // The client gets the rest of the big frame, then the Close.
        let mut payload = vec![0u8; big.len()];
        client.stream().read_exact(&mut payload).unwrap();
        assert!(payload == big, "{relay}: the frame in flight arrived whole");
        let close = close_from_proxy(&mut client);
        assert_eq!(close.close_code(), Some(GOING_AWAY));
        // The upstream gets the whole frame, then the Close.
        let frame = seen.recv_timeout(IO_TIMEOUT).unwrap();
        assert_eq!(frame.opcode, Opcode::Binary);
        assert!(frame.payload == big, "{relay}: intact toward the upstream");
        let close = seen.recv_timeout(IO_TIMEOUT).unwrap();
        assert_eq!(close.close_code(), Some(GOING_AWAY), "{relay}");

        answer_close(&mut client);
        assert!(proxy.wait_exit(Duration::from_secs(5)).is_some());
    }
}

/// Peers that never answer are closed at the deadline, and the process
/// exits then; a second SIGTERM does not wait for it.
#[test]
fn silent_peers_are_cut_off_at_the_deadline() {
    let _w = watchdog();
    let silent = RawUpstream::start(|mut stream| {
        let _ = accept_upgrade(&mut stream);
        // Reads nothing, answers nothing, holds the connection.
        std::thread::sleep(Duration::from_secs(30));
    });
    let mut proxy = proxy_to(&[silent.addr], &["--drain-timeout", "1500ms"]);
    let _client = ws::Client::connect(proxy.addr(), "/").unwrap();
    let signalled = Instant::now();
    proxy.signal(libc::SIGTERM);
    // The deadline counts from when the proxy took the signal.
    assert!(proxy.wait_for_log("draining"));
    let logged = Instant::now();
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("exits at the deadline");
    assert_eq!(status.code(), Some(0));
    let (since_signal, since_log) = (signalled.elapsed(), logged.elapsed());
    assert!(
        since_signal >= Duration::from_millis(1300) && since_log < Duration::from_millis(3000),
        "exited {since_signal:?} after the signal, {since_log:?} after the log line, \
         for a 1.5 s drain timeout"
    );
    assert!(proxy.wait_for_log("drain timeout"));

    let mut proxy = proxy_to(&[silent.addr], &["--drain-timeout", "60s"]);
    let _client = ws::Client::connect(proxy.addr(), "/").unwrap();
    let signalled = Instant::now();
    proxy.signal(libc::SIGTERM);
    assert!(proxy.wait_for_log("draining"));
    proxy.signal(libc::SIGTERM);
    proxy
        .wait_exit(Duration::from_secs(5))
        .expect("a second SIGTERM stops it");
    assert!(signalled.elapsed() < Duration::from_secs(5));
}

/// The Close frames of many tunnels go out over the spread window, not in
/// one burst.
#[test]
fn closes_are_spread_over_the_window() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let mut proxy = proxy_to(
        &[echo.addr],
        &["--drain-timeout", "10s", "--drain-spread", "2s"],
    );
    let clients: Vec<ws::Client> = (0..20)
        .map(|_| ws::Client::connect(proxy.addr(), "/").unwrap())
        .collect();
    let signalled = Instant::now();
    proxy.signal(libc::SIGTERM);
    let (tx, rx) = mpsc::channel();
    for mut client in clients {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let close = close_from_proxy(&mut client);
            tx.send((close.close_code(), Instant::now())).unwrap();
            answer_close(&mut client);
        });
    }
    drop(tx);
    let arrivals: Vec<Duration> = rx
        .iter()
        .map(|(code, at)| {
            assert_eq!(code, Some(GOING_AWAY));
            at - signalled
        })
        .collect();
    assert_eq!(arrivals.len(), 20);
    let first = arrivals.iter().min().unwrap();
    let last = arrivals.iter().max().unwrap();
    assert!(
        *last - *first >= Duration::from_millis(1200) && *last < Duration::from_secs(8),
        "closes from {first:?} to {last:?} for a 2 s spread"
    );
    assert!(proxy.wait_exit(Duration::from_secs(5)).is_some());
}

fn two_routes(a: SocketAddr, b: Option<SocketAddr>, removed: &str) -> String {
    let mut text = format!(
        "workers = 1\n[drain]\nremoved_routes = \"{removed}\"\ntimeout = \"5s\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[server]]\n[[server.route]]\nlocation = \"/a\"\nupstream = \"{a}\"\n"
    );
    if let Some(b) = b {
        text.push_str(&format!(
            "[[server.route]]\nlocation = \"/b\"\nupstream = \"{b}\"\n"
        ));
    }
    text
}

/// A reload that removes a route drains its tunnels (Close 1001) or closes
/// them, as `[drain] removed_routes` says; other tunnels run on.
#[test]
fn a_reload_drains_or_closes_the_tunnels_of_a_removed_route() {
    let _w = watchdog();
    let a = EchoServer::start();
    let b = EchoServer::start();
    for removed in ["drain", "close"] {
        let dir = TempDir::new();
        let path = dir.write("wsproxy.toml", &two_routes(a.addr, Some(b.addr), removed));
        let proxy = Proxy::start(&["--config", path.to_str().unwrap()]);
        let mut kept = ws::Client::connect(proxy.addr(), "/a").unwrap();
        let mut gone = ws::Client::connect(proxy.addr(), "/b").unwrap();
        gone.send_text("hi").unwrap();
        assert_eq!(gone.recv().unwrap().payload, b"hi");

        dir.write("wsproxy.toml", &two_routes(a.addr, None, removed));
        proxy.signal(libc::SIGHUP);
        match removed {
            "drain" => {
                let close = close_from_proxy(&mut gone);
                assert_eq!(close.close_code(), Some(GOING_AWAY));
                assert_eq!(&close.payload[2..], b"route removed");
                answer_close(&mut gone);
            }
            _ => {
                let end = gone.recv();
                assert!(end.is_err(), "closed without a frame: {end:?}");
            }
        }
        assert!(proxy.wait_for_log("removed the route or server of 1 tunnels"));
        kept.send_text("still here").unwrap();
        assert_eq!(kept.recv().unwrap().payload, b"still here");
    }
}

/// A tunnel whose bytes are not WebSocket frames is relayed intact by
/// both relays (the frame tracker gives up on it, the splice relay then
/// moves it in whole pipes), and a drain ends it with a plain FIN.
#[test]
fn bytes_that_are_not_frames_relay_intact_and_drain_with_fin() {
    let _w = watchdog();
    let upstream = RawUpstream::start(|mut stream| {
        let Ok((_, early)) = accept_upgrade(&mut stream) else {
            return;
        };
        stream.write_all(&early).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    for relay in ["copy", "splice", "auto"] {
        let mut proxy = proxy_to(&[upstream.addr], &["--relay", relay]);
        let mut client = send(
            proxy.addr(),
            upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
        );
        let (head, early) = ws::read_head(&mut client).unwrap();
        assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
        assert!(early.is_empty());
        let data = pattern(1 << 20, 3);
        let mut writer = client.try_clone().unwrap();
        let sent = data.clone();
        let sender = std::thread::spawn(move || writer.write_all(&sent).unwrap());
        let back = read_exact(&mut client, data.len());
        sender.join().unwrap();
        assert!(back == data, "{relay}: 1 MiB of non-frame bytes intact");

        proxy.signal(libc::SIGTERM);
        let rest = read_all(&mut client);
        assert!(rest.is_empty(), "{relay}: FIN, no Close frame: {rest:?}");
        drop(client);
        assert!(proxy.wait_exit(Duration::from_secs(5)).is_some());
    }
}

/// A stream of 64 KiB messages (each frame 10 bytes longer than a pipe,
/// so the splice relay peeks past every frame's tail) drained mid-stream:
/// the client reads whole echoed frames, then the Close, never a Close cut
/// into a frame.
#[test]
fn a_drain_mid_stream_of_64k_frames_lands_between_frames() {
    let _w = watchdog();
    let echo = EchoServer::start();
    for relay in ["splice", "auto"] {
        let mut proxy = proxy_to(&[echo.addr], &["--relay", relay, "--drain-timeout", "5s"]);
        let mut client = ws::Client::connect(proxy.addr(), "/").unwrap();
        let message = pattern(65_536, 9);
        let mut frame = Vec::new();
        ws::encode_frame(
            &mut frame,
            true,
            Opcode::Binary,
            &message,
            Some(ws::random_mask()),
        );
        let mut writer = client.stream().try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            // Until the proxy stops taking them.
            for _ in 0..2000 {
                if writer.write_all(&frame).is_err() {
                    return;
                }
            }
        });
        let mut echoed = 0;
        loop {
            let got = client
                .recv()
                .unwrap_or_else(|e| panic!("{relay}: after {echoed} echoes: {e}"));
            if got.opcode == Opcode::Close {
                assert_eq!(got.close_code(), Some(GOING_AWAY), "{relay}");
                break;
            }
            assert!(got.payload == message, "{relay}: echo {echoed} intact");
            echoed += 1;
            if echoed == 20 {
                proxy.signal(libc::SIGTERM);
            }
        }
        assert!(echoed >= 20, "{relay}: {echoed} echoes");
        drop(client);
        let _ = sender.join();
        assert!(proxy.wait_exit(Duration::from_secs(5)).is_some());
    }
}
