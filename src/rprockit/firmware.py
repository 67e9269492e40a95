"""Build the test Cortex-M firmware (``firmware/rproc-test/``) with arm-none-eabi-gcc.

The image targets the i.MX7D Cortex-M4 under the mainline ``imx_rproc``
driver: everything is linked at M4 device address 0x1FE00000 (DDR code
alias, system address 0x8FE00000 through ``imx_rproc_att_imx7d`` in Linux
6.1 ``drivers/remoteproc/imx_rproc.c``), 1 MiB long.  The build is
reproducible: no timestamps, no build-id, source paths mapped with
``-ffile-prefix-map``, no debug info, and the output directory never
reaches the image.
"""

from __future__ import annotations

from pathlib import Path

from .files import sha256_file
from .runner import Runner, require_tool
from .stage import Outcome, Stage, StageContext

#: Cross compiler for the Cortex-M cores (Debian package gcc-arm-none-eabi).
CC = "arm-none-eabi-gcc"

#: Name of the firmware: ``<name>.c`` and ``<name>.ld`` in the source directory.
FIRMWARE_NAME = "rproc-test"

#: Compiler flags; ``-mcpu=cortex-m4`` matches the i.MX7D M4 (i.MX7D reference manual).
CFLAGS: tuple[str, ...] = (
    "-mcpu=cortex-m4", "-mthumb", "-Os", "-g0", "-std=c11",
    "-ffreestanding", "-fno-common", "-Wall", "-Wextra", "-Werror",
)

#: Linker flags: no C library, no start files, no build-id note.
LDFLAGS: tuple[str, ...] = ("-nostdlib", "-nostartfiles", "-Wl,--build-id=none")


def build_firmware(src_dir: Path, out_dir: Path, runner: Runner, name: str = FIRMWARE_NAME) -> Path:
    """Compile and link the firmware ``src_dir/<name>.c`` with ``src_dir/<name>.ld``.

    The object file and the ELF go to ``out_dir`` (created if needed).  Two
    builds of the same sources produce the same bytes whatever ``out_dir``.

    Args:
        src_dir: directory holding ``<name>.c``, ``<name>.ld`` and headers.
        out_dir: output directory.
        runner: runs the compiler.
        name: base name of the C file and linker script.

    Returns:
        Path of the linked ELF, ``out_dir/<name>.elf``.

    Raises:
        ToolMissingError: arm-none-eabi-gcc is not installed.
        FileNotFoundError: never; a missing source is reported by the compiler as CommandError.
        CommandError: the compiler or linker failed.
    """
    require_tool(CC, " (needed to build the Cortex-M test firmware)")
    src_dir = Path(src_dir).resolve()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    obj = out_dir / f"{name}.o"
    elf = out_dir / f"{name}.elf"
    runner.run([CC, *CFLAGS, f"-ffile-prefix-map={src_dir}=.", f"-ffile-prefix-map={out_dir}=.",
                "-c", f"{name}.c", "-o", str(obj)], cwd=src_dir)
    runner.run([CC, *CFLAGS, *LDFLAGS, "-T", f"{name}.ld", str(obj), "-o", str(elf)], cwd=src_dir)
    return elf


# --------------------------------------------------------------------------- stage contract

def _sources(ctx: StageContext) -> list[Path]:
    src = ctx.profile.firmware_src
    assert src is not None
    return sorted(f for f in src.rglob("*") if f.is_file())


def stage_inputs(ctx: StageContext) -> tuple:
    """Each source file's name and sha256, and the compiler's version line."""
    return ("firmware", [(f.name, sha256_file(f)) for f in _sources(ctx)],
            ctx.runner.first_line([CC, "--version"]))


def stage_outputs_ok(ctx: StageContext, state: dict) -> bool:
    """The recorded ELF still exists."""
    return Path(state["elf"]).is_file()


def stage_run(ctx: StageContext) -> Outcome:
    """Build the profile's firmware into ``O=/firmware/``.

    Raises:
        ToolMissingError, CommandError: see :func:`build_firmware`.
    """
    src = ctx.profile.firmware_src
    assert src is not None
    elf = build_firmware(src, ctx.ws.out / "firmware", ctx.runner)
    return Outcome(f"firmware {elf.name}", state={"elf": str(elf)})


def _no_firmware(ctx: StageContext) -> str | None:
    return None if ctx.profile.firmware_src else "profile has no firmware source"


def built_elf(ctx: StageContext) -> Path | None:
    """The ELF the firmware stage recorded, or None when the profile has no firmware."""
    if not ctx.profile.firmware_src:
        return None
    st = ctx.ws.load_state("firmware") or {}
    return Path(st["elf"]) if st.get("elf") else None


#: The M-core firmware: a helper stage the build stage runs first (its ELF is collected).
STAGE = Stage("firmware", inputs=stage_inputs, run=stage_run, outputs_ok=stage_outputs_ok,
              not_applicable=_no_firmware, quiet=True)
