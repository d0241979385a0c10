//! Binary upgrades that refuse nobody. A new process takes the listening
//! sockets over from the running one (`--takeover`), or a service manager
//! holds them and gives them to both (socket activation): under a steady
//! stream of new WebSockets, with 1000 tunnels held, no connection attempt
//! is refused or reset, every WebSocket opened after the switch is served
//! by the new process, and the old one sends its tunnels Close 1001 and
//! exits by its drain timeout.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::upstreams::masked_close;
use common::*;
use ws::{EchoServer, Opcode};

/// Tunnels open through the old process when the switch comes.
const HELD: usize = 1000;
/// New WebSockets per second, and for how long.
const RATE: u32 = 300;
const LOAD_FOR: Duration = Duration::from_secs(10);
/// Threads opening them, each at RATE / OPENERS.
const OPENERS: u32 = 3;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// The tests here pass listening sockets to child processes through
/// inherited descriptors: one at a time, so no other test's child
/// inherits one.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// One new WebSocket: when it started, its client port, whether a drain
/// closed it (Close 1001 before the echo: the old process had it), what
/// went wrong.
struct Opened {
    at: Instant,
    port: u16,
    drained: bool,
    error: Option<String>,
}

/// Opens a WebSocket, echoes one message and closes it cleanly.
fn open_one(addr: SocketAddr, n: u64) -> Opened {
    let at = Instant::now();
    let mut port = 0;
    let mut drained = false;
    let error = (|| -> std::io::Result<()> {
        let mut client = ws::Client::connect(addr, "/")?;
        port = client.stream().local_addr()?.port();
        let text = format!("message {n}");
        client.send_text(&text)?;
        let echo = client.recv()?;
        if echo.opcode == Opcode::Close && echo.close_code() == Some(1001) {
            drained = true;
            return Ok(());
        }
        if echo.payload != text.as_bytes() {
            return Err(std::io::Error::other(format!("echo {:?}", echo.payload)));
        }
        client.close(1000)?;
        Ok(())
    })()
    .err()
    .map(|e| e.to_string());
    Opened {
        at,
        port,
        drained,
        error,
    }
}

/// RATE new WebSockets a second for LOAD_FOR, from OPENERS threads.
fn open_steadily(addr: SocketAddr) -> thread::JoinHandle<Vec<Opened>> {
    thread::spawn(move || {
        let start = Instant::now();
        let threads: Vec<_> = (0..OPENERS)
            .map(|t| {
                thread::spawn(move || {
                    let every = Duration::from_secs(1) * OPENERS / RATE;
                    let mut out = Vec::new();
                    let mut n = 0u32;
                    // Staggered, so the threads take turns.
                    let mut next = start + every * t / OPENERS;
                    while next < start + LOAD_FOR {
                        thread::sleep(next.saturating_duration_since(Instant::now()));
                        out.push(open_one(addr, u64::from(t) << 32 | u64::from(n)));
                        n += 1;
                        next += every;
                    }
                    out
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("an opener thread"))
            .collect()
    })
}

/// Holds HELD tunnels through `addr`; their client ports.
fn hold(addr: SocketAddr) -> (Vec<ws::Client>, HashSet<u16>) {
    let mut held = Vec::with_capacity(HELD);
    let mut ports = HashSet::new();
    for _ in 0..HELD {
        let mut client = ws::Client::connect(addr, "/").expect("a held tunnel opens");
        ports.insert(client.stream().local_addr().unwrap().port());
        held.push(client);
    }
    (held, ports)
}

/// Every held tunnel gets Close 1001 from the proxy, and answers it.
fn expect_going_away(held: Vec<ws::Client>) {
    for (i, mut client) in held.into_iter().enumerate() {
        let close = loop {
            let frame = client
                .recv()
                .unwrap_or_else(|e| panic!("held tunnel {i}: no Close: {e}"));
            if frame.opcode == Opcode::Close {
                break frame;
            }
        };
        assert_eq!(close.close_code(), Some(1001), "held tunnel {i}");
        let _ = client.stream().write_all(&masked_close(1001));
    }
}

/// Client ports in an access log.
fn logged_ports(path: &std::path::Path) -> HashSet<u16> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("client=").nth(1)?.split(' ').next())
        .filter_map(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.port())
        .collect()
}

/// The shared scenario: `start_old` runs the first process, `switch`
/// starts the second and returns it with the moment after which the old
/// one accepts nothing.
fn upgrade_under_load(
    start_old: impl FnOnce(&TempDir) -> Proxy,
    switch: impl FnOnce(&TempDir, &Proxy) -> (Proxy, Instant),
) {
    let _one = one_at_a_time();
    let _w = watchdog_for(Duration::from_secs(150));
    let dir = TempDir::new();
    let mut old = start_old(&dir);
    let addr = old.addr();
    let (held, held_ports) = hold(addr);
    let load = open_steadily(addr);
    thread::sleep(LOAD_FOR / 2);
    let (mut new, switched) = switch(&dir, &old);

    expect_going_away(held);
    let status = old
        .wait_exit(DRAIN_TIMEOUT + Duration::from_secs(5))
        .expect("the old process exits");
    assert_eq!(status.code(), Some(0));
    let took = switched.elapsed();
    assert!(
        took <= DRAIN_TIMEOUT + Duration::from_secs(1),
        "the old process took {took:?} to exit, past its drain timeout {DRAIN_TIMEOUT:?}"
    );

    let opened = load.join().expect("the openers");
    let failed: Vec<&String> = opened.iter().filter_map(|o| o.error.as_ref()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} new WebSockets failed, first: {:?}",
        failed.len(),
        opened.len(),
        failed.first()
    );
    let after: Vec<&Opened> = opened.iter().filter(|o| o.at > switched).collect();
    assert!(
        after.iter().all(|o| !o.drained),
        "a WebSocket opened after the switch was drained"
    );
    let before: HashSet<u16> = opened
        .iter()
        .filter(|o| o.at <= switched)
        .map(|o| o.port)
        .chain(held_ports)
        .collect();
    assert!(
        opened.len() as u32 >= RATE * LOAD_FOR.as_secs() as u32 * 8 / 10,
        "only {} WebSockets opened",
        opened.len()
    );
    assert!(
        after.len() as u32 >= RATE,
        "only {} opened after the switch",
        after.len()
    );
    let served = new.metric(r#"wsproxy_handshakes_total{code="101"}"#);
    assert!(
        served >= after.len() as f64,
        "the new process upgraded {served} WebSockets, fewer than the {} opened after the switch",
        after.len()
    );

    // Which process served each one: their access logs, once flushed.
    new.signal(libc::SIGTERM);
    assert!(new.wait_exit(DRAIN_TIMEOUT).is_some());
    let old_ports = logged_ports(&dir.0.join("old.log"));
    let new_ports = logged_ports(&dir.0.join("new.log"));
    for o in &after {
        assert!(
            new_ports.contains(&o.port),
            "the WebSocket from port {} opened after the switch is not in the new process's log",
            o.port
        );
        assert!(
            before.contains(&o.port) || !old_ports.contains(&o.port),
            "the WebSocket from port {} opened after the switch was served by the old process",
            o.port
        );
    }
}

/// The flags both processes run with, `log` naming the access log.
fn flags(upstream: SocketAddr, listen: &str, log: &std::path::Path) -> Vec<String> {
    [
        "--listen",
        listen,
        "--upstream",
        &upstream.to_string(),
        "--workers",
        "2",
        "--admin",
        "127.0.0.1:0",
        "--drain-timeout",
        &format!("{}s", DRAIN_TIMEOUT.as_secs()),
        "--drain-spread",
        "2s",
        "--access-log",
        log.to_str().unwrap(),
    ]
    .map(str::to_string)
    .to_vec()
}

fn start(args: &[String]) -> Proxy {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proxy::start(&args)
}

#[test]
fn a_takeover_under_load_refuses_nobody() {
    // Holds idle tunnels as long as they last (the scripted test upstreams
    // give up after the test I/O timeout).
    let upstream = EchoServer::start();
    let control = Arc::new(Mutex::new(std::path::PathBuf::new()));
    let path = Arc::clone(&control);
    upgrade_under_load(
        |dir| {
            let socket = dir.0.join("control.sock");
            *path.lock().unwrap() = socket.clone();
            let mut args = flags(upstream.addr, "127.0.0.1:0", &dir.0.join("old.log"));
            args.extend(["--control-socket".into(), socket.display().to_string()]);
            start(&args)
        },
        |dir, old| {
            let socket = control.lock().unwrap().display().to_string();
            let mut args = flags(upstream.addr, "127.0.0.1:0", &dir.0.join("new.log"));
            args.extend([
                "--control-socket".into(),
                socket.clone(),
                "--takeover".into(),
                socket,
            ]);
            let new = start(&args);
            assert_eq!(new.addr(), old.addr(), "the same listening socket");
            assert_eq!(new.admin_addr(), old.admin_addr(), "the admin listener too");
            assert!(new.wait_for_log("took over 1 listener from process"));
            let switched = Instant::now();
            assert!(old.wait_for_log("handed the listeners to process"));
            (new, switched)
        },
    );
}

/// A listening socket as a service manager makes one.
fn manager_socket() -> socket2::Socket {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&SockAddr::from(addr)).unwrap();
    socket.listen(1024).unwrap();
    socket
}

/// Starts the proxy as systemd would with `socket` passed: descriptor 3,
/// LISTEN_FDS=1, LISTEN_PID its own pid (the shell's, which it execs).
fn start_activated(socket: &socket2::Socket, args: &[String]) -> Proxy {
    socket.set_cloexec(false).unwrap();
    let fd = socket.as_raw_fd();
    let setup = format!(
        "exec 3<&{fd} && exec {fd}<&- && export LISTEN_FDS=1 LISTEN_FDNAMES=web LISTEN_PID=$$"
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proxy = Proxy::start_in_shell(&setup, &args);
    socket.set_cloexec(true).unwrap();
    proxy
}

#[test]
fn a_second_process_on_a_passed_socket_takes_over_when_the_first_is_stopped() {
    // Holds idle tunnels as long as they last (the scripted test upstreams
    // give up after the test I/O timeout).
    let upstream = EchoServer::start();
    let socket = manager_socket();
    let listen = socket
        .local_addr()
        .unwrap()
        .as_socket()
        .unwrap()
        .to_string();
    upgrade_under_load(
        |dir| {
            start_activated(
                &socket,
                &flags(upstream.addr, &listen, &dir.0.join("old.log")),
            )
        },
        |dir, old| {
            let new = start_activated(
                &socket,
                &flags(upstream.addr, &listen, &dir.0.join("new.log")),
            );
            assert_eq!(new.addr(), old.addr());
            old.signal(libc::SIGTERM);
            assert!(old.wait_for_log("SIGTERM received; draining"));
            (new, Instant::now())
        },
    );
    // The manager's socket outlived both: a third process could take it.
    assert!(std::net::TcpStream::connect(listen).is_ok());
}

/// Echoes one message through `addr`.
fn echoes(addr: SocketAddr) -> bool {
    let Ok(mut client) = ws::Client::connect(addr, "/") else {
        return false;
    };
    client.send_text("ping").is_ok() && client.recv().is_ok_and(|f| f.payload == b"ping")
}

/// A proxy on `listens` in front of `upstream` serving the control socket
/// `socket`, taking over from the process there if `takeover`.
fn controlled(
    listens: &[&str],
    upstream: &EchoServer,
    socket: &str,
    takeover: bool,
) -> Vec<String> {
    let mut args = Vec::new();
    for l in listens {
        args.extend(["--listen".to_string(), l.to_string()]);
    }
    args.extend(["--upstream".to_string(), upstream.addr.to_string()]);
    args.extend(["--workers", "1", "--control-socket", socket].map(str::to_string));
    if takeover {
        args.extend(["--takeover".to_string(), socket.to_string()]);
    }
    args
}

fn try_start(args: &[String]) -> Result<Proxy, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proxy::try_start(&args)
}

#[test]
fn a_takeover_that_fails_before_it_is_ready_leaves_the_old_process_serving() {
    let _one = one_at_a_time();
    let _w = watchdog();
    let upstream = EchoServer::start();
    let dir = TempDir::new();
    let socket = dir.0.join("control.sock").display().to_string();
    let old = start(&controlled(&["127.0.0.1:0"], &upstream, &socket, false));
    // Its second listener cannot bind: the new process gives up.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let failed = try_start(&controlled(
        &["127.0.0.1:0", &busy],
        &upstream,
        &socket,
        true,
    ));
    let log = failed.err().expect("the new process fails");
    assert!(log.contains("already in use"), "{log}");
    assert!(old.wait_for_log("stopped before it was ready; this process goes on serving"));
    assert!(echoes(old.addr()));
    // And it can still be taken over.
    let new = start(&controlled(&["127.0.0.1:0"], &upstream, &socket, true));
    assert!(new.wait_for_log("took over 1 listener"));
    assert!(echoes(new.addr()));
}

#[test]
fn a_listener_the_new_configuration_lacks_is_closed_and_one_it_adds_is_bound() {
    let _one = one_at_a_time();
    let _w = watchdog();
    let upstream = EchoServer::start();
    let dir = TempDir::new();
    let socket = dir.0.join("control.sock").display().to_string();
    let free = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let (kept, dropped, added) = (free(), free(), free());
    let mut old = start(&controlled(&[&kept, &dropped], &upstream, &socket, false));
    let second = start(&controlled(&[&kept, &added], &upstream, &socket, true));
    assert!(second.wait_for_log("took over 2 listeners"));
    assert!(old.wait_exit(Duration::from_secs(10)).is_some());
    assert!(echoes(kept.parse().unwrap()));
    assert!(echoes(added.parse().unwrap()));
    assert!(
        std::net::TcpStream::connect(&dropped).is_err(),
        "{dropped} is closed once the old process is gone"
    );
}

#[test]
fn a_second_process_on_a_served_control_socket_is_told_to_take_over() {
    let _one = one_at_a_time();
    let _w = watchdog();
    let upstream = EchoServer::start();
    let dir = TempDir::new();
    let socket = dir.0.join("control.sock").display().to_string();
    let args = controlled(&["127.0.0.1:0"], &upstream, &socket, false);
    let _first = start(&args);
    let log = try_start(&args).err().expect("the second is refused");
    assert!(
        log.contains(&format!("start with --takeover {socket}")),
        "{log}"
    );
}
