//! Active health checks against the real binary: a server that answers its
//! checks wrongly is marked down with no client traffic, gets no new
//! tunnels, comes back after `rise` good checks; `on_down = "drain"` gives
//! its tunnels a Close (1001) both ways; one check per interval per server
//! whatever `workers` is; `/status` and `/metrics` say what checks found.

mod common;

use std::io::{Cursor, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::upstreams::answer_close;
use common::*;
use serde_json::Value;
use ws::{Frame, Opcode};

const GOING_AWAY: u16 = 1001;

/// Generous bound for anything the proxy does by itself on a busy machine.
const SLACK: Duration = Duration::from_secs(5);

/// What a backend's tunnels saw.
#[derive(Debug)]
enum Seen {
    Frame(Frame),
    /// A frame that came unmasked, as a client's must never (RFC 6455 5.3).
    Unmasked(Frame),
    End,
}

/// An upstream server whose answer to health checks (`GET /health…`) the
/// test sets: a status code, or 101 for a proper WebSocket upgrade. Any
/// other request is a tunnel: upgraded, every frame it receives reported,
/// a Close answered with a Close.
struct Backend {
    upstream: RawUpstream,
    /// The status health checks get; 101 answers an upgrade properly.
    answer: Arc<AtomicU16>,
    /// When each health check arrived.
    checks: Arc<Mutex<Vec<Instant>>>,
    /// Frames health checks sent after their upgrade.
    check_frames: Arc<Mutex<Vec<Frame>>>,
    /// Tunnels opened to it.
    tunnels: Arc<AtomicUsize>,
    seen: mpsc::Receiver<Seen>,
}

impl Backend {
    fn start(answer: u16) -> Backend {
        let answer = Arc::new(AtomicU16::new(answer));
        let checks = Arc::new(Mutex::new(Vec::new()));
        let check_frames = Arc::new(Mutex::new(Vec::new()));
        let tunnels = Arc::new(AtomicUsize::new(0));
        let (tx, seen) = mpsc::channel();
        let tx = Mutex::new(tx);
        let upstream = {
            let (answer, checks, check_frames, tunnels) = (
                Arc::clone(&answer),
                Arc::clone(&checks),
                Arc::clone(&check_frames),
                Arc::clone(&tunnels),
            );
            RawUpstream::start(move |mut stream| {
                let Ok((head, rest)) = ws::read_head(&mut stream) else {
                    return; // a tcp check: connected, nothing sent
                };
                let head = String::from_utf8(head).unwrap();
                let key = field(&head, "sec-websocket-key").map(str::to_string);
                if head.starts_with("GET /health") {
                    checks.lock().unwrap().push(Instant::now());
                    let status = answer.load(Ordering::SeqCst);
                    if status != 101 {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        return;
                    }
                    let _ = write!(
                        stream,
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                        ws::accept_key(&key.expect("an upgrade check sends a key"))
                    );
                    let mut reader = Cursor::new(rest).chain(stream);
                    if let Ok((header, payload)) = ws::read_raw_frame(&mut reader) {
                        assert!(header.mask.is_some(), "a check's frames are masked");
                        check_frames.lock().unwrap().push(Frame {
                            fin: header.fin,
                            opcode: header.opcode,
                            payload,
                        });
                    }
                    return;
                }
                let tx = tx.lock().unwrap().clone();
                let key = key.expect("a tunnel sends a key");
                let _ = write!(
                    stream,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    ws::accept_key(&key)
                );
                tunnels.fetch_add(1, Ordering::SeqCst);
                let mut writer = stream.try_clone().unwrap();
                let mut reader = Cursor::new(rest).chain(stream);
                while let Ok((header, payload)) = ws::read_raw_frame(&mut reader) {
                    let frame = Frame {
                        fin: header.fin,
                        opcode: header.opcode,
                        payload,
                    };
                    let close = frame.opcode == Opcode::Close;
                    let code = frame.close_code();
                    let _ = tx.send(match header.mask {
                        Some(_) => Seen::Frame(frame.clone()),
                        None => Seen::Unmasked(frame.clone()),
                    });
                    if close {
                        let mut out = Vec::new();
                        let reason = ws::close_payload(code.unwrap_or(1000), "");
                        ws::encode_frame(&mut out, true, Opcode::Close, &reason, None);
                        let _ = writer.write_all(&out);
                        break;
                    }
                    // Echo, so a client can tell its tunnel is alive.
                    let mut out = Vec::new();
                    ws::encode_frame(&mut out, true, frame.opcode, &frame.payload, None);
                    let _ = writer.write_all(&out);
                }
                let _ = tx.send(Seen::End);
            })
        };
        Backend {
            upstream,
            answer,
            checks,
            check_frames,
            tunnels,
            seen,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.upstream.addr
    }

    fn answer(&self, status: u16) {
        self.answer.store(status, Ordering::SeqCst);
    }

    fn checks(&self) -> usize {
        self.checks.lock().unwrap().len()
    }
}

/// A proxy in front of group `app` with `servers`, whose health table is
/// `health`; `extra` goes at the top of the file.
fn proxy_with(servers: &[SocketAddr], health: &str, extra: &str) -> (Proxy, TempDir) {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    let text = format!(
        "{extra}\nadmin = \"127.0.0.1:0\"\n[drain]\nspread = \"0s\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [upstream.app]\nservers = [{}]\n[upstream.app.health]\n{health}\n\
         [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"app\"\n",
        list.join(", ")
    );
    let dir = TempDir::new();
    let path = dir.write("wsproxy.toml", &text);
    let proxy = Proxy::start(&["--config", path.to_str().unwrap()]);
    (proxy, dir)
}

/// `GET /status`, parsed.
fn status(proxy: &Proxy) -> Value {
    let mut stream = send(
        proxy.admin_addr(),
        b"GET /status HTTP/1.1\r\nHost: admin\r\n\r\n",
    );
    let (head, body) = read_response(&mut stream);
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(field(&head, "content-type"), Some("application/json"));
    serde_json::from_slice(&body).expect("/status is JSON")
}

/// Server `addr` of group `app` in a `/status` document.
fn server_status(doc: &Value, addr: SocketAddr) -> Value {
    let groups = doc["groups"].as_array().expect("groups");
    let app = groups
        .iter()
        .find(|g| g["name"] == "app")
        .expect("group app");
    let servers = app["servers"].as_array().expect("servers");
    servers
        .iter()
        .find(|s| s["address"] == addr.to_string())
        .unwrap_or_else(|| panic!("no {addr} in {doc:#}"))
        .clone()
}

/// Polls `/status` until server `addr` is in `state` ("up" or "down");
/// how long that took, or None after `limit`.
fn wait_state(proxy: &Proxy, addr: SocketAddr, state: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    eventually(limit, || {
        server_status(&status(proxy), addr)["state"] == state
    })
    .then(|| start.elapsed())
}

fn up_series(addr: SocketAddr) -> String {
    format!("wsproxy_upstream_server_up{{group=\"app\",server=\"{addr}\"}}")
}

/// Opens `n` tunnels through the proxy; each echoes one message.
fn open_tunnels(proxy: &Proxy, n: usize) -> Vec<ws::Client> {
    (0..n)
        .map(|i| {
            let mut client = ws::Client::connect(proxy.addr(), "/ws").unwrap();
            client.send_text(&format!("hello {i}")).unwrap();
            let echo = client.recv().unwrap();
            assert_eq!(echo.text(), Some(format!("hello {i}").as_str()));
            client
        })
        .collect()
}

#[test]
fn a_server_failing_http_checks_is_marked_down_gets_no_tunnels_and_comes_back() {
    let _w = watchdog();
    let (a, b) = (Backend::start(200), Backend::start(200));
    let interval = Duration::from_millis(300);
    let (fall, rise) = (3, 2);
    let health = format!(
        "check = \"http\"\npath = \"/health\"\ninterval = \"300ms\"\ntimeout = \"1s\"\n\
         fall = {fall}\nrise = {rise}"
    );
    let (proxy, _dir) = proxy_with(&[a.addr(), b.addr()], &health, "workers = 2");
    // The checks begin at once, with no client traffic.
    let checked = |addr| server_status(&status(&proxy), addr)["checks"]["last"] != Value::Null;
    assert!(eventually(SLACK, || checked(a.addr()) && checked(b.addr())));
    let doc = status(&proxy);
    let sa = server_status(&doc, a.addr());
    assert_eq!(sa["state"], "up", "{doc:#}");
    assert_eq!(sa["name"], a.addr().to_string());
    let last = &sa["checks"]["last"];
    assert_eq!(last["result"], "passed", "{doc:#}");
    assert!(last["seconds_ago"].as_f64().unwrap() < SLACK.as_secs_f64());
    assert_eq!(doc["groups"][0]["health"]["check"], "http");
    assert_eq!(proxy.metric(&up_series(a.addr())), 1.0);

    // No client traffic at all: the checks alone take it down.
    a.answer(500);
    let took = wait_state(&proxy, a.addr(), "down", interval * fall + SLACK)
        .expect("marked down within fall × interval");
    println!(
        "marked down {took:?} after its checks began failing (fall × interval = {:?})",
        interval * fall
    );
    let sa = server_status(&status(&proxy), a.addr());
    assert_eq!(sa["down_by"], serde_json::json!(["active"]));
    assert_eq!(sa["checks"]["last"]["result"], "got 500");
    assert!(sa["checks"]["failed_in_a_row"].as_u64().unwrap() >= fall as u64);
    assert_eq!(a.tunnels.load(Ordering::SeqCst), 0, "no client traffic");
    assert!(proxy.wait_for_log(&format!(
        "upstream app server {}: marked down after 3 failed http checks (last: got 500)",
        a.addr()
    )));
    assert_eq!(proxy.metric(&up_series(a.addr())), 0.0);
    assert_eq!(proxy.metric(&up_series(b.addr())), 1.0);
    let failed = format!(
        "wsproxy_upstream_checks_total{{group=\"app\",server=\"{}\",result=\"failed\"}}",
        a.addr()
    );
    assert!(proxy.metric(&failed) >= fall as f64);

    // Every new tunnel goes to the other server.
    let clients = open_tunnels(&proxy, 8);
    assert_eq!(a.tunnels.load(Ordering::SeqCst), 0);
    assert_eq!(b.tunnels.load(Ordering::SeqCst), 8);
    drop(clients);

    a.answer(204);
    let took = wait_state(&proxy, a.addr(), "up", interval * rise + SLACK)
        .expect("marked up after rise good checks");
    println!(
        "marked up {took:?} after its checks began passing (rise × interval = {:?})",
        interval * rise
    );
    assert!(proxy.wait_for_log(&format!(
        "upstream app server {}: marked up after 2 passed http checks",
        a.addr()
    )));
    assert_eq!(proxy.metric(&up_series(a.addr())), 1.0);
    let _clients = open_tunnels(&proxy, 4);
    assert!(
        a.tunnels.load(Ordering::SeqCst) >= 1,
        "back in the rotation"
    );
}

#[test]
fn websocket_checks_want_a_101_with_the_right_accept_then_close_1000() {
    let _w = watchdog();
    let (a, b) = (Backend::start(101), Backend::start(101));
    let health = "check = \"websocket\"\npath = \"/health/ws\"\ninterval = \"200ms\"\n\
                  timeout = \"1s\"\nfall = 2\nrise = 1";
    let (proxy, _dir) = proxy_with(&[a.addr(), b.addr()], health, "");
    assert!(eventually(SLACK, || !a
        .check_frames
        .lock()
        .unwrap()
        .is_empty()));
    let frame = a.check_frames.lock().unwrap()[0].clone();
    assert_eq!(frame.opcode, Opcode::Close);
    assert_eq!(frame.close_code(), Some(1000));
    assert_eq!(server_status(&status(&proxy), a.addr())["state"], "up");

    // A plain 200 is not an upgrade.
    a.answer(200);
    wait_state(&proxy, a.addr(), "down", SLACK).expect("a 200 fails a websocket check");
    let sa = server_status(&status(&proxy), a.addr());
    assert_eq!(sa["checks"]["last"]["result"], "got 200");
    let _clients = open_tunnels(&proxy, 4);
    assert_eq!(a.tunnels.load(Ordering::SeqCst), 0);
    a.answer(101);
    wait_state(&proxy, a.addr(), "up", SLACK).expect("back after one good check");
}

#[test]
fn on_down_drain_sends_close_1001_to_both_ends_of_its_tunnels() {
    let _w = watchdog();
    let (a, b) = (Backend::start(200), Backend::start(200));
    let health = "check = \"http\"\npath = \"/health\"\ninterval = \"200ms\"\ntimeout = \"1s\"\n\
                  fall = 2\non_down = \"drain\"";
    let (proxy, _dir) = proxy_with(&[a.addr(), b.addr()], health, "workers = 1");
    // Round-robin over two servers: two tunnels, one on each.
    let mut clients = open_tunnels(&proxy, 2);
    assert_eq!(a.tunnels.load(Ordering::SeqCst), 1);
    assert_eq!(b.tunnels.load(Ordering::SeqCst), 1);
    let on_a = a.seen.recv_timeout(IO_TIMEOUT).unwrap();
    assert!(matches!(on_a, Seen::Frame(_)), "{on_a:?}");
    let on_b = b.seen.recv_timeout(IO_TIMEOUT).unwrap();
    let Seen::Frame(first_b) = on_b else {
        panic!("{on_b:?}")
    };
    let (on_a_client, on_b_client) = if first_b.text() == Some("hello 0") {
        let b_client = clients.remove(0);
        (clients.remove(0), b_client)
    } else {
        let a_client = clients.remove(0);
        (a_client, clients.remove(0))
    };
    let (mut on_a_client, mut on_b_client) = (on_a_client, on_b_client);
    let before = a.checks();

    a.answer(503);
    // The client end gets a Close 1001 …
    let close = loop {
        let frame = on_a_client.recv().expect("a Close before the end");
        if frame.opcode == Opcode::Close {
            break frame;
        }
    };
    assert_eq!(close.close_code(), Some(GOING_AWAY));
    assert_eq!(&close.payload[2..], b"upstream server down");
    assert!(a.checks() >= before + 2, "after the checks failed");
    // … and so does the upstream end, masked as a client's.
    let up = loop {
        match a
            .seen
            .recv_timeout(IO_TIMEOUT)
            .expect("the upstream end saw something")
        {
            Seen::Frame(f) if f.opcode == Opcode::Close => break f,
            Seen::Frame(_) => continue,
            Seen::Unmasked(f) => panic!("the upstream end got an unmasked frame: {f:?}"),
            Seen::End => panic!("the upstream end closed without a Close"),
        }
    };
    assert_eq!(up.close_code(), Some(GOING_AWAY));
    assert_eq!(&up.payload[2..], b"upstream server down");
    assert!(proxy.wait_for_log(
        "marked down after 2 failed http checks (last: got 503); draining its tunnels"
    ));
    assert!(proxy.metric("wsproxy_tunnels_drained_total") >= 1.0);
    // The client answers the Close as clients do; the proxy then ends it.
    answer_close(&mut on_a_client);
    assert!(eventually(SLACK, || {
        server_status(&status(&proxy), a.addr())["tunnels"] == 0
    }));

    // The other server's tunnel runs on.
    on_b_client.send_text("still here").unwrap();
    assert_eq!(on_b_client.recv().unwrap().text(), Some("still here"));
    assert_eq!(server_status(&status(&proxy), b.addr())["state"], "up");
}

#[test]
fn one_check_per_interval_per_server_whatever_the_workers() {
    let _w = watchdog();
    let a = Backend::start(200);
    let interval = Duration::from_millis(200);
    let health = "check = \"http\"\npath = \"/health\"\ninterval = \"200ms\"";
    let (_proxy, _dir) = proxy_with(&[a.addr()], health, "workers = 4");
    assert!(eventually(SLACK, || a.checks() >= 1));
    let window = Duration::from_secs(3);
    let start = Instant::now();
    let at_start = a.checks();
    while start.elapsed() < window {
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = start.elapsed();
    let counted = a.checks() - at_start;
    let expected = elapsed.as_secs_f64() / interval.as_secs_f64();
    println!(
        "{counted} checks in {elapsed:?} with 4 workers at a {interval:?} interval \
         (one per interval: {expected:.1}; one per worker per interval: {:.1})",
        expected * 4.0
    );
    // At most one per interval (and one at the window's edge); a loaded
    // machine may start some late, never early.
    assert!(
        counted as f64 <= expected + 1.0,
        "{counted} > {expected:.1}"
    );
    assert!(
        counted as f64 >= expected / 2.0,
        "{counted} < {expected:.1} / 2"
    );
    assert_eq!(a.upstream.accepted(), a.checks(), "only checks reached it");
}

#[test]
fn a_tcp_check_marks_a_closed_port_down() {
    let _w = watchdog();
    let a = Backend::start(200);
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let health = "check = \"tcp\"\ninterval = \"200ms\"\nfall = 2";
    let (proxy, _dir) = proxy_with(&[closed, a.addr()], health, "");
    wait_state(&proxy, closed, "down", SLACK).expect("a refused connect fails a tcp check");
    let doc = status(&proxy);
    let s = server_status(&doc, closed);
    assert_eq!(s["down_by"], serde_json::json!(["active"]), "{doc:#}");
    assert_eq!(s["checks"]["last"]["result"], "connection refused");
    assert_eq!(s["tunnels"], 0);
    assert_eq!(server_status(&doc, a.addr())["state"], "up");
    assert_eq!(proxy.metric(&up_series(closed)), 0.0);
    // Connects go straight to the open one: none fails.
    let _clients = open_tunnels(&proxy, 4);
    assert_eq!(a.tunnels.load(Ordering::SeqCst), 4);
    assert_eq!(proxy.metric("wsproxy_upstream_connect_failures_total"), 0.0);
    assert!(TcpStream::connect(closed).is_err());
}

#[test]
fn a_reload_keeps_what_checks_found_of_a_server_it_keeps() {
    let _w = watchdog();
    let (a, b) = (Backend::start(500), Backend::start(200));
    let health = "check = \"http\"\npath = \"/health\"\ninterval = \"200ms\"\nfall = 1\nrise = 1";
    let (proxy, dir) = proxy_with(&[a.addr(), b.addr()], health, "");
    wait_state(&proxy, a.addr(), "down", SLACK).expect("down");
    // The same group with a third server.
    let c = Backend::start(200);
    let text = format!(
        "admin = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [upstream.app]\nservers = [\"{}\", \"{}\", \"{}\"]\n[upstream.app.health]\n{health}\n\
         [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"app\"\n",
        a.addr(),
        b.addr(),
        c.addr()
    );
    dir.write("wsproxy.toml", &text);
    proxy.signal(libc::SIGHUP);
    assert!(proxy.wait_for_log("SIGHUP: reloaded"));
    let doc = status(&proxy);
    assert_eq!(
        server_status(&doc, a.addr())["state"],
        "down",
        "kept: {doc:#}"
    );
    wait_state(&proxy, c.addr(), "up", SLACK).expect("the new server is listed");
    assert!(
        eventually(SLACK, || c.checks() >= 1),
        "the new server is checked"
    );
    a.answer(200);
    wait_state(&proxy, a.addr(), "up", SLACK).expect("the kept server's checks go on");
}
