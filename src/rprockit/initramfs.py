"""Initramfs for the emulated board: busybox-static, the modules and the firmware.

busybox comes from Debian's ``busybox-static`` package of the target
architecture (``apt-get download busybox-static:armhf`` then ``dpkg-deb -x``),
cached in ``<workspace>/cache``.  The cpio archive (``newc``) is built by GNU
cpio with ``--reproducible`` from a tree whose mtimes are the source commit
time, so identical inputs give identical bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .errors import UserError
from .runner import Runner, require_tool

DEB_ARCH = {"arm": "armhf", "arm64": "arm64"}

INIT = """#!/bin/busybox sh
# rprockit emulated-board init: mounts, then a root shell on the console.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
[ -d /sys/kernel/debug ] && mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
dmesg -n 1
echo "rprockit initramfs: $(uname -r) ready"
export PS1='rprockit# '
export HOME=/root
exec setsid cttyhack sh
"""


def busybox(arch: str, cache: Path, runner: Runner) -> Path:
    """The static busybox binary for ``arch``, downloaded once.

    Raises:
        UserError: apt cannot download the package (names the fix).
    """
    deb_arch = DEB_ARCH[arch]
    root = cache / f"busybox-static-{deb_arch}"
    binary = root / "bin" / "busybox"
    if binary.is_file():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"busybox-static_*_{deb_arch}.deb"))
    if not debs:
        require_tool("apt-get")
        try:
            runner.run(["apt-get", "download", f"busybox-static:{deb_arch}"], cwd=cache)
        except Exception as e:
            raise UserError(
                f"cannot download busybox-static:{deb_arch} for the initramfs: {e}\n"
                f"Enable the architecture once as root: dpkg --add-architecture {deb_arch} && "
                "apt-get update") from e
        debs = sorted(cache.glob(f"busybox-static_*_{deb_arch}.deb"))
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    runner.run(["dpkg-deb", "-x", debs[-1], tmp])
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return binary


def make_initramfs(arch: str, release: str, modules: list[Path], firmware: list[Path],
                   out: Path, cache: Path, epoch: int, runner: Runner | None = None,
                   extra_files: dict[str, Path] | None = None) -> Path:
    """Write an uncompressed ``newc`` cpio initramfs.

    Args:
        arch: kernel ARCH (selects the busybox package).
        release: kernel release; modules go to ``/lib/modules/<release>/extra``
            and ``depmod`` runs on the host for it.
        modules: ``.ko`` files.
        firmware: files for ``/lib/firmware``.
        out: the cpio file to write.
        cache: download cache.
        epoch: mtime for every file (seconds since the epoch).
        runner: runs apt-get, dpkg-deb, depmod and cpio.
        extra_files: ``{path in image: host file}``.

    Returns:
        ``out``.
    """
    runner = runner or Runner()
    require_tool("cpio")
    require_tool("depmod")
    bb = busybox(arch, cache, runner)
    stage = out.with_name(out.name + ".d")
    shutil.rmtree(stage, ignore_errors=True)
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "root", "etc", "lib/firmware"):
        (stage / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(bb, stage / "bin/busybox")
    (stage / "init").write_text(INIT)
    (stage / "init").chmod(0o755)
    (stage / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (stage / "etc/group").write_text("root:x:0:\n")
    moddir = stage / "lib/modules" / release / "extra"
    moddir.mkdir(parents=True)
    for ko in modules:
        shutil.copy2(ko, moddir / ko.name)
    for fw in firmware:
        shutil.copy2(fw, stage / "lib/firmware" / fw.name)
    for dest, src in (extra_files or {}).items():
        p = stage / dest.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, p)
    runner.run(["depmod", "-b", stage, release])
    names = []
    for dirpath, dirnames, filenames in os.walk(stage):
        dirnames.sort()
        for n in [*dirnames, *sorted(filenames)]:
            p = Path(dirpath) / n
            os.utime(p, (epoch, epoch), follow_symlinks=False)
            names.append(str(p.relative_to(stage)))
    os.utime(stage, (epoch, epoch))
    listing = "\n".join(sorted(names)) + "\n"
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as fh:
        proc = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0",
                               "--reproducible"], cwd=stage, input=listing.encode(),
                              stdout=fh, stderr=subprocess.PIPE, check=False)
    if proc.returncode:
        raise UserError(f"cpio failed building {out}: {proc.stderr.decode(errors='replace')}")
    os.replace(tmp, out)
    shutil.rmtree(stage, ignore_errors=True)
    return out
