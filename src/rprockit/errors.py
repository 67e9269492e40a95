"""Two error families (kas ``kasusererror.py``, tuxmake ``exceptions.py``).

``UserError`` and its subclasses mean bad input: the task layer exits 2 and
prints the message, which says what is wrong and how to fix it.  Anything
else is a bug: exit 1 with the traceback.
"""

from __future__ import annotations

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


class UserError(Exception):
    """Bad input. ``str(err)`` is one paragraph naming the culprit and the fix."""

    exit_code = EXIT_USER_ERROR


class ProfileError(UserError):
    """A profile, module set or target file failed validation.

    Args:
        path: the YAML file.
        problems: ``(key_path, line, message)`` tuples; line is 1-based or None.
    """

    def __init__(self, path: str, problems: list[tuple[str, int | None, str]]):
        self.path = str(path)
        self.problems = problems
        lines = [
            f"{self.path}:{line if line else '?'}: {key or '<top>'}: {msg}"
            for key, line, msg in problems
        ]
        super().__init__(
            f"invalid file {self.path} ({len(problems)} problem(s)):\n  "
            + "\n  ".join(lines)
        )


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


class TargetError(UserError):
    """The target could not be reached or refused an operation."""
