//! Fuzz target: the configuration file loader, `config::parse_with`, on any
//! text. It must never panic, only answer a `Config` or a list of problems
//! each located at a line and column inside the text.
//!
//! Relative paths (certificates, static roots) resolve from `examples/`,
//! so the seeds taken from there load their demo certificates.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wsproxy_fast::config::{self, LoadError};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        // `config::load` refuses a file that is not UTF-8 before parsing.
        return;
    };
    let base = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"));
    // Listener host names are not looked up: a fuzzer must not wait on DNS.
    let no_names = |_: &str, _: u16| Err(std::io::Error::other("names are not resolved here"));
    match config::parse_with(text, Path::new("fuzz.toml"), base, no_names) {
        Ok(config) => {
            assert!(config.workers >= 1);
            assert!(!config.listeners.is_empty());
        }
        Err(LoadError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "refused without a reason");
            let lines = text.split('\n').count();
            for p in &problems {
                assert!(!p.message.is_empty());
                assert!(
                    p.line >= 1 && p.line <= lines,
                    "{p} is past the text's {lines} lines"
                );
                assert!(p.column >= 1, "{p}");
            }
        }
        Err(LoadError::Read { .. }) => panic!("parse read no file"),
    }
});
