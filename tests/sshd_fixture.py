"""A real, throwaway OpenSSH server on loopback for deploy tests.

Load it from ``tests/conftest.py`` with ``pytest_plugins = ["sshd_fixture"]`` or import
the fixture in a test module.  The ``sshd`` fixture (session scope) starts
``/usr/sbin/sshd -D -e -f <cfg>`` as the current user on 127.0.0.1 and a free port,
with a fresh ed25519 host key and user key; public-key login only, ``UsePAM no``,
``StrictModes no``.  It is stopped at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import contextlib

SSHD = "/usr/sbin/sshd"


@dataclass
class SSHServer:
    """A running sshd.

    Attributes:
        host: ``127.0.0.1``.
        port: its TCP port.
        user: the login (the current user).
        user_key: private key accepted by the server.
        host_key_pub: the server's public host key line (``ssh-ed25519 AAAA...``).
        known_hosts: a known_hosts file listing the server's host key.
        log: sshd's log file.
        proc: the listener process.
    """

    host: str
    port: int
    user: str
    user_key: Path
    host_key_pub: str
    known_hosts: Path
    log: Path
    proc: subprocess.Popen

    @property
    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_key_pub}"

    def environment_file(self, directory: Path, **rprockit_options: str) -> Path:
        """Write ``directory/known_hosts`` (this server's key) and ``directory/board.yaml``,
        a labgrid environment file for a board reached over SSH at this server, with
        ``rprockit_options`` added under ``targets.main.options.rprockit``."""
        import yaml

        kh = directory / "known_hosts"
        kh.write_text(self.known_hosts_line + "\n")
        env = directory / "board.yaml"
        env.write_text(yaml.safe_dump({"targets": {"main": {
            "resources": {"NetworkService": {"address": self.host, "port": self.port,
                                             "username": self.user}},
            "drivers": {"SSHDriver": {"keyfile": str(self.user_key)}},
            "options": {"rprockit": {"known_hosts": str(kh), **rprockit_options}}}}}))
        return env

    def session_pids(self) -> list[int]:
        """PIDs of the per-connection sshd processes (children of the listener)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def kill_sessions(self) -> int:
        """SIGKILL every open connection (the listener keeps running); return how many."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rprockit-test",
                    "-f", str(path)], check=True)


def _wait_banner(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-2.0"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def start_sshd(workdir: Path) -> SSHServer:
    """Start sshd in ``workdir`` (keys, config, log); see the module docstring."""
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        pytest.skip(f"{SSHD} or ssh-keygen missing: apt-get install openssh-server")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        # sshd running as root needs its privilege separation directory.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    hostkey, userkey = workdir / "host_ed25519", workdir / "user_ed25519"
    _keygen(hostkey)
    _keygen(userkey)
    import getpass
    user = getpass.getuser()
    log = workdir / "sshd.log"
    for _ in range(3):
        port = _free_port()
        cfg = workdir / "sshd_config"
        cfg.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {hostkey}\n"
            f"AuthorizedKeysFile {userkey}.pub\nPidFile {workdir}/sshd.pid\n"
            "UsePAM no\nStrictModes no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nAllowAgentForwarding no\n"
            "X11Forwarding no\nMaxStartups 50\nMaxSessions 50\nLogLevel VERBOSE\n"
            # Debian's bash sources ~/.bashrc for commands run by sshd when SHLVL < 2
            # (shell.c, SSH_SOURCE_BASHRC); a heavy .bashrc (pyenv init) would cost
            # ~0.4 s per remote command.
            "SetEnv SHLVL=1\n")
        with open(log, "ab") as fh:
            proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=fh,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if _wait_banner(port, proc):
            pub = " ".join(Path(f"{hostkey}.pub").read_text().split()[:2])
            kh = workdir / "known_hosts"
            server = SSHServer("127.0.0.1", port, user, userkey, pub, kh, log, proc)
            kh.write_text(server.known_hosts_line + "\n")
            return server
        proc.kill()
        proc.wait()
    pytest.skip(f"sshd did not start; its log:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> SSHServer:
    """A running throwaway sshd on 127.0.0.1 (see :func:`start_sshd`)."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.proc.terminate()
    try:
        server.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
