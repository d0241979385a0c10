//! The systemd units in `deploy/`: `systemd-analyze verify` has nothing to
//! say about them, as shipped or with their optional `#Name=` settings
//! uncommented. A missing systemd-analyze fails these tests loudly
//! (`scripts/setup.sh systemd-analyze` installs it); they are not skipped.
//! They check the units' syntax and settings, not a run: that takes a
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

/// The file `deploy/NAME` as shipped.
fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The unit `deploy/NAME` as shipped, but for the binary: verify checks
/// that ExecStart= names an executable, and the binary just built stands
/// in for the installed one.
fn shipped_unit(name: &str) -> String {
    deploy_file(name).replace(
        "/usr/local/bin/wsproxy-fast",
        env!("CARGO_BIN_EXE_wsproxy-fast"),
    )
}

/// `unit` with every `#Name=` line uncommented, after checking that each
/// of `wanted` is among them.
fn with_every_option(unit: &str, wanted: &[&str]) -> String {
    let optional = regex::Regex::new(r"(?m)^#([A-Z][A-Za-z]+=)").unwrap();
    let names: Vec<&str> = optional
        .captures_iter(unit)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    for wanted in wanted {
        assert!(
            names.contains(wanted),
            "no #{wanted} in the unit: {names:?}"
        );
    }
    optional.replace_all(unit, "$1").into_owned()
}

/// What `systemd-analyze verify` says about `units` (file name, text),
/// written side by side in one directory so that they find each other:
/// empty when it finds nothing wrong. A template is verified as an
/// instance of itself.
fn verify(units: &[(&str, &str)]) -> String {
    let dir = TempDir::new();
    let paths: Vec<PathBuf> = units
        .iter()
        .map(|(name, text)| dir.write(name, text))
        .collect();
    let out = Command::new(systemd_analyze())
        .args(["verify", "--man=no"])
        .args(&paths)
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

/// The uncommented `Name=value` lines of `unit`'s `[Service]` section.
fn service_settings(unit: &str) -> Vec<&str> {
    unit.lines()
        .skip_while(|line| *line != "[Service]")
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

#[test]
fn the_systemd_unit_verifies_with_and_without_its_optional_settings() {
    let _w = watchdog();
    let unit = shipped_unit("wsproxy-fast.service");
    let everything = with_every_option(&unit, &["LoadCredential=", "SupplementaryGroups="]);
    assert!(everything.contains("\nLoadCredential=example.com.key:"));

    for (what, text) in [("as shipped", &unit), ("with every option", &everything)] {
        let said = verify(&[("wsproxy-fast.service", text)]);
        assert!(
            said.is_empty(),
            "{what}: systemd-analyze verify says:\n{said}"
        );
    }
    // The check can fail: a misspelled setting is reported.
    let said = verify(&[(
        "wsproxy-fast.service",
        &unit.replace("LimitNOFILE=", "LimitNOFLE="),
    )]);
    assert!(said.contains("Unknown key 'LimitNOFLE'"), "{said}");
}

#[test]
fn the_socket_unit_and_its_template_service_verify_together() {
    let _w = watchdog();
    let socket = shipped_unit("wsproxy-fast.socket");
    let template = shipped_unit("wsproxy-fast@.service");
    let all_of_socket = with_every_option(&socket, &["ListenStream="]);
    let all_of_template =
        with_every_option(&template, &["AmbientCapabilities=", "SupplementaryGroups="]);
    // The socket names an instance of the template as the service it
    // starts, and every instance takes its sockets.
    assert!(socket.contains("\nService=wsproxy-fast@a.service\n"));
    assert!(template.contains("\nSockets=wsproxy-fast.socket\n"));

    for (what, socket, template) in [
        ("as shipped", &socket, &template),
        ("with every option", &all_of_socket, &all_of_template),
    ] {
        let said = verify(&[
            ("wsproxy-fast.socket", socket),
            ("wsproxy-fast@.service", template),
        ]);
        assert!(
            said.is_empty(),
            "{what}: systemd-analyze verify says:\n{said}"
        );
    }
    // The check reaches both files: a misspelled setting in either is
    // reported, and so is an instance's missing binary.
    for (socket, template, expected) in [
        (
            socket.replace("Backlog=", "Backlg="),
            template.clone(),
            "Unknown key 'Backlg'",
        ),
        (
            socket.clone(),
            template.replace("LimitNOFILE=", "LimitNOFLE="),
            "Unknown key 'LimitNOFLE'",
        ),
        (
            socket.clone(),
            template.replace(
                env!("CARGO_BIN_EXE_wsproxy-fast"),
                "/nonexistent/wsproxy-fast",
            ),
            "is not executable",
        ),
    ] {
        let said = verify(&[
            ("wsproxy-fast.socket", &socket),
            ("wsproxy-fast@.service", &template),
        ]);
        assert!(said.contains(expected), "{expected}: {said}");
    }
}

/// The template is the service unit run on inherited sockets: it keeps
/// every setting the service has (a hardening added to one and not the
/// other would be a difference nobody chose).
#[test]
fn the_template_service_keeps_every_setting_of_the_service() {
    let service = deploy_file("wsproxy-fast.service");
    let template = deploy_file("wsproxy-fast@.service");
    let kept = service_settings(&template);
    let missing: Vec<&str> = service_settings(&service)
        .into_iter()
        .filter(|setting| !kept.contains(setting))
        .collect();
    assert!(
        missing.is_empty(),
        "not in wsproxy-fast@.service: {missing:?}"
    );
}

/// The socket unit listens where the configuration its install lines copy
/// (examples/app-upstream.toml) has its listeners: an instance uses an
/// inherited socket only where the addresses are equal.
#[test]
fn the_socket_unit_listens_on_the_example_configurations_listeners() {
    let socket = deploy_file("wsproxy-fast.socket");
    assert!(socket.contains("cp examples/app-upstream.toml /etc/wsproxy-fast/wsproxy.toml"));
    let mut sockets: Vec<&str> = socket
        .lines()
        .filter_map(|line| line.strip_prefix("ListenStream="))
        .collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app-upstream.toml");
    let config: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    let mut listeners: Vec<&str> = config["listener"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["address"].as_str().unwrap())
        .collect();
    sockets.sort_unstable();
    listeners.sort_unstable();
    assert_eq!(sockets, listeners);
}
