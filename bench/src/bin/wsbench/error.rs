//! Errors that stop a subcommand outright: a flag combination that cannot
//! work, or a socket, reactor or thread that cannot be set up. They reach
//! `main`, which prints them and exits with status 2. Errors on individual
//! connections are counted instead (see `load::conn::ConnError`).

use std::error::Error;
use std::fmt;
use std::io;

#[derive(Debug)]
pub enum SetupError {
    /// Flags that are individually valid but do not work together.
    Usage(String),
    /// A system call failed while setting up; `context` says what was being done.
    Io { context: String, source: io::Error },
}

impl SetupError {
    pub fn io(context: impl Into<String>, source: io::Error) -> SetupError {
        SetupError::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Usage(message) => f.write_str(message),
            SetupError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl Error for SetupError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SetupError::Usage(_) => None,
            SetupError::Io { source, .. } => Some(source),
        }
    }
}
