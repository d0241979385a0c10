//! The configuration file: TOML read with serde into spanned sections,
//! then checked and turned into a [`Config`]. Every problem found is kept
//! with its line and column and worded as what to change, so `--check`
//! lists them all at once and a broken file never starts a proxy.
//!
//! ```toml
//! workers = "auto"
//!
//! [[listener]]
//! address = "0.0.0.0:80"
//! redirect_https = true
//!
//! [[listener]]
//! address = "0.0.0.0:8080"
//!
//! [upstream.app]
//! servers = ["10.0.0.5:9000", "10.0.0.6:9000 weight=2"]
//! balance = "least_conn"
//!
//! [[server]]
//! names = ["example.com"]
//! response_headers = [{ name = "Strict-Transport-Security", value = "max-age=31536000", always = true }]
//!
//! [[server.route]]
//! location = "/ws"
//! upstream = "app"
//! request_headers = { Host = "$host" }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

use serde::Deserialize;
use toml::Spanned;

use super::{
    default_max_connections, is_tls_upstream, listen_addr, upstream_servers, usable_cores, Config,
    Drain, Listener, Removed, Route, Serves, Site, Target, Timeouts, FAIL_TIMEOUT, MAX_FAILS,
    MAX_HEAD_BYTES, MAX_HEAD_LIMIT, MAX_WORKERS, MIN_HEAD_BYTES,
};
use crate::access_log;
use crate::cli::Span;
use crate::files::Root;
use crate::handshake::edits::{RequestEdits, ResponseEdits};
use crate::handshake::forwarded::{Cidr, TrustedProxies};
use crate::limits::Limits;
use crate::relay::{splice, Policy};
use crate::route::{Location, Origins, PathEdit, Routes, ServerName, VirtualHosts};
use crate::tls::{self, CertFiles, ServerSettings, ServerTls, UpstreamSettings};
use crate::upstream::{Balance, Group, HashKey, Server};
use crate::warn;

/// Most upstream servers in one group (an attempt counts them in a u16).
const MAX_GROUP_SERVERS: usize = 4096;

/// Why a file did not load.
#[derive(Debug)]
pub enum LoadError {
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Every problem found, in file order.
    Invalid(Vec<FileError>),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            LoadError::Invalid(errors) => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// One problem, located: `FILE:LINE:COLUMN: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|error| LoadError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, path, base)
}

/// Validates `text`; `path` names it in errors and relative roots are
/// resolved from `base`.
pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Config, LoadError> {
    let mut checker = Checker {
        base,
        problems: Vec::new(),
        default_tls: None,
    };
    let config = match toml::from_str::<FileSections>(text) {
        Ok(sections) => checker.config(sections),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            checker.problem(span, e.message().trim_end().replace('\n', "; "));
            None
        }
    };
    match config {
        Some(config) if checker.problems.is_empty() => Ok(config),
        _ => {
            let mut problems = checker.problems;
            problems.sort_by_key(|p| p.0.start);
            Err(LoadError::Invalid(
                problems
                    .into_iter()
                    .map(|(span, message)| {
                        let (line, column) = line_column(text, span.start);
                        FileError {
                            path: path.to_path_buf(),
                            line,
                            column,
                            message,
                        }
                    })
                    .collect(),
            ))
        }
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

// ----- The file's shape ---------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSections {
    workers: Option<Spanned<WorkersValue>>,
    relay: Option<Policy>,
    splice_pipes: Option<usize>,
    max_header_bytes: Option<Spanned<usize>>,
    admin: Option<Spanned<String>>,
    access_log: Option<String>,
    access_log_format: Option<access_log::Format>,
    #[serde(default)]
    timeouts: TimeoutSection,
    #[serde(default)]
    limits: LimitSection,
    #[serde(default)]
    drain: DrainSection,
    #[serde(default)]
    listener: Vec<Spanned<ListenerSection>>,
    #[serde(default)]
    upstream: BTreeMap<Spanned<String>, Spanned<UpstreamSection>>,
    #[serde(default)]
    server: Vec<Spanned<ServerSection>>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WorkersValue {
    Count(i64),
    Word(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TimeoutSection {
    handshake: Option<Spanned<String>>,
    connect: Option<Spanned<String>>,
    response: Option<Spanned<String>>,
    idle: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DrainSection {
    timeout: Option<Spanned<String>>,
    spread: Option<Spanned<String>>,
    removed_routes: Option<Removed>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitSection {
    max_connections: Option<usize>,
    max_connections_per_worker: Option<usize>,
    max_connections_per_ip: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerSection {
    address: Spanned<String>,
    #[serde(default)]
    redirect_https: bool,
    redirect_port: Option<Spanned<u16>>,
    tls: Option<Spanned<TlsSection>>,
    #[serde(default)]
    proxy_protocol: bool,
}

/// `[listener.tls]`: nginx's `ssl_certificate`, `ssl_protocols`,
/// `ssl_ciphers`, `ssl_session_cache`, `ssl_session_tickets`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    #[serde(default)]
    certificates: Vec<Spanned<CertSection>>,
    protocols: Option<Vec<Spanned<String>>>,
    ciphers: Option<Vec<Spanned<String>>>,
    session_cache: Option<usize>,
    session_tickets: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertSection {
    cert: String,
    key: String,
}

/// `[upstream.NAME.tls]`, for its `wss://` and `https://` servers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamTlsSection {
    ca: Option<String>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
    #[serde(default)]
    insecure_skip_verify: bool,
    protocols: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamSection {
    servers: Spanned<Vec<Spanned<String>>>,
    balance: Option<Spanned<String>>,
    hash_key: Option<Spanned<String>>,
    max_fails: Option<u32>,
    fail_timeout: Option<Spanned<String>>,
    tls: Option<Spanned<UpstreamTlsSection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    #[serde(default)]
    names: Vec<Spanned<String>>,
    listen: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    request_headers: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    response_headers: Vec<Spanned<AddHeader>>,
    #[serde(default)]
    hide_headers: Vec<Spanned<String>>,
    origins: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    route: Vec<Spanned<RouteSection>>,
}

/// Settings a server and its routes share (a route's win), as written in
/// either section.
struct HeaderSection<'a> {
    request_headers: &'a BTreeMap<Spanned<String>, Spanned<String>>,
    response_headers: &'a [Spanned<AddHeader>],
    hide_headers: &'a [Spanned<String>],
    origins: &'a Option<Spanned<Vec<String>>>,
}

/// The shared settings of a `[[server]]` or `[[server.route]]`.
macro_rules! header_section {
    ($section:expr) => {
        HeaderSection {
            request_headers: &$section.request_headers,
            response_headers: &$section.response_headers,
            hide_headers: &$section.hide_headers,
            origins: &$section.origins,
        }
    };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddHeader {
    name: String,
    value: String,
    #[serde(default)]
    always: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSection {
    location: Spanned<String>,
    upstream: Option<Spanned<String>>,
    root: Option<Spanned<String>>,
    try_files: Option<Spanned<Vec<String>>>,
    rewrite: Option<Spanned<Rewrite>>,
    strip_prefix: Option<Spanned<String>>,
    #[serde(default)]
    request_headers: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    response_headers: Vec<Spanned<AddHeader>>,
    #[serde(default)]
    hide_headers: Vec<Spanned<String>>,
    origins: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rewrite {
    pattern: String,
    to: String,
}

// ----- Checking -----------------------------------------------------------

struct Checker<'a> {
    base: &'a Path,
    problems: Vec<(Range<usize>, String)>,
    /// TLS client settings for `wss://` servers named without a group
    /// section: the system's roots, loaded once.
    default_tls: Option<Arc<ClientConfig>>,
}

/// Server-level settings a route inherits.
struct Inherited {
    request: RequestEdits,
    response: ResponseEdits,
    origins: Option<Origins>,
}

impl Checker<'_> {
    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push((span, message.into()));
    }

    /// `result`'s value, or `None` with its error recorded at `span`.
    fn check<T>(&mut self, span: Range<usize>, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.problem(span, e)).ok()
    }

    fn config(&mut self, file: FileSections) -> Option<Config> {
        let workers = match file.workers {
            None => usable_cores(),
            Some(w) => {
                let span = w.span();
                match w.into_inner() {
                    WorkersValue::Word(word) if word == "auto" => usable_cores(),
                    WorkersValue::Count(n) if (1..=MAX_WORKERS as i64).contains(&n) => n as usize,
                    _ => {
                        self.problem(
                            span,
                            format!("workers is \"auto\" or a number from 1 to {MAX_WORKERS}"),
                        );
                        1
                    }
                }
            }
        };
        let max_head = match file.max_header_bytes {
            None => MAX_HEAD_BYTES,
            Some(n) if (MIN_HEAD_BYTES..=MAX_HEAD_LIMIT).contains(n.get_ref()) => n.into_inner(),
            Some(n) => {
                self.problem(
                    n.span(),
                    format!("max_header_bytes is out of range: use {MIN_HEAD_BYTES} to {MAX_HEAD_LIMIT}"),
                );
                MAX_HEAD_BYTES
            }
        };
        let timeouts = self.timeouts(&file.timeouts);
        let drain = self.drain(&file.drain);
        let pipes = file.splice_pipes.unwrap_or_else(splice::default_limit);

        let (listeners, redirects) = self.listeners(&file.listener);
        let (mut groups, names) = self.groups(&file.upstream);
        let mut sites = Vec::new();
        let mut routes = Vec::new();
        let mut site_listens = Vec::new();
        let mut inline = HashMap::new();
        for server in &file.server {
            let span = server.span();
            let server = server.get_ref();
            let listens = self.site_listeners(server, span.clone(), &listeners, &redirects);
            let site = self.site(server, span, &mut routes, &names, &mut groups, &mut inline);
            sites.push(site);
            site_listens.push(listens);
        }
        let listeners = self.bind_sites(
            &file.listener,
            listeners,
            &redirects,
            &file.server,
            &site_listens,
        );
        if file.listener.is_empty() {
            self.problem(
                0..0,
                "no [[listener]]: add one, e.g. [[listener]] address = \"0.0.0.0:8080\"",
            );
        }
        Some(Config {
            listeners,
            sites,
            routes,
            groups,
            workers,
            max_head,
            timeouts,
            relay: file.relay.unwrap_or(Policy::Auto),
            pipes_per_worker: pipes.div_ceil(workers),
            limits: Limits {
                max_connections: file
                    .limits
                    .max_connections
                    .unwrap_or_else(|| default_max_connections(pipes)),
                max_per_worker: file.limits.max_connections_per_worker.unwrap_or(0),
                max_per_ip: file.limits.max_connections_per_ip.unwrap_or(0),
            },
            access_log: file
                .access_log
                .as_deref()
                .map_or(access_log::Target::Off, |t| {
                    let target: access_log::Target = t.parse().unwrap_or(access_log::Target::Off);
                    match target {
                        access_log::Target::File(path) => {
                            access_log::Target::File(self.base.join(path))
                        }
                        other => other,
                    }
                }),
            access_log_format: file.access_log_format.unwrap_or(access_log::Format::Text),
            drain,
            trusted_proxies: self.trusted_proxies(&file.trusted_proxies),
            admin: file.admin.as_ref().and_then(|a| {
                let addr = listen_addr(a.get_ref());
                if addr.is_none() {
                    self.problem(
                        a.span(),
                        "admin is IP:PORT, e.g. \"127.0.0.1:9901\" (keep it off public addresses)",
                    );
                }
                addr
            }),
        })
    }

    fn duration(&mut self, text: &Spanned<String>, what: &str, zero_ok: bool) -> Option<Duration> {
        let span = text.span();
        let parsed = text
            .get_ref()
            .parse::<Span>()
            .map(|s| s.0)
            .map_err(|e| format!("{what}: {e}"));
        match self.check(span.clone(), parsed)? {
            d if d.is_zero() && !zero_ok => {
                self.problem(span, format!("{what} must be more than zero"));
                None
            }
            d => Some(d),
        }
    }

    fn timeouts(&mut self, section: &TimeoutSection) -> Timeouts {
        let mut t = Timeouts::default();
        for (field, slot, zero_ok) in [
            (&section.handshake, &mut t.handshake, false),
            (&section.connect, &mut t.connect, false),
            (&section.response, &mut t.response, false),
            (&section.idle, &mut t.idle, true),
        ] {
            if let Some(text) = field {
                if let Some(d) = self.duration(text, "a timeout", zero_ok) {
                    *slot = d;
                }
            }
        }
        t
    }

    fn drain(&mut self, section: &DrainSection) -> Drain {
        let mut drain = Drain::default();
        if let Some(text) = &section.timeout {
            if let Some(d) = self.duration(text, "drain.timeout", true) {
                drain.timeout = d;
            }
        }
        if let Some(text) = &section.spread {
            if let Some(d) = self.duration(text, "drain.spread", true) {
                drain.spread = d;
                if d > drain.timeout {
                    self.problem(
                        text.span(),
                        format!(
                            "drain.spread ({d:?}) is longer than drain.timeout ({:?}): \
                             the last Close frames would go out after the deadline",
                            drain.timeout
                        ),
                    );
                }
            }
        }
        if let Some(removed) = section.removed_routes {
            drain.removed = removed;
        }
        drain
    }

    /// The listener addresses, and which of them redirect.
    fn listeners(&mut self, sections: &[Spanned<ListenerSection>]) -> (Vec<SocketAddr>, Vec<bool>) {
        let mut addrs = Vec::new();
        let mut redirects = Vec::new();
        let mut seen = HashSet::new();
        for section in sections {
            let l = section.get_ref();
            let addr = match listen_addr(l.address.get_ref()) {
                Some(addr) => addr,
                None => {
                    self.problem(
                        l.address.span(),
                        format!(
                            "{:?} is not an address: use IP:PORT, e.g. \"0.0.0.0:8080\" or \"[::]:8080\"",
                            l.address.get_ref()
                        ),
                    );
                    continue;
                }
            };
            if addr.port() != 0 && !seen.insert(addr) {
                self.problem(
                    l.address.span(),
                    format!("listener {addr} is declared twice"),
                );
            }
            if let Some(port) = &l.redirect_port {
                if !l.redirect_https {
                    self.problem(
                        port.span(),
                        "redirect_port only applies with redirect_https = true",
                    );
                }
            }
            addrs.push(addr);
            redirects.push(l.redirect_https);
        }
        (addrs, redirects)
    }

    /// Indices of the listeners a server is on.
    fn site_listeners(
        &mut self,
        server: &ServerSection,
        span: Range<usize>,
        listeners: &[SocketAddr],
        redirects: &[bool],
    ) -> Vec<usize> {
        let Some(listen) = &server.listen else {
            let all: Vec<usize> = (0..listeners.len()).filter(|&i| !redirects[i]).collect();
            if all.is_empty() && !listeners.is_empty() {
                self.problem(
                    span,
                    "this [[server]] has no listener to serve: add a [[listener]] without redirect_https",
                );
            }
            return all;
        };
        let mut on = Vec::new();
        for text in listen {
            let Some(addr) = listen_addr(text.get_ref()) else {
                self.problem(
                    text.span(),
                    format!("{:?} is not an address: use IP:PORT", text.get_ref()),
                );
                continue;
            };
            match listeners.iter().position(|l| *l == addr) {
                Some(i) if redirects[i] => self.problem(
                    text.span(),
                    format!("listener {addr} redirects to HTTPS and serves no server: remove it from listen"),
                ),
                Some(i) => on.push(i),
                None => self.problem(
                    text.span(),
                    format!("no [[listener]] has address {addr}: add one with address = \"{addr}\""),
                ),
            }
        }
        on
    }

    /// Each listener with the virtual hosts it serves.
    fn bind_sites(
        &mut self,
        sections: &[Spanned<ListenerSection>],
        addrs: Vec<SocketAddr>,
        redirects: &[bool],
        servers: &[Spanned<ServerSection>],
        site_listens: &[Vec<usize>],
    ) -> Vec<Listener> {
        let mut listeners = Vec::new();
        // Listeners that did not parse were skipped, so sections and addrs
        // line up only over the parsed ones.
        let parsed = sections
            .iter()
            .filter(|s| listen_addr(s.get_ref().address.get_ref()).is_some());
        for (i, (section, addr)) in parsed.zip(addrs).enumerate() {
            let l = section.get_ref();
            let tls = l.tls.as_ref().and_then(|t| self.server_tls(t));
            if redirects[i] {
                listeners.push(Listener {
                    addr,
                    serves: Serves::RedirectHttps {
                        port: l.redirect_port.as_ref().map(|p| *p.get_ref()),
                    },
                    tls,
                    proxy_protocol: l.proxy_protocol,
                });
                continue;
            }
            let on: Vec<usize> = (0..servers.len())
                .filter(|&s| site_listens[s].contains(&i))
                .collect();
            if on.is_empty() {
                self.problem(
                    section.span(),
                    format!(
                        "listener {addr} has no [[server]]: add one, or set redirect_https = true"
                    ),
                );
            }
            let defaults: Vec<usize> = on
                .iter()
                .copied()
                .filter(|&s| servers[s].get_ref().default)
                .collect();
            if defaults.len() > 1 {
                self.problem(
                    servers[defaults[1]].span(),
                    format!("listener {addr} has two default servers: keep default = true on one"),
                );
            }
            let mut names_seen = HashSet::new();
            let mut entries = Vec::new();
            for &s in &on {
                let mut names = Vec::new();
                for name in &servers[s].get_ref().names {
                    let Some(parsed) = self.check(name.span(), ServerName::parse(name.get_ref()))
                    else {
                        continue;
                    };
                    let key = parsed.to_string();
                    if !names_seen.insert(key.clone()) {
                        self.problem(
                            name.span(),
                            format!("server name {key} is used twice on listener {addr}: keep one"),
                        );
                    }
                    names.push(parsed);
                }
                entries.push((names, s));
            }
            let default = defaults.first().or(on.first()).copied().unwrap_or(0);
            listeners.push(Listener {
                addr,
                serves: Serves::Sites(VirtualHosts::new(entries, default)),
                tls,
                proxy_protocol: l.proxy_protocol,
            });
        }
        listeners
    }

    /// The `[upstream.NAME]` groups, and their names' indices.
    fn groups(
        &mut self,
        sections: &BTreeMap<Spanned<String>, Spanned<UpstreamSection>>,
    ) -> (Vec<Group>, HashMap<String, usize>) {
        let mut groups = Vec::new();
        let mut names = HashMap::new();
        for (name, section) in sections {
            let u = section.get_ref();
            let tls = self.group_tls(name.get_ref(), u);
            let mut servers = Vec::new();
            for entry in u.servers.get_ref() {
                let found = server_entry(entry.get_ref(), tls.as_ref());
                if let Some(found) = self.check(entry.span(), found) {
                    servers.extend(found);
                }
            }
            if u.servers.get_ref().is_empty() {
                self.problem(
                    u.servers.span(),
                    "an upstream group needs servers, e.g. servers = [\"127.0.0.1:9000\"]",
                );
            }
            if servers.len() > MAX_GROUP_SERVERS {
                self.problem(
                    u.servers.span(),
                    format!("more than {MAX_GROUP_SERVERS} servers in one group"),
                );
            }
            let balance = self.balance(u);
            let fail_timeout = match &u.fail_timeout {
                Some(text) => self.duration(text, "fail_timeout", true),
                None => Some(FAIL_TIMEOUT),
            };
            names.insert(name.get_ref().clone(), groups.len());
            if servers.is_empty() {
                continue;
            }
            groups.push(Group::new(
                name.get_ref().clone(),
                servers,
                balance.unwrap_or(Balance::RoundRobin),
                u.max_fails.unwrap_or(MAX_FAILS),
                fail_timeout.unwrap_or(FAIL_TIMEOUT),
            ));
        }
        (groups, names)
    }

    fn balance(&mut self, u: &UpstreamSection) -> Option<Balance> {
        let method = u
            .balance
            .as_ref()
            .map_or("round_robin", |b| b.get_ref().as_str());
        let span = u.balance.as_ref().map_or(0..0, Spanned::span);
        match (method, &u.hash_key) {
            ("round_robin", None) => Some(Balance::RoundRobin),
            ("least_conn", None) => Some(Balance::LeastConn),
            ("hash", Some(key)) => {
                let parsed = hash_key(key.get_ref());
                self.check(key.span(), parsed).map(Balance::Hash)
            }
            ("hash", None) => {
                self.problem(
                    span,
                    "balance = \"hash\" needs a hash_key: \"ip\", \"header:NAME\", \"cookie:NAME\" or \"query:NAME\"",
                );
                None
            }
            ("round_robin" | "least_conn", Some(key)) => {
                self.problem(key.span(), "hash_key only applies with balance = \"hash\"");
                None
            }
            (other, _) => {
                self.problem(
                    span,
                    format!("unknown balance {other:?}: use \"round_robin\", \"least_conn\" or \"hash\""),
                );
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn site(
        &mut self,
        server: &ServerSection,
        span: Range<usize>,
        routes: &mut Vec<Route>,
        names: &HashMap<String, usize>,
        groups: &mut Vec<Group>,
        inline: &mut HashMap<String, usize>,
    ) -> Site {
        let empty = Inherited {
            request: RequestEdits::default(),
            response: ResponseEdits::default(),
            origins: None,
        };
        let inherited = self.headers(&header_section!(server), &empty);
        if server.route.is_empty() {
            self.problem(
                span,
                "this [[server]] has no routes: add [[server.route]] with location = \"/\" and an upstream",
            );
        }
        let mut locations = Vec::new();
        let mut route_ids = Vec::new();
        for section in &server.route {
            let r = section.get_ref();
            let Some(location) =
                self.check(r.location.span(), Location::parse(r.location.get_ref()))
            else {
                continue;
            };
            let Some(route) = self.route(r, section.span(), &inherited, names, groups, inline)
            else {
                continue;
            };
            locations.push(location);
            route_ids.push(routes.len());
            routes.push(route);
        }
        Site {
            name: server
                .names
                .first()
                .map_or_else(|| "_".to_string(), |n| n.get_ref().clone()),
            routes: Routes::new(locations),
            route_ids,
            response: inherited.response,
        }
    }

    fn headers(&mut self, h: &HeaderSection<'_>, parent: &Inherited) -> Inherited {
        let mut request = parent.request.clone();
        for (name, value) in h.request_headers {
            let result = request.set(name.get_ref(), value.get_ref());
            self.check(name.span(), result);
        }
        let mut own = ResponseEdits::default();
        for add in h.response_headers {
            let a = add.get_ref();
            let result = own.add(&a.name, &a.value, a.always);
            self.check(add.span(), result);
        }
        for name in h.hide_headers {
            let result = own.hide(name.get_ref());
            self.check(name.span(), result);
        }
        let origins = match h.origins {
            Some(list) => self.check(list.span(), Origins::new(list.get_ref())),
            None => None,
        };
        Inherited {
            request,
            response: parent.response.merged(&own),
            origins: origins.or_else(|| parent.origins.clone()),
        }
    }

    fn route(
        &mut self,
        r: &RouteSection,
        span: Range<usize>,
        inherited: &Inherited,
        names: &HashMap<String, usize>,
        groups: &mut Vec<Group>,
        inline: &mut HashMap<String, usize>,
    ) -> Option<Route> {
        let settings = self.headers(&header_section!(r), inherited);
        let target = match (&r.upstream, &r.root) {
            (Some(_), Some(root)) => {
                self.problem(
                    root.span(),
                    "a route has either an upstream or a root, not both: split it into two locations",
                );
                return None;
            }
            (None, None) => {
                self.problem(
                    span,
                    "this route has no target: add upstream = \"GROUP\" (or \"HOST:PORT\") or root = \"DIR\"",
                );
                return None;
            }
            (Some(up), None) => Target::Upstream(self.group_ref(up, names, groups, inline)?),
            (None, Some(root)) => {
                let dir = self.base.join(root.get_ref());
                let tries = r.try_files.as_ref().map_or(&[][..], |t| t.get_ref());
                let span = r.try_files.as_ref().map_or(root.span(), Spanned::span);
                let made = Root::new(&dir, tries).map_err(|e| e.replace('\n', " "));
                if made.is_err() && !dir.exists() {
                    self.problem(
                        root.span(),
                        format!(
                            "root {} does not exist: create it or fix the path",
                            dir.display()
                        ),
                    );
                    return None;
                }
                Target::Files(self.check(span, made)?)
            }
        };
        if let (Some(tries), None) = (&r.try_files, &r.root) {
            self.problem(
                tries.span(),
                "try_files needs a root = \"DIR\" on the same route",
            );
        }
        if let (Target::Files(_), Some(origins)) = (&target, &r.origins) {
            self.problem(
                origins.span(),
                "origins only apply to WebSocket routes with an upstream: remove them here",
            );
        }
        let path_edit = match (&r.rewrite, &r.strip_prefix) {
            (Some(_), Some(strip)) => {
                self.problem(
                    strip.span(),
                    "use either rewrite or strip_prefix on a route, not both",
                );
                None
            }
            (Some(rw), None) => {
                let rewrite = rw.get_ref();
                self.check(rw.span(), PathEdit::rewrite(&rewrite.pattern, &rewrite.to))
            }
            (None, Some(strip)) => {
                self.check(strip.span(), PathEdit::strip_prefix(strip.get_ref()))
            }
            (None, None) => None,
        };
        Some(Route {
            location: r.location.get_ref().clone(),
            target,
            path_edit,
            request: settings.request,
            response: settings.response,
            origins: settings.origins,
        })
    }

    /// A route's `upstream`: a group's name, or `HOST:PORT` standing for a
    /// group of one server (nginx's `proxy_pass http://127.0.0.1:32000`).
    /// A listener's TLS: its certificates loaded and checked now, so a
    /// bad file fails `--check` rather than the first handshake.
    fn server_tls(&mut self, section: &Spanned<TlsSection>) -> Option<ServerTls> {
        let t = section.get_ref();
        let mut certificates = Vec::new();
        match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => certificates.push(CertFiles {
                cert: self.base.join(cert.get_ref()),
                key: self.base.join(key.get_ref()),
            }),
            (Some(cert), None) => self.problem(
                cert.span(),
                "cert needs its key beside it: key = \"KEY.pem\"",
            ),
            (None, Some(key)) => self.problem(
                key.span(),
                "key needs its certificate chain beside it: cert = \"CHAIN.pem\"",
            ),
            (None, None) => {}
        }
        certificates.extend(t.certificates.iter().map(|c| CertFiles {
            cert: self.base.join(&c.get_ref().cert),
            key: self.base.join(&c.get_ref().key),
        }));
        if certificates.is_empty() {
            self.problem(
                section.span(),
                "TLS needs a certificate: cert = \"CHAIN.pem\", key = \"KEY.pem\" \
                 (or certificates = [{ cert = …, key = … }, …] for several names)",
            );
            return None;
        }
        let mut settings = ServerSettings::new(certificates);
        settings.versions = self.versions(t.protocols.as_deref());
        for name in t.ciphers.iter().flatten() {
            if let Some(suite) = self.check(name.span(), tls::parse_cipher(name.get_ref())) {
                settings.ciphers.push(suite);
            }
        }
        if let Some(entries) = t.session_cache {
            settings.session_cache = entries;
        }
        if let Some(tickets) = t.session_tickets {
            settings.tickets = tickets;
        }
        let loaded = ServerTls::load(settings).map_err(|e| e.to_string());
        self.check(section.span(), loaded)
    }

    /// `protocols = ["TLSv1.2", "TLSv1.3"]`; none given: both.
    fn versions(
        &mut self,
        names: Option<&[Spanned<String>]>,
    ) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let mut versions = Vec::new();
        for name in names.into_iter().flatten() {
            if let Some(v) = self.check(name.span(), tls::parse_version(name.get_ref())) {
                versions.push(v);
            }
        }
        versions
    }

    /// The TLS client settings a group's `wss://` servers use.
    fn group_tls(&mut self, group: &str, u: &UpstreamSection) -> Option<Arc<ClientConfig>> {
        let secure = u
            .servers
            .get_ref()
            .iter()
            .find(|s| is_tls_upstream(s.get_ref()));
        let Some(section) = &u.tls else {
            return self.default_tls(secure?.span());
        };
        let Some(_) = secure else {
            self.problem(
                section.span(),
                "tls applies to wss:// and https:// servers, and this group has none: \
                 write its servers as wss://HOST:PORT",
            );
            return None;
        };
        let t = section.get_ref();
        let client_cert = match (&t.client_cert, &t.client_key) {
            (Some(cert), Some(key)) => Some(CertFiles {
                cert: self.base.join(cert.get_ref()),
                key: self.base.join(key.get_ref()),
            }),
            (None, None) => None,
            (Some(at), None) | (None, Some(at)) => {
                self.problem(
                    at.span(),
                    "a client certificate needs both client_cert and client_key",
                );
                None
            }
        };
        if t.insecure_skip_verify {
            warn!(
                "upstream {group}: insecure_skip_verify: its servers' certificates are \
                 not verified, so anyone on the path can impersonate them"
            );
        }
        let settings = UpstreamSettings {
            ca: t.ca.as_ref().map(|ca| self.base.join(ca)),
            client_cert,
            insecure_skip_verify: t.insecure_skip_verify,
            versions: self.versions(t.protocols.as_deref()),
        };
        let built = tls::upstream_config(&settings).map_err(|e| e.to_string());
        self.check(section.span(), built)
    }

    /// The system's roots, for `wss://` servers without a `tls` section.
    fn default_tls(&mut self, span: Range<usize>) -> Option<Arc<ClientConfig>> {
        if self.default_tls.is_none() {
            let built =
                tls::upstream_config(&UpstreamSettings::default()).map_err(|e| e.to_string());
            self.default_tls = self.check(span, built);
        }
        self.default_tls.clone()
    }

    fn group_ref(
        &mut self,
        text: &Spanned<String>,
        names: &HashMap<String, usize>,
        groups: &mut Vec<Group>,
        inline: &mut HashMap<String, usize>,
    ) -> Option<usize> {
        let name = text.get_ref();
        if let Some(&i) = names.get(name) {
            return (i < groups.len()).then_some(i);
        }
        if let Some(&i) = inline.get(name) {
            return Some(i);
        }
        if !name.contains(':') {
            self.problem(
                text.span(),
                format!("no [upstream.{name}] group: define it, or give HOST:PORT"),
            );
            return None;
        }
        let tls = if is_tls_upstream(name) {
            Some(self.default_tls(text.span())?)
        } else {
            None
        };
        let servers = self.check(text.span(), upstream_servers(name, 1, tls.as_ref()))?;
        groups.push(Group::new(
            name.clone(),
            servers,
            Balance::RoundRobin,
            MAX_FAILS,
            FAIL_TIMEOUT,
        ));
        inline.insert(name.clone(), groups.len() - 1);
        Some(groups.len() - 1)
    }

    /// `trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]`: each range, or a
    /// problem at the one that does not parse.
    fn trusted_proxies(&mut self, ranges: &[Spanned<String>]) -> TrustedProxies {
        let parsed = ranges
            .iter()
            .filter_map(|r| {
                let cidr = r.get_ref().parse::<Cidr>().map_err(|e| e.to_string());
                self.check(r.span(), cidr)
            })
            .collect();
        TrustedProxies::new(parsed)
    }
}

/// `HOST:PORT` (or a `ws[s]://`, `http[s]://` URL), optionally followed by
/// ` weight=N`.
fn server_entry(text: &str, tls: Option<&Arc<ClientConfig>>) -> Result<Vec<Server>, String> {
    let mut words = text.split_whitespace();
    let addr = words
        .next()
        .ok_or("an empty server: use \"HOST:PORT\" or \"HOST:PORT weight=2\"")?;
    let mut weight = 1;
    for word in words {
        match word.strip_prefix("weight=").map(str::parse::<u32>) {
            Some(Ok(w)) if (1..=1000).contains(&w) => weight = w,
            Some(_) => return Err(format!("{word}: a weight is a number from 1 to 1000")),
            None => {
                return Err(format!(
                    "unknown server option {word:?}: the only one is weight=N"
                ))
            }
        }
    }
    upstream_servers(addr, weight, tls).map_err(|e| format!("{addr}: {e}"))
}

fn hash_key(text: &str) -> Result<HashKey, String> {
    let fix = "hash_key is \"ip\", \"header:NAME\", \"cookie:NAME\" or \"query:NAME\"";
    if text == "ip" {
        return Ok(HashKey::ClientIp);
    }
    let (kind, name) = text.split_once(':').ok_or(fix)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(fix.to_string());
    }
    match kind {
        "header" => Ok(HashKey::Header(name.to_ascii_lowercase())),
        "cookie" => Ok(HashKey::Cookie(name.to_string())),
        "query" => Ok(HashKey::Query(name.to_string())),
        _ => Err(fix.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
servers = ["127.0.0.1:9000", "127.0.0.1:9001 weight=3"]
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
        assert!(c.trusted_proxies.trusts("10.2.3.4".parse().unwrap()));
        assert!(c.trusted_proxies.trusts("127.0.0.1".parse().unwrap()));
        assert!(!c.trusted_proxies.trusts("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn mistakes_are_located_and_say_what_to_do() {
        let cases: &[(&str, &str, &str)] = &[
            ("workers = \"many\"", "1:11", "workers is \"auto\" or a number"),
            ("[[listener]]\naddress = \"nope\"", "2:11", "is not an address"),
            ("[[listener]]\nadress = \"x\"", "2:1", "unknown field `adress`"),
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
                "[[listener]]\naddress = \"127.0.0.1:1\"\n[[server]]\nrequest_headers = { Upgrade = \"$http_upgrade\" }\n[[server.route]]\nlocation = \"/\"\nupstream = \"127.0.0.1:2\"",
                "4:21",
                "set by the proxy",
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
}
