//! TLS end to end: `wss://` through the proxy with certificates made here
//! by rcgen (a CA and leaves signed by it), SNI, refused versions,
//! resumption, TLS to upstreams with CA verification, a plaintext client on
//! a TLS port, the handshake timeout, half-close and certificate reload.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::tls::{self, tls_connect};
use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, StreamOwned};

/// A certificate authority made for one test, and the files of the leaf
/// certificates it signs.
struct Pki {
    dir: TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        let dir = TempDir::new();
        dir.write("ca.pem", &ca.pem());
        Pki {
            dir,
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes `FILE.pem` and `FILE.key` for a leaf valid for `names`;
    /// returns the certificate's DER.
    fn leaf(&self, file: &str, names: &[&str]) -> Vec<u8> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        self.dir.write(&format!("{file}.pem"), &cert.pem());
        self.dir.write(&format!("{file}.key"), &key.serialize_pem());
        cert.der().to_vec()
    }

    fn path(&self, file: &str) -> String {
        self.dir.0.join(file).to_str().unwrap().to_string()
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.0.join("ca.pem")
    }

    /// A client that trusts this CA only.
    fn client(&self) -> Arc<ClientConfig> {
        Arc::new(self.client_config(&[&rustls::version::TLS13, &rustls::version::TLS12]))
    }

    fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> ClientConfig {
        tls::client_config(self.ca_pem.as_bytes(), versions)
    }

    /// Starts the proxy on `addr`-less quick mode with leaf `file` as its
    /// certificate.
    fn proxy(&self, file: &str, upstream: SocketAddr, extra: &[&str]) -> Proxy {
        let cert = self.path(&format!("{file}.pem"));
        let key = self.path(&format!("{file}.key"));
        let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
        args.extend_from_slice(extra);
        proxy_to(&[upstream], &args)
    }
}

/// Sends an upgrade over `stream` and reads the answer head; returns the
/// head and any bytes after it.
fn upgrade(stream: &mut impl ReadWrite, addr: SocketAddr) -> (String, Vec<u8>) {
    stream
        .write_all(upgrade_head(addr, "dGhlIHNhbXBsZSBub25jZQ==", "").as_bytes())
        .unwrap();
    stream.flush().unwrap();
    let (head, rest) = ws::read_head(stream).unwrap();
    (String::from_utf8(head).unwrap(), rest)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// An upstream that answers the upgrade, then echoes every byte until EOF
/// and shuts its write side.
fn echo_upstream() -> RawUpstream {
    RawUpstream::start(|mut stream| {
        let Ok((_, early)) = accept_upgrade(&mut stream) else {
            return;
        };
        if stream.write_all(&early).is_err() {
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Write);
    })
}

#[test]
fn wss_carries_a_mebibyte_each_way_intact() {
    let _w = watchdog();
    let pki = Pki::new("bulk");
    pki.leaf("localhost", &["localhost"]);
    const LEN: usize = 1 << 20;
    // The upstream sends its own mebibyte while it checks the client's.
    let (got_tx, got_rx) = mpsc::channel();
    let upstream = RawUpstream::start(move |mut stream| {
        let Ok((_, early)) = accept_upgrade(&mut stream) else {
            return;
        };
        let mut reader = stream.try_clone().unwrap();
        let got_tx = got_tx.clone();
        let reading = thread::spawn(move || {
            let mut got = early;
            let mut buf = [0u8; 64 * 1024];
            while got.len() < LEN {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = got_tx.send(got);
        });
        stream.write_all(&pattern(LEN, 2)).unwrap();
        reading.join().unwrap();
    });
    let proxy = pki.proxy("localhost", upstream.addr, &[]);
    let mut client = tls_connect(proxy.addr(), pki.client(), "localhost").unwrap();
    let (head, mut down) = upgrade(&mut client, proxy.addr());
    assert_eq!(status_of(&head), 101, "{head}");
    let up = pattern(LEN, 1);
    for chunk in up.chunks(100_000) {
        client.write_all(chunk).unwrap();
    }
    client.flush().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    while down.len() < LEN {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "EOF after {} bytes", down.len());
        down.extend_from_slice(&buf[..n]);
    }
    assert!(down == pattern(LEN, 2), "upstream → client bytes differ");
    let got = got_rx.recv_timeout(IO_TIMEOUT).unwrap();
    assert!(
        got == up,
        "client → upstream bytes differ ({} bytes)",
        got.len()
    );
}

#[test]
fn half_close_over_tls_passes_each_way() {
    let _w = watchdog();
    let pki = Pki::new("half");
    pki.leaf("localhost", &["localhost"]);
    let upstream = echo_upstream();
    let proxy = pki.proxy("localhost", upstream.addr, &[]);
    let mut client = tls_connect(proxy.addr(), pki.client(), "localhost").unwrap();
    let (head, rest) = upgrade(&mut client, proxy.addr());
    assert_eq!(status_of(&head), 101);
    assert!(rest.is_empty());
    // Client: data then close_notify (its write side ends). The echo
    // upstream sees EOF only after the data, echoes it, and ends too: the
    // client reads all of it, then a clean TLS end.
    client.write_all(b"last words").unwrap();
    client.conn.send_close_notify();
    client.flush().unwrap();
    let mut back = Vec::new();
    client
        .read_to_end(&mut back)
        .expect("a clean end, close_notify included");
    assert_eq!(back, b"last words");
}

#[test]
fn a_tls_11_client_is_refused_with_an_alert() {
    let _w = watchdog();
    let pki = Pki::new("old");
    pki.leaf("localhost", &["localhost"]);
    let upstream = echo_upstream();
    let proxy = pki.proxy("localhost", upstream.addr, &["--admin", "127.0.0.1:0"]);
    // A ClientHello offering TLS 1.1 only (legacy_version 3.2, no
    // supported_versions extension), as an old client sends it.
    let mut hello = vec![0x03, 0x02];
    hello.extend_from_slice(&[7u8; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE-RSA-AES128-SHA, AES128-SHA
    hello.extend_from_slice(&[0x01, 0x00]); // null compression only
    let extensions: &[u8] = &[
        0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01, // signature_algorithms
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, // supported_groups
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // ec_point_formats
    ];
    hello.extend_from_slice(&[0x00, extensions.len() as u8]);
    hello.extend_from_slice(extensions);
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    let mut tcp = send(proxy.addr(), &record);
    let answer = read_all(&mut tcp);
    // An alert record: fatal (2), protocol_version (70).
    assert!(answer.len() >= 7, "{answer:?}");
    assert_eq!(answer[0], 0x15, "an alert record: {answer:?}");
    assert_eq!(
        &answer[5..7],
        &[2, 70],
        "fatal protocol_version: {answer:?}"
    );
    assert!(
        proxy.wait_for_log("TLS handshake failed"),
        "{:?}",
        proxy.log()
    );
    let line = proxy
        .log()
        .into_iter()
        .find(|l| l.contains("TLS handshake failed"))
        .unwrap();
    assert!(line.contains("127.0.0.1:"), "names the client: {line}");
    assert_eq!(upstream.accepted(), 0);
    assert_eq!(
        proxy.metric(r#"wsproxy_tls_handshake_failures_total{side="client"}"#),
        1.0,
        "and counted"
    );
}

#[test]
fn a_second_connection_resumes_over_tls_13_and_12() {
    let _w = watchdog();
    let pki = Pki::new("resume");
    pki.leaf("localhost", &["localhost"]);
    let upstream = echo_upstream();
    let proxy = pki.proxy("localhost", upstream.addr, &["--workers", "2"]);
    for (version, label) in [
        (&rustls::version::TLS13, "TLS 1.3 ticket"),
        (&rustls::version::TLS12, "TLS 1.2"),
    ] {
        let config = Arc::new(pki.client_config(&[version]));
        let mut kinds = Vec::new();
        for _ in 0..3 {
            let mut client = tls_connect(proxy.addr(), Arc::clone(&config), "localhost").unwrap();
            let (head, _) = upgrade(&mut client, proxy.addr());
            assert_eq!(status_of(&head), 101);
            kinds.push(client.conn.handshake_kind().unwrap());
            // TLS 1.3 tickets arrive after the handshake: read until the
            // echo proves they were processed.
            client.write_all(b"x").unwrap();
            let mut one = [0u8; 1];
            client.read_exact(&mut one).unwrap();
        }
        assert_eq!(kinds[0], rustls::HandshakeKind::Full, "{label}: {kinds:?}");
        assert!(
            kinds[1..]
                .iter()
                .all(|k| *k == rustls::HandshakeKind::Resumed),
            "{label}: later connections resume (across both workers): {kinds:?}"
        );
    }
}

#[test]
fn a_plaintext_client_on_a_tls_port_gets_a_plain_400_and_a_clean_close() {
    let _w = watchdog();
    let pki = Pki::new("plain");
    pki.leaf("localhost", &["localhost"]);
    let upstream = echo_upstream();
    let proxy = pki.proxy("localhost", upstream.addr, &[]);
    let mut tcp = send(
        proxy.addr(),
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n",
    );
    // read_all fails on a reset: the close must be clean.
    let (head, body) = read_response(&mut tcp);
    assert_eq!(status_of(&head), 400, "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("plain HTTP request sent to an HTTPS port"),
        "{body:?}"
    );
    assert_eq!(upstream.accepted(), 0);
}

#[test]
fn a_client_that_never_says_hello_is_cut_off() {
    let _w = watchdog();
    let pki = Pki::new("silent");
    pki.leaf("localhost", &["localhost"]);
    let upstream = echo_upstream();
    let proxy = pki.proxy(
        "localhost",
        upstream.addr,
        &["--handshake-timeout", "300ms"],
    );
    let mut silent = connect(proxy.addr());
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = silent.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut off after the handshake timeout, took {:?}",
        started.elapsed()
    );
    // Half a ClientHello, then silence: cut off too.
    let mut partial = send(proxy.addr(), &[0x16, 0x03, 0x01, 0x01, 0x00, 0x01]);
    assert_eq!(partial.read(&mut buf).unwrap_or(0), 0);
    assert!(
        proxy.wait_for_log("TLS handshake not finished"),
        "{:?}",
        proxy.log()
    );
}

/// An upstream that speaks TLS with `cert`: it answers the upgrade and
/// echoes, and reports the SNI name it was asked for.
fn tls_upstream(pki: &Pki, file: &str) -> (RawUpstream, mpsc::Receiver<Option<String>>) {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.path(&format!("{file}.pem")))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_file(pki.path(&format!("{file}.key"))).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let (sni_tx, sni_rx) = mpsc::channel();
    let upstream = RawUpstream::start(move |tcp| {
        let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            if stream.conn.complete_io(&mut stream.sock).is_err() {
                let _ = sni_tx.send(None);
                return;
            }
        }
        let _ = sni_tx.send(stream.conn.server_name().map(str::to_string));
        let Ok((head, _)) = ws::read_head(&mut stream) else {
            return;
        };
        let head = String::from_utf8(head).unwrap();
        let key = field(&head, "sec-websocket-key").unwrap();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            ws::accept_key(key)
        );
        stream.write_all(answer.as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || stream.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    (upstream, sni_rx)
}

#[test]
fn upstream_tls_is_verified_against_the_ca_and_a_wrong_ca_gets_502() {
    let _w = watchdog();
    let pki = Pki::new("upstream");
    pki.leaf("backend", &["localhost"]);
    let (upstream, sni) = tls_upstream(&pki, "backend");
    let other = Pki::new("other");
    let target = format!("wss://localhost:{}", upstream.addr.port());
    let good = pki.ca_path();
    let bad = other.ca_path();
    for (ca, want) in [(&good, 101), (&bad, 502)] {
        let proxy = Proxy::start(&[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--upstream",
            &target,
            "--upstream-ca",
            ca.to_str().unwrap(),
        ]);
        let mut client = connect(proxy.addr());
        let (head, rest) = upgrade(&mut client, proxy.addr());
        assert_eq!(status_of(&head), want, "{head}");
        assert_eq!(
            sni.recv_timeout(IO_TIMEOUT).unwrap().as_deref(),
            if want == 101 { Some("localhost") } else { None },
            "SNI is the upstream's host name (None: the handshake failed)"
        );
        if want == 101 {
            assert!(rest.is_empty());
            client.write_all(b"through TLS").unwrap();
            assert_eq!(read_exact(&mut client, 11), b"through TLS");
        } else {
            let mut body = rest;
            body.extend(read_all(&mut client));
            assert!(
                String::from_utf8_lossy(&body).contains("upstream TLS handshake failed"),
                "{body:?}"
            );
            assert!(
                proxy.wait_for_log("TLS handshake failed"),
                "{:?}",
                proxy.log()
            );
        }
    }
}

/// The certificate the server presented, as DER.
fn presented(client: &tls::TlsClient) -> Vec<u8> {
    client.conn.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn sni_picks_the_certificate_that_names_the_host() {
    let _w = watchdog();
    let pki = Pki::new("sni");
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test", "*.b.test"]);
    let upstream = echo_upstream();
    let text = format!(
        "workers = 1\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [listener.tls]\ncertificates = [\n\
           {{ cert = \"{a}.pem\", key = \"{a}.key\" }},\n\
           {{ cert = \"{b}.pem\", key = \"{b}.key\" }},\n]\n\
         [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"{up}\"\n",
        a = pki.path("a"),
        b = pki.path("b"),
        up = upstream.addr
    );
    let path = pki.dir.write("sni.toml", &text);
    let proxy = Proxy::start(&["--config", path.to_str().unwrap()]);
    for (name, want) in [("a.test", &a), ("b.test", &b), ("chat.b.test", &b)] {
        let mut client =
            tls_connect(proxy.addr(), pki.client(), name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            presented(&client) == *want,
            "{name} got the wrong certificate"
        );
        assert_eq!(client.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        let (head, _) = upgrade(&mut client, proxy.addr());
        assert_eq!(status_of(&head), 101, "{name}: {head}");
    }
}

/// OpenSSL clients put the URL's host in SNI: `[::1]` for
/// `wss://[::1]:PORT/`. RFC 6066 allows only DNS names there, but nginx
/// serves such a client its default certificate, and so does the proxy:
/// the first one, as for a client without SNI. A known name still picks
/// its own certificate, which shows the hand-made ClientHello's SNI is read.
#[test]
fn an_ip_literal_in_sni_gets_the_default_certificate() {
    let _w = watchdog();
    let pki = Pki::new("ip-sni");
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test"]);
    let upstream = echo_upstream();
    let text = format!(
        "workers = 1\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [listener.tls]\ncertificates = [\n\
           {{ cert = \"{a}.pem\", key = \"{a}.key\" }},\n\
           {{ cert = \"{b}.pem\", key = \"{b}.key\" }},\n]\n\
         [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"{up}\"\n",
        a = pki.path("a"),
        b = pki.path("b"),
        up = upstream.addr
    );
    let path = pki.dir.write("ip-sni.toml", &text);
    let proxy = Proxy::start(&["--config", path.to_str().unwrap()]);
    let cases: [(&str, &[u8]); 7] = [
        ("[::1]", &a),
        ("[127.0.0.1]", &a),
        ("[fe80::1%eth0]", &a),
        ("::1", &a),
        ("127.0.0.1", &a),
        ("example.com:443", &a),
        ("b.test", &b),
    ];
    for (sni, want) in cases {
        let mut client = send(proxy.addr(), &tls::client_hello_tls12(sni.as_bytes()));
        let answer = tls::read_hello_answer(&mut client).unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert!(
            answer == tls::HelloAnswer::Certificate(want.to_vec()),
            "SNI {sni:?}: {}",
            match answer {
                tls::HelloAnswer::Alert(n) => format!("alert {n}"),
                tls::HelloAnswer::Certificate(_) => "the wrong certificate".into(),
            }
        );
    }
}

#[test]
fn sighup_swaps_the_certificate_and_keeps_live_tunnels() {
    let _w = watchdog();
    let pki = Pki::new("reload");
    let first = pki.leaf("site", &["localhost"]);
    let upstream = echo_upstream();
    let proxy = pki.proxy("site", upstream.addr, &["--workers", "2"]);
    let mut live = tls_connect(proxy.addr(), pki.client(), "localhost").unwrap();
    assert!(presented(&live) == first);
    let (head, _) = upgrade(&mut live, proxy.addr());
    assert_eq!(status_of(&head), 101);

    let second = pki.leaf("site", &["localhost"]);
    proxy.signal(libc::SIGHUP);
    assert!(
        proxy.wait_for_log("reloaded 1 certificate"),
        "{:?}",
        proxy.log()
    );
    let fresh = tls_connect(proxy.addr(), pki.client(), "localhost").unwrap();
    assert!(
        presented(&fresh) == second,
        "new handshakes use the new certificate"
    );

    // A broken file: the reload fails, says why, and changes nothing.
    pki.dir.write("site.key", "not a key\n");
    proxy.signal(libc::SIGHUP);
    assert!(
        proxy.wait_for_log("keeping the certificates loaded before"),
        "{:?}",
        proxy.log()
    );
    let fresh = tls_connect(proxy.addr(), pki.client(), "localhost").unwrap();
    assert!(presented(&fresh) == second);

    // The tunnel opened before both reloads still carries bytes.
    live.write_all(b"still here").unwrap();
    let mut back = [0u8; 10];
    live.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here");
}

#[test]
fn tls_mistakes_in_the_file_are_located() {
    let _w = watchdog();
    let pki = Pki::new("check");
    pki.leaf("site", &["localhost"]);
    let text = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\
         tls = {{ cert = \"{dir}/site.pem\", key = \"{dir}/site.key\", protocols = [\"TLSv1.1\"] }}\n\
         [[listener]]\naddress = \"127.0.0.2:0\"\n\
         tls = {{ cert = \"{dir}/missing.pem\", key = \"{dir}/site.key\" }}\n\
         [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"127.0.0.1:9\"\n",
        dir = pki.dir.0.display()
    );
    let path = pki.dir.write("bad.toml", &text);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsproxy-fast"))
        .args(["--check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains("bad.toml:3:") && lines[0].contains("RFC 8996"),
        "{err}"
    );
    assert!(
        lines[1].contains("bad.toml:6:") && lines[1].contains("missing.pem"),
        "{err}"
    );
}

#[test]
fn a_drain_sends_close_1001_through_tls_then_close_notify() {
    let _w = watchdog();
    let pki = Pki::new("drain");
    pki.leaf("localhost", &["localhost"]);
    let upstream = ws::EchoServer::start();
    let mut proxy = pki.proxy("localhost", upstream.addr, &["--drain-timeout", "5s"]);
    let mut client = tls_connect(proxy.addr(), pki.client(), "localhost").unwrap();
    let (head, rest) = upgrade(&mut client, proxy.addr());
    assert_eq!(status_of(&head), 101);
    assert!(rest.is_empty());
    proxy.signal(libc::SIGTERM);
    let close = ws::read_frame(&mut client).expect("a Close frame over TLS");
    assert_eq!(close.close_code(), Some(1001));
    // Answer it as a client does; the proxy ends with close_notify.
    let mut out = Vec::new();
    let payload = ws::close_payload(1001, "");
    ws::encode_frame(
        &mut out,
        true,
        ws::Opcode::Close,
        &payload,
        Some(ws::random_mask()),
    );
    client.write_all(&out).unwrap();
    let mut after = Vec::new();
    client
        .read_to_end(&mut after)
        .expect("a clean TLS end, close_notify included");
    assert!(after.is_empty(), "{after:?}");
    drop(client);
    let status = proxy.wait_exit(Duration::from_secs(5)).expect("drained");
    assert_eq!(status.code(), Some(0));
}
