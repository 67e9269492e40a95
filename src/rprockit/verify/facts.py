"""Target facts: what the running system says about the M core, read-only.

Collected in one shell command (works on busybox, a serial console or SSH) and
compared with the device tree that was built:

* ``/proc/cmdline`` (``clk-imx8m*.mcore_booted``: without it Linux gates the M
  core's clocks on i.MX8M; Linux 6.1 drivers/clk/imx/clk-composite-8m.c);
* the live device tree (``/sys/firmware/devicetree/base``, else ``/proc/device-tree``):
  root compatible, the cm4/cm7 (``fsl,imx*-cm*``) and rpmsg (``fsl,imx*-rpmsg``)
  nodes with their status, the reserved-memory regions;
* loaded modules (``/proc/modules``), kernel taint, remoteproc instances (name,
  state, firmware) and RPMsg devices.

Findings compare the live tree with the built DTB: a node enabled in the DTB
but disabled or absent at run time means the bootloader changed or replaced the
tree (U-Boot's ``ft_board_setup()`` on Colibri i.MX7 disables ``fsl,imx7d-rpmsg``
when it did not start the M4: field report 04).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..preflight.dt import load_dtb
from ..preflight.soc import SOCS, load_soc
from ..workspace import write_json_atomic
from .target_shell import TargetShell, images_env, open_shell

#: DT compatible of an M core node or an RPMsg node (imx_rproc_of_match and
#: NXP imx_rpmsg_dt_ids use fsl,imx<soc>-cm<n> / fsl,imx<soc>-rpmsg).
NODE_COMPAT_RE = re.compile(r"^fsl,imx[0-9a-z]+-(cm\d+|rpmsg)$")

_DT = "DT=/sys/firmware/devicetree/base; [ -d $DT ] || DT=/proc/device-tree; "
#: The collection, one read-only shell command per entry (each well under the
#: 1024-byte line limit of busybox's line editor, FEATURE_EDITING_MAX_LEN, so it
#: also works on a serial console); each prints tagged ``KEY|...`` lines.
FACTS_COMMANDS = (
    ('echo "RELEASE|$(uname -r)"; echo "CMDLINE|$(cat /proc/cmdline 2>/dev/null)"; '
     'echo "TAINT|$(cat /proc/sys/kernel/tainted 2>/dev/null)"'),
    (_DT + 'if [ -d $DT ]; then echo "ROOT|$(tr "\\000" " " 2>/dev/null < $DT/compatible)"; '
     'for f in $(grep -rlE "fsl,imx[0-9a-z]+-(cm[0-9]+|rpmsg)" $DT/ 2>/dev/null '
     '| grep "/compatible$"); do d=${f%/compatible}; echo "NODE|${d#$DT}|$(tr "\\000" " " '
     '< $f)|$(tr -d "\\000" 2>/dev/null < $d/status)"; done; else echo "NODT|"; fi'),
    (_DT + 'R=$DT/reserved-memory; if [ -d $R ]; then echo "RCELLS|$(od -An -tx1 -v '
     '$R/#address-cells | tr -d " \\n")|$(od -An -tx1 -v $R/#size-cells | tr -d " \\n")"; '
     'for n in $R/*; do [ -d $n ] || continue; echo "RMEM|${n##*/}|$(od -An -tx1 -v $n/reg '
     '2>/dev/null | tr -d " \\n")|$([ -e $n/no-map ] && echo no-map)|$(tr "\\000" " " 2>/dev/null '
     '< $n/compatible)|$(tr -d "\\000" 2>/dev/null < $n/status)"; done; fi'),
    ('while read -r m rest; do echo "MOD|$m $rest"; done 2>/dev/null < /proc/modules; '
     'for d in /sys/class/remoteproc/remoteproc*; do [ -d $d ] && echo "RPROC|${d##*/}|'
     '$(cat $d/name)|$(cat $d/state)|$(cat $d/firmware)|$(cat $d/recovery 2>/dev/null)"; done; '
     'for d in /sys/bus/rpmsg/devices/*; do [ -e $d ] && echo "RPMSG|${d##*/}"; done; true'),
)


@dataclass
class DtNodeFact:
    """A cm/rpmsg node: path, compatible strings, status in the live tree and the built DTB."""

    path: str
    compatible: list[str]
    live_status: str | None
    built_status: str | None = None


@dataclass
class Region:
    """A reserved-memory child node (addresses in bytes)."""

    name: str
    base: int | None
    size: int | None
    no_map: bool
    compatible: str = ""
    status: str = ""
    in_built_dtb: bool | None = None


@dataclass
class Finding:
    """A conclusion drawn from the facts: severity ``fail`` | ``warn`` | ``info``."""

    severity: str
    text: str
    signature: str | None = None


@dataclass
class Facts:
    """Everything collected from the target.

    Attributes:
        release: ``uname -r``.
        cmdline: ``/proc/cmdline``.
        mcore_booted: value of a ``clk-imx8m*.mcore_booted=`` parameter, or None.
        taint: ``/proc/sys/kernel/tainted`` (int), or None.
        soc: the SoC from the root compatible (``imx7d``), or None.
        devicetree: False when the target has no live device tree (e.g. an x86 host).
        nodes: cm/rpmsg nodes.
        reserved: reserved-memory regions.
        modules: loaded modules ``{name: {"size": bytes, "used_by": [...], "state": ...}}``.
        remoteprocs: ``[{instance, name, state, firmware, recovery}]``.
        rpmsg_devices: names under /sys/bus/rpmsg/devices.
        built_dtb: the DTB compared with, or None.
        findings: conclusions.
    """

    release: str = ""
    cmdline: str = ""
    mcore_booted: str | None = None
    taint: int | None = None
    soc: str | None = None
    devicetree: bool = True
    nodes: list[DtNodeFact] = field(default_factory=list)
    reserved: list[Region] = field(default_factory=list)
    modules: dict[str, dict] = field(default_factory=dict)
    remoteprocs: list[dict] = field(default_factory=list)
    rpmsg_devices: list[str] = field(default_factory=list)
    built_dtb: str | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Any finding of severity ``fail``."""
        return any(f.severity == "fail" for f in self.findings)

    def cm_nodes(self, enabled_only: bool = True) -> list[DtNodeFact]:
        """Live M core nodes (``fsl,imx*-cm*``), enabled ones by default."""
        return [n for n in self.nodes if any("-cm" in c for c in n.compatible)
                and n.live_status is not None
                and (not enabled_only or n.live_status in ("", "okay", "ok"))]

    def to_dict(self) -> dict:
        """JSON-able form (format 1)."""
        return {"format": 1, **asdict(self), "failed": self.failed}

    def render(self) -> str:
        """A human table of the facts and findings."""
        rows = [("kernel", self.release), ("cmdline", self.cmdline),
                ("mcore_booted", self.mcore_booted if self.mcore_booted is not None
                 else "(not on the command line)"),
                ("taint", str(self.taint)), ("soc", self.soc or "?"),
                ("built DTB", self.built_dtb or "(none compared)")]
        if not self.devicetree:
            rows.append(("device tree", "none on the target"))
        for n in self.nodes:
            state = f"live {_st(n.live_status)}, built {_st(n.built_status)}"
            rows.append((f"node {n.path}", f"{' '.join(n.compatible)}: {state}"))
        for r in self.reserved:
            where = ("" if r.in_built_dtb is None else
                     " (in built DTB)" if r.in_built_dtb else " (NOT in built DTB)")
            desc = (f"{_hx(r.base)}+{_hx(r.size)}{' no-map' if r.no_map else ''}"
                    f"{' ' + r.compatible if r.compatible else ''}{where}")
            rows.append((f"reserved {r.name}", desc))
        rows.append(("modules", " ".join(sorted(self.modules)) or "(none)"))
        for rp in self.remoteprocs:
            desc = f"name {rp['name']}, state {rp['state']}, firmware {rp['firmware']}"
            rows.append((rp["instance"], desc))
        if not self.remoteprocs:
            rows.append(("remoteproc", "(none)"))
        rows.append(("rpmsg devices", " ".join(self.rpmsg_devices) or "(none)"))
        for f in self.findings:
            rows.append((f.severity.upper(), f.text + (f" [{f.signature}]" if f.signature else "")))
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows) + "\n"


def _st(s: str | None) -> str:
    return "absent" if s is None else (s or "okay (no status)")


def _hx(v: int | None) -> str:
    return "?" if v is None else f"0x{v:x}"


def _cells(hexstr: str, default: int) -> int:
    return int(hexstr, 16) if hexstr else default


def _reg(hexstr: str, ac: int, sc: int) -> tuple[int | None, int | None]:
    if not hexstr or len(hexstr) < 8 * (ac + sc):
        return None, None
    words = [int(hexstr[i:i + 8], 16) for i in range(0, len(hexstr), 8)]
    base = size = 0
    for w in words[:ac]:
        base = (base << 32) | w
    for w in words[ac:ac + sc]:
        size = (size << 32) | w
    return base, size


def parse_facts(text: str) -> Facts:
    """Parse the output of :data:`FACTS_SCRIPT` (tagged ``KEY|...`` lines)."""
    f = Facts()
    ac, sc = 1, 1
    for line in text.splitlines():
        tag, _, rest = line.partition("|")
        parts = rest.split("|")
        if tag == "RELEASE":
            f.release = rest.strip()
        elif tag == "CMDLINE":
            f.cmdline = rest.strip()
            m = re.search(r"\bclk[-_]imx8m[mnpq]\.mcore_booted=(\S+)", f.cmdline)
            f.mcore_booted = m.group(1) if m else None
        elif tag == "TAINT" and rest.strip().isdigit():
            f.taint = int(rest.strip())
        elif tag == "ROOT":
            m = re.search(r"fsl,(imx[0-9a-z]+)\b", rest)
            f.soc = m.group(1) if m else None
        elif tag == "NODT":
            f.devicetree = False
        elif tag == "NODE" and len(parts) >= 3:
            f.nodes.append(DtNodeFact(parts[0], parts[1].split(), parts[2].strip()))
        elif tag == "RCELLS" and len(parts) >= 2:
            ac, sc = _cells(parts[0], 1), _cells(parts[1], 1)
        elif tag == "RMEM" and len(parts) >= 5:
            base, size = _reg(parts[1], ac, sc)
            f.reserved.append(Region(parts[0], base, size, parts[2] == "no-map",
                                     parts[3].strip(), parts[4].strip()))
        elif tag == "MOD":
            w = rest.split()
            if len(w) >= 5:
                f.modules[w[0]] = {"size": int(w[1]) if w[1].isdigit() else None,
                                   "used_by": [u for u in w[3].split(",") if u and u != "-"],
                                   "state": w[4]}
        elif tag == "RPROC" and len(parts) >= 5:
            f.remoteprocs.append(dict(zip(("instance", "name", "state", "firmware",
                                           "recovery"), parts, strict=False)))
        elif tag == "RPMSG":
            f.rpmsg_devices.append(rest.strip())
    return f


def compare_with_dtb(facts: Facts, dtb: Path) -> None:
    """Fill the built-DTB columns of ``facts`` and add findings.

    Args:
        facts: from :func:`parse_facts`.
        dtb: the DTB the build produced for this board.

    Raises:
        DtbFileError: the DTB cannot be read.
    """
    tree = load_dtb(dtb)
    facts.built_dtb = str(dtb)
    live = {n.path: n for n in facts.nodes}
    for node in tree.nodes.values():
        compat = node.strings("compatible")
        if not any(NODE_COMPAT_RE.match(c) for c in compat):
            continue
        status = (node.strings("status") or [""])[0]
        fact = live.get(node.path)
        if fact is None:
            fact = DtNodeFact(node.path, compat, None)
            facts.nodes.append(fact)
        fact.built_status = status
        if facts.devicetree and node.status_ok and fact.live_status is None:
            facts.findings.append(Finding("fail", f"{node.path} ({compat[0]}) is enabled in "
                                          f"{dtb.name} but absent from the running device tree: "
                                          "the board booted another DTB"))
        elif node.status_ok and fact.live_status not in (None, "", "okay", "ok"):
            why = (" (U-Boot's ft_board_setup() disables the rpmsg node when it did not start "
                   "the M core: start it from U-Boot or remove that fixup)"
                   if compat[0].endswith("-rpmsg") else "")
            facts.findings.append(Finding("fail", f"{node.path} is enabled in {dtb.name} but "
                                          f"'{fact.live_status}' at run time: the bootloader "
                                          f"changed the device tree{why}"))
    resmem = tree.nodes.get("/reserved-memory")
    built: dict[str, tuple[int | None, int | None]] = {}
    if resmem is not None:
        for n in tree.nodes.values():
            if n.parent == "/reserved-memory":
                regs = tree.reg(n)
                built[n.name] = regs[0] if regs else (None, None)
    for r in facts.reserved:
        r.in_built_dtb = built.get(r.name) == (r.base, r.size) if built else None
    live_names = {r.name for r in facts.reserved}
    for name, (base, size) in built.items():
        if facts.devicetree and name not in live_names:
            facts.findings.append(Finding("fail", f"reserved-memory {name} ({_hx(base)}+"
                                          f"{_hx(size)}) of {dtb.name} is not in the running "
                                          "device tree"))


def judge(facts: Facts) -> None:
    """Add findings that need no DTB (i.MX8M clock gating, taint, remoteproc presence)."""
    imx8m = bool(facts.soc and re.match(r"imx8m[mnpq]$", facts.soc))
    if imx8m and facts.cm_nodes() and facts.mcore_booted in (None, "0", "n", "N"):
        facts.findings.append(Finding(
            "warn", f"{facts.soc}: clk-{facts.soc}.mcore_booted=1 is not on the kernel "
            "command line; Linux gates the M core's clocks and loading firmware may stall "
            "the CPU", "imx8m-mcore-clock-stall"))
    if facts.cm_nodes() and not facts.remoteprocs:
        facts.findings.append(Finding("info", "an M core node is enabled but no remoteproc "
                                      "instance exists (imx_rproc not loaded or probe failed)"))


def soc_compatibles() -> set[str]:
    """cm and rpmsg compatibles of every SoC rprockit knows (data/soc/*.yaml)."""
    out = set()
    for name in SOCS:
        soc = load_soc(name)
        out |= {soc.cm_compatible, soc.rpmsg_compatible}
    return out


def collect_facts(shell: TargetShell, dtb: Path | None = None) -> Facts:
    """Collect the facts through ``shell`` (read-only) and judge them.

    Args:
        shell: a shell on the target.
        dtb: the built DTB to compare the live tree with, or None.

    Returns:
        The facts with findings.
    """
    facts = parse_facts("\n".join(shell.check(cmd, timeout=60) for cmd in FACTS_COMMANDS))
    if dtb is not None:
        compare_with_dtb(facts, dtb)
    judge(facts)
    return facts


def find_dtb(target_env: Path, images: Path | None) -> Path | None:
    """The DTB the target boots, when the build made it: the environment's ``dtb``
    image, else the only ``*.dtb`` in ``images/dtbs``."""
    from labgrid.environment import Environment

    try:
        with images_env(images):
            path = Environment(str(target_env)).config.get_image_path("dtb")
        if path and Path(path).is_file():
            return Path(path)
    except Exception:
        pass
    if images is not None:
        dtbs = sorted((images / "dtbs").glob("*.dtb"))
        if len(dtbs) == 1:
            return dtbs[0]
    return None


def run_facts(target_env: Path, images: Path | None = None, out_dir: Path | None = None,
              dtb: Path | None = None, role: str = "main",
              accept_new_host_key: bool = False) -> Facts:
    """Collect the target facts report without changing anything on the target.

    Boots the emulated board when the environment file has a QEMUDriver (and stops
    it afterwards); connects over SSH with verified host keys when it has a
    NetworkService; otherwise uses its serial ShellDriver.

    Args:
        target_env: labgrid environment file.
        images: directory exposed as ``$LG_RPROCKIT_IMAGES`` (the build's artifacts).
        out_dir: when given, ``facts.json`` and ``facts.txt`` are written there.
        dtb: the built DTB to compare with (default: the environment's ``dtb`` image,
            else the only ``images/dtbs/*.dtb``).
        role: the labgrid target name.
        accept_new_host_key: record an unknown SSH host key instead of refusing it.

    Returns:
        The facts (``.to_dict()`` for JSON, ``.render()`` for the table).

    Raises:
        UserError: bad environment file (InvalidFileError), SSH host key unknown or
            changed, target unreachable.
    """
    from labgrid.environment import Environment

    from ..place import acquired_env

    dtb = dtb or find_dtb(target_env, images)
    with acquired_env(target_env, role=role), images_env(images):
        env = Environment(str(target_env))
        target = env.get_target(role)
        try:
            with open_shell(target, target_env, accept_new_host_key) as shell:
                facts = collect_facts(shell, dtb)
        finally:
            target.cleanup()
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "facts.json", facts.to_dict())
        (out_dir / "facts.txt").write_text(facts.render())
    return facts
