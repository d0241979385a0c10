//! `wsproxy-fast import-nginx` and `--nginx-config` as a person meets them:
//! the TOML written for three files pinned as golden files (with their
//! notes), every file under `tests/data/nginx/` passing `--check`, an
//! untranslatable file refused with every directive located and nothing
//! written, a malformed one refused at its place, `include` with a glob,
//! and SIGHUP reading the nginx file again.
//!
//! `UPDATE_GOLDEN=1 cargo test --test nginx_import` rewrites the golden
//! files after a deliberate change.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nginx")
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wsproxy-fast"))
}

/// File `name` with fixed ports and upstream, in `dir` with the demo
/// certificates and the static directories its roots name.
fn fixed(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/certs");
    for entry in std::fs::read_dir(certs).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("certs").join(entry.file_name())).unwrap();
    }
    for sub in ["www", "html", "public/assets", "static"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let text = std::fs::read_to_string(data().join(name))
        .unwrap()
        .replace("@UP@", "127.0.0.1:9000")
        .replace("@DOWN@", "127.0.0.1:9001")
        .replace("@STANDBY@", "127.0.0.1:9002")
        .replace("@P1@", "8443")
        .replace("@P2@", "8080")
        .replace("@P3@", "8081");
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn import(conf: &Path, prefix: &Path, extra: &[&str]) -> Output {
    binary()
        .arg("import-nginx")
        .arg(conf)
        .arg("--nginx-prefix")
        .arg(prefix)
        .args(extra)
        .output()
        .unwrap()
}

fn text(bytes: &[u8], dir: &Path) -> String {
    String::from_utf8_lossy(bytes).replace(&dir.display().to_string(), "@DIR@")
}

#[test]
fn three_translations_are_pinned() {
    let _watchdog = watchdog();
    for name in ["my-api.conf", "mattermost.conf", "home-assistant.conf"] {
        let dir = TempDir::new();
        let conf = fixed(&dir.0, name);
        let out = import(&conf, &dir.0, &[]);
        assert!(
            out.status.success(),
            "{name}: {}",
            text(&out.stderr, &dir.0)
        );
        let toml = text(&out.stdout, &dir.0);
        let notes = text(&out.stderr, &dir.0);
        let stem = name.trim_end_matches(".conf");
        let golden = data().join("golden");
        let (toml_path, notes_path) = (
            golden.join(format!("{stem}.toml")),
            golden.join(format!("{stem}.notes")),
        );
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(&toml_path, &toml).unwrap();
            std::fs::write(&notes_path, &notes).unwrap();
        }
        let want = std::fs::read_to_string(&toml_path).unwrap();
        assert_eq!(
            toml,
            want,
            "{name}: the TOML differs from {}",
            toml_path.display()
        );
        let want = std::fs::read_to_string(&notes_path).unwrap();
        assert_eq!(
            notes,
            want,
            "{name}: the notes differ from {}",
            notes_path.display()
        );
    }
}

#[test]
fn every_file_passes_check_and_its_output_loads_as_a_config_file() {
    let _watchdog = watchdog();
    let mut names: Vec<String> = std::fs::read_dir(data())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    names.sort();
    assert!(names.len() >= 12);
    for name in names {
        let dir = TempDir::new();
        let conf = fixed(&dir.0, &name);
        let check = binary()
            .args(["--check", "--nginx-config"])
            .arg(&conf)
            .arg("--nginx-prefix")
            .arg(&dir.0)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&check.stdout);
        assert!(
            check.status.success(),
            "{name}: {}",
            text(&check.stderr, &dir.0)
        );
        assert!(said.contains("configuration is valid"), "{name}: {said}");
        let out_path = dir.0.join("out.toml");
        let out = import(&conf, &dir.0, &["-o", out_path.to_str().unwrap()]);
        assert!(out.status.success(), "{name}");
        assert!(
            out.stdout.is_empty(),
            "{name}: -o writes the file, not stdout"
        );
        let check = binary()
            .args(["--check", "--config"])
            .arg(&out_path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{name}: the written TOML: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

#[test]
fn untranslatable_directives_are_all_listed_and_nothing_is_written() {
    let _watchdog = watchdog();
    let dir = TempDir::new();
    let conf = dir.write(
        "nginx.conf",
        "events {}\n\
         http {\n\
         \x20   lua_package_path \"/x/?.lua\";\n\
         \x20   upstream app { server 127.0.0.1:9000; server 127.0.0.1:9001 backup; }\n\
         \x20   server {\n\
         \x20       listen 8080;\n\
         \x20       location / {\n\
         \x20           if ($http_x_debug) { return 403; }\n\
         \x20           auth_request /auth;\n\
         \x20           proxy_pass http://app;\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let out_path = dir.0.join("out.toml");
    let out = import(&conf, &dir.0, &["-o", out_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!out_path.exists(), "nothing is written");
    let stderr = text(&out.stderr, &dir.0);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("wsproxy-fast: error: "))
        .collect();
    let want = [
        "wsproxy-fast: error: @DIR@/nginx.conf:3:5: lua_package_path: the proxy runs no scripts",
        "wsproxy-fast: error: @DIR@/nginx.conf:8:13: if: conditions are not supported",
        "wsproxy-fast: error: @DIR@/nginx.conf:9:13: auth_request: the proxy does not authenticate",
    ];
    assert_eq!(errors.len(), want.len(), "{stderr}");
    for (got, want) in errors.iter().zip(want) {
        assert!(got.starts_with(want), "{got}\nwant {want}");
    }
    // The same file run directly: the same places, exit 1.
    let run = binary()
        .args(["--check", "--nginx-config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = text(&run.stderr, &dir.0);
    assert!(stderr.contains("@DIR@/nginx.conf:8:13: if: "), "{stderr}");
}

#[test]
fn malformed_files_and_bad_values_are_located() {
    let _watchdog = watchdog();
    let cases = [
        (
            "http {\n  server {\n    listen 8080\n  }\n}\n",
            "nginx.conf:4:3: \"listen\" at ",
        ),
        ("http {\n  server { listen 8080; }\n", "nginx.conf:1:1: \"http\" opens a block that is never closed"),
        (
            "http {\n  server {\n    listen 8080;\n    location / { proxy_pass http://127.0.0.1:9000; add_header \"X\n\";\n",
            "nginx.conf:4:",
        ),
        // Translated, then refused by the file checker: reported at the
        // nginx block it came from.
        (
            "http {\n  server {\n    listen 8080;\n    location ~ ^/(unclosed { proxy_pass http://127.0.0.1:9000; }\n  }\n}\n",
            "nginx.conf:4:5: \"^/(unclosed\" is not a valid regex",
        ),
    ];
    for (body, want) in cases {
        let dir = TempDir::new();
        let conf = dir.write("nginx.conf", body);
        let out = binary()
            .args(["--check", "--nginx-config"])
            .arg(&conf)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{body}");
        let stderr = text(&out.stderr, &dir.0);
        assert!(
            stderr.contains(&format!("@DIR@/{want}")),
            "{body}\nwant {want}\ngot {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn include_follows_globs_from_the_configuration_directory() {
    let _watchdog = watchdog();
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("conf.d")).unwrap();
    dir.write(
        "conf.d/a.conf",
        "server { listen 127.0.0.1:0; location /a { proxy_pass http://127.0.0.1:9000; } }\n",
    );
    dir.write(
        "conf.d/b.conf",
        "server { listen 127.0.0.1:0; server_name b.example; location /b { proxy_pass http://127.0.0.1:9001; } }\n",
    );
    dir.write("conf.d/ignored.bak", "this is not read;\n");
    dir.write(
        "upstreams.inc",
        "upstream unused { server 127.0.0.1:9002; }\n",
    );
    let conf = dir.write(
        "nginx.conf",
        "events {}\nhttp {\n    include upstreams.inc;\n    include conf.d/*.conf;\n}\n",
    );
    let out = import(&conf, &dir.0, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr, &dir.0));
    let toml = text(&out.stdout, &dir.0);
    assert!(
        toml.contains("# location /a, from @DIR@/conf.d/a.conf:1"),
        "{toml}"
    );
    assert!(
        toml.contains("# location /b, from @DIR@/conf.d/b.conf:1"),
        "{toml}"
    );
    assert!(!toml.contains("[upstream.unused]"), "{toml}");
    let notes = text(&out.stderr, &dir.0);
    assert!(
        notes
            .contains("@DIR@/upstreams.inc:1:1: upstream: dropped (no location proxies to unused)"),
        "{notes}"
    );
}

#[test]
fn sighup_reads_the_nginx_file_again() {
    let _watchdog = watchdog();
    let dir = TempDir::new();
    let upstream = RawUpstream::start(|mut stream| {
        use std::io::Write;
        let _ = ws::read_head(&mut stream);
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    });
    // A fixed port, so the reload keeps the listener (port 0 would be a
    // new one each time).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let write = |location: &str| {
        dir.write(
            "nginx.conf",
            &format!(
                "worker_processes 1;\nevents {{}}\nhttp {{\n  server {{\n    listen 127.0.0.1:{port};\n    \
                 location {location} {{ proxy_pass http://{}; }}\n  }}\n}}\n",
                upstream.addr
            ),
        )
    };
    let conf = write("/old");
    let proxy = Proxy::start(&["--nginx-config", conf.to_str().unwrap()]);
    assert!(
        proxy.log().iter().any(|l| l.contains("nginx: ")),
        "notes are logged at startup"
    );
    let get = |path: &str| {
        let mut c = send(
            proxy.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        status_of(&read_response(&mut c).0)
    };
    assert_eq!(get("/old"), 200);
    assert_eq!(get("/new"), 404);
    write("/new");
    proxy.signal(libc::SIGHUP);
    assert!(eventually(Duration::from_secs(10), || proxy
        .log()
        .iter()
        .any(|l| l.contains("SIGHUP: reloaded"))));
    assert_eq!(get("/new"), 200);
    assert_eq!(get("/old"), 404);
    // A file that cannot be translated keeps the configuration in force,
    // and the log says where the file is wrong.
    dir.write(
        "nginx.conf",
        "events {}\nhttp {\n  server {\n    listen 127.0.0.1:1;\n    location / { if ($x) { return 403; } }\n  }\n}\n",
    );
    proxy.signal(libc::SIGHUP);
    assert!(eventually(Duration::from_secs(10), || proxy
        .log()
        .iter()
        .any(|l| l.contains("not reloaded"))));
    let log = proxy.log().join("\n");
    assert!(
        log.contains("nginx.conf:5:18: if: conditions are not supported"),
        "{log}"
    );
    assert_eq!(get("/new"), 200);
}
