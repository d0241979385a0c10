//! What the translation tells the person: a note for each directive whose
//! meaning changes or that is dropped, and an error for each one that
//! cannot be expressed, each located at the directive and saying why (and,
//! for an error, what to do).

use std::fmt;

use super::grammar::Place;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Carried over with a change of meaning, or dropped as unnecessary.
    Note,
    /// Cannot be expressed: nothing is written or run.
    Error,
}

/// One finding about one directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub at: Place,
    /// The directive's name, as written.
    pub directive: String,
    pub text: String,
    pub severity: Severity,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.directive.is_empty() {
            write!(f, "{}: {}", self.at, self.text)
        } else {
            write!(f, "{}: {}: {}", self.at, self.directive, self.text)
        }
    }
}

/// Findings in the order they were made.
#[derive(Debug, Default)]
pub struct Notes {
    pub list: Vec<Note>,
}

impl Notes {
    pub fn note(&mut self, at: &Place, directive: &str, text: impl Into<String>) {
        self.push(at, directive, text.into(), Severity::Note);
    }

    pub fn error(&mut self, at: &Place, directive: &str, text: impl Into<String>) {
        self.push(at, directive, text.into(), Severity::Error);
    }

    fn push(&mut self, at: &Place, directive: &str, text: String, severity: Severity) {
        let note = Note {
            at: at.clone(),
            directive: directive.to_string(),
            text,
            severity,
        };
        // One finding per directive and reason.
        if !self.list.contains(&note) {
            self.list.push(note);
        }
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|n| n.severity == Severity::Error)
    }

    /// Sorted by file, then line and column.
    pub fn sorted(mut self) -> Vec<Note> {
        self.list.sort_by(|a, b| {
            (a.at.file.as_path(), a.at.line, a.at.column).cmp(&(
                b.at.file.as_path(),
                b.at.line,
                b.at.column,
            ))
        });
        self.list
    }
}
