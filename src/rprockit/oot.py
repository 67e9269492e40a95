"""Out-of-tree module sets: driver sources from a donor tree, built with ``make M=``.

A module set (``modules/*.yaml``, :class:`rprockit.profile.OutOfTreeSet`) may
name a donor (a kernel tree, or Debian's ``linux-source-X.Y`` tarball), the
driver sources to take from it, a series of compat patches that adapt them to
the target kernel's API and a ``Kbuild`` file.  The build stage, after the
kernel, prepares ``<workspace>/oot/<name>/``:

1. the donor files are copied to the same relative paths, the set's
   ``Kbuild`` to the top, and committed (a git tree, so the compat patches go
   through the patch engine: classified, trial-applied, ``git am --3way``,
   reported in ``reports/oot-<name>/``);
2. the variants of each compat fix are ordered by the *target* kernel's
   family and version (the patches adapt the donor code to that kernel);
3. ``make -C <src> O=<out> M=<dir> modules`` (Documentation/kbuild/modules.txt
   of 4.9, "How to Build External Modules") builds the modules against the
   prepared target tree; each module's vermagic must start with the target's
   kernel release (``include/config/kernel.release``).

Only the set description, the Kbuild file and the compat patches live in the
repository; the driver code is read from the donor at build time.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import kmod
from .errors import BuildError, CommandError, FetchError
from .files import read_regular, sha256_file
from .git import Git
from .kernel_tree import KernelVersion, NotAKernelTreeError, TreeFamily, read_version
from .patch import apply_all, load_series
from .patch.report import PatchReport
from .profile import Donor, ModuleSet, OutOfTreeSet, expand_env
from .runner import Runner

__all__ = ["BuiltSet", "DonorFiles", "build_set", "donor_files", "inputs", "prepare"]

#: At most this many bytes per donor source file (a driver, not a firmware blob).
MAX_SOURCE = 4 << 20

#: Identity of the commit that holds the donor sources in the build directory.
IDENTITY = {"GIT_AUTHOR_NAME": "rprockit", "GIT_AUTHOR_EMAIL": "rprockit@localhost",
            "GIT_COMMITTER_NAME": "rprockit", "GIT_COMMITTER_EMAIL": "rprockit@localhost"}


@dataclass(frozen=True)
class DonorFiles:
    """The donor's version and the named source files, read into memory.

    Attributes:
        where: the donor tree (expanded path) or tarball.
        version: the donor's ``VERSION.PATCHLEVEL.SUBLEVEL`` from its Makefile.
        files: ``{relative path: content}``, in the set's order.
    """

    where: str
    version: KernelVersion
    files: dict[str, bytes]

    def digests(self) -> dict[str, str]:
        """``{relative path: sha256}`` of the donor files."""
        return {rel: hashlib.sha256(data).hexdigest() for rel, data in self.files.items()}


@dataclass
class BuiltSet:
    """One out-of-tree module set after its build.

    Attributes:
        name: the set's name.
        directory: its build directory.
        modules: the ``.ko`` files built, sorted.
        report: the compat series' patch report (None without compat patches).
        record: the manifest's entry for the set.
    """

    name: str
    directory: Path
    modules: list[Path]
    report: PatchReport | None
    record: dict = field(default_factory=dict)


def _donor_path(oot: OutOfTreeSet, set_file: Path) -> Path:
    """The donor tree, its ``$VAR`` expanded.

    Raises:
        FetchError: a variable is not set, or the tree is not a directory.
    """
    spec = str(oot.donor.path)
    expanded, missing = expand_env(spec)
    if missing:
        raise FetchError(f"out-of-tree set {oot.name} ({set_file}): donor path {spec}: "
                         f"environment variable {', '.join(missing)} is not set; set it to "
                         "the donor kernel tree")
    path = (set_file.parent / Path(expanded).expanduser()).resolve()
    if not path.is_dir():
        raise FetchError(f"out-of-tree set {oot.name} ({set_file}): donor tree {path} is not a "
                         "directory; point the donor path at the top of a kernel tree")
    return path


def _from_tree(oot: OutOfTreeSet, set_file: Path) -> tuple[str, KernelVersion, dict[str, bytes]]:
    tree = _donor_path(oot, set_file)
    try:
        version = read_version(tree)
    except NotAKernelTreeError as e:
        raise FetchError(f"out-of-tree set {oot.name} ({set_file}): donor {tree}: "
                         f"{e.problem}") from e
    files = {}
    for rel in oot.sources:
        src = tree / rel
        if not src.is_file():
            raise FetchError(f"out-of-tree set {oot.name} ({set_file}): the donor {tree} (Linux "
                             f"{version.full}) has no {rel}; name a file it has, or another donor")
        files[rel] = read_regular(src, MAX_SOURCE, f"donor source {rel}")
    return str(tree), version, files


def _from_tarball(oot: OutOfTreeSet, set_file: Path) -> tuple[str, KernelVersion, dict[str, bytes]]:
    from .fetch import debian_tarball

    pkg = str(oot.donor.debian_package)
    tarball = debian_tarball(pkg)
    want = {"Makefile", *oot.sources}
    found: dict[str, bytes] = {}
    with tarfile.open(tarball, "r|xz") as tar:  # one pass; stops when all are found
        for member in tar:
            _, _, rel = member.name.partition("/")
            if rel in want and member.isfile() and rel not in found:
                fh = tar.extractfile(member)
                if fh is not None:
                    found[rel] = fh.read(MAX_SOURCE + 1)
                    if len(found[rel]) > MAX_SOURCE and rel != "Makefile":
                        raise FetchError(f"out-of-tree set {oot.name} ({set_file}): {rel} in "
                                         f"{tarball} is larger than {MAX_SOURCE} bytes; name "
                                         "driver sources, not archives")
                if want <= found.keys():
                    break
    missing = [rel for rel in oot.sources if rel not in found]
    if missing or "Makefile" not in found:
        raise FetchError(f"out-of-tree set {oot.name} ({set_file}): {tarball} has no "
                         f"{', '.join(missing or ['Makefile'])}; name files that {pkg} has")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Makefile").write_bytes(found.pop("Makefile")[:4096])
        version = read_version(Path(tmp))
    return str(tarball), version, {rel: found[rel] for rel in oot.sources}


def donor_files(oot: OutOfTreeSet, set_file: Path) -> DonorFiles:
    """Read the set's sources from its donor and check the donor's version.

    Args:
        oot: the set.
        set_file: the module-set YAML (relative donor paths are relative to it).

    Returns:
        The donor's version and files.

    Raises:
        FetchError: the donor is missing (unset variable, no tree, package not
            installed), lacks a source file, or is not the version the set names.
    """
    where, version, files = (_from_tarball if oot.donor.debian_package else _from_tree)(
        oot, set_file)
    if oot.donor.version and version.short != oot.donor.version:
        raise FetchError(f"out-of-tree set {oot.name} ({set_file}): the donor {where} is Linux "
                         f"{version.full}, but the set takes its sources from "
                         f"{oot.donor.version}; point it at a {oot.donor.version} tree")
    return DonorFiles(where, version, files)


def _donor_input(d: Donor, files: DonorFiles) -> dict:
    return {"donor": d.describe(), "where": files.where, "version": files.version.full,
            "sources": files.digests()}


def inputs(modules: ModuleSet | None) -> list[dict]:
    """Fingerprint inputs of every out-of-tree set: donor file digests, Kbuild and compat series.

    Raises:
        FetchError: see :func:`donor_files`.
        SeriesFormatError: a compat series is invalid.
    """
    if modules is None:
        return []
    out = []
    for oot in modules.out_of_tree:
        files = donor_files(oot, modules.file)
        out.append({"name": oot.name, **_donor_input(oot.donor, files),
                    "kbuild": sha256_file(oot.kbuild),
                    "patches": load_series(oot.patches).fingerprint() if oot.patches else None})
    return out


def prepare(oot: OutOfTreeSet, set_file: Path, target: TreeFamily, directory: Path,
            report_dir: Path | None = None, runner: Runner | None = None,
            epoch: int = 0) -> tuple[DonorFiles, PatchReport | None]:
    """Fill ``directory`` with the donor sources and the Kbuild file, then apply the compat series.

    Args:
        oot: the set.
        set_file: its module-set YAML.
        target: the target kernel's version and family (orders the compat variants).
        directory: the build directory; removed and created again.
        report_dir: where ``patch-report.{json,txt}`` go.
        runner: runs git.
        epoch: Unix seconds for the donor commit (the target tree's commit time, so
            the build directory's history is the same on every run).

    Returns:
        The donor files and the compat series' report (None without a series).

    Raises:
        FetchError: see :func:`donor_files`.
        PatchApplyError: a compat patch conflicts or is corrupt.
    """
    runner = runner or Runner()
    files = donor_files(oot, set_file)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for rel, data in files.files.items():
        dst = directory / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
    shutil.copyfile(oot.kbuild, directory / "Kbuild")
    git = Git(directory, runner)
    git.init("rprockit-oot")
    env = dict(IDENTITY, GIT_AUTHOR_DATE=f"@{epoch} +0000", GIT_COMMITTER_DATE=f"@{epoch} +0000")
    git("-c", "core.autocrlf=false", "add", "-A", "-f")
    git("commit", "-q", "--no-gpg-sign", "--no-verify", "-m",
        f"{oot.name}: sources from {oot.donor.describe()} (Linux {files.version.full})\n\n"
        f"Copied from {files.where} by rprockit build, with the set's Kbuild.", env=env)
    if oot.patches is None:
        return files, None
    series = load_series(oot.patches)
    report = apply_all(directory, [series], runner=runner, report_dirs=[report_dir],
                       tree_info=target)[0]
    return files, report


def build_set(oot: OutOfTreeSet, set_file: Path, src: Path, out: Path, directory: Path,
              make_args: list[str], env: dict[str, str], log: Path, release: str,
              report_dir: Path | None = None, runner: Runner | None = None,
              progress: Callable[[str], None] = lambda line: None, target: TreeFamily | None = None,
              epoch: int = 0) -> BuiltSet:
    """Prepare one set (:func:`prepare`) and build it against the prepared target tree.

    Args:
        oot: the set.
        set_file: its module-set YAML.
        src: the target kernel tree (``make -C``).
        out: its ``O=`` directory, where the kernel was built (``.config``,
            ``Module.symvers``, generated headers).
        directory: the set's build directory (``M=``).
        make_args: ``ARCH=``, ``CROSS_COMPILE=``, ``-j`` and the like.
        env: the build environment (reproducibility variables).
        log: make's output is appended to it.
        release: the target's kernel release; every module's vermagic must start with it.
        report_dir: where the compat series' report goes.
        runner: runs git, make and modinfo.
        progress: called with each line make prints.
        target: the target's version and family (default: detected from ``src``).
        epoch: see :func:`prepare`.

    Returns:
        The set's modules and its manifest record.

    Raises:
        FetchError: see :func:`donor_files`.
        PatchApplyError: a compat patch conflicts or is corrupt.
        BuildError: make failed, no module was built, or a module's vermagic is
            not the target's.
    """
    from .kernel_tree import detect_family

    runner = runner or Runner()
    info = target or detect_family(src)
    files, report = prepare(oot, set_file, info, directory, report_dir, runner, epoch)
    cmd = ["make", "-C", str(src), f"O={out}", f"M={directory}", *make_args, "modules"]
    cflags = " ".join(x for x in (env.get("KCFLAGS", ""), f"-fmacro-prefix-map={directory}/=")
                      if x)
    try:
        runner.stream(cmd, log, env={**env, "KCFLAGS": cflags}, progress=progress)
    except CommandError as e:
        raise BuildError(f"out-of-tree set {oot.name} ({set_file}) failed to build against "
                         f"{src} (Linux {info.version.full}); full log: {log}\n{e}") from e
    modules = sorted(directory.rglob("*.ko"))
    if not modules:
        raise BuildError(f"out-of-tree set {oot.name}: make built no module; check "
                         f"{oot.kbuild} (obj-m lines)")
    magic = {}
    for ko in modules:
        magic[ko.name] = kmod.vermagic(ko, runner)
        if not magic[ko.name].startswith(release + " "):
            raise BuildError(f"out-of-tree set {oot.name}: {ko.name} has vermagic "
                             f"'{magic[ko.name]}', not the target kernel's release {release}")
    record = {"name": oot.name, **_donor_input(oot.donor, files),
              "kbuild": sha256_file(oot.kbuild),
              "target": {"version": info.version.full, "family": info.family},
              "patches": [{"name": r.name, "fix": r.fix, "status": r.status.value,
                           "commit": r.commit} for r in report.results] if report else [],
              "modules": {ko.name: {"vermagic": magic[ko.name]} for ko in modules},
              "make": cmd}
    return BuiltSet(oot.name, directory, modules, report, record)
