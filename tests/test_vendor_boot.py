"""NXP vendor kernels on QEMU 10's emulated i.MX7D, each fix before and after.

The kernel is NXP linux-imx 5.4.47 from ``RPROCKIT_NXP_5_4_TREE`` (skipped
without it), built by the pipeline twice from the shipped profile
``nxp-imx7d-5.4-qemu`` (:func:`vendor_boot.tree_profile`):

* **patched**: the profile as shipped, ``rprockit all`` through verify (the
  on-target suite on the running vendor kernel);
* **unpatched**: the same tree, config and board DTS without the fix series
  ``patches/imx-rproc`` (build fixes only), so every fix is absent.

Each before/after test boots one of the two on ``targets/qemu-imx7d.yaml``
(the pipeline's zImage and board DTB ``imx7d-sdb-rproc-qemu.dtb`` from
``kernel_configs/dts/nxp-5.4``, an initramfs from
:func:`rprockit.initramfs.make_initramfs`) and reads the result on the target.
QEMU models no MU and no M4: the cm4 node has no mailboxes, the M4 never
executes; Linux's side (SRC accesses, ELF loading into OCRAM_S and DDR,
resource table, vdev, vrings) is real.

NXP linux-imx 5.15.71 (the TechNexion tree, ``RPROCKIT_NXP_5_15_TREE``) runs
the same way on QEMU 10's ``imx8mp-evk`` through rprockit's EL3 monitor
(``nxp-imx8mp-5.15-qemu``, ``targets/qemu-imx8mp.yaml``): patched through
``all``, and unpatched (``build`` only) for the loadable-imx-rpmsg "before".

NXP linux-imx 4.14.78 (``RPROCKIT_NXP_4_14_TREE``) is built with and without
the series from ``nxp-imx7d-4.14-qemu`` and boots on the same board; its test
is the empty-resource-table fix: a firmware without ``.resource_table``.
Unpatched, ``rproc_fw_boot()`` (drivers/remoteproc/remoteproc_core.c line 939)
logs "Failed to find resource table" and returns -EINVAL, which
``state_store()`` (remoteproc_sysfs.c line 105) logs as "Boot failed: -22";
the state stays offline.  Patched, the core logs "No resource table in
firmware, booting without resources", loads the segments, ``imx_rproc_start()``
writes SRC_M4RCR and the state reads running.

Expected results, derived from the NXP 5.4.47 source first:

* optional-mu-mailboxes: unpatched ``imx_rproc_db_channel_init()``
  (drivers/remoteproc/imx_rproc.c) requests the "rxdb" mailbox by name;
  without ``mbox-names`` ``of_property_match_string()`` gives -EINVAL, the
  probe returns it and the driver core logs "imx-rproc: probe of imx7d-cm4
  failed with error -22" (drivers/base/dd.c really_probe()).  Patched, the
  probe logs "No mbox-names, running without mailboxes"; the SRC reads 0, so
  ``imx_rproc_configure_mode()`` takes the core as early-booted and
  rproc_add() boots it without firmware: "running"; stop/start cycles follow.
* elf-segment-loading: unpatched ``imx_rproc_memcpy()`` copies ``count / 4``
  words, so the 13-byte .data of ``firmware/rproc-test`` loses byte 12, and
  NXP's ``rproc_elf_load_segments()`` (remoteproc_elf_loader.c) has no
  zero-fill, so .bss keeps what the memory held (the test writes 0xa5 there
  first).  Patched: every segment byte-exact.  The unpatched kernel cannot
  probe imx_rproc at all (previous fix), so the "before" module is the
  unpatched tree's imx_rproc.c with only the MU fix applied, built against the
  unpatched kernel; the ELF loader of that kernel is NXP's own.
* loadable-imx-rpmsg: unpatched ``obj-$(CONFIG_HAVE_IMX_RPMSG) +=
  imx_rpmsg.o`` with a bool symbol: built into vmlinux (its modinfo is in
  ``modules.builtin.modinfo``, its driver ``imx-rpmsg`` is registered), so it
  cannot be removed.  5.4 does not list it in ``modules.builtin``: that file
  comes from scripts/Makefile.modbuiltin, which reads
  ``include/config/tristate.conf`` and so lists only objects of tristate
  symbols; ``rmmod`` and ``modprobe -r`` then fail with "not found" rather
  than "builtin".  5.15 writes ``modules.builtin`` from the ``file=`` modinfo
  of every built-in object (scripts/link-vmlinux.sh), so there it is listed
  and kmod says "Module imx_rpmsg is builtin".  Patched: a module that ``rmmod``/``modprobe`` cycle.  The MU is
  not modelled, so imx_rpmsg's probe of NXP's rpmsg node is deferred at its
  first mailbox request every time: load, bind attempt and unload are shown;
  vdev registration and its teardown are not reached.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
from conftest import _REAL_HOME, TEST_WS, rprockit
from vendor_boot import ROOT, booted, kernel_log, tree_profile, vendor_tree

from rprockit.el3boot import boot_dtb, build_monitor
from rprockit.initramfs import make_initramfs
from rprockit.manifest import Manifest
from rprockit.preflight.soc import load_soc
from rprockit.runner import Runner
from rprockit.verify.integrity import compare, expected_spans, read_back
from rprockit.verify.target_shell import TargetShell

PATCHED = "nxp-imx7d-5.4-qemu"
IMX8MP = "nxp-imx8mp-5.15-qemu"
TARGET_8MP = ROOT / "targets" / "qemu-imx8mp.yaml"
UNPATCHED = f"{PATCHED}-unpatched"
TARGET = ROOT / "targets" / "qemu-imx7d.yaml"
MU_FIX = ROOT / "patches" / "imx-rproc" / "nxp-5.4" / \
    "0001-remoteproc-imx_rproc-make-the-MU-mailboxes-optional.patch"
RPROC = "/sys/class/remoteproc/remoteproc0"
PROFILES_DIR = TEST_WS / "vendor-profiles"
#: What memory holds before a load in the ELF test: anything but the ELF's bytes.
STALE = 0xA5A5A5A5

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-linux-gnueabihf-gcc",
                                          "aarch64-linux-gnu-gcc", "qemu-system-arm",
                                          "qemu-system-aarch64", "git", "make", "depmod", "cpio")),
        reason="needs gcc-arm-none-eabi, gcc-arm-linux-gnueabihf, gcc-aarch64-linux-gnu, "
               "qemu-system-arm, qemu-system-aarch64, git, make, kmod and cpio"),
]


def _pipeline(task: str, name: str, tree: Path, unpatched: bool, shipped: str = PATCHED):
    profile = tree_profile(shipped, tree, PROFILES_DIR, unpatched=unpatched)
    t0 = time.monotonic()
    proc = rprockit(task, "--profile", str(profile), "--workspace", str(TEST_WS),
                    env={"HOME": _REAL_HOME, "RPROCKIT_ROOT": str(ROOT)})
    wall = time.monotonic() - t0
    (TEST_WS / f"last-{task}-{name}.log").write_text(
        f"wall {wall:.1f} s\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return proc, wall


@pytest.fixture(scope="module")
def tree54() -> Path:
    return vendor_tree("RPROCKIT_NXP_5_4_TREE")


@pytest.fixture(scope="module")
def patched54(tree54):
    """``rprockit all`` of the patched profile: ``(CompletedProcess, wall seconds)``."""
    return _pipeline("all", PATCHED, tree54, unpatched=False)


@pytest.fixture(scope="module")
def unpatched54(tree54) -> Manifest:
    """``rprockit build`` of the unpatched profile; its manifest."""
    proc, _ = _pipeline("build", UNPATCHED, tree54, unpatched=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Manifest.load(TEST_WS / UNPATCHED / "artifacts" / "manifest.json")


@pytest.fixture(scope="module")
def patched_manifest(patched54) -> Manifest:
    man = TEST_WS / PATCHED / "artifacts" / "manifest.json"
    if not man.is_file():
        pytest.fail(f"the patched build made no manifest: {patched54[0].stdout[-3000:]}")
    return Manifest.load(man)


def _images(tmp: Path, man: Manifest, modules: list[Path],
            firmware: tuple[Path, ...] = ()) -> Path:
    """LG_RPROCKIT_IMAGES: zImage, dtbs/ and an initramfs with ``modules``, the
    firmware (and ``firmware``) and the kernel's modules.builtin (busybox modprobe
    reads it)."""
    images = tmp / "images"
    images.mkdir()
    (images / "zImage").symlink_to(man.artifacts / "zImage")
    (images / "dtbs").symlink_to(man.artifacts / "dtbs")
    out = man.artifacts.parent / "out"
    rel = man.kernel_release
    make_initramfs("arm", rel, modules,
                   [man.artifacts / "firmware" / man.firmware_name, *firmware],
                   images / "initramfs.cpio", epoch=0,
                   extra_files={f"/lib/modules/{rel}/modules.builtin": out / "modules.builtin"})
    return images


def _images_8mp(tmp: Path, man: Manifest, modules: list[Path]) -> Path:
    """LG_RPROCKIT_IMAGES of the i.MX8M Plus: Image, the EL3 monitor (the verify stage's,
    or built here for a build-only workspace), an initramfs with ``modules`` and a boot DTB naming its range."""
    images = tmp / "images"
    images.mkdir()
    (images / "Image").symlink_to(man.artifacts / "Image")
    monitor = man.artifacts / "el3-monitor.elf"
    if monitor.is_file():
        (images / "el3-monitor.elf").symlink_to(monitor)
    else:  # a build-only workspace: verify never ran, so build the monitor here
        build_monitor(ROOT / "firmware" / "el3-monitor", images / "el3-monitor.elf")
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


def _modules(man: Manifest, *names: str) -> list[Path]:
    return [man.artifacts / "modules" / f"{n}.ko" for n in names]


def _stop_early_booted(sh: TargetShell) -> None:
    """NXP 5.4 takes the core as early-booted (QEMU's SRC reads 0): running, no firmware."""
    assert sh.read(f"{RPROC}/state") == "running"
    sh.check(f"echo stop > {RPROC}/state")
    assert sh.read(f"{RPROC}/state") == "offline"


# -- the patched vendor kernel through the whole pipeline -----------------------------------
def test_nxp54_all_through_verify(patched54, patched_manifest):
    """``rprockit all`` builds NXP 5.4 with the series and the on-target suite passes on it."""
    proc, wall = patched54
    print(f"rprockit all --profile {PATCHED}: rc {proc.returncode}, wall {wall:.1f} s")
    verify = TEST_WS / PATCHED / "verify"
    results = json.loads((verify / "results.json").read_text())
    rows = results["checks"] if isinstance(results, dict) and "checks" in results else results
    for row in rows:
        print(f"  {row['check']}: {row['outcome']}  {row['evidence'].splitlines()[:3]}")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert patched_manifest.kernel_release.startswith("5.4.47")
    log_text = (verify / "kernel.log").read_text()
    assert "Linux version 5.4.47" in log_text


# -- optional-mu-mailboxes ------------------------------------------------------------------
def test_mu_unpatched_probe_fails_with_einval(unpatched54, tmp_path):
    """Unpatched NXP 5.4: imx_rproc without mbox-names fails its probe with -22."""
    images = _images(tmp_path, unpatched54, _modules(unpatched54, "imx_rproc"))
    with booted(images, TARGET) as (sh, boot_s):
        assert sh.check("uname -r").strip() == unpatched54.kernel_release
        out, rc = sh.run("modprobe imx_rproc 2>&1")
        klog = kernel_log(sh)
        ev = [ln for ln in klog if "rproc" in ln]
        print(f"boot to shell {boot_s:.1f} s; modprobe imx_rproc rc {rc} {out!r}", *ev, sep="\n")
        assert rc == 0, out  # the module loads; its probe fails
        assert "imx-rproc: probe of imx7d-cm4 failed with error -22" in klog, "\n".join(ev)
        assert not sh.exists(RPROC)


def test_mu_patched_probes_and_cycles(patched_manifest, tmp_path):
    """Patched: imx_rproc runs without mailboxes, stops the early-booted core, cycles."""
    man = patched_manifest
    images = _images(tmp_path, man, _modules(man, "imx_rproc"))
    with booted(images, TARGET) as (sh, boot_s):
        assert sh.check("uname -r").strip() == man.kernel_release
        sh.check("modprobe imx_rproc")
        _stop_early_booted(sh)
        states = []
        for _ in range(3):
            sh.check(f"echo {man.firmware_name} > {RPROC}/firmware && "
                     f"echo start > {RPROC}/state")
            up = sh.read(f"{RPROC}/state")
            sh.check(f"echo stop > {RPROC}/state")
            states.append((up, sh.read(f"{RPROC}/state")))
        klog = kernel_log(sh)
        ev = [ln for ln in klog if "rproc" in ln or "mbox" in ln]
        print(f"boot to shell {boot_s:.1f} s; cycles {states}", *ev, sep="\n")
        assert "imx-rproc imx7d-cm4: No mbox-names, running without mailboxes" in klog
        assert not any("probe of imx7d-cm4 failed" in ln for ln in klog)
        assert states == [("running", "offline")] * 3
        assert sum("remote processor imx-rproc is now up" in ln for ln in klog) == 4


# -- elf-segment-loading --------------------------------------------------------------------
@pytest.fixture(scope="module")
def mu_only_module(unpatched54, tmp_path_factory) -> Path:
    """imx_rproc.ko of the unpatched tree with only the MU fix, built against the
    unpatched kernel (its ELF copy is still NXP's ``count / 4`` one)."""
    ws = unpatched54.artifacts.parent
    tree = tmp_path_factory.mktemp("mu-only")
    mdir = tree / "drivers" / "remoteproc"
    mdir.mkdir(parents=True)
    for name in ("imx_rproc.c", "remoteproc_internal.h"):
        shutil.copy2(ws / "src" / "drivers" / "remoteproc" / name, mdir / name)
    run = Runner().run
    run(["git", "init", "-q"], cwd=tree)
    run(["git", "apply", "--verbose", "--", MU_FIX], cwd=tree)
    text = (mdir / "imx_rproc.c").read_text()
    assert "No mbox-names, running without mailboxes" in text
    assert "count = count / 4;" in text  # the ELF copy the next fix replaces
    (mdir / "Kbuild").write_text("obj-m := imx_rproc.o\n")
    run(["nice", "-n", "10", "make", "-C", ws / "src", f"O={ws / 'out'}", "ARCH=arm",
         "CROSS_COMPILE=arm-linux-gnueabihf-", f"M={mdir}", "-j2", "modules"], timeout=900)
    return mdir / "imx_rproc.ko"


def _load_and_read_back(man: Manifest, images: Path) -> tuple[list, list[str]]:
    """Stop the early-booted core, fill every segment's memory with :data:`STALE`,
    start the firmware, read each segment back; ``(SpanResults, evidence)``."""
    elf = man.artifacts / "firmware" / man.firmware_name
    spans = expected_spans(elf, load_soc("imx7d").att)
    with booted(images, TARGET) as (sh, _boot):
        sh.check("modprobe imx_rproc")
        _stop_early_booted(sh)
        for span in spans:
            start, end = span.sys & ~3, (span.sys + span.memsz + 3) & ~3
            sh.check(f"a=$((0x{start:x})); while [ $a -lt $((0x{end:x})) ]; do "
                     f"devmem $a 32 0x{STALE:08x}; a=$((a + 4)); done", timeout=120)
        sh.check(f"echo {man.firmware_name} > {RPROC}/firmware && echo start > {RPROC}/state")
        assert sh.read(f"{RPROC}/state") == "running"
        results = [compare(span, *read_back(sh, span)) for span in spans]
        sh.check(f"echo stop > {RPROC}/state")
    return results, [r.describe() for r in results]


def _data_span(results):
    """The writable PT_LOAD with file bytes and a zero-filled tail (.data + .bss)."""
    return next(r for r in results if r.span.writable and r.span.memsz > r.span.filesz)


def test_elf_unpatched_drops_tail_and_keeps_stale_bss(unpatched54, mu_only_module, tmp_path):
    """NXP's loader: the last byte of the 13-byte .data and the whole .bss are not written."""
    man = unpatched54
    mods = [mu_only_module]
    results, ev = _load_and_read_back(man, _images(tmp_path, man, mods))
    print(*ev, sep="\n")
    data = _data_span(results)
    span = data.span
    assert span.filesz % 4 != 0, span.filesz
    bad = {off for off, _want, _got in data.first}
    tail = set(range(span.filesz & ~3, span.filesz))  # bytes past the last whole word
    assert tail <= bad, (tail, data.first)
    # every .bss byte is still the stale fill: memsz - filesz mismatches plus the tail
    # (minus tail bytes the ELF has as 0xa5, none here: .data ends in a NUL)
    assert data.mismatches >= (span.memsz - span.filesz) + len(tail) - 1, ev


def test_elf_patched_is_byte_exact(patched_manifest, tmp_path):
    """The series' loader: every byte of every segment, .bss zero-filled."""
    man = patched_manifest
    results, ev = _load_and_read_back(man, _images(tmp_path, man, _modules(man, "imx_rproc")))
    print(*ev, sep="\n")
    assert _data_span(results).span.filesz % 4 != 0
    assert all(r.mismatches == 0 for r in results), "\n".join(ev)


# -- loadable-imx-rpmsg ---------------------------------------------------------------------
def test_imx_rpmsg_unpatched_is_builtin(unpatched54, tmp_path):
    """Unpatched 5.4: imx_rpmsg is in vmlinux, absent from 5.4's modules.builtin (a bool
    symbol, see the module docstring), and cannot be removed."""
    man = unpatched54
    assert not (man.artifacts / "modules" / "imx_rpmsg.ko").exists()
    out = man.artifacts.parent / "out"
    modinfo = (out / "modules.builtin.modinfo").read_bytes().split(b"\0")
    assert b"imx_rpmsg.description=iMX remote processor messaging virtio device" in modinfo
    with booted(_images(tmp_path, man, []), TARGET) as (sh, _boot):
        rel = man.kernel_release
        builtin = sh.check(f"grep imx_rpmsg /lib/modules/{rel}/modules.builtin; true").split()
        drv = sh.exists("/sys/bus/platform/drivers/imx-rpmsg")
        rm_out, rm_rc = sh.run("rmmod imx_rpmsg 2>&1")
        mp_out, mp_rc = sh.run("modprobe -r imx_rpmsg 2>&1")
        print(f"modules.builtin: {builtin}; driver imx-rpmsg registered: {drv}",
              f"rmmod imx_rpmsg: rc {rm_rc}: {rm_out.strip()}",
              f"modprobe -r imx_rpmsg: rc {mp_rc}: {mp_out.strip()}", sep="\n")
        assert drv, "imx_rpmsg is built in: its platform driver must be registered"
        assert builtin == []
        assert rm_rc != 0 and "No such file or directory" in rm_out
        assert mp_rc != 0 and "not found in modules.dep" in mp_out


def test_imx_rpmsg_patched_unloads_and_reloads(patched_manifest, tmp_path):
    """Patched: imx_rpmsg is a module; rmmod/modprobe cycles; its probe of NXP's rpmsg
    node is deferred (no MU), so no vdev is registered."""
    man = patched_manifest
    mods = _modules(man, "imx_rpmsg", "imx_rpmsg_pingpong", "imx_rpmsg_tty")
    with booted(_images(tmp_path, man, mods), TARGET) as (sh, _boot):
        rows = []
        for _ in range(3):
            sh.check("modprobe imx_rpmsg")
            state = sh.read("/sys/module/imx_rpmsg/initstate")
            drv = sh.exists("/sys/bus/platform/drivers/imx-rpmsg")
            virtio = sh.check("ls /sys/bus/virtio/devices; true").split()
            _out, rc = sh.run("rmmod imx_rpmsg 2>&1")
            rows.append((state, drv, virtio, rc, sh.exists("/sys/module/imx_rpmsg")))
        sh.run("mount -t debugfs none /sys/kernel/debug 2>/dev/null")
        deferred = sh.check("cat /sys/kernel/debug/devices_deferred 2>/dev/null; true")
        klog = kernel_log(sh)
        print(*rows, f"devices_deferred: {deferred.strip()!r}",
              *[ln for ln in klog if "rpmsg" in ln.lower()], sep="\n")
        assert rows == [("live", True, [], 0, False)] * 3, rows
        assert not any(re.search(r"Oops|BUG:|WARNING:", ln) for ln in klog)


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
    with booted(_images_8mp(tmp_path, man, mods), TARGET_8MP) as (sh, boot_s):
        assert sh.check("uname -r").strip() == man.kernel_release
        rows = []
        for _ in range(3):
            sh.check("modprobe imx_rpmsg")
            state = sh.read("/sys/module/imx_rpmsg/initstate")
            drv = sh.exists("/sys/bus/platform/drivers/imx-rpmsg")
            _out, rc = sh.run("rmmod imx_rpmsg 2>&1")
            rows.append((state, drv, rc, sh.exists("/sys/module/imx_rpmsg")))
        klog = kernel_log(sh)
        print(f"boot to shell {boot_s:.1f} s", *rows, sep="\n")
        assert rows == [("live", True, 0, False)] * 3, rows
        assert not any(re.search(r"Oops|BUG:|WARNING:", ln) for ln in klog)


@pytest.fixture(scope="module")
def unpatched515() -> Manifest:
    """``rprockit build`` of ``nxp-imx8mp-5.15-qemu`` without the fix series; its manifest."""
    tree = vendor_tree("RPROCKIT_NXP_5_15_TREE")
    proc, _ = _pipeline("build", f"{IMX8MP}-unpatched", tree, unpatched=True, shipped=IMX8MP)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Manifest.load(TEST_WS / f"{IMX8MP}-unpatched" / "artifacts" / "manifest.json")


def test_nxp515_imx_rpmsg_unpatched_is_builtin(unpatched515, tmp_path):
    """Unpatched 5.15: imx_rpmsg is built in and listed in modules.builtin (5.15 writes it
    from every built-in object's ``file=`` modinfo, scripts/link-vmlinux.sh), so
    ``modprobe -r`` names it builtin and ``rmmod`` cannot remove it."""
    man = unpatched515
    assert not (man.artifacts / "modules" / "imx_rpmsg.ko").exists()
    with booted(_images_8mp(tmp_path, man, []), TARGET_8MP) as (sh, boot_s):
        rel = man.kernel_release
        assert sh.check("uname -r").strip() == rel
        builtin = sh.check(f"grep imx_rpmsg /lib/modules/{rel}/modules.builtin; true").split()
        rm_out, rm_rc = sh.run("rmmod imx_rpmsg 2>&1")
        mp_out, mp_rc = sh.run("modprobe -r imx_rpmsg 2>&1")
        print(f"boot to shell {boot_s:.1f} s; modules.builtin: {builtin}",
              f"rmmod imx_rpmsg: rc {rm_rc}: {rm_out.strip()}",
              f"modprobe -r imx_rpmsg: rc {mp_rc}: {mp_out.strip()}", sep="\n")
        assert builtin == ["kernel/drivers/rpmsg/imx_rpmsg.ko"]
        assert rm_rc != 0
        # busybox's words for kmod's "rmmod: ERROR: Module imx_rpmsg is builtin."
        assert "module imx_rpmsg is builtin" in mp_out and mp_rc != 0


# -- NXP 4.14: empty-resource-table ---------------------------------------------------------
#: NXP 4.14.78 on the emulated i.MX7D: the shipped profile and its build without the series.
PATCHED414 = "nxp-imx7d-4.14-qemu"
UNPATCHED414 = f"{PATCHED414}-unpatched"
#: A Cortex-M4 ELF without .resource_table (tests/fixtures/preflight/fw.c -DNO_RSC_TABLE),
#: linked for the DDR alias 0x1FE00000 (the board DTS's m4_reserved at 0x8fe00000).
NORSC = "rproc-norsc.elf"
PREFLIGHT = ROOT / "tests" / "fixtures" / "preflight"


@pytest.fixture(scope="module")
def tree414() -> Path:
    return vendor_tree("RPROCKIT_NXP_4_14_TREE")


def _manifest(proc, name: str) -> Manifest:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Manifest.load(TEST_WS / name / "artifacts" / "manifest.json")


@pytest.fixture(scope="module")
def patched414(tree414) -> Manifest:
    """``rprockit build`` of ``nxp-imx7d-4.14-qemu`` as shipped; its manifest."""
    proc, _ = _pipeline("build", PATCHED414, tree414, unpatched=False, shipped=PATCHED414)
    return _manifest(proc, PATCHED414)


@pytest.fixture(scope="module")
def unpatched414(tree414) -> Manifest:
    """The same build without ``patches/imx-rproc``; its manifest."""
    proc, _ = _pipeline("build", UNPATCHED414, tree414, unpatched=True, shipped=PATCHED414)
    return _manifest(proc, UNPATCHED414)


@pytest.fixture(scope="module")
def norsc_firmware(tmp_path_factory) -> Path:
    elf = tmp_path_factory.mktemp("fw414") / NORSC
    Runner().run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-Os", "-ffreestanding",
                  "-nostdlib", "-nostartfiles", "-Wl,--build-id=none",
                  f"-I{ROOT / 'firmware' / 'rproc-test'}", "-DNO_RSC_TABLE",
                  "-T", PREFLIGHT / "imx7d-ddr.ld", PREFLIGHT / "fw.c", "-o", elf])
    return elf


def _start_norsc_414(sh: TargetShell) -> tuple[str, int, str, list[str]]:
    """Load imx_rproc, end its auto boot, start the no-table firmware.

    NXP 4.14's rproc_add() auto-boots "rproc-imx-rproc-fw" (rproc_alloc(),
    remoteproc_core.c line 1396), which the initramfs lacks; with
    CONFIG_FW_LOADER_USER_HELPER_FALLBACK=y (imx_v7_defconfig) each of its two
    requests (rproc_trigger_auto_boot(), then rproc_boot()) waits 60 s for user
    space, so the test aborts them through ``loading`` (echo -1) until the core
    logs "request_firmware failed".  Returns ``(start output, rc, state, log)``.
    """
    sh.check("modprobe imx_rproc")
    sh.check("for i in $(seq 100); do dmesg | grep -q 'request_firmware failed' && break; "
             "for f in /sys/class/firmware/rproc-imx-rproc-fw/loading; do "
             "[ -e $f ] && echo -1 > $f; done; sleep 0.2; done", timeout=60)
    assert sh.read(f"{RPROC}/state") == "offline"
    sh.check("dmesg -c > /dev/null")
    out, rc = sh.run(f"echo {NORSC} > {RPROC}/firmware && {{ echo start > {RPROC}/state; }} 2>&1")
    return out, rc, sh.read(f"{RPROC}/state"), kernel_log(sh)


def test_norsc_unpatched_414_fails_to_find_the_table(unpatched414, norsc_firmware, tmp_path):
    """Unpatched NXP 4.14: rproc_fw_boot() (remoteproc_core.c line 939) refuses the
    firmware: "Failed to find resource table", state_store() "Boot failed: -22"."""
    man = unpatched414
    images = _images(tmp_path, man, _modules(man, "imx_rproc"), (norsc_firmware,))
    with booted(images, TARGET) as (sh, boot_s):
        assert sh.check("uname -r").strip() == man.kernel_release
        out, rc, state, klog = _start_norsc_414(sh)
        print(f"boot to shell {boot_s:.1f} s; echo start: rc {rc} {out!r}; state {state}",
              *klog, sep="\n")
        assert rc != 0 and state == "offline"
        assert "remoteproc remoteproc0: Failed to find resource table" in klog, klog
        assert "remoteproc remoteproc0: Boot failed: -22" in klog, klog


def test_norsc_patched_414_runs(patched414, norsc_firmware, tmp_path):
    """Patched: the firmware boots with no resources, the state reads running, stop works."""
    man = patched414
    images = _images(tmp_path, man, _modules(man, "imx_rproc"), (norsc_firmware,))
    with booted(images, TARGET) as (sh, boot_s):
        assert sh.check("uname -r").strip() == man.kernel_release
        out, rc, state, klog = _start_norsc_414(sh)
        sh.check(f"echo stop > {RPROC}/state")
        after = sh.read(f"{RPROC}/state")
        print(f"boot to shell {boot_s:.1f} s; echo start: rc {rc} {out!r}; state {state}; "
              f"after stop {after}", *klog, sep="\n")
        assert rc == 0 and state == "running", (out, klog)
        assert ("remoteproc remoteproc0: No resource table in firmware, booting without "
                "resources") in klog, klog
        assert "remoteproc remoteproc0: remote processor imx-rproc is now up" in klog, klog
        assert not any("Failed to find resource table" in ln for ln in klog)
        assert after == "offline"


def test_build_only_414_profile_links(tree414):
    """``nxp-imx7d-4.14`` as shipped (build only, ``# CONFIG_NET is not set``) links.

    NXP 4.14's ``QTI_QRTR`` (drivers/qti/qrtr/Kconfig line 4, default y) has no
    ``depends on NET``; ``nxp-4.14-quick.config`` turns it off, or vmlinux has
    undefined ``sock_register`` and ``proto_register`` from drivers/qti/qrtr/qrtr.o.
    """
    name = "nxp-imx7d-4.14"
    proc, wall = _pipeline("build", name, tree414, unpatched=False, shipped=name)
    man = _manifest(proc, name)
    print(f"nxp-imx7d-4.14 build: {wall:.1f} s wall, release {man.kernel_release}")
    assert man.kernel_release.startswith("4.14.78")
    for art in ("zImage", "dtbs/imx7d-sdb-m4.dtb", "modules/imx_rproc.ko",
                "modules/imx_rpmsg.ko"):
        assert art in man.outputs, (art, sorted(man.outputs))
