//! Static files as a browser cache and a media element use them, end to
//! end through the real binary: validators (ETag, Last-Modified), 304s to
//! `If-None-Match` and `If-Modified-Since`, single byte ranges (206), 416,
//! `If-Range`, and ranges from the middle of files larger than the socket
//! buffers, plaintext (sendfile from an offset) and over TLS. Answers are
//! read by their framing, several on one kept-alive connection.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use common::*;

/// 36 bytes whose positions are easy to read off.
const SMALL: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Bytes of the large file: well past what loopback socket buffers hold
/// while the client does not read.
const LARGE: usize = 4 << 20;

/// A proxy serving a root holding `small.txt` (SMALL) and `large.bin`
/// (LARGE bytes), with one added field for successes and one `always`.
struct Site {
    dir: TempDir,
    proxy: Proxy,
    large: Vec<u8>,
}

impl Site {
    fn start() -> Site {
        Site::start_with("")
    }

    /// `listener` goes into the `[[listener]]` section (e.g. `tls`).
    fn start_with(listener: &str) -> Site {
        let dir = TempDir::new();
        let root = dir.0.join("www");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("small.txt"), SMALL).unwrap();
        let large = pattern(LARGE, 11);
        std::fs::write(root.join("large.bin"), &large).unwrap();
        let text = format!(
            "workers = 1\n[[listener]]\naddress = \"127.0.0.1:0\"\n{listener}\n\
             [[server]]\n[[server.route]]\nlocation = \"/\"\nroot = \"{}\"\n\
             response_headers = [{{ name = \"X-Route\", value = \"files\" }}, \
             {{ name = \"X-Always\", value = \"1\", always = true }}]\n",
            root.display()
        );
        let config = dir.write("wsproxy.toml", &text);
        let proxy = Proxy::start(&["--config", config.to_str().unwrap()]);
        Site { dir, proxy, large }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join("www").join(name)
    }

    fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }
}

/// The ETag the proxy should send for a file: nginx's
/// `"<mtime hex>-<size hex>"`.
fn etag_of(path: &Path) -> String {
    let meta = std::fs::metadata(path).unwrap();
    let mtime = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap();
    format!("\"{:x}-{:x}\"", mtime.as_secs(), meta.len())
}

/// A request for `target` with `fields` (whole lines, CRLF included).
fn request(method: &str, target: &str, fields: &str) -> String {
    format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{fields}\r\n")
}

/// Writes a request on a kept-alive connection and reads its answer.
fn exchange(client: &mut TcpStream, method: &str, target: &str, fields: &str) -> (String, Vec<u8>) {
    client
        .write_all(request(method, target, fields).as_bytes())
        .unwrap();
    let answer = Messages::new(client).response(method == "HEAD");
    assert_eq!(
        field(&answer.0, "connection"),
        None,
        "HTTP/1.1 stays open: {}",
        answer.0
    );
    answer
}

#[test]
fn a_file_carries_validators_and_304s_keep_the_connection() {
    let _w = watchdog();
    let site = Site::start();
    let etag = etag_of(&site.path("small.txt"));
    let mut client = connect(site.addr());

    let (head, body) = exchange(&mut client, "GET", "/small.txt", "");
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(body, SMALL);
    assert_eq!(field(&head, "etag"), Some(&*etag));
    assert_eq!(field(&head, "accept-ranges"), Some("bytes"));
    assert_eq!(field(&head, "content-length"), Some("36"));
    assert_eq!(field(&head, "x-route"), Some("files"));
    let modified = field(&head, "last-modified")
        .expect("Last-Modified")
        .to_string();

    let not_modified = |head: &str| {
        assert_eq!(status_of(head), 304, "{head}");
        assert_eq!(field(head, "etag"), Some(&*etag), "{head}");
        assert_eq!(field(head, "last-modified"), Some(&*modified), "{head}");
        assert_eq!(field(head, "x-route"), Some("files"), "{head}");
        for absent in ["content-length", "content-type", "accept-ranges"] {
            assert_eq!(field(head, absent), None, "{absent}: {head}");
        }
    };
    // Each 304 is followed by another request on the same connection: had
    // it a body, or a length it did not send, the next answer would be off.
    for fields in [
        format!("If-None-Match: {etag}\r\n"),
        format!("If-None-Match: \"other\", W/{etag}\r\n"),
        "If-None-Match: *\r\n".to_string(),
        format!("If-Modified-Since: {modified}\r\n"),
        "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n".to_string(),
        // If-None-Match decides alone when present.
        format!("If-None-Match: {etag}\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n"),
    ] {
        let (head, body) = exchange(&mut client, "GET", "/small.txt", &fields);
        not_modified(&head);
        assert!(body.is_empty());
        let (head, _) = exchange(&mut client, "HEAD", "/small.txt", &fields);
        not_modified(&head);
    }
    for fields in [
        "If-None-Match: \"other\"\r\n".to_string(),
        "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n".to_string(),
        "If-Modified-Since: not a date\r\n".to_string(),
        format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {modified}\r\n"),
    ] {
        let (head, body) = exchange(&mut client, "GET", "/small.txt", &fields);
        assert_eq!(status_of(&head), 200, "{fields}: {head}");
        assert_eq!(body, SMALL, "{fields}");
    }
}

#[test]
fn single_ranges_are_served_and_the_rest_whole() {
    let _w = watchdog();
    let site = Site::start();
    let etag = etag_of(&site.path("small.txt"));
    let mut client = connect(site.addr());
    let modified = {
        let (head, _) = exchange(&mut client, "HEAD", "/small.txt", "");
        field(&head, "last-modified").unwrap().to_string()
    };

    let partial: &[(String, &str, &[u8])] = &[
        ("Range: bytes=0-4\r\n".into(), "0-4", b"01234"),
        ("Range: bytes=-3\r\n".into(), "33-35", b"xyz"),
        ("Range: bytes=30-\r\n".into(), "30-35", b"uvwxyz"),
        ("Range: bytes=10-15\r\n".into(), "10-15", b"abcdef"),
        ("Range: bytes=34-1000\r\n".into(), "34-35", b"yz"),
        ("Range: bytes=-100\r\n".into(), "0-35", SMALL),
        (
            format!("Range: bytes=0-4\r\nIf-Range: {etag}\r\n"),
            "0-4",
            b"01234",
        ),
        (
            format!("Range: bytes=0-4\r\nIf-Range: {modified}\r\n"),
            "0-4",
            b"01234",
        ),
    ];
    for (fields, range, want) in partial {
        let (head, body) = exchange(&mut client, "GET", "/small.txt", fields);
        assert_eq!(status_of(&head), 206, "{fields}: {head}");
        assert_eq!(
            field(&head, "content-range"),
            Some(&*format!("bytes {range}/36")),
            "{fields}"
        );
        assert_eq!(
            field(&head, "content-length"),
            Some(&*want.len().to_string())
        );
        assert_eq!(field(&head, "etag"), Some(&*etag));
        assert_eq!(field(&head, "accept-ranges"), Some("bytes"));
        assert_eq!(field(&head, "x-route"), Some("files"));
        assert_eq!(body, *want, "{fields}");
        // HEAD: the same head, no body.
        let (head, body) = exchange(&mut client, "HEAD", "/small.txt", fields);
        assert_eq!(status_of(&head), 206, "HEAD {fields}: {head}");
        assert_eq!(
            field(&head, "content-length"),
            Some(&*want.len().to_string())
        );
        assert!(body.is_empty());
    }

    for fields in [
        "Range: bytes=100-\r\n",
        "Range: bytes=36-\r\n",
        "Range: bytes=500-100\r\n",
        "Range: bytes=-0\r\n",
    ] {
        let (head, body) = exchange(&mut client, "GET", "/small.txt", fields);
        assert_eq!(status_of(&head), 416, "{fields}: {head}");
        assert_eq!(field(&head, "content-range"), Some("bytes */36"));
        assert_eq!(field(&head, "x-always"), Some("1"));
        assert_eq!(field(&head, "x-route"), None, "not added to a 416");
        assert!(
            body.starts_with(b"416 Range Not Satisfiable"),
            "{fields}: {}",
            String::from_utf8_lossy(&body)
        );
        let (head, _) = exchange(&mut client, "HEAD", "/small.txt", fields);
        assert_eq!(status_of(&head), 416, "HEAD {fields}: {head}");
    }

    let whole = [
        "Range: bytes=0-1,5-6\r\n".to_string(),
        "Range: items=0-4\r\n".to_string(),
        "Range: bytes=0-4\r\nIf-Range: \"other\"\r\n".to_string(),
        format!("Range: bytes=0-4\r\nIf-Range: W/{etag}\r\n"),
        "Range: bytes=0-4\r\nIf-Range: Thu, 01 Jan 1970 00:00:00 GMT\r\n".to_string(),
        // A failed If-Range drops even an unsatisfiable range.
        "Range: bytes=100-\r\nIf-Range: \"other\"\r\n".to_string(),
    ];
    for fields in &whole {
        let (head, body) = exchange(&mut client, "GET", "/small.txt", fields);
        assert_eq!(status_of(&head), 200, "{fields}: {head}");
        assert_eq!(field(&head, "content-range"), None);
        assert_eq!(body, SMALL, "{fields}");
    }
}

#[test]
fn pipelined_answers_come_back_in_order_and_close_as_asked() {
    let _w = watchdog();
    let site = Site::start();
    let etag = etag_of(&site.path("small.txt"));
    let mut client = connect(site.addr());
    let all = [
        request("GET", "/small.txt", &format!("If-None-Match: {etag}\r\n")),
        request("GET", "/small.txt", "Range: bytes=2-5\r\n"),
        request("GET", "/small.txt", "Range: bytes=99-\r\n"),
        request("HEAD", "/small.txt", "Range: bytes=99-\r\n"),
        request("HEAD", "/small.txt", "Range: bytes=-1\r\n"),
        request(
            "GET",
            "/small.txt",
            "Range: bytes=-1\r\nConnection: close\r\n",
        ),
    ]
    .concat();
    client.write_all(all.as_bytes()).unwrap();
    let mut answers = Messages::new(&mut client);
    let mut next = |to_head| {
        let (head, body) = answers.response(to_head);
        (
            status_of(&head),
            field(&head, "connection").map(str::to_owned),
            body,
        )
    };
    assert_eq!(next(false), (304, None, vec![]));
    assert_eq!(next(false), (206, None, b"2345".to_vec()));
    let (status, connection, _) = next(false);
    assert_eq!((status, connection), (416, None));
    // To HEAD, the 416 has no body: the next answer follows its head.
    assert_eq!(next(true), (416, None, vec![]));
    assert_eq!(next(true), (206, None, vec![]));
    assert_eq!(next(false), (206, Some("close".into()), b"z".to_vec()));
    assert!(answers.closed(), "closed after the answer that said so");
}

/// Connects with a small receive buffer and reads nothing for a while, so
/// that the proxy fills the socket and must carry on from where sending
/// stopped.
fn slow_reader(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream = TcpStream::from(socket);
    configure(&stream);
    stream
}

#[test]
fn ranges_of_a_large_file_are_sent_from_their_offset() {
    let _w = watchdog();
    let site = Site::start();
    let mut client = slow_reader(site.addr());
    let cases: [(&str, usize, usize); 3] = [
        ("bytes=1000001-3500000", 1_000_001, 3_500_001),
        ("bytes=-1500000", LARGE - 1_500_000, LARGE),
        ("bytes=2097152-", 2_097_152, LARGE),
    ];
    for (range, from, to) in cases {
        client
            .write_all(request("GET", "/large.bin", &format!("Range: {range}\r\n")).as_bytes())
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let (head, body) = Messages::new(&mut client).response(false);
        assert_eq!(status_of(&head), 206, "{range}: {head}");
        assert_eq!(
            field(&head, "content-range"),
            Some(&*format!("bytes {from}-{}/{LARGE}", to - 1))
        );
        assert_eq!(body.len(), to - from, "{range}");
        assert!(body == site.large[from..to], "{range}: not those bytes");
    }
    // And the whole file after them on the same connection.
    client
        .write_all(request("GET", "/large.bin", "").as_bytes())
        .unwrap();
    let (head, body) = Messages::new(&mut client).response(false);
    assert_eq!(status_of(&head), 200, "{head}");
    assert!(body == site.large, "the whole file ({} bytes)", body.len());
}

#[test]
fn ranges_over_tls_are_read_from_their_offset() {
    let _w = watchdog();
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/certs");
    let site = Site::start_with(&format!(
        "tls = {{ cert = \"{0}/www.my-api.com.pem\", key = \"{0}/www.my-api.com.key\" }}",
        certs.display()
    ));
    let host = "www.my-api.com";
    let mut client = tls::tls_connect(site.addr(), tls::demo_client(), host).unwrap();
    for (range, from, to) in [
        ("bytes=0-4", 0, 5),
        ("bytes=1234567-3456789", 1_234_567, 3_456_790),
        ("bytes=-70000", LARGE - 70_000, LARGE),
    ] {
        let text = format!("GET /large.bin HTTP/1.1\r\nHost: {host}\r\nRange: {range}\r\n\r\n");
        client.write_all(text.as_bytes()).unwrap();
        client.flush().unwrap();
        let (head, body) = Messages::new(&mut client).response(false);
        assert_eq!(status_of(&head), 206, "{range}: {head}");
        assert_eq!(body.len(), to - from, "{range}");
        assert!(body == site.large[from..to], "{range}: not those bytes");
    }
}
