"""The ``invoke`` binary (the README's main command) reports bad command lines as the
``rprockit`` script does: exit 2, the culprit named, no traceback.

Runs the real ``invoke`` of the virtual environment on the repository's ``tasks.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INVOKE = Path(sys.executable).with_name("invoke")


@pytest.mark.parametrize(("argv", "culprit"), [
    (["verify", "--cycles", "x"], "--cycles x"),
    (["all", "--cycles=abc"], "--cycles abc"),
    (["verify", "--cycles", "0"], "--cycles 0"),
    (["--bogus"], "'--bogus'"),
    (["nosuchtask"], "'nosuchtask'"),
    (["patch", "--bogus"], "'--bogus'"),
])
def test_invoke_binary_bad_command_line_exits_2(argv, culprit):
    proc = subprocess.run([str(INVOKE), *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert culprit in proc.stderr
    assert "invoke --list" in proc.stderr or "--cycles" in culprit


def test_invoke_binary_lists_tasks():
    proc = subprocess.run([str(INVOKE), "--list"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    for name in ("fetch", "patch", "configure", "build", "check-firmware", "verify", "deploy",
                 "diagnose", "all"):
        assert f"  {name} " in proc.stdout
