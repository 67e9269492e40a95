"""Minimal unified-diff reader: which files and hunks a patch touches.

Used to name the hunk of a conflict and to tell "the file it changes does not
exist" (not applicable) from a conflict.  ``git apply`` remains the judge of
whether a patch applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")


@dataclass
class Hunk:
    """One ``@@`` hunk.

    Attributes:
        number: 1-based index within its file (as in ``patch``'s "Hunk #N").
        old_start: first line of the hunk in the original file (1-based).
        header: the full ``@@ ... @@ function`` line.
    """

    number: int
    old_start: int
    header: str


@dataclass
class FileDiff:
    """One file section of a patch.

    Attributes:
        old_path: path before (``None`` for a new file).
        new_path: path after (``None`` for a deleted file).
        hunks: its hunks in order.
    """

    old_path: str | None
    new_path: str | None
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The path the section is known by (new path, else old)."""
        return self.new_path or self.old_path or "?"


def _strip(p: str) -> str | None:
    p = p.strip().split("\t")[0]
    if p == "/dev/null":
        return None
    return p[2:] if p[:2] in ("a/", "b/") else p


def parse_patch(text: str) -> list[FileDiff]:
    """Files and hunks of a ``git format-patch`` mail or plain unified diff.

    Args:
        text: the patch text.

    Returns:
        One :class:`FileDiff` per ``diff --git`` section (or ``---``/``+++`` pair).
    """
    files: list[FileDiff] = []
    cur: FileDiff | None = None
    lines = text.splitlines()
    git_style = any(ln.startswith("diff --git ") for ln in lines)
    for i, line in enumerate(lines):
        if line.startswith("diff --git "):
            m = re.match(r"diff --git a/(\S+) b/(\S+)", line)
            cur = FileDiff(m.group(1) if m else None, m.group(2) if m else None)
            files.append(cur)
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _strip(line[4:]), _strip(lines[i + 1][4:])
            if not git_style:
                cur = FileDiff(old, new)
                files.append(cur)
            elif cur is not None and not cur.hunks:
                cur.old_path, cur.new_path = old, new
        elif cur is not None and line.startswith("new file mode"):
            cur.old_path = None
        elif cur is not None and line.startswith("deleted file mode"):
            cur.new_path = None
        elif cur is not None and (m := _HUNK.match(line)):
            cur.hunks.append(Hunk(len(cur.hunks) + 1, int(m.group(1)), line))
    return files


def find_hunk(files: list[FileDiff], path: str, old_start: int) -> Hunk | None:
    """The hunk of ``path`` starting at ``old_start`` (as in ``git apply``'s
    "patch failed: path:line"), else the first hunk of ``path``."""
    for f in files:
        if path in (f.old_path, f.new_path):
            for h in f.hunks:
                if h.old_start == old_start:
                    return h
            return f.hunks[0] if f.hunks else None
    return None
