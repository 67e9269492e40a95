"""Staging, atomic switch, backup and rollback of the installed files on the target.

Layout of the state directory (``staging_dir``, default ``/lib/.rprockit``)::

    new/modules/  new/firmware/     upload staging (removed after the switch)
    backup/modules/ backup/firmware/ backup/deploy.json   the previous set
    deploy.json                     the deploy record of the installed set
    deploy.json.new                 the record being switched in

The switch renames each staged file over its destination (rename(2) replaces the
file atomically; ``mv`` within one filesystem is a rename), after hard-linking the
files it replaces into ``backup/``.  The backup is complete before the first rename,
so :func:`restore` can always return to the previous set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..target import TargetDesc, expand_release
from .artifacts import LocalFile
from .errors import RemoteCommandError, TargetConnectionError, UploadError
from .remote import RemoteShell, read_text, sh, sha256sums

log = logging.getLogger("rprockit.deploy")

GROUPS = ("modules", "firmware")

BACKUP_SCRIPT = r"""
set -e
state=$1; shift
rm -rf "$state/backup.new"
mkdir -p "$state/backup.new"
if [ -f "$state/deploy.json" ]; then cp "$state/deploy.json" "$state/backup.new/deploy.json"; fi
while [ $# -gt 0 ]; do
  g=$1; dest=$2; shift 2
  mkdir -p "$state/backup.new/$g"
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    if [ -e "$dest/$1" ]; then
      ln "$dest/$1" "$state/backup.new/$g/$1" 2>/dev/null \
        || cp -p "$dest/$1" "$state/backup.new/$g/$1"
    fi
    shift
  done
  if [ $# -gt 0 ]; then shift; fi
done
rm -rf "$state/backup"
mv "$state/backup.new" "$state/backup"
"""

#: An empty ``new/`` ($1), then for each (group, install dir, name, sha256) a copy of the
#: installed file when its sha256 is that one; prints ``<group>/<name>`` per copy.
REUSE_SCRIPT = r"""
set -e
new=$1; shift
rm -rf "$new"
mkdir -p "$new/modules" "$new/firmware"
while [ $# -ge 4 ]; do
  g=$1; dest=$2; name=$3; sum=$4; shift 4
  if [ -f "$dest/$name" ] && got=$(sha256sum "$dest/$name" 2>/dev/null) \
      && [ "${got%% *}" = "$sum" ] && cp -p "$dest/$name" "$new/$g/$name"; then
    echo "$g/$name"
  fi
done
"""

#: The whole switch in one command: the record ($1, from stdin) as ``<record>.new``,
#: then per group ``src dest names... -- gone... --`` (rename the staged files over
#: the installed ones, remove the gone ones), the record renamed into place, ``new/``
#: ($2) removed.
SWITCH_ALL_SCRIPT = r"""
set -e
record=$1; new=$2; shift 2
cat > "$record.new"
while [ $# -gt 0 ]; do
  src=$1; dest=$2; shift 2
  mkdir -p "$dest"
  while [ "$1" != "--" ]; do mv -f "$src/$1" "$dest/$1"; shift; done
  shift
  while [ "$1" != "--" ]; do rm -f "$dest/$1"; shift; done
  shift
done
mv -f "$record.new" "$record"
rm -rf "$new"
"""

RESTORE_SCRIPT = r"""
set -e
state=$1; shift
if [ ! -d "$state/backup" ]; then echo "no backup set in $state/backup" >&2; exit 3; fi
while [ $# -gt 0 ]; do
  g=$1; dest=$2; shift 2
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    if [ ! -e "$state/backup/$g/$1" ]; then rm -f "$dest/$1"; fi
    shift
  done
  if [ $# -gt 0 ]; then shift; fi
  if [ -d "$state/backup/$g" ]; then
    for f in "$state/backup/$g"/*; do
      [ -e "$f" ] || continue
      mkdir -p "$dest"
      mv -f "$f" "$dest/${f##*/}"
    done
  fi
done
rm -f "$state/deploy.json.new"
if [ -f "$state/backup/deploy.json" ]; then
  mv -f "$state/backup/deploy.json" "$state/deploy.json"
else
  rm -f "$state/deploy.json"
fi
rm -rf "$state/backup"
"""


@dataclass(frozen=True)
class Layout:
    """Directories on the target for one deploy (all under the root prefix).

    Attributes:
        release: the target's ``uname -r``.
        state: rprockit's state directory.
        modules: module install directory.
        firmware: firmware install directory.
    """

    release: str
    state: str
    modules: str
    firmware: str

    @classmethod
    def for_target(cls, target: TargetDesc, release: str) -> Layout:
        """Layout of ``target`` running kernel ``release``."""
        return cls(release, target.staging_dir, target.modules_dir(release),
                   target.firmware_dir(release))

    @property
    def new(self) -> str:
        return f"{self.state}/new"

    @property
    def backup(self) -> str:
        return f"{self.state}/backup"

    @property
    def record(self) -> str:
        return f"{self.state}/deploy.json"

    def dest(self, group: str) -> str:
        """Install directory of ``group`` (``modules`` or ``firmware``)."""
        return self.modules if group == "modules" else self.firmware


def read_record(remote: RemoteShell, path: str) -> dict | None:
    """The deploy record (JSON) at ``path`` on the target, or None when absent/unreadable."""
    text = read_text(remote, path)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def installed_names(record: dict | None, group: str) -> list[str]:
    """File names of ``group`` listed in a deploy record."""
    files = (record or {}).get(group) or {}
    return sorted(files) if isinstance(files, dict) else []


def stage(remote: RemoteShell, layout: Layout, files: dict[str, list[LocalFile]],
          progress: Callable[[str, int, int], None] | None = None) -> None:
    """Upload every file into ``new/<group>/`` and check its sha256 there.

    Args:
        files: ``{"modules": [...], "firmware": [...]}``.
        progress: ``(name, sent bytes, total bytes)`` callback.

    Raises:
        UploadError: an upload failed (the message names the file and the target's
            error, e.g. "No space left on device"), the link dropped, or a staged
            file's sha256 differs. The installed files are untouched; the staging
            directory is removed when the link is still up.
    """
    have = _stage_installed(remote, layout, files)
    for group, items in files.items():
        for f in items:
            if f"{group}/{f.name}" in have:
                if progress:
                    progress(f.name, f.size, f.size)
                continue
            dest = f"{layout.new}/{group}/{f.name}"
            cb = (lambda s, t, n=f.name: progress(n, s, t)) if progress else None
            try:
                remote.upload(f.path, dest, progress=cb)
            except RemoteCommandError as e:
                discard_staging(remote, layout)
                full = "no space left" in e.output.lower()
                raise UploadError(
                    f"on {remote.where}: uploading {f.path} to {dest} failed: "
                    f"{e.output.strip() or e}. "
                    + ("The filesystem holding the staging directory is full: free space "
                       "or set staging_dir (with modules_dir and firmware_dir) to a larger "
                       "filesystem. " if full else "")
                    + "The installed files were not changed; the staging directory was "
                    "removed.") from e
            except TargetConnectionError as e:
                gone = _discard_after_drop(remote, layout)
                raise UploadError(
                    f"{e} The installed files were not changed (nothing is switched before "
                    f"every file is staged and verified); the partial {layout.new} "
                    + ("was removed over a new connection." if gone else
                       "is removed by the next deploy.")) from e
            except KeyboardInterrupt:
                discard_staging(remote, layout)
                raise
    expected = {f"{layout.new}/{g}/{f.name}": f.sha256 for g, items in files.items()
                for f in items}
    got = sha256sums(remote, sorted(expected))
    bad = [p for p, digest in expected.items() if got.get(p) != digest]
    if bad:
        discard_staging(remote, layout)
        raise UploadError(f"on {remote.where}: sha256 of the staged file(s) {', '.join(bad)} "
                          "differs from the local artifact (corrupted transfer); installed "
                          "files were not changed; deploy again")


def _stage_installed(remote: RemoteShell, layout: Layout,
                     files: dict[str, list[LocalFile]]) -> set[str]:
    """Make an empty ``new/`` and copy into it each installed file whose sha256 on the
    target is the local one's (:data:`REUSE_SCRIPT`): only the files that changed
    cross the link.  The copies are checked with the uploads afterwards.

    Returns:
        ``{"<group>/<name>"}`` of the files staged from the installed ones.
    """
    args = [a for g, items in files.items() for f in items
            for a in (g, layout.dest(g), f.name, f.sha256)]
    out = remote.run(sh(REUSE_SCRIPT, layout.new, *args)).stdout
    return {ln.strip() for ln in out.splitlines() if ln.strip()}


def _discard_after_drop(remote: RemoteShell, layout: Layout) -> bool:
    """Reconnect once and remove the partial ``new/``; True when that worked."""
    try:
        remote.close()
        remote.connect()
        remote.run(sh('rm -rf "$1"; rmdir "$2" 2>/dev/null; exit 0', layout.new, layout.state))
    except Exception as e:  # the link is gone for good: the next deploy removes it
        log.debug("could not remove %s after the link dropped: %s", layout.new, e)
        return False
    return True


def discard_staging(remote: RemoteShell, layout: Layout) -> None:
    """Remove ``new/``, and the state directory when that leaves it empty (best effort)."""
    try:
        remote.run(sh('rm -rf "$1"; rmdir "$2" 2>/dev/null; exit 0', layout.new, layout.state),
                   check=False)
    except Exception as e:
        log.debug("could not remove %s: %s", layout.new, e)


def backup(remote: RemoteShell, layout: Layout, files: dict[str, list[LocalFile]],
           old: dict | None) -> None:
    """Hard-link every file the switch will replace or remove into ``backup/``.

    The previous ``backup/`` is replaced only once the new one is complete.

    Raises:
        RemoteCommandError: the backup failed; nothing was switched.
    """
    args: list[str] = []
    for g in GROUPS:
        names = sorted({f.name for f in files.get(g, [])} | set(installed_names(old, g)))
        args += [g, layout.dest(g), *names, "--"]
    remote.run(sh(BACKUP_SCRIPT, layout.state, *args[:-1]))


def switch(remote: RemoteShell, layout: Layout, files: dict[str, list[LocalFile]],
           old: dict | None, record: dict) -> None:
    """Rename the staged files into place and write the record (after :func:`backup`).

    Files of the previous deploy that the new set does not contain are removed
    (they are in the backup).

    Raises:
        RemoteCommandError: a step failed; call :func:`restore` to go back.
    """
    new_names = {g: [f.name for f in items] for g, items in files.items()}
    args: list[str] = []
    for g in GROUPS:
        gone = sorted(set(installed_names(old, g)) - set(new_names.get(g, [])))
        names = new_names.get(g, [])
        if names or gone:
            args += [f"{layout.new}/{g}", layout.dest(g), *names, "--", *gone, "--"]
    remote.run(sh(SWITCH_ALL_SCRIPT, layout.record, layout.new, *args),
               input=json.dumps(record, indent=2, sort_keys=True).encode())


def restore(remote: RemoteShell, layout: Layout, current: dict | None,
            pending: dict | None = None) -> None:
    """Put the backed-up set back, remove files the current set added, restore its record.

    Args:
        current: the installed deploy record (``deploy.json``).
        pending: a record that was being switched in (``deploy.json.new``), if any.

    Raises:
        RemoteCommandError: exit code 3 when there is no backup set.
    """
    args: list[str] = []
    for g in GROUPS:
        names = sorted(set(installed_names(current, g)) | set(installed_names(pending, g)))
        args += [g, layout.dest(g), *names, "--"]
    remote.run(sh(RESTORE_SCRIPT, layout.state, *args[:-1]))


def depmod(remote: RemoteShell, target: TargetDesc, layout: Layout,
           tool_paths: dict[str, str]) -> str | None:
    """Run depmod when the module directory is one modprobe searches.

    Runs ``depmod -a <release>``, or ``depmod -a -b <root prefix> <release>`` with a
    root prefix (kmod depmod(8) ``-b basedir``).

    Returns:
        None when depmod ran, else why it was skipped.
    """
    unprefixed = expand_release(target.settings.modules_dir, layout.release)
    if not unprefixed.startswith(f"/lib/modules/{layout.release}/"):
        return (f"module directory {unprefixed} is outside /lib/modules/{layout.release}: "
                "depmod skipped, reload uses insmod with full paths")
    if "depmod" not in tool_paths:
        return "depmod is not installed on the target: skipped, reload uses insmod"
    argv = [tool_paths["depmod"], "-a"]
    if target.settings.root_prefix:
        argv += ["-b", target.settings.root_prefix]
    remote.run([*argv, layout.release])
    return None
