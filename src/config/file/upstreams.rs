//! `[upstream.NAME]` groups → [`Group`]s: their servers (resolved now),
//! balancing, passive health, active health checks and TLS; and a route's
//! `upstream = "HOST:PORT"` standing for a group of one.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use rustls::ClientConfig;
use toml::Spanned;

use super::sections::{HealthSection, UpstreamSection};
use super::Checker;
use crate::config::{
    is_tls_upstream, upstream_servers, FAIL_TIMEOUT, HEALTH_CHECK, HEALTH_FALL, HEALTH_INTERVAL,
    HEALTH_ON_DOWN, HEALTH_PATH, HEALTH_RISE, HEALTH_TIMEOUT, MAX_FAILS,
};
use crate::tls::{self, CertFiles, UpstreamSettings};
use crate::upstream::{Balance, CheckKind, Group, HashKey, HealthCheck, Keepalive, OnDown, Server};
use crate::warn;

/// Most upstream servers in one group (an attempt counts them in a u16).
const MAX_GROUP_SERVERS: usize = 4096;

impl Checker<'_> {
    /// The `[upstream.NAME]` groups, and their names' indices.
    pub(super) fn groups(
        &mut self,
        sections: &BTreeMap<Spanned<String>, Spanned<UpstreamSection>>,
    ) -> (Vec<Group>, HashMap<String, usize>) {
        let mut groups = Vec::new();
        let mut names = HashMap::new();
        for (name, section) in sections {
            let u = section.get_ref();
            let tls = self.group_tls(name.get_ref(), u);
            let mut servers = Vec::new();
            let mut refused = false;
            for entry in u.servers.get_ref() {
                let found = server_entry(entry.get_ref(), tls.as_ref());
                match self.check(entry.span(), found) {
                    Some(found) => servers.extend(found),
                    None => refused = true,
                }
            }
            if u.servers.get_ref().is_empty() {
                self.problem(
                    u.servers.span(),
                    "an upstream group needs servers, e.g. servers = [\"127.0.0.1:9000\"]",
                );
            }
            if servers.iter().all(|s| s.backup) {
                // Said only when every entry was read: else the entry
                // refused may be the primary.
                if !refused && !servers.is_empty() {
                    self.problem(
                        u.servers.span(),
                        "every server is a backup: a group needs one without `backup` to take traffic",
                    );
                }
                servers.clear();
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
            let check = u
                .health
                .as_ref()
                .and_then(|h| self.health_check(h.get_ref()));
            names.insert(name.get_ref().clone(), groups.len());
            if servers.is_empty() {
                continue;
            }
            let mut group = Group::new(
                name.get_ref().clone(),
                servers,
                balance.unwrap_or(Balance::RoundRobin),
                u.max_fails.unwrap_or(MAX_FAILS),
                fail_timeout.unwrap_or(FAIL_TIMEOUT),
            );
            group.keepalive = self.upstream_keepalive(u);
            group.check = check;
            groups.push(group);
        }
        (groups, names)
    }

    /// A group's `[upstream.NAME.health]`; `None` when it has a problem
    /// (recorded).
    fn health_check(&mut self, h: &HealthSection) -> Option<HealthCheck> {
        let problems = self.problems.len();
        let kind = match h.check.as_ref().map(|c| (c.get_ref().as_str(), c.span())) {
            None => HEALTH_CHECK,
            Some(("tcp", _)) => CheckKind::Tcp,
            Some(("http", _)) => CheckKind::Http,
            Some(("websocket", _)) => CheckKind::WebSocket,
            Some((other, span)) => {
                self.problem(
                    span,
                    format!(
                        "unknown check {other:?}: use \"tcp\" (the server accepts a connection), \
                         \"http\" (GET path answers 2xx or 3xx) or \"websocket\" (an upgrade to \
                         path answers 101)"
                    ),
                );
                HEALTH_CHECK
            }
        };
        if kind == CheckKind::Tcp {
            for (key, given) in [("path", &h.path), ("host", &h.host)] {
                if let Some(given) = given {
                    self.problem(
                        given.span(),
                        format!("{key} applies to check = \"http\" or \"websocket\", not \"tcp\""),
                    );
                }
            }
        }
        let path = h
            .path
            .as_ref()
            .map_or(HEALTH_PATH.to_string(), |p| p.get_ref().clone());
        // Both go into the check's request head as they are.
        let bad = |c: char| c.is_ascii_whitespace() || c.is_ascii_control();
        if let Some(p) = &h.path {
            if !path.starts_with('/') || path.contains(bad) {
                self.problem(
                    p.span(),
                    "a check's path starts with / and has no spaces, e.g. \"/health\"",
                );
            }
        }
        if let Some(host) = &h.host {
            if host.get_ref().is_empty() || host.get_ref().contains(bad) {
                self.problem(
                    host.span(),
                    "a check's host is a name for the Host field, e.g. \"app.internal\"",
                );
            }
        }
        let interval = match &h.interval {
            Some(text) => self.duration(text, "a check's interval", false),
            None => Some(HEALTH_INTERVAL),
        };
        let timeout = match &h.timeout {
            Some(text) => self.duration(text, "a check's timeout", false),
            None => Some(HEALTH_TIMEOUT),
        };
        let mut count = |value: &Option<Spanned<u32>>, key: &str, default: u32| match value {
            Some(n) if *n.get_ref() == 0 => {
                self.problem(
                    n.span(),
                    format!("{key} must be at least 1: the checks in a row that change a server's state"),
                );
                default
            }
            Some(n) => *n.get_ref(),
            None => default,
        };
        let fall = count(&h.fall, "fall", HEALTH_FALL);
        let rise = count(&h.rise, "rise", HEALTH_RISE);
        let on_down = match h.on_down.as_ref().map(|o| (o.get_ref().as_str(), o.span())) {
            None => HEALTH_ON_DOWN,
            Some(("keep", _)) => OnDown::Keep,
            Some(("drain", _)) => OnDown::Drain,
            Some((other, span)) => {
                self.problem(
                    span,
                    format!(
                        "unknown on_down {other:?}: use \"keep\" (open tunnels run on) or \
                         \"drain\" (they get a Close frame, 1001)"
                    ),
                );
                HEALTH_ON_DOWN
            }
        };
        if self.problems.len() > problems {
            return None;
        }
        Some(HealthCheck {
            kind,
            path,
            interval: interval?,
            timeout: timeout?,
            fall,
            rise,
            host: h.host.as_ref().map(|h| h.get_ref().clone()),
            on_down,
        })
    }

    /// A group's `keepalive`, `keepalive_timeout` and `keepalive_requests`.
    fn upstream_keepalive(&mut self, u: &UpstreamSection) -> Keepalive {
        let mut keepalive = Keepalive::default();
        if let Some(idle) = u.keepalive {
            keepalive.idle = idle;
        }
        if let Some(text) = &u.keepalive_timeout {
            if let Some(d) = self.duration(text, "keepalive_timeout", false) {
                keepalive.timeout = d;
            }
        }
        if let Some(n) = &u.keepalive_requests {
            keepalive.requests = self.requests(n);
        }
        keepalive
    }

    pub(super) fn balance(&mut self, u: &UpstreamSection) -> Option<Balance> {
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

    /// The TLS client settings a group's `wss://` servers use.
    pub(super) fn group_tls(
        &mut self,
        group: &str,
        u: &UpstreamSection,
    ) -> Option<Arc<ClientConfig>> {
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
    pub(super) fn default_tls(&mut self, span: Range<usize>) -> Option<Arc<ClientConfig>> {
        if self.default_tls.is_none() {
            let built =
                tls::upstream_config(&UpstreamSettings::default()).map_err(|e| e.to_string());
            self.default_tls = self.check(span, built);
        }
        self.default_tls.clone()
    }
    /// A route's `upstream`: a group's name, or `HOST:PORT` standing for a
    /// group of one server (nginx's `proxy_pass http://127.0.0.1:32000`).
    pub(super) fn group_ref(
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
}

/// `HOST:PORT` (or a `ws[s]://`, `http[s]://` URL), optionally followed by
/// ` weight=N` and ` backup`.
fn server_entry(text: &str, tls: Option<&Arc<ClientConfig>>) -> Result<Vec<Server>, String> {
    let mut words = text.split_whitespace();
    let addr = words
        .next()
        .ok_or("an empty server: use \"HOST:PORT\" or \"HOST:PORT weight=2\"")?;
    let mut weight = 1;
    let mut backup = false;
    for word in words {
        match word.strip_prefix("weight=").map(str::parse::<u32>) {
            Some(Ok(w)) if (1..=1000).contains(&w) => weight = w,
            Some(_) => return Err(format!("{word}: a weight is a number from 1 to 1000")),
            None if word == "backup" => backup = true,
            None => {
                return Err(format!(
                    "unknown server option {word:?}: the options are weight=N and backup"
                ))
            }
        }
    }
    let mut servers = upstream_servers(addr, weight, tls).map_err(|e| format!("{addr}: {e}"))?;
    servers.iter_mut().for_each(|s| s.backup = backup);
    Ok(servers)
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
