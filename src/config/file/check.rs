//! The whole file → [`Config`]: the global settings, timeouts and drain,
//! the listeners, and which sites each listener serves.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::sections::{
    DrainSection, DurationText, FileSections, ListenerSection, ServerSection, TimeoutSection,
    WorkersValue,
};
use super::Checker;
use crate::access_log;
use crate::cli::Span;
use crate::config::{
    default_max_connections, listen_addr, listen_addrs_with, usable_cores, Config, Drain,
    Keepalive, Listener, Serves, Timeouts, MAX_HEAD_BYTES, MAX_HEAD_LIMIT, MAX_WORKERS,
    MIN_HEAD_BYTES,
};
use crate::handshake::forwarded::{Cidr, TrustedProxies};
use crate::limits::Limits;
use crate::log;
use crate::relay::{splice, Policy};
use crate::route::{ServerName, VirtualHosts};

impl Checker<'_> {
    pub(super) fn config(&mut self, file: FileSections) -> Option<Config> {
        let keepalive = self.keepalive(&file);
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

        let listeners = self.listeners(&file.listener);
        let redirects: Vec<bool> = listeners
            .iter()
            .map(|&(at, _)| file.listener[at].get_ref().redirect_https)
            .collect();
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
        let top = file.source_addresses.as_deref();
        self.sources(top, &file.upstream, &mut groups, &names);
        let listeners = self.bind_sites(
            &file.listener,
            listeners,
            &redirects,
            &file.server,
            &site_listens,
        );
        if file.listener.is_empty() && !self.misspelled_top("listener") {
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
                .map_or(access_log::Destination::Off, |t| {
                    let target: access_log::Destination =
                        t.parse().unwrap_or(access_log::Destination::Off);
                    match target {
                        access_log::Destination::File(path) => {
                            access_log::Destination::File(self.base.join(path))
                        }
                        other => other,
                    }
                }),
            access_log_format: file.access_log_format.unwrap_or(access_log::Format::Text),
            control_socket: file.control_socket.as_ref().map(|p| self.base.join(p)),
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
            keepalive,
        })
    }

    /// The client connections' keep-alive settings.
    fn keepalive(&mut self, file: &FileSections) -> Keepalive {
        let mut keepalive = Keepalive::default();
        if let Some(text) = &file.keepalive_timeout {
            if let Some(d) = self.duration(text, "keepalive_timeout", true) {
                keepalive.timeout = d;
            }
        }
        if let Some(n) = &file.keepalive_requests {
            keepalive.requests = self.requests(n);
        }
        keepalive
    }

    /// A `keepalive_requests` value: at least one.
    pub(super) fn requests(&mut self, n: &Spanned<u32>) -> u32 {
        if *n.get_ref() == 0 {
            self.problem(
                n.span(),
                "keepalive_requests must be at least 1 (to serve one request per connection, \
                 set keepalive_timeout = 0)",
            );
            return 1;
        }
        *n.get_ref()
    }

    pub(super) fn duration(
        &mut self,
        text: &Spanned<DurationText>,
        what: &str,
        zero_ok: bool,
    ) -> Option<Duration> {
        let span = text.span();
        let parsed = text
            .get_ref()
            .0
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

    pub(super) fn timeouts(&mut self, section: &TimeoutSection) -> Timeouts {
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

    pub(super) fn drain(&mut self, section: &DrainSection) -> Drain {
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
                            "drain.spread ({}) is longer than drain.timeout ({}): \
                             the last Close frames would go out after the deadline",
                            log::Rounded(d),
                            log::Rounded(drain.timeout)
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

    /// Every address the listeners accept on, each with the index of its
    /// `[[listener]]` (a host name gives one address per address it
    /// resolves to).
    pub(super) fn listeners(
        &mut self,
        sections: &[Spanned<ListenerSection>],
    ) -> Vec<(usize, SocketAddr)> {
        let mut addrs = Vec::new();
        let mut seen = HashSet::new();
        for (i, section) in sections.iter().enumerate() {
            let l = section.get_ref();
            if let Some(h2) = l.http2.as_ref().filter(|h| *h.get_ref() && l.tls.is_none()) {
                self.problem(
                    h2.span(),
                    "http2 needs TLS on the listener (browsers speak HTTP/2 over TLS only): \
                     add [listener.tls]",
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
            let Some(resolved) = self.listen_addrs(&l.address) else {
                continue;
            };
            for addr in resolved {
                if addr.port() != 0 && !seen.insert(addr) {
                    self.problem(
                        l.address.span(),
                        format!("listener {addr} is declared twice"),
                    );
                }
                addrs.push((i, addr));
            }
        }
        addrs
    }

    /// A listen address's addresses, or `None` with the problem recorded.
    fn listen_addrs(&mut self, text: &Spanned<String>) -> Option<Vec<SocketAddr>> {
        let resolved =
            listen_addrs_with(text.get_ref(), self.resolver).map_err(|e| e.about(text.get_ref()));
        self.check(text.span(), resolved)
    }

    /// Indices of the listeners a server is on.
    pub(super) fn site_listeners(
        &mut self,
        server: &ServerSection,
        span: Range<usize>,
        listeners: &[(usize, SocketAddr)],
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
            for addr in self.listen_addrs(text).unwrap_or_default() {
                self.listen_on(text, addr, listeners, redirects, &mut on);
            }
        }
        on
    }

    /// Adds the listener at `addr` to a server's `on`, or records why not.
    fn listen_on(
        &mut self,
        text: &Spanned<String>,
        addr: SocketAddr,
        listeners: &[(usize, SocketAddr)],
        redirects: &[bool],
        on: &mut Vec<usize>,
    ) {
        match listeners.iter().position(|(_, l)| *l == addr) {
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

    /// Each listener with the virtual hosts it serves.
    pub(super) fn bind_sites(
        &mut self,
        sections: &[Spanned<ListenerSection>],
        addrs: Vec<(usize, SocketAddr)>,
        redirects: &[bool],
        servers: &[Spanned<ServerSection>],
        site_listens: &[Vec<usize>],
    ) -> Vec<Listener> {
        let mut listeners = Vec::new();
        // Loaded once per [[listener]], shared by its addresses.
        let mut tls_of = HashMap::new();
        for (i, (at, addr)) in addrs.into_iter().enumerate() {
            let section = &sections[at];
            let l = section.get_ref();
            let tls = match tls_of.get(&at) {
                Some(tls) => Option::clone(tls),
                None => {
                    let tls = l.tls.as_ref().and_then(|t| {
                        self.server_tls(t, l.http2.as_ref().is_some_and(|h| *h.get_ref()))
                    });
                    tls_of.insert(at, tls.clone());
                    tls
                }
            };
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
        // HTTP-01 is fetched over plain HTTP (port 80, RFC 8555 §8.3).
        let plaintext = listeners.iter().any(|l| l.tls.is_none());
        for (at, section) in sections.iter().enumerate() {
            let http01 = section
                .get_ref()
                .tls
                .as_ref()
                .and_then(|t| t.get_ref().acme.as_ref())
                .and_then(|a| a.get_ref().challenge.as_ref())
                .is_some_and(|c| c.get_ref().trim().eq_ignore_ascii_case("http-01"));
            if http01 && !plaintext {
                self.problem(
                    sections[at].span(),
                    "challenge = \"http-01\" is answered on a plaintext listener, and there is none: \
                     add a [[listener]] on port 80 (redirect_https = true will do), or use \"tls-alpn-01\"",
                );
            }
        }
        listeners
    }

    /// `trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]`: each range, or a
    /// problem at the one that does not parse.
    pub(super) fn trusted_proxies(&mut self, ranges: &[Spanned<String>]) -> TrustedProxies {
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
