"""Fix 2 (empty-resource-table) on a running kernel: the emulated i.MX7D.

Claim shown: on a kernel without the fix, a firmware without a
``.resource_table`` section fails to start with the exact kernel log lines the
field saw on NXP linux-imx 4.14 (the ``fixes`` of ``empty-resource-table`` in
``patches/imx-rproc/meta.yaml``); with the fix the same firmware starts.

The NXP vendor kernels do not boot on QEMU's ``mcimx7d-sabre``, so both
kernels are the default profile's mainline 6.1 (zImage, DTB, modules from the
pipeline).  Mainline has the fix; the unfixed kernel is the same kernel with
``imx_rproc.ko`` rebuilt as an external module from the workspace's own
``drivers/remoteproc/imx_rproc.c`` with
``tests/fixtures/fix-effects/0001-remoteproc-imx_rproc-refuse-firmware-without-a-resou.patch``
applied by ``git apply``.  That patch reverts what mainline commit
b29b4249f8f0 ("remoteproc: imx_rproc: add i.MX specific parse fw hook", v5.13)
does for a firmware without a table (``imx_rproc_parse_fw()`` logs "No
resource table in elf" and returns 0) and restores the check of 4.14.78
``rproc_fw_boot()`` (drivers/remoteproc/remoteproc_core.c): ``dev_err(dev,
"Failed to find resource table\\n")`` and -EINVAL.  v6.1 ``rproc_fw_boot()``
calls the hook where 4.14 looked the table up (after "Booting fw image", before
the resources are handled), and 6.1's ``state_store()``
(remoteproc_sysfs.c) prints "Boot failed: %d" like 4.14's, so the unfixed
module stands in for the vendor kernel's remoteproc core in the one path that
matters here; everything else (ELF loader, the rest of the core) is 6.1's.

Each test boots QEMU once through labgrid (``targets/qemu-imx7d.yaml``, the
pipeline's zImage and DTB, an initramfs from
:func:`rprockit.initramfs.make_initramfs` with the modules and both firmware
images: the no-table ELF and the pipeline's ``rproc-test.elf``) and drives the
rproc through sysfs with the ShellDriver's ``run()``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from elftools.elf.elffile import ELFFile

from rprockit.initramfs import make_initramfs
from rprockit.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "fix-effects"
PATCH = FIX / "0001-remoteproc-imx_rproc-refuse-firmware-without-a-resou.patch"
PREFLIGHT = ROOT / "tests" / "fixtures" / "preflight"
FW_SRC = ROOT / "firmware" / "rproc-test"
TARGET = ROOT / "targets" / "qemu-imx7d.yaml"
META = ROOT / "patches" / "imx-rproc" / "meta.yaml"
PROFILE = "imx7d-mainline-6.1"
DTB = "imx7d-sdb-rproc-qemu.dtb"
#: The firmware without a resource table (preflight's fw.c built with -DNO_RSC_TABLE).
NORSC = "rproc-norsc.elf"
#: What imx_rproc.c includes from its own directory (v6.1).
MODULE_FILES = ("imx_rproc.c", "imx_rproc.h", "remoteproc_internal.h")
#: i.MX7D M4 DDR alias the firmware is linked for (imx_rproc_att_imx7d; the
#: reserved-memory of kernel_configs/dts/imx7d-sdb-rproc-qemu.dts): 1 MiB.
M4_DDR = (0x1FE00000, 0x100000)
RPROC = "/sys/class/remoteproc/remoteproc0"
_TS = re.compile(r"^\[\s*\d+\.\d+\]\s?")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-linux-gnueabihf-gcc",
                                          "qemu-system-arm", "git", "make", "modinfo")),
        reason="needs gcc-arm-none-eabi, gcc-arm-linux-gnueabihf, qemu-system-arm, git, make "
               "and kmod"),
]


def _fix_lines() -> list[str]:
    """The kernel log lines fix 2 is recorded to fix (``fixes`` in meta.yaml)."""
    meta = yaml.safe_load(META.read_text())
    entry = next(p for p in meta["patches"].values() if p["fix"] == "empty-resource-table")
    return entry["fixes"]


@pytest.fixture(scope="module")
def profile_dir(default_pipeline) -> Path:
    return default_pipeline[0] / PROFILE


@pytest.fixture(scope="module")
def manifest(profile_dir) -> dict:
    return json.loads((profile_dir / "artifacts" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def unfixed_module(profile_dir, tmp_path_factory) -> Path:
    """imx_rproc.ko without fix 2: the workspace's source, the revert applied with
    ``git apply``, built as an external module against the pipeline's O= tree."""
    run = Runner().run
    tree = tmp_path_factory.mktemp("unfixed-imx-rproc")
    mdir = tree / "drivers" / "remoteproc"
    mdir.mkdir(parents=True)
    for name in MODULE_FILES:
        shutil.copy2(profile_dir / "src" / "drivers" / "remoteproc" / name, mdir / name)
    run(["git", "init", "-q"], cwd=tree)  # git apply resolves paths from this root
    run(["git", "apply", "--verbose", PATCH], cwd=tree)
    assert 'dev_err(&rproc->dev, "Failed to find resource table\\n");' in \
        (mdir / "imx_rproc.c").read_text()
    (mdir / "Kbuild").write_text("obj-m := imx_rproc.o\n")
    run(["nice", "-n", "19", "make", "-C", profile_dir / "src", f"O={profile_dir / 'out'}",
         "ARCH=arm", "CROSS_COMPILE=arm-linux-gnueabihf-", f"M={mdir}", "modules"], timeout=600)
    return mdir / "imx_rproc.ko"


@pytest.fixture(scope="module")
def norsc_firmware(tmp_path_factory) -> Path:
    """A Cortex-M4 ELF without .resource_table, linked for the DDR alias 0x1FE00000."""
    elf = tmp_path_factory.mktemp("fw") / NORSC
    Runner().run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-Os", "-ffreestanding",
                  "-nostdlib", "-nostartfiles", "-Wl,--build-id=none", f"-I{FW_SRC}",
                  "-DNO_RSC_TABLE", "-T", PREFLIGHT / "imx7d-ddr.ld", PREFLIGHT / "fw.c",
                  "-o", elf])
    return elf


def _vermagic(ko: Path) -> bytes:
    """The exact ``vermagic=`` value of a module's .modinfo (modinfo(8) strips the
    trailing blank of VERMAGIC_STRING, include/linux/vermagic.h)."""
    with open(ko, "rb") as fh:
        info = ELFFile(fh).get_section_by_name(".modinfo").data()
    return next(e for e in info.split(b"\0") if e.startswith(b"vermagic="))[len(b"vermagic="):]


def test_fixtures_are_what_they_claim(unfixed_module, norsc_firmware, profile_dir, manifest):
    """The unfixed module matches the kernel; the firmware has no table and fits the alias."""
    vm = _vermagic(unfixed_module)
    assert vm.split()[0].decode() == manifest["kernel_release"], vm
    assert vm == _vermagic(profile_dir / "artifacts" / "modules" / "imx_rproc.ko")
    # kernel/module/main.c check_modinfo(): the loader compares it with the kernel's own
    # VERMAGIC_STRING, a NUL-terminated string in vmlinux
    assert b"\0" + vm + b"\0" in (profile_dir / "out" / "vmlinux").read_bytes()
    assert Runner().run(["modinfo", "-F", "vermagic", unfixed_module]).stdout.strip() == \
        vm.decode().strip()
    with open(norsc_firmware, "rb") as fh:
        elf = ELFFile(fh)
        assert elf.get_section_by_name(".resource_table") is None
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_memsz"]]
        assert loads
        base, size = M4_DDR
        for seg in loads:
            assert base <= seg["p_paddr"] and seg["p_paddr"] + seg["p_memsz"] <= base + size


def _images(tmp: Path, profile_dir: Path, manifest: dict, modules: list[Path],
            firmware: list[Path]) -> Path:
    """The directory LG_RPROCKIT_IMAGES points at: zImage, dtbs/ and our initramfs."""
    art = profile_dir / "artifacts"
    images = tmp / "images"
    images.mkdir()
    (images / "zImage").symlink_to(art / "zImage")
    (images / "dtbs").symlink_to(art / "dtbs")
    make_initramfs("arm", manifest["kernel_release"], modules, firmware,
                   images / "initramfs.cpio", epoch=0)
    return images


@contextlib.contextmanager
def _booted(images: Path, monkeypatch):
    """Boot the emulated board; yield ``(ShellDriver, boot seconds)``."""
    from labgrid import Environment

    monkeypatch.setenv("LG_RPROCKIT_IMAGES", str(images))
    target = Environment(str(TARGET)).get_target("main")
    t0 = time.monotonic()
    try:
        qemu = target.get_driver("QEMUDriver", activate=False)
        target.activate(qemu)
        qemu.on()
        shell = target.get_driver("ShellDriver")
        yield shell, time.monotonic() - t0
    finally:
        target.cleanup()  # deactivates the drivers: QEMU is stopped


def _sh(shell, cmd: str) -> tuple[list[str], int]:
    out, _err, rc = shell.run(cmd, timeout=30)
    return out, rc


def _load_stack(shell, manifest) -> None:
    for name in manifest["modules"]["load_order"]:
        out, rc = _sh(shell, f"modprobe {name} 2>&1")
        assert rc == 0, f"modprobe {name}: {out}"


def _start(shell, fw: str) -> tuple[list[str], int, str, list[str]]:
    """Clear the kernel log, start ``fw``; ``(write output, rc, state, kernel log lines)``."""
    _sh(shell, "dmesg -c >/dev/null")
    assert _sh(shell, f"echo {fw} > {RPROC}/firmware")[1] == 0
    out, rc = _sh(shell, f"{{ echo start > {RPROC}/state; }} 2>&1")
    state = _sh(shell, f"cat {RPROC}/state")[0][0].strip()
    klog = [_TS.sub("", ln) for ln in _sh(shell, "dmesg")[0] if ln.strip()]
    return out, rc, state, klog


def _in_order(lines: list[str], expected: list[str]) -> bool:
    it = iter(lines)
    return all(any(ln == e for ln in it) for e in expected)


def _boot_case(tmp_path, monkeypatch, profile_dir, manifest, imx_rproc: Path,
               norsc_firmware: Path, check) -> None:
    art = profile_dir / "artifacts"
    modules = [p for p in sorted((art / "modules").glob("*.ko")) if p.name != "imx_rproc.ko"]
    firmware = [norsc_firmware, art / "firmware" / manifest["firmware"]["name"]]
    images = _images(tmp_path, profile_dir, manifest, [*modules, imx_rproc], firmware)
    with _booted(images, monkeypatch) as (shell, boot_s):
        assert _sh(shell, "uname -r")[0] == [manifest["kernel_release"]]
        _load_stack(shell, manifest)
        # QEMU 10's SRC reads 0 at reset: imx_rproc finds the M4 running and attaches
        assert _sh(shell, f"cat {RPROC}/state")[0] == ["attached"]
        assert _sh(shell, f"echo stop > {RPROC}/state")[1] == 0
        assert _sh(shell, f"cat {RPROC}/state")[0] == ["offline"]
        check(shell)
    print(f"boot to shell: {boot_s:.1f} s")


def test_without_fix_firmware_without_table_fails_like_the_field(
        tmp_path, monkeypatch, profile_dir, manifest, unfixed_module, norsc_firmware):
    """Unfixed imx_rproc: start fails with EINVAL, state stays offline, and the kernel log
    has the field's lines in 4.14's order; a firmware with a table still starts."""
    size = norsc_firmware.stat().st_size
    field = _fix_lines()

    def check(shell):
        # out-of-tree module: taint flag O proves the rebuilt module is the one loaded
        assert "O" in _sh(shell, "cat /sys/module/imx_rproc/taint")[0][0]
        out, rc, state, klog = _start(shell, NORSC)
        print("\n".join([f"echo start (unfixed): rc {rc}, {out}, state {state}", *klog]))
        assert rc != 0 and any("Invalid argument" in ln for ln in out), out
        assert state == "offline"
        for line in field:
            assert line in klog, f"{line!r} not in the kernel log:\n" + "\n".join(klog)
        assert _in_order(klog, [
            "remoteproc remoteproc0: powering up imx-rproc",
            f"remoteproc remoteproc0: Booting fw image {NORSC}, size {size}",
            "remoteproc remoteproc0: Failed to find resource table",
            "remoteproc remoteproc0: Boot failed: -22"]), "\n".join(klog)
        assert not any("No resource table in elf" in ln for ln in klog)
        # control: the unfixed module is otherwise working
        out, rc, state, klog = _start(shell, manifest["firmware"]["name"])
        assert rc == 0 and state == "running", (out, state, klog)
        assert _sh(shell, f"echo stop > {RPROC}/state")[1] == 0

    _boot_case(tmp_path, monkeypatch, profile_dir, manifest, unfixed_module, norsc_firmware,
               check)


def test_with_fix_firmware_without_table_starts(tmp_path, monkeypatch, profile_dir, manifest,
                                                norsc_firmware):
    """The pipeline's imx_rproc (fix present): the same firmware starts, with no vdev."""
    size = norsc_firmware.stat().st_size
    field = _fix_lines()

    def check(shell):
        assert "O" not in "".join(_sh(shell, "cat /sys/module/imx_rproc/taint")[0])
        out, rc, state, klog = _start(shell, NORSC)
        print("\n".join([f"echo start (fixed): rc {rc}, {out}, state {state}", *klog]))
        assert rc == 0 and state == "running", (out, state, klog)
        assert _in_order(klog, [
            "remoteproc remoteproc0: powering up imx-rproc",
            f"remoteproc remoteproc0: Booting fw image {NORSC}, size {size}",
            "remoteproc remoteproc0: No resource table in elf",
            "remoteproc remoteproc0: remote processor imx-rproc is now up"]), "\n".join(klog)
        for line in field:
            assert line not in klog
        # no resource table, so no vdev: no virtio device, no rpmsg channel
        assert not any("registered virtio" in ln for ln in klog), klog
        assert _sh(shell, "ls /sys/bus/virtio/devices")[0] == []
        assert _sh(shell, f"echo stop > {RPROC}/state")[1] == 0
        assert _sh(shell, f"cat {RPROC}/state")[0] == ["offline"]
        # control: the firmware with a table does get its vdev (the check above can fail)
        out, rc, state, klog = _start(shell, manifest["firmware"]["name"])
        assert rc == 0 and state == "running", (out, state, klog)
        assert any("registered virtio" in ln for ln in klog), klog
        assert _sh(shell, "ls /sys/bus/virtio/devices")[0] != []
        assert _sh(shell, f"echo stop > {RPROC}/state")[1] == 0

    _boot_case(tmp_path, monkeypatch, profile_dir, manifest,
               profile_dir / "artifacts" / "modules" / "imx_rproc.ko", norsc_firmware, check)

