"""SoC facts (data/soc/*.yaml) and imx_rproc address translation (data/att/*.yaml).

The translation mirrors Linux 6.1 drivers/remoteproc/imx_rproc.c: imx_rproc_da_to_sys()
takes the first ATT entry with ``da >= entry.da and da + len < entry.da + entry.size``
(a strict end bound), and imx_rproc_da_to_va() then needs the system range inside one
of the regions remapped by imx_rproc_addr_init() (ATT_OWN entries, and the cm node's
memory-region nodes except those named ``vdev*``), again with a strict end bound.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..yamlfile import load_validated

#: Supported SoC names (one data/soc/<name>.yaml each).
SOCS: tuple[str, ...] = ("imx7d", "imx8mq", "imx8mm", "imx8mn", "imx8mp")


@dataclass(frozen=True)
class AttEntry:
    """One imx_rproc ATT entry: device address ``da`` maps to system address ``sa``."""

    da: int
    sa: int
    size: int
    own: bool
    iomem: bool
    name: str

    @property
    def da_end(self) -> int:
        """First device address past the entry."""
        return self.da + self.size


@dataclass(frozen=True)
class AttTable:
    """An ATT with the kernel source it came from."""

    name: str
    source: str
    entries: tuple[AttEntry, ...]

    def da_to_sys(self, da: int, length: int) -> tuple[AttEntry, int] | None:
        """Translate like imx_rproc_da_to_sys(): first match, strict end bound.

        Args:
            da: device address.
            length: bytes.

        Returns:
            ``(entry, system address)`` or None when no entry matches.
        """
        for e in self.entries:
            if da >= e.da and da + length < e.da + e.size:
                return e, e.sa + (da - e.da)
        return None

    def containing(self, da: int) -> AttEntry | None:
        """The first entry that contains the byte at ``da`` (ignoring any length)."""
        for e in self.entries:
            if e.da <= da < e.da_end:
                return e
        return None


@dataclass(frozen=True)
class BootVector:
    """Where the core fetches its initial SP and PC: device address ``da`` = system ``sys``."""

    da: int
    sys: int
    memory: str


@dataclass(frozen=True)
class AttVariant:
    """A kernel whose ATT differs from mainline 6.1 in one entry (a known bug)."""

    kernel: str
    entry_da: int
    wrong_sa: int
    right_sa: int
    fixed_by: str


@dataclass(frozen=True)
class SocInfo:
    """Facts about one SoC's Cortex-M core under imx_rproc."""

    name: str
    core: str
    cm_compatible: str
    rpmsg_compatible: str
    boot_vector: BootVector
    att: AttTable
    emulated_boot_vector_note: str
    att_variants: tuple[AttVariant, ...]


def _data_file(kind: str, name: str) -> Path:
    return Path(str(resources.files("rprockit.data").joinpath(kind).joinpath(f"{name}.yaml")))


@functools.cache
def load_att(name: str) -> AttTable:
    """Load ``data/att/<name>.yaml``.

    Raises:
        InvalidFileError: the data file is invalid (a packaging bug).
    """
    data, _ = load_validated(_data_file("att", name), "att")
    src = data["source"]
    entries = tuple(AttEntry(e["da"], e["sa"], e["size"], "own" in e["flags"],
                             "iomem" in e["flags"], e["name"]) for e in data["entries"])
    return AttTable(data["name"], f"{src['kernel']} {src['file']} {src['symbol']}", entries)


@functools.cache
def load_soc(name: str) -> SocInfo:
    """Load ``data/soc/<name>.yaml`` and its ATT.

    Args:
        name: one of :data:`SOCS`.

    Raises:
        ValueError: ``name`` is not in :data:`SOCS` (the caller validates user input).
        InvalidFileError: the data file is invalid (a packaging bug).
    """
    if name not in SOCS:
        raise ValueError(f"unknown SoC {name!r}")
    data, _ = load_validated(_data_file("soc", name), "soc")
    bv = data["boot_vector"]
    return SocInfo(
        name=data["name"], core=data["core"], cm_compatible=data["cm_compatible"],
        rpmsg_compatible=data["rpmsg_compatible"],
        boot_vector=BootVector(bv["da"], bv["sys"], bv["memory"]),
        att=load_att(data["att"]),
        emulated_boot_vector_note=data.get("emulated_boot_vector_note", ""),
        att_variants=tuple(AttVariant(**v) for v in data.get("att_variants", [])),
    )
