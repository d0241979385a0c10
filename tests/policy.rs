//! A route's tunnel policy, through the copy and splice relays and TLS:
//! proxy pings find a silent client and end its tunnel, a live client
//! (Python `websockets`) answers them without the upstream ever seeing a
//! Pong, message-size limits close with 1009, rate limits slow a client
//! down without losing a byte, lifetimes and per-route idle timeouts end
//! tunnels on time.

mod common;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::tls::{demo_client, tls_connect};
use common::upstreams::{next_frame, ws_echo_upstream, ws_upstream, Seen};
use common::*;
use ws::{Frame, Opcode};

const GOING_AWAY: u16 = 1001;
const MESSAGE_TOO_BIG: u16 = 1009;
const POLICY_VIOLATION: u16 = 1008;

/// How a test reaches the proxy.
#[derive(Clone, Copy, Debug)]
enum Via {
    Copy,
    Splice,
    Tls,
}

const ALL: [Via; 3] = [Via::Copy, Via::Splice, Via::Tls];

fn certs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/certs")
}

/// A proxy in front of `upstream` reached `via`, with `extra` flags.
fn proxy(via: Via, upstream: SocketAddr, extra: &[&str]) -> Proxy {
    let cert = certs().join("localhost.pem").display().to_string();
    let key = certs().join("localhost.key").display().to_string();
    let mut args = vec!["--admin", "127.0.0.1:0"];
    match via {
        Via::Copy => args.extend(["--relay", "copy"]),
        Via::Splice => args.extend(["--relay", "splice"]),
        Via::Tls => args.extend(["--tls-cert", &cert, "--tls-key", &key]),
    }
    args.extend(extra);
    proxy_to(&[upstream], &args)
}

/// A proxy started from a file: one listener (TLS when `via` says so), the
/// group `app` of `upstream`, then one catch-all server whose `routes`
/// (each the keys of a `[[server.route]]` besides its upstream) all send
/// to `app`; `top` goes first (top-level keys, `[timeouts]`). The
/// directory keeps the file while the proxy runs.
fn proxy_from_file(via: Via, upstream: SocketAddr, top: &str, routes: &[&str]) -> (Proxy, TempDir) {
    let tls = match via {
        Via::Tls => format!(
            "tls = {{ cert = \"{}\", key = \"{}\" }}",
            certs().join("localhost.pem").display(),
            certs().join("localhost.key").display()
        ),
        _ => String::new(),
    };
    let mut text = format!(
        "{top}\n[[listener]]\naddress = \"127.0.0.1:0\"\n{tls}\n\
         [upstream.app]\nservers = [\"{upstream}\"]\n[[server]]\n"
    );
    for route in routes {
        text.push_str(&format!("[[server.route]]\nupstream = \"app\"\n{route}\n"));
    }
    let dir = TempDir::new();
    let config = dir.write("wsproxy.toml", &text);
    let proxy = Proxy::start(&["--config", config.to_str().unwrap()]);
    (proxy, dir)
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A WebSocket client's connection, upgraded, with what came after the
/// 101 ahead of the socket.
fn client(via: Via, addr: SocketAddr) -> Box<dyn Stream> {
    let mut stream: Box<dyn Stream> = match via {
        Via::Tls => Box::new(tls_connect(addr, demo_client(), "localhost").unwrap()),
        _ => Box::new(connect(addr)),
    };
    stream
        .write_all(upgrade_head(addr, "dGhlIHNhbXBsZSBub25jZQ==", "").as_bytes())
        .unwrap();
    let mut messages = Messages::new(&mut stream);
    let (head, _) = messages.response(true);
    assert_eq!(status_of(&head), 101, "{head}");
    let ahead = messages.buffered().to_vec();
    Box::new(io::Cursor::new(ahead).chain(stream).chain_write())
}

/// `Read` chained over a writable stream: reads come from the chain,
/// writes go to the stream.
trait ChainWrite<S> {
    fn chain_write(self) -> Chained<S>;
}

struct Chained<S> {
    inner: io::Chain<io::Cursor<Vec<u8>>, S>,
}

impl<S: Read + Write> ChainWrite<S> for io::Chain<io::Cursor<Vec<u8>>, S> {
    fn chain_write(self) -> Chained<S> {
        Chained { inner: self }
    }
}

impl<S: Read + Write> Read for Chained<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<S: Read + Write> Write for Chained<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.get_mut().1.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.get_mut().1.flush()
    }
}

fn send(stream: &mut dyn Stream, fin: bool, opcode: Opcode, payload: &[u8]) {
    let mut out = Vec::new();
    ws::encode_frame(&mut out, fin, opcode, payload, Some(ws::random_mask()));
    stream.write_all(&out).unwrap();
    stream.flush().unwrap();
}

fn frames_until_close(stream: &mut dyn Stream) -> Vec<Frame> {
    let mut seen = Vec::new();
    loop {
        let frame = ws::read_frame(&mut &mut *stream).expect("a Close before the end");
        let close = frame.opcode == Opcode::Close;
        seen.push(frame);
        if close {
            return seen;
        }
    }
}

/// The frames the upstream saw up to its end.
fn upstream_frames(rx: &mpsc::Receiver<Seen>) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        match rx.recv_timeout(IO_TIMEOUT).expect("the upstream's end") {
            Seen::Frame(f) => frames.push(f),
            Seen::End => return frames,
        }
    }
}

#[test]
fn a_silent_client_is_pinged_then_closed_and_the_upstream_gets_1001() {
    let _w = watchdog();
    for via in ALL {
        let (upstream, seen) = ws_upstream(None);
        let proxy = proxy(
            via,
            upstream.addr,
            &["--ping-interval", "1s", "--ping-timeout", "1s"],
        );
        let mut c = client(via, proxy.addr());
        send(&mut *c, true, Opcode::Text, b"hello");
        assert_eq!(next_frame(&seen).payload, b"hello");
        let quiet = Instant::now();
        // The proxy's Ping, unmasked, with a payload of its own.
        let ping = ws::read_frame(&mut c).expect("a Ping");
        assert_eq!(ping.opcode, Opcode::Ping, "{via:?}");
        assert_eq!(ping.payload.len(), 8, "{via:?}");
        let pinged = quiet.elapsed();
        assert!(
            pinged >= Duration::from_millis(900) && pinged < Duration::from_millis(2500),
            "{via:?}: pinged after {pinged:?}"
        );
        // No Pong, no FIN: the upstream hears the client is gone.
        let close = next_frame(&seen);
        let gone = quiet.elapsed();
        assert_eq!(close.opcode, Opcode::Close, "{via:?}");
        assert_eq!(close.close_code(), Some(GOING_AWAY), "{via:?}");
        assert!(
            gone >= Duration::from_millis(1900) && gone < Duration::from_millis(3500),
            "{via:?}: closed after {gone:?} for 1 s + 1 s"
        );
        assert!(matches!(seen.recv_timeout(IO_TIMEOUT).unwrap(), Seen::End));
        // The client's socket is closed: it reads its end, nothing more.
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{via:?}: {rest:?}");
        assert!(
            proxy.wait_for_log("unresponsive"),
            "{via:?}: {:?}",
            proxy.log()
        );
        let route = |series: &str| proxy.metric(&format!("{series}{{route=\"/\"}}"));
        assert_eq!(
            route("wsproxy_route_peers_unresponsive_total"),
            1.0,
            "{via:?}"
        );
        assert_eq!(route("wsproxy_route_pings_sent_total"), 1.0, "{via:?}");
    }
}

#[test]
fn a_client_that_answers_stays_and_its_pong_never_reaches_the_upstream() {
    let _w = watchdog();
    for via in ALL {
        let (upstream, seen) = ws_upstream(None);
        let proxy = proxy(
            via,
            upstream.addr,
            &["--ping-interval", "1s", "--ping-timeout", "1s"],
        );
        let mut c = client(via, proxy.addr());
        for round in 0..3 {
            let ping = ws::read_frame(&mut c).expect("a Ping");
            assert_eq!(ping.opcode, Opcode::Ping, "{via:?} round {round}");
            // A Pong of the client's own passes; the proxy's is taken out.
            send(&mut *c, true, Opcode::Pong, b"mine");
            send(&mut *c, true, Opcode::Pong, &ping.payload);
            send(
                &mut *c,
                true,
                Opcode::Text,
                format!("after {round}").as_bytes(),
            );
            let mine = next_frame(&seen);
            assert_eq!(
                (mine.opcode, &mine.payload[..]),
                (Opcode::Pong, &b"mine"[..])
            );
            let text = next_frame(&seen);
            assert_eq!(text.payload, format!("after {round}").as_bytes(), "{via:?}");
        }
        send(&mut *c, true, Opcode::Close, &ws::close_payload(1000, ""));
        let frames = upstream_frames(&seen);
        assert_eq!(frames.len(), 1, "{via:?}: {frames:?}");
        assert_eq!(frames[0].opcode, Opcode::Close);
    }
}

/// Python `websockets` in the tools venv (`scripts/setup.sh websockets`).
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/python");
    let ok = Command::new(&venv)
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import websockets: run scripts/setup.sh websockets",
        venv.display()
    );
    venv
}

#[test]
fn a_real_client_library_stays_through_pings_while_messages_flow() {
    let _w = watchdog_for(Duration::from_secs(120));
    let python = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/policy/live_client.py");
    for via in ALL {
        let (upstream, seen) = ws_echo_upstream();
        let proxy = proxy(
            via,
            upstream.addr,
            &["--ping-interval", "1s", "--ping-timeout", "2s"],
        );
        let mut command = Command::new(&python);
        command.arg(&script);
        match via {
            Via::Tls => command
                .arg(format!("wss://{}/", proxy.addr()))
                .arg(certs().join("ca.pem"))
                .arg("localhost"),
            _ => command.arg(format!("ws://{}/", proxy.addr())),
        };
        let out = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{via:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pings: u32 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("pings "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(pings >= 5, "{via:?}: {pings} pings in {stdout}");
        let frames = upstream_frames(&seen);
        let pongs: Vec<_> = frames.iter().filter(|f| f.opcode == Opcode::Pong).collect();
        assert!(pongs.is_empty(), "{via:?}: the upstream got {pongs:?}");
        let data: usize = frames
            .iter()
            .filter(|f| !f.opcode.is_control())
            .map(|f| f.payload.len())
            .sum();
        assert!(data > 2 << 20, "{via:?}: {data} bytes of messages");
    }
}

#[test]
fn a_message_past_the_limit_gets_1009_and_the_upstream_1001() {
    let _w = watchdog();
    for via in ALL {
        for fragments in [1usize, 100] {
            let (upstream, seen) = ws_upstream(None);
            let proxy = proxy(via, upstream.addr, &["--max-message-bytes", "10000"]);
            let mut c = client(via, proxy.addr());
            // Within the limit, whole and in pieces.
            send(&mut *c, true, Opcode::Binary, &[7; 10_000]);
            assert_eq!(next_frame(&seen).payload.len(), 10_000);
            // 100 bytes a fragment: the 101st fragment breaks it.
            let piece = 10_100 / fragments + 1;
            for i in 0..fragments {
                let opcode = if i == 0 {
                    Opcode::Binary
                } else {
                    Opcode::Continuation
                };
                send(&mut *c, i + 1 == fragments, opcode, &vec![1; piece]);
            }
            let frames = frames_until_close(&mut *c);
            let close = frames.last().unwrap();
            assert_eq!(close.close_code(), Some(MESSAGE_TOO_BIG), "{via:?}");
            let up = upstream_frames(&seen);
            let last = up.last().expect("a Close at the upstream");
            assert_eq!(last.close_code(), Some(GOING_AWAY), "{via:?} {fragments}");
            let passed: usize = up[..up.len() - 1].iter().map(|f| f.payload.len()).sum();
            assert!(
                passed <= 10_000,
                "{via:?}: {passed} bytes of the message went on"
            );
            assert!(proxy.wait_for_log("max_message_bytes"));
            assert_eq!(
                proxy
                    .metric(r#"wsproxy_route_limit_closes_total{route="/",reason="message_size"}"#),
                1.0
            );
        }
    }
}

/// Sends `count` messages of `size` bytes as fast as the proxy takes them;
/// returns how long it took.
fn blast(c: &mut dyn Stream, count: usize, size: usize) -> Duration {
    let started = Instant::now();
    let mut all = Vec::new();
    for i in 0..count {
        let payload = pattern(size, i as u64);
        ws::encode_frame(
            &mut all,
            true,
            Opcode::Binary,
            &payload,
            Some(ws::random_mask()),
        );
    }
    c.write_all(&all).unwrap();
    c.flush().unwrap();
    started.elapsed()
}

#[test]
fn a_client_at_ten_times_the_rate_is_slowed_to_it_without_loss() {
    let _w = watchdog_for(Duration::from_secs(90));
    for via in [Via::Copy, Via::Tls] {
        let (upstream, seen) = ws_upstream(None);
        let (proxy, _dir) = proxy_from_file(
            via,
            upstream.addr,
            "",
            &["location = \"/\"\nmax_messages_per_s = 100\nmax_messages_burst = 10"],
        );
        let mut c = client(via, proxy.addr());
        let started = Instant::now();
        // Four seconds' worth at 100 a second, written at once: far over
        // ten times the rate.
        let count = 400;
        blast(&mut *c, count, 64);
        let mut got = Vec::new();
        for _ in 0..count {
            got.push(next_frame(&seen));
        }
        let took = started.elapsed().as_secs_f64();
        // The burst (10) goes at once, the rest at 100 a second.
        let rate = (count - 10) as f64 / took;
        eprintln!("{via:?}: {rate:.1} messages/s over {took:.2} s");
        assert!(
            (90.0..=110.0).contains(&rate),
            "{via:?}: {rate:.1} messages/s over {took:.2} s"
        );
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f.payload, pattern(64, i as u64), "{via:?}: message {i}");
        }
    }
}

#[test]
fn a_client_kept_over_the_rate_is_closed_with_1008() {
    let _w = watchdog();
    let (upstream, seen) = ws_upstream(None);
    let (proxy, _dir) = proxy_from_file(
        Via::Copy,
        upstream.addr,
        "admin = \"127.0.0.1:0\"",
        &[
            "location = \"/\"\nname = \"uploads\"\nmax_bytes_per_s = 10000\n\
           rate_limit_close_after = \"1s\"",
        ],
    );
    let mut c = client(Via::Copy, proxy.addr());
    let started = Instant::now();
    blast(&mut *c, 100, 1000);
    let frames = frames_until_close(&mut *c);
    let closed = started.elapsed();
    assert_eq!(frames.last().unwrap().close_code(), Some(POLICY_VIOLATION));
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(4),
        "closed after {closed:?}"
    );
    let up = upstream_frames(&seen);
    assert_eq!(up.last().unwrap().close_code(), Some(GOING_AWAY));
    assert_eq!(
        proxy.metric(r#"wsproxy_route_limit_closes_total{route="uploads",reason="rate"}"#),
        1.0
    );
    // What went on before the close is whole messages, in order.
    for (i, f) in up[..up.len() - 1].iter().enumerate() {
        assert_eq!(f.payload, pattern(1000, i as u64), "message {i}");
    }
}

#[test]
fn lifetimes_and_route_idle_timeouts_end_tunnels_on_time() {
    let _w = watchdog();
    let (upstream, seen) = ws_upstream(None);
    let (proxy, _dir) = proxy_from_file(
        Via::Copy,
        upstream.addr,
        "[timeouts]\nidle = \"1h\"",
        &[
            "location = \"/short\"\nmax_lifetime = \"1s\"\nlifetime_jitter = \"1s\"",
            "location = \"/quiet\"\nidle_timeout = \"1s\"",
        ],
    );
    // A lifetime ends the tunnel like a drain: Close 1001 both ways.
    let started = Instant::now();
    let mut c = ws::Client::connect(proxy.addr(), "/short").unwrap();
    for _ in 0..5 {
        c.send_text("busy").unwrap();
        assert_eq!(next_frame(&seen).payload, b"busy");
    }
    let close = loop {
        let f = c.recv().expect("a Close");
        if f.opcode == Opcode::Close {
            break f;
        }
    };
    let lived = started.elapsed();
    assert_eq!(close.close_code(), Some(GOING_AWAY));
    assert!(
        lived >= Duration::from_millis(900) && lived < Duration::from_millis(2600),
        "lived {lived:?} for 1 s + up to 1 s"
    );
    let up = upstream_frames(&seen);
    assert_eq!(up.last().unwrap().close_code(), Some(GOING_AWAY));

    // A route's idle timeout overrides the global hour.
    let started = Instant::now();
    let mut c = ws::Client::connect(proxy.addr(), "/quiet").unwrap();
    let end = c.recv();
    let idle = started.elapsed();
    assert!(end.is_err(), "{end:?}");
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_millis(2500),
        "closed after {idle:?} for 1 s"
    );
}

#[test]
fn an_upstream_that_never_answers_a_ping_is_found_dead_when_asked() {
    let _w = watchdog();
    let (upstream, seen) = ws_upstream(None);
    let (proxy, _dir) = proxy_from_file(
        Via::Copy,
        upstream.addr,
        "",
        &["location = \"/\"\nping_interval = \"1s\"\nping_timeout = \"1s\"\nping_upstream = true"],
    );
    let mut c = client(Via::Copy, proxy.addr());
    let started = Instant::now();
    // The client answers its Pings; the upstream, which only reads, does not.
    let close = loop {
        let f = ws::read_frame(&mut c).unwrap_or_else(|e| panic!("{e}: {:?}", proxy.log()));
        match f.opcode {
            Opcode::Ping => send(&mut *c, true, Opcode::Pong, &f.payload),
            Opcode::Close => break f,
            other => panic!("{other:?}"),
        }
    };
    let took = started.elapsed();
    assert_eq!(close.close_code(), Some(GOING_AWAY));
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
        "the silent upstream was dropped after {took:?}"
    );
    // The upstream got the proxy's Ping, masked as a client's frames are.
    let ping = next_frame(&seen);
    assert_eq!(ping.opcode, Opcode::Ping);
    assert_eq!(ping.payload.len(), 8);
    assert!(matches!(seen.recv_timeout(IO_TIMEOUT).unwrap(), Seen::End));
    assert!(proxy.wait_for_log("upstream 127.0.0.1"));
}
