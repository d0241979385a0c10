//! Pebble, Let's Encrypt's ACME test server (Debian package `pebble`), and
//! its companion `pebble-challtestsrv` as the DNS server that tells Pebble
//! every name is 127.0.0.1, both on loopback ports of their own.
//!
//! Pebble validates challenges on fixed ports written in its config
//! (`httpPort`, `tlsPort`), so a test binds the proxy on port 0 first and
//! then starts Pebble with the ports the proxy got. Ports these two daemons
//! listen on are picked free and retried if another process takes them in
//! between. A missing binary fails the test: it never skips.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::TempDir;

/// How long a daemon gets to answer after it starts.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Tries at a free port before giving up.
const PORT_TRIES: usize = 5;

fn binary(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let path = PathBuf::from(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("{name} not found: run scripts/setup.sh pebble (apt-get install pebble)");
}

/// A TCP port nobody listens on right now.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process whose output is collected; killed on drop.
pub struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn spawn(mut command: Command) -> Daemon {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push(line);
                }
            });
        }
        Daemon { child, log }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DNS query for `name`'s A record (RFC 1035 §4.1), id 0x5753.
fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x57, 0x53, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// pebble-challtestsrv as a DNS server only, answering 127.0.0.1 for
/// every A query and nothing for AAAA (the proxy listens on IPv4).
pub fn start_dns() -> (Daemon, SocketAddr) {
    let mut last = String::new();
    for _ in 0..PORT_TRIES {
        let dns = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
        let management = format!("127.0.0.1:{}", free_tcp_port());
        let mut command = Command::new(binary("pebble-challtestsrv"));
        command.args([
            "-dns01",
            &dns.to_string(),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &management,
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ]);
        let mut daemon = Daemon::spawn(command);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + START_LIMIT;
        while Instant::now() < deadline && !daemon.exited() {
            let _ = socket.send_to(&dns_query("probe.test"), dns);
            let mut answer = [0u8; 512];
            if let Ok((n, _)) = socket.recv_from(&mut answer) {
                // Our id, a response, one answer.
                if n > 12 && answer[..2] == [0x57, 0x53] && answer[7] >= 1 {
                    return (daemon, dns);
                }
            }
        }
        last = daemon.log();
    }
    panic!("pebble-challtestsrv did not answer DNS:\n{last}");
}

/// What a Pebble is started with besides ports.
#[derive(Default, Clone)]
pub struct Options {
    /// Seconds a certificate lives (Pebble's certificateValidityPeriod);
    /// 0: Pebble's default (about five years).
    pub validity_secs: u64,
    /// Extra environment, e.g. ("PEBBLE_AUTHZREUSE", "100").
    pub env: Vec<(&'static str, String)>,
}

/// The CA Pebble's own HTTPS certificate chains to, made by the test.
pub struct PebbleTls {
    pub ca_pem: String,
    pub ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl PebbleTls {
    pub fn new(dir: &TempDir) -> PebbleTls {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pebble test HTTPS CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, &ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let leaf = params.signed_by(&key, &issuer).unwrap();
        PebbleTls {
            ca_pem: ca.pem(),
            ca_file: dir.write("pebble-https-ca.pem", &ca.pem()),
            cert_file: dir.write("pebble-https.pem", &leaf.pem()),
            key_file: dir.write("pebble-https.key", &key.serialize_pem()),
        }
    }

    fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// A running Pebble.
pub struct Pebble {
    pub daemon: Daemon,
    /// The ACME directory URL.
    pub directory: String,
    pub management: SocketAddr,
    client: Arc<ClientConfig>,
}

impl Pebble {
    /// Pebble on `port` (chosen by the caller, who wrote it into the
    /// proxy's configuration), validating on the proxy's `http_port` and
    /// `tls_port`. `None` if the port was taken meanwhile: pick another.
    pub fn start(
        dir: &TempDir,
        tls: &PebbleTls,
        dns: SocketAddr,
        port: u16,
        http_port: u16,
        tls_port: u16,
        options: &Options,
    ) -> Option<Pebble> {
        let management = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": management.to_string(),
                "certificate": tls.cert_file,
                "privateKey": tls.key_file,
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        if options.validity_secs > 0 {
            config["pebble"]["certificateValidityPeriod"] = options.validity_secs.into();
        }
        let path = dir.write(&format!("pebble-{port}.json"), &config.to_string());
        let mut command = Command::new(binary("pebble"));
        command
            .args(["-config", path.to_str().unwrap(), "-strict=false"])
            .args(["-dnsserver", &dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0");
        for (name, value) in &options.env {
            command.env(name, value);
        }
        let mut pebble = Pebble {
            daemon: Daemon::spawn(command),
            directory: format!("https://127.0.0.1:{port}/dir"),
            management,
            client: tls.client(),
        };
        let deadline = Instant::now() + START_LIMIT;
        while Instant::now() < deadline {
            if pebble.daemon.exited() {
                let log = pebble.daemon.log();
                assert!(
                    log.contains("address already in use"),
                    "pebble exited:\n{log}"
                );
                return None;
            }
            let up = pebble.get(SocketAddr::from(([127, 0, 0, 1], port)), "/dir");
            let managed = pebble.get(management, "/roots/0");
            if up.is_ok_and(|b| b.contains("newOrder")) && managed.is_ok() {
                return Some(pebble);
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("pebble did not answer on {port}:\n{}", pebble.daemon.log());
    }

    /// GET `path` from `addr` over HTTPS: the body, or why not.
    fn get(&self, addr: SocketAddr, path: &str) -> Result<String, String> {
        let tcp =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn =
            ClientConnection::new(Arc::clone(&self.client), name).map_err(|e| e.to_string())?;
        let mut stream = StreamOwned::new(conn, tcp);
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        match stream.read_to_end(&mut raw) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e.to_string()),
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no head")?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(head.to_string());
        }
        Ok(body.to_string())
    }

    /// The root Pebble issues under (PEM), from its management interface.
    pub fn root_pem(&self) -> String {
        let body = self.get(self.management, "/roots/0").expect("pebble root");
        // A chunked answer: keep the PEM block alone.
        let start = body.find("-----BEGIN").expect("PEM in /roots/0");
        let end = body.rfind("-----END CERTIFICATE-----").expect("PEM end") + 25;
        body[start..end].to_string() + "\n"
    }
}
