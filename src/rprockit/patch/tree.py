"""The kernel tree seen by the patch stage: family, git state, recovery state file."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..runner import Runner
from .errors import TreeStateError

STATE_FILE = "rprockit-patch-state.json"
REPORT_FILE = "rprockit-patch-report.json"

#: Author/committer used for the commits ``git am`` creates (author comes from the patch).
COMMITTER = {"GIT_COMMITTER_NAME": "rprockit", "GIT_COMMITTER_EMAIL": "rprockit@localhost"}


@dataclass(frozen=True)
class TreeInfo:
    """What a tree is.

    Attributes:
        version: ``"VERSION.PATCHLEVEL"`` from the top-level Makefile, e.g. ``"5.4"``.
        family: ``"nxp-5.4"``, ``"mainline"``, ... (see ``data/kernel-families.yaml``).
        vendor: ``"nxp"`` or None.
        marker: the vendor marker file found, or None.
    """

    version: str
    family: str
    vendor: str | None = None
    marker: str | None = None


@lru_cache(maxsize=1)
def _vendor_markers() -> dict[str, list[str]]:
    text = resources.files("rprockit").joinpath("data/kernel-families.yaml").read_text()
    data = yaml.safe_load(text)
    return {name: v["markers"] for name, v in data["vendors"].items()}


def kernel_version(tree: Path) -> str:
    """``"VERSION.PATCHLEVEL"`` from ``<tree>/Makefile``.

    Raises:
        TreeStateError: no top-level kernel Makefile with VERSION/PATCHLEVEL.
    """
    makefile = Path(tree) / "Makefile"
    text = makefile.read_text(errors="replace") if makefile.is_file() else ""
    ver = re.search(r"^VERSION\s*=\s*(\d+)\s*$", text, re.MULTILINE)
    lvl = re.search(r"^PATCHLEVEL\s*=\s*(\d+)\s*$", text, re.MULTILINE)
    if not (ver and lvl):
        raise TreeStateError(tree, f"{makefile} has no VERSION/PATCHLEVEL lines",
                             "point the profile at the top of a kernel source tree")
    return f"{ver.group(1)}.{lvl.group(1)}"


def detect_family(tree: Path, override: str | None = None) -> TreeInfo:
    """Detect the tree family from the Makefile version and vendor marker files.

    Args:
        tree: kernel source tree.
        override: family from the profile; wins over detection.

    Returns:
        The :class:`TreeInfo`.

    Raises:
        TreeStateError: not a kernel tree.
    """
    version = kernel_version(tree)
    for vendor, markers in _vendor_markers().items():
        for marker in markers:
            if (Path(tree) / marker).is_file():
                return TreeInfo(version, override or f"{vendor}-{version}", vendor, marker)
    return TreeInfo(version, override or "mainline")


class Git:
    """``git`` in one work tree, through the project runner.

    Args:
        tree: the work tree.
        runner: the :class:`~rprockit.runner.Runner`.
    """

    def __init__(self, tree: Path, runner: Runner):
        self.tree = Path(tree)
        self.runner = runner

    def __call__(self, *args: str | os.PathLike, check: bool = True,
                 env: dict[str, str] | None = None):
        """Run ``git <args>`` in the tree; returns the CompletedProcess."""
        return self.runner.run(["git", *args], cwd=self.tree, check=check, env=env)

    def out(self, *args: str | os.PathLike) -> str:
        """stdout of ``git <args>``, stripped."""
        return self(*args).stdout.strip()

    def git_dir(self) -> Path:
        """Absolute ``.git`` directory (works for worktrees)."""
        proc = self("rev-parse", "--absolute-git-dir", check=False)
        if proc.returncode != 0:
            raise TreeStateError(self.tree, "it is not a git work tree",
                                 "create it with the fetch stage (or 'git init' and commit)",
                                 proc.stderr.strip())
        return Path(proc.stdout.strip())

    def head(self) -> str:
        """Full sha of HEAD."""
        return self.out("rev-parse", "--verify", "HEAD^{commit}")

    def dirty(self) -> list[str]:
        """``git status --porcelain`` lines of tracked files (staged or modified)."""
        # refresh the stat cache first: a touched but unchanged file is not dirty
        self("update-index", "-q", "--refresh", check=False)
        out = self("status", "--porcelain", "--untracked-files=no").stdout
        return [ln for ln in out.splitlines() if ln.strip()]

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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_state(git: Git) -> dict[str, Any] | None:
    """The recovery state left by an unfinished run, or None."""
    path = git.git_dir() / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {"corrupt": True}
