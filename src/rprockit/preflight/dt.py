"""Read a flattened device tree (DTB) with pylibfdt into plain values.

libfdt validates the whole blob first (fdt_check_full), so a corrupt DTB becomes one
:class:`DtbFileError`; the checks then walk plain Python data.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import libfdt

from ..errors import PreflightError, UnreadableFileError
from ..files import read_regular

MAX_DTB_BYTES = 16 * 1024 * 1024


class DtbFileError(PreflightError):
    """The DTB cannot be read or is not a valid flattened device tree."""

    def __init__(self, path: Path, problem: str):
        self.path = path
        super().__init__(f"device tree blob {path}: {problem}; pass the .dtb that dtc or the "
                         "kernel build (make dtbs) produced for the board")


@dataclass(frozen=True)
class DtNode:
    """A node: full path, name (with unit address), parent path and raw properties
    (read-only)."""

    path: str
    name: str
    parent: str | None
    props: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def basename(self) -> str:
        """The name without ``@unit-address`` (what the kernel's ``node->name`` holds)."""
        return self.name.split("@", 1)[0]

    def strings(self, prop: str) -> list[str]:
        """A string-list property (empty if absent)."""
        raw = self.props.get(prop)
        if not raw:
            return []
        return [s.decode("utf-8", "replace") for s in raw.rstrip(b"\0").split(b"\0")]

    def cells(self, prop: str) -> list[int] | None:
        """A u32 array property; None if absent or its length is not a multiple of 4."""
        raw = self.props.get(prop)
        if raw is None or len(raw) % 4:
            return None
        return list(struct.unpack(f">{len(raw) // 4}I", raw))

    def u32(self, prop: str, default: int | None = None) -> int | None:
        """A single-cell property, or ``default``."""
        c = self.cells(prop)
        return c[0] if c and len(c) == 1 else default

    @property
    def status_ok(self) -> bool:
        """Status absent, "okay" or "ok"."""
        s = self.strings("status")
        return not s or s[0] in ("okay", "ok")


@dataclass(frozen=True)
class DeviceTree:
    """All nodes by path, and phandle -> path (read-only)."""

    path: Path
    nodes: Mapping[str, DtNode]
    phandles: Mapping[int, str]

    def by_phandle(self, ph: int) -> DtNode | None:
        """The node with ``phandle`` ``ph``."""
        p = self.phandles.get(ph)
        return self.nodes.get(p) if p else None

    def compatible(self, pred: Callable[[str], bool]) -> list[DtNode]:
        """Nodes with a compatible string for which ``pred(str)`` is true."""
        return [n for n in self.nodes.values() if any(pred(c) for c in n.strings("compatible"))]

    def address_cells(self, node: DtNode) -> tuple[int, int]:
        """``(#address-cells, #size-cells)`` governing ``node``'s reg (from its parent).

        Defaults 2 and 1 (Devicetree Specification v0.4, 2.3.5).
        """
        parent = self.nodes.get(node.parent or "")
        if parent is None:
            return 2, 1
        ac = parent.u32("#address-cells", 2)
        sc = parent.u32("#size-cells", 1)
        return (2 if ac is None else ac), (1 if sc is None else sc)

    def reg(self, node: DtNode) -> list[tuple[int, int]] | None:
        """``[(address, size), ...]`` from ``reg``; None if absent or malformed."""
        cells = node.cells("reg")
        ac, sc = self.address_cells(node)
        if cells is None or ac + sc == 0 or len(cells) % (ac + sc) or ac > 2 or sc > 2:
            return None
        out = []
        for i in range(0, len(cells), ac + sc):
            addr = size = 0
            for c in cells[i:i + ac]:
                addr = (addr << 32) | c
            for c in cells[i + ac:i + ac + sc]:
                size = (size << 32) | c
            out.append((addr, size))
        return out


def load_dtb(path: Path) -> DeviceTree:
    """Parse ``path`` with libfdt.

    Raises:
        DtbFileError: unreadable, too large, or rejected by libfdt (bad magic, truncated,
            bad structure) with libfdt's error name.
    """
    path = Path(path)
    try:
        blob = read_regular(path, MAX_DTB_BYTES, "device tree blob")
    except UnreadableFileError as e:
        raise DtbFileError(path, f"cannot read it: it {e.problem}") from None
    try:
        if len(blob) < 40:
            raise DtbFileError(path, f"{len(blob)} bytes is smaller than an FDT header")
        err = libfdt.fdt_check_full(bytearray(blob), len(blob))
        if err:
            raise DtbFileError(path, f"libfdt rejects it: {libfdt.fdt_strerror(err)}")
        return _walk(path, libfdt.FdtRo(blob))
    except libfdt.FdtException as e:
        raise DtbFileError(path, f"libfdt rejects it: {e}") from e
    except (SystemError, UnicodeDecodeError) as e:
        # pylibfdt decodes property names as UTF-8; fdt_check_full() accepts any bytes there.
        raise DtbFileError(path, f"a property name in its strings block is not valid text "
                                 f"({e.__cause__ or e})") from e


def _walk(path: Path, fdt: libfdt.FdtRo) -> DeviceTree:
    nodes: dict[str, DtNode] = {}
    phandles: dict[int, str] = {}
    stack: list[str] = []
    off, depth = 0, 0
    quiet = [libfdt.NOTFOUND]
    while off >= 0 and depth >= 0:
        name = fdt.get_name(off)
        del stack[depth:]
        parent = stack[-1] if stack else None
        npath = "/" if depth == 0 or parent is None else (parent.rstrip("/") + "/" + name)
        stack.append(npath)
        props: dict[str, bytes] = {}
        poff = fdt.first_property_offset(off, quiet)
        while poff >= 0:
            prop = fdt.get_property_by_offset(poff)
            props[prop.name] = bytes(prop)
            poff = fdt.next_property_offset(poff, quiet)
        node = DtNode(npath, name if depth else "/", parent, MappingProxyType(props))
        nodes[npath] = node
        ph = node.u32("phandle")
        if ph:
            phandles[ph] = npath
        off, depth = fdt.next_node(off, depth, quiet)
    return DeviceTree(path, MappingProxyType(nodes), MappingProxyType(phandles))
