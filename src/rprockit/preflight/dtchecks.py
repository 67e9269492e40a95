"""The device-tree checks: what imx_rproc needs from the cm node to probe and to boot.

Each ``check_*`` is a function ``Model -> list[Check]`` like those of
:mod:`rprockit.preflight.checks`, reading only the model.  The requirements that differ per
kernel line (clock lookup, syscon, mailbox names, memory-region names, the RPMsg buffer
pool) come from the model's :class:`~rprockit.preflight.driver.DriverLine`, each with its
source line; the others are from Linux 6.1 drivers/remoteproc/imx_rproc.c,
remoteproc_core.c (rproc_alloc_vring, rproc_check_carveout_da), remoteproc_virtio.c
(rproc_add_virtio_dev), drivers/rpmsg/virtio_rpmsg_bus.c (rpmsg_probe), kernel/dma/coherent.c
and drivers/mailbox/mailbox.c (a channel already bound returns -EBUSY); the imx_rpmsg facts
are from NXP linux-imx drivers/rpmsg/imx_rpmsg.c.
"""

from __future__ import annotations

import re

from .dt import DtNode
from .model import MemRegion, Model, hx
from .report import FAIL, PASS, WARN, Check
from .rsctable import FW_RSC_ADDR_ANY, VIRTIO_ID_RPMSG, vring_bytes

#: Bytes imx_rpmsg (NXP linux-imx drivers/rpmsg/imx_rpmsg.c set_vring_phy_buf) uses per vdev:
#: vring0 at +0, vring1 at +0x8000.
RPMSG_BYTES_PER_VDEV = 0x10000
#: drivers/rpmsg/virtio_rpmsg_bus.c: MAX_RPMSG_NUM_BUFS, MAX_RPMSG_BUF_SIZE (bytes).
MAX_RPMSG_NUM_BUFS, MAX_RPMSG_BUF_SIZE = 512, 512
PAGE_SIZE = 4096

_RPMSG_COMPAT = re.compile(r"^fsl,imx[0-9a-z]*-rpmsg$")
_hx = hx


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
            elif r.reg and (seen := firmware_view(m, r.reg[0], r.reg[1])):
                problems.append(f"{name}: {seen}")
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


def firmware_view(m: Model, sys: int, size: int) -> str:
    """Why the M core cannot use a shared region at the address Linux gives it, or "".

    imx_rproc registers memory-region carveouts with ``da = rmem->base`` (imx_rproc_prepare:
    "i.MX use same map"), and rproc_alloc_vring() writes that da into the vring entry, so
    the firmware accesses the system address as a device address.  That works only where the
    ATT maps the address to itself (first match, strict end, as imx_rproc_da_to_sys()).
    """
    hit = m.att.da_to_sys(sys, size)
    if hit is None:
        return (f"the firmware is told device address {_hx(sys)} (imx_rproc sets da = the "
                f"system address), which no {m.soc.name} ATT entry translates for 0x{size:x} "
                "bytes: the M core cannot reach the region")
    entry, seen = hit
    if seen != sys:
        return (f"the firmware is told device address {_hx(sys)} (imx_rproc sets da = the "
                f"system address), which ATT \"{entry.name}\" maps to system {_hx(seen)}: the "
                "M core reads other memory")
    return ""


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
        elif r.reg and (seen := firmware_view(m, r.reg[0], r.reg[1])):
            out_fail.append(f"vdev {i}: the buffers come from {how}, \"{r.name}\", but the "
                            "vring descriptors carry their system addresses and "
                            + seen.replace("the firmware is told", "the firmware reads") + ".")
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
