//! Source addresses for upstream connections, run out for real: in a
//! network namespace of its own whose local port range is 200 ports, one
//! source address carries at most 200 connections to the upstream, three
//! carry three times as many, and the next client gets 502 with one log
//! line naming the fix.
//!
//! Each outer test makes the namespace (`ip netns`, so it needs root and
//! iproute2) and runs this same test binary inside it (`ip netns exec`),
//! asking for one `#[ignore]`d inner test, which refuses to run anywhere
//! else. The namespace is removed when the outer test ends.

mod common;

use std::io::{Cursor, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use common::{accept_upgrade, watchdog_for, ws, Proxy, RawUpstream, TempDir};
use ws::Opcode;

/// Set, to the namespace's name, for the inner tests only.
const INSIDE: &str = "WSPROXY_TEST_NAMESPACE";

/// The namespace's local port range: 200 ports.
const PORT_RANGE: &str = "40000 40199";

/// Where a network namespace keeps its local port range.
const RANGE_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Longest a scenario may take, namespace and all.
const LIMIT: Duration = Duration::from_secs(120);

/// A network namespace with only loopback, up; deleted on drop.
struct Namespace(String);

impl Namespace {
    fn new(test: &str) -> Namespace {
        let name = format!("wsproxy-{test}-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let namespace = Namespace(name);
        ip(&["-n", &namespace.0, "link", "set", "lo", "up"]);
        namespace
    }

    /// Runs the inner test `inner` of this binary inside the namespace;
    /// panics with its output unless it ran and passed.
    fn run(&self, inner: &str) {
        let exe = std::env::current_exe().expect("the test binary's path");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .arg(exe)
            .args([
                inner,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(INSIDE, &self.0)
            .output()
            .unwrap_or_else(|e| missing_ip(e));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed"),
            "{inner} inside {}: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            self.0,
            out.status
        );
        // What the inner test printed (its counts), for the outer log.
        print!("{stdout}");
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

/// Runs `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| missing_ip(e));
    assert!(
        out.status.success(),
        "ip {}: {}\n{}(these tests make a network namespace: run them as root)",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn missing_ip(e: std::io::Error) -> ! {
    panic!(
        "cannot run `ip` ({e}): these tests need iproute2 for a network namespace; \
         install it with `scripts/setup.sh iproute2` (or apt-get install iproute2)"
    )
}

#[test]
fn one_source_address_carries_its_port_range_then_502() {
    let _watchdog = watchdog_for(LIMIT);
    Namespace::new("src1").run("inside_one_source_address");
}

#[test]
fn three_source_addresses_carry_three_port_ranges_then_502() {
    let _watchdog = watchdog_for(LIMIT);
    Namespace::new("src3").run("inside_three_source_addresses");
}

#[test]
#[ignore = "runs inside the network namespace the outer test makes"]
fn inside_one_source_address() {
    inside();
    let _watchdog = watchdog_for(LIMIT);
    let upstream = holding_echo_upstream();
    let proxy = Proxy::start(&[
        "--listen",
        "0.0.0.0:0",
        "--workers",
        "1",
        "--admin",
        "127.0.0.1:0",
        "--upstream",
        &upstream.addr.to_string(),
        "--source-address",
        "127.0.0.2",
    ]);
    let held = fill(&proxy, &upstream, &["127.0.0.2"], 190..=200);
    let metric = "wsproxy_upstream_source_ports_exhausted_total";
    assert_eq!(proxy.metric(metric), 1.0);
    // Running out is the proxy's limit: the server stays up, and the
    // next client is refused again without a second line.
    let server = format!(
        "wsproxy_upstream_server_up{{group=\"upstream\",server=\"{}\"}}",
        upstream.addr
    );
    assert_eq!(proxy.metric(&server), 1.0, "the server is not marked down");
    assert_eq!(refused(&proxy), 502);
    assert_eq!(proxy.metric(metric), 2.0);
    assert_eq!(said(&proxy), 1, "said once: {:#?}", proxy.log());
    assert!(said_line(&proxy).contains(": add more --source-address or widen"));
    drop(held);
}

#[test]
#[ignore = "runs inside the network namespace the outer test makes"]
fn inside_three_source_addresses() {
    inside();
    let _watchdog = watchdog_for(LIMIT);
    let upstream = holding_echo_upstream();
    let dir = TempDir::new();
    let file = dir.write(
        "wsproxy.toml",
        &format!(
            "workers = 1\n[[listener]]\naddress = \"0.0.0.0:0\"\n\
             [upstream.app]\nservers = [\"{}\"]\n\
             source_addresses = [\"127.0.0.2\", \"127.0.0.3\", \"127.0.0.4\"]\n\
             [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"app\"\n",
            upstream.addr
        ),
    );
    let proxy = Proxy::start(&["--config", file.to_str().unwrap()]);
    let sources = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let held = fill(&proxy, &upstream, &sources, 570..=600);
    assert!(said_line(&proxy).contains("add addresses to source_addresses in [upstream.app]"));
    drop(held);
}

/// Refuses to go on outside the namespace the outer test made: there the
/// host's port range, not 200 ports, would be what runs out.
fn inside() {
    let name = std::env::var(INSIDE).unwrap_or_default();
    assert!(
        name.starts_with("wsproxy-"),
        "{INSIDE} is not set: this test runs only inside the network namespace that \
         the outer test of the same scenario makes (run without --ignored)"
    );
    // The namespace's own sysctl: the host's range is untouched.
    std::fs::write(RANGE_FILE, PORT_RANGE).expect("narrow the namespace's port range");
}

/// Opens WebSockets through `proxy` (each echoing one message) and holds
/// them until one is refused; asserts that the refusal is a 502, that the
/// count served is in `band`, and that the proxy said, once, that no
/// source port was left to the upstream from `sources`.
fn fill(
    proxy: &Proxy,
    upstream: &RawUpstream,
    sources: &[&str],
    band: std::ops::RangeInclusive<usize>,
) -> Vec<ws::Client> {
    let range = std::fs::read_to_string(RANGE_FILE).unwrap();
    let range: Vec<&str> = range.split_whitespace().collect();
    assert_eq!(range.join(" "), PORT_RANGE, "the namespace's port range");
    let mut held = Vec::new();
    let status = loop {
        assert!(held.len() <= *band.end(), "more than {band:?} served");
        match ws::Client::connect(client_target(proxy, held.len()), "/") {
            Ok(mut client) => {
                client.send_text("held").expect("send through the tunnel");
                let echo = client.recv().expect("the upstream's echo");
                assert_eq!(
                    (echo.opcode, &echo.payload[..]),
                    (Opcode::Text, &b"held"[..])
                );
                held.push(client);
            }
            Err(e) => break status_of_refusal(&e),
        }
    };
    println!(
        "{} source address(es): {} WebSockets served, then {status}",
        sources.len(),
        held.len()
    );
    assert_eq!(status, 502, "after {} served", held.len());
    assert!(
        band.contains(&held.len()),
        "{} served, want {band:?}",
        held.len()
    );
    assert!(upstream.accepted() >= held.len());
    let line = said_line(proxy);
    println!("the proxy said: {line}");
    let want = format!(
        "no free source port to {} from {}: ",
        upstream.addr,
        sources.join(", ")
    );
    assert!(line.contains(&want), "{line:?} lacks {want:?}");
    assert!(
        line.contains("or widen net.ipv4.ip_local_port_range"),
        "{line}"
    );
    assert_eq!(said(proxy), 1, "{:#?}", proxy.log());
    held
}

/// Where the `n`th client connects: the proxy listens on every local
/// address, and clients spread over eight of them, as the clients' own
/// ports come from the same 200 and one destination would run out first.
fn client_target(proxy: &Proxy, n: usize) -> SocketAddr {
    let ip = IpAddr::from([127, 0, 1, 1 + (n % 8) as u8]);
    SocketAddr::new(ip, proxy.addr().port())
}

/// A refused client's status.
fn refused(proxy: &Proxy) -> u16 {
    match ws::Client::connect(client_target(proxy, 0), "/") {
        Ok(_) => panic!("served past the ports"),
        Err(e) => status_of_refusal(&e),
    }
}

/// The status in a refused upgrade's error ("upgrade refused: HTTP/1.1 502 …").
fn status_of_refusal(e: &std::io::Error) -> u16 {
    let text = e.to_string();
    text.split_once("HTTP/1.1 ")
        .and_then(|(_, rest)| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP refusal: {text}"))
}

/// The proxy's lines about running out of source ports.
fn said(proxy: &Proxy) -> usize {
    let lines = proxy.log();
    lines
        .iter()
        .filter(|l| l.contains("no free source port"))
        .count()
}

/// The first line about running out of source ports.
fn said_line(proxy: &Proxy) -> String {
    assert!(
        proxy.wait_for_log("no free source port"),
        "{:#?}",
        proxy.log()
    );
    let lines = proxy.log();
    let line = lines.iter().find(|l| l.contains("no free source port"));
    line.expect("waited for it").clone()
}

/// A WebSocket upstream that echoes data frames and holds each connection
/// until the proxy closes it (no read timeout: the scenario holds hundreds
/// of tunnels while it opens the rest).
fn holding_echo_upstream() -> RawUpstream {
    RawUpstream::start(|mut stream| {
        let Ok((_, rest)) = accept_upgrade(&mut stream) else {
            return;
        };
        stream.set_read_timeout(None).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = Cursor::new(rest).chain(stream);
        while let Ok(frame) = ws::read_frame(&mut reader) {
            if frame.opcode.is_control() {
                break;
            }
            let mut out = Vec::new();
            ws::encode_frame(&mut out, frame.fin, frame.opcode, &frame.payload, None);
            if writer.write_all(&out).is_err() {
                break;
            }
        }
    })
}

/// Outside any namespace: health checks and tunnels alike reach the
/// upstream from the group's source address, not the kernel's choice.
#[test]
fn checks_and_tunnels_come_from_the_source_address() {
    let _watchdog = watchdog_for(LIMIT);
    let (seen_tx, seen) = std::sync::mpsc::channel::<IpAddr>();
    let seen_tx = std::sync::Mutex::new(seen_tx);
    let upstream = RawUpstream::start(move |mut stream| {
        let from = stream.peer_addr().unwrap().ip();
        let _ = seen_tx.lock().unwrap().send(from);
        // A tcp check closes at once; a tunnel is answered and echoed.
        if accept_upgrade(&mut stream).is_ok() {
            let mut buf = [0; 1024];
            while matches!(stream.read(&mut buf), Ok(1..)) {}
        }
    });
    let dir = TempDir::new();
    let file = dir.write(
        "wsproxy.toml",
        &format!(
            "workers = 1\nsource_addresses = [\"127.0.0.3\"]\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\n\
             [upstream.app]\nservers = [\"{}\"]\n\
             [upstream.app.health]\ncheck = \"tcp\"\ninterval = \"100ms\"\n\
             [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"app\"\n",
            upstream.addr
        ),
    );
    let proxy = Proxy::start(&["--config", file.to_str().unwrap()]);
    let check = seen
        .recv_timeout(common::IO_TIMEOUT)
        .expect("a health check");
    assert_eq!(check.to_string(), "127.0.0.3", "the check's source");
    let _client = ws::Client::connect(proxy.addr(), "/").expect("a tunnel");
    // The upstream told its peer before answering 101, so the tunnel's
    // connection is among those queued now.
    let since: Vec<IpAddr> = seen.try_iter().collect();
    assert!(!since.is_empty(), "the tunnel's connection was seen");
    assert!(
        since.iter().all(|ip| ip.to_string() == "127.0.0.3"),
        "{since:?}"
    );
}

#[test]
fn source_address_flags_are_checked() {
    let _watchdog = watchdog_for(LIMIT);
    let table: &[(&[&str], &str)] = &[
        (
            &[
                "--source-address",
                "127.0.0.2",
                "--source-address",
                "127.0.0.2",
            ],
            "--source-address 127.0.0.2 is given twice",
        ),
        (
            &["--source-address", "::1"],
            "--source-address ::1 is IPv6, but no upstream server it applies to is IPv6",
        ),
        (&["--source-address", "10.0.0.2:80"], "invalid value"),
    ];
    for &(flags, want) in table {
        let out = Command::new(env!("CARGO_BIN_EXE_wsproxy-fast"))
            .args([
                "--check",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:9",
            ])
            .args(flags)
            .output()
            .expect("run wsproxy-fast");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} passed the check");
        assert!(stderr.contains(want), "{flags:?}: {stderr}");
    }
}
