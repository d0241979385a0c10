//! The systemd unit in `deploy/`: `systemd-analyze verify` has nothing to
//! say about it, as shipped or with its optional `#Name=` settings
//! uncommented. A missing systemd-analyze fails this test loudly
//! (`scripts/setup.sh systemd-analyze` installs it); it is not skipped.
//! It checks the unit's syntax and settings, not a run: that takes a
//! machine whose init is systemd.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// `$SYSTEMD_ANALYZE`, else `systemd-analyze` on PATH.
fn systemd_analyze() -> PathBuf {
    if let Some(path) = std::env::var_os("SYSTEMD_ANALYZE") {
        return path.into();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("systemd-analyze"))
        .find(|p| p.is_file())
        .expect(
            "systemd-analyze is not installed: run scripts/setup.sh systemd-analyze \
             (apt-get install systemd)",
        )
}

/// What `systemd-analyze verify` says about `text` as a unit file: empty
/// when it finds nothing wrong.
fn verify(text: &str) -> String {
    let dir = TempDir::new();
    let path = dir.write("wsproxy-fast.service", text);
    let out = Command::new(systemd_analyze())
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        said
    } else {
        format!("exit {}: {said}", out.status)
    }
}

#[test]
fn the_systemd_unit_verifies_with_and_without_its_optional_settings() {
    let _w = watchdog();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/wsproxy-fast.service");
    let shipped = std::fs::read_to_string(path).unwrap();
    // verify checks that ExecStart= names an executable: the binary just
    // built stands in for the installed one.
    let unit = shipped.replace(
        "/usr/local/bin/wsproxy-fast",
        env!("CARGO_BIN_EXE_wsproxy-fast"),
    );
    let optional = regex::Regex::new(r"(?m)^#([A-Z][A-Za-z]+=)").unwrap();
    let names: Vec<&str> = optional
        .captures_iter(&unit)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    for wanted in ["LoadCredential=", "SupplementaryGroups="] {
        assert!(
            names.contains(&wanted),
            "no #{wanted} in the unit: {names:?}"
        );
    }
    let everything = optional.replace_all(&unit, "$1").into_owned();
    assert!(everything.contains("\nLoadCredential=example.com.key:"));

    for (what, text) in [("as shipped", &unit), ("with every option", &everything)] {
        let said = verify(text);
        assert!(
            said.is_empty(),
            "{what}: systemd-analyze verify says:\n{said}"
        );
    }
    // The check can fail: a misspelled setting is reported.
    let said = verify(&unit.replace("LimitNOFILE=", "LimitNOFLE="));
    assert!(said.contains("Unknown key 'LimitNOFLE'"), "{said}");
}
