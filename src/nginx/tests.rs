//! Table tests of the translation: nginx text in, TOML and notes out.

use std::path::Path;

use super::*;

fn toml_of(text: &str) -> String {
    match translate_text(text, "t.conf", Path::new("/srv/nginx")) {
        Ok(t) => t.toml,
        Err(errors) => panic!(
            "{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn errors_of(text: &str) -> Vec<String> {
    match translate_text(text, "t.conf", Path::new("/srv/nginx")) {
        Ok(t) => panic!("translated:\n{}", t.toml),
        Err(errors) => errors
            .iter()
            .filter(|n| n.severity == Severity::Error)
            .map(ToString::to_string)
            .collect(),
    }
}

#[test]
fn a_websocket_location_becomes_a_route() {
    let toml = toml_of(
        "http {
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream app { server 127.0.0.1:9000; }
  server {
    listen 8080;
    location /ws {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 3600s;
    }
  }
}
",
    );
    let parsed: toml::Table = toml::from_str(&toml).unwrap();
    assert_eq!(
        parsed["listener"][0]["address"].as_str(),
        Some("0.0.0.0:8080")
    );
    let route = &parsed["server"][0]["route"][0];
    assert_eq!(route["location"].as_str(), Some("/ws"));
    assert_eq!(route["upstream"].as_str(), Some("app"));
    assert_eq!(route["request_headers"]["Host"].as_str(), Some("$host"));
    assert_eq!(route["idle_timeout"].as_str(), Some("3600s"));
    assert_eq!(parsed["timeouts"]["response"].as_str(), Some("3600s"));
    assert!(toml.contains("# location /ws, from t.conf:6\n"), "{toml}");
}

#[test]
fn proxy_pass_uris_follow_nginx() {
    let cases = [
        (
            "location /api/ { proxy_pass http://app/; }",
            "strip_prefix = \"/api\"",
        ),
        (
            "location /api { proxy_pass http://app/v1; }",
            "rewrite = { pattern = \"^/api(.*)$\", to = \"/v1$1\" }",
        ),
        (
            "location /x/ { proxy_pass http://app/x/; }",
            "upstream = \"app\"\n",
        ),
        (
            "location ~ ^/u/(.*)$ { proxy_pass http://app/users/$1; }",
            "rewrite = { pattern = \"^/u/(.*)$\", to = \"/users/$1?\" }",
        ),
        (
            "location ~ ^/u/(.*)$ { proxy_pass http://app/users/$1$is_args$args; }",
            "rewrite = { pattern = \"^/u/(.*)$\", to = \"/users/$1\" }",
        ),
        (
            "location / { proxy_pass http://127.0.0.1:9000; }",
            "request_headers = { Host = \"127.0.0.1:9000\" }",
        ),
    ];
    for (location, want) in cases {
        let text = format!(
            "http {{ upstream app {{ server 127.0.0.1:1; }} server {{ listen 80; {location} }} }}"
        );
        let toml = toml_of(&text);
        assert!(toml.contains(want), "{location}\n{toml}");
    }
}

#[test]
fn what_cannot_be_expressed_is_refused_with_its_place() {
    let cases = [
        (
            "http { server { listen 80; location / { if ($x) { return 403; } } } }",
            "t.conf:1:41: if: conditions are not supported",
        ),
        (
            "http { server { listen 80; location / { rewrite ^ /x last; root /; } } }",
            "t.conf:1:41: rewrite: only the break flag is supported",
        ),
        (
            "http { lua_shared_dict x 1m; }",
            "t.conf:1:8: lua_shared_dict: the proxy runs no scripts",
        ),
        (
            "http { server { location / { auth_request /auth; } } }",
            "t.conf:1:30: auth_request: the proxy does not authenticate",
        ),
        (
            "http { upstream a { server 1.2.3.4 backup; server 1.2.3.5; } }",
            "t.conf:1:21: server: backup servers are not supported",
        ),
        (
            "http { server { listen 80; location ~ x { proxy_pass http://a/b; } } }",
            "t.conf:1:43: proxy_pass: a URI in proxy_pass in a regex location",
        ),
        ("events {}", "t.conf:1:1: http: no http block"),
        (
            "http { server { listen 80 }",
            "t.conf:1:27: \"listen\" at t.conf:1:17 is not terminated",
        ),
    ];
    for (text, want) in cases {
        let errors = errors_of(text);
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "{text}\nwant {want}\ngot {errors:#?}"
        );
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Pieces nginx files are made of, so random files reach past the
    /// grammar into the translation.
    const PIECES: &[&str] = &[
        "http",
        "server",
        "location",
        "upstream",
        "map",
        "events",
        "listen",
        "server_name",
        "proxy_pass",
        "proxy_set_header",
        "rewrite",
        "return",
        "root",
        "alias",
        "try_files",
        "add_header",
        "ssl_certificate",
        "ssl_protocols",
        "include",
        "if",
        "limit_conn",
        "limit_conn_zone",
        "allow",
        "deny",
        "proxy_read_timeout",
        "keepalive",
        "hash",
        "weight=2",
        "backup",
        "8080",
        "[::]:443",
        "ssl",
        "default_server",
        "http://app",
        "http://a/b/",
        "https://h:1$request_uri",
        "/",
        "/api/",
        "= /x",
        "^~",
        "~",
        "~*",
        "@named",
        "$host",
        "$1",
        "$uri",
        "break",
        "last",
        "301",
        "https://$host$request_uri",
        "always",
        "on",
        "off",
        "{",
        "}",
        ";",
        ";",
        ";",
        "\"",
        "'",
        "\\",
        "#",
        "\n",
        " ",
        "${",
        "$http_upgrade",
        "''",
        "TLSv1",
        "TLSv1.3",
        "shared:SSL:1m",
        "60s",
        "1m30",
        "é",
        "\u{0}",
    ];

    fn file() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..80).prop_map(|p| p.join(" "))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_file_translates_or_is_refused_at_places_inside_it(text in file()) {
            let lines = text.split('\n').count();
            match translate_text(&text, "p.conf", Path::new("/srv/nginx")) {
                Ok(t) => {
                    let parsed: Result<toml::Table, _> = toml::from_str(&t.toml);
                    prop_assert!(parsed.is_ok(), "not TOML: {:?}\n{}", parsed.err(), t.toml);
                }
                Err(errors) => {
                    prop_assert!(errors.iter().any(|e| e.severity == Severity::Error));
                    for e in &errors {
                        prop_assert!(e.at.line >= 1 && e.at.line <= lines, "{}", e);
                        prop_assert!(e.at.column >= 1, "{}", e);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = translate_text(&text, "p.conf", Path::new("/srv/nginx"));
        }
    }
}
