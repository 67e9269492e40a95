"""Fixtures of the on-target suite (run by ``rprockit.verify.run_verify``).

The target is a labgrid environment file given with ``--lg-env``.  With a
QEMUDriver the board is powered on here; otherwise the suite uses whatever
command driver the target has (ShellDriver on a serial console, SSHDriver).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rprockit.verify.target_shell import TargetShell


def pytest_addoption(parser):
    g = parser.getgroup("rprockit")
    g.addoption("--rprockit-manifest", required=True, help="build manifest.json")
    g.addoption("--rprockit-cycles", type=int, default=3, help="reload cycles (default 3)")


@pytest.fixture(scope="session")
def manifest(request) -> dict:
    path = Path(request.config.getoption("--rprockit-manifest"))
    data = json.loads(path.read_text())
    data["_dir"] = str(path.parent)
    return data


@pytest.fixture(scope="session")
def cycles(request) -> int:
    return request.config.getoption("--rprockit-cycles")


@pytest.fixture(scope="session")
def emulated(target) -> bool:
    return bool(target.env.config.get_option("rprockit_emulated", False))


@pytest.fixture(scope="session")
def shell(target) -> TargetShell:
    """A command shell on the target; boots the emulated board when there is one."""
    qemu = None
    try:
        qemu = target.get_driver("QEMUDriver", activate=False)
    except Exception:  # noqa: BLE001 - no QEMU on a real board
        qemu = None
    if qemu is not None:
        target.activate(qemu)
        qemu.on()
    cmd = target.get_driver("CommandProtocol")
    sh = TargetShell(cmd)
    yield sh
    if qemu is not None:
        target.deactivate(qemu)  # stops QEMU (poweroff -f does not end it on this machine)
