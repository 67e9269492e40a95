"""Small, portable queries on the target (POSIX sh + busybox applets only).

Every script here is a constant; paths and names reach it as positional arguments
(``sh -c SCRIPT sh ARG...``), each quoted by the transport, so nothing from a file
name or a setting is ever parsed as shell syntax.  Only ``sh``, ``df -k -P``,
``cat``, ``mkdir -p``, ``mv``, ``ln``, ``cp``, ``rm`` and ``sha256sum`` are assumed,
which busybox provides; ``stat`` is avoided because its options differ.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from ..ssh import RemoteCommandError, RemoteResult, UploadProgress


class RemoteShell(Protocol):
    """What deploy needs from a connection (implemented by :class:`SSHTransport`)."""

    where: str

    def connect(self) -> object: ...

    def run(self, argv: Sequence[str], *, check: bool = True, input: bytes | None = None,
            timeout: float | None = 120.0, hint: str = "") -> RemoteResult: ...

    def upload(self, local, remote: str, progress: UploadProgress | None = None,
               timeout: float = 300.0) -> None: ...

    def close(self) -> None: ...


def sh(script: str, *args: str) -> list[str]:
    """argv running a constant ``script`` with ``args`` as ``$1``...: never interpolated."""
    return ["sh", "-c", script, "sh", *map(str, args)]


TOOLS_SCRIPT = r"""
for t; do
  p=$(command -v "$t" 2>/dev/null) || p=
  if [ -z "$p" ]; then
    for d in /sbin /usr/sbin /bin /usr/bin; do
      if [ -x "$d/$t" ]; then p=$d/$t; break; fi
    done
  fi
  if [ -n "$p" ]; then echo "$t=$p"; fi
done
exit 0
"""

DF_SCRIPT = r"""
d=$1
while [ ! -d "$d" ]; do d=${d%/*}; [ -n "$d" ] || d=/; done
echo "$d"
if out=$(df -k -P "$d" 2>/dev/null) || out=$(df -k "$d" 2>/dev/null); then
  echo "$out"; exit 0
fi
# busybox df skips the "rootfs" line of /proc/mounts (an initramfs root), so it
# finds no mount point for directories on it: the same numbers from statfs(2).
set -- $(stat -f -c '%a %S %b' "$d") && [ $# -eq 3 ] || exit 1
echo "Filesystem 1024-blocks Used Available Capacity Mounted on"
echo "rootfs $(($3 * $2 / 1024)) - $(($1 * $2 / 1024)) - /"
"""

PROBE_SCRIPT = r"""
d=$1
while [ ! -d "$d" ]; do d=${d%/*}; [ -n "$d" ] || d=/; done
f=$d/.rprockit-probe.$$
if : > "$f"; then rm -f "$f"; echo "$d"; else exit 1; fi
"""

WRITE_SCRIPT = 'cat > "$1"'

#: Write $1 (plus newline) into the file $2: sysfs attributes.
ECHO_SCRIPT = 'printf "%s\\n" "$1" > "$2"'


def tools(remote: RemoteShell, names: Sequence[str]) -> dict[str, str]:
    """Map each available tool in ``names`` to its path on the target."""
    out = remote.run(sh(TOOLS_SCRIPT, *names)).stdout
    found = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {k: v for k, v in found.items() if k in names}


@dataclass(frozen=True)
class DiskFree:
    """``df`` for a directory (or its nearest existing parent).

    Attributes:
        directory: the directory asked about.
        existing: the nearest existing directory that df was run on.
        available_kib: free KiB for unprivileged writers (df "Available").
        mount: the mount point holding it.
    """

    directory: str
    existing: str
    available_kib: int
    mount: str


def disk_free(remote: RemoteShell, directory: str) -> DiskFree:
    """Free space on the filesystem that holds ``directory`` (``df -k -P``).

    Raises:
        RemoteCommandError: df failed.
        ValueError: df's output could not be parsed (message quotes it).
    """
    out = remote.run(sh(DF_SCRIPT, directory)).stdout.splitlines()
    existing = out[0].strip() if out else directory
    return DiskFree(directory, existing, *parse_df(out[1:]))


def parse_df(lines: Sequence[str]) -> tuple[int, str]:
    """``(available KiB, mount point)`` from ``df -k [-P]`` output for one filesystem.

    Handles busybox/GNU output where a long device name wraps the data onto a
    second line: the data is the words after the header line.
    """
    body = [ln for ln in lines if ln.strip()]
    words = " ".join(body[1:]).split()
    if len(words) < 6 or not words[3].isdigit():
        raise ValueError("cannot parse df output:\n" + "\n".join(lines))
    return int(words[3]), " ".join(words[5:])


def probe_writable(remote: RemoteShell, directory: str) -> str | None:
    """Try to create and remove a file in ``directory`` (or its nearest parent).

    Returns:
        None when writable, else the target's error text (e.g. "Read-only file
        system", "Permission denied").
    """
    res = remote.run(sh(PROBE_SCRIPT, directory), check=False)
    return None if res.returncode == 0 else (res.stderr.strip() or f"exit {res.returncode}")


#: :data:`DF_SCRIPT` and :data:`PROBE_SCRIPT` ($1, $2) for each directory ($3...), each
#: answer followed by ``rprockit-df <rc>`` / ``rprockit-probe <rc>``: one round trip.
DIRS_SCRIPT = r"""
df=$1; probe=$2; shift 2
for d; do
  sh -c "$df" sh "$d"; echo "rprockit-df $?"
  sh -c "$probe" sh "$d" 2>&1; echo "rprockit-probe $?"
done
exit 0
"""


def check_dirs(remote: RemoteShell, directories: Sequence[str]
               ) -> dict[str, tuple[DiskFree, str | None]]:
    """:func:`disk_free` and :func:`probe_writable` of each directory, in one command.

    Returns:
        ``{directory: (free space, None when writable else the target's error)}``.

    Raises:
        RemoteCommandError: df failed for a directory.
        ValueError: df's output could not be parsed (message quotes it).
    """
    argv = sh(DIRS_SCRIPT, DF_SCRIPT, PROBE_SCRIPT, *directories)
    out = remote.run(argv).stdout.splitlines()
    found: dict[str, tuple[DiskFree, str | None]] = {}
    for d in directories:
        i = next(k for k, ln in enumerate(out) if ln.startswith("rprockit-df "))
        df_lines, rc = out[:i], int(out[i].split()[1])
        if rc != 0:
            raise RemoteCommandError(remote.where, shlex.join(sh(DF_SCRIPT, d)), rc,
                                     "\n".join(df_lines))
        j = next(k for k, ln in enumerate(out) if ln.startswith("rprockit-probe "))
        probe, prc = out[i + 1:j], int(out[j].split()[1])
        out = out[j + 1:]
        existing = df_lines[0].strip() if df_lines else d
        free = DiskFree(d, existing, *parse_df(df_lines[1:]))
        found[d] = (free, None if prc == 0 else ("\n".join(probe).strip() or f"exit {prc}"))
    return found


def release_and_tools(remote: RemoteShell, names: Sequence[str]) -> tuple[str, dict[str, str]]:
    """``uname -r`` and :func:`tools` in one command on the target.

    Raises:
        RemoteCommandError: uname failed.
    """
    out = remote.run(sh("uname -r || exit 1\n" + TOOLS_SCRIPT, *names)).stdout.splitlines()
    found = dict(line.split("=", 1) for line in out[1:] if "=" in line)
    return (out[0].strip() if out else ""), {k: v for k, v in found.items() if k in names}


def read_text(remote: RemoteShell, path: str) -> str | None:
    """Contents of a file on the target, or None when it cannot be read."""
    res = remote.run(["cat", path], check=False)
    return res.stdout if res.returncode == 0 else None


def write_text(remote: RemoteShell, path: str, text: str) -> None:
    """Write ``text`` to ``path`` on the target (through ``cat``)."""
    remote.run(sh(WRITE_SCRIPT, path), input=text.encode())


def sha256sums(remote: RemoteShell, paths: Sequence[str]) -> dict[str, str]:
    """Run ``sha256sum`` on the target: ``{path: hex digest}``."""
    if not paths:
        return {}
    out = remote.run(["sha256sum", *paths]).stdout
    sums = {}
    for line in out.splitlines():
        digest, _, name = line.partition(" ")
        sums[name.lstrip(" *")] = digest
    return sums


def parent(path: str) -> str:
    """Parent directory of a target path."""
    return str(PurePosixPath(path).parent)
