"""Module files for deploy/verify tests that need no kernel build.

An ARM object with a ``.modinfo`` section is enough for ``modinfo`` (kmod) to
read a real vermagic: the tests compare it, they never load it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

CROSS = "arm-linux-gnueabihf-"


def arm_object(d: Path, symbol: str = "rprockit_test_init") -> Path:
    """Compile a one-function ARM object into ``d``."""
    (d / "m.c").write_text(f"int {symbol}(void) {{ return 0; }}\n")
    subprocess.run([CROSS + "gcc", "-c", "-o", str(d / "m.o"), str(d / "m.c")], check=True)
    return d / "m.o"


def make_ko(obj: Path, out: Path, release: str, version: str = "1") -> Path:
    """``obj`` plus the ``.modinfo`` of a module named like ``out`` built for ``release``."""
    name = out.name.removesuffix(".ko")
    info = out.with_suffix(".modinfo")
    info.write_bytes(f"version={version}\0license=GPL\0name={name}\0"
                     f"vermagic={release} SMP mod_unload ARMv7 p2v8 \0".encode())
    subprocess.run([CROSS + "objcopy", "--add-section", f".modinfo={info}",
                    "--set-section-flags", ".modinfo=alloc,readonly", str(obj), str(out)],
                   check=True)
    return out


def add_versions(ko: Path, versions: dict[str, int], out: Path | None = None) -> Path:
    """``ko`` plus a ``__versions`` section as modpost writes it with CONFIG_MODVERSIONS
    (scripts/mod/modpost.c ``add_versions()``: ``struct modversion_info`` of
    include/linux/module.h, a 32-bit little-endian CRC and a 60-byte name on ARM)."""
    out = out or ko
    blob = b"".join(crc.to_bytes(4, "little") + name.encode().ljust(60, b"\0")
                    for name, crc in versions.items())
    sec = ko.with_suffix(".versions")
    sec.write_bytes(blob)
    subprocess.run([CROSS + "objcopy", "--add-section", f"__versions={sec}",
                    "--set-section-flags", "__versions=alloc,readonly", str(ko), str(out)],
                   check=True)
    return out
