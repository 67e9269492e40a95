"""Pre-flight checks of an M-core firmware ELF (and optionally the board DTB and the kernel
tree) against what the i.MX ``imx_rproc`` remoteproc driver will do with it.

Public API::

    report = check_firmware(Path("fw.elf"), "imx8mp", dtb=Path("board.dtb"))
    print(report.render()); json.dumps(report.to_dict()); report.failed

The checks model Linux 6.1 (drivers/remoteproc/imx_rproc.c and the remoteproc core) and
note where other kernels differ; facts about each SoC live in ``rprockit/data/soc`` and
``rprockit/data/att``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..runner import Runner
from .checks import (
    Context,
    check_addresses,
    check_boot_vector,
    check_ddr_alias,
    check_dt,
    check_elf_header,
    check_kernel,
    check_resource_table,
    check_rsc_location,
    check_segments,
    resolve_dt,
)
from .dt import DtbFileError, load_dtb
from .elfimage import FirmwareFileError, load_image
from .kernel import KernelTreeError, detect_kernel
from .report import FAIL, PASS, WARN, Check, PreflightReport, SegmentRow
from .soc import SOCS, load_soc

__all__ = [
    "FAIL",
    "PASS",
    "SOCS",
    "WARN",
    "Check",
    "DtbFileError",
    "FirmwareFileError",
    "KernelTreeError",
    "PreflightError",
    "PreflightReport",
    "SegmentRow",
    "UnknownSocError",
    "check_firmware",
]

#: Base of the pre-flight input errors (all are UserError: exit 2).
PreflightError = UserError


class UnknownSocError(UserError):
    """The SoC name is not one of :data:`SOCS`."""

    def __init__(self, soc: str):
        self.soc = soc
        super().__init__(f"unknown SoC '{soc}'; choose one of: {', '.join(SOCS)}")


def check_firmware(elf: Path, soc: str, dtb: Path | None = None, kernel_tree: Path | None = None,
                   emulated: bool = False, runner: Runner | None = None) -> PreflightReport:
    """Run the pre-flight checks on a firmware ELF.

    Args:
        elf: the firmware ELF file.
        soc: one of :data:`SOCS` (``imx7d``, ``imx8mq``, ``imx8mm``, ``imx8mn``, ``imx8mp``).
        dtb: the board's compiled device tree; enables the device-tree checks.
        kernel_tree: a kernel source tree; its Makefile version and its remoteproc sources
            decide the version-dependent findings (memsz == 0 skip from 5.19, resource table
            required, the ATT of this SoC).
        emulated: the target is the emulated board; the missing boot vector is then an
            expected warning instead of a failure.
        runner: unused (all parsing is in-process with pyelftools and pylibfdt); accepted so
            every stage has the same signature.

    Returns:
        The report; ``report.failed`` is True when any check failed.

    Raises:
        UnknownSocError: ``soc`` is not supported.
        FirmwareFileError: ``elf`` is unreadable, not an ELF, truncated or malformed.
        DtbFileError: ``dtb`` is unreadable or not a valid FDT.
        KernelTreeError: ``kernel_tree`` is not a kernel source tree.
    """
    del runner
    if soc not in SOCS:
        raise UnknownSocError(soc)
    info = load_soc(soc)
    image = load_image(Path(elf))
    dt = load_dtb(Path(dtb)) if dtb is not None else None
    kernel = detect_kernel(Path(kernel_tree)) if kernel_tree is not None else None
    att = info.att
    if kernel is not None and info.cm_compatible in kernel.att_by_compatible:
        att = kernel.att_by_compatible[info.cm_compatible]
    ctx = Context(image=image, soc=info, att=att, emulated=emulated, kernel=kernel, dt=dt)
    rep = PreflightReport(firmware=str(elf), soc=soc, dtb=str(dtb) if dtb else None,
                          emulated=emulated, kernel=kernel.to_dict() if kernel else None)
    if not check_elf_header(ctx, rep):
        return rep
    resolve_dt(ctx)
    check_segments(ctx, rep)
    check_resource_table(ctx, rep)
    check_addresses(ctx, rep)
    check_ddr_alias(ctx, rep)
    check_rsc_location(ctx, rep)
    check_boot_vector(ctx, rep)
    check_kernel(ctx, rep)
    check_dt(ctx, rep)
    return rep
