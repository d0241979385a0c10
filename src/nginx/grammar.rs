//! nginx's configuration grammar: directives made of words and quoted
//! strings, ended by `;` or by a `{ … }` block, with `#` comments, and
//! `include` (globs allowed) spliced in where it stands. Every directive
//! and every argument keeps the file, line and column it was written at.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Deepest `include` nesting followed (nginx has no limit but a loop would
/// never end).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Deepest block nesting accepted (the parser recurses once per block).
const MAX_BLOCK_DEPTH: usize = 64;

/// Where something is written: `file:line:column`, both from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One argument as nginx reads it: its text with quotes removed and
/// escapes applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    pub text: String,
    pub at: Place,
}

/// A directive: `name arg… ;` or `name arg… { directives }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<Arg>,
    /// `Some` for a block directive, even an empty one.
    pub block: Option<Vec<Directive>>,
    pub at: Place,
}

impl Directive {
    /// The arguments' texts.
    pub fn words(&self) -> Vec<&str> {
        self.args.iter().map(|a| a.text.as_str()).collect()
    }

    /// The block's directives; none for a simple directive.
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// A file that does not read as nginx configuration, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub at: Place,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// How file names in `include` resolve: relative to the directory of the
/// main configuration file, as nginx's `conf_prefix`.
#[derive(Clone, Debug)]
pub struct Includes {
    pub conf_dir: PathBuf,
}

/// Reads `path` and every file it includes.
pub fn parse_file(path: &Path, includes: &Includes) -> Result<Vec<Directive>, SyntaxError> {
    let file = Arc::new(path.to_path_buf());
    let text = std::fs::read_to_string(path).map_err(|e| SyntaxError {
        at: Place {
            file: Arc::clone(&file),
            line: 1,
            column: 1,
        },
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    let tree = parse_text(&text, file)?;
    expand(tree, includes, 0)
}

/// Parses `text` (named `file` in places) without following `include`.
pub fn parse_text(text: &str, file: Arc<PathBuf>) -> Result<Vec<Directive>, SyntaxError> {
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        column: 1,
        file,
    };
    let (directives, end) = lexer.block(0)?;
    match end {
        End::Eof => Ok(directives),
        End::Close(at) => Err(SyntaxError {
            at,
            message: "unexpected \"}\": it closes no block (remove it, or open the block it \
                      was meant to close)"
                .into(),
        }),
    }
}

/// Replaces every `include` with the directives of the files it names.
fn expand(
    tree: Vec<Directive>,
    includes: &Includes,
    depth: usize,
) -> Result<Vec<Directive>, SyntaxError> {
    let mut out = Vec::with_capacity(tree.len());
    for mut d in tree {
        if d.name == "include" && d.block.is_none() {
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(SyntaxError {
                    at: d.at,
                    message: format!(
                        "include: nested more than {MAX_INCLUDE_DEPTH} deep (does a file include itself?)"
                    ),
                });
            }
            let [pattern] = d.args.as_slice() else {
                return Err(SyntaxError {
                    at: d.at,
                    message: "include takes one file name or glob".into(),
                });
            };
            for path in resolve_glob(&includes.conf_dir, &pattern.text, &pattern.at)? {
                let included = parse_file(&path, includes)?;
                out.extend(expand(included, includes, depth + 1)?);
            }
            continue;
        }
        if let Some(block) = d.block.take() {
            d.block = Some(expand(block, includes, depth)?);
        }
        out.push(d);
    }
    Ok(out)
}

/// The files `pattern` names, sorted: a name without `*`, `?` or `[` must
/// exist; a glob may match nothing (nginx's `include conf.d/*.conf`).
/// Wildcards are honoured in the last path component.
fn resolve_glob(conf_dir: &Path, pattern: &str, at: &Place) -> Result<Vec<PathBuf>, SyntaxError> {
    let full = conf_dir.join(pattern);
    let wild = |s: &str| s.contains(['*', '?', '[']);
    if !wild(pattern) {
        return Ok(vec![full]);
    }
    let dir = full.parent().unwrap_or(Path::new("/"));
    let name = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if wild(&dir.to_string_lossy()) {
        return Err(SyntaxError {
            at: at.clone(),
            message: format!(
                "include {pattern}: wildcards are understood in the file name only, \
                 not in directories"
            ),
        });
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(SyntaxError {
                at: at.clone(),
                message: format!("include {pattern}: cannot list {}: {e}", dir.display()),
            })
        }
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            !n.starts_with('.') && glob_match(name.as_bytes(), n.as_bytes())
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    Ok(found)
}

/// `fnmatch(3)` for `*`, `?` and `[…]` sets (with `!`/`^` and ranges).
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => set_match(pattern, p, name[n]),
            Some(&c) if c == name[n] => Some(p + 1),
            _ => None,
        };
        match step {
            Some(next) => {
                p = next;
                n += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether the set starting at `pattern[open]` (`[`) matches `c`: the
/// index after its `]` if so.
fn set_match(pattern: &[u8], open: usize, c: u8) -> Option<usize> {
    let mut i = open + 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while let Some(&b) = pattern.get(i) {
        if b == b']' && !first {
            return (matched != negate).then_some(i + 1);
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&e| e != b']') {
            matched |= (b..=pattern[i + 2]).contains(&c);
            i += 3;
        } else {
            matched |= b == c;
            i += 1;
        }
    }
    // No closing bracket: '[' is itself.
    (c == b'[').then_some(open + 1)
}

/// How a block ended.
enum End {
    Eof,
    Close(Place),
}

/// One token.
enum Token {
    Word(Arg),
    Semicolon(Place),
    Open(Place),
    Close(Place),
    Eof(Place),
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    column: usize,
    file: Arc<PathBuf>,
}

impl Lexer {
    fn here(&self) -> Place {
        Place {
            file: Arc::clone(&self.file),
            line: self.line,
            column: self.column,
        }
    }

    fn error(&self, at: Place, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            at,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    /// Directives up to the end of the text or an unmatched `}`.
    fn block(&mut self, depth: usize) -> Result<(Vec<Directive>, End), SyntaxError> {
        let mut directives = Vec::new();
        loop {
            let name = match self.token()? {
                Token::Eof(_) => return Ok((directives, End::Eof)),
                Token::Close(at) => return Ok((directives, End::Close(at))),
                Token::Semicolon(at) => {
                    return Err(self.error(at, "unexpected \";\": a directive name comes first"))
                }
                Token::Open(at) => {
                    return Err(self.error(at, "unexpected \"{\": a block follows a directive name"))
                }
                Token::Word(word) => word,
            };
            let mut args = Vec::new();
            loop {
                match self.token()? {
                    Token::Word(arg) => args.push(arg),
                    Token::Semicolon(_) => {
                        directives.push(Directive {
                            name: name.text,
                            args,
                            block: None,
                            at: name.at,
                        });
                        break;
                    }
                    Token::Open(at) => {
                        if depth + 1 >= MAX_BLOCK_DEPTH {
                            return Err(self.error(
                                at,
                                format!("blocks nested more than {MAX_BLOCK_DEPTH} deep"),
                            ));
                        }
                        let (inner, end) = self.block(depth + 1)?;
                        if let End::Eof = end {
                            return Err(self.error(
                                name.at,
                                format!(
                                    "\"{}\" opens a block that is never closed: add \"}}\"",
                                    name.text
                                ),
                            ));
                        }
                        directives.push(Directive {
                            name: name.text,
                            args,
                            block: Some(inner),
                            at: name.at,
                        });
                        break;
                    }
                    Token::Close(at) | Token::Eof(at) => {
                        return Err(self.error(
                            at,
                            format!(
                                "\"{}\" at {} is not terminated by \";\": add it",
                                name.text, name.at
                            ),
                        ))
                    }
                }
            }
        }
    }

    fn skip_space_and_comments(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.bump();
            } else if c == '#' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn token(&mut self) -> Result<Token, SyntaxError> {
        self.skip_space_and_comments();
        let at = self.here();
        let Some(c) = self.peek() else {
            return Ok(Token::Eof(at));
        };
        match c {
            ';' => {
                self.bump();
                Ok(Token::Semicolon(at))
            }
            '{' => {
                self.bump();
                Ok(Token::Open(at))
            }
            '}' => {
                self.bump();
                Ok(Token::Close(at))
            }
            '"' | '\'' => {
                self.bump();
                let text = self.quoted(c, &at)?;
                // nginx wants a separator after a closing quote.
                match self.peek() {
                    None => {}
                    Some(n) if n.is_whitespace() || matches!(n, ';' | '{' | '}') => {}
                    Some(n) => {
                        return Err(self.error(
                            self.here(),
                            format!("unexpected {n:?} after a quoted string: add a space"),
                        ))
                    }
                }
                Ok(Token::Word(Arg { text, at }))
            }
            _ => Ok(Token::Word(Arg {
                text: self.word(),
                at,
            })),
        }
    }

    /// The rest of a quoted string opened by `quote`, its escapes applied
    /// as nginx applies them: `\"`, `\'`, `\\`, `\t`, `\r`, `\n`; any other
    /// backslash stays.
    fn quoted(&mut self, quote: char, at: &Place) -> Result<String, SyntaxError> {
        let mut text = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.error(
                        at.clone(),
                        format!(
                            "a string opened with {quote} is never closed: add the closing {quote}"
                        ),
                    ))
                }
                Some(c) if c == quote => return Ok(text),
                Some('\\') => match self.peek() {
                    Some(e @ ('"' | '\'' | '\\')) => {
                        self.bump();
                        text.push(e);
                    }
                    Some('t') => {
                        self.bump();
                        text.push('\t');
                    }
                    Some('r') => {
                        self.bump();
                        text.push('\r');
                    }
                    Some('n') => {
                        self.bump();
                        text.push('\n');
                    }
                    _ => text.push('\\'),
                },
                Some(c) => text.push(c),
            }
        }
    }

    /// An unquoted word: up to whitespace, `;`, `{` (unless it is `${`) or
    /// `}` (unless it closes a `${`); a backslash keeps the next character
    /// in the word, and is taken out before a quote, a backslash, `t`, `r`
    /// or `n` as in a quoted string (so `\.` in a regex stays).
    fn word(&mut self) -> String {
        let mut text = String::new();
        let mut in_var = false;
        while let Some(c) = self.peek() {
            match c {
                c if c.is_whitespace() => break,
                ';' => break,
                '{' if text.ends_with('$') => in_var = true,
                '{' => break,
                '}' if in_var => in_var = false,
                '}' => break,
                '\\' => {
                    self.bump();
                    match self.bump() {
                        Some(e @ ('"' | '\'' | '\\')) => text.push(e),
                        Some('t') => text.push('\t'),
                        Some('r') => text.push('\r'),
                        Some('n') => text.push('\n'),
                        Some(next) => {
                            text.push('\\');
                            text.push(next);
                        }
                        None => text.push('\\'),
                    }
                    continue;
                }
                _ => {}
            }
            self.bump();
            text.push(c);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Directive>, String> {
        parse_text(text, Arc::new(PathBuf::from("t.conf"))).map_err(|e| e.to_string())
    }

    fn shape(ds: &[Directive]) -> String {
        ds.iter()
            .map(|d| {
                let args = d.words().join(" ");
                match &d.block {
                    Some(b) => format!("{}[{args}]{{{}}}", d.name, shape(b)),
                    None => format!("{}[{args}]", d.name),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn directives_blocks_quotes_and_comments() {
        let cases = [
            ("a b c;", "a[b c]"),
            ("a;b;", "a[],b[]"),
            ("# c\nx 1; # y\n", "x[1]"),
            (
                "http { server { listen 80; } }",
                "http[]{server[]{listen[80]}}",
            ),
            ("m $a $b { default x; '' y; }", "m[$a $b]{default[x],[y]}"),
            (r#"h "a;b" 'c d';"#, "h[a;b c d]"),
            (r#"h "q\"x" 'it\'s';"#, "h[q\"x it's]"),
            (r#"r ^/a\.b\ c$ a\"b\\;"#, r#"r[^/a\.b\ c$ a"b\]"#),
            ("r ^/a(.*)$ /b${1}c;", "r[^/a(.*)$ /b${1}c]"),
            ("a \"x\"{ }", "a[x]{}"),
            ("a#b;", "a#b[]"),
        ];
        for (text, want) in cases {
            match parse(text) {
                Ok(ds) => assert_eq!(shape(&ds), want, "{text}"),
                Err(e) => assert_eq!(e, want, "{text}"),
            }
        }
    }

    #[test]
    fn places_are_line_and_column() {
        let ds = parse("events {}\nhttp {\n  server { listen   80; }\n}\n").unwrap();
        let server = &ds[1].children()[0];
        assert_eq!((server.at.line, server.at.column), (3, 3));
        let listen = &server.children()[0];
        assert_eq!((listen.args[0].at.line, listen.args[0].at.column), (3, 21));
    }

    #[test]
    fn malformed_files_are_located_errors() {
        let cases = [
            (
                "a b",
                "t.conf:1:4: \"a\" at t.conf:1:1 is not terminated by \";\": add it",
            ),
            ("}", "t.conf:1:1: unexpected \"}\": it closes no block"),
            (
                "http {",
                "t.conf:1:1: \"http\" opens a block that is never closed: add \"}\"",
            ),
            (
                "a \"b;",
                "t.conf:1:3: a string opened with \" is never closed",
            ),
            (
                ";",
                "t.conf:1:1: unexpected \";\": a directive name comes first",
            ),
            ("{", "t.conf:1:1: unexpected \"{\""),
            (
                "a \"b\"c;",
                "t.conf:1:6: unexpected 'c' after a quoted string",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).unwrap_err();
            assert!(got.starts_with(want), "{text}: {got}");
        }
        let deep = "a{".repeat(200);
        assert!(parse(&deep).unwrap_err().contains("nested more than"));
    }

    #[test]
    fn globs() {
        let cases = [
            ("*.conf", "a.conf", true),
            ("*.conf", "a.conf.bak", false),
            ("a?c", "abc", true),
            ("[ab]*", "bx", true),
            ("[!ab]*", "bx", false),
            ("[a-c].x", "b.x", true),
            ("*", "", true),
            ("x*y*z", "xaaybbz", true),
            ("x*y*z", "xaaybb", false),
            ("[", "[", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(glob_match(p.as_bytes(), n.as_bytes()), want, "{p} {n}");
        }
    }
}
