"""The pre-flight report: a list of checks (pass/warn/fail, each with a remedy) plus the
PT_LOAD segment table and the parsed resource table."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Any

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)


@dataclass(frozen=True)
class Check:
    """One finding.

    Attributes:
        id: stable dotted identifier, e.g. ``"att.segment1"``.
        title: short human title.
        status: ``"pass"``, ``"warn"`` or ``"fail"``.
        message: what was found (addresses in hex).
        remedy: what to change; empty for a pass.
        details: JSON-able extra data.
    """

    id: str
    title: str
    status: str
    message: str
    remedy: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"bad check status {self.status!r}")


@dataclass(frozen=True)
class SegmentRow:
    """One PT_LOAD program header and where the kernel would put it.

    Attributes:
        index: program-header index in the ELF.
        paddr: p_paddr, the device address the kernel loads to (rproc_elf_load_segments).
        vaddr: p_vaddr.
        filesz: bytes copied from the file.
        memsz: bytes occupied in memory (memsz - filesz are zeroed).
        flags: ``"RWX"`` letters from p_flags.
        sys: translated system address, or None when the ATT has no match.
        region: name of the memory region that holds it, or None.
    """

    index: int
    paddr: int
    vaddr: int
    filesz: int
    memsz: int
    flags: str
    sys: int | None = None
    region: str | None = None


@dataclass
class PreflightReport:
    """Result of :func:`rprockit.preflight.check_firmware`.

    Attributes:
        firmware: path of the ELF.
        soc: SoC name.
        dtb: path of the DTB, or None.
        emulated: whether the target is the emulated board.
        kernel: detected kernel facts (version, family), or None.
        driver_line: the imx_rproc kernel line modelled (``"mainline-6.1"``, ``"nxp-5.15"``).
        segments: the PT_LOAD table.
        resource_table: the parsed resource table, or None.
        checks: the findings, in order.
    """

    firmware: str
    soc: str
    dtb: str | None = None
    emulated: bool = False
    kernel: dict[str, Any] | None = None
    driver_line: str | None = None
    segments: list[SegmentRow] = field(default_factory=list)
    resource_table: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check) -> Check:
        """Append ``check`` and return it."""
        self.checks.append(check)
        return check

    @property
    def failed(self) -> bool:
        """True when any check failed."""
        return any(c.status == FAIL for c in self.checks)

    @property
    def warned(self) -> bool:
        """True when any check warned."""
        return any(c.status == WARN for c in self.checks)

    def by_id(self, check_id: str) -> Check:
        """The check with ``check_id``.

        Raises:
            KeyError: no such check.
        """
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(check_id)

    def counts(self) -> dict[str, int]:
        """Number of checks per status."""
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: every field, checks and segments as lists of mappings."""
        return {
            "format": 1,
            "firmware": self.firmware,
            "soc": self.soc,
            "dtb": self.dtb,
            "emulated": self.emulated,
            "kernel": self.kernel,
            "driver_line": self.driver_line,
            "verdict": FAIL if self.failed else (WARN if self.warned else PASS),
            "counts": self.counts(),
            "segments": [asdict(s) for s in self.segments],
            "resource_table": self.resource_table,
            "checks": [asdict(c) for c in self.checks],
        }

    def render(self, width: int = 120) -> str:
        """Human tables (segments, then checks with remedies), as plain text."""
        from rich.console import Console
        from rich.table import Table

        out = io.StringIO()
        con = Console(file=out, width=width, color_system=None, force_terminal=False)
        seg = Table(title=f"PT_LOAD segments of {self.firmware}")
        for col in ("#", "paddr (device)", "filesz", "memsz", "flags", "system", "region"):
            seg.add_column(col)
        for s in self.segments:
            seg.add_row(str(s.index), f"0x{s.paddr:08x}", f"0x{s.filesz:x}", f"0x{s.memsz:x}",
                        s.flags, "-" if s.sys is None else f"0x{s.sys:08x}", s.region or "-")
        con.print(seg)
        chk = Table(title=f"pre-flight checks for {self.soc}"
                    + (" (emulated)" if self.emulated else "")
                    + (f", imx_rproc of {self.driver_line}" if self.driver_line else ""),
                    show_lines=True)
        for col in ("status", "check", "finding", "remedy"):
            chk.add_column(col)
        for c in self.checks:
            chk.add_row(c.status.upper(), c.title, c.message, c.remedy or "-")
        con.print(chk)
        n = self.counts()
        con.print(f"verdict: {self.to_dict()['verdict'].upper()} "
                  f"({n[PASS]} pass, {n[WARN]} warn, {n[FAIL]} fail)")
        return out.getvalue()
