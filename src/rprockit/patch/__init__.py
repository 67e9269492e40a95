"""The patch stage: classify and apply curated patch series to kernel trees.

Public API::

    series = load_series(Path("patches/imx-rproc"))
    report = classify(tree, series)                 # dry run, per-patch status
    report = apply_series(tree, series)             # git am --3way, atomic
    table = matrix({"nxp-4.14": t1, "6.1": t2}, series)

See :mod:`rprockit.patch.classify` for the classification order and
:mod:`rprockit.patch.apply` for the atomicity and recovery rules.
"""

from __future__ import annotations

from pathlib import Path

from ..runner import Runner
from .apply import apply_all, apply_series, recover
from .classify import classify
from .errors import PatchApplyError, SeriesFormatError, TreeStateError
from .report import Matrix, PatchReport, PatchResult, Status
from .series import META_SCHEMA, PatchEntry, Probe, Series, load_series
from .tree import TreeInfo, detect_family


def matrix(trees: dict[str, Path], series: Series, runner: Runner | None = None,
           families: dict[str, str] | None = None) -> Matrix:
    """Classify ``series`` on several trees (dry run) and build the fix x tree table.

    Args:
        trees: column label -> kernel git work tree.
        series: the series.
        runner: command runner.
        families: optional label -> family override (from the profiles).

    Returns:
        The :class:`Matrix` (``.render()``, ``.to_dict()``).

    Raises:
        TreeStateError: a path is not a git kernel tree.
    """
    families = families or {}
    reports = {label: classify(Path(path), series, families.get(label), runner)
               for label, path in trees.items()}
    return Matrix(series.fixes(), reports)


__all__ = [
    "META_SCHEMA", "Matrix", "PatchApplyError", "PatchEntry", "PatchReport", "PatchResult",
    "Probe", "Series", "SeriesFormatError", "Status", "TreeInfo", "TreeStateError",
    "apply_all", "apply_series", "classify", "detect_family", "load_series", "matrix", "recover",
]
