"""Loaded-segment integrity: what remoteproc wrote to memory versus the ELF.

The kernel's ELF loader (Linux 6.1 drivers/remoteproc/remoteproc_elf_loader.c
``rproc_elf_load_segments()``) copies ``p_filesz`` bytes of each PT_LOAD segment
to ``rproc_da_to_va(p_paddr)`` and zero-fills up to ``p_memsz`` (the .bss).
imx_rproc translates the device address through the SoC's ATT
(``imx_rproc_da_to_sys()``, data/att/<soc>.yaml).  The expected image of each
segment is therefore ``file bytes + zeros`` at the ATT's system address; the
check reads that range back through ``/dev/mem`` and compares byte for byte,
including the 1-3 tail bytes past the last whole 32-bit word of ``p_filesz``
(NXP 5.4's ``imx_rproc_memcpy()`` dropped them: patches/imx-rproc
elf-segment-loading).

Reading: ``dd`` of ``/dev/mem`` when the kernel can read the range through its
linear map; a ``no-map`` reserved-memory region is not in the linear map (ARM
``map_lowmem()`` skips memblock NOMAP ranges, so ``read_mem()`` gets -EFAULT)
but it is not "System RAM" either (arch/arm/kernel/setup.c
``request_standard_resources()``), so ``mmap`` of /dev/mem is allowed even with
CONFIG_STRICT_DEVMEM and busybox ``devmem`` (one 32-bit mmap read each) works.

The loaded resource table is the exception: rproc_start() copies the
kernel's working copy over it, so the fields the kernel fills in differ from
the file by design and are left out of the comparison (and reported):
vdev notifyid, gfeatures (negotiated features), status (virtio status byte)
and config space, each vring's da, notifyid and pa (rproc_alloc_vring(),
rproc_virtio_finalize_features(), rproc_virtio_set_status()), and a
carveout's da and pa (rproc_alloc_carveout()); include/linux/remoteproc.h
gives the layouts.

On hardware the M core runs and writes its .data, .bss and stack, so only
read-only segments (no PF_W) must match there; writable segments are compared
and reported, and must match only when the core does not execute (the emulated
board).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.constants import P_FLAGS

from ..preflight.elfimage import load_image
from ..preflight.soc import AttTable
from .target_shell import TargetShell


class IntegrityUnavailable(Exception):
    """/dev/mem cannot be read on the target; the message says why."""


@dataclass(frozen=True, eq=False)
class Span:
    """The expected bytes of one PT_LOAD segment at its system address."""

    index: int
    da: int
    sys: int
    filesz: int
    data: bytes
    writable: bool
    att_entry: str
    masked: dict[int, str] = field(default_factory=dict)

    @property
    def memsz(self) -> int:
        """Bytes in memory (file bytes + zero fill)."""
        return len(self.data)


@dataclass
class SpanResult:
    """Comparison of one span: mismatching byte offsets (first 16) and their count."""

    span: Span
    mismatches: int
    first: list[tuple[int, int, int]] = field(default_factory=list)  # (offset, want, got)
    method: str = ""
    kernel_written: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line of evidence."""
        s = self.span
        tail = s.filesz % 4
        what = (f"segment {s.index} da 0x{s.da:08x} -> sys 0x{s.sys:08x} ({s.att_entry}): "
                f"{s.filesz} file bytes"
                + (f" (incl. {tail} tail byte(s) past the last whole word)" if tail else "")
                + f" + {s.memsz - s.filesz} zero-fill bytes, read with {self.method}")
        if self.kernel_written:
            what += (f"; {len(self.span.masked)} resource-table byte(s) written by the kernel "
                     "left out (" + ", ".join(f"{k} {v}" for k, v in
                                              list(self.kernel_written.items())[:6]) + ")")
        if not self.mismatches:
            return what + ": identical"
        firsts = ", ".join(f"+0x{o:x} want {w:02x} got {g:02x}" for o, w, g in self.first[:4])
        return what + f": {self.mismatches} byte(s) differ ({firsts})"


def kernel_written_fields(table_da: int, table: bytes) -> dict[int, str]:
    """Device addresses of the resource-table bytes the kernel rewrites, with a field name.

    Args:
        table_da: device address of the ``.resource_table`` section.
        table: its bytes (struct resource_table, little endian).

    Returns:
        ``{device address: "vdev0.status"}`` for every byte of those fields.
    """
    out: dict[int, str] = {}

    def mark(off: int, size: int, name: str) -> None:
        for i in range(size):
            out[table_da + off + i] = name

    if len(table) < 16:
        return out
    num = struct.unpack_from("<I", table, 4)[0]
    for i in range(min(num, (len(table) - 16) // 4)):
        off = struct.unpack_from("<I", table, 16 + 4 * i)[0]
        if off + 4 > len(table):
            continue
        rtype = struct.unpack_from("<I", table, off)[0]
        body = off + 4
        if rtype == 0:  # fw_rsc_carveout: da, pa, len, flags, reserved, name[32]
            mark(body, 4, f"carveout{i}.da")
            mark(body + 4, 4, f"carveout{i}.pa")
        elif rtype == 3 and body + 24 <= len(table):  # fw_rsc_vdev
            config_len = struct.unpack_from("<I", table, body + 16)[0]
            nvr = table[body + 21]
            mark(body + 4, 4, f"vdev{i}.notifyid")
            mark(body + 12, 4, f"vdev{i}.gfeatures")
            mark(body + 20, 1, f"vdev{i}.status")
            for v in range(nvr):
                vr = body + 24 + 20 * v  # fw_rsc_vdev_vring: da, align, num, notifyid, pa
                mark(vr, 4, f"vring{v}.da")
                mark(vr + 12, 4, f"vring{v}.notifyid")
                mark(vr + 16, 4, f"vring{v}.pa")
            mark(body + 24 + 20 * nvr, config_len, f"vdev{i}.config")
    return out


def expected_spans(elf: Path, att: AttTable) -> list[Span]:
    """The expected memory image of ``elf`` (PT_LOAD segments with memsz > 0).

    Args:
        elf: the firmware ELF.
        att: the SoC's address translation table.

    Returns:
        One span per loaded segment, in program header order.

    Raises:
        FirmwareFileError: the ELF cannot be parsed.
        ValueError: a segment has no ATT translation (the kernel would refuse it).
    """
    spans = []
    img = load_image(elf)
    rsc = (kernel_written_fields(img.rsc_table.addr, img.rsc_table.data)
           if img.rsc_table is not None and img.rsc_table.data else {})
    for seg in img.segments:
        if not seg.memsz:
            continue
        hit = att.da_to_sys(seg.paddr, seg.memsz)
        if hit is None:
            raise ValueError(f"segment {seg.index} da 0x{seg.paddr:x}+0x{seg.memsz:x} has no "
                             f"translation in {att.name}'s ATT")
        entry, sys = hit
        data = seg.data + bytes(seg.memsz - seg.filesz)
        masked = {da - seg.paddr: name for da, name in rsc.items()
                  if seg.paddr <= da < seg.paddr + seg.memsz}
        spans.append(Span(seg.index, seg.paddr, sys, seg.filesz, data,
                          bool(seg.flags & P_FLAGS.PF_W), entry.name, masked))
    return spans


def compare(span: Span, got: bytes, method: str = "") -> SpanResult:
    """Compare ``got`` (read from ``span.sys``) with the expected bytes."""
    bad = [(i, w, g) for i, (w, g) in enumerate(zip(span.data, got, strict=False))
           if w != g and i not in span.masked]
    missing = max(0, span.memsz - len(got))
    fields: dict[str, bytearray] = {}
    for off, name in sorted(span.masked.items()):
        if off < len(got):
            fields.setdefault(name, bytearray()).append(got[off])
    written = {name: "0x" + bytes(reversed(v)).hex() for name, v in fields.items()}
    return SpanResult(span, len(bad) + missing, bad[:16], method, written)


def parse_od(text: str) -> bytes:
    """Bytes from ``od -An -tx1 -v`` output."""
    return bytes(int(tok, 16) for tok in text.split())


def parse_devmem(text: str) -> bytes:
    """Bytes from one ``devmem ADDR 32`` result per line (little-endian words)."""
    out = bytearray()
    for tok in text.split():
        out += int(tok, 16).to_bytes(4, "little")
    return bytes(out)


def read_dd(shell: TargetShell, sys: int, length: int) -> bytes:
    """Read with ``dd`` (page-aligned window) through read(2) of /dev/mem.

    Raises:
        IntegrityUnavailable: dd failed (the message carries its error).
    """
    page = 4096
    start = sys & ~(page - 1)
    count = (sys + length - start + page - 1) // page
    out, _rc = shell.run(f"dd if=/dev/mem bs={page} skip={start // page} count={count} "
                        "2>/tmp/.rprockit-dd.err | od -An -tx1 -v; cat /tmp/.rprockit-dd.err")
    data_lines = [ln for ln in out.splitlines() if ln.strip() and all(
        len(t) == 2 for t in ln.split())]
    blob = parse_od("\n".join(data_lines))
    if len(blob) < count * page:
        err = " ".join(ln for ln in out.splitlines() if ln not in data_lines)
        raise IntegrityUnavailable(f"dd of /dev/mem at 0x{start:x} read {len(blob)} of "
                                   f"{count * page} bytes: {err.strip() or 'no error text'}")
    off = sys - start
    return blob[off:off + length]


def read_devmem(shell: TargetShell, sys: int, length: int) -> bytes:
    """Read with busybox ``devmem`` (mmap of /dev/mem), one 32-bit word per call.

    Raises:
        IntegrityUnavailable: devmem is missing or failed.
    """
    start = sys & ~3
    end = (sys + length + 3) & ~3
    out, rc = shell.run(f"a=$((0x{start:x})); while [ $a -lt $((0x{end:x})) ]; do "
                        "devmem $a 32 || exit 1; a=$((a + 4)); done 2>&1", timeout=120)
    if rc != 0:
        raise IntegrityUnavailable(f"devmem at 0x{start:x} failed: {out.strip()[-300:]}")
    blob = parse_devmem(out)
    return blob[sys - start:sys - start + length]


def read_back(shell: TargetShell, span: Span) -> tuple[bytes, str]:
    """Read ``span`` from the target's physical memory; ``dd`` first, then ``devmem``.

    Returns:
        ``(bytes, method)``.

    Raises:
        IntegrityUnavailable: /dev/mem is absent or unreadable by both methods.
    """
    if shell.run("test -r /dev/mem")[1] != 0:
        raise IntegrityUnavailable("/dev/mem is absent or not readable (CONFIG_DEVMEM=n, or "
                                   "not root)")
    errors = []
    for method, reader in (("dd", read_dd), ("devmem", read_devmem)):
        try:
            return reader(shell, span.sys, span.memsz), method
        except IntegrityUnavailable as e:
            errors.append(str(e))
    raise IntegrityUnavailable("; ".join(errors))
