"""RPMsg end to end on the emulated i.MX8M Plus, with the stand-in remote core.

Real Debian linux-source-6.1 for arm64 (the imx8mp-mainline-6.1 build of
tests/test_imx8mp_qemu.py, reused by fingerprint), real QEMU 10
``imx8mp-evk`` with four Cortex-A53, real and unmodified imx_rproc,
imx-mailbox, virtio_rpmsg_bus, rpmsg_ns and rpmsg_tty.  What cannot exist
here and is emulated: the Cortex-M7 (QEMU models none; the fourth A53 runs
``firmware/standin-remote`` in its place, powered on and off by the EL3
monitor at IMX_SIP_RPROC START/STOP) and the MU (a RAM page the stand-in
serves, raising the MU's interrupt through the GIC distributor).  The suite
runs on ``targets/qemu-imx8mp-standin.yaml``: the tty echo, the restart
cycles of the field reports and the restart behind Linux's back that leaves
the old channels behind; ``rprockit diagnose`` then names that failure from
the kernel log.
"""

from __future__ import annotations

import json

import pytest
from conftest import _REAL_HOME, ROOT, TEST_WS, rprockit

pytestmark = pytest.mark.slow
PROFILE = "imx8mp-mainline-6.1"
ENV = ROOT / "targets" / "qemu-imx8mp-standin.yaml"
CYCLES = 3


@pytest.fixture(scope="module")
def standin_run():
    TEST_WS.mkdir(parents=True, exist_ok=True)
    env = {"HOME": _REAL_HOME, "RPROCKIT_ROOT": str(ROOT)}
    proc = rprockit("all", "--profile", PROFILE, "--workspace", str(TEST_WS), "--target",
                    str(ENV), "--skip", "verify", env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    proc = rprockit("verify", "--profile", PROFILE, "--workspace", str(TEST_WS), "--target",
                    str(ENV), "--cycles", str(CYCLES), env=env)
    (TEST_WS / f"last-verify-standin-{PROFILE}.log").write_text(
        proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    return TEST_WS / PROFILE / "verify", proc


def test_preflight_checks_the_dtb_the_target_boots(standin_run):
    """The stand-in target boots imx8mp-evk-standin-qemu.dtb (its ``board_dtb``), whose cm
    node has the MU's mbox-names; the profile's board DTB has none."""
    report = json.loads((TEST_WS / PROFILE / "reports" / "preflight.json").read_text())
    assert report["dtb"].endswith("/imx8mp-evk-standin-qemu.dtb"), report["dtb"]
    status = {c["id"]: c["status"] for c in report["checks"]}
    assert status["dt.mbox"] == "pass", status


def check(summary: dict, name: str) -> dict:
    return next(c for c in summary["checks"] if c["check"] == name)


def test_rpmsg_tty_echo_passes_with_a_remote_that_runs(standin_run):
    out, proc = standin_run
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    res = json.loads((out / "results.json").read_text())
    for name in ("test_remoteproc_probed", "test_reload_cycles", "test_segment_integrity",
                 "test_rpmsg_tty_echo", "test_standin_restart_cycles",
                 "test_standin_tty_driver_reload", "test_dmesg_clean",
                 "test_standin_restart_behind_linux"):
        assert check(res, name)["outcome"] == "passed", (name, check(res, name))
    echo = check(res, "test_rpmsg_tty_echo")["evidence"]
    assert "/dev/ttyRPMSG0: sent 'rprockit-" in echo and "emulated: the remote core" in echo
    klog = (out / "kernel.log").read_text()
    # the remote announced its channels through the name service (rpmsg_ns.c rpmsg_ns_cb())
    assert "creating channel rpmsg-tty addr 0x400" in klog
    assert "creating channel rpmsg-virtual-tty-channel addr 0x401" in klog
    # the real imx-mailbox driver carried the kicks: no "no MU" fallback, no timeout
    assert "No initialized mbox tx channel" not in klog
    assert "imx_rproc_kick: failed" not in klog
    assert "psci: PSCIv1.0 detected in firmware" in klog


def test_restart_cycles_bring_the_channel_back_each_time(standin_run):
    out, proc = standin_run
    assert proc.returncode == 0
    res = json.loads((out / "results.json").read_text())
    ev = check(res, "test_standin_restart_cycles")["evidence"]
    # image a, then b, then a: the status answer names the file that was installed
    assert "cycle 1: image a" in ev and "cycle 2: image b" in ev and f"cycle {CYCLES}: image a" in ev
    assert f"'creating channel rpmsg-tty' logged {CYCLES} times" in ev


def test_channel_left_behind_is_logged_and_diagnosed(standin_run, tmp_path):
    out, proc = standin_run
    assert proc.returncode == 0
    res = json.loads((out / "results.json").read_text())
    ev = check(res, "test_standin_restart_behind_linux")["evidence"]
    assert "knowledge base: ['rpmsg-channel-exists']" in ev
    klog = (out / "kernel.log").read_text()
    # drivers/rpmsg/virtio_rpmsg_bus.c __rpmsg_create_channel(), rpmsg_ns.c rpmsg_ns_cb()
    assert "channel rpmsg-tty:ffffffff:400 already exist" in klog
    assert "rpmsg_create_channel failed" in klog
    diag = rprockit("diagnose", str(out / "kernel.log"), "--json",
                    env={"HOME": _REAL_HOME, "RPROCKIT_ROOT": str(ROOT)})
    assert diag.returncode == 3, diag.stdout + diag.stderr
    assert "rpmsg-channel-exists" in diag.stdout
    # and the lines it quotes are the stand-in's channels
    assert "rpmsg-tty:ffffffff:400 already exist" in diag.stdout
