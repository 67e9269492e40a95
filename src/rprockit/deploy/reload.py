"""Reload the RPMsg/remoteproc stack and the firmware without rebooting.

Order (the module set's ``load_order``; unload is the reverse):

1. stop each remote processor that is ``running``; one that is ``attached`` (started
   by the boot loader) is detached, or stopped when its driver has no detach op
   (``rproc_detach()`` in drivers/remoteproc/remoteproc_core.c returns -EINVAL then;
   imx_rproc in 6.1 has none);
2. ``rmmod`` the loaded modules of the set in reverse load order;
3. ``modprobe`` them in load order (``insmod <installed path>`` when modprobe or
   depmod is missing or the modules are outside ``/lib/modules/<release>``);
4. write the firmware name to ``/sys/class/remoteproc/<rproc>/firmware`` (only
   accepted in state ``offline``: ``rproc_set_firmware()`` returns -EBUSY otherwise,
   so a processor that came up ``running``/``attached`` is stopped first) and
   ``start`` to ``state`` (drivers/remoteproc/remoteproc_sysfs.c ``state_store()``);
5. check that ``state`` reads ``running``.

A module built into the kernel cannot be unloaded: it shows as ``/sys/module/<name>``
without ``initstate`` (kernel/params.c ``param_sysfs_builtin()`` and
``version_sysfs_builtin()`` create that directory for built-ins with parameters or a
version; ``initstate`` is a ``modinfo_attrs`` entry of kernel/module/main.c, added
only for loadable modules), or it is listed in ``/lib/modules/<release>/modules.builtin``.
"""

from __future__ import annotations

import enum
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .artifacts import normalize
from .errors import ReloadImpossibleError, RemoteCommandError
from .remote import ECHO_SCRIPT, RemoteShell, read_text, sh

RPROC_SCRIPT = r"""
for d in "$1"/class/remoteproc/*; do
  [ -d "$d" ] || continue
  printf '%s|%s|%s|%s\n' "${d##*/}" "$(cat "$d/name" 2>/dev/null)" \
    "$(cat "$d/state" 2>/dev/null)" "$(cat "$d/firmware" 2>/dev/null)"
done
exit 0
"""

MODULES_SCRIPT = r"""
root=$1; shift
for m; do
  d=$root/module/$m
  if [ -d "$d" ]; then
    if [ -e "$d/initstate" ]; then echo "$m loaded"; else echo "$m builtin"; fi
  else
    echo "$m absent"
  fi
done
"""

#: Reload steps that run together in one command on the target (:meth:`Executor.run`).
BATCHED = frozenset({"rproc-stop", "rmmod", "modprobe", "insmod", "fw-path"})

#: Run each argument (a command line of quoted words, :func:`shlex.join`) in turn;
#: at the first that fails print its output on stderr and ``rprockit-step <n> <rc>``.
BATCH_SCRIPT = r"""
i=0
for c; do
  i=$((i + 1))
  out=$(eval "$c" 2>&1) || { rc=$?; printf '%s\n' "$out" >&2; echo "rprockit-step $i $rc"; exit 1; }
done
exit 0
"""

#: ``modprobe -D`` for each module name ($2...), each answer framed by markers.
RESOLVE_SCRIPT = r"""
mp=$1; shift
for m; do
  echo "rprockit-module $m"
  "$mp" -D "$m" 2>/dev/null
  echo "rprockit-rc $?"
done
exit 0
"""


def default_fw_dirs(release: str) -> tuple[str, ...]:
    """The kernel's built-in firmware search path (drivers/base/firmware_loader/main.c
    ``fw_path[]``), for a kernel whose ``UTS_RELEASE`` is ``release``."""
    return (f"/lib/firmware/updates/{release}", "/lib/firmware/updates",
            f"/lib/firmware/{release}", "/lib/firmware")


class ModuleState(enum.Enum):
    """How a module is present in the running kernel."""

    LOADED = "loaded"
    BUILTIN = "builtin"
    ABSENT = "absent"


@dataclass(frozen=True)
class RprocInfo:
    """One ``/sys/class/remoteproc/<instance>``: ``name``, ``state``, ``firmware``."""

    instance: str
    name: str
    state: str
    firmware: str = ""


@dataclass(frozen=True)
class ReloadStep:
    """One step of a reload.

    Attributes:
        action: ``rproc-stop``, ``rproc-detach``, ``rmmod``, ``modprobe``, ``insmod``,
            ``fw-path``, ``rproc-firmware``, ``rproc-start`` or ``rproc-check``.
        arg: module name, module path, or remote processor (instance or name; ``""``
            means the only one present).
        value: firmware name, search path or expected state.
    """

    action: str
    arg: str
    value: str = ""

    def describe(self) -> str:
        """The step as a person would type it on the target."""
        rp = f"/sys/class/remoteproc/{self.arg or '<rproc>'}"
        return {
            "rproc-stop": f"echo stop > {rp}/state",
            "rproc-detach": f"echo detach > {rp}/state",
            "rmmod": f"rmmod {self.arg}",
            "modprobe": f"modprobe {self.arg}",
            "insmod": f"insmod {self.arg}",
            "fw-path": f"echo {self.value} > /sys/module/firmware_class/parameters/path",
            "rproc-firmware": f"echo {self.value} > {rp}/firmware",
            "rproc-start": f"echo start > {rp}/state",
            "rproc-check": f"cat {rp}/state  # expect {self.value}",
        }[self.action]


def classify_modules(names: Sequence[str], sysfs_states: Mapping[str, str],
                     modules_builtin: str | None) -> dict[str, ModuleState]:
    """Decide for each module whether it is loaded, built in or absent.

    Args:
        names: module names (normalised).
        sysfs_states: ``{name: "loaded" | "builtin" | "absent"}`` from /sys/module.
        modules_builtin: text of ``modules.builtin`` (one ``kernel/.../x.ko`` per
            line), or None when the target has none.

    Returns:
        ``{name: ModuleState}``.
    """
    builtin = {normalize(line.strip().rsplit("/", 1)[-1].removesuffix(".ko"))
               for line in (modules_builtin or "").splitlines() if line.strip()}
    out = {}
    for n in names:
        state = sysfs_states.get(n, "absent")
        if state == "builtin" or (state == "absent" and n in builtin):
            out[n] = ModuleState.BUILTIN
        else:
            out[n] = ModuleState(state)
    return out


def plan_reload(order: Sequence[str], shipped: Mapping[str, str],
                states: Mapping[str, ModuleState], rprocs: Sequence[RprocInfo], *,
                selector: str | None, firmware: str | None, use_modprobe: bool,
                fw_dir: str | None = None) -> list[ReloadStep]:
    """Plan the reload steps (pure: no I/O).

    Args:
        order: module names in load order.
        shipped: ``{module name: installed path on the target}`` for modules deployed.
        states: each module's state in the running kernel.
        rprocs: remote processors present now.
        selector: the remote processor to restart (instance or name), or None for
            all present now (and the only one after the reload).
        firmware: firmware file name to boot, or None to restart without changing it.
        use_modprobe: load with modprobe (else insmod the installed path).
        fw_dir: the firmware directory when it is not on the kernel's default
            search path (:func:`default_fw_dirs`); then ``firmware_class.path`` is set.

    Returns:
        The steps, in order.

    Raises:
        ReloadImpossibleError: a shipped module is built into the running kernel, or
            a module cannot be loaded back.
    """
    builtin_shipped = [m for m in order if m in shipped and states.get(m) == ModuleState.BUILTIN]
    if builtin_shipped:
        raise ReloadImpossibleError(_builtin_message(builtin_shipped))
    steps: list[ReloadStep] = []
    chosen = [r for r in rprocs if selector in (None, r.instance, r.name)]
    for r in chosen:
        if r.state == "running":
            steps.append(ReloadStep("rproc-stop", r.instance))
        elif r.state == "attached":
            steps.append(ReloadStep("rproc-detach", r.instance))
    for m in reversed(order):
        if states.get(m) == ModuleState.LOADED:
            if m not in shipped and not use_modprobe:
                raise ReloadImpossibleError(
                    f"module {m} is loaded and must be unloaded for the reload, but it is "
                    "not part of the deployed set and the target has no modprobe to load "
                    "it back; install kmod on the target or ship the module")
            steps.append(ReloadStep("rmmod", m))
    for m in order:
        if states.get(m) == ModuleState.BUILTIN:
            continue
        if m in shipped:
            steps.append(ReloadStep("modprobe", m) if use_modprobe
                         else ReloadStep("insmod", shipped[m]))
        elif states.get(m) == ModuleState.LOADED:
            steps.append(ReloadStep("modprobe", m))
    if fw_dir:
        steps.append(ReloadStep("fw-path", "", fw_dir))
    target = selector or (chosen[0].name if len(chosen) == 1 and chosen[0].name else "")
    if firmware:
        steps.append(ReloadStep("rproc-firmware", target, firmware))
    if firmware or any(r.state in ("running", "attached") for r in chosen):
        steps += [ReloadStep("rproc-start", target), ReloadStep("rproc-check", target, "running")]
    return steps


def _builtin_message(mods: Sequence[str]) -> str:
    return (f"cannot reload: {', '.join(mods)} {'is' if len(mods) == 1 else 'are'} built into "
            "the target's kernel (/sys/module/<name> without initstate, or listed in "
            "modules.builtin), and built-in modules cannot be unloaded. Vendor kernels "
            "build imx_rpmsg as bool (built-in only); the loadable-imx_rpmsg fix (Kconfig "
            "tristate) in rprockit's patch series makes it a module, which is what makes "
            "a reload without reboot possible. Boot a kernel built with that fix, or "
            "deploy without reload and reboot the target. Nothing was changed.")


def inspect(remote: RemoteShell, sysfs: str, modules_builtin_path: str,
            names: Sequence[str]) -> tuple[dict[str, ModuleState], list[RprocInfo]]:
    """Read module states and remote processors from the target's sysfs."""
    out = remote.run(sh(MODULES_SCRIPT, sysfs, *names)).stdout if names else ""
    raw = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    states = classify_modules(names, raw, read_text(remote, modules_builtin_path))
    return states, list_rprocs(remote, sysfs)


def list_rprocs(remote: RemoteShell, sysfs: str) -> list[RprocInfo]:
    """Remote processors under ``<sysfs>/class/remoteproc``."""
    out = remote.run(sh(RPROC_SCRIPT, sysfs)).stdout
    return [RprocInfo(*([*line.split("|", 3), "", "", ""])[:4])
            for line in out.splitlines() if line.strip()]


class StepFailed(Exception):
    """A reload step failed (internal; turned into ReloadError by the caller)."""

    def __init__(self, step: ReloadStep, cause: str):
        self.step = step
        self.cause = cause
        super().__init__(f"{step.describe()}: {cause}")


class Executor:
    """Runs reload steps on the target.

    Args:
        remote: the connection.
        sysfs: sysfs mount point on the target (under the root prefix).
        tool_paths: tool name -> path on the target.
        root_prefix: passed to ``modprobe -d`` when set.
        settle: seconds to wait for a remote processor to appear or reach a state.
        installed: ``{module name: installed path}`` of the deployed modules; a
            ``modprobe`` step for one of them loads that file with ``insmod`` when
            ``modprobe -D`` (kmod ``--show-depends``; busybox ``-D``) resolves the
            name to another file.  busybox depmod lists one file per module name
            and ignores depmod.d's ``search`` order, so a copy in ``extra/`` can
            shadow the deployed one in ``updates/``.
    """

    def __init__(self, remote: RemoteShell, sysfs: str, tool_paths: Mapping[str, str],
                 root_prefix: str = "", settle: float = 5.0,
                 installed: Mapping[str, str] | None = None):
        self.remote = remote
        self.sysfs = sysfs
        self.tools = tool_paths
        self.root_prefix = root_prefix
        self.settle = settle
        self.installed = dict(installed or {})
        self._offline: tuple[str, str] | None = None  # (step arg, instance) set offline

    def run(self, steps: Sequence[ReloadStep]) -> list[str]:
        """Execute ``steps`` in order; return the log of what was done.

        Consecutive steps of :data:`BATCHED` run as one command on the target
        (:data:`BATCH_SCRIPT`: each step's command in turn, stopping at the first
        that fails), since each command is a round trip: the stop, the unloads and
        the loads of a reload are two or three commands instead of one per module.

        Raises:
            StepFailed: naming the step and the target's error.
        """
        done: list[str] = []
        i = 0
        while i < len(steps):
            j = i
            while j < len(steps) and steps[j].action in BATCHED:
                j += 1
            if j > i:
                done += self._batch(steps[i:j])
                i = j
                continue
            step = steps[i]
            try:
                did = getattr(self, "_" + step.action.replace("-", "_"))(step)
            except RemoteCommandError as e:
                raise StepFailed(step, e.output.strip() or str(e)) from e
            done.append(did or step.describe())
            i += 1
        return done

    def _batch(self, steps: Sequence[ReloadStep]) -> list[str]:
        """Run ``steps`` (all of :data:`BATCHED`) as one command; their log lines."""
        names = [s.arg for s in steps if s.action == "modprobe" and not self.root_prefix
                 and s.arg in self.installed]
        resolved = self.resolve_all(names) if names else {}
        lines, logs = [], []
        for s in steps:
            argv, did = self._argv(s, resolved)
            lines.append(shlex.join(argv))
            logs.append(did or s.describe())
        res = self.remote.run(sh(BATCH_SCRIPT, *lines), check=False)
        if res.returncode != 0:
            m = re.search(r"^rprockit-step (\d+) (\d+)$", res.stdout, re.MULTILINE)
            k = int(m.group(1)) - 1 if m and 0 < int(m.group(1)) <= len(steps) else 0
            cause = res.stderr.strip() or (f"exit code {m.group(2)}" if m else
                                           f"exit code {res.returncode}")
            raise StepFailed(steps[k], cause)
        return logs

    def _argv(self, step: ReloadStep, resolved: Mapping[str, str | None]
              ) -> tuple[list[str], str | None]:
        """The command of one batched step, and its log line when not ``describe()``."""
        if step.action == "rproc-stop":
            return sh(ECHO_SCRIPT, "stop", self._state_path(step.arg)), None
        if step.action == "fw-path":
            return sh(ECHO_SCRIPT, step.value,
                      f"{self.sysfs}/module/firmware_class/parameters/path"), None
        if step.action == "rmmod":
            return [self.tools.get("rmmod", "rmmod"), step.arg], None
        if step.action == "insmod":
            return [self.tools.get("insmod", "insmod"), step.arg], None
        path = self.installed.get(step.arg)
        if path and step.arg in resolved and resolved[step.arg] not in (None, path):
            return ([self.tools.get("insmod", "insmod"), path],
                    f"insmod {path}  # modprobe {step.arg} resolves to another file")
        argv = [self.tools.get("modprobe", "modprobe")]
        if self.root_prefix:
            argv += ["-d", self.root_prefix]
        return [*argv, step.arg], None

    def resolve_all(self, names: Sequence[str]) -> dict[str, str | None]:
        """:meth:`resolves_to` for each of ``names``, in one command on the target."""
        res = self.remote.run(sh(RESOLVE_SCRIPT, self.tools.get("modprobe", "modprobe"),
                                 *names), check=False)
        out: dict[str, str | None] = dict.fromkeys(names)
        current = None
        for line in res.stdout.splitlines():
            if line.startswith("rprockit-module "):
                current = line.split(" ", 1)[1]
            elif line.startswith("rprockit-rc "):
                if line.split(" ", 1)[1] != "0" and current in out:
                    out[current] = None
                current = None
            elif current in out and line.startswith("insmod ") and len(line.split()) > 1:
                out[current] = line.split()[1]
        return out

    def _echo(self, value: str, path: str) -> None:
        self.remote.run(sh(ECHO_SCRIPT, value, path))

    def _state_path(self, instance: str) -> str:
        return f"{self.sysfs}/class/remoteproc/{instance}/state"

    def _resolve(self, step: ReloadStep) -> RprocInfo:
        end = time.monotonic() + self.settle
        while True:
            rprocs = list_rprocs(self.remote, self.sysfs)
            match = [r for r in rprocs if step.arg in (r.instance, r.name)] if step.arg \
                else rprocs
            if len(match) == 1:
                return match[0]
            if len(match) > 1:
                raise StepFailed(step, "several remote processors match "
                                 f"({', '.join(r.instance for r in match)}); set "
                                 "'remoteproc' in the target's options.rprockit")
            if time.monotonic() > end:
                raise StepFailed(step, f"no remote processor {step.arg or ''} appeared under "
                                 f"{self.sysfs}/class/remoteproc within {self.settle} s")
            time.sleep(0.05)

    def _rproc_stop(self, step: ReloadStep) -> None:
        self._echo("stop", self._state_path(step.arg))

    def _rproc_detach(self, step: ReloadStep) -> None:
        res = self.remote.run(sh(ECHO_SCRIPT, "detach", self._state_path(step.arg)),
                              check=False)
        if res.returncode != 0:
            self._echo("stop", self._state_path(step.arg))

    def _rmmod(self, step: ReloadStep) -> None:
        self.remote.run([self.tools.get("rmmod", "rmmod"), step.arg])

    def _modprobe(self, step: ReloadStep) -> str | None:
        argv = [self.tools.get("modprobe", "modprobe")]
        if self.root_prefix:
            argv += ["-d", self.root_prefix]
        path = self.installed.get(step.arg)
        if path and not self.root_prefix and self.resolves_to(step.arg) not in (None, path):
            self.remote.run([self.tools.get("insmod", "insmod"), path])
            return f"insmod {path}  # modprobe {step.arg} resolves to another file"
        self.remote.run([*argv, step.arg])
        return None

    def resolves_to(self, name: str) -> str | None:
        """The file ``modprobe`` would load for ``name`` (last ``insmod`` line of
        ``modprobe -D``), or None when it cannot tell."""
        res = self.remote.run([self.tools.get("modprobe", "modprobe"), "-D", name],
                              check=False)
        paths = [ln.split()[1] for ln in res.stdout.splitlines()
                 if ln.startswith("insmod ") and len(ln.split()) > 1]
        return paths[-1] if res.returncode == 0 and paths else None

    def _insmod(self, step: ReloadStep) -> None:
        self.remote.run([self.tools.get("insmod", "insmod"), step.arg])

    def _fw_path(self, step: ReloadStep) -> None:
        self._echo(step.value, f"{self.sysfs}/module/firmware_class/parameters/path")

    def _rproc_firmware(self, step: ReloadStep) -> None:
        r = self._resolve(step)
        if r.state in ("running", "attached"):
            self._echo("stop", self._state_path(r.instance))
        self._echo(step.value, f"{self.sysfs}/class/remoteproc/{r.instance}/firmware")
        # the firmware is only accepted offline: the start that follows need not look again
        self._offline = (step.arg, r.instance)

    def _rproc_start(self, step: ReloadStep) -> None:
        offline, self._offline = self._offline, None
        if offline is not None and offline[0] == step.arg:
            self._echo("start", self._state_path(offline[1]))
            return
        r = self._resolve(step)
        if r.state not in ("running", "attached"):
            self._echo("start", self._state_path(r.instance))

    def _rproc_check(self, step: ReloadStep) -> None:
        end = time.monotonic() + self.settle
        while True:
            r = self._resolve(step)
            if r.state == step.value:
                return
            if time.monotonic() > end:
                raise StepFailed(step, f"{r.instance} state is '{r.state}', expected "
                                 f"'{step.value}' after {self.settle} s")
            time.sleep(0.05)
