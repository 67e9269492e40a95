"""Facts read from a kernel source tree (``--kernel-tree``) that change the verdicts.

Everything is read from the tree's own sources, so a vendor tree is judged by what it
contains, not by its version number alone:

* version: top-level Makefile ``VERSION``/``PATCHLEVEL``/``SUBLEVEL``;
* family: ``nxp`` when the NXP linux-imx marker files of data/kernel-families.yaml exist;
* memsz == 0 skip: drivers/remoteproc/remoteproc_elf_loader.c rproc_elf_load_segments()
  tests ``!memsz`` (mainline "remoteproc: elf_loader: skip segment with memsz as zero",
  v5.19);
* missing resource table: remoteproc_core.c rproc_fw_boot() printing "Failed to find
  resource table" (4.14) refuses it; imx_rproc.c imx_rproc_parse_fw() printing "No resource
  table in elf" (6.1) tolerates it;
* the ATT used for the SoC's compatible: imx_rproc_of_match -> imx_rproc_cfg_* -> .att.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import kernel_tree
from ..errors import PreflightError
from .soc import AttEntry, AttTable

IMX_RPROC = "drivers/remoteproc/imx_rproc.c"
ELF_LOADER = "drivers/remoteproc/remoteproc_elf_loader.c"
CORE = "drivers/remoteproc/remoteproc_core.c"


class KernelTreeError(PreflightError):
    """``--kernel-tree`` is not a readable kernel source tree."""

    def __init__(self, tree: Path, problem: str):
        self.tree = tree
        super().__init__(f"kernel tree {tree}: {problem}; pass the top directory of a Linux "
                         "source tree (the one holding the Makefile with VERSION = ...), or drop "
                         "--kernel-tree")


@dataclass
class KernelInfo:
    """What the pre-flight check needs to know about the target kernel.

    Attributes:
        tree: the source tree.
        version: ``(VERSION, PATCHLEVEL, SUBLEVEL)``.
        family: ``"mainline"`` or ``"nxp"``.
        skips_memsz0: the ELF loader skips PT_LOAD segments with memsz == 0; None if unknown.
        rsc_table_required: the tree refuses an ELF without ``.resource_table``; None if unknown.
        att_by_compatible: ATT per cm compatible parsed from the tree's imx_rproc.c.
        has_imx_rproc: the tree, or one of the out-of-tree source directories given to
            :func:`detect_kernel`, has drivers/remoteproc/imx_rproc.c.
        imx_rproc_source: the imx_rproc.c that was read (None without one).
    """

    tree: Path
    version: tuple[int, int, int]
    family: str
    skips_memsz0: bool | None = None
    rsc_table_required: bool | None = None
    att_by_compatible: dict[str, AttTable] = field(default_factory=dict)
    has_imx_rproc: bool = False
    imx_rproc_source: Path | None = None

    @property
    def version_str(self) -> str:
        """``"X.Y.Z"``."""
        return ".".join(map(str, self.version))

    def to_dict(self) -> dict:
        """JSON-able summary."""
        return {"tree": str(self.tree), "version": self.version_str, "family": self.family,
                "skips_memsz0": self.skips_memsz0, "rsc_table_required": self.rsc_table_required,
                "imx_rproc": self.has_imx_rproc,
                "imx_rproc_source": str(self.imx_rproc_source) if self.imx_rproc_source else None,
                "att_compatibles": sorted(self.att_by_compatible)}


def _read(tree: Path, rel: str) -> str | None:
    try:
        return (tree / rel).read_text(errors="replace")
    except OSError:
        return None


_ATT_RE = re.compile(r"static\s+const\s+struct\s+imx_rproc_att\s+(\w+)\s*\[\s*\]\s*=\s*"
                     r"\{(.*?)\n\};", re.DOTALL)
_ENTRY_RE = re.compile(r"\{\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*,"
                       r"\s*([^}]*)\}")
_CFG_RE = re.compile(r"imx_rproc_dcfg\s+(\w+)\s*=\s*\{(.*?)\};", re.DOTALL)
_MATCH_RE = re.compile(r"\.compatible\s*=\s*\"([^\"]+)\"\s*,\s*\.data\s*=\s*&(\w+)")


def parse_att_tables(source: str, origin: str) -> dict[str, AttTable]:
    """ATT per compatible from the text of an imx_rproc.c.

    Args:
        source: the C source.
        origin: description of where it came from, stored in each table.

    Returns:
        ``{compatible: AttTable}`` for every of_match entry whose cfg names an ATT.
    """
    tables: dict[str, tuple[AttEntry, ...]] = {}
    for name, body in _ATT_RE.findall(source):
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.DOTALL)
        tables[name] = tuple(
            AttEntry(int(da, 16), int(sa, 16), int(size, 16), "ATT_OWN" in flags,
                     "ATT_IOMEM" in flags, f"{name}[{i}]")
            for i, (da, sa, size, flags) in enumerate(_ENTRY_RE.findall(body)))
    cfg_att = {}
    for cfg, body in _CFG_RE.findall(source):
        m = re.search(r"\.att\s*=\s*(\w+)", body)
        if m:
            cfg_att[cfg] = m.group(1)
    out = {}
    for compat, cfg in _MATCH_RE.findall(source):
        att = cfg_att.get(cfg)
        if att is not None and tables.get(att):
            out[compat] = AttTable(att, f"{origin} {att}", tables[att])
    return out


def detect_kernel(tree: Path, oot_dirs: Sequence[Path] = ()) -> KernelInfo:
    """Read the facts of :class:`KernelInfo` from ``tree``.

    Args:
        tree: the kernel source tree.
        oot_dirs: out-of-tree module source directories built against ``tree``
            (``<ws>/oot/<set>/``, laid out like the kernel tree). When ``tree`` has no
            drivers/remoteproc/imx_rproc.c (NXP 4.9), the first of these that has one is
            the driver that runs, so its ATT and its resource-table wording are read.

    Raises:
        KernelTreeError: ``tree`` is not a directory or has no usable Makefile.
    """
    tree = Path(tree)
    if not tree.is_dir():
        raise KernelTreeError(tree, "not a directory")
    try:
        version = kernel_tree.read_version(tree).triple
    except kernel_tree.NotAKernelTreeError as e:
        raise KernelTreeError(tree, "no readable Makefile" if e.unreadable else
                              "its Makefile has no VERSION/PATCHLEVEL lines") from e
    info = KernelInfo(tree, version, kernel_tree.find_vendor(tree)[0] or kernel_tree.MAINLINE)
    loader = _read(tree, ELF_LOADER)
    if loader is not None:
        info.skips_memsz0 = bool(re.search(r"type\s*!=\s*PT_LOAD\s*\|\|\s*!memsz", loader))
    core = _read(tree, CORE)
    imx = None
    for where in (tree, *oot_dirs):
        imx = _read(where, IMX_RPROC)
        if imx is not None:
            info.imx_rproc_source = Path(where) / IMX_RPROC
            break
    info.has_imx_rproc = imx is not None
    if imx is not None and "No resource table in elf" in imx:
        info.rsc_table_required = False
    elif core is not None and "Failed to find resource table" in core:
        info.rsc_table_required = True
    if imx is not None:
        info.att_by_compatible = parse_att_tables(imx, str(info.imx_rproc_source))
    return info
