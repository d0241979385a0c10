//! What `deploy/` ships, checked by the tools that judge it here:
//!
//! - the systemd units: `systemd-analyze verify` has nothing to say about
//!   them, as shipped or with their optional `#Name=` settings
//!   uncommented. That checks the units' syntax and settings, not a run:
//!   that takes a machine whose init is systemd.
//! - the Kubernetes manifests: they validate against the API's schemas
//!   (kubernetes-validate, strict: an unknown field fails), the proxy's
//!   `--check` passes the ConfigMap's file, and the Deployment, Service and
//!   file agree on ports, paths and the drain's time. Not a run either:
//!   that takes a cluster.
//!
//! A missing tool fails these tests loudly (`scripts/setup.sh
//! systemd-analyze kubernetes-validate` installs them); none is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// The tools venv's `kubernetes-validate` (`scripts/setup.sh
/// kubernetes-validate`), or `$KUBERNETES_VALIDATE`.
fn kubernetes_validate() -> PathBuf {
    let path = std::env::var_os("KUBERNETES_VALIDATE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/kubernetes-validate"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is not installed: run scripts/setup.sh kubernetes-validate",
        path.display()
    );
    path
}

/// `deploy/kubernetes/*.yaml`, in name order.
fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn reported(out: &Output) -> String {
    format!(
        "exit {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// kubernetes-validate --strict on `files`, against the schemas of
/// `version` (the validator's newest when None).
fn validate(files: &[PathBuf], version: Option<&str>) -> Output {
    let mut command = Command::new(kubernetes_validate());
    command.args(["--strict", "--no-warn"]);
    if let Some(version) = version {
        command.args(["--kubernetes-version", version]);
    }
    command
        .args(files)
        .output()
        .expect("run kubernetes-validate")
}

/// The oldest Kubernetes the manifests are for: the Deployment's preStop
/// `sleep` action is on by default from 1.30.
const OLDEST_KUBERNETES: &str = "1.30.0";

#[test]
fn the_kubernetes_manifests_validate_against_the_api_schemas() {
    let _w = watchdog();
    let files = manifests();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in [
        "configmap.yaml",
        "deployment.yaml",
        "poddisruptionbudget.yaml",
        "service.yaml",
    ] {
        assert!(names.iter().any(|n| n == wanted), "no {wanted}: {names:?}");
    }
    for version in [Some(OLDEST_KUBERNETES), None] {
        let out = validate(&files, version);
        assert!(out.status.success(), "{version:?}: {}", reported(&out));
    }
    // The check can fail: a misspelled field is refused.
    let dir = TempDir::new();
    let service =
        std::fs::read_to_string(files.iter().find(|f| f.ends_with("service.yaml")).unwrap())
            .unwrap()
            .replace("externalTrafficPolicy:", "externalTraficPolicy:");
    let out = validate(&[dir.write("service.yaml", &service)], None);
    assert!(!out.status.success(), "{}", reported(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("externalTraficPolicy"),
        "{}",
        reported(&out)
    );
}

/// Every document of the manifests, as JSON, by the tools venv's Python
/// and the PyYAML that kubernetes-validate brings.
fn documents() -> Vec<serde_json::Value> {
    let python = kubernetes_validate().with_file_name("python");
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml\n\
             json.dump([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d], sys.stdout)",
        ])
        .args(manifests())
        .output()
        .expect("run the tools venv's python");
    assert!(out.status.success(), "{}", reported(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn kind<'a>(documents: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in deploy/kubernetes/"))
}

/// Seconds of a whole-second duration as the file writes it ("20s").
fn seconds(value: &toml::Value) -> u64 {
    let text = value.as_str().unwrap();
    text.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text:?}: write whole seconds, e.g. \"20s\""))
}

/// The port of an `IP:PORT` address.
fn port(address: &str) -> u64 {
    address.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[test]
fn the_configmaps_file_checks_and_the_deployment_and_service_agree_with_it() {
    let _w = watchdog();
    let documents = documents();
    let file = kind(&documents, "ConfigMap")["data"]["wsproxy.toml"]
        .as_str()
        .expect("the ConfigMap holds wsproxy.toml");

    // The upstream's Service name resolves in the cluster only: an address
    // stands in for it, the one edit before --check.
    assert!(file.contains("servers = [\"app:9000\"]"), "{file}");
    let dir = TempDir::new();
    let path = dir.write(
        "wsproxy.toml",
        &file.replace("\"app:9000\"", "\"127.0.0.1:9000\""),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_wsproxy-fast"))
        .arg("--check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run wsproxy-fast --check");
    assert!(
        out.status.success(),
        "wsproxy-fast --check: {}",
        reported(&out)
    );

    let config: toml::Table = file.parse().unwrap();
    let pod = &kind(&documents, "Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let port_named = |name: &str| {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no port {name}"))["containerPort"]
            .as_u64()
            .unwrap()
    };

    // --config names the file where the ConfigMap is mounted.
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "config")
        .expect("the config volume is mounted");
    let config_path = format!("{}/wsproxy.toml", mount["mountPath"].as_str().unwrap());
    assert_eq!(
        container["args"],
        serde_json::json!(["--config", config_path])
    );

    // The probes ask the admin listener for /healthz.
    assert_eq!(port_named("admin"), port(config["admin"].as_str().unwrap()));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
    }

    // SIGKILL comes after the preStop pause and the whole drain.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap_or(0);
    let drain = seconds(&config["drain"]["timeout"]);
    assert!(
        grace > pause + drain,
        "terminationGracePeriodSeconds {grace} is not above preStop {pause} s + drain.timeout {drain} s"
    );

    // The balancer reaches the PROXY-protocol listener, keeping the client.
    let service = &kind(&documents, "Service")["spec"];
    assert_eq!(service["type"], "LoadBalancer");
    assert_eq!(service["externalTrafficPolicy"], "Local");
    let target = &service["ports"][0]["targetPort"];
    let listener = &config["listener"].as_array().unwrap()[0];
    assert_eq!(
        port_named(target.as_str().unwrap()),
        port(listener["address"].as_str().unwrap())
    );
    assert_eq!(listener["proxy_protocol"].as_bool(), Some(true));

    // The pods run as the image's user, on a read-only root.
    let context = &container["securityContext"];
    assert_eq!(context["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let user = pod["securityContext"]["runAsUser"].as_u64().unwrap();
    assert!(
        deploy_file("Containerfile").contains(&format!("\nUSER {user}:")),
        "the image's USER is not {user}"
    );
}
