//! The configuration file end to end: each example under `examples/`,
//! with its addresses swapped for test ones, driven over real sockets;
//! virtual hosts, balancing, passive health, origins, static files; and
//! `--check` refusing broken files with their locations.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ws::EchoServer;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// An example file's text with `swaps` applied (each must apply), one
/// worker, and relative roots and certificate paths made absolute.
fn example(name: &str, swaps: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(examples().join(name)).unwrap();
    for (from, to) in swaps {
        assert!(text.contains(from), "{name} has no {from:?}");
        text = text.replace(from, to);
    }
    let paths = regex::Regex::new(r#"\b(root|cert|key) = ""#).unwrap();
    let dir = examples().display().to_string();
    let text = paths.replace_all(&text, |c: &regex::Captures<'_>| {
        format!("{} = \"{dir}/", &c[1])
    });
    format!("workers = 1\n{text}")
}

/// Starts the proxy on a config file with `text`.
fn start(dir: &TempDir, text: &str) -> Proxy {
    let path = dir.write("wsproxy.toml", text);
    Proxy::start(&["--config", path.to_str().unwrap()])
}

fn get(addr: SocketAddr, target: &str, host: &str) -> (String, Vec<u8>) {
    request(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    )
}

fn request(addr: SocketAddr, text: &str) -> (String, Vec<u8>) {
    let mut client = send(addr, text.as_bytes());
    read_response(&mut client)
}

fn upgrade_head_for(target: &str, host: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n",
        ws::random_key()
    )
}

fn upgrade_to(addr: SocketAddr, target: &str, host: &str, extra: &str) -> (String, Vec<u8>) {
    let mut client = send(addr, upgrade_head_for(target, host, extra).as_bytes());
    let (head, rest) = ws::read_head(&mut client).unwrap();
    (String::from_utf8(head).unwrap(), rest)
}

/// [`upgrade_to`] over TLS, verifying `host`'s demo certificate; the
/// connection comes back for the tunnel.
fn upgrade_tls(
    addr: SocketAddr,
    target: &str,
    host: &str,
    extra: &str,
) -> (String, Vec<u8>, tls::TlsClient) {
    let mut client = tls::tls_connect(addr, tls::demo_client(), host).unwrap();
    client
        .write_all(upgrade_head_for(target, host, extra).as_bytes())
        .unwrap();
    let (head, rest) = ws::read_head(&mut client).unwrap();
    (String::from_utf8(head).unwrap(), rest, client)
}

fn get_tls(addr: SocketAddr, target: &str, host: &str) -> (String, Vec<u8>) {
    tls::tls_request(
        addr,
        host,
        &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    )
}

#[test]
fn redirect_https_keeps_path_and_query() {
    let _w = watchdog();
    let dir = TempDir::new();
    let text = example(
        "redirect-https.toml",
        &[("0.0.0.0:80", "127.0.0.1:0".into())],
    );
    let proxy = start(&dir, &text);
    let (head, body) = get(proxy.addr(), "/a/b?x=1&y=%20", "Example.COM:80");
    assert_eq!(status_of(&head), 308, "{head}");
    assert_eq!(
        field(&head, "location"),
        Some("https://example.com/a/b?x=1&y=%20")
    );
    assert_eq!(body, b"308 Permanent Redirect\n");
    // An upgrade is redirected too: browsers follow it to wss://.
    let (head, _) = upgrade_to(proxy.addr(), "/ws", "example.com", "");
    assert_eq!(status_of(&head), 308);
    let (head, _) = request(proxy.addr(), "GET / HTTP/1.0\r\n\r\n");
    assert_eq!(status_of(&head), 400, "no Host to redirect to");
}

#[test]
fn hsts_on_a_101_and_a_404_and_foreign_origins_refused() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let dir = TempDir::new();
    let text = example(
        "example-com.toml",
        &[
            ("0.0.0.0:80", "127.0.0.1:0".into()),
            ("0.0.0.0:443", "127.0.0.2:0".into()),
            (
                "[\"127.0.0.1:9001\", \"127.0.0.1:9002\"]",
                format!("[\"{}\"]", echo.addr),
            ),
        ],
    );
    let proxy = start(&dir, &text);
    let https = proxy.addrs[1];
    let hsts = Some("max-age=31536000");

    let (head, _, _) = upgrade_tls(
        https,
        "/ws",
        "example.com",
        "Origin: https://example.com\r\n",
    );
    assert_eq!(status_of(&head), 101, "{head}");
    assert_eq!(field(&head, "strict-transport-security"), hsts, "{head}");
    let sent = echo.request_heads();
    assert!(sent[0].contains("\r\nHost: example.com\r\n"), "{sent:?}");

    let (head, body) = get_tls(https, "/nothing-here", "example.com");
    assert_eq!(status_of(&head), 404, "{head}");
    assert_eq!(field(&head, "strict-transport-security"), hsts, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("no route"));

    let (head, body, _) = upgrade_tls(https, "/ws", "example.com", "Origin: https://evil.test\r\n");
    assert_eq!(status_of(&head), 403, "{head}");
    assert_eq!(field(&head, "strict-transport-security"), hsts);
    let _ = body;
    assert_eq!(
        echo.connections(),
        1,
        "a refused origin never reaches upstream"
    );

    // The plain listener redirects.
    let (head, _) = get(proxy.addrs[0], "/ws?room=1", "example.com");
    assert_eq!(
        field(&head, "location"),
        Some("https://example.com/ws?room=1")
    );
}

/// An upstream that answers every request with the target it received.
fn target_echo() -> RawUpstream {
    RawUpstream::start(|mut stream| {
        let Ok((head, _)) = ws::read_head(&mut stream) else {
            return;
        };
        let head = String::from_utf8(head).unwrap();
        let target = head.split(' ').nth(1).unwrap_or("").to_string();
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Host: {}\r\n\r\n{target}",
            target.len(),
            field(&head, "host").unwrap_or("")
        );
    })
}

#[test]
fn my_api_serves_the_app_and_rewrites_the_socket_path() {
    let _w = watchdog();
    let up = target_echo();
    let echo = EchoServer::start();
    let dir = TempDir::new();
    let text = example(
        "my-api.toml",
        &[
            ("0.0.0.0:9000", "127.0.0.1:0".into()),
            ("[::]:9000", "[::1]:0".into()),
            ("127.0.0.1:32000", up.addr.to_string()),
        ],
    );
    let proxy = start(&dir, &text);
    let host = "www.my-api.com";
    let index = std::fs::read(examples().join("my-api/www/index.html")).unwrap();
    let app = std::fs::read(examples().join("my-api/www/assets/app.js")).unwrap();

    for addr in [proxy.addrs[0], proxy.addrs[1]] {
        assert!(addr.is_ipv6() == (addr == proxy.addrs[1]));
        let (head, body) = get_tls(addr, "/api/socket/test?x=1", host);
        assert_eq!(status_of(&head), 200, "{head}");
        assert_eq!(
            body, b"/socket/test?x=1",
            "the upstream saw the rewritten path"
        );
        assert_eq!(field(&head, "x-host"), Some(host));

        let (head, body) = get_tls(addr, "/some/client/route", host);
        assert_eq!(status_of(&head), 200, "{head}");
        assert_eq!(
            field(&head, "content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(body, index, "unknown path falls back to index.html");

        let (head, body) = get_tls(addr, "/assets/app.js", host);
        assert_eq!(
            field(&head, "content-type"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(body, app, "a real file is served as is");
    }
    let (head, body) = tls::tls_request(
        proxy.addr(),
        host,
        &format!("HEAD /assets/app.js HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    );
    assert_eq!(status_of(&head), 200);
    assert_eq!(
        field(&head, "content-length"),
        Some(&*app.len().to_string())
    );
    assert!(body.is_empty(), "HEAD has no body");
    let (head, _) = tls::tls_request(
        proxy.addr(),
        host,
        &format!("POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"),
    );
    assert_eq!(status_of(&head), 405);

    // The WebSocket itself goes through the rewrite too.
    drop(proxy);
    let text = example(
        "my-api.toml",
        &[
            ("0.0.0.0:9000", "127.0.0.1:0".into()),
            ("[::]:9000", "[::1]:0".into()),
            ("127.0.0.1:32000", echo.addr.to_string()),
        ],
    );
    let proxy = start(&dir, &text);
    let (head, rest, mut client) = upgrade_tls(proxy.addr(), "/api/socket/chat", host, "");
    assert_eq!(status_of(&head), 101, "{head}");
    assert!(rest.is_empty());
    let mut frame = Vec::new();
    ws::encode_frame(
        &mut frame,
        true,
        ws::Opcode::Text,
        b"hello",
        Some(ws::random_mask()),
    );
    client.write_all(&frame).unwrap();
    assert_eq!(ws::read_frame(&mut client).unwrap().text(), Some("hello"));
    assert!(echo.request_heads()[0].starts_with("GET /socket/chat HTTP/1.1"));
}

#[test]
fn static_files_never_leave_the_root() {
    let _w = watchdog();
    let dir = TempDir::new();
    let root = dir.0.join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "<p>index</p>").unwrap();
    let big = pattern(8 << 20, 5);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(dir.0.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.0.join("secret.txt"), root.join("leak.txt")).unwrap();
    let text = format!(
        "workers = 1\n[[listener]]\naddress = \"127.0.0.1:0\"\n[[server]]\n[[server.route]]\n\
         location = \"/\"\nroot = \"{}\"\ntry_files = [\"$uri\", \"/index.html\"]\n",
        root.display()
    );
    let proxy = start(&dir, &text);
    for (target, want) in [
        ("/../secret.txt", 400),
        ("/%2e%2e/secret.txt", 400),
        ("/a/%2E%2e%2fsecret.txt", 400),
        ("/%zz", 400),
        ("/leak.txt", 403),
        ("/index.html", 200),
    ] {
        let (head, body) = get(proxy.addr(), target, "x");
        assert_eq!(status_of(&head), want, "{target}: {head}");
        assert!(
            !String::from_utf8_lossy(&body).contains("secret"),
            "{target}"
        );
    }
    // Larger than the socket buffers, so sendfile waits for the client.
    let (head, body) = get(proxy.addr(), "/big.bin", "x");
    assert_eq!(field(&head, "content-length"), Some("8388608"));
    assert!(body == big, "8 MiB served intact ({} bytes)", body.len());
}

#[test]
fn two_server_names_on_one_port_are_routed_apart() {
    let _w = watchdog();
    let a = target_echo();
    let b = target_echo();
    let dir = TempDir::new();
    let text = format!(
        "workers = 1\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[server]]\nnames = [\"a.test\"]\n[[server.route]]\nlocation = \"/\"\nupstream = \"{}\"\n\
         [[server]]\nnames = [\"b.test\", \"*.b.test\"]\n[[server.route]]\nlocation = \"/\"\nupstream = \"{}\"\n",
        a.addr, b.addr
    );
    let proxy = start(&dir, &text);
    for (host, want_a) in [
        ("a.test", true),
        ("A.TEST:8080", true),
        ("b.test", false),
        ("deep.x.b.test", false),
        ("unknown.test", true),
    ] {
        let before = (a.accepted(), b.accepted());
        let (head, _) = get(proxy.addr(), "/", host);
        assert_eq!(status_of(&head), 200, "{host}");
        let after = (a.accepted(), b.accepted());
        let to_a = after.0 > before.0;
        assert_eq!(to_a, want_a, "{host}: first server is the default");
        assert_eq!(to_a, after.1 == before.1, "{host}: exactly one server");
    }
}

/// The servers' request heads, as (server index, sid) pairs.
fn sids(servers: &[EchoServer]) -> HashMap<String, HashSet<usize>> {
    let mut seen: HashMap<String, HashSet<usize>> = HashMap::new();
    for (i, server) in servers.iter().enumerate() {
        for head in server.request_heads() {
            let target = head.split(' ').nth(1).unwrap();
            let sid = target.rsplit("sid=").next().unwrap().to_string();
            seen.entry(sid).or_default().insert(i);
        }
    }
    seen
}

fn hash_config(servers: &[&EchoServer]) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
    example(
        "socketio-sticky.toml",
        &[
            ("0.0.0.0:8080", "127.0.0.1:0".into()),
            (
                "[\"127.0.0.1:3001\", \"127.0.0.1:3002\", \"127.0.0.1:3003\"]",
                format!("[{}]", list.join(", ")),
            ),
        ],
    )
}

#[test]
fn consistent_hash_keeps_keys_and_moves_few() {
    let _w = watchdog_for(Duration::from_secs(120));
    let keys: Vec<String> = (0..200).map(|i| format!("sid{i:04}x")).collect();
    let connect_all = |proxy: &Proxy, rounds: usize| {
        for round in 0..rounds {
            for key in &keys {
                let path = format!("/socket.io/?EIO=4&transport=websocket&r={round}&sid={key}");
                let client = ws::Client::connect(proxy.addr(), &path).expect("upgrade");
                drop(client);
            }
        }
    };
    let servers = [
        EchoServer::start(),
        EchoServer::start(),
        EchoServer::start(),
    ];
    let dir = TempDir::new();
    let proxy = start(&dir, &hash_config(&servers.iter().collect::<Vec<_>>()));
    connect_all(&proxy, 5);
    let first = sids(&servers);
    assert_eq!(first.len(), keys.len());
    for (key, on) in &first {
        assert_eq!(
            on.len(),
            1,
            "{key} reached servers {on:?} across 5 connections"
        );
    }
    let load: Vec<usize> = (0..3)
        .map(|i| first.values().filter(|on| on.contains(&i)).count())
        .collect();
    assert!(load.iter().all(|&n| n > 30), "uneven spread {load:?}");
    drop(proxy);

    // Without server 2: its keys move, the others stay.
    let remaining = [EchoServer::start(), EchoServer::start()];
    // Same server names as before, so the ring points match: reuse the
    // addresses of servers 0 and 1 by proxying to them.
    let proxy = start(&dir, &hash_config(&[&servers[0], &servers[1]]));
    let before: Vec<usize> = servers.iter().map(|s| s.request_heads().len()).collect();
    connect_all(&proxy, 1);
    let mut moved = 0;
    for (i, server) in servers.iter().enumerate().take(2) {
        for head in &server.request_heads()[before[i]..] {
            let target = head.split(' ').nth(1).unwrap();
            let key = target.rsplit("sid=").next().unwrap();
            let was = first[key].iter().next().copied().unwrap();
            if was != i {
                assert_eq!(was, 2, "{key} moved from a server that stayed");
                moved += 1;
            }
        }
    }
    eprintln!(
        "hash: keys per server {load:?}; {moved} of {} moved",
        keys.len()
    );
    assert_eq!(moved, load[2], "exactly the removed server's keys moved");
    assert!(
        (keys.len() / 6..=keys.len() / 2).contains(&moved),
        "about a third of the keys move: {moved}"
    );
    drop(remaining);
}

#[test]
fn least_conn_spreads_long_lived_tunnels() {
    let _w = watchdog();
    let servers = [
        EchoServer::start(),
        EchoServer::start(),
        EchoServer::start(),
    ];
    let dir = TempDir::new();
    let list: Vec<String> = servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
    let text = format!(
        "workers = 2\n[[listener]]\naddress = \"127.0.0.1:0\"\n[upstream.app]\nservers = [{}]\n\
         balance = \"least_conn\"\n[[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"app\"\n",
        list.join(", ")
    );
    let proxy = start(&dir, &text);
    let mut tunnels: Vec<ws::Client> = (0..30)
        .map(|_| ws::Client::connect(proxy.addr(), "/").unwrap())
        .collect();
    let counts: Vec<usize> = servers.iter().map(EchoServer::connections).collect();
    assert_eq!(counts, [10, 10, 10]);
    // Once every tunnel is closed the counts are even again.
    let open_fds = proxy.fd_count();
    tunnels.clear();
    assert!(
        eventually(IO_TIMEOUT, || proxy.fd_count() <= open_fds - 60),
        "the proxy closed the 30 pairs"
    );
    let _more: Vec<ws::Client> = (0..6)
        .map(|_| ws::Client::connect(proxy.addr(), "/").unwrap())
        .collect();
    let counts: Vec<usize> = servers.iter().map(EchoServer::connections).collect();
    assert_eq!(counts, [12, 12, 12]);
}

#[test]
fn a_down_server_is_skipped_until_fail_timeout() {
    let _w = watchdog();
    // A socket bound but not listening refuses connections; listening on
    // it later brings the "server" back on the same address.
    let refusing =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    refusing
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let down = refusing.local_addr().unwrap().as_socket().unwrap();
    let live = target_echo();
    let dir = TempDir::new();
    let text = format!(
        "workers = 1\n[[listener]]\naddress = \"127.0.0.1:0\"\n[upstream.app]\n\
         servers = [\"{down}\", \"{}\"]\nmax_fails = 1\nfail_timeout = \"1s\"\n\
         [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"app\"\n",
        live.addr
    );
    let proxy = start(&dir, &text);
    let marked = Instant::now();
    for _ in 0..10 {
        let (head, _) = get(proxy.addr(), "/", "x");
        assert_eq!(status_of(&head), 200);
    }
    let failures = |p: &Proxy| {
        p.log()
            .iter()
            .filter(|l| l.contains(&format!("upstream {down}: connect failed")))
            .count()
    };
    assert_eq!(
        failures(&proxy),
        1,
        "tried once, then skipped: {:?}",
        proxy.log()
    );
    assert_eq!(live.accepted(), 10);

    refusing.listen(16).unwrap();
    let back = TcpListener::from(refusing);
    back.set_nonblocking(true).unwrap();
    // Within fail_timeout the server is still skipped; after it, it
    // takes connections again.
    let mut clients = Vec::new();
    let came_back = eventually(Duration::from_secs(5), || {
        clients.push(send(proxy.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        back.accept().is_ok()
    });
    assert!(came_back, "the server never got a connection again");
    assert!(
        marked.elapsed() >= Duration::from_secs(1),
        "reached again before fail_timeout"
    );
}

#[test]
fn every_example_checks_clean() {
    let _w = watchdog();
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_wsproxy-fast"))
            .args(["--check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
    }
}

#[test]
fn check_lists_every_mistake_of_a_file_in_one_run() {
    let _w = watchdog();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config/four-mistakes.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_wsproxy-fast"))
        .args(["--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = path.display();
    let want = [
        format!("{shown}:8:11: unknown balance \"roundrobin\": use \"round_robin\""),
        format!("{shown}:10:2: unknown key `upstrem` (did you mean `upstream`?)"),
        format!("{shown}:15:12: \"ws\": a location path starts with '/'"),
        format!("{shown}:16:12: no [upstream.ap] group: define it, or give HOST:PORT"),
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), want.len(), "{stderr}");
    for (line, want) in lines.iter().zip(&want) {
        assert!(
            line.starts_with(&format!("wsproxy-fast: error: {want}")),
            "{line}\nwant {want}"
        );
    }
}

#[test]
fn a_broken_file_is_refused_with_locations_by_check_and_start() {
    let _w = watchdog();
    let dir = TempDir::new();
    let path = dir.write(
        "broken.toml",
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[server]]\n[[server.route]]\n\
         location = \"/ws\"\nupstream = \"ap\"\n\n[[server.route]]\nlocation = \"~ (\"\n\
         upstream = \"127.0.0.1:1\"\n",
    );
    let shown = path.display().to_string();
    for args in [vec!["--check", "--config"], vec!["--config"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsproxy-fast"))
            .args(&args)
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        assert!(
            lines[0].starts_with(&format!(
                "wsproxy-fast: error: {shown}:7:12: no [upstream.ap] group"
            )),
            "{stderr}"
        );
        assert!(
            lines[1].starts_with(&format!("wsproxy-fast: error: {shown}:10:12: ")),
            "{stderr}"
        );
        assert!(
            !stderr.contains("listening on"),
            "nothing started: {stderr}"
        );
    }
    // Quick mode keeps working without a file, --check included.
    let out = Command::new(env!("CARGO_BIN_EXE_wsproxy-fast"))
        .args([
            "--check",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_wsproxy-fast"))
        .args(["--config", "x.toml", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap refuses mixing a file and flags"
    );
}
