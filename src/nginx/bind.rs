//! `proxy_bind`: the local address nginx's upstream connections come
//! from. The proxy sets that per upstream group, not per location, so
//! every proxying location's value is gathered and one becomes the
//! file's `source_addresses`, with a note where a location differs.

use std::net::IpAddr;

use super::emit::Value;
use super::grammar::{Directive, Place};
use super::inherit::Inherited;
use super::translate::Translator;

impl Translator {
    /// The `proxy_bind` in force where `pp` (a `proxy_pass`) is.
    pub(super) fn proxy_bind(&mut self, pp: &Directive, inherited: &Inherited) {
        let Some(d) = inherited.get("proxy_bind") else {
            self.binds.push((None, pp.at.clone()));
            return;
        };
        let words = d.words();
        let bound = match words.as_slice() {
            ["off"] => None,
            [_, "transparent"] => {
                let what = "transparent (connecting from the client's address) is not supported: \
                            bind to an address of this host, or run this part with nginx";
                return self.notes.error(&d.at, &d.name, what);
            }
            [word] if word.contains('$') => {
                let what = "an address chosen by a variable is not supported: write the address";
                return self.notes.error(&d.at, &d.name, what);
            }
            [word] => match word.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    let what = "takes an IP address of this host, e.g. 10.0.0.2 (a fixed port \
                                would allow one connection per server)";
                    return self.notes.error(&d.at, &d.name, what);
                }
            },
            _ => {
                return self
                    .notes
                    .error(&d.at, &d.name, "takes one address, or off")
            }
        };
        self.binds.push((bound, d.at.clone()));
    }

    /// Once every location is done: the first address written becomes
    /// `source_addresses`, for every upstream connection.
    pub(super) fn settle_binds(&mut self) {
        let Some((first, at)) = self
            .binds
            .iter()
            .find_map(|(ip, at)| Some((ip.as_ref().copied()?, at.clone())))
        else {
            return;
        };
        for (ip, here) in &self.binds {
            if let Some(ip) = ip.filter(|ip| *ip != first) {
                self.notes.note(
                    here,
                    "proxy_bind",
                    format!("{ip} here, but the proxy has one source address for every route: {first} (the first one written) applies"),
                );
            }
        }
        if self.binds.iter().any(|(ip, _)| ip.is_none()) {
            self.notes.note(
                &at,
                "proxy_bind",
                "applies to the upstream connections of every location, also those without proxy_bind",
            );
        }
        let list = vec![first.to_string()];
        self.toml.top.set("source_addresses", Value::Strs(list));
    }
}

/// Where a location's `proxy_bind` was, for the notes.
pub(super) type Bind = (Option<IpAddr>, Place);

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{translate_text, Severity};

    /// nginx text with `http` directives `top` and, in two locations,
    /// `a` and `b`.
    fn nginx(top: &str, a: &str, b: &str) -> String {
        format!(
            "http {{\n{top}\nupstream app {{ server 10.0.0.5:9000; }}\nserver {{\nlisten 8080;\n\
             location / {{ proxy_pass http://app; {a} }}\n\
             location /b/ {{ proxy_pass http://10.0.0.6:9000; {b} }}\n}}\n}}\n"
        )
    }

    /// A translation's `source_addresses` and notes.
    type Translated = (Option<Vec<String>>, Vec<String>);

    /// The translation's `source_addresses` and notes, or its errors.
    fn translated(text: &str) -> Result<Translated, Vec<String>> {
        let t = translate_text(text, "t.conf", Path::new("/srv/nginx")).map_err(|errors| {
            let errors = errors.iter().filter(|n| n.severity == Severity::Error);
            errors.map(ToString::to_string).collect::<Vec<_>>()
        })?;
        let table: toml::Table = toml::from_str(&t.toml).expect("valid TOML");
        let sources = table.get("source_addresses").map(|list| {
            let list = list.as_array().expect("a list");
            list.iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        });
        Ok((sources, t.notes.iter().map(ToString::to_string).collect()))
    }

    #[test]
    fn proxy_bind_becomes_source_addresses() {
        let one = |list: &[&str]| Some(list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        /// (http level, location a, location b, source_addresses, a note saying)
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            Option<Vec<String>>,
            Option<&'static str>,
        );
        let table: Vec<Case> = vec![
            ("proxy_bind 10.0.0.2;", "", "", one(&["10.0.0.2"]), None),
            (
                "",
                "proxy_bind 2001:db8::2;",
                "proxy_bind 2001:db8::2;",
                one(&["2001:db8::2"]),
                None,
            ),
            ("", "", "", None, None),
            (
                "proxy_bind 10.0.0.2;",
                "",
                "proxy_bind off;",
                one(&["10.0.0.2"]),
                Some("also those without"),
            ),
            (
                "",
                "proxy_bind 10.0.0.2;",
                "",
                one(&["10.0.0.2"]),
                Some("also those without"),
            ),
            (
                "",
                "proxy_bind 10.0.0.2;",
                "proxy_bind 10.0.0.3;",
                one(&["10.0.0.2"]),
                Some(
                    "10.0.0.3 here, but the proxy has one source address for every route: 10.0.0.2",
                ),
            ),
        ];
        for (top, a, b, want, note) in table {
            let (sources, notes) = translated(&nginx(top, a, b))
                .unwrap_or_else(|e| panic!("{top:?} {a:?} {b:?}: {e:#?}"));
            assert_eq!(sources, want, "{top:?} {a:?} {b:?}");
            let bind_notes: Vec<&String> =
                notes.iter().filter(|n| n.contains("proxy_bind")).collect();
            match note {
                Some(words) => assert!(
                    bind_notes.iter().any(|n| n.contains(words)),
                    "{top:?} {a:?} {b:?}: {bind_notes:#?} lack {words:?}"
                ),
                None => assert!(bind_notes.is_empty(), "{bind_notes:#?}"),
            }
        }
    }

    #[test]
    fn what_proxy_bind_cannot_say_is_refused() {
        let table = [
            (
                "proxy_bind 10.0.0.2 transparent;",
                "transparent (connecting from the client's address) is not supported",
            ),
            (
                "proxy_bind $remote_addr;",
                "chosen by a variable is not supported",
            ),
            (
                "proxy_bind 10.0.0.2:4000;",
                "takes an IP address of this host",
            ),
            (
                "proxy_bind lb.internal;",
                "takes an IP address of this host",
            ),
        ];
        for (bind, want) in table {
            let errors = translated(&nginx("", bind, "")).expect_err(bind);
            assert!(
                errors.len() == 1 && errors[0].contains("proxy_bind") && errors[0].contains(want),
                "{bind}: {errors:#?}"
            );
        }
    }
}
