"""The kernel tree seen by the patch stage: family, git state, recovery state file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import kernel_tree
from ..git import Git as BaseGit
from ..kernel_tree import TreeFamily
from .errors import TreeStateError

STATE_FILE = "rprockit-patch-state.json"
REPORT_FILE = "rprockit-patch-report.json"

#: Author/committer used for the commits ``git am`` creates (author comes from the patch).
COMMITTER = {"GIT_COMMITTER_NAME": "rprockit", "GIT_COMMITTER_EMAIL": "rprockit@localhost"}


#: What a tree is (version, family, vendor marker): see :mod:`rprockit.kernel_tree`.
TreeInfo = TreeFamily


def detect_family(tree: Path, override: str | None = None) -> TreeFamily:
    """Detect the tree family (:func:`rprockit.kernel_tree.detect_family`).

    Args:
        tree: kernel source tree.
        override: a family to order the variants by instead of the detected one.

    Returns:
        The :class:`~rprockit.kernel_tree.TreeFamily`.

    Raises:
        TreeStateError: not a kernel tree.
    """
    try:
        return kernel_tree.detect_family(tree, override)
    except kernel_tree.NotAKernelTreeError as e:
        raise TreeStateError(tree, e.problem,
                             "point the profile at the top of a kernel source tree") from e


class Git(BaseGit):
    """:class:`rprockit.git.Git` plus what the patch stage asks of a tree.

    Args:
        tree: the work tree.
        runner: the :class:`~rprockit.runner.Runner`.
    """

    def git_dir(self) -> Path:
        """Absolute ``.git`` directory (works for worktrees)."""
        proc = self("rev-parse", "--absolute-git-dir", check=False)
        if proc.returncode != 0:
            raise TreeStateError(self.tree, "it is not a git work tree",
                                 "create it with the fetch stage (or 'git init' and commit)",
                                 proc.stderr.strip())
        return Path(proc.stdout.strip())

    def am_in_progress(self) -> bool:
        """True when a ``git am`` session (``rebase-apply``) is pending."""
        return (self.git_dir() / "rebase-apply").exists()

    def other_operation(self) -> str | None:
        """Name of a pending rebase/merge/cherry-pick, if any."""
        gd = self.git_dir()
        for name, what in (("rebase-merge", "rebase"), ("MERGE_HEAD", "merge"),
                           ("CHERRY_PICK_HEAD", "cherry-pick"), ("REVERT_HEAD", "revert")):
            if (gd / name).exists():
                return what
        if (gd / "rebase-apply").exists() and not (gd / "rebase-apply" / "applying").exists():
            return "rebase"
        return None


def read_state(git: Git) -> dict[str, Any] | None:
    """The recovery state left by an unfinished run, or None."""
    path = git.git_dir() / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {"corrupt": True}
