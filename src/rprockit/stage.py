"""The stage contract: what every pipeline stage declares and what it returns.

A stage module exposes one :class:`Stage`: its inputs (the parts of its
fingerprint), a test that its recorded outputs still exist, and
``run(ctx) -> Outcome``, the work itself.  Only :func:`rprockit.pipeline.run`
fingerprints, checks outputs, skips and records state
(``<workspace>/<profile>/state/<stage>.json``); a stage never reads its own
state.  A stage may read the state an *upstream* stage recorded (the patch
stage reads the fetch stage's baseline commit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ccache import CcacheSettings
from .profile import Profile
from .runner import Runner
from .workspace import Workspace


@dataclass
class StageContext:
    """What every stage gets.

    Attributes:
        profile: the validated profile.
        ws: its workspace.
        runner: runs every external command.
        say: one-line messages for the user.
        progress: per-line progress of long tools (make, pytest).
        target: a labgrid environment file given on the command line (else the profile's).
        cycles: verify's remoteproc reload cycles (else the profile's).
        force: rerun the stages that honour it (build, verify) even when unchanged.
        accept_new_host_key: SSH targets: record an unknown host key.
        mirror: fetch: a local git mirror replacing the profile's URL
            (:func:`rprockit.fetch.mirror_for`); None reads ``$RPROCKIT_GIT_MIRROR``.
        ccache: the compiler cache settings of the build stage (``rprockit.ccache``).
        base_config: configure: a board's config file replacing the profile's base
            (``--base-config``), or None.
        match_release: build: the running kernel's release (``uname -r``) to build
            for; the build then sets ``LOCALVERSION`` so that its release equals it
            (:func:`rprockit.running.localversion_for`), or refuses with the reason.
        quick: verify: the inner-loop subset of the suite (:data:`rprockit.verify.QUICK`).
        modules_only: verify/deploy: the modules-only build's outputs
            (``<ws>/modules``) instead of the full build's ``artifacts/``.
        transport: verify: an open SSH connection to the target (an
            :class:`rprockit.ssh.SSHTransport`) that the quick checks use instead of
            opening their own: the one the inner loop's deploy used; or None.
    """

    @property
    def manifest_dir(self) -> Path:
        """Where the manifest of the build to deploy or verify is."""
        return self.ws.base / "modules" if self.modules_only else self.ws.artifacts

    profile: Profile
    ws: Workspace
    runner: Runner
    say: Callable[[str], None] = print
    progress: Callable[[str], None] = lambda line: None
    target: Path | None = None
    cycles: int | None = None
    force: bool = False
    accept_new_host_key: bool = False
    mirror: str | None = None
    ccache: CcacheSettings = field(default_factory=CcacheSettings)
    base_config: Path | None = None
    match_release: str | None = None
    quick: bool = False
    modules_only: bool = False
    transport: Any = None

    @property
    def target_env(self) -> Path | None:
        """The target environment file: the command line's, else the profile's."""
        return self.target or self.profile.target


@dataclass(frozen=True)
class Outcome:
    """What a stage's ``run`` returns.

    Attributes:
        summary: one line for the user.
        state: what the pipeline records for this stage (next to the fingerprint).
        data: facts for the caller (:attr:`StageResult.data`); default ``state``.
        inputs: fingerprint parts the run discovered (a fetched ref's commit); replaces
            the stage's declared inputs in the record when set.
    """

    summary: str
    state: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | None = None
    inputs: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class StageResult:
    """One stage's result in a pipeline run.

    Attributes:
        stage: the stage name.
        skipped: True when it did not run (unchanged inputs, or it does not apply).
        seconds: wall time, seconds.
        summary: one line for the user.
        data: the run's facts, or the recorded state when skipped.
    """

    stage: str
    skipped: bool
    seconds: float
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


def _always(ctx: StageContext, state: dict[str, Any]) -> bool:
    return True


def _never(ctx: StageContext) -> str | None:
    return None


def _nothing(ctx: StageContext) -> None:
    return None


def _recorded_summary(ctx: StageContext, state: dict[str, Any]) -> str:
    return str(state.get("summary", ""))


@dataclass(frozen=True)
class Stage:
    """One stage's contract.

    Attributes:
        name: the stage name (``fetch``); also its state file's name.
        inputs: ``inputs(ctx)`` -> the fingerprint parts (JSON-able), or None when the
            inputs are only known by running (the stage then always runs).
        run: ``run(ctx)`` -> :class:`Outcome`; does the work unconditionally.
        outputs_ok: ``outputs_ok(ctx, state)`` -> True when what the last run made is
            still there and unchanged (the tree at the recorded commit, the .config with
            the recorded sha256).
        not_applicable: ``not_applicable(ctx)`` -> why the stage has nothing to do for
            this profile (no firmware, no target), or None.
        precheck: ``precheck(ctx)``, run before the skip decision; raises when the stage
            must not go on even unchanged (a dirty tree, a missing tool).
        skipped_summary: ``skipped_summary(ctx, state)`` -> the line shown when skipped.
        honours_force: rerun when :attr:`StageContext.force` is set.
        before: stages run (quietly, with the same contract) before this one, e.g. the
            M-core firmware before the kernel build.
        quiet: a helper stage: not reported on its own.
    """

    name: str
    inputs: Callable[[StageContext], tuple[Any, ...] | None]
    run: Callable[[StageContext], Outcome]
    outputs_ok: Callable[[StageContext, dict[str, Any]], bool] = _always
    not_applicable: Callable[[StageContext], str | None] = _never
    precheck: Callable[[StageContext], None] = _nothing
    skipped_summary: Callable[[StageContext, dict[str, Any]], str] = _recorded_summary
    honours_force: bool = False
    before: tuple[Stage, ...] = ()
    quiet: bool = False
