#!/usr/bin/env python3
"""Compares Autobahn|Testsuite verdicts through wsproxy-fast with direct ones.

    compare.py TITLE AGENTS SUMMARY_JSON REPORT_DIR...

Each REPORT_DIR holds a wstest report (index.json, written by the fuzzing
client or the fuzzing server, and the per-case AGENT_case_X_Y_Z.json files it
names); the agents of all of them are merged. The agent named "direct" is the
baseline: every agent in AGENTS (comma-separated) must be there, and its verdict on every case is compared with it. A
verdict is the case's behavior, its closing behavior (behaviorClose) and the
close code the testee sent (remoteCloseCode), read from the per-case file
(and checked against index.json, which repeats them). Beyond the verdict,
the details a transparent proxy must not change either are compared too:
what wstest received (messages and pongs, as it logs them), the close code
it sent (localCloseCode), whether the TCP close was clean (wasClean) and
whether wstest had to drop the connection itself (droppedByMe).

Prints one table row per agent (cases, identical, different verdicts,
different details only, missing) and then every case that differs, with
both sides; writes the same as JSON to SUMMARY_JSON.
Exits 1 if any agent has a case that differs from direct, or lacks a case
direct has (or has one direct lacks), 2 on unreadable reports or a missing
agent.
"""

import json
import os
import sys

BASELINE = "direct"
VERDICT_FIELDS = ("behavior", "behaviorClose", "remoteCloseCode")
DETAIL_FIELDS = ("received", "localCloseCode", "wasClean", "droppedByMe")


def case_key(case_id):
    """Sorts "9.10.2" after "9.2.1"."""
    return tuple(int(part) for part in case_id.split("."))


def load(report_dirs):
    """Returns {agent: {case_id: (verdict tuple, details dict)}}."""
    agents = {}
    for report_dir in report_dirs:
        with open(os.path.join(report_dir, "index.json")) as f:
            index = json.load(f)
        for agent, cases in index.items():
            if agent in agents:
                raise ValueError(f"agent {agent} is in more than one report")
            verdicts = agents[agent] = {}
            for case_id, entry in cases.items():
                with open(os.path.join(report_dir, entry["reportfile"])) as f:
                    detail = json.load(f)
                verdict = tuple(detail[field] for field in VERDICT_FIELDS)
                listed = tuple(entry[field] for field in VERDICT_FIELDS)
                if verdict != listed:
                    raise ValueError(
                        f"{agent} case {case_id}: {entry['reportfile']} says {verdict}, index.json {listed}"
                    )
                verdicts[case_id] = (verdict, {field: detail[field] for field in DETAIL_FIELDS})
    return agents


def show(verdict):
    return "missing" if verdict is None else "/".join(str(v) for v in verdict)


def differing_details(want, got):
    """The detail fields that differ, each as {field: [direct, agent]}."""
    return {field: [want[field], got[field]] for field in DETAIL_FIELDS if want[field] != got[field]}


def main(argv):
    if len(argv) < 5:
        print("usage: compare.py TITLE AGENTS SUMMARY_JSON REPORT_DIR...", file=sys.stderr)
        return 2
    title, expected, out, report_dirs = argv[1], argv[2].split(","), argv[3], argv[4:]
    try:
        agents = load(report_dirs)
    except (OSError, ValueError, KeyError) as err:
        print(f"autobahn: {title}: cannot read the reports: {err}", file=sys.stderr)
        return 2
    absent = [a for a in [BASELINE] + expected if a not in agents]
    if absent:
        print(f"autobahn: {title}: no report for {', '.join(absent)} in {report_dirs}", file=sys.stderr)
        return 2
    base = agents[BASELINE]
    tally = {}
    for verdict, _ in base.values():
        tally[verdict[0]] = tally.get(verdict[0], 0) + 1
    summary = {"title": title, "cases": len(base), "direct_behaviors": tally, "agents": {}}

    print(f"autobahn: {title}: {len(base)} cases; direct: "
          + ", ".join(f"{n} {b}" for b, n in sorted(tally.items())))
    print(f"  {'agent':<8} {'cases':>6} {'identical':>10} {'verdicts differ':>16}"
          f" {'details differ':>15} {'missing':>8}")
    failed = False
    for agent in sorted(agents):
        if agent == BASELINE:
            continue
        cases = agents[agent]
        diffs = []
        for case_id in sorted(set(base) | set(cases), key=case_key):
            want, got = base.get(case_id), cases.get(case_id)
            if want is None or got is None:
                kind = "missing"
            elif want[0] != got[0]:
                kind = "verdict"
            elif want[1] != got[1]:
                kind = "details"
            else:
                continue
            diff = {
                "case": case_id,
                "kind": kind,
                "direct": show(want and want[0]),
                agent: show(got and got[0]),
            }
            if want and got:
                diff["details"] = differing_details(want[1], got[1])
            diffs.append(diff)
        count = {k: sum(1 for d in diffs if d["kind"] == k) for k in ("verdict", "details", "missing")}
        identical = sum(1 for c in cases if base.get(c) == cases[c])
        print(f"  {agent:<8} {len(cases):>6} {identical:>10} {count['verdict']:>16}"
              f" {count['details']:>15} {count['missing']:>8}")
        summary["agents"][agent] = {"cases": len(cases), "identical": identical, **count, "differences": diffs}
        failed |= bool(diffs)
    for agent, result in summary["agents"].items():
        for d in result["differences"]:
            print(f"  DIFF {agent} case {d['case']}: direct {d['direct']}, {agent} {d[agent]}"
                  " (behavior/behaviorClose/close code)")
            for field, (want, got) in d.get("details", {}).items():
                print(f"       {field}: direct {str(want)[:200]}, {agent} {str(got)[:200]}")
    with open(out, "w") as f:
        json.dump(summary, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
