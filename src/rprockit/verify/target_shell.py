"""Thin wrapper over a labgrid CommandProtocol driver used by the on-target checks."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass
class TargetShell:
    """Runs commands on the target and keeps a transcript as evidence.

    Attributes:
        driver: a labgrid ``CommandProtocol`` driver (ShellDriver, SSHDriver).
        transcript: ``(command, output, exit code)`` of every command run.
    """

    driver: object
    transcript: list[tuple[str, str, int]] = field(default_factory=list)

    def run(self, cmd: str, timeout: float = 30.0) -> tuple[str, int]:
        """Run ``cmd`` (a shell command line built with :func:`q`); return (output, rc)."""
        out, _err, rc = self.driver.run(cmd, timeout=timeout)
        text = "\n".join(out)
        self.transcript.append((cmd, text, rc))
        return text, rc

    def check(self, cmd: str, timeout: float = 30.0) -> str:
        """Run ``cmd``; raise AssertionError with the output when it fails."""
        out, rc = self.run(cmd, timeout)
        assert rc == 0, f"`{cmd}` exited {rc}:\n{out}"
        return out

    def read(self, path: str) -> str:
        return self.check(f"cat {q(path)}").strip()

    def exists(self, path: str) -> bool:
        return self.run(f"test -e {q(path)}")[1] == 0


def q(arg: str) -> str:
    """Quote one argument for the target's shell."""
    return shlex.quote(str(arg))
