//! A real third-party client through the proxy: websocat (installed by
//! `scripts/setup.sh`). Missing websocat fails this test loudly; it is not
//! skipped.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use ws::EchoServer;

/// `$WEBSOCAT`, else `websocat` on PATH, else cargo's install directory.
fn websocat() -> PathBuf {
    if let Some(path) = std::env::var_os("WEBSOCAT") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("websocat"))
        .find(|p| p.is_file());
    let in_cargo = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/websocat"));
    on_path
        .or(in_cargo.filter(|p| p.is_file()))
        .expect("websocat is not installed: run scripts/setup.sh (cargo install websocat --version '^1' --locked)")
}

#[test]
fn websocat_talks_through_the_proxy() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &["--workers", "2"]);
    let url = format!("ws://{}/websocat", proxy.addr());
    // -B: websocat's message buffer (64 KiB by default) would split the
    // long line into two messages.
    let mut child = Command::new(websocat())
        .args(["-B", "1048576"])
        .arg(&url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run websocat");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());

    // Line by line: each line is one text message, echoed back as one line.
    let long = "x".repeat(100_000);
    let lines = ["hello", "through wsproxy-fast", long.as_str(), "last"];
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut echoed = String::new();
        stdout.read_line(&mut echoed).unwrap();
        let echoed = echoed.trim_end();
        assert!(
            echoed == line,
            "websocat sent {} bytes and got {} back: {:.60}",
            line.len(),
            echoed.len(),
            echoed
        );
    }
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "websocat exited with {status}");
    assert_eq!(echo.connections(), 1);
    assert!(echo.request_heads()[0].starts_with("GET /websocat HTTP/1.1"));
}

/// `websocat -k wss://[::1]:PORT/`: websocat (native-tls, so OpenSSL)
/// sends the URL's host, `[::1]`, as SNI. The proxy serves it the default
/// certificate, as nginx does, instead of refusing the handshake.
#[test]
fn websocat_reaches_the_proxy_over_tls_at_an_ipv6_literal() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let certs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/certs");
    let (cert, key) = (certs.join("localhost.pem"), certs.join("localhost.key"));
    let upstream = echo.addr.to_string();
    let proxy = Proxy::start(&[
        "--listen",
        "[::1]:0",
        "--upstream",
        &upstream,
        "--workers",
        "1",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let url = format!("wss://[::1]:{}/literal", proxy.addr().port());
    let mut child = Command::new(websocat())
        .arg("-k")
        .arg(&url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run websocat");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    writeln!(stdin, "over TLS to [::1]").unwrap();
    stdin.flush().unwrap();
    let mut echoed = String::new();
    stdout.read_line(&mut echoed).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        echoed.trim_end(),
        "over TLS to [::1]",
        "websocat: {}\nproxy: {:#?}",
        String::from_utf8_lossy(&output.stderr),
        proxy.log()
    );
    assert!(
        output.status.success(),
        "websocat exited with {}",
        output.status
    );
    assert!(echo.request_heads()[0].starts_with("GET /literal HTTP/1.1"));
}
