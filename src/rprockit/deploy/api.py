"""deploy() and rollback(): the deploy stage over plain values."""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import __version__
from ..runner import Runner
from ..target import TargetDesc, expand_release
from . import install
from . import reload as rl
from .artifacts import DeployArtifacts, check_artifacts, sha256_file
from .errors import (
    NothingToRollBackError,
    PrecheckError,
    ReloadError,
    RemoteCommandError,
    TargetConnectionError,
)
from .install import Layout
from .precheck import OPTIONAL_TOOLS, Findings, run_prechecks, target_release
from .remote import RemoteShell, sh, tools
from ..ssh import SSHTransport, transport_for

log = logging.getLogger("rprockit.deploy")

RECORD_FORMAT = 1
DMESG_LINES = 30


@dataclass(frozen=True)
class ProgressEvent:
    """Progress of a deploy.

    Attributes:
        stage: ``connect``, ``precheck``, ``upload``, ``switch``, ``depmod``,
            ``reload`` or ``done``.
        name: file being uploaded, or the reload step.
        done: bytes sent (upload).
        total: bytes to send (upload).
    """

    stage: str
    name: str = ""
    done: int = 0
    total: int = 0


Progress = Callable[[ProgressEvent], None]


@dataclass
class DeployResult:
    """What a deploy or rollback did.

    Attributes:
        where: ``user@host:port`` of the target.
        release: the target's ``uname -r``.
        record: the deploy record now on the target (None after rolling back to a
            target that had no rprockit deploy).
        installed: paths on the target of the files now installed by rprockit.
        forced: True when ``--force`` overrode a failed check.
        warnings: forced overrides and other things to show loudly.
        notes: informational lines (depmod skipped, ...).
        reload_steps: the reload steps performed, as shell equivalents.
        seconds: wall time.
    """

    where: str
    release: str
    record: dict | None
    installed: list[str] = field(default_factory=list)
    forced: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reload_steps: list[str] = field(default_factory=list)
    seconds: float = 0.0


def open_transport(target: TargetDesc, *, accept_new_host_key: bool = False,
                   runner: Runner | None = None) -> SSHTransport:
    """An (unconnected) SSH transport for ``target``.

    Raises:
        TargetConnectionError: the target description has no SSH access.
    """
    if target.ssh is None:
        raise TargetConnectionError(
            f"target {target.source} ({target.kind}) has no SSH access: deploy copies files "
            "over SSH. Add a NetworkService resource (address, username, port) to the "
            "target, e.g. a host port forwarded to the guest's sshd/dropbear")
    return transport_for(target, accept_new_host_key=accept_new_host_key,
                         echo=runner.echo if runner else None)


def deploy(target: TargetDesc, artifacts: DeployArtifacts, *, force: bool = False,
           reload: bool = False, accept_new_host_key: bool = False,
           runner: Runner | None = None, transport: RemoteShell | None = None,
           progress: Progress | None = None) -> DeployResult:
    """Install modules and firmware on the target atomically, optionally reload them.

    Pre-checks run first and change nothing: kernel release (``uname -r``) against
    the build and every module's vermagic (``modinfo -F vermagic`` here), required
    tools, writability (read-only rootfs is named as such), one filesystem for
    staging and destinations, and free space (``df -k -P``).  Files are uploaded to
    ``<staging_dir>/new``, verified with ``sha256sum`` there, the replaced files are
    hard-linked into ``<staging_dir>/backup``, and the new ones renamed into place;
    then ``depmod`` runs and ``<staging_dir>/deploy.json`` records the set.

    Args:
        target: from :func:`rprockit.target.load_target`.
        artifacts: the files and facts of the build.
        force: deploy despite a kernel release / vermagic mismatch (logged as a
            warning and recorded in the deploy record as ``forced``).
        reload: after installing, restart the remote processor and reload the
            modules in ``artifacts.load_order`` (see :mod:`rprockit.deploy.reload`).
        accept_new_host_key: record an unknown SSH host key instead of refusing.
        runner: runs ``modinfo`` here; its ``echo`` also receives remote command lines.
        transport: an open connection to use instead of one made from ``target``.
        progress: receives :class:`ProgressEvent` objects.

    Returns:
        What was installed and done.

    Raises:
        ArtifactError: a local file is missing or not a module.
        HostKeyUnknownError, HostKeyMismatchError, TargetConnectionError: SSH.
        PrecheckError: a check failed; nothing was changed.
        ReloadImpossibleError: ``reload`` with a module built into the target kernel;
            nothing was changed.
        UploadError: the upload failed or was cut; installed files are unchanged.
        ReloadError: a reload step failed; the files were rolled back.
        RemoteCommandError: another command failed on the target.
    """
    t0 = time.monotonic()
    runner = runner or Runner()
    emit = progress or (lambda ev: None)
    checked = check_artifacts(artifacts, runner)
    remote = transport or open_transport(target, accept_new_host_key=accept_new_host_key,
                                         runner=runner)
    try:
        emit(ProgressEvent("connect"))
        remote.connect()
        emit(ProgressEvent("precheck"))
        found, layout = run_prechecks(remote, target, artifacts, checked)
        plan = _plan_if_reload(remote, target, artifacts, found, layout) if reload else None
        warnings = _decide(remote.where, found, force)
        old = install.read_record(remote, layout.record)
        record = _record(target, artifacts, checked, layout, found, warnings)
        files = {"modules": checked.modules, "firmware": checked.firmware}
        install.stage(remote, layout, files,
                      lambda n, s, t: emit(ProgressEvent("upload", n, s, t)))
        emit(ProgressEvent("switch"))
        _switch(remote, target, layout, files, old, record, found.tools)
        result = DeployResult(remote.where, found.release, record, warnings=warnings,
                              forced=bool(warnings), notes=list(found.notes))
        result.installed = [f"{layout.modules}/{n}" for n in record["modules"]] + \
                           [f"{layout.firmware}/{n}" for n in record["firmware"]]
        emit(ProgressEvent("depmod"))
        skipped = install.depmod(remote, target, layout, found.tools)
        if skipped:
            result.notes.append(skipped)
        if plan is not None:
            result.reload_steps = _reload(remote, target, layout, plan, found.tools,
                                          record, emit)
        emit(ProgressEvent("done"))
        result.seconds = time.monotonic() - t0
        return result
    finally:
        if transport is None:
            remote.close()


def rollback(target: TargetDesc, *, reload: bool = False, accept_new_host_key: bool = False,
             runner: Runner | None = None, transport: RemoteShell | None = None
             ) -> DeployResult:
    """Restore the set installed before the last deploy (one level), and its record.

    Args:
        target: the target description.
        reload: reload the restored set (needs ``load_order`` in its record).
        accept_new_host_key: record an unknown SSH host key instead of refusing.
        runner: its ``echo`` receives remote command lines.
        transport: an open connection to use instead of one made from ``target``.

    Returns:
        The record now in force (None when the target had no earlier deploy).

    Raises:
        NothingToRollBackError: no backup set on the target.
        ReloadError: reloading the restored set failed (files stay restored).
        TargetConnectionError, RemoteCommandError: SSH or a command failed.
    """
    t0 = time.monotonic()
    remote = transport or open_transport(target, accept_new_host_key=accept_new_host_key,
                                         runner=runner)
    try:
        remote.connect()
        release = target_release(remote)
        found_tools = tools(remote, OPTIONAL_TOOLS)
        layout = Layout.for_target(target, release)
        current = install.read_record(remote, layout.record)
        pending = install.read_record(remote, f"{layout.record}.new")
        if remote.run(["test", "-d", layout.backup], check=False).returncode != 0:
            raise NothingToRollBackError(
                f"nothing to roll back on {remote.where}: {layout.backup} does not exist "
                "(no deploy yet, or the last rollback already used the backup)")
        install.restore(remote, layout, current, pending)
        restored = install.read_record(remote, layout.record)
        result = DeployResult(remote.where, release, restored)
        if restored:
            result.installed = [f"{layout.modules}/{n}" for n in restored.get("modules", {})] \
                + [f"{layout.firmware}/{n}" for n in restored.get("firmware", {})]
        skipped = install.depmod(remote, target, layout, found_tools)
        if skipped:
            result.notes.append(skipped)
        if reload and restored and restored.get("load_order"):
            plan = _plan(remote, target, layout, restored.get("load_order", []),
                         list(restored.get("modules", {})), restored.get("firmware_name"),
                         found_tools)
            result.reload_steps = _execute(remote, target, plan, found_tools,
                                           _installed_modules(layout, restored))
        elif reload:
            result.notes.append("reload skipped: the restored set has no load order")
        result.seconds = time.monotonic() - t0
        return result
    finally:
        if transport is None:
            remote.close()


# -- helpers -----------------------------------------------------------------------------
def _decide(where: str, found: Findings, force: bool) -> list[str]:
    """Raise PrecheckError, or return the forced overrides (warnings)."""
    if found.hard or (found.forceable and not force):
        raise PrecheckError(where, found.hard + found.forceable,
                            forceable=not found.hard)
    for msg in found.forceable:
        log.warning("FORCED deploy despite: %s", msg)
    return list(found.forceable)


def _record(target: TargetDesc, artifacts: DeployArtifacts, checked, layout: Layout,
            found: Findings, warnings: list[str]) -> dict:
    mpath = artifacts.manifest_path
    return {
        "format": RECORD_FORMAT,
        "tool": f"rprockit {__version__}",
        "deployed_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "target_release": found.release,
        "build": {
            "manifest_id": artifacts.manifest_id,
            "manifest_sha256": sha256_file(mpath) if mpath and mpath.is_file() else None,
            "kernel_release": artifacts.kernel_release or None,
        },
        "forced": bool(warnings),
        "force_overrides": warnings,
        "modules_dir": expand_release(target.settings.modules_dir, layout.release),
        "firmware_dir": expand_release(target.settings.firmware_dir, layout.release),
        "modules": {f.name: f.sha256 for f in checked.modules},
        "firmware": {f.name: f.sha256 for f in checked.firmware},
        "vermagic": {f.name: f.vermagic for f in checked.modules},
        "load_order": list(artifacts.order),
        "firmware_name": artifacts.boot_firmware,
    }


def _switch(remote: RemoteShell, target: TargetDesc, layout: Layout, files, old, record,
            tool_paths) -> None:
    try:
        install.backup(remote, layout, files, old)
    except RemoteCommandError as e:
        install.discard_staging(remote, layout)
        raise RemoteCommandError(remote.where, e.cmd, e.returncode, e.output,
                                 "backing up the installed files failed; nothing was "
                                 "switched") from e
    try:
        install.switch(remote, layout, files, old, record)
    except RemoteCommandError as e:
        install.restore(remote, layout, old, record)
        install.depmod(remote, target, layout, tool_paths)
        raise RemoteCommandError(remote.where, e.cmd, e.returncode, e.output,
                                 "the switch failed; the previous set was restored") from e
    except TargetConnectionError as e:
        raise TargetConnectionError(
            f"{e}; the connection dropped while switching files: the previous set is "
            "complete in the backup; run deploy --rollback to restore it, or deploy "
            "again") from e


def _plan_if_reload(remote, target, artifacts, found, layout) -> list[rl.ReloadStep]:
    return _plan(remote, target, layout, list(artifacts.order),
                 [p.name for p in artifacts.modules], artifacts.boot_firmware, found.tools)


def _plan(remote, target: TargetDesc, layout: Layout, order: list[str], module_files,
          firmware: str | None, tool_paths: dict[str, str]) -> list[rl.ReloadStep]:
    from .artifacts import module_name
    order = [rl.normalize(n) for n in order]
    shipped = {module_name(n): f"{layout.modules}/{n}" for n in module_files}
    builtin_path = target.path(f"/lib/modules/{layout.release}/modules.builtin")
    states, rprocs = rl.inspect(remote, target.sysfs, builtin_path, order)
    unprefixed = expand_release(target.settings.modules_dir, layout.release)
    use_modprobe = ("modprobe" in tool_paths and "depmod" in tool_paths
                    and unprefixed.startswith(f"/lib/modules/{layout.release}/"))
    fw_dir = None if layout.firmware in rl.default_fw_dirs(layout.release) else layout.firmware
    return rl.plan_reload(order, shipped, states, rprocs, selector=target.settings.remoteproc,
                          firmware=firmware, use_modprobe=use_modprobe, fw_dir=fw_dir)


def _execute(remote, target: TargetDesc, plan, tool_paths, installed=None) -> list[str]:
    ex = rl.Executor(remote, target.sysfs, tool_paths, target.settings.root_prefix,
                     installed=installed)
    try:
        return ex.run(plan)
    except rl.StepFailed as e:
        raise ReloadError(remote.where, e.step.describe(), e.cause, _dmesg(remote),
                          "the files stay as they are") from e


def _installed_modules(layout: Layout, record: dict | None) -> dict[str, str]:
    from .artifacts import module_name
    return {module_name(n): f"{layout.modules}/{n}" for n in (record or {}).get("modules", {})}


def _reload(remote, target: TargetDesc, layout: Layout, plan, tool_paths, record,
            emit: Progress) -> list[str]:
    ex = rl.Executor(remote, target.sysfs, tool_paths, target.settings.root_prefix,
                     installed=_installed_modules(layout, record))
    emit(ProgressEvent("reload"))
    try:
        return ex.run(plan)
    except rl.StepFailed as e:
        try:
            install.restore(remote, layout, record)
            install.depmod(remote, target, layout, tool_paths)
            back = ("the files were rolled back to the previous set; the modules loaded "
                    "now may be a mix: reload the previous set or reboot")
        except Exception as err:
            back = f"rolling the files back ALSO failed ({err}); run deploy --rollback"
        raise ReloadError(remote.where, e.step.describe(), e.cause, _dmesg(remote),
                          back) from e


def _dmesg(remote: RemoteShell) -> str:
    try:
        res = remote.run(sh('dmesg 2>&1 | tail -n "$1"', str(DMESG_LINES)), check=False)
    except Exception as e:
        return f"(dmesg unavailable: {e})"
    return res.stdout or res.stderr or "(dmesg printed nothing)"
