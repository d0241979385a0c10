//! Table tests of the routing decisions.

use std::borrow::Cow;

use super::*;

fn routes(locations: &[&str]) -> Routes {
    Routes::new(
        locations
            .iter()
            .map(|text| Location::parse(text).unwrap())
            .collect(),
    )
}

#[test]
fn location_parses_and_displays_in_nginx_syntax() {
    let cases = [
        ("= /exact", "= /exact"),
        ("=/exact", "= /exact"),
        ("/prefix", "/prefix"),
        ("  /prefix/  ", "/prefix/"),
        ("^~ /api/socket/", "^~ /api/socket/"),
        ("^~/static", "^~ /static"),
        (r"~ \.js$", r"~ \.js$"),
        (r"~* \.JS$", r"~* \.JS$"),
        (r"~*\.png$", r"~* \.png$"),
        ("~ ^/a b$", "~ ^/a b$"),
        ("/", "/"),
    ];
    for (text, shown) in cases {
        let location = Location::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(location.to_string(), shown, "{text:?}");
        let again = Location::parse(&location.to_string()).unwrap();
        assert_eq!(again.to_string(), shown, "{text:?} round trip");
    }
}

#[test]
fn location_rejects_with_one_line_advice() {
    let cases = [
        ("", "a location is"),
        ("api", "a location is"),
        ("@named", "a location is"),
        ("=", "a location is"),
        ("~*", "a location is"),
        ("= api", "starts with '/'"),
        ("^~ api", "starts with '/'"),
        ("/a b", "no spaces"),
        ("~ (unclosed", "is not a valid regex: unclosed group"),
        ("~* [z-a]", "is not a valid regex"),
    ];
    for (text, expected) in cases {
        let err = Location::parse(text).unwrap_err();
        assert!(err.contains(expected), "{text:?}: {err}");
        assert!(!err.contains('\n'), "{text:?}: {err}");
    }
}

#[test]
fn routes_follow_nginx_precedence() {
    let config = routes(&[
        "/",                 // 0
        "/api/",             // 1
        "= /api/health",     // 2
        "^~ /api/socket/",   // 3
        r"~ \.js$",          // 4
        r"~* \.PNG$",        // 5
        "/api/long/prefix/", // 6
        r"~ ^/api/long/",    // 7
        "/static/",          // 8
        "/static/img/",      // 9
    ]);
    let cases = [
        ("/api/health", Some(2)),           // exact beats all
        ("/api/health/", Some(1)),          // exact is exact
        ("/api/socket/x.js", Some(3)),      // ^~ longest prefix beats regex
        ("/api/socket/", Some(3)),          // ^~ alone
        ("/api/other.js", Some(4)),         // regex beats plain prefix
        ("/api/long/prefix/x", Some(7)),    // longer plain prefix loses to regex
        ("/api/long/prefix/x.js", Some(4)), // first regex in config order
        ("/static/img/a.png", Some(5)),     // ~* ignores case
        ("/static/img/A.Png", Some(5)),
        ("/static/img/a.gif", Some(9)), // longest prefix, not first
        ("/static/a.gif", Some(8)),
        ("/api/x", Some(1)),
        ("/elsewhere", Some(0)),
        ("/api", Some(0)), // "/api/" does not match "/api"
    ];
    for (path, expected) in cases {
        assert_eq!(config.find(path), expected, "{path}");
    }
}

#[test]
fn routes_order_independence_and_no_match() {
    let shorter_last = routes(&["/a/b/c", "/a"]);
    let shorter_first = routes(&["/a", "/a/b/c"]);
    assert_eq!(shorter_last.find("/a/b/c/d"), Some(0));
    assert_eq!(shorter_first.find("/a/b/c/d"), Some(1));
    assert_eq!(shorter_first.find("/a/b"), Some(0));

    // A ^~ that is not the longest prefix does not stop the regexes.
    let not_longest = routes(&["^~ /a", "/a/b", r"~ \.js$"]);
    assert_eq!(not_longest.find("/a/b/x.js"), Some(2));
    assert_eq!(not_longest.find("/a/x.js"), Some(0));

    let none = routes(&["= /only", "/api", r"~ ^/ws$"]);
    for path in ["/", "/other", "/onlyx", "/ws/", "/Only"] {
        assert_eq!(none.find(path), None, "{path}");
    }
    assert_eq!(none.find("/ws"), Some(2));
    assert_eq!(routes(&[]).find("/"), None);
}

#[test]
fn host_name_normalises() {
    let cases: [(&[u8], Option<&str>); 27] = [
        (b"example.com", Some("example.com")),
        (b"Example.COM", Some("example.com")),
        (b"example.com:8080", Some("example.com")),
        (b"example.com.", Some("example.com")),
        (b"example.com.:443", Some("example.com")),
        (b" example.com\t", Some("example.com")),
        (b"localhost", Some("localhost")),
        (b"127.0.0.1:80", Some("127.0.0.1")),
        (b"[::1]:8080", Some("[::1]")),
        (b"[::1]", Some("[::1]")),
        (b"[2001:DB8::1]", Some("[2001:db8::1]")),
        (b"my_host-1.internal", Some("my_host-1.internal")),
        (b"", None),
        (b".", None),
        (b":80", None),
        (b"example.com:", None),
        (b"example.com:65536", None),
        (b"example.com:123456", None),
        (b"example.com:+80", None),
        (b"example.com:80:80", None),
        (b"exa mple.com", None),
        (b"example.com/path", None),
        (b"user@example.com", None),
        (b"ex\xc3\xa4mple.com", None),
        (b"a..b", None),
        (b"::1", None),
        (b"[::1", None),
    ];
    for (value, expected) in cases {
        let got = host_name(value);
        assert_eq!(
            got.as_deref(),
            expected,
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
    assert!(matches!(
        host_name(b"example.com:80"),
        Some(Cow::Borrowed(_))
    ));
    assert!(matches!(host_name(b"Example.com"), Some(Cow::Owned(_))));
}

#[test]
fn server_name_parses() {
    let cases = [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("*.Example.com", "*.example.com"),
        ("*.a.b.example.com", "*.a.b.example.com"),
        ("localhost", "localhost"),
        ("_", "_"),
        ("[::1]", "[::1]"),
        ("10.0.0.1", "10.0.0.1"),
    ];
    for (text, shown) in cases {
        let name = ServerName::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(name.to_string(), shown, "{text:?}");
    }
    assert_eq!(
        ServerName::parse("*.example.com").unwrap(),
        ServerName::Wildcard {
            suffix: ".example.com".into()
        }
    );
}

#[test]
fn server_name_rejects_with_one_line_advice() {
    let cases = [
        ("", "empty"),
        ("example.com www.example.com", "without spaces"),
        ("example.com:8080", "no port"),
        ("::1", "brackets"),
        ("www.*.com", "leading \"*.\""),
        ("example.*", "leading \"*.\""),
        ("*", "leading \"*.\""),
        ("*.", "a server_name is"),
        ("*example.com", "leading \"*.\""),
        (".example.com", "\"*.example.com\""),
        ("~^(www\\.", "not a valid regex"),
        ("a/b", "a server_name is"),
        ("a..b", "a server_name is"),
        ("*.[::1]", "a server_name is"),
    ];
    for (text, expected) in cases {
        let err = ServerName::parse(text).unwrap_err();
        assert!(err.contains(expected), "{text:?}: {err}");
        assert!(!err.contains('\n'), "{text:?}: {err}");
    }
}

#[test]
fn virtual_hosts_follow_nginx_precedence() {
    let names = |list: &[&str]| -> Vec<ServerName> {
        list.iter().map(|n| ServerName::parse(n).unwrap()).collect()
    };
    let hosts = VirtualHosts::new(
        vec![
            (names(&["*.example.com"]), 10),
            (names(&["api.example.com", "example.com"]), 11),
            (names(&["*.eu.example.com"]), 12),
            (names(&["*.api.example.com"]), 13),
            (names(&["example.com", "other.org"]), 14), // duplicate: the first keeps it
            (names(&["~^(www\\.)?shop\\d+\\.net$"]), 15),
            (names(&["~^(www\\.)?shop1\\.net$", "~^api\\."]), 16),
        ],
        99,
    );
    let cases = [
        ("api.example.com", 11), // exact beats wildcard
        ("example.com", 11),     // not matched by *.example.com
        ("www.example.com", 10),
        ("a.b.c.example.com", 10), // any depth
        ("x.eu.example.com", 12),  // longest wildcard, though configured later
        ("v1.api.example.com", 13),
        ("eu.example.com", 10),
        ("other.org", 14),
        ("unknown.net", 99), // default
        ("", 99),
        ("xexample.com", 99),
        ("shop1.net", 15), // the first regex that matches
        ("www.shop22.net", 15),
        ("api.example.com", 11), // exact beats a regex
        ("api.other.net", 16),
        ("api.x.example.com", 10), // a wildcard beats a regex
    ];
    for (host, site) in cases {
        assert_eq!(hosts.find(host), site, "{host}");
    }
}

#[test]
fn server_name_matches_ignoring_case() {
    let wildcard = ServerName::parse("*.example.com").unwrap();
    let exact = ServerName::parse("example.com").unwrap();
    let cases = [
        ("a.example.com", true, false),
        ("A.Example.COM", true, false),
        ("example.com", false, true),
        ("EXAMPLE.com", false, true),
        (".example.com", false, false),
        ("badexample.com", false, false),
    ];
    for (host, wild, ex) in cases {
        assert_eq!(wildcard.matches(host), wild, "{host}");
        assert_eq!(exact.matches(host), ex, "{host}");
    }
}

#[test]
fn rewrite_replaces_the_path_and_keeps_the_query() {
    let cases = [
        // (pattern, replacement, target, result)
        (
            r"^/(api)/(socket)/(.*)$",
            "/$2/$3",
            "/api/socket/test?x=1",
            Some("/socket/test?x=1"),
        ),
        (
            r"^/(api)/(socket)/(.*)$",
            "/$2/$3",
            "/api/socket/test",
            Some("/socket/test"),
        ),
        (
            r"^/(api)/(socket)/(.*)$",
            "/$2/$3",
            "/api/other/test?x=1",
            None,
        ),
        (
            r"^/v(\d)/(.*)$",
            "/$2/v$1abc",
            "/v2/users",
            Some("/users/v2abc"),
        ),
        (r"^/old", "/new", "/old/x?y", Some("/new?y")),
        // The whole path is replaced, not only the match.
        (r"foo", "/bar", "/a/foo/b", Some("/bar")),
        // Replacement with '?': the original query follows '&'.
        (r"^/p/(.*)$", "/q?id=$1", "/p/7?x=1", Some("/q?id=7&x=1")),
        (r"^/p/(.*)$", "/q?id=$1", "/p/7", Some("/q?id=7")),
        (r"^/p/(.*)$", "/q?id=$1", "/p/7?", Some("/q?id=7")),
        // Trailing '?': the original query is dropped.
        (r"^/p/(.*)$", "/q?id=$1?", "/p/7?x=1", Some("/q?id=7")),
        (r"^/p/(.*)$", "/q/$1?", "/p/7?x=1", Some("/q/7")),
        // The regex sees only the path.
        (r"x=1", "/never", "/p?x=1", None),
        (r"^/p$", "/p", "/p?x=1", None), // unchanged
        // An empty original query is kept as written.
        (r"^/a$", "/b", "/a?", Some("/b?")),
        (r"^(/.*)$", "$1/", "/a?k", Some("/a/?k")),
    ];
    for (pattern, replacement, target, expected) in cases {
        let edit = PathEdit::rewrite(pattern, replacement).unwrap();
        assert_eq!(
            edit.apply(target).unwrap().as_deref(),
            expected,
            "{pattern} {replacement} {target}"
        );
    }
}

#[test]
fn rewrite_rejects_bad_input_and_bad_results() {
    let construction = [
        ("(", "/x", "not a valid regex"),
        ("^/a", "http://other/", "starting with '/'"),
        ("^/a", "x", "starting with '/'"),
        ("^/a", "/a b", "without spaces"),
        ("^/a", "/$host", "capture number"),
        ("^/a", "/$0", "capture number"),
        ("^/a", "/x$", "capture number"),
        ("^/a", "/${1}", "capture number"),
    ];
    for (pattern, replacement, expected) in construction {
        let err = PathEdit::rewrite(pattern, replacement).unwrap_err();
        assert!(err.contains(expected), "{pattern} {replacement}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
    let results = [
        (r"^/(.*)$", "$1", "/x", "does not start with '/'"),
        (r"^/(.*)$", "$1", "/", "does not start with '/'"),
        (r"^/a(.*)$", "/b$1", "/a%20 x", "space"),
    ];
    for (pattern, replacement, target, expected) in results {
        let err = PathEdit::rewrite(pattern, replacement)
            .unwrap()
            .apply(target)
            .unwrap_err();
        assert!(err.contains(expected), "{target}: {err}");
    }
    let PathEdit::Rewrite { replacement, .. } = PathEdit::rewrite("^/(a)", "/$1abc$2").unwrap()
    else {
        unreachable!()
    };
    assert_eq!(replacement, "/${1}abc${2}");
}

#[test]
fn strip_prefix_removes_a_whole_segment() {
    let cases = [
        ("/api", "/api/x", Some("/x")),
        ("/api", "/api", Some("/")),
        ("/api", "/api?q=1", Some("/?q=1")),
        ("/api", "/api/x/y?q=1", Some("/x/y?q=1")),
        ("/api/", "/api/x", Some("/x")),
        ("/api/", "/api", Some("/")),
        ("/api", "/apix", None),
        ("/api", "/other/api/x", None),
        ("/api", "/", None),
        ("/api", "/API/x", None),
        ("/a/b", "/a/b/c", Some("/c")),
        ("/a/b", "/a/bc", None),
        ("/api", "/api//x", Some("//x")),
    ];
    for (prefix, target, expected) in cases {
        let edit = PathEdit::strip_prefix(prefix).unwrap();
        assert_eq!(
            edit.apply(target).unwrap().as_deref(),
            expected,
            "{prefix} {target}"
        );
    }
    for (prefix, expected) in [
        ("api", "starting with '/'"),
        ("", "starting with '/'"),
        ("/", "removes nothing"),
        ("//", "removes nothing"),
        ("/a?b", "plain path"),
        ("/a b", "plain path"),
    ] {
        let err = PathEdit::strip_prefix(prefix).unwrap_err();
        assert!(err.contains(expected), "{prefix:?}: {err}");
    }
}

#[test]
fn origins_allow_listed_schemes_hosts_and_ports() {
    let entries: Vec<String> = [
        "https://example.com",
        "https://*.example.com",
        "http://localhost:3000",
        "HTTPS://Upper.Example.ORG",
        "https://[::1]:8443",
        "chrome-extension://abcdef",
    ]
    .map(String::from)
    .into();
    let origins = Origins::new(&entries).unwrap();
    let cases: [(&[u8], bool); 24] = [
        (b"https://example.com", true),
        (b"HTTPS://EXAMPLE.COM", true),
        (b" https://example.com ", true),
        (b"http://example.com", false),      // scheme
        (b"https://example.com:443", false), // port must match exactly
        (b"https://app.example.com", true),
        (b"https://a.b.example.com", true),
        (b"https://badexample.com", false),
        (b"https://example.com.evil.net", false),
        (b"https://evil.net/example.com", false),
        (b"http://localhost:3000", true),
        (b"http://localhost", false),
        (b"http://localhost:3001", false),
        (b"https://upper.example.org", true),
        (b"https://[::1]:8443", true),
        (b"https://[::1]", false),
        (b"chrome-extension://abcdef", true),
        (b"null", false),
        (b"", false),
        (b"example.com", false),
        (b"https://example.com/", false),
        (b"https://user@example.com", false),
        (b"https://example.com:", false),
        (b"https://ex\xc3\xa4mple.com", false),
    ];
    for (origin, allowed) in cases {
        assert_eq!(
            origins.allows(origin),
            allowed,
            "{:?}",
            String::from_utf8_lossy(origin)
        );
    }

    let any = Origins::new(&["https://example.com".into(), "*".into()]).unwrap();
    for origin in [&b"null"[..], b"https://anything.net", b"garbage"] {
        assert!(any.allows(origin));
    }
    assert!(!Origins::new(&[]).unwrap().allows(b"https://example.com"));
}

#[test]
fn origins_reject_entries_with_one_line_advice() {
    let cases = [
        ("example.com", "scheme://host[:port]"),
        ("", "scheme://host[:port]"),
        ("null", "scheme://host[:port]"),
        ("://example.com", "scheme is missing"),
        ("1http://example.com", "scheme is missing"),
        ("https://example.com/", "write \"https://example.com\""),
        ("https://example.com/app", "write \"https://example.com\""),
        ("https://example.com?x", "no path"),
        ("https://", "host or port is invalid"),
        ("https://example.com:99999", "host or port is invalid"),
        ("https://user@example.com", "host or port is invalid"),
        ("https://*", "host or port is invalid"),
        ("https://www.*.com", "host or port is invalid"),
        ("https://example.com.", "host or port is invalid"),
        ("https://exa mple.com", "host or port is invalid"),
    ];
    for (entry, expected) in cases {
        let err = Origins::new(&[entry.to_string()]).unwrap_err();
        assert!(err.contains(expected), "{entry:?}: {err}");
        assert!(!err.contains('\n'), "{entry:?}: {err}");
    }
}

#[test]
fn rewrite_redirects_answer_only_what_matches() {
    /// (pattern, replacement, target, scheme, host, port, Location)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Option<u16>,
        Option<&'static str>,
    );
    let table: &[Case] = &[
        (
            r"^/old/(.*)$",
            "/new/$1",
            "/old/a/b",
            "http",
            "h",
            Some(80),
            Some("http://h/new/a/b"),
        ),
        (
            r"^/old/(.*)$",
            "/new/$1",
            "/old/a?x=1",
            "http",
            "h",
            Some(8080),
            Some("http://h:8080/new/a?x=1"),
        ),
        (
            r"^/old/(.*)$",
            "/new/$1",
            "/old/a",
            "https",
            "h",
            Some(443),
            Some("https://h/new/a"),
        ),
        (
            r"^/old/(.*)$",
            "/new/$1",
            "/old/a",
            "https",
            "h",
            Some(80),
            Some("https://h:80/new/a"),
        ),
        (
            r"^/old/(.*)$",
            "/new/$1",
            "/old/a",
            "http",
            "h",
            None,
            Some("http://h/new/a"),
        ),
        (
            r"^/old/(.*)$",
            "/new/$1",
            "/old/a",
            "http",
            "",
            Some(80),
            Some("/new/a"),
        ),
        (
            r"^/old/(.*)$",
            "/new/$1",
            "/other?x=1",
            "http",
            "h",
            Some(80),
            None,
        ),
        (
            r"^/old/(.*)$",
            "/new/$1?",
            "/old/a?x=1",
            "http",
            "h",
            Some(80),
            Some("http://h/new/a"),
        ),
        (
            r"^/old/(.*)$",
            "/new?p=$1",
            "/old/a?x=1",
            "http",
            "h",
            Some(80),
            Some("http://h/new?p=a&x=1"),
        ),
        (
            r"^/go/(\w+)$",
            "https://example.com/$1",
            "/go/abc?q=2",
            "http",
            "h",
            Some(80),
            Some("https://example.com/abc?q=2"),
        ),
        (
            r"^/go/(\w+)$",
            "https://example.com/$1?",
            "/go/abc?q=2",
            "http",
            "h",
            Some(80),
            Some("https://example.com/abc"),
        ),
    ];
    for &(pattern, replacement, target, scheme, host, port, want) in table {
        let rule = RewriteRedirect::new(pattern, replacement, 301).unwrap();
        assert_eq!(
            rule.location(target, scheme, host, port).as_deref(),
            want,
            "{pattern} {replacement} {target}"
        );
    }
}

#[test]
fn rewrite_redirects_refuse_what_cannot_be_a_location() {
    let table = [
        ("(", "/x", 301, "not a valid regex"),
        ("^/a", "/x", 307, "301 (nginx's permanent) or 302"),
        ("^/a", "x", 302, "starting with '/' or to an http://"),
        ("^/a", "ftp://h/", 302, "starting with '/' or to an http://"),
        ("^/a", "/a b", 302, "without spaces"),
        ("^/a", "/$host", 302, "capture number"),
    ];
    for (pattern, replacement, status, want) in table {
        let err = RewriteRedirect::new(pattern, replacement, status).unwrap_err();
        assert!(
            err.contains(want),
            "{pattern} {replacement} {status}: {err}"
        );
    }
}
