"""Boot an emulated arm64 board through rprockit's EL3 monitor.

QEMU's ``-kernel`` boot of ``imx8mp-evk`` emulates PSCI itself and answers
every other SMC with -1 (SMCCC NOT_SUPPORTED), so imx_rproc's
``IMX_SIP_RPROC`` calls cannot work.  Instead the target loads the kernel
``Image``, a DTB and the initramfs with ``-device loader`` and starts the CPU
in ``firmware/el3-monitor`` (``-device loader,file=el3-monitor.elf,cpu-num=0``:
the CPU starts at EL3 there, and QEMU's PSCI is off), which provides PSCI and
``IMX_SIP_RPROC`` and drops to EL2 at the kernel entry.

The monitor also runs the **stand-in remote core**: QEMU models no M7, so
the fourth Cortex-A53 plays it (the target gives QEMU's PSCI the HVC
conduit; the monitor powers MPIDR 3 on at ``IMX_SIP_RPROC`` START and off at
STOP).  :func:`build_standin` builds the image that core runs
(``firmware/standin-remote``: resource table, virtqueues, RPMsg name service
and echo), which remoteproc loads like any M-core firmware.

Nobody rewrites the DTB on that path (QEMU's ``-kernel`` would fill
``/chosen`` and ``/memory``), so :func:`boot_dtb` adds the initramfs range to
``/chosen`` (``linux,initrd-start``/``-end``, Linux
Documentation/devicetree/bindings/chosen.txt); the board DTS carries
``bootargs`` and the RAM size itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError
from .runner import Runner, require_tool

#: Where the monitor's linker script puts the kernel entry, the DTB and the
#: initramfs (firmware/el3-monitor/monitor.ld; targets/qemu-imx8mp.yaml loads them there).
KERNEL_ADDR = 0x40200000
DTB_ADDR = 0x48000000
INITRD_ADDR = 0x49000000
#: The DTB gets this much room to grow (``/chosen`` properties).
DTB_PAD = 0x1000
#: Debian's AArch64 cross toolchain (gcc-aarch64-linux-gnu).
CC = "aarch64-linux-gnu-gcc"
#: The stand-in remote core's image: bare metal at EL1 with the MMU off, so every
#: access is Device memory and must be aligned (-mstrict-align), no FP/SIMD.
STANDIN_CFLAGS: tuple[str, ...] = (
    "-march=armv8-a", "-mstrict-align", "-mgeneral-regs-only", "-mno-outline-atomics",
    "-O2", "-g0", "-std=c11", "-ffreestanding", "-fno-builtin", "-fno-pie",
    "-fno-stack-protector", "-fno-common", "-Wall", "-Wextra", "-Werror",
)
#: Firmware file names of the two stand-in builds (tags ``a`` and ``b``): a restart
#: test switches between them to show that the new file is the one running.
STANDIN_FIRMWARE = ("rprockit-standin-a.elf", "rprockit-standin-b.elf")
#: The same two builds in the legacy mode (``legacy=True`` of :func:`build_standin`),
#: for NXP's vendor imx_rpmsg transport (vrings at fixed addresses, no resource table).
STANDIN_LEGACY_FIRMWARE = ("rprockit-standin-legacy-a.elf", "rprockit-standin-legacy-b.elf")


class El3BootError(UserError):
    """The monitor or the boot DTB could not be made."""


def build_monitor(src_dir: Path, out: Path, runner: Runner | None = None) -> Path:
    """Assemble and link ``src_dir/monitor.S`` with ``src_dir/monitor.ld``.

    Args:
        src_dir: ``firmware/el3-monitor``.
        out: the ELF to write (QEMU's loader takes its entry point as the PC).

    Returns:
        ``out``.

    Raises:
        ToolMissingError: aarch64-linux-gnu-gcc is not installed.
        CommandError: the assembly or link fails.
    """
    runner = runner or Runner()
    require_tool(CC, " (needed to build the EL3 monitor of the emulated arm64 board)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    # -N: one segment, not page-aligned, so the ELF loads exactly at 0x00970000
    runner.run([CC, "-nostdlib", "-nostartfiles", "-static", "-Wl,--build-id=none", "-Wl,-N",
                "-T", "monitor.ld", "monitor.S", "-o", str(tmp)], cwd=src_dir)
    os.replace(tmp, out)
    return out


def boot_dtb_name(board_dtb: str | None) -> str:
    """The boot DTB's file name in the artifacts: ``boot.dtb`` for the manifest's board
    DTB, ``boot-<name>`` for a target's ``board_dtb`` setting (so two targets of one
    board keep their own, e.g. ``boot-imx8mp-evk-standin-qemu.dtb``)."""
    return f"boot-{board_dtb}" if board_dtb else "boot.dtb"


def boot_dtb(dtb: Path, initrd: Path, out: Path, initrd_addr: int = INITRD_ADDR) -> Path:
    """Copy ``dtb`` to ``out`` with ``/chosen`` naming the initramfs QEMU loads.

    Args:
        dtb: the board DTB.
        initrd: the initramfs file (its size in bytes gives the end).
        out: the DTB to write.
        initrd_addr: physical address of the initramfs (hex, default 0x49000000).

    Returns:
        ``out``.

    Raises:
        El3BootError: the DTB cannot be read or has no ``/chosen``.
    """
    import libfdt

    try:
        fdt = libfdt.Fdt(dtb.read_bytes())
        fdt.resize(fdt.totalsize() + DTB_PAD)
        node = fdt.path_offset("/chosen")
        end = initrd_addr + initrd.stat().st_size
        fdt.setprop_u64(node, "linux,initrd-start", initrd_addr)
        fdt.setprop_u64(node, "linux,initrd-end", end)
        fdt.pack()
    except (OSError, libfdt.FdtException) as e:
        raise El3BootError(f"cannot make the boot DTB from {dtb}: {e}; the board DTS needs "
                           "a /chosen node (with bootargs)") from e
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(fdt.as_bytearray())
    os.replace(tmp, out)
    return out


def build_standin(src_dir: Path, out: Path, tag: str, runner: Runner | None = None,
                  legacy: bool = False) -> Path:
    """Build the stand-in remote core's image ``firmware/standin-remote``.

    Args:
        src_dir: ``firmware/standin-remote`` (``start.S``, ``standin.c``, ``standin.ld``).
        out: the ELF to write (an AArch64 ELF64 linked at 0x80000000, the carveout
            ``m7_reserved``).
        tag: one lower-case letter or digit, built into the image (``STANDIN_TAG``) and
            answered to ``rprockit-status``, so a test can tell two builds apart.
        runner: the command runner (a default one when None).
        legacy: build the mode for NXP's vendor ``imx_rpmsg`` (``-DSTANDIN_LEGACY``): no
            resource table, vdev 0's vrings at 0x55000000 and 0x55008000 (256 entries,
            aligned to 4096 bytes), the link up at Linux's first kick of vring 0 (NXP
            linux-imx 5.15.71 drivers/rpmsg/imx_rpmsg.c set_vring_phy_buf(),
            rp_find_vq(), imx_rpmsg_notify()).

    Returns:
        ``out``.

    Raises:
        El3BootError: ``tag`` is not one letter or digit.
        ToolMissingError: aarch64-linux-gnu-gcc is not installed.
        CommandError: the compiler or linker fails.
    """
    if len(tag) != 1 or not (tag.isdigit() or "a" <= tag <= "z"):
        raise El3BootError(f"stand-in tag {tag!r}: give one lower-case letter or digit")
    runner = runner or Runner()
    require_tool(CC, " (needed to build the stand-in remote core's image)")
    src_dir = Path(src_dir).resolve()
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    objs = []
    for name in ("start.S", "standin.c"):
        obj = out.with_name(f"{out.stem}-{Path(name).stem}.o")
        runner.run([CC, *STANDIN_CFLAGS, f"-DSTANDIN_TAG=\"{tag}\"",
                    *(["-DSTANDIN_LEGACY"] if legacy else []),
                    f"-ffile-prefix-map={src_dir}=.", "-c", name, "-o", str(obj)], cwd=src_dir)
        objs.append(str(obj))
    tmp = out.with_name(out.name + ".tmp")
    runner.run([CC, *STANDIN_CFLAGS, "-nostdlib", "-nostartfiles", "-static", "-no-pie",
                "-Wl,--build-id=none", "-T", "standin.ld", *objs, "-o", str(tmp)], cwd=src_dir)
    for o in objs:
        Path(o).unlink()
    os.replace(tmp, out)
    return out
