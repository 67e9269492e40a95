"""Facts of built kernel modules, read on this host with kmod's ``modinfo``."""

from __future__ import annotations

import re
from pathlib import Path

from .runner import Runner


def vermagic(ko: Path, runner: Runner | None = None) -> str:
    """The ``vermagic`` of a module (``modinfo -F vermagic``), blanks collapsed.

    The kernel writes it from ``VERMAGIC_STRING`` (include/linux/vermagic.h):
    ``<release> SMP mod_unload <arch flags>``.

    Returns:
        The vermagic, or ``""`` when the file has none (not a Kbuild module).

    Raises:
        ToolMissingError: modinfo is not installed (package kmod).
        CommandError: modinfo cannot read the file.
    """
    out = (runner or Runner()).run(["modinfo", "-F", "vermagic", "--", str(ko)]).stdout
    return re.sub(r"\s+", " ", out.strip())
