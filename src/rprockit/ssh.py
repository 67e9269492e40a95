"""SSH to the target, with host key verification (paramiko): below deploy and verify.

Why paramiko and not labgrid's ``SSHDriver``: labgrid 26 starts its control master
with ``-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no`` and ``-F none``
(``labgrid/driver/sshdriver.py`` ``SSHDriver._start_own_master_once`` and
``on_activate``), so it accepts any host key and ignores the user's ssh config; its
``run()`` also splits the command on spaces, which breaks quoted arguments.  Deploy
must verify the host key against known_hosts and take keys from the agent or the
user's ssh config, so it talks SSH itself:

* host keys are checked against the ssh config's ``UserKnownHostsFile`` (or
  ``~/.ssh/known_hosts``) and ``/etc/ssh/ssh_known_hosts``; an unknown key is refused
  unless ``accept_new_host_key`` (then it is appended, like OpenSSH's
  ``StrictHostKeyChecking=accept-new``); a changed key is always refused;
* keys come from ssh-agent, the ssh config's ``IdentityFile`` or an explicit key file;
* commands are argument lists, each argument quoted with :func:`shlex.quote`; the
  target's login shell only ever sees quoted words;
* files are uploaded through ``cat`` on an exec channel, not SFTP, because dropbear
  and busybox targets usually have no sftp-server.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import logging
import os
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import paramiko

from .errors import TargetError
from .target import SSHParams, TargetDesc

log = logging.getLogger("rprockit.ssh")


class HostKeyUnknownError(TargetError):
    """The target's SSH host key is not in known_hosts (nothing was sent)."""

    def __init__(self, host: str, key_type: str, fingerprint: str, known_hosts: list[str]):
        self.host = host
        self.fingerprint = fingerprint
        files = ", ".join(known_hosts) or "~/.ssh/known_hosts"
        super().__init__(
            f"the SSH host key of {host} ({key_type} {fingerprint}) is not in {files}; "
            "nothing was sent to it. Check the fingerprint on the target's console "
            "(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub, or dropbearkey -y -f ...), then "
            "either add it (ssh once interactively, or ssh-keyscan) or rerun with "
            "--accept-new-host-key to record it.")


class HostKeyMismatchError(TargetError):
    """The target presented a host key different from the recorded one."""

    def __init__(self, host: str, key_type: str, fingerprint: str, expected: str):
        self.host = host
        super().__init__(
            f"the SSH host key of {host} has CHANGED: it presents {key_type} {fingerprint}, "
            f"known_hosts records {expected}. This is refused even with "
            "--accept-new-host-key. If the board was reinstalled, remove the old entry "
            f"with: ssh-keygen -R '{host}'")


class TargetConnectionError(TargetError):
    """The target could not be reached, refused authentication or dropped the link."""


class RemoteCommandError(TargetError):
    """A command on the target exited non-zero."""

    def __init__(self, where: str, cmd: str, returncode: int, output: str, hint: str = ""):
        self.cmd = cmd
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-20:])
        hint = f"\n{hint}" if hint else ""
        super().__init__(f"on {where}: command failed with exit code {returncode}: {cmd}\n"
                         f"--- target output ---\n{tail}{hint}")

CHUNK = 32 * 1024
#: Seconds to wait for the end of a command's output after its exit status arrived.
EOF_GRACE = 1.0
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"

#: progress(sent_bytes, total_bytes) during an upload.
UploadProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class RemoteResult:
    """Result of a command on the target: exit code and decoded output."""

    returncode: int
    stdout: str
    stderr: str


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse unknown keys, or append them to ``write_to`` when accepting is allowed."""

    def __init__(self, accept_new: bool, write_to: str, files: list[str]):
        self.accept_new = accept_new
        self.write_to = write_to
        self.files = files

    def missing_host_key(self, client, hostname, key):
        fp = fingerprint(key)
        if not self.accept_new:
            raise HostKeyUnknownError(hostname, key.get_name(), fp, self.files)
        path = Path(self.write_to).expanduser()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path, "a", encoding="ascii") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        log.warning("accepted NEW host key for %s: %s %s (recorded in %s)",
                    hostname, key.get_name(), fp, path)


class SSHTransport:
    """A connection to the target that runs argument lists and uploads files.

    Args:
        params: host, port, user, key file (from the target description).
        known_hosts: known_hosts file to check (and extend with accept_new_host_key);
            None for the ssh config's ``UserKnownHostsFile`` or ``~/.ssh/known_hosts``.
        accept_new_host_key: record an unknown host key instead of refusing it.
        sudo: prefix every command with ``sudo -n --``.
        connect_timeout: seconds for TCP connect, banner and authentication.
        ssh_config: ssh config file to read; None for ``~/.ssh/config`` when present.
        echo: optional callback receiving each logged command line.

    The connection is opened by :meth:`connect` (or on first use) and closed by
    :meth:`close`; the object is a context manager.
    """

    def __init__(self, params: SSHParams, *, known_hosts: str | None = None,
                 accept_new_host_key: bool = False, sudo: bool = False,
                 connect_timeout: float = 10.0, ssh_config: str | None = None,
                 echo: Callable[[str], None] | None = None):
        self.params = params
        self.sudo = sudo
        self.accept_new_host_key = accept_new_host_key
        self.connect_timeout = connect_timeout
        self.echo = echo
        self._known_hosts = known_hosts
        self._ssh_config = ssh_config
        self._client: paramiko.SSHClient | None = None
        self.where = str(params)

    # -- connection -------------------------------------------------------------------
    def _config(self) -> dict:
        path = Path(self._ssh_config or "~/.ssh/config").expanduser()
        if not path.is_file():
            return {}
        return paramiko.SSHConfig.from_path(str(path)).lookup(self.params.host)

    def connect(self) -> SSHTransport:
        """Open the connection, verifying the host key.

        Raises:
            HostKeyUnknownError: the key is not known and accepting is not allowed.
            HostKeyMismatchError: the key differs from the recorded one.
            TargetConnectionError: unreachable, or authentication failed.
        """
        if self._client is not None:
            return self
        cfg = self._config()
        host = cfg.get("hostname", self.params.host)
        port = self.params.port or int(cfg.get("port", 22))
        user = self.params.user or cfg.get("user") or getpass.getuser()
        self.where = f"{user}@{host}:{port}"
        files = self._known_hosts_files(cfg)
        client = paramiko.SSHClient()
        for f in [*files, GLOBAL_KNOWN_HOSTS]:
            if Path(f).is_file():
                client.load_system_host_keys(f)
        client.set_missing_host_key_policy(
            _HostKeyPolicy(self.accept_new_host_key, files[0], files))
        keys: list[str] = [self.params.key_file] if self.params.key_file else [
            str(Path(k).expanduser()) for k in cfg.get("identityfile", [])
            if Path(k).expanduser().is_file()]
        sock = paramiko.ProxyCommand(cfg["proxycommand"]) if "proxycommand" in cfg else None
        try:
            client.connect(host, port=port, username=user,
                           key_filename=keys or None,  # type: ignore[arg-type]  # str or list
                           password=self.params.password, allow_agent=True,
                           look_for_keys=not keys, timeout=self.connect_timeout,
                           banner_timeout=self.connect_timeout,
                           auth_timeout=self.connect_timeout, sock=sock)
        except paramiko.BadHostKeyException as e:
            client.close()
            raise HostKeyMismatchError(self._hostkey_name(host, port), e.key.get_name(),
                                       fingerprint(e.key), fingerprint(e.expected_key)) from e
        except (HostKeyUnknownError, HostKeyMismatchError):
            client.close()
            raise
        except paramiko.AuthenticationException as e:
            client.close()
            raise TargetConnectionError(
                f"SSH authentication as {user} on {host}:{port} failed ({e}); load the key "
                "into ssh-agent (ssh-add), name it in ~/.ssh/config (IdentityFile) or in the "
                "target's SSHDriver keyfile") from e
        except (OSError, paramiko.SSHException, EOFError) as e:
            client.close()
            raise TargetConnectionError(
                f"cannot reach {host}:{port} over SSH: {e}; check that the board is up, "
                "its sshd/dropbear runs and the address and port in the target are right"
            ) from e
        self._client = client
        return self

    def _known_hosts_files(self, cfg: dict) -> list[str]:
        if self._known_hosts:
            return [self._known_hosts]
        files = cfg.get("userknownhostsfile", "")
        files = files.split() if isinstance(files, str) else list(files)
        return [str(Path(f).expanduser()) for f in files] or [
            str(Path("~/.ssh/known_hosts").expanduser())]

    @staticmethod
    def _hostkey_name(host: str, port: int) -> str:
        return host if port == 22 else f"[{host}]:{port}"

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def is_active(self) -> bool:
        """True while the SSH transport is up."""
        t = self._client.get_transport() if self._client else None
        return bool(t and t.is_active())

    def _lost(self, what: str, err: BaseException) -> TargetConnectionError:
        return TargetConnectionError(
            f"the SSH connection to {self.where} was lost during {what} "
            f"({type(err).__name__}: {str(err) or 'connection closed'})")

    # -- commands ---------------------------------------------------------------------
    def command_line(self, argv: Sequence[str]) -> str:
        """The exact line sent to the target's shell: every argument quoted."""
        argv = [str(a) for a in argv]
        if self.sudo:
            argv = ["sudo", "-n", "--", *argv]
        return shlex.join(argv)

    def _open(self, argv: Sequence[str], timeout: float | None) -> paramiko.Channel:
        self.connect()
        line = self.command_line(argv)
        log.info("%s$ %s", self.where, line)
        if self.echo:
            self.echo(f"{self.where}$ {line}")
        assert self._client is not None
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise self._lost(line, EOFError("transport closed"))
        chan = transport.open_session(timeout=self.connect_timeout)
        chan.settimeout(timeout)
        chan.exec_command(line)
        return chan

    def run(self, argv: Sequence[str], *, check: bool = True, input: bytes | None = None,
            timeout: float | None = 120.0, hint: str = "") -> RemoteResult:
        """Run ``argv`` on the target.

        Args:
            argv: the command and its arguments (each is quoted; no shell syntax).
            check: raise on a non-zero exit code.
            input: bytes for the command's stdin.
            timeout: seconds before giving up.
            hint: appended to the error message on failure.

        Returns:
            Exit code and output (UTF-8, undecodable bytes replaced).

        Raises:
            RemoteCommandError: non-zero exit with ``check``.
            TargetConnectionError: the connection broke.
        """
        try:
            chan = self._open(argv, timeout)
            if input:
                chan.sendall(input)
            chan.shutdown_write()
            rc, out, err = self._collect(chan, timeout)
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise self._lost(self.command_line(argv), e) from e
        res = RemoteResult(rc, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and rc != 0:
            raise RemoteCommandError(self.where, self.command_line(argv), rc,
                                     res.stderr or res.stdout, hint)
        return res

    def read_file(self, path: str, limit: int, timeout: float = 60.0) -> bytes | None:
        """The bytes of a regular file on the target (through ``cat``), or None when it
        does not exist.

        Args:
            path: full path on the target.
            limit: largest size accepted, bytes.
            timeout: seconds.

        Raises:
            RemoteCommandError: the file exists but cannot be read, or is larger than
                ``limit``.
            TargetConnectionError: the connection broke.
        """
        argv = ["sh", "-c", 'test -f "$1" || exit 3; exec cat -- "$1"', "sh", path]
        try:
            chan = self._open(argv, timeout)
            chan.shutdown_write()
            rc, out, err = self._collect(chan, timeout)
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise self._lost(self.command_line(argv), e) from e
        if rc == 3:
            return None
        if rc != 0 or len(out) > limit:
            raise RemoteCommandError(self.where, self.command_line(argv), rc or 1,
                                     err.decode(errors="replace") if rc else
                                     f"{len(out)} bytes, more than {limit}")
        return bytes(out)

    def _collect(self, chan: paramiko.Channel, timeout: float | None
                 ) -> tuple[int, bytes, bytes]:
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout if timeout else None
        exited = 0.0
        while True:
            busy = False
            if chan.recv_ready():
                out += chan.recv(65536)
                busy = True
            if chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                busy = True
            if busy:
                continue
            # OpenSSH may send the exit status before the last output: wait for the EOF
            # too, a while (a background child of the command may hold the output open)
            if chan.exit_status_ready():
                exited = exited or time.monotonic()
                if chan.eof_received or chan.closed or time.monotonic() - exited > EOF_GRACE:
                    break
            if chan.closed or not self.is_active:
                raise EOFError("channel closed before the command's exit status arrived")
            if deadline and time.monotonic() > deadline:
                chan.close()
                raise TimeoutError(f"no exit status after {timeout} s")
            time.sleep(0.002)
        # what arrived between the checks above and the EOF
        while chan.recv_ready():
            out += chan.recv(65536)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        rc = chan.recv_exit_status()
        chan.close()
        return rc, bytes(out), bytes(err)

    def upload(self, local: str | os.PathLike, remote: str,
               progress: UploadProgress | None = None, timeout: float = 300.0) -> None:
        """Copy ``local`` to ``remote`` (a full path on the target) through ``cat``.

        Args:
            local: file on this host.
            remote: destination path on the target; its directory must exist.
            progress: called with (sent bytes, total bytes) after each 32 KiB chunk.
            timeout: seconds for the whole transfer.

        Raises:
            RemoteCommandError: ``cat`` failed on the target (e.g. ENOSPC: "No space
                left on device"); the partial file is left for the caller to remove.
            TargetConnectionError: the connection broke during the transfer.
        """
        argv = ["sh", "-c", 'cat > "$1"', "sh", remote]
        total = os.path.getsize(local)
        sent = 0
        errors = (OSError, paramiko.SSHException, EOFError)

        def lost(e: BaseException) -> TargetConnectionError:
            return self._lost(f"the upload of {local} to {remote} ({sent} of {total} bytes "
                              "sent)", e)

        try:
            chan = self._open(argv, timeout)
        except errors as e:
            raise lost(e) from e
        with open(local, "rb") as fh:
            while chunk := fh.read(CHUNK):
                try:
                    chan.sendall(chunk)
                except errors as e:
                    if self._wait_status(chan):
                        break  # the remote cat exited early (e.g. disk full)
                    raise lost(e) from e
                sent += len(chunk)
                if progress:
                    progress(sent, total)  # outside the try: its errors are its own
        try:
            if not chan.closed:
                chan.shutdown_write()
            rc, out, err = self._collect(chan, timeout)
        except errors as e:
            raise lost(e) from e
        if rc != 0 or sent != total:
            raise RemoteCommandError(self.where, self.command_line(argv), rc or 1,
                                     (err or out).decode(errors="replace"))

    def _wait_status(self, chan: paramiko.Channel, seconds: float = 2.0) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.is_active:
            if chan.exit_status_ready():
                return True
            time.sleep(0.01)
        return False


def transport_for(target: TargetDesc, *, accept_new_host_key: bool = False,
                  echo: Callable[[str], None] | None = None) -> SSHTransport:
    """An (unconnected) SSH transport to ``target`` with its settings (known_hosts, sudo,
    connect timeout).

    Args:
        target: from :func:`rprockit.target.load_target`.
        accept_new_host_key: record an unknown host key instead of refusing it.
        echo: called with each remote command line (the runner's echo).

    Raises:
        TargetConnectionError: the target has no SSH access (no NetworkService).
    """
    if target.ssh is None:
        raise TargetConnectionError(
            f"target {target.source} ({target.kind}) has no SSH access. Add a NetworkService "
            "resource (address, username, port) to the target, e.g. a host port forwarded to "
            "the guest's sshd/dropbear")
    s = target.settings
    return SSHTransport(target.ssh, known_hosts=s.known_hosts,
                        accept_new_host_key=accept_new_host_key, sudo=s.sudo,
                        connect_timeout=s.connect_timeout, echo=echo)
