//! The translation's driver and the `http`-wide parts: the main and
//! `events` contexts, `http`'s global settings, `upstream` blocks and
//! `map`s. Servers and their locations are `site.rs`'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::emit::{Section, Toml, Value};
use super::grammar::{Directive, Place};
use super::inherit::{self, Inherited};
use super::notes::Notes;
use super::values;

/// Where nginx resolves relative paths.
#[derive(Clone, Debug)]
pub struct Paths {
    /// `-p`: `root`, `access_log` and the default `html` root.
    pub prefix: PathBuf,
    /// The main file's directory: `include`, `ssl_certificate`.
    pub conf_dir: PathBuf,
}

impl Paths {
    pub fn under_prefix(&self, path: &str) -> String {
        absolute(&self.prefix, path)
    }

    pub fn under_conf(&self, path: &str) -> String {
        absolute(&self.conf_dir, path)
    }
}

fn absolute(base: &Path, path: &str) -> String {
    base.join(path).display().to_string()
}

/// An `upstream` block as it is being translated.
pub(super) struct Upstream {
    pub(super) name: String,
    pub(super) section: Section,
    /// The server addresses, `HOST:PORT` plus options.
    pub(super) servers: Vec<String>,
    /// Whether locations reach it over TLS, and the first that said so.
    pub(super) scheme: Option<(bool, Place)>,
    pub(super) tls: Option<Section>,
}

/// What `map` blocks define.
#[derive(Default)]
pub(super) struct Maps {
    /// Variables meaning "upgrade when the client asks, else close".
    pub(super) connection_upgrade: Vec<String>,
    /// Other maps' variables, where they are defined, and whether used.
    pub(super) other: HashMap<String, (Place, bool)>,
}

/// A setting every location should agree on because the proxy has one
/// for all of them.
#[derive(Default)]
pub(super) struct Agreed {
    pub(super) values: Vec<(Duration, Place, String)>,
}

impl Agreed {
    /// The value when all agree, else the first, with a note at each
    /// one that differs.
    fn settle(&self, notes: &mut Notes, what: &str) -> Option<Duration> {
        let (first, _, _) = self.values.first()?;
        for (d, at, name) in &self.values[1..] {
            if d != first {
                notes.note(
                    at,
                    name,
                    format!(
                        "{} here, but the proxy has one {what} for every route: {} (the first one written) applies",
                        values::duration_text(*d),
                        values::duration_text(*first)
                    ),
                );
            }
        }
        Some(*first)
    }
}

/// The whole translation's state.
pub(super) struct Translator {
    pub(super) paths: Paths,
    pub(super) notes: Notes,
    pub(super) toml: Toml,
    pub(super) timeouts: Section,
    pub(super) limits: Section,
    pub(super) upstreams: Vec<Upstream>,
    pub(super) maps: Maps,
    /// `limit_conn_zone` zones keyed by the client address.
    pub(super) per_ip_zones: Vec<String>,
    pub(super) read_timeouts: Agreed,
    pub(super) connect_timeouts: Agreed,
    /// Each proxying location's `proxy_bind` (none: without one).
    pub(super) binds: Vec<super::bind::Bind>,
    pub(super) per_ip: Option<(i64, Place)>,
    pub(super) trusted: Vec<String>,
    /// Said once: nginx's 60 s tunnel cut-off is not carried over.
    pub(super) said_default_read_timeout: bool,
    /// Said once: the forwarding fields always go upstream.
    pub(super) said_forwarding: bool,
    pub(super) listeners: Vec<super::site::ListenerPlan>,
    pub(super) servers: Vec<Vec<Section>>,
}

impl Translator {
    pub(super) fn new(paths: Paths) -> Translator {
        Translator {
            paths,
            notes: Notes::default(),
            toml: Toml::default(),
            timeouts: Section::new("[timeouts]", None),
            limits: Section::new("[limits]", None),
            upstreams: Vec::new(),
            maps: Maps::default(),
            per_ip_zones: Vec::new(),
            read_timeouts: Agreed::default(),
            connect_timeouts: Agreed::default(),
            binds: Vec::new(),
            per_ip: None,
            trusted: Vec::new(),
            said_default_read_timeout: false,
            said_forwarding: false,
            listeners: Vec::new(),
            servers: Vec::new(),
        }
    }

    /// The main context.
    pub(super) fn main(&mut self, tree: &[Directive]) {
        let mut http_seen = false;
        for d in tree {
            match d.name.as_str() {
                "worker_processes" => self.workers(d),
                "events" => {
                    for e in d.children() {
                        self.dropped_or_refused(e);
                    }
                }
                "http" if d.block.is_some() => {
                    if http_seen {
                        self.notes.error(
                            &d.at,
                            "http",
                            "a second http block: merge it into the first",
                        );
                        continue;
                    }
                    http_seen = true;
                    self.http(d.children());
                }
                "error_log" => self.notes.note(
                    &d.at,
                    "error_log",
                    "the proxy logs to stderr (journald keeps it under systemd)",
                ),
                _ => self.dropped_or_refused(d),
            }
        }
        if !http_seen {
            let at = tree.first().map(|d| d.at.clone()).unwrap_or_else(|| Place {
                file: std::sync::Arc::new(PathBuf::from("nginx.conf")),
                line: 1,
                column: 1,
            });
            self.notes.error(
                &at,
                "http",
                "no http block: there is nothing to proxy (add http { server { … } })",
            );
        }
    }

    /// A directive no context here handles: noted when it needs nothing,
    /// refused otherwise.
    pub(super) fn dropped_or_refused(&mut self, d: &Directive) {
        if let Some(why) = inherit::unnecessary(&d.name) {
            self.notes.note(&d.at, &d.name, format!("dropped ({why})"));
        } else if let Some(what) = inherit::unsupported(&d.name) {
            self.notes.error(&d.at, &d.name, what);
        } else {
            self.notes.error(
                &d.at,
                &d.name,
                "not understood in this context: remove it, or run this part with nginx",
            );
        }
    }

    fn workers(&mut self, d: &Directive) {
        match d.words().as_slice() {
            ["auto"] => self.toml.top.set("workers", Value::str("auto")),
            [n] => match n.parse::<i64>() {
                Ok(n) if n >= 1 => self.toml.top.set("workers", Value::Int(n)),
                _ => self.notes.error(
                    &d.at,
                    "worker_processes",
                    "takes \"auto\" or a number of workers",
                ),
            },
            _ => self.notes.error(
                &d.at,
                "worker_processes",
                "takes \"auto\" or a number of workers",
            ),
        }
    }

    fn http(&mut self, children: &[Directive]) {
        for d in children {
            match d.name.as_str() {
                "map" => self.map(d),
                "upstream" => self.upstream(d),
                "limit_conn_zone" => self.limit_conn_zone(d),
                "set_real_ip_from" => self.real_ip_from(d),
                "real_ip_header" => self.real_ip_header(d),
                _ => {}
            }
        }
        let inherited = Inherited::default().enter(children);
        for d in children {
            match d.name.as_str() {
                "map" | "upstream" | "limit_conn_zone" | "set_real_ip_from" | "real_ip_header" => {}
                "server" if d.block.is_some() => self.server(d, &inherited),
                "keepalive_timeout" => self.keepalive_timeout(d),
                "keepalive_requests" => match d.words().as_slice() {
                    [n] if n.parse::<i64>().is_ok_and(|n| n >= 1) => self.toml.top.set(
                        "keepalive_requests",
                        Value::Int(n.parse().expect("checked as a number")),
                    ),
                    _ => self
                        .notes
                        .error(&d.at, &d.name, "takes a number of requests"),
                },
                "access_log" => self.access_log(d),
                name if inherit::is_inherited(name) => self.level_note(d),
                _ => self.dropped_or_refused(d),
            }
        }
        self.finish_http();
    }

    /// Notes for inherited directives whose meaning changes, made where
    /// they are written.
    pub(super) fn level_note(&mut self, d: &Directive) {
        let why = match d.name.as_str() {
            "client_max_body_size" => "dropped (request bodies pass without a size limit)",
            "charset" => "dropped (static files are sent without a charset parameter)",
            "proxy_send_timeout" => "dropped (a tunnel's idle timeout counts bytes either way)",
            "ssl_session_timeout" => "dropped (rustls keeps its own session lifetime)",
            "error_log" => "the proxy logs to stderr (journald keeps it under systemd)",
            "real_ip_recursive" => {
                "the proxy always takes the rightmost untrusted address (real_ip_recursive on)"
            }
            "proxy_ssl_session_reuse" | "proxy_ssl_verify_depth" | "proxy_ssl_ciphers" => {
                "dropped (rustls's own settings)"
            }
            _ => return,
        };
        self.notes.note(&d.at, &d.name, why);
    }

    fn keepalive_timeout(&mut self, d: &Directive) {
        let words = d.words();
        match words.first().and_then(|w| values::duration(w)) {
            Some(t) => {
                self.toml
                    .top
                    .set("keepalive_timeout", Value::str(values::duration_text(t)));
                if words.len() > 1 {
                    self.notes.note(
                        &d.at,
                        "keepalive_timeout",
                        "its second value (the Keep-Alive header's timeout) is dropped: the proxy sends no Keep-Alive field",
                    );
                }
            }
            None => self
                .notes
                .error(&d.at, "keepalive_timeout", "takes a time such as 75s"),
        }
    }

    fn access_log(&mut self, d: &Directive) {
        let words = d.words();
        match words.as_slice() {
            ["off"] => self.toml.top.set("access_log", Value::str("off")),
            [path, rest @ ..] if !path.starts_with("syslog:") => {
                self.toml
                    .top
                    .set("access_log", Value::str(self.paths.under_prefix(path)));
                let format = rest.first().copied().unwrap_or("combined");
                self.notes.note(
                    &d.at,
                    "access_log",
                    format!(
                        "lines are in the proxy's own text format, not the {format:?} log_format (access_log_format = \"json\" for JSON)"
                    ),
                );
            }
            _ => self.notes.error(
                &d.at,
                "access_log",
                "only a file or off is supported: write to a file and ship it from there",
            ),
        }
    }

    fn real_ip_from(&mut self, d: &Directive) {
        match d.words().as_slice() {
            [cidr] if !cidr.starts_with("unix:") => self.trusted.push(cidr.to_string()),
            _ => self.notes.error(
                &d.at,
                "set_real_ip_from",
                "takes one address or CIDR range (unix: is not supported)",
            ),
        }
    }

    fn real_ip_header(&mut self, d: &Directive) {
        match d.words().as_slice() {
            ["X-Forwarded-For" | "x-forwarded-for"] => {}
            ["proxy_protocol"] => self.notes.note(
                &d.at,
                "real_ip_header",
                "the client named by the PROXY protocol header is used wherever the listener has proxy_protocol",
            ),
            _ => self.notes.note(
                &d.at,
                "real_ip_header",
                "the proxy reads the client address from X-Forwarded-For sent by set_real_ip_from peers",
            ),
        }
    }

    fn limit_conn_zone(&mut self, d: &Directive) {
        let words = d.words();
        let zone = words
            .iter()
            .find_map(|w| w.strip_prefix("zone="))
            .and_then(|z| z.split(':').next());
        match (words.first(), zone) {
            (Some(&("$binary_remote_addr" | "$remote_addr")), Some(zone)) => {
                self.per_ip_zones.push(zone.to_string())
            }
            _ => self.notes.note(
                &d.at,
                "limit_conn_zone",
                "only zones keyed by $binary_remote_addr are understood (a per-address limit); limit_conn on this zone is refused",
            ),
        }
    }

    /// `limit_conn ZONE N` in force somewhere: the proxy's per-address
    /// limit, which holds for the whole proxy.
    pub(super) fn limit_conn(&mut self, d: &Directive, place: &str) {
        let words = d.words();
        let (Some(zone), Some(Ok(n))) = (words.first(), words.get(1).map(|n| n.parse::<i64>()))
        else {
            self.notes
                .error(&d.at, "limit_conn", "takes a zone and a number");
            return;
        };
        if !self.per_ip_zones.iter().any(|z| z == zone) {
            self.notes.error(
                &d.at,
                "limit_conn",
                format!("zone {zone} is not keyed by $binary_remote_addr: only per-address limits are supported"),
            );
            return;
        }
        match &self.per_ip {
            None => {
                if place != "http" {
                    self.notes.note(
                        &d.at,
                        "limit_conn",
                        format!("written in a {place}, but [limits] max_connections_per_ip holds for the whole proxy"),
                    );
                }
                self.per_ip = Some((n, d.at.clone()));
            }
            Some((m, _)) if *m == n => {}
            Some((m, _)) => self.notes.note(
                &d.at,
                "limit_conn",
                format!("{n} here, but the proxy has one per-address limit: {m} (the first written) applies"),
            ),
        }
    }

    /// Global settings settled once every server is done.
    fn finish_http(&mut self) {
        // Each route has its own tunnel idle timeout; the wait for an
        // answer is one for all of them.
        if let Some(t) = self
            .read_timeouts
            .settle(&mut self.notes, "response timeout")
        {
            self.timeouts
                .set("response", Value::str(values::duration_text(t)));
        }
        if let Some(t) = self
            .connect_timeouts
            .settle(&mut self.notes, "connect timeout")
        {
            self.timeouts
                .set("connect", Value::str(values::duration_text(t)));
        }
        self.settle_binds();
        if let Some((n, _)) = self.per_ip {
            self.limits.set("max_connections_per_ip", Value::Int(n));
        }
        if !self.trusted.is_empty() {
            self.toml
                .top
                .set("trusted_proxies", Value::Strs(self.trusted.clone()));
        }
        for (name, (at, used)) in &self.maps.other {
            if !*used {
                self.notes.note(
                    at,
                    "map",
                    format!("dropped (nothing the proxy carries over uses ${name})"),
                );
            }
        }
    }

    fn map(&mut self, d: &Directive) {
        let words = d.words();
        let [source, target] = words.as_slice() else {
            self.notes
                .error(&d.at, "map", "takes a source and a $variable");
            return;
        };
        let Some(name) = target.strip_prefix('$') else {
            self.notes
                .error(&d.at, "map", "its second argument is a $variable");
            return;
        };
        let mut default = None;
        let mut empty = None;
        let mut others = 0;
        for entry in d.children() {
            let w = entry.words();
            match (entry.name.as_str(), w.as_slice()) {
                ("default", [v]) => default = Some(v.to_ascii_lowercase()),
                ("", [v]) => empty = Some(v.to_ascii_lowercase()),
                ("hostnames" | "volatile", []) => {}
                _ => others += 1,
            }
        }
        let idiom = *source == "$http_upgrade"
            && others == 0
            && default.as_deref() == Some("upgrade")
            && matches!(empty.as_deref(), Some("close" | ""));
        if idiom {
            self.maps.connection_upgrade.push(name.to_string());
        } else {
            self.maps
                .other
                .insert(name.to_string(), (d.at.clone(), false));
        }
    }

    fn upstream(&mut self, d: &Directive) {
        let Some(name) = d.args.first().map(|a| a.text.clone()) else {
            self.notes.error(&d.at, "upstream", "needs a name");
            return;
        };
        let mut section = Section::new(
            format!("[upstream.{}]", super::emit::quote_key(&name)),
            Some((d.at.clone(), format!("upstream {name}"))),
        );
        let mut servers = Vec::new();
        let mut fails: Vec<(i64, Place)> = Vec::new();
        let mut fail_timeouts: Vec<(Duration, Place)> = Vec::new();
        for s in d.children() {
            let words = s.words();
            match s.name.as_str() {
                "server" => {
                    let Some(addr) = words.first() else {
                        self.notes.error(&s.at, "server", "needs an address");
                        continue;
                    };
                    if addr.starts_with("unix:") {
                        self.notes.error(
                            &s.at,
                            "server",
                            "unix sockets are not supported: have the upstream listen on 127.0.0.1:PORT",
                        );
                        continue;
                    }
                    let (host_port, _) = values::host_port(addr, 80);
                    let mut entry = host_port;
                    let mut down = false;
                    for opt in &words[1..] {
                        let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
                        match key {
                            "weight" => entry.push_str(&format!(" weight={value}")),
                            "max_fails" => match value.parse::<i64>() {
                                Ok(n) => fails.push((n, s.at.clone())),
                                Err(_) => {
                                    self.notes
                                        .error(&s.at, "server", "max_fails takes a number")
                                }
                            },
                            "fail_timeout" => match values::duration(value) {
                                Some(t) => fail_timeouts.push((t, s.at.clone())),
                                None => {
                                    self.notes
                                        .error(&s.at, "server", "fail_timeout takes a time")
                                }
                            },
                            "down" => down = true,
                            "backup" => entry.push_str(" backup"),
                            "max_conns" | "slow_start" => self.notes.note(
                                &s.at,
                                "server",
                                format!(
                                    "{key} dropped (no per-server connection cap or slow start)"
                                ),
                            ),
                            _ => self.notes.error(
                                &s.at,
                                "server",
                                format!("unknown server option {opt:?}: remove it"),
                            ),
                        }
                    }
                    if down {
                        self.notes
                            .note(&s.at, "server", "marked down: left out of the group");
                    } else {
                        servers.push(entry);
                    }
                }
                "least_conn" => section.set("balance", Value::str("least_conn")),
                "ip_hash" => {
                    section.set("balance", Value::str("hash"));
                    section.set("hash_key", Value::str("ip"));
                    self.notes.note(
                        &s.at,
                        "ip_hash",
                        "the proxy hashes the whole client address (nginx hashes an IPv4 address's first three bytes)",
                    );
                }
                "hash" => self.hash(s, &mut section),
                "random" => {
                    self.notes.note(
                        &s.at,
                        "random",
                        "balanced round-robin instead (the proxy has no random balancing)",
                    );
                }
                "keepalive" => match words.first().and_then(|n| n.parse::<i64>().ok()) {
                    Some(n) => section.set("keepalive", Value::Int(n)),
                    None => self
                        .notes
                        .error(&s.at, "keepalive", "takes a number of connections"),
                },
                "keepalive_timeout" => match words.first().and_then(|t| values::duration(t)) {
                    Some(t) => {
                        section.set("keepalive_timeout", Value::str(values::duration_text(t)))
                    }
                    None => self.notes.error(&s.at, "keepalive_timeout", "takes a time"),
                },
                "keepalive_requests" => match words.first().and_then(|n| n.parse::<i64>().ok()) {
                    Some(n) => section.set("keepalive_requests", Value::Int(n)),
                    None => self
                        .notes
                        .error(&s.at, "keepalive_requests", "takes a number"),
                },
                _ => self.dropped_or_refused(s),
            }
        }
        if let Some((n, _)) = fails.first() {
            if fails.iter().any(|(m, _)| m != n) {
                self.notes.note(
                    &fails[0].1,
                    "server",
                    format!("max_fails differs between servers: the proxy has one per group, {n} (the first written)"),
                );
            }
            section.set("max_fails", Value::Int(*n));
        }
        if let Some((t, _)) = fail_timeouts.first() {
            if fail_timeouts.iter().any(|(u, _)| u != t) {
                self.notes.note(
                    &fail_timeouts[0].1,
                    "server",
                    "fail_timeout differs between servers: the proxy has one per group (the first written)",
                );
            }
            section.set("fail_timeout", Value::str(values::duration_text(*t)));
        }
        if servers.is_empty() {
            self.notes.error(
                &d.at,
                "upstream",
                format!("upstream {name} has no server that takes traffic: add one"),
            );
        } else if servers.iter().all(|e| e.ends_with(" backup")) {
            // Every other server is marked down: nginx sends everything to
            // the backups, which the proxy does by taking them as primaries.
            self.notes.note(
                &d.at,
                "upstream",
                format!("upstream {name} has only backup servers up: they take the traffic as ordinary servers"),
            );
            for entry in &mut servers {
                entry.truncate(entry.len() - " backup".len());
            }
        }
        self.upstreams.push(Upstream {
            name,
            section,
            servers,
            scheme: None,
            tls: None,
        });
    }

    fn hash(&mut self, s: &Directive, section: &mut Section) {
        let words = s.words();
        let key = match words.first().copied() {
            Some("$remote_addr" | "$binary_remote_addr") => Some("ip".to_string()),
            Some(v) => v
                .strip_prefix("$arg_")
                .map(|n| format!("query:{n}"))
                .or_else(|| v.strip_prefix("$cookie_").map(|n| format!("cookie:{n}")))
                .or_else(|| {
                    v.strip_prefix("$http_")
                        .map(|n| format!("header:{}", n.replace('_', "-")))
                }),
            None => None,
        };
        let Some(key) = key else {
            self.notes.error(
                &s.at,
                "hash",
                "only $remote_addr, $arg_NAME, $cookie_NAME and $http_NAME keys are supported: hash on one of them",
            );
            return;
        };
        section.set("balance", Value::str("hash"));
        section.set("hash_key", Value::Str(key));
        if words.get(1) != Some(&"consistent") {
            self.notes.note(
                &s.at,
                "hash",
                "the proxy's hashing is always consistent (ketama), so fewer keys move when servers change",
            );
        }
    }

    /// The group named `name`, if an upstream block defines it.
    pub(super) fn group(&mut self, name: &str) -> Option<&mut Upstream> {
        self.upstreams.iter_mut().find(|u| u.name == name)
    }

    /// Everything gathered, as one file.
    pub(super) fn finish(mut self) -> (Toml, Notes) {
        let mut toml = std::mem::take(&mut self.toml);
        if !self.timeouts.keys.is_empty() {
            toml.sections.push(self.timeouts.clone());
        }
        if !self.limits.keys.is_empty() {
            toml.sections.push(self.limits.clone());
        }
        for l in &self.listeners {
            toml.sections.extend(l.sections());
        }
        for mut u in std::mem::take(&mut self.upstreams) {
            let tls = u.scheme.as_ref().is_some_and(|(tls, _)| *tls);
            let servers: Vec<String> = u
                .servers
                .iter()
                .map(|s| {
                    if tls {
                        format!("https://{s}")
                    } else {
                        s.clone()
                    }
                })
                .collect();
            u.section
                .keys
                .insert(0, ("servers".into(), Value::Strs(servers)));
            if u.scheme.is_none() {
                if let Some((at, _)) = &u.section.from {
                    self.notes.note(
                        at,
                        "upstream",
                        format!("dropped (no location proxies to {})", u.name),
                    );
                }
                continue;
            }
            toml.sections.push(u.section);
            if let Some(mut t) = u.tls {
                t.header = format!("[upstream.{}.tls]", super::emit::quote_key(&u.name));
                toml.sections.push(t);
            }
        }
        for server in std::mem::take(&mut self.servers) {
            toml.sections.extend(server);
        }
        (toml, self.notes)
    }
}
