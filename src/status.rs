//! What the admin listener says of upstream servers: `GET /status` (JSON:
//! every group's servers, whether each is up, what checks found, what it
//! holds open) and the server-state series of `/metrics`.
//!
//! A server is down when active checks marked it down, or when passive
//! health (failed connects) has it down now; `down_by` says which.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::config::Config;
use crate::metrics::{header, label, tunnels_by_server, Shard};
use crate::upstream::Group;

/// Why server `i` of `group` is down at `now`: "active", "passive", both,
/// or none (up).
fn down_by(group: &Group, i: usize, now: Instant) -> Vec<&'static str> {
    let mut why = Vec::new();
    if group.check_state(i).down {
        why.push("active");
    }
    if group.is_passively_down(i, now) {
        why.push("passive");
    }
    why
}

/// The `/status` document for `config` at `now`.
pub fn render_json(shards: &[Arc<Shard>], config: &Config, now: Instant) -> String {
    let tunnels = tunnels_by_server(shards);
    let groups: Vec<Value> = config
        .groups
        .iter()
        .map(|g| group_json(g, &tunnels, now))
        .collect();
    let doc = json!({ "groups": groups });
    let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value always serializes");
    text.push('\n');
    text
}

fn group_json(g: &Group, tunnels: &BTreeMap<(String, String), i64>, now: Instant) -> Value {
    let check = g.check.as_ref().map(|c| {
        json!({
            "check": c.kind.name(),
            "path": c.path,
            "interval_seconds": c.interval.as_secs_f64(),
            "timeout_seconds": c.timeout.as_secs_f64(),
            "fall": c.fall,
            "rise": c.rise,
            "on_down": c.on_down.name(),
        })
    });
    let servers: Vec<Value> = g
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let why = down_by(g, i, now);
            let state = g.check_state(i);
            let last = state.last.map(|(at, verdict)| {
                json!({
                    "seconds_ago": now.saturating_duration_since(at).as_secs_f64(),
                    "passed": verdict.passed(),
                    "result": verdict.to_string(),
                })
            });
            let open = tunnels
                .get(&(g.name.clone(), s.name.clone()))
                .copied()
                .unwrap_or(0);
            json!({
                "name": s.name,
                "address": s.addr.to_string(),
                "state": if why.is_empty() { "up" } else { "down" },
                "down_by": why,
                "checks": g.check.as_ref().map(|_| json!({
                    "passed": state.passed,
                    "failed": state.failed,
                    "passed_in_a_row": state.good,
                    "failed_in_a_row": state.bad,
                    "last": last,
                })),
                "tunnels": open,
                "connections": g.active(i),
            })
        })
        .collect();
    json!({ "name": g.name, "health": check, "servers": servers })
}

/// The server-state series: up or down per server, and checks by result.
pub fn write_metrics(out: &mut String, config: &Config, now: Instant) {
    let name = "wsproxy_upstream_server_up";
    header(
        out,
        name,
        "gauge",
        "1 if the upstream server takes new connections, 0 if active checks or passive health have it down.",
    );
    for g in &config.groups {
        for (i, s) in g.servers.iter().enumerate() {
            let up = u8::from(!g.is_down(i, now));
            let _ = writeln!(
                out,
                "{name}{{group=\"{}\",server=\"{}\"}} {up}",
                label(&g.name),
                label(&s.name)
            );
        }
    }
    let name = "wsproxy_upstream_checks_total";
    header(
        out,
        name,
        "counter",
        "Active health checks of upstream servers, by result.",
    );
    for g in config.groups.iter().filter(|g| g.check.is_some()) {
        for (i, s) in g.servers.iter().enumerate() {
            let state = g.check_state(i);
            for (result, n) in [("passed", state.passed), ("failed", state.failed)] {
                let _ = writeln!(
                    out,
                    "{name}{{group=\"{}\",server=\"{}\",result=\"{result}\"}} {n}",
                    label(&g.name),
                    label(&s.name)
                );
            }
        }
    }
}
