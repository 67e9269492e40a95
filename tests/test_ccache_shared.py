"""The compiler cache survives a change of workspace and checkout: hits from a shared Redis.

Two fresh workspaces build the default profile with the same inputs:

* A, in one workspace root, from this checkout, with the machine's local cache
  (``CCACHE_DIR``, warm after the session's own build) and ``reshare`` so that
  every compilation lands in the Redis server, hit or miss;
* B, in another workspace root, from a copy of the checkout at another path
  (profile, fragments, board DTS, firmware sources), with an EMPTY local cache
  directory: every hit B gets comes from Redis.

What it proves: with ``base_dir`` = the workspace and ``hash_dir = false``
(rprockit.ccache), the kernel's absolute paths (``O=``, ``-I<src>``,
``-fmacro-prefix-map=<src>/=``) no longer reach ccache's hash, so B hits
(goal >= 90 % of its compilations, all of them remote), and B's artifacts are
bit-identical to A's: the cache changed no output.

The Redis server is real (``redis-server``, Debian package ``redis-server``) on
127.0.0.1 and a free port, with no persistence, started here and stopped after.
``RPROCKIT_CCACHE_COLD=1`` gives A an empty local cache too: A is then the cold
build and the printed numbers are the cold-versus-shared measurement.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, rprockit

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None or
                                 shutil.which("ccache") is None,
                                 reason="needs redis-server and ccache (setup.sh installs them)")]
PROFILE = "imx7d-mainline-6.1"
#: what B's copy of the checkout holds: everything the profile names
CHECKOUT_DIRS = ("kernel_configs", "patches", "modules", "firmware", "targets")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis(tmp_path):
    """A throwaway Redis on loopback; yields its ``redis://`` URL."""
    port = _free_port()
    data = tmp_path / "redis"
    data.mkdir()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                             "--save", "", "--appendonly", "no", "--dir", str(data),
                             "--protected-mode", "yes"],
                            stdout=(data / "log").open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, (data / "log").read_text()
                assert time.monotonic() < deadline, "redis-server did not listen"
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _keys(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", port, "DBSIZE"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def _build(tmp_path: Path, name: str, root: Path, ccache: dict) -> dict:
    """``rprockit build`` of the default profile in a fresh workspace; its manifest."""
    cfg = tmp_path / f"invoke-{name}.yaml"
    cfg.write_text(json.dumps({"rprockit": {"ccache": ccache}}))  # JSON is YAML
    ws = tmp_path / f"ws-{name}"
    proc = rprockit("-f", str(cfg), "build", "--workspace", str(ws),
                    env={"RPROCKIT_ROOT": str(root)}, cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    man = json.loads((ws / PROFILE / "artifacts" / "manifest.json").read_text())
    man["_stdout"] = proc.stdout
    return man


def test_second_workspace_hits_the_shared_cache(tmp_path, redis):
    cold = bool(os.environ.get("RPROCKIT_CCACHE_COLD"))
    local_a = str(tmp_path / "ccache-a") if cold else os.environ["CCACHE_DIR"]
    a = _build(tmp_path, "a", ROOT, {"dir": local_a, "remote_storage": redis, "reshare": True})
    sa = a["ccache"]["stats"]
    assert a["ccache"]["used"] and a["ccache"]["remote_storage"] == redis
    assert sa["compilations"] > 100, sa  # a kernel build, not a no-op
    assert _keys(redis) >= sa["compilations"], "A did not fill the shared cache"
    # A's manifest holds what B is compared with: its tree goes before B unpacks its own,
    # so the test holds one kernel tree at a time (about 1.7 GiB each)
    shutil.rmtree(tmp_path / "ws-a")

    checkout_b = tmp_path / "elsewhere" / "checkout-b"
    for d in CHECKOUT_DIRS:
        shutil.copytree(ROOT / d, checkout_b / d)
    local_b = tmp_path / "ccache-b"  # empty: B's hits can only come from Redis
    b = _build(tmp_path, "b", checkout_b, {"dir": str(local_b), "remote_storage": redis})
    sb = b["ccache"]["stats"]
    print(f"\nccache shared: A {'cold' if cold else 'warm local + reshare'} "
          f"{a['build_seconds']} s {sa}; B {b['build_seconds']} s {sb}")
    assert b["ccache"]["base_dir"] == str(tmp_path / "ws-b" / PROFILE)
    assert sb["compilations"] == sa["compilations"], (sa, sb)
    assert sb["remote_errors"] == 0, sb
    assert sb["hit_rate"] >= 0.90, sb
    # B's local cache started empty: its local hits are only repeats within the build
    # (a file compiled twice, as A's own hits show); everything else came from Redis
    assert sb["local_hits"] <= sa["hits"], (sa, sb)
    assert sb["remote_hits"] + sb["local_hits"] == sb["hits"], sb
    assert sb["remote_hits"] >= 0.90 * sb["compilations"], sb
    assert "% hits (" in b["_stdout"] and "remote)" in b["_stdout"]
    # the cache changed no artifact: B's outputs are A's, byte for byte
    assert {k: v["sha256"] for k, v in b["outputs"].items()} == \
        {k: v["sha256"] for k, v in a["outputs"].items()}
