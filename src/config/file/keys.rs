//! Keys a section does not have. serde, told to refuse them, stops at the
//! first one and hides every other problem of the file; so the sections
//! accept any key, and this pass walks the parsed document against each
//! section's field names (read from its serde derive, so the two cannot
//! drift apart) and reports every unknown key at its own position, with
//! the key that was probably meant.

use std::ops::Range;

use serde::de::{self, DeserializeOwned, Visitor};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::sections::{
    AcmeSection, AddHeader, CertSection, DrainSection, FileSections, HealthSection, LimitSection,
    ListenerSection, RedirectSection, Rewrite, RouteSection, ServerSection, TimeoutSection,
    TlsSection, UpstreamSection, UpstreamTlsSection,
};

/// A key no section here has, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unknown {
    /// Where the key is written.
    pub(super) span: Range<usize>,
    /// The table it is written in, as serde spans it (a `[header]`, or a
    /// whole `{ inline }` table); `None` at the top level.
    pub(super) table: Option<Range<usize>>,
    pub(super) message: String,
    /// The known key it is close to, if any: a check that would complain
    /// that this key is missing stays quiet, the misspelling says it all.
    pub(super) meant: Option<&'static str>,
}

/// Every key in `root` that its section does not have, in file order.
pub(super) fn unknown_keys(root: &DeTable<'_>) -> Vec<Unknown> {
    let mut found = Vec::new();
    walk(root, None, &FILE, &mut found);
    found.sort_by_key(|u| u.span.start);
    found
}

/// A kind of section: how messages name it, and its keys.
struct Section {
    /// As written in the file, e.g. `[[server.route]]`; empty for the top
    /// level.
    name: &'static str,
    keys: fn() -> &'static [&'static str],
    /// Keys whose values are sections of their own.
    nested: &'static [(&'static str, Nested)],
}

#[derive(Clone, Copy)]
enum Nested {
    /// One table: `[timeouts]`, `tls = { … }`.
    One(&'static Section),
    /// An array of tables: `[[listener]]`, `certificates = [{ … }, …]`.
    Each(&'static Section),
    /// A table whose keys are names the user picks: `[upstream.NAME]`.
    Named(&'static Section),
}

const FILE: Section = Section {
    name: "",
    keys: field_names::<FileSections>,
    nested: &[
        ("timeouts", Nested::One(&TIMEOUTS)),
        ("limits", Nested::One(&LIMITS)),
        ("drain", Nested::One(&DRAIN)),
        ("listener", Nested::Each(&LISTENER)),
        ("upstream", Nested::Named(&UPSTREAM)),
        ("server", Nested::Each(&SERVER)),
    ],
};
const TIMEOUTS: Section = Section {
    name: "[timeouts]",
    keys: field_names::<TimeoutSection>,
    nested: &[],
};
const LIMITS: Section = Section {
    name: "[limits]",
    keys: field_names::<LimitSection>,
    nested: &[],
};
const DRAIN: Section = Section {
    name: "[drain]",
    keys: field_names::<DrainSection>,
    nested: &[],
};
const LISTENER: Section = Section {
    name: "[[listener]]",
    keys: field_names::<ListenerSection>,
    nested: &[("tls", Nested::One(&LISTENER_TLS))],
};
const LISTENER_TLS: Section = Section {
    name: "[listener.tls]",
    keys: field_names::<TlsSection>,
    nested: &[
        ("certificates", Nested::Each(&CERTIFICATE)),
        ("acme", Nested::One(&ACME)),
    ],
};
const ACME: Section = Section {
    name: "acme",
    keys: field_names::<AcmeSection>,
    nested: &[],
};
const CERTIFICATE: Section = Section {
    name: "a certificates entry",
    keys: field_names::<CertSection>,
    nested: &[],
};
const UPSTREAM: Section = Section {
    name: "[upstream.NAME]",
    keys: field_names::<UpstreamSection>,
    nested: &[
        ("tls", Nested::One(&UPSTREAM_TLS)),
        ("health", Nested::One(&UPSTREAM_HEALTH)),
    ],
};
const UPSTREAM_HEALTH: Section = Section {
    name: "[upstream.NAME.health]",
    keys: field_names::<HealthSection>,
    nested: &[],
};
const UPSTREAM_TLS: Section = Section {
    name: "[upstream.NAME.tls]",
    keys: field_names::<UpstreamTlsSection>,
    nested: &[],
};
const SERVER: Section = Section {
    name: "[[server]]",
    keys: field_names::<ServerSection>,
    nested: &[
        ("response_headers", Nested::Each(&ADD_HEADER)),
        ("route", Nested::Each(&ROUTE)),
    ],
};
const ROUTE: Section = Section {
    name: "[[server.route]]",
    keys: field_names::<RouteSection>,
    nested: &[
        ("response_headers", Nested::Each(&ADD_HEADER)),
        ("rewrite", Nested::One(&REWRITE)),
        ("redirect", Nested::One(&REDIRECT)),
    ],
};
const ADD_HEADER: Section = Section {
    name: "a response_headers entry",
    keys: field_names::<AddHeader>,
    nested: &[],
};
const REDIRECT: Section = Section {
    name: "redirect",
    keys: field_names::<RedirectSection>,
    nested: &[],
};
const REWRITE: Section = Section {
    name: "rewrite",
    keys: field_names::<Rewrite>,
    nested: &[],
};

/// Every section, to say where a key that is in the wrong one belongs.
const ALL: &[&Section] = &[
    &FILE,
    &TIMEOUTS,
    &LIMITS,
    &DRAIN,
    &LISTENER,
    &LISTENER_TLS,
    &CERTIFICATE,
    &ACME,
    &UPSTREAM,
    &UPSTREAM_TLS,
    &UPSTREAM_HEALTH,
    &SERVER,
    &ROUTE,
    &ADD_HEADER,
    &REWRITE,
    &REDIRECT,
];

fn walk(
    table: &DeTable<'_>,
    at: Option<Range<usize>>,
    section: &Section,
    found: &mut Vec<Unknown>,
) {
    let keys = (section.keys)();
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        if let Some((_, nested)) = section.nested.iter().find(|(k, _)| *k == name) {
            descend(value, *nested, found);
        } else if !keys.contains(&name) {
            found.push(unknown(name, key.span(), at.clone(), section));
        }
    }
}

/// Values of the wrong kind are left alone: deserializing them says what
/// was expected.
fn descend(value: &Spanned<DeValue<'_>>, nested: Nested, found: &mut Vec<Unknown>) {
    let table = |item: &Spanned<DeValue<'_>>, section, found: &mut Vec<Unknown>| {
        if let DeValue::Table(table) = item.get_ref() {
            walk(table, Some(item.span()), section, found);
        }
    };
    match (nested, value.get_ref()) {
        (Nested::One(section), DeValue::Table(_)) => table(value, section, found),
        (Nested::Each(section), DeValue::Array(items)) => {
            for item in items.iter() {
                table(item, section, found);
            }
        }
        (Nested::Named(section), DeValue::Table(names)) => {
            for (_, item) in names.iter() {
                table(item, section, found);
            }
        }
        _ => {}
    }
}

fn unknown(
    name: &str,
    span: Range<usize>,
    table: Option<Range<usize>>,
    section: &Section,
) -> Unknown {
    let keys = (section.keys)();
    let place = match section.name {
        "" => String::new(),
        named => format!(" in {named}"),
    };
    let meant = nearest(name, keys);
    let message = match meant {
        Some(meant) => format!("unknown key `{name}`{place} (did you mean `{meant}`?)"),
        None => {
            let homes: Vec<&str> = ALL
                .iter()
                .filter(|s| (s.keys)().contains(&name))
                .map(|s| {
                    if s.name.is_empty() {
                        "the top level"
                    } else {
                        s.name
                    }
                })
                .collect();
            if homes.is_empty() {
                format!(
                    "unknown key `{name}`{place}: the keys here are {}",
                    keys.join(", ")
                )
            } else {
                format!(
                    "unknown key `{name}`{place}: `{name}` belongs in {}",
                    homes.join(" or ")
                )
            }
        }
    };
    Unknown {
        span,
        table,
        message,
        meant,
    }
}

/// The known key `name` is most likely a misspelling of: the closest by
/// edit distance (a swap of two neighbours counts as one edit), ignoring
/// case, if it is close enough for its length.
fn nearest(name: &str, keys: &[&'static str]) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    // One edit in a short key, two from six letters, three from ten.
    let allowed = ((name.chars().count() + 2) / 4).clamp(1, 3);
    keys.iter()
        .map(|&key| (edits(&name, key), key))
        .filter(|&(d, _)| d <= allowed)
        .min_by_key(|&(d, _)| d)
        .map(|(_, key)| key)
}

/// Optimal string alignment distance: insertions, deletions,
/// substitutions and transpositions of neighbours, each one edit.
fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: edits between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The field names `T`'s serde derive reads, in declaration order: `T` is
/// asked to deserialize itself from a deserializer that only notes the
/// names a struct announces.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldNames) {
        Err(Announced(Some(fields))) => fields,
        _ => panic!(
            "{} is not a struct with named fields",
            std::any::type_name::<T>()
        ),
    }
}

struct FieldNames;

/// What [`FieldNames`] learned: the struct's fields, or nothing.
#[derive(Debug)]
struct Announced(Option<&'static [&'static str]>);

impl std::fmt::Display for Announced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names noted")
    }
}

impl std::error::Error for Announced {}

impl de::Error for Announced {
    fn custom<T: std::fmt::Display>(_: T) -> Announced {
        Announced(None)
    }
}

impl<'de> de::Deserializer<'de> for FieldNames {
    type Error = Announced;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Announced> {
        Err(Announced(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Announced> {
        Err(Announced(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_knows_its_keys_and_nested_ones_are_among_them() {
        for section in ALL {
            let keys = (section.keys)();
            assert!(!keys.is_empty(), "{}", section.name);
            for (key, _) in section.nested {
                assert!(keys.contains(key), "{} has no {key}", section.name);
            }
        }
        assert!(field_names::<RouteSection>().contains(&"upstream"));
    }

    #[test]
    fn edit_distances() {
        let cases = [
            ("upstrem", "upstream", 1),
            ("adress", "address", 1),
            ("tsl", "tls", 1),
            ("location", "location", 0),
            ("to", "too", 1),
            ("", "root", 4),
        ];
        for (a, b, want) in cases {
            assert_eq!(edits(a, b), want, "{a} → {b}");
            assert_eq!(edits(b, a), want, "{b} → {a}");
        }
    }

    #[test]
    fn the_nearest_key_is_suggested_only_when_close() {
        let keys = field_names::<RouteSection>();
        let cases = [
            ("upstrem", Some("upstream")),
            ("Location", Some("location")),
            ("rot", Some("root")),
            ("try_file", Some("try_files")),
            ("strip_prefx", Some("strip_prefix")),
            ("proxy_pass", None),
            ("x", None),
        ];
        for (name, want) in cases {
            assert_eq!(nearest(name, keys), want, "{name}");
        }
    }

    fn messages(text: &str) -> Vec<(usize, String, Option<&'static str>)> {
        let root = DeTable::parse(text).unwrap();
        unknown_keys(root.get_ref())
            .into_iter()
            .map(|u| (u.span.start, u.message, u.meant))
            .collect()
    }

    #[test]
    fn unknown_keys_in_every_kind_of_section() {
        let text = r#"workerz = 2
idle = "1h"
[timeouts]
idel = "1h"
[[listener]]
adress = "0.0.0.0:80"
cert = "a.pem"
tls = { certificates = [{ cert = "a.pem", kye = "a.key" }], protocol = [] }
[upstream.app]
servers = ["127.0.0.1:1"]
balanse = "hash"
[upstream.app.tls]
client_crt = "c.pem"
[[server]]
nmes = ["a"]
request_headers = { X-Anything = "goes" }
response_headers = [{ nam = "X", value = "y" }]
[[server.route]]
upstrem = "app"
rewrite = { pattern = "a", too = "b" }
"#;
        let got = messages(text);
        let want: Vec<(&str, Option<&str>)> = vec![
            ("unknown key `workerz` (did you mean `workers`?)", Some("workers")),
            (
                "unknown key `idle`: `idle` belongs in [timeouts]",
                None,
            ),
            (
                "unknown key `idel` in [timeouts] (did you mean `idle`?)",
                Some("idle"),
            ),
            (
                "unknown key `adress` in [[listener]] (did you mean `address`?)",
                Some("address"),
            ),
            (
                "unknown key `cert` in [[listener]]: `cert` belongs in [listener.tls] or a certificates entry",
                None,
            ),
            (
                "unknown key `kye` in a certificates entry (did you mean `key`?)",
                Some("key"),
            ),
            (
                "unknown key `protocol` in [listener.tls] (did you mean `protocols`?)",
                Some("protocols"),
            ),
            (
                "unknown key `balanse` in [upstream.NAME] (did you mean `balance`?)",
                Some("balance"),
            ),
            (
                "unknown key `client_crt` in [upstream.NAME.tls] (did you mean `client_cert`?)",
                Some("client_cert"),
            ),
            (
                "unknown key `nmes` in [[server]] (did you mean `names`?)",
                Some("names"),
            ),
            (
                "unknown key `nam` in a response_headers entry (did you mean `name`?)",
                Some("name"),
            ),
            (
                "unknown key `upstrem` in [[server.route]] (did you mean `upstream`?)",
                Some("upstream"),
            ),
            (
                "unknown key `too` in rewrite (did you mean `to`?)",
                Some("to"),
            ),
        ];
        let messages: Vec<(&str, Option<&str>)> = got
            .iter()
            .map(|(_, m, meant)| (m.as_str(), *meant))
            .collect();
        assert_eq!(messages, want);
        for (at, _, _) in &got {
            let line = &text[*at..];
            let key = line.split([' ', '=']).next().unwrap();
            assert!(
                want.iter().any(|(m, _)| m.contains(&format!("`{key}`"))),
                "span at {key:?}"
            );
        }
    }

    #[test]
    fn a_key_far_from_any_lists_the_keys_of_its_section() {
        let got = messages("[drain]\ngrace = \"5s\"\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 8, "at the key");
        assert_eq!(
            got[0].1,
            "unknown key `grace` in [drain]: the keys here are timeout, spread, removed_routes"
        );
    }

    #[test]
    fn values_of_the_wrong_kind_are_left_to_serde() {
        assert_eq!(messages("listener = 3\nupstream = \"x\"\n"), vec![]);
    }
}
