//! SIGHUP with a configuration file: under load, reloads lose no tunnel
//! and no byte, a broken file changes nothing, and new clients take the
//! new configuration.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::*;
use ws::EchoServer;

const THREADS: usize = 4;
const PER_THREAD: usize = 50;
const RELOADS: usize = 20;
/// The reload that gets a broken file.
const BROKEN: usize = 7;

fn file(upstream: SocketAddr, extra_listener: bool) -> String {
    let mut text = format!(
        "workers = 2\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"{upstream}\"\n"
    );
    if extra_listener {
        text.push_str("[[listener]]\naddress = \"127.0.0.2:0\"\n");
    }
    text
}

fn count(proxy: &Proxy, needle: &str) -> usize {
    proxy.log().iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn reloads_under_load_keep_every_tunnel_and_byte() {
    let _w = watchdog_for(Duration::from_secs(120));
    let a = EchoServer::start();
    let b = EchoServer::start();
    let dir = TempDir::new();
    let path = dir.write("wsproxy.toml", &file(a.addr, false));
    let proxy = Proxy::start(&["--config", path.to_str().unwrap()]);
    let addr = proxy.addr();

    // Hundreds of tunnels, each echoing numbered messages until told to
    // stop, checking every echo.
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready_rx) = mpsc::channel();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let stop = Arc::clone(&stop);
            let echoed = Arc::clone(&echoed);
            let ready_tx = ready_tx.clone();
            thread::spawn(move || {
                let mut clients: Vec<ws::Client> = (0..PER_THREAD)
                    .map(|_| ws::Client::connect(addr, "/load").unwrap())
                    .collect();
                ready_tx.send(()).unwrap();
                let mut bytes = 0usize;
                let mut seq = 0u64;
                loop {
                    let last = stop.load(Ordering::SeqCst);
                    for (c, client) in clients.iter_mut().enumerate() {
                        let text = format!("{t}-{c}-{seq}-{}", "x".repeat((seq % 200) as usize));
                        client.send_text(&text).unwrap();
                        let echo = client.recv().unwrap();
                        assert_eq!(echo.text(), Some(text.as_str()), "tunnel {t}/{c}");
                        bytes += text.len();
                        echoed.fetch_add(1, Ordering::SeqCst);
                    }
                    seq += 1;
                    if last {
                        return (bytes, seq);
                    }
                }
            })
        })
        .collect();
    for _ in 0..THREADS {
        ready_rx.recv_timeout(IO_TIMEOUT).unwrap();
    }
    assert_eq!(a.connections(), THREADS * PER_THREAD);

    let mut reloaded = 0;
    let mut refused = 0;
    for i in 0..RELOADS {
        // Each reload lands while every tunnel is busy: wait for another
        // message per tunnel first.
        let seen = echoed.load(Ordering::SeqCst);
        assert!(eventually(IO_TIMEOUT, || echoed.load(Ordering::SeqCst)
            >= seen + THREADS * PER_THREAD));
        let to = if i % 2 == 0 { &b } else { &a };
        if i == BROKEN {
            dir.write("wsproxy.toml", "this is [not toml\n");
        } else {
            dir.write("wsproxy.toml", &file(to.addr, i % 4 == 1));
        }
        proxy.signal(libc::SIGHUP);
        if i == BROKEN {
            refused += 1;
            assert!(
                eventually(IO_TIMEOUT, || count(&proxy, "not reloaded") == refused),
                "{:?}",
                proxy.log()
            );
            // The configuration in force stays: new clients still reach
            // the upstream of the reload before.
            let before = &b; // reload 6 went to b
            let n = before.connections();
            let mut c = ws::Client::connect(addr, "/probe").unwrap();
            c.send_text("probe").unwrap();
            assert_eq!(c.recv().unwrap().text(), Some("probe"));
            assert_eq!(before.connections(), n + 1);
            continue;
        }
        reloaded += 1;
        assert!(
            eventually(IO_TIMEOUT, || count(&proxy, "SIGHUP: reloaded") == reloaded),
            "{:?}",
            proxy.log()
        );
        // New clients take the new route, on either worker.
        for _ in 0..4 {
            let n = to.connections();
            let mut c = ws::Client::connect(addr, "/probe").unwrap();
            c.send_text("probe").unwrap();
            assert_eq!(c.recv().unwrap().text(), Some("probe"));
            assert!(
                eventually(IO_TIMEOUT, || to.connections() == n + 1),
                "reload {i}: a new client reached the new upstream"
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for w in workers {
        let (bytes, rounds) = w.join().expect("every tunnel kept echoing");
        assert!(rounds > 1);
        total += bytes;
    }
    assert!(total > 0);
    eprintln!(
        "{} tunnels, {RELOADS} reloads ({refused} refused), {total} payload bytes echoed and checked",
        THREADS * PER_THREAD
    );
    assert_eq!(count(&proxy, "stopped unexpectedly"), 0);
    // The second listener came and went with the reloads: it is closed now
    // (the last file had none).
    let log = proxy.log();
    let second: SocketAddr = log
        .iter()
        .rev()
        .find_map(|l| l.split("SIGHUP: listening on ").nth(1))
        .expect("a second listener was bound")
        .trim()
        .parse()
        .unwrap();
    let refused = std::net::TcpStream::connect_timeout(&second, IO_TIMEOUT);
    assert!(
        refused.is_err(),
        "{second} closed with the reload that dropped it"
    );
}
