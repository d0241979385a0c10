//! The translation's output: TOML in the configuration file's format,
//! built as sections of keys and rendered with a comment before each block
//! naming the nginx `file:line` it came from. The rendering also keeps
//! which TOML line came from which nginx place, so that a problem the
//! file checker finds can be reported where the nginx file says it.

use std::fmt::Write;

use super::grammar::Place;

/// A TOML value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Strs(Vec<String>),
    /// `{ key = value, … }`
    Inline(Vec<(String, Value)>),
    /// `[{ … }, { … }]`
    Tables(Vec<Vec<(String, Value)>>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }
}

/// A `[header]` or `[[header]]` with its keys.
#[derive(Clone, Debug)]
pub struct Section {
    /// As written between the brackets, brackets included.
    pub header: String,
    /// The nginx directive it came from, and what it was (`server`).
    pub from: Option<(Place, String)>,
    pub keys: Vec<(String, Value)>,
}

impl Section {
    pub fn new(header: impl Into<String>, from: Option<(Place, String)>) -> Section {
        Section {
            header: header.into(),
            from,
            keys: Vec::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: Value) {
        match self.keys.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.keys.push((key.to_string(), value)),
        }
    }
}

/// The whole file: top-level keys, then sections in order.
#[derive(Clone, Debug, Default)]
pub struct Toml {
    pub top: Section0,
    pub sections: Vec<Section>,
}

/// The top level's keys.
#[derive(Clone, Debug, Default)]
pub struct Section0 {
    pub keys: Vec<(String, Value)>,
}

impl Section0 {
    pub fn set(&mut self, key: &str, value: Value) {
        match self.keys.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.keys.push((key.to_string(), value)),
        }
    }
}

/// Rendered text and, for each line that opens a section, the nginx
/// place it came from.
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    pub text: String,
    /// `(line, place)`, lines from 1, ascending.
    pub origins: Vec<(usize, Place)>,
}

impl Rendered {
    /// The nginx place the TOML `line` belongs to: that of the nearest
    /// section opened at or before it.
    pub fn origin(&self, line: usize) -> Option<&Place> {
        self.origins
            .iter()
            .rev()
            .find(|(l, _)| *l <= line)
            .map(|(_, p)| p)
    }
}

impl Toml {
    pub fn render(&self, header: &str) -> Rendered {
        let mut out = Rendered::default();
        let mut text = String::new();
        for line in header.lines() {
            let _ = writeln!(text, "# {}", comment(line));
        }
        for (k, v) in &self.top.keys {
            let _ = writeln!(text, "{} = {}", key(k), value(v));
        }
        for s in &self.sections {
            text.push('\n');
            if let Some((place, what)) = &s.from {
                let origin = format!("{what}, from {}:{}", place.file.display(), place.line);
                let _ = writeln!(text, "# {}", comment(&origin));
                out.origins
                    .push((text.matches('\n').count() + 1, place.clone()));
            }
            let _ = writeln!(text, "{}", s.header);
            for (k, v) in &s.keys {
                let _ = writeln!(text, "{} = {}", key(k), value(v));
            }
        }
        out.text = text;
        out
    }
}

/// Text for a comment: TOML allows no control character there but tab,
/// so the others (which nginx arguments may hold) are written escaped.
fn comment(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A key, bare when TOML allows it.
pub fn quote_key(k: &str) -> String {
    key(k)
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        quote(k)
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::Str(s) => quote(s),
        Value::Int(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Strs(list) => {
            let items: Vec<String> = list.iter().map(|s| quote(s)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Inline(pairs) => inline(pairs),
        Value::Tables(tables) => {
            let items: Vec<String> = tables.iter().map(|t| inline(t)).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

fn inline(pairs: &[(String, Value)]) -> String {
    if pairs.is_empty() {
        return "{}".into();
    }
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), value(v)))
        .collect();
    format!("{{ {} }}", items.join(", "))
}

/// A TOML basic string: a literal string when it needs no escape and has
/// a backslash (regexes read better that way), else a basic one.
pub fn quote(s: &str) -> String {
    let plain = |c: char| !c.is_control() && c != '\'';
    if s.contains('\\') && s.chars().all(plain) {
        return format!("'{s}'");
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_through_toml() {
        for s in [
            "plain",
            "a\"b",
            r"^/(api)/(.*)$",
            "it's \\ x",
            "\u{1}\n\t",
            "ü",
        ] {
            let text = format!("k = {}\n", quote(s));
            let parsed: toml::Table = toml::from_str(&text).unwrap();
            assert_eq!(parsed["k"].as_str(), Some(s), "{text}");
        }
    }
}
