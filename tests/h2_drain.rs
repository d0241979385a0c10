//! WebSockets over HTTP/2 (RFC 8441) through a drain: the proxy says
//! GOAWAY, then each WebSocket stream gets its Close 1001 and END_STREAM
//! at its turn, as a tunnel on its own connection would; the metrics count
//! the streams while they are open. The client is the Python `h2` library.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::upstreams::ws_echo_upstream;
use common::*;

#[test]
fn a_drain_says_goaway_then_closes_each_websocket_stream_with_1001() {
    let _w = watchdog_for(Duration::from_secs(60));
    let python = tools_python("h2", "h2");
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/certs");
    let cert = certs.join("localhost.pem").display().to_string();
    let key = certs.join("localhost.key").display().to_string();
    let (upstream, _seen) = ws_echo_upstream();
    let mut proxy = proxy_to(
        &[upstream.addr],
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--http2",
            "--admin",
            "127.0.0.1:0",
            "--drain-spread",
            "1s",
            "--drain-timeout",
            "20s",
        ],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/h2/drain_client.py");
    let mut client = Command::new(&python)
        .arg(&script)
        .arg("127.0.0.1")
        .arg(proxy.addr().port().to_string())
        .arg("3")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").unwrap();
    assert_eq!(first, "open 3");

    assert_eq!(proxy.metric("wsproxy_h2_connections"), 1.0);
    assert_eq!(proxy.metric("wsproxy_h2_websocket_streams"), 3.0);
    assert_eq!(
        proxy.metric("wsproxy_h2_streams_total{kind=\"websocket\"}"),
        3.0
    );

    proxy.signal(libc::SIGTERM);
    let seen: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(client.wait().unwrap().success(), "{seen:?}");
    let frames: Vec<&String> = seen
        .iter()
        .filter(|l| !l.starts_with("frame WINDOW_UPDATE") && !l.starts_with("frame PING"))
        .collect();
    assert!(
        frames[0].starts_with("frame GOAWAY stream=0"),
        "GOAWAY first: {seen:?}"
    );
    // Last-Stream-ID 5 (the three streams kept), NO_ERROR.
    assert!(frames[0].ends_with("payload=0000000500000000"), "{seen:?}");
    let closes: Vec<&&String> = frames
        .iter()
        .filter(|l| l.starts_with("frame DATA") && l.contains("end=1"))
        .collect();
    assert_eq!(closes.len(), 3, "one Close per stream: {seen:?}");
    for close in &closes {
        // An unmasked Close frame with code 1001 (0x03e9).
        assert!(close.contains("payload=88"), "{close}");
        assert!(close.contains("03e9"), "{close}");
    }
    assert_eq!(seen.last().map(String::as_str), Some("closed"), "{seen:?}");
    assert!(proxy.wait_exit(Duration::from_secs(20)).is_some());
}
