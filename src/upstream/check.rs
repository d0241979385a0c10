//! Active health checks: what a group's `[upstream.NAME.health]` asks of
//! each server ([`HealthCheck`]), what one check found ([`Verdict`]), and
//! the check itself ([`probe`]): blocking sockets with timeouts, run by the
//! checker thread, never by a worker.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::UpstreamTls;

/// What a check asks of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// The server accepts a TCP connection (and completes TLS for `wss://`).
    Tcp,
    /// `GET path` is answered 2xx or 3xx.
    Http,
    /// An upgrade to `path` is answered 101 with the right
    /// `Sec-WebSocket-Accept`; the check then sends a Close (1000).
    WebSocket,
}

impl CheckKind {
    /// As written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http => "http",
            CheckKind::WebSocket => "websocket",
        }
    }
}

/// What becomes of a server's open tunnels when a check marks it down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDown {
    /// They run on; only new connections avoid the server.
    Keep,
    /// Each gets a Close frame (1001), spread over `[drain] spread`, as a
    /// shutdown does.
    Drain,
}

impl OnDown {
    /// As written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            OnDown::Keep => "keep",
            OnDown::Drain => "drain",
        }
    }
}

/// A group's active health check, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: CheckKind,
    /// Request target of http and websocket checks.
    pub path: String,
    /// From the start of one check of a server to the start of the next.
    pub interval: Duration,
    /// A check that has not passed within this has failed.
    pub timeout: Duration,
    /// Consecutive failed checks that mark an up server down, at least 1.
    pub fall: u32,
    /// Consecutive passed checks that mark a down server up, at least 1.
    pub rise: u32,
    /// `Host` of http and websocket checks; `None`: the server's name.
    pub host: Option<String>,
    pub on_down: OnDown,
}

/// What one check found. Fits a `u32` (see [`Verdict::encode`]) so that
/// the last one can be shared through an atomic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// The connection was refused.
    Refused,
    /// No connection, answer or handshake within the timeout.
    TimedOut,
    /// The server closed or reset the connection before it answered.
    Closed,
    /// Another socket error (no route, TLS refused, …).
    Failed,
    /// An answer with this status: not 2xx/3xx (http), not 101 (websocket).
    Status(u16),
    /// An answer that is not HTTP, or a head too large to be one.
    Garbled,
    /// A 101 whose `Sec-WebSocket-Accept` does not match the key sent.
    BadAccept,
    /// The TLS handshake with a `wss://` or `https://` server failed (its
    /// certificate did not verify, or it does not speak TLS).
    Tls,
}

impl Verdict {
    /// Kind in the upper 16 bits, status in the lower; 0 is no verdict.
    pub fn encode(self) -> u32 {
        let (kind, status) = match self {
            Verdict::Passed => (1, 0),
            Verdict::Refused => (2, 0),
            Verdict::TimedOut => (3, 0),
            Verdict::Closed => (4, 0),
            Verdict::Failed => (5, 0),
            Verdict::Status(s) => (6, s),
            Verdict::Garbled => (7, 0),
            Verdict::BadAccept => (8, 0),
            Verdict::Tls => (9, 0),
        };
        (kind << 16) | u32::from(status)
    }

    /// The inverse of [`Verdict::encode`]; `None` for 0 (never checked).
    pub fn decode(code: u32) -> Option<Verdict> {
        let status = (code & 0xffff) as u16;
        Some(match code >> 16 {
            1 => Verdict::Passed,
            2 => Verdict::Refused,
            3 => Verdict::TimedOut,
            4 => Verdict::Closed,
            5 => Verdict::Failed,
            6 => Verdict::Status(status),
            7 => Verdict::Garbled,
            8 => Verdict::BadAccept,
            9 => Verdict::Tls,
            _ => return None,
        })
    }

    pub fn passed(self) -> bool {
        self == Verdict::Passed
    }

    /// From an I/O error of the check's socket.
    fn of(e: &io::Error) -> Verdict {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Verdict::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Verdict::TimedOut,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Verdict::Closed,
            _ => Verdict::Failed,
        }
    }
}

/// As log lines and `/status` say it: "passed", "got 500", …
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Passed => f.write_str("passed"),
            Verdict::Refused => f.write_str("connection refused"),
            Verdict::TimedOut => f.write_str("timed out"),
            Verdict::Closed => f.write_str("closed before answering"),
            Verdict::Failed => f.write_str("connection failed"),
            Verdict::Status(s) => write!(f, "got {s}"),
            Verdict::Garbled => f.write_str("not an HTTP answer"),
            Verdict::BadAccept => f.write_str("wrong Sec-WebSocket-Accept"),
            Verdict::Tls => f.write_str("TLS handshake failed"),
        }
    }
}

/// Largest answer head a check reads; a health answer's is short.
const MAX_ANSWER_HEAD: usize = 16 * 1024;

/// RFC 6455 section 1.3: the GUID appended to `Sec-WebSocket-Key` before
/// hashing it into `Sec-WebSocket-Accept`.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Checks the server at `addr` (named `name`, for the default `Host`) as
/// `check` says, within `check.timeout`, connecting from `source` if
/// given (as the proxy's own connections do). Blocks the calling thread.
pub fn probe(
    addr: SocketAddr,
    source: Option<IpAddr>,
    name: &str,
    tls: Option<&UpstreamTls>,
    check: &HealthCheck,
) -> Verdict {
    let deadline = Instant::now() + check.timeout;
    match run(addr, source, name, tls, check, deadline) {
        Ok(verdict) => verdict,
        Err(e) => Verdict::of(&e),
    }
}

fn run(
    addr: SocketAddr,
    source: Option<IpAddr>,
    name: &str,
    tls: Option<&UpstreamTls>,
    check: &HealthCheck,
    deadline: Instant,
) -> io::Result<Verdict> {
    let tcp = super::source::connect_blocking(addr, source, check.timeout)?;
    let _ = tcp.set_nodelay(true);
    let mut stream = Timed { tcp, deadline };
    match tls {
        Some(tls) => {
            let conn = rustls::ClientConnection::new(Arc::clone(&tls.config), tls.name.clone())
                .map_err(io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            while tls.conn.is_handshaking() {
                match tls.conn.complete_io(&mut tls.sock) {
                    Ok(_) => {}
                    // rustls says what the peer got wrong this way.
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(Verdict::Tls),
                    Err(e) => return Err(e),
                }
            }
            converse(&mut tls, name, check)
        }
        None => converse(&mut stream, name, check),
    }
}

/// The exchange after the connection is made.
fn converse(stream: &mut impl ReadWrite, name: &str, check: &HealthCheck) -> io::Result<Verdict> {
    let host = check.host.as_deref().unwrap_or(name);
    let path = &check.path;
    let key = websocket_key();
    let head = match check.kind {
        CheckKind::Tcp => return Ok(Verdict::Passed),
        CheckKind::Http => format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wsproxy-fast health check\r\n\
             Connection: close\r\n\r\n"
        ),
        CheckKind::WebSocket => format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wsproxy-fast health check\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        ),
    };
    stream.write_all(head.as_bytes())?;
    stream.flush()?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 2048];
    let (status, accept) = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(Verdict::Closed);
        }
        answer.extend_from_slice(&buf[..n]);
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut fields);
        match response.parse(&answer) {
            Ok(httparse::Status::Complete(_)) => {
                let accept = response
                    .headers
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case("sec-websocket-accept"))
                    .map(|f| f.value.to_vec());
                break (response.code.unwrap_or(0), accept);
            }
            Ok(httparse::Status::Partial) if answer.len() < MAX_ANSWER_HEAD => {}
            _ => return Ok(Verdict::Garbled),
        }
    };
    Ok(match check.kind {
        CheckKind::Http if (200..400).contains(&status) => Verdict::Passed,
        CheckKind::WebSocket if status == 101 => {
            if accept.as_deref().map(<[u8]>::trim_ascii) != Some(accept_for(&key).as_bytes()) {
                return Ok(Verdict::BadAccept);
            }
            // Masked, as a client's frames must be (RFC 6455 5.3): FIN +
            // Close, mask bit + 2 bytes of payload, the key, then 1000
            // (normal closure) masked with it.
            let mask = mask_key();
            let code = 1000u16.to_be_bytes();
            let frame = [
                0x88,
                0x82,
                mask[0],
                mask[1],
                mask[2],
                mask[3],
                code[0] ^ mask[0],
                code[1] ^ mask[1],
            ];
            // The verdict is in: a server that closes first is no failure.
            let _ = stream.write_all(&frame).and_then(|()| stream.flush());
            Verdict::Passed
        }
        _ => Verdict::Status(status),
    })
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A blocking socket whose every read and write ends by one deadline.
struct Timed {
    tcp: TcpStream,
    deadline: Instant,
}

impl Timed {
    fn left(&self) -> io::Result<Duration> {
        match self.deadline.saturating_duration_since(Instant::now()) {
            d if d.is_zero() => Err(io::ErrorKind::TimedOut.into()),
            d => Ok(d),
        }
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_write_timeout(Some(left))?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// 16 bytes for `Sec-WebSocket-Key`, base64: they need only differ from
/// check to check (RFC 6455 4.1), not be secret.
pub(crate) fn websocket_key() -> String {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&noise().to_le_bytes());
    key[8..].copy_from_slice(&noise().to_le_bytes());
    base64(&key)
}

fn mask_key() -> [u8; 4] {
    let n = noise().to_le_bytes();
    [n[0], n[1], n[2], n[3]]
}

/// Bits that change from call to call: std's randomly keyed hasher over a
/// counter.
fn noise() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Relaxed));
    h.finish()
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 4.2.2): base64 of the SHA-1
/// of the key and the GUID.
pub(crate) fn accept_for(key: &str) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(WEBSOCKET_GUID.as_bytes());
    base64(&sha1.digest().bytes())
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    #[test]
    fn base64_and_the_rfc_accept_example() {
        for (bytes, want) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(bytes), want);
        }
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(websocket_key().len(), 24);
        assert_ne!(websocket_key(), websocket_key());
    }

    #[test]
    fn verdicts_round_trip_through_their_code() {
        for v in [
            Verdict::Passed,
            Verdict::Refused,
            Verdict::TimedOut,
            Verdict::Closed,
            Verdict::Failed,
            Verdict::Status(500),
            Verdict::Status(200),
            Verdict::Garbled,
            Verdict::BadAccept,
            Verdict::Tls,
        ] {
            assert_eq!(Verdict::decode(v.encode()), Some(v));
        }
        assert_eq!(Verdict::decode(0), None);
    }

    fn check(kind: CheckKind) -> HealthCheck {
        HealthCheck {
            kind,
            path: "/health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            fall: 1,
            rise: 1,
            host: None,
            on_down: OnDown::Keep,
        }
    }

    /// A server that answers one connection with `answer(request head)`.
    fn answering(answer: fn(&str) -> Vec<u8>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let answer = answer(&String::from_utf8_lossy(&head));
            if answer.is_empty() {
                return; // closes without answering
            }
            let _ = s.write_all(&answer);
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        });
        addr
    }

    fn upgrade(head: &str) -> Vec<u8> {
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .expect("a key");
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(key.trim())
        )
        .into_bytes()
    }

    #[test]
    fn probes_judge_the_answers() {
        type Case = (CheckKind, fn(&str) -> Vec<u8>, Verdict);
        let table: &[Case] = &[
            (
                CheckKind::Http,
                |_| b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                Verdict::Passed,
            ),
            (
                CheckKind::Http,
                |_| b"HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n".to_vec(),
                Verdict::Passed,
            ),
            (
                CheckKind::Http,
                |_| b"HTTP/1.1 500 Oops\r\n\r\n".to_vec(),
                Verdict::Status(500),
            ),
            (
                CheckKind::Http,
                |_| b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(),
                Verdict::Garbled,
            ),
            (CheckKind::Http, |_| Vec::new(), Verdict::Closed),
            (CheckKind::WebSocket, upgrade, Verdict::Passed),
            (
                CheckKind::WebSocket,
                |_| b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
                Verdict::Status(200),
            ),
            (
                CheckKind::WebSocket,
                |_| b"HTTP/1.1 101 Switching\r\nSec-WebSocket-Accept: nope\r\n\r\n".to_vec(),
                Verdict::BadAccept,
            ),
            (CheckKind::Tcp, |_| Vec::new(), Verdict::Passed),
        ];
        for &(kind, answer, want) in table {
            let addr = answering(answer);
            let got = probe(addr, None, "app.test", None, &check(kind));
            assert_eq!(got, want, "{kind:?}");
        }
    }

    #[test]
    fn a_closed_port_is_refused_and_a_silent_server_times_out() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a port");
        assert_eq!(
            probe(addr, None, "x", None, &check(CheckKind::Tcp)),
            Verdict::Refused
        );
        let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut quick = check(CheckKind::Http);
        quick.timeout = Duration::from_millis(200);
        let addr = silent.local_addr().expect("addr");
        assert_eq!(probe(addr, None, "x", None, &quick), Verdict::TimedOut);
    }

    #[test]
    fn checks_of_a_wss_server_speak_tls() {
        use crate::tls::test_support::{client_config, Ca, KeyAlg, TempDir};
        use crate::tls::{ServerSettings, ServerTls};
        use rustls::pki_types::ServerName;

        let dir = TempDir::new("check");
        let ca = Ca::new("check CA");
        let files = ca.write_leaf(&dir, "up", &["up.test"], KeyAlg::P256);
        let server = ServerTls::load(ServerSettings::new(vec![files])).expect("certificate");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = Arc::clone(server.config());
        thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let conn = rustls::ServerConnection::new(Arc::clone(&config)).expect("session");
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        let tls = |name: &str| UpstreamTls {
            config: client_config(&ca, |_| {}),
            name: ServerName::try_from(name.to_string()).expect("a name"),
        };
        let http = check(CheckKind::Http);
        assert_eq!(
            probe(addr, None, "up.test", Some(&tls("up.test")), &http),
            Verdict::Passed
        );
        assert_eq!(
            probe(
                addr,
                None,
                "up.test",
                Some(&tls("up.test")),
                &check(CheckKind::Tcp)
            ),
            Verdict::Passed,
            "a tcp check of a wss:// server completes TLS"
        );
        assert_eq!(
            probe(addr, None, "other.test", Some(&tls("other.test")), &http),
            Verdict::Tls,
            "a certificate for another name"
        );
    }
}
