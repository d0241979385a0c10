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
            "t.conf:1:41: rewrite: rewrite … last is supported where the new path surely lands",
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

fn notes_of(text: &str) -> Vec<String> {
    match translate_text(text, "t.conf", Path::new("/srv/nginx")) {
        Ok(t) => t.notes.iter().map(ToString::to_string).collect(),
        Err(errors) => panic!("{errors:#?}"),
    }
}

/// Found by the fuzz target: control characters in an argument reached
/// a comment of the output, where TOML allows none.
#[test]
fn control_characters_in_arguments_leave_the_output_valid_toml() {
    let text = "http { server { listen \"\u{0}\u{11}0.0.1:8080\"; location \"/a\u{7f}\r\" { proxy_pass http://127.0.0.1:1; } } }";
    let toml = toml_of(text);
    let parsed: Result<toml::Table, _> = toml::from_str(&toml);
    assert!(parsed.is_ok(), "{parsed:?}\n{toml}");
}

#[test]
fn directives_carried_over_beside_proxy_pass() {
    let text = "worker_processes 4;
worker_rlimit_nofile 100000;
events { worker_connections 4096; }
http {
  set_real_ip_from 10.0.0.0/8;
  real_ip_header X-Forwarded-For;
  limit_conn_zone $binary_remote_addr zone=per_ip:10m;
  keepalive_timeout 30s 25s;
  access_log logs/ws.log combined;
  upstream app {
    least_conn;
    server 10.0.0.5:9000 weight=3 max_fails=2 fail_timeout=30s;
    server 10.0.0.6:9000 down;
    server 10.0.0.8:9000 weight=2 backup;
    keepalive 16;
  }
  upstream tls_app { hash $cookie_sid consistent; server 10.0.0.7:8443; }
  server {
    listen [::]:8080 ipv6only=off default_server proxy_protocol backlog=4096;
    server_name .example.com;
    charset utf-8;
    location / {
      limit_conn per_ip 20;
      proxy_pass http://app;
      proxy_connect_timeout 3s;
    }
    location /secure/ {
      proxy_pass https://tls_app/;
      proxy_ssl_trusted_certificate ca/internal.pem;
      proxy_ssl_verify on;
      proxy_ssl_protocols TLSv1.1 TLSv1.2;
    }
  }
}
";
    let parsed: toml::Table = toml::from_str(&toml_of(text)).unwrap();
    assert_eq!(parsed["workers"].as_integer(), Some(4));
    assert_eq!(parsed["keepalive_timeout"].as_str(), Some("30s"));
    assert_eq!(
        parsed["access_log"].as_str(),
        Some("/srv/nginx/logs/ws.log")
    );
    assert_eq!(parsed["trusted_proxies"][0].as_str(), Some("10.0.0.0/8"));
    assert_eq!(
        parsed["limits"]["max_connections_per_ip"].as_integer(),
        Some(20)
    );
    assert_eq!(parsed["timeouts"]["connect"].as_str(), Some("3s"));
    let listeners: Vec<&str> = parsed["listener"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["address"].as_str().unwrap())
        .collect();
    assert_eq!(listeners, ["[::]:8080", "0.0.0.0:8080"]);
    assert_eq!(
        parsed["listener"][0]["proxy_protocol"].as_bool(),
        Some(true)
    );
    let app = &parsed["upstream"]["app"];
    assert_eq!(app["servers"][0].as_str(), Some("10.0.0.5:9000 weight=3"));
    assert_eq!(
        app["servers"][1].as_str(),
        Some("10.0.0.8:9000 weight=2 backup")
    );
    assert_eq!(
        app["servers"].as_array().unwrap().len(),
        2,
        "down is left out"
    );
    assert_eq!(app["balance"].as_str(), Some("least_conn"));
    assert_eq!(app["max_fails"].as_integer(), Some(2));
    assert_eq!(app["fail_timeout"].as_str(), Some("30s"));
    assert_eq!(app["keepalive"].as_integer(), Some(16));
    let secure = &parsed["upstream"]["tls_app"];
    assert_eq!(secure["servers"][0].as_str(), Some("https://10.0.0.7:8443"));
    assert_eq!(secure["hash_key"].as_str(), Some("cookie:sid"));
    assert_eq!(
        secure["tls"]["ca"].as_str(),
        Some("/srv/nginx/ca/internal.pem")
    );
    assert_eq!(secure["tls"]["protocols"][0].as_str(), Some("TLSv1.2"));
    assert!(secure["tls"].get("insecure_skip_verify").is_none());
    let server = &parsed["server"][0];
    assert_eq!(server["names"][0].as_str(), Some("example.com"));
    assert_eq!(server["names"][1].as_str(), Some("*.example.com"));
    assert_eq!(server["default"].as_bool(), Some(true));
    assert_eq!(server["route"][1]["strip_prefix"].as_str(), Some("/secure"));
    assert_eq!(
        server["route"][1]["request_headers"]["Host"].as_str(),
        Some("tls_app")
    );
    let notes = notes_of(text).join("\n");
    for want in [
        "t.conf:2:1: worker_rlimit_nofile: dropped",
        "t.conf:3:10: worker_connections: dropped",
        "t.conf:8:3: keepalive_timeout: its second value",
        "t.conf:9:3: access_log: lines are in the proxy's own text format",
        "t.conf:13:5: server: marked down: left out of the group",
        "t.conf:19:5: listen: ipv6only=off",
        "t.conf:19:5: listen: backlog dropped",
        "t.conf:21:5: charset: dropped",
        "t.conf:23:7: limit_conn: written in a location",
        "t.conf:31:7: proxy_ssl_protocols: versions before TLSv1.2 dropped",
    ] {
        assert!(notes.contains(want), "want {want}\nin\n{notes}");
    }
}

#[test]
fn rewrites_that_redirect_become_the_routes_redirect_when_matched() {
    let text = "http { server { listen 80;
  location /old/ { rewrite ^/old/(.*)$ /new/$1 permanent; proxy_pass http://127.0.0.1:1; }
  location /tmp/ { rewrite ^/tmp/(.*)$ /t/$1 redirect; root /srv; }
  location /go/ { rewrite ^/go/(.*)$ https://example.com/$1?; proxy_pass http://127.0.0.1:1; }
  location /api/ { rewrite ^/api/x$ /y redirect; proxy_pass http://127.0.0.1:1/v1/; }
} }";
    let errors = errors_of(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("t.conf:5:20: rewrite: a redirecting rewrite beside a path edit"),
        "{errors:?}"
    );
    let ok = text.replace("http://127.0.0.1:1/v1/", "http://127.0.0.1:1");
    let toml = toml_of(&ok);
    for want in [
        "rewrite = { pattern = \"^/old/(.*)$\", to = \"/new/$1\", redirect = 301 }",
        "rewrite = { pattern = \"^/tmp/(.*)$\", to = \"/t/$1\", redirect = 302 }",
        "rewrite = { pattern = \"^/go/(.*)$\", to = \"https://example.com/$1?\", redirect = 302 }",
        "rewrite = { pattern = \"^/api/x$\", to = \"/y\", redirect = 302 }",
    ] {
        assert!(toml.contains(want), "want {want}\nin\n{toml}");
    }
}

#[test]
fn a_servers_redirecting_rewrite_goes_on_every_route() {
    let text = "http { server { listen 80; root /nonexistent;
  rewrite ^/old/(.*)$ /new/$1 permanent;
  location /a/ { proxy_pass http://127.0.0.1:1; }
  location = /b { return 404; }
} }";
    let parsed: toml::Table = toml::from_str(&toml_of(text)).unwrap();
    let routes = parsed["server"][0]["route"].as_array().unwrap();
    let locations: Vec<&str> = routes
        .iter()
        .map(|r| r["location"].as_str().unwrap())
        .collect();
    assert_eq!(
        locations,
        ["/a/", "= /b", "/"],
        "what no location matches: 404"
    );
    assert_eq!(routes[2]["status"].as_integer(), Some(404));
    for route in routes {
        assert_eq!(route["rewrite"]["to"].as_str(), Some("/new/$1"));
        assert_eq!(route["rewrite"]["redirect"].as_integer(), Some(301));
    }
    let refused = [
        (
            "http { server { listen 80; rewrite ^/a /b break; location / { root /; } } }",
            "t.conf:1:28: rewrite: a rewrite … break outside a location",
        ),
        (
            "http { server { listen 80; rewrite ^/a /b redirect; location / { rewrite ^/c /d break; root /; } } }",
            "t.conf:1:28: rewrite: the server's redirecting rewrite cannot join `location /`",
        ),
        (
            "http { server { listen 80; rewrite ^/a /b redirect; return 404; } }",
            "t.conf:1:28: rewrite: a rewrite beside the server's return",
        ),
    ];
    for (text, want) in refused {
        let errors = errors_of(text);
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "want {want}\nin {errors:?}"
        );
    }
}

#[test]
fn rewrite_last_is_break_where_the_new_path_surely_stays() {
    // (the server's other locations, the location, its rewrite, stays)
    let table: &[(&str, &str, &str, bool)] = &[
        ("", "/api/", "^/api/old/(.*)$ /api/new/$1", true),
        ("", "^~ /api/", "^/api/old/(.*)$ /api/new/$1?x=1", true),
        // The new path matches the regex again: nginx loops.
        ("", "/api/", "^/api/(.*)$ /api/v2/$1", false),
        ("", "/api/", "^/api/old|/x /api/new", false),
        ("", "/api/", "(?i)^/api/old/(.*)$ /api/new/$1", false),
        // It leaves the location.
        ("", "/api/", "^/api/old/(.*)$ /v2/$1", false),
        ("", "/api/", "^/api/old/(.*)$ $1", false),
        // Another location may take it.
        (
            "location ~ \\.php$ { root /; }",
            "/api/",
            "^/api/old/(.*)$ /api/new/$1",
            false,
        ),
        (
            "location ~ \\.php$ { root /; }",
            "^~ /api/",
            "^/api/old/(.*)$ /api/new/$1",
            true,
        ),
        (
            "location /api/new/v { root /; }",
            "/api/",
            "^/api/old/(.*)$ /api/new/$1",
            false,
        ),
        (
            "location /api/n { root /; }",
            "/api/",
            "^/api/old/(.*)$ /api/new/$1",
            false,
        ),
        (
            "location = /api/new/x { root /; }",
            "/api/",
            "^/api/old/(.*)$ /api/new/$1",
            false,
        ),
        (
            "location /other/ { root /; }",
            "/api/",
            "^/api/old/(.*)$ /api/new/$1",
            true,
        ),
        // Not a prefix location.
        ("", "~ ^/api/", "^/api/old/(.*)$ /api/new/$1", false),
    ];
    for &(others, location, rewrite, stays) in table {
        let text = format!(
            "http {{ server {{ listen 80; {others} location {location} {{ rewrite {rewrite} last; proxy_pass http://127.0.0.1:1; }} }} }}"
        );
        match translate_text(&text, "t.conf", Path::new("/srv/nginx")) {
            Ok(t) => {
                assert!(stays, "translated: {text}");
                let (pattern, to) = rewrite.split_once(' ').unwrap();
                let want = format!("rewrite = {{ pattern = {pattern:?}, to = {to:?} }}");
                assert!(t.toml.contains(&want), "want {want}\nin\n{}", t.toml);
            }
            Err(errors) => {
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                assert!(!stays, "refused: {text}\n{errors:?}");
                assert!(
                    errors
                        .iter()
                        .any(|e| e.contains("rewrite … last is supported where")),
                    "{text}\n{errors:?}"
                );
            }
        }
    }
}

#[test]
fn backup_servers_are_kept_and_take_over_when_the_others_are_marked_down() {
    let text = "http {
  upstream a { server 10.0.0.1:80; server 10.0.0.2:80 weight=2 backup; }
  upstream b { server 10.0.0.3:80 down; server 10.0.0.4:80 backup; }
  server { listen 80; location /a { proxy_pass http://a; } location /b { proxy_pass http://b; } }
}";
    let parsed: toml::Table = toml::from_str(&toml_of(text)).unwrap();
    let servers = |group: &str| -> Vec<String> {
        let list = parsed["upstream"][group]["servers"].as_array().unwrap();
        list.iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(servers("a"), ["10.0.0.1:80", "10.0.0.2:80 weight=2 backup"]);
    assert_eq!(servers("b"), ["10.0.0.4:80"]);
    assert!(notes_of(text)
        .iter()
        .any(|n| n.starts_with("t.conf:3:3: upstream: upstream b has only backup servers up")));
}

#[test]
fn an_unverified_tls_upstream_is_kept_unverified_with_a_note() {
    let text = "http { server { listen 80; location / { proxy_pass https://10.0.0.9; proxy_ssl_verify off; } } }";
    let parsed: toml::Table = toml::from_str(&toml_of(text)).unwrap();
    let group = &parsed["upstream"]["10-0-0-9-443"];
    assert_eq!(group["servers"][0].as_str(), Some("https://10.0.0.9:443"));
    assert_eq!(group["tls"]["insecure_skip_verify"].as_bool(), Some(true));
    let notes = notes_of(text).join("\n");
    assert!(
        notes.contains("proxy_ssl_verify: off, as nginx's default"),
        "{notes}"
    );
}

#[test]
fn cipher_lists_by_name_become_rustls_suites_and_keywords_are_dropped() {
    let server = |ciphers: &str| {
        format!(
            "http {{ server {{ listen 443 ssl; ssl_certificate a.pem; ssl_certificate_key a.key;
  ssl_protocols TLSv1.2; ssl_ciphers {ciphers};
  location / {{ proxy_pass http://127.0.0.1:1; }} }} }}"
        )
    };
    let text = server("ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384");
    let parsed: toml::Table = toml::from_str(&toml_of(&text)).unwrap();
    let ciphers = parsed["listener"][0]["tls"]["ciphers"].as_array().unwrap();
    assert_eq!(ciphers.len(), 1, "no TLS 1.3 suites without TLSv1.3");
    assert_eq!(
        ciphers[0].as_str(),
        Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    );
    let notes = notes_of(&text).join("\n");
    assert!(
        notes.contains(
            "ssl_ciphers: DHE-RSA-AES256-GCM-SHA384 dropped (rustls does not offer them)"
        ),
        "{notes}"
    );
    let text = server("HIGH:!aNULL:!MD5");
    let parsed: toml::Table = toml::from_str(&toml_of(&text)).unwrap();
    assert!(parsed["listener"][0]["tls"].get("ciphers").is_none());
    assert!(notes_of(&text)
        .join("\n")
        .contains("ssl_ciphers: dropped (a list of keywords"));
}

#[test]
fn returns_become_redirects_or_statuses() {
    let text = "http { server { listen 80;
  location = /a { return 301 https://$host/b$request_uri; }
  location = /b { return https://example.com/; }
  location = /c { return 404; }
  location = /d { return 503 \"later\"; }
} }";
    let parsed: toml::Table = toml::from_str(&toml_of(text)).unwrap();
    let routes = parsed["server"][0]["route"].as_array().unwrap();
    assert_eq!(routes[0]["redirect"]["status"].as_integer(), Some(301));
    assert_eq!(
        routes[0]["redirect"]["to"].as_str(),
        Some("https://$host/b$request_uri")
    );
    assert_eq!(routes[1]["redirect"]["status"].as_integer(), Some(302));
    assert_eq!(routes[2]["status"].as_integer(), Some(404));
    assert_eq!(routes[3]["status"].as_integer(), Some(503));
    assert!(notes_of(text)
        .join("\n")
        .contains("t.conf:5:19: return: its text is dropped"));
    let errors = errors_of("http { server { listen 80; location / { return 444; } } }");
    assert!(
        errors[0].contains("return 444 is not supported"),
        "{errors:?}"
    );
}

#[test]
fn maps_other_than_the_upgrade_idiom_are_refused_where_used() {
    let errors = errors_of(
        "http { map $http_x $backend_header { default a; b c; }
  server { listen 80; location / { proxy_pass http://a; proxy_set_header X-B $backend_header; } } }",
    );
    assert!(
        errors[0].contains("$backend_header is not supported here"),
        "{errors:?}"
    );
}

/// nginx does not pass `try_files` down to locations; a server's own
/// serves what no location matches, from the root, as nginx does.
#[test]
fn a_servers_try_files_serves_what_no_location_matches() {
    let dir = std::env::temp_dir().join(format!("wsproxy-nginx-root-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("html")).unwrap();
    let text = "http { server { listen 80; try_files $uri /index.html;
  location /api/ { proxy_pass http://127.0.0.1:1; }
  location /x { } } }";
    let toml = match translate_text(text, "t.conf", &dir) {
        Ok(t) => t.toml,
        Err(e) => panic!("{e:#?}"),
    };
    let parsed: toml::Table = toml::from_str(&toml).unwrap();
    let routes = parsed["server"][0]["route"].as_array().unwrap();
    assert_eq!(routes.len(), 3, "{toml}");
    assert!(
        routes[1].get("try_files").is_none(),
        "not passed down: {toml}"
    );
    assert_eq!(routes[2]["location"].as_str(), Some("/"));
    assert_eq!(routes[2]["try_files"][1].as_str(), Some("/index.html"));
    std::fs::remove_dir_all(&dir).unwrap();
}
