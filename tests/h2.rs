//! HTTP/2 (RFC 9113) and WebSockets over it (RFC 8441) end to end, driven
//! by a client nobody here wrote: the Python `h2` library in the tools venv
//! (`scripts/setup.sh h2`). The scripts in `tests/h2/` hold the cases:
//! `conformance.py` the RFC table, `attack.py` the published attacks,
//! `replay.py` twenty WebSocket cases over HTTP/2 and over HTTP/1.1
//! compared octet for octet. This file starts the proxy and its upstreams,
//! runs a script, and watches the proxy's memory around each attack.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use common::tls::{client_config, tls_connect};
use common::*;
use wsbench::ws::{Frame, Opcode};

/// How long a script waits for one answer (`H2_TIMEOUT`): well under the
/// watchdog, so a silent proxy fails a case, not the test binary.
const ANSWER_TIMEOUT_S: &str = "5";

/// Longest a table script keeps starting cases (`H2_BUDGET`), so that a
/// proxy that times out case after case still leaves the report within
/// the watchdog.
const TABLE_BUDGET_S: &str = "60";

/// Watchdog of a table run: the budget plus one timed-out case and the
/// proxy's start.
const TABLE_LIMIT: Duration = Duration::from_secs(90);

/// What an attack may add to the proxy's peak resident memory: a
/// connection's worth of buffers many times over, far from what buffering
/// the attack (hundreds of MB decoded, or an endless body) would take.
const ATTACK_MEMORY: u64 = 20 << 20;

/// The body `/stream` answers with: far more than any buffer on the way.
const ENDLESS: u64 = 1 << 30;

/// Most the proxy may read of `/stream` for a client whose window is 0:
/// socket buffers on both sides of loopback (a few MB each) and its own.
const STALL_READ_LIMIT: usize = 32 << 20;

/// The tools venv's Python with `h2`, or a panic saying how to get it
/// (checked once per test binary).
fn python() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED
        .get_or_init(|| tools_python("h2, hpack, hyperframe", "h2"))
        .clone()
}

fn demo_ca() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/certs/ca.pem")
}

/// A script of `tests/h2/` against `addr`, with the answer timeout and
/// budget set.
fn script(name: &str, addr: SocketAddr, args: &[&str]) -> Command {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/h2");
    let mut command = Command::new(python());
    command
        .arg(dir.join(name))
        .arg(addr.to_string())
        .arg(demo_ca())
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("H2_TIMEOUT", ANSWER_TIMEOUT_S)
        .env("H2_BUDGET", TABLE_BUDGET_S);
    command
}

/// Runs `command`, prints its report, and fails the test with it unless
/// it exited 0.
fn report(what: &str, command: &mut Command) -> String {
    match run(what, command) {
        Ok(stdout) => stdout,
        Err(failure) => panic!("{failure}"),
    }
}

/// Runs `command` and prints its report: its output if it exited 0, else
/// the failure with its output.
fn run(what: &str, command: &mut Command) -> Result<String, String> {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run the tools venv's python");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    println!("{what}:\n{stdout}");
    if status.success() {
        return Ok(stdout);
    }
    Err(format!(
        "{what} failed ({status}):\n{stdout}\n{}",
        String::from_utf8_lossy(&stderr)
    ))
}

/// The HTTP/2 samples of a scrape.
fn h2_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("wsproxy_h2_"))
        .collect();
    lines.join("\n")
}

/// A line of `/proc/PID/status`, in bytes (its values are kB).
fn proc_status_bytes(proxy: &Proxy, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/PID/status"));
    kb * 1024
}

/// The proxy's peak resident memory so far (`VmHWM`).
fn peak_rss(proxy: &Proxy) -> u64 {
    proc_status_bytes(proxy, "VmHWM:")
}

/// An upstream in the manner of Autobahn's echo server: data frames back
/// as they came, Pong for Ping, Pongs dropped, a Close answered with its
/// code (1002 for an invalid one or a 1-octet payload, an empty Close for
/// an empty one) and then the end; a text message that is not UTF-8 gets
/// 1007, a frame the codec refuses (a control frame over 125 octets) 1002.
fn autobahn_echo() -> RawUpstream {
    RawUpstream::start(|mut stream| {
        let Ok((_, early)) = accept_upgrade(&mut stream) else {
            return;
        };
        let mut writer = stream.try_clone().unwrap();
        let mut reader = std::io::Cursor::new(early).chain(stream);
        let mut send = |fin: bool, opcode: Opcode, payload: &[u8]| {
            let mut out = Vec::new();
            ws::encode_frame(&mut out, fin, opcode, payload, None);
            writer.write_all(&out).is_ok()
        };
        let mut text: Option<Vec<u8>> = None;
        loop {
            let frame: Frame = match ws::read_frame(&mut reader) {
                Ok(frame) => frame,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    send(true, Opcode::Close, &ws::close_payload(1002, ""));
                    break;
                }
                Err(_) => return,
            };
            match frame.opcode {
                Opcode::Ping => {
                    if !send(true, Opcode::Pong, &frame.payload) {
                        return;
                    }
                }
                Opcode::Pong => {}
                Opcode::Close => {
                    let reply = match frame.payload.len() {
                        0 => Vec::new(),
                        1 => ws::close_payload(1002, ""),
                        _ => match frame.close_code() {
                            Some(code) if valid_close_code(code) => ws::close_payload(code, ""),
                            _ => ws::close_payload(1002, ""),
                        },
                    };
                    send(true, Opcode::Close, &reply);
                    break;
                }
                opcode => {
                    if !send(frame.fin, opcode, &frame.payload) {
                        return;
                    }
                    if opcode == Opcode::Text {
                        text = Some(Vec::new());
                    }
                    if let Some(message) = &mut text {
                        message.extend_from_slice(&frame.payload);
                        if frame.fin {
                            let valid = std::str::from_utf8(message).is_ok();
                            text = None;
                            if !valid {
                                send(true, Opcode::Close, &ws::close_payload(1007, ""));
                                break;
                            }
                        }
                    }
                }
            }
        }
        // A clean close, as a server does after its Close: FIN, then what
        // the client still sends is read and dropped (closing with it
        // unread would be a reset).
        let mut stream = reader.into_inner().1;
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let _ = std::io::copy(&mut stream, &mut std::io::sink());
    })
}

/// An upstream that takes the upgrade and resets the connection at the
/// first octet of WebSocket.
fn reset_upstream() -> RawUpstream {
    RawUpstream::start(|mut stream| {
        let Ok((_, early)) = accept_upgrade(&mut stream) else {
            return;
        };
        if early.is_empty() {
            let _ = stream.read(&mut [0u8; 1]);
        }
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    })
}

/// Close codes a peer may send (RFC 6455 §7.4, and the registry's 1012 to
/// 1014).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// An upstream that takes connections and never answers: streams routed
/// there stay open. It counts the connections the proxy closed.
fn hold_upstream() -> (RawUpstream, Arc<AtomicUsize>) {
    let closed = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&closed);
    let upstream = RawUpstream::start(move |mut stream| {
        let _ = stream.set_read_timeout(None);
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        count.fetch_add(1, Ordering::SeqCst);
    });
    (upstream, closed)
}

/// What the plain upstream saw after the bodies it answered.
#[derive(Default)]
struct AfterBodies {
    /// Connections done with (the proxy closed them).
    done: AtomicUsize,
    /// Octets that came after a request's `Content-Length` body: a proxy
    /// that sends them has the upstream read them as the next request.
    extra: AtomicUsize,
}

/// A plain HTTP/1.1 upstream: "hello from upstream" to a request without
/// a body, "got N octets" to one with a `Content-Length` body; then it
/// closes its side and counts what still comes.
fn http_upstream() -> (RawUpstream, Arc<AfterBodies>) {
    let after = Arc::new(AfterBodies::default());
    let seen = Arc::clone(&after);
    let upstream = RawUpstream::start(move |mut stream| {
        let Ok((head, early)) = ws::read_head(&mut stream) else {
            return;
        };
        let head = String::from_utf8_lossy(&head).into_owned();
        let length: usize = field(&head, "content-length").map_or(0, |v| v.parse().unwrap());
        let mut body = early;
        let extra_early = body.len().saturating_sub(length);
        let have = body.len().min(length);
        body.resize(length.max(body.len()), 0);
        if stream.read_exact(&mut body[have..length]).is_err() {
            return;
        }
        let answer = if length == 0 {
            "hello from upstream".to_string()
        } else {
            format!("got {length} octets")
        };
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let late = std::io::copy(&mut stream, &mut std::io::sink()).unwrap_or(0);
        seen.extra
            .fetch_add(extra_early + late as usize, Ordering::SeqCst);
        seen.done.fetch_add(1, Ordering::SeqCst);
    });
    (upstream, after)
}

/// An upstream answering with an endless body; it counts the octets the
/// proxy took and says once when a write has waited half a second (the
/// proxy stopped reading).
struct EndlessUpstream {
    upstream: RawUpstream,
    written: Arc<AtomicUsize>,
    blocked: mpsc::Receiver<()>,
}

fn endless_upstream() -> EndlessUpstream {
    let written = Arc::new(AtomicUsize::new(0));
    let (tx, blocked) = mpsc::channel();
    let tx = Mutex::new(tx);
    let counter = Arc::clone(&written);
    let upstream = RawUpstream::start(move |mut stream| {
        if ws::read_head(&mut stream).is_err() {
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {ENDLESS}\r\n\r\n");
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        stream
            .set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let chunk = vec![b'z'; 64 << 10];
        let mut told = false;
        let mut left = ENDLESS as usize;
        while left > 0 {
            match stream.write(&chunk[..chunk.len().min(left)]) {
                Ok(0) => return,
                Ok(n) => {
                    left -= n;
                    counter.fetch_add(n, Ordering::SeqCst);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if !told {
                        told = true;
                        let _ = tx.lock().unwrap().send(());
                    }
                }
                Err(_) => return,
            }
        }
    });
    EndlessUpstream {
        upstream,
        written,
        blocked,
    }
}

/// An address nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The proxy with an HTTP/2 TLS listener and the routes the scripts
/// expect (see `tests/h2/conformance.py`), each to an upstream of its own.
struct Site {
    proxy: Proxy,
    hold: RawUpstream,
    hold_closed: Arc<AtomicUsize>,
    endless: EndlessUpstream,
    http: RawUpstream,
    http_after: Arc<AfterBodies>,
    _echo: RawUpstream,
    _reset: RawUpstream,
    _dir: TempDir,
}

impl Site {
    fn start() -> Site {
        let dir = TempDir::new();
        let www = dir.0.join("www");
        std::fs::create_dir_all(www.join("static")).unwrap();
        std::fs::write(www.join("static/hello.txt"), "hello over h2\n").unwrap();
        let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/certs");
        let echo = autobahn_echo();
        let (hold, hold_closed) = hold_upstream();
        let (http, http_after) = http_upstream();
        let endless = endless_upstream();
        let reset = reset_upstream();
        let route = |location: &str, upstream: SocketAddr, extra: &str| {
            format!(
                "[[server.route]]\nlocation = \"{location}\"\nupstream = \"{upstream}\"\n{extra}"
            )
        };
        let text = [
            "workers = 1\nadmin = \"127.0.0.1:0\"\n".to_string(),
            format!(
                "[[listener]]\naddress = \"127.0.0.1:0\"\nhttp2 = true\n\
                 tls = {{ cert = \"{}\", key = \"{}\" }}\n",
                certs.join("localhost.pem").display(),
                certs.join("localhost.key").display()
            ),
            "[[server]]\n".to_string(),
            route("/ws", echo.addr, ""),
            route("/echo", echo.addr, ""),
            route(
                "/origin",
                echo.addr,
                "origins = [\"https://good.example\"]\n",
            ),
            route("/hold", hold.addr, ""),
            route("/http", http.addr, ""),
            route("/stream", endless.upstream.addr, ""),
            route("/down", closed_port(), ""),
            route("/reset", reset.addr, ""),
            format!(
                "[[server.route]]\nlocation = \"/static/\"\nroot = \"{}\"\n",
                www.display()
            ),
        ]
        .concat();
        let config = dir.write("wsproxy.toml", &text);
        let proxy = Proxy::start(&["--config", config.to_str().unwrap()]);
        Site {
            proxy,
            hold,
            hold_closed,
            endless,
            _echo: echo,
            http,
            http_after,
            _reset: reset,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// Every HTTP/2 connection ended, and every tunnel with it (within
    /// [`IO_TIMEOUT`]).
    fn all_closed(&self) -> bool {
        eventually(IO_TIMEOUT, || {
            let text = self.proxy.scrape();
            sample(&text, "wsproxy_h2_connections") == Some(0.0)
                && sample(&text, "wsproxy_h2_websocket_streams") == Some(0.0)
        })
    }

    /// Every upstream connection of a stream whose client is gone was
    /// closed (within [`IO_TIMEOUT`]); else how many were not.
    fn upstreams_released(&self) -> Result<(), String> {
        let open = || self.hold.accepted() - self.hold_closed.load(Ordering::SeqCst);
        if eventually(IO_TIMEOUT, || open() == 0) {
            return Ok(());
        }
        Err(format!(
            "{} of {} connections to /hold still open after their clients went",
            open(),
            self.hold.accepted()
        ))
    }

    /// Runs `attack.py NAME`; asserts the proxy's peak memory grew less
    /// than [`ATTACK_MEMORY`], every connection closed, and a fresh
    /// connection still gets its WebSocket echoed.
    fn attack(&self, name: &str) -> String {
        let before = peak_rss(&self.proxy);
        let out = report(name, &mut script("attack.py", self.addr(), &[name]));
        self.check_after_attack(name, before);
        out
    }

    fn check_after_attack(&self, name: &str, before: u64) {
        let grew = peak_rss(&self.proxy).saturating_sub(before);
        println!(
            "{name}: peak RSS grew {} KiB (now {} KiB resident)",
            grew >> 10,
            self.proxy.rss_bytes() >> 10
        );
        assert!(
            grew < ATTACK_MEMORY,
            "{name}: the proxy's peak memory grew {grew} bytes"
        );
        report(
            "after the attack",
            &mut script("conformance.py", self.addr(), &["extended CONNECT echo"]),
        );
        assert!(
            self.all_closed(),
            "{name}: {}",
            h2_lines(&self.proxy.scrape())
        );
        if let Err(failure) = self.upstreams_released() {
            panic!("{name}: {failure}");
        }
    }
}

#[test]
fn conformance_table() {
    let _w = watchdog_for(TABLE_LIMIT);
    let site = Site::start();
    // Every check runs, so one report says all that is wrong.
    let mut failures = Vec::new();
    if let Err(failure) = run(
        "RFC 9113 / RFC 8441 conformance",
        &mut script("conformance.py", site.addr(), &[]),
    ) {
        failures.push(failure);
    }
    if !site.all_closed() {
        failures.push(format!("left open:\n{}", h2_lines(&site.proxy.scrape())));
    }
    if let Err(failure) = site.upstreams_released() {
        failures.push(failure);
    }
    // Bodies forwarded as sent: nothing after a Content-Length body.
    let after = &site.http_after;
    if !eventually(IO_TIMEOUT, || {
        after.done.load(Ordering::SeqCst) == site.http.accepted()
    }) {
        failures.push(format!(
            "the proxy kept {} of {} plain upstream connections open",
            site.http.accepted() - after.done.load(Ordering::SeqCst),
            site.http.accepted()
        ));
    }
    let extra = after.extra.load(Ordering::SeqCst);
    if extra != 0 {
        failures.push(format!(
            "the proxy sent {extra} octets past the Content-Length of request bodies"
        ));
    }
    let text = site.proxy.scrape();
    for kind in ["websocket", "request"] {
        let series = format!("wsproxy_h2_streams_total{{kind=\"{kind}\"}}");
        match sample(&text, &series) {
            Some(n) if n >= 5.0 => {}
            n => failures.push(format!("{series} {n:?} in:\n{text}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_client_gone_right_after_the_settings_is_closed() {
    let _w = watchdog();
    let site = Site::start();
    // Preface and SETTINGS, the proxy's SETTINGS and WINDOW_UPDATE read,
    // the ACK sent, then the client closes: the first connection the
    // proxy's worker sees.
    report(
        "server SETTINGS",
        &mut script("conformance.py", site.addr(), &["server SETTINGS"]),
    );
    assert!(site.all_closed(), "{}", h2_lines(&site.proxy.scrape()));
}

#[test]
fn websocket_replay_over_h2_and_http1_matches() {
    let _w = watchdog_for(TABLE_LIMIT);
    let site = Site::start();
    report(
        "20 WebSocket cases, HTTP/2 against HTTP/1.1",
        &mut script("replay.py", site.addr(), &["/echo"]),
    );
    assert!(site.all_closed(), "{}", h2_lines(&site.proxy.scrape()));
}

#[test]
fn rapid_reset_gets_enhance_your_calm() {
    let _w = watchdog();
    let site = Site::start();
    site.attack("rapid-reset");
    // The reset budget (200 per 10 s) bounds the upstream work too.
    let accepted = site.hold.accepted();
    assert!(accepted <= 300, "{accepted} upstream connections");
}

#[test]
fn continuation_flood_is_cut_off() {
    let _w = watchdog();
    let site = Site::start();
    site.attack("continuation-flood");
    site.attack("continuation-trickle");
}

#[test]
fn hpack_bomb_gets_431() {
    let _w = watchdog();
    let site = Site::start();
    site.attack("hpack-bomb");
}

#[test]
fn empty_data_flood_gets_enhance_your_calm() {
    let _w = watchdog();
    let site = Site::start();
    site.attack("empty-data-flood");
}

#[test]
fn settings_and_ping_floods_stay_bounded() {
    let _w = watchdog();
    let site = Site::start();
    site.attack("settings-flood");
    site.attack("ping-flood");
}

#[test]
fn too_many_streams_are_refused() {
    let _w = watchdog();
    let site = Site::start();
    site.attack("too-many-streams");
}

/// A script that stops half-way for the test to look at the proxy: it
/// prints a line, then waits for one on its stdin.
struct Paused {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    what: String,
}

impl Paused {
    fn spawn(what: &str, mut command: Command) -> Paused {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the tools venv's python");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Paused {
            child,
            lines,
            what: what.to_string(),
        }
    }

    /// Waits for the script to print `line`; fails with its output if it
    /// printed something else or ended.
    fn wait_for(&mut self, line: &str) {
        let got = self.lines.next().and_then(Result::ok).unwrap_or_default();
        if got != line {
            let mut stderr = String::new();
            let _ = self
                .child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr);
            panic!("{}: {got}\n{stderr}", self.what);
        }
    }

    /// Lets it go on; its last lines, once it exited 0.
    fn finish(mut self) -> String {
        writeln!(self.child.stdin.take().unwrap(), "go on").unwrap();
        let rest: Vec<String> = self.lines.by_ref().map_while(Result::ok).collect();
        let rest = rest.join("\n");
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        let _ = self
            .child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr);
        println!("{}:\n{rest}", self.what);
        assert!(status.success(), "{}: {rest}\n{stderr}", self.what);
        rest
    }
}

#[test]
fn zero_window_stall_stops_reading_the_upstream() {
    let _w = watchdog();
    let site = Site::start();
    let before = peak_rss(&site.proxy);
    let mut script = Paused::spawn(
        "zero-window-stall",
        script("attack.py", site.addr(), &["zero-window-stall"]),
    );
    script.wait_for("stalled");
    assert!(
        site.endless.blocked.recv_timeout(IO_TIMEOUT).is_ok(),
        "the proxy kept reading /stream: {} octets",
        site.endless.written.load(Ordering::SeqCst)
    );
    let taken = site.endless.written.load(Ordering::SeqCst);
    println!(
        "zero-window-stall: the proxy took {} KiB of /stream",
        taken >> 10
    );
    assert!(taken < STALL_READ_LIMIT, "the proxy took {taken} octets");
    assert_eq!(site.proxy.metric("wsproxy_h2_connections"), 1.0);
    script.finish();
    site.check_after_attack("zero-window-stall", before);
}

#[test]
fn gauges_and_counters_follow_the_tunnels() {
    let _w = watchdog();
    let site = Site::start();
    let mut script = Paused::spawn("tunnels", script("tunnels.py", site.addr(), &["3"]));
    script.wait_for("open");
    let text = site.proxy.scrape();
    for (series, want) in [
        ("wsproxy_h2_connections", 1.0),
        ("wsproxy_h2_websocket_streams", 3.0),
        ("wsproxy_h2_streams_total{kind=\"websocket\"}", 3.0),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in:\n{text}");
    }
    assert_eq!(script.finish(), "closed");
    assert!(site.all_closed(), "{}", h2_lines(&site.proxy.scrape()));
    assert_eq!(
        site.proxy
            .metric("wsproxy_h2_streams_total{kind=\"websocket\"}"),
        3.0
    );
}

/// A rustls client offering h2 and http/1.1, trusting the demo CA.
fn offers_h2() -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(demo_ca()).unwrap();
    let mut config = client_config(&pem, &[&rustls::version::TLS13]);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

fn alpn_of(proxy: &Proxy) -> Option<Vec<u8>> {
    let stream = tls_connect(proxy.addr(), offers_h2(), "localhost").expect("TLS handshake");
    stream.conn.alpn_protocol().map(<[u8]>::to_vec)
}

#[test]
fn quick_mode_http2_flag_offers_h2_and_without_it_http1_only() {
    let _w = watchdog();
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/certs");
    let (cert, key) = (certs.join("localhost.pem"), certs.join("localhost.key"));
    let tls = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let (upstream, _) = hold_upstream();
    let with = proxy_to(&[upstream.addr], &[&tls[..], &["--http2"]].concat());
    assert_eq!(alpn_of(&with).as_deref(), Some(&b"h2"[..]));
    let without = proxy_to(&[upstream.addr], &tls);
    assert_ne!(alpn_of(&without).as_deref(), Some(&b"h2"[..]));
}

#[test]
fn http2_without_tls_is_refused_in_the_file_and_in_quick_mode() {
    let _w = watchdog();
    let dir = TempDir::new();
    let config = dir.write(
        "wsproxy.toml",
        "workers = 1\n[[listener]]\naddress = \"127.0.0.1:0\"\nhttp2 = true\n\
         [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"127.0.0.1:9\"\n",
    );
    let log = Proxy::try_start(&["--config", config.to_str().unwrap()])
        .err()
        .expect("a plaintext listener with http2 = true is refused");
    assert!(log.contains("http2 needs TLS"), "{log}");
    let quick = Proxy::try_start(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--http2",
    ]);
    assert!(
        quick.is_err(),
        "--http2 without --tls-cert started a listener that cannot offer HTTP/2"
    );
}
