//! Certificates from an ACME CA, end to end against Pebble (Let's
//! Encrypt's test CA, Debian package `pebble`) on loopback, validating on
//! the proxy's own ports: TLS-ALPN-01 for two names, HTTP-01 before a
//! `redirect_https` 308, the quick-mode `--acme-*` flags, the certificate
//! kept across a restart without a new order, renewal under 100 open
//! tunnels, a reload that turns a listener's certificate into an ACME
//! one, and a refused validation logged with the CA's reason and retried.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::pebble::{free_tcp_port, start_dns, Daemon, Options, Pebble, PebbleTls};
use common::tls::{client_config, demo_client, tls_connect, TlsClient};
use common::{
    connect, eventually, read_response, status_of, upgrade_head, watchdog_for, ws, Proxy, TempDir,
};
use rustls::ClientConfig;

/// Each test here stays well under this (they run side by side).
const LIMIT: Duration = Duration::from_secs(60);

/// Longest wait for an order Pebble can answer in well under a second.
const ISSUE_LIMIT: Duration = Duration::from_secs(30);

/// Everything one test runs: the DNS stub, Pebble, the proxy.
struct Setup {
    _dns: Daemon,
    pebble: Pebble,
    proxy: Proxy,
    dir: TempDir,
    pebble_tls: PebbleTls,
    /// The proxy's command line, to start it again.
    args: Vec<String>,
}

/// Which of the proxy's listeners Pebble validates on.
#[derive(Clone, Copy)]
enum Validate {
    /// TLS-ALPN-01 on the proxy's listener number `n`.
    Tls(usize),
    /// HTTP-01 on the proxy's listener number `n`.
    Http(usize),
    /// TLS-ALPN-01 on a port where something else answers.
    Elsewhere(u16),
}

/// The proxy's arguments for a CA at `directory` whose HTTPS chains to
/// `ca_file`, keeping its certificates in `storage`.
enum Launch<F> {
    /// A configuration file with what `F` writes.
    File(F),
    /// Quick mode: `F` gives the flags.
    Flags(F),
}

/// Starts the proxy as `launch` says, then Pebble validating where
/// `validate` says; a Pebble port taken meanwhile starts both again on
/// another.
fn setup<F: Fn(&str, &Path, &Path) -> String>(
    validate: Validate,
    options: Options,
    launch: Launch<F>,
) -> Setup {
    let (dns, dns_addr) = start_dns();
    let dir = TempDir::new();
    let pebble_tls = PebbleTls::new(&dir);
    let storage = dir.0.join("acme");
    for _ in 0..5 {
        let port = free_tcp_port();
        let directory = format!("https://127.0.0.1:{port}/dir");
        let args: Vec<String> = match &launch {
            Launch::File(toml) => {
                let text = toml(&directory, &pebble_tls.ca_file, &storage);
                let config = dir.write("wsproxy.toml", &text);
                vec!["--config".into(), config.to_str().unwrap().into()]
            }
            Launch::Flags(flags) => flags(&directory, &pebble_tls.ca_file, &storage)
                .split(' ')
                .map(str::to_owned)
                .collect(),
        };
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let proxy = Proxy::start(&refs);
        let unused = free_tcp_port();
        let (http_port, tls_port) = match validate {
            Validate::Tls(n) => (unused, proxy.addrs[n].port()),
            Validate::Http(n) => (proxy.addrs[n].port(), unused),
            Validate::Elsewhere(port) => (unused, port),
        };
        let started = Pebble::start(
            &dir,
            &pebble_tls,
            dns_addr,
            port,
            http_port,
            tls_port,
            &options,
        );
        if let Some(pebble) = started {
            return Setup {
                _dns: dns,
                pebble,
                proxy,
                dir,
                pebble_tls,
                args,
            };
        }
    }
    panic!("no free port for pebble in five tries");
}

fn tls_listener(addr: &str, acme: &str) -> String {
    format!("[[listener]]\naddress = \"{addr}\"\ntls = {{ acme = {{ {acme} }} }}\n")
}

fn site(upstream: SocketAddr) -> String {
    format!(
        "admin = \"127.0.0.1:0\"\nworkers = 2\n\n[upstream.echo]\nservers = [\"{upstream}\"]\n\n\
         [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"echo\"\n"
    )
}

fn acme_fields(directory: &str, ca: &Path, storage: &Path, names: &str, challenge: &str) -> String {
    format!(
        "directory = \"{directory}\", ca = \"{}\", storage = \"{}\", names = [{names}], \
         contact = \"mailto:ops@example.test\", challenge = \"{challenge}\"",
        ca.display(),
        storage.display()
    )
}

/// A client trusting only Pebble's root.
fn trusting(pebble: &Pebble) -> Arc<ClientConfig> {
    let root = pebble.root_pem();
    Arc::new(client_config(
        root.as_bytes(),
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    ))
}

/// A wss:// tunnel through the proxy to the echo upstream, upgraded.
fn tunnel(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> TlsClient {
    let mut client = tls_connect(addr, Arc::clone(config), name)
        .unwrap_or_else(|e| panic!("TLS handshake as {name}: {e}"));
    client
        .write_all(upgrade_head(addr, "dGhlIHNhbXBsZSBub25jZQ==", "").as_bytes())
        .unwrap();
    let (head, rest) = ws::read_head(&mut client).unwrap();
    let head = String::from_utf8(head).unwrap();
    assert_eq!(status_of(&head), 101, "{head}");
    assert!(rest.is_empty());
    client
}

/// One masked text message out, the same back.
fn echo(client: &mut impl ReadWrite, text: &str) {
    let mut out = Vec::new();
    ws::encode_frame(
        &mut out,
        true,
        ws::Opcode::Text,
        text.as_bytes(),
        Some(ws::random_mask()),
    );
    client.write_all(&out).unwrap();
    client.flush().unwrap();
    let frame = ws::read_frame(client).expect("an echo");
    assert_eq!(frame.payload, text.as_bytes());
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// The serial number of the leaf a TLS client was served, hex.
fn served_serial(client: &TlsClient) -> String {
    let leaf = client.conn.peer_certificates().expect("a certificate")[0].clone();
    serial_of(leaf.as_ref())
}

/// RFC 5280 §4.1: Certificate → tbsCertificate → (version) → serialNumber.
fn serial_of(der: &[u8]) -> String {
    fn element(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = der[0];
        let (len, at) = match der[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let k = (n & 0x7f) as usize;
                let len = der[2..2 + k]
                    .iter()
                    .fold(0usize, |a, &b| (a << 8) | b as usize);
                (len, 2 + k)
            }
        };
        (tag, &der[at..at + len], &der[at + len..])
    }
    let (_, cert, _) = element(der);
    let (_, tbs, _) = element(cert);
    let (mut tag, mut serial, rest) = element(tbs);
    if tag == 0xa0 {
        (tag, serial, _) = element(rest);
    }
    assert_eq!(tag, 0x02, "serialNumber is an INTEGER");
    let serial = match serial {
        [0, rest @ ..] if !rest.is_empty() => rest,
        s => s,
    };
    serial.iter().map(|b| format!("{b:02X}")).collect()
}

/// Lines of the proxy's log holding `needle`.
fn lines_with(proxy: &Proxy, needle: &str) -> Vec<String> {
    proxy
        .log()
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

fn wait_log(proxy: &Proxy, needle: &str, limit: Duration) {
    assert!(
        eventually(limit, || !lines_with(proxy, needle).is_empty()),
        "no {needle:?} in the log:\n{}",
        proxy.log().join("\n")
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn tls_alpn01_gets_two_names_and_a_restart_reuses_the_stored_certificate() {
    let _w = watchdog_for(LIMIT);
    let upstream = ws::EchoServer::start();
    let toml = |directory: &str, ca: &Path, storage: &Path| {
        let fields = acme_fields(
            directory,
            ca,
            storage,
            "\"a.test\", \"b.test\"",
            "tls-alpn-01",
        );
        format!(
            "{}\n{}",
            site(upstream.addr),
            tls_listener("127.0.0.1:0", &fields)
        )
    };
    let mut s = setup(Validate::Tls(0), Options::default(), Launch::File(toml));
    let issued = "ACME: certificate for a.test, b.test issued";
    wait_log(&s.proxy, issued, ISSUE_LIMIT);
    assert!(
        !lines_with(&s.proxy, "a self-signed placeholder answers TLS handshakes").is_empty(),
        "the placeholder was announced"
    );
    let client = trusting(&s.pebble);
    let mut serials = Vec::new();
    for name in ["a.test", "b.test"] {
        let mut t = tunnel(s.proxy.addr(), &client, name);
        serials.push(served_serial(&t));
        echo(&mut t, &format!("hello {name}"));
    }
    assert_eq!(serials[0], serials[1], "one certificate for both names");
    assert!(
        lines_with(&s.proxy, issued)[0].contains(&format!("serial {}", serials[0])),
        "{:?}",
        lines_with(&s.proxy, issued)
    );
    assert_eq!(
        s.proxy
            .metric("wsproxy_acme_orders_total{outcome=\"issued\"}"),
        1.0
    );
    let left = s
        .proxy
        .metric("wsproxy_certificate_expiry_seconds{name=\"b.test\"}");
    assert!(
        left > 86_400.0,
        "Pebble's default lifetime is years: {left}"
    );

    let storage = s.dir.0.join("acme");
    let cert_dir = storage.join(format!(
        "127.0.0.1_{}",
        s.pebble
            .directory
            .split(':')
            .nth(2)
            .unwrap()
            .trim_end_matches("/dir")
    ));
    assert_eq!(mode(&storage), 0o700);
    assert_eq!(mode(&storage.join("account.key")), 0o600);
    assert_eq!(mode(&cert_dir.join("a.test").join("key.pem")), 0o600);

    // A restart: the same storage, the certificate as it was, no order.
    s.proxy.signal(libc::SIGTERM);
    s.proxy.wait_exit(Duration::from_secs(10)).expect("stopped");
    let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
    let again = Proxy::start(&args);
    let stored = "ACME: using the stored certificate for a.test, b.test";
    wait_log(&again, stored, Duration::from_secs(10));
    assert!(lines_with(&again, stored)[0].contains(&serials[0]));
    let mut t = tunnel(again.addr(), &trusting(&s.pebble), "b.test");
    assert_eq!(served_serial(&t), serials[0]);
    echo(&mut t, "after the restart");
    let scrape = again.scrape();
    for outcome in ["issued", "invalid", "rate_limited", "unreached", "failed"] {
        let series = format!("wsproxy_acme_orders_total{{outcome=\"{outcome}\"}}");
        assert_eq!(
            common::sample(&scrape, &series),
            Some(0.0),
            "{series}\n{scrape}"
        );
    }
    assert!(
        lines_with(&again, "ACME: ordering").is_empty(),
        "{:?}",
        again.log()
    );
}

#[test]
fn quick_mode_flags_get_the_certificate() {
    let _w = watchdog_for(LIMIT);
    let upstream = ws::EchoServer::start();
    let flags = |directory: &str, ca: &Path, storage: &Path| {
        format!(
            "--listen 127.0.0.1:0 --workers 1 --upstream {} --acme-domain q.test \
             --acme-contact ops@q.test --acme-directory {directory} --acme-ca {} \
             --acme-storage {}",
            upstream.addr,
            ca.display(),
            storage.display()
        )
    };
    let s = setup(Validate::Tls(0), Options::default(), Launch::Flags(flags));
    wait_log(&s.proxy, "ACME: certificate for q.test issued", ISSUE_LIMIT);
    let mut t = tunnel(s.proxy.addr(), &trusting(&s.pebble), "q.test");
    echo(&mut t, "quick");
}

/// A SIGHUP that turns a listener's certificate files into an `acme`
/// table: the running proxy orders the certificate, new handshakes get
/// it, and a tunnel opened under the old certificate stays up.
#[test]
fn a_reload_that_adds_acme_orders_the_certificate() {
    let _w = watchdog_for(LIMIT);
    let upstream = ws::EchoServer::start();
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/certs");
    let files = format!(
        "{}\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = \"{}\", key = \"{}\" }}\n",
        site(upstream.addr),
        certs.join("localhost.pem").display(),
        certs.join("localhost.key").display()
    );
    let s = setup(
        Validate::Tls(0),
        Options::default(),
        Launch::File(|_: &str, _: &Path, _: &Path| files.clone()),
    );
    let mut old = tunnel(s.proxy.addr(), &demo_client(), "localhost");
    echo(&mut old, "under the files' certificate");

    let fields = acme_fields(
        &s.pebble.directory,
        &s.pebble_tls.ca_file,
        &s.dir.0.join("acme"),
        "\"r.test\"",
        "tls-alpn-01",
    );
    s.dir.write(
        "wsproxy.toml",
        &format!(
            "{}\n{}",
            site(upstream.addr),
            tls_listener("127.0.0.1:0", &fields)
        ),
    );
    s.proxy.signal(libc::SIGHUP);
    assert!(
        s.proxy.wait_for_log("SIGHUP: reloaded"),
        "{}",
        s.proxy.log().join("\n")
    );
    wait_log(&s.proxy, "ACME: certificate for r.test issued", ISSUE_LIMIT);
    let mut fresh = tunnel(s.proxy.addr(), &trusting(&s.pebble), "r.test");
    echo(&mut fresh, "under the ordered certificate");
    echo(&mut old, "still up");
}

#[test]
fn http01_is_answered_before_the_https_redirect() {
    let _w = watchdog_for(LIMIT);
    let upstream = ws::EchoServer::start();
    let toml = |directory: &str, ca: &Path, storage: &Path| {
        let fields = acme_fields(directory, ca, storage, "\"h.test\"", "http-01");
        format!(
            "{}\n[[listener]]\naddress = \"127.0.0.1:0\"\nredirect_https = true\n\n{}",
            site(upstream.addr),
            tls_listener("127.0.0.1:0", &fields)
        )
    };
    let s = setup(Validate::Http(0), Options::default(), Launch::File(toml));
    wait_log(&s.proxy, "ACME: certificate for h.test issued", ISSUE_LIMIT);
    let client = trusting(&s.pebble);
    let mut t = tunnel(s.proxy.addrs[1], &client, "h.test");
    echo(&mut t, "over http-01's certificate");
    // Everything else on the plaintext listener is still redirected,
    // an unknown token included.
    for path in ["/", "/.well-known/acme-challenge/unknown"] {
        let mut c = connect(s.proxy.addrs[0]);
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: h.test\r\n\r\n").as_bytes())
            .unwrap();
        let (head, _) = read_response(&mut c);
        assert_eq!(status_of(&head), 308, "{path}: {head}");
    }
    assert_eq!(
        s.proxy
            .metric("wsproxy_acme_orders_total{outcome=\"issued\"}"),
        1.0
    );
}

#[test]
fn renewal_swaps_the_certificate_under_100_open_tunnels() {
    let _w = watchdog_for(LIMIT);
    let upstream = ws::EchoServer::start();
    let toml = |directory: &str, ca: &Path, storage: &Path| {
        let fields = acme_fields(directory, ca, storage, "\"r.test\"", "tls-alpn-01");
        format!(
            "{}\n{}",
            site(upstream.addr),
            tls_listener("127.0.0.1:0", &fields)
        )
    };
    // Renewal is due two thirds into a 15 s life: about 10 s after issue.
    let options = Options {
        validity_secs: 15,
        ..Options::default()
    };
    let s = setup(Validate::Tls(0), options, Launch::File(toml));
    let issued = "ACME: certificate for r.test issued";
    wait_log(&s.proxy, issued, ISSUE_LIMIT);
    let client = trusting(&s.pebble);
    let mut tunnels: Vec<TlsClient> = (0..100)
        .map(|_| tunnel(s.proxy.addr(), &client, "r.test"))
        .collect();
    let first = served_serial(&tunnels[0]);
    for (i, t) in tunnels.iter_mut().enumerate() {
        assert_eq!(served_serial(t), first);
        echo(t, &format!("before {i}"));
    }
    wait_log(&s.proxy, "renewal in", Duration::from_secs(1));
    assert!(
        eventually(Duration::from_secs(30), || lines_with(&s.proxy, issued)
            .len()
            >= 2),
        "no renewal:\n{}",
        s.proxy.log().join("\n")
    );
    // A new handshake gets the renewed certificate (a new client: one
    // that resumes a session is shown the certificate it had then).
    let mut fresh = tunnel(s.proxy.addr(), &trusting(&s.pebble), "r.test");
    let renewed = served_serial(&fresh);
    assert_ne!(renewed, first);
    assert!(
        lines_with(&s.proxy, issued)
            .iter()
            .any(|l| l.contains(&format!("serial {renewed}"))),
        "{renewed} in {:?}",
        lines_with(&s.proxy, issued)
    );
    echo(&mut fresh, "renewed");
    // The 100 tunnels never noticed.
    for (i, t) in tunnels.iter_mut().enumerate() {
        echo(t, &format!("after {i}"));
    }
    assert!(
        s.proxy
            .metric("wsproxy_acme_orders_total{outcome=\"issued\"}")
            >= 2.0
    );
    assert_eq!(
        s.proxy
            .metric("wsproxy_acme_orders_total{outcome=\"failed\"}"),
        0.0
    );
}

#[test]
fn a_refused_validation_is_logged_with_the_reason_and_retried() {
    let _w = watchdog_for(LIMIT);
    let upstream = ws::EchoServer::start();
    // Pebble's tls-alpn-01 port leads here: a server that hangs up at once.
    let impostor = TcpListener::bind("127.0.0.1:0").unwrap();
    let impostor_port = impostor.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in impostor.incoming() {
            drop(stream);
        }
    });
    let toml = |directory: &str, ca: &Path, storage: &Path| {
        let fields = acme_fields(directory, ca, storage, "\"x.test\"", "tls-alpn-01");
        format!(
            "{}\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n{}",
            site(upstream.addr),
            tls_listener("127.0.0.1:0", &fields)
        )
    };
    let s = setup(
        Validate::Elsewhere(impostor_port),
        Options::default(),
        Launch::File(toml),
    );
    // A tunnel over the plaintext listener, open through all of it.
    let mut held = ws::Client::connect(s.proxy.addrs[0], "/").unwrap();
    echo(held.stream(), "before");
    let failed = "ACME: order for x.test failed: the CA could not validate x.test: ";
    wait_log(&s.proxy, failed, ISSUE_LIMIT);
    let first = lines_with(&s.proxy, failed)[0].clone();
    // Pebble's own words, and when the next try is.
    assert!(first.contains("Failed to connect to 127.0.0.1:"), "{first}");
    assert!(first.contains("retrying in 10s"), "{first}");
    // The retry comes, and fails the same way, backing off further.
    assert!(
        eventually(Duration::from_secs(25), || lines_with(&s.proxy, failed)
            .len()
            >= 2),
        "no retry:\n{}",
        s.proxy.log().join("\n")
    );
    assert!(lines_with(&s.proxy, failed)[1].contains("retrying in 20s"));
    assert_eq!(
        s.proxy
            .metric("wsproxy_acme_orders_total{outcome=\"invalid\"}"),
        2.0
    );
    assert_eq!(
        s.proxy
            .metric("wsproxy_acme_orders_total{outcome=\"issued\"}"),
        0.0
    );
    echo(held.stream(), "after");
    // The placeholder still answers handshakes meanwhile.
    let insecure = common::tls::demo_client();
    let placeholder = tls_connect(s.proxy.addrs[1], insecure, "x.test");
    assert!(
        placeholder.is_err(),
        "self-signed: refused by a verifying client"
    );
    let _ = s.pebble_tls.ca_pem.len();
}
