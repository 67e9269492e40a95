"""The emulated board kept up between commands: boot the guest once, then edit in a loop.

``rprockit board-up`` boots the profile's image on QEMU with SSH access (the SSH
target, ``targets/qemu-imx7d-ssh.yaml``: dropbear in the initramfs, a host port
forwarded to the guest's port 22) and leaves it running; ``rprockit loop`` then
takes each edit through build (modules only) -> deploy over SSH with reload ->
the quick checks, without a reboot; ``rprockit board-down`` stops it.

What the board boots lives in ``<ws>/board/``: links to the full build's image
and DTBs, the SSH initramfs (the built modules and firmware, dropbear, a host
key made once per machine in the rprockit cache, the user's public key), QEMU's log and the pid of
the process that holds QEMU.  That process (``python -m rprockit.board``) powers
the guest through labgrid's QEMUDriver (role ``qemu`` of the environment file)
and stops it when it gets SIGTERM.  The guest's host key is added to the user's
``known_hosts`` as ``[127.0.0.1]:<port>`` when it is not there; a different key
recorded for that address is refused (the fix: ``ssh-keygen -R``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .initramfs import SSHAccess, generate_host_key, host_public_key, known_hosts_line
from .initramfs import machine_cache, make_initramfs
from .manifest import Manifest
from .runner import Runner
from .ssh import SSHTransport
from .target import load_target
from .workspace import Workspace

#: Seconds to wait for the guest's dropbear after QEMU started.
BOOT_TIMEOUT = 180.0
USER_KEYS = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")
#: Reload cycles of the loop's quick checks unless --cycles says otherwise.
LOOP_CYCLES = 1


class BoardError(UserError):
    """The emulated board cannot be brought up or down."""


@dataclass(frozen=True)
class Board:
    """A running emulated board.

    Attributes:
        pid: the process holding QEMU.
        env: the environment file (role ``main`` is the SSH access).
        seconds: wall time of the boot (0 when it was already up).
        boot_id: the guest's ``/proc/sys/kernel/random/boot_id`` (a reboot changes it).
    """

    pid: int
    env: Path
    seconds: float
    boot_id: str


def board_dir(ws: Workspace) -> Path:
    return ws.base / "board"


def _alive(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` when that process is rprockit's board holder, else None."""
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if b"rprockit.board" in cmdline else None


def _user_key() -> str:
    ssh = Path.home() / ".ssh"
    for name in USER_KEYS:
        if (ssh / name).is_file():
            return (ssh / name).read_text().strip()
    raise BoardError(f"no SSH public key in {ssh} ({', '.join(USER_KEYS)}): the guest lets in "
                     "the key of the user who boots it; create one with "
                     "ssh-keygen -t ed25519")


def _known_host(host: str, port: int, pub: str) -> None:
    kh = Path.home() / ".ssh" / "known_hosts"
    name = f"[{host}]:{port}"
    line = known_hosts_line(host, port, pub)
    text = kh.read_text() if kh.is_file() else ""
    mine = [ln for ln in text.splitlines() if ln.split(" ", 1)[0] == name]
    if line in mine:
        return
    if mine:
        raise BoardError(f"{kh} has another host key for {name}: the emulated board's key is "
                         f"new. Remove the old one (ssh-keygen -R '{name}') and run again")
    kh.parent.mkdir(mode=0o700, exist_ok=True)
    with open(kh, "a") as fh:
        fh.write(("" if not text or text.endswith("\n") else "\n") + line + "\n")


def _wait_ssh(env: Path, pid_file: Path, log: Path, timeout: float) -> str:
    import logging

    # paramiko's transport thread logs every refused banner while the guest boots
    logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)
    desc = load_target(env)
    assert desc.ssh is not None
    t0 = time.monotonic()
    while True:
        try:
            with SSHTransport(desc.ssh, connect_timeout=5) as t:
                return t.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout.strip()
        except UserError:
            if _alive(pid_file) is None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) \
                    if log.is_file() else ""
                raise BoardError(f"the emulated board stopped while booting; see {log}:\n"
                                 f"{tail}") from None
            if time.monotonic() - t0 > timeout:
                raise BoardError(f"no SSH answer from the emulated board after {timeout:.0f} s "
                                 f"({desc.ssh}); see {log}") from None
            time.sleep(0.5)


def up(env: Path, ws: Workspace, arch: str, runner: Runner | None = None,
       say=print) -> Board:
    """Boot the emulated board with SSH access and leave it running (idempotent).

    Args:
        env: the SSH target's environment file (roles ``main``: NetworkService,
            ``qemu``: QEMUDriver).
        ws: the workspace whose full build the board boots.
        arch: the kernel ARCH.
        runner: runs ssh-keygen, cpio, depmod and the board process.
        say: progress lines.

    Returns:
        The board.

    Raises:
        BoardError: no user key, a conflicting known_hosts entry, or the guest did not
            come up (the QEMU log tail).
        UserError: no build yet.
    """
    runner = runner or Runner()
    d = board_dir(ws)
    d.mkdir(parents=True, exist_ok=True)
    pid_file, log = d / "board.pid", d / "qemu.log"
    desc = load_target(env)
    if desc.ssh is None or desc.kind != "ssh":
        raise BoardError(f"{env}: board-up needs the SSH target of the emulated board (a "
                         "NetworkService in role main, a QEMUDriver in role qemu), e.g. "
                         "targets/qemu-imx7d-ssh.yaml")
    pid = _alive(pid_file)
    if pid is not None:
        return Board(pid, env, 0.0, _wait_ssh(env, pid_file, log, 10))
    t0 = time.monotonic()
    man = Manifest.load(ws.artifacts)
    key = machine_cache() / "board-host_ed25519"  # one per machine: one known_hosts line
    pub = host_public_key(key, runner) if key.is_file() else generate_host_key(key, runner)
    _known_host(desc.ssh.host, desc.ssh.port or 22, pub)
    for name in ("zImage", "Image", "dtbs"):
        link = d / name
        if (ws.artifacts / name).exists() and not link.is_symlink():
            link.symlink_to(ws.artifacts / name)
    say(f"[board] initramfs with SSH access for {man.kernel_release}")
    make_initramfs(arch, man.kernel_release, list(man.modules),
                   [man.firmware] if man.firmware else [], d / "initramfs.cpio", 1,
                   runner, ssh=SSHAccess(key, _user_key()))
    log.write_text("")
    pid = runner.spawn([sys.executable, "-m", "rprockit.board", str(env), str(pid_file)], log,
                       env={"LG_RPROCKIT_IMAGES": str(d)})
    pid_file.write_text(f"{pid}\n")
    say(f"[board] QEMU starting (pid {pid}, log {log}); waiting for SSH on {desc.ssh}")
    boot_id = _wait_ssh(env, pid_file, log, BOOT_TIMEOUT)
    return Board(pid, env, time.monotonic() - t0, boot_id)


def down(ws: Workspace, timeout: float = 15.0) -> bool:
    """Stop the board started by :func:`up` (SIGTERM to its holder, which stops QEMU).

    Returns:
        True when a board was running.
    """
    pid_file = board_dir(ws) / "board.pid"
    pid = _alive(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while time.monotonic() < end and _alive(pid_file) is not None:
        time.sleep(0.2)
    if _alive(pid_file) is not None:
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True


@dataclass(frozen=True)
class LoopResult:
    """One turn of the inner loop.

    Attributes:
        seconds: ``{part: wall seconds}`` for build (fetch, patch, configure, modules),
            deploy (upload, switch, reload) and verify (the quick checks), and total.
        manifest_id: the modules-only build's manifest.
        deployed: False when the same build was already on the running board.
        verify: the verify stage's summary line.
    """

    seconds: dict[str, float]
    manifest_id: str
    deployed: bool
    verify: str


def iterate(ctx, env: Path, say=print) -> LoopResult:
    """One edit: build the module set only, deploy it with reload, run the quick checks.

    The board must be up (:func:`up`) for the emulated target; a real board is simply
    running.  A turn with nothing changed deploys and checks nothing (the modules
    stage and the verify stage are skipped by fingerprint, and the deploy is skipped
    when the same build went to the same running board).

    Raises:
        BoardError: the emulated board is not up.
        UserError: any stage's error (a refused deploy, a failed check).
    """
    from .deploy import DeployArtifacts, deploy
    from .deploy.api import open_transport
    from .files import write_json_atomic
    from .pipeline import run_modules_only, run_stage
    from .verify.stage import QUICK_STAGE as VERIFY

    t0 = time.monotonic()
    desc = load_target(env)
    holder = None
    if desc.emulated and desc.kind == "ssh":
        holder = _alive(board_dir(ctx.ws) / "board.pid")
        if holder is None:
            raise BoardError("the emulated board is not up: run board-up --target "
                             f"{env} first (it stays up for every loop)")
    ctx.modules_only = ctx.quick = True
    ctx.cycles = ctx.cycles or LOOP_CYCLES
    run_modules_only(ctx)
    t1 = time.monotonic()
    arts = DeployArtifacts.from_build(ctx.manifest_dir)
    state_file = ctx.ws.state_file("loop")
    last = ctx.ws.load_state("loop") or {}
    key = {"manifest_id": arts.manifest_id, "env": str(env), "holder": holder}
    deployed = last.get("deployed") != key or holder is None
    with contextlib.ExitStack() as conn:
        if deployed:
            # one SSH connection for the deploy, the reload and the quick checks
            remote = conn.enter_context(open_transport(
                desc, accept_new_host_key=ctx.accept_new_host_key))
            ctx.transport = remote
            ctx.ws.clear_state(VERIFY.name)  # the board's modules change: check again
            res = deploy(desc, arts, reload=True, transport=remote)
            say(f"[deploy] {len(res.installed)} files on {res.where} ({res.release}), "
                f"reloaded, in {res.seconds:.1f} s")
            write_json_atomic(state_file, {"fingerprint": "", "deployed": key})
        else:
            say(f"[deploy] manifest {arts.manifest_id} is already on the running board")
        t2 = time.monotonic()
        try:
            ver = run_stage(VERIFY, ctx)
        finally:
            ctx.transport = None
    say(f"[verify] {'up to date, skipped' if ver.skipped else 'done'} in {ver.seconds:.1f} s: "
        f"{ver.summary}")
    t3 = time.monotonic()
    secs = {"build": t1 - t0, "deploy": t2 - t1, "verify": t3 - t2, "total": t3 - t0}
    return LoopResult({k: round(v, 2) for k, v in secs.items()}, arts.manifest_id or "",
                      deployed, ver.summary)


def _serve(env: str, pid_file: str) -> None:
    """The board holder: QEMU on through labgrid until SIGTERM, then off."""
    from labgrid import Environment

    from pexpect import TIMEOUT  # type: ignore[import-untyped]  # what QEMUDriver raises

    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    target = Environment(env).get_target("qemu")
    qemu = target.get_driver("QEMUDriver")
    target.activate(qemu)
    qemu.on()
    print(f"[board] QEMU running (pid {qemu._child.pid}); console below", flush=True)
    Path(pid_file).write_text(f"{os.getpid()}\n")
    child = getattr(qemu, "_child", None)  # labgrid's QEMU process
    out = sys.stdout.buffer
    try:
        while not stop and (child is None or child.poll() is None):
            try:  # drain the console: a full socket would stall the guest's UART
                out.write(qemu.read(4096, timeout=0.5))
                out.flush()
            except TIMEOUT:
                pass
    finally:
        with contextlib.suppress(Exception):
            target.deactivate(qemu)


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
