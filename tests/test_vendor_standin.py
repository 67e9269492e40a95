"""NXP's vendor imx_rpmsg on NXP linux-imx 5.15, with the stand-in remote core.

The kernel is NXP linux-imx 5.15.71 (the TechNexion tree) from
``RPROCKIT_NXP_5_15_TREE`` (skipped without it), built with the series by
``rprockit build`` of the shipped profile ``nxp-imx8mp-5.15-qemu`` (the build of
tests/test_vendor_boot.py, reused by fingerprint): real and unmodified, apart
from the series' loadable-imx_rpmsg fix, are imx_rproc, imx-mailbox,
imx_rpmsg, virtio_rpmsg_bus, rpmsg_ns and imx_rpmsg_tty.  What cannot exist
here and is emulated: the Cortex-M7 (QEMU 10 models none; the fourth
Cortex-A53 of ``imx8mp-evk`` runs the legacy build of
``firmware/standin-remote`` in its place, powered on and off by the EL3
monitor at IMX_SIP_RPROC START/STOP) and the MU (a RAM page the stand-in
serves, raising the MU's interrupt through the GIC distributor).  The board
DT is ``kernel_configs/dts/nxp-5.15/imx8mp-evk-standin-qemu.dts``: NXP's
i.MX8M Plus DT has no ``fsl,*-rpmsg`` node, so it adds the one NXP 5.4 gave
the i.MX8M Quad, wired to the stand-in's MU page.

Expected results, derived from the NXP 5.15.71 source first:

* imx_rproc loads the image (it has no resource table: imx_rproc_parse_fw()
  logs "No resource table in elf") and starts it: "remote processor
  imx-rproc is now up" (remoteproc_core.c rproc_start()).
* ``modprobe imx_rpmsg``: imx_rpmsg_init() logs "imx rpmsg driver is
  registered."; the probe registers virtio0 with its vrings at 0x55000000
  and 0x55008000 (set_vring_phy_buf()), virtio_rpmsg_bus fills the rx queue
  and kicks it (MU message 0 << 16, imx_rpmsg_notify()) and logs
  "virtio_rpmsg_bus virtio0: rpmsg host is online".  That kick is the
  remote's link-up: it announces its channels, and rpmsg_ns_cb() logs
  "virtio_rpmsg_bus virtio0: creating channel rpmsg-virtual-tty-channel addr
  0x401"; imx_rpmsg_tty binds it (its first endpoint: 0x400) with "new
  channel: 0x400 -> 0x401!" and makes /dev/ttyRPMSG1025 (``ttyRPMSG%d`` of
  the remote address, imx_rpmsg_tty.c rpmsg_tty_probe()).
* A restart of the remote (remoteproc stop, a new firmware file, start)
  leaves Linux's vdev as it was: the channel and the tty stay, but the new
  image waits for a kick of the rx queue that never comes, so the tty is
  silent.  ``rmmod imx_rpmsg`` removes the vdev and the channel ("rpmsg tty
  driver is removed"); ``modprobe imx_rpmsg`` makes them again from zeroed
  vrings, the kick brings the new image's link up, the channel is announced
  again and echoes, and the image answers with its tag and its start count.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from conftest import _REAL_HOME, TEST_WS, rprockit
from vendor_boot import ROOT, booted, kernel_log, tree_profile, vendor_tree

from rprockit.build import build_board_dtb
from rprockit.el3boot import STANDIN_LEGACY_FIRMWARE, boot_dtb, build_monitor, build_standin
from rprockit.initramfs import make_initramfs
from rprockit.manifest import Manifest
from rprockit.profile import load_profile
from rprockit.runner import Runner
from rprockit.verify.target_shell import TargetShell, q
from rprockit.workspace import Workspace

PROFILE = "nxp-imx8mp-5.15-qemu"
TARGET = ROOT / "targets" / "qemu-imx8mp-standin.yaml"
DTS = ROOT / "kernel_configs" / "dts" / "nxp-5.15" / "imx8mp-evk-standin-qemu.dts"
PROFILES_DIR = TEST_WS / "vendor-profiles"
RPROC = "/sys/class/remoteproc/remoteproc0"
FW = "rprockit-standin-legacy.elf"
CHANNEL = "rpmsg-virtual-tty-channel"
#: imx_rpmsg_tty names its tty after the remote address 0x401 (rpmsg_tty_probe())
TTY = "/dev/ttyRPMSG1025"
MODULES = ("rpmsg_core", "rpmsg_ns", "virtio_rpmsg_bus", "imx_rpmsg", "imx_rpmsg_tty",
           "imx_rproc")
CYCLES = 3
STATUS_RE = re.compile(r"rprockit-standin (\w) starts (\d+)")
EMULATED = ("emulated: the remote core (the fourth Cortex-A53 runs firmware/standin-remote "
            "-DSTANDIN_LEGACY in place of the M7) and the MU (a RAM page it serves); real: "
            "the NXP 5.15.71 kernel, imx_rproc, imx-mailbox, imx_rpmsg, virtio_rpmsg_bus, "
            "rpmsg_ns, imx_rpmsg_tty")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "qemu-system-aarch64", "git",
                                          "make", "depmod", "cpio", "gcc")),
        reason="needs gcc-aarch64-linux-gnu, qemu-system-aarch64, git, make, kmod, cpio, gcc"),
]


@pytest.fixture(scope="module")
def built515() -> tuple[Manifest, Workspace, Path]:
    """``rprockit build`` of ``nxp-imx8mp-5.15-qemu`` on ``RPROCKIT_NXP_5_15_TREE``:
    ``(manifest, workspace, written profile)``."""
    tree = vendor_tree("RPROCKIT_NXP_5_15_TREE")
    profile = tree_profile(PROFILE, tree, PROFILES_DIR)
    t0 = time.monotonic()
    proc = rprockit("build", "--profile", str(profile), "--workspace", str(TEST_WS),
                    env={"HOME": _REAL_HOME, "RPROCKIT_ROOT": str(ROOT)})
    print(f"rprockit build --profile {PROFILE}: rc {proc.returncode}, "
          f"{time.monotonic() - t0:.1f} s")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    ws = Workspace(TEST_WS, PROFILE)
    return Manifest.load(ws.artifacts / "manifest.json"), ws, profile


def _images(tmp: Path, man: Manifest, ws: Workspace, profile: Path) -> Path:
    """LG_RPROCKIT_IMAGES of targets/qemu-imx8mp-standin.yaml: Image, the EL3 monitor,
    an initramfs with the modules and both legacy stand-in builds, and the boot DTB
    of the NXP 5.15 stand-in board (compiled here, outside the build's outputs)."""
    images = tmp / "images"
    images.mkdir()
    (images / "Image").symlink_to(man.artifacts / "Image")
    build_monitor(ROOT / "firmware" / "el3-monitor", images / "el3-monitor.elf")
    fw = [build_standin(ROOT / "firmware" / "standin-remote", tmp / "fw" / name, tag,
                        legacy=True)
          for name, tag in zip(STANDIN_LEGACY_FIRMWARE, "ab", strict=True)]
    rel = man.kernel_release
    initrd = make_initramfs(
        "arm64", rel, [man.artifacts / "modules" / f"{m}.ko" for m in MODULES], fw,
        images / "initramfs.cpio", epoch=0,
        extra_files={f"/lib/modules/{rel}/modules.builtin": ws.out / "modules.builtin"})
    dtb = build_board_dtb(load_profile(profile), ws, DTS, Runner(), tmp / "dtb")
    boot_dtb(dtb, initrd, images / f"boot-{dtb.name}")
    return images


def _channels(sh: TargetShell, wait_for: str | None = CHANNEL) -> list[str]:
    """Every RPMsg channel's name, after waiting up to 10 s for ``wait_for``."""
    wait = (f"i=0; while [ $i -lt 100 ] && ! grep -qx {q(wait_for)} "
            "/sys/bus/rpmsg/devices/*/name 2>/dev/null; do sleep 0.1; i=$((i+1)); done; "
            if wait_for else "")
    return sh.check(wait + "cat /sys/bus/rpmsg/devices/*/name 2>/dev/null; true").split()


def _roundtrip(sh: TargetShell, text: str, want: str, seconds: int = 5) -> str:
    """Write ``text`` to the tty; what came back once it holds ``want`` (or after
    ``seconds``)."""
    sh.check(f"i=0; while [ $i -lt 20 ] && [ ! -e {TTY} ]; do sleep 0.1; i=$((i+1)); done; "
             f"stty -F {TTY} raw -echo; : > /tmp/.tty; (cat {TTY} > /tmp/.tty &); sleep 0.2")
    return sh.check(f"echo {q(text)} > {TTY}; i=0; while [ $i -lt {seconds * 10} ] && ! grep -q "
                    f"{q(want)} /tmp/.tty; do sleep 0.1; i=$((i+1)); done; cat /tmp/.tty; "
                    "kill $(pidof cat) 2>/dev/null; true", timeout=seconds + 30)


def _timed(ev: list[str], what: str, fn, *args):
    t0 = time.monotonic()
    out = fn(*args)
    ev.append(f"{what}: {time.monotonic() - t0:.2f} s")
    return out


def test_imx_rpmsg_reload_after_remote_restart_brings_rpmsg_back(built515, tmp_path):
    """Start the stand-in, channel and echo; then ``CYCLES`` times: restart the remote
    through remoteproc with the other image (the tty goes silent), ``rmmod imx_rpmsg;
    modprobe imx_rpmsg``, the channel is announced again, echo and status work."""
    man, ws, profile = built515
    images = _images(tmp_path, man, ws, profile)
    ev: list[str] = [EMULATED]
    with booted(images, TARGET) as (sh, boot_s):
        ev.append(f"boot to shell: {boot_s:.1f} s; {sh.check('uname -r').strip()}")
        assert sh.check("uname -r").strip() == man.kernel_release
        fwdir = "/lib/firmware"
        sh.check("modprobe imx_rproc && modprobe virtio_rpmsg_bus && modprobe imx_rpmsg_tty")
        assert sh.read(f"{RPROC}/state") == "offline"
        sh.check(f"cp {fwdir}/{STANDIN_LEGACY_FIRMWARE[0]} {fwdir}/{FW} && "
                 f"echo {FW} > {RPROC}/firmware && echo start > {RPROC}/state")
        _timed(ev, "modprobe imx_rpmsg", sh.check, "modprobe imx_rpmsg")
        names = _timed(ev, "channel announced", _channels, sh)
        assert CHANNEL in names, names
        echo = _roundtrip(sh, "rprockit-first", "rprockit-first")
        status = _roundtrip(sh, "rprockit-status", "rprockit-standin")
        m = STATUS_RE.search(status)
        ev.append(f"start: channels {names}, echo {'ok' if 'rprockit-first' in echo else 'NONE'}"
                  f", status {m[0] if m else status!r}")
        assert "rprockit-first" in echo, echo
        assert m and m.group(1) == "a", status
        starts = int(m.group(2))

        for i in range(1, CYCLES + 1):
            tag = "b" if i % 2 else "a"
            t0 = time.monotonic()
            sh.check(f"echo stop > {RPROC}/state && cp {fwdir}/rprockit-standin-legacy-{tag}.elf "
                     f"{fwdir}/{FW} && echo start > {RPROC}/state")
            restart_s = time.monotonic() - t0
            assert sh.read(f"{RPROC}/state") == "running"
            # Linux still holds the vdev of the image before: channel and tty stay, silent
            stale = _channels(sh, None)
            silent = _roundtrip(sh, f"rprockit-stale-{i}", f"rprockit-stale-{i}", seconds=2)
            t0 = time.monotonic()
            out, rc = sh.run("rmmod imx_rpmsg 2>&1")
            rm_s = time.monotonic() - t0
            assert rc == 0, out
            gone = _channels(sh, None)
            t0 = time.monotonic()
            sh.check("modprobe imx_rpmsg")
            names = _channels(sh)
            back_s = time.monotonic() - t0
            echo = _roundtrip(sh, f"rprockit-cycle-{i}", f"rprockit-cycle-{i}")
            status = _roundtrip(sh, "rprockit-status", "rprockit-standin")
            m = STATUS_RE.search(status)
            ev.append(f"cycle {i}: restart (stop, image {tag}, start) {restart_s:.2f} s; before "
                      f"reload: channels {stale}, tty echo "
                      f"{'ok' if f'rprockit-stale-{i}' in silent else 'none'}; rmmod imx_rpmsg "
                      f"{rm_s:.2f} s, channels {gone}; modprobe imx_rpmsg -> channel back in "
                      f"{back_s:.2f} s, echo {'ok' if f'rprockit-cycle-{i}' in echo else 'NONE'}"
                      f", status {m[0] if m else status!r}")
            assert CHANNEL in stale and f"rprockit-stale-{i}" not in silent, (stale, silent)
            assert CHANNEL not in gone, gone
            assert CHANNEL in names, names
            assert f"rprockit-cycle-{i}" in echo, echo
            assert m and m.group(1) == tag, status
            assert int(m.group(2)) == starts + 1, (status, starts)
            starts = int(m.group(2))
        sh.check(f"echo stop > {RPROC}/state")
        klog = kernel_log(sh)
    loads = 1 + CYCLES
    counts = {
        "imx rpmsg driver is registered.": loads,
        "virtio_rpmsg_bus virtio0: rpmsg host is online": loads,
        f"virtio_rpmsg_bus virtio0: creating channel {CHANNEL} addr 0x401": loads,
        f"virtio0.{CHANNEL}.-1.1025: new channel: 0x400 -> 0x401!": loads,
        "rpmsg tty driver is removed": CYCLES,
        "remoteproc remoteproc0: No resource table in elf": loads,
        "remote processor imx-rproc is now up": loads,
    }
    seen = {k: sum(k in ln for ln in klog) for k in counts}
    bad = [ln for ln in klog if re.search(r"Oops|BUG:|WARNING:|already exist|"
                                          r"rpmsg_create_channel failed|RX overflow", ln)]
    print(*ev, *[f"dmesg '{k}': {n} (expected {counts[k]})" for k, n in seen.items()],
          *[ln for ln in klog if "rpmsg" in ln.lower() or "rproc" in ln][:40], sep="\n")
    assert seen == counts, seen
    assert not bad, bad



def test_imx_rpmsg_loaded_before_the_remote_runs(built515, tmp_path):
    """The order a vendor BSP avoids by starting the M core before Linux: imx_rpmsg
    loaded while the remote is stopped.

    Expected from the source: virtio_rpmsg_bus's first kick of its rx queue waits
    20 ms for the MU (imx_rpmsg_notify(): tx_tout 20 for the first notify), times
    out (mailbox.c mbox_send_message(): -ETIME), and virtqueue_notify() marks the
    queue broken (virtio_ring.c), so vring_interrupt() drops what the remote sends:
    no channel once it runs.  The kick stays in TR1 with TIE1 set, so the remote
    takes it when it starts and announces its channels once, into that broken
    queue (the stand-in, like an rpmsg-lite remote, announces once per start: at
    the first kick of vring 0).  So ``rmmod imx_rpmsg; modprobe imx_rpmsg`` alone
    brings nothing back; a restart of the remote and then the reload do."""
    man, ws, profile = built515
    images = _images(tmp_path, man, ws, profile)
    with booted(images, TARGET) as (sh, _boot_s):
        sh.check("modprobe imx_rproc && modprobe virtio_rpmsg_bus && modprobe imx_rpmsg_tty && "
                 "modprobe imx_rpmsg")
        sh.check(f"cp /lib/firmware/{STANDIN_LEGACY_FIRMWARE[0]} /lib/firmware/{FW} && "
                 f"echo {FW} > {RPROC}/firmware && echo start > {RPROC}/state && sleep 2")
        started = _channels(sh, None)
        sh.check("rmmod imx_rpmsg && modprobe imx_rpmsg && sleep 2")
        reloaded = _channels(sh, None)
        sh.check(f"echo stop > {RPROC}/state && echo start > {RPROC}/state && "
                 "rmmod imx_rpmsg && modprobe imx_rpmsg")
        restarted = _channels(sh)
        echo = _roundtrip(sh, "rprockit-late", "rprockit-late")
        sh.check(f"echo stop > {RPROC}/state")
        klog = kernel_log(sh)
    created = [ln for ln in klog if f"creating channel {CHANNEL}" in ln]
    online = [ln for ln in klog if "rpmsg host is online" in ln]
    print(EMULATED, f"imx_rpmsg loaded, then the remote started: channels {started}",
          f"rmmod/modprobe imx_rpmsg: channels {reloaded}",
          f"remote restarted, then rmmod/modprobe imx_rpmsg: channels {restarted}, echo "
          f"{'ok' if 'rprockit-late' in echo else 'NONE'}", *created, *online, sep="\n")
    assert CHANNEL not in started, started
    assert CHANNEL not in reloaded, reloaded
    assert CHANNEL in restarted and "rprockit-late" in echo, (restarted, echo)
    assert len(online) == 3 and len(created) == 1, (online, created)
