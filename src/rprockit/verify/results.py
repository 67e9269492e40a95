"""pytest plugin: per-check results as JSON and a human table.

Loaded by :func:`rprockit.verify.run_verify` with ``-p rprockit.verify.results``.
Writes ``results.json`` and ``results.txt`` into ``--rprockit-results``;
pytest's own ``--junitxml`` writes the JUnit XML beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rprockit.files import write_json_atomic
from rprockit.manifest import Manifest

_checks: dict[str, dict] = {}


def pytest_addoption(parser):
    parser.getgroup("rprockit").addoption("--rprockit-results", help="results directory")


def pytest_sessionstart(session):
    _checks.clear()  # a second in-process run (run_verify in_process) starts empty


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    name = report.nodeid.split("::")[-1]
    entry = _checks.setdefault(name, {"check": name, "outcome": "passed", "seconds": 0.0,
                                      "evidence": "", "message": "", "signatures": []})
    entry["seconds"] += report.duration
    for key, value in report.user_properties:
        if key == "evidence":
            entry["evidence"] = value
        elif key == "signatures":
            known = {m["id"] for m in entry["signatures"]}
            entry["signatures"] += [m for m in json.loads(value) if m["id"] not in known]
    if report.skipped:
        entry["outcome"] = "skipped"
        entry["message"] = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
    elif report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        crash = getattr(report.longrepr, "reprcrash", None)
        entry["message"] = crash.message if crash else str(report.longrepr)[-2000:]


def render_table(checks: list[dict]) -> str:
    """Fixed-width table: check, outcome, seconds, first line of message/evidence, and
    for a failing check the knowledge-base entries found (``known: id, ...``)."""
    rows = [("check", "result", "s", "detail")]
    for c in checks:
        detail = (c["message"] or c["evidence"]).splitlines()
        text = detail[0][:90] if detail else ""
        if c.get("signatures"):
            text += "  [known: " + ", ".join(m["id"] for m in c["signatures"]) + "]"
        rows.append((c["check"], c["outcome"].upper(), f"{c['seconds']:.1f}", text))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}"
                     for r in rows) + "\n"


def pytest_sessionfinish(session, exitstatus):
    out = session.config.getoption("--rprockit-results")
    if not out:
        return
    out = Path(out)
    checks = list(_checks.values())
    manifest = session.config.getoption("--rprockit-manifest", default=None)
    manifest_id = None
    if manifest and Path(manifest).is_file():
        manifest_id = Manifest.load(Path(manifest)).id
    summary = {
        "format": 1,
        "manifest_id": manifest_id,
        "target": session.config.getoption("--lg-env", default=None),
        "passed": all(c["outcome"] in ("passed", "skipped") for c in checks) and bool(checks),
        "counts": {k: sum(c["outcome"] == k for c in checks)
                   for k in ("passed", "failed", "error", "skipped")},
        "checks": checks,
    }
    facts = out / "facts.json"
    if facts.is_file():
        summary["facts"] = json.loads(facts.read_text())
    write_json_atomic(out / "results.json", summary)
    (out / "results.txt").write_text(render_table(checks))
