"""The pre-flight checks.  Each ``check_*`` function appends findings to the report.

Kernel facts are from Linux 6.1 unless stated: drivers/remoteproc/imx_rproc.c
(imx_rproc_da_to_sys, imx_rproc_da_to_va, imx_rproc_addr_init, imx_rproc_prepare,
imx_rproc_xtr_mbox_init, imx_rproc_parse_fw), remoteproc_core.c (rproc_da_to_va,
rproc_alloc_vring, rproc_check_carveout_da), remoteproc_elf_loader.c
(rproc_elf_load_segments, rproc_elf_find_loaded_rsc_table), remoteproc_virtio.c
(rproc_add_virtio_dev), drivers/mailbox/mailbox.c (a channel already bound returns -EBUSY).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from .dt import DeviceTree, DtNode
from .elfimage import FirmwareImage, LoadSegment
from .kernel import KernelInfo
from .report import FAIL, PASS, WARN, Check, PreflightReport, SegmentRow
from .rsctable import (
    VIRTIO_ID_RPMSG,
    VIRTIO_RPMSG_F_NS,
    ResourceTable,
    RscTableError,
    parse_resource_table,
    vring_bytes,
)
from .soc import AttTable, SocInfo

#: Bytes imx_rpmsg (NXP linux-imx drivers/rpmsg/imx_rpmsg.c set_vring_phy_buf) uses per vdev:
#: vring0 at +0, vring1 at +0x8000.
RPMSG_BYTES_PER_VDEV = 0x10000

_RPMSG_COMPAT = re.compile(r"^fsl,imx[0-9a-z]*-rpmsg$")


@dataclass(frozen=True)
class Region:
    """A system address range the kernel can write firmware into."""

    sys: int
    size: int
    name: str
    source: str  # "ATT_OWN", "reserved-memory" or "carveout"

    @property
    def end(self) -> int:
        """First system address past the region."""
        return self.sys + self.size


@dataclass(frozen=True)
class MemRegion:
    """One cm-node memory-region entry resolved to its reserved-memory node."""

    index: int
    phandle: int
    node: DtNode | None
    reg: tuple[int, int] | None  # (system address, size)

    @property
    def name(self) -> str:
        """The node name without unit address (``node->name`` in the kernel)."""
        return self.node.basename if self.node else f"<phandle 0x{self.phandle:x}>"


@dataclass
class Context:
    """Everything the checks read."""

    image: FirmwareImage
    soc: SocInfo
    att: AttTable
    emulated: bool
    kernel: KernelInfo | None = None
    dt: DeviceTree | None = None
    cm: DtNode | None = None
    mem_regions: list[MemRegion] = field(default_factory=list)
    rsc: ResourceTable | None = None

    def mapped_regions(self) -> list[Region]:
        """ATT_OWN entries, then memory-region nodes not named ``vdev*``
        (imx_rproc_addr_init order; the kernel keeps at most 32)."""
        out = [Region(e.sa, e.size, e.name, "ATT_OWN") for e in self.att.entries if e.own]
        out += [Region(m.reg[0], m.reg[1], m.name, "reserved-memory") for m in self.mem_regions
                if m.reg and not m.name.startswith("vdev")]
        return out[:32]

    def carveouts(self) -> list[Region]:
        """memory-region nodes registered as carveouts by imx_rproc_prepare (all but
        ``vdev0buffer`` and ``rsc-table``); their device address equals the system address."""
        return [Region(m.reg[0], m.reg[1], m.name, "carveout") for m in self.mem_regions
                if m.reg and m.name not in ("vdev0buffer", "rsc-table")]


def _hx(v: int) -> str:
    return f"0x{v:08x}"


# --------------------------------------------------------------------------- ELF


def check_elf_header(ctx: Context, rep: PreflightReport) -> bool:
    """ELF32, EM_ARM, little-endian, Thumb entry.  Returns False when later checks are moot."""
    im = ctx.image
    problems = []
    if im.elfclass != 32:
        problems.append(f"ELF{im.elfclass} (the Cortex-M cores need ELF32)")
    if im.machine != "EM_ARM":
        problems.append(f"machine {im.machine} (expected EM_ARM)")
    if not im.little_endian:
        problems.append("big-endian (the kernel prints \"Unsupported firmware endianness\")")
    if problems:
        rep.add(Check("elf.header", "ELF header", FAIL,
                      f"{im.path} is not a Cortex-M firmware: " + "; ".join(problems) + ".",
                      f"build it with arm-none-eabi-gcc -mcpu={_mcpu(ctx)} -mthumb (the host gcc "
                      "or an aarch64/A-core toolchain produces an image the {ctx.soc.core} cannot "
                      "run)".replace("{ctx.soc.core}", ctx.soc.core),
                      {"elfclass": im.elfclass, "machine": im.machine,
                       "little_endian": im.little_endian}))
        return False
    if not im.entry & 1:
        rep.add(Check("elf.header", "ELF header", FAIL,
                      f"ELF32 EM_ARM little-endian, but the entry point {_hx(im.entry)} is even: "
                      "Cortex-M executes Thumb only, so the reset handler address needs bit 0 set.",
                      "compile with -mthumb and declare the reset handler as a function (type "
                      "%function) so the linker sets the Thumb bit", {"entry": im.entry}))
    else:
        rep.add(Check("elf.header", "ELF header", PASS,
                      f"ELF32 EM_ARM little-endian, Thumb entry {_hx(im.entry)}.",
                      details={"entry": im.entry}))
    return True


def _mcpu(ctx: Context) -> str:
    return "cortex-m7" if "M7" in ctx.soc.core else "cortex-m4"


def check_segments(ctx: Context, rep: PreflightReport) -> None:
    """At least one PT_LOAD, filesz <= memsz, and memsz == 0 segments by kernel version."""
    segs = ctx.image.segments
    if not segs:
        rep.add(Check("elf.segments", "PT_LOAD segments", FAIL,
                      "the ELF has no PT_LOAD segment, so remoteproc loads nothing (the kernel "
                      "prints \"No loadable segments\" when there are no program headers).",
                      "link an executable (not a relocatable object, -r) with a linker script "
                      "that places the sections in memory"))
        return
    bad = [s for s in segs if s.filesz > s.memsz]
    if bad:
        s = bad[0]
        rep.add(Check("elf.segments", "PT_LOAD segments", FAIL,
                      f"segment {s.index} has filesz 0x{s.filesz:x} > memsz 0x{s.memsz:x}; the "
                      f"kernel prints \"bad phdr filesz 0x{s.filesz:x} memsz 0x{s.memsz:x}\".",
                      "fix the linker script; the image is corrupt"))
    else:
        rep.add(Check("elf.segments", "PT_LOAD segments", PASS,
                      f"{len(segs)} PT_LOAD segment(s), filesz <= memsz for each."))
    _check_memsz0(ctx, rep)


def _check_memsz0(ctx: Context, rep: PreflightReport) -> None:
    zero = [s for s in ctx.image.segments if s.memsz == 0]
    cid, title = "elf.memsz0", "empty PT_LOAD (memsz 0)"
    if not zero:
        rep.add(Check(cid, title, PASS, "no PT_LOAD segment has memsz 0."))
        return
    s = zero[0]
    where = ", ".join(f"segment {z.index} at {_hx(z.paddr)}" for z in zero)
    why = (f"rproc_elf_load_segments() skips memsz == 0 segments only since v5.19 (mainline "
           f"\"remoteproc: elf_loader: skip segment with memsz as zero\"); older kernels pass "
           f"them to da_to_va, which imx_rproc refuses for len 0, and fail with \"bad phdr da "
           f"{hex(s.paddr)} mem 0x0\" then \"Boot failed: -22\".")
    remedy = ("drop the empty segment: remove unused PHDRS entries from the linker script, or "
              "mark the empty output section NOLOAD / discard it")
    k = ctx.kernel
    skips = None if k is None else (k.skips_memsz0 if k.skips_memsz0 is not None
                                    else k.version[:2] >= (5, 19))
    if skips is None:
        rep.add(Check(cid, title, WARN, f"{where} with memsz 0. {why}", remedy,
                      {"segments": [z.index for z in zero]}))
    elif skips:
        rep.add(Check(cid, title, PASS, f"{where} with memsz 0; kernel {k.version_str} skips it. "
                      f"{why}", remedy, {"segments": [z.index for z in zero]}))
    else:
        rep.add(Check(cid, title, FAIL, f"{where} with memsz 0 and kernel {k.version_str} does "
                      f"not skip it. {why}", remedy, {"segments": [z.index for z in zero]}))


# --------------------------------------------------------------------------- resource table


def check_resource_table(ctx: Context, rep: PreflightReport) -> None:
    """Presence and validity of ``.resource_table``; fills ``ctx.rsc`` and the report's table."""
    sec = ctx.image.rsc_table
    cid, title = "rsc.table", "resource table"
    if sec is None:
        _missing_rsc_table(ctx, rep)
        return
    try:
        ctx.rsc = parse_resource_table(sec.data)
    except RscTableError as e:
        rep.add(Check(cid, title, FAIL,
                      f".resource_table at {_hx(sec.addr)} ({sec.size} bytes) is invalid: {e}. "
                      "Linux 6.1 imx_rproc then boots without it (\"No resource table in elf\") or "
                      "fails in rproc_handle_resources(); either way no vdev/RPMsg.",
                      "fix the struct resource_table in the firmware (include/linux/remoteproc.h "
                      "layout, packed, little-endian)"))
        return
    rep.resource_table = {"addr": sec.addr, **ctx.rsc.to_dict()}
    n = len(ctx.rsc.entries)
    parts = [f"version {ctx.rsc.ver}, {n} entr{'y' if n == 1 else 'ies'}"]
    for e in ctx.rsc.entries:
        if e.type == "vdev":
            ns = "NS" if e.fields["dfeatures"] & (1 << VIRTIO_RPMSG_F_NS) else "no NS"
            kind = "rpmsg" if e.fields["id"] == VIRTIO_ID_RPMSG else f"virtio id {e.fields['id']}"
            rings = ", ".join(f"vring{k} da {'ANY' if v.da == 0xFFFFFFFF else _hx(v.da)} "
                              f"align 0x{v.align:x} num {v.num}" for k, v in enumerate(e.vrings))
            parts.append(f"vdev ({kind}, dfeatures 0x{e.fields['dfeatures']:x} [{ns}]; {rings})")
        elif e.type in ("carveout", "devmem", "trace"):
            parts.append(f"{e.type} {e.fields.get('name', '')!r} da {_hx(int(e.fields['da']))} "
                         f"len 0x{int(e.fields['len']):x}")
        else:
            parts.append(e.type)
    status, remedy = PASS, ""
    notes = list(ctx.rsc.notes)
    if not ctx.rsc.vdevs:
        notes.append("no vdev, so remoteproc creates no RPMsg virtio device")
    for v in ctx.rsc.vdevs:
        if v.fields["id"] == VIRTIO_ID_RPMSG and not v.fields["dfeatures"] & 1:
            status = WARN
            notes.append("the rpmsg vdev lacks VIRTIO_RPMSG_F_NS (bit 0): Linux will not create "
                         "channels from the firmware's name-service announcements")
            remedy = "set dfeatures bit 0 (VIRTIO_RPMSG_F_NS) in the vdev entry"
    msg = ".resource_table at " + _hx(sec.addr) + ": " + "; ".join(parts) + "."
    if notes:
        msg += " Note: " + "; ".join(notes) + "."
    rep.add(Check(cid, title, status, msg, remedy, {"addr": sec.addr, "size": sec.size}))


def _missing_rsc_table(ctx: Context, rep: PreflightReport) -> None:
    k = ctx.kernel
    refused = ("Kernels whose rproc_fw_boot() requires a table refuse it: 4.14 "
               "remoteproc_core.c prints \"Failed to find resource table\" then \"Boot failed: "
               "-22\" (kernels without the empty-resource-table fix). Linux 6.1 imx_rproc "
               "(imx_rproc_parse_fw) prints \"No resource table in elf\" and boots it, but "
               "without a vdev there is no RPMsg.")
    remedy = ("add a .resource_table section (struct resource_table, version 1; an empty table "
              "with num = 0 is enough to boot, a RSC_VDEV entry is needed for RPMsg), e.g. "
              "firmware/rproc-test/rsc_table.h")
    if k is not None and k.rsc_table_required:
        rep.add(Check("rsc.table", "resource table", FAIL,
                      f"no .resource_table section, and kernel {k.version_str} at {k.tree} requires "
                      f"one. {refused}", remedy))
    elif k is not None and k.rsc_table_required is False:
        rep.add(Check("rsc.table", "resource table", WARN,
                      f"no .resource_table section; kernel {k.version_str} boots it without RPMsg. "
                      f"{refused}", remedy))
    else:
        rep.add(Check("rsc.table", "resource table", WARN,
                      f"no .resource_table section. {refused}", remedy))


def check_rsc_location(ctx: Context, rep: PreflightReport) -> None:
    """Where the kernel writes the updated table, and whether the firmware reads it there."""
    sec = ctx.image.rsc_table
    if sec is None or ctx.rsc is None:
        return
    cid, title = "rsc.location", "resource table location"
    rsc_region = next((m for m in ctx.mem_regions if m.name == "rsc-table" and m.reg), None)
    hit = ctx.att.da_to_sys(sec.addr, sec.size)
    if rsc_region is not None:
        base, size = rsc_region.reg
        if hit and base <= hit[1] and hit[1] + sec.size <= base + size:
            rep.add(Check(cid, title, PASS, f"the table lies in the rsc-table region "
                          f"({_hx(base)}+0x{size:x}) where Linux 6.1 imx_rproc writes the updated "
                          "copy."))
        else:
            rep.add(Check(cid, title, WARN,
                          f"the DT has an rsc-table region at system {_hx(base)}+0x{size:x}: Linux "
                          f"6.1 writes the updated table (vring addresses, notify ids) there, not to "
                          f"the firmware's .resource_table at {_hx(sec.addr)}.",
                          "make the firmware copy its table into the rsc-table region at start and "
                          "read it back from there (as the NXP MCUXpresso SDK does), or remove the "
                          "rsc-table region from memory-region"))
        return
    covered = any(s.paddr <= sec.addr and sec.addr + sec.size <= s.paddr + s.filesz
                  for s in ctx.image.segments)
    if not covered:
        rep.add(Check(cid, title, WARN,
                      f".resource_table ({_hx(sec.addr)}+0x{sec.size:x}) is not inside a loaded "
                      "PT_LOAD segment, so rproc_elf_find_loaded_rsc_table() finds no loaded copy: "
                      "the kernel never tells the firmware the vring addresses it allocated.",
                      "place .resource_table in a loaded output section (not NOLOAD) with its "
                      "VMA equal to its LMA"))
        return
    rep.add(Check(cid, title, PASS, f"the table at {_hx(sec.addr)} is loaded with the image; "
                  "the kernel updates it in place (rproc_elf_find_loaded_rsc_table)."))


# --------------------------------------------------------------------------- address translation


def check_addresses(ctx: Context, rep: PreflightReport) -> None:
    """Translate every PT_LOAD through the ATT and find the region the kernel maps it in."""
    regions = ctx.mapped_regions()
    for s in ctx.image.segments:
        row, check = _check_segment(ctx, s, regions)
        rep.segments.append(row)
        if check is not None:
            rep.add(check)


def _row(s: LoadSegment, sys: int | None = None, region: str | None = None) -> SegmentRow:
    return SegmentRow(s.index, s.paddr, s.vaddr, s.filesz, s.memsz, s.flag_str, sys, region)


def _check_segment(ctx: Context, s: LoadSegment, regions: list[Region]):
    cid, title = f"att.segment{s.index}", f"segment {s.index} address"
    if s.memsz == 0:
        return _row(s, None, "(memsz 0)"), None
    span = f"[{_hx(s.paddr)}, {_hx(s.paddr + s.memsz)})"
    dmesg = f"\"bad phdr da {hex(s.paddr)} mem {hex(s.memsz)}\" then \"Boot failed: -22\""
    hit = ctx.att.da_to_sys(s.paddr, s.memsz)
    if hit is None:
        e = ctx.att.containing(s.paddr)
        if e is None:
            return _row(s), Check(cid, title, FAIL,
                                  f"segment {s.index} {span}: no {ctx.soc.name} ATT entry contains "
                                  f"device address {_hx(s.paddr)} (first byte out of range: "
                                  f"{_hx(s.paddr)}); the kernel prints \"Translation failed: da = "
                                  f"{hex(s.paddr)} len = {hex(s.memsz)}\" and {dmesg}.",
                                  _att_remedy(ctx), {"first_bad_da": s.paddr})
        first, why = _first_out(s.paddr + s.memsz, e.da_end, "imx_rproc_da_to_sys()", "da")
        return _row(s), Check(
            cid, title, FAIL,
            f"segment {s.index} {span} runs past ATT entry \"{e.name}\" [{_hx(e.da)}, "
            f"{_hx(e.da_end)}); first byte out of range: {_hx(first)}{why}; the kernel prints "
            f"\"Translation failed: da = {hex(s.paddr)} len = {hex(s.memsz)}\" and {dmesg}.",
            _att_remedy(ctx), {"first_bad_da": first})
    entry, sys = hit
    for r in regions:
        if r.sys <= sys and sys + s.memsz < r.end:
            return _row(s, sys, r.name), Check(
                cid, title, PASS,
                f"segment {s.index} {span} -> system [{_hx(sys)}, {_hx(sys + s.memsz)}) via ATT "
                f"\"{entry.name}\", inside {r.source} region \"{r.name}\" [{_hx(r.sys)}, "
                f"{_hx(r.end)}).", details={"sys": sys, "region": r.name})
    for c in ctx.carveouts():
        if c.sys <= s.paddr and s.paddr + s.memsz <= c.end:
            return _row(s, s.paddr, c.name), Check(
                cid, title, PASS,
                f"segment {s.index} {span} lies in carveout \"{c.name}\" (rproc_da_to_va() "
                "matches carveouts by device address, which imx_rproc sets equal to the system "
                "address).", details={"sys": s.paddr, "region": c.name})
    return _unmapped(ctx, s, sys, entry, regions, span, dmesg, cid, title)


def _first_out(end: int, limit: int, func: str, var: str) -> tuple[int, str]:
    """First address the kernel rejects for a range ending (exclusive) at ``end`` in a region
    ending at ``limit``, and an explanation when only the strict bound rejects it."""
    if end > limit:
        return limit, ""
    return limit - 1, (f" (the segment ends exactly at the end, but {func} requires "
                       f"{var} + len < end, so the last byte is unusable)")


def _unmapped(ctx, s, sys, entry, regions, span, dmesg, cid, title):
    containing = next((r for r in regions if r.sys <= sys < r.end), None)
    sys_span = f"system [{_hx(sys)}, {_hx(sys + s.memsz)})"
    if containing is not None:
        first_sys, why = _first_out(sys + s.memsz, containing.end, "imx_rproc_da_to_va()", "sys")
        first_da = s.paddr + (first_sys - sys)
        return _row(s, sys, None), Check(
            cid, title, FAIL,
            f"segment {s.index} {span} -> {sys_span} runs past {containing.source} region "
            f"\"{containing.name}\" [{_hx(containing.sys)}, {_hx(containing.end)}); first byte "
            f"out of range: device {_hx(first_da)} (system {_hx(first_sys)}){why}; the kernel "
            f"prints {dmesg}.",
            f"shrink the linker-script MEMORY region to end before device {_hx(first_da)}, or "
            f"grow the reserved-memory node \"{containing.name}\" by at least one byte past "
            f"system {_hx(sys + s.memsz)}",
            {"sys": sys, "first_bad_da": first_da, "first_bad_sys": first_sys})
    if ctx.dt is None:
        return _row(s, sys, "(memory-region, unchecked)"), Check(
            cid, title, PASS,
            f"segment {s.index} {span} -> {sys_span} via ATT \"{entry.name}\"; not an ATT_OWN "
            "region, so the kernel loads it only if a reserved-memory node in the cm node's "
            "memory-region covers it (not verified: no DTB given).",
            f"reserve system [{_hx(sys)}, {_hx(sys + s.memsz + 1)}) with a no-map reserved-memory "
            "node (name not starting with \"vdev\") and list it in memory-region; pass --dtb to "
            "check", {"sys": sys})
    have = ", ".join(f"\"{r.name}\" [{_hx(r.sys)}, {_hx(r.end)})" for r in regions) or "none"
    return _row(s, sys, None), Check(
        cid, title, FAIL,
        f"segment {s.index} {span} -> {sys_span} is in no region the kernel maps (first byte out "
        f"of range: device {_hx(s.paddr)}, system {_hx(sys)}); mapped regions: {have}; the "
        f"kernel prints {dmesg}.",
        f"add a no-map reserved-memory node covering system [{_hx(sys)}, "
        f"{_hx(sys + s.memsz + 1)}) to the cm node's memory-region",
        {"sys": sys, "first_bad_da": s.paddr, "first_bad_sys": sys})


def _att_remedy(ctx: Context) -> str:
    own = ", ".join(f"{e.name} [{_hx(e.da)}, {_hx(e.da_end)})" for e in ctx.att.entries)
    return ("link the image at device addresses the imx_rproc ATT translates "
            f"({ctx.att.source}): {own}")


def check_ddr_alias(ctx: Context, rep: PreflightReport) -> None:
    """Flag segments in an ATT entry that some kernels translate differently."""
    for v in ctx.soc.att_variants:
        entry = next((e for e in ctx.att.entries if e.da == v.entry_da), None)
        if entry is None:
            continue
        used = [s for s in ctx.image.segments
                if s.memsz and entry.da <= s.paddr < entry.da_end]
        if not used:
            continue
        cid, title = "att.ddr_alias", "DDR code alias"
        msg = (f"segment(s) {', '.join(str(s.index) for s in used)} use the DDR code alias at "
               f"device {_hx(entry.da)}, which this ATT maps to system {_hx(entry.sa)}. "
               f"{v.kernel} maps it to {_hx(v.wrong_sa)} instead (wrong; fixed by {v.fixed_by}).")
        remedy = (f"on {v.kernel}, apply the fix or link the image at the DDR data address "
                  f"(device {_hx(v.right_sa)}+, identity-mapped)")
        if ctx.kernel is not None and entry.sa == v.wrong_sa:
            rep.add(Check(cid, title, FAIL, msg + f" The kernel tree at {ctx.kernel.tree} has "
                          "the wrong entry.", remedy))
        elif ctx.kernel is not None:
            rep.add(Check(cid, title, PASS, msg + f" The kernel tree at {ctx.kernel.tree} has the "
                          "correct entry."))
        else:
            rep.add(Check(cid, title, WARN, msg + " No kernel tree given to tell which applies.",
                          remedy))


# --------------------------------------------------------------------------- boot vector


def check_boot_vector(ctx: Context, rep: PreflightReport) -> None:
    """Does a segment put the initial SP and PC at device address 0?"""
    bv = ctx.soc.boot_vector
    cid, title = "boot.vector", f"boot vector ({bv.memory} at device {_hx(bv.da)})"
    segs = [s for s in ctx.image.segments if s.memsz]
    cover = next((s for s in segs if s.paddr <= bv.da and bv.da + 8 <= s.paddr + s.memsz), None)
    if cover is None or bv.da + 8 > cover.paddr + cover.filesz:
        _no_boot_vector(ctx, rep, cid, title, cover)
        return
    off = bv.da - cover.paddr
    sp, pc = struct.unpack_from("<2I", cover.data, off)
    problems = []
    if sp % 4 or not _in_ram(ctx, sp - 4):
        problems.append(f"initial SP {_hx(sp)} does not point into RAM (SP - 4 must be a "
                        "word-aligned address of a loaded segment or an ATT region)")
    if not pc & 1:
        problems.append(f"reset PC {_hx(pc)} is even: Cortex-M needs the Thumb bit, or it faults "
                        "at the first instruction")
    elif not any(s.paddr <= (pc & ~1) < s.paddr + s.filesz for s in segs):
        problems.append(f"reset PC {_hx(pc)} is not inside a loaded segment")
    if problems:
        rep.add(Check(cid, title, FAIL, f"vector table at device {_hx(bv.da)} (segment "
                      f"{cover.index}): " + "; ".join(problems) + ".",
                      "put the initial stack pointer and the reset handler address (with bit 0 "
                      "set) in the first two words of the vector table",
                      {"sp": sp, "pc": pc}))
    else:
        rep.add(Check(cid, title, PASS, f"segment {cover.index} provides the vector table at "
                      f"device {_hx(bv.da)}: SP {_hx(sp)}, PC {_hx(pc)} (Thumb).",
                      details={"sp": sp, "pc": pc}))


def _in_ram(ctx: Context, addr: int) -> bool:
    if any(s.paddr <= addr < s.paddr + s.memsz for s in ctx.image.segments):
        return True
    return ctx.att.containing(addr) is not None


def _no_boot_vector(ctx, rep, cid, title, cover) -> None:
    bv = ctx.soc.boot_vector
    segs = [s for s in ctx.image.segments if s.filesz >= 8]
    own = ""
    if segs:
        low = min(segs, key=lambda s: s.paddr)
        sp, pc = struct.unpack_from("<2I", low.data, 0)
        own = (f" The image's lowest segment starts at {_hx(low.paddr)} with words "
               f"{_hx(sp)}, {_hx(pc)} (its own vector table, if it has one).")
    what = ("only zero-fill (memsz > filesz) covers it" if cover is not None
            else "no PT_LOAD segment covers it")
    msg = (f"the {ctx.soc.core} fetches its initial SP and PC from device address "
           f"{_hx(bv.da)}..{_hx(bv.da + 7)} ({bv.memory}, system {_hx(bv.sys)}) at reset, and "
           f"{what}. remoteproc will report the core \"running\" but it will not execute this "
           "image: U-Boot's bootaux writes SP/PC into TCM before starting the core, no Linux "
           f"imx_rproc does (field case: DDR-linked i.MX8MP M7, state \"running\", no UART "
           f"output).{own}")
    remedy = (f"link a vector-table stub (initial SP, reset handler | 1) at device {_hx(bv.da)} "
              f"in {bv.memory}, in its own PT_LOAD, as Zephyr's ROM-start relocation does "
              "(CONFIG_ROMSTART_RELOCATION_ROM puts the romstart section into ITCM), and point "
              "VTOR at the full table")
    if ctx.emulated:
        rep.add(Check(cid, title, WARN, "expected on the emulated target: " + msg
                      + f" Not a problem here: {ctx.soc.emulated_boot_vector_note}",
                      "none for the emulated target; on hardware: " + remedy,
                      {"expected_on_emulated": True}))
    else:
        rep.add(Check(cid, title, FAIL, msg, remedy))


# --------------------------------------------------------------------------- kernel tree


def check_kernel(ctx: Context, rep: PreflightReport) -> None:
    """Report what the kernel tree says: version, ATT for this SoC, differences."""
    k = ctx.kernel
    if k is None:
        return
    compat = ctx.soc.cm_compatible
    cid, title = "kernel.att", f"kernel {k.version_str} ATT"
    if not k.has_imx_rproc:
        rep.add(Check(cid, title, FAIL, f"{k.tree} has no drivers/remoteproc/imx_rproc.c.",
                      "use a kernel with the imx_rproc driver (mainline v4.15+ or NXP linux-imx)"))
        return
    tree_att = k.att_by_compatible.get(compat)
    if tree_att is None:
        rep.add(Check(cid, title, FAIL,
                      f"{k.tree}/drivers/remoteproc/imx_rproc.c has no \"{compat}\" match with an "
                      "ATT, so imx_rproc does not bind to the cm node on this kernel.",
                      f"use a kernel whose imx_rproc_of_match lists {compat} (mainline 6.1 does)"))
        return
    ours = {(e.da, e.sa, e.size, e.own) for e in ctx.soc.att.entries}
    theirs = {(e.da, e.sa, e.size, e.own) for e in tree_att.entries}
    if ours == theirs:
        rep.add(Check(cid, title, PASS, f"{tree_att.name} in {k.tree} ({k.family}) matches "
                      f"{ctx.soc.att.source}."))
        return
    extra = sorted(theirs - ours)
    missing = sorted(ours - theirs)
    fmt = "; ".join
    rep.add(Check(cid, title, WARN,
                  f"{tree_att.name} in {k.tree} ({k.family} {k.version_str}) differs from "
                  f"{ctx.soc.att.source}; the checks above used the tree's table. Only in the tree: "
                  + (fmt(f"da {_hx(d)} -> sa {_hx(a)} size 0x{z:x}{' OWN' if o else ''}"
                         for d, a, z, o in extra) or "none")
                  + ". Only in 6.1: "
                  + (fmt(f"da {_hx(d)} -> sa {_hx(a)} size 0x{z:x}{' OWN' if o else ''}"
                         for d, a, z, o in missing) or "none") + ".",
                  "link for the table of the kernel you deploy; see the findings above"))


# --------------------------------------------------------------------------- device tree


def resolve_dt(ctx: Context) -> None:
    """Find the cm node and its memory-region entries (no findings yet)."""
    dt = ctx.dt
    if dt is None:
        return
    nodes = dt.compatible(lambda c: c == ctx.soc.cm_compatible)
    ctx.cm = next((n for n in nodes if n.status_ok), nodes[0] if nodes else None)
    if ctx.cm is None:
        return
    phs = ctx.cm.cells("memory-region") or []
    for i, ph in enumerate(phs):
        node = dt.by_phandle(ph)
        reg = dt.reg(node) if node else None
        ctx.mem_regions.append(MemRegion(i, ph, node, reg[0] if reg else None))


def check_dt(ctx: Context, rep: PreflightReport) -> None:
    """Section 5: cm node, memory-region, vdev regions, MU channels, imx_rpmsg node."""
    if ctx.dt is None:
        return
    if not _check_cm_node(ctx, rep):
        return
    _check_memory_regions(ctx, rep)
    _check_vdev_regions(ctx, rep)
    _check_mbox(ctx, rep)
    _check_rpmsg_nodes(ctx, rep)


def _check_cm_node(ctx: Context, rep: PreflightReport) -> bool:
    compat = ctx.soc.cm_compatible
    cid, title = "dt.cm_node", "cm node"
    if ctx.cm is None:
        rep.add(Check(cid, title, FAIL, f"{ctx.dt.path} has no node with compatible \"{compat}\": "
                      "imx_rproc never probes and /sys/class/remoteproc stays empty.",
                      f"add the cm node (compatible = \"{compat}\", clocks, syscon, mboxes, "
                      "memory-region), see Documentation/devicetree/bindings/remoteproc/"
                      "fsl,imx-rproc.yaml"))
        return False
    if not ctx.cm.status_ok:
        rep.add(Check(cid, title, FAIL, f"{ctx.cm.path} ({compat}) has status "
                      f"\"{ctx.cm.strings('status')[0]}\": imx_rproc does not probe it.",
                      f"set status = \"okay\" in {ctx.cm.path}"))
        return False
    rep.add(Check(cid, title, PASS, f"{ctx.cm.path} has compatible \"{compat}\" and is enabled."))
    return True


def _check_memory_regions(ctx: Context, rep: PreflightReport) -> None:
    cid, title = "dt.memory_region", "memory-region"
    cm = ctx.cm
    raw = cm.props.get("memory-region")
    if raw is None:
        rep.add(Check(cid, title, FAIL if ctx.image.segments else WARN,
                      f"{cm.path} has no memory-region: only the ATT_OWN regions (TCM/OCRAM) are "
                      "mapped, so DDR-linked segments fail with \"bad phdr da ...\" and no vdev "
                      "buffers/vrings are reserved.",
                      "add memory-region = <&...> with no-map reserved-memory nodes for the "
                      "firmware, vdev0vring0, vdev0vring1 and vdev0buffer"))
        return
    if len(raw) % 4:
        rep.add(Check(cid, title, FAIL, f"{cm.path} memory-region is {len(raw)} bytes, not a list "
                      "of phandles.", "write memory-region = <&a>, <&b>;"))
        return
    problems, warns = [], []
    for m in ctx.mem_regions:
        if m.node is None:
            problems.append(f"entry {m.index}: phandle 0x{m.phandle:x} resolves to no node "
                            "(imx_rproc_prepare: \"unable to acquire memory-region\", -EINVAL)")
            continue
        if not (m.node.parent or "").startswith("/reserved-memory"):
            problems.append(f"entry {m.index}: {m.node.path} is not under /reserved-memory "
                            "(of_reserved_mem_lookup fails: \"unable to acquire memory-region\")")
            continue
        if m.reg is None:
            problems.append(f"entry {m.index}: {m.node.path} has no usable reg (dynamically "
                            "allocated regions cannot be ioremapped by address)")
            continue
        if m.name != "vdev0buffer" and "no-map" not in m.node.props and _in_memory(ctx, m.reg):
            problems.append(f"entry {m.index}: {m.node.path} lacks no-map but lies in system RAM: "
                            "imx_rproc ioremaps it (ioremap_wc of mapped RAM returns NULL: \"failed "
                            "to remap\" or \"Unable to map memory region\")")
        if m.name == "vdev0buffer" and "shared-dma-pool" not in m.node.strings("compatible"):
            warns.append(f"{m.node.path} (vdev0buffer) is not compatible \"shared-dma-pool\": "
                         "of_reserved_mem_device_init_by_idx() fails (\"Can't associate reserved "
                         "memory\")")
    summary = ", ".join(f"{m.name}@{_hx(m.reg[0])}+0x{m.reg[1]:x}" for m in ctx.mem_regions
                        if m.reg) or "none"
    if problems:
        rep.add(Check(cid, title, FAIL, "; ".join(problems) + f". Resolved: {summary}.",
                      "point every memory-region phandle at a /reserved-memory child with reg and "
                      "no-map"))
    elif warns:
        rep.add(Check(cid, title, WARN, "; ".join(warns) + f". Resolved: {summary}.",
                      "add compatible = \"shared-dma-pool\" to the vdev buffer node"))
    else:
        rep.add(Check(cid, title, PASS, f"{len(ctx.mem_regions)} memory-region entries resolve to "
                      f"reserved-memory nodes: {summary}."))


def _in_memory(ctx: Context, reg: tuple[int, int]) -> bool:
    for n in ctx.dt.nodes.values():
        if n.strings("device_type") == ["memory"]:
            for base, size in ctx.dt.reg(n) or []:
                if base < reg[0] + reg[1] and reg[0] < base + size:
                    return True
    return False


def _check_vdev_regions(ctx: Context, rep: PreflightReport) -> None:
    cid, title = "dt.vdev_regions", "vdev regions"
    names = {m.name: m for m in ctx.mem_regions}
    vdevs = ctx.rsc.vdevs if ctx.rsc else []
    odd = [n for n in names if n in ("vdevbuffer", "rsc_table")]
    if not vdevs:
        if any(n.startswith("vdev") for n in names):
            rep.add(Check(cid, title, WARN, "the DT reserves vdev regions but the firmware has no "
                          "vdev in its resource table: no RPMsg device will appear.",
                          "add a RSC_VDEV entry to the firmware's resource table"))
        return
    problems, warns = [], []
    for i, v in enumerate(vdevs):
        for k, ring in enumerate(v.vrings):
            name = f"vdev{i}vring{k}"
            need = vring_bytes(ring.num, ring.align)
            m = names.get(name)
            if m is None:
                warns.append(f"no {name} region: the kernel allocates vring {k} from its DMA pool "
                             "at an address the firmware cannot know in advance")
            elif m.reg and m.reg[1] < need:
                problems.append(f"{name} is 0x{m.reg[1]:x} bytes but vring {k} (num {ring.num}, "
                                f"align 0x{ring.align:x}) needs 0x{need:x}: \"Registered carveout "
                                "doesn't fit len request\"")
            elif m.reg and ring.da != 0xFFFFFFFF and ring.da != m.reg[0]:
                problems.append(f"vring {k} da {_hx(ring.da)} differs from {name} at "
                                f"{_hx(m.reg[0])}: \"Registered carveout doesn't fit da request\"")
        if f"vdev{i}buffer" not in names:
            warns.append(f"no vdev{i}buffer region: RPMsg buffers come from the first "
                         "memory-region entry or the kernel's DMA pool")
    if "vdevbuffer" in odd:
        warns.append("a region is named \"vdevbuffer\": Linux 6.1 looks for \"vdev0buffer\", so it "
                     "registers \"vdevbuffer\" as a carveout and uses memory-region entry 0 for the "
                     "buffers (works only if vdevbuffer is listed first)")
    if "rsc_table" in odd:
        warns.append("a region is named \"rsc_table\": Linux 6.1 recognizes only \"rsc-table\", "
                     "so it is mapped as plain memory and the resource table stays in the ELF")
    if problems:
        rep.add(Check(cid, title, FAIL, "; ".join(problems + warns) + ".",
                      "size each vdevNvringM region for its vring (PAGE_ALIGN(vring_size(num, "
                      "align))) and keep vring da FW_RSC_ADDR_ANY or equal to the region"))
    elif warns:
        rep.add(Check(cid, title, WARN, "; ".join(warns) + ".",
                      "add no-map reserved-memory nodes vdev0vring0, vdev0vring1 and a "
                      "shared-dma-pool vdev0buffer to memory-region"))
    else:
        rep.add(Check(cid, title, PASS, "vdev buffer and vring regions are present and large "
                      "enough for the firmware's vdev(s)."))


def _mbox_specs(ctx: Context, node: DtNode) -> list[tuple[int, tuple[int, ...]]] | None:
    cells = node.cells("mboxes")
    if cells is None:
        return None
    out, i = [], 0
    while i < len(cells):
        prov = ctx.dt.by_phandle(cells[i])
        n = prov.u32("#mbox-cells") if prov else None
        if n is None or i + 1 + n > len(cells):
            return None
        out.append((cells[i], tuple(cells[i + 1:i + 1 + n])))
        i += 1 + n
    return out


def _check_mbox(ctx: Context, rep: PreflightReport) -> None:
    cid, title = "dt.mbox", "MU mailboxes"
    cm = ctx.cm
    names = cm.strings("mbox-names")
    specs = _mbox_specs(ctx, cm)
    has_vdev = bool(ctx.rsc and ctx.rsc.vdevs)
    if "mbox-names" not in cm.props:
        rep.add(Check(cid, title, WARN if has_vdev else PASS,
                      f"{cm.path} has no mbox-names, so imx_rproc_xtr_mbox_init() uses no MU: "
                      + ("kicks fail with \"No initialized mbox tx channel\" and RPMsg never "
                         "starts." if has_vdev else "fine for a firmware without a vdev."),
                      "add mbox-names = \"tx\", \"rx\", \"rxdb\" and mboxes = <&mu 0 1 &mu 1 1 "
                      "&mu 3 1>" if has_vdev else ""))
        return
    problems = []
    if specs is None:
        problems.append("mboxes is missing or does not parse with the providers' #mbox-cells")
    elif len(specs) != len(names):
        problems.append(f"{len(names)} mbox-names but {len(specs)} mboxes specifiers")
    for need in ("tx", "rx"):
        if need not in names:
            problems.append(f"mbox-names lacks \"{need}\" (\"failed to request {need} mailbox "
                            "channel\")")
    if problems:
        rep.add(Check(cid, title, FAIL, f"{cm.path}: " + "; ".join(problems) + ".",
                      "list one mboxes specifier per mbox-names entry: \"tx\", \"rx\", \"rxdb\""))
        return
    rep.add(Check(cid, title, PASS, f"{cm.path}: mbox-names {names} match {len(specs)} mboxes "
                  "specifiers."))


def _check_rpmsg_nodes(ctx: Context, rep: PreflightReport) -> None:
    nodes = ctx.dt.compatible(lambda c: bool(_RPMSG_COMPAT.match(c)))
    if not nodes:
        return
    cm_specs = set(_mbox_specs(ctx, ctx.cm) or []) if "mbox-names" in ctx.cm.props else set()
    for n in nodes:
        tag = n.path
        specs = set(_mbox_specs(ctx, n) or [])
        shared = sorted(cm_specs & specs)
        if n.status_ok and shared:
            chans = ", ".join(f"<{ctx.dt.nodes[ctx.dt.phandles[p]].name if p in ctx.dt.phandles else hex(p)} "
                              + " ".join(map(str, a)) + ">" for p, a in shared)
            rep.add(Check("dt.mu_conflict", "MU channel conflict", FAIL,
                          f"{tag} (imx_rpmsg, enabled) and {ctx.cm.path} (imx_rproc) request the same "
                          f"MU channel(s) {chans}; the mailbox core gives a channel to one client "
                          "only, so whichever probes second gets -EBUSY (imx_rproc: \"failed to "
                          "request tx mailbox channel\", probe error -16).",
                          f"use one RPMsg transport: disable {tag} (status = \"disabled\") when "
                          "remoteproc owns the vdev, or drop mbox-names/mboxes from the cm node "
                          "(then the cm node uses no MU)"))
        elif n.status_ok:
            rep.add(Check("dt.mu_conflict", "MU channel conflict", PASS,
                          f"{tag} and {ctx.cm.path} share no MU channel."))
        _check_rpmsg_reg(ctx, rep, n)


def _check_rpmsg_reg(ctx: Context, rep: PreflightReport, n: DtNode) -> None:
    cid, title = "dt.rpmsg_node", "imx_rpmsg node"
    vdev_nums = n.u32("vdev-nums", 1) or 1
    need = vdev_nums * RPMSG_BYTES_PER_VDEV
    reg = ctx.dt.reg(n)
    status = n.strings("status")[0] if n.strings("status") else "okay"
    bad = FAIL if n.status_ok else WARN
    if reg is None:
        rep.add(Check(cid, title, bad, f"{n.path} (status \"{status}\") has no usable reg: NXP "
                      "imx_rpmsg fails with \"No vring buffer\" (probe error -12).",
                      f"give it reg = <base 0x{need:x}> over a no-map reserved-memory region "
                      f"({vdev_nums} x 0x10000 for vdev-nums = {vdev_nums})"))
        return
    base, size = reg[0]
    if size < need:
        rep.add(Check(cid, title, bad, f"{n.path} (status \"{status}\") reg size 0x{size:x} is "
                      f"smaller than vdev-nums ({vdev_nums}) x 0x10000 = 0x{need:x}: NXP imx_rpmsg "
                      "prints \"Too small memory size\" and \"No vring buffer\" (probe error -12).",
                      f"set reg = <{_hx(base)} 0x{need:x}> or lower vdev-nums"))
        return
    if not n.status_ok:
        rep.add(Check(cid, title, WARN, f"{n.path} has status \"{status}\": imx_rpmsg does not "
                      "probe. Some U-Boot board files disable it at boot unless the M core was "
                      "started by bootaux (ft_board_setup), so check /proc/device-tree on the "
                      "target too.",
                      "set status = \"okay\" if the NXP RPMsg transport is wanted; leave it "
                      "disabled when remoteproc provides the vdev"))
        return
    rep.add(Check(cid, title, PASS, f"{n.path}: reg {_hx(base)}+0x{size:x} holds vdev-nums "
                  f"({vdev_nums}) x 0x10000."))
