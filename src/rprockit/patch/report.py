"""Patch reports: per-tree results (JSON + table) and the patch x tree matrix."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPORT_FORMAT = 1


class Status(StrEnum):
    """Classification of one patch against one tree.

    ``APPLIES``/``NEEDS_REBASE`` are what a dry run finds; after a real run a
    patch that applied cleanly is ``APPLIED`` (``NEEDS_REBASE`` keeps its
    status, with ``commit`` set, so the warning stays visible).
    """

    APPLIES = "applies"
    APPLIED = "applied"
    NEEDS_REBASE = "needs-rebase"
    ALREADY_PRESENT = "already-present"
    PARTIALLY_PRESENT = "partially-present"
    NOT_APPLICABLE = "not-applicable"
    CONFLICT = "conflict"
    CORRUPT = "corrupt"

    @property
    def failed(self) -> bool:
        """True for the statuses that make a series fail."""
        return self in (Status.CONFLICT, Status.CORRUPT)

    @property
    def to_apply(self) -> bool:
        """True for the statuses ``git am`` will be run for."""
        return self in (Status.APPLIES, Status.NEEDS_REBASE, Status.PARTIALLY_PRESENT)


_STYLE = {
    Status.APPLIES: "green", Status.APPLIED: "green", Status.NEEDS_REBASE: "yellow",
    Status.ALREADY_PRESENT: "cyan", Status.PARTIALLY_PRESENT: "yellow",
    Status.NOT_APPLICABLE: "dim",
    Status.CONFLICT: "bold red", Status.CORRUPT: "bold red",
}


@dataclass
class PatchResult:
    """One fix against one tree.

    Attributes:
        name: the series entry (file name relative to the series dir) of the
            variant chosen, or of the variant the status is about.
        fix: fix id shared by variants.
        entry: ``"<series file>:<line>"``.
        status: the :class:`Status`.
        method: how it was decided: ``requires``, ``missing-file``, ``probe``,
            ``reverse``, ``strict``, ``offset``, ``3way``, ``fuzz``,
            ``git-apply``, ``git-am``.
        detail: one line for humans (hunk and file of a conflict, probe matched, ...).
        warnings: e.g. offsets per hunk.
        output: tool output kept for failures and rebases.
        commit: the commit ``git am`` created, or None.
        am_options: extra ``git am`` options needed (``-C1`` for fuzz).
        evidence: what the decision rests on: ``family``, ``order`` (variants,
            preferred first), ``probes`` (each with ``variant``, ``kind``,
            ``probe``, ``file``, ``matched``, ``line``, ``text``), ``matched`` /
            ``missing`` (probe lines), ``trials`` (per variant: ``result``,
            ``detail``, ``missing``), ``chosen``, ``adds``, ``reverse``.
    """

    name: str
    fix: str
    entry: str
    status: Status
    method: str
    detail: str = ""
    warnings: list[str] = field(default_factory=list)
    output: str = ""
    commit: str | None = None
    am_options: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """True when this patch makes the series fail."""
        return self.status.failed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["status"] = self.status.value
        d.pop("am_options")
        return d


def _render(table: Table, width: int = 160) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(table)
    return buf.getvalue()


@dataclass
class PatchReport:
    """The result of classifying (``check``) or applying a series on one tree.

    Attributes:
        tree: the kernel tree.
        family: family used (detected or from the profile).
        version: ``"VERSION.PATCHLEVEL"``.
        series: series directory.
        series_fingerprint: :meth:`Series.fingerprint`.
        mode: ``"check"`` or ``"apply"``.
        start: commit the run started from.
        end: commit the run ended on (== start after a failure or in check mode).
        results: per patch, series order.
        restored: the tree was put back on ``start`` after a failure or interrupt.
        recovered: an interrupted earlier run was cleaned up first (its start commit).
        error: the failure message, if any.
        warnings: run-level warnings (series warnings, recovery, rebases).
    """

    tree: Path
    family: str
    version: str
    series: Path
    series_fingerprint: str
    mode: str
    start: str
    end: str = ""
    results: list[PatchResult] = field(default_factory=list)
    restored: bool = False
    recovered: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True when a patch conflicts/is corrupt or the apply itself failed."""
        return self.error is not None or any(r.failed for r in self.results)

    def by_status(self, status: Status) -> list[PatchResult]:
        """Results with ``status``."""
        return [r for r in self.results if r.status is status]

    def result(self, name: str) -> PatchResult:
        """The result of series entry ``name`` (``KeyError`` if absent)."""
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``format: 1``)."""
        return {
            "format": REPORT_FORMAT, "tree": str(self.tree), "family": self.family,
            "version": self.version, "series": str(self.series),
            "series_fingerprint": self.series_fingerprint, "mode": self.mode,
            "start": self.start, "end": self.end, "failed": self.failed,
            "restored": self.restored, "recovered": self.recovered, "error": self.error,
            "warnings": list(self.warnings),
            "counts": {s.value: len(self.by_status(s)) for s in Status
                       if self.by_status(s)},
            "patches": [r.to_dict() for r in self.results],
        }

    def render(self, width: int = 160) -> str:
        """A plain-text table, one row per patch."""
        title = (f"{self.mode}: {self.series.name} on {self.tree} "
                 f"({self.family}, {self.version}) {self.start[:12]} -> {self.end[:12]}")
        table = Table(title=title, title_justify="left")
        for col in ("#", "patch", "status", "how", "detail"):
            table.add_column(col, overflow="fold")
        for i, r in enumerate(self.results, 1):
            detail = r.detail + ("" if not r.warnings else " [" + "; ".join(r.warnings) + "]")
            table.add_row(str(i), r.name, r.status.value, r.method, detail,
                          style=_STYLE[r.status])
        text = _render(table, width)
        text += "".join(f"warning: {w}\n" for w in self.warnings)
        if self.error:
            text += f"FAILED: {self.error.splitlines()[0]}\n"
        if self.restored:
            text += f"tree restored to {self.start}\n"
        return text


@dataclass
class Matrix:
    """Series x trees classification.

    Attributes:
        fixes: fix ids, series order (rows).
        reports: tree label -> :class:`PatchReport` (columns).
    """

    fixes: list[str]
    reports: dict[str, PatchReport]

    def cell(self, fix: str, tree: str) -> tuple[str, str]:
        """``(status, variant)`` of ``fix`` on ``tree``.

        The variant is the series entry chosen for the tree (or the one the
        status is about: the variant found present, the one that conflicts).

        Raises:
            KeyError: ``fix`` is not in the report of ``tree``.
        """
        for r in self.reports[tree].results:
            if r.fix == fix:
                return r.status.value, r.name
        raise KeyError(fix)

    @property
    def failed(self) -> bool:
        """True when any tree has a failing patch."""
        return any(r.failed for r in self.reports.values())

    def to_dict(self) -> dict[str, Any]:
        """``{"trees": {label: {...}}, "fixes": {fix: {label: {status, variant}}}}``."""
        return {
            "format": REPORT_FORMAT,
            "trees": {label: {"tree": str(r.tree), "family": r.family, "version": r.version,
                              "head": r.start} for label, r in self.reports.items()},
            "fixes": {fix: {label: self._cell_dict(fix, label) for label in self.reports}
                      for fix in self.fixes},
            "reports": {label: r.to_dict() for label, r in self.reports.items()},
        }

    def _cell_dict(self, fix: str, label: str) -> dict[str, Any]:
        r = next(r for r in self.reports[label].results if r.fix == fix)
        return {"status": r.status.value, "variant": r.name, "method": r.method,
                "detail": r.detail, "evidence": r.evidence}

    def render(self, width: int = 160) -> str:
        """Plain-text table: one row per fix, one column per tree."""
        table = Table(title="patch matrix", title_justify="left")
        table.add_column("fix")
        for label, r in self.reports.items():
            table.add_column(f"{label}\n{r.family}")
        for fix in self.fixes:
            cells = []
            for label in self.reports:
                status, variant = self.cell(fix, label)
                to_apply = Status(status).to_apply or status == Status.APPLIED.value
                cells.append(f"{status}\n{variant.split('/')[0]}" if to_apply else status)
            table.add_row(fix, *cells)
        return _render(table, width)
