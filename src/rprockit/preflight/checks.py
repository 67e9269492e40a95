"""The pre-flight checks: each ``check_*`` is a function ``Model -> list[Check]``.

Every check reads only the immutable :class:`~rprockit.preflight.model.Model`; none reads
another's result, so they run in any order (:data:`CHECKS` is the report order).  This
module holds the image checks (ELF, resource table, address translation, overlaps, boot
vector, kernel tree); the device-tree checks are in :mod:`rprockit.preflight.dtchecks`.

Kernel facts are from Linux 6.1 unless stated: drivers/remoteproc/imx_rproc.c
(imx_rproc_da_to_sys, imx_rproc_da_to_va, imx_rproc_addr_init, imx_rproc_parse_fw),
remoteproc_core.c (rproc_da_to_va), remoteproc_elf_loader.c (rproc_elf_load_segments,
rproc_elf_find_loaded_rsc_table).  Per-kernel-line facts come from the model's
:class:`~rprockit.preflight.driver.DriverLine`, each with its source line.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from .dtchecks import (
    check_clocks,
    check_cm_node,
    check_dt_given,
    check_mbox,
    check_memory_regions,
    check_rpmsg_nodes,
    check_syscon,
    check_vdev_buffer,
    check_vdev_regions,
    rpmsg_buffer_bytes,
)
from .model import Model, Placement, Region, hx
from .report import FAIL, PASS, WARN, Check, SegmentRow
from .rsctable import FW_RSC_ADDR_ANY, VIRTIO_ID_RPMSG, VIRTIO_RPMSG_F_NS

CheckFn = Callable[[Model], list[Check]]


_hx = hx


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
                         f"{k.imx_rproc_source} has no \"{compat}\" match with "
                         "an ATT, so imx_rproc does not bind to the cm node on this kernel.",
                         f"use a kernel whose imx_rproc_of_match lists {compat} (mainline 6.1 "
                         "does)"))
        return out
    ours = {(e.da, e.sa, e.size, e.own) for e in m.soc.att.entries}
    theirs = {(e.da, e.sa, e.size, e.own) for e in tree_att.entries}
    if ours == theirs:
        out.append(Check(cid, title, PASS, f"{tree_att.name} in {k.imx_rproc_source} "
                         f"({k.family}) matches {m.soc.att.source}."))
        return out

    def fmt(rows: list[tuple[int, int, int, bool]]) -> str:
        return "; ".join(f"da {_hx(d)} -> sa {_hx(a)} size 0x{z:x}{' OWN' if o else ''}"
                         for d, a, z, o in rows) or "none"

    out.append(Check(cid, title, WARN,
                     f"{tree_att.name} in {k.imx_rproc_source} ({k.family} {k.version_str}) "
                     f"differs from {m.soc.att.source}; the checks above used the tree's "
                     f"table. Only in the tree: {fmt(sorted(theirs - ours))}. Only in 6.1: "
                     f"{fmt(sorted(ours - theirs))}.",
                     "link for the table of the kernel you deploy; see the findings above"))
    return out


CHECKS: tuple[CheckFn, ...] = (
    check_elf_header, check_segments, check_memsz0, check_resource_table, check_addresses,
    check_overlaps, check_ddr_alias, check_rsc_location, check_boot_vector, check_kernel,
    check_dt_given, check_cm_node, check_clocks, check_syscon, check_memory_regions,
    check_vdev_regions, check_vdev_buffer, check_mbox, check_rpmsg_nodes,
)

__all__ = ["CHECKS", "CheckFn", "Region", "rpmsg_buffer_bytes", "segment_rows"]
