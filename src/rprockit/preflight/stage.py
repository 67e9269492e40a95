"""The preflight stage's contract: check the built firmware and board DTB.

Inputs: the manifest id, the SoC, the DTB checked and whether the target is
the emulated board.  Nothing to do when the profile builds no firmware.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..files import write_json_atomic
from ..manifest import Manifest
from ..stage import Outcome, Stage, StageContext
from ..target import is_emulated
from . import check_firmware


def _dtb(ctx: StageContext, man: Manifest) -> Path | None:
    """The DTB the target boots (its ``board_dtb`` setting), else the board DTB, else the
    build's first DTB (by name), else None.

    Raises:
        UserError: the target names a DTB the build did not make.
    """
    if ctx.target_env is not None:
        from ..verify.stage import board_dtb

        named = board_dtb(ctx, man)
        if named is not None:
            return named
    return man.board_dtb(ctx.profile.board_dts) or next(iter(man.dtbs), None)


def not_applicable(ctx: StageContext) -> str | None:
    """Why there is nothing to check: the profile builds no firmware (or names no SoC).

    Raises:
        UserError: no build yet.
    """
    man = Manifest.load(ctx.ws.artifacts)
    if not man.firmware_name or not ctx.profile.firmware_soc:
        return "no firmware in this profile"
    return None


def inputs(ctx: StageContext) -> tuple:
    """Manifest id, SoC, the DTB checked, emulated target or not."""
    man = Manifest.load(ctx.ws.artifacts)
    return ("preflight", man.id, ctx.profile.firmware_soc, str(_dtb(ctx, man)),
            is_emulated(ctx.target_env))


def _oot_dirs(ctx: StageContext) -> list[Path]:
    """The build stage's out-of-tree module directories (``<ws>/oot/<set>/``), in the
    module set's order."""
    mods = ctx.profile.modules
    sets = mods.out_of_tree if mods is not None else []
    return [d for d in (ctx.ws.oot_dir(s.name) for s in sets) if d.is_dir()]


def run(ctx: StageContext) -> Outcome:
    """Run the checks; write ``reports/preflight.json`` and show the table.

    Raises:
        UserError: a check failed (names the report).
    """
    man = Manifest.load(ctx.ws.artifacts)
    soc = ctx.profile.firmware_soc
    fw = man.firmware
    assert fw is not None and soc is not None  # not_applicable() said so
    report = check_firmware(fw, soc, dtb=_dtb(ctx, man), kernel_tree=ctx.ws.src,
                            emulated=is_emulated(ctx.target_env), runner=ctx.runner,
                            oot_dirs=_oot_dirs(ctx))
    out = ctx.ws.base / "reports" / "preflight.json"
    write_json_atomic(out, report.to_dict())
    ctx.say(report.render())
    if report.failed:
        raise UserError(f"pre-flight checks failed for {fw.name}; see the table above and "
                        f"{out}")
    counts = report.to_dict().get("counts") or {}
    summary = "firmware and device tree pass pre-flight" + (
        f" ({', '.join(f'{v} {k}' for k, v in counts.items())})" if counts else "")
    return Outcome(summary, state={"summary": summary}, data={})


STAGE = Stage("preflight", inputs=inputs, run=run, not_applicable=not_applicable)
