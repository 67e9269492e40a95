"""Facts about kernel architectures, read from ``src/rprockit/data/arch/<ARCH>.yaml``.

One file per ``ARCH`` (tuxmake keeps the same facts in ``arch/*.ini``): the
source directory, Debian's cross toolchain prefix and packages, the Debian
architecture and multiarch triplet (for target userland packages) and the
boot image name.  Each file names its sources in a comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from .errors import UserError
from .runner import TOOL_PACKAGES
from .yamlfile import load


@dataclass(frozen=True)
class ArchInfo:
    """One architecture.

    Attributes:
        arch: the kernel's ``ARCH`` (``arm``).
        srcarch: ``arch/<srcarch>`` in the tree (the Makefile's ``SRCARCH``).
        cross_compile: Debian's cross toolchain prefix (``arm-linux-gnueabihf-``).
        compiler_package: Debian package of ``<cross_compile>gcc``.
        binutils_package: Debian package of ``<cross_compile>ld``.
        debian_arch: Debian architecture of target userland (``armhf``).
        multiarch: multiarch triplet (``arm-linux-gnueabihf``).
        image: the boot image target (``zImage``).
    """

    arch: str
    srcarch: str
    cross_compile: str
    compiler_package: str
    binutils_package: str
    debian_arch: str
    multiarch: str
    image: str


def _data_dir() -> Path:
    return Path(str(resources.files("rprockit.data").joinpath("arch")))


@cache
def known() -> tuple[str, ...]:
    """The architectures that have a data file, sorted."""
    return tuple(sorted(f.stem for f in _data_dir().glob("*.yaml")))


@cache
def arch_info(arch: str) -> ArchInfo:
    """The facts of ``arch``.

    Raises:
        UserError: no data file for ``arch`` (lists the known ones).
        InvalidFileError: the data file is invalid (a packaging bug).
    """
    if arch not in known():
        raise UserError(f"unknown ARCH '{arch}': rprockit knows {', '.join(known())} "
                        "(src/rprockit/data/arch/)")
    data = load(_data_dir() / f"{arch}.yaml", "arch").data
    return ArchInfo(**{k: v for k, v in data.items() if k != "format"})


def compiler_package(cross_compile: str) -> str | None:
    """Debian package that provides ``<cross_compile>gcc``, or None when unknown."""
    for name in known():
        info = arch_info(name)
        if info.cross_compile == cross_compile:
            return info.compiler_package
    return TOOL_PACKAGES.get(f"{cross_compile}gcc")
