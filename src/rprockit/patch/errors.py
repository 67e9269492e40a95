"""Errors of the patch stage (kas ``repos.py`` ``PatchApplyError``).

Every message names the patch, the tree, the series entry (file and line)
and the tool output, then says what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidFileError, PatchError, TreeStateError

__all__ = ["PatchApplyError", "SeriesFormatError", "TreeStateError"]

if TYPE_CHECKING:  # pragma: no cover
    from .report import PatchReport


class SeriesFormatError(InvalidFileError):
    """A ``series`` or ``meta.yaml`` file failed validation.

    Args:
        path: the offending file.
        problems: ``(key_path, line, message)`` tuples, line 1-based or None.
    """


class PatchApplyError(PatchError):
    """A patch conflicts with the tree, is corrupt, or ``git am`` failed.

    The tree has already been put back on the commit the run started from
    when this is raised.

    Attributes:
        patch: the patch file name as written in the series.
        tree: the kernel tree.
        entry: ``"<series file>:<line>"``.
        output: the tool output (``git apply`` / ``git am``).
        report: the :class:`~rprockit.patch.report.PatchReport` of the run.
    """

    def __init__(self, patch: str, tree: Path, entry: str, problem: str, output: str,
                 fix: str, report: PatchReport | None = None):
        self.patch = patch
        self.tree = Path(tree)
        self.entry = entry
        self.output = output
        self.report = report
        tail = "\n".join(output.strip().splitlines()[-30:])
        super().__init__(
            f"patch {patch} (series entry {entry}) {problem} in tree {tree}; {fix}"
            f"\n--- tool output ---\n{tail}"
        )
