//! Faults over real sockets: an upstream that dies mid-tunnel, never
//! answers the upgrade, or answers garbage; a client that goes quiet for
//! good; resets with bytes in flight on either side; running out of file
//! descriptors with tunnels open; and 10 000 connect/abort cycles. Each
//! test checks that the proxy answers or closes as it should and that its
//! descriptors and memory come back, and prints the figures (run with
//! `--nocapture` to see them).
//!
//! Resets that simply pass through a tunnel are in `tests/tunnel.rs`
//! (`resets_pass_both_ways`), and accepting paused at EMFILE in
//! `tests/limits.rs` (`out_of_descriptors_accepting_pauses_without_spinning`);
//! the tests here add what those leave out.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ws::EchoServer;

/// The gauge of open tunnels on quick mode's one route.
const TUNNELS: &str = r#"wsproxy_tunnels_active{route="/"}"#;

/// How soon a client must learn that its upstream died: the proxy acts on
/// the event that reports it, so this is scheduling slack on a busy
/// 2-core CI machine, not a timeout the proxy waits out.
const PROMPTLY: Duration = Duration::from_secs(1);

/// An upstream that answers 101 and hands its end of each tunnel to the
/// test.
fn handoff_upstream() -> (RawUpstream, mpsc::Receiver<TcpStream>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let upstream = RawUpstream::start(move |mut stream| {
        if accept_upgrade(&mut stream).is_ok() {
            let _ = tx.lock().unwrap().send(stream);
        }
    });
    (upstream, rx)
}

/// Opens a tunnel: the client's end and the upstream's.
fn open_tunnel(proxy: &Proxy, ends: &mpsc::Receiver<TcpStream>) -> (TcpStream, TcpStream) {
    let mut client = send(
        proxy.addr(),
        upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
    );
    let (head, rest) = ws::read_head(&mut client).unwrap();
    assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
    assert!(rest.is_empty());
    (
        client,
        ends.recv_timeout(IO_TIMEOUT).expect("the upstream's end"),
    )
}

/// Sends `len` pattern bytes each way through a tunnel and checks them;
/// returns the bytes checked.
fn traffic(client: &mut TcpStream, server: &mut TcpStream, len: usize, seed: u64) -> usize {
    let up = pattern(len, seed);
    let mut writer = client.try_clone().unwrap();
    let sent = up.clone();
    let w = thread::spawn(move || writer.write_all(&sent).unwrap());
    assert!(
        read_exact(server, len) == up,
        "client→upstream bytes differ"
    );
    w.join().unwrap();
    let down = pattern(len, seed + 1);
    let mut writer = server.try_clone().unwrap();
    let sent = down.clone();
    let w = thread::spawn(move || writer.write_all(&sent).unwrap());
    assert!(
        read_exact(client, len) == down,
        "upstream→client bytes differ"
    );
    w.join().unwrap();
    2 * len
}

/// Resets `stream`: SO_LINGER 0, then close, so the kernel sends RST.
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

/// Waits until the proxy holds exactly `baseline` descriptors; returns the
/// count it settled on (or the last one seen).
fn settle_fds(proxy: &Proxy, baseline: usize) -> usize {
    eventually(IO_TIMEOUT, || proxy.fd_count() == baseline);
    if proxy.fd_count() != baseline {
        eprintln!("fds now: {:?}", fd_targets(proxy));
    }
    proxy.fd_count()
}

fn fd_targets(proxy: &Proxy) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{}/fd", proxy.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .collect()
}

/// The proxy's descriptor count once it has held still for 500 ms, so a
/// file read once at startup is not taken for the baseline.
fn baseline_fds(proxy: &Proxy) -> usize {
    let mut last = proxy.fd_count();
    let mut since = Instant::now();
    let deadline = Instant::now() + IO_TIMEOUT;
    while since.elapsed() < Duration::from_millis(500) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        let now = proxy.fd_count();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    last
}

/// Waits for the proxy to report no open tunnel.
fn no_tunnels(proxy: &Proxy) -> bool {
    eventually(IO_TIMEOUT, || proxy.metric(TUNNELS) == 0.0)
}

/// How an upstream process goes away.
#[derive(Clone, Copy, Debug)]
enum Death {
    /// Killed with bytes unread, or its host rebooted: the kernel resets.
    Reset,
    /// Exited: the kernel sends FIN, and RST to anything sent after.
    Exit,
}

#[test]
fn an_upstream_dying_mid_tunnel_ends_the_client_promptly_and_is_counted() {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let dir = TempDir::new();
    let log_path = dir.0.join("access.log");
    // The copy relay, so the pair's two sockets are all it holds (splice's
    // pipes are covered by the reset test below).
    let proxy = proxy_to(
        &[upstream.addr],
        &[
            "--relay",
            "copy",
            "--admin",
            "127.0.0.1:0",
            "--access-log",
            log_path.to_str().unwrap(),
        ],
    );
    let fds_before = baseline_fds(&proxy);
    let rss_before = proxy.rss_bytes();
    let mut checked = 0;
    for (i, death) in [Death::Reset, Death::Exit].into_iter().enumerate() {
        let (mut client, mut server) = open_tunnel(&proxy, &ends);
        checked += traffic(&mut client, &mut server, 256 * 1024, 10 * i as u64);
        assert_eq!(
            proxy.fd_count(),
            fds_before + 2,
            "one pair open: {:?}",
            fd_targets(&proxy)
        );

        let died = Instant::now();
        match death {
            Death::Reset => reset(server),
            Death::Exit => drop(server),
        }
        let mut byte = [0u8; 1];
        let told = match (death, client.read(&mut byte)) {
            (Death::Reset, Err(e)) if e.kind() == ErrorKind::ConnectionReset => died.elapsed(),
            (Death::Exit, Ok(0)) => {
                let eof = died.elapsed();
                // Anything the client sends now meets the dead upstream's
                // RST, which the proxy passes back.
                let reset = eventually(PROMPTLY, || client.write_all(b"anyone?").is_err());
                assert!(reset, "the client's writes kept being taken");
                eof
            }
            (_, other) => panic!("{death:?}: the client read {other:?}"),
        };
        assert!(
            told < PROMPTLY,
            "{death:?}: the client learned after {told:?}"
        );
        // The pair is freed with the client's socket still open here.
        let fds = settle_fds(&proxy, fds_before);
        assert_eq!(fds, fds_before, "{death:?}: the pair's descriptors");
        assert!(no_tunnels(&proxy), "{death:?}: {}", proxy.scrape());
        eprintln!(
            "upstream {death:?}: client told after {told:?}, proxy fds {} -> {fds}",
            fds_before + 2
        );
        drop(client);
    }
    assert_eq!(proxy.metric("wsproxy_tunnel_duration_seconds_count"), 2.0);
    let lines = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("status=101"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(IO_TIMEOUT, || lines().len() == 2),
        "{:?}",
        lines()
    );
    for line in lines() {
        assert!(line.contains("closed_by=upstream"), "{line}");
    }
    let rss_after = proxy.rss_bytes();
    eprintln!(
        "upstream death: {checked} bytes checked; fds {fds_before} -> {}; RSS {rss_before} -> {rss_after}; log {:?}",
        proxy.fd_count(),
        lines()
    );
}

#[test]
fn an_upstream_that_never_answers_the_upgrade_gets_504_after_the_response_timeout() {
    let _w = watchdog();
    let (gone_tx, gone) = mpsc::channel();
    let gone_tx = Mutex::new(gone_tx);
    // Accepts, reads the request, says nothing, and reports when the
    // proxy gives up on it.
    let upstream = RawUpstream::start(move |mut stream| {
        let _ = ws::read_head(&mut stream);
        let _ = read_all(&mut stream);
        let _ = gone_tx.lock().unwrap().send(());
    });
    let proxy = proxy_to(
        &[upstream.addr],
        &["--response-timeout", "1s", "--admin", "127.0.0.1:0"],
    );
    let fds_before = baseline_fds(&proxy);
    let start = Instant::now();
    let mut client = send(
        proxy.addr(),
        upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
    );
    let (head, body) = read_response(&mut client);
    let waited = start.elapsed();
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status_of(&head), 504, "{head}{body}");
    assert!(body.contains("upstream did not answer in time"), "{body}");
    assert!(
        // The timer wheel may fire up to one tick either side.
        waited >= Duration::from_secs(1) - wsproxy_fast::timer::TICK
            && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );
    gone.recv_timeout(IO_TIMEOUT)
        .expect("the proxy closes the silent upstream");
    assert_eq!(upstream.accepted(), 1);
    assert_eq!(proxy.metric(r#"wsproxy_handshakes_total{code="504"}"#), 1.0);
    let fds = settle_fds(&proxy, fds_before);
    assert_eq!(fds, fds_before);
    eprintln!("silent upstream: 504 after {waited:?}; fds {fds_before} -> {fds}");
}

/// A status line, then one field longer than the head limit.
const HEAD_WITHOUT_END: &[u8] = &{
    const PREFIX: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nX-Padding: ";
    let mut bytes = [b'a'; 20_000];
    let mut i = 0;
    while i < PREFIX.len() {
        bytes[i] = PREFIX[i];
        i += 1;
    }
    bytes
};

#[test]
fn an_upstream_answering_garbage_gets_502() {
    let _w = watchdog();
    let garbage: &[(&str, &[u8], &str)] = &[
        (
            "an SSH banner",
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            "malformed response head",
        ),
        (
            "binary bytes",
            b"\x00\x01\x02\xff\xfe\r\n\r\n",
            "malformed response head",
        ),
        (
            "a status without a number",
            b"HTTP/1.1 abc OK\r\n\r\n",
            "malformed response head",
        ),
        (
            "a version that is not HTTP",
            b"HTTQ/1.1 101 Hi\r\n\r\n",
            "malformed response head",
        ),
        ("a head that never ends", HEAD_WITHOUT_END, "too large"),
        ("a close before any answer", b"", "closed"),
    ];
    let (which_tx, which) = mpsc::channel::<&'static [u8]>();
    let which = Mutex::new(which);
    let upstream = RawUpstream::start(move |mut stream| {
        let answer = which.lock().unwrap().recv().unwrap();
        let _ = ws::read_head(&mut stream);
        let _ = stream.write_all(answer);
        // Close at once: a garbage answer must not wait for more.
    });
    let proxy = proxy_to(&[upstream.addr], &[]);
    let fds_before = baseline_fds(&proxy);
    for (name, answer, why) in garbage {
        which_tx.send(answer).unwrap();
        let mut client = send(
            proxy.addr(),
            upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes(),
        );
        let (head, body) = read_response(&mut client);
        let body = String::from_utf8(body).unwrap();
        assert_eq!(status_of(&head), 502, "{name}: {head}{body}");
        assert!(body.contains(why), "{name}: {body:?} should say {why:?}");
        eprintln!("upstream sent {name}: 502 {:?}", body.trim_end());
    }
    let fds = settle_fds(&proxy, fds_before);
    assert_eq!(fds, fds_before);
}

/// A client that stops sending and reading with its socket still open
/// cannot be told apart from an idle one; the idle timeout frees it, also
/// while its upstream still has bytes for it.
#[test]
fn a_client_gone_quiet_is_freed_by_the_idle_timeout() {
    let _w = watchdog();
    let (upstream, ends) = handoff_upstream();
    let proxy = proxy_to(
        &[upstream.addr],
        &["--idle-timeout", "1s", "--admin", "127.0.0.1:0"],
    );
    let fds_before = baseline_fds(&proxy);
    let rss_before = proxy.rss_bytes();

    // Quiet both ways.
    let (mut client, mut server) = open_tunnel(&proxy, &ends);
    let checked = traffic(&mut client, &mut server, 64 * 1024, 20);
    let fds_open = proxy.fd_count();
    let start = Instant::now();
    assert_eq!(read_all(&mut server), b"", "the proxy closes the upstream");
    let freed_after = start.elapsed();
    let fds = settle_fds(&proxy, fds_before);
    assert_eq!(fds, fds_before);
    assert!(no_tunnels(&proxy));
    assert!(freed_after < Duration::from_secs(5), "{freed_after:?}");
    eprintln!("quiet client: freed after {freed_after:?}; fds {fds_before} -> {fds_open} -> {fds}; {checked} bytes checked");

    // The upstream keeps writing to a client that no longer reads: once
    // every buffer on the way is full nothing moves, and a second later
    // the pair goes, the upstream's writes failing rather than blocking.
    let (_client, mut server) = open_tunnel(&proxy, &ends);
    let written = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&written);
    let writer = thread::spawn(move || {
        let chunk = pattern(64 * 1024, 21);
        loop {
            match server.write(&chunk) {
                Ok(n) => counter.fetch_add(n, Ordering::SeqCst),
                Err(e) => return e,
            };
        }
    });
    let error = writer.join().unwrap();
    assert!(
        matches!(
            error.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "the upstream's writes ended with {error}"
    );
    let fds = settle_fds(&proxy, fds_before);
    assert_eq!(fds, fds_before);
    assert!(no_tunnels(&proxy));
    let rss_after = proxy.rss_bytes();
    eprintln!(
        "stalled client: upstream wrote {} bytes, then {error}; fds -> {fds}; RSS {rss_before} -> {rss_after}",
        written.load(Ordering::SeqCst)
    );
}

/// A reset while the proxy holds bytes for the side that resets (a full
/// socket, a parked buffer, a pipe) frees everything and resets the other
/// side, under each relay.
#[test]
fn a_reset_with_bytes_in_flight_frees_the_pair_under_each_relay() {
    let _w = watchdog_for(Duration::from_secs(120));
    for relay in ["copy", "splice"] {
        let (upstream, ends) = handoff_upstream();
        let proxy = proxy_to(
            &[upstream.addr],
            &["--relay", relay, "--admin", "127.0.0.1:0"],
        );
        let fds_before = baseline_fds(&proxy);
        let pipes_before = proxy.pipe_count();
        for resetting in ["client", "upstream"] {
            let (client, server) = open_tunnel(&proxy, &ends);
            // The side that will reset stops reading; the other writes
            // until the proxy stops taking its bytes.
            let (quiet, busy) = match resetting {
                "client" => (client, server),
                _ => (server, client),
            };
            let written = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&written);
            let mut writer = busy.try_clone().unwrap();
            let w = thread::spawn(move || {
                let chunk = pattern(64 * 1024, 30);
                loop {
                    match writer.write(&chunk) {
                        Ok(n) => counter.fetch_add(n, Ordering::SeqCst),
                        Err(e) => return e,
                    };
                }
            });
            // Stalled: nothing more taken for 300 ms.
            let mut last = usize::MAX;
            let stalled = eventually(IO_TIMEOUT, || {
                thread::sleep(Duration::from_millis(300));
                let now = written.load(Ordering::SeqCst);
                std::mem::replace(&mut last, now) == now
            });
            assert!(stalled, "{relay}: the writer never stalled");
            let held_pipes = proxy.pipe_count() - pipes_before;
            let reset_at = Instant::now();
            reset(quiet);
            let error = w.join().unwrap();
            let told = reset_at.elapsed();
            assert!(
                matches!(
                    error.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
                ),
                "{relay}, {resetting} reset: the other side's writes ended with {error}"
            );
            assert!(
                told < PROMPTLY,
                "{relay}, {resetting} reset: told after {told:?}"
            );
            drop(busy);
            let fds = settle_fds(&proxy, fds_before);
            assert_eq!(fds, fds_before, "{relay}, {resetting} reset");
            assert!(
                eventually(IO_TIMEOUT, || proxy.pipe_count() <= pipes_before),
                "{relay}: pipes held after the reset"
            );
            assert!(no_tunnels(&proxy));
            eprintln!(
                "{relay}, {resetting} reset with {} bytes written and {held_pipes} pipe(s) held: other side told after {told:?} ({error}); fds -> {fds}",
                written.load(Ordering::SeqCst)
            );
        }
    }
}

/// Out of descriptors with tunnels open: accepting pauses (the pause
/// itself and its CPU cost are `tests/limits.rs`'), the open tunnels keep
/// relaying meanwhile, and every descriptor comes back afterwards.
#[test]
fn out_of_descriptors_open_tunnels_keep_flowing_and_descriptors_come_back() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let upstream = echo.addr.to_string();
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
    let fds_before = baseline_fds(&proxy);
    let rss_before = proxy.rss_bytes();
    let mut tunnels: Vec<ws::Client> = (0..8)
        .map(|_| ws::Client::connect(addr, "/").unwrap())
        .collect();
    let mut waiting = Vec::new();
    for _ in 0..40 {
        waiting.push(send(
            addr,
            upgrade_head(addr, &ws::random_key(), "").as_bytes(),
        ));
    }
    assert!(
        proxy.wait_for_log("pausing accepts"),
        "EMFILE was reached: {:?}",
        proxy.log()
    );
    let fds_full = proxy.fd_count();
    let mut echoed = 0;
    for (i, tunnel) in tunnels.iter_mut().enumerate() {
        let payload = pattern(100_000, i as u64);
        tunnel.send(ws::Opcode::Binary, &payload).unwrap();
        assert!(tunnel.recv().unwrap().payload == payload, "tunnel {i}");
        echoed += payload.len();
    }
    drop(waiting);
    for tunnel in tunnels.drain(..) {
        drop(tunnel);
    }
    let fds = settle_fds(&proxy, fds_before);
    assert_eq!(fds, fds_before, "descriptors after EMFILE");
    assert!(
        eventually(IO_TIMEOUT, || ws::Client::connect(addr, "/").is_ok()),
        "serves again"
    );
    eprintln!(
        "EMFILE: fds {fds_before} -> {fds_full} (limit 48) -> {fds}; {echoed} bytes echoed through open tunnels meanwhile; RSS {rss_before} -> {}",
        proxy.rss_bytes()
    );
}

/// Connect/abort cycles in a row.
const CYCLES: usize = 10_000;

/// Longest the cycles may take: about 2.5 ms each on a busy 2-core machine.
const CYCLES_LIMIT: Duration = Duration::from_secs(40);

/// RSS tolerance after the cycles, against a baseline taken after a
/// warm-up: the slab, buffer pool and allocator arenas have grown to their
/// working size by then, so anything left past this is a leak (4 KiB per
/// 100 cycles would already exceed it).
const RSS_TOLERANCE: u64 = 512 * 1024;

/// The proxy's RSS once it has held still for 2.5 s (its pools are trimmed
/// every 2 s when unused).
fn settled_rss(proxy: &Proxy) -> u64 {
    let mut last = proxy.rss_bytes();
    let mut since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(15);
    while since.elapsed() < Duration::from_millis(2500) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        let now = proxy.rss_bytes();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    last
}

/// One cycle: `i % 4` picks how the client goes. Sources spread over
/// 127.0.0.1–127.0.0.200 so no address runs short of ports.
fn connect_and_abort(addr: std::net::SocketAddr, i: usize) {
    let source = format!("127.0.0.{}", 1 + i % 200);
    let mut stream = connect_from(&source, addr);
    match i % 4 {
        // Before sending anything: FIN, then RST.
        0 => drop(stream),
        1 => reset(stream),
        // Mid-handshake: half a head, then RST.
        2 => {
            stream
                .write_all(b"GET /chat HTTP/1.1\r\nHost: a\r\nUpg")
                .unwrap();
            reset(stream);
        }
        // Mid-tunnel: a 101 and a byte each way, then RST.
        _ => {
            stream
                .write_all(upgrade_head(addr, &ws::random_key(), "").as_bytes())
                .unwrap();
            let (head, _) = ws::read_head(&mut stream).unwrap();
            assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
            reset(stream);
        }
    }
}

#[test]
fn ten_thousand_connect_abort_cycles_leave_descriptors_and_memory_at_baseline() {
    let _w = watchdog_for(Duration::from_secs(120));
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &["--admin", "127.0.0.1:0"]);
    let addr = proxy.addr();
    for i in 0..400 {
        connect_and_abort(addr, i);
    }
    assert!(no_tunnels(&proxy));
    let fds_before = baseline_fds(&proxy);
    let rss_before = settled_rss(&proxy);
    let accepted_before = proxy.metric("wsproxy_connections_accepted_total");

    let start = Instant::now();
    let mut done = 0;
    while done < CYCLES && start.elapsed() < CYCLES_LIMIT {
        connect_and_abort(addr, done);
        done += 1;
    }
    let took = start.elapsed();
    assert_eq!(done, CYCLES, "only {done} cycles in {took:?}");

    assert!(no_tunnels(&proxy), "{}", proxy.scrape());
    // A client that resets before the worker accepts it is dropped from
    // the accept queue by the kernel: a quarter of the cycles (`i % 4 ==
    // 1`) may never reach the proxy.
    let accepted = || proxy.metric("wsproxy_connections_accepted_total") - accepted_before;
    let least = (CYCLES - CYCLES / 4) as f64;
    assert!(
        eventually(IO_TIMEOUT, || accepted() >= least),
        "{} of {CYCLES} cycles were accepted",
        accepted()
    );
    assert!(accepted() <= CYCLES as f64);
    let fds_after = settle_fds(&proxy, fds_before);
    let rss_after = settled_rss(&proxy);
    eprintln!(
        "{CYCLES} cycles in {took:?}, {} accepted: fds {fds_before} -> {fds_after}, RSS {rss_before} -> {rss_after} (tolerance {RSS_TOLERANCE})",
        accepted()
    );
    assert_eq!(fds_after, fds_before, "descriptors after {CYCLES} cycles");
    assert!(
        rss_after <= rss_before + RSS_TOLERANCE,
        "RSS grew {} bytes over {CYCLES} cycles",
        rss_after - rss_before
    );
}
