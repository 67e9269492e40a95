"""What the imx_rproc driver of one kernel line requires of the cm node (probe and boot).

One data file per kernel line, ``rprockit/data/imx_rproc/<line>.yaml``, read with the one
YAML loader and validated against ``schemas/imx-rproc.json``.  Each fact names the source
line it was read from (``imx_rproc.c:876`` in the tree the file's ``kernel`` names):

* ``imx_rproc_of_match``: which compatibles select which ``struct imx_rproc_dcfg`` (so
  ``fsl,imx8mn-cm7`` and ``fsl,imx8mp-cm7`` share ``imx_rproc_cfg_imx8mn``, and
  ``fsl,imx8mq-cm4`` / ``fsl,imx8mm-cm4`` share ``imx_rproc_cfg_imx8mq``);
* the clock lookup (mainline 6.1 ``devm_clk_get(dev, NULL)`` is mandatory, NXP's
  ``devm_clk_get_optional()`` is not), the SRC ``syscon`` for the MMIO method, the mailbox
  names;
* how ``memory-region`` entries are treated by name: skipped by ``imx_rproc_prepare()``,
  not ioremapped by ``imx_rproc_addr_init()``, taken as the resource table, and which
  carveout names ``rproc_add_virtio_dev()`` tries for the RPMsg buffers before it falls back
  to ``memory-region[0]``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import yamlfile
from .kernel import KernelInfo

#: The kernel lines with a data file; the first is the default model.
LINES: tuple[str, ...] = ("mainline-6.1", "nxp-5.4", "nxp-5.15", "nxp-6.1")
DEFAULT_LINE = LINES[0]


@dataclass(frozen=True)
class Fact:
    """A requirement and where the kernel source states it (``file.c:line``)."""

    source: str


@dataclass(frozen=True)
class MatchEntry:
    """One ``imx_rproc_of_match`` entry."""

    compatible: str
    cfg: str
    source: str


@dataclass(frozen=True)
class DriverConfig:
    """One ``struct imx_rproc_dcfg``: its ATT data name and start/stop method."""

    name: str
    att: str
    method: str
    source: str


@dataclass(frozen=True)
class DriverLine:
    """The imx_rproc facts of one kernel line.

    Attributes:
        line: ``"mainline-6.1"``, ``"nxp-5.15"``, ...
        family: ``"mainline"`` or ``"nxp"``.
        version: ``(VERSION, PATCHLEVEL)``.
        kernel: the tree the facts were read from.
        match: ``imx_rproc_of_match`` in source order.
        configs: dcfg name -> config.
        clock_required, clock_call, clock_source: the clock lookup of the probe.
        syscon_required, syscon_source: the SRC regmap lookup (method mmio only).
        mbox_names, mbox_fatal, mbox_source: channels requested when ``mbox-names`` exists,
            and whether a failure fails the probe.
        prepare_skip, prepare_source: memory-region node names imx_rproc_prepare() does not
            register as carveouts.
        map_skip_prefix, map_source: node-name prefix imx_rproc_addr_init() does not ioremap
            (empty: every entry is mapped).
        rsc_names, rsc_prefixes, rsc_source: node names taken as the resource-table region.
        buffer_carveouts, buffer_source, buffer_fallback_source: carveout names tried for
            the vdev RPMsg buffers (``{index}`` = vdev index) before ``memory-region[0]``.
    """

    line: str
    family: str
    version: tuple[int, int]
    kernel: str
    match: tuple[MatchEntry, ...]
    configs: dict[str, DriverConfig]
    clock_required: bool
    clock_call: str
    clock_source: str
    syscon_required: bool
    syscon_source: str
    mbox_names: tuple[str, ...]
    mbox_fatal: bool
    mbox_source: str
    prepare_skip: tuple[str, ...]
    prepare_source: str
    map_skip_prefix: str
    map_source: str
    rsc_names: tuple[str, ...]
    rsc_prefixes: tuple[str, ...]
    rsc_source: str
    buffer_carveouts: tuple[str, ...]
    buffer_source: str
    buffer_fallback_source: str

    def config_for(self, compatible: str) -> DriverConfig | None:
        """The dcfg ``compatible`` selects, or None when the match table lacks it."""
        m = next((e for e in self.match if e.compatible == compatible), None)
        return self.configs.get(m.cfg) if m else None

    def entry_for(self, compatible: str) -> MatchEntry | None:
        """The match-table entry of ``compatible``."""
        return next((e for e in self.match if e.compatible == compatible), None)

    def accepted(self, compatible: str) -> tuple[str, ...]:
        """Every compatible that selects the same dcfg as ``compatible`` (itself first)."""
        own = self.entry_for(compatible)
        if own is None:
            return ()
        return (compatible, *(e.compatible for e in self.match
                              if e.cfg == own.cfg and e.compatible != compatible))

    def is_rsc_table(self, name: str) -> bool:
        """Whether a memory-region node called ``name`` is the resource-table region."""
        return name in self.rsc_names or any(name.startswith(p) for p in self.rsc_prefixes)

    def is_mapped(self, name: str) -> bool:
        """Whether imx_rproc_addr_init() ioremaps a memory-region node called ``name``."""
        return not (self.map_skip_prefix and name.startswith(self.map_skip_prefix))

    def is_carveout(self, name: str) -> bool:
        """Whether imx_rproc_prepare() registers a memory-region node called ``name``."""
        return name not in self.prepare_skip

    def where(self, source: str) -> str:
        """``"drivers/<dir>/file.c:line (<line>)"`` for a message."""
        sub = "rpmsg" if source.startswith("virtio_rpmsg") else "remoteproc"
        return f"drivers/{sub}/{source} ({self.line})"


def _data_file(line: str) -> Path:
    return Path(str(resources.files("rprockit.data").joinpath("imx_rproc").joinpath(
        f"{line}.yaml")))


@functools.cache
def load_line(line: str) -> DriverLine:
    """Load ``data/imx_rproc/<line>.yaml``.

    Args:
        line: one of :data:`LINES`.

    Raises:
        ValueError: ``line`` is not in :data:`LINES` (the caller validates user input).
        InvalidFileError: the data file is invalid (a packaging bug), with file, line and key.
    """
    if line not in LINES:
        raise ValueError(f"unknown kernel line {line!r}")
    d = yamlfile.load(_data_file(line), "imx-rproc").data
    return DriverLine(
        line=d["line"], family=d["family"], version=(d["version"][0], d["version"][1]),
        kernel=d["kernel"],
        match=tuple(MatchEntry(m["compatible"], m["cfg"], m["source"]) for m in d["match"]),
        configs={k: DriverConfig(k, v["att"], v["method"], v["source"])
                 for k, v in d["configs"].items()},
        clock_required=d["clock"]["required"], clock_call=d["clock"]["call"],
        clock_source=d["clock"]["source"],
        syscon_required=d["syscon"]["required"], syscon_source=d["syscon"]["source"],
        mbox_names=tuple(d["mbox"]["names"]), mbox_fatal=d["mbox"]["fatal"],
        mbox_source=d["mbox"]["source"],
        prepare_skip=tuple(d["prepare_skip"]["names"]), prepare_source=d["prepare_skip"]["source"],
        map_skip_prefix=d["addr_init_skip_prefix"]["prefix"],
        map_source=d["addr_init_skip_prefix"]["source"],
        rsc_names=tuple(d["rsc_table"]["names"]), rsc_prefixes=tuple(d["rsc_table"]["prefixes"]),
        rsc_source=d["rsc_table"]["source"],
        buffer_carveouts=tuple(d["vdev_buffer"]["carveouts"]),
        buffer_source=d["vdev_buffer"]["source"],
        buffer_fallback_source=d["vdev_buffer"]["fallback_source"],
    )


def select_line(kernel: KernelInfo | None) -> tuple[DriverLine, str]:
    """The driver line that models ``kernel``, and a note when it is an approximation.

    Without a kernel tree, or for a tree with no exact data file, mainline 6.1 is the model
    (an NXP tree takes the NXP line of the same VERSION.PATCHLEVEL when there is one).

    Returns:
        ``(line, note)``; ``note`` is empty for an exact match.
    """
    if kernel is None:
        return load_line(DEFAULT_LINE), ""
    for name in LINES:
        ln = load_line(name)
        if ln.family == kernel.family and ln.version == kernel.version[:2]:
            return ln, ""
    return load_line(DEFAULT_LINE), (f"no imx_rproc data for {kernel.family} "
                                     f"{kernel.version_str}; modelled as {DEFAULT_LINE}")
