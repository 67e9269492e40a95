"""The computed, immutable model of a firmware image and a board DT that every check reads.

:func:`build_model` does all the work once: it parses the resource table, picks the cm
node the way ``imx_rproc_of_match`` would, resolves its ``memory-region`` entries, derives
the regions ``imx_rproc_addr_init()`` ioremaps and the carveouts ``imx_rproc_prepare()``
registers (by node name, per kernel line), and places every PT_LOAD segment at its system
address through the ATT (``imx_rproc_da_to_sys()``: first match, strict end).  Checks are
then plain functions of the model; none depends on another having run.

Kernel facts: Linux 6.1 drivers/remoteproc/imx_rproc.c (imx_rproc_da_to_sys,
imx_rproc_da_to_va, imx_rproc_addr_init, imx_rproc_prepare) and remoteproc_core.c
(rproc_da_to_va: the driver's da_to_va first, then carveouts by device address); per-line
differences come from :mod:`rprockit.preflight.driver`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .driver import DriverConfig, DriverLine
from .dt import DeviceTree, DtNode
from .elfimage import FirmwareImage, LoadSegment
from .kernel import KernelInfo
from .rsctable import ResourceTable, RscTableError, parse_resource_table
from .soc import AttEntry, AttTable, SocInfo

def hx(v: int) -> str:
    """``0x%08x``: how the checks print addresses."""
    return f"0x{v:08x}"


#: imx_rproc_addr_init() keeps at most IMX_RPROC_MEM_MAX (32) mapped regions (imx_rproc.c:63).
IMX_RPROC_MEM_MAX = 32


@dataclass(frozen=True)
class Region:
    """A system address range the kernel can write firmware into.

    Attributes:
        sys: first system address (hex in messages).
        size: bytes.
        name: ATT entry name or reserved-memory node name.
        source: ``"ATT_OWN"``, ``"reserved-memory"`` or ``"carveout"``.
    """

    sys: int
    size: int
    name: str
    source: str

    @property
    def end(self) -> int:
        """First system address past the region."""
        return self.sys + self.size


@dataclass(frozen=True)
class MemRegion:
    """One cm-node ``memory-region`` entry resolved to its reserved-memory node.

    Attributes:
        index: position in ``memory-region``.
        phandle: the phandle value.
        node: the node, or None when the phandle resolves to nothing.
        reg: ``(system address, size in bytes)`` of its first reg entry, or None.
    """

    index: int
    phandle: int
    node: DtNode | None
    reg: tuple[int, int] | None

    @property
    def name(self) -> str:
        """The node name without unit address (``node->name`` in the kernel)."""
        return self.node.basename if self.node else f"<phandle 0x{self.phandle:x}>"

    @property
    def dma_pool(self) -> bool:
        """The node is ``compatible = "shared-dma-pool"`` (kernel/dma/coherent.c rmem_dma_setup)."""
        return self.node is not None and "shared-dma-pool" in self.node.strings("compatible")


@dataclass(frozen=True)
class Placement:
    """Where one PT_LOAD segment lands.

    Attributes:
        seg: the segment.
        entry: the ATT entry imx_rproc_da_to_sys() picks for ``[paddr, paddr + memsz)``.
        sys: its system address, or None when no entry translates it.
        region: the ioremapped region that holds ``[sys, sys + memsz)`` (strict end), or a
            carveout holding ``[paddr, paddr + memsz)``; None when the kernel cannot write it.
    """

    seg: LoadSegment
    entry: AttEntry | None
    sys: int | None
    region: Region | None

    @property
    def sys_end(self) -> int | None:
        """First system address past the segment's memory image."""
        return None if self.sys is None else self.sys + self.seg.memsz


@dataclass(frozen=True)
class Model:
    """Everything the checks read; built once by :func:`build_model`, never changed.

    Attributes:
        image: the ELF.
        soc: SoC facts.
        att: the ATT in force (the kernel tree's when given, else the data file's).
        line: the imx_rproc facts of the kernel line modelled.
        line_note: why ``line`` is an approximation of the kernel tree (empty if exact).
        emulated: the target is the emulated board.
        kernel: kernel tree facts, or None.
        dt: the board DT, or None.
        cm: the cm node imx_rproc would bind (see :func:`_pick_cm`), or None.
        cm_compatible: the compatible of ``cm`` found in the match table.
        cm_config: the dcfg that compatible selects.
        soc_config: the dcfg this SoC's own compatible selects on ``line``.
        mem_regions: ``cm``'s memory-region entries.
        rsc: the parsed resource table, or None.
        rsc_error: why the kernel rejects ``.resource_table``, or None.
        regions: regions imx_rproc_addr_init() ioremaps (ATT_OWN, then memory-region).
        carveouts: regions imx_rproc_prepare() registers as carveouts.
        placements: one per PT_LOAD with memsz > 0, in file order.
    """

    image: FirmwareImage
    soc: SocInfo
    att: AttTable
    line: DriverLine
    line_note: str
    emulated: bool
    kernel: KernelInfo | None
    dt: DeviceTree | None
    cm: DtNode | None
    cm_compatible: str | None
    cm_config: DriverConfig | None
    soc_config: DriverConfig | None
    mem_regions: tuple[MemRegion, ...]
    rsc: ResourceTable | None
    rsc_error: str | None
    regions: tuple[Region, ...]
    carveouts: tuple[Region, ...]
    placements: tuple[Placement, ...]

    @property
    def cortex_m(self) -> bool:
        """ELF32, EM_ARM, little-endian: the other checks are meaningful."""
        im = self.image
        return im.elfclass == 32 and im.machine == "EM_ARM" and im.little_endian

    @property
    def cm_ok(self) -> bool:
        """imx_rproc binds ``cm`` with this SoC's configuration (the DT checks apply)."""
        return (self.cm is not None and self.cm.status_ok and self.cm_config is not None
                and self.cm_config == self.soc_config)


def _pick_cm(dt: DeviceTree, line: DriverLine,
             soc_config: DriverConfig | None) -> tuple[DtNode | None, str | None]:
    """The node imx_rproc binds: any node with a compatible in ``imx_rproc_of_match``,
    preferring an enabled one whose compatible selects this SoC's dcfg."""
    known = {e.compatible for e in line.match}
    cands = []
    for n in dt.nodes.values():
        hit = next((c for c in n.strings("compatible") if c in known), None)
        if hit is not None:
            cands.append((n, hit))
    if not cands:
        return None, None

    def rank(item: tuple[DtNode, str]) -> tuple[bool, bool]:
        n, c = item
        return (not (line.config_for(c) == soc_config and soc_config is not None),
                not n.status_ok)

    n, c = min(cands, key=rank)
    return n, c


def _mem_regions(dt: DeviceTree, cm: DtNode) -> tuple[MemRegion, ...]:
    out = []
    for i, ph in enumerate(cm.cells("memory-region") or []):
        node = dt.by_phandle(ph)
        reg = dt.reg(node) if node else None
        out.append(MemRegion(i, ph, node, reg[0] if reg else None))
    return tuple(out)


def _parse_rsc(image: FirmwareImage) -> tuple[ResourceTable | None, str | None]:
    if image.rsc_table is None:
        return None, None
    try:
        return parse_resource_table(image.rsc_table.data), None
    except RscTableError as e:
        return None, str(e)


def _place(seg: LoadSegment, att: AttTable, regions: tuple[Region, ...],
           carveouts: tuple[Region, ...]) -> Placement:
    hit = att.da_to_sys(seg.paddr, seg.memsz)
    if hit is None:
        return Placement(seg, None, None, None)
    entry, sys = hit
    region = next((r for r in regions if r.sys <= sys and sys + seg.memsz < r.end), None)
    if region is None:
        # rproc_da_to_va(): carveouts by device address, len within (non-strict) the carveout
        region = next((c for c in carveouts
                       if c.sys <= seg.paddr and seg.paddr + seg.memsz <= c.end), None)
    return Placement(seg, entry, sys, region)


def build_model(image: FirmwareImage, soc: SocInfo, att: AttTable, line: DriverLine,
                line_note: str = "", emulated: bool = False, kernel: KernelInfo | None = None,
                dt: DeviceTree | None = None) -> Model:
    """Compute the :class:`Model` (no I/O; every input is already parsed).

    Args:
        image: the firmware.
        soc: the SoC facts.
        att: the ATT to translate with.
        line: the kernel line's imx_rproc facts.
        line_note: shown when ``line`` approximates the kernel tree.
        emulated: the target is the emulated board.
        kernel: the kernel tree facts, or None.
        dt: the board DT, or None.

    Returns:
        The model.
    """
    soc_config = line.config_for(soc.cm_compatible)
    cm, cm_compat = _pick_cm(dt, line, soc_config) if dt is not None else (None, None)
    mem = _mem_regions(dt, cm) if dt is not None and cm is not None else ()
    regions = [Region(e.sa, e.size, e.name, "ATT_OWN") for e in att.entries if e.own]
    regions += [Region(m.reg[0], m.reg[1], m.name, "reserved-memory") for m in mem
                if m.reg and line.is_mapped(m.name)]
    carveouts = tuple(Region(m.reg[0], m.reg[1], m.name, "carveout") for m in mem
                      if m.reg and line.is_carveout(m.name))
    mapped = tuple(regions[:IMX_RPROC_MEM_MAX])
    rsc, rsc_error = _parse_rsc(image)
    placements = tuple(_place(s, att, mapped, carveouts) for s in image.segments if s.memsz)
    return Model(image=image, soc=soc, att=att, line=line, line_note=line_note,
                 emulated=emulated, kernel=kernel, dt=dt, cm=cm, cm_compatible=cm_compat,
                 cm_config=line.config_for(cm_compat) if cm_compat else None,
                 soc_config=soc_config, mem_regions=mem, rsc=rsc, rsc_error=rsc_error,
                 regions=mapped, carveouts=carveouts, placements=placements)
