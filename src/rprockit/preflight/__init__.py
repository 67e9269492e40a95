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

from collections.abc import Sequence
from pathlib import Path

from ..errors import PreflightError
from ..runner import Runner
from .checks import CHECKS, segment_rows
from .driver import LINES, select_line
from .dt import DtbFileError, load_dtb
from .elfimage import FirmwareFileError, load_image
from .kernel import KernelTreeError, detect_kernel
from .model import Model, build_model
from .report import FAIL, PASS, WARN, Check, PreflightReport, SegmentRow
from .soc import SOCS, load_soc

__all__ = [
    "FAIL",
    "LINES",
    "PASS",
    "SOCS",
    "WARN",
    "Check",
    "DtbFileError",
    "FirmwareFileError",
    "KernelTreeError",
    "Model",
    "PreflightError",
    "PreflightReport",
    "SegmentRow",
    "UnknownSocError",
    "check_firmware",
    "error_document",
    "load_model",
]



class UnknownSocError(PreflightError):
    """The SoC name is not one of :data:`SOCS`."""

    def __init__(self, soc: str):
        self.soc = soc
        super().__init__(f"unknown SoC '{soc}'; choose one of: {', '.join(SOCS)}")


def load_model(elf: Path, soc: str, dtb: Path | None = None, kernel_tree: Path | None = None,
               emulated: bool = False, oot_dirs: Sequence[Path] = ()) -> Model:
    """Read the inputs and compute the immutable model every check reads.

    Args and Raises: as :func:`check_firmware`.
    """
    if soc not in SOCS:
        raise UnknownSocError(soc)
    info = load_soc(soc)
    image = load_image(Path(elf))
    dt = load_dtb(Path(dtb)) if dtb is not None else None
    kernel = detect_kernel(Path(kernel_tree), oot_dirs) if kernel_tree is not None else None
    line, note = select_line(kernel)
    att = info.att
    if kernel is not None and info.cm_compatible in kernel.att_by_compatible:
        att = kernel.att_by_compatible[info.cm_compatible]
    return build_model(image, info, att, line, note, emulated=emulated, kernel=kernel, dt=dt)


def check_firmware(elf: Path, soc: str, dtb: Path | None = None, kernel_tree: Path | None = None,
                   emulated: bool = False, runner: Runner | None = None,
                   oot_dirs: Sequence[Path] = ()) -> PreflightReport:
    """Run the pre-flight checks on a firmware ELF.

    Args:
        elf: the firmware ELF file.
        soc: one of :data:`SOCS` (``imx7d``, ``imx8mq``, ``imx8mm``, ``imx8mn``, ``imx8mp``).
        dtb: the board's compiled device tree; enables the device-tree checks (without it,
            checks that need it warn and say so).
        kernel_tree: a kernel source tree; its Makefile version, family and remoteproc
            sources decide the version-dependent findings (memsz == 0 skip from 5.19,
            resource table required, the ATT of this SoC) and which imx_rproc line of
            :data:`LINES` models the probe (default: mainline 6.1).
        emulated: the target is the emulated board; the missing boot vector is then an
            expected warning instead of a failure.
        runner: unused (all parsing is in-process with pyelftools and pylibfdt); accepted so
            every stage has the same signature.
        oot_dirs: out-of-tree module sources built against ``kernel_tree``; where the
            tree has no imx_rproc.c, the driver is read from these (see
            :func:`rprockit.preflight.kernel.detect_kernel`).

    Returns:
        The report; ``report.failed`` is True when any check failed.

    Raises:
        UnknownSocError: ``soc`` is not supported.
        FirmwareFileError: ``elf`` is unreadable, not an ELF, truncated or malformed.
        DtbFileError: ``dtb`` is unreadable or not a valid FDT.
        KernelTreeError: ``kernel_tree`` is not a kernel source tree.
    """
    del runner
    m = load_model(elf, soc, dtb, kernel_tree, emulated, oot_dirs)
    rep = PreflightReport(firmware=str(elf), soc=soc, dtb=str(dtb) if dtb else None,
                          emulated=emulated, kernel=m.kernel.to_dict() if m.kernel else None,
                          driver_line=m.line.line)
    if not m.cortex_m:
        rep.checks.extend(CHECKS[0](m))
        return rep
    rep.segments.extend(segment_rows(m))
    if m.rsc is not None and m.image.rsc_table is not None:
        rep.resource_table = {"addr": m.image.rsc_table.addr, **m.rsc.to_dict()}
    for check in CHECKS:
        rep.checks.extend(check(m))
    return rep


def error_document(error: Exception, elf: str | None, soc: str | None) -> dict:
    """The JSON document ``check-firmware --json`` prints when the inputs cannot be checked.

    Args:
        error: the UserError raised (bad file, unknown SoC, ...).
        elf: the firmware path as given, or None.
        soc: the SoC as given, or None.

    Returns:
        ``{"format": 1, "firmware", "soc", "verdict": "error", "error": {"type", "message"}}``.
    """
    return {"format": 1, "firmware": elf, "soc": soc, "verdict": "error",
            "error": {"type": type(error).__name__, "message": str(error)}}
