"""Load a target description: a labgrid environment file or ``user@host[:port]``.

A target is described once, in labgrid's environment format, for both deploy and
verify::

    targets:
      main:
        resources:
          NetworkService: {address: 192.0.2.10, username: root, port: 22}
        drivers:
          SSHDriver: {keyfile: keys/board_ed25519}
        options:
          rprockit:                      # rprockit's own settings (all optional)
            modules_dir: /lib/modules/{release}/updates
            firmware_dir: /lib/firmware
            staging_dir: /lib/.rprockit
            sudo: false

Where rprockit's settings live: labgrid 26 (``labgrid/config.py`` ``Config``) does not
validate top-level keys, but it defines a per-target ``options`` mapping read with
``Config.get_target_option(target, name)``.  rprockit keeps its settings under the
single option ``rprockit`` of the target, so the file stays a valid labgrid
environment that labgrid's pytest plugin loads unchanged, and rprockit never relies
on labgrid ignoring unknown keys.

The kind of target follows from the drivers: ``QEMUDriver`` means ``qemu``;
``SSHDriver`` or a ``NetworkService`` resource means ``ssh``; a ``ShellDriver`` over
a serial port means ``serial``.  A ``qemu`` target that also has a
``NetworkService`` (e.g. a host port forwarded to the guest's sshd/dropbear) can be
deployed to over SSH.

A ``RemotePlace`` resource means ``remote``: a board of the lab's shared pool,
served by a labgrid coordinator (labgrid >= 24, gRPC).  Its resources
(``NetworkService`` for SSH, ``NetworkSerialPort`` for the console) are only known
once the place is acquired; :mod:`rprockit.place` acquires it, resolves them and
releases it.  The coordinator is the environment's ``options.coordinator_address``,
else ``$LG_COORDINATOR``, else labgrid's default ``127.0.0.1:20408``
(labgrid/resource/remote.py ``RemotePlaceManager.on_resource_added``)::

    targets:
      main:
        resources:
          RemotePlace: {name: imx7d-sabre-1}
        drivers:                  # the console, used when the place exports no SSH
          SerialDriver: {}
          ShellDriver: {prompt: 'root@.*:~# ', login_prompt: ' login: ', username: root}
    options:
      coordinator_address: labgrid.lab.example:20408
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import InvalidFileError
from .files import decode_utf8, read_regular
from .yamlfile import MAX_YAML_BYTES, check, compose_checked, line_map

log = logging.getLogger("rprockit.target")

TargetKind = Literal["qemu", "ssh", "serial", "remote"]

#: labgrid's coordinator address when neither the file nor $LG_COORDINATOR names one
#: (labgrid/resource/remote.py ``RemotePlaceManager.on_resource_added``).
LABGRID_DEFAULT_COORDINATOR = "127.0.0.1:20408"
#: place names rprockit accepts: labgrid checks none (``AddPlace`` takes any string), but a
#: name starting with '-' or holding a space or a glob character would be misread on the
#: ``labgrid-client`` command line.
_PLACE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

#: Placeholders in directory settings replaced by the target's ``uname -r``.
RELEASE_PLACEHOLDERS = ("{release}", "$(uname -r)")

_SPEC_RE = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)


@dataclass(frozen=True)
class SSHParams:
    """How to reach the target over SSH.

    Attributes:
        host: address or name (an ``~/.ssh/config`` ``Host`` alias works).
        port: TCP port, or None for the ssh config's or 22.
        user: login name, or None for the ssh config's or the local user.
        key_file: private key file on this host, or None (agent and ssh config keys).
        password: from labgrid's ``NetworkService.password``; never printed.
    """

    host: str
    port: int | None = None
    user: str | None = None
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"


@dataclass(frozen=True)
class PlaceRef:
    """A place of a labgrid coordinator.

    Attributes:
        name: the place name (``labgrid-client -p NAME``).
        coordinator: the coordinator's ``HOST:PORT``.
    """

    name: str
    coordinator: str

    def __str__(self) -> str:
        return f"place {self.name} of coordinator {self.coordinator}"


@dataclass(frozen=True)
class TargetSettings:
    """rprockit's settings for one target (``targets.<role>.options.rprockit``).

    Attributes:
        modules_dir: where modules go; ``{release}`` / ``$(uname -r)`` become the
            target's ``uname -r``. Default ``/lib/modules/{release}/updates``
            (searched by modprobe before ``kernel/``, see depmod.d(5) ``search``).
        firmware_dir: where firmware goes. Default ``/lib/firmware``, the last entry
            of the kernel's firmware search path (drivers/base/firmware_loader/main.c
            ``fw_path[]``).
        staging_dir: rprockit's own directory on the target: ``new/`` (upload
            staging), ``backup/`` (the previous set) and ``deploy.json``. It must be
            on the same filesystem as modules_dir and firmware_dir so that the switch
            is a set of rename(2) calls. Default ``/lib/.rprockit``.
        sudo: prefix every remote command with ``sudo -n --``.
        root_prefix: a directory on the target standing in for ``/``: prepended to
            every directory above and to sysfs_root (tests point it at a temporary
            directory). Default ``""``.
        sysfs_root: where sysfs is mounted. Default ``/sys``.
        known_hosts: known_hosts file on this host to verify the host key against,
            or None for the ssh config's ``UserKnownHostsFile`` or ``~/.ssh/known_hosts``.
        remoteproc: the remote processor to reload: an instance (``remoteproc0``) or
            its ``name`` attribute (``imx-rproc``); None means the only one present.
        connect_timeout: seconds for the TCP connect and SSH handshake.
        emulated: the board behind this target is the emulated i.MX7D (QEMU, no M4
            executes), reached without a QEMUDriver: through SSH or a labgrid place.
            Pre-flight and the on-target suite then judge it as the emulated board.
        emulated_boot: how the emulated board boots: ``qemu-kernel`` (QEMU's
            ``-kernel``/``-dtb``) or ``el3-monitor`` (rprockit's EL3 monitor,
            ``firmware/el3-monitor``, started by ``-device loader``; the verify stage
            then builds ``el3-monitor.elf`` and ``boot.dtb``, see
            :mod:`rprockit.el3boot`).
        standin_remote: the emulated i.MX8M Plus runs the stand-in remote core (the
            fourth Cortex-A53, ``firmware/standin-remote``; needs ``el3-monitor``):
            the verify stage builds its image into the initramfs and the on-target
            suite runs it in place of the build's M-core firmware.
        board_dtb: the DTB (a file name under the artifacts' ``dtbs/``) this board
            boots in place of the manifest's board DTB, e.g.
            ``imx8mp-evk-standin-qemu.dtb``; None: the manifest's.
    """

    modules_dir: str = "/lib/modules/{release}/updates"
    firmware_dir: str = "/lib/firmware"
    staging_dir: str = "/lib/.rprockit"
    sudo: bool = False
    root_prefix: str = ""
    sysfs_root: str = "/sys"
    known_hosts: str | None = None
    remoteproc: str | None = None
    connect_timeout: float = 10.0
    emulated: bool = False
    emulated_boot: str = "qemu-kernel"
    standin_remote: bool = False
    board_dtb: str | None = None


@dataclass(frozen=True)
class TargetDesc:
    """A validated target description.

    Attributes:
        source: the environment file or the ``user@host[:port]`` string.
        kind: ``qemu``, ``ssh``, ``serial`` or ``remote`` (a labgrid ``RemotePlace``).
        role: the labgrid target name (``main``).
        ssh: SSH access, or None when the target has no NetworkService (for a
            ``remote`` target: until :func:`rprockit.place.resolve` read the place's).
        settings: rprockit's settings.
        emulated: the board is the emulated one: a target of the environment (this one,
            or the one that powers it) has a QEMUDriver, or the settings say so.
        place: the coordinator's place of a ``remote`` target, else None.
    """

    source: str
    kind: TargetKind
    role: str = "main"
    ssh: SSHParams | None = None
    settings: TargetSettings = field(default_factory=TargetSettings)
    emulated: bool = False
    place: PlaceRef | None = None

    def path(self, target_path: str) -> str:
        """Return ``target_path`` (absolute, on the target) under the root prefix."""
        prefix = self.settings.root_prefix.rstrip("/")
        return f"{prefix}{target_path}" if prefix else target_path

    def modules_dir(self, release: str) -> str:
        """Return the module directory on the target for kernel ``release``."""
        return self.path(expand_release(self.settings.modules_dir, release))

    def firmware_dir(self, release: str) -> str:
        """Return the firmware directory on the target for kernel ``release``."""
        return self.path(expand_release(self.settings.firmware_dir, release))

    @property
    def staging_dir(self) -> str:
        """rprockit's state directory on the target (under the root prefix)."""
        return self.path(self.settings.staging_dir)

    @property
    def sysfs(self) -> str:
        """The sysfs mount point on the target (under the root prefix)."""
        return self.path(self.settings.sysfs_root)


def expand_release(template: str, release: str) -> str:
    """Replace ``{release}`` and the literal ``$(uname -r)`` by ``release`` (no shell)."""
    for placeholder in RELEASE_PLACEHOLDERS:
        template = template.replace(placeholder, release)
    return template


def load_target(spec: str | Path, role: str = "main",
                overrides: Mapping[str, Any] | None = None) -> TargetDesc:
    """Load a target from a labgrid environment file or a ``user@host[:port]`` string.

    Args:
        spec: path to a labgrid environment YAML file, or ``[user@]host[:port]``
            (IPv6 in brackets: ``root@[fd00::2]:2222``).
        role: the target name under ``targets:``.
        overrides: settings replacing the file's (same keys as
            ``options.rprockit``), e.g. from the command line.

    Returns:
        The validated description.

    Raises:
        InvalidFileError: the file is missing, is not valid labgrid YAML, or has bad
            settings; every problem is listed with its key path and line.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if not path.is_file():
        match = _SPEC_RE.match(text)
        if match and not text.endswith((".yaml", ".yml")):
            return _from_spec(text, match, overrides)
        raise InvalidFileError(text, [("", None, (
            "no such file, and not a [user@]host[:port] string; "
            "give a labgrid environment file or e.g. root@192.0.2.10"))])
    return _from_file(path, role, overrides)


def is_emulated(env: str | Path | None) -> bool:
    """True when the target ``env`` is the emulated board: a target of the environment has
    a QEMUDriver (the board itself, or the one that powers a board reached over SSH), or
    ``options.rprockit.emulated: true`` (the emulated board served by a labgrid place).

    This is the one test of "emulated" (preflight, verify and the on-target suite).

    Raises:
        InvalidFileError: the environment file is invalid.
    """
    return env is not None and load_target(env).emulated


def _from_spec(text: str, match: re.Match, overrides: Mapping[str, Any] | None) -> TargetDesc:
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise InvalidFileError(text, [("port", None, f"port {port} is out of range 1..65535")])
    host = match["host"].strip("[]")
    settings = _settings(text, {}, None, None, overrides, Path.cwd())
    return TargetDesc(source=text, kind="ssh", ssh=SSHParams(host=host, port=port,
                                                            user=match["user"]),
                      settings=settings)


def _from_file(path: Path, role: str, overrides: Mapping[str, Any] | None) -> TargetDesc:
    from labgrid.config import Config
    from labgrid.exceptions import InvalidConfigError, NoConfigFoundError
    from labgrid.util.yaml import load as lg_load

    try:
        text = decode_utf8(read_regular(path, MAX_YAML_BYTES, "target file"), path,
                           "target file")
        root = compose_checked(text, path)
        try:
            data = Config(str(path)).data
        except InvalidConfigError as e:
            if "unknown variable" not in str(e):
                raise
            # A !template naming an LG_* variable that only the run sets (e.g. image
            # paths): rprockit's settings do not depend on it, so read without it.
            log.debug("%s: %s; reading without template substitution", path, e)
            data = lg_load(text)
    except (InvalidConfigError, NoConfigFoundError, yaml.YAMLError, OSError) as e:
        raise InvalidFileError(str(path),
                               [("", _yaml_line(e), f"labgrid cannot load it: {e}")]) from e
    if not isinstance(data, dict):
        raise InvalidFileError(str(path), [("", 1, "expected a mapping with a 'targets' key")])
    targets = data.get("targets")
    if not isinstance(targets, dict) or not isinstance(targets.get(role), dict):
        known = ", ".join(targets) if isinstance(targets, dict) else "none"
        raise InvalidFileError(str(path), [("targets", _line(root, ("targets",)),
                                        f"no target '{role}' (targets: {known})")])
    tdata = targets[role]
    problems: list[tuple[str, int | None, str]] = []
    kind, ssh = _kind_and_ssh(tdata, role, root, problems, path)
    place = _place(data, tdata, role, root, problems) if kind == "remote" else None
    options = tdata.get("options") or {}
    raw = options.get("rprockit", {}) if isinstance(options, dict) else {}
    key = ("targets", role, "options", "rprockit")
    settings = _settings(str(path), raw, root, key, overrides, path.parent, problems)
    if problems:
        raise InvalidFileError(str(path), problems)
    emulated = settings.emulated or any("QEMUDriver" in dict(_named_items(t.get("drivers", {})))
                                        for t in targets.values() if isinstance(t, dict))
    return TargetDesc(source=str(path), kind=kind, role=role, ssh=ssh, settings=settings,
                      emulated=emulated, place=place)


def _place(data: dict, tdata: dict, role: str, root, problems: list) -> PlaceRef | None:
    """The RemotePlace's name and the coordinator address (see the module docstring)."""
    args = dict(_named_items(tdata.get("resources", {})))["RemotePlace"]
    key = ("targets", role, "resources", "RemotePlace")
    name = args.get("name")
    if not isinstance(name, str) or not _PLACE_RE.match(name):
        problems.append((".".join(key) + ".name", _line(root, key),
                         f"{name!r} is not a labgrid place name (letters, digits, '_', '.', '-')"))
        return None
    opts = data.get("options")
    options: dict = opts if isinstance(opts, dict) else {}
    coord = options.get("coordinator_address") or os.environ.get("LG_COORDINATOR") \
        or LABGRID_DEFAULT_COORDINATOR
    if not isinstance(coord, str) or not re.match(r"^[A-Za-z0-9_.:\[\]-]+$", coord):
        problems.append(("options.coordinator_address",
                         _line(root, ("options", "coordinator_address")),
                         f"{coord!r} is not a coordinator HOST:PORT"))
        return None
    return PlaceRef(name, coord)


def with_network_service(desc: TargetDesc, address: str, port: int, username: str | None,
                         password: str | None = None) -> TargetDesc:
    """``desc`` with SSH access from a ``NetworkService`` (a remote place's, once acquired).

    Raises:
        InvalidFileError: the service's address or port is unusable.
    """
    problems: list[tuple[str, int | None, str]] = []
    ssh = _ssh_from_networkservice({"address": address, "port": port, "username": username,
                                    "password": password}, {}, desc.role, None, problems,
                                   Path(desc.source).parent)
    if ssh is None:
        raise InvalidFileError(f"{desc.source} ({desc.place})",
                               [(k.replace(".resources.", ".place resources."), ln, m)
                                for k, ln, m in problems])
    return replace(desc, ssh=ssh)


def _named_items(data: Any) -> list[tuple[str, dict]]:
    """labgrid's resource/driver syntaxes (dict, or list of one-key dicts / ``cls``)."""
    items: list[tuple[str, dict]] = []
    if isinstance(data, dict):
        items = [(cls, args if isinstance(args, dict) else {}) for cls, args in data.items()]
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and "cls" in item:
                items.append((str(item["cls"]), item))
            elif isinstance(item, dict) and len(item) == 1:
                (cls, args), = item.items()
                items.append((cls, args if isinstance(args, dict) else {}))
    return items


def _kind_and_ssh(tdata: dict, role: str, root, problems: list, path: Path
                  ) -> tuple[TargetKind, SSHParams | None]:
    resources = dict(_named_items(tdata.get("resources", {})))
    drivers = dict(_named_items(tdata.get("drivers", {})))
    if "RemotePlace" in resources:
        return "remote", None
    ssh = None
    net = resources.get("NetworkService")
    if net is not None:
        ssh = _ssh_from_networkservice(net, drivers.get("SSHDriver", {}), role, root,
                                       problems, path)
    if "QEMUDriver" in drivers:
        return "qemu", ssh
    if "SSHDriver" in drivers or net is not None:
        if net is None:
            problems.append((f"targets.{role}.resources", _line(root, ("targets", role)),
                             ("SSHDriver needs a NetworkService resource "
                             "(address, username, port)")))
        return "ssh", ssh
    if "ShellDriver" in drivers or "SerialDriver" in drivers:
        return "serial", None
    problems.append((f"targets.{role}.drivers", _line(root, ("targets", role)),
                     ("cannot tell the kind of target: expected QEMUDriver, SSHDriver "
                     "(with a NetworkService) or ShellDriver over a serial port")))
    return "ssh", None


def _ssh_from_networkservice(net: dict, sshdrv: dict, role: str, root, problems: list,
                             path: Path) -> SSHParams | None:
    key = ("targets", role, "resources", "NetworkService")
    where = "targets." + role + ".resources.NetworkService"
    address, user, port = net.get("address"), net.get("username"), net.get("port", 22)
    ok = True
    if not isinstance(address, str) or not address:
        problems.append((where + ".address", _line(root, key), "missing or not a string"))
        ok = False
    elif "%" in address:
        problems.append((where + ".address", _line(root, (*key, "address")),
                         ("interface-scoped addresses (via a labgrid exporter) are not "
                         "supported by deploy; give a directly reachable address")))
        ok = False
    if not isinstance(user, str) or not user:
        problems.append((where + ".username", _line(root, key), "missing or not a string"))
        ok = False
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        problems.append((where + ".port", _line(root, (*key, "port")),
                         f"{port!r} is not a TCP port (1..65535)"))
        ok = False
    keyfile = sshdrv.get("keyfile") or None
    if keyfile is not None:
        keyfile = str((path.parent / str(keyfile)).expanduser())
    if not ok or not isinstance(address, str):
        return None
    return SSHParams(host=address, port=port, user=user, key_file=keyfile,
                     password=net.get("password"))


_ABSOLUTE = ("modules_dir", "firmware_dir", "staging_dir", "sysfs_root")


def _settings(source: str, raw: Any, root, key: tuple | None,
              overrides: Mapping[str, Any] | None, base: Path,
              problems: list | None = None) -> TargetSettings:
    own = problems is None
    problems = [] if problems is None else problems
    dotted = ".".join(key) if key else "options.rprockit"
    if not isinstance(raw, dict):
        problems.append((dotted, _line(root, key), "expected a mapping of rprockit settings"))
        raw = {}
    values = dict(raw)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    prefix = key or ()
    lines = line_map(root) if key else {}
    errors, unknown = check(values, "target-settings", lines, prefix)
    known = {f.name for f in fields(TargetSettings)}
    for kp, line, _msg in unknown:
        name = kp.rsplit(".", 1)[-1]
        log.warning("%s:%s: %s.%s: unknown setting ignored (known: %s)", source,
                    line or "?", dotted, name, ", ".join(sorted(known)))
        values.pop(name, None)
    for kp, line, msg in errors:
        name = kp.rsplit(".", 1)[-1]
        problems.append((f"{dotted}.{name}", line, msg))
        values.pop(name, None)
    for name, value in list(values.items()):
        line = _line(root, (*key, name)) if key else None
        if name in _ABSOLUTE and not value.startswith("/"):
            problems.append((f"{dotted}.{name}", line,
                             f"{value!r} must be an absolute path on the target"))
            values.pop(name)
        elif name == "root_prefix" and value and not value.startswith("/"):
            problems.append((f"{dotted}.{name}", line, "must be empty or an absolute path"))
            values.pop(name)
        elif name == "connect_timeout" and value <= 0:
            problems.append((f"{dotted}.{name}", line, "must be a positive number of seconds"))
            values.pop(name)
        elif name == "known_hosts":
            values[name] = str(base / Path(value).expanduser())
    if values.get("standin_remote") and values.get("emulated_boot") != "el3-monitor":
        problems.append((f"{dotted}.standin_remote", _line(root, (*key, "standin_remote"))
                         if key else None, "the stand-in remote core needs emulated_boot: "
                         "el3-monitor (the EL3 monitor powers it on and off)"))
        values.pop("standin_remote")
    if own and problems:
        raise InvalidFileError(source, problems)
    return replace(TargetSettings(), **values)


def _line(root, key: tuple | None) -> int | None:
    """1-based line of the deepest node along ``key`` in a composed YAML tree."""
    node, line = root, None
    for part in key or ():
        if not isinstance(node, yaml.MappingNode):
            break
        for knode, vnode in node.value:
            if knode.value == part:
                node, line = vnode, knode.start_mark.line + 1
                break
        else:
            break
    return line


def _yaml_line(err: Exception) -> int | None:
    mark = getattr(err, "problem_mark", None)
    return mark.line + 1 if mark is not None else None
