//! Fuzz target: an nginx configuration file, `nginx::translate_text`
//! (nginx's grammar and the translation into the TOML file), then the
//! translation loaded as `--nginx-config` loads it. It must never panic,
//! only answer a translation or errors each located inside the text; and
//! a translation must load or be refused with located problems, never
//! for being malformed TOML.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wsproxy_fast::config::LoadError;
use wsproxy_fast::nginx::{self, Severity};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let prefix = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"));
    let lines = text.split('\n').count();
    match nginx::translate_text(text, "fuzz.conf", prefix) {
        Ok(translation) => {
            assert!(translation
                .notes
                .iter()
                .all(|n| n.severity == Severity::Note));
            // Listener host names are not looked up: a fuzzer must not
            // wait on DNS.
            let no_names =
                |_: &str, _: u16| Err(std::io::Error::other("names are not resolved here"));
            match translation.load_with(Path::new("fuzz.conf"), no_names) {
                Ok(_) => {}
                Err(LoadError::Invalid(problems)) => {
                    assert!(!problems.is_empty(), "refused without a reason");
                    for p in &problems {
                        assert!(
                            !p.message.contains("TOML parse error")
                                && !p.message.starts_with("invalid"),
                            "the translation is not valid TOML: {p}\n{}",
                            translation.toml
                        );
                    }
                }
                Err(LoadError::Read { .. }) => panic!("load_with read no file"),
            }
        }
        Err(errors) => {
            assert!(
                errors.iter().any(|n| n.severity == Severity::Error),
                "refused without an error"
            );
            for e in &errors {
                assert!(!e.text.is_empty());
                assert!(
                    e.at.line >= 1 && e.at.line <= lines && e.at.column >= 1,
                    "{e} is outside the text's {lines} lines"
                );
            }
        }
    }
});
