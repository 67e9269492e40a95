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


#: ``struct modversion_info`` (include/linux/module.h, Linux 6.1 line 36): an ``unsigned
#: long`` CRC and ``char name[64 - sizeof(unsigned long)]`` (MODULE_NAME_LEN,
#: include/linux/moduleparam.h line 21): 64 bytes per entry on 32- and 64-bit kernels.
MODVERSION_ENTRY = 64


def symbol_versions(ko: Path) -> dict[str, int]:
    """The CRC of every symbol a module imports (its ``__versions`` section).

    modpost writes the section for a kernel with ``CONFIG_MODVERSIONS``
    (scripts/mod/modpost.c ``add_versions()``); the kernel compares each entry
    with its own CRC at load (kernel/module/version.c ``check_version()``).

    Args:
        ko: a ``.ko`` file.

    Returns:
        ``{symbol: CRC}``; empty when the module has no ``__versions`` (built
        without CONFIG_MODVERSIONS).

    Raises:
        ArtifactError: the file is not an ELF object.
    """
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    from .errors import UserError

    try:
        with open(ko, "rb") as fh:
            elf = ELFFile(fh)
            sec = elf.get_section_by_name("__versions")
            if sec is None:
                return {}
            data = sec.data()
            word = 8 if elf.elfclass == 64 else 4
            little = elf.little_endian
    except ELFError as e:
        raise UserError(f"{ko}: not an ELF module ({e}); give a .ko built by kbuild") from e
    out = {}
    for at in range(0, len(data) - MODVERSION_ENTRY + 1, MODVERSION_ENTRY):
        entry = data[at:at + MODVERSION_ENTRY]
        name = entry[word:].split(b"\0", 1)[0].decode(errors="replace")
        if name:
            out[name] = int.from_bytes(entry[:word], "little" if little else "big")
    return out


def modinfo(ko: Path) -> dict[str, list[str]]:
    """The ``.modinfo`` section of a module, read with pyelftools (no kmod needed).

    The section is a sequence of NUL-terminated ``key=value`` strings, written
    by ``MODULE_INFO()`` (include/linux/moduleparam.h ``__MODULE_INFO``) and by
    modpost into ``<module>.mod.c`` (``vermagic``, ``depends``, one ``alias``
    per ``MODULE_DEVICE_TABLE`` entry, e.g. ``of:N*T*Cfsl,imx7d-cm4`` from
    scripts/mod/file2alias.c ``do_of_entry``).

    Args:
        ko: a kernel module (ELF relocatable object).

    Returns:
        ``{key: [values in section order]}``; empty when there is no ``.modinfo``.

    Raises:
        UnreadableFileError: ``ko`` is not a regular file of at most 64 MiB.
        ELFError: ``ko`` is not an ELF file.
    """
    import io

    from elftools.elf.elffile import ELFFile

    from .files import read_regular

    elf = ELFFile(io.BytesIO(read_regular(ko, 64 << 20, "kernel module")))
    sec = elf.get_section_by_name(".modinfo")
    out: dict[str, list[str]] = {}
    for item in (sec.data() if sec else b"").split(b"\0"):
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep:
            out.setdefault(key, []).append(value)
    return out
