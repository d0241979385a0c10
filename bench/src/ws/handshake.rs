//! The opening handshake (RFC 6455 §4): the GUID, `Sec-WebSocket-Accept`,
//! random keys and masking keys, the client request head, and the client's
//! checks on the server's answer.

use std::collections::hash_map::RandomState;
use std::error::Error;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use super::base64;
use super::http::{Head, HeadError};

/// RFC 6455 §1.3: "the server has to take the value [of Sec-WebSocket-Key]
/// and concatenate this with the Globally Unique Identifier (GUID, [RFC4122])
/// "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" in string form, which is unlikely
/// to be used by network endpoints that do not understand the WebSocket
/// Protocol."
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a key: base64(SHA-1(key + GUID)).
pub fn accept_key(sec_websocket_key: &str) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(sec_websocket_key.as_bytes());
    sha1.update(GUID.as_bytes());
    base64::encode(&sha1.digest().bytes())
}

/// 64 unpredictable bits. `RandomState` is seeded from the OS once per thread
/// and perturbed on every construction; hashing a process-wide counter on top
/// keeps successive values distinct.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64-encoded (RFC 6455 §4.1).
pub fn random_key() -> String {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&random_u64().to_ne_bytes());
    nonce[8..].copy_from_slice(&random_u64().to_ne_bytes());
    base64::encode(&nonce)
}

/// A fresh masking key (RFC 6455 §5.3).
pub fn random_mask() -> [u8; 4] {
    let bits = random_u64().to_ne_bytes();
    [bits[0], bits[1], bits[2], bits[3]]
}

/// A client opening handshake head (RFC 6455 §4.1), blank line included.
/// `extra_headers` are written after the required ones, in order.
pub fn upgrade_request(
    host: &str,
    path: &str,
    key: &str,
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut head = format!(
        "GET {path} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in extra_headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Why a client refused the server's answer to its opening handshake.
#[derive(Debug)]
pub enum HandshakeError {
    /// The response head could not be read.
    Head(HeadError),
    /// The status was not `101`. RFC 6455 §4.1: any other status means the
    /// handshake did not complete.
    Status { status_line: String, head: String },
    /// `Upgrade: websocket` or `Connection: Upgrade` is missing (RFC 6455
    /// §4.1: the client MUST fail the connection).
    MissingToken {
        header: &'static str,
        token: &'static str,
    },
    /// `Sec-WebSocket-Accept` is absent or does not match the key sent.
    BadAccept {
        expected: String,
        received: Option<String>,
    },
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Head(err) => write!(f, "bad handshake response: {err}"),
            HandshakeError::Status { status_line, .. } => {
                write!(f, "upgrade refused: {status_line}")
            }
            HandshakeError::MissingToken { header, token } => {
                write!(f, "101 response lacks `{header}: {token}`")
            }
            HandshakeError::BadAccept { expected, received } => write!(
                f,
                "Sec-WebSocket-Accept is {received:?}, expected {expected:?}"
            ),
        }
    }
}

impl Error for HandshakeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            HandshakeError::Head(err) => Some(err),
            _ => None,
        }
    }
}

impl From<HandshakeError> for io::Error {
    fn from(err: HandshakeError) -> io::Error {
        let kind = match &err {
            HandshakeError::Head(HeadError::Closed { .. }) => io::ErrorKind::UnexpectedEof,
            HandshakeError::Status { .. } => io::ErrorKind::Other,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, err)
    }
}

/// Checks a server's answer to a handshake sent with `key`, as RFC 6455 §4.1
/// requires of clients: status 101, `Upgrade: websocket`, `Connection:
/// Upgrade`, and the matching `Sec-WebSocket-Accept`.
pub fn check_upgrade_response(head: &Head<'_>, key: &str) -> Result<(), HandshakeError> {
    if head.status_code() != Some(101) {
        return Err(HandshakeError::Status {
            status_line: head.start_line().to_owned(),
            head: head.as_str().to_owned(),
        });
    }
    for (header, token) in [("Upgrade", "websocket"), ("Connection", "upgrade")] {
        if !head.has_token(header, token) {
            return Err(HandshakeError::MissingToken { header, token });
        }
    }
    let expected = accept_key(key);
    match head.header("Sec-WebSocket-Accept") {
        Some(received) if received == expected => Ok(()),
        received => Err(HandshakeError::BadAccept {
            expected,
            received: received.map(str::to_owned),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_accept_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn random_keys_are_16_bytes_and_distinct() {
        let a = random_key();
        let b = random_key();
        assert_eq!(a.len(), 24, "16 bytes encode to 24 base64 characters");
        assert!(a.ends_with("=="));
        assert_ne!(a, b);
        assert_ne!(random_mask(), random_mask());
    }

    #[test]
    fn request_head_has_required_headers_then_extras() {
        let head = upgrade_request("127.0.0.1:8080", "/chat", "a2V5", &[("Origin", "http://x")]);
        let text = String::from_utf8(head).unwrap();
        assert_eq!(
            text,
            "GET /chat HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: a2V5\r\nSec-WebSocket-Version: 13\r\n\
             Origin: http://x\r\n\r\n"
        );
    }

    fn check(response: &str) -> Result<(), HandshakeError> {
        let head = Head::parse(response.as_bytes()).unwrap();
        check_upgrade_response(&head, "dGhlIHNhbXBsZSBub25jZQ==")
    }

    #[test]
    fn response_checks() {
        let ok = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n\
                  connection: keep-alive, Upgrade\r\n\
                  sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        check(ok).unwrap();

        let refused = check("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "upgrade refused: HTTP/1.1 404 Not Found"
        );

        let no_connection = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(matches!(
            check(no_connection),
            Err(HandshakeError::MissingToken {
                header: "Connection",
                ..
            })
        ));

        let wrong_accept = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                            Connection: Upgrade\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert!(matches!(
            check(wrong_accept),
            Err(HandshakeError::BadAccept {
                received: Some(_),
                ..
            })
        ));
    }
}
