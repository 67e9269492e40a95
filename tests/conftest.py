"""Shared fixtures.

Tiers: unit tests run in seconds; ``slow`` tests run the real kernel build
and QEMU (CI runs them too); ``vendor`` tests need vendor trees named by
environment variables and skip without them.

The kernel pipeline runs once per test session into a persistent workspace
(``$RPROCKIT_TEST_WORKSPACE``, default ``build/test-workspace``) so a second
test run reuses every stage by fingerprint, and ccache covers the rest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["sshd_fixture"]

ROOT = Path(__file__).resolve().parents[1]
TEST_WS = Path(os.environ.get("RPROCKIT_TEST_WORKSPACE", ROOT / "build" / "test-workspace"))
# keep the real compiler cache when HOME is isolated below
os.environ.setdefault("CCACHE_DIR", str(Path.home() / ".cache" / "ccache"))
# and the machine cache (busybox and dropbear built from Debian's source once per machine)
os.environ.setdefault("RPROCKIT_CACHE", str(Path.home() / ".cache" / "rprockit"))
_REAL_HOME = str(Path.home())


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path_factory):
    """Isolate HOME, XDG_* and GIT_* (kas ``tests/conftest.py`` ``monkeykas``)."""
    home = tmp_path_factory.mktemp("home")
    for var in list(os.environ):
        if var.startswith(("XDG_", "GIT_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # no user keys leak into SSH tests
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for k in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{k}_NAME", "rprockit test")
        monkeypatch.setenv(f"GIT_{k}_EMAIL", "test@localhost")
    yield


def rprockit(*args: str, cwd: Path = ROOT, env: dict | None = None,
             timeout: float = 3600) -> subprocess.CompletedProcess:
    """Run the ``rprockit`` console script (the same tasks as ``invoke``)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", "from rprockit.cli import main; main()", *args],
                          cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="session")
def default_pipeline():
    """Run the default profile through every stage once per session.

    Returns:
        ``(workspace root, CompletedProcess)`` of ``rprockit all``.
    """
    TEST_WS.mkdir(parents=True, exist_ok=True)
    proc = rprockit("all", "--workspace", str(TEST_WS),
                    env={"HOME": _REAL_HOME, "RPROCKIT_ROOT": str(ROOT)})
    (TEST_WS / "last-all.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    assert proc.returncode == 0, f"rprockit all failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return TEST_WS, proc


@pytest.fixture(scope="session")
def kernel_tree(default_pipeline) -> Path:
    """The default profile's fetched (and patched) Debian 6.1 tree."""
    return default_pipeline[0] / "imx7d-mainline-6.1" / "src"
