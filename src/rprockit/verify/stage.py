"""The verify stage's contract: run the on-target suite against the profile's target.

Inputs: the manifest id, the target environment file (path and sha256), the
reload cycles and the suite's sources.  A verify run is recorded only when it
passed.  For the emulated board (:func:`rprockit.target.is_emulated`) the stage first
prepares what the board boots: the initramfs with the built modules and
firmware next to the kernel image and the board DTB.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import UserError
from ..files import sha256_file
from ..git import Git
from ..el3boot import STANDIN_FIRMWARE, boot_dtb, boot_dtb_name, build_monitor, build_standin
from ..initramfs import make_initramfs
from ..manifest import Manifest
from ..place import acquired_env
from ..stage import Outcome, Stage, StageContext
from ..target import load_target
from . import QUICK, SUITE, VerifyResult, run_facts, run_verify
from .facts import Facts


#: The EL3 monitor's sources (targets with ``emulated_boot: el3-monitor``).
MONITOR_SRC = Path(__file__).resolve().parents[3] / "firmware" / "el3-monitor"
#: The stand-in remote core's sources (targets with ``standin_remote: true``).
STANDIN_SRC = Path(__file__).resolve().parents[3] / "firmware" / "standin-remote"


class VerifyFailed(UserError):
    """A required on-target check failed; lists each with its first message line.

    Attributes:
        result: the :class:`~rprockit.verify.VerifyResult`.
    """

    def __init__(self, res: VerifyResult):
        self.result = res
        failed = [c for c in res.summary["checks"] if c["outcome"] in ("failed", "error")]
        lines = [f"  {c['check']}: {c['message'].splitlines()[0] if c['message'] else ''}"
                 for c in failed]
        super().__init__("verify failed:\n" + "\n".join(lines)
                         + f"\nFull results: {res.results_dir}/results.json, log: {res.log}")


def _env(ctx: StageContext) -> Path:
    env = ctx.target_env
    assert env is not None  # not_applicable() said so
    return env


def _cycles(ctx: StageContext) -> int:
    return ctx.cycles or ctx.profile.verify_cycles


def not_applicable(ctx: StageContext) -> str | None:
    """No target, or a build-only profile without ``--target``."""
    if ctx.target_env is None:
        return "profile has no target"
    if not ctx.profile.boot and ctx.target is None:
        return "profile is build-only (verify.boot: false)"
    return None


def inputs(ctx: StageContext) -> tuple:
    """Manifest id, target file and its sha256, cycles, each suite file's sha256 (and
    the EL3 monitor's sources for a board that boots through it).

    Raises:
        UserError: no build yet.
    """
    env = _env(ctx)
    man = Manifest.load(ctx.manifest_dir)
    suite = sorted(f for f in SUITE.parent.rglob("*.py"))
    settings = load_target(env).settings
    if settings.emulated_boot == "el3-monitor":
        suite += sorted(f for f in MONITOR_SRC.iterdir() if f.is_file())
        suite += sorted(f for f in STANDIN_SRC.iterdir() if f.is_file())
    return ("verify", man.id, str(env), sha256_file(env), _cycles(ctx),
            [(f.name, sha256_file(f)) for f in suite], *(("quick",) if ctx.quick else ()))


def outputs_ok(ctx: StageContext, state: dict) -> bool:
    """The recorded run passed."""
    return bool(state.get("passed"))


def prepare_emulated_board(ctx: StageContext, man: Manifest) -> Path:
    """Build ``artifacts/initramfs.cpio`` for the emulated board: the built modules and
    firmware, and a userland, dated by the tree's HEAD commit (reproducible).

    Returns:
        The initramfs path.

    Raises:
        UserError: busybox cannot be fetched or built from its source package, or cpio
            fails.
    """
    out = ctx.ws.artifacts / "initramfs.cpio"
    firmware = [man.firmware] if man.firmware else []
    env = _env(ctx)
    settings = load_target(env).settings
    if settings.emulated_boot == "el3-monitor":
        # in every initramfs of the board, so both of its targets boot the same one
        ctx.say("[verify] stand-in remote core images " + ", ".join(STANDIN_FIRMWARE))
        for name in STANDIN_FIRMWARE:
            tag = name.removesuffix(".elf")[-1]
            firmware.append(build_standin(STANDIN_SRC, ctx.ws.artifacts / "firmware" / name,
                                          tag, ctx.runner))
    epoch = Git(ctx.ws.src, ctx.runner).commit_time()
    make_initramfs(ctx.profile.arch, man.kernel_release, list(man.modules), firmware, out,
                   epoch, ctx.runner)
    if settings.emulated_boot == "el3-monitor":
        dtb = board_dtb(ctx, man)
        if dtb is None:
            raise UserError(f"{env}: emulated_boot el3-monitor needs the profile's board DTS "
                            "(build.board_dts) to make boot.dtb")
        ctx.say(f"[verify] EL3 monitor and boot DTB ({dtb.name}) for the emulated board")
        build_monitor(MONITOR_SRC, ctx.ws.artifacts / "el3-monitor.elf", ctx.runner)
        boot_dtb(dtb, out, ctx.ws.artifacts / boot_dtb_name(settings.board_dtb))
    return out


def board_dtb(ctx: StageContext, man: Manifest) -> Path | None:
    """The built DTB the target boots: its ``board_dtb`` setting, else the manifest's.

    Raises:
        UserError: the target names a DTB the build did not make.
    """
    name = load_target(_env(ctx)).settings.board_dtb
    if name is None:
        return man.board_dtb(ctx.profile.board_dts)
    dtb = ctx.ws.artifacts / "dtbs" / name
    if not dtb.is_file():
        built = sorted(d.name for d in (ctx.ws.artifacts / "dtbs").glob("*.dtb"))
        raise UserError(f"{_env(ctx)}: board_dtb {name} was not built (built: "
                        f"{', '.join(built) or 'none'}); add its source to the profile's "
                        "build.board_dts")
    return dtb


def run(ctx: StageContext) -> Outcome:
    """Prepare the emulated board if the target is one, then run the suite.

    A target from a labgrid coordinator (``RemotePlace``) is acquired for the run
    and released after it, passed or not (:mod:`rprockit.place`).

    Raises:
        VerifyFailed: a required check failed.
        PlaceError: the target's place cannot be acquired.
        UserError: the target or the suite could not be started.
    """
    env = _env(ctx)
    man = Manifest.load(ctx.manifest_dir)
    cycles = _cycles(ctx)
    desc = load_target(env)
    if desc.emulated and desc.place is None and desc.kind == "qemu":
        prepare_emulated_board(ctx, man)  # verify boots it (a place's: the lab does)
    quick = ["-k", " or ".join(QUICK)] if ctx.quick else []
    ctx.say(f"[verify] target {env}, {cycles} reload cycles"
            + (f", quick checks ({', '.join(QUICK)})" if ctx.quick else ""))
    dtb = board_dtb(ctx, man)
    if dtb is None and (ctx.ws.artifacts / "manifest.json").is_file():
        dtb = Manifest.load(ctx.ws.artifacts).board_dtb(ctx.profile.board_dts)  # the image's
    results = ctx.ws.base / "verify-quick" if ctx.quick else ctx.ws.verify
    with acquired_env(env, ctx.runner, ctx.say):
        res = run_verify(env, man.path, results, ctx.ws.artifacts, cycles, ctx.runner,
                         ctx.progress, accept_new_host_key=ctx.accept_new_host_key,
                         dtb=dtb, extra_pytest_args=quick, in_process=ctx.quick,
                         transport=ctx.transport if ctx.quick else None)
    ctx.say(res.table)
    if not res.passed:
        raise VerifyFailed(res)
    c = res.summary["counts"]
    summary = (f"{c['passed']} passed, {c['skipped']} skipped; manifest {man.id}; "
               f"results in {results}")
    return Outcome(summary, state={"passed": True, "summary": summary}, data=res.summary)


def _skipped(ctx: StageContext, state: dict) -> str:
    return f"{state['summary']} (target and build unchanged)"


STAGE = Stage("verify", inputs=inputs, run=run, outputs_ok=outputs_ok,
              not_applicable=not_applicable, skipped_summary=_skipped, honours_force=True)
#: The inner loop's quick checks (``verify --quick``): the same stage with its own state
#: (``state/verify-quick.json``) and results (``<ws>/verify-quick/``), so a quick run
#: never stands for, or clears, the full suite's.
QUICK_STAGE = dataclasses.replace(STAGE, name="verify-quick")


def collect_facts(ctx: StageContext) -> Facts:
    """The target facts report alone (``verify --facts``): nothing on the target changes.

    Raises:
        UserError: no target (neither ``--target`` nor the profile's), or the target's
            ``board_dtb`` was not built.
    """
    env = ctx.target_env
    if env is None:
        raise UserError("verify --facts needs --target (the profile names none)")
    dtb = None
    if (ctx.ws.artifacts / "manifest.json").is_file():
        dtb = board_dtb(ctx, Manifest.load(ctx.ws.artifacts))
    else:
        built = (ctx.ws.artifacts / "dtbs" / f"{d.stem}.dtb" for d in ctx.profile.board_dts)
        dtb = next((d for d in built if d.is_file()), None)
    return run_facts(env, images=ctx.ws.artifacts, out_dir=ctx.ws.verify, dtb=dtb,
                     accept_new_host_key=ctx.accept_new_host_key)
