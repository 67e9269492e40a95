"""On-target checks of the remoteproc/RPMsg stack.

Every check reads real state on the target through its labgrid command
driver.  On the emulated i.MX7D the M4 never executes (QEMU models no M4,
OCRAM_S or TCM); what Linux does is real: ELF loading into reserved DDR,
the resource table, vdev and vrings, virtio RPMsg.  Results never claim the
firmware ran.
"""

from __future__ import annotations

import re
import time

from rprockit.verify.target_shell import q

RPROC_CLASS = "/sys/class/remoteproc"
# dmesg lines that mean a failure (kernel sources: remoteproc_core.c,
# remoteproc_elf_loader.c, imx_rproc.c, virtio_rpmsg_bus.c)
FATAL_RE = re.compile(r"Oops|BUG:|WARNING:|Unable to handle|self-detected stall|soft lockup")
SUBSYSTEM_RE = re.compile(r"\b(remoteproc\d*|imx[-_]rproc\w*|rproc-virtio|rpmsg\w*|virtio\w*"
                          r"|firmware|mbox\w*)\b", re.IGNORECASE)
FAIL_RE = re.compile(r"\b(fail\w*|error|unable|cannot|invalid|timed? ?out)\b|err:?\s*-\d+", re.IGNORECASE)
# Expected on a board without MU mailboxes: imx_rproc_kick() logs it when
# virtio asks for a kick (drivers/remoteproc/imx_rproc.c).
EXPECTED_WITHOUT_MU = re.compile(r"No initialized mbox tx channel")


def is_error(line: str) -> bool:
    """A dmesg line that reports a failure of the remoteproc/RPMsg stack, or a kernel oops."""
    if EXPECTED_WITHOUT_MU.search(line):
        return False
    return bool(FATAL_RE.search(line) or (SUBSYSTEM_RE.search(line) and FAIL_RE.search(line)))


def _dmesg(shell) -> list[str]:
    return shell.check("dmesg").splitlines()


def _rproc_dir(shell, manifest) -> str:
    out = shell.check(f"for d in {RPROC_CLASS}/remoteproc*; do echo $d $(cat $d/name); done")
    dirs = [ln.split()[0] for ln in out.splitlines() if ln.strip() and "*" not in ln]
    assert dirs, f"no {RPROC_CLASS}/remoteproc* on the target: imx_rproc did not probe"
    return dirs[0]


def test_kernel_release(shell, manifest, record_property):
    """The running kernel is the one the manifest names."""
    rel = shell.check("uname -r").strip()
    record_property("evidence", f"uname -r: {rel}; manifest: {manifest['kernel_release']}")
    assert rel == manifest["kernel_release"], (
        f"target runs {rel}, build produced {manifest['kernel_release']}")


def test_modules_load_in_order(shell, manifest, record_property):
    """modprobe each module of the module set in its load order; no unexpected taint."""
    order = manifest["modules"]["load_order"]
    lines = []
    for name in order:
        if shell.exists(f"/sys/module/{name}"):
            lines.append(f"{name}: already loaded")
            continue
        out, rc = shell.run(f"modprobe {q(name)}")
        lines.append(f"modprobe {name}: rc={rc} {out}".strip())
        assert rc == 0, f"modprobe {name} failed: {out}"
    loaded = shell.check("cat /proc/modules")
    for name in order:
        assert re.search(rf"^{name} ", loaded, re.MULTILINE), f"{name} not in /proc/modules"
    taint = int(shell.read("/proc/sys/kernel/tainted"))
    record_property("evidence", "\n".join(lines) + f"\ntainted={taint}")
    # bit 12 (4096) is TAINT_OOT_MODULE: out-of-tree modules are allowed
    assert taint & ~4096 == 0, f"kernel tainted {taint} beyond out-of-tree modules"


def test_remoteproc_probed(shell, manifest, record_property):
    """imx_rproc probed: remoteproc* exists; report name, state and firmware."""
    d = _rproc_dir(shell, manifest)
    info = {k: shell.read(f"{d}/{k}") for k in ("name", "state", "firmware")}
    record_property("evidence", f"{d}: {info}")
    assert info["state"] in ("offline", "running", "detached", "attached"), info


def test_firmware_where_loader_looks(shell, manifest, record_property):
    """The firmware file is in /lib/firmware or the firmware_class custom path."""
    fw = manifest["firmware"]["name"]
    custom = ""
    if shell.exists("/sys/module/firmware_class/parameters/path"):
        custom = shell.read("/sys/module/firmware_class/parameters/path")
    dirs = [p for p in (custom, "/lib/firmware/updates", "/lib/firmware") if p]
    found = [d for d in dirs if shell.exists(f"{d}/{fw}")]
    record_property("evidence", f"searched {dirs}; found in {found}")
    assert found, f"{fw} is in none of {dirs}"


def test_reload_cycles(shell, manifest, cycles, emulated, record_property):
    """stop -> set firmware -> start -> running, N times, virtio RPMsg back each time."""
    d = _rproc_dir(shell, manifest)
    fw = manifest["firmware"]["name"]
    before = len(_dmesg(shell))
    state = shell.read(f"{d}/state")
    if state in ("running", "attached", "detached"):
        shell.check(f"echo stop > {d}/state")
    t0 = time.monotonic()
    evidence = []
    for i in range(1, cycles + 1):
        shell.check(f"echo {q(fw)} > {d}/firmware")
        shell.check(f"echo start > {d}/state")
        st = shell.read(f"{d}/state")
        assert st == "running", f"cycle {i}: state {st!r} after start"
        virtio = shell.check("ls /sys/bus/virtio/devices").split()
        rpmsg = shell.check("ls /sys/bus/rpmsg/devices").split()
        assert virtio, f"cycle {i}: no virtio device after start"
        assert rpmsg, f"cycle {i}: no rpmsg device (name service) after start"
        shell.check(f"echo stop > {d}/state")
        st2 = shell.read(f"{d}/state")
        assert st2 == "offline", f"cycle {i}: state {st2!r} after stop"
        if i <= 3 or i == cycles:
            evidence.append(f"cycle {i}: start -> {st}, virtio {virtio}, rpmsg {rpmsg}; "
                            f"stop -> {st2}")
    elapsed = time.monotonic() - t0
    new = _dmesg(shell)[before:]
    errors = [ln for ln in new if is_error(ln)]
    evidence.append(f"{cycles} cycles in {elapsed:.2f} s ({elapsed / cycles * 1000:.0f} ms/cycle)")
    evidence += [ln for ln in new if "remoteproc" in ln or "rpmsg" in ln][:8]
    if emulated:
        evidence.append("emulated board: Linux loaded the ELF and set up the vdev/vrings; "
                        "the M4 itself does not execute in QEMU")
    record_property("evidence", "\n".join(evidence))
    assert not errors, "dmesg errors during the cycles:\n" + "\n".join(errors)


def test_dmesg_clean(shell, emulated, record_property):
    """No known failure line anywhere in dmesg over the whole run."""
    lines = _dmesg(shell)
    errors = [ln for ln in lines if is_error(ln)]
    expected = [ln for ln in lines if EXPECTED_WITHOUT_MU.search(ln)]
    record_property("evidence", f"{len(lines)} dmesg lines, {len(errors)} errors, "
                    f"{len(expected)} expected 'no MU' lines")
    assert not errors, "\n".join(errors)
