"""The arm64 profile (i.MX8MM) is built for real, not booted: QEMU has no i.MX8MM machine."""

import json
import os
import shutil
import subprocess

import pytest
from conftest import _REAL_HOME, ROOT, TEST_WS, rprockit

pytestmark = pytest.mark.slow
PROFILE = "imx8mm-mainline-6.1"


@pytest.fixture(scope="module")
def arm64_build():
    proc = rprockit("build", "--profile", PROFILE, "--workspace", str(TEST_WS),
                    env={"HOME": _REAL_HOME, "RPROCKIT_ROOT": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    yield TEST_WS / PROFILE / "artifacts"
    if os.environ.get("RPROCKIT_TEST_PRUNE") == "1":
        # no later test reads this workspace: with RPROCKIT_TEST_PRUNE=1 (CI) its kernel
        # tree and build (about 1.8 GiB) go now; without it they stay for the next session
        shutil.rmtree(TEST_WS / PROFILE)


def test_arm64_artifacts(arm64_build):
    man = json.loads((arm64_build / "manifest.json").read_text())
    assert man["arch"] == "arm64" and man["cross_compile"] == "aarch64-linux-gnu-"
    for name in ("Image", "dtbs/imx8mm-evk.dtb", "modules/imx_rproc.ko",
                 "modules/virtio_rpmsg_bus.ko"):
        assert name in man["outputs"], name
    info = subprocess.run(["file", "-b", str(arm64_build / "modules" / "imx_rproc.ko")],
                          capture_output=True, text=True, check=False).stdout
    if info:
        assert "aarch64" in info or "ARM aarch64" in info, info
    vermagic = subprocess.run(["modinfo", "-F", "vermagic", str(arm64_build / "modules" / "imx_rproc.ko")],
                              capture_output=True, text=True, check=True).stdout
    assert vermagic.startswith(man["kernel_release"] + " ")
