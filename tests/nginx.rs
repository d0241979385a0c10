//! nginx configurations run two ways, with nginx itself as the oracle:
//! each file under `tests/data/nginx/` is started with real nginx and with
//! `wsproxy-fast --nginx-config` (ports and the upstream address filled
//! in), the same requests go to both, and both must answer with the same
//! status (and `Location`, HSTS and the other added fields, and the same
//! body for static files), and deliver the same request line and fields
//! to an upstream that records what it gets, and echo the same bytes
//! through an upgrade. The differences the translation's notes announce
//! are the only ones let through; [`DIFFERENCES`] lists them.
//!
//! A file names its upstreams by placeholders: `@UP@` records and
//! answers, `@DOWN@` refuses every connection, `@STANDBY@` answers 503
//! (a backup that must not be reached while its primary is up).
//!
//! A file lists its requests in comments:
//! `# request: P1 GET /path [upgrade [idle-close]] [tls=SNI] [host=HOST] [xff=VALUE]`;
//! `idle-close` waits, after the echo, for the tunnel to be closed for
//! being idle (`proxy_read_timeout`).
//! nginx is not optional: without it these tests fail.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tls::{demo_client, tls_connect};
use common::*;

/// What wsproxy-fast does differently on purpose, each announced by a
/// note of the translation (the file and the note's words):
const DIFFERENCES: [(&str, &str); 7] = [
    (
        "forwarding fields added",
        "X-Forwarded-For, X-Real-IP and X-Forwarded-Proto always go upstream \
         (the proxy_pass note): nginx sends only those proxy_set_header names",
    ),
    (
        "forged X-Forwarded-For refused",
        "a client's own X-Forwarded-For is replaced by its address, not appended \
         to or passed on (the proxy_set_header note); only set_real_ip_from peers are believed",
    ),
    (
        "HTTP/1.1 upstream",
        "without proxy_http_version 1.1 nginx speaks HTTP/1.0 upstream (the proxy_pass note)",
    ),
    (
        "Connection is each side's own",
        "a hop-by-hop field: nginx sends what proxy_set_header Connection says, \
         the proxy its own keep-alive or upgrade",
    ),
    (
        "added fields on 101",
        "an add_header without always goes on 101 answers too (the add_header note)",
    ),
    (
        "no trailing-slash redirect",
        "nginx answers a proxied prefix location's path without its slash with a 301 \
         (the location note); the proxy routes it like any other path",
    ),
    (
        "expires dropped",
        "the proxy adds no Expires or Cache-Control max-age to files (the expires note)",
    ),
];

/// Response fields compared besides the status.
const RESPONSE_FIELDS: [&str; 5] = [
    "location",
    "strict-transport-security",
    "x-frame-options",
    "x-content-type-options",
    "cache-control",
];

/// Fields not compared at the upstream: the test's own marker, and the
/// hop-by-hop `Connection` (difference 5).
const UNCOMPARED: [&str; 3] = ["x-test-id", "connection", "keep-alive"];

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nginx")
}

/// The nginx binary, or a loud failure.
fn nginx_binary() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"] {
        let path = Path::new(dir).join("nginx");
        if path.exists() {
            return path;
        }
    }
    panic!(
        "nginx is not installed, and these tests compare against it: \
         run scripts/setup.sh nginx (apt-get install nginx)"
    );
}

/// One request of a file's table.
#[derive(Clone, Debug)]
struct Request {
    line: usize,
    listener: String,
    method: String,
    target: String,
    upgrade: bool,
    idle_close: bool,
    tls: Option<String>,
    host: String,
    xff: Option<String>,
}

fn requests(text: &str) -> Vec<Request> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(spec) = line.strip_prefix("# request: ") else {
            continue;
        };
        let mut words = spec.split_whitespace();
        let mut r = Request {
            line: i + 1,
            listener: words.next().unwrap().to_string(),
            method: words.next().unwrap().to_string(),
            target: words.next().unwrap().to_string(),
            upgrade: false,
            idle_close: false,
            tls: None,
            host: "localhost".into(),
            xff: None,
        };
        for w in words {
            match w.split_once('=') {
                None if w == "upgrade" => r.upgrade = true,
                None if w == "idle-close" => r.idle_close = true,
                Some(("tls", v)) => r.tls = Some(v.into()),
                Some(("host", v)) => r.host = v.into(),
                Some(("xff", v)) => r.xff = Some(v.into()),
                _ => panic!("line {}: unknown request option {w}", i + 1),
            }
        }
        out.push(r);
    }
    out
}

/// What one side answered to one request.
#[derive(Debug, Default)]
struct Outcome {
    status: u16,
    fields: BTreeMap<String, String>,
    body: Vec<u8>,
    echoed: Option<bool>,
    /// The tunnel, left idle, was closed after 1 to 10 s.
    idle_closed: Option<bool>,
    /// What the upstream got: the request line's method and target, its
    /// version, and its fields.
    upstream: Option<(String, String, BTreeMap<String, String>)>,
}

/// An upstream that records every request head by its `X-Test-Id`,
/// answers `200 ok`, or `101` and echoes.
struct Recorder {
    upstream: RawUpstream,
    seen: Arc<Mutex<HashMap<String, String>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let record = Arc::clone(&seen);
        let upstream = RawUpstream::start(move |mut stream| {
            let Ok((head, _rest)) = ws::read_head(&mut stream) else {
                return;
            };
            let head = String::from_utf8_lossy(&head).into_owned();
            if let Some(id) = field(&head, "x-test-id") {
                record.lock().unwrap().insert(id.to_string(), head.clone());
            }
            let upgrade =
                field(&head, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
            if upgrade {
                let key = field(&head, "sec-websocket-key").unwrap_or("");
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Accept: {}\r\n\r\n",
                    ws::accept_key(key)
                );
                if stream.write_all(answer.as_bytes()).is_err() {
                    return;
                }
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            } else {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        Recorder { upstream, seen }
    }

    fn take(&self, id: &str) -> Option<String> {
        self.seen.lock().unwrap().remove(id)
    }
}

/// The upstreams a file's placeholders name.
struct Upstreams {
    /// `@UP@`: the [`Recorder`].
    up: SocketAddr,
    /// `@DOWN@`: bound and never listening, so connects are refused and
    /// nobody else can take the port meanwhile.
    down: SocketAddr,
    /// `@STANDBY@`: answers every request 503 `standby`.
    standby: SocketAddr,
}

/// A TCP socket bound to a port on 127.0.0.1 and not listening: connects
/// to it are refused for as long as it is kept.
fn refusing() -> socket2::Socket {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket
}

/// An upstream that answers every request 503 `standby`.
fn standby() -> RawUpstream {
    RawUpstream::start(|mut stream| {
        if ws::read_head(&mut stream).is_ok() {
            let _ = stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 7\r\nConnection: close\r\n\r\nstandby",
            );
        }
    })
}

/// A port nothing listens on now, on 127.0.0.1 and ::1 both. Someone
/// may take it before nginx or the proxy binds it: they are started again
/// on fresh ports when that happens.
fn free_port() -> u16 {
    for _ in 0..100 {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        if TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both 127.0.0.1 and ::1 in 100 tries (is IPv6 loopback up?)");
}

/// A directory holding one rendering of a file: the configuration, the
/// demo certificates and the static files its `root`s name.
fn render(
    dir: &Path,
    name: &str,
    ports: &HashMap<String, u16>,
    upstreams: &Upstreams,
    nginx: bool,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/certs");
    for entry in std::fs::read_dir(certs).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("certs").join(entry.file_name())).unwrap();
    }
    let files = [
        ("www/index.html", "<h1>the app</h1>\n"),
        ("www/app.js", "console.log('app');\n"),
        ("html/index.html", "<h1>nginx's html</h1>\n"),
        ("public/assets/app.css", "body { color: red }\n"),
        ("public/robots.txt", "User-agent: *\n"),
        ("public/index.html", "<h1>the Rails app</h1>\n"),
        ("static/site.css", "h1 { color: blue }\n"),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let mut text = std::fs::read_to_string(data().join(name)).unwrap();
    text = text
        .replace("@UP@", &upstreams.up.to_string())
        .replace("@DOWN@", &upstreams.down.to_string())
        .replace("@STANDBY@", &upstreams.standby.to_string());
    for (name, port) in ports {
        text = text.replace(&format!("@{name}@"), &port.to_string());
    }
    if nginx {
        // Where nginx writes, under its prefix (the proxy writes nothing).
        let d = dir.display();
        let writes = format!(
            "http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/tmp/body;\n    \
             proxy_temp_path {d}/tmp/proxy;\n    fastcgi_temp_path {d}/tmp/fastcgi;\n    \
             uwsgi_temp_path {d}/tmp/uwsgi;\n    scgi_temp_path {d}/tmp/scgi;\n"
        );
        text = text.replacen("http {\n", &writes, 1);
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The placeholders `@P1@`… a file uses.
fn port_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = (1..=4)
        .map(|i| format!("P{i}"))
        .filter(|n| text.contains(&format!("@{n}@")))
        .collect();
    names.dedup();
    names
}

/// Where listener `name` accepts: `[::1]` when the file listens there.
fn address_of(text: &str, name: &str, port: u16) -> SocketAddr {
    if text.contains(&format!("[::1]:@{name}@")) {
        SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port))
    } else {
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    /// SIGTERM, so that the master stops its workers (SIGKILL would leave
    /// them running without it); SIGKILL only if it has not gone in 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx on a rendering with fresh ports; tried again when a port was
/// taken in between.
fn start_nginx(
    tmp: &Path,
    name: &str,
    text: &str,
    upstreams: &Upstreams,
) -> (Nginx, HashMap<String, u16>) {
    let binary = nginx_binary();
    for attempt in 0..5 {
        let dir = tmp.join(format!("nginx-{attempt}"));
        let ports: HashMap<String, u16> = port_names(text)
            .into_iter()
            .map(|n| (n, free_port()))
            .collect();
        let conf = render(&dir, name, &ports, upstreams, true);
        let d = dir.display();
        let child = Command::new(&binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-g")
            .arg(format!("daemon off; pid {d}/nginx.pid;"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nginx");
        // Stopped on drop, also when this attempt fails.
        let mut nginx = Nginx { child };
        let addrs: Vec<SocketAddr> = ports.iter().map(|(n, p)| address_of(text, n, *p)).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = nginx.child.try_wait() {
                break;
            }
            if addrs
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
            {
                return (nginx, ports);
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {addrs:?} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        if !log.contains("Address already in use") {
            panic!("nginx refused {name}:\n{log}");
        }
    }
    panic!("nginx found its ports taken five times");
}

/// wsproxy-fast on a rendering with fresh ports, after `--check` passes.
fn start_proxy(
    tmp: &Path,
    name: &str,
    text: &str,
    upstreams: &Upstreams,
) -> (Proxy, HashMap<String, u16>) {
    let binary = env!("CARGO_BIN_EXE_wsproxy-fast");
    for attempt in 0..5 {
        let dir = tmp.join(format!("proxy-{attempt}"));
        let ports: HashMap<String, u16> = port_names(text)
            .into_iter()
            .map(|n| (n, free_port()))
            .collect();
        let conf = render(&dir, name, &ports, upstreams, false);
        let check = Command::new(binary)
            .args(["--check", "--nginx-config"])
            .arg(&conf)
            .arg("--nginx-prefix")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "--check refused {name}:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let args = [
            "--nginx-config",
            conf.to_str().unwrap(),
            "--nginx-prefix",
            dir.to_str().unwrap(),
        ];
        match Proxy::try_start(&args) {
            Ok(proxy) => return (proxy, ports),
            Err(log) if log.contains("already in use") => continue,
            Err(log) => panic!("wsproxy-fast refused {name}:\n{log}"),
        }
    }
    panic!("wsproxy-fast found its ports taken five times");
}

fn fields_of(head: &str) -> BTreeMap<String, String> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for line in head.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_string();
            fields
                .entry(name)
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
    }
    fields
}

/// Sends `r` to `addr` and reads what came back, and what the upstream
/// recorded under `id`.
fn exchange(addr: SocketAddr, r: &Request, id: &str, key: &str, recorder: &Recorder) -> Outcome {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nX-Test-Id: {id}\r\n",
        r.method, r.target, r.host
    );
    if let Some(xff) = &r.xff {
        head.push_str(&format!("X-Forwarded-For: {xff}\r\n"));
    }
    if r.upgrade {
        head.push_str(&format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        ));
    } else {
        head.push_str("Connection: close\r\n");
    }
    if r.method == "POST" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    let mut outcome = match &r.tls {
        Some(sni) => {
            let mut stream = tls_connect(addr, demo_client(), sni).expect("TLS handshake");
            talk(&mut stream, &head, r)
        }
        None => {
            let mut stream = connect(addr);
            talk(&mut stream, &head, r)
        }
    };
    outcome.upstream = recorder.take(id).map(|h| {
        let mut words = h.lines().next().unwrap_or("").split(' ');
        let method = words.next().unwrap_or("").to_string();
        let target = words.next().unwrap_or("").to_string();
        let version = words.next().unwrap_or("").to_string();
        (format!("{method} {target}"), version, fields_of(&h))
    });
    outcome
}

fn talk<S: Read + Write>(stream: &mut S, head: &str, r: &Request) -> Outcome {
    stream.write_all(head.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut messages = Messages::new(stream);
    let (answer, body) = messages.response(false);
    let status = status_of(&answer);
    let mut outcome = Outcome {
        status,
        fields: fields_of(&answer),
        body,
        ..Outcome::default()
    };
    if r.upgrade && status == 101 {
        assert!(messages.buffered().is_empty(), "bytes after the 101");
        drop(messages);
        let sent = b"\x81\x05hello through the tunnel";
        stream.write_all(sent).unwrap();
        stream.flush().unwrap();
        let mut back = vec![0u8; sent.len()];
        outcome.echoed = Some(stream.read_exact(&mut back).is_ok() && back == sent);
        if r.idle_close {
            // The socket's read timeout (10 s) bounds the wait.
            let idle = Instant::now();
            let mut byte = [0u8; 1];
            let closed = match stream.read(&mut byte) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                ),
            };
            let waited = idle.elapsed();
            outcome.idle_closed = Some(
                closed && waited >= Duration::from_secs(1) && waited < Duration::from_secs(10),
            );
        }
    }
    outcome
}

/// Runs file `name` both ways and compares; returns the differences let
/// through, by kind.
fn differential(name: &str) {
    let _watchdog = watchdog_for(Duration::from_secs(120));
    let text = std::fs::read_to_string(data().join(name)).unwrap();
    let table = requests(&text);
    assert!(!table.is_empty(), "{name} lists no requests");
    let tmp = TempDir::new();
    let recorder = Recorder::start();
    let down = refusing();
    let standby = standby();
    let upstreams = Upstreams {
        up: recorder.upstream.addr,
        down: down.local_addr().unwrap().as_socket().unwrap(),
        standby: standby.addr,
    };
    let (nginx, nginx_ports) = start_nginx(&tmp.0, name, &text, &upstreams);
    let (proxy, proxy_ports) = start_proxy(&tmp.0, name, &text, &upstreams);
    let mut let_through: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut statuses: Vec<u16> = Vec::new();
    for (i, r) in table.iter().enumerate() {
        let at = |ports: &HashMap<String, u16>| address_of(&text, &r.listener, ports[&r.listener]);
        let key = ws::random_key();
        let mut want = exchange(at(&nginx_ports), r, &format!("nginx-{i}"), &key, &recorder);
        let mut got = exchange(at(&proxy_ports), r, &format!("proxy-{i}"), &key, &recorder);
        // Each side has its own ports: named by their placeholders again.
        unport(&mut want, &nginx_ports);
        unport(&mut got, &proxy_ports);
        let client = if at(&proxy_ports).is_ipv6() {
            "::1"
        } else {
            "127.0.0.1"
        };
        let here = format!("{name}:{} {} {}", r.line, r.method, r.target);
        statuses.push(want.status);
        compare(
            &here,
            r,
            client,
            &want,
            &got,
            &mut let_through,
            &mut problems,
        );
    }
    drop(proxy);
    drop(nginx);
    eprintln!(
        "{name}: {} requests (nginx answered {statuses:?}); differences let through: {let_through:?}",
        table.len()
    );
    assert!(
        problems.is_empty(),
        "{name} differs from nginx:\n{}",
        problems.join("\n")
    );
}

/// `outcome` with each of `ports` written as its placeholder (`:@P1@`),
/// where a field names it (a redirect's `Location`, a `Host`).
fn unport(outcome: &mut Outcome, ports: &HashMap<String, u16>) {
    let fix = |value: &mut String| {
        for (name, port) in ports {
            *value = value.replace(&format!(":{port}"), &format!(":@{name}@"));
        }
    };
    outcome.fields.values_mut().for_each(fix);
    if let Some((_, _, fields)) = &mut outcome.upstream {
        fields.values_mut().for_each(fix);
    }
}

/// Counts a difference [`DIFFERENCES`] lists.
fn let_pass(let_through: &mut BTreeMap<&'static str, usize>, name: &'static str) {
    assert!(
        DIFFERENCES.iter().any(|(n, _)| *n == name),
        "{name} is not listed"
    );
    *let_through.entry(name).or_default() += 1;
}

fn compare(
    here: &str,
    r: &Request,
    client: &str,
    want: &Outcome,
    got: &Outcome,
    let_through: &mut BTreeMap<&'static str, usize>,
    problems: &mut Vec<String>,
) {
    let slash_redirect = want.status == 301
        && want
            .fields
            .get("location")
            .is_some_and(|l| l.ends_with(&format!("{}/", r.target)));
    if slash_redirect && got.status == 404 {
        let_pass(let_through, "no trailing-slash redirect");
        return;
    }
    if want.status != got.status {
        problems.push(format!(
            "{here}: status {} from nginx, {} from the proxy",
            want.status, got.status
        ));
    }
    for f in RESPONSE_FIELDS {
        let (n, p) = (want.fields.get(f), got.fields.get(f));
        if n.is_none() && p.is_some() && got.status == 101 {
            let_pass(let_through, "added fields on 101");
        } else if f == "cache-control" && n.is_some_and(|v| v.starts_with("max-age=315360000")) {
            let_pass(let_through, "expires dropped");
        } else if n != p {
            problems.push(format!(
                "{here}: response {f}: nginx {:?}, proxy {:?}",
                want.fields.get(f),
                got.fields.get(f)
            ));
        }
    }
    if want.status == 200 && want.upstream.is_none() && want.body != got.body {
        problems.push(format!("{here}: the static file's body differs"));
    }
    if want.echoed != got.echoed {
        problems.push(format!(
            "{here}: echo through the tunnel: nginx {:?}, proxy {:?}",
            want.echoed, got.echoed
        ));
    }
    if want.idle_closed != got.idle_closed || got.idle_closed == Some(false) {
        problems.push(format!(
            "{here}: closed when idle: nginx {:?}, proxy {:?}",
            want.idle_closed, got.idle_closed
        ));
    }
    if let Some(false) = got.echoed {
        problems.push(format!("{here}: the tunnel did not echo"));
    }
    match (&want.upstream, &got.upstream) {
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => problems.push(format!(
            "{here}: reached the upstream: nginx {}, proxy {}",
            want.upstream.is_some(),
            got.upstream.is_some()
        )),
        (Some((line_n, version_n, fields_n)), Some((line_p, version_p, fields_p))) => {
            if line_n != line_p {
                problems.push(format!(
                    "{here}: upstream request line: nginx {line_n:?}, proxy {line_p:?}"
                ));
            }
            if version_n != version_p {
                if version_n == "HTTP/1.0" && version_p == "HTTP/1.1" {
                    let_pass(let_through, "HTTP/1.1 upstream");
                } else {
                    problems.push(format!(
                        "{here}: upstream version: nginx {version_n}, proxy {version_p}"
                    ));
                }
            }
            let names: std::collections::BTreeSet<&String> =
                fields_n.keys().chain(fields_p.keys()).collect();
            for name in names {
                if UNCOMPARED.contains(&name.as_str()) {
                    if name == "connection" && fields_n.get(name) != fields_p.get(name) {
                        let_pass(let_through, "Connection is each side's own");
                    }
                    continue;
                }
                let (n, p) = (fields_n.get(name), fields_p.get(name));
                if n == p {
                    continue;
                }
                let own = match name.as_str() {
                    "x-forwarded-proto" => Some(if r.tls.is_some() { "https" } else { "http" }),
                    "x-forwarded-for" | "x-real-ip" => Some(client),
                    _ => None,
                };
                match (own, n, p) {
                    (Some(own), None, Some(p)) if p == own && r.xff.is_none() => {
                        let_pass(let_through, "forwarding fields added");
                    }
                    (Some(own), _, Some(p))
                        if p == own && r.xff.is_some() && name == "x-forwarded-for" =>
                    {
                        let_pass(let_through, "forged X-Forwarded-For refused");
                    }
                    (Some(own), None, Some(p)) if p == own => {
                        let_pass(let_through, "forwarding fields added");
                    }
                    _ => problems.push(format!(
                        "{here}: upstream field {name}: nginx {n:?}, proxy {p:?}"
                    )),
                }
            }
        }
    }
}

macro_rules! differential_tests {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                differential($file);
            }
        )*

        #[test]
        fn every_file_in_the_directory_is_run_and_there_are_at_least_twelve() {
            let run = [$($file),*];
            let mut present: Vec<String> = std::fs::read_dir(data())
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".conf"))
                .collect();
            present.sort();
            let mut run: Vec<String> = run.iter().map(|s| s.to_string()).collect();
            run.sort();
            assert_eq!(present, run);
            assert!(run.len() >= 12);
        }
    };
}

differential_tests! {
    example_app_upstream => "app-upstream.conf",
    example_redirect_https => "redirect-https.conf",
    example_example_com => "example-com.conf",
    example_my_api => "my-api.conf",
    socketio => "socketio.conf",
    home_assistant => "home-assistant.conf",
    jupyter => "jupyter.conf",
    grafana_live => "grafana.conf",
    mattermost => "mattermost.conf",
    code_server => "code-server.conf",
    nextcloud_notify_push => "notify-push.conf",
    rails_actioncable => "actioncable.conf",
    django_channels => "channels.conf",
    phoenix => "phoenix.conf",
    gitea => "gitea.conf",
    uptime_kuma => "uptime-kuma.conf",
    admin_access => "admin-access.conf",
    two_sites => "two-sites.conf",
    backup_servers => "backup.conf",
    rewrite_redirects => "rewrite-redirect.conf",
}
