//! An nginx configuration taken as it is: parsed with nginx's grammar
//! (`include` followed), translated into the configuration file's TOML,
//! and loaded through the same checks as `--config`. `import-nginx`
//! writes the TOML; `--nginx-config` runs it.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | translate a file, load it as a `Config`, map problems back to nginx places |
//! | `grammar.rs` | nginx's grammar: directives, blocks, quotes, escapes, comments, `include` with globs |
//! | `inherit.rs` | what passes down http → server → location; directives needing nothing, and unsupported ones |
//! | `values.rs` | times, sizes, `proxy_pass` URLs, `listen` addresses, variables |
//! | `translate.rs` | the main, `events` and `http` contexts, `upstream`, `map`, `limit_conn` |
//! | `site.rs` | `server`: listeners, `server_name`, the HTTPS redirect, TLS |
//! | `location.rs` | `location`: targets, `proxy_pass` URI rules, `rewrite`, `return`, `try_files`, `allow`/`deny`, timeouts |
//! | `bind.rs` | `proxy_bind`: one source address for every upstream connection |
//! | `headers.rs` | `proxy_set_header`, `add_header`, `proxy_hide_header` |
//! | `emit.rs` | the TOML sections, rendered with each block's nginx origin |
//! | `notes.rs` | notes and errors, located |

use std::path::{Path, PathBuf};

use crate::config::{self, Config, FileError, LoadError};

mod bind;
mod emit;
mod grammar;
mod headers;
mod inherit;
mod location;
mod notes;
mod site;
mod translate;
mod values;

pub use grammar::{glob_match, parse_text, Directive, Place, SyntaxError};
pub use notes::{Note, Severity};

/// nginx's prefix when none is given: where Debian's nginx keeps `html/`.
pub const DEFAULT_PREFIX: &str = "/usr/share/nginx";

/// An nginx file translated.
#[derive(Debug)]
pub struct Translation {
    /// The TOML, each block preceded by the nginx place it came from.
    pub toml: String,
    /// Every note (nothing here is an error).
    pub notes: Vec<Note>,
    origins: emit::Rendered,
}

/// Translates the nginx file at `path`. `prefix` is nginx's `-p`
/// ([`DEFAULT_PREFIX`] when `None`); `include` and `ssl_certificate`
/// resolve from the file's directory, as nginx resolves them from its
/// `-c` file. Fails with every error (and the notes made on the way),
/// sorted by place.
pub fn translate(path: &Path, prefix: Option<&Path>) -> Result<Translation, Vec<Note>> {
    let conf_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let conf_dir = std::fs::canonicalize(&conf_dir).unwrap_or(conf_dir);
    let prefix = prefix.map_or_else(|| PathBuf::from(DEFAULT_PREFIX), Path::to_path_buf);
    let includes = grammar::Includes {
        conf_dir: conf_dir.clone(),
    };
    let tree = grammar::parse_file(path, &includes).map_err(syntax_error)?;
    translate_tree(&tree, path, translate::Paths { prefix, conf_dir })
}

fn translate_tree(
    tree: &[Directive],
    path: &Path,
    paths: translate::Paths,
) -> Result<Translation, Vec<Note>> {
    let mut t = translate::Translator::new(paths);
    t.main(tree);
    let (toml, notes) = t.finish();
    if notes.has_errors() {
        return Err(notes.sorted());
    }
    let header = format!(
        "Translated from the nginx configuration {} by `wsproxy-fast import-nginx`.\n\
         Each block names the nginx file and line it came from.",
        path.display()
    );
    let rendered = toml.render(&header);
    Ok(Translation {
        toml: rendered.text.clone(),
        notes: notes.sorted(),
        origins: rendered,
    })
}

impl Translation {
    /// The TOML loaded as `--config` loads a file; a problem it finds is
    /// reported at the nginx place its block came from.
    pub fn load(&self, nginx_path: &Path) -> Result<Config, LoadError> {
        self.load_with(nginx_path, config::resolve)
    }

    /// [`Translation::load`], with listener host names resolved by
    /// `resolver`.
    pub fn load_with(
        &self,
        nginx_path: &Path,
        resolver: config::Resolver,
    ) -> Result<Config, LoadError> {
        // Paths in the TOML are absolute; the base only matters for none.
        let base = nginx_path.parent().unwrap_or(Path::new("."));
        config::parse_with(&self.toml, nginx_path, base, resolver).map_err(|e| self.relocate(e))
    }

    fn relocate(&self, e: LoadError) -> LoadError {
        match e {
            LoadError::Invalid(problems) => LoadError::Invalid(
                problems
                    .into_iter()
                    .map(|p| match self.origins.origin(p.line) {
                        Some(at) => FileError {
                            path: at.file.to_path_buf(),
                            line: at.line,
                            column: at.column,
                            message: p.message,
                        },
                        None => p,
                    })
                    .collect(),
            ),
            other => other,
        }
    }
}

/// `--nginx-config`: the file translated and loaded; the notes to log.
pub fn load(path: &Path, prefix: Option<&Path>) -> Result<(Config, Vec<Note>), LoadError> {
    if let Err(error) = std::fs::metadata(path) {
        return Err(LoadError::Read {
            path: path.to_path_buf(),
            error,
        });
    }
    let translation = translate(path, prefix).map_err(|errors| {
        LoadError::Invalid(
            errors
                .into_iter()
                .filter(|n| n.severity == Severity::Error)
                .map(note_error)
                .collect(),
        )
    })?;
    let config = translation.load(path)?;
    Ok((config, translation.notes))
}

fn note_error(n: Note) -> FileError {
    let message = if n.directive.is_empty() {
        n.text
    } else {
        format!("{}: {}", n.directive, n.text)
    };
    FileError {
        path: n.at.file.to_path_buf(),
        line: n.at.line,
        column: n.at.column,
        message,
    }
}

/// A file nginx's grammar refuses: one located error, for no directive.
fn syntax_error(e: grammar::SyntaxError) -> Vec<Note> {
    vec![Note {
        at: e.at,
        directive: String::new(),
        text: e.message,
        severity: Severity::Error,
    }]
}

/// Translates nginx text directly (no `include`), for tests and fuzzing:
/// the TOML, or every error as `file:line:col: …`.
pub fn translate_text(text: &str, name: &str, prefix: &Path) -> Result<Translation, Vec<Note>> {
    let file = std::sync::Arc::new(PathBuf::from(name));
    let tree = grammar::parse_text(text, file).map_err(syntax_error)?;
    translate_tree(
        &tree,
        Path::new(name),
        translate::Paths {
            prefix: prefix.to_path_buf(),
            conf_dir: prefix.to_path_buf(),
        },
    )
}

#[cfg(test)]
mod tests;
