//! The admin listener: `/metrics` counters and gauges move as tunnels open,
//! carry bytes and close, process-wide and per route (across a reload
//! too); `/healthz` answers.

mod common;

use std::io::Write;
use std::net::SocketAddr;
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

/// Routes "chat" (origins checked) and "feed" to the echo server, and an
/// unnamed "/gone" to an upstream that answers every upgrade 404. `renamed`:
/// the reload's version, where "chat" is called "talk" and "feed" is gone.
fn routes_file(echo: SocketAddr, refuser: SocketAddr, renamed: bool) -> String {
    let (chat, feed) = if renamed {
        ("talk", "")
    } else {
        (
            "chat",
            "[[server.route]]\nlocation = \"/feed\"\nname = \"feed\"\nupstream = \"ECHO\"\n",
        )
    };
    format!(
        "workers = 2\nadmin = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[server]]\n\
         [[server.route]]\nlocation = \"/chat\"\nname = \"{chat}\"\nupstream = \"ECHO\"\n\
         origins = [\"http://good.test\"]\n\
         {feed}\
         [[server.route]]\nlocation = \"/gone\"\nupstream = \"{refuser}\"\n"
    )
    .replace("ECHO", &echo.to_string())
}

/// The upgrade heads the echo server got for `path`, and their bytes as
/// sent (each with its blank line).
fn head_bytes(echo: &EchoServer, path: &str) -> usize {
    let start = format!("GET {path} ");
    echo.request_heads()
        .iter()
        .filter(|h| h.starts_with(&start))
        .map(|h| h.len() + 4)
        .sum()
}

/// A text frame as a client sends it: 2 header bytes, a 4-byte mask, the
/// payload (under 126 bytes).
fn masked(text: &str) -> usize {
    2 + 4 + text.len()
}

#[test]
fn per_route_series_follow_upgrades_tunnels_and_bytes_through_a_reload() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let refuser = RawUpstream::start(|mut stream| {
        if ws::read_head(&mut stream).is_ok() {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let dir = TempDir::new();
    let path = dir.write("wsproxy.toml", &routes_file(echo.addr, refuser.addr, false));
    let proxy = Proxy::start(&["--config", path.to_str().unwrap(), "--log-level", "debug"]);
    let addr = proxy.addr();
    let series =
        |family: &str, route: &str, more: &str| format!("{family}{{route=\"{route}\"{more}}}");
    let active = |route: &str| series("wsproxy_tunnels_active", route, "");
    let upgrades = |route: &str, code: &str| {
        series(
            "wsproxy_route_upgrades_total",
            route,
            &format!(",code=\"{code}\""),
        )
    };
    let bytes = |route: &str, direction: &str| {
        series(
            "wsproxy_route_bytes_total",
            route,
            &format!(",direction=\"{direction}\""),
        )
    };

    // Every route shows, at 0, before any request: the unnamed one by its
    // location.
    let text = proxy.scrape();
    for route in ["chat", "feed", "/gone"] {
        assert_eq!(sample(&text, &active(route)), Some(0.0), "{route}\n{text}");
        assert_eq!(sample(&text, &upgrades(route, "101")), Some(0.0), "{route}");
    }

    let good = [("Origin", "http://good.test")];
    let mut chat: Vec<ws::Client> = (0..2)
        .map(|_| ws::Client::connect_with(addr, "/chat", &good).unwrap())
        .collect();
    let mut feed = ws::Client::connect(addr, "/feed").unwrap();
    let refused = ws::Client::connect_with(addr, "/chat", &[("Origin", "http://evil.test")]);
    assert!(refused.is_err_and(|e| e.to_string().contains(" 403 ")));
    let gone = ws::Client::connect(addr, "/gone");
    assert!(gone.is_err_and(|e| e.to_string().contains(" 404 ")));
    // A plain request on a route is no upgrade: not counted per route.
    let mut plain = send(addr, b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&read_response(&mut plain).0), 404);

    let messages = ["hello", "a longer message, still one frame"];
    for (i, text) in messages.iter().enumerate() {
        chat[i].send_text(text).unwrap();
        assert_eq!(chat[i].recv().unwrap().text(), Some(*text));
    }
    feed.send_text("news").unwrap();
    assert_eq!(feed.recv().unwrap().text(), Some("news"));

    let text = proxy.scrape();
    let at = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(at(&active("chat")), 2.0);
    assert_eq!(at(&active("feed")), 1.0);
    assert_eq!(at(&active("/gone")), 0.0);
    assert_eq!(at(&upgrades("chat", "101")), 2.0);
    assert_eq!(at(&upgrades("chat", "403")), 1.0, "the origin refused");
    assert_eq!(at(&upgrades("feed", "101")), 1.0);
    assert_eq!(at(&upgrades("/gone", "101")), 0.0);
    assert_eq!(
        at(&upgrades("/gone", "404")),
        1.0,
        "the upstream refused, once"
    );
    assert_eq!(sample(&text, &upgrades("feed", "403")), None);

    // Bytes: the heads as the upstream got them and the frames up; the
    // 101s as the clients got them and the echoes down (a server's frame
    // is unmasked: 4 bytes less). The last echo's count may trail its
    // arrival by a moment.
    let chat_up = head_bytes(&echo, "/chat") + messages.iter().map(|m| masked(m)).sum::<usize>();
    let chat_down = chat
        .iter()
        .map(|c| c.response_head().len() + 4)
        .sum::<usize>()
        + messages.iter().map(|m| masked(m) - 4).sum::<usize>();
    let feed_up = head_bytes(&echo, "/feed") + masked("news");
    let feed_down = feed.response_head().len() + 4 + masked("news") - 4;
    for (series, want) in [
        (bytes("chat", "client_to_upstream"), chat_up),
        (bytes("chat", "upstream_to_client"), chat_down),
        (bytes("feed", "client_to_upstream"), feed_up),
        (bytes("feed", "upstream_to_client"), feed_down),
    ] {
        assert!(
            eventually(Duration::from_secs(5), || proxy.metric(&series)
                == want as f64),
            "{series} should be {want}\n{}",
            proxy.scrape()
        );
    }

    // A reload renames "chat" to "talk" and removes "feed": the tunnels
    // opened before stay counted under the names they opened with.
    dir.write("wsproxy.toml", &routes_file(echo.addr, refuser.addr, true));
    proxy.signal(libc::SIGHUP);
    let switched = || {
        proxy
            .log()
            .iter()
            .filter(|l| l.contains("configuration reloaded;"))
            .count()
    };
    assert!(
        eventually(IO_TIMEOUT, || switched() == 2),
        "{:?}",
        proxy.log()
    );
    let mut talk = ws::Client::connect_with(addr, "/chat", &good).unwrap();
    let text = proxy.scrape();
    let at = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(at(&active("chat")), 2.0);
    assert_eq!(at(&active("feed")), 1.0);
    assert_eq!(at(&active("talk")), 1.0);
    assert_eq!(at(&upgrades("talk", "101")), 1.0);
    assert_eq!(at(&upgrades("chat", "101")), 2.0, "counters stay");

    for mut client in chat.into_iter().chain([feed]) {
        client.close(1000).unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || {
            let text = proxy.scrape();
            sample(&text, &active("chat")) == Some(0.0)
                && sample(&text, &active("feed")) == Some(0.0)
        }),
        "{}",
        proxy.scrape()
    );
    let text = proxy.scrape();
    let at = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(at(&active("talk")), 1.0, "the new tunnel is still open");
    let lived = "wsproxy_route_tunnel_duration_seconds";
    assert_eq!(at(&format!("{lived}_count{{route=\"chat\"}}")), 2.0);
    assert_eq!(
        at(&format!("{lived}_bucket{{route=\"chat\",le=\"60\"}}")),
        2.0
    );
    assert_eq!(at(&format!("{lived}_count{{route=\"feed\"}}")), 1.0);
    assert_eq!(at(&format!("{lived}_count{{route=\"talk\"}}")), 0.0);
    talk.close(1000).unwrap();
    drop(talk);
    assert!(
        eventually(Duration::from_secs(5), || proxy.metric(&active("talk"))
            == 0.0),
        "{}",
        proxy.scrape()
    );
}
