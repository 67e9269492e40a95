"""The patch stage's contract: apply the profile's series on the fetched baseline.

Inputs: the fetch stage's baseline commit, each series' content hash and the
tree family.  Output: the tree at the commit after the last applied patch.
A changed series is re-applied from the baseline commit (patches stack).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..files import sha256_file, write_json_atomic
from ..git import Git
from ..profile import Profile
from ..runner import Runner
from ..stage import Outcome, Stage, StageContext
from ..workspace import Workspace
from .apply import apply_all, apply_series, recover
from .errors import TreeStateError
from .report import PatchReport
from .series import Series, load_series


def baseline(ctx: StageContext) -> str:
    """The commit the fetch stage pinned (40 hex).

    Raises:
        UserError: the fetch stage has not run for this profile.
    """
    st = ctx.ws.load_state("fetch")
    if not st:
        raise UserError(f"no fetched tree for profile {ctx.profile.name}: "
                        "run the fetch stage first")
    return str(st["baseline"])


def _series(profile: Profile) -> list[Series]:
    """The profile's series, less the fixes it skips (``patches: [{series, skip}]``)."""
    out = []
    for d in profile.patches:
        series = load_series(d)
        skip = profile.patch_skip.get(str(d))
        out.append(series.without(skip, str(profile.file)) if skip else series)
    return out


def inputs(ctx: StageContext) -> tuple:
    """Baseline commit, each series' content hash, tree family.

    Raises:
        UserError: no fetched tree.
        SeriesFormatError: a series or its meta.yaml is invalid.
    """
    return ("patch", baseline(ctx), [s.fingerprint() for s in _series(ctx.profile)],
            ctx.profile.source.family)


def precheck(ctx: StageContext) -> None:
    """Recover a killed patch run (or refuse it), then refuse a tree with local changes.

    Raises:
        TreeStateError: an interrupted run that cannot be recovered safely.
        DirtyTreeError: the tree has local changes (never patched nor reset).
    """
    recover(ctx.ws.src, ctx.runner, ctx.say)
    Git(ctx.ws.src, ctx.runner).require_clean()


def outputs_ok(ctx: StageContext, state: dict) -> bool:
    """The tree's HEAD is still the commit the last run ended on."""
    return Git(ctx.ws.src, ctx.runner).head() == state.get("end")


def run(ctx: StageContext) -> Outcome:
    """Check out the baseline if needed, apply every series, report.

    Writes ``reports/<series>/patch-report.{json,txt}`` and ``reports/patch.json``.

    Raises:
        PatchApplyError: a patch conflicts or is corrupt (the tree is restored).
        TreeStateError: the tree cannot be patched as it is.
    """
    base = baseline(ctx)
    series_list = _series(ctx.profile)
    repo = Git(ctx.ws.src, ctx.runner)
    if repo.head() != base:
        # patches stack: a changed series is re-applied from the baseline commit
        ctx.say(f"[patch] series changed: back to baseline {base[:12]}")
        repo.checkout_detached(base)
    reports: list[dict] = []
    counts: dict[str, int] = {}
    # one transaction for every series; the family (detected from the fetched tree)
    # only orders fix variants
    for rep in apply_all(ctx.ws.src, series_list, None, ctx.runner,
                         [ctx.ws.base / "reports" / s.directory.name for s in series_list],
                         say=ctx.say):
        ctx.say(rep.render())
        reports.append(rep.to_dict())
        for r in rep.results:
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
    end = repo.head()
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no patches"
    write_json_atomic(ctx.ws.base / "reports" / "patch.json", reports)
    patches = [{"series": str(series.directory), "name": r["name"], "status": r["status"],
                "commit": r.get("commit"),
                "sha256": sha256_file(series.directory / r["name"])}
               for series, rep in zip(series_list, reports, strict=True)
               for r in rep.get("patches", [])]
    return Outcome(summary, state={"end": end, "summary": summary, "patches": patches},
                   data={"end": end})


STAGE = Stage("patch", inputs=inputs, run=run, outputs_ok=outputs_ok, precheck=precheck)


def check_series(profile: Profile, ws: Workspace, runner: Runner, tree: Path | None = None,
                 check: bool = True, say=lambda msg: None) -> list[PatchReport]:
    """Classify (``check``) or apply the profile's series on ``tree``, outside the pipeline.

    Args:
        profile: the profile whose series to use.
        ws: its workspace (reports go to ``reports/<series>/``).
        runner: runs git.
        tree: the kernel git tree (default: the workspace's).
        check: dry run: classify only, nothing is written to the tree.
        say: console messages (a recovery of an interrupted run is announced).

    Returns:
        One report per series, in profile order.

    Raises:
        SeriesFormatError: a series is invalid.
        TreeStateError: the tree cannot be patched as it is.
    """
    path = tree or ws.src
    _require_tree(path)
    series_list = _series(profile)
    dirs: list[Path | None] = [ws.base / "reports" / s.directory.name for s in series_list]
    # the family of the tree given, not the profile's (it only orders variants)
    if not check:
        return apply_all(path, series_list, None, runner, dirs, say)
    return [apply_series(path, series, None, runner, check=True, report_dir=d)
            for series, d in zip(series_list, dirs, strict=True)]


def _require_tree(path: Path) -> None:
    """Raises TreeStateError when ``path`` is missing or not a directory."""
    if not path.exists():
        raise TreeStateError(path, "no such directory", "give the top of a kernel git tree")
    if not path.is_dir():
        raise TreeStateError(path, "it is not a directory", "give the top of a kernel git tree")
