"""The pipeline: fetch -> patch -> configure -> build -> preflight -> verify.

Every stage follows one contract (:class:`rprockit.stage.Stage`): it declares
its inputs and how to check its outputs, and ``run`` does the work.  This
module is the only code that fingerprints those inputs, checks that the
outputs still exist, skips a stage when both hold and records its state in
``<workspace>/<profile>/state/<stage>.json``.  ``invoke all`` is :func:`run`
over every stage; nothing else holds state.
"""

from __future__ import annotations

import time

from . import build as build_mod
from . import fetch as fetch_mod
from . import kconfig
from . import modbuild
from .errors import UserError
from .files import write_json_atomic
from .patch import stage as patch_stage
from .preflight import stage as preflight_stage
from .stage import Stage, StageContext, StageResult
from .verify import stage as verify_stage
from .workspace import fingerprint

__all__ = ["STAGES", "StageContext", "StageResult", "run", "run_modules_only", "run_stage",
           "stages_until"]

#: The stages in pipeline order, by name.
PIPELINE: tuple[Stage, ...] = (fetch_mod.STAGE, patch_stage.STAGE, kconfig.STAGE, build_mod.STAGE,
                               preflight_stage.STAGE, verify_stage.STAGE)
STAGES: tuple[str, ...] = tuple(s.name for s in PIPELINE)


def run_stage(stage: Stage, ctx: StageContext) -> StageResult:
    """Run one stage (and the helper stages it needs first), or skip it.

    A stage is skipped when it does not apply to the profile, or when the
    fingerprint of its inputs equals the recorded one, it is not forced and its
    outputs are still there.  Otherwise it runs and its state is recorded with
    the fingerprint.  A recorded state for these same inputs is cleared before
    the run (a forced or repaired run that fails must not look done); one
    recorded for other inputs stays until a run succeeds, so going back to
    those inputs after a failed attempt still skips.

    Returns:
        The stage's result (``skipped``, wall ``seconds``, ``summary``, ``data``).

    Raises:
        UserError: the stage's own errors (nothing is recorded then).
    """
    t0 = time.monotonic()
    for helper in stage.before:
        run_stage(helper, ctx)
    reason = stage.not_applicable(ctx)
    if reason is not None:
        return StageResult(stage.name, True, time.monotonic() - t0, reason)
    stage.precheck(ctx)
    parts = stage.inputs(ctx)
    fp = fingerprint(*parts) if parts is not None else None
    state = ctx.ws.load_state(stage.name)
    forced = stage.honours_force and ctx.force
    if fp is not None and state is not None and state.get("fingerprint") == fp \
            and not forced and stage.outputs_ok(ctx, state):
        return StageResult(stage.name, True, time.monotonic() - t0,
                           stage.skipped_summary(ctx, state), state)
    if state is not None and fp is not None and state.get("fingerprint") == fp:
        ctx.ws.clear_state(stage.name)
    out = stage.run(ctx)
    recorded = fingerprint(*out.inputs) if out.inputs is not None else fp
    if recorded is not None:
        ctx.ws.save_state(stage.name, recorded, **out.state)
    return StageResult(stage.name, False, time.monotonic() - t0, out.summary,
                       out.state if out.data is None else out.data)


def run(ctx: StageContext, stages: list[str] | tuple[str, ...] = STAGES,
        skip: tuple[str, ...] = ()) -> list[StageResult]:
    """Run ``stages`` in pipeline order, except ``skip``; report each on ``ctx.say``.

    The results also go to ``<workspace>/<profile>/reports/last-run.json``.

    Raises:
        UserError: an unknown stage name, or any stage's user error.
    """
    bad = [s for s in (*stages, *skip) if s not in STAGES]
    if bad:
        raise UserError(f"unknown stage(s) {', '.join(bad)}; stages are {', '.join(STAGES)}")
    results: list[StageResult] = []
    for stage in PIPELINE:
        if stage.name in stages and stage.name not in skip:
            _run_and_say(stage, ctx, results)
    _record_run(ctx, results)
    return results


def _run_and_say(stage: Stage, ctx: StageContext, results: list[StageResult]) -> None:
    """Run ``stage``, say how it went and append its result to ``results``."""
    res = run_stage(stage, ctx)
    ctx.say(f"[{res.stage}] {'up to date, skipped' if res.skipped else 'done'} in "
            f"{res.seconds:.1f} s: {res.summary}")
    results.append(res)


def _record_run(ctx: StageContext, results: list[StageResult]) -> None:
    """Write the run's results to ``reports/last-run.json``."""
    write_json_atomic(ctx.ws.base / "reports" / "last-run.json",
                      [{"stage": r.stage, "skipped": r.skipped, "seconds": round(r.seconds, 2),
                        "summary": r.summary} for r in results])


def run_modules_only(ctx: StageContext) -> list[StageResult]:
    """fetch, patch and configure (skipped when unchanged), then the modules-only build
    (:mod:`rprockit.modbuild`: modules_prepare once per tree and config, then only the
    module set) instead of the build stage.

    Returns:
        The results, the modules stage last (also in ``reports/last-run.json``).

    Raises:
        ImageRebuildNeeded: the config change is not module-only.
        UserError: any stage's user error.
    """
    results = run(ctx, stages_until("configure"))
    _run_and_say(modbuild.STAGE, ctx, results)
    _record_run(ctx, results)
    return results


def stages_until(last: str) -> tuple[str, ...]:
    """The stage names from the first up to ``last``, in order."""
    return STAGES[: STAGES.index(last) + 1]
