//! Shared helpers for the integration tests: the real `wsproxy-fast` binary
//! started on `127.0.0.1:0`, raw upstreams that script their side of the
//! conversation, blocking socket helpers, and a watchdog per test.
//!
//! Every socket gets read and write timeouts and every test a watchdog, so
//! a hang fails the run instead of blocking CI.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use wsbench::ws;

pub mod heads;
pub mod http;
pub mod pebble;
pub mod tls;
pub mod upstreams;

pub use http::{read_response, Messages};

/// Socket timeout for test clients and raw upstreams.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a test may run before its watchdog aborts the test binary.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Aborts the whole test process if the test holding it runs past its
/// limit: a hang becomes a loud failure.
pub struct Watchdog {
    cancel: Option<mpsc::Sender<()>>,
}

pub fn watchdog() -> Watchdog {
    watchdog_for(TEST_LIMIT)
}

pub fn watchdog_for(limit: Duration) -> Watchdog {
    let (cancel, cancelled) = mpsc::channel::<()>();
    let name = thread::current().name().unwrap_or("test").to_string();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(limit) {
            eprintln!("watchdog: {name} ran longer than {limit:?}; aborting");
            std::process::abort();
        }
    });
    Watchdog {
        cancel: Some(cancel),
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.cancel.take());
    }
}

/// Polls `check` until it holds or `limit` passes. For conditions that can
/// only be observed from outside (a process's fd count, a log line), not a
/// stand-in for a missing synchronisation point.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A running proxy process; killed on drop.
pub struct Proxy {
    child: Child,
    /// Addresses it listens on, from its log, in `--listen` order.
    pub addrs: Vec<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// Runs the binary with `args` and waits until it is ready.
    pub fn start(args: &[&str]) -> Proxy {
        match Proxy::try_start(args) {
            Ok(proxy) => proxy,
            Err(log) => panic!("proxy did not start; its output:\n{log}"),
        }
    }

    /// Runs the binary; `Err` carries its output if it exits before ready.
    pub fn try_start(args: &[&str]) -> Result<Proxy, String> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsproxy-fast"));
        command.args(args);
        Proxy::try_start_command(command)
    }

    /// Runs the binary under bash after the shell `setup` (e.g. `ulimit`
    /// lines, or redirections of descriptors past 9, which dash lacks),
    /// then waits until it is ready.
    pub fn start_in_shell(setup: &str, args: &[&str]) -> Proxy {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!("{setup} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_wsproxy-fast"))
            .args(args);
        match Proxy::try_start_command(command) {
            Ok(proxy) => proxy,
            Err(log) => panic!("proxy did not start; its output:\n{log}"),
        }
    }

    fn try_start_command(mut command: Command) -> Result<Proxy, String> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run wsproxy-fast");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let mut ready_tx = Some(ready_tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let ready = line.contains(" ready: ");
                    log.lock().unwrap().push(line);
                    if ready {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            });
        }
        // The reader thread drops its sender at EOF, so an early exit
        // wakes this wait too.
        let started = ready_rx.recv_timeout(IO_TIMEOUT).is_ok();
        let lines = log.lock().unwrap().clone();
        if !started {
            let _ = child.kill();
            let _ = child.wait();
            return Err(lines.join("\n"));
        }
        let addrs = lines
            .iter()
            .filter_map(|l| l.split("listening on ").nth(1))
            .map(|a| a.trim().parse().expect("listen address in log"))
            .collect();
        Ok(Proxy { child, addrs, log })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The admin listener's address (`--admin`), from the startup log.
    pub fn admin_addr(&self) -> SocketAddr {
        self.log()
            .iter()
            .find_map(|l| l.split("admin endpoints on http://").nth(1))
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .expect("an admin address in the log")
    }

    /// `GET /metrics` from the admin listener.
    pub fn scrape(&self) -> String {
        let mut stream = send(
            self.admin_addr(),
            b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n",
        );
        let (head, body) = read_response(&mut stream);
        assert_eq!(status_of(&head), 200, "{head}");
        String::from_utf8(body).unwrap()
    }

    /// One sample's value from a scrape: `series` is the name with its
    /// labels as printed, e.g. `wsproxy_handshakes_total{code="101"}`.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.scrape();
        sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        eventually(IO_TIMEOUT, || self.log().iter().any(|l| l.contains(needle)))
    }

    /// Open file descriptors of the proxy process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read the proxy's /proc/PID/fd")
            .count()
    }

    /// Open pipes of the proxy process (its stderr, piped to this harness,
    /// is one of them).
    pub fn pipe_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read the proxy's /proc/PID/fd")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("pipe:"))
            .count()
    }

    /// CPU time the process has used (user + system), in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        // utime and stime are fields 14 and 15 of stat(5); 3 is the first
        // after the command name.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Resident memory of the proxy process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kb * 1024
    }

    /// Sends `signal` (a libc constant) to the process.
    pub fn signal(&self, signal: i32) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut status = None;
        eventually(limit, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A proxy in front of `upstreams`, plus `extra` flags; one worker unless
/// The tools venv's Python once it imports `modules` (what `scripts/setup.sh
/// TOOL` installs there): one missing fails the test, never skips it.
pub fn tools_python(modules: &str, tool: &str) -> std::path::PathBuf {
    let venv =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/python");
    let ok = Command::new(&venv)
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import {modules}: run scripts/setup.sh {tool}",
        venv.display()
    );
    venv
}

/// `extra` says otherwise.
pub fn proxy_to(upstreams: &[SocketAddr], extra: &[&str]) -> Proxy {
    let mut args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
    if !extra.contains(&"--workers") {
        args.extend(["--workers".to_string(), "1".to_string()]);
    }
    for u in upstreams {
        args.push("--upstream".into());
        args.push(u.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Proxy::start(&refs)
}

/// A listener whose connections are each handed to `handler` on a thread:
/// an upstream that scripts exactly what the test needs.
pub struct RawUpstream {
    pub addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    accepted: Arc<Mutex<usize>>,
}

impl RawUpstream {
    pub fn start<F>(handler: F) -> RawUpstream
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stopping = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(0));
        let handler = Arc::new(handler);
        let acceptor = {
            let stopping = Arc::clone(&stopping);
            let accepted = Arc::clone(&accepted);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    *accepted.lock().unwrap() += 1;
                    configure(&stream);
                    let handler = Arc::clone(&handler);
                    thread::spawn(move || handler(stream));
                }
            })
        };
        RawUpstream {
            addr,
            stopping,
            acceptor: Some(acceptor),
            accepted,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Applies the test socket timeouts.
pub fn configure(stream: &TcpStream) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let _ = stream.set_nodelay(true);
}

/// Connects to `addr` with the test timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    configure(&stream);
    stream
}

/// Connects to `addr` from `source` (an IP on this host, any port), with
/// the test timeouts: loopback has all of 127.0.0.0/8, so tests can play
/// many clients.
pub fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&source.into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream = TcpStream::from(socket);
    configure(&stream);
    stream
}

/// Connects and writes `bytes`.
pub fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = connect(addr);
    stream.write_all(bytes).expect("write request");
    stream
}

/// Reads until EOF.
pub fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read to EOF");
    out
}

/// Reads everything up to EOF and splits it into the first head and the
/// rest: for an answer that ends with the connection.
pub fn read_response_to_close(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let all = read_all(stream);
    let end = ws::find_head_end(&all)
        .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(&all)));
    (
        String::from_utf8(all[..end].to_vec()).unwrap(),
        all[end..].to_vec(),
    )
}

/// Status code of a response head.
pub fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

/// A field's value in a head (case-insensitive name), if present once or more.
pub fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Every line of a head whose name is `name`.
pub fn fields<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

/// Upstream side: reads a request head and answers 101 with the right
/// accept key. Returns the head as received and any bytes read after it.
pub fn accept_upgrade(stream: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let (head, rest) = ws::read_head(stream)?;
    let head = String::from_utf8(head).unwrap();
    let key = field(&head, "sec-websocket-key").expect("key forwarded");
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        ws::accept_key(key)
    );
    stream.write_all(answer.as_bytes())?;
    Ok((head, rest))
}

/// A client upgrade head for `addr` with `extra` lines (each ending CRLF).
pub fn upgrade_head(addr: SocketAddr, key: &str, extra: &str) -> String {
    format!(
        "GET /chat HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Deterministic pseudo-random bytes (xorshift64, eight bytes a step), so
/// a failure reproduces.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes all of `data` then shuts the write side.
pub fn write_and_shut(stream: &mut TcpStream, data: &[u8]) {
    stream.write_all(data).expect("write");
    stream.shutdown(Shutdown::Write).expect("shutdown");
}

/// Reads exactly `len` bytes.
pub fn read_exact(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).expect("read_exact");
    buf
}

/// A directory of its own under the system temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wsproxy-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A sample's value in Prometheus text, by its exact series.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
