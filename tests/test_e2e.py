"""The main job end to end: the default profile through every stage.

Real Debian linux-source-6.1, real arm-linux-gnueabihf-gcc, real QEMU
(mcimx7d-sabre).  The physical board is the one thing that cannot exist
here: QEMU stands in for it, and its M4 does not execute (the results say so).
"""

import json

import pytest
from conftest import ROOT, rprockit

pytestmark = pytest.mark.slow
PROFILE = "imx7d-mainline-6.1"


def test_every_stage_ran(default_pipeline):
    ws, proc = default_pipeline
    for stage in ("fetch", "patch", "configure", "build", "preflight", "verify"):
        assert f"[{stage}]" in proc.stdout, proc.stdout[-3000:]
    man = json.loads((ws / PROFILE / "artifacts" / "manifest.json").read_text())
    assert man["kernel_release"].startswith("6.1.")
    outs = man["outputs"]
    for name in ("zImage", "dtbs/imx7d-sdb.dtb", "dtbs/imx7d-sdb-rproc-qemu.dtb",
                 "modules/imx_rproc.ko", "modules/virtio_rpmsg_bus.ko",
                 "firmware/rproc-test.elf", "config", "Module.symvers"):
        assert name in outs and len(outs[name]["sha256"]) == 64, name
    assert man["inputs"]["toolchain"]["gcc"].startswith("arm-linux-gnueabihf-gcc")


def test_patch_series_classified_on_mainline(default_pipeline):
    ws, _ = default_pipeline
    reports = json.loads((ws / PROFILE / "reports" / "patch.json").read_text())
    status = {p["name"]: p["status"] for rep in reports for p in rep["patches"]}
    assert status, reports
    assert set(status.values()) <= {"already-present", "not-applicable"}
    assert list(status.values()).count("already-present") >= 3


def test_lifecycle_evidence(default_pipeline):
    ws, _ = default_pipeline
    res = json.loads((ws / PROFILE / "verify" / "results.json").read_text())
    checks = {c["check"]: c for c in res["checks"]}
    assert res["passed"] and res["counts"]["failed"] == 0
    man = json.loads((ws / PROFILE / "artifacts" / "manifest.json").read_text())
    assert res["manifest_id"] == man["id"]
    cyc = checks["test_reload_cycles"]
    assert cyc["outcome"] == "passed"
    ev = cyc["evidence"]
    assert "cycle 1: start -> running" in ev and "stop -> offline" in ev
    assert "virtio0" in ev and "rpmsg_ns" in ev
    assert "remote processor imx-rproc is now up" in ev
    assert "the M4 itself does not execute in QEMU" in ev
    assert "name imx-rproc" in checks["test_remoteproc_probed"]["evidence"]
    junit = (ws / PROFILE / "verify" / "junit.xml").read_text()
    assert "test_reload_cycles" in junit


def test_rerun_skips_every_stage(default_pipeline):
    ws, _ = default_pipeline
    proc = rprockit("all", "--workspace", str(ws), "--skip", "verify",
                    env={"RPROCKIT_ROOT": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    for stage in ("fetch", "patch", "configure", "build"):
        assert f"[{stage}] up to date, skipped" in proc.stdout, proc.stdout
