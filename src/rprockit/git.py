"""``git`` in one work tree, through the one runner.

Every git command rprockit runs goes through :class:`Git`, so each is logged
as ``cwd$ git ...`` and a failure raises
:class:`~rprockit.errors.CommandError` with the tail of git's output (the
network ``git fetch`` included).  This module also holds the one dirty-tree
rule (:meth:`Git.dirty`) and raises its one error,
:class:`~rprockit.errors.DirtyTreeError`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from .errors import DirtyTreeError, InvalidValueError
from .runner import Runner

#: A full commit id: 40 lowercase hex digits (SHA-1 repositories).
_SHA1 = re.compile(r"[0-9a-f]{40}")
#: Transports git runs a command for (``ext::``, ``fd::``) or that are not URLs git knows.
_URL_SCHEMES = ("https://", "http://", "git://", "ssh://", "file://")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:[^:]")

#: Fixed identity for commits rprockit makes (baseline of an unpacked tarball).
IDENTITY: dict[str, str] = {
    "GIT_AUTHOR_NAME": "rprockit", "GIT_AUTHOR_EMAIL": "rprockit@localhost",
    "GIT_COMMITTER_NAME": "rprockit", "GIT_COMMITTER_EMAIL": "rprockit@localhost",
}


class Git:
    """``git -C <tree>`` over a :class:`~rprockit.runner.Runner`.

    Args:
        tree: the work tree (it need not exist yet for :meth:`init`).
        runner: the runner (default: a plain :class:`~rprockit.runner.Runner`).
    """

    def __init__(self, tree: str | os.PathLike, runner: Runner | None = None):
        self.tree = Path(tree)
        self.runner = runner or Runner()

    def __call__(self, *args: str | os.PathLike, check: bool = True,
                 env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``git <args>`` in the tree.

        Raises:
            CommandError: git exited non-zero and ``check`` is set.
        """
        return self.runner.run(["git", *args], cwd=self.tree, check=check, env=env)

    def out(self, *args: str | os.PathLike) -> str:
        """stdout of ``git <args>``, stripped.

        Raises:
            CommandError: git exited non-zero.
        """
        return self(*args).stdout.strip()

    def is_repo(self) -> bool:
        """True when the tree is the top of a git work tree (``.git`` exists)."""
        return (self.tree / ".git").exists()

    def init(self, branch: str | None = None) -> None:
        """``git init`` the tree (created if needed)."""
        self.tree.mkdir(parents=True, exist_ok=True)
        self("init", "-q", *(["-b", branch] if branch else []))

    def head(self) -> str:
        """Full sha (40 hex) of the commit at HEAD.

        Raises:
            CommandError: no commit yet, or not a git tree.
        """
        return self.out("rev-parse", "--verify", "HEAD^{commit}")

    def head_or_none(self) -> str | None:
        """Full sha of HEAD, or None when the tree is not git or has no commit."""
        if not self.is_repo():
            return None
        proc = self("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
        return proc.stdout.strip() or None if proc.returncode == 0 else None

    def rev_parse(self, rev: str) -> str:
        """Full sha of the commit ``rev`` names."""
        return self.out("rev-parse", "--verify", f"{rev}^{{commit}}")

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        """True when ``ancestor`` is ``commit`` or one of its ancestors."""
        return self("merge-base", "--is-ancestor", ancestor, commit, check=False).returncode == 0

    def commit_time(self, rev: str = "HEAD") -> int:
        """Committer time of ``rev`` (Unix seconds)."""
        return int(self.out("log", "-1", "--format=%ct", rev, "--"))

    def checkout_detached(self, commit: str) -> None:
        """Check out ``commit`` with a detached HEAD (the tree must be clean)."""
        self("checkout", "-q", "--detach", commit, "--")

    def dirty(self, refresh: bool = True) -> list[str]:
        """The one dirty-tree rule: ``git status --porcelain`` lines of tracked files.

        Staged or unstaged changes to tracked files count; untracked files do not
        (they are neither reset nor committed by any stage).  With ``refresh`` the
        stat cache is refreshed first (the index is rewritten), so a touched but
        unchanged file is not dirty; without it nothing in the tree is written
        (``--no-optional-locks``): dry runs and read-only trees.
        """
        if refresh:
            self("update-index", "-q", "--refresh", check=False)
        out = self("--no-optional-locks", "status", "--porcelain",
                   "--untracked-files=no").stdout
        return [ln for ln in out.splitlines() if ln.strip()]

    def require_clean(self) -> None:
        """Raise when the tree has local changes (see :meth:`dirty`).

        Raises:
            DirtyTreeError: listing the changes; nothing is reset.
        """
        changes = self.dirty()
        if changes:
            raise DirtyTreeError(self.tree, changes)

    def fetch(self, remote: str, ref: str, depth: int | None = None) -> str:
        """``git fetch --no-tags -- <remote> <ref>``; returns the fetched commit (FETCH_HEAD).

        ``ref`` is validated first (:func:`check_ref`), so no value reaches git
        as an option.

        Raises:
            InvalidValueError: ``ref`` is neither a ref name nor a 40-hex commit.
            CommandError: git could not fetch (``stderr_tail`` has git's message).
        """
        check_ref(ref, "ref", self.runner)
        self("fetch", *([f"--depth={depth}"] if depth else []), "--no-tags", "--", remote, ref)
        return self.rev_parse("FETCH_HEAD")

    def add_remote(self, name: str, url: str) -> None:
        """``git remote add -- <name> <url>`` (``url`` validated by :func:`check_url`)."""
        check_url(url)
        self("remote", "add", "--", name, url)

    def set_remote_url(self, name: str, url: str) -> None:
        """``git remote set-url -- <name> <url>`` (``url`` validated by :func:`check_url`)."""
        check_url(url)
        self("remote", "set-url", "--", name, url)

    def remote_url(self, name: str) -> str | None:
        """The URL of remote ``name``, or None when there is no such remote."""
        proc = self("config", "--get", f"remote.{name}.url", check=False)
        return proc.stdout.strip() or None if proc.returncode == 0 else None

    def worktree_add(self, path: Path, commit: str) -> None:
        """Add a detached work tree of this repository at ``path`` on ``commit``."""
        self("worktree", "add", "--detach", path, commit)

    def worktree_remove(self, path: Path) -> None:
        """Remove the work tree ``path`` (even with changes) and prune stale entries."""
        if path.exists():
            self("worktree", "remove", "--force", path, check=False)
        self("worktree", "prune")


def is_sha(value: object) -> bool:
    """True when ``value`` is a full commit id (40 lowercase hex digits)."""
    return isinstance(value, str) and _SHA1.fullmatch(value) is not None


def check_commit(value: object, what: str) -> str:
    """Return ``value`` if it is a full commit id (40 hex), else raise.

    Raises:
        InvalidValueError: naming ``what`` and the value.
    """
    if not is_sha(value):
        raise InvalidValueError(what, value, "a full commit id (40 lowercase hex digits)")
    return str(value)


def check_ref(value: object, what: str, runner: Runner | None = None) -> str:
    """Return ``value`` if it is a 40-hex commit, ``HEAD`` or a valid ref name.

    A ref name is what ``git check-ref-format --allow-onelevel`` accepts and
    does not start with ``-`` (so it can never be read as an option).

    Raises:
        InvalidValueError: naming ``what`` and the value.
    """
    if is_sha(value) or value == "HEAD":
        return str(value)
    why = "a branch, tag or full commit id (see git check-ref-format)"
    if not isinstance(value, str) or not value or value.startswith("-") \
            or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise InvalidValueError(what, value, why)
    # check-ref-format takes no "--"; a leading "-" was refused above
    proc = (runner or Runner()).run(["git", "check-ref-format", "--allow-onelevel", value],
                                    check=False)
    if proc.returncode != 0:
        raise InvalidValueError(what, value, why)
    return value


def check_url(value: object, what: str = "source.git.url") -> str:
    """Return ``value`` if it is a URL git may fetch without running a command.

    Accepted: ``https://``, ``http://``, ``git://``, ``ssh://``, ``file://``,
    scp-like ``user@host:path``, and absolute local paths.  Refused: anything
    starting with ``-`` and transports that run commands (``ext::``, ``fd::``).

    Raises:
        InvalidValueError: naming ``what`` and the value.
    """
    ok = isinstance(value, str) and bool(value) and not value.startswith("-") \
        and not any(ord(c) < 0x20 for c in value) \
        and (value.startswith(_URL_SCHEMES) or value.startswith("/")
             or _SCP_LIKE.match(value) is not None)
    if not ok:
        raise InvalidValueError(what, value, "an https://, http://, git://, ssh://, file:// "
                                "URL, user@host:path, or an absolute path")
    return str(value)
