//! The header edits a route makes: request fields set from templates
//! (nginx's `proxy_set_header`, with `$host`, `$remote_addr`, `$scheme` and
//! `$request_uri`), and response fields added (`add_header`, with its
//! `always` flag) or hidden (`proxy_hide_header`). Templates are parsed once
//! when the configuration loads; applying them writes straight into the
//! outgoing head.

use std::net::IpAddr;

use crate::buffer::{Buf, Full};
use crate::handshake::fields::{is_clean_value, is_hop_by_hop};

/// Fields the proxy itself owns on the way up: a route may not set them.
const PROXY_OWNED: [&str; 5] = [
    "upgrade",
    "connection",
    "content-length",
    "transfer-encoding",
    "sec-websocket-key",
];

/// Fields of a 101 or of framing that a route may not hide or add.
const RESPONSE_OWNED: [&str; 6] = [
    "upgrade",
    "connection",
    "content-length",
    "transfer-encoding",
    "sec-websocket-accept",
    "sec-websocket-protocol",
];

/// One piece of a request field template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    /// The Host header without its port, lowercased.
    Host,
    /// The client's IP address.
    RemoteAddr,
    /// `http` or `https`.
    Scheme,
    /// The request target as the client sent it, query included.
    RequestUri,
}

/// A field value with `$variables`, parsed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template's variables stand for in one request.
#[derive(Clone, Copy, Debug)]
pub struct Vars<'a> {
    pub host: &'a str,
    pub remote_addr: IpAddr,
    pub scheme: &'a str,
    pub request_uri: &'a str,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        if !is_clean_value(text.as_bytes()) {
            return Err("a header value cannot contain CR, LF or NUL".into());
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            if at > 0 {
                parts.push(Part::Text(rest[..at].to_string()));
            }
            let after = &rest[at + 1..];
            let braced = after.starts_with('{');
            let name_start = usize::from(braced);
            let len = after[name_start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len() - name_start);
            let name = &after[name_start..name_start + len];
            let part = match name {
                "host" => Part::Host,
                "remote_addr" => Part::RemoteAddr,
                "scheme" => Part::Scheme,
                "request_uri" => Part::RequestUri,
                _ => {
                    return Err(format!(
                        "unknown variable ${name}: use $host, $remote_addr, $scheme or $request_uri"
                    ))
                }
            };
            let mut used = name_start + len;
            if braced {
                if !after[used..].starts_with('}') {
                    return Err(format!("${{{name} is missing its closing brace"));
                }
                used += 1;
            }
            parts.push(part);
            rest = &after[used..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Writes the value with `vars` filled in.
    pub fn write(&self, out: &mut Buf, vars: &Vars<'_>) -> Result<(), Full> {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.put(text.as_bytes())?,
                Part::Host => out.put(vars.host.as_bytes())?,
                Part::RemoteAddr => out.put_display(vars.remote_addr)?,
                Part::Scheme => out.put(vars.scheme.as_bytes())?,
                Part::RequestUri => out.put(vars.request_uri.as_bytes())?,
            }
        }
        Ok(())
    }

    /// The value with `vars` filled in, as text (for the proxy's own
    /// answers, off the relay path).
    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Host => out.push_str(vars.host),
                Part::RemoteAddr => out.push_str(&vars.remote_addr.to_string()),
                Part::Scheme => out.push_str(vars.scheme),
                Part::RequestUri => out.push_str(vars.request_uri),
            }
        }
        out
    }

    /// Whether the value is always empty: nginx's way of removing a field.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

/// A request field a route sets, replacing any the client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetField {
    pub name: String,
    pub value: Template,
}

/// Request fields a route sets (an empty value removes the field).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestEdits {
    pub set: Vec<SetField>,
}

impl RequestEdits {
    /// Adds `name: value`; a later entry for the same name replaces an
    /// earlier one, so a route overrides its server.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        check_name(name)?;
        let lower = name.to_ascii_lowercase();
        if PROXY_OWNED.contains(&lower.as_str()) || is_hop_by_hop(&lower) {
            return Err(format!(
                "{name} is set by the proxy itself (it rewrites the upgrade handshake): remove this entry"
            ));
        }
        let value = Template::parse(value)?;
        self.set.retain(|f| !f.name.eq_ignore_ascii_case(name));
        self.set.push(SetField {
            name: name.to_string(),
            value,
        });
        Ok(())
    }

    /// Whether the route sets `name` (so the client's copy is dropped).
    pub fn sets(&self, name: &str) -> bool {
        self.set.iter().any(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// A response field a route adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddField {
    pub name: String,
    pub value: String,
    /// Added to every response, errors included; otherwise only to the
    /// statuses nginx's `add_header` covers (plus 101, the WebSocket one).
    pub always: bool,
}

/// Response fields a route adds or hides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseEdits {
    pub add: Vec<AddField>,
    /// Lowercased names of upstream fields not passed to the client.
    pub hide: Vec<String>,
}

impl ResponseEdits {
    pub fn add(&mut self, name: &str, value: &str, always: bool) -> Result<(), String> {
        check_name(name)?;
        check_response_name(name)?;
        if !is_clean_value(value.as_bytes()) {
            return Err("a header value cannot contain CR, LF or NUL".into());
        }
        self.add.retain(|f| !f.name.eq_ignore_ascii_case(name));
        self.add.push(AddField {
            name: name.to_string(),
            value: value.to_string(),
            always,
        });
        Ok(())
    }

    pub fn hide(&mut self, name: &str) -> Result<(), String> {
        check_name(name)?;
        check_response_name(name)?;
        let lower = name.to_ascii_lowercase();
        if !self.hide.contains(&lower) {
            self.hide.push(lower);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.hide.is_empty()
    }

    /// Whether an upstream field reaches the client: neither hidden nor
    /// replaced by an added one.
    pub fn passes(&self, name: &str) -> bool {
        !self.hide.iter().any(|h| h.eq_ignore_ascii_case(name))
            && !self.add.iter().any(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Writes the added fields that apply to `status`.
    pub fn write_added(&self, out: &mut Buf, status: u16) -> Result<(), Full> {
        // nginx's add_header statuses, and 101 for the WebSocket handshake.
        let success = matches!(
            status,
            101 | 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
        );
        for f in self.add.iter().filter(|f| f.always || success) {
            out.put(f.name.as_bytes())?;
            out.put(b": ")?;
            out.put(f.value.as_bytes())?;
            out.put(b"\r\n")?;
        }
        Ok(())
    }

    /// These edits, then `more`'s: a route's own entries override its
    /// server's for the same name.
    pub fn merged(&self, more: &ResponseEdits) -> ResponseEdits {
        let mut merged = self.clone();
        merged.add.retain(|f| {
            !more
                .add
                .iter()
                .any(|g| g.name.eq_ignore_ascii_case(&f.name))
        });
        merged.add.extend(more.add.iter().cloned());
        for h in &more.hide {
            if !merged.hide.contains(h) {
                merged.hide.push(h.clone());
            }
        }
        merged
    }
}

/// RFC 9110 §5.1: a field name is a token.
fn check_name(name: &str) -> Result<(), String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!(
            "{name:?} is not a header name: use letters, digits and -"
        ));
    }
    Ok(())
}

fn check_response_name(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if RESPONSE_OWNED.contains(&lower.as_str()) || is_hop_by_hop(&lower) {
        return Err(format!(
            "{name} belongs to the handshake or the framing and cannot be changed: remove this entry"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn expand(text: &str) -> Result<String, String> {
        let template = Template::parse(text)?;
        let mut out = Buf::with_capacity(256);
        let vars = Vars {
            host: "example.com",
            remote_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
            scheme: "https",
            request_uri: "/ws?x=1",
        };
        template.write(&mut out, &vars).unwrap();
        Ok(String::from_utf8(out.data().to_vec()).unwrap())
    }

    #[test]
    fn templates_table() {
        let ok = [
            ("$host", "example.com"),
            ("plain", "plain"),
            ("", ""),
            ("for=$remote_addr;proto=$scheme", "for=10.0.0.7;proto=https"),
            ("${host}x$request_uri", "example.comx/ws?x=1"),
        ];
        for (text, want) in ok {
            assert_eq!(expand(text).as_deref(), Ok(want), "{text}");
        }
        for (bad, why) in [
            ("$http_upgrade", "unknown variable $http_upgrade"),
            ("${host", "closing brace"),
            ("a\r\nb", "CR, LF"),
        ] {
            let err = expand(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(Template::parse("").unwrap().is_empty());
    }

    #[test]
    fn request_edits_refuse_what_the_proxy_owns() {
        let mut edits = RequestEdits::default();
        edits.set("Host", "$host").unwrap();
        edits.set("host", "other").unwrap();
        assert_eq!(edits.set.len(), 1, "a later entry replaces");
        assert!(edits.sets("HOST"));
        for name in ["Upgrade", "Connection", "Keep-Alive", "Content-Length"] {
            let err = edits.set(name, "x").unwrap_err();
            assert!(err.contains("set by the proxy"), "{name}: {err}");
        }
        assert!(edits
            .set("bad name", "x")
            .unwrap_err()
            .contains("not a header name"));
    }

    #[test]
    fn response_edits_by_status_and_merge() {
        let mut server = ResponseEdits::default();
        server
            .add("Strict-Transport-Security", "max-age=31536000", true)
            .unwrap();
        server.add("X-Frame-Options", "DENY", false).unwrap();
        server.hide("Server").unwrap();
        let mut route = ResponseEdits::default();
        route.add("x-frame-options", "SAMEORIGIN", false).unwrap();
        route.hide("X-Powered-By").unwrap();
        let merged = server.merged(&route);
        let render = |status| {
            let mut out = Buf::with_capacity(512);
            merged.write_added(&mut out, status).unwrap();
            String::from_utf8(out.data().to_vec()).unwrap()
        };
        assert_eq!(
            render(101),
            "Strict-Transport-Security: max-age=31536000\r\nx-frame-options: SAMEORIGIN\r\n"
        );
        assert_eq!(
            render(404),
            "Strict-Transport-Security: max-age=31536000\r\n"
        );
        assert!(!merged.passes("server"));
        assert!(!merged.passes("X-POWERED-BY"));
        assert!(
            !merged.passes("Strict-Transport-Security"),
            "added replaces"
        );
        assert!(merged.passes("Content-Type"));
        for name in ["Upgrade", "Sec-WebSocket-Accept", "Transfer-Encoding"] {
            assert!(route.hide(name).is_err(), "{name}");
        }
    }
}
