//! The file's checks as tables: a full file that loads, mistakes located
//! with what to do, every problem listed at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::addr::tests::dual_stack;
use crate::config::{Serves, Target};
use crate::limits::Limits;
use crate::relay::Policy;

fn check(text: &str) -> Result<Config, Vec<String>> {
    parse(text, Path::new("t.toml"), Path::new(".")).map_err(|e| match e {
        LoadError::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    })
}

/// The site serving `host` on `listener`, if it serves sites.
fn site_for(config: &Config, listener: usize, host: &str) -> Option<usize> {
    match &config.listeners[listener].serves {
        Serves::Sites(hosts) => Some(hosts.find(host)),
        Serves::RedirectHttps { .. } => None,
    }
}

const GOOD: &str = r#"
workers = 2
relay = "copy"
trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
[timeouts]
idle = "24h"
[limits]
max_connections = 500
max_connections_per_ip = 20

[[listener]]
address = "127.0.0.1:8080"
redirect_https = true
redirect_port = 8443

[[listener]]
address = "127.0.0.1:8443"

[upstream.app]
servers = ["127.0.0.1:9000", "127.0.0.1:9001 weight=3", "127.0.0.1:9002 backup"]
balance = "hash"
hash_key = "query:sid"
fail_timeout = "30s"

[[server]]
names = ["example.com", "*.example.com"]
response_headers = [{ name = "Strict-Transport-Security", value = "max-age=31536000", always = true }]
hide_headers = ["Server"]
request_headers = { Host = "$host" }

[[server.route]]
location = "/ws"
upstream = "app"
origins = ["https://example.com"]

[[server.route]]
location = "^~ /api/socket/"
upstream = "127.0.0.1:32000"
rewrite = { pattern = '^/(api)/(socket)/(.*)$', to = '/$2/$3' }

[[server]]
names = ["other.test"]
default = true
[[server.route]]
location = "/"
upstream = "127.0.0.1:32000"
rewrite = { pattern = '^/old/(.*)$', to = '/new/$1', redirect = 301 }
"#;

#[test]
fn a_full_file_loads() {
    let c = check(GOOD).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.workers, 2);
    assert_eq!(c.relay, Policy::Copy);
    assert_eq!(c.timeouts.idle, Duration::from_secs(86_400));
    assert_eq!(
        c.limits,
        Limits {
            max_connections: 500,
            max_per_worker: 0,
            max_per_ip: 20
        }
    );
    assert_eq!(c.listeners.len(), 2);
    assert!(matches!(
        c.listeners[0].serves,
        Serves::RedirectHttps { port: Some(8443) }
    ));
    assert_eq!(c.groups.len(), 2, "app and one inline group, shared");
    assert_eq!(c.groups[0].servers[1].weight, 3);
    let backups: Vec<bool> = c.groups[0].servers.iter().map(|s| s.backup).collect();
    assert_eq!(backups, [false, false, true]);
    assert_eq!(c.groups[0].fail_timeout, Duration::from_secs(30));
    assert_eq!(c.sites.len(), 2);
    assert_eq!(c.routes.len(), 3);
    assert_eq!(site_for(&c, 1, "example.com"), Some(0));
    assert_eq!(site_for(&c, 1, "a.example.com"), Some(0));
    assert_eq!(site_for(&c, 1, "unknown.test"), Some(1), "default = true");
    assert_eq!(site_for(&c, 0, "example.com"), None, "redirecting listener");
    let ws = &c.routes[0];
    assert!(ws.request.sets("host"));
    assert!(ws.origins.is_some());
    assert!(!ws.response.passes("server"));
    assert!(matches!(c.routes[2].target, Target::Upstream(1)));
    assert!(c.routes[1].path_edit.is_some());
    assert!(c.routes[1].rewrite_redirect.is_none());
    let moved = c.routes[2].rewrite_redirect.as_ref().expect("a redirect");
    assert_eq!(moved.status, 301);
    assert!(c.routes[2].path_edit.is_none(), "a redirect edits no path");
    assert!(c.trusted_proxies.trusts("10.2.3.4".parse().unwrap()));
    assert!(c.trusted_proxies.trusts("127.0.0.1".parse().unwrap()));
    assert!(!c.trusted_proxies.trusts("127.0.0.2".parse().unwrap()));
}

#[test]
fn mistakes_are_located_and_say_what_to_do() {
    let cases: &[(&str, &str, &str)] = &[
        ("workers = \"many\"", "1:11", "workers is \"auto\" or a number"),
        ("[[listener]]\naddress = \"nope\"", "2:11", "is not an address"),
        ("[[listener]]\nadress = \"x\"", "2:1", "unknown key `adress` in [[listener]] (did you mean `address`?)"),
        ("x = [", "1:6", ""),
        (
            "trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.1/8\"]",
            "1:34",
            "did you mean 10.0.0.0/8?",
        ),
        (
            "trusted_proxies = [\n  \"lb.internal\"]",
            "2:3",
            "not an address range",
        ),
        ("", "1:1", "no [[listener]]"),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"",
            "1:1",
            "has no [[server]]",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"nowhere\"",
            "6:12",
            "no [upstream.nowhere] group",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\n[[server.route]]\nlocation = \"~ (\"\nupstream = \"127.0.0.1:2\"",
            "5:12",
            "",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\nlisten = [\"127.0.0.1:2\"]\n[[server.route]]\nlocation = \"/\"\nupstream = \"127.0.0.1:2\"",
            "4:11",
            "no [[listener]] has address 127.0.0.1:2",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\n[[server.route]]\nlocation = \"/\"",
            "4:1",
            "no target",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nservers = [\"127.0.0.1:2\"]\nbalance = \"hash\"\n[[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"a\"",
            "5:11",
            "needs a hash_key",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nservers = [\"127.0.0.1:2 weight=0\"]\n[[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"a\"",
            "4:12",
            "weight",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nservers = [\"127.0.0.1:2 backup\"]\n[[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"a\"",
            "4:11",
            "every server is a backup",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"127.0.0.1:2\"\nrewrite = { pattern = \"^/a\", to = \"/b\", redirect = 307 }",
            "7:11",
            "301 (nginx's permanent) or 302",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nservers = [\"127.0.0.1:2 standby\"]\n[[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"a\"",
            "4:12",
            "the options are weight=N and backup",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\nrequest_headers = { Upgrade = \"$http_upgrade\" }\n[[server.route]]\nlocation = \"/\"\nupstream = \"127.0.0.1:2\"",
            "4:21",
            "set by the proxy",
        ),
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\n[[server.route]]\nlocation = \"/\"\nname = \"\"\nupstream = \"127.0.0.1:2\"",
            "6:8",
            "metrics label",
        ),
    ];
    for (text, at, want) in cases {
        let errors = check(text)
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("t.toml:{at}: ")) && e.contains(want)),
            "{text}\n=> {errors:?}"
        );
        assert!(errors.iter().all(|e| !e.contains('\n')), "{errors:?}");
    }
}

#[test]
fn every_problem_is_listed() {
    let errors = check(
        "workers = 0\n[[listener]]\naddress = \"x\"\n[[listener]]\naddress = \"127.0.0.1:1\"\n\
         [[server]]\n[[server.route]]\nlocation = \"nope\"\nupstream = \"127.0.0.1:2\"",
    )
    .unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].starts_with("t.toml:1:"));
    assert!(errors[1].starts_with("t.toml:3:"));
    assert!(errors[2].starts_with("t.toml:8:"));
}

/// A misspelled key, a wrong balance, a location without its slash and an
/// upstream group that does not exist: four mistakes, four lines, one run.
/// (`tests/config.rs` runs `--check` on it.)
const FOUR_MISTAKES: &str = include_str!("../../../tests/data/config/four-mistakes.toml");

#[test]
fn four_mistakes_are_four_located_errors() {
    let errors = check(FOUR_MISTAKES).unwrap_err();
    assert_eq!(
        errors,
        [
            "t.toml:8:11: unknown balance \"roundrobin\": use \"round_robin\", \"least_conn\" or \"hash\"",
            "t.toml:10:2: unknown key `upstrem` (did you mean `upstream`?)",
            "t.toml:15:12: \"ws\": a location path starts with '/', as in \"/api\"; a location is \"= /path\", \"/prefix\", \"^~ /prefix\", \"~ regex\" or \"~* regex\"",
            "t.toml:16:12: no [upstream.ap] group: define it, or give HOST:PORT",
        ]
    );
}

#[test]
fn a_misspelled_key_is_one_error_not_a_cascade() {
    let route =
        "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\n[[server.route]]\nlocation = \"/\"\n";
    let cases = [
        // serde's "missing field `address`" would follow.
        ("[[listener]]\nadress = \"127.0.0.1:1\"\n".to_string(), "2:1", "`address`"),
        // "this route has no target" would follow.
        (format!("{route}upstrem = \"127.0.0.1:2\"\n"), "6:1", "`upstream`"),
        (format!("{route}rot = \"www\"\n"), "6:1", "`root`"),
        // "no [[listener]]" would follow.
        ("[[listenr]]\naddress = \"127.0.0.1:1\"\n".to_string(), "1:3", "`listener`"),
        // "this [[server]] has no routes" would follow.
        (
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\n[[server.rout]]\nlocation = \"/\"\nupstream = \"127.0.0.1:2\"\n"
                .to_string(),
            "4:10",
            "`route`",
        ),
        // "cert needs its key beside it" would follow.
        (
            format!("{route}upstream = \"127.0.0.1:2\"\n[[listener]]\naddress = \"127.0.0.1:3\"\ntls = {{ cert = \"a.pem\", kye = \"a.key\" }}\n"),
            "9:25",
            "`key`",
        ),
    ];
    for (text, at, meant) in cases {
        let errors = check(&text).unwrap_err();
        assert_eq!(errors.len(), 1, "{text}\n=> {errors:#?}");
        assert!(
            errors[0].starts_with(&format!("t.toml:{at}: unknown key"))
                && errors[0].ends_with(&format!("(did you mean {meant}?)")),
            "{text}\n=> {errors:#?}"
        );
    }
}

#[test]
fn a_bad_location_does_not_hide_the_rest_of_its_route() {
    let errors = check(
        "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\n[[server.route]]\n\
         location = \"ws\"\nupstream = \"nowhere\"\nrewrite = { pattern = \"(\", to = \"/\" }\n",
    )
    .unwrap_err();
    let at: Vec<&str> = errors.iter().map(|e| &e[..e.find(": ").unwrap()]).collect();
    assert_eq!(
        at,
        ["t.toml:5:12", "t.toml:6:12", "t.toml:7:11"],
        "{errors:#?}"
    );
}

#[test]
fn durations_take_a_unit_or_are_seconds() {
    let file = |settings: &str| {
        format!(
            "{settings}\n[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nservers = [\"127.0.0.1:2\"]\n\
             fail_timeout = 7\n[[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"a\"\n"
        )
    };
    let ok = [
        ("[timeouts]\nidle = 30", 30_000),
        ("[timeouts]\nidle = \"30\"", 30_000),
        ("[timeouts]\nidle = \"30s\"", 30_000),
        ("[timeouts]\nidle = \"500ms\"", 500),
        ("[timeouts]\nidle = \"2h\"", 7_200_000),
        ("[timeouts]\nidle = 0", 0),
    ];
    for (settings, millis) in ok {
        let c = check(&file(settings)).unwrap_or_else(|e| panic!("{settings}: {e:#?}"));
        assert_eq!(c.timeouts.idle, Duration::from_millis(millis), "{settings}");
        assert_eq!(
            c.groups[0].fail_timeout,
            Duration::from_secs(7),
            "fail_timeout = 7"
        );
    }
    let c = check(&file("[drain]\ntimeout = 40\nspread = 10")).unwrap();
    assert_eq!(c.drain.timeout, Duration::from_secs(40));
    assert_eq!(c.drain.spread, Duration::from_secs(10));

    let bad = [
        ("[timeouts]\nidle = -1", "2:8", "`-1` is not a duration"),
        (
            "[timeouts]\nidle = 1.5",
            "2:8",
            "expected a duration such as",
        ),
        ("[timeouts]\nidle = \"30x\"", "2:8", "unknown unit `x`"),
        ("[timeouts]\nconnect = 0", "2:11", "must be more than zero"),
        (
            "[timeouts]\nidle = true",
            "2:8",
            "expected a duration such as",
        ),
    ];
    for (settings, at, want) in bad {
        let errors = check(&file(settings)).unwrap_err();
        assert_eq!(errors.len(), 1, "{settings}: {errors:#?}");
        assert!(
            errors[0].starts_with(&format!("t.toml:{at}: ")) && errors[0].contains(want),
            "{settings}: {errors:#?}"
        );
    }
}

#[test]
fn a_listener_host_name_listens_on_each_of_its_addresses() {
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/certs");
    let text = format!(
        "[[listener]]\naddress = \"dual.test:8185\"\n\
         tls = {{ cert = \"{certs}/localhost.pem\", key = \"{certs}/localhost.key\" }}\n\
         [[listener]]\naddress = \"127.0.0.2:8185\"\n\
         [[server]]\nlisten = [\"dual.test:8185\"]\n[[server.route]]\nlocation = \"/\"\nupstream = \"127.0.0.1:1\"\n\
         [[server]]\nlisten = [\"127.0.0.2:8185\"]\n[[server.route]]\nlocation = \"/\"\nupstream = \"127.0.0.1:1\"\n"
    );
    let parse = |text: &str| {
        parse_with(text, Path::new("t.toml"), Path::new("."), dual_stack).map_err(|e| e.to_string())
    };
    let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let addrs: Vec<String> = c.listeners.iter().map(|l| l.addr.to_string()).collect();
    assert_eq!(addrs, ["127.0.0.1:8185", "[::1]:8185", "127.0.0.2:8185"]);
    assert_eq!(site_for(&c, 0, "any"), Some(0));
    assert_eq!(
        site_for(&c, 1, "any"),
        Some(0),
        "listen = [name] is each address"
    );
    assert_eq!(site_for(&c, 2, "any"), Some(1));
    let tls: Vec<&Arc<rustls::ServerConfig>> = c.listeners[..2]
        .iter()
        .map(|l| l.tls.as_ref().expect("TLS on both").config())
        .collect();
    assert!(
        Arc::ptr_eq(tls[0], tls[1]),
        "one certificate set for the name"
    );
    assert!(c.listeners[2].tls.is_none());

    let errors = parse("[[listener]]\naddress = \"nowhere.test:80\"\n").unwrap_err();
    assert_eq!(
        errors,
        "t.toml:2:11: \"nowhere.test:80\": cannot resolve nowhere.test: unknown name"
    );
    let errors = parse(
        "[[listener]]\naddress = \"dual.test:80\"\n[[listener]]\naddress = \"[::1]:80\"\n\
         [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"127.0.0.1:1\"\n",
    )
    .unwrap_err();
    assert_eq!(errors, "t.toml:4:11: listener [::1]:80 is declared twice");
}

#[test]
fn access_lists_are_inherited_by_routes_without_their_own() {
    let text = r#"
[[listener]]
address = "127.0.0.1:0"
[[server]]
access = ["deny 192.0.2.0/24"]
[[server.route]]
location = "/admin/"
upstream = "127.0.0.1:9000"
access = ["allow 127.0.0.1", "deny all"]
[[server.route]]
location = "/"
upstream = "127.0.0.1:9000"
"#;
    let config = check(text).unwrap();
    let allows = |route: usize, ip: &str| {
        config.routes[route]
            .access
            .as_ref()
            .is_none_or(|a| a.allows(ip.parse().unwrap()))
    };
    assert!(allows(0, "127.0.0.1"));
    assert!(!allows(0, "10.0.0.1"));
    assert!(allows(1, "10.0.0.1"));
    assert!(!allows(1, "192.0.2.9"));
    let errors = check(&text.replace("deny all", "refuse all")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("t.toml:9:10: \"refuse all\": an access rule is"),
        "{errors:?}"
    );
}

#[test]
fn a_route_may_answer_every_request_with_a_status() {
    let text = r#"
[[listener]]
address = "127.0.0.1:0"
[[server]]
[[server.route]]
location = '~ /\.git'
status = 404
"#;
    let config = check(text).unwrap();
    assert!(matches!(
        config.routes[0].target,
        Target::Status(crate::handshake::answer::Status::NotFound)
    ));
    let errors = check(&text.replace("404", "418")).unwrap_err();
    assert!(
        errors[0].starts_with("t.toml:7:10: a route's status is one of"),
        "{errors:?}"
    );
    let errors = check(&text.replace("status = 404", "status = 404\nroot = \".\"")).unwrap_err();
    assert!(
        errors[0].contains("a route with a status answers every request"),
        "{errors:?}"
    );
}

#[test]
fn a_route_may_redirect_with_its_status() {
    let text = r#"
[[listener]]
address = "127.0.0.1:0"
[[server]]
[[server.route]]
location = "= /old"
redirect = { status = 301, to = "https://$host/new$request_uri" }
[[server.route]]
location = "/"
redirect = { to = "https://example.com$request_uri" }
"#;
    let config = check(text).unwrap();
    match &config.routes[0].target {
        Target::Redirect(r) => assert_eq!(r.status, 301),
        other => panic!("{other:?}"),
    }
    match &config.routes[1].target {
        Target::Redirect(r) => assert_eq!(r.status, 308, "308 when none is given"),
        other => panic!("{other:?}"),
    }
    let cases = [
        (
            "status = 301",
            "status = 200",
            "t.toml:7:23: a redirect's status is one of",
        ),
        (
            "$request_uri\" }\n[[server.route]]",
            "$uri\" }\n[[server.route]]",
            "t.toml:7:33: unknown variable $uri",
        ),
        (
            "location = \"/\"\n",
            "location = \"/\"\nupstream = \"127.0.0.1:1\"\n",
            "t.toml:11:12: a route has one of upstream, root or redirect",
        ),
    ];
    for (from, to, want) in cases {
        let errors = check(&text.replacen(from, to, 1)).unwrap_err();
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "{want}\n{errors:?}"
        );
    }
}

#[test]
fn try_files_may_end_in_the_routes_upstream() {
    let dir = std::env::temp_dir().join(format!("wsproxy-fallback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[[server]]
[[server.route]]
location = "/"
root = "{}"
try_files = ["$uri", "$uri/", "@upstream"]
upstream = "127.0.0.1:9000"
"#,
        dir.display()
    );
    let config = check(&text).unwrap();
    assert!(matches!(
        config.routes[0].target,
        Target::FilesThenUpstream { group: 0, .. }
    ));
    let errors = check(&text.replace("upstream = \"127.0.0.1:9000\"\n", "")).unwrap_err();
    assert!(
        errors[0].contains("try_files ends with \"@upstream\" but the route has no upstream"),
        "{errors:?}"
    );
    let errors = check(&text.replace(", \"@upstream\"", "")).unwrap_err();
    assert!(
        errors[0].contains("or end try_files with \"@upstream\""),
        "{errors:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ----- [upstream.NAME.health] ----------------------------------------------

/// A file with one group `a` whose `[upstream.a.health]` table is
/// `health` (the table's header is on line 5).
fn with_health(health: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nservers = [\"127.0.0.1:2\"]\n\
         [upstream.a.health]\n{health}\n[[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"a\"\n"
    )
}

#[test]
fn health_checks_take_their_defaults() {
    use crate::config::{
        HEALTH_CHECK, HEALTH_FALL, HEALTH_INTERVAL, HEALTH_ON_DOWN, HEALTH_PATH, HEALTH_RISE,
        HEALTH_TIMEOUT,
    };
    use crate::upstream::{CheckKind, HealthCheck, OnDown};
    let none = check(&with_health("").replace("[upstream.a.health]\n", "")).expect("loads");
    assert_eq!(none.groups[0].check, None, "no table, no checks");
    let c = check(&with_health("")).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        c.groups[0].check,
        Some(HealthCheck {
            kind: HEALTH_CHECK,
            path: HEALTH_PATH.into(),
            interval: HEALTH_INTERVAL,
            timeout: HEALTH_TIMEOUT,
            fall: HEALTH_FALL,
            rise: HEALTH_RISE,
            host: None,
            on_down: HEALTH_ON_DOWN,
        })
    );
    let all = "check = \"websocket\"\npath = \"/ws/ping\"\ninterval = \"500ms\"\ntimeout = 1\n\
               fall = 1\nrise = 4\nhost = \"app.internal\"\non_down = \"drain\"";
    let c = check(&with_health(all)).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        c.groups[0].check,
        Some(HealthCheck {
            kind: CheckKind::WebSocket,
            path: "/ws/ping".into(),
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
            fall: 1,
            rise: 4,
            host: Some("app.internal".into()),
            on_down: OnDown::Drain,
        })
    );
    assert!(
        c.summary()
            .ends_with("a (127.0.0.1:2; websocket checks every 500ms)"),
        "{}",
        c.summary()
    );
    let http = check(&with_health("check = \"http\"")).expect("loads");
    let kind = http.groups[0].check.as_ref().map(|c| c.kind);
    assert_eq!(kind, Some(CheckKind::Http));
}

#[test]
fn health_check_mistakes_are_located() {
    let table: &[(&str, &str)] = &[
        ("fall = 0", "t.toml:6:8: fall must be at least 1"),
        ("rise = 0", "t.toml:6:8: rise must be at least 1"),
        ("check = \"icmp\"", "t.toml:6:9: unknown check \"icmp\": use \"tcp\""),
        ("on_down = \"close\"", "t.toml:6:11: unknown on_down \"close\""),
        ("interval = 0", "t.toml:6:12: a check's interval must be more than zero"),
        ("timeout = \"2 fortnights\"", "t.toml:6:11: a check's timeout:"),
        ("check = \"http\"\npath = \"health\"", "t.toml:7:8: a check's path starts with /"),
        ("path = \"/health\"", "t.toml:6:8: path applies to check = \"http\" or \"websocket\""),
        ("intervall = 5", "t.toml:6:1: unknown key `intervall` in [upstream.NAME.health] (did you mean `interval`?)"),
        ("fall = -1", "t.toml:6:8: "),
    ];
    for &(health, want) in table {
        match check(&with_health(health)) {
            Ok(_) => panic!("{health:?} loaded"),
            Err(errors) => assert!(
                errors.len() == 1 && errors[0].starts_with(want),
                "{health:?}: {errors:#?}, want {want:?}"
            ),
        }
    }
    let errors = check(&with_health("fall = 0\nrise = 0\ncheck = \"ping\"")).expect_err("three");
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn a_route_is_named_by_its_name_else_by_its_location() {
    let config = check(
        "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\n\
         [[server.route]]\nlocation = \"^~ /ws\"\nname = \"chat\"\nupstream = \"127.0.0.1:2\"\n\
         [[server.route]]\nlocation = \"^~ /api\"\nupstream = \"127.0.0.1:2\"\n\
         [[server.route]]\nlocation = \"/\"\nname = \"chat\"\nupstream = \"127.0.0.1:2\"\n",
    )
    .unwrap();
    let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["chat", "^~ /api", "chat"],
        "a shared name is allowed"
    );
}

const POLICY_ROUTE: &str = r#"
[[listener]]
address = "127.0.0.1:8080"
[[server]]
[[server.route]]
location = "/"
upstream = "127.0.0.1:9000"
"#;
#[test]
fn a_routes_tunnel_policy_is_read_with_its_defaults() {
    let c = check(&format!(
        "{POLICY_ROUTE}idle_timeout = \"10m\"\nping_interval = 30\nmax_lifetime = \"6h\"\n\
         lifetime_jitter = \"30m\"\nmax_message_bytes = 65536\nmax_messages_per_s = 50\n\
         rate_limit_close_after = \"10s\"\n"
    ))
    .unwrap();
    let p = &c.routes[0].tunnel;
    assert_eq!(p.idle, Some(Duration::from_secs(600)));
    let ping = p.ping.unwrap();
    assert_eq!(ping.interval, Duration::from_secs(30));
    assert_eq!(ping.timeout, crate::config::PING_TIMEOUT);
    assert!(!ping.upstream);
    let life = p.lifetime.unwrap();
    assert_eq!(
        (life.max, life.jitter),
        (Duration::from_secs(21600), Duration::from_secs(1800))
    );
    assert_eq!(p.max_message_bytes, Some(65536));
    let rate = p.rate.unwrap();
    assert_eq!(rate.messages_per_s, Some(50));
    assert_eq!(rate.message_burst, 50, "a second's worth");
    assert_eq!(rate.bytes_per_s, None);
    assert_eq!(rate.close_after, Some(Duration::from_secs(10)));
    assert!(p.watches());
    let plain = check(POLICY_ROUTE).unwrap();
    assert!(!plain.routes[0].tunnel.watches(), "off unless set");
}

#[test]
fn tunnel_policy_mistakes_are_located() {
    for (extra, want) in [
        (
            "ping_timeout = 5\n",
            "t.toml:8:16: ping_timeout needs ping_interval",
        ),
        (
            "ping_upstream = true\n",
            "t.toml:8:17: ping_upstream needs ping_interval",
        ),
        (
            "ping_interval = 0\n",
            "t.toml:8:17: ping_interval must be more than zero",
        ),
        (
            "max_message_bytes = 0\n",
            "t.toml:8:21: max_message_bytes must be more than zero",
        ),
        (
            "lifetime_jitter = 5\n",
            "t.toml:8:19: lifetime_jitter needs max_lifetime",
        ),
        (
            "rate_limit_close_after = 5\n",
            "t.toml:8:26: rate_limit_close_after needs max_messages_per_s or max_bytes_per_s",
        ),
        ("ping_intervl = 5\n", "did you mean `ping_interval`?"),
    ] {
        let errors = check(&format!("{POLICY_ROUTE}{extra}")).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{extra}: {errors:?}"
        );
    }
}

const ACME_SITE: &str = r#"
[upstream.app]
servers = ["127.0.0.1:9000"]
[[server]]
[[server.route]]
location = "/"
upstream = "app"
"#;

#[test]
fn an_acme_table_is_read_with_its_defaults() {
    let text = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = {{ acme = {{ names = [\"Example.COM\", \"www.example.com\"], contact = \"mailto:ops@example.com\", storage = \"/tmp/wsproxy-acme-config-test\" }} }}\n{ACME_SITE}"
    );
    let config = check(&text).unwrap();
    let tls = config.listeners[0].tls.as_ref().unwrap();
    let acme = tls.acme().unwrap();
    assert_eq!(acme.names, ["example.com", "www.example.com"]);
    assert_eq!(acme.directory, crate::acme::LETS_ENCRYPT);
    assert_eq!(acme.challenge, crate::acme::ChallengeKind::TlsAlpn01);
    assert_eq!(acme.contact, ["mailto:ops@example.com"]);
    // The placeholder answers for the names until a certificate exists.
    assert_eq!(tls.names(), ["example.com", "www.example.com"]);
    let staging = text.replace("names =", "directory = \"staging\", names =");
    let config = check(&staging).unwrap();
    let acme = config.listeners[0]
        .tls
        .as_ref()
        .unwrap()
        .acme()
        .unwrap()
        .clone();
    assert_eq!(acme.directory, crate::acme::LETS_ENCRYPT_STAGING);
}

#[test]
fn acme_mistakes_are_located() {
    let listener = |acme: &str| {
        format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = {{ acme = {{ {acme} }} }}\n{ACME_SITE}"
        )
    };
    let cases = [
        (
            listener("names = [\"*.example.com\"]"),
            "t.toml:3:",
            "wildcard needs the dns-01",
        ),
        (listener("names = []"), "t.toml:3:", "acme needs the names"),
        (
            listener("names = [\"a.test\"], directory = \"http://ca.test/dir\""),
            "t.toml:3:",
            "an ACME directory is an https:// URL",
        ),
        (
            listener("names = [\"a.test\"], challenge = \"dns-01\""),
            "t.toml:3:",
            "does not speak",
        ),
        (
            listener("names = [\"a.test\"], contact = \"ops@example.com\""),
            "t.toml:3:",
            "mailto:ops@example.com",
        ),
        (
            listener("names = [\"a.test\"], challenge = \"http-01\""),
            "t.toml:1:",
            "add a [[listener]] on port 80",
        ),
        (listener("name = [\"a.test\"]"), "t.toml:3:", "names"),
    ];
    for (text, at, want) in cases {
        let errors = check(&text).map(|_| ()).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains(at) && e.contains(want)),
            "{want}: {errors:?}"
        );
    }
}
