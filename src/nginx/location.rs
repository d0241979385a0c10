//! `location` blocks → `[[server.route]]` sections: the match, the target
//! (`proxy_pass` to a group or an address, `root`/`alias` with `try_files`
//! and its named-location fallback, or a `return` redirect), nginx's URI
//! rules for `proxy_pass` and `rewrite` (`break`, and the redirecting
//! flags), access lists and timeouts. The header directives are
//! `headers.rs`'s.

use super::emit::{Section, Value};
use super::grammar::Directive;
use super::inherit::{self, Inherited};
use super::translate::{Translator, Upstream};
use super::values::{self, ProxyUrl};
use crate::handshake::answer::Status;

/// What a server's locations need to know about it.
pub(super) struct ServerContext {
    pub(super) names: Vec<String>,
    pub(super) port: Option<u16>,
    /// Named locations (`@x`), which only `try_files` reaches.
    pub(super) named: Vec<Directive>,
    /// Every location's words (`["^~", "/api/"]`), to tell where a
    /// rewritten path lands.
    pub(super) locations: Vec<Vec<String>>,
}

/// A block's own `name` directive (the last one), for the directives a
/// block does not inherit from the one around it (`try_files`).
fn own<'a>(block: &'a Directive, name: &str) -> Option<&'a Directive> {
    block.children().iter().rev().find(|c| c.name == name)
}

/// The `try_files` entry the configuration file spells for "the route's
/// upstream".
const FALLBACK: &str = "@upstream";

impl Translator {
    pub(super) fn location(
        &mut self,
        d: &Directive,
        server: &Inherited,
        context: &ServerContext,
    ) -> Option<Section> {
        let words = d.words();
        let (location, prefix, regex) = match words.as_slice() {
            [named] if named.starts_with('@') => return None,
            ["=", path] => (format!("= {path}"), Some(path.to_string()), None),
            ["^~", path] => (format!("^~ {path}"), Some(path.to_string()), None),
            ["~", re] => (format!("~ {re}"), None, Some(re.to_string())),
            ["~*", re] => (format!("~* {re}"), None, Some(format!("(?i){re}"))),
            [path] => (path.to_string(), Some(path.to_string()), None),
            _ => {
                self.notes.error(
                    &d.at,
                    "location",
                    "a location is `= /path`, `^~ /prefix`, `~ regex`, `~* regex`, `/prefix` or `@name`",
                );
                return None;
            }
        };
        let inherited = server.enter(d.children());
        let mut route = Section::new(
            "[[server.route]]",
            Some((d.at.clone(), format!("location {}", words.join(" ")))),
        );
        route.set("location", Value::Str(location));
        let mut proxy_pass = None;
        let mut rewrites = Vec::new();
        let mut alias = None;
        let mut returns = Vec::new();
        for c in d.children() {
            match c.name.as_str() {
                "proxy_pass" => proxy_pass = Some(c),
                "rewrite" => rewrites.push(c),
                "alias" => alias = Some(c),
                "location" => self.notes.error(
                    &c.at,
                    "location",
                    "nested locations are not supported: write it beside its parent",
                ),
                "return" => returns.push(c),
                "limit_conn" => self.limit_conn(c, "location"),
                "http2" => self.dropped_or_refused(c),
                "proxy_http_version" | "proxy_set_header" | "add_header" | "proxy_hide_header"
                | "allow" | "deny" | "try_files" => {}
                name if inherit::is_inherited(name) => self.level_note(c),
                _ => self.dropped_or_refused(c),
            }
        }
        self.access(&inherited, &mut route);
        if let Some(r) = returns.first() {
            // A return answers before anything else in the location.
            if let Some((key, value)) = self.location_return(r, context) {
                route.set(key, value);
            }
            for other in [proxy_pass, alias].into_iter().flatten() {
                self.notes.note(
                    &other.at,
                    &other.name,
                    "dropped (the location's return answers first)",
                );
            }
            return Some(route);
        }
        let (edit, redirect) = match self.rewrite(&rewrites, Some((&words, context))) {
            Some(Rewritten::Path(edit)) => (Some(edit), None),
            Some(Rewritten::Redirect(redirect)) => (None, Some(redirect)),
            None => (None, None),
        };
        match proxy_pass {
            Some(pp) => {
                if let Some(p) = prefix
                    .as_deref()
                    .filter(|p| p.len() > 1 && p.ends_with('/'))
                {
                    if words[0] != "=" {
                        self.notes.note(
                            &d.at,
                            "location",
                            format!(
                                "nginx answers {} with a 301 to {p}; the proxy routes {0} like any other path",
                                p.trim_end_matches('/')
                            ),
                        );
                    }
                }
                if let Some(t) = own(d, "try_files") {
                    self.notes.error(
                        &t.at,
                        "try_files",
                        "try_files beside proxy_pass is not supported: split the static part into its own location",
                    );
                }
                self.proxied(pp, &inherited, context, &mut route, edit, prefix, regex)?;
            }
            None => {
                if let Some(a) = alias {
                    self.alias(a, prefix.as_deref(), &mut route, edit.is_some());
                } else {
                    let root = inherited.word("root").unwrap_or("html").to_string();
                    route.set("root", Value::str(self.paths.under_prefix(&root)));
                    if let Some(edit) = edit {
                        route.set("rewrite", edit);
                    }
                }
                self.try_files(own(d, "try_files"), &inherited, server, context, &mut route);
            }
        }
        if let (Some(redirect), Some(first)) = (redirect, rewrites.first()) {
            if route.keys.iter().any(|(k, _)| k == "rewrite") {
                self.notes.error(
                    &first.at,
                    "rewrite",
                    "a redirecting rewrite beside a path edit (a URI in proxy_pass, or alias) is not supported \
                     (a route has one rewrite): give the redirect a location of its own",
                );
            } else {
                route.set("rewrite", redirect);
            }
        }
        self.route_response_headers(&inherited, server, &mut route);
        Some(route)
    }

    /// `return` in a location (or a server): the route's `redirect`
    /// (`return 301|302|303|307|308 URL`, or a bare URL for 302) or its
    /// `status` (`return 404`).
    pub(super) fn location_return(
        &mut self,
        r: &Directive,
        context: &ServerContext,
    ) -> Option<(&'static str, Value)> {
        let words = r.words();
        let (code, rest) = match words.as_slice() {
            [url] if url.starts_with("http://") || url.starts_with("https://") => (302, Some(*url)),
            [code] => (code.parse::<u16>().unwrap_or(0), None),
            [code, rest] => (code.parse::<u16>().unwrap_or(0), Some(*rest)),
            _ => (0, None),
        };
        if let (true, Some(url)) = (crate::config::REDIRECT_STATUSES.contains(&code), rest) {
            let to = self.redirect_target(r, url, context)?;
            return Some((
                "redirect",
                Value::Inline(vec![
                    ("status".into(), Value::Int(i64::from(code))),
                    ("to".into(), Value::Str(to)),
                ]),
            ));
        }
        if Status::route_answer(code).is_some() {
            if rest.is_some() {
                self.notes.note(
                    &r.at,
                    "return",
                    "its text is dropped: the answer's body is the proxy's own one line",
                );
            }
            return Some(("status", Value::Int(i64::from(code))));
        }
        let codes: Vec<u16> = Status::ROUTE_ANSWERS.iter().map(|s| s.code()).collect();
        self.notes.error(
            &r.at,
            "return",
            format!(
                "return {} is not supported: redirect (301, 302, 303, 307, 308 URL) or answer one of {codes:?}",
                words.join(" ")
            ),
        );
        None
    }

    /// A redirect's URL as the proxy's template.
    pub(super) fn redirect_target(
        &mut self,
        r: &Directive,
        url: &str,
        context: &ServerContext,
    ) -> Option<String> {
        if url.starts_with('/') {
            self.notes.note(
                &r.at,
                "return",
                "the Location stays relative as written (nginx makes it absolute with the scheme, host and port)",
            );
        }
        self.template(r, url, context)
    }

    /// `allow` and `deny` in force: the route's access list.
    fn access(&mut self, inherited: &Inherited, route: &mut Section) {
        let rules = inherited.list("allow");
        if rules
            .iter()
            .all(|d| d.name == "allow" && d.words() == ["all"])
        {
            return;
        }
        let mut entries = Vec::new();
        for d in rules {
            match d.words().as_slice() {
                [range] if !range.starts_with("unix:") => {
                    entries.push(format!("{} {range}", d.name));
                }
                _ => {
                    self.notes.error(
                        &d.at,
                        &d.name,
                        "takes one address, ADDRESS/BITS or all (unix: is not supported)",
                    );
                    return;
                }
            }
        }
        if !self.trusted.is_empty() {
            if let Some(first) = rules.first() {
                self.notes.note(
                    &first.at,
                    &first.name,
                    "checked against the connecting address (or a PROXY protocol header's), not the X-Forwarded-For address set_real_ip_from believes",
                );
            }
        }
        route.set("access", Value::Strs(entries));
    }

    /// `rewrite REGEX REPLACEMENT break`: the route's path edit;
    /// `… redirect` or `… permanent` (or a replacement that is an
    /// `http://` or `https://` URL): the route's redirect when the regex
    /// matches.
    /// `here`: the location's words and its server, where the rewrite is
    /// in a location (`last` is `break` when the new path surely stays).
    pub(super) fn rewrite(
        &mut self,
        rewrites: &[&Directive],
        here: Option<(&[&str], &ServerContext)>,
    ) -> Option<Rewritten> {
        let (first, rest) = rewrites.split_first()?;
        for extra in rest {
            self.notes.error(
                &extra.at,
                "rewrite",
                "only one rewrite per location is supported: combine them into one regex",
            );
        }
        let words = first.words();
        let (pattern, to, flag) = match words.as_slice() {
            [p, t] => (*p, *t, None),
            [p, t, f] => (*p, *t, Some(*f)),
            _ => {
                self.notes.error(
                    &first.at,
                    "rewrite",
                    "takes a regex, a replacement and a flag",
                );
                return None;
            }
        };
        let absolute = to.starts_with("http://") || to.starts_with("https://");
        let redirect = match flag {
            Some("permanent") => Some(301),
            Some("redirect") => Some(302),
            // nginx redirects to a URL whatever the flag.
            _ if absolute => Some(302),
            Some("break") => None,
            Some("last")
                if here.is_some_and(|(at, server)| last_stays(pattern, to, at, server)) =>
            {
                None
            }
            Some("last") => {
                self.notes.error(
                    &first.at,
                    "rewrite",
                    "rewrite … last is supported where the new path surely lands in this same location and does not match again \
                     (then it is break): use break, and put the route the new path should reach here",
                );
                return None;
            }
            _ => {
                self.notes.error(
                    &first.at,
                    "rewrite",
                    "only the break flag is supported (last searches the locations again): use break, and put the route the new path should reach here",
                );
                return None;
            }
        };
        if let Some(var) = values::variables(to)
            .into_iter()
            .find(|v| !v.chars().all(|c| c.is_ascii_digit()))
        {
            self.notes.error(
                &first.at,
                "rewrite",
                format!("${var} in a replacement is not supported: only captures $1 to $9"),
            );
            return None;
        }
        let mut keys = vec![
            ("pattern".into(), Value::str(pattern)),
            ("to".into(), Value::str(to)),
        ];
        Some(match redirect {
            Some(status) => {
                keys.push(("redirect".into(), Value::Int(status)));
                Rewritten::Redirect(Value::Inline(keys))
            }
            None => Rewritten::Path(Value::Inline(keys)),
        })
    }

    fn alias(&mut self, a: &Directive, prefix: Option<&str>, route: &mut Section, rewrites: bool) {
        let Some(dir) = a.args.first() else {
            self.notes.error(&a.at, "alias", "needs a directory");
            return;
        };
        let Some(prefix) = prefix.filter(|p| !p.is_empty()) else {
            self.notes.error(
                &a.at,
                "alias",
                "alias in a regex location is not supported: use root with a rewrite … break",
            );
            return;
        };
        if rewrites {
            self.notes.error(
                &a.at,
                "alias",
                "alias with a rewrite is not supported: use root and one rewrite … break",
            );
            return;
        }
        route.set("root", Value::str(self.paths.under_prefix(&dir.text)));
        let stripped = prefix.trim_end_matches('/');
        if !stripped.is_empty() {
            route.set("strip_prefix", Value::str(stripped));
        }
    }

    /// `try_files`; a last entry naming a location that proxies sends
    /// what no other entry finds to that location's upstream.
    pub(super) fn try_files(
        &mut self,
        tries: Option<&Directive>,
        inherited: &Inherited,
        server: &Inherited,
        context: &ServerContext,
        route: &mut Section,
    ) {
        if let Some(d) = inherited.get("index") {
            if d.words().first() != Some(&"index.html") {
                self.notes
                    .note(&d.at, "index", "the proxy's index file is index.html");
            }
        }
        let Some(t) = tries else {
            return;
        };
        let mut entries = Vec::new();
        let words = t.words();
        for (i, w) in words.iter().enumerate() {
            if !w.starts_with('@') {
                // The proxy's "$uri/" is the directory's index.html.
                let entry = if *w == "$uri/index.html" { "$uri/" } else { w };
                entries.push(entry.to_string());
                continue;
            }
            let named = context
                .named
                .iter()
                .find(|n| n.args.first().is_some_and(|a| a.text == *w));
            let Some(named) = named else {
                self.notes.error(
                    &t.at,
                    "try_files",
                    format!("{w} names no location of this server"),
                );
                return;
            };
            if i + 1 != words.len() {
                self.notes.error(
                    &t.at,
                    "try_files",
                    format!("{w}: a named location is the last entry"),
                );
                return;
            }
            if !self.fall_back_to(named, server, context, route) {
                return;
            }
            self.notes.note(
                &t.at,
                "try_files",
                format!("WebSocket upgrades and methods other than GET and HEAD go to {w}'s upstream without looking for files"),
            );
            entries.push(FALLBACK.to_string());
        }
        route.set("try_files", Value::Strs(entries));
    }

    /// The named location a `try_files` falls back to, when it proxies:
    /// its upstream and request settings on `route`.
    fn fall_back_to(
        &mut self,
        named: &Directive,
        server: &Inherited,
        context: &ServerContext,
        route: &mut Section,
    ) -> bool {
        let inherited = server.enter(named.children());
        let mut proxy_pass = None;
        for c in named.children() {
            match c.name.as_str() {
                "proxy_pass" => proxy_pass = Some(c),
                "proxy_http_version" | "proxy_set_header" | "add_header" | "proxy_hide_header" => {}
                name if inherit::is_inherited(name) => self.level_note(c),
                _ => self.dropped_or_refused(c),
            }
        }
        let Some(pp) = proxy_pass else {
            self.notes.error(
                &named.at,
                "location",
                "a named location try_files falls back to must proxy_pass: files come from the location's root",
            );
            return false;
        };
        self.proxied(pp, &inherited, context, route, None, None, None)
            .is_some()
    }

    #[allow(clippy::too_many_arguments)]
    fn proxied(
        &mut self,
        pp: &Directive,
        inherited: &Inherited,
        context: &ServerContext,
        route: &mut Section,
        rewrite: Option<Value>,
        prefix: Option<String>,
        regex: Option<String>,
    ) -> Option<()> {
        let Some(arg) = pp.args.first() else {
            self.notes.error(&pp.at, "proxy_pass", "needs a URL");
            return None;
        };
        let url = match values::proxy_url(&arg.text) {
            Ok(url) => url,
            Err(e) => {
                self.notes.error(&pp.at, "proxy_pass", e);
                return None;
            }
        };
        if url.authority.contains('$') {
            self.notes.error(
                &pp.at,
                "proxy_pass",
                "an upstream chosen by a variable is not supported: name an upstream block or HOST:PORT",
            );
            return None;
        }
        let (target, proxy_host) = self.target(pp, &url, inherited)?;
        route.set("upstream", Value::Str(target));
        if let Some(edit) = self.uri_edit(pp, &url, rewrite, prefix, regex) {
            let key = if matches!(edit, Value::Str(_)) {
                "strip_prefix"
            } else {
                "rewrite"
            };
            route.set(key, edit);
        }
        self.request_headers(pp, inherited, context, &proxy_host, route);
        self.timeouts(pp, inherited, route);
        self.proxy_bind(pp, inherited);
        if inherited.word("proxy_http_version") != Some("1.1") {
            self.notes.note(
                &pp.at,
                "proxy_pass",
                "without proxy_http_version 1.1 nginx speaks HTTP/1.0 upstream and cannot pass a WebSocket upgrade; the proxy speaks HTTP/1.1",
            );
        }
        Some(())
    }

    /// The route's `upstream` and `$proxy_host`.
    fn target(
        &mut self,
        pp: &Directive,
        url: &ProxyUrl,
        inherited: &Inherited,
    ) -> Option<(String, String)> {
        let tls = self.upstream_tls(inherited, url.tls);
        if let Some(group) = self.group(&url.authority) {
            match &group.scheme {
                Some((was, at)) if *was != url.tls => {
                    let at = at.clone();
                    self.notes.error(
                        &pp.at,
                        "proxy_pass",
                        format!("upstream {} is reached over http and https ({at}): the proxy speaks one to a group", url.authority),
                    );
                    return None;
                }
                Some(_) => {}
                None => group.scheme = Some((url.tls, pp.at.clone())),
            }
            if group.tls.is_none() {
                group.tls = tls;
            }
            return Some((url.authority.clone(), url.authority.clone()));
        }
        let (host_port, proxy_host) =
            values::host_port(&url.authority, if url.tls { 443 } else { 80 });
        if !url.tls {
            return Some((host_port, proxy_host));
        }
        // A TLS upstream needs a group for its [upstream.NAME.tls].
        let name: String = host_port
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        if self.group(&name).is_none() {
            let mut section = super::emit::Section::new(
                format!("[upstream.{name}]"),
                Some((
                    pp.at.clone(),
                    format!("proxy_pass https://{}", url.authority),
                )),
            );
            section.keys.clear();
            self.upstreams.push(Upstream {
                name: name.clone(),
                section,
                servers: vec![host_port],
                scheme: Some((true, pp.at.clone())),
                tls,
            });
        }
        Some((name, proxy_host))
    }

    /// `[upstream.NAME.tls]` from the `proxy_ssl_*` directives in force.
    fn upstream_tls(&mut self, inherited: &Inherited, tls: bool) -> Option<Section> {
        if !tls {
            return None;
        }
        // The header is named when the group is known; a placeholder here.
        let mut section = Section::new("", None);
        let verify = inherited.word("proxy_ssl_verify") == Some("on");
        if let Some(ca) = inherited.word("proxy_ssl_trusted_certificate") {
            section.set("ca", Value::str(self.paths.under_conf(ca)));
        }
        if !verify {
            section.set("insecure_skip_verify", Value::Bool(true));
            if let Some(d) = inherited.get("proxy_ssl_verify") {
                self.notes.note(
                    &d.at,
                    "proxy_ssl_verify",
                    "off, as nginx's default: the upstream's certificate is not verified (insecure_skip_verify); turn it on with proxy_ssl_trusted_certificate",
                );
            }
        }
        if let (Some(c), Some(k)) = (
            inherited.word("proxy_ssl_certificate"),
            inherited.word("proxy_ssl_certificate_key"),
        ) {
            section.set("client_cert", Value::str(self.paths.under_conf(c)));
            section.set("client_key", Value::str(self.paths.under_conf(k)));
        }
        if let Some(d) = inherited.get("proxy_ssl_protocols") {
            let kept: Vec<String> = d
                .words()
                .into_iter()
                .filter(|w| matches!(*w, "TLSv1.2" | "TLSv1.3"))
                .map(String::from)
                .collect();
            if kept.len() < d.args.len() {
                self.notes.note(
                    &d.at,
                    "proxy_ssl_protocols",
                    "versions before TLSv1.2 dropped (refused by the proxy: RFC 8996)",
                );
            }
            if !kept.is_empty() {
                section.set("protocols", Value::Strs(kept));
            }
        }
        for name in ["proxy_ssl_server_name", "proxy_ssl_name"] {
            if let Some(d) = inherited.get(name) {
                self.notes.note(
                    &d.at,
                    name,
                    "the proxy always sends the upstream's host name as SNI and verifies against it",
                );
            }
        }
        Some(section)
    }

    /// The path edit for nginx's `proxy_pass` URI rules: a URI part
    /// replaces the matched prefix; with variables it is the URI as
    /// written; after a `rewrite … break` the rewritten path is passed.
    fn uri_edit(
        &mut self,
        pp: &Directive,
        url: &ProxyUrl,
        rewrite: Option<Value>,
        prefix: Option<String>,
        regex: Option<String>,
    ) -> Option<Value> {
        let Some(uri) = &url.uri else {
            return rewrite;
        };
        if rewrite.is_some() {
            self.notes.error(
                &pp.at,
                "proxy_pass",
                "a URI in proxy_pass beside a rewrite is not supported (nginx uses one or the other per request): fold the URI into the rewrite's replacement and drop it here",
            );
            return None;
        }
        let vars = values::variables(uri);
        if vars.is_empty() {
            let Some(prefix) = prefix else {
                self.notes.error(
                    &pp.at,
                    "proxy_pass",
                    "a URI in proxy_pass in a regex location needs variables (nginx refuses it too): use $1 captures, or a rewrite … break",
                );
                return None;
            };
            if *uri == prefix {
                return None;
            }
            if uri == "/" && prefix.ends_with('/') && prefix.len() > 1 {
                return Some(Value::str(prefix.trim_end_matches('/')));
            }
            return Some(Value::Inline(vec![
                (
                    "pattern".into(),
                    Value::Str(format!("^{}(.*)$", values::regex_literal(&prefix))),
                ),
                ("to".into(), Value::Str(format!("{uri}$1"))),
            ]));
        }
        if uri == "$request_uri" || uri == "$uri$is_args$args" {
            return None;
        }
        let (body, keeps_query) = match uri.strip_suffix("$is_args$args") {
            Some(body) => (body, true),
            None => (uri.as_str(), false),
        };
        if let Some(v) = values::variables(body)
            .into_iter()
            .find(|v| !v.chars().all(|c| c.is_ascii_digit()))
        {
            self.notes.error(
                &pp.at,
                "proxy_pass",
                format!("${v} in the proxy_pass URI is not supported: only regex captures $1 to $9 (and a final $is_args$args)"),
            );
            return None;
        }
        let pattern = match (regex, prefix) {
            (Some(re), _) => re,
            (None, Some(p)) => format!("^{}", values::regex_literal(&p)),
            (None, None) => return None,
        };
        if !keeps_query {
            self.notes.note(
                &pp.at,
                "proxy_pass",
                "with variables the URI is passed as written, so the query string is dropped, as nginx does: end it with $is_args$args to keep it",
            );
        }
        let to = if keeps_query {
            body.to_string()
        } else {
            format!("{body}?")
        };
        Some(Value::Inline(vec![
            ("pattern".into(), Value::Str(pattern)),
            ("to".into(), Value::Str(to)),
        ]))
    }

    /// `proxy_read_timeout`: the route's tunnel idle timeout, and the
    /// response timeout every route shares; `proxy_connect_timeout`.
    fn timeouts(&mut self, pp: &Directive, inherited: &Inherited, route: &mut Section) {
        match inherited.get("proxy_read_timeout") {
            Some(d) => match d.words().first().and_then(|w| values::duration(w)) {
                Some(t) => {
                    route.set("idle_timeout", Value::str(values::duration_text(t)));
                    self.read_timeouts
                        .values
                        .push((t, d.at.clone(), d.name.clone()));
                }
                None => self
                    .notes
                    .error(&d.at, &d.name, "takes a time such as 3600s"),
            },
            None if !self.said_default_read_timeout => {
                self.said_default_read_timeout = true;
                self.notes.note(
                    &pp.at,
                    "proxy_pass",
                    "no proxy_read_timeout: nginx closes a tunnel idle for 60s, the proxy after 1h",
                );
            }
            None => {}
        }
        if let Some(d) = inherited.get("proxy_connect_timeout") {
            match d.words().first().and_then(|w| values::duration(w)) {
                Some(t) => self
                    .connect_timeouts
                    .values
                    .push((t, d.at.clone(), d.name.clone())),
                None => self.notes.error(&d.at, &d.name, "takes a time such as 5s"),
            }
        }
    }
}

/// What a location's `rewrite` becomes on its route.
pub(super) enum Rewritten {
    /// `break`: the path edit.
    Path(Value),
    /// `redirect`, `permanent` or a URL: the redirect when it matches.
    Redirect(Value),
}

/// Whether `rewrite PATTERN TO last` in the location `here` acts as
/// `break`: nginx searches the locations again with the new path, and
/// runs this location's rewrite again if it lands here. Sure only when
/// `here` is a prefix location the new path's literal start (`TO` up to
/// its first capture or query) stays under, no regex location can take
/// it (none in the server, or `here` is `^~`), no longer prefix or exact
/// location may, and `PATTERN` (anchored) cannot match it again.
fn last_stays(pattern: &str, to: &str, here: &[&str], server: &ServerContext) -> bool {
    let (prefix, stops_regexes) = match here {
        [p] => (*p, false),
        ["^~", p] => (*p, true),
        _ => return false,
    };
    let literal = &to[..to.find(['$', '?']).unwrap_or(to.len())];
    if !literal.starts_with(prefix) {
        return false;
    }
    let others = server.locations.iter().filter(|w| w.as_slice() != here);
    for words in others {
        let taken = match words.as_slice() {
            [m, _] if m == "~" || m == "~*" => !stops_regexes,
            [m, x] if m == "=" => x.starts_with(literal),
            [q] | [_, q] => {
                q.len() > prefix.len()
                    && (literal.starts_with(q.as_str()) || q.starts_with(literal))
            }
            _ => false,
        };
        if taken {
            return false;
        }
    }
    // The regex's own literal start: what it must see first to match (an
    // alternation may leave its other branches unanchored).
    let Some(anchored) = pattern.strip_prefix('^').filter(|p| !p.contains('|')) else {
        return false;
    };
    let meta = |c: char| "\\.+*?()[]{}|^$".contains(c);
    let start = &anchored[..anchored.find(meta).unwrap_or(anchored.len())];
    !(start.starts_with(literal) || literal.starts_with(start))
}
