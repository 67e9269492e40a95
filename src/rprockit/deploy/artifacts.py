"""What to deploy: module and firmware files, read and checked on this host."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..files import sha256_file
from ..kmod import vermagic as kmod_vermagic
from ..manifest import Manifest
from ..runner import Runner
from .errors import ArtifactError

#: File names rprockit installs on a target (no path, no leading dot or dash).
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


def module_name(path: str | Path) -> str:
    """Kernel module name of a ``.ko`` file: basename, ``-`` read as ``_``.

    Source: kmod ``libkmod/libkmod-util.c`` ``modname_normalize()``.
    """
    name = Path(path).name
    for suffix in (".ko.xz", ".ko.gz", ".ko.zst", ".ko"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return normalize(name)


def normalize(name: str) -> str:
    """Module name with ``-`` read as ``_`` (kmod ``modname_normalize()``)."""
    return name.replace("-", "_")


@dataclass(frozen=True)
class DeployArtifacts:
    """The files of one build to deploy, as plain values.

    Attributes:
        modules: ``.ko`` files on this host.
        firmware: firmware files on this host (ELF images for the remote core).
        kernel_release: the built kernel's ``make kernelrelease`` (``manifest.json``
            ``kernel_release``).
        load_order: module names in load order (unload = reverse); may name modules
            that are not shipped (the target's own). Empty: the order of ``modules``.
        manifest_id: id of the build manifest these come from, or None.
        manifest_path: the build ``manifest.json`` on this host (its sha256 is recorded).
        firmware_name: the firmware to set on the remote processor at reload; default
            the first firmware file's name.
        release_parts: how the build's release string was made
            (:class:`rprockit.running.ReleaseParts` as a dict), for the reason of a
            release mismatch; None when unknown.
        symvers: the running kernel's ``Module.symvers`` to check the modules' symbol
            CRCs against (CONFIG_MODVERSIONS), or None for no CRC check.
        own_symvers: the build's own ``Module.symvers`` (symbols the deployed modules
            export to each other), or None.
    """

    modules: tuple[Path, ...] = ()
    firmware: tuple[Path, ...] = ()
    kernel_release: str = ""
    load_order: tuple[str, ...] = ()
    manifest_id: str | None = None
    manifest_path: Path | None = None
    firmware_name: str | None = None
    release_parts: dict | None = None
    symvers: Path | None = None
    own_symvers: Path | None = None

    @classmethod
    def from_build(cls, artifacts: Path) -> DeployArtifacts:
        """The modules and firmware of the build in ``artifacts/`` (its manifest.json).

        Raises:
            UserError: no build there yet.
        """
        man = Manifest.load(artifacts)
        ref = man.artifacts / "image.symvers"  # a modules-only build: the image's
        own = man.artifacts / "Module.symvers"
        return cls(modules=man.modules, firmware=(man.firmware,) if man.firmware else (),
                   kernel_release=man.kernel_release, load_order=man.load_order,
                   manifest_id=man.id, manifest_path=man.path, firmware_name=man.firmware_name,
                   release_parts=man.data.get("release_parts"),
                   symvers=ref if ref.is_file() else None,
                   own_symvers=own if own.is_file() else None)

    @property
    def order(self) -> tuple[str, ...]:
        """Normalised module load order."""
        names = self.load_order or tuple(module_name(m) for m in self.modules)
        return tuple(normalize(n) for n in names)

    @property
    def boot_firmware(self) -> str | None:
        """Name written to ``/sys/class/remoteproc/remoteprocN/firmware`` at reload."""
        if self.firmware_name:
            return self.firmware_name
        return Path(self.firmware[0]).name if self.firmware else None


@dataclass(frozen=True)
class LocalFile:
    """A file to install: where it is here, its name there, size and hash.

    Attributes:
        path: file on this host.
        name: file name on the target.
        size: bytes.
        sha256: hex digest.
        vermagic: the module's vermagic string (modules only).
    """

    path: Path
    name: str
    size: int
    sha256: str
    vermagic: str | None = None


@dataclass(frozen=True)
class CheckedArtifacts:
    """Artifacts after local checks: modules and firmware as :class:`LocalFile` lists."""

    modules: list[LocalFile] = field(default_factory=list)
    firmware: list[LocalFile] = field(default_factory=list)


def read_vermagic(ko: Path, runner: Runner) -> str:
    """vermagic of a module, read with ``modinfo -F vermagic`` (kmod).

    Raises:
        ArtifactError: the file has no vermagic (not a kernel module).
        ToolMissingError: modinfo is not installed (package kmod).
    """
    vermagic = kmod_vermagic(ko, runner)
    if not vermagic:
        raise ArtifactError(f"{ko} has no vermagic in its .modinfo section: it is not a "
                            "kernel module built by Kbuild; rebuild the module set")
    return vermagic


def check_artifacts(artifacts: DeployArtifacts, runner: Runner) -> CheckedArtifacts:
    """Hash every file and read each module's vermagic.

    Raises:
        ArtifactError: a file is missing, names collide, or a module has no vermagic.
    """
    if not artifacts.modules and not artifacts.firmware:
        raise ArtifactError("nothing to deploy: no module and no firmware file given; "
                            "run the build stage first")
    mods = [_local(p, runner, module=True) for p in artifacts.modules]
    fws = [_local(p, runner, module=False) for p in artifacts.firmware]
    for group in (mods, fws):
        names = [f.name for f in group]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise ArtifactError(f"two artifacts would install as the same file: {dups}")
    return CheckedArtifacts(mods, fws)


def _local(path: Path, runner: Runner, module: bool) -> LocalFile:
    path = Path(path)
    if not _NAME_RE.match(path.name):
        raise ArtifactError(f"artifact {path}: the file name must match {_NAME_RE.pattern} "
                            "to be installed on the target; rename it")
    if not path.is_file():
        raise ArtifactError(f"artifact {path} does not exist; run the build stage first")
    if module and not path.name.endswith(".ko"):
        raise ArtifactError(f"{path} is not a .ko file; list firmware under firmware")
    vermagic = read_vermagic(path, runner) if module else None
    return LocalFile(path, path.name, path.stat().st_size, sha256_file(path), vermagic)
