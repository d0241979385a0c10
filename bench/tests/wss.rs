//! The load modes over wss://: `wsbench` against a small blocking TLS
//! WebSocket echo server (rustls, one thread per connection) on
//! 127.0.0.1:0, with the fixture certificate in `tests/data/tls/` (made by
//! `DAYS=36500 scripts/tls-cert.sh`, ECDSA P-256, SAN 127.0.0.1). Each run
//! is under a watchdog, so a hang fails instead of blocking CI.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use wsbench::ws::{encode_frame, read_frame, read_head, reply_to, Head, Opcode, Reply};

/// Longest one `wsbench` run may take before the test fails.
const WATCHDOG: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

/// Starts the TLS echo server: TLS 1.2 and 1.3, rustls' default session
/// cache and TLS 1.3 tickets, so clients can resume. Runs until the test
/// process ends.
fn start_tls_echo() -> SocketAddr {
    let certs = CertificateDer::pem_file_iter(fixture("cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = config.clone();
            // A connection that fails only ends itself; wsbench reports it.
            thread::spawn(move || serve(config, stream));
        }
    });
    addr
}

/// One connection: the upgrade, then echoes until Close (answered), then
/// close_notify and the TCP close.
fn serve(config: Arc<ServerConfig>, stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, stream);
    let (head, early) = read_head(&mut tls)?;
    assert!(early.is_empty(), "wsbench sends nothing before the 101");
    let head = Head::parse(&head).map_err(io::Error::other)?;
    let Reply::Upgrade(response) = reply_to(&head) else {
        return Err(io::Error::other("not an upgrade"));
    };
    tls.write_all(&response)?;
    let mut out = Vec::new();
    loop {
        let frame = read_frame(&mut tls)?;
        out.clear();
        let opcode = match frame.opcode {
            Opcode::Ping => Opcode::Pong,
            other => other,
        };
        encode_frame(&mut out, frame.fin, opcode, &frame.payload, None);
        tls.write_all(&out)?;
        if frame.opcode == Opcode::Close {
            tls.conn.send_close_notify();
            tls.flush()?;
            return Ok(());
        }
    }
}

/// Runs `wsbench ARGS --json` under the watchdog; returns the exit status
/// and the JSON line.
fn wsbench(args: &[&str]) -> (i32, String) {
    run(&[args, &["--json"]].concat())
}

/// Runs `wsbench ARGS` under the watchdog; returns the exit status and stdout.
fn run(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsbench"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WATCHDOG;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wsbench {args:?} ran past the {WATCHDOG:?} watchdog");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut json = String::new();
    let mut summary = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut json)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut summary)
        .unwrap();
    eprintln!("wsbench {args:?}: {summary}");
    (status.code().unwrap_or(-1), json)
}

/// The unsigned number after `"key":` in the `tls` object of `json`.
fn tls_count(json: &str, key: &str) -> u64 {
    let tls = &json[json.find("\"tls\":{").expect("a tls object")..];
    let at = tls.find(&format!("\"{key}\":")).expect(key) + key.len() + 3;
    let digits: String = tls[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("wss://{addr}/{path}")
}

#[test]
fn handshakes_are_full_without_resume_and_resume_with_it() {
    let addr = start_tls_echo();
    let ca = fixture("ca.pem");
    let ca = ca.to_str().unwrap();
    let url = url(addr, "hs");
    let common = ["--url", &url, "--ca", ca, "--conns", "4", "--duration", "1"];

    let full = [&["handshakes"], &common[..]].concat();
    let (status, json) = wsbench(&full);
    assert_eq!(status, 0, "{json}");
    assert!(json.contains(r#""version":"TLSv1_3""#), "{json}");
    assert!(tls_count(&json, "full") > 10, "{json}");
    assert_eq!(tls_count(&json, "resumed"), 0, "{json}");

    let resumed = [&["handshakes", "--resume"], &common[..]].concat();
    let (status, json) = wsbench(&resumed);
    assert_eq!(status, 0, "{json}");
    assert!(
        tls_count(&json, "resumed") > tls_count(&json, "full"),
        "{json}"
    );
}

#[test]
fn the_offered_suite_decides_version_and_suite() {
    let addr = start_tls_echo();
    let url = url(addr, "suite");
    for (suite, version) in [
        ("TLS13_AES_128_GCM_SHA256", "TLSv1_3"),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLSv1_2"),
    ] {
        let args = [
            "handshakes",
            "--url",
            &url,
            "--insecure",
            "--resume",
            "--tls-suite",
            suite,
            "--conns",
            "2",
            "--duration",
            "0.5",
        ];
        let (status, json) = wsbench(&args);
        assert_eq!(status, 0, "{json}");
        let negotiated = format!(r#""version":"{version}","suite":"{suite}","group":"X25519""#);
        assert!(json.contains(&negotiated), "{json}");
        assert_eq!(tls_count(&json, "differing"), 0, "{json}");
        // TLS 1.2 resumes by session ID from the server's cache.
        assert!(tls_count(&json, "resumed") > 0, "{json}");
    }
}

#[test]
fn bulk_echo_small_echo_and_hold_run_clean() {
    let addr = start_tls_echo();
    let ca = fixture("ca.pem");
    let ca = ca.to_str().unwrap();
    let url = url(addr, "load");
    // Records larger than a read, writes larger than rustls' buffer.
    let bulk = [
        "echo",
        "--url",
        &url,
        "--ca",
        ca,
        "--conns",
        "2",
        "--size",
        "200000",
        "--inflight",
        "4",
        "--duration",
        "1",
    ];
    let small = [
        "echo",
        "--url",
        &url,
        "--ca",
        ca,
        "--conns",
        "8",
        "--duration",
        "0.5",
    ];
    let hold = [
        "hold", "--url", &url, "--ca", ca, "--conns", "50", "--hold", "0.3",
    ];
    for args in [&bulk[..], &small, &hold] {
        let (status, json) = wsbench(args);
        assert_eq!(status, 0, "{args:?}: {json}");
        assert!(json.contains(r#""mismatches":0"#), "{json}");
    }
}

#[test]
fn tls_flags_need_a_wss_url_and_wss_needs_trust() {
    let addr = start_tls_echo();
    let (status, _) = wsbench(&["echo", "--url", &format!("ws://{addr}/"), "--insecure"]);
    assert_eq!(status, 2);
    let (status, _) = wsbench(&["echo", "--url", &url(addr, "")]);
    assert_eq!(status, 2);
    // A CA that did not sign the server's certificate: every connection fails.
    let (status, json) = wsbench(&[
        "echo",
        "--url",
        &url(addr, ""),
        "--ca",
        fixture("cert.pem").to_str().unwrap(),
        "--conns",
        "1",
        "--duration",
        "0.2",
    ]);
    assert_eq!(status, 1, "{json}");
    assert!(json.contains(r#""tls":1"#), "{json}");
}

#[test]
fn send_speaks_wss() {
    let addr = start_tls_echo();
    let ca = fixture("ca.pem");
    let url = url(addr, "send");
    let (status, out) = run(&["send", "--url", &url, "--ca", ca.to_str().unwrap(), "héllo"]);
    assert_eq!((status, out.as_str()), (0, "héllo\n"));
    let (status, out) = run(&["send", "--url", &url, "--insecure", "again"]);
    assert_eq!((status, out.as_str()), (0, "again\n"));
    let (status, _) = run(&["send", "--url", &url, "untrusted"]);
    assert_eq!(status, 1);
}
