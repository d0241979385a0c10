//! HTTP/2 streams to and from HTTP/1.1 messages, sans I/O: a stream's
//! request becomes the HTTP/1.1 head the proxy's request reader takes (an
//! extended CONNECT becomes a WebSocket upgrade, RFC 8441 §5), and the
//! HTTP/1.1 answer the pair writes back becomes a response head and DATA
//! (a 101 to the upgrade becomes `:status 200`, once its
//! `Sec-WebSocket-Accept` is checked against the key the proxy made).

use super::request::{Request, Target};

/// Fields that mean something to one HTTP/1.1 connection only, dropped
/// from an answer on its way to HTTP/2 (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

/// How the stream's DATA becomes request bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// As they are: a body of known length, or a tunnel's bytes.
    Raw,
    /// As chunks: a body whose length the request did not give.
    Chunked,
}

/// A stream's request as HTTP/1.1.
#[derive(Debug)]
pub struct Upgrade {
    /// The key the proxy made for an extended CONNECT.
    pub key: Option<String>,
    pub inbound: Inbound,
}

/// Why a request cannot be carried (answered on the stream, no pair made).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

/// Writes the HTTP/1.1 head for `req` into `out`. `end_stream`: no body
/// follows the HEADERS. `key`: makes a `Sec-WebSocket-Key` for an upgrade.
pub fn request_head(
    req: &Request,
    end_stream: bool,
    key: impl FnOnce() -> String,
    out: &mut Vec<u8>,
) -> Result<Upgrade, Refusal> {
    let (method, path, websocket) = match &req.target {
        Target::Origin { path, .. } => (req.method.as_slice(), path.as_slice(), false),
        Target::ExtendedConnect { protocol, path, .. } => {
            if !protocol.eq_ignore_ascii_case(b"websocket") {
                return Err(Refusal {
                    status: 501,
                    reason: "only the websocket protocol is carried over CONNECT",
                });
            }
            (&b"GET"[..], path.as_slice(), true)
        }
        Target::Connect => {
            return Err(Refusal {
                status: 405,
                reason: "CONNECT tunnels are not offered: this is a reverse proxy",
            })
        }
    };
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(authority) = &req.authority {
        field(out, b"host", authority);
    }
    // §8.2.3: cookie fields split for compression are joined again.
    let mut cookie: Option<Vec<u8>> = None;
    let mut version = false;
    for (name, value) in &req.fields {
        match name.as_slice() {
            b"host" if req.authority.is_some() => {}
            b"cookie" => match &mut cookie {
                Some(c) => {
                    c.extend_from_slice(b"; ");
                    c.extend_from_slice(value);
                }
                None => cookie = Some(value.clone()),
            },
            _ => {
                version |= name == b"sec-websocket-version";
                field(out, name, value);
            }
        }
    }
    if let Some(c) = cookie {
        field(out, b"cookie", &c);
    }
    let upgrade = if websocket {
        let key = key();
        out.extend_from_slice(b"upgrade: websocket\r\nconnection: upgrade, close\r\n");
        field(out, b"sec-websocket-key", key.as_bytes());
        if !version {
            out.extend_from_slice(b"sec-websocket-version: 13\r\n");
        }
        Upgrade {
            key: Some(key),
            inbound: Inbound::Raw,
        }
    } else {
        // One exchange per stream: the pair closes it after the answer.
        out.extend_from_slice(b"connection: close\r\n");
        let chunked = !end_stream && req.content_length.is_none();
        if chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        Upgrade {
            key: None,
            inbound: if chunked {
                Inbound::Chunked
            } else {
                Inbound::Raw
            },
        }
    };
    out.extend_from_slice(b"\r\n");
    Ok(upgrade)
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes DATA octets as request bytes: as they are, or as one chunk (and
/// the last chunk at the end).
pub fn request_data(inbound: Inbound, data: &[u8], end: bool, out: &mut Vec<u8>) {
    match inbound {
        Inbound::Raw => out.extend_from_slice(data),
        Inbound::Chunked => {
            if !data.is_empty() {
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            if end {
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
    }
}

/// A response head for HTTP/2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Regular fields, names lower case.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// No body follows.
    pub end_stream: bool,
}

/// Where the answer stands.
#[derive(Debug)]
enum State {
    /// Gathering the head.
    Head,
    /// `n` body octets to come.
    Length(u64),
    Chunked(Dechunk),
    /// Body until the pair shuts its side.
    UntilClose,
    /// The tunnel after a checked 101.
    Tunnel,
    /// The answer is through.
    Done,
}

/// The HTTP/1.1 answer of one stream, turned into a head and DATA.
#[derive(Debug)]
pub struct Answer {
    state: State,
    /// The partial head.
    head: Vec<u8>,
    /// The request was HEAD: no body whatever the head says.
    head_only: bool,
    /// The `Sec-WebSocket-Accept` a 101 must carry (extended CONNECT).
    accept: Option<String>,
}

impl Answer {
    /// `accept`: for an extended CONNECT, what the upstream's 101 must say.
    pub fn new(head_only: bool, accept: Option<String>) -> Answer {
        Answer {
            state: State::Head,
            head: Vec::new(),
            head_only,
            accept,
        }
    }

    /// The answer's body is through: the stream may end.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The head went out (a 502 can no longer replace the answer).
    pub fn head_sent(&self) -> bool {
        !matches!(self.state, State::Head)
    }

    /// The body runs until the pair shuts its side (no length, or a
    /// tunnel).
    pub fn ends_at_close(&self) -> bool {
        matches!(self.state, State::UntilClose | State::Tunnel)
    }

    /// Takes bytes the pair wrote: a head goes to `heads`, body octets to
    /// `data`. Bytes past the end of the answer are dropped.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        heads: &mut Vec<Head>,
        data: &mut Vec<u8>,
    ) -> Result<(), &'static str> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Head => {
                    let before = self.head.len();
                    self.head.extend_from_slice(bytes);
                    let Some(taken) = self.parse_head(heads)? else {
                        if self.head.len() > 64 << 10 {
                            return Err("answer head over 64 KiB");
                        }
                        return Ok(());
                    };
                    bytes = &bytes[taken - before..];
                    self.head = Vec::new();
                }
                State::Length(left) => {
                    let n = bytes
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    data.extend_from_slice(&bytes[..n]);
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = State::Done;
                    }
                }
                State::Chunked(d) => {
                    let n = d.feed(bytes, data);
                    bytes = &bytes[n..];
                    if d.is_done() {
                        self.state = State::Done;
                    }
                }
                State::UntilClose | State::Tunnel => {
                    data.extend_from_slice(bytes);
                    bytes = &[];
                }
                State::Done => bytes = &[],
            }
        }
        Ok(())
    }

    /// Parses the gathered head: `Some(octets)` once one is complete.
    fn parse_head(&mut self, heads: &mut Vec<Head>) -> Result<Option<usize>, &'static str> {
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut response = httparse::Response::new(&mut fields);
        let taken = match response.parse(&self.head) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("malformed answer head"),
        };
        let status = response.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            // An interim answer (100 Continue, 103 Early Hints) goes on as
            // a head of its own (RFC 9113 §8.1); the final one follows.
            let fields = response
                .headers
                .iter()
                .filter(|f| !CONNECTION_SPECIFIC.contains(&f.name.to_ascii_lowercase().as_str()))
                .map(|f| (f.name.to_ascii_lowercase().into_bytes(), f.value.to_vec()))
                .collect();
            heads.push(Head {
                status,
                fields,
                end_stream: false,
            });
            let rest = self.head.split_off(taken);
            self.head = rest;
            let more = self.parse_head(heads)?;
            return Ok(Some(more.map_or(taken, |n| n + taken)));
        }
        let mut out = Vec::new();
        let mut length = None;
        let mut chunked = false;
        for f in response.headers.iter() {
            let name = f.name.to_ascii_lowercase();
            if name == "content-length" {
                length = std::str::from_utf8(f.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            }
            if name == "transfer-encoding" {
                chunked = f.value.to_ascii_lowercase().ends_with(b"chunked");
            }
            if CONNECTION_SPECIFIC.contains(&name.as_str()) {
                continue;
            }
            out.push((name.into_bytes(), f.value.to_vec()));
        }
        if status == 101 {
            let Some(expected) = self.accept.take() else {
                return Err("101 to a request that asked for no upgrade");
            };
            let accept = out
                .iter()
                .find(|(n, _)| n == b"sec-websocket-accept")
                .map(|(_, v)| v.as_slice());
            if accept != Some(expected.as_bytes()) {
                return Err("the upstream's Sec-WebSocket-Accept does not match the key");
            }
            out.retain(|(n, _)| n == b"sec-websocket-protocol" || n == b"sec-websocket-extensions");
            heads.push(Head {
                status: 200,
                fields: out,
                end_stream: false,
            });
            self.state = State::Tunnel;
            return Ok(Some(taken));
        }
        self.state = if self.head_only || status == 204 || status == 304 {
            State::Done
        } else if chunked {
            State::Chunked(Dechunk::default())
        } else {
            match length {
                Some(0) => State::Done,
                Some(n) => State::Length(n),
                None => State::UntilClose,
            }
        };
        heads.push(Head {
            status,
            fields: out,
            end_stream: self.is_done(),
        });
        Ok(Some(taken))
    }
}

/// Chunked transfer coding taken off (RFC 9112 §7.1). The pair checked the
/// framing strictly on the way through; this only follows it.
#[derive(Debug, Default)]
struct Dechunk {
    state: Chunk,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Chunk {
    /// The size line: the size so far, and whether an extension began.
    #[default]
    SizeStart,
    Size(u64, bool),
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines; `true` while the current line is empty.
    Trailer(bool),
    Done,
}

impl Dechunk {
    fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Takes chunked octets, data to `out`; how many were taken.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> usize {
        let mut i = 0;
        while i < bytes.len() && self.state != Chunk::Done {
            let b = bytes[i];
            self.state = match self.state {
                Chunk::SizeStart => Chunk::Size(0, false).step(b),
                Chunk::Size(..) => self.state.step(b),
                Chunk::Data(left) => {
                    let n = (bytes.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&bytes[i..i + n]);
                    i += n;
                    self.state = if left == n as u64 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n as u64)
                    };
                    continue;
                }
                Chunk::DataEnd if b == b'\n' => Chunk::SizeStart,
                Chunk::DataEnd => Chunk::DataEnd,
                Chunk::Trailer(empty) => match b {
                    b'\n' if empty => Chunk::Done,
                    b'\n' => Chunk::Trailer(true),
                    b'\r' => Chunk::Trailer(empty),
                    _ => Chunk::Trailer(false),
                },
                Chunk::Done => Chunk::Done,
            };
            i += 1;
        }
        i
    }
}

impl Chunk {
    /// One octet of a size line.
    fn step(self, b: u8) -> Chunk {
        let Chunk::Size(size, ext) = self else {
            return self;
        };
        match b {
            b'\n' if size == 0 => Chunk::Trailer(true),
            b'\n' => Chunk::Data(size),
            b';' => Chunk::Size(size, true),
            _ if ext => self,
            _ => match (b as char).to_digit(16) {
                Some(d) => Chunk::Size(size.saturating_mul(16) + u64::from(d), false),
                None => self,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::request::Request;

    fn request(method: &str, target: Target, fields: &[(&str, &str)]) -> Request {
        Request {
            method: method.as_bytes().to_vec(),
            authority: Some(b"example.com".to_vec()),
            target,
            fields: fields
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
            content_length: None,
        }
    }

    #[test]
    fn an_extended_connect_becomes_an_upgrade_with_our_key() {
        let req = request(
            "CONNECT",
            Target::ExtendedConnect {
                protocol: b"websocket".to_vec(),
                scheme: b"https".to_vec(),
                path: b"/chat?x=1".to_vec(),
            },
            &[
                ("sec-websocket-version", "13"),
                ("origin", "https://example.com"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
            ],
        );
        let mut out = Vec::new();
        let up = request_head(&req, false, || "dGhlIHNhbXBsZSBub25jZQ==".into(), &mut out)
            .expect("carried");
        let head = String::from_utf8(out).unwrap();
        assert!(head.starts_with("GET /chat?x=1 HTTP/1.1\r\nhost: example.com\r\n"));
        assert!(head.contains("upgrade: websocket\r\n"));
        assert!(head.contains("sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(head.contains("cookie: a=1; b=2\r\n"));
        assert_eq!(head.matches("sec-websocket-version").count(), 1);
        assert!(head.ends_with("\r\n\r\n"));
        assert_eq!(up.inbound, Inbound::Raw);

        let mut answer = Answer::new(false, Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()));
        let (mut heads, mut data) = (Vec::new(), Vec::new());
        answer
            .feed(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi",
                &mut heads,
                &mut data,
            )
            .unwrap();
        assert_eq!(heads.len(), 1);
        assert_eq!(heads[0].status, 200);
        assert!(heads[0].fields.is_empty());
        assert_eq!(data, b"\x81\x02hi");
        assert!(answer.ends_at_close());
    }

    #[test]
    fn a_wrong_accept_is_refused() {
        let mut answer = Answer::new(false, Some("right".into()));
        let err = answer
            .feed(
                b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: wrong\r\n\r\n",
                &mut Vec::new(),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(err.contains("Accept"));
        assert!(!answer.head_sent());
    }

    #[test]
    fn classic_connect_and_other_protocols_are_refused() {
        let req = request("CONNECT", Target::Connect, &[]);
        let e = request_head(&req, false, String::new, &mut Vec::new()).unwrap_err();
        assert_eq!(e.status, 405);
        let req = request(
            "CONNECT",
            Target::ExtendedConnect {
                protocol: b"webtransport".to_vec(),
                scheme: b"https".to_vec(),
                path: b"/".to_vec(),
            },
            &[],
        );
        let e = request_head(&req, false, String::new, &mut Vec::new()).unwrap_err();
        assert_eq!(e.status, 501);
    }

    #[test]
    fn a_body_without_length_goes_chunked() {
        let req = request(
            "POST",
            Target::Origin {
                scheme: b"https".to_vec(),
                path: b"/api".to_vec(),
            },
            &[],
        );
        let mut out = Vec::new();
        let up = request_head(&req, false, String::new, &mut out).unwrap();
        assert_eq!(up.inbound, Inbound::Chunked);
        assert!(String::from_utf8_lossy(&out).contains("transfer-encoding: chunked\r\n"));
        let mut body = Vec::new();
        request_data(up.inbound, b"hello", false, &mut body);
        request_data(up.inbound, b"", true, &mut body);
        assert_eq!(body, b"5\r\nhello\r\n0\r\n\r\n");
    }

    #[test]
    fn answers_lose_their_framing_and_connection_fields() {
        for split in [1usize, 3, 7, 1000] {
            let wire: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\
                Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n\
                5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nGARBAGE";
            let mut answer = Answer::new(false, None);
            let (mut heads, mut data) = (Vec::new(), Vec::new());
            for part in wire.chunks(split) {
                answer.feed(part, &mut heads, &mut data).unwrap();
            }
            assert_eq!(heads.len(), 2, "split {split}");
            assert_eq!(heads[0].status, 100, "the interim answer goes on");
            assert_eq!(heads[1].status, 200);
            assert_eq!(
                heads[1].fields,
                vec![(b"content-type".to_vec(), b"text/plain".to_vec())]
            );
            assert_eq!(data, b"hello world", "split {split}");
            assert!(answer.is_done());
        }
    }

    #[test]
    fn lengths_heads_and_empty_answers() {
        let mut answer = Answer::new(false, None);
        let (mut heads, mut data) = (Vec::new(), Vec::new());
        answer
            .feed(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcdef",
                &mut heads,
                &mut data,
            )
            .unwrap();
        assert_eq!(data, b"abc");
        assert!(answer.is_done());
        assert!(!heads[0].end_stream);

        let mut answer = Answer::new(true, None);
        let mut heads = Vec::new();
        answer
            .feed(
                b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n",
                &mut heads,
                &mut Vec::new(),
            )
            .unwrap();
        assert!(heads[0].end_stream, "a HEAD's answer has no body");

        let mut answer = Answer::new(false, None);
        let mut heads = Vec::new();
        answer
            .feed(b"HTTP/1.1 200 OK\r\n\r\nuntil", &mut heads, &mut Vec::new())
            .unwrap();
        assert!(answer.ends_at_close());
    }
}
