//! Backpressure and memory bounds: a fast writer and a slow reader at the
//! two ends of one tunnel, in each direction, through the copy relay, the
//! splice relay and a TLS listener. The writer pushes 64 MiB as fast as the
//! proxy takes it; the reader takes 64 KiB at a time at a fixed pace. The
//! proxy must hold the writer back rather than buffer: its RSS, sampled
//! every 10 ms through the transfer, stays under a stated ceiling, and
//! every byte arrives, in order (the pattern compared at each position,
//! and a checksum over the whole).
//!
//! Run with `--nocapture` to see each run's figures.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::tls::{demo_client, tls_connect, TlsClient};
use common::*;

/// Bytes pushed through the tunnel.
const TOTAL: usize = 64 << 20;

/// What the slow reader takes at once.
const READ_PIECE: usize = 64 * 1024;

/// The slow reader's pace: 64 MiB in 4 s. Slow beside a loopback writer
/// (gigabytes a second), yet each test stays well under 10 s.
const READ_RATE: f64 = 16.0 * 1024.0 * 1024.0;

/// Most the proxy's RSS may grow over the transfer, against its RSS with
/// the tunnel open. A direction holds at most one 32 KiB buffer (copy and
/// TLS relays) or one 64 KiB pipe (kernel memory, not RSS), and rustls
/// keeps at most a few 16 KiB records each way: under 256 KiB in all, and
/// the rest is allocator and stack pages first touched under load (runs
/// here grow 0 to 64 KiB). Any buffering that grew with the writer's lead
/// (megabytes within a second here) would cross it at once.
const RSS_CEILING: u64 = 512 * 1024;

/// Send buffer of the writer's socket and receive buffer of the reader's,
/// fixed (the kernel doubles it for bookkeeping) rather than autotuned.
const END_BUFFER: usize = 256 * 1024;

/// How far the writer may get ahead of the reader. Besides the test's own
/// two sockets, the proxy's receive and send buffers hold some of it: they
/// autotune, and only grow as fast as they are drained. A writer half the
/// transfer ahead was not held back.
const MAX_LEAD: usize = TOTAL / 2;

/// The longest one run may take.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// A tunnel end: the client's may speak TLS, the upstream's is plain.
enum End {
    Plain(TcpStream),
    Tls(Box<TlsClient>),
}

impl Read for End {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            End::Plain(s) => s.read(buf),
            End::Tls(s) => s.read(buf),
        }
    }
}

impl Write for End {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            End::Plain(s) => s.write(buf),
            End::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            End::Plain(s) => s.flush(),
            End::Tls(s) => s.flush(),
        }
    }
}

impl End {
    fn sock(&self) -> &TcpStream {
        match self {
            End::Plain(s) => s,
            End::Tls(s) => &s.sock,
        }
    }

    /// Ends this side's writing: `close_notify` first over TLS, then FIN.
    fn finish(&mut self) {
        if let End::Tls(s) = self {
            s.conn.send_close_notify();
            s.flush().unwrap();
        }
        self.sock().shutdown(Shutdown::Write).unwrap();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Copy,
    Splice,
    Tls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// The client writes, the upstream reads slowly.
    Up,
    /// The upstream writes, the client reads slowly.
    Down,
}

fn demo_cert(file: &str) -> String {
    format!("{}/examples/certs/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn start_proxy(mode: Mode, upstream: &RawUpstream) -> Proxy {
    let (cert, key) = (demo_cert("example.com.pem"), demo_cert("example.com.key"));
    let extra: Vec<&str> = match mode {
        Mode::Copy => vec!["--relay", "copy"],
        Mode::Splice => vec!["--relay", "splice"],
        Mode::Tls => vec!["--tls-cert", &cert, "--tls-key", &key],
    };
    proxy_to(&[upstream.addr], &extra)
}

/// Opens a tunnel through `proxy`: the client's end and the upstream's.
fn open_tunnel(proxy: &Proxy, mode: Mode, ends: &mpsc::Receiver<TcpStream>) -> (End, End) {
    let mut client = match mode {
        Mode::Tls => End::Tls(Box::new(
            tls_connect(proxy.addr(), demo_client(), "example.com").expect("TLS handshake"),
        )),
        _ => End::Plain(connect(proxy.addr())),
    };
    client
        .write_all(upgrade_head(proxy.addr(), &ws::random_key(), "").as_bytes())
        .unwrap();
    client.flush().unwrap();
    let (head, rest) = ws::read_head(&mut client).unwrap();
    assert_eq!(status_of(std::str::from_utf8(&head).unwrap()), 101);
    assert!(rest.is_empty());
    let server = ends.recv_timeout(IO_TIMEOUT).expect("the upstream's end");
    (client, End::Plain(server))
}

/// FNV-1a, 64 bits, continued from `hash`.
fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn fast_writer_slow_reader(mode: Mode, direction: Direction) {
    let _w = watchdog_for(RUN_LIMIT);
    let (tx, ends) = mpsc::channel();
    let tx = Mutex::new(tx);
    let upstream = RawUpstream::start(move |mut stream| {
        if accept_upgrade(&mut stream).is_ok() {
            let _ = tx.lock().unwrap().send(stream);
        }
    });
    let proxy = start_proxy(mode, &upstream);
    let (client, server) = open_tunnel(&proxy, mode, &ends);
    let (mut writer, mut reader) = match direction {
        Direction::Up => (client, server),
        Direction::Down => (server, client),
    };
    // The test's own ends keep fixed buffers, so what the writer gets
    // ahead by is mostly what the proxy's sockets hold.
    socket2::SockRef::from(writer.sock())
        .set_send_buffer_size(END_BUFFER)
        .unwrap();
    socket2::SockRef::from(reader.sock())
        .set_recv_buffer_size(END_BUFFER)
        .unwrap();
    let data = Arc::new(pattern(TOTAL, 64));

    // Sample the proxy's RSS until the reader is done.
    let rss_open = proxy.rss_bytes();
    let pid = proxy.pid();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_open));
    let sampler = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        thread::spawn(move || {
            let mut samples = 0u32;
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(rss_of(pid), Ordering::SeqCst);
                samples += 1;
                thread::sleep(Duration::from_millis(10));
            }
            samples
        })
    };

    // The writer: as fast as the tunnel takes it, 1 MiB a call.
    let written = Arc::new(AtomicUsize::new(0));
    let writing = {
        let (data, written) = (Arc::clone(&data), Arc::clone(&written));
        thread::spawn(move || {
            let mut sum = FNV_START;
            for piece in data.chunks(1 << 20) {
                writer.write_all(piece).unwrap();
                writer.flush().unwrap();
                sum = fnv1a(sum, piece);
                written.fetch_add(piece.len(), Ordering::SeqCst);
            }
            writer.finish();
            (sum, writer)
        })
    };

    // The reader: 64 KiB at a time, held to READ_RATE by waiting for each
    // piece's due time (load shaping, not synchronisation).
    let start = Instant::now();
    let mut piece = vec![0u8; READ_PIECE];
    let mut read = 0usize;
    let mut sum = FNV_START;
    let mut max_lead = 0usize;
    loop {
        let n = reader.read(&mut piece).expect("the slow reader's read");
        if n == 0 {
            break;
        }
        assert!(
            read + n <= TOTAL,
            "{mode:?} {direction:?}: more bytes than sent"
        );
        assert!(
            piece[..n] == data[read..read + n],
            "{mode:?} {direction:?}: bytes {read}..{} differ (lost or reordered)",
            read + n
        );
        sum = fnv1a(sum, &piece[..n]);
        read += n;
        max_lead = max_lead.max(written.load(Ordering::SeqCst).saturating_sub(read));
        let due = start + Duration::from_secs_f64(read as f64 / READ_RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    let took = start.elapsed();
    done.store(true, Ordering::SeqCst);
    let samples = sampler.join().unwrap();
    let (written_sum, _writer) = writing.join().unwrap();
    let peak = peak.load(Ordering::SeqCst);
    let growth = peak.saturating_sub(rss_open);
    eprintln!(
        "{mode:?} {direction:?}: {read} bytes in {took:.2?}, checksum {sum:016x}; writer led by at most {max_lead} bytes; proxy RSS {rss_open} at open, peak {peak} (+{growth}) over {samples} samples"
    );

    assert_eq!(read, TOTAL, "{mode:?} {direction:?}: bytes arrived");
    assert_eq!(sum, written_sum, "{mode:?} {direction:?}: checksum");
    assert!(
        max_lead < MAX_LEAD,
        "{mode:?} {direction:?}: the writer got {max_lead} bytes ahead: not held back"
    );
    assert!(
        growth < RSS_CEILING,
        "{mode:?} {direction:?}: proxy RSS grew {growth} bytes (ceiling {RSS_CEILING})"
    );
}

/// One test per relay and direction.
macro_rules! runs {
    ($($name:ident: $mode:ident $direction:ident,)*) => {$(
        #[test]
        fn $name() {
            fast_writer_slow_reader(Mode::$mode, Direction::$direction)
        }
    )*};
}

runs!(
    copy_client_to_upstream: Copy Up,
    copy_upstream_to_client: Copy Down,
    splice_client_to_upstream: Splice Up,
    splice_upstream_to_client: Splice Down,
    tls_client_to_upstream: Tls Up,
    tls_upstream_to_client: Tls Down,
);
