//! The admin listener: `/metrics` counters and gauges move as tunnels open,
//! carry bytes and close; `/healthz` answers.

mod common;

use std::time::Duration;

use common::*;
use ws::EchoServer;

#[test]
fn metrics_follow_tunnels_as_they_open_and_close() {
    let _w = watchdog();
    let echo = EchoServer::start();
    // A refusing server first: round-robin tries it, fails, moves on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let proxy = proxy_to(&[dead_addr, echo.addr], &["--admin", "127.0.0.1:0"]);
    let route = r#"wsproxy_tunnels_active{route="/"}"#;
    let server = format!(
        r#"wsproxy_upstream_tunnels_active{{group="upstream",server="{}"}}"#,
        echo.addr
    );
    assert_eq!(proxy.metric("wsproxy_connections_accepted_total"), 0.0);
    assert_eq!(proxy.metric(route), 0.0);

    let mut clients: Vec<ws::Client> = (0..3)
        .map(|_| ws::Client::connect(proxy.addr(), "/chat").unwrap())
        .collect();
    for client in &mut clients {
        client.send_text("hello").unwrap();
        assert_eq!(client.recv().unwrap().text(), Some("hello"));
    }
    let text = proxy.scrape();
    let at = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(at("wsproxy_connections_accepted_total"), 3.0);
    assert_eq!(at(r#"wsproxy_handshakes_total{code="101"}"#), 3.0);
    assert_eq!(at(route), 3.0);
    assert_eq!(at(&server), 3.0);
    assert_eq!(
        at("wsproxy_upstream_connect_failures_total"),
        1.0,
        "the dead server, once"
    );
    assert!(at(r#"wsproxy_tunnel_bytes_total{direction="client_to_upstream"}"#) >= 3.0 * 11.0);
    assert!(at(r#"wsproxy_tunnel_bytes_total{direction="upstream_to_client"}"#) >= 3.0 * 7.0);
    assert_eq!(at("wsproxy_handshake_duration_seconds_count"), 3.0);
    assert_eq!(
        at(r#"wsproxy_handshake_duration_seconds_bucket{le="+Inf"}"#),
        3.0
    );
    assert_eq!(at("wsproxy_tunnel_duration_seconds_count"), 0.0);

    for mut client in clients {
        client.close(1000).unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || proxy.metric(route) == 0.0),
        "{}",
        proxy.scrape()
    );
    let text = proxy.scrape();
    assert_eq!(sample(&text, &server), Some(0.0));
    assert_eq!(
        sample(&text, "wsproxy_tunnel_duration_seconds_count"),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, r#"wsproxy_tunnel_duration_seconds_bucket{le="10"}"#),
        Some(3.0),
        "each lived well under 10 s"
    );

    // A refusal is counted by its status.
    let mut stream = send(proxy.addr(), b"GET / HTTP/1.1\r\n\r\n");
    let (head, _) = read_response(&mut stream);
    assert_eq!(status_of(&head), 400);
    assert_eq!(proxy.metric(r#"wsproxy_handshakes_total{code="400"}"#), 1.0);

    let mut health = send(proxy.admin_addr(), b"GET /healthz HTTP/1.1\r\n\r\n");
    let (head, body) = read_response(&mut health);
    assert_eq!(status_of(&head), 200);
    assert_eq!(body, b"ok\n");
    let mut other = send(proxy.admin_addr(), b"GET /other HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&read_response(&mut other).0), 404);
}

#[test]
fn the_access_log_has_a_line_per_exchange_with_every_field() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let dir = TempDir::new();
    let path = dir.0.join("access.log");
    let proxy = proxy_to(
        &[echo.addr],
        &[
            "--access-log",
            path.to_str().unwrap(),
            "--access-log-format",
            "json",
        ],
    );
    let mut client = ws::Client::connect(proxy.addr(), "/chat").unwrap();
    client.send_text("hello").unwrap();
    assert_eq!(client.recv().unwrap().text(), Some("hello"));
    client.close(1000).unwrap();
    // The server closes TCP first (RFC 6455 7.1.1): wait for its FIN to
    // come through before the client closes, or the two race.
    let rest = read_all(client.stream());
    assert!(rest.is_empty(), "{rest:?}");
    drop(client);
    let mut refused = send(proxy.addr(), b"GET / HTTP/1.1\r\n\r\n");
    let _ = read_response(&mut refused);
    // The line is written when the pair closes: after its linger, which
    // the client's close ends.
    drop(refused);
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(5), || read().lines().count() == 2),
        "{}",
        read()
    );
    let text = read();
    let lines: Vec<&str> = text.lines().collect();
    let tunnel = lines.iter().find(|l| l.contains("\"status\":101")).unwrap();
    for want in [
        "\"client\":\"127.0.0.1:",
        "\"route\":\"/\"",
        &format!("\"upstream\":\"{}\"", echo.addr),
        "\"handshake_ms\":",
        "\"tunnel_s\":",
        // After the close handshake the server closes TCP first (RFC 6455
        // 7.1.1): the upstream ended the tunnel.
        "\"closed_by\":\"upstream\",\"reason\":\"closed\"",
    ] {
        assert!(tunnel.contains(want), "{want} in {tunnel}");
    }
    // The upgrade head, a masked 5-byte text frame and a close frame up;
    // the 101, the echo and the close reply down.
    let bytes = |key: &str| -> u64 {
        let at = tunnel.find(key).unwrap() + key.len();
        tunnel[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(bytes("\"bytes_up\":") >= 11 + 8, "{tunnel}");
    assert!(bytes("\"bytes_down\":") >= 7, "{tunnel}");
    let answered = lines.iter().find(|l| l.contains("\"status\":400")).unwrap();
    assert!(
        answered.contains("\"upstream\":null") && answered.contains("\"reason\":\"answered\""),
        "{answered}"
    );
}
