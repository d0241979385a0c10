//! The configuration file: TOML read with serde into spanned sections,
//! then checked and turned into a [`Config`]. Every problem found is kept
//! with its line and column and worded as what to change, so `--check`
//! lists them all at once and a broken file never starts a proxy.
//!
//! ```toml
//! workers = "auto"
//!
//! [[listener]]
//! address = "0.0.0.0:80"
//! redirect_https = true
//!
//! [[listener]]
//! address = "0.0.0.0:8080"
//!
//! [upstream.app]
//! servers = ["10.0.0.5:9000", "10.0.0.6:9000 weight=2"]
//! balance = "least_conn"
//!
//! [[server]]
//! names = ["example.com"]
//! response_headers = [{ name = "Strict-Transport-Security", value = "max-age=31536000", always = true }]
//!
//! [[server.route]]
//! location = "/ws"
//! upstream = "app"
//! request_headers = { Host = "$host" }
//! ```
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | `load`/`parse`, located errors, the `Checker` that gathers them |
//! | `sections.rs` | the file's shape: the serde sections |
//! | `keys.rs` | keys no section has, each located, with the one probably meant |
//! | `check.rs` | the whole file → `Config`: globals, timeouts, listeners and the sites on them |
//! | `sites.rs` | `[[server]]` and `[[server.route]]`, and listener TLS |
//! | `upstreams.rs` | `[upstream.NAME]` groups, their servers, balancing, health checks and TLS |
//! | `sources.rs` | `source_addresses`: each group's own, or the file's default |

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use serde::Deserialize;
use toml::de::DeTable;

use super::{resolve, Config, Resolver};
use crate::handshake::edits::{RequestEdits, ResponseEdits};
use crate::route::{Access, Origins};
use sections::FileSections;

mod check;
mod keys;
mod sections;
mod sites;
mod sources;
#[cfg(test)]
mod tests;
mod upstreams;

/// Why a file did not load.
#[derive(Debug)]
pub enum LoadError {
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Every problem found, in file order.
    Invalid(Vec<FileError>),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            LoadError::Invalid(errors) => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// One problem, located: `FILE:LINE:COLUMN: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|error| LoadError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, path, base)
}

/// Validates `text`; `path` names it in errors and relative roots are
/// resolved from `base`.
pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Config, LoadError> {
    parse_with(text, path, base, resolve)
}

/// [`parse`], with listener host names resolved by `resolver`.
pub fn parse_with(
    text: &str,
    path: &Path,
    base: &Path,
    resolver: Resolver,
) -> Result<Config, LoadError> {
    let mut checker = Checker {
        base,
        resolver,
        problems: Vec::new(),
        misspelled: Vec::new(),
        default_tls: None,
    };
    let config = match DeTable::parse(text) {
        Ok(root) => {
            let unknown = keys::unknown_keys(root.get_ref());
            for u in &unknown {
                checker.problem(u.span.clone(), u.message.clone());
            }
            checker.misspelled = unknown
                .into_iter()
                .filter_map(|u| Some((u.table, u.meant?)))
                .collect();
            match FileSections::deserialize(toml::de::Deserializer::from(root)) {
                Ok(sections) => checker.config(sections),
                Err(e) => {
                    let span = e.span().unwrap_or(0..0);
                    // "missing field `address`" after `adress = …` adds
                    // nothing to the misspelling's own message.
                    let missing = e
                        .message()
                        .strip_prefix("missing field `")
                        .and_then(|rest| rest.split('`').next());
                    let explained = missing.is_some_and(|key| {
                        checker.misspelled_top(key) || checker.misspelled(&span, key)
                    });
                    if !explained {
                        checker.problem(span, one_line(e.message()));
                    }
                    None
                }
            }
        }
        Err(e) => {
            checker.problem(e.span().unwrap_or(0..0), one_line(e.message()));
            None
        }
    };
    match config {
        Some(config) if checker.problems.is_empty() => Ok(config),
        _ => {
            let mut problems = checker.problems;
            problems.sort_by_key(|p| p.0.start);
            Err(LoadError::Invalid(
                problems
                    .into_iter()
                    .map(|(span, message)| {
                        let (line, column) = line_column(text, span.start);
                        FileError {
                            path: path.to_path_buf(),
                            line,
                            column,
                            message,
                        }
                    })
                    .collect(),
            ))
        }
    }
}

fn one_line(message: &str) -> String {
    message.trim_end().replace('\n', "; ")
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

// ----- Checking -----------------------------------------------------------

struct Checker<'a> {
    base: &'a Path,
    /// How listener host names become addresses.
    resolver: Resolver,
    problems: Vec<(Range<usize>, String)>,
    /// Unknown keys close to a known one: the table each is in (`None`:
    /// the top level), and the key it stands for.
    misspelled: Vec<(Option<Range<usize>>, &'static str)>,
    /// TLS client settings for `wss://` servers named without a group
    /// section: the system's roots, loaded once.
    default_tls: Option<Arc<ClientConfig>>,
}

/// Server-level settings a route inherits.
struct Inherited {
    request: RequestEdits,
    response: ResponseEdits,
    origins: Option<Origins>,
    access: Option<Access>,
}

impl Checker<'_> {
    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push((span, message.into()));
    }

    /// Whether the table spanning `table` (as its `Spanned` has it) holds
    /// a misspelling of `key`: then a check that finds `key` missing has
    /// nothing to add.
    fn misspelled(&self, table: &Range<usize>, key: &str) -> bool {
        self.misspelled
            .iter()
            .any(|(at, meant)| *meant == key && at.as_ref() == Some(table))
    }

    /// Whether the top level holds a misspelling of `key`.
    fn misspelled_top(&self, key: &str) -> bool {
        self.misspelled
            .iter()
            .any(|(at, meant)| *meant == key && at.is_none())
    }

    /// `result`'s value, or `None` with its error recorded at `span`.
    fn check<T>(&mut self, span: Range<usize>, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.problem(span, e)).ok()
    }
}
