//! PROXY protocol listeners: the header's client is the one the upstream
//! hears of and the per-address limit counts; a connection without a valid
//! header is closed.

mod common;

use std::io::{Read, Write};
use std::sync::mpsc;

use common::*;

/// An upstream that answers upgrades and reports each request head.
fn reporting_upstream() -> (RawUpstream, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let upstream = RawUpstream::start(move |mut stream| {
        if let Ok((head, _)) = accept_upgrade(&mut stream) {
            let _ = tx.send(head);
            // Hold the tunnel until the proxy closes it.
            let _ = read_all(&mut stream);
        }
    });
    (upstream, rx)
}

fn v2_tcp6(source: [u8; 16], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x21, 0x00, 36 + 7]);
    h.extend_from_slice(&source);
    h.extend_from_slice(&[0u8; 15]);
    h.push(1); // destination ::1
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    // One TLV (type 0x04, NOOP) to skip.
    h.extend_from_slice(&[0x04, 0x00, 0x04, 0, 0, 0, 0]);
    h
}

fn upgrade_with(proxy: &Proxy, preface: &[u8]) -> std::net::TcpStream {
    let mut bytes = preface.to_vec();
    bytes.extend_from_slice(upgrade_head(proxy.addr(), "dGhlIHNhbXBsZSBub25jZQ==", "").as_bytes());
    send(proxy.addr(), &bytes)
}

#[test]
fn the_header_names_the_client_upstream() {
    let _w = watchdog();
    let (upstream, heads) = reporting_upstream();
    let proxy = proxy_to(&[upstream.addr], &["--proxy-protocol"]);

    let mut v1 = upgrade_with(&proxy, b"PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\n");
    let (head, _) = ws::read_head(&mut v1).unwrap();
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    let seen = heads.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(field(&seen, "x-real-ip"), Some("203.0.113.7"), "{seen}");
    assert_eq!(field(&seen, "x-forwarded-for"), Some("203.0.113.7"));

    let mut source = [0u8; 16];
    source[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    source[15] = 9;
    let mut v2 = upgrade_with(&proxy, &v2_tcp6(source, 40000));
    let (head, _) = ws::read_head(&mut v2).unwrap();
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    let seen = heads.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(field(&seen, "x-real-ip"), Some("2001:db8::9"), "{seen}");

    // LOCAL (a balancer's health check): the socket's own address stands.
    let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    let mut check = upgrade_with(&proxy, &local);
    let (head, _) = ws::read_head(&mut check).unwrap();
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    let seen = heads.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(field(&seen, "x-real-ip"), Some("127.0.0.1"), "{seen}");
}

#[test]
fn a_missing_or_malformed_header_closes_the_connection() {
    let _w = watchdog();
    let (upstream, _heads) = reporting_upstream();
    let proxy = proxy_to(&[upstream.addr], &["--proxy-protocol"]);
    for preface in [
        &b""[..],
        b"PROXY TCP4 203.0.113.7 10.0.0.1 56324\r\n",
        b"PROXY TCP6 203.0.113.7 10.0.0.1 1 2\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
    ] {
        // Aborted, as the protocol says: no answer, then EOF or a reset
        // (the request behind the bad header was never read).
        let mut client = upgrade_with(&proxy, preface);
        let mut buf = [0u8; 64];
        match client.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("{preface:?}: expected a close, got {other:?}"),
        }
    }
    assert!(proxy.wait_for_log("bad PROXY protocol header"));
    assert_eq!(upstream.accepted(), 0);
}

#[test]
fn the_per_address_limit_counts_the_real_client() {
    let _w = watchdog();
    let (upstream, _heads) = reporting_upstream();
    let proxy = proxy_to(
        &[upstream.addr],
        &["--proxy-protocol", "--max-connections-per-ip", "1"],
    );
    let a = b"PROXY TCP4 198.51.100.1 10.0.0.1 1000 443\r\n";
    let b = b"PROXY TCP4 198.51.100.2 10.0.0.1 1000 443\r\n";
    let mut first = upgrade_with(&proxy, a);
    let (head, _) = ws::read_head(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    // Same balancer socket address, same real client: refused.
    let mut second = upgrade_with(&proxy, a);
    let (head, _) = read_response(&mut second);
    assert_eq!(status_of(&head), 429, "{head}");
    // Another real client through the same balancer: served.
    let mut other = upgrade_with(&proxy, b);
    let (head, _) = ws::read_head(&mut other).unwrap();
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    first.write_all(b"still open").unwrap();
}
