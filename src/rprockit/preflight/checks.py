"""The pre-flight checks: each ``check_*`` is a function ``Model -> list[Check]``.

Every check reads only the immutable :class:`~rprockit.preflight.model.Model`; none reads
another's result, so they run in any order (:data:`CHECKS` is the report order).

Kernel facts are from Linux 6.1 unless stated: drivers/remoteproc/imx_rproc.c
(imx_rproc_da_to_sys, imx_rproc_da_to_va, imx_rproc_addr_init, imx_rproc_prepare,
imx_rproc_xtr_mbox_init, imx_rproc_detect_mode, imx_rproc_clk_enable, imx_rproc_parse_fw),
remoteproc_core.c (rproc_da_to_va, rproc_alloc_vring, rproc_check_carveout_da),
remoteproc_elf_loader.c (rproc_elf_load_segments, rproc_elf_find_loaded_rsc_table),
remoteproc_virtio.c (rproc_add_virtio_dev), drivers/rpmsg/virtio_rpmsg_bus.c (rpmsg_probe:
MAX_RPMSG_NUM_BUFS 512 buffers of MAX_RPMSG_BUF_SIZE 512 bytes), kernel/dma/coherent.c
(a per-device pool does not fall back to other memory), drivers/mailbox/mailbox.c (a
channel already bound returns -EBUSY).  Per-kernel-line facts come from the model's
:class:`~rprockit.preflight.driver.DriverLine`, each with its source line.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

from .dt import DtNode
from .model import MemRegion, Model, Placement, Region
from .report import FAIL, PASS, WARN, Check, SegmentRow
from .rsctable import FW_RSC_ADDR_ANY, VIRTIO_ID_RPMSG, VIRTIO_RPMSG_F_NS, vring_bytes

#: Bytes imx_rpmsg (NXP linux-imx drivers/rpmsg/imx_rpmsg.c set_vring_phy_buf) uses per vdev:
#: vring0 at +0, vring1 at +0x8000.
RPMSG_BYTES_PER_VDEV = 0x10000
#: drivers/rpmsg/virtio_rpmsg_bus.c: MAX_RPMSG_NUM_BUFS, MAX_RPMSG_BUF_SIZE (bytes).
MAX_RPMSG_NUM_BUFS, MAX_RPMSG_BUF_SIZE = 512, 512
PAGE_SIZE = 4096

_RPMSG_COMPAT = re.compile(r"^fsl,imx[0-9a-z]*-rpmsg$")

CheckFn = Callable[[Model], list[Check]]


def _hx(v: int) -> str:
    return f"0x{v:08x}"


def _mcpu(m: Model) -> str:
    return "cortex-m7" if "M7" in m.soc.core else "cortex-m4"


# --------------------------------------------------------------------------- ELF


def check_elf_header(m: Model) -> list[Check]:
    """ELF32, EM_ARM, little-endian, Thumb entry."""
    im = m.image
    cid, title = "elf.header", "ELF header"
    if not m.cortex_m:
        problems = []
        if im.elfclass != 32:
            problems.append(f"ELF{im.elfclass} (the Cortex-M cores need ELF32)")
        if im.machine != "EM_ARM":
            problems.append(f"machine {im.machine} (expected EM_ARM)")
        if not im.little_endian:
            problems.append("big-endian (the kernel prints \"Unsupported firmware endianness\")")
        return [Check(cid, title, FAIL,
                      f"{im.path} is not a Cortex-M firmware: " + "; ".join(problems) + ".",
                      f"build it with arm-none-eabi-gcc -mcpu={_mcpu(m)} -mthumb (the host gcc "
                      f"or an aarch64/A-core toolchain produces an image the {m.soc.core} cannot "
                      "run)",
                      {"elfclass": im.elfclass, "machine": im.machine,
                       "little_endian": im.little_endian})]
    if not im.entry & 1:
        return [Check(cid, title, FAIL,
                      f"ELF32 EM_ARM little-endian, but the entry point {_hx(im.entry)} is even: "
                      "Cortex-M executes Thumb only, so the reset handler address needs bit 0 "
                      "set.", "compile with -mthumb and declare the reset handler as a function "
                      "(type %function) so the linker sets the Thumb bit", {"entry": im.entry})]
    return [Check(cid, title, PASS, f"ELF32 EM_ARM little-endian, Thumb entry {_hx(im.entry)}.",
                  details={"entry": im.entry})]


def check_segments(m: Model) -> list[Check]:
    """At least one PT_LOAD and filesz <= memsz for each."""
    segs = m.image.segments
    cid, title = "elf.segments", "PT_LOAD segments"
    if not segs:
        return [Check(cid, title, FAIL,
                      "the ELF has no PT_LOAD segment, so remoteproc loads nothing (the kernel "
                      "prints \"No loadable segments\" when there are no program headers).",
                      "link an executable (not a relocatable object, -r) with a linker script "
                      "that places the sections in memory")]
    bad = [s for s in segs if s.filesz > s.memsz]
    if bad:
        s = bad[0]
        return [Check(cid, title, FAIL,
                      f"segment {s.index} has filesz 0x{s.filesz:x} > memsz 0x{s.memsz:x}; the "
                      f"kernel prints \"bad phdr filesz 0x{s.filesz:x} memsz 0x{s.memsz:x}\".",
                      "fix the linker script; the image is corrupt")]
    return [Check(cid, title, PASS, f"{len(segs)} PT_LOAD segment(s), filesz <= memsz for each.")]


def check_memsz0(m: Model) -> list[Check]:
    """memsz == 0 segments, by kernel version (skipped from v5.19)."""
    zero = [s for s in m.image.segments if s.memsz == 0]
    cid, title = "elf.memsz0", "empty PT_LOAD (memsz 0)"
    if not m.image.segments:
        return []
    if not zero:
        return [Check(cid, title, PASS, "no PT_LOAD segment has memsz 0.")]
    s = zero[0]
    where = ", ".join(f"segment {z.index} at {_hx(z.paddr)}" for z in zero)
    why = (f"rproc_elf_load_segments() skips memsz == 0 segments only since v5.19 (mainline "
           f"\"remoteproc: elf_loader: skip segment with memsz as zero\"); older kernels pass "
           f"them to da_to_va, which imx_rproc refuses for len 0, and fail with \"bad phdr da "
           f"{hex(s.paddr)} mem 0x0\" then \"Boot failed: -22\".")
    remedy = ("drop the empty segment: remove unused PHDRS entries from the linker script, or "
              "mark the empty output section NOLOAD / discard it")
    details = {"segments": [z.index for z in zero]}
    k = m.kernel
    if k is None:
        return [Check(cid, title, WARN, f"{where} with memsz 0. {why}", remedy, details)]
    skips = k.skips_memsz0 if k.skips_memsz0 is not None else k.version[:2] >= (5, 19)
    if skips:
        return [Check(cid, title, PASS, f"{where} with memsz 0; kernel {k.version_str} skips "
                      f"it. {why}", remedy, details)]
    return [Check(cid, title, FAIL, f"{where} with memsz 0 and kernel {k.version_str} does not "
                  f"skip it. {why}", remedy, details)]


def check_overlaps(m: Model) -> list[Check]:
    """No two PT_LOAD segments share a system address (rproc_elf_load_segments() copies them
    in file order, so a later one silently overwrites an earlier one)."""
    cid, title = "elf.overlap", "segment overlap"
    placed = [p for p in m.placements if p.sys is not None]
    if len(m.placements) < 2:
        return []
    clashes = []
    for i, a in enumerate(placed):
        for b in placed[i + 1:]:
            lo = max(a.sys or 0, b.sys or 0)
            hi = min(a.sys_end or 0, b.sys_end or 0)
            if lo < hi:
                clashes.append((a, b, lo, hi))
    if not clashes:
        return [Check(cid, title, PASS, f"the {len(placed)} translated PT_LOAD segment(s) occupy "
                      "disjoint system address ranges.")]
    text = "; ".join(
        f"segment {a.seg.index} (device {_hx(a.seg.paddr)}) and segment {b.seg.index} (device "
        f"{_hx(b.seg.paddr)}) both cover system [{_hx(lo)}, {_hx(hi)})"
        for a, b, lo, hi in clashes)
    rsc = m.image.rsc_table
    hit_rsc = ""
    if rsc is not None:
        rs = m.att.da_to_sys(rsc.addr, rsc.size)
        if rs and any(lo <= rs[1] < hi or rs[1] <= lo < rs[1] + rsc.size
                      for _, _, lo, hi in clashes):
            hit_rsc = (" The overlap includes the .resource_table, so the table the kernel "
                       "parsed is not the one the firmware finds in memory.")
    return [Check(cid, title, FAIL,
                  f"{text}: rproc_elf_load_segments() copies the segments in file order, so the "
                  f"later one overwrites the earlier one's code or data.{hit_rsc}",
                  "fix the linker script so no two output sections share memory (check MEMORY "
                  "regions and any device-address aliases such as TCML at 0x0 and 0x1FFE0000)",
                  {"pairs": [[a.seg.index, b.seg.index] for a, b, _, _ in clashes],
                   "sys": [[lo, hi] for _, _, lo, hi in clashes]})]


# --------------------------------------------------------------------------- resource table


def check_resource_table(m: Model) -> list[Check]:
    """Presence and validity of ``.resource_table``."""
    sec = m.image.rsc_table
    cid, title = "rsc.table", "resource table"
    if sec is None:
        return [_missing_rsc_table(m)]
    if m.rsc is None:
        return [Check(cid, title, FAIL,
                      f".resource_table at {_hx(sec.addr)} ({sec.size} bytes) is invalid: "
                      f"{m.rsc_error}. Linux 6.1 imx_rproc then boots without it (\"No resource "
                      "table in elf\") or fails in rproc_handle_resources(); either way no "
                      "vdev/RPMsg.",
                      "fix the struct resource_table in the firmware (include/linux/remoteproc.h "
                      "layout, packed, little-endian)")]
    rsc = m.rsc
    n = len(rsc.entries)
    parts = [f"version {rsc.ver}, {n} entr{'y' if n == 1 else 'ies'}"]
    for e in rsc.entries:
        if e.type == "vdev":
            ns = "NS" if int(e.fields["dfeatures"]) & (1 << VIRTIO_RPMSG_F_NS) else "no NS"
            kind = "rpmsg" if e.fields["id"] == VIRTIO_ID_RPMSG else f"virtio id {e.fields['id']}"
            rings = ", ".join(f"vring{k} da {'ANY' if v.da == FW_RSC_ADDR_ANY else _hx(v.da)} "
                              f"align 0x{v.align:x} num {v.num}" for k, v in enumerate(e.vrings))
            parts.append(f"vdev ({kind}, dfeatures 0x{int(e.fields['dfeatures']):x} [{ns}]; "
                         f"{rings})")
        elif e.type in ("carveout", "devmem", "trace"):
            parts.append(f"{e.type} {e.fields.get('name', '')!r} da {_hx(int(e.fields['da']))} "
                         f"len 0x{int(e.fields['len']):x}")
        else:
            parts.append(e.type)
    status, remedy = PASS, ""
    notes = list(rsc.notes)
    if not rsc.vdevs:
        notes.append("no vdev, so remoteproc creates no RPMsg virtio device")
    for v in rsc.vdevs:
        if v.fields["id"] == VIRTIO_ID_RPMSG and not int(v.fields["dfeatures"]) & 1:
            status = WARN
            notes.append("the rpmsg vdev lacks VIRTIO_RPMSG_F_NS (bit 0): Linux will not create "
                         "channels from the firmware's name-service announcements")
            remedy = "set dfeatures bit 0 (VIRTIO_RPMSG_F_NS) in the vdev entry"
    msg = ".resource_table at " + _hx(sec.addr) + ": " + "; ".join(parts) + "."
    if notes:
        msg += " Note: " + "; ".join(notes) + "."
    return [Check(cid, title, status, msg, remedy, {"addr": sec.addr, "size": sec.size})]


def _missing_rsc_table(m: Model) -> Check:
    k = m.kernel
    refused = ("Kernels whose rproc_fw_boot() requires a table refuse it: 4.14 "
               "remoteproc_core.c prints \"Failed to find resource table\" then \"Boot failed: "
               "-22\" (kernels without the empty-resource-table fix). Linux 6.1 imx_rproc "
               "(imx_rproc_parse_fw) prints \"No resource table in elf\" and boots it, but "
               "without a vdev there is no RPMsg.")
    remedy = ("add a .resource_table section (struct resource_table, version 1; an empty table "
              "with num = 0 is enough to boot, a RSC_VDEV entry is needed for RPMsg), e.g. "
              "firmware/rproc-test/rsc_table.h")
    cid, title = "rsc.table", "resource table"
    if k is not None and k.rsc_table_required:
        return Check(cid, title, FAIL, f"no .resource_table section, and kernel {k.version_str} "
                     f"at {k.tree} requires one. {refused}", remedy)
    if k is not None and k.rsc_table_required is False:
        return Check(cid, title, WARN, f"no .resource_table section; kernel {k.version_str} "
                     f"boots it without RPMsg. {refused}", remedy)
    return Check(cid, title, WARN, f"no .resource_table section. {refused}", remedy)


def check_rsc_location(m: Model) -> list[Check]:
    """Where the kernel writes the updated table, and whether the firmware reads it there."""
    sec = m.image.rsc_table
    if sec is None or m.rsc is None:
        return []
    cid, title = "rsc.location", "resource table location"
    ln = m.line
    odd = [r for r in m.mem_regions if r.name.startswith(("rsc_table", "rsc-table"))
           and not ln.is_rsc_table(r.name)]
    odd_note = ""
    if odd:
        odd_note = (f" The DT's \"{odd[0].name}\" region is not a resource-table region for "
                    f"{ln.kernel} (it takes only {', '.join(ln.rsc_names) or 'none'}"
                    + (f" and names starting {', '.join(ln.rsc_prefixes)}" if ln.rsc_prefixes
                       else "") + f", {ln.where(ln.rsc_source)}), so it is mapped as plain "
                    "memory and the table stays in the ELF.")
    rsc_region = next((r for r in m.mem_regions if ln.is_rsc_table(r.name) and r.reg), None)
    hit = m.att.da_to_sys(sec.addr, sec.size)
    if rsc_region is not None and rsc_region.reg is not None:
        base, size = rsc_region.reg
        if size < sec.size:
            return [Check(cid, title, FAIL,
                          f"the {rsc_region.name} region ({_hx(base)}+0x{size:x}) is smaller than "
                          f"the {sec.size}-byte resource table {ln.kernel} copies into it after "
                          f"loading ({ln.where(ln.rsc_source)}; rproc_fw_boot() memcpy of the "
                          "cached table): the copy runs past the ioremapped region.",
                          f"grow the {rsc_region.name} node to at least 0x{sec.size:x} bytes "
                          "(NXP uses 0x1000)")]
        if hit and base <= hit[1] and hit[1] + sec.size <= base + size:
            return [Check(cid, title, PASS, f"the table lies in the {rsc_region.name} region "
                          f"({_hx(base)}+0x{size:x}) where {ln.kernel} imx_rproc writes the "
                          "updated copy.")]
        return [Check(cid, title, WARN,
                      f"the DT has a {rsc_region.name} region at system {_hx(base)}+0x{size:x}: "
                      f"{ln.kernel} writes the updated table (vring addresses, notify ids) there "
                      f"({ln.where(ln.rsc_source)}), not to the firmware's .resource_table at "
                      f"{_hx(sec.addr)}.",
                      "make the firmware copy its table into the rsc-table region at start and "
                      "read it back from there (as the NXP MCUXpresso SDK does), or remove the "
                      "rsc-table region from memory-region")]
    covered = any(s.paddr <= sec.addr and sec.addr + sec.size <= s.paddr + s.filesz
                  for s in m.image.segments)
    if not covered:
        return [Check(cid, title, WARN,
                      f".resource_table ({_hx(sec.addr)}+0x{sec.size:x}) is not inside a loaded "
                      "PT_LOAD segment, so rproc_elf_find_loaded_rsc_table() finds no loaded "
                      "copy: the kernel never tells the firmware the vring addresses it "
                      "allocated." + odd_note,
                      "place .resource_table in a loaded output section (not NOLOAD) with its "
                      "VMA equal to its LMA")]
    if odd:
        return [Check(cid, title, WARN, f"the table at {_hx(sec.addr)} is loaded with the image "
                      "and updated in place." + odd_note,
                      f"rename the node rsc-table if the firmware reads its table from "
                      f"{_hx(odd[0].reg[0]) if odd[0].reg else 'that region'}")]
    return [Check(cid, title, PASS, f"the table at {_hx(sec.addr)} is loaded with the image; "
                  "the kernel updates it in place (rproc_elf_find_loaded_rsc_table).")]


# --------------------------------------------------------------------------- address translation


def segment_rows(m: Model) -> list[SegmentRow]:
    """The PT_LOAD table of the report (all segments, memsz 0 included)."""
    by_index = {p.seg.index: p for p in m.placements}
    rows = []
    for s in m.image.segments:
        p = by_index.get(s.index)
        if p is None:
            region: str | None = "(memsz 0)"
            sys = None
        else:
            sys = p.sys
            region = p.region.name if p.region else (
                "(memory-region, unchecked)" if m.dt is None and sys is not None else None)
        rows.append(SegmentRow(s.index, s.paddr, s.vaddr, s.filesz, s.memsz, s.flag_str, sys,
                               region))
    return rows


def check_addresses(m: Model) -> list[Check]:
    """Translate every PT_LOAD through the ATT and find the region the kernel maps it in."""
    return [_check_placement(m, p) for p in m.placements]


def _first_out(end: int, limit: int, func: str, var: str) -> tuple[int, str]:
    """First address the kernel rejects for a range ending (exclusive) at ``end`` in a region
    ending at ``limit``, and an explanation when only the strict bound rejects it."""
    if end > limit:
        return limit, ""
    return limit - 1, (f" (the segment ends exactly at the end, but {func} requires "
                       f"{var} + len < end, so the last byte is unusable)")


def _att_remedy(m: Model) -> str:
    own = ", ".join(f"{e.name} [{_hx(e.da)}, {_hx(e.da_end)})" for e in m.att.entries)
    return ("link the image at device addresses the imx_rproc ATT translates "
            f"({m.att.source}): {own}")


def _check_placement(m: Model, p: Placement) -> Check:
    s = p.seg
    cid, title = f"att.segment{s.index}", f"segment {s.index} address"
    span = f"[{_hx(s.paddr)}, {_hx(s.paddr + s.memsz)})"
    dmesg = f"\"bad phdr da {hex(s.paddr)} mem {hex(s.memsz)}\" then \"Boot failed: -22\""
    if p.sys is None or p.entry is None:
        e = m.att.containing(s.paddr)
        if e is None:
            return Check(cid, title, FAIL,
                         f"segment {s.index} {span}: no {m.soc.name} ATT entry contains device "
                         f"address {_hx(s.paddr)} (first byte out of range: {_hx(s.paddr)}); the "
                         f"kernel prints \"Translation failed: da = {hex(s.paddr)} len = "
                         f"{hex(s.memsz)}\" and {dmesg}.", _att_remedy(m),
                         {"first_bad_da": s.paddr})
        first, why = _first_out(s.paddr + s.memsz, e.da_end, "imx_rproc_da_to_sys()", "da")
        return Check(cid, title, FAIL,
                     f"segment {s.index} {span} runs past ATT entry \"{e.name}\" [{_hx(e.da)}, "
                     f"{_hx(e.da_end)}); first byte out of range: {_hx(first)}{why}; the kernel "
                     f"prints \"Translation failed: da = {hex(s.paddr)} len = {hex(s.memsz)}\" "
                     f"and {dmesg}.", _att_remedy(m), {"first_bad_da": first})
    sys = p.sys
    sys_span = f"system [{_hx(sys)}, {_hx(sys + s.memsz)})"
    r = p.region
    if r is not None and r.source == "carveout":
        return Check(cid, title, PASS,
                     f"segment {s.index} {span} lies in carveout \"{r.name}\" (rproc_da_to_va() "
                     "matches carveouts by device address, which imx_rproc sets equal to the "
                     "system address).", details={"sys": s.paddr, "region": r.name})
    if r is not None:
        return Check(cid, title, PASS,
                     f"segment {s.index} {span} -> {sys_span} via ATT \"{p.entry.name}\", inside "
                     f"{r.source} region \"{r.name}\" [{_hx(r.sys)}, {_hx(r.end)}).",
                     details={"sys": sys, "region": r.name})
    return _unmapped(m, p, span, sys_span, dmesg, cid, title)


def _unmapped(m: Model, p: Placement, span: str, sys_span: str, dmesg: str, cid: str,
              title: str) -> Check:
    s, sys = p.seg, p.sys or 0
    containing = next((r for r in m.regions if r.sys <= sys < r.end), None)
    if containing is not None:
        first_sys, why = _first_out(sys + s.memsz, containing.end, "imx_rproc_da_to_va()", "sys")
        first_da = s.paddr + (first_sys - sys)
        return Check(
            cid, title, FAIL,
            f"segment {s.index} {span} -> {sys_span} runs past {containing.source} region "
            f"\"{containing.name}\" [{_hx(containing.sys)}, {_hx(containing.end)}); first byte "
            f"out of range: device {_hx(first_da)} (system {_hx(first_sys)}){why}; the kernel "
            f"prints {dmesg}.",
            f"shrink the linker-script MEMORY region to end before device {_hx(first_da)}, or "
            f"grow the reserved-memory node \"{containing.name}\" by at least one byte past "
            f"system {_hx(sys + s.memsz)}",
            {"sys": sys, "first_bad_da": first_da, "first_bad_sys": first_sys})
    entry = p.entry.name if p.entry else "?"
    if m.dt is None:
        return Check(
            cid, title, WARN,
            f"segment {s.index} {span} -> {sys_span} via ATT \"{entry}\"; not an ATT_OWN "
            "region, so the kernel loads it only if a reserved-memory node in the cm node's "
            "memory-region covers it (not verified: no DTB given; this needs the board DTB's cm "
            "node and its memory-region).",
            f"pass --dtb with the board's DTB; it must reserve system [{_hx(sys)}, "
            f"{_hx(sys + s.memsz + 1)}) with a no-map reserved-memory node (name not starting "
            "with \"vdev\") listed in memory-region", {"sys": sys, "needs": "dtb"})
    have = ", ".join(f"\"{r.name}\" [{_hx(r.sys)}, {_hx(r.end)})" for r in m.regions) or "none"
    return Check(
        cid, title, FAIL,
        f"segment {s.index} {span} -> {sys_span} is in no region the kernel maps (first byte out "
        f"of range: device {_hx(s.paddr)}, system {_hx(sys)}); mapped regions: {have}; the "
        f"kernel prints {dmesg}.",
        f"add a no-map reserved-memory node covering system [{_hx(sys)}, "
        f"{_hx(sys + s.memsz + 1)}) to the cm node's memory-region",
        {"sys": sys, "first_bad_da": s.paddr, "first_bad_sys": sys})


def check_ddr_alias(m: Model) -> list[Check]:
    """Flag segments in an ATT entry that some kernels translate differently."""
    out = []
    for v in m.soc.att_variants:
        entry = next((e for e in m.att.entries if e.da == v.entry_da), None)
        if entry is None:
            continue
        used = [s for s in m.image.segments if s.memsz and entry.da <= s.paddr < entry.da_end]
        if not used:
            continue
        cid, title = "att.ddr_alias", "DDR code alias"
        msg = (f"segment(s) {', '.join(str(s.index) for s in used)} use the DDR code alias at "
               f"device {_hx(entry.da)}, which this ATT maps to system {_hx(entry.sa)}. "
               f"{v.kernel} maps it to {_hx(v.wrong_sa)} instead (wrong; fixed by {v.fixed_by}).")
        remedy = (f"on {v.kernel}, apply the fix or link the image at the DDR data address "
                  f"(device {_hx(v.right_sa)}+, identity-mapped)")
        if m.kernel is not None and entry.sa == v.wrong_sa:
            out.append(Check(cid, title, FAIL, msg + f" The kernel tree at {m.kernel.tree} has "
                             "the wrong entry.", remedy))
        elif m.kernel is not None:
            out.append(Check(cid, title, PASS, msg + f" The kernel tree at {m.kernel.tree} has "
                             "the correct entry."))
        else:
            out.append(Check(cid, title, WARN, msg + " No kernel tree given to tell which "
                             "applies.", remedy))
    return out


# --------------------------------------------------------------------------- boot vector


def _vector_source(m: Model) -> Placement | None:
    """The last segment (file order: it is copied last) whose file bytes cover the 8 bytes at
    the boot vector's system address."""
    bv = m.soc.boot_vector
    hits = [p for p in m.placements if p.sys is not None
            and p.sys <= bv.sys and bv.sys + 8 <= p.sys + p.seg.filesz]
    return hits[-1] if hits else None


def check_boot_vector(m: Model) -> list[Check]:
    """Does a segment put the initial SP and PC at the system address the core fetches them
    from after reset, whichever device alias it was linked at?"""
    bv = m.soc.boot_vector
    cid, title = "boot.vector", f"boot vector ({bv.memory} at system {_hx(bv.sys)})"
    p = _vector_source(m)
    if p is None or p.sys is None:
        return [_no_boot_vector(m, cid, title)]
    s = p.seg
    off = bv.sys - p.sys
    sp, pc = struct.unpack_from("<2I", s.data, off)
    problems = []
    if sp % 4 or not _in_ram(m, sp - 4):
        problems.append(f"initial SP {_hx(sp)} does not point into RAM (SP - 4 must be a "
                        "word-aligned address of a loaded segment or an ATT region)")
    if not pc & 1:
        problems.append(f"reset PC {_hx(pc)} is even: Cortex-M needs the Thumb bit, or it faults "
                        "at the first instruction")
    elif not any(q.paddr <= (pc & ~1) < q.paddr + q.filesz for q in m.image.segments):
        problems.append(f"reset PC {_hx(pc)} is not inside a loaded segment")
    da = s.paddr + off
    where = (f"segment {s.index} at device {_hx(da)} (ATT \"{p.entry.name if p.entry else '?'}\""
             f" -> system {_hx(bv.sys)}, which the core reads as its address {_hx(bv.da)})")
    if problems:
        return [Check(cid, title, FAIL, f"vector table from {where}: " + "; ".join(problems)
                      + ".", "put the initial stack pointer and the reset handler address (with "
                      "bit 0 set) in the first two words of the vector table",
                      {"sp": sp, "pc": pc, "da": da, "segment": s.index})]
    return [Check(cid, title, PASS, f"{where} provides the vector table: SP {_hx(sp)}, PC "
                  f"{_hx(pc)} (Thumb).", details={"sp": sp, "pc": pc, "da": da,
                                                  "segment": s.index})]


def _in_ram(m: Model, addr: int) -> bool:
    if any(s.paddr <= addr < s.paddr + s.memsz for s in m.image.segments):
        return True
    return m.att.containing(addr) is not None


def _no_boot_vector(m: Model, cid: str, title: str) -> Check:
    bv = m.soc.boot_vector
    segs = [s for s in m.image.segments if s.filesz >= 8]
    own = ""
    if segs:
        low = min(segs, key=lambda s: s.paddr)
        sp, pc = struct.unpack_from("<2I", low.data, 0)
        own = (f" The image's lowest segment starts at {_hx(low.paddr)} with words "
               f"{_hx(sp)}, {_hx(pc)} (its own vector table, if it has one).")
    zero_fill = any(p.sys is not None and p.sys <= bv.sys < p.sys + p.seg.memsz
                    for p in m.placements)
    what = ("only zero-fill (memsz > filesz) covers it" if zero_fill
            else "no PT_LOAD segment lands there")
    aliases = ", ".join(_hx(e.da + (bv.sys - e.sa)) for e in m.att.entries
                        if e.sa <= bv.sys < e.sa + e.size)
    msg = (f"the {m.soc.core} fetches its initial SP and PC at reset from {bv.memory}, system "
           f"{_hx(bv.sys)} (device address {aliases or _hx(bv.da)} in the ATT), and {what}. "
           "remoteproc will report the core \"running\" but it will not execute this image: "
           "U-Boot's bootaux writes SP/PC into TCM before starting the core, no Linux "
           f"imx_rproc does (field case: DDR-linked i.MX8MP M7, state \"running\", no UART "
           f"output).{own}")
    remedy = (f"link a vector-table stub (initial SP, reset handler | 1) at device {_hx(bv.da)} "
              f"in {bv.memory}, in its own PT_LOAD, as Zephyr's ROM-start relocation does "
              "(CONFIG_ROMSTART_RELOCATION_ROM puts the romstart section into ITCM), and point "
              "VTOR at the full table")
    if m.emulated:
        return Check(cid, title, WARN, "expected on the emulated target: " + msg
                     + f" Not a problem here: {m.soc.emulated_boot_vector_note}",
                     "none for the emulated target; on hardware: " + remedy,
                     {"expected_on_emulated": True})
    return Check(cid, title, FAIL, msg, remedy)


# --------------------------------------------------------------------------- kernel tree


def check_kernel(m: Model) -> list[Check]:
    """Report what the kernel tree says: the driver line modelled, its ATT, differences."""
    k = m.kernel
    if k is None:
        return []
    out = [Check("kernel.line", "imx_rproc kernel line",
                 WARN if m.line_note else PASS,
                 (f"{m.line_note}." if m.line_note else
                  f"{k.tree} ({k.family} {k.version_str}) is modelled by the {m.line.line} data "
                  f"({m.line.kernel})."),
                 "add data/imx_rproc/<line>.yaml for this kernel line" if m.line_note else "")]
    compat = m.soc.cm_compatible
    cid, title = "kernel.att", f"kernel {k.version_str} ATT"
    if not k.has_imx_rproc:
        out.append(Check(cid, title, FAIL, f"{k.tree} has no drivers/remoteproc/imx_rproc.c.",
                         "use a kernel with the imx_rproc driver (mainline v4.15+ or NXP "
                         "linux-imx)"))
        return out
    tree_att = k.att_by_compatible.get(compat)
    if tree_att is None:
        out.append(Check(cid, title, FAIL,
                         f"{k.tree}/drivers/remoteproc/imx_rproc.c has no \"{compat}\" match with "
                         "an ATT, so imx_rproc does not bind to the cm node on this kernel.",
                         f"use a kernel whose imx_rproc_of_match lists {compat} (mainline 6.1 "
                         "does)"))
        return out
    ours = {(e.da, e.sa, e.size, e.own) for e in m.soc.att.entries}
    theirs = {(e.da, e.sa, e.size, e.own) for e in tree_att.entries}
    if ours == theirs:
        out.append(Check(cid, title, PASS, f"{tree_att.name} in {k.tree} ({k.family}) matches "
                         f"{m.soc.att.source}."))
        return out

    def fmt(rows: list[tuple[int, int, int, bool]]) -> str:
        return "; ".join(f"da {_hx(d)} -> sa {_hx(a)} size 0x{z:x}{' OWN' if o else ''}"
                         for d, a, z, o in rows) or "none"

    out.append(Check(cid, title, WARN,
                     f"{tree_att.name} in {k.tree} ({k.family} {k.version_str}) differs from "
                     f"{m.soc.att.source}; the checks above used the tree's table. Only in the "
                     f"tree: {fmt(sorted(theirs - ours))}. Only in 6.1: "
                     f"{fmt(sorted(ours - theirs))}.",
                     "link for the table of the kernel you deploy; see the findings above"))
    return out


# --------------------------------------------------------------------------- device tree


def check_dt_given(m: Model) -> list[Check]:
    """Without a DTB the probe-time requirements cannot be decided: say what is needed."""
    if m.dt is not None:
        return []
    return [Check("dt.probe", "probe-time requirements", WARN,
                  f"no DTB given, so what imx_rproc ({m.line.kernel}) needs from the cm node to "
                  f"probe and boot is unchecked: a node whose compatible selects "
                  f"{m.soc_config.name if m.soc_config else 'this SoC'} "
                  f"({' or '.join(m.line.accepted(m.soc.cm_compatible))}), clocks, "
                  "syscon or SMC method, mbox-names, memory-region (firmware, vrings, vdev "
                  "buffer, rsc-table).", "pass --dtb with the board's compiled DTB",
                  {"needs": "dtb"})]


def check_cm_node(m: Model) -> list[Check]:
    """A node imx_rproc binds with this SoC's configuration (imx_rproc_of_match)."""
    if m.dt is None:
        return []
    ln = m.line
    compat = m.soc.cm_compatible
    accepted = ln.accepted(compat)
    cid, title = "dt.cm_node", "cm node"
    if m.soc_config is None:
        return [Check(cid, title, FAIL, f"{ln.kernel} imx_rproc_of_match has no \"{compat}\".",
                      "use a kernel whose imx_rproc supports this SoC")]
    if m.cm is None:
        return [Check(cid, title, FAIL,
                      f"{m.dt.path} has no node with compatible \"{compat}\""
                      + (f" or {', '.join(repr(c) for c in accepted[1:])}" if accepted[1:] else "")
                      + ": imx_rproc never probes and /sys/class/remoteproc stays empty.",
                      f"add the cm node (compatible = \"{compat}\", clocks, syscon, mboxes, "
                      "memory-region), see Documentation/devicetree/bindings/remoteproc/"
                      "fsl,imx-rproc.yaml")]
    cm, found = m.cm, m.cm_compatible or ""
    entry = ln.entry_for(found)
    src = ln.where(entry.source) if entry else ln.kernel
    if m.cm_config != m.soc_config:
        got = m.cm_config.name if m.cm_config else "?"
        return [Check(cid, title, FAIL,
                      f"{cm.path} has compatible \"{found}\", which selects {got} ({src}), not "
                      f"{m.soc_config.name} that {m.soc.name} (\"{compat}\") needs: imx_rproc "
                      "probes it with the other SoC's ATT and start method.",
                      f"use compatible = \"{compat}\" (or one of: {', '.join(accepted)})")]
    if not cm.status_ok:
        return [Check(cid, title, FAIL, f"{cm.path} ({found}) has status "
                      f"\"{cm.strings('status')[0]}\": imx_rproc does not probe it.",
                      f"set status = \"okay\" in {cm.path}")]
    own = ln.entry_for(compat)
    same = "" if found == compat or own is None else (
        f", the same configuration as \"{compat}\" ({ln.where(own.source)})")
    return [Check(cid, title, PASS, f"{cm.path} has compatible \"{found}\" and is enabled; "
                  f"imx_rproc_of_match maps it to {m.cm_config.name if m.cm_config else '?'} "
                  f"({src}){same}.", details={"compatible": found, "line": ln.line})]


def _resolves(m: Model, node: DtNode, prop: str) -> bool:
    cells = node.cells(prop)
    if not cells or m.dt is None:
        return False
    return m.dt.by_phandle(cells[0]) is not None


def check_clocks(m: Model) -> list[Check]:
    """imx_rproc_clk_enable(): the M-core clock (mandatory in mainline 6.1)."""
    if not m.cm_ok or m.cm is None or m.cm_config is None:
        return []
    ln, cm = m.line, m.cm
    cid, title = "dt.clocks", "M-core clock"
    if m.cm_config.method in ("none", "scu"):
        return [Check(cid, title, PASS, f"{m.cm_config.name} is not started by Linux; no clock "
                      "is requested.")]
    where = ln.where(ln.clock_source)
    if "clocks" not in cm.props:
        if ln.clock_required:
            return [Check(cid, title, FAIL,
                          f"{cm.path} has no clocks: {ln.kernel} imx_rproc_clk_enable() calls "
                          f"{ln.clock_call} ({where}), which fails without one: \"Failed to get "
                          "clock\" and the probe fails (-ENOENT), so no remoteproc device "
                          "appears.",
                          f"add clocks = <&clk IMX8M*_CLK_M*_CORE> (the core's root clock; NXP's "
                          f"{m.soc.name} dtsi names it) to {cm.path}")]
        return [Check(cid, title, PASS, f"{cm.path} has no clocks; {ln.kernel} uses "
                      f"{ln.clock_call} ({where}), which accepts that. Mainline 6.1 does not "
                      "(devm_clk_get: \"Failed to get clock\").",
                      "add the core clock to keep the DT usable on mainline kernels")]
    if not _resolves(m, cm, "clocks"):
        return [Check(cid, title, FAIL, f"{cm.path} clocks does not start with the phandle of a "
                      "node: the clock lookup fails or defers the probe forever.",
                      "point clocks at the clock controller: <&clk IMX8M*_CLK_M*_CORE>")]
    return [Check(cid, title, PASS, f"{cm.path} has clocks for {ln.clock_call} ({where}).")]


def check_syscon(m: Model) -> list[Check]:
    """imx_rproc_detect_mode(): the SRC syscon for the MMIO start method."""
    if not m.cm_ok or m.cm is None or m.cm_config is None:
        return []
    ln, cm, cfg = m.line, m.cm, m.cm_config
    cid, title = "dt.syscon", "start method"
    if cfg.method != "mmio":
        return [Check(cid, title, PASS, f"{cfg.name} starts the core through "
                      f"{'the TF-A SiP service (SMC)' if cfg.method == 'smc' else cfg.method} "
                      f"({ln.where(cfg.source)}); no syscon is needed.")]
    where = ln.where(ln.syscon_source)
    if _resolves(m, cm, "syscon"):
        return [Check(cid, title, PASS, f"{cm.path} syscon names the SRC regmap that "
                      f"{cfg.name} starts and stops the core with ({where}).")]
    what = "has no syscon" if "syscon" not in cm.props else "syscon resolves to no node"
    if ln.syscon_required:
        return [Check(cid, title, FAIL, f"{cm.path} {what}: {ln.kernel} imx_rproc_detect_mode() "
                      f"prints \"failed to find syscon\" ({where}) and the probe fails.",
                      "add syscon = <&src> to the cm node")]
    return [Check(cid, title, WARN, f"{cm.path} {what}: {ln.kernel} probes without it "
                  f"({where}) but cannot start or stop the core through the SRC.",
                  "add syscon = <&src> to the cm node")]


def check_memory_regions(m: Model) -> list[Check]:
    """memory-region entries resolve to usable reserved-memory nodes."""
    if not m.cm_ok or m.cm is None or m.dt is None:
        return []
    cid, title = "dt.memory_region", "memory-region"
    cm = m.cm
    raw = cm.props.get("memory-region")
    if raw is None:
        return [Check(cid, title, FAIL if m.image.segments else WARN,
                      f"{cm.path} has no memory-region: only the ATT_OWN regions (TCM/OCRAM) are "
                      "mapped, so DDR-linked segments fail with \"bad phdr da ...\" and no vdev "
                      "buffers/vrings are reserved.",
                      "add memory-region = <&...> with no-map reserved-memory nodes for the "
                      "firmware, vdev0vring0, vdev0vring1 and vdev0buffer")]
    if len(raw) % 4:
        return [Check(cid, title, FAIL, f"{cm.path} memory-region is {len(raw)} bytes, not a "
                      "list of phandles.", "write memory-region = <&a>, <&b>;")]
    problems, warns = [], []
    for r in m.mem_regions:
        if r.node is None:
            problems.append(f"entry {r.index}: phandle 0x{r.phandle:x} resolves to no node "
                            "(imx_rproc_prepare: \"unable to acquire memory-region\", -EINVAL)")
            continue
        if not (r.node.parent or "").startswith("/reserved-memory"):
            problems.append(f"entry {r.index}: {r.node.path} is not under /reserved-memory "
                            "(of_reserved_mem_lookup fails: \"unable to acquire memory-region\")")
            continue
        if r.reg is None:
            problems.append(f"entry {r.index}: {r.node.path} has no usable reg (dynamically "
                            "allocated regions cannot be ioremapped by address)")
            continue
        if not r.dma_pool and "no-map" not in r.node.props and _in_memory(m, r.reg):
            problems.append(f"entry {r.index}: {r.node.path} lacks no-map but lies in system "
                            "RAM: imx_rproc ioremaps it (ioremap_wc of mapped RAM returns NULL: "
                            "\"failed to remap\" or \"Unable to map memory region\")")
        if r.name == "vdev0buffer" and not r.dma_pool:
            warns.append(f"{r.node.path} (vdev0buffer) is not compatible \"shared-dma-pool\": "
                         "of_reserved_mem_device_init_by_idx() fails (\"Can't associate reserved "
                         "memory\")")
    summary = ", ".join(f"{r.name}@{_hx(r.reg[0])}+0x{r.reg[1]:x}" for r in m.mem_regions
                        if r.reg) or "none"
    if problems:
        return [Check(cid, title, FAIL, "; ".join(problems) + f". Resolved: {summary}.",
                      "point every memory-region phandle at a /reserved-memory child with reg "
                      "and no-map")]
    if warns:
        return [Check(cid, title, WARN, "; ".join(warns) + f". Resolved: {summary}.",
                      "add compatible = \"shared-dma-pool\" to the vdev buffer node")]
    return [Check(cid, title, PASS, f"{len(m.mem_regions)} memory-region entries resolve to "
                  f"reserved-memory nodes: {summary}.")]


def _in_memory(m: Model, reg: tuple[int, int]) -> bool:
    if m.dt is None:
        return False
    for n in m.dt.nodes.values():
        if n.strings("device_type") == ["memory"]:
            for base, size in m.dt.reg(n) or []:
                if base < reg[0] + reg[1] and reg[0] < base + size:
                    return True
    return False


def check_vdev_regions(m: Model) -> list[Check]:
    """vdevNvringM carveouts: present, large enough, at the vring's da."""
    if not m.cm_ok:
        return []
    cid, title = "dt.vdev_regions", "vdev regions"
    names = {r.name: r for r in m.mem_regions if m.line.is_carveout(r.name)}
    vdevs = m.rsc.vdevs if m.rsc else []
    if not vdevs:
        if any(r.name.startswith("vdev") for r in m.mem_regions):
            return [Check(cid, title, WARN, "the DT reserves vdev regions but the firmware has "
                          "no vdev in its resource table: no RPMsg device will appear.",
                          "add a RSC_VDEV entry to the firmware's resource table")]
        return []
    problems, warns = [], []
    for i, v in enumerate(vdevs):
        for k, ring in enumerate(v.vrings):
            name = f"vdev{i}vring{k}"
            need = vring_bytes(ring.num, ring.align)
            r = names.get(name)
            if r is None:
                warns.append(f"no {name} region: the kernel allocates vring {k} from its DMA pool "
                             "at an address the firmware cannot know in advance")
            elif r.reg and r.reg[1] < need:
                problems.append(f"{name} is 0x{r.reg[1]:x} bytes but vring {k} (num {ring.num}, "
                                f"align 0x{ring.align:x}) needs 0x{need:x}: \"Registered carveout "
                                "doesn't fit len request\"")
            elif r.reg and ring.da != FW_RSC_ADDR_ANY and ring.da != r.reg[0]:
                problems.append(f"vring {k} da {_hx(ring.da)} differs from {name} at "
                                f"{_hx(r.reg[0])}: \"Registered carveout doesn't fit da request\"")
    if problems:
        return [Check(cid, title, FAIL, "; ".join(problems + warns) + ".",
                      "size each vdevNvringM region for its vring (PAGE_ALIGN(vring_size(num, "
                      "align))) and keep vring da FW_RSC_ADDR_ANY or equal to the region")]
    if warns:
        return [Check(cid, title, WARN, "; ".join(warns) + ".",
                      "add no-map reserved-memory nodes vdev0vring0 and vdev0vring1 to "
                      "memory-region")]
    return [Check(cid, title, PASS, "vring regions are present, at the vrings' device addresses "
                  "and large enough for the firmware's vdev(s).")]


def rpmsg_buffer_bytes(num: int) -> int:
    """Bytes virtio_rpmsg_bus rpmsg_probe() allocates for a vdev whose vrings have ``num``
    entries, rounded as the per-device coherent pool hands them out.

    Source: drivers/rpmsg/virtio_rpmsg_bus.c (Linux 6.1) rpmsg_probe(): ``num_bufs = num * 2``
    when ``num < MAX_RPMSG_NUM_BUFS / 2`` else 512, times MAX_RPMSG_BUF_SIZE (512);
    kernel/dma/coherent.c __dma_alloc_from_coherent() takes ``1 << get_order(size)`` pages.
    """
    bufs = num * 2 if num < MAX_RPMSG_NUM_BUFS // 2 else MAX_RPMSG_NUM_BUFS
    total = bufs * MAX_RPMSG_BUF_SIZE
    pages = max(1, -(-total // PAGE_SIZE))
    return PAGE_SIZE * (1 << (pages - 1).bit_length())


def _buffer_pool(m: Model, index: int) -> tuple[MemRegion | None, str, bool]:
    """Which memory-region entry serves vdev ``index``'s RPMsg buffers on this line.

    Returns:
        ``(entry or None, how, dedicated)``: ``how`` says which kernel path picked it;
        ``dedicated`` is True for a named carveout (failure is fatal), False for the
        memory-region[0] fallback (failure is ignored).
    """
    ln = m.line
    for pattern in ln.buffer_carveouts:
        name = pattern.replace("{index}", str(index))
        r = next((x for x in m.mem_regions if x.name == name and x.reg
                  and ln.is_carveout(x.name)), None)
        if r is not None:
            return r, (f"the carveout \"{name}\" (rproc_find_carveout_by_name, "
                       f"{ln.where(ln.buffer_source)})"), True
    first = m.mem_regions[0] if m.mem_regions else None
    return first, (f"memory-region[0] (no \"{ln.buffer_carveouts[0].replace('{index}', str(index))}"
                   f"\" carveout, so of_reserved_mem_device_init_by_idx(dev, np, 0), "
                   f"{ln.where(ln.buffer_fallback_source)})"), False


def check_vdev_buffer(m: Model) -> list[Check]:
    """The pool virtio_rpmsg_bus allocates its 512-byte buffers from, per kernel line."""
    if not m.cm_ok or m.rsc is None or not m.rsc.vdevs:
        return []
    cid, title = "dt.vdev_buffer", "vdev buffer"
    ln = m.line
    out_fail, out_warn, out_pass = [], [], []
    for i, v in enumerate(m.rsc.vdevs):
        if v.fields["id"] != VIRTIO_ID_RPMSG or not v.vrings:
            continue
        need = rpmsg_buffer_bytes(v.vrings[0].num)
        r, how, dedicated = _buffer_pool(m, i)
        unused = [x for x in m.mem_regions if x.name == f"vdev{i}buffer" and x is not r]
        note = ""
        if unused:
            note = (f" The node named vdev{i}buffer (memory-region[{unused[0].index}]) is not "
                    f"used for them on {ln.kernel}: imx_rproc_prepare() skips it "
                    f"({ln.where(ln.prepare_source)}), so no carveout carries that name; only "
                    "its position would count.")
        sizes = (f"vring num {v.vrings[0].num} -> virtio_rpmsg_bus allocates 0x{need:x} bytes "
                 f"({ln.where('virtio_rpmsg_bus.c:906')})")
        if r is None:
            out_warn.append(f"vdev {i}: no memory-region, so the RPMsg buffers ({sizes}) come "
                            f"from the kernel's default DMA pool, wherever it is.{note}")
            continue
        dedicated_pool = dedicated and (r.dma_pool or "{index}" in _pattern_of(m, r.name))
        if not dedicated and not r.dma_pool:
            out_warn.append(f"vdev {i}: the buffers come from {how}, but \"{r.name}\" is not a "
                            "shared-dma-pool, so that call fails (ignored) and the buffers come "
                            f"from the kernel's default DMA pool ({sizes}).{note}")
            continue
        if dedicated and not dedicated_pool:
            out_fail.append(f"vdev {i}: the buffers come from {how}, but \"{r.name}\" is not "
                            "compatible \"shared-dma-pool\": \"Can't associate reserved memory\" "
                            f"and the vdev is not added.{note}")
            continue
        size = r.reg[1] if r.reg else 0
        if size < need:
            out_fail.append(f"vdev {i}: the buffers come from {how}, \"{r.name}\" "
                            f"({_hx(r.reg[0]) if r.reg else '?'}+0x{size:x}), smaller than the "
                            f"0x{need:x} bytes needed ({sizes}): dma_alloc_coherent() fails and "
                            "rpmsg_probe() returns -ENOMEM, so no RPMsg channel appears. (A "
                            "per-device pool does not fall back to other memory.){note}")
        else:
            out_pass.append(f"vdev {i}: the buffers come from {how}, \"{r.name}\" "
                            f"(0x{size:x} bytes) holds the 0x{need:x} bytes needed ({sizes})."
                            f"{note}")
    remedy = (f"on {ln.kernel} list the shared-dma-pool buffer node first in memory-region "
              f"(at least 0x{rpmsg_buffer_bytes(256):x} bytes for 256-entry vrings)")
    if out_fail:
        return [Check(cid, title, FAIL, " ".join(out_fail + out_warn), remedy)]
    if out_warn:
        return [Check(cid, title, WARN, " ".join(out_warn + out_pass), remedy)]
    if out_pass:
        return [Check(cid, title, PASS, " ".join(out_pass))]
    return []


def _pattern_of(m: Model, name: str) -> str:
    return next((p for p in m.line.buffer_carveouts
                 if re.fullmatch(re.escape(p).replace(r"\{index\}", r"\d+"), name)), "")


def _mbox_specs(m: Model, node: DtNode) -> list[tuple[int, tuple[int, ...]]] | None:
    cells = node.cells("mboxes")
    if cells is None or m.dt is None:
        return None
    out, i = [], 0
    while i < len(cells):
        prov = m.dt.by_phandle(cells[i])
        n = prov.u32("#mbox-cells") if prov else None
        if n is None or i + 1 + n > len(cells):
            return None
        out.append((cells[i], tuple(cells[i + 1:i + 1 + n])))
        i += 1 + n
    return out


def check_mbox(m: Model) -> list[Check]:
    """imx_rproc_xtr_mbox_init(): the "tx" and "rx" MU channels."""
    if not m.cm_ok or m.cm is None:
        return []
    cid, title = "dt.mbox", "MU mailboxes"
    cm, ln = m.cm, m.line
    names = cm.strings("mbox-names")
    specs = _mbox_specs(m, cm)
    has_vdev = bool(m.rsc and m.rsc.vdevs)
    if "mbox-names" not in cm.props:
        return [Check(cid, title, WARN if has_vdev else PASS,
                      f"{cm.path} has no mbox-names, so imx_rproc_xtr_mbox_init() uses no MU: "
                      + ("kicks fail with \"No initialized mbox tx channel\" and RPMsg never "
                         "starts." if has_vdev else "fine for a firmware without a vdev."),
                      "add mbox-names = \"tx\", \"rx\", \"rxdb\" and mboxes = <&mu 0 1 &mu 1 1 "
                      "&mu 3 1>" if has_vdev else "")]
    problems = []
    if specs is None:
        problems.append("mboxes is missing or does not parse with the providers' #mbox-cells")
    elif len(specs) != len(names):
        problems.append(f"{len(names)} mbox-names but {len(specs)} mboxes specifiers")
    for need in ln.mbox_names:
        if need not in names:
            problems.append(f"mbox-names lacks \"{need}\" (\"failed to request {need} mailbox "
                            f"channel\", {ln.where(ln.mbox_source)})")
    if problems:
        return [Check(cid, title, FAIL if ln.mbox_fatal else WARN,
                      f"{cm.path}: " + "; ".join(problems) + "."
                      + ("" if ln.mbox_fatal else f" {ln.kernel} probes anyway, without kicks."),
                      "list one mboxes specifier per mbox-names entry: \"tx\", \"rx\", \"rxdb\"")]
    return [Check(cid, title, PASS, f"{cm.path}: mbox-names {names} match "
                  f"{len(specs or [])} mboxes specifiers.")]


def check_rpmsg_nodes(m: Model) -> list[Check]:
    """NXP imx_rpmsg nodes: MU channels shared with the cm node, and their vring reg."""
    if not m.cm_ok or m.cm is None or m.dt is None:
        return []
    dt, cm = m.dt, m.cm
    nodes = dt.compatible(lambda c: bool(_RPMSG_COMPAT.match(c)))
    out = []
    cm_specs = set(_mbox_specs(m, cm) or []) if "mbox-names" in cm.props else set()
    for n in nodes:
        specs = set(_mbox_specs(m, n) or [])
        shared = sorted(cm_specs & specs)
        if n.status_ok and shared:
            chans = ", ".join(
                f"<{dt.nodes[dt.phandles[p]].name if p in dt.phandles else hex(p)} "
                + " ".join(map(str, a)) + ">" for p, a in shared)
            out.append(Check(
                "dt.mu_conflict", "MU channel conflict", FAIL,
                f"{n.path} (imx_rpmsg, enabled) and {cm.path} (imx_rproc) request the same MU "
                f"channel(s) {chans}; the mailbox core gives a channel to one client only, so "
                "whichever probes second gets -EBUSY (imx_rproc: \"failed to request tx mailbox "
                "channel\", probe error -16).",
                f"use one RPMsg transport: disable {n.path} (status = \"disabled\") when "
                "remoteproc owns the vdev, or drop mbox-names/mboxes from the cm node (then the "
                "cm node uses no MU)"))
        elif n.status_ok:
            out.append(Check("dt.mu_conflict", "MU channel conflict", PASS,
                             f"{n.path} and {cm.path} share no MU channel."))
        out.append(_rpmsg_reg(m, n))
    return out


def _rpmsg_reg(m: Model, n: DtNode) -> Check:
    cid, title = "dt.rpmsg_node", "imx_rpmsg node"
    vdev_nums = n.u32("vdev-nums", 1) or 1
    need = vdev_nums * RPMSG_BYTES_PER_VDEV
    reg = m.dt.reg(n) if m.dt is not None else None
    status = n.strings("status")[0] if n.strings("status") else "okay"
    bad = FAIL if n.status_ok else WARN
    if reg is None:
        return Check(cid, title, bad, f"{n.path} (status \"{status}\") has no usable reg: NXP "
                     "imx_rpmsg fails with \"No vring buffer\" (probe error -12).",
                     f"give it reg = <base 0x{need:x}> over a no-map reserved-memory region "
                     f"({vdev_nums} x 0x10000 for vdev-nums = {vdev_nums})")
    base, size = reg[0]
    if size < need:
        return Check(cid, title, bad, f"{n.path} (status \"{status}\") reg size 0x{size:x} is "
                     f"smaller than vdev-nums ({vdev_nums}) x 0x10000 = 0x{need:x}: NXP imx_rpmsg "
                     "prints \"Too small memory size\" and \"No vring buffer\" (probe error -12).",
                     f"set reg = <{_hx(base)} 0x{need:x}> or lower vdev-nums")
    if not n.status_ok:
        return Check(cid, title, WARN, f"{n.path} has status \"{status}\": imx_rpmsg does not "
                     "probe. Some U-Boot board files disable it at boot unless the M core was "
                     "started by bootaux (ft_board_setup), so check /proc/device-tree on the "
                     "target too.",
                     "set status = \"okay\" if the NXP RPMsg transport is wanted; leave it "
                     "disabled when remoteproc provides the vdev")
    return Check(cid, title, PASS, f"{n.path}: reg {_hx(base)}+0x{size:x} holds vdev-nums "
                 f"({vdev_nums}) x 0x10000.")


#: Every check, in report order.  Each is independent of the others.
CHECKS: tuple[CheckFn, ...] = (
    check_elf_header, check_segments, check_memsz0, check_resource_table, check_addresses,
    check_overlaps, check_ddr_alias, check_rsc_location, check_boot_vector, check_kernel,
    check_dt_given, check_cm_node, check_clocks, check_syscon, check_memory_regions,
    check_vdev_regions, check_vdev_buffer, check_mbox, check_rpmsg_nodes,
)

__all__ = ["CHECKS", "CheckFn", "Region", "rpmsg_buffer_bytes", "segment_rows"]
