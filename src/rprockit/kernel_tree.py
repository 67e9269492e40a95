"""What a kernel source tree is: its version (top-level Makefile) and its family.

The one reader of kernel tree identity; the patch stage, the Kconfig stage and
the pre-flight checks all ask here.

* version: the ``VERSION``, ``PATCHLEVEL``, ``SUBLEVEL`` and ``EXTRAVERSION``
  lines of ``<tree>/Makefile`` (every kernel since 1.0 has them at the top);
* family: ``<vendor>-<VERSION>.<PATCHLEVEL>`` when the tree holds one of a
  vendor's marker files (``data/kernel-families.yaml``: NXP linux-imx ships
  ``drivers/rpmsg/imx_rpmsg.c`` and ``include/linux/imx_rpmsg.h``, which no
  mainline release has), else ``mainline``.  Forks of a vendor line (Toradex,
  Variscite, TechNexion) carry the same files and get the same family.

A family is only a hint: the patch stage uses it to order the variants of a
fix, never to decide whether a fix applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from .errors import UserError

MAINLINE = "mainline"
_FAMILY = re.compile(r"^(?P<vendor>[a-z][a-z0-9]*)-(?P<major>\d+)\.(?P<minor>\d+)$")


class NotAKernelTreeError(UserError):
    """The directory is not the top of a Linux source tree.

    Attributes:
        tree: the directory.
        problem: what is missing.
        unreadable: True when there is no readable Makefile at all (False: a
            Makefile without the version lines).
    """

    def __init__(self, tree: Path, problem: str, unreadable: bool = False):
        self.tree = Path(tree)
        self.problem = problem
        self.unreadable = unreadable
        super().__init__(f"{tree} is not a kernel source tree: {problem}; pass the top "
                         "directory of a Linux source tree (the one whose Makefile starts "
                         "with VERSION = ...)")


@dataclass(frozen=True)
class KernelVersion:
    """The version lines of a top-level kernel Makefile.

    Attributes:
        version: ``VERSION`` (e.g. 5).
        patchlevel: ``PATCHLEVEL`` (e.g. 15).
        sublevel: ``SUBLEVEL`` (e.g. 71; 0 when empty).
        extraversion: ``EXTRAVERSION`` as written (e.g. ``"-rc1"``, often ``""``).
    """

    version: int
    patchlevel: int
    sublevel: int = 0
    extraversion: str = ""

    @property
    def short(self) -> str:
        """``"VERSION.PATCHLEVEL"``, e.g. ``"5.15"``."""
        return f"{self.version}.{self.patchlevel}"

    @property
    def full(self) -> str:
        """``"VERSION.PATCHLEVEL.SUBLEVEL<EXTRAVERSION>"``, e.g. ``"5.15.71"``."""
        return f"{self.short}.{self.sublevel}{self.extraversion}"

    @property
    def triple(self) -> tuple[int, int, int]:
        """``(VERSION, PATCHLEVEL, SUBLEVEL)``."""
        return self.version, self.patchlevel, self.sublevel


@dataclass(frozen=True)
class TreeFamily:
    """The family of a tree and how it was found.

    Attributes:
        version: the :class:`KernelVersion`.
        family: ``"nxp-5.15"``, ``"mainline"``, ... (or the override given).
        vendor: ``"nxp"`` or None (from the marker files, even with an override).
        marker: the vendor marker file found, or None.
        detected: the family detection gave (equal to ``family`` without override).
    """

    version: KernelVersion
    family: str
    vendor: str | None = None
    marker: str | None = None
    detected: str = MAINLINE


def read_version(tree: Path) -> KernelVersion:
    """Read the version lines of ``<tree>/Makefile``.

    Args:
        tree: top of a kernel source tree.

    Returns:
        The :class:`KernelVersion`.

    Raises:
        NotAKernelTreeError: no readable Makefile, or no numeric VERSION and
            PATCHLEVEL lines in it.
    """
    makefile = Path(tree) / "Makefile"
    try:
        # the version lines are the first lines of the file; 4 KiB is plenty
        with makefile.open(encoding="utf-8", errors="replace") as fh:
            text = fh.read(4096)
    except OSError as e:
        raise NotAKernelTreeError(tree, f"cannot read {makefile} ({e.strerror})",
                                  unreadable=True) from e
    vals: dict[str, str] = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}[ \t]*=[ \t]*(\S*)[ \t]*$", text, re.MULTILINE)
        vals[key] = m.group(1) if m else ""
    if not (vals["VERSION"].isdigit() and vals["PATCHLEVEL"].isdigit()):
        raise NotAKernelTreeError(tree, f"{makefile} has no numeric VERSION/PATCHLEVEL lines")
    sub = vals["SUBLEVEL"]
    return KernelVersion(int(vals["VERSION"]), int(vals["PATCHLEVEL"]),
                         int(sub) if sub.isdigit() else 0, vals["EXTRAVERSION"])


@lru_cache(maxsize=1)
def vendor_markers() -> dict[str, tuple[str, ...]]:
    """Vendor name -> marker files, from ``data/kernel-families.yaml``."""
    text = resources.files("rprockit").joinpath("data/kernel-families.yaml").read_text()
    data = yaml.safe_load(text)
    return {name: tuple(v["markers"]) for name, v in data["vendors"].items()}


def find_vendor(tree: Path) -> tuple[str | None, str | None]:
    """``(vendor, marker file)`` of the first vendor marker present in ``tree``, or Nones."""
    for vendor, markers in vendor_markers().items():
        for marker in markers:
            if (Path(tree) / marker).is_file():
                return vendor, marker
    return None, None


def detect_family(tree: Path, override: str | None = None) -> TreeFamily:
    """Detect the family of ``tree`` from its Makefile version and vendor marker files.

    Args:
        tree: top of a kernel source tree.
        override: a family given by the user; reported as ``family``, while
            ``detected`` keeps what the tree says.

    Returns:
        The :class:`TreeFamily`.

    Raises:
        NotAKernelTreeError: see :func:`read_version`.
    """
    version = read_version(tree)
    vendor, marker = find_vendor(tree)
    detected = f"{vendor}-{version.short}" if vendor else MAINLINE
    return TreeFamily(version, override or detected, vendor, marker, detected)


def parse_family(family: str) -> tuple[str, tuple[int, int] | None]:
    """``"nxp-5.15"`` -> ``("nxp", (5, 15))``; ``"mainline"`` -> ``("mainline", None)``."""
    m = _FAMILY.match(family)
    if not m:
        return family, None
    return m.group("vendor"), (int(m.group("major")), int(m.group("minor")))


def family_distance(tree_family: str, target: str, version: KernelVersion | None = None) -> tuple:
    """Sort key: how close a variant written for ``target`` is to a ``tree_family`` tree.

    Exact family first; then the same vendor, nearest version first; then
    mainline (nearest to the tree's own version is not known, so after the
    vendor's own lines); then other vendors.

    Args:
        tree_family: the tree's family (``"nxp-6.6"``).
        target: a family a variant is written for.
        version: the tree's version, used when ``tree_family`` carries none.

    Returns:
        A tuple that sorts nearer targets first.
    """
    if target == tree_family:
        return (0, 0)
    vendor, ver = parse_family(tree_family)
    tvendor, tver = parse_family(target)
    if ver is None and version is not None:
        ver = (version.version, version.patchlevel)
    def dist(a: tuple[int, int] | None, b: tuple[int, int] | None) -> int:
        if a is None or b is None:
            return 10_000
        return abs((a[0] * 100 + a[1]) - (b[0] * 100 + b[1]))
    if tvendor == vendor:
        return (1, dist(ver, tver))
    if target == MAINLINE:
        return (2, 0)
    return (3, dist(ver, tver))
