//! The floor relays (`floor-epoll`, `floor-uring`) run as binaries on
//! 127.0.0.1:0 in front of the blocking test echo server: an upgrade, small
//! and 200 KiB echoes (several reads and partial writes), the closing
//! handshake, many connections one after another, and the relay still
//! serving afterwards. Every socket has a read timeout and every relay is
//! killed on drop, so a hang fails instead of blocking CI.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wsbench::ws::{Client, EchoServer, Opcode};

/// Longest any one read may wait before the test fails.
const WATCHDOG: Duration = Duration::from_secs(20);

/// A relay process, killed when dropped.
struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `binary` in front of `upstream` and returns it with the address
/// it printed ("listening on ADDR").
fn start(binary: &str, upstream: SocketAddr) -> (Relay, SocketAddr) {
    let mut child = Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--workers", "2", "--upstream"])
        .arg(upstream.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the relay starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let relay = Relay(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the relay prints its address");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("an address");
    (relay, addr)
}

fn connect(addr: SocketAddr) -> Client {
    let mut client = Client::connect(addr, "/floor").expect("the upgrade through the relay");
    client.stream().set_read_timeout(Some(WATCHDOG)).unwrap();
    client
}

fn relays_both_ways(binary: &str) {
    let echo = EchoServer::start();
    let (_relay, addr) = start(binary, echo.addr);

    let mut client = connect(addr);
    assert!(client.response_head().starts_with("HTTP/1.1 101"));
    client.send(Opcode::Binary, b"hello").unwrap();
    assert_eq!(client.recv().unwrap().payload, b"hello");
    let big: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    client.send(Opcode::Binary, &big).unwrap();
    assert_eq!(client.recv().unwrap().payload, big);
    assert_eq!(client.close(1000).unwrap(), Some(1000));
    drop(client);

    // Slots, buffers and descriptors come back: many cycles in a row.
    for i in 0..200u32 {
        let mut client = connect(addr);
        client.send(Opcode::Text, i.to_string().as_bytes()).unwrap();
        assert_eq!(client.recv().unwrap().payload, i.to_string().as_bytes());
        client.close(1000).unwrap();
    }
}

#[test]
fn floor_epoll_relays_both_ways() {
    relays_both_ways(env!("CARGO_BIN_EXE_floor-epoll"));
}

#[test]
fn floor_uring_relays_both_ways() {
    // io_uring may be disabled (kernel.io_uring_disabled) or filtered by a
    // sandbox: then the relay says so and exits, and there is nothing to test.
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|v| v.trim() != "0")
        .unwrap_or(false);
    if disabled {
        eprintln!("skipped: kernel.io_uring_disabled is set");
        return;
    }
    relays_both_ways(env!("CARGO_BIN_EXE_floor-uring"));
}
