//! `server` blocks → listeners and `[[server]]` sections: `listen`
//! (merged per address, TLS from the servers on it), `server_name`, the
//! port-80 server that only redirects to HTTPS, and TLS settings. Each
//! server's locations are `location.rs`'s.

use super::emit::{Section, Value};
use super::grammar::{Directive, Place};
use super::inherit::{self, Inherited};
use super::location::Rewritten;
use super::translate::Translator;
use super::values;

/// One listening address, gathered from every server that listens on it.
pub(super) struct ListenerPlan {
    pub(super) address: String,
    pub(super) at: Place,
    pub(super) ssl: bool,
    pub(super) proxy_protocol: bool,
    /// `listen … http2` or `http2 on` in a server on it.
    pub(super) http2: bool,
    /// A redirect-only server owns it: the HTTPS port if not 443.
    pub(super) redirect: Option<Option<u16>>,
    pub(super) serves_sites: bool,
    pub(super) certs: Vec<(String, String)>,
    /// `protocols`, `session_cache`, `session_tickets`, from the first
    /// TLS server on it.
    pub(super) tls: Vec<(String, Value)>,
}

impl ListenerPlan {
    pub(super) fn sections(&self) -> Vec<Section> {
        let mut s = Section::new(
            "[[listener]]",
            Some((self.at.clone(), format!("listen {}", self.address))),
        );
        s.set("address", Value::str(&self.address));
        if let Some(port) = self.redirect {
            s.set("redirect_https", Value::Bool(true));
            if let Some(port) = port {
                s.set("redirect_port", Value::Int(i64::from(port)));
            }
        }
        if self.proxy_protocol {
            s.set("proxy_protocol", Value::Bool(true));
        }
        if self.http2 && self.ssl && !self.certs.is_empty() {
            s.set("http2", Value::Bool(true));
        }
        if self.ssl && !self.certs.is_empty() {
            let mut tls = Vec::new();
            if let [(cert, key)] = self.certs.as_slice() {
                tls.push(("cert".to_string(), Value::str(cert)));
                tls.push(("key".to_string(), Value::str(key)));
            } else {
                let list = self
                    .certs
                    .iter()
                    .map(|(c, k)| {
                        vec![
                            ("cert".to_string(), Value::str(c)),
                            ("key".to_string(), Value::str(k)),
                        ]
                    })
                    .collect();
                tls.push(("certificates".to_string(), Value::Tables(list)));
            }
            tls.extend(self.tls.iter().cloned());
            s.set("tls", Value::Inline(tls));
        }
        vec![s]
    }
}

/// OpenSSL's names of the TLS 1.2 suites rustls offers, and theirs.
const OPENSSL_SUITES: [(&str, &str); 6] = [
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// The TLS 1.3 suites, which nginx's `ssl_ciphers` leaves alone.
const TLS13_SUITES: [&str; 3] = [
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_CHACHA20_POLY1305_SHA256",
];

/// One `listen` directive, read.
struct Listen {
    address: String,
    ssl: bool,
    proxy_protocol: bool,
    http2: bool,
    default: bool,
    at: Place,
}

/// What a server-level `return` does with every request.
enum ServerReturn {
    /// `308 https://$host$request_uri`: the listener's own redirect.
    Https { port: Option<u16> },
    /// Any other: a route for every path.
    Route { at: Directive },
}

impl Translator {
    pub(super) fn server(&mut self, d: &Directive, http: &Inherited) {
        let inherited = http.enter(d.children());
        let mut listens = Vec::new();
        let mut names = Vec::new();
        let mut redirect = None;
        let mut locations = Vec::new();
        let mut rewrites = Vec::new();
        let mut ssl_on = false;
        let mut http2_on = false;
        for c in d.children() {
            match c.name.as_str() {
                "listen" => listens.extend(self.listen(c)),
                "server_name" => names.extend(self.server_names(c)),
                "location" => locations.push(c),
                // Taken by the route for what no location matches.
                "try_files" => {}
                "return" => redirect = self.server_return(c),
                "rewrite" => rewrites.push(c),
                "ssl" => {
                    ssl_on = c.words() == ["on"];
                    self.notes.note(
                        &c.at,
                        "ssl",
                        "the old `ssl on` form: every listen of this server is TLS",
                    );
                }
                "http2" => http2_on = c.words() == ["on"],
                "limit_conn" => self.limit_conn(c, "server"),
                "proxy_pass" => self.notes.error(
                    &c.at,
                    "proxy_pass",
                    "proxy_pass belongs in a location: wrap it in location / { … }",
                ),
                name if inherit::is_inherited(name) || name == "allow" || name == "deny" => {
                    self.level_note(c)
                }
                _ => self.dropped_or_refused(c),
            }
        }
        if listens.is_empty() {
            listens.push(Listen {
                address: "0.0.0.0:80".into(),
                ssl: false,
                proxy_protocol: false,
                http2: false,
                default: false,
                at: d.at.clone(),
            });
        }
        if ssl_on {
            for l in &mut listens {
                l.ssl = true;
            }
        }
        if http2_on {
            for l in &mut listens {
                l.http2 = true;
            }
        }
        for l in listens.iter().filter(|l| l.http2 && !l.ssl) {
            self.notes.note(
                &l.at,
                "http2",
                "HTTP/2 without TLS (h2c) dropped: browsers speak HTTP/2 over TLS only, and so does the proxy",
            );
        }
        if let (Some(_), Some(r)) = (&redirect, rewrites.first()) {
            self.notes.error(
                &r.at,
                "rewrite",
                "a rewrite beside the server's return is not supported: keep the one that answers",
            );
            rewrites.clear();
        }
        let https = matches!(redirect, Some(ServerReturn::Https { .. }));
        let addresses = self.place_listens(&listens, &inherited, https);
        if redirect.is_some() {
            for loc in &locations {
                self.notes.note(
                    &loc.at,
                    "location",
                    "dropped (the server's return answers every request before a location is chosen)",
                );
            }
        }
        if let Some(ServerReturn::Https { port }) = redirect {
            for l in &mut self.listeners {
                if addresses.contains(&l.address) {
                    l.redirect = Some(port);
                }
            }
            return;
        }
        let mut server = Section::new("[[server]]", Some((d.at.clone(), "server".into())));
        if !names.is_empty() {
            server.set("names", Value::Strs(names.clone()));
        }
        server.set("listen", Value::Strs(addresses));
        if listens.iter().any(|l| l.default) {
            server.set("default", Value::Bool(true));
        }
        self.response_headers(
            inherited.list("add_header"),
            "response_headers",
            &mut server,
        );
        self.response_headers(
            inherited.list("proxy_hide_header"),
            "hide_headers",
            &mut server,
        );
        let port = listens.first().and_then(|l| values::port_of(&l.address));
        let context = super::location::ServerContext {
            names,
            port,
            named: locations
                .iter()
                .filter(|l| l.args.first().is_some_and(|a| a.text.starts_with('@')))
                .map(|l| (*l).clone())
                .collect(),
            locations: locations
                .iter()
                .map(|l| l.words().iter().map(|w| w.to_string()).collect())
                .collect(),
        };
        let mut sections = vec![server];
        if let Some(ServerReturn::Route { at }) = redirect {
            let mut route = Section::new(
                "[[server.route]]",
                Some((at.at.clone(), format!("return {}", at.words().join(" ")))),
            );
            route.set("location", Value::str("/"));
            if let Some((key, value)) = self.location_return(&at, &context) {
                route.set(key, value);
            }
            sections.push(route);
        } else {
            for loc in &locations {
                sections.extend(self.location(loc, &inherited, &context));
            }
            // What no location matches, nginx serves from the root (with
            // the server's own try_files).
            let catch_all = locations
                .iter()
                .any(|l| matches!(l.words().as_slice(), ["/"] | ["^~", "/"]));
            if !catch_all {
                match self.implicit_root(d, &inherited, &context) {
                    Some(root) => sections.push(root),
                    // nginx answers 404, after the server's rewrites.
                    None if !rewrites.is_empty() => {
                        let mut route = Section::new(
                            "[[server.route]]",
                            Some((d.at.clone(), "server (what no location matches)".into())),
                        );
                        route.set("location", Value::str("/"));
                        route.set("status", Value::Int(404));
                        sections.push(route);
                    }
                    None => {}
                }
            }
        }
        self.server_rewrite(&rewrites, &mut sections[1..]);
        self.servers.push(sections);
    }

    /// A server's `rewrite … redirect|permanent`, which nginx applies
    /// before it chooses a location: every route of the server gets it.
    /// `break` and `last` go on to a location chosen by the new path,
    /// which a route cannot express.
    fn server_rewrite(&mut self, rewrites: &[&Directive], routes: &mut [Section]) {
        let Some(first) = rewrites.first() else {
            return;
        };
        let redirect = match self.rewrite(rewrites, None) {
            Some(Rewritten::Redirect(redirect)) => redirect,
            Some(Rewritten::Path(_)) => {
                self.notes.error(
                    &first.at,
                    "rewrite",
                    "a rewrite … break outside a location is not supported (nginx then chooses the location by the new path): \
                     move it into the location it serves",
                );
                return;
            }
            None => return,
        };
        for route in routes {
            if route.keys.iter().any(|(k, _)| k == "rewrite") {
                let location = route
                    .from
                    .as_ref()
                    .map_or("a location", |(_, what)| what.as_str());
                self.notes.error(
                    &first.at,
                    "rewrite",
                    format!(
                        "the server's redirecting rewrite cannot join `{location}`, which has its own rewrite \
                         (a route has one): move the redirect into the locations it serves"
                    ),
                );
                return;
            }
            route.set("rewrite", redirect.clone());
        }
    }

    /// What no location of a server matches, nginx serves from the
    /// server's root: a route `/` for it, when the root exists (when it
    /// does not, nginx answers 404, as the proxy does without a route).
    fn implicit_root(
        &mut self,
        d: &Directive,
        inherited: &Inherited,
        context: &super::location::ServerContext,
    ) -> Option<Section> {
        let root = inherited.word("root").unwrap_or("html").to_string();
        let dir = self.paths.under_prefix(&root);
        if !std::path::Path::new(&dir).is_dir() {
            return None;
        }
        let mut route = Section::new(
            "[[server.route]]",
            Some((
                d.at.clone(),
                "server (what no location matches: its root)".into(),
            )),
        );
        route.set("location", Value::str("/"));
        route.set("root", Value::Str(dir));
        let tries = d.children().iter().rev().find(|c| c.name == "try_files");
        let empty = Inherited::default();
        self.try_files(tries, inherited, &empty, context, &mut route);
        Some(route)
    }

    fn listen(&mut self, d: &Directive) -> Vec<Listen> {
        let words = d.words();
        let Some(first) = words.first() else {
            self.notes
                .error(&d.at, "listen", "needs an address or port");
            return Vec::new();
        };
        let address = match values::listen_address(first) {
            Ok(a) => a,
            Err(e) => {
                self.notes.error(&d.at, "listen", e);
                return Vec::new();
            }
        };
        let mut l = Listen {
            address,
            ssl: false,
            proxy_protocol: false,
            http2: false,
            default: false,
            at: d.at.clone(),
        };
        let mut dual = false;
        for opt in &words[1..] {
            let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
            match key {
                "ssl" => l.ssl = true,
                "proxy_protocol" => l.proxy_protocol = true,
                "default_server" | "default" => l.default = true,
                "reuseport" => {}
                "http2" => l.http2 = true,
                "ipv6only" if value == "off" && l.address.starts_with('[') => {
                    dual = true;
                    self.notes.note(
                        &d.at,
                        "listen",
                        "ipv6only=off: an IPv6 listener here takes IPv6 only, so the IPv4 address is listened on beside it",
                    );
                }
                "ipv6only" => {}
                "backlog" | "deferred" | "bind" | "fastopen" | "so_keepalive" | "rcvbuf"
                | "sndbuf" | "accept_filter" | "setfib" => self.notes.note(
                    &d.at,
                    "listen",
                    format!("{key} dropped (the proxy sets its own listen options)"),
                ),
                _ => self.notes.error(
                    &d.at,
                    "listen",
                    format!("option {opt:?} is not supported: remove it"),
                ),
            }
        }
        let mut out = Vec::new();
        if dual {
            if let Some(port) = values::port_of(&l.address) {
                out.push(Listen {
                    address: format!("0.0.0.0:{port}"),
                    ssl: l.ssl,
                    proxy_protocol: l.proxy_protocol,
                    http2: l.http2,
                    default: l.default,
                    at: l.at.clone(),
                });
            }
        }
        out.insert(0, l);
        out
    }

    /// Adds a server's listens to the listeners; their addresses.
    fn place_listens(
        &mut self,
        listens: &[Listen],
        inherited: &Inherited,
        redirects: bool,
    ) -> Vec<String> {
        let mut addresses = Vec::new();
        for l in listens {
            let at = match self.listeners.iter().position(|p| p.address == l.address) {
                Some(i) => {
                    let p = &self.listeners[i];
                    if p.ssl != l.ssl || p.proxy_protocol != l.proxy_protocol {
                        self.notes.error(
                            &l.at,
                            "listen",
                            format!(
                                "{} is listened on with other options at {}: give ssl and proxy_protocol the same on every listen of one address",
                                l.address, p.at
                            ),
                        );
                    }
                    // HTTP/2 is offered on the address if any server on it
                    // asks (ALPN comes before the server is chosen).
                    self.listeners[i].http2 |= l.http2;
                    i
                }
                None => {
                    self.listeners.push(ListenerPlan {
                        address: l.address.clone(),
                        at: l.at.clone(),
                        ssl: l.ssl,
                        proxy_protocol: l.proxy_protocol,
                        http2: l.http2,
                        redirect: None,
                        serves_sites: false,
                        certs: Vec::new(),
                        tls: Vec::new(),
                    });
                    self.listeners.len() - 1
                }
            };
            if redirects {
                if self.listeners[at].serves_sites {
                    self.notes.error(
                        &l.at,
                        "listen",
                        format!("{} serves other servers too: a listener either redirects everything to HTTPS or serves sites", l.address),
                    );
                }
            } else {
                if self.listeners[at].redirect.is_some() {
                    self.notes.error(
                        &l.at,
                        "listen",
                        format!("{} redirects everything to HTTPS for another server: a listener either redirects or serves sites", l.address),
                    );
                }
                self.listeners[at].serves_sites = true;
            }
            if l.ssl {
                self.listener_tls(at, l, inherited);
            }
            if !addresses.contains(&l.address) {
                addresses.push(l.address.clone());
            }
        }
        addresses
    }

    fn listener_tls(&mut self, at: usize, l: &Listen, inherited: &Inherited) {
        let certs = inherited.list("ssl_certificate");
        let keys = inherited.list("ssl_certificate_key");
        if certs.is_empty() || certs.len() != keys.len() {
            self.notes.error(
                &l.at,
                "listen",
                "ssl without ssl_certificate and ssl_certificate_key (one key per certificate): add them to this server or to http",
            );
            return;
        }
        for (c, k) in certs.iter().zip(keys) {
            let (Some(cert), Some(key)) = (c.args.first(), k.args.first()) else {
                continue;
            };
            if cert.text.contains('$') || key.text.starts_with("data:") {
                self.notes.error(
                    &c.at,
                    "ssl_certificate",
                    "certificates chosen by variables or given inline are not supported: name the files",
                );
                continue;
            }
            let pair = (
                self.paths.under_conf(&cert.text),
                self.paths.under_conf(&key.text),
            );
            if !self.listeners[at].certs.contains(&pair) {
                self.listeners[at].certs.push(pair);
            }
        }
        if !self.listeners[at].tls.is_empty() {
            return;
        }
        let mut tls = Vec::new();
        if let Some(d) = inherited.get("ssl_protocols") {
            let mut kept = Vec::new();
            for w in d.words() {
                match w {
                    "TLSv1.2" | "TLSv1.3" => kept.push(w.to_string()),
                    "TLSv1" | "TLSv1.1" | "SSLv2" | "SSLv3" => self.notes.note(
                        &d.at,
                        "ssl_protocols",
                        format!("{w} dropped (refused by the proxy: RFC 8996 deprecates it)"),
                    ),
                    other => self.notes.error(
                        &d.at,
                        "ssl_protocols",
                        format!("unknown protocol {other:?}: use TLSv1.2 and TLSv1.3"),
                    ),
                }
            }
            if kept.is_empty() {
                self.notes.error(
                    &d.at,
                    "ssl_protocols",
                    "no protocol the proxy speaks is left: add TLSv1.2 and TLSv1.3",
                );
            } else {
                tls.push(("protocols".to_string(), Value::Strs(kept)));
            }
        }
        if let Some(d) = inherited.get("ssl_ciphers") {
            if let Some(ciphers) = self.ciphers(d, &tls) {
                tls.push(("ciphers".to_string(), Value::Strs(ciphers)));
            }
        }
        if let Some(d) = inherited.get("ssl_session_cache") {
            let mut entries = None;
            for w in d.words() {
                if w == "off" || w == "none" {
                    entries = Some(0);
                } else if let Some(n) = w.strip_prefix("builtin") {
                    entries = Some(
                        n.strip_prefix(':')
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(20480),
                    );
                } else if let Some(size) =
                    w.strip_prefix("shared:").and_then(|s| s.split(':').nth(1))
                {
                    // nginx: one megabyte holds about 4000 sessions.
                    match values::size(size) {
                        Some(bytes) => entries = Some((bytes / (1 << 20) * 4000).max(4000) as i64),
                        None => self
                            .notes
                            .error(&d.at, "ssl_session_cache", "unreadable size"),
                    }
                }
            }
            if let Some(n) = entries {
                tls.push(("session_cache".to_string(), Value::Int(n)));
                if n > 0 {
                    self.notes.note(
                        &d.at,
                        "ssl_session_cache",
                        format!("{n} sessions, per worker rather than shared between them"),
                    );
                }
            }
        }
        if let Some(d) = inherited.get("ssl_session_tickets") {
            tls.push((
                "session_tickets".to_string(),
                Value::Bool(d.words() == ["on"]),
            ));
        }
        self.listeners[at].tls = tls;
    }

    /// `ssl_ciphers` as rustls suites, when it lists suites by name: the
    /// AEAD ones rustls offers are kept (and the TLS 1.3 suites, which
    /// nginx's list does not touch); a list of keywords (`HIGH:!aNULL`)
    /// leaves rustls's own choice.
    fn ciphers(&mut self, d: &Directive, tls: &[(String, Value)]) -> Option<Vec<String>> {
        let list = d.args.first()?.text.clone();
        let tokens: Vec<&str> = list
            .split([':', ' ', ','])
            .filter(|t| !t.is_empty())
            .collect();
        let named = |t: &&str| {
            t.contains('-') && !t.starts_with(['!', '-', '+', '@']) || t.starts_with("TLS_")
        };
        if tokens.is_empty() || !tokens.iter().all(named) {
            self.notes.note(
                &d.at,
                "ssl_ciphers",
                "dropped (a list of keywords: rustls offers its own modern AEAD suites)",
            );
            return None;
        }
        let mut kept = Vec::new();
        let mut dropped = Vec::new();
        for t in tokens {
            match OPENSSL_SUITES.iter().find(|(openssl, _)| *openssl == t) {
                Some((_, iana)) => kept.push(iana.to_string()),
                None if t.starts_with("TLS_") => {}
                None => dropped.push(t),
            }
        }
        if !dropped.is_empty() {
            self.notes.note(
                &d.at,
                "ssl_ciphers",
                format!(
                    "{} dropped (rustls does not offer them)",
                    dropped.join(", ")
                ),
            );
        }
        if kept.is_empty() {
            return None;
        }
        let tls13 = match tls.iter().find(|(k, _)| k == "protocols") {
            Some((_, Value::Strs(p))) => p.iter().any(|v| v == "TLSv1.3"),
            _ => true,
        };
        if tls13 {
            kept.extend(TLS13_SUITES.iter().map(|s| s.to_string()));
        }
        Some(kept)
    }

    fn server_names(&mut self, d: &Directive) -> Vec<String> {
        let mut names = Vec::new();
        for w in d.words() {
            match w {
                "" | "_" => {}
                w if w.starts_with('~') => names.push(w.to_string()),
                w if w.starts_with('.') => {
                    names.push(w[1..].to_string());
                    names.push(format!("*{w}"));
                }
                w if w.ends_with(".*") || w.contains('$') => self.notes.error(
                    &d.at,
                    "server_name",
                    format!("{w}: only exact names and leading *. wildcards are supported: list the names"),
                ),
                w => names.push(w.to_string()),
            }
        }
        names
    }

    /// A server-level `return`: `308 https://$host$request_uri` (with a
    /// port or not) is the listener's `redirect_https`; any other is a
    /// route answering every request.
    fn server_return(&mut self, d: &Directive) -> Option<ServerReturn> {
        let words = d.words();
        if let ["308", url] = words.as_slice() {
            let https = url
                .strip_prefix("https://$host")
                .and_then(|rest| rest.strip_suffix("$request_uri"));
            match https {
                Some("") => return Some(ServerReturn::Https { port: None }),
                Some(port) => {
                    if let Some(Ok(port)) = port.strip_prefix(':').map(str::parse::<u16>) {
                        return Some(ServerReturn::Https {
                            port: Some(port).filter(|&p| p != 443),
                        });
                    }
                }
                None => {}
            }
        }
        Some(ServerReturn::Route { at: d.clone() })
    }
}
