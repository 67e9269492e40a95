"""rprockit diagnose live on the emulated i.MX7D: over the serial console and over SSH.

The board runs the session's real kernel build (default profile).  Over the
console, ``rprockit diagnose --target targets/qemu-imx7d.yaml`` boots it,
reads dmesg and the facts read-only, and names no failure (nothing was started);
over SSH the running guest of ``test_deploy_qemu.ssh_board`` (dropbear, host key
checked) is diagnosed through the environment file's NetworkService.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_deploy_qemu import ssh_board, wait_ssh  # noqa: F401 - fixture

from rprockit.deploy import SSHTransport
from rprockit.diagnose import collect_from_target, diagnose
from rprockit.target import load_target
from rprockit.yamlfile import validate

ROOT = Path(__file__).resolve().parents[1]
ENV = ROOT / "targets" / "qemu-imx7d.yaml"

pytestmark = pytest.mark.slow


def test_diagnose_emulated_board_over_the_console(default_pipeline, tmp_path):
    ws = default_pipeline[0]
    save = tmp_path / "bundle.json"
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("rprockit")), "diagnose", str(save), "--target",
         str(ENV), "--workspace", str(ws), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
        env={**os.environ, "RPROCKIT_ROOT": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    validate(data, "diagnose", source="live console")
    assert data["input"]["kind"] == "facts" and data["input"]["source"].startswith("target:")
    assert data["context"]["soc"] == "imx7d" and data["context"]["start"] == "mmio"
    assert data["context"]["kernel"] == "6.1" and data["verdict"] == "no-known-failure"
    assert data["facts"]["soc"] == "imx7d" and data["input"]["lines"] > 100
    bundle = json.loads(save.read_text())
    assert any("Machine model" in ln or "OF: fdt" in ln for ln in bundle["kernel_log"])
    # the saved bundle diagnoses offline the same way
    again = subprocess.run([str(Path(sys.executable).with_name("rprockit")), "diagnose",
                            str(save)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert again.returncode == 0 and "no known failure" in again.stdout


def test_diagnose_emulated_board_over_ssh(ssh_board):  # noqa: F811
    env_file, art, _board = ssh_board
    # the console prompt comes before dropbear listens
    wait_ssh(SSHTransport(load_target(env_file).ssh, connect_timeout=5), 40)
    log, facts = collect_from_target(env_file, images=None)
    assert log.source == f"target:{env_file}" and facts["release"]
    # the kernel's own boot log, read over SSH (imx_rproc is a module nobody loaded yet)
    assert len(log.lines) > 100 and any("Machine model" in ln for ln in log.lines)
    diag = diagnose(log, facts=facts)
    assert diag.context.soc == "imx7d" and diag.facts is not None
    # on the emulated board the M4 never runs: no MU, so a kick finds no tx channel
    # (expected there); any other finding would be a real problem
    assert {m.id for m in diag.failures} <= {"no-mu-tx-channel"}, diag.render()
    validate(diag.to_dict(), "diagnose", source="live ssh")
    print(f"diagnose over SSH: {len(log.lines)} lines in {diag.seconds * 1000:.1f} ms; "
          f"manifest {json.loads((art / 'manifest.json').read_text()).get('id')}")
