"""The one way to run external tools (kas ``libkas.py`` ``run_cmd``).

Every command is an argument list (never a shell string), is logged as
``cwd$ cmd``, and on failure raises :class:`rprockit.errors.CommandError`
with the tail of its output.  Long output can be streamed to a log file.
"""

from __future__ import annotations

import collections
import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import CommandError, ToolMissingError

log = logging.getLogger("rprockit.runner")

#: Debian package that provides each host tool, used in "missing tool" errors.
TOOL_PACKAGES: dict[str, str] = {
    "git": "git",
    "make": "make",
    "arm-linux-gnueabihf-gcc": "gcc-arm-linux-gnueabihf",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
    "dtc": "device-tree-compiler",
    "bc": "bc",
    "bison": "bison",
    "flex": "flex",
    "cpio": "cpio",
    "lzop": "lzop",
    "ccache": "ccache",
    "depmod": "kmod",
    "modinfo": "kmod",
    "dpkg-deb": "dpkg",
    "tar": "tar",
    "xz": "xz-utils",
    "ssh": "openssh-client",
    "sshd": "openssh-server",
    "diffoscope": "diffoscope-minimal",
    "dropbearkey": "dropbear-bin",
    "apt-get": "apt",
}

TAIL_LINES = 40


def require_tool(tool: str, why: str = "") -> str:
    """Return the absolute path of ``tool``.

    Raises:
        ToolMissingError: naming the Debian package that provides it.
    """
    path = shutil.which(tool)
    if path is None:
        raise ToolMissingError(tool, TOOL_PACKAGES.get(tool), why)
    return path


class Runner:
    """Runs commands, logging each as ``cwd$ cmd``.

    Args:
        env: extra environment variables for every command.
        echo: optional callback receiving each logged command line (progress UI).
    """

    def __init__(self, env: Mapping[str, str] | None = None,
                 echo: Callable[[str], None] | None = None):
        self.env = dict(env or {})
        self.echo = echo

    def _announce(self, cmd: Sequence[str], cwd: Path | None) -> None:
        line = f"{cwd or os.getcwd()}$ {shlex.join(map(str, cmd))}"
        log.info(line)
        if self.echo:
            self.echo(line)

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(os.environ)
        merged.update(self.env)
        merged.update(env or {})
        return merged

    def run(self, cmd: Sequence[str | os.PathLike], cwd: str | os.PathLike | None = None,
            env: Mapping[str, str] | None = None, check: bool = True,
            input: str | bytes | None = None, timeout: float | None = None,
            hint: str = "") -> subprocess.CompletedProcess:
        """Run ``cmd`` and capture its output (text).

        Args:
            cmd: argument list; ``cmd[0]`` must be on PATH.
            cwd: working directory.
            env: extra environment for this command.
            check: raise on non-zero exit.
            input: data for stdin.
            timeout: seconds before the command is killed.
            hint: appended to the error message on failure.

        Returns:
            The completed process, ``stdout``/``stderr`` as str.

        Raises:
            ToolMissingError: ``cmd[0]`` is not installed.
            CommandError: non-zero exit with ``check``.
        """
        args = [str(c) for c in cmd]
        require_tool(args[0])
        cwd_p = Path(cwd) if cwd else None
        self._announce(args, cwd_p)
        text = not isinstance(input, bytes)
        proc = subprocess.run(args, cwd=cwd_p, env=self._env(env), capture_output=True,
                              text=text, input=input, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            out = proc.stderr if text else proc.stderr.decode(errors="replace")
            out = out or (proc.stdout if text else proc.stdout.decode(errors="replace"))
            tail = "\n".join(out.splitlines()[-TAIL_LINES:])
            raise CommandError(args, proc.returncode, tail, cwd=cwd_p, hint=hint)
        return proc

    def probe(self, cmd: Sequence[str | os.PathLike], cwd: str | os.PathLike | None = None
              ) -> str | None:
        """Run a query command whose failure is an answer (``--version``, ``dpkg-query``).

        Returns:
            Its stdout, stripped (whatever the exit status), or None when ``cmd[0]``
            is not installed.
        """
        if shutil.which(str(cmd[0])) is None:
            return None
        return self.run(cmd, cwd=cwd, check=False).stdout.strip()

    def first_line(self, cmd: Sequence[str | os.PathLike]) -> str:
        """First line of ``cmd``'s output (``tool --version``), or ``not installed``."""
        out = self.probe(cmd)
        return "not installed" if out is None else (out.splitlines() or [""])[0]

    def spawn(self, cmd: Sequence[str | os.PathLike], logfile: str | os.PathLike,
              env: Mapping[str, str] | None = None) -> int:
        """Start ``cmd`` in its own session, detached from this process (a daemon such as
        the emulated board kept up between commands), its output to ``logfile``.

        Returns:
            Its process id.

        Raises:
            ToolMissingError: ``cmd[0]`` is not installed.
        """
        args = [str(c) for c in cmd]
        require_tool(args[0])
        self._announce(args, None)
        with open(logfile, "ab") as fh:
            proc = subprocess.Popen(args, env=self._env(env), stdin=subprocess.DEVNULL,
                                    stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        return proc.pid

    def stream(self, cmd: Sequence[str | os.PathLike], logfile: str | os.PathLike,
               cwd: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
               progress: Callable[[str], None] | None = None, hint: str = "") -> None:
        """Run ``cmd``, appending all output to ``logfile``, calling ``progress`` per line.

        Raises:
            ToolMissingError: ``cmd[0]`` is not installed.
            CommandError: non-zero exit; the message names ``logfile``.
        """
        args = [str(c) for c in cmd]
        require_tool(args[0])
        cwd_p = Path(cwd) if cwd else None
        self._announce(args, cwd_p)
        log_path = Path(logfile)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(f"{cwd_p or os.getcwd()}$ {shlex.join(args)}\n")
            fh.flush()
            proc = subprocess.Popen(args, cwd=cwd_p, env=self._env(env), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace")
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    fh.write(line)
                    tail.append(line.rstrip("\n"))
                    if progress:
                        progress(line.rstrip("\n"))
                rc = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        if rc != 0:
            raise CommandError(args, rc, "\n".join(tail), log=log_path, cwd=cwd_p, hint=hint)
