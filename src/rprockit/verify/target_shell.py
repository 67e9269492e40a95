"""Command access to the target for the on-target checks and the facts report.

Two command back ends, one interface (labgrid's ``CommandProtocol``:
``run(cmd, timeout=...) -> (stdout lines, stderr lines, exit code)``):

* a labgrid driver: ``ShellDriver`` on the emulated board's (or a real board's)
  serial console;
* :class:`SSHCommand` over rprockit's paramiko transport for targets reached
  over SSH (a ``NetworkService`` resource / ``SSHDriver`` in the environment
  file); see its docstring for why labgrid's ``SSHDriver`` is not used.

:class:`TargetShell` adds a transcript (evidence), helpers and an incremental
reader of the kernel log that survives ring-buffer wrap-around.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ssh import SSHTransport, transport_for
from ..target import TargetDesc, load_target

_TS_RE = re.compile(r"^\[\s*(\d+\.\d+)\]")
#: busybox's line editor accepts at most 1024 bytes per line
#: (CONFIG_FEATURE_EDITING_MAX_LEN); labgrid's ShellDriver quotes the command once more.
CONSOLE_MAX_LINE = 1000


class SSHCommand:
    """A labgrid ``CommandProtocol``-like driver over :class:`rprockit.ssh.SSHTransport`.

    Why not labgrid's ``SSHDriver``: labgrid 26 starts its ssh control master with
    ``-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null`` and ``-F none``
    (``labgrid/driver/sshdriver.py`` ``SSHDriver._start_own_master_once``), so it
    accepts any host key.  rprockit verifies host keys: the key must already be in
    the target's ``known_hosts`` (``options.rprockit.known_hosts``, the ssh config's
    ``UserKnownHostsFile`` or ``~/.ssh/known_hosts``); an unknown key is refused
    unless the user asks for it to be accepted (``accept_new_host_key``, like
    OpenSSH's ``StrictHostKeyChecking=accept-new``) and a changed key is always
    refused.  The environment file stays a plain labgrid file: the same
    ``NetworkService`` resource describes the board; only the driver differs.

    Args:
        transport: a connected (or lazily connecting) SSH transport.
    """

    def __init__(self, transport: SSHTransport):
        self.transport = transport

    def run(self, cmd: str, timeout: float = 30.0) -> tuple[list[str], list[str], int]:
        """Run a shell command line through ``sh -c`` on the target.

        Returns:
            ``(stdout lines, stderr lines, exit code)`` like labgrid's drivers.

        Raises:
            TargetConnectionError: the connection broke or timed out.
        """
        res = self.transport.run(["sh", "-c", cmd], check=False, timeout=timeout)
        return res.stdout.splitlines(), res.stderr.splitlines(), res.returncode


@dataclass
class TargetShell:
    """Runs commands on the target and keeps a transcript as evidence.

    Attributes:
        driver: a ``CommandProtocol`` driver (labgrid ShellDriver, :class:`SSHCommand`).
        desc: the target description (root prefix, sysfs root, settings).
        booted_here: the suite powered the board on, so its whole kernel log
            belongs to the run.
        transcript: ``(command, stdout, stderr, exit code)`` of every command run.
        klog: the kernel log lines of the run, read incrementally by :meth:`poll_dmesg`.
    """

    driver: Any
    desc: TargetDesc | None = None
    booted_here: bool = False
    transcript: list[tuple[str, str, str, int]] = field(default_factory=list)
    klog: list[str] = field(default_factory=list)
    _last_ts: float | None = None
    _last_count: int = 0
    _seen_at_last_ts: set[str] = field(default_factory=set)
    _dmesg_ok: bool | None = None

    def _fits(self, cmd: str) -> bool:
        """``cmd`` fits one command: always over SSH, within :data:`CONSOLE_MAX_LINE` (after
        the ShellDriver's own quoting) on a console."""
        return isinstance(self.driver, SSHCommand) or len(shlex.quote(cmd)) <= CONSOLE_MAX_LINE

    def for_each(self, items: list[str], body: str, timeout: float = 30.0) -> str:
        """Run ``for f in ITEMS; do BODY; done; true`` in as few commands as fit a console
        line (:data:`CONSOLE_MAX_LINE`; one command over SSH); return their stdout, joined.

        Args:
            items: the loop's words (quoted here with :func:`q`).
            body: the loop body, a shell command line that reads ``$f``.
            timeout: seconds per command.

        Raises:
            ValueError: one item alone makes the command too long for a console line.
        """
        head, tail = "for f in ", f"; do {body}; done; true"
        batches: list[list[str]] = [[]]
        for item in (q(i) for i in items):
            cmd = head + " ".join([*batches[-1], item]) + tail
            if batches[-1] and not self._fits(cmd):
                batches.append([])
            batches[-1].append(item)
        outs = [self.run(head + " ".join(b) + tail, timeout=timeout)[0] for b in batches if b]
        return "\n".join(o for o in outs if o)

    def run(self, cmd: str, timeout: float = 30.0) -> tuple[str, int]:
        """Run ``cmd`` (a shell command line built with :func:`q`); return (stdout, rc).

        Raises:
            ValueError: ``cmd`` is too long for a serial console's line editor.
        """
        if not self._fits(cmd):
            raise ValueError(f"command of {len(cmd)} bytes is too long for a console line: "
                             f"{cmd[:80]}")
        out, err, rc = self.driver.run(cmd, timeout=timeout)
        text, etext = "\n".join(out), "\n".join(err)
        self.transcript.append((cmd, text, etext, rc))
        return text, rc

    def check(self, cmd: str, timeout: float = 30.0) -> str:
        """Run ``cmd``; raise AssertionError with the output when it fails."""
        out, rc = self.run(cmd, timeout)
        if rc != 0:
            err = self.transcript[-1][2]
            raise AssertionError(f"`{cmd}` exited {rc} on the target:\n{out}\n{err}".rstrip())
        return out

    def read(self, path: str) -> str:
        """Contents of a (sysfs) file, stripped."""
        return self.check(f"cat {q(path)}").strip()

    def exists(self, path: str) -> bool:
        """``test -e`` on the target."""
        return self.run(f"test -e {q(path)}")[1] == 0

    def path(self, target_path: str) -> str:
        """``target_path`` under the target's root prefix (deploy tests use one)."""
        return self.desc.path(target_path) if self.desc else target_path

    def outputs_since(self, index: int) -> list[str]:
        """stdout and stderr lines of the commands run since transcript entry ``index``."""
        lines: list[str] = []
        for _cmd, out, err, _rc in self.transcript[index:]:
            lines += out.splitlines() + err.splitlines()
        return lines

    # -- kernel log ------------------------------------------------------------------
    def dmesg_readable(self) -> bool:
        """True when ``dmesg`` works for this user (``kernel.dmesg_restrict``)."""
        if self._dmesg_ok is None:
            self._dmesg_ok = self.run("dmesg >/dev/null 2>&1")[1] == 0
        return self._dmesg_ok

    def start_dmesg(self) -> None:
        """Set the start of the run's kernel log.

        When the suite booted the board the whole log belongs to the run;
        otherwise only lines after the newest one present now.
        """
        if self.booted_here or not self.dmesg_readable():
            return
        last = self.run("dmesg | tail -n 1")[0].strip()
        m = _TS_RE.match(last)
        if m:
            self._last_ts = float(m.group(1))
            self._seen_at_last_ts = {last}
        else:
            self._last_count = int(self.check("dmesg | wc -l").strip() or 0)

    def poll_dmesg(self) -> int:
        """Append the kernel log lines printed since the last poll to :attr:`klog`.

        Lines are told apart by their printk timestamp (CONFIG_PRINTK_TIME), so
        the log may wrap around between polls; without timestamps lines are
        counted.

        Returns:
            ``len(self.klog)`` after the poll (use as an index into :attr:`klog`).
        """
        if not self.dmesg_readable():
            return len(self.klog)
        if self._last_ts is not None:
            awk = (f"awk -v t={self._last_ts!r} "
                   "'{ if (match($0, /^\\[ *[0-9]+\\.[0-9]+\\]/)) "
                   "{ s = substr($0, RSTART + 1, RLENGTH - 2) + 0; if (s >= t) p = 1 } "
                   "if (p) print }'")
            new = self.check(f"dmesg | {awk}").splitlines()
            # lines stamped with the last timestamp seen were read already (same µs burst)
            while new and new[0] in self._seen_at_last_ts:
                new.pop(0)
        else:
            new = self.check(f"dmesg | tail -n +{self._last_count + 1}").splitlines()
        new = [ln for ln in new if ln.strip()]
        stamped = [float(m.group(1)) for ln in new if (m := _TS_RE.match(ln))]
        if stamped:
            if stamped[-1] != self._last_ts:
                self._seen_at_last_ts = set()
            self._last_ts = stamped[-1]
            self._seen_at_last_ts |= {ln for ln in new if (m := _TS_RE.match(ln))
                                      and float(m.group(1)) == self._last_ts}
        elif self._last_ts is None:
            self._last_count += len(new)
        self.klog += new
        return len(self.klog)


def q(arg: str) -> str:
    """Quote one argument for the target's shell."""
    return shlex.quote(str(arg))


def _has_driver(target, name: str) -> Any:
    try:
        return target.get_driver(name, activate=False)
    except Exception:
        return None


@contextlib.contextmanager
def open_shell(target, env_file: Path, accept_new_host_key: bool = False,
               transport: SSHTransport | None = None) -> Iterator[TargetShell]:
    """A :class:`TargetShell` on a labgrid target; powers the emulated board on and off.

    * ``QEMUDriver``: boot QEMU, use the console ``ShellDriver``; QEMU is stopped on exit.
    * ``NetworkService`` (``SSHDriver``): :class:`SSHCommand` over the paramiko
      transport with verified host keys (labgrid's SSHDriver is never activated).
      For a ``RemotePlace`` (acquired by the caller) the place's exported
      ``NetworkService`` (:func:`rprockit.place.resolve_on`).
    * otherwise the target's ``CommandProtocol`` driver (a serial ``ShellDriver``;
      for a place without SSH, over its exported ``NetworkSerialPort``).

    Args:
        target: a labgrid ``Target`` (from the pytest plugin or ``Environment``).
        env_file: its environment file (rprockit's settings: known_hosts, sudo,
            root_prefix, connect timeout).
        accept_new_host_key: record an unknown SSH host key instead of refusing it.
        transport: an open SSH connection to the same target to use (and leave open)
            instead of a new one, for a ``NetworkService`` target.

    Raises:
        HostKeyUnknownError, HostKeyMismatchError, TargetConnectionError: SSH.
        InvalidFileError: the environment file is invalid.
    """
    from ..place import resolve_on

    desc = resolve_on(load_target(env_file, role=target.name), target)
    qemu = _has_driver(target, "QEMUDriver")
    if qemu is not None:
        target.activate(qemu)
        qemu.on()
        try:
            yield TargetShell(target.get_driver("CommandProtocol"), desc, booted_here=True)
        finally:
            target.deactivate(qemu)  # stops QEMU
        return
    if desc.ssh is not None and transport is not None:
        yield TargetShell(SSHCommand(transport), desc)  # the caller's: it closes it
        return
    if desc.ssh is not None:
        own = transport_for(desc, accept_new_host_key=accept_new_host_key)
        own.connect()
        try:
            yield TargetShell(SSHCommand(own), desc)
        finally:
            own.close()
        return
    yield TargetShell(target.get_driver("CommandProtocol"), desc)


@contextlib.contextmanager
def images_env(images: Path | None) -> Iterator[None]:
    """Set ``LG_RPROCKIT_IMAGES`` (read by the environment file's templates) for a while."""
    old = os.environ.get("LG_RPROCKIT_IMAGES")
    if images is not None:
        os.environ["LG_RPROCKIT_IMAGES"] = str(images)
    try:
        yield
    finally:
        if images is not None:
            if old is None:
                os.environ.pop("LG_RPROCKIT_IMAGES", None)
            else:
                os.environ["LG_RPROCKIT_IMAGES"] = old
