//! The process: startup errors, signals, workers, IPv6, slow clients,
//! and no descriptor left behind.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ws::EchoServer;

/// Runs the binary to completion; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wsproxy-fast"))
        .args(args)
        .output()
        .expect("run wsproxy-fast");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn startup_errors_are_one_actionable_line() {
    let _w = watchdog();
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--listen", &taken, "--upstream", "127.0.0.1:9"],
            "address already in use",
        ),
        (
            &["--listen", "300.1.1.1:80", "--upstream", "127.0.0.1:9"],
            "is not an address",
        ),
        (&["--listen", "127.0.0.1:0"], "no --upstream given"),
        (&["--upstream", "127.0.0.1:9"], "no --listen address given"),
        (
            &["--listen", "127.0.0.1:0", "--upstream", "nowhere"],
            "HOST:PORT",
        ),
    ];
    for (args, want) in cases {
        let (code, _, stderr) = run(args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("wsproxy-fast: error: "), "{stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn help_teaches_the_flags_and_version_prints() {
    let (code, help, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--listen",
        "--upstream",
        "--workers",
        "--idle-timeout",
        "--handshake-timeout",
        "Examples:",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let (code, version, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        version.trim(),
        format!("wsproxy-fast {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn sigterm_and_sigint_stop_it_with_status_0() {
    let _w = watchdog();
    let echo = EchoServer::start();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // Quiet logging must not hide the startup lines the harness reads.
        let mut proxy = proxy_to(&[echo.addr], &["--workers", "2", "--log-level", "error"]);
        // With a live tunnel open: it is drained, the client gets a Close
        // (1001, Going Away) and closes, and the proxy exits.
        let mut client = ws::Client::connect(proxy.addr(), "/").unwrap();
        client.send_text("hi").unwrap();
        client.recv().unwrap();
        proxy.signal(signal);
        let close = client.recv().expect("a Close frame");
        assert_eq!(close.close_code(), Some(1001));
        drop(client);
        let status = proxy.wait_exit(IO_TIMEOUT).expect("exits after the signal");
        assert_eq!(status.code(), Some(0), "{:?}", proxy.log());
    }
}

#[test]
fn slow_loris_is_cut_off_with_408() {
    let _w = watchdog();
    let upstream = RawUpstream::start(|_| {});
    let proxy = proxy_to(&[upstream.addr], &["--handshake-timeout", "1s"]);
    let start = Instant::now();
    let mut client = send(proxy.addr(), b"GET / HTTP/1.1\r\nHost: a\r\n");
    client.write_all(b"X-Slow: 1\r\n").unwrap();
    let (head, body) = read_response(&mut client);
    assert_eq!(status_of(&head), 408);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("handshake timeout"));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(upstream.accepted(), 0);
}

#[test]
fn several_workers_serve_at_once() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &["--workers", "4", "--log-level", "debug"]);
    // Forty connections open together; SO_REUSEPORT spreads them by source
    // port, so every worker gets some with near certainty (4 × (3/4)^40).
    let mut clients: Vec<ws::Client> = (0..40)
        .map(|_| ws::Client::connect(proxy.addr(), "/").unwrap())
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.send_text(&format!("m{i}")).unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(
            client.recv().unwrap().text(),
            Some(format!("m{i}").as_str())
        );
    }
    let log = proxy.log();
    for w in 0..4 {
        let tag = format!(" w{w}: client ");
        assert!(
            log.iter()
                .any(|l| l.contains(&tag) && l.contains("accepted")),
            "worker {w} accepted nothing"
        );
    }
    let threads = std::fs::read_dir(format!("/proc/{}/task", proxy.pid()))
        .unwrap()
        .count();
    assert!(
        threads >= 5,
        "{threads} threads: expected 4 workers and main"
    );
}

#[test]
fn no_descriptor_leaks_after_a_thousand_cycles() {
    let _w = watchdog_for(Duration::from_secs(120));
    let echo = EchoServer::start();
    let dead: SocketAddr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = proxy_to(&[echo.addr], &["--workers", "2"]);
    let baseline = proxy.fd_count();
    for i in 0..1000 {
        match i % 4 {
            // A full WebSocket exchange, closed cleanly.
            0 => {
                let mut c = ws::Client::connect(proxy.addr(), "/").unwrap();
                c.send_text("x").unwrap();
                c.recv().unwrap();
                c.close(1000).unwrap();
            }
            // A tunnel dropped without a Close frame.
            1 => drop(ws::Client::connect(proxy.addr(), "/").unwrap()),
            // Connect and leave mid-head.
            2 => drop(send(proxy.addr(), b"GET / HTTP/1.1\r\nHo")),
            // A refused request.
            _ => {
                let mut c = send(proxy.addr(), b"BAD\r\n\r\n");
                read_response(&mut c);
            }
        }
    }
    // Connections close asynchronously; wait for the count to settle.
    let settled = eventually(IO_TIMEOUT, || proxy.fd_count() <= baseline);
    assert!(
        settled,
        "fds: {} after, {baseline} before",
        proxy.fd_count()
    );
    // And a dead upstream's failed connects leak nothing either.
    let proxy = proxy_to(&[dead], &[]);
    let baseline = proxy.fd_count();
    for _ in 0..100 {
        let mut c = send(
            proxy.addr(),
            upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
        );
        assert_eq!(status_of(&read_response(&mut c).0), 502);
    }
    assert!(eventually(IO_TIMEOUT, || proxy.fd_count() <= baseline));
}

#[test]
fn ipv6_and_ipv4_listeners_side_by_side() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = Proxy::start(&[
        "--listen",
        "[::1]:0",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &echo.addr.to_string(),
        "--workers",
        "1",
    ]);
    assert!(
        proxy.addrs[0].is_ipv6() && proxy.addrs[1].is_ipv4(),
        "{:?}",
        proxy.addrs
    );
    for addr in &proxy.addrs {
        let mut client = ws::Client::connect(*addr, "/v6").unwrap();
        client.send_text("over ip").unwrap();
        assert_eq!(client.recv().unwrap().text(), Some("over ip"));
    }
    let heads = echo.request_heads();
    assert_eq!(field(&heads[0], "x-forwarded-for"), Some("::1"));
    assert_eq!(field(&heads[1], "x-forwarded-for"), Some("127.0.0.1"));
}

/// `--listen localhost:0` (and `address = "localhost:0"` in a file) listens
/// on every address the name resolves to, as nginx's `listen localhost`
/// does, each serving.
#[test]
fn a_listen_host_name_binds_every_address_it_resolves_to() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let mut want: Vec<std::net::IpAddr> = Vec::new();
    for addr in std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 0)).unwrap() {
        if !want.contains(&addr.ip()) {
            want.push(addr.ip());
        }
    }
    let dir = TempDir::new();
    let file = dir.write(
        "localhost.toml",
        &format!(
            "workers = 1\n[[listener]]\naddress = \"localhost:0\"\n\
             [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"{}\"\n",
            echo.addr
        ),
    );
    let upstream = echo.addr.to_string();
    let quick = [
        "--listen",
        "localhost:0",
        "--upstream",
        &upstream,
        "--workers",
        "1",
    ];
    let from_file = ["--config", file.to_str().unwrap()];
    for args in [&quick[..], &from_file[..]] {
        let proxy = Proxy::start(args);
        let ips: Vec<std::net::IpAddr> = proxy.addrs.iter().map(|a| a.ip()).collect();
        assert_eq!(ips, want, "{args:?}: {:?}", proxy.log());
        for addr in &proxy.addrs {
            let mut client = ws::Client::connect(*addr, "/by-name").unwrap();
            client.send_text("named").unwrap();
            assert_eq!(client.recv().unwrap().text(), Some("named"), "{addr}");
        }
    }
    let (code, _, stderr) = run(&[
        "--listen",
        "no-such-host.invalid:80",
        "--upstream",
        "127.0.0.1:9",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(
            "wsproxy-fast: error: --listen \"no-such-host.invalid:80\": cannot resolve no-such-host.invalid: "
        ),
        "{stderr}"
    );
}

/// The startup log line, after its timestamp and level.
fn ready_line(proxy: &Proxy) -> String {
    let log = proxy.log();
    let line = log
        .iter()
        .find(|l| l.contains(" ready: "))
        .unwrap_or_else(|| panic!("no ready line in {log:#?}"));
    line.split_once("main: ").unwrap().1.to_string()
}

#[test]
fn startup_lines_count_in_words_and_leave_out_what_is_not_there() {
    let _w = watchdog();
    let version = env!("CARGO_PKG_VERSION");
    let dir = TempDir::new();
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = up.local_addr().unwrap();

    let plain = dir.write(
        "plain.toml",
        &format!(
            "workers = 1\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
             [upstream.app]\nservers = [\"{up}\"]\n\
             [[server]]\n[[server.route]]\nlocation = \"/ws\"\nupstream = \"app\"\n"
        ),
    );
    let proxy = Proxy::start(&["--config", plain.to_str().unwrap()]);
    assert_eq!(
        ready_line(&proxy),
        format!(
            "wsproxy-fast {version} ready: 1 worker, 1 listener, 1 site, 1 route, \
             1 upstream group: app ({up})"
        )
    );
    drop(proxy);

    let redirect = dir.write(
        "redirect.toml",
        "workers = 2\n[[listener]]\naddress = \"127.0.0.1:0\"\nredirect_https = true\n\
         [[listener]]\naddress = \"127.0.0.2:0\"\nredirect_https = true\n",
    );
    let proxy = Proxy::start(&["--config", redirect.to_str().unwrap()]);
    assert_eq!(
        ready_line(&proxy),
        format!("wsproxy-fast {version} ready: 2 workers, 2 listeners")
    );
    drop(proxy);

    // Quick mode, and the drain's debug line: durations rounded for people
    // ("20s", not "19.999625167s").
    let mut proxy = proxy_to(&[up], &["--log-level", "debug"]);
    assert_eq!(
        ready_line(&proxy),
        format!(
            "wsproxy-fast {version} ready: 1 worker, 1 listener, 1 site, 1 route, \
             1 upstream group: upstream ({up})"
        )
    );
    proxy.signal(libc::SIGTERM);
    assert!(
        proxy.wait_for_log("draining 0 connections over 5s, until "),
        "{:#?}",
        proxy.log()
    );
    let log = proxy.log();
    let draining = log
        .iter()
        .find(|l| l.contains("draining 0 connections"))
        .unwrap();
    let until = draining
        .split("until ")
        .nth(1)
        .unwrap()
        .trim_end_matches(" from now");
    let shape = regex::Regex::new(r"^(20|19\.\d)s$").unwrap();
    assert!(shape.is_match(until), "{draining}");
    assert!(
        log.iter().any(|l| l.contains(
            "SIGTERM received; draining: no new clients, Close frames (1001) to every tunnel \
             over 5s, stopping within 20s"
        )),
        "{log:#?}"
    );
    assert_eq!(proxy.wait_exit(IO_TIMEOUT).and_then(|s| s.code()), Some(0));
}
