//! Real HTTP/2 clients through the proxy: nghttp and h2load (Debian's
//! nghttp2-client, installed by `scripts/setup.sh nghttp2`) against a TLS
//! listener with `http2 = true` serving a static root and an HTTP/1.1
//! upstream API. Missing tools fail these tests loudly; they are not
//! skipped.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::http::Messages;
use common::*;

/// The static page: a few KB, more than one DATA frame's worth of the
/// default 16 KB frame size only with the large file below.
const PAGE: &str = "<!doctype html><title>h2</title><p>served over HTTP/2 by wsproxy-fast</p>\n";

/// Bytes of the large file: past the default 64 KB stream window, so the
/// proxy has to wait for the client's WINDOW_UPDATEs.
const LARGE: usize = 300_000;

/// `NAME` on PATH or in /usr/bin (nghttp2-client).
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run scripts/setup.sh nghttp2 (Debian nghttp2-client)")
        })
}

/// A proxy with one TLS listener, `http2 = true`: `/` a static root
/// holding index.html (PAGE) and large.bin (LARGE bytes), `/api/` an
/// upstream answering every request with `api: METHOD TARGET n=N` but
/// `/api/large`, answered with LARGE bytes (`large_answer()`).
struct Site {
    _dir: TempDir,
    proxy: Proxy,
    large: Vec<u8>,
    _upstream: RawUpstream,
}

impl Site {
    fn start() -> Site {
        let dir = TempDir::new();
        let root = dir.0.join("www");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("index.html"), PAGE).unwrap();
        let large = pattern(LARGE, 7);
        std::fs::write(root.join("large.bin"), &large).unwrap();
        let upstream = api_upstream();
        let certs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/certs");
        let text = format!(
            "workers = 2\nadmin = \"127.0.0.1:0\"\n\
             [[listener]]\naddress = \"127.0.0.1:0\"\nhttp2 = true\n\
             tls = {{ cert = \"{}\", key = \"{}\" }}\n\
             [[server]]\n\
             [[server.route]]\nlocation = \"/\"\nroot = \"{}\"\n\
             [[server.route]]\nlocation = \"/api/\"\nupstream = \"{}\"\n",
            certs.join("localhost.pem").display(),
            certs.join("localhost.key").display(),
            root.display(),
            upstream.addr
        );
        let config = dir.write("wsproxy.toml", &text);
        let proxy = Proxy::start(&["--config", config.to_str().unwrap()]);
        Site {
            _dir: dir,
            proxy,
            large,
            _upstream: upstream,
        }
    }

    fn url(&self, path: &str) -> String {
        // An address, not localhost, which could resolve to ::1 first.
        format!("https://{}{path}", self.proxy.addr())
    }
}

/// The upstream's answer to `/api/large`.
fn large_answer() -> Vec<u8> {
    pattern(LARGE, 9)
}

/// An HTTP/1.1 keep-alive upstream: `api: METHOD TARGET n=N`, N counting
/// the requests of all its connections; `/api/large` gets `large_answer()`.
fn api_upstream() -> RawUpstream {
    let served = AtomicUsize::new(0);
    RawUpstream::start(move |mut stream| loop {
        let mut messages = Messages::new(&mut stream);
        if !messages.peek_more() {
            return;
        }
        let (head, _body) = messages.request();
        drop(messages);
        let n = served.fetch_add(1, Ordering::SeqCst) + 1;
        let line = head.split("\r\n").next().unwrap_or_default();
        let body = if line.starts_with("GET /api/large ") {
            large_answer()
        } else {
            format!("api: {} n={n}", line.trim_end_matches(" HTTP/1.1")).into_bytes()
        };
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        if stream.write_all(&answer).is_err() {
            return;
        }
    })
}

/// Runs a client to its end; its output, with the proxy's log on failure.
fn run(site: &Site, mut command: Command) -> Output {
    let output = command.output().expect("run the client");
    assert!(
        output.status.success(),
        "{command:?} exited with {}\nstdout:\n{}\nstderr:\n{}\nproxy:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        site.proxy.log().join("\n")
    );
    output
}

/// `nghttp -nv URL`'s trace, checked for h2 by ALPN, the SETTINGS that
/// enable extended CONNECT, and `:status: 200`.
fn nghttp_trace(site: &Site, path: &str) -> String {
    let mut command = Command::new(tool("nghttp"));
    command.args(["-nv", "--timeout=10", &site.url(path)]);
    let trace = String::from_utf8(run(site, command).stdout).unwrap();
    assert!(
        trace.contains("The negotiated protocol: h2"),
        "ALPN did not choose h2:\n{trace}"
    );
    assert!(
        trace.contains("(0x08):1]"),
        "the server's SETTINGS do not enable extended CONNECT (RFC 8441):\n{trace}"
    );
    assert!(trace.contains(":status: 200"), "no :status 200:\n{trace}");
    trace
}

/// The octets of the DATA frames nghttp -v saw (`recv DATA frame
/// <length=N, ...>`).
fn data_octets(trace: &str) -> usize {
    trace
        .lines()
        .filter_map(|l| l.split("recv DATA frame <length=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<usize>().ok())
        .sum()
}

/// What `nghttp URL` writes on stdout: the body.
fn nghttp_body(site: &Site, path: &str) -> Vec<u8> {
    let mut command = Command::new(tool("nghttp"));
    command.args(["--timeout=10", &site.url(path)]);
    run(site, command).stdout
}

#[test]
fn nghttp_fetches_static_files_and_upstream_answers_small_and_past_the_window() {
    let _w = watchdog();
    let site = Site::start();

    let trace = nghttp_trace(&site, "/index.html");
    assert_eq!(data_octets(&trace), PAGE.len(), "{trace}");
    assert_eq!(nghttp_body(&site, "/index.html"), PAGE.as_bytes());

    // Past the stream's initial window: only WINDOW_UPDATEs let it finish.
    let trace = nghttp_trace(&site, "/large.bin");
    assert_eq!(data_octets(&trace), LARGE, "{trace}");
    assert!(
        nghttp_body(&site, "/large.bin") == site.large,
        "large.bin differs"
    );

    // Proxied to the HTTP/1.1 upstream.
    let trace = nghttp_trace(&site, "/api/hello?x=1");
    let body = String::from_utf8(nghttp_body(&site, "/api/hello?x=1")).unwrap();
    assert!(body.starts_with("api: GET /api/hello?x=1 n="), "{body}");
    assert!(data_octets(&trace) > 0, "{trace}");

    // An upstream answer past the stream's initial window.
    let trace = nghttp_trace(&site, "/api/large");
    assert_eq!(data_octets(&trace), LARGE, "{trace}");
    assert!(
        nghttp_body(&site, "/api/large") == large_answer(),
        "/api/large differs"
    );

    let streams = site
        .proxy
        .metric("wsproxy_h2_streams_total{kind=\"request\"}");
    assert!(
        streams >= 8.0,
        "{streams} request streams counted for 8 requests"
    );
}

/// The `N` of `LABEL: N ...` in h2load's report, e.g. `requests: 2000 total`.
fn counted(report: &str, label: &str, what: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in h2load's report:\n{report}"));
    line.split(',')
        .map(str::trim)
        .map(|part| part.trim_start_matches(label).trim())
        .find_map(|part| part.strip_suffix(what)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `N {what}` in `{line}`"))
}

#[test]
fn h2load_gets_2000_static_pages_on_4_connections_without_a_failure() {
    let _w = watchdog();
    let site = Site::start();
    let before = sample(
        &site.proxy.scrape(),
        "wsproxy_h2_streams_total{kind=\"request\"}",
    )
    .unwrap_or(0.0);
    let mut command = Command::new(tool("h2load"));
    command.args([
        "-n",
        "2000",
        "-c",
        "4",
        "-m",
        "10",
        &site.url("/index.html"),
    ]);
    let report = String::from_utf8(run(&site, command).stdout).unwrap();
    assert!(report.contains("Application protocol: h2"), "{report}");
    assert_eq!(counted(&report, "requests:", "succeeded"), 2000, "{report}");
    assert_eq!(counted(&report, "requests:", "failed"), 0, "{report}");
    assert_eq!(counted(&report, "requests:", "errored"), 0, "{report}");
    assert_eq!(counted(&report, "requests:", "timeout"), 0, "{report}");
    assert_eq!(counted(&report, "status codes:", "2xx"), 2000, "{report}");
    let after = site
        .proxy
        .metric("wsproxy_h2_streams_total{kind=\"request\"}");
    assert!(
        after - before >= 2000.0,
        "{} request streams counted for 2000 requests",
        after - before
    );
}
