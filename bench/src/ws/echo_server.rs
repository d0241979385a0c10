//! Echo-server behaviour shared by both echo servers, and the blocking,
//! thread-per-connection [`EchoServer`] used by integration tests.
//!
//! [`reply_to`] decides how a request head is answered: a valid WebSocket
//! upgrade gets `101`, a plain request gets `200` with the body
//! `echo server: <METHOD> <PATH>\n`, a broken upgrade gets `400` (or `426`
//! for a wrong version). After the upgrade, data frames come back unmasked
//! with the same opcode and FIN bit, Ping gets Pong, Close gets a Close with
//! the same payload (status code and reason), and then the server closes the
//! TCP connection first, as RFC 6455 §7.1.1 recommends.

use std::collections::HashMap;
use std::io::{self, Cursor, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::frame::{close_payload, encode_frame, read_raw_frame, Opcode};
use super::handshake::accept_key;
use super::http::{read_head, Head};

/// RFC 6455 §7.4.1: 1002 "indicates that an endpoint is terminating the
/// connection due to a protocol error" (here: a bad or unmasked frame).
const CLOSE_PROTOCOL_ERROR: u16 = 1002;

/// How long a connection answered with a plain response is drained before
/// it is closed anyway.
const LINGER: Duration = Duration::from_secs(1);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the
/// accept thread does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// How a server answers a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Write this `101` response, then speak WebSocket.
    Upgrade(Vec<u8>),
    /// Write this response, then close the connection.
    Close(Vec<u8>),
}

/// A short plain-text response that ends the connection.
fn plain(status: &str, extra: &str, body: &str, with_body: bool) -> Reply {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra}\r\n",
        body.len()
    );
    if with_body {
        response.push_str(body);
    }
    Reply::Close(response.into_bytes())
}

/// The echo servers' answer to a request head (see the module docs).
pub fn reply_to(head: &Head<'_>) -> Reply {
    let Some((method, target, _)) = head.request_line() else {
        return plain("400 Bad Request", "", "malformed request line\n", true);
    };
    if !head.has_token("Upgrade", "websocket") {
        let body = format!("echo server: {method} {target}\n");
        return plain("200 OK", "", &body, method != "HEAD");
    }
    if method != "GET" {
        return plain(
            "400 Bad Request",
            "",
            "a WebSocket upgrade must be a GET\n",
            true,
        );
    }
    if !head.has_token("Connection", "upgrade") {
        return plain(
            "400 Bad Request",
            "",
            "Connection does not list upgrade\n",
            true,
        );
    }
    if head.header("Sec-WebSocket-Version") != Some("13") {
        // RFC 6455 §4.4: answer with the versions the server does support.
        let extra = "Sec-WebSocket-Version: 13\r\n";
        return plain(
            "426 Upgrade Required",
            extra,
            "unsupported WebSocket version\n",
            true,
        );
    }
    let Some(key) = head
        .header("Sec-WebSocket-Key")
        .filter(|key| !key.is_empty())
    else {
        return plain("400 Bad Request", "", "missing Sec-WebSocket-Key\n", true);
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    Reply::Upgrade(response.into_bytes())
}

/// A blocking WebSocket echo server on `127.0.0.1:<ephemeral>`, one thread
/// per connection. Dropping it (or [`EchoServer::stop`]) stops the accept
/// thread, shuts every open connection down and joins all its threads.
#[derive(Debug)]
pub struct EchoServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    stopping: AtomicBool,
    accepted: AtomicUsize,
    heads: Mutex<Vec<String>>,
    live: Mutex<Live>,
}

/// Open connections (a clone of each socket, to shut it down on stop) and
/// the threads serving them.
#[derive(Debug, Default)]
struct Live {
    next_id: u64,
    streams: HashMap<u64, TcpStream>,
    handlers: Vec<JoinHandle<()>>,
}

/// Locks a mutex, ignoring poisoning: a panicked connection thread leaves
/// the bookkeeping consistent, since every update is a single operation.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EchoServer {
    /// Starts a server on `127.0.0.1:0`.
    ///
    /// # Panics
    ///
    /// If the listener cannot be bound; use [`EchoServer::try_start`] to
    /// handle that.
    pub fn start() -> EchoServer {
        EchoServer::try_start().expect("bind the echo server to 127.0.0.1:0")
    }

    /// Starts a server on `127.0.0.1:0`.
    pub fn try_start() -> io::Result<EchoServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("echo-accept".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(EchoServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Every request head received so far, in arrival order, without the
    /// blank line: what the proxy actually sent upstream.
    pub fn request_heads(&self) -> Vec<String> {
        lock(&self.shared.heads).clone()
    }

    /// Stops accepting, shuts down open connections and joins all threads.
    /// Idempotent; also run on drop.
    pub fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept; it sees `stopping` and returns. If this
        // connect fails the listener is already unusable and accept has
        // returned an error, which the loop also treats as a reason to check.
        drop(TcpStream::connect(self.addr));
        // The accept thread never panics; a join error carries nothing to act on.
        let _ = acceptor.join();
        let handlers = {
            let mut live = lock(&self.shared.live);
            for stream in live.streams.values() {
                // The peer may have closed it already; nothing to undo then.
                let _ = stream.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut live.handlers)
        };
        for handler in handlers {
            let _ = handler.join();
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok((stream, _)) = accepted else {
            thread::sleep(ACCEPT_ERROR_BACKOFF);
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let mut live = lock(&shared.live);
        let id = live.next_id;
        live.next_id += 1;
        live.streams.insert(id, clone);
        live.handlers.retain(|handler| !handler.is_finished());
        let shared_for_handler = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name(format!("echo-conn-{id}"))
            .spawn(move || {
                // A failing connection only ends itself; tests see it as EOF.
                let _ = serve(stream, &shared_for_handler);
                lock(&shared_for_handler.live).streams.remove(&id);
            });
        match spawned {
            Ok(handler) => live.handlers.push(handler),
            Err(_) => {
                live.streams.remove(&id);
            }
        }
    }
}

/// Serves one connection: answer the head, then echo frames until Close/EOF.
fn serve(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (head_bytes, early) = read_head(&mut stream)?;
    let head = Head::parse(&head_bytes)?;
    lock(&shared.heads).push(head.as_str().to_owned());
    match reply_to(&head) {
        Reply::Close(response) => {
            stream.write_all(&response)?;
            stream.shutdown(Shutdown::Write)?;
            // Closing with unread input (a request body, a pipelined
            // request) would send RST, which can destroy the response before
            // the peer reads it. Drain until the peer closes, bounded.
            stream.set_read_timeout(Some(LINGER))?;
            io::copy(&mut stream, &mut io::sink()).map(|_| ())
        }
        Reply::Upgrade(response) => {
            stream.write_all(&response)?;
            let mut reader = Cursor::new(early).chain(&stream);
            echo_frames(&mut reader, &stream)
        }
    }
}

fn echo_frames(reader: &mut impl Read, mut writer: &TcpStream) -> io::Result<()> {
    let mut out = Vec::new();
    loop {
        out.clear();
        let (header, payload) = match read_raw_frame(reader) {
            Ok(frame) => frame,
            Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                let reason = close_payload(CLOSE_PROTOCOL_ERROR, "bad frame");
                encode_frame(&mut out, true, Opcode::Close, &reason, None);
                return writer.write_all(&out);
            }
            Err(err) => return Err(err),
        };
        if header.mask.is_none() {
            // RFC 6455 §5.1: "The server MUST close the connection upon
            // receiving a frame that is not masked."
            let reason = close_payload(CLOSE_PROTOCOL_ERROR, "unmasked frame");
            encode_frame(&mut out, true, Opcode::Close, &reason, None);
            return writer.write_all(&out);
        }
        match header.opcode {
            Opcode::Pong => continue,
            Opcode::Ping => encode_frame(&mut out, true, Opcode::Pong, &payload, None),
            Opcode::Close => {
                encode_frame(&mut out, true, Opcode::Close, &payload, None);
                return writer.write_all(&out);
            }
            data => encode_frame(&mut out, header.fin, data, &payload, None),
        }
        writer.write_all(&out)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::{Client, HandshakeError};

    #[test]
    fn reply_table() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let upgrade = format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let cases: [(String, &str); 6] = [
            (upgrade.clone(), "HTTP/1.1 101 "),
            (
                "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n".into(),
                "HTTP/1.1 200 ",
            ),
            ("nonsense\r\n\r\n".into(), "HTTP/1.1 400 "),
            (upgrade.replace("GET", "POST"), "HTTP/1.1 400 "),
            (
                upgrade.replace("Connection: Upgrade", "Connection: close"),
                "HTTP/1.1 400 ",
            ),
            (
                upgrade.replace("Version: 13", "Version: 8"),
                "HTTP/1.1 426 ",
            ),
        ];
        for (request, status) in cases {
            let head = Head::parse(request.as_bytes()).unwrap();
            let (Reply::Upgrade(bytes) | Reply::Close(bytes)) = reply_to(&head);
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.starts_with(status), "{request:?} answered {text:?}");
        }
        let head = Head::parse(upgrade.as_bytes()).unwrap();
        let Reply::Upgrade(bytes) = reply_to(&head) else {
            panic!("valid upgrade refused");
        };
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }

    #[test]
    fn echoes_frames_pings_and_close() {
        let server = EchoServer::start();
        let mut client = Client::connect(server.addr, "/echo").unwrap();
        assert!(client.response_head().starts_with("HTTP/1.1 101"));

        client.send(Opcode::Binary, &[1, 2, 3]).unwrap();
        let frame = client.recv().unwrap();
        assert_eq!(
            (frame.opcode, frame.payload.as_slice()),
            (Opcode::Binary, &[1, 2, 3][..])
        );

        let big = vec![7u8; 70_000];
        client.send(Opcode::Text, &big).unwrap();
        assert_eq!(client.recv().unwrap().payload, big);

        client.send(Opcode::Ping, b"hi").unwrap();
        let pong = client.recv().unwrap();
        assert_eq!(
            (pong.opcode, pong.payload.as_slice()),
            (Opcode::Pong, &b"hi"[..])
        );

        assert_eq!(client.close(4001).unwrap(), Some(4001));
        assert_eq!(server.connections(), 1);
        assert!(server.request_heads()[0].starts_with("GET /echo HTTP/1.1\r\n"));
    }

    #[test]
    fn early_frames_after_the_head_are_echoed() {
        let server = EchoServer::start();
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let key = crate::ws::random_key();
        let mut wire = crate::ws::upgrade_request("x", "/", &key, &[]);
        encode_frame(&mut wire, true, Opcode::Text, b"early", Some([1, 2, 3, 4]));
        stream.write_all(&wire).unwrap();
        let (head, rest) = read_head(&mut stream).unwrap();
        assert!(head.starts_with(b"HTTP/1.1 101"));
        let frame = crate::ws::read_frame(&mut Cursor::new(rest).chain(&stream)).unwrap();
        assert_eq!(frame.text(), Some("early"));
    }

    #[test]
    fn plain_http_gets_a_200_and_a_bad_version_a_426() {
        let server = EchoServer::start();
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("Content-Length: 25\r\n"), "{response}");
        assert!(
            response.ends_with("\r\n\r\necho server: GET /health\n"),
            "{response}"
        );

        let mut raw = TcpStream::connect(server.addr).unwrap();
        let request = "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
        raw.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        raw.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
        assert!(answer.contains("Sec-WebSocket-Version: 13\r\n"), "{answer}");
        assert_eq!(server.connections(), 2);
    }

    #[test]
    fn an_unread_request_body_does_not_reset_the_response() {
        let server = EchoServer::start();
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let body = vec![b'x'; 100_000];
        let head = format!(
            "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(
            response.ends_with("echo server: POST /form\n"),
            "{response}"
        );
    }

    #[test]
    fn a_host_among_extra_headers_replaces_the_default() {
        let server = EchoServer::start();
        let extra = [("host", "chat.example"), ("Origin", "http://chat.example")];
        let client = Client::connect_with(server.addr, "/room", &extra).unwrap();
        drop(client);
        let heads = server.request_heads();
        assert!(heads[0].contains("\r\nHost: chat.example\r\n"), "{heads:?}");
        assert!(
            heads[0].contains("\r\nOrigin: http://chat.example"),
            "{heads:?}"
        );
        assert!(!heads[0].contains(&server.addr.to_string()), "{heads:?}");
    }

    #[test]
    fn a_refused_upgrade_names_the_status_line() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let refuser = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            read_head(&mut stream).unwrap();
            stream
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        });
        let err = Client::connect(addr, "/nowhere").unwrap_err();
        refuser.join().unwrap();
        assert!(err.to_string().contains("HTTP/1.1 404 Not Found"), "{err}");
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<HandshakeError>());
        assert!(
            matches!(inner, Some(HandshakeError::Status { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn stop_ends_idle_connections() {
        let mut server = EchoServer::start();
        let mut client = Client::connect(server.addr, "/").unwrap();
        server.stop();
        assert!(
            client.recv().is_err(),
            "a stopped server closes its connections"
        );
        server.stop();
    }
}
