"""The inner loop on the emulated board: boot once, then edit -> verified without a reboot.

``board-up`` boots the default profile's build (the shared workspace,
``$RPROCKIT_TEST_WORKSPACE``) on QEMU with SSH access; ``loop`` with a one-line
patch edit (bench/edits.py) builds the module set only, deploys it over SSH with
reload and runs the quick checks; the guest's boot id shows it never rebooted,
and the module loaded on it carries the edit.  A second ``loop`` does nothing.
The profile's own series then puts the shared tree back.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TEST_WS, rprockit

from rprockit.git import Git
from rprockit.ssh import SSHTransport
from rprockit.target import load_target

pytestmark = pytest.mark.slow
ENV_FILE = ROOT / "targets" / "qemu-imx7d-ssh.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str) -> str:
    proc = rprockit(*args, "--workspace", str(TEST_WS), env={"RPROCKIT_ROOT": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_edit_to_verified_on_the_running_guest(default_pipeline, tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    from edits import edit_profile

    home = Path(os.environ["HOME"])  # isolated per test by conftest
    (home / ".ssh").mkdir(mode=0o700, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(home / ".ssh" / "id_ed25519")], check=True)
    port = _free_port()  # the shipped file's port, moved to a free one
    env = tmp_path / "ssh-board.yaml"
    env.write_text(ENV_FILE.read_text().replace("10022", str(port)))
    base = default_pipeline[0] / "imx7d-mainline-6.1"
    head = Git(base / "src").head()
    prof = edit_profile(tmp_path / "edit", "loop-1", target=env)
    out = _run("board-up", "--target", str(env))
    assert "board up" in out
    desc = load_target(env)
    try:
        with SSHTransport(desc.ssh, connect_timeout=5) as t:
            boot_id = t.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout
        out = _run("loop", "--profile", str(prof), "--target", str(env))
        m = re.search(r"loop: verified in ([\d.]+) s", out)
        assert m, out
        assert "[modules] done" in out and "reloaded" in out and "5 passed" in out, out
        with SSHTransport(desc.ssh, connect_timeout=5) as t:
            assert t.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout == boot_id
            ko = t.run(["sh", "-c", "cat /lib/modules/$(uname -r)/updates/imx_rproc.ko | "
                        "grep -c rprockit-loop-1"]).stdout.strip()
            assert ko == "1", "the deployed module lacks the edit"
            assert t.run(["cat", "/sys/module/imx_rproc/initstate"]).stdout.strip() == "live"
        again = _run("loop", "--profile", str(prof), "--target", str(env))
        assert "is already on the running board" in again
        assert "[verify] up to date, skipped" in again
        print(f"edit to verified {m.group(1)} s; {again.splitlines()[-1]}")
    finally:
        _run("board-down")
        _run("build", "--modules-only")  # the profile's own series: the tree as found
    assert Git(base / "src").head() == head
