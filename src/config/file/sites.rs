//! `[[server]]` and `[[server.route]]` → sites and routes, with the
//! settings a route inherits from its server; and a listener's TLS.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::sections::{
    AcmeSection, Contact, HeaderSection, RedirectSection, RouteSection, ServerSection, TlsSection,
};
use super::{Checker, Inherited};
use crate::acme::{self, AcmeSettings};
use crate::config::{
    Lifetime, Ping, Rate, Redirect, Route, Site, Target, TunnelPolicy, PING_TIMEOUT,
    REDIRECT_STATUSES,
};
use crate::files::Root;
use crate::handshake::answer::Status;
use crate::handshake::edits::{RequestEdits, ResponseEdits, Template};
use crate::route::{Access, Location, Origins, PathEdit, RewriteRedirect, Routes};
use crate::tls::{self, CertFiles, ServerSettings, ServerTls};
use crate::upstream::Group;

/// The `try_files` entry, last, that sends what no other entry finds to
/// the route's upstream.
const FALLBACK: &str = "@upstream";

impl Checker<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn site(
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
            access: None,
        };
        let inherited = self.headers(&server.into(), &empty);
        if server.route.is_empty() && !self.misspelled(&span, "route") {
            self.problem(
                span,
                "this [[server]] has no routes: add [[server.route]] with location = \"/\" and an upstream",
            );
        }
        let mut locations = Vec::new();
        let mut route_ids = Vec::new();
        for section in &server.route {
            let r = section.get_ref();
            // A bad location does not hide the route's other problems.
            let location = self.check(r.location.span(), Location::parse(r.location.get_ref()));
            let route = self.route(r, section.span(), &inherited, names, groups, inline);
            let (Some(location), Some(route)) = (location, route) else {
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

    pub(super) fn headers(&mut self, h: &HeaderSection<'_>, parent: &Inherited) -> Inherited {
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
        let access = match h.access {
            Some(list) => self.check(list.span(), Access::new(list.get_ref())),
            None => None,
        };
        Inherited {
            request,
            response: parent.response.merged(&own),
            origins: origins.or_else(|| parent.origins.clone()),
            access: access.or_else(|| parent.access.clone()),
        }
    }

    /// A route, or `None` with its problems recorded: every setting is
    /// checked even when an earlier one failed.
    pub(super) fn route(
        &mut self,
        r: &RouteSection,
        span: Range<usize>,
        inherited: &Inherited,
        names: &HashMap<String, usize>,
        groups: &mut Vec<Group>,
        inline: &mut HashMap<String, usize>,
    ) -> Option<Route> {
        let settings = self.headers(&r.into(), inherited);
        let target = self.target(r, span, names, groups, inline);
        if let (Some(tries), None) = (&r.try_files, &r.root) {
            self.problem(
                tries.span(),
                "try_files needs a root = \"DIR\" on the same route",
            );
        }
        if let (Some(Target::Files(_)), Some(origins)) = (&target, &r.origins) {
            self.problem(
                origins.span(),
                "origins only apply to WebSocket routes with an upstream: remove them here",
            );
        }
        // A rewrite with `redirect` answers; it is not a path edit, so it
        // may sit beside strip_prefix.
        let (rewrite, rewrite_redirect) = match &r.rewrite {
            Some(rw) => match rw.get_ref().redirect {
                Some(status) => {
                    let (pattern, to) = (&rw.get_ref().pattern, &rw.get_ref().to);
                    let rule = RewriteRedirect::new(pattern, to, status);
                    (None, self.check(rw.span(), rule))
                }
                None => (Some(rw), None),
            },
            None => (None, None),
        };
        let path_edit = match (rewrite, &r.strip_prefix) {
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
        let name = match &r.name {
            Some(name) if name.get_ref().is_empty() => {
                self.problem(
                    name.span(),
                    "a route's name is its metrics label: give it one, e.g. name = \"chat\", or remove the key to use the location",
                );
                None
            }
            Some(name) => Some(name.get_ref().clone()),
            None => Some(r.location.get_ref().clone()),
        };
        Some(Route {
            location: r.location.get_ref().clone(),
            name: name?,
            target: target?,
            rewrite_redirect,
            path_edit,
            request: settings.request,
            response: settings.response,
            origins: settings.origins,
            access: settings.access,
            tunnel: self.tunnel_policy(r),
        })
    }

    /// A route's tunnel policy, every key checked.
    fn tunnel_policy(&mut self, r: &RouteSection) -> TunnelPolicy {
        let idle = r
            .idle_timeout
            .as_ref()
            .and_then(|t| self.duration(t, "idle_timeout", true));
        let interval = r
            .ping_interval
            .as_ref()
            .and_then(|t| self.duration(t, "ping_interval", false));
        let timeout = r
            .ping_timeout
            .as_ref()
            .and_then(|t| self.duration(t, "ping_timeout", false));
        for (key, value) in [
            ("ping_timeout", r.ping_timeout.as_ref().map(Spanned::span)),
            ("ping_upstream", r.ping_upstream.as_ref().map(Spanned::span)),
        ] {
            if let (Some(span), None) = (value, &r.ping_interval) {
                self.problem(
                    span,
                    format!("{key} needs ping_interval = DURATION on the same route"),
                );
            }
        }
        let ping = interval.map(|interval| Ping {
            interval,
            timeout: timeout.unwrap_or(PING_TIMEOUT),
            upstream: r.ping_upstream.as_ref().is_some_and(|u| *u.get_ref()),
        });
        let max = r
            .max_lifetime
            .as_ref()
            .and_then(|t| self.duration(t, "max_lifetime", false));
        let jitter = r
            .lifetime_jitter
            .as_ref()
            .and_then(|t| self.duration(t, "lifetime_jitter", true));
        if let (Some(j), None) = (&r.lifetime_jitter, &r.max_lifetime) {
            self.problem(
                j.span(),
                "lifetime_jitter needs max_lifetime = DURATION on the same route",
            );
        }
        let lifetime = max.map(|max| Lifetime {
            max,
            jitter: jitter.unwrap_or_default(),
        });
        let mut positive = |value: Option<&Spanned<u64>>, key: &str| {
            let v = value?;
            if *v.get_ref() == 0 {
                self.problem(v.span(), format!("{key} must be more than zero"));
                return None;
            }
            Some(*v.get_ref())
        };
        let max_message_bytes = positive(r.max_message_bytes.as_ref(), "max_message_bytes");
        let bytes_per_s = positive(r.max_bytes_per_s.as_ref(), "max_bytes_per_s");
        let byte_burst = positive(r.max_bytes_burst.as_ref(), "max_bytes_burst");
        let widen = |v: &Option<Spanned<u32>>| {
            v.as_ref()
                .map(|v| Spanned::new(v.span(), u64::from(*v.get_ref())))
        };
        let messages_per_s = positive(widen(&r.max_messages_per_s).as_ref(), "max_messages_per_s");
        let message_burst = positive(widen(&r.max_messages_burst).as_ref(), "max_messages_burst");
        let close_after = r
            .rate_limit_close_after
            .as_ref()
            .and_then(|t| self.duration(t, "rate_limit_close_after", false));
        let rate = (messages_per_s.is_some() || bytes_per_s.is_some()).then(|| Rate {
            messages_per_s: messages_per_s.map(|m| m as u32),
            bytes_per_s,
            message_burst: message_burst.or(messages_per_s).unwrap_or(0) as u32,
            byte_burst: byte_burst.or(bytes_per_s).unwrap_or(0),
            close_after,
        });
        if rate.is_none() {
            for (key, value) in [
                (
                    "max_messages_burst",
                    r.max_messages_burst.as_ref().map(Spanned::span),
                ),
                (
                    "max_bytes_burst",
                    r.max_bytes_burst.as_ref().map(Spanned::span),
                ),
                (
                    "rate_limit_close_after",
                    r.rate_limit_close_after.as_ref().map(Spanned::span),
                ),
            ] {
                if let Some(span) = value {
                    self.problem(
                        span,
                        format!(
                            "{key} needs max_messages_per_s or max_bytes_per_s on the same route"
                        ),
                    );
                }
            }
        }
        TunnelPolicy {
            idle,
            ping,
            lifetime,
            max_message_bytes,
            rate,
        }
    }

    /// What a route hands requests to: an upstream group or a static root.
    fn target(
        &mut self,
        r: &RouteSection,
        span: Range<usize>,
        names: &HashMap<String, usize>,
        groups: &mut Vec<Group>,
        inline: &mut HashMap<String, usize>,
    ) -> Option<Target> {
        if let Some(status) = &r.status {
            if r.upstream.is_some() || r.root.is_some() || r.redirect.is_some() {
                self.problem(
                    status.span(),
                    "a route with a status answers every request with it: drop upstream, root and redirect, or the status",
                );
                return None;
            }
            let codes: Vec<u16> = Status::ROUTE_ANSWERS.iter().map(|s| s.code()).collect();
            return match Status::route_answer(*status.get_ref()) {
                Some(s) => Some(Target::Status(s)),
                None => {
                    self.problem(
                        status.span(),
                        format!("a route's status is one of {codes:?}"),
                    );
                    None
                }
            };
        }
        if let Some(redirect) = &r.redirect {
            if r.upstream.is_some() || r.root.is_some() {
                self.problem(
                    redirect.span(),
                    "a route has one of upstream, root or redirect: split it into two locations",
                );
                return None;
            }
            return self.redirect(redirect).map(Target::Redirect);
        }
        let falls_back = r
            .try_files
            .as_ref()
            .is_some_and(|t| t.get_ref().last().is_some_and(|e| e == FALLBACK));
        match (&r.upstream, &r.root) {
            (Some(up), Some(root)) if falls_back => {
                let tries = r.try_files.as_ref().map_or(&[][..], |t| t.get_ref());
                let tries = &tries[..tries.len() - 1];
                let span = r.try_files.as_ref().map_or(root.span(), Spanned::span);
                let dir = self.base.join(root.get_ref());
                let made = Root::new(&dir, tries).map_err(|e| e.replace('\n', " "));
                let root = self.check(span, made);
                let group = self.group_ref(up, names, groups, inline);
                Some(Target::FilesThenUpstream {
                    root: root?,
                    group: group?,
                })
            }
            (Some(_), Some(root)) => {
                self.problem(
                    root.span(),
                    "a route has either an upstream or a root, not both: split it into two locations, \
                     or end try_files with \"@upstream\" to send what no entry finds to the upstream",
                );
                None
            }
            (None, None) => {
                if !self.misspelled(&span, "upstream") && !self.misspelled(&span, "root") {
                    self.problem(
                        span,
                        "this route has no target: add upstream = \"GROUP\" (or \"HOST:PORT\"), root = \"DIR\", redirect = { to = \"URL\" } or status = 404",
                    );
                }
                None
            }
            (Some(up), None) => self
                .group_ref(up, names, groups, inline)
                .map(Target::Upstream),
            (None, Some(_)) if falls_back => {
                let span = r.try_files.as_ref().map_or(span, Spanned::span);
                self.problem(
                    span,
                    "try_files ends with \"@upstream\" but the route has no upstream: add upstream = \"GROUP\"",
                );
                None
            }
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
                self.check(span, made).map(Target::Files)
            }
        }
    }

    /// `redirect = { status = 301, to = "https://$host$request_uri" }`
    /// (308 when no status is given).
    fn redirect(&mut self, section: &Spanned<RedirectSection>) -> Option<Redirect> {
        let r = section.get_ref();
        let status = match &r.status {
            None => 308,
            Some(s) if REDIRECT_STATUSES.contains(s.get_ref()) => *s.get_ref(),
            Some(s) => {
                self.problem(
                    s.span(),
                    format!("a redirect's status is one of {REDIRECT_STATUSES:?}"),
                );
                return None;
            }
        };
        let to = self.check(r.to.span(), Template::parse(r.to.get_ref()))?;
        if to.is_empty() {
            self.problem(
                r.to.span(),
                "a redirect needs somewhere to go: to = \"URL\"",
            );
            return None;
        }
        Some(Redirect { status, to })
    }

    /// A listener's TLS: its certificates loaded and checked now, so a
    /// bad file fails `--check` rather than the first handshake.
    pub(super) fn server_tls(
        &mut self,
        section: &Spanned<TlsSection>,
        http2: bool,
    ) -> Option<ServerTls> {
        let t = section.get_ref();
        let mut certificates = Vec::new();
        match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => certificates.push(CertFiles {
                cert: self.base.join(cert.get_ref()),
                key: self.base.join(key.get_ref()),
            }),
            (Some(_), None) if self.misspelled(&section.span(), "key") => {}
            (None, Some(_)) if self.misspelled(&section.span(), "cert") => {}
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
        let misspelled = ["cert", "key", "certificates", "acme"]
            .iter()
            .any(|key| self.misspelled(&section.span(), key));
        let acme = match &t.acme {
            Some(a) => match self.acme(a) {
                Some(settings) => Some(settings),
                None => return None,
            },
            None => None,
        };
        if certificates.is_empty() && acme.is_none() {
            if misspelled {
                return None;
            }
            self.problem(
                section.span(),
                "TLS needs a certificate: cert = \"CHAIN.pem\", key = \"KEY.pem\" \
                 (or certificates = [{ cert = …, key = … }, …] for several names, \
                 or acme = { names = [\"example.com\"], contact = \"mailto:…\" })",
            );
            return None;
        }
        let mut settings = ServerSettings::new(certificates);
        settings.acme = acme;
        settings.http2 = http2;
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

    /// `acme = { names = […], … }`, checked; relative paths start from the
    /// file's directory.
    fn acme(&mut self, section: &Spanned<AcmeSection>) -> Option<AcmeSettings> {
        let a = section.get_ref();
        let before = self.problems.len();
        let directory = match &a.directory {
            Some(d) => self
                .check(d.span(), acme::directory_url(d.get_ref()))
                .unwrap_or_default(),
            None => acme::LETS_ENCRYPT.to_owned(),
        };
        let challenge = match &a.challenge {
            Some(c) => self
                .check(c.span(), acme::challenge_kind(c.get_ref()))
                .unwrap_or(acme::ChallengeKind::TlsAlpn01),
            None => acme::ChallengeKind::TlsAlpn01,
        };
        let mut names = Vec::new();
        for name in &a.names {
            if let Some(n) = self.check(name.span(), acme::check_name(name.get_ref())) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        if a.names.is_empty() && !self.misspelled(&section.span(), "names") {
            self.problem(
                section.span(),
                "acme needs the names to get a certificate for: names = [\"example.com\"]",
            );
        }
        let contact = match a.contact.as_ref().map(|c| c.get_ref()) {
            None => Vec::new(),
            Some(Contact::One(c)) => vec![c.clone()],
            Some(Contact::Many(c)) => c.clone(),
        };
        if let Some(span) = a.contact.as_ref().map(|c| c.span()) {
            for c in &contact {
                if !c.starts_with("mailto:") {
                    self.problem(
                        span.clone(),
                        format!(
                            "contact {c:?}: write it as a URL, e.g. \"mailto:ops@example.com\""
                        ),
                    );
                }
            }
        }
        let storage = a.storage.as_ref().map_or_else(
            || std::path::PathBuf::from(acme::DEFAULT_STORAGE),
            |s| self.base.join(s.get_ref()),
        );
        let ca = a.ca.as_ref().map(|c| self.base.join(c.get_ref()));
        // A misspelled `names` was reported as such; either way there is
        // nothing to order.
        if self.problems.len() > before || names.is_empty() {
            return None;
        }
        Some(AcmeSettings {
            directory,
            contact,
            names,
            challenge,
            storage,
            ca,
        })
    }

    /// `protocols = ["TLSv1.2", "TLSv1.3"]`; none given: both.
    pub(super) fn versions(
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
}
