"""The kernel a board already runs: its config, its release string, its symbol versions.

Modules built for a running kernel must match it in three ways before the kernel
loads them (Linux 6.1):

* the **release string** (``uname -r``), because modprobe looks in
  ``/lib/modules/<release>`` and the vermagic starts with it.  Kbuild makes it
  in ``scripts/setlocalversion`` (top ``Makefile`` line 1303, ``kernelrelease``):
  ``KERNELVERSION`` + the ``localversion*`` files of the build and source
  directories (lines 120-123) + ``CONFIG_LOCALVERSION`` + ``$LOCALVERSION``
  (lines 125-127), then with ``CONFIG_LOCALVERSION_AUTO=y`` the full scm
  version (line 132), else, when ``LOCALVERSION`` is not set at all, a ``+``
  for a git tree that is not at an annotated tag or has uncommitted changes
  (lines 133-142, ``scm_version --short``);
* the **vermagic** (``include/linux/vermagic.h`` ``VERMAGIC_STRING``), read
  with :func:`rprockit.kmod.vermagic`;
* with ``CONFIG_MODVERSIONS``, the **CRC of every imported symbol**
  (``__versions``, read with :func:`rprockit.kmod.symbol_versions`) against the
  kernel's ``Module.symvers``: kernel/module/version.c ``check_version()``
  refuses the module with "disagrees about version of symbol <name>" (line 53).

This module reads a board's config (a ``.config``, ``/proc/config.gz``,
``/boot/config-<release>``; from a file or over SSH), predicts the release a
build makes, works out the ``LOCALVERSION`` that makes it equal the target's, and
compares symbol CRCs, each mismatch a :class:`~rprockit.errors.UserError` that
names the symbol or value and the fix.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .files import decode_utf8, read_regular, write_text_atomic
from .git import Git
from .runner import Runner

__all__ = ["ConfigSourceError", "CrcMismatchError", "ReleaseMismatchError", "ReleaseParts",
           "SymverEntry", "check_crcs", "config_from_target", "localversion_for",
           "parse_config", "read_config", "read_symvers", "release_parts"]

#: Largest config read (bytes, after decompression); a distribution .config is ~250 KiB.
MAX_CONFIG_BYTES = 8 << 20
#: Largest Module.symvers read (bytes); a distribution kernel's is ~2 MiB.
MAX_SYMVERS_BYTES = 32 << 20
#: Where a running kernel's config is found on the target, in order: the kernel's own
#: copy (CONFIG_IKCONFIG_PROC, kernel/configs.c) and the distribution's copy.
TARGET_CONFIG_PATHS = ("/proc/config.gz", "/boot/config-{release}")
#: setlocalversion of Linux 6.1, for messages.
SETLOCALVERSION = "scripts/setlocalversion"

_GZIP_MAGIC = b"\x1f\x8b"
_CONFIG_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+=|# CONFIG_[A-Za-z0-9_]+ is not set)",
                          re.MULTILINE)


class ConfigSourceError(UserError):
    """A base config that cannot be read or is not a kernel config."""


class ReleaseMismatchError(UserError):
    """The build's release string cannot be made equal to the running kernel's."""


class CrcMismatchError(UserError):
    """A module imports a symbol with a CRC the running kernel does not export."""


# --------------------------------------------------------------------------- config

def parse_config(data: bytes, source: str) -> str:
    """A kernel config's text from the bytes of a ``.config`` or a ``config.gz``.

    Args:
        data: the file's bytes (gzip is recognised by its magic, RFC 1952).
        source: where they came from, for messages.

    Returns:
        The config text.

    Raises:
        ConfigSourceError: corrupt gzip, larger than :data:`MAX_CONFIG_BYTES`, not
            UTF-8, or no ``CONFIG_`` line at all.
    """
    if data.startswith(_GZIP_MAGIC):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
                data = fh.read(MAX_CONFIG_BYTES + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise ConfigSourceError(f"{source}: not a readable gzip file ({e}); give the "
                                    "board's /proc/config.gz as copied, or the plain "
                                    ".config") from e
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigSourceError(f"{source}: decompresses to more than {MAX_CONFIG_BYTES} "
                                    "bytes; that is not a kernel config")
    text = decode_utf8(data, source, "kernel config")
    if not _CONFIG_LINE.search(text):
        raise ConfigSourceError(
            f"{source}: no 'CONFIG_X=value' or '# CONFIG_X is not set' line: this is not a "
            "kernel config. Give a board's .config, /proc/config.gz or /boot/config-<release>")
    return text


def read_config(path: Path) -> str:
    """The text of a config file on this host (plain or gzip; see :func:`parse_config`).

    Raises:
        UnreadableFileError: missing, not a regular file, or too large.
        ConfigSourceError: not a kernel config.
    """
    return parse_config(read_regular(path, MAX_CONFIG_BYTES, "kernel config"), str(path))


def config_value(text: str, symbol: str) -> str | None:
    """The value of ``CONFIG_<symbol>`` in a config text (quotes kept), or None when
    unset or absent."""
    m = re.search(rf"^CONFIG_{re.escape(symbol)}=(.*)$", text, re.MULTILINE)
    return m.group(1).strip() if m else None


@dataclass(frozen=True)
class TargetConfig:
    """A running kernel's config read from the target.

    Attributes:
        path: where it was saved on this host (plain text).
        where: the target path it came from (``/proc/config.gz``).
        release: the target's ``uname -r``.
    """

    path: Path
    where: str
    release: str


def config_from_target(remote, target, dest: Path) -> TargetConfig:
    """Read the running kernel's config over SSH and save it as plain text.

    Tries :data:`TARGET_CONFIG_PATHS` in order (under the target's ``root_prefix``)
    and writes ``dest`` only when the content changed (its mtime then tells make
    nothing new).

    Args:
        remote: a connected :class:`rprockit.ssh.SSHTransport`.
        target: the :class:`rprockit.target.TargetDesc`.
        dest: the file to write.

    Returns:
        Where it came from and the target's release.

    Raises:
        ConfigSourceError: none of the paths exists (the fix: CONFIG_IKCONFIG_PROC, or
            copy the board's .config and give it as a file), or it is not a config.
        TargetConnectionError, RemoteCommandError: SSH.
    """
    release = remote.run(["uname", "-r"]).stdout.strip()
    tried = []
    for pattern in TARGET_CONFIG_PATHS:
        path = target.path(pattern.format(release=release))
        tried.append(path)
        data = remote.read_file(path, MAX_CONFIG_BYTES)
        if data is None:
            continue
        text = parse_config(data, f"{remote.where}:{path}")
        if not dest.is_file() or dest.read_text(errors="replace") != text:
            dest.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(dest, text)
        return TargetConfig(dest, path, release)
    raise ConfigSourceError(
        f"{remote.where} (kernel {release}) has none of {', '.join(tried)}: build its kernel "
        "with CONFIG_IKCONFIG=y and CONFIG_IKCONFIG_PROC=y, or copy the board's .config here "
        "and give it as --base-config FILE")


# --------------------------------------------------------------------------- release

@dataclass(frozen=True)
class ReleaseParts:
    """The pieces of ``make kernelrelease`` (scripts/setlocalversion, Linux 6.1).

    Attributes:
        version: ``KERNELVERSION`` (``VERSION.PATCHLEVEL.SUBLEVEL`` + ``EXTRAVERSION``).
        files: the content of the ``localversion*`` files (build, then source dir).
        config: ``CONFIG_LOCALVERSION`` (without quotes).
        env: ``$LOCALVERSION``, or None when it is not set.
        auto: ``CONFIG_LOCALVERSION_AUTO=y``.
        scm: what the git tree adds: ``+`` (untagged or dirty, LOCALVERSION unset),
            the full scm version with ``auto``, or ``""``.
    """

    version: str
    files: str = ""
    config: str = ""
    env: str | None = None
    auto: bool = False
    scm: str = ""

    @property
    def release(self) -> str:
        """The release string, as ``make kernelrelease`` prints it."""
        return f"{self.version}{self.files}{self.config}{self.env or ''}{self.scm}"

    @property
    def fixed(self) -> str:
        """The part LOCALVERSION cannot change: version, files and CONFIG_LOCALVERSION."""
        return f"{self.version}{self.files}{self.config}"

    def describe(self) -> str:
        """Each piece with the line of setlocalversion that adds it."""
        bits = [f"KERNELVERSION '{self.version}'"]
        if self.files:
            bits.append(f"localversion files '{self.files}' ({SETLOCALVERSION} lines 120-123)")
        bits.append(f"CONFIG_LOCALVERSION '{self.config}' (line 126)")
        if self.env is not None:
            bits.append(f"LOCALVERSION '{self.env}' (line 127)")
        if self.scm:
            why = ("CONFIG_LOCALVERSION_AUTO=y (line 132)" if self.auto else
                   "a git tree not at an annotated tag, or with uncommitted changes, and "
                   "LOCALVERSION not set (lines 133-142)")
            bits.append(f"'{self.scm}' for {why}")
        return " + ".join(bits)

    def to_dict(self) -> dict:
        return {"version": self.version, "files": self.files, "config": self.config,
                "env": self.env, "auto": self.auto, "scm": self.scm, "release": self.release}

    @classmethod
    def from_dict(cls, d: dict) -> ReleaseParts:
        return cls(d["version"], d.get("files", ""), d.get("config", ""), d.get("env"),
                   bool(d.get("auto")), d.get("scm", ""))


def _localversion_files(*dirs: Path) -> str:
    out = ""
    for d in dirs:
        for f in sorted(d.glob("localversion*")):
            if "~" not in f.name and f.is_file():
                out += f.read_text(errors="replace").strip("\n")
    return out


def _scm_short(src: Path, runner: Runner | None) -> str:
    """``scm_version --short`` of setlocalversion (lines 32-86): ``+`` or ``""``."""
    if (src / ".scmversion").is_file():
        return (src / ".scmversion").read_text().strip()
    git = Git(src, runner)
    if not (src / ".git").exists():
        return ""
    exact = (runner or Runner()).probe(["git", "-C", str(src), "describe", "--exact-match"])
    if not exact:
        return "+"
    return "+" if git.dirty() else ""


def _scm_full(src: Path, runner: Runner | None) -> str:
    """``scm_version`` (full) of setlocalversion: ``-<n>-g<12 hex>`` and ``-dirty``."""
    r = runner or Runner()
    if (src / ".scmversion").is_file():
        return (src / ".scmversion").read_text().strip()
    if not (src / ".git").exists():
        return ""
    out = ""
    if not r.probe(["git", "-C", str(src), "describe", "--exact-match"]):
        atag = r.probe(["git", "-C", str(src), "describe"])
        if atag:
            out += f"-{int(atag.split('-')[-2]):05d}"
        out += "-g" + Git(src, runner).head()[:12]
    if Git(src, runner).dirty():
        out += "-dirty"
    return out


def release_parts(src: Path, out: Path, config_text: str, version: str,
                  env_localversion: str | None, runner: Runner | None = None) -> ReleaseParts:
    """Predict ``make kernelrelease`` for a tree, a config and a ``LOCALVERSION``.

    Args:
        src: the kernel source tree (a git tree or not).
        out: the ``O=`` directory (its ``localversion*`` files count first).
        config_text: the ``.config``.
        version: ``KERNELVERSION`` (:func:`rprockit.kconfig.kernel_version`).
        env_localversion: the ``LOCALVERSION`` make gets, or None when unset.
        runner: runs git.

    Returns:
        The parts; ``.release`` is the string.
    """
    cfg = (config_value(config_text, "LOCALVERSION") or '""').strip('"')
    auto = config_value(config_text, "LOCALVERSION_AUTO") == "y"
    files = _localversion_files(out, src) if out.resolve() != src.resolve() else \
        _localversion_files(src)
    if auto:
        scm = _scm_full(src, runner)
    elif env_localversion is None:
        scm = _scm_short(src, runner)
    else:
        scm = ""
    return ReleaseParts(version, files, cfg, env_localversion, auto, scm)


def localversion_for(parts: ReleaseParts, target_release: str, where: str) -> str:
    """The ``LOCALVERSION`` that makes the build's release equal ``target_release``.

    Setting LOCALVERSION (even to ``""``) also drops the ``+`` of an untagged git
    tree (setlocalversion line 133).

    Args:
        parts: :func:`release_parts` of the build (its ``env`` is ignored).
        target_release: the running kernel's ``uname -r``.
        where: the target, for messages.

    Returns:
        The value (possibly ``""``).

    Raises:
        ReleaseMismatchError: the fixed part (version, localversion files,
            CONFIG_LOCALVERSION) is not a prefix of the target's release, or
            CONFIG_LOCALVERSION_AUTO=y appends an scm version; the message names the
            value and the fix.
    """
    if parts.auto:
        raise ReleaseMismatchError(
            f"{where} runs {target_release}, but CONFIG_LOCALVERSION_AUTO=y appends the "
            f"tree's scm version '{parts.scm}' ({SETLOCALVERSION} line 132); add "
            "'# CONFIG_LOCALVERSION_AUTO is not set' to a fragment so rprockit can set the "
            "release to the target's")
    if not target_release.startswith(parts.fixed):
        if not target_release.startswith(parts.version):
            fix = (f"the tree is {parts.version}, the target runs {target_release}: fetch "
                   "the source of the running kernel (its version and patches), or boot a "
                   "kernel built from this tree")
        else:
            fix = (f"set CONFIG_LOCALVERSION to the target's suffix "
                   f"('{target_release[len(parts.version):]}' or a prefix of it) in a "
                   "fragment, or take the base config from the target (--base-config target)")
        raise ReleaseMismatchError(
            f"release mismatch: the build makes '{parts.fixed}...' ({parts.describe()}), "
            f"{where} runs '{target_release}' (uname -r); {fix}")
    return target_release[len(parts.fixed):]


def release_mismatch_reason(parts: ReleaseParts | None, built: str, running: str) -> str:
    """Why a built release differs from a running one, and the fix (for deploy)."""
    if parts is None:
        return "rebuild the modules against the running kernel's tree and config"
    if built == running + "+" and parts.scm == "+":
        return (f"the trailing '+' comes from {SETLOCALVERSION} lines 133-142: the tree is a "
                "git tree not at an annotated tag (or has uncommitted changes) and "
                "LOCALVERSION was not set; rebuild with --match-target (rprockit then sets "
                f"LOCALVERSION=\"{running[len(parts.fixed):]}\") or boot the built image")
    try:
        lv = localversion_for(parts, running, "the target")
    except ReleaseMismatchError as e:
        return str(e)
    return (f"the build's release is {parts.describe()}; rebuild with --match-target "
            f"(rprockit then sets LOCALVERSION=\"{lv}\") or boot the built image")


# --------------------------------------------------------------------------- symbol CRCs

@dataclass(frozen=True)
class SymverEntry:
    """One line of ``Module.symvers`` (scripts/mod/modpost.c ``write_dump()``).

    Attributes:
        crc: the symbol's CRC (``0x`` hex in the file).
        module: ``vmlinux`` or the exporting module's path without ``.ko``.
        export: ``EXPORT_SYMBOL`` or ``EXPORT_SYMBOL_GPL``.
    """

    crc: int
    module: str
    export: str


def read_symvers(path: Path) -> dict[str, SymverEntry]:
    """Read a ``Module.symvers``: ``0xCRC<TAB>symbol<TAB>module<TAB>export[<TAB>ns]``.

    A gzip file (``/boot/symvers-<release>.gz`` of some distributions) is read too.

    Returns:
        ``{symbol: entry}``.

    Raises:
        UnreadableFileError: missing, not a regular file, too large.
        ConfigSourceError: a line that is not in this format (file and line named).
    """
    data = read_regular(path, MAX_SYMVERS_BYTES, "Module.symvers")
    if data.startswith(_GZIP_MAGIC):
        data = gzip.decompress(data)
    out: dict[str, SymverEntry] = {}
    for n, line in enumerate(decode_utf8(data, path, "Module.symvers").splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        try:
            if len(cols) < 4:
                raise ValueError
            out[cols[1]] = SymverEntry(int(cols[0], 16), cols[2], cols[3])
        except ValueError:
            raise ConfigSourceError(
                f"{path}:{n}: '{line[:80]}' is not a Module.symvers line (0xCRC, symbol, "
                "module, export type separated by tabs); give the Module.symvers that "
                "the running kernel's build wrote") from None
    return out


def has_crcs(symvers: dict[str, SymverEntry]) -> bool:
    """True when the file was written with CONFIG_MODVERSIONS (some CRC is not 0)."""
    return any(e.crc for e in symvers.values())


def check_crcs(modules: dict[str, dict[str, int]], reference: dict[str, SymverEntry],
               reference_name: str, own: dict[str, SymverEntry] | None = None) -> list[str]:
    """Compare every imported symbol's CRC with the running kernel's.

    Args:
        modules: ``{module file name: {symbol: CRC}}`` (the ``__versions`` of each).
        reference: the running kernel's ``Module.symvers``.
        reference_name: its file, for messages.
        own: the build's own ``Module.symvers``: symbols that modules of the same set
            export are taken from it, since they are deployed together.

    Returns:
        One message per mismatch (empty when every CRC matches); a symbol the running
        kernel does not export is named too (the kernel says "Unknown symbol").
    """
    problems = []
    own = own or {}
    for name, versions in sorted(modules.items()):
        for sym, crc in sorted(versions.items()):
            ref = reference.get(sym)
            mine = own.get(sym)
            if mine is not None and mine.module != "vmlinux" and \
                    (ref is None or ref.module == mine.module):
                ref = mine  # exported by a module deployed with this one
            if ref is None:
                problems.append(
                    f"{name} imports {sym} (CRC {crc:#010x}) but {reference_name} does not "
                    "export it: the running kernel lacks the code that exports it (a config "
                    "symbol that is =n there); build against the running kernel's config")
            elif ref.crc != crc:
                problems.append(
                    f"{name}: symbol {sym} has CRC {crc:#010x} in the module but "
                    f"{ref.crc:#010x} in {reference_name} ({ref.module}); the kernel would "
                    f"refuse it (kernel/module/version.c check_version(): \"disagrees about "
                    f"version of symbol {sym}\"). The declaration of {sym} or a type it uses "
                    "differs between the build and the running kernel: build against the "
                    "running kernel's exact tree and config (--base-config target), or "
                    "rebuild and boot the image")
    return problems


# --------------------------------------------------------------------------- from the target

def read_from_target(target_env: Path | str, base_dir: Path, want_config: bool,
                     accept_new_host_key: bool = False) -> tuple[str, TargetConfig | None]:
    """The running kernel's release and, when asked, its config, over SSH.

    Args:
        target_env: a labgrid environment file or ``[user@]host[:port]``.
        base_dir: where the config is saved (``<dir>/target.config``).
        want_config: also read the config.
        accept_new_host_key: record an unknown host key instead of refusing it.

    Returns:
        ``(uname -r, the saved config or None)``.

    Raises:
        ConfigSourceError: the target has no config file (see :func:`config_from_target`).
        TargetConnectionError, HostKeyUnknownError, RemoteCommandError: SSH.
    """
    from .place import acquired, resolve
    from .ssh import transport_for
    from .target import load_target

    with acquired(load_target(target_env)) as held:
        desc = resolve(held)
        with transport_for(desc, accept_new_host_key=accept_new_host_key) as remote:
            if want_config:
                cfg = config_from_target(remote, desc, base_dir / "target.config")
                return cfg.release, cfg
            return remote.run(["uname", "-r"]).stdout.strip(), None
