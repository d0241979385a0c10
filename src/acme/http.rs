//! A small blocking HTTPS client for the ACME thread: one request per
//! connection (`Connection: close`), rustls with the ring provider,
//! trusting the system's CAs or the one `ca` file a private ACME server's
//! certificate chains to. Never used by a worker.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Connecting, and each read or write, gives up after this long.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read (a certificate chain is a few KiB).
const MAX_RESPONSE: usize = 1 << 20;

/// An answer: status, header fields (names lowercased), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub fields: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Http {
    config: Arc<ClientConfig>,
}

impl Http {
    /// A client trusting `ca` (PEM, one or more certificates) or, without
    /// it, the system's CA certificates.
    pub fn new(ca: Option<&Path>) -> Result<Http, String> {
        let mut roots = RootCertStore::empty();
        match ca {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("{}: cannot read the ACME CA: {e}", path.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("{}: not a usable CA: {e}", path.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!("{}: no certificate in it", path.display()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(
                        "no system CA certificates found to check the ACME server with: \
                         install ca-certificates or set acme.ca"
                            .into(),
                    );
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Http {
            config: Arc::new(config),
        })
    }

    /// One request; any status is an `Ok` answer.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, String> {
        self.try_request(method, url, body)
            .map_err(|e| format!("{method} {url}: {e}"))
    }

    fn try_request(&self, method: &str, url: &str, body: Option<&[u8]>) -> io::Result<Response> {
        let (host, port, path) = split_url(url)?;
        let addr = (host.as_str(), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other(format!("{host}: no address")))?;
        let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        let name = ServerName::try_from(host.clone()).map_err(io::Error::other)?;
        let conn =
            ClientConnection::new(Arc::clone(&self.config), name).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(conn, tcp);
        // An IPv6 literal keeps its brackets in Host (RFC 9110 §7.2).
        let authority = match host.contains(':') {
            true => format!("[{host}]:{port}"),
            false => format!("{host}:{port}"),
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: wsproxy-fast/{}\r\n\
             Accept: */*\r\nConnection: close\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/jose+json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        if let Some(body) = body {
            stream.write_all(body)?;
        }
        stream.flush()?;
        let mut raw = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    raw.extend_from_slice(&chunk[..n]);
                    if raw.len() > MAX_RESPONSE {
                        return Err(io::Error::other("answer larger than 1 MiB"));
                    }
                }
                // A server that closes without close_notify: what came is whole
                // if its framing says so (checked below).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        parse_response(&raw, method == "HEAD")
    }
}

/// `https://host[:port]/path` → (host, port, path).
fn split_url(url: &str) -> io::Result<(String, u16, String)> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| io::Error::other("not an https:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            match port.parse() {
                Ok(port) => (host, port),
                Err(_) => (authority, 443),
            }
        }
        _ => (authority, 443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_owned(), port, path.to_owned()))
}

fn parse_response(raw: &[u8], head_only: bool) -> io::Result<Response> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut fields);
    let len = match parsed.parse(raw).map_err(io::Error::other)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Err(io::Error::other("answer cut short in its head")),
    };
    let status = parsed.code.unwrap_or(0);
    let fields: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|f| {
            (
                f.name.to_ascii_lowercase(),
                String::from_utf8_lossy(f.value).trim().to_owned(),
            )
        })
        .collect();
    let rest = &raw[len..];
    let find = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let body = if head_only {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().map_err(io::Error::other)?;
        if rest.len() < length {
            return Err(io::Error::other("answer cut short in its body"));
        }
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        fields,
        body,
    })
}

/// A chunked body (RFC 9112 §7.1), whole.
fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let short = || io::Error::other("chunked answer cut short");
    let mut body = Vec::new();
    loop {
        let line_end = memchr::memmem::find(rest, b"\r\n").ok_or_else(short)?;
        let line = std::str::from_utf8(&rest[..line_end]).map_err(io::Error::other)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(io::Error::other)?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err(short());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let cases = [
            ("https://ca.test/dir", ("ca.test", 443, "/dir")),
            ("https://127.0.0.1:14000/dir", ("127.0.0.1", 14000, "/dir")),
            ("https://ca.test", ("ca.test", 443, "/")),
            ("https://[::1]:8443/x?y", ("::1", 8443, "/x?y")),
        ];
        for (url, (host, port, path)) in cases {
            let got = split_url(url).unwrap();
            assert_eq!(got, (host.to_owned(), port, path.to_owned()), "{url}");
        }
        assert!(split_url("http://ca.test/").is_err());
    }

    #[test]
    fn framings() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked, false).unwrap().body, b"abcde");
        let sized = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nLocation: /a\r\n\r\nok";
        let r = parse_response(sized, false).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.field("location")),
            (201, &b"ok"[..], Some("/a"))
        );
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok";
        assert!(parse_response(short, false).is_err());
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
        assert!(parse_response(cut, false).is_err());
    }
}
