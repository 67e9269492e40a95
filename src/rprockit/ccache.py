"""The compiler cache of the build stage: ccache, path-independent, optionally shared.

A kernel build puts absolute paths on the compiler's command line: ``make O=``
compiles ``<src>/drivers/x.c`` with ``-I<src>/include`` from the ``O=``
directory, and the top Makefile adds ``-fmacro-prefix-map=$(srctree)/=``
(Linux 6.1 ``Makefile``, ``KBUILD_CPPFLAGS``).  ccache hashes the command
line, so by default a second workspace (another checkout path, another
machine) never hits what the first one cached.  rprockit therefore sets, per
build (ccache(1) "Compiling in different directories"):

* ``base_dir`` = the profile's workspace directory (``<ws>``, the common parent
  of ``<ws>/src`` and ``<ws>/out``): ccache rewrites every absolute path below
  it into a path relative to the compiler's working directory (``../src/...``),
  for the hash and for the compiler itself (so the dependency files kbuild's
  fixdep reads hold relative paths too).  The ``-fmacro-prefix-map`` argument
  does not enter the hash (measured with ccache 4.7.5: two trees at different
  paths, same source, direct hit);
* ``KCPPFLAGS=-fmacro-prefix-map=../src/=``: the compiler now sees
  ``../src/drivers/x.c``, which the kernel's own ``-fmacro-prefix-map=<src>/=``
  no longer matches, so without this ``__FILE__`` (WARN(), BUG() locations)
  would read ``../src/drivers/x.c`` and a cached build would differ from an
  uncached one (measured: objects differ; with the map they are identical).
  Every kernel line rprockit builds adds ``$(KCPPFLAGS)`` to ``KBUILD_CPPFLAGS``
  (top ``Makefile``: Linux 6.1 line 1140; NXP linux-imx 4.9 line 820, 4.14 line
  846, 5.4 line 912, 5.15 line 1077, 6.1 line 1104);
* ``hash_dir = false`` (``CCACHE_NOHASHDIR``): the working directory then does
  not enter the hash either.  A ``.config`` with ``CONFIG_DEBUG_INFO=y`` gets
  neither setting: debug information records the source and build paths
  (``DW_AT_name``, ``DW_AT_comp_dir``), which the rewriting would change, so such
  a build keeps per-workspace hashing and the cache never changes an artifact;
* ``stats_log`` = ``<ws>/logs/ccache-stats.log``, truncated before each build:
  ccache appends one record per compiler call (``# <source>`` and the counters it
  updated), which :func:`read_stats` sums into this build's hit statistics.

The site chooses the local cache directory and a shared remote storage (Redis
or HTTP; ccache >= 4.4 ``remote_storage``) in ``invoke.yaml``::

    rprockit:
      ccache:
        remote_storage: redis://cache.lab.example:6379
        dir: /var/cache/rprockit-ccache     # optional (CCACHE_DIR)
        reshare: false                      # also upload local hits
        remote_only: false                  # no local cache at all

The reproducibility check (``rprockit.repro``) builds without ccache at all, so a
cache can never hide nondeterminism there.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .yamlfile import validate

__all__ = ["CcacheSettings", "CcacheStats", "compiler_command", "disabled_by_environment",
           "environment", "read_stats", "redact_url", "settings_from_config", "wrapper"]


@dataclass(frozen=True)
class CcacheSettings:
    """The site's compiler cache settings (``rprockit.ccache`` of ``invoke.yaml``).

    Attributes:
        enabled: wrap the cross compiler in ccache (when it is installed).
        dir: local cache directory (``CCACHE_DIR``), or None for ccache's own choice.
        remote_storage: ccache ``remote_storage`` URL(s) (``redis://host:port``,
            ``http://host/cache``), or None for ccache's configuration.
        remote_only: no local cache; every lookup goes to the remote storage.
        reshare: write local hits to the remote storage too (fills a new shared
            cache from a warm local one).
    """

    enabled: bool = True
    dir: Path | None = None
    remote_storage: str | None = None
    remote_only: bool = False
    reshare: bool = False


def settings_from_config(cfg: Mapping[str, Any] | None,
                         source: str = "invoke.yaml rprockit.ccache") -> CcacheSettings:
    """Validate the ``rprockit.ccache`` configuration section.

    Args:
        cfg: the section (a mapping), or None.
        source: where it came from, for messages.

    Returns:
        The settings; ``dir`` is an absolute path.

    Raises:
        InvalidFileError: an unknown key or a bad value (schema ``ccache-settings``).
    """
    data = dict(cfg or {})
    validate(data, "ccache-settings", source=source)
    directory = data.get("dir")
    return CcacheSettings(
        enabled=data.get("enabled", True),
        dir=Path(directory).expanduser().resolve() if directory else None,
        remote_storage=data.get("remote_storage"),
        remote_only=data.get("remote_only", False),
        reshare=data.get("reshare", False))


def wrapper(settings: CcacheSettings) -> str | None:
    """``ccache`` when the build should use it: enabled in the settings and installed;
    else None.

    ``CCACHE_DISABLE`` in the environment does not remove the wrapper: ccache then
    calls the compiler itself without caching (ccache(1) ``disable``), so the
    compiler command line kbuild records in every ``.cmd`` file stays the same and
    setting it for one build does not make make rebuild every object.  Whether the
    wrapper is on the command line is a build input (:func:`compiler_command`).
    """
    if not settings.enabled:
        return None
    return "ccache" if shutil.which("ccache") else None


def disabled_by_environment() -> bool:
    """``CCACHE_DISABLE`` is set: the wrapper calls the compiler uncached."""
    return bool(os.environ.get("CCACHE_DISABLE"))


def compiler_command(cross_compile: str, wrapper_name: str | None) -> str:
    """The ``CC`` kbuild runs: ``ccache arm-linux-gnueabihf-gcc`` or the plain compiler.

    Kbuild records the full command of every object in its ``.cmd`` file and
    rebuilds an object whose command changed (scripts/Kbuild.include
    ``if_changed``), so a change of this string rebuilds every object.
    """
    cc = f"{cross_compile}gcc"
    return f"{wrapper_name} {cc}" if wrapper_name else cc


def environment(settings: CcacheSettings, src: Path, out: Path, stats_log: Path,
                debug_info: bool) -> dict[str, str]:
    """ccache's environment for one kernel build (see the module docstring).

    Args:
        settings: the site's settings.
        src: the kernel tree (``make -C``).
        out: the ``O=`` directory; ``base_dir`` is the common parent of the two.
        stats_log: the per-build statistics log.
        debug_info: the ``.config`` builds debug information (no path rewriting).

    Returns:
        ``CCACHE_*`` variables (and ``KCPPFLAGS``) to add to make's environment.
    """
    env = {"CCACHE_STATSLOG": str(stats_log)}
    if not debug_info:
        env["CCACHE_BASEDIR"] = os.path.commonpath([src, out])
        env["CCACHE_NOHASHDIR"] = "1"
        own = os.environ.get("KCPPFLAGS", "")
        env["KCPPFLAGS"] = (f"{own} " if own else "") + \
            f"-fmacro-prefix-map={os.path.relpath(src, out)}/="
    if settings.dir:
        env["CCACHE_DIR"] = str(settings.dir)
    if settings.remote_storage:
        env["CCACHE_REMOTE_STORAGE"] = settings.remote_storage
    if settings.remote_only:
        env["CCACHE_REMOTE_ONLY"] = "1"
    if settings.reshare:
        env["CCACHE_RESHARE"] = "1"
    return env


def redact_url(url: str) -> str:
    """A remote storage URL without its password (``redis://:secret@h`` -> ``redis://***@h``)."""
    return re.sub(r"(//)[^/@\s]*@", r"\1***@", url)


@dataclass(frozen=True)
class CcacheStats:
    """Hit statistics of one build, summed from ccache's stats log.

    Attributes:
        calls: compiler calls ccache saw.
        hits: cacheable calls answered from a cache (direct or preprocessed mode).
        misses: cacheable calls compiled.
        uncacheable: calls ccache could not cache (linking, preprocessing only,
            unsupported options).
        direct_hits: hits found from the source and its includes alone.
        local_hits: hits from the local cache directory.
        remote_hits: hits from the remote storage (local miss).
        remote_errors: remote storage errors and timeouts (an unreachable server).
    """

    calls: int = 0
    hits: int = 0
    misses: int = 0
    uncacheable: int = 0
    direct_hits: int = 0
    local_hits: int = 0
    remote_hits: int = 0
    remote_errors: int = 0

    @property
    def compilations(self) -> int:
        """Cacheable compiler calls (hits + misses)."""
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        """hits / compilations, 0.0 .. 1.0 (0.0 with no compilation)."""
        return self.hits / self.compilations if self.compilations else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "compilations": self.compilations, "hits": self.hits,
                "misses": self.misses, "uncacheable": self.uncacheable,
                "direct_hits": self.direct_hits, "local_hits": self.local_hits,
                "remote_hits": self.remote_hits, "remote_errors": self.remote_errors,
                "hit_rate": round(self.hit_rate, 4)}

    def render(self) -> str:
        """One line: ``ccache 97.8% hits (870/890 compilations; 860 remote)``."""
        if not self.compilations:
            return "ccache: no compilation"
        text = (f"ccache {100 * self.hit_rate:.1f}% hits ({self.hits}/{self.compilations} "
                f"compilations; {self.local_hits} local, {self.remote_hits} remote)")
        if self.remote_errors:
            text += f", {self.remote_errors} remote storage errors (is the server reachable?)"
        return text


_HIT = ("direct_cache_hit", "preprocessed_cache_hit")
_UNCACHEABLE_NOT = {*_HIT, "cache_miss", "direct_cache_miss", "preprocessed_cache_miss",
                    "local_storage_hit", "local_storage_miss", "local_storage_read_hit",
                    "local_storage_read_miss", "local_storage_write", "remote_storage_hit",
                    "remote_storage_miss", "remote_storage_read_hit",
                    "remote_storage_read_miss", "remote_storage_write",
                    "remote_storage_error", "remote_storage_timeout", "recache"}


def read_stats(stats_log: Path) -> CcacheStats:
    """Sum ccache's per-call stats log (ccache(1) ``stats_log``) into build statistics.

    The log holds one record per compiler call: a ``# <source file>`` line, then
    one line per counter the call incremented (``direct_cache_hit``,
    ``cache_miss``, ``remote_storage_hit``, ``called_for_link`` ...), the counter
    names of ``ccache --print-stats``.

    Args:
        stats_log: the log file (missing means no call).

    Returns:
        The statistics.
    """
    try:
        text = stats_log.read_text(errors="replace")
    except FileNotFoundError:
        return CcacheStats()
    records: list[Counter[str]] = []
    for line in text.splitlines():
        if line.startswith("#"):
            records.append(Counter())
        elif line.strip() and records:
            records[-1][line.strip()] += 1
    total: Counter[str] = Counter()
    uncacheable = 0
    for rec in records:
        total.update(rec)
        if not any(rec[k] for k in (*_HIT, "cache_miss")) and set(rec) - _UNCACHEABLE_NOT:
            uncacheable += 1
    return CcacheStats(
        calls=len(records), hits=total["direct_cache_hit"] + total["preprocessed_cache_hit"],
        misses=total["cache_miss"], uncacheable=uncacheable,
        direct_hits=total["direct_cache_hit"], local_hits=total["local_storage_hit"],
        remote_hits=total["remote_storage_hit"],
        remote_errors=total["remote_storage_error"] + total["remote_storage_timeout"])
