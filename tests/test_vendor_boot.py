"""NXP vendor kernels on QEMU 10's emulated boards.

NXP linux-imx 5.15.71 (the TechNexion tree, ``RPROCKIT_NXP_5_15_TREE``;
skipped without it) runs on QEMU 10's ``imx8mp-evk`` through rprockit's EL3
monitor: the shipped profile ``nxp-imx8mp-5.15-qemu`` pointed at the tree
(:func:`vendor_boot.tree_profile`), ``rprockit all`` through verify
(``targets/qemu-imx8mp.yaml``).  QEMU models no MU, TCM or M7: the cm7 node
has no mailboxes and the firmware lives in DDR; Linux's side (SMC start/stop
answered by the monitor, ELF loading, resource table, vdev, vrings) is real.

loadable-imx-rpmsg (patched): ``imx_rpmsg`` is a module; NXP's i.MX8M Plus
DT has no ``fsl,*-rpmsg`` node, so the driver registers and unregisters with
nothing to bind, and rmmod/modprobe cycle.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _REAL_HOME, TEST_WS, rprockit
from vendor_boot import ROOT, tree_profile, vendor_tree

from rprockit.el3boot import boot_dtb
from rprockit.initramfs import make_initramfs
from rprockit.manifest import Manifest
from rprockit.verify.target_shell import TargetShell, images_env, open_shell

IMX8MP = "nxp-imx8mp-5.15-qemu"
TARGET_8MP = ROOT / "targets" / "qemu-imx8mp.yaml"
PROFILES_DIR = TEST_WS / "vendor-profiles"
_TS = re.compile(r"^\[\s*\d+\.\d+\]\s?")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "aarch64-linux-gnu-gcc",
                                          "qemu-system-aarch64", "git", "make", "depmod", "cpio")),
        reason="needs gcc-arm-none-eabi, gcc-aarch64-linux-gnu, qemu-system-aarch64, git, make, "
               "kmod and cpio"),
]


def _pipeline(task: str, name: str, tree: Path, unpatched: bool, shipped: str):
    profile = tree_profile(shipped, tree, PROFILES_DIR, unpatched=unpatched)
    t0 = time.monotonic()
    proc = rprockit(task, "--profile", str(profile), "--workspace", str(TEST_WS),
                    env={"HOME": _REAL_HOME, "RPROCKIT_ROOT": str(ROOT)})
    wall = time.monotonic() - t0
    (TEST_WS / f"last-{task}-{name}.log").write_text(
        f"wall {wall:.1f} s\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return proc, wall


def _images_8mp(tmp: Path, man: Manifest, modules: list[Path]) -> Path:
    """LG_RPROCKIT_IMAGES of the i.MX8M Plus: Image, the EL3 monitor the verify stage
    built, an initramfs with ``modules`` and a boot DTB naming its range."""
    images = tmp / "images"
    images.mkdir()
    (images / "Image").symlink_to(man.artifacts / "Image")
    (images / "el3-monitor.elf").symlink_to(man.artifacts / "el3-monitor.elf")
    out = man.artifacts.parent / "out"
    rel = man.kernel_release
    initrd = make_initramfs(
        "arm64", rel, modules, [man.artifacts / "firmware" / man.firmware_name],
        images / "initramfs.cpio", epoch=0,
        extra_files={f"/lib/modules/{rel}/modules.builtin": out / "modules.builtin"})
    dtb = man.board_dtb()
    assert dtb is not None
    boot_dtb(dtb, initrd, images / "boot.dtb")
    return images


@contextlib.contextmanager
def _booted(images: Path, target_file: Path) -> Iterator[tuple[TargetShell, float]]:
    """Boot the emulated board; yield ``(shell, seconds to the shell)``."""
    from labgrid import Environment

    with images_env(images):
        target = Environment(str(target_file)).get_target("main")
        t0 = time.monotonic()
        try:
            with open_shell(target, target_file) as sh:
                yield sh, time.monotonic() - t0
        finally:
            target.cleanup()


def _klog(sh: TargetShell) -> list[str]:
    return [_TS.sub("", ln) for ln in sh.check("dmesg").splitlines() if ln.strip()]


def _modules(man: Manifest, *names: str) -> list[Path]:
    return [man.artifacts / "modules" / f"{n}.ko" for n in names]


# -- NXP 5.15 on the i.MX8M Plus ------------------------------------------------------------
@pytest.fixture(scope="module")
def patched515():
    """``rprockit all`` of ``nxp-imx8mp-5.15-qemu`` on ``RPROCKIT_NXP_5_15_TREE``."""
    tree = vendor_tree("RPROCKIT_NXP_5_15_TREE")
    proc, wall = _pipeline("all", IMX8MP, tree, unpatched=False, shipped=IMX8MP)
    man = TEST_WS / IMX8MP / "artifacts" / "manifest.json"
    return proc, wall, Manifest.load(man) if man.is_file() else None


def test_nxp515_imx8mp_all_through_verify(patched515):
    """NXP 5.15 with the series boots through the EL3 monitor and passes the suite."""
    proc, wall, man = patched515
    print(f"rprockit all --profile {IMX8MP}: rc {proc.returncode}, wall {wall:.1f} s")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert man is not None and man.kernel_release.startswith("5.15.71")
    results = json.loads((TEST_WS / IMX8MP / "verify" / "results.json").read_text())
    outcome = {c["check"]: c["outcome"] for c in results["checks"]}
    print(outcome)
    assert outcome["test_reload_cycles"] == "passed"
    assert outcome["test_segment_integrity"] == "passed"


def test_nxp515_imx_rpmsg_patched_unloads_and_reloads(patched515, tmp_path):
    """Patched 5.15: imx_rpmsg is a module that rmmod/modprobe cycle.  NXP's i.MX8M
    Plus DT has no fsl,*-rpmsg node (the M7 is imx_rproc's, over virtio), so the
    driver registers and unregisters with nothing to bind."""
    _proc, _wall, man = patched515
    assert man is not None
    mods = _modules(man, "rpmsg_core", "rpmsg_ns", "virtio_rpmsg_bus", "imx_rpmsg")
    with _booted(_images_8mp(tmp_path, man, mods), TARGET_8MP) as (sh, boot_s):
        assert sh.check("uname -r").strip() == man.kernel_release
        rows = []
        for _ in range(3):
            sh.check("modprobe imx_rpmsg")
            state = sh.read("/sys/module/imx_rpmsg/initstate")
            drv = sh.exists("/sys/bus/platform/drivers/imx-rpmsg")
            _out, rc = sh.run("rmmod imx_rpmsg 2>&1")
            rows.append((state, drv, rc, sh.exists("/sys/module/imx_rpmsg")))
        klog = _klog(sh)
        print(f"boot to shell {boot_s:.1f} s", *rows, sep="\n")
        assert rows == [("live", True, 0, False)] * 3, rows
        assert not any(re.search(r"Oops|BUG:|WARNING:", ln) for ln in klog)
