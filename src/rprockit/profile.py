"""Profiles: one YAML file describes one kernel build and its target.

A profile names the kernel source, ARCH/CROSS_COMPILE, the base config and
config fragments, the patch series, the module set, the board DTBs, the
M-core test firmware and the target (a labgrid environment file; the same
file serves deploy and verify).  Relative paths are resolved against the
directory of the file that names them.  See ``src/rprockit/schemas/profile.json``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import ProfileError
from .files import sha256_file as file_sha256
from .yamlfile import load_validated

__all__ = ["DEFAULT_PROFILE", "Donor", "ModuleSet", "OutOfTreeSet", "Profile", "Source",
           "expand_env", "file_sha256", "find_profile", "load_modules", "load_profile"]

#: Where the shipped profiles live, relative to the project root.
PROFILE_DIR = "kernel_configs/profiles"
DEFAULT_PROFILE = "imx7d-mainline-6.1"


@dataclass(frozen=True)
class Source:
    """Kernel source: exactly one of ``debian_package``, ``git_url`` or ``path``."""

    debian_package: str | None = None
    git_url: str | None = None
    git_ref: str | None = None
    shallow: bool = True
    path: Path | None = None
    family: str | None = None
    #: ``source.path`` as written; ``path`` is None while a ``$VAR`` in it is not set
    path_spec: str | None = None

    @property
    def kind(self) -> str:
        if self.debian_package:
            return "debian"
        return "git" if self.git_url else "path"


@dataclass(frozen=True)
class Donor:
    """Where the sources of an out-of-tree module set come from: exactly one of
    ``debian_package`` (``/usr/src/<package>.tar.xz``) or ``path`` (a kernel tree).

    Attributes:
        debian_package: ``linux-source-X.Y``.
        path: the tree as written (``$VAR`` not expanded yet: the variable is read
            at build time).
        version: the ``VERSION.PATCHLEVEL`` the donor's Makefile must have, or None.
    """

    debian_package: str | None = None
    path: str | None = None
    version: str | None = None

    def describe(self) -> str:
        """``linux-source-6.1`` or the path as written."""
        return self.debian_package or str(self.path)


@dataclass(frozen=True)
class OutOfTreeSet:
    """Driver sources copied from a donor tree and built with ``make M=``.

    Attributes:
        name: build directory name (``<workspace>/oot/<name>``).
        donor: where the sources come from.
        sources: donor files (relative to its top), copied to the same relative paths.
        kbuild: the set's ``Kbuild`` file.
        patches: series directory of the compat patches, or None.
        description: one line.
    """

    name: str
    donor: Donor
    sources: tuple[str, ...]
    kbuild: Path
    patches: Path | None = None
    description: str = ""


@dataclass(frozen=True)
class ModuleSet:
    """Which modules the pipeline builds, deploys and loads.

    Attributes:
        file: the module-set YAML.
        build_dirs: kernel directories holding the modules (e.g. ``drivers/remoteproc``).
        load_order: module names (without ``.ko``); unload is the reverse.
        rproc_driver: the remoteproc driver module (default ``imx_rproc``).
        out_of_tree: module sets built out of tree from donor sources.
    """

    file: Path
    build_dirs: tuple[str, ...]
    load_order: tuple[str, ...]
    rproc_driver: str = "imx_rproc"
    out_of_tree: tuple[OutOfTreeSet, ...] = ()


@dataclass(frozen=True)
class Profile:
    """A validated, immutable profile.  Paths are absolute."""

    file: Path
    name: str
    source: Source
    arch: str
    cross_compile: str
    config_base: str
    fragments: tuple[Path, ...]
    patches: tuple[Path, ...]
    modules: ModuleSet | None
    image: str
    dtbs: tuple[str, ...]
    board_dts: tuple[Path, ...]
    firmware_src: Path | None
    firmware_soc: str | None
    firmware_name: str
    target: Path | None
    verify_cycles: int = 3
    boot: bool = True
    jobs: int | None = None
    description: str = ""
    #: per series directory (``str(path)``): ``{fix id: why it is not applied}``
    patch_skip: dict[str, dict[str, str]] = field(default_factory=dict)
    lines: dict = field(default_factory=dict, compare=False, repr=False)

    def fingerprint_data(self) -> dict:
        """Plain JSON-able view (for fingerprints and manifests)."""
        d = asdict(self)
        d.pop("lines")
        return json.loads(json.dumps(d, default=str))

    def line_of(self, *keypath) -> int | None:
        return self.lines.get(tuple(keypath))


def _resolve(base: Path, p: str) -> Path:
    return (base / Path(p).expanduser()).resolve()


def expand_env(value: str) -> tuple[str, list[str]]:
    """Expand ``$VAR`` and ``${VAR}`` in a path from the environment.

    Returns:
        The expanded string and the names of the variables that are not set
        (left as they were).
    """
    missing = [m.group(1) or m.group(2) for m in _ENV_REF.finditer(value)
               if (m.group(1) or m.group(2)) not in os.environ]
    return os.path.expandvars(value), missing


_ENV_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _source_path(base: Path, value: str) -> Path | None:
    """``source.path`` resolved, or None while an environment variable in it is not set
    (the fetch stage says which; loading the profile does not need the tree)."""
    expanded, missing = expand_env(value)
    return None if missing else _resolve(base, expanded)


def load_modules(path: Path) -> ModuleSet:
    """Load and validate a module-set file (``src/rprockit/schemas/modules.json``).

    Raises:
        ProfileError: with file, key and line of each problem.
    """
    data, lines = load_validated(path, "modules")
    base = Path(path).resolve().parent
    problems: list[tuple[str, int | None, str]] = []

    def existing(key: tuple, value: str, kind: str) -> Path:
        p = _resolve(base, value)
        if not (p.is_file() if kind == "file" else p.is_dir()):
            problems.append((".".join(map(str, key)), lines.get(key),
                             f"{kind} {value} not found (resolved to {p})"))
        return p

    sets = []
    for i, o in enumerate(data.get("out_of_tree", [])):
        for j, rel in enumerate(o["sources"]):
            if ".." in Path(rel).parts:
                problems.append((f"out_of_tree.{i}.sources.{j}", lines.get(
                    ("out_of_tree", i, "sources", j)), f"{rel}: give a path inside the donor "
                    "tree, without '..'"))
        d = o["donor"]
        sets.append(OutOfTreeSet(
            name=o["name"], donor=Donor(d.get("debian_package"), d.get("path"), d.get("version")),
            sources=tuple(o["sources"]),
            kbuild=existing(("out_of_tree", i, "kbuild"), o["kbuild"], "file"),
            patches=existing(("out_of_tree", i, "patches"), o["patches"], "directory")
            if "patches" in o else None,
            description=o.get("description", "")))
    names = [o.name for o in sets]
    if len(set(names)) != len(names):
        problems.append(("out_of_tree", lines.get(("out_of_tree",)),
                         f"two sets share a name: {', '.join(names)}; names are build directories"))
    if problems:
        raise ProfileError(str(path), problems)
    return ModuleSet(Path(path).resolve(), tuple(data["build_dirs"]), tuple(data["load_order"]),
                     data.get("rproc_driver", "imx_rproc"), tuple(sets))


def find_profile(name_or_path: str, root: Path) -> Path:
    """Map a profile name (``imx7d-mainline-6.1``) or a path to a file.

    Raises:
        ProfileError: neither exists; lists the shipped profiles.
    """
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p.resolve()
    if p.exists():
        kind = "a directory" if p.is_dir() else "not a regular file"
        raise ProfileError(str(name_or_path), [("", None, f"is {kind}; give a profile YAML "
                                                "file or a profile name")])
    cand = root / PROFILE_DIR / f"{name_or_path}.yaml"
    if cand.is_file():
        return cand.resolve()
    known = sorted(x.stem for x in (root / PROFILE_DIR).glob("*.yaml")
                   if not x.name.endswith(".lock.yaml"))
    raise ProfileError(str(name_or_path), [("", None, ("no such profile file or name; shipped "
                                            f"profiles: {', '.join(known) or 'none'}"))])


def load_profile(path: str | Path) -> Profile:
    """Load, validate and resolve a profile.

    Args:
        path: the profile YAML.

    Returns:
        The profile with absolute paths.

    Raises:
        ProfileError: every schema problem and every missing referenced file, each with
            its key path and line.
    """
    path = Path(path).resolve()
    data, lines = load_validated(path, "profile")
    base = path.parent
    problems: list[tuple[str, int | None, str]] = []

    def existing(key: tuple, value: str, kind: str = "file") -> Path:
        p = _resolve(base, value)
        ok = p.is_file() if kind == "file" else p.is_dir()
        if not ok:
            problems.append((".".join(map(str, key)), lines.get(key) or lines.get(key[:-1]),
                             f"{kind} {value} not found (resolved to {p})"))
        return p

    src = data["source"]
    git = src.get("git") or {}
    source = Source(
        debian_package=src.get("debian_package"),
        git_url=git.get("url"), git_ref=git.get("ref"), shallow=git.get("shallow", True),
        path=_source_path(base, src["path"]) if "path" in src else None,
        family=src.get("family"), path_spec=src.get("path"),
    )
    frags = tuple(existing(("config", "fragments", i), f)
                  for i, f in enumerate(data["config"].get("fragments", [])))
    entries = [e if isinstance(e, dict) else {"series": e} for e in data.get("patches", [])]
    patches = tuple(existing(("patches", i), e["series"], "directory")
                    for i, e in enumerate(entries))
    patch_skip = {str(d): dict(e["skip"]) for d, e in zip(patches, entries, strict=True)
                  if e.get("skip")}
    modules = None
    if "modules" in data:
        mpath = existing(("modules",), data["modules"])
        if mpath.is_file():
            modules = load_modules(mpath)
    build = data["build"]
    board_dts = tuple(existing(("build", "board_dts", i), d)
                      for i, d in enumerate(build.get("board_dts", [])))
    fw = data.get("firmware") or {}
    fw_src = existing(("firmware", "source"), fw["source"], "directory") if fw else None
    target = existing(("target",), data["target"]) if "target" in data else None
    config_base = data["config"]["base"]
    if "/" in config_base:  # a board's config file, not allnoconfig or a defconfig name
        config_base = str(existing(("config", "base"), config_base))
    if problems:
        raise ProfileError(str(path), problems)
    verify = data.get("verify", {})
    return Profile(
        file=path, name=data["name"], source=source, arch=data["arch"],
        cross_compile=data["cross_compile"], config_base=config_base,
        fragments=frags, patches=patches, modules=modules, image=build["image"],
        dtbs=tuple(build.get("dtbs", [])), board_dts=board_dts, firmware_src=fw_src,
        firmware_soc=fw.get("soc"), firmware_name=fw.get("name", "rproc-test.elf"),
        target=target, verify_cycles=verify.get("cycles", 3), boot=verify.get("boot", True),
        jobs=build.get("jobs"), description=data.get("description", ""),
        patch_skip=patch_skip, lines=lines,
    )
