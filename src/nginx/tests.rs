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
    assert_eq!(parsed["timeouts"]["idle"].as_str(), Some("3600s"));
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
