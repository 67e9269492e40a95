"""Two error families (kas ``kasusererror.py``, tuxmake ``exceptions.py``).

``UserError`` and its subclasses mean bad input: the task layer exits 2 and
prints the message, which says what is wrong and how to fix it.  Anything
else is a bug: exit 1 with the traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


class UserError(Exception):
    """Bad input. ``str(err)`` is one paragraph naming the culprit and the fix."""

    exit_code = EXIT_USER_ERROR


class InvalidFileError(UserError):
    """A file rprockit reads (profile, module set, series metadata, target, data) is invalid.

    Args:
        path: the file (or the string given in its place).
        problems: ``(key_path, line, message)`` tuples; line is 1-based or None.
    """

    #: At most this many problems are shown, each cut to :attr:`MAX_PROBLEM` characters.
    MAX_SHOWN = 30
    MAX_PROBLEM = 300

    def __init__(self, path: str, problems: list[tuple[str, int | None, str]]):
        self.path = str(path)
        self.problems = problems
        lines = [
            _cut(f"{self.path}:{line if line else '?'}: {key or '<top>'}: {msg}",
                 self.MAX_PROBLEM)
            for key, line, msg in problems[: self.MAX_SHOWN]
        ]
        if len(problems) > self.MAX_SHOWN:
            lines.append(f"... and {len(problems) - self.MAX_SHOWN} more problem(s)")
        super().__init__(
            f"invalid file {_cut(self.path, 300)} ({len(problems)} problem(s)):\n  "
            + "\n  ".join(lines)
        )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UnreadableFileError(InvalidFileError):
    """An input file is missing, not a regular file, too large, or not text.

    Args:
        path: the file.
        what: what it is (``profile``, ``firmware ELF``).
        problem: what is wrong (``is a FIFO, not a regular file``).
        fix: what to do.
    """

    def __init__(self, path: Path, what: str, problem: str, fix: str):
        self.path, self.problem = str(path), problem
        self.problems = [("", None, problem)]
        UserError.__init__(self, f"{what} {_cut(str(path), 300)} {problem}; {fix}")


#: Former name of :class:`InvalidFileError`, from when only profiles were validated.
ProfileError = InvalidFileError


class InvalidValueError(UserError):
    """A value from a profile, lock file or the command line is not acceptable.

    Args:
        what: where the value came from (``source.git.ref``, ``--cycles``, a file).
        value: the value (shown shortened to 200 characters).
        expected: what would be accepted.
    """

    def __init__(self, what: str, value: object, expected: str):
        self.what, self.value = what, value
        shown = repr(value)
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        super().__init__(f"{what}: {shown} is not valid; expected {expected}")


class ToolMissingError(UserError):
    """A required host tool is not installed."""

    def __init__(self, tool: str, package: str | None = None, why: str = ""):
        self.tool = tool
        self.package = package
        fix = f"install it with: apt-get install {package}" if package else "install it"
        super().__init__(f"required tool '{tool}' was not found on PATH{why}; {fix}")


class CommandError(UserError):
    """A command run through the runner exited non-zero.

    Attributes:
        cmd: the argument list.
        returncode: its exit status.
        stderr_tail: the last lines of its output.
        log: the log file with the full output, if any.
    """

    def __init__(self, cmd, returncode: int, stderr_tail: str, log=None, cwd=None, hint=""):
        self.cmd = list(map(str, cmd))
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.log = log
        self.cwd = cwd
        where = f" (full log: {log})" if log else ""
        hint = f"\n{hint}" if hint else ""
        super().__init__(
            f"command failed with exit code {returncode}: {' '.join(self.cmd)}"
            f"{where}\n--- last output ---\n{stderr_tail.rstrip()}{hint}"
        )


class KconfigError(UserError):
    """Requested Kconfig symbols did not take their values, or are unknown."""


class FetchError(UserError):
    """The kernel source could not be fetched or checked out."""


class PatchError(UserError):
    """A patch series could not be applied; the tree was restored."""


class BuildError(UserError):
    """The kernel build failed; the message names the log file."""


class TreeStateError(PatchError):
    """A kernel tree cannot be used as it is (dirty, not git, a git operation pending)."""

    def __init__(self, tree: Path, problem: str, fix: str, details: Any = ""):
        self.tree = Path(tree)
        details = f"\n{details}" if details else ""
        super().__init__(f"refusing to patch {tree}: {problem}; {fix}{details}")


class DirtyTreeError(TreeStateError, FetchError):
    """A kernel tree has uncommitted changes to tracked files; rprockit never resets them.

    The one dirty-tree rule is :meth:`rprockit.git.Git.dirty`.

    Attributes:
        tree: the work tree.
        changes: its ``git status --porcelain`` lines.
    """

    def __init__(self, tree: Path, changes: list[str]):
        self.tree = Path(tree)
        self.changes = list(changes)
        shown = "\n  ".join(self.changes[:20])
        more = f"\n  ... and {len(self.changes) - 20} more" if len(self.changes) > 20 else ""
        UserError.__init__(
            self,
            f"kernel tree {tree} has {len(self.changes)} uncommitted change(s) to tracked files; "
            f"rprockit never resets them:\n  {shown}{more}\nCommit or stash them "
            f"(git -C {tree} stash), or discard them (git -C {tree} checkout -- <file>), "
            "and run again.")


class PreflightError(UserError):
    """A pre-flight input (firmware ELF, DTB, kernel tree, SoC name) that cannot be checked."""


class TargetError(UserError):
    """The target could not be reached or refused an operation."""
