"""Field diagnosis: match a pasted kernel log (or a live target) against the knowledge base.

Public API::

    diag = diagnose_log(Path("dmesg.txt"), soc="imx8mp", firmware=Path("fw.elf"))
    print(diag.render()); diag.to_dict(); diag.exit_code

Input is a dmesg (with or without printk timestamps, journalctl/syslog
prefixes), a serial console log (U-Boot and shell lines mixed in, CR/LF, ANSI
colours) or a facts bundle (``facts.json`` of ``rprockit verify --facts``,
optionally with a ``kernel_log`` list).  The log tells the SoC family, the
driver (imx_rproc, imx_dsp_rproc, imx_rpmsg), the start method and the kernel
line where it can; ``--soc`` overrides.  Each finding names the log lines, the
cause, the remedy for that context and the patch, setting or pre-flight check
that addresses it (``data/signatures.yaml``).  A log without a known failure
says so and names the pre-flight checks and target facts that could say more;
they run when a firmware or a target is given.

Exit codes (:attr:`Diagnosis.exit_code`): 0 no known failure (and pre-flight
and facts, when run, found none); 3 a known failure, a failed pre-flight check
or a failed fact; 2 bad input (``UserError``); 1 a bug.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .files import read_regular
from .verify.signatures import LogContext, Match, match, soc_table

#: Largest log accepted (bytes): a full boot console is well under 1 MiB.
MAX_LOG_BYTES = 32 * 1024 * 1024
EXIT_CLEAN, EXIT_FAILURE = 0, 3

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: journalctl/syslog prefixes before the kernel text ("Jan  1 00:00:06 host user.err kernel: ")
_SYSLOG_RE = re.compile(r"^(?:\S+\s+\d+\s+[\d:]+\s+\S+\s+(?:[\w.]+\s+)?kernel:\s?)")
#: kernel release: "Linux version 6.1.55", "Tainted: G C 5.10.52-lts...",
#: "Kernel version: 6.6.54-7.1.0" (tdx-info), "RELEASE|6.1.55" (facts)
_RELEASE_RES = (re.compile(r"Linux version (\d+)\.(\d+)\S*"),
                re.compile(r"(?:Not tainted|Tainted: [A-Z ]+?)\s+(\d+)\.(\d+)\.\d+\S*"),
                re.compile(r"Kernel version:\s+(\d+)\.(\d+)\S*"),
                re.compile(r"^RELEASE\|(\d+)\.(\d+)"))
#: NXP vendor kernels: lf-5.10 "-lts-5.10.y", "-2.2.0", "imx_5.4", "-lts-next"
_VENDOR_RE = re.compile(r"\d+\.\d+\.\d+-(?:lts|imx|lf|\d+\.\d+\.\d+)|imx_\d+\.\d+")
_DRIVER_RES = (("imx_dsp_rproc", re.compile(r"imx-dsp-rproc|imx_dsp_rproc")),
               ("imx_rpmsg", re.compile(r"\bimx-rpmsg\b|imx_rpmsg\b")),
               ("imx_rproc", re.compile(r"\bimx-rproc\b|imx_rproc")))
#: A line that shows the remote processor came up (the log is not silent about remoteproc).
_UP_RE = re.compile(r"remote processor \S+ is now up|attaching to \S+|rpmsg host is online")


@dataclass
class LogInput:
    """What was read.

    Attributes:
        source: file name, ``-`` for stdin, or ``target:<env>``.
        kind: ``dmesg``, ``console`` or ``facts``.
        lines: the normalised log lines (prefixes stripped, no empty lines).
        facts: a facts dictionary (format 1 of ``verify --facts``), or None.
    """

    source: str
    kind: str
    lines: list[str]
    facts: dict | None = None


@dataclass
class Diagnosis:
    """Result of :func:`diagnose`.

    Attributes:
        input: what was read.
        context: SoC family, driver, start method, kernel line (each may be None).
        findings: knowledge-base matches (failures, then suspects, in log order).
        needs: pre-flight checks and target facts that would say more.
        preflight: the pre-flight report (``to_dict()``) when a firmware was given.
        facts: the target facts (``to_dict()``) when a target or bundle was given.
        notes: things the user should know (unsupported SoC for pre-flight, ...).
        seconds: time taken by the diagnosis (not the target collection).
    """

    input: LogInput
    context: LogContext
    findings: list[Match]
    needs: dict[str, list[str]]
    preflight: dict | None = None
    facts: dict | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[Match]:
        """Findings of kind ``failure``."""
        return [m for m in self.findings if m.kind == "failure"]

    @property
    def verdict(self) -> str:
        """``failure``, ``suspect`` or ``no-known-failure`` (log, pre-flight and facts)."""
        pre, facts = self.preflight or {}, self.facts or {}
        if self.failures or pre.get("failed") or facts.get("failed"):
            return "failure"
        if self.findings:
            return "suspect"
        return "no-known-failure"

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, 3 when a known failure (log, pre-flight or facts) was found."""
        return EXIT_FAILURE if self.verdict == "failure" else EXIT_CLEAN

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``schemas/diagnose.json``, format 1)."""
        c = self.context
        return {
            "format": 1,
            "input": {"source": self.input.source, "kind": self.input.kind,
                      "lines": len(self.input.lines)},
            "context": {"soc": c.soc, "family": c.family, "driver": c.driver, "start": c.start,
                        "kernel": ".".join(map(str, c.kernel)) if c.kernel else None,
                        "vendor": c.vendor},
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "findings": [m.to_dict() for m in self.findings],
            "needs": self.needs,
            "preflight": self.preflight,
            "facts": ({k: v for k, v in self.facts.items() if k != "kernel_log"}
                      if self.facts is not None else None),
            "notes": self.notes,
            "seconds": round(self.seconds, 6),
        }

    def render(self) -> str:
        """Human report: context, each finding (lines, cause, remedy, fix), what else to run."""
        c = self.context
        known = ", ".join(f"{k} {v}" for k, v in (
            ("SoC", c.soc or c.family), ("driver", c.driver), ("start", c.start),
            ("kernel", ".".join(map(str, c.kernel)) if c.kernel else None),
            ("vendor", c.vendor)) if v)
        out = [f"diagnose: {self.input.source} ({self.input.kind}, {len(self.input.lines)} lines)"
               + (f"; {known}" if known else "; SoC not named in the log (give --soc)")]
        for m in self.findings:
            tag = "FAILURE" if m.kind == "failure" else "SUSPECT"
            out.append(f"\n{tag} [{m.id}]")
            out += [f"  | {ln.strip()}" for ln in m.lines]
            out.append(f"  cause:  {m.cause}")
            cond = (" (for " + ", ".join(
                f"{k} {'/'.join(v) if isinstance(v, list) else v}"
                for k, v in m.condition.items()) + ")" if m.condition else "")
            out.append(f"  remedy{cond}: {m.remedy}")
            out.append(f"  fix:    {m.fix}")
            if m.preflight:
                out.append(f"  pre-flight: {', '.join(m.preflight)}")
            out.append(f"  source: {m.source}")
        if not self.findings:
            out.append("\nno known failure in this log.")
            if any(_UP_RE.search(ln) for ln in self.input.lines):
                out.append("  remoteproc says the core is up; that does not prove it executes the "
                           "firmware (a DDR-linked vector table, gated clocks): the pre-flight "
                           "checks and the target facts below can tell.")
            else:
                out.append("  (no remoteproc start or attach line either: is this the whole log?)")
        if self.preflight is not None:
            bad = [ch for ch in self.preflight.get("checks", []) if ch["status"] != "pass"]
            out.append(f"\npre-flight {self.preflight.get('firmware')}: "
                       f"{self.preflight.get('verdict')}")
            out += [f"  {ch['status'].upper()} {ch['id']}: {ch['message']}" for ch in bad]
        if self.facts is not None:
            out.append("\ntarget facts: " + ("FAILED" if self.facts.get("failed") else "ok"))
            out += [f"  {f['severity'].upper()} {f['text']}"
                    for f in self.facts.get("findings", [])]
        if self.needs.get("preflight") or self.needs.get("facts"):
            out.append("\nto say more:")
            if self.needs.get("preflight"):
                out.append("  pre-flight (--firmware FW.elf --soc S): "
                           + ", ".join(self.needs["preflight"]))
            if self.needs.get("facts"):
                out.append("  target facts (--target env.yaml): " + ", ".join(self.needs["facts"]))
        out += [f"note: {n}" for n in self.notes]
        out.append(f"\nverdict: {self.verdict} (exit {self.exit_code})")
        return "\n".join(out) + "\n"


# -- input ------------------------------------------------------------------------------------
def _normalise(text: str) -> list[str]:
    out = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        ln = _ANSI_RE.sub("", raw).rstrip()
        ln = _SYSLOG_RE.sub("", ln)
        if ln.strip():
            out.append(ln)
    return out


def parse_text(text: str, source: str = "-") -> LogInput:
    """Normalise a log given as text; a JSON facts bundle is recognised.

    Raises:
        UserError: the text is empty.
    """
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return _facts_input(data, source)
    lines = _normalise(text)
    if not lines:
        raise UserError(f"{source}: the log is empty; paste the kernel log (dmesg) or the "
                        "serial console output of the failing attempt")
    console = any(re.match(r"^(U-Boot|=> |u-boot=>|\S+ # |root@\S+[:#])", ln) for ln in lines)
    return LogInput(source, "console" if console else "dmesg", lines)


def _facts_input(data: dict, source: str) -> LogInput:
    if data.get("format") != 1 or "release" not in data:
        raise UserError(f"{source}: a JSON file but not a facts bundle (rprockit verify --facts "
                        "writes facts.json with format 1 and release); give a text log instead")
    klog = data.get("kernel_log") or []
    if not isinstance(klog, list) or not all(isinstance(x, str) for x in klog):
        raise UserError(f"{source}: kernel_log must be a list of strings")
    lines = _normalise("\n".join(klog))
    if data.get("release"):
        lines.insert(0, f"RELEASE|{data['release']}")
    return LogInput(source, "facts", lines, data)


def read_log(path: str | Path, stdin_text: str | None = None) -> LogInput:
    """Read a log file (``-``: ``stdin_text``).

    Args:
        path: the file, or ``-``.
        stdin_text: the text read from standard input when ``path`` is ``-``.

    Returns:
        The normalised input.

    Raises:
        UserError: missing or unreadable file, a directory, a file larger than
            :data:`MAX_LOG_BYTES`, binary data, or an empty log.
    """
    if str(path) == "-":
        return parse_text(stdin_text or "", "-")
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file; give the saved kernel log (dmesg > dmesg.txt) "
                        "or '-' to read standard input")
    if p.is_dir():
        raise UserError(f"{p} is a directory; give the log file")
    if p.is_file() and p.stat().st_size > MAX_LOG_BYTES:
        raise UserError(f"{p}: {p.stat().st_size} bytes is larger than the "
                        f"{MAX_LOG_BYTES // 2**20} MiB a kernel log can be; keep the part "
                        "around the failure, e.g. grep -iE "
                        "'rproc|rpmsg|remoteproc|Oops|Unable to handle' and the lines after it")
    # a regular file only, size bounded while reading: a FIFO or /dev/zero is refused
    data = read_regular(p, MAX_LOG_BYTES, "kernel log")
    sample = data[:65536]
    if b"\x00" in sample or (sample and sum(b < 9 or 13 < b < 32 for b in sample
                                            if b != 27) > len(sample) // 10):
        raise UserError(f"{p}: binary data, not a text log (an ELF or a compressed file?); "
                        "save the kernel log as text: dmesg > dmesg.txt")
    return parse_text(data.decode("utf-8", errors="replace"), str(p))


# -- context ----------------------------------------------------------------------------------
def detect_context(lines: list[str], soc: str | None = None,
                   facts: dict | None = None) -> LogContext:
    """What the log says about the SoC, driver, start method and kernel line.

    Args:
        lines: normalised log lines.
        soc: a SoC name given by the user (``imx8mp``); overrides the log.
        facts: a facts bundle, whose ``soc`` and ``release`` are used.

    Raises:
        UserError: ``soc`` is not in the knowledge base's ``socs``.
    """
    table = soc_table()
    if soc is not None and soc not in table:
        raise UserError(f"unknown SoC '{soc}'; choose one of: {', '.join(table)}")
    found = soc or (facts or {}).get("soc")
    if found not in table:
        found = _soc_from_lines(lines, table)
    driver = next((name for name, rx in _DRIVER_RES if any(rx.search(ln) for ln in lines)), None)
    kernel = vendor = None
    for ln in lines:
        for rx in _RELEASE_RES:
            m = rx.search(ln)
            if m:
                kernel = (int(m.group(1)), int(m.group(2)))
                vendor = "nxp" if _VENDOR_RE.search(ln) else "mainline"
                break
        if kernel:
            break
    info = table.get(found or "")
    return LogContext(found, info["family"] if info else None, driver,
                      info["start"] if info else None, kernel, vendor)


def _soc_from_lines(lines: list[str], table: dict) -> str | None:
    # most specific first: a device name (imx8mp-cm7) beats a board name
    for ln in lines:
        m = re.search(r"\b(imx[0-9a-z]+)-(cm\d+|dsp|rproc|rpmsg)", ln)
        if m:
            name = "imx8qxp" if m.group(1) in ("imx8x", "imx8qx", "imx8dx") else m.group(1)
            if name in table:
                return name
    for ln in lines:
        for name, info in table.items():
            if any(rx.search(ln) for rx in info["match"]):
                return name
    return None


# -- diagnosis --------------------------------------------------------------------------------
def _needs(findings: list[Match], ctx: LogContext, clean: bool) -> dict[str, list[str]]:
    pre: list[str] = []
    facts: list[str] = []
    for m in findings:
        pre += [p for p in m.preflight if p not in pre]
        facts += [f for f in m.facts if f not in facts]
    if clean:
        # a clean log hides what only the firmware or the running system shows
        for p in ("elf.segments", "rsc.table", "boot.vector", "att.segment*", "dt.memory_region"):
            if p not in pre:
                pre.append(p)
        for f in ("remoteprocs", "nodes", "reserved", "modules"):
            if f not in facts:
                facts.append(f)
        if ctx.family == "imx8m" and "mcore_booted" not in facts:
            facts.append("mcore_booted")
    return {"preflight": pre, "facts": facts}


def diagnose(log: LogInput, soc: str | None = None, firmware: Path | None = None,
             dtb: Path | None = None, facts: dict | None = None) -> Diagnosis:
    """Match ``log`` against the knowledge base; run pre-flight when ``firmware`` is given.

    Args:
        log: from :func:`read_log` / :func:`parse_text`.
        soc: SoC name (``imx8mp``) given by the user, else taken from the log.
        firmware: the M-core ELF the log is about: runs ``rprockit.preflight``.
        dtb: the board DTB for the pre-flight device-tree checks.
        facts: target facts (``Facts.to_dict()``) collected live; a bundle's
            facts are taken from ``log``.

    Returns:
        The diagnosis.

    Raises:
        UserError: unknown SoC; the firmware or DTB cannot be read.
    """
    t0 = time.perf_counter()
    facts = facts if facts is not None else log.facts
    ctx = detect_context(log.lines, soc, facts)
    findings = match(log.lines, ctx=ctx)
    findings.sort(key=lambda m: (m.kind != "failure", m.line_no))
    clean = not any(m.kind == "failure" for m in findings)
    diag = Diagnosis(log, ctx, findings, _needs(findings, ctx, clean), facts=facts)
    if facts is not None:
        diag.needs["facts"] = []
    if firmware is not None:
        _run_preflight(diag, firmware, dtb)
    diag.seconds = time.perf_counter() - t0
    return diag


def _run_preflight(diag: Diagnosis, firmware: Path, dtb: Path | None) -> None:
    from .preflight import SOCS, check_firmware

    soc = diag.context.soc
    if soc is None:
        raise UserError("pre-flight needs the SoC and the log does not name it: give --soc "
                        f"({', '.join(SOCS)})")
    if soc not in SOCS:
        diag.notes.append(f"pre-flight knows {', '.join(SOCS)}; {soc} is not one of them, so "
                          f"{firmware} was not checked")
        return
    rep = check_firmware(Path(firmware), soc, dtb=dtb)
    d = rep.to_dict()
    d["failed"] = rep.failed
    diag.preflight = d
    diag.needs["preflight"] = []


def diagnose_log(path: str | Path, soc: str | None = None, firmware: Path | None = None,
                 dtb: Path | None = None, stdin_text: str | None = None) -> Diagnosis:
    """:func:`read_log` then :func:`diagnose` (see there for the errors)."""
    return diagnose(read_log(path, stdin_text), soc=soc, firmware=firmware, dtb=dtb)


# -- live target ------------------------------------------------------------------------------
#: The kernel log, read-only; busybox and util-linux dmesg both print it this way.
DMESG_COMMAND = "dmesg 2>/dev/null || cat /var/log/messages 2>/dev/null; true"


def collect_from_target(target_env: Path, images: Path | None = None, dtb: Path | None = None,
                        role: str = "main", accept_new_host_key: bool = False,
                        ) -> tuple[LogInput, dict]:
    """Read the kernel log and the facts from a target, changing nothing on it.

    Uses the verify facts machinery: boots the emulated board when the
    environment file has a QEMUDriver (and stops it afterwards), connects over
    SSH with verified host keys when it has a NetworkService, else uses the
    serial ShellDriver.

    Args:
        target_env: labgrid environment file.
        images: directory for ``$LG_RPROCKIT_IMAGES`` (the build's artifacts).
        dtb: the built DTB to compare the live tree with.
        role: the labgrid target name.
        accept_new_host_key: record an unknown SSH host key instead of refusing it.

    Returns:
        ``(log input, facts dictionary)``; the facts include ``kernel_log``.

    Raises:
        UserError: bad environment file, unknown/changed host key, unreachable target.
    """
    from labgrid.environment import Environment

    from .place import acquired_env
    from .verify.facts import collect_facts, find_dtb
    from .verify.target_shell import images_env, open_shell

    if not Path(target_env).is_file():
        raise UserError(f"target environment file {target_env} does not exist")
    dtb = dtb or find_dtb(Path(target_env), images)
    with acquired_env(target_env, role=role), images_env(images):
        env = Environment(str(target_env))
        target = env.get_target(role)
        if target is None:
            raise UserError(f"{target_env}: no target '{role}'")
        try:
            with open_shell(target, Path(target_env), accept_new_host_key) as shell:
                facts = collect_facts(shell, dtb)
                klog = shell.run(DMESG_COMMAND, timeout=60)[0]
        finally:
            target.cleanup()
    data = facts.to_dict()
    data["kernel_log"] = _normalise(klog)
    log = _facts_input(data, f"target:{target_env}")
    return log, data
