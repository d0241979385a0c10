//! `wsbench soak` end to end: clean against a faithful echo server (the
//! library's `EchoServer`, on 127.0.0.1:0), with every kind of stream and
//! every injected fault seen; and failing, naming the stream, against an
//! echo server that changes one byte now and then. Each run is under a
//! watchdog, so a hang fails instead of blocking CI.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use wsbench::ws::{encode_frame, read_frame, read_head, reply_to, EchoServer, Head, Opcode, Reply};

/// Longest one `wsbench soak` run may take before the test fails.
const WATCHDOG: Duration = Duration::from_secs(60);

/// The corrupting server flips a bit in every this-many-th Binary echo.
const CORRUPT_EVERY: u64 = 50;

/// Runs `wsbench soak --url URL ARGS --json` under the watchdog; returns the
/// exit status and the JSON line.
fn soak(url: &str, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsbench"))
        .args(["soak", "--url", url, "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain stderr (a progress line a second) while waiting.
    let mut stderr = child.stderr.take().unwrap();
    let progress = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + WATCHDOG;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wsbench soak {args:?} ran past the {WATCHDOG:?} watchdog");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut json = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut json)
        .unwrap();
    eprintln!("wsbench soak {args:?}: {}", progress.join().unwrap());
    (status.code().unwrap_or(-1), json)
}

/// The unsigned number after the first `"key":` in `json`.
fn count(json: &str, key: &str) -> u64 {
    let at = json.find(&format!("\"{key}\":")).expect(key) + key.len() + 3;
    json[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Arguments for a short run with every kind of stream and many faults.
const SHORT_MIX: &[&str] = &[
    "--duration",
    "3",
    "--echo-conns",
    "3",
    "--bulk-conns",
    "1",
    "--bulk-rate",
    "0",
    "--churn-conns",
    "2",
    "--churn-rate",
    "100",
    "--abort-percent",
    "30",
];

#[test]
fn a_faithful_echo_passes_with_every_kind_and_fault() {
    let echo = EchoServer::start();
    let (code, json) = soak(&format!("ws://{}/soak", echo.addr), SHORT_MIX);
    assert_eq!(code, 0, "{json}");
    assert!(json.contains("\"ok\":true"), "{json}");
    assert_eq!(count(&json, "failed"), 0, "{json}");
    for kind in ["echo", "bulk", "churn"] {
        let at = json.find(&format!("\"{kind}\":")).unwrap();
        assert!(
            count(&json[at..], "clean") > 0,
            "no clean {kind} stream: {json}"
        );
    }
    for fault in ["reset", "drop", "handshake"] {
        assert!(count(&json, fault) > 0, "no {fault} fault injected: {json}");
    }
    assert!(count(&json, "bytes_checked") > 0, "{json}");
}

#[test]
fn a_changed_byte_fails_the_run_and_names_its_stream() {
    let addr = start_corrupting_echo();
    let (code, json) = soak(&format!("ws://{addr}/soak"), SHORT_MIX);
    assert_eq!(code, 1, "{json}");
    assert!(json.contains("\"ok\":false"), "{json}");
    assert!(count(&json, "failed") > 0, "{json}");
    assert!(
        json.contains("differs from what was sent at payload byte"),
        "{json}"
    );
    assert!(
        json.contains("seed 0x"),
        "a failure names its stream's seed: {json}"
    );
}

#[test]
fn soak_refuses_wss() {
    let (code, _) = soak("wss://127.0.0.1:9/soak", &["--duration", "1"]);
    assert_eq!(code, 2);
}

/// An echo server, one thread per connection, that flips the low bit of
/// the first payload byte of every [`CORRUPT_EVERY`]-th Binary echo.
fn start_corrupting_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // A connection that fails (the client aborted) only ends itself.
            thread::spawn(move || serve_corrupting(stream));
        }
    });
    addr
}

fn serve_corrupting(mut stream: TcpStream) -> io::Result<()> {
    let (head, early) = read_head(&mut stream)?;
    let head = Head::parse(&head).map_err(io::Error::other)?;
    let Reply::Upgrade(response) = reply_to(&head) else {
        return Err(io::Error::other("not an upgrade"));
    };
    stream.write_all(&response)?;
    let mut reader = io::Cursor::new(early).chain(stream.try_clone()?);
    let mut binary = 0u64;
    let mut out = Vec::new();
    loop {
        let mut frame = read_frame(&mut reader)?;
        if frame.opcode == Opcode::Binary {
            binary += 1;
            if binary % CORRUPT_EVERY == 0 {
                frame.payload[0] ^= 1;
            }
        }
        out.clear();
        encode_frame(&mut out, frame.fin, frame.opcode, &frame.payload, None);
        stream.write_all(&out)?;
        if frame.opcode == Opcode::Close {
            return Ok(());
        }
    }
}
