//! What nginx's header directives become: `proxy_set_header` as the
//! route's request field templates (with the Upgrade/Connection idiom and
//! the forwarding fields the proxy sets itself), nginx's default `Host`,
//! and `add_header`/`proxy_hide_header` on a server or a route.

use super::emit::{Section, Value};
use super::grammar::Directive;
use super::inherit::Inherited;
use super::location::ServerContext;
use super::translate::Translator;
use super::values;

/// Variables a request field template understands.
const TEMPLATE_VARS: [&str; 4] = ["host", "remote_addr", "scheme", "request_uri"];

impl Translator {
    pub(super) fn request_headers(
        &mut self,
        pp: &Directive,
        inherited: &Inherited,
        context: &ServerContext,
        proxy_host: &str,
        route: &mut Section,
    ) {
        let mut set: Vec<(String, Value)> = Vec::new();
        let mut host_set = false;
        let mut forwarding = 0;
        for h in inherited.list("proxy_set_header") {
            let words = h.words();
            let [name, value] = words.as_slice() else {
                self.notes
                    .error(&h.at, "proxy_set_header", "takes a field name and a value");
                continue;
            };
            let lower = name.to_ascii_lowercase();
            match (lower.as_str(), *value) {
                ("upgrade", "$http_upgrade") => {}
                ("connection", v)
                    if matches!(v, "upgrade" | "Upgrade" | "close" | "" | "keep-alive")
                        || v.strip_prefix('$').is_some_and(|n| {
                            self.maps.connection_upgrade.iter().any(|m| m == n)
                        }) => {}
                ("upgrade" | "connection", _) => self.notes.note(
                    &h.at,
                    "proxy_set_header",
                    format!("{name} dropped (the proxy sets Upgrade and Connection itself)"),
                ),
                ("host", "$http_host") => host_set = true,
                ("host", "$proxy_host") => {
                    host_set = true;
                    set.push(("Host".into(), Value::str(proxy_host)));
                }
                ("x-real-ip", "$remote_addr")
                | ("x-forwarded-proto", "$scheme")
                | ("x-forwarded-for", "$proxy_add_x_forwarded_for" | "$remote_addr") => {
                    forwarding += 1;
                    if lower == "x-forwarded-for" && self.trusted.is_empty() {
                        self.notes.note(
                            &h.at,
                            "proxy_set_header",
                            "a client's own X-Forwarded-For is replaced by its address, not appended to (only set_real_ip_from peers are believed)",
                        );
                    }
                }
                (_, value) => {
                    if lower == "host" {
                        host_set = true;
                    }
                    if let Some(v) = self.template(h, value, context) {
                        set.push((name.to_string(), Value::Str(v)));
                    }
                }
            }
        }
        if !host_set {
            set.push(("Host".into(), Value::str(proxy_host)));
        }
        if forwarding < 3 && !self.said_forwarding {
            self.said_forwarding = true;
            self.notes.note(
                &pp.at,
                "proxy_pass",
                "X-Forwarded-For, X-Real-IP and X-Forwarded-Proto always go upstream (nginx sends only the ones proxy_set_header names, and passes a client's own unchanged)",
            );
        }
        if !set.is_empty() {
            route.set("request_headers", Value::Inline(set));
        }
    }

    /// A field value with nginx variables, as the proxy's template.
    pub(super) fn template(
        &mut self,
        h: &Directive,
        value: &str,
        context: &ServerContext,
    ) -> Option<String> {
        let mut out = value.to_string();
        for var in values::variables(value) {
            if TEMPLATE_VARS.contains(&var.as_str()) {
                continue;
            }
            let literal = match var.as_str() {
                "server_port" => context.port.map(|p| p.to_string()),
                "server_name" => context.names.first().cloned(),
                _ => None,
            };
            match literal {
                Some(text) => {
                    out = out
                        .replace(&format!("${{{var}}}"), &text)
                        .replace(&format!("${var}"), &text);
                }
                None => {
                    if let Some(m) = self.maps.other.get_mut(&var) {
                        m.1 = true;
                    }
                    self.notes.error(
                        &h.at,
                        &h.name,
                        format!("${var} is not supported here: use $host, $remote_addr, $scheme, $request_uri or a fixed value"),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A location's `add_header` and `proxy_hide_header`, where they are
    /// not the server's (which the `[[server]]` section carries).
    pub(super) fn route_response_headers(
        &mut self,
        inherited: &Inherited,
        server: &Inherited,
        route: &mut Section,
    ) {
        let own = inherited.list("add_header");
        let outer = server.list("add_header");
        if own != outer {
            if let (Some(first), false) = (own.first(), outer.is_empty()) {
                self.notes.note(
                    &first.at,
                    "add_header",
                    "the server's add_header fields go on this location's answers too (the proxy adds a server's fields to every route; nginx drops them where a location has its own)",
                );
            }
            self.response_headers(own, "response_headers", route);
        }
        let own = inherited.list("proxy_hide_header");
        if own != server.list("proxy_hide_header") {
            self.response_headers(own, "hide_headers", route);
        }
    }

    /// `add_header` lines as `response_headers` (or `proxy_hide_header`
    /// lines as `hide_headers`) in `section`.
    pub(super) fn response_headers(
        &mut self,
        list: &[Directive],
        key: &str,
        section: &mut Section,
    ) {
        if key == "hide_headers" {
            let hidden: Vec<String> = list
                .iter()
                .filter_map(|h| h.args.first().map(|a| a.text.clone()))
                .collect();
            if !hidden.is_empty() {
                section.set("hide_headers", Value::Strs(hidden));
            }
            return;
        }
        let mut added = Vec::new();
        for a in list {
            let words = a.words();
            let (name, value, always) = match words.as_slice() {
                [n, v] => (*n, *v, false),
                [n, v, "always"] => (*n, *v, true),
                _ => {
                    self.notes.error(
                        &a.at,
                        "add_header",
                        "takes a name, a value and maybe always",
                    );
                    continue;
                }
            };
            if value.contains('$') {
                self.notes.error(
                    &a.at,
                    "add_header",
                    "variables in added fields are not supported: write the value",
                );
                continue;
            }
            let mut t = vec![
                ("name".to_string(), Value::str(name)),
                ("value".to_string(), Value::str(value)),
            ];
            if always {
                t.push(("always".to_string(), Value::Bool(true)));
            } else {
                self.notes.note(
                    &a.at,
                    "add_header",
                    "also added to 101 Switching Protocols answers (nginx adds it to 2xx and 3xx only)",
                );
            }
            added.push(t);
        }
        if !added.is_empty() {
            section.set("response_headers", Value::Tables(added));
        }
    }
}
