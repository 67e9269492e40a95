"""Parse a remoteproc resource table exactly as Linux 6.1 checks it.

Layouts: include/linux/remoteproc.h (struct resource_table, fw_rsc_hdr, fw_rsc_carveout,
fw_rsc_devmem, fw_rsc_trace, fw_rsc_vdev, fw_rsc_vdev_vring).  Checks and their dmesg
lines: remoteproc_elf_loader.c find_table(), remoteproc_core.c rproc_handle_resources(),
rproc_handle_vdev(), rproc_parse_vring(); virtio_ring.c (vring length a power of 2).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType

RSC_CARVEOUT, RSC_DEVMEM, RSC_TRACE, RSC_VDEV, RSC_LAST = 0, 1, 2, 3, 4
RSC_VENDOR_START, RSC_VENDOR_END = 128, 512
FW_RSC_ADDR_ANY = 0xFFFFFFFF
VIRTIO_ID_RPMSG = 7
VIRTIO_RPMSG_F_NS = 0
_TYPE_NAMES = {RSC_CARVEOUT: "carveout", RSC_DEVMEM: "devmem", RSC_TRACE: "trace",
               RSC_VDEV: "vdev"}


class RscTableError(Exception):
    """The table would be rejected; ``str()`` gives the kernel's dmesg line and the reason."""


@dataclass(frozen=True)
class Vring:
    """struct fw_rsc_vdev_vring."""

    da: int
    align: int
    num: int
    notifyid: int
    pa: int


@dataclass(frozen=True)
class Resource:
    """One entry: ``type`` name, table offset, fields by name, vrings for a vdev."""

    type: str
    offset: int
    fields: Mapping[str, int | str] = field(default_factory=lambda: MappingProxyType({}))
    vrings: tuple[Vring, ...] = ()


@dataclass(frozen=True)
class ResourceTable:
    """struct resource_table: version, entries, size in bytes, and non-fatal notes."""

    ver: int
    size: int
    entries: tuple[Resource, ...]
    notes: tuple[str, ...] = ()

    @property
    def vdevs(self) -> list[Resource]:
        """The vdev entries."""
        return [e for e in self.entries if e.type == "vdev"]

    def to_dict(self) -> dict:
        """JSON-able form (entries and vrings as lists of mappings)."""
        return {"ver": self.ver, "size": self.size, "notes": list(self.notes),
                "entries": [{"type": e.type, "offset": e.offset, "fields": dict(e.fields),
                             "vrings": [asdict(v) for v in e.vrings]} for e in self.entries]}


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")


def parse_resource_table(data: bytes) -> ResourceTable:
    """Parse the bytes of ``.resource_table``.

    Args:
        data: the section contents.

    Returns:
        The table; ``notes`` lists what the kernel warns about but accepts.

    Raises:
        RscTableError: what the kernel refuses, with its dmesg text.
    """
    size = len(data)
    if size < 16:
        raise RscTableError(f"\"header-less resource table\": the section is {size} bytes, "
                            "smaller than struct resource_table (16)")
    ver, num, r0, r1 = struct.unpack_from("<4I", data, 0)
    if ver != 1:
        raise RscTableError(f"\"unsupported fw ver: {ver}\": version must be 1")
    if r0 or r1:
        raise RscTableError("\"non zero reserved bytes\" in the table header")
    if 16 + 4 * num > size:
        raise RscTableError(f"\"resource table incomplete\": {num} offsets do not fit in "
                            f"{size} bytes")
    entries: list[Resource] = []
    notes: list[str] = []
    for i in range(num):
        (off,) = struct.unpack_from("<I", data, 16 + 4 * i)
        avail = size - off - 4
        if avail < 0:
            raise RscTableError(f"\"rsc table is truncated\": entry {i} at offset 0x{off:x} is "
                                f"past the {size}-byte table")
        (rtype,) = struct.unpack_from("<I", data, off)
        body = off + 4
        if RSC_VENDOR_START <= rtype <= RSC_VENDOR_END or rtype >= RSC_LAST:
            notes.append(f"entry {i}: \"unsupported resource {rtype}\" (ignored by imx_rproc)")
            entries.append(Resource(f"type{rtype}", off))
            continue
        entries.append(_parse_entry(data, rtype, off, body, avail, i))
    return ResourceTable(ver, size, tuple(entries), tuple(notes))


def _need(avail: int, n: int, what: str, i: int) -> None:
    if n > avail:
        raise RscTableError(f"entry {i} ({what}) needs {n} bytes but only {avail} remain "
                            f"(\"{what} rsc is truncated\")")


def _parse_entry(data: bytes, rtype: int, off: int, body: int, avail: int, i: int) -> Resource:
    if rtype in (RSC_CARVEOUT, RSC_DEVMEM):
        _need(avail, 52, _TYPE_NAMES[rtype], i)
        da, pa, length, flags, _res = struct.unpack_from("<5I", data, body)
        return Resource(_TYPE_NAMES[rtype], off, MappingProxyType(
            {"da": da, "pa": pa, "len": length, "flags": flags,
             "name": _name(data[body + 20:body + 52])}))
    if rtype == RSC_TRACE:
        _need(avail, 44, "trace", i)
        da, length, _res = struct.unpack_from("<3I", data, body)
        return Resource("trace", off, MappingProxyType(
            {"da": da, "len": length, "name": _name(data[body + 12:body + 44])}))
    _need(avail, 24, "vdev", i)
    vid, notifyid, dfeat, gfeat, cfg_len, status, nvr, res0, res1 = struct.unpack_from(
        "<5I4B", data, body)
    if 24 + 20 * nvr + cfg_len > avail:
        raise RscTableError(f"\"vdev rsc is truncated\": entry {i} declares {nvr} vrings and "
                            f"{cfg_len} config bytes, more than the {avail} bytes left")
    if res0 or res1:
        raise RscTableError(f"\"vdev rsc has non zero reserved bytes\" in entry {i}")
    if nvr > 2:
        raise RscTableError(f"\"too many vrings: {nvr}\" in entry {i} (at most 2)")
    fields = MappingProxyType({"id": vid, "notifyid": notifyid, "dfeatures": dfeat,
                               "gfeatures": gfeat, "config_len": cfg_len, "status": status,
                               "num_of_vrings": nvr})
    vrings = []
    for k in range(nvr):
        v = Vring(*struct.unpack_from("<5I", data, body + 24 + 20 * k))
        if not v.num or not v.align:
            raise RscTableError(f"\"invalid qsz ({v.num}) or alignment ({v.align})\" in entry {i} "
                                f"vring {k}")
        if v.num & (v.num - 1):
            raise RscTableError(f"\"Bad virtqueue length {v.num}\" in entry {i} vring {k}: the "
                                "virtio ring needs a power of 2")
        if v.align & (v.align - 1):
            raise RscTableError(f"vring alignment {v.align} in entry {i} vring {k} is not a "
                                "power of 2 (vring_init() rounds with align - 1 as a mask)")
        vrings.append(v)
    return Resource("vdev", off, fields, tuple(vrings))


def vring_bytes(num: int, align: int) -> int:
    """Bytes one vring needs, rounded to 4 KiB pages as rproc_alloc_vring() does.

    Source: include/uapi/linux/virtio_ring.h vring_size(); remoteproc_core.c
    rproc_alloc_vring() (PAGE_ALIGN).
    """
    avail_end = 16 * num + 2 * (3 + num)
    size = ((avail_end + align - 1) & ~(align - 1)) + 2 * 3 + 8 * num
    return (size + 4095) & ~4095
