//! Connection limits: 503 past the process limit, 429 past one address's,
//! accepting paused (not spinning) past the refusal margin or when out of
//! file descriptors, recovery when load drops, and the open-file limit
//! raised at startup.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use ws::EchoServer;

/// Sends an upgrade on `stream` and reads the answer's head.
fn upgrade_on(mut stream: TcpStream, addr: SocketAddr) -> (String, TcpStream) {
    use std::io::Write;
    stream
        .write_all(upgrade_head(addr, &ws::random_key(), "").as_bytes())
        .unwrap();
    let (head, _) = ws::read_head(&mut stream).unwrap();
    (String::from_utf8(head).unwrap(), stream)
}

/// CPU ticks the proxy uses over `span` while nothing should happen.
fn idle_ticks(proxy: &Proxy, span: Duration) -> u64 {
    let before = proxy.cpu_ticks();
    std::thread::sleep(span);
    proxy.cpu_ticks() - before
}

#[test]
fn past_the_connection_limit_clients_get_503_until_load_drops() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &["--max-connections", "3"]);
    let mut tunnels: Vec<ws::Client> = (0..3)
        .map(|_| ws::Client::connect(proxy.addr(), "/").unwrap())
        .collect();
    let (head, _) = upgrade_on(connect(proxy.addr()), proxy.addr());
    assert_eq!(status_of(&head), 503, "{head}");
    assert_eq!(field(&head, "retry-after"), Some("5"));
    assert_eq!(
        echo.connections(),
        3,
        "a refused client never reaches upstream"
    );

    tunnels.pop();
    assert!(
        eventually(IO_TIMEOUT, || ws::Client::connect(proxy.addr(), "/")
            .is_ok()),
        "a slot freed, a new client got through"
    );
}

#[test]
fn one_address_past_its_limit_gets_429_others_do_not() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &["--max-connections-per-ip", "2"]);
    let addr = proxy.addr();
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let (head, stream) = upgrade_on(connect_from("127.0.0.1", addr), addr);
            assert_eq!(status_of(&head), 101, "{head}");
            stream
        })
        .collect();
    let (head, _) = upgrade_on(connect_from("127.0.0.1", addr), addr);
    assert_eq!(status_of(&head), 429, "{head}");
    let (head, _other) = upgrade_on(connect_from("127.0.0.2", addr), addr);
    assert_eq!(status_of(&head), 101, "another address is not limited");
    drop(held);
    assert!(eventually(IO_TIMEOUT, || {
        let (head, _) = upgrade_on(connect_from("127.0.0.1", addr), addr);
        status_of(&head) == 101
    }));
}

#[test]
fn past_the_refusal_margin_accepting_pauses_without_spinning() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &["--max-connections", "1"]);
    let addr = proxy.addr();
    let tunnel = ws::Client::connect(addr, "/").unwrap();
    // 64 refusals per worker are answered (and linger while the clients
    // keep their connections open); the next client waits in the queue.
    let refused: Vec<TcpStream> = (0..wsproxy_fast::limits::REFUSE_MARGIN)
        .map(|_| {
            let (head, stream) = upgrade_on(connect(addr), addr);
            assert_eq!(status_of(&head), 503);
            stream
        })
        .collect();
    let mut waiting = send(addr, upgrade_head(addr, &ws::random_key(), "").as_bytes());
    assert!(proxy.wait_for_log("connection limits reached"));
    let ticks = idle_ticks(&proxy, Duration::from_secs(1));
    assert!(ticks <= 10, "paused, yet used {ticks} ticks in a second");

    drop(refused);
    drop(tunnel);
    let (head, _) = ws::read_head(&mut waiting).unwrap();
    assert_eq!(
        status_of(&String::from_utf8(head).unwrap()),
        101,
        "the queued client is served once load drops"
    );
}

#[test]
fn out_of_descriptors_accepting_pauses_without_spinning() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let upstream = echo.addr.to_string();
    // 48 descriptors, and a connection limit that will not act first.
    let proxy = Proxy::start_in_shell(
        "ulimit -n 48",
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream,
            "--workers",
            "1",
            "--max-connections",
            "1000",
        ],
    );
    let addr = proxy.addr();
    let mut clients = Vec::new();
    for _ in 0..40 {
        clients.push(send(
            addr,
            upgrade_head(addr, &ws::random_key(), "").as_bytes(),
        ));
    }
    assert!(
        proxy.wait_for_log("pausing accepts"),
        "EMFILE was reached: {:?}",
        proxy.log()
    );
    let ticks = idle_ticks(&proxy, Duration::from_secs(1));
    assert!(
        ticks <= 10,
        "out of descriptors, yet used {ticks} ticks in a second"
    );
    drop(clients);
    assert!(
        eventually(IO_TIMEOUT, || ws::Client::connect(addr, "/").is_ok()),
        "serves again once descriptors free up"
    );
}

#[test]
fn the_open_file_limit_is_raised_at_startup() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let upstream = echo.addr.to_string();
    let proxy = Proxy::start_in_shell(
        "ulimit -Sn 1024",
        &["--listen", "127.0.0.1:0", "--upstream", &upstream],
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", proxy.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "soft raised to hard: {line}");
    assert!(
        proxy.wait_for_log("(raised from 1024)"),
        "{:?}",
        proxy.log()
    );
}
