//! Attacks on the proxy's capacity: a flood of new connections is taken a
//! turn's share at a time without stranding any in the kernel's queue.

mod common;

use std::net::TcpStream;

use common::*;
use ws::EchoServer;

/// An upgrade through the proxy, answered.
fn upgrade(stream: &mut TcpStream) -> u16 {
    let (head, _) = ws::read_head(stream).unwrap();
    status_of(&String::from_utf8(head).unwrap())
}

#[test]
fn clients_queued_past_one_turns_share_are_all_served() {
    let _w = watchdog();
    let echo = EchoServer::start();
    let proxy = proxy_to(&[echo.addr], &[]);
    let addr = proxy.addr();
    // Stopped, the proxy's one worker cannot accept: the kernel completes
    // the handshakes and queues every client, head and all. Resumed, it
    // gets one edge-triggered event for the lot and takes 64 a turn; no
    // further event comes for the rest, so it must come back for them by
    // itself.
    proxy.signal(libc::SIGSTOP);
    let mut clients: Vec<TcpStream> = (0..300)
        .map(|_| send(addr, upgrade_head(addr, &ws::random_key(), "").as_bytes()))
        .collect();
    proxy.signal(libc::SIGCONT);
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(upgrade(client), 101, "client {i}");
    }
}
