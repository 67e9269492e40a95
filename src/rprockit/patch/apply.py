"""Apply a series atomically with ``git am --3way``, one commit per patch.

Atomicity: the start commit (and branch) is recorded in
``.git/rprockit-patch-state.json`` before the first ``git am``.  Any failure,
``KeyboardInterrupt`` included, runs ``git am --abort`` and
``git reset --hard <start>`` (the tree was checked clean before starting),
then removes the state file.  If the process dies before that, the next run
finds the state file and does the same recovery first.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..runner import Runner
from ..errors import DirtyTreeError
from .classify import classify_on, family_warnings
from .errors import PatchApplyError, TreeStateError
from .report import PatchReport, PatchResult, Status
from .series import Series
from .tree import (
    COMMITTER,
    REPORT_FILE,
    STATE_FILE,
    Git,
    detect_family,
    read_state,
    write_json_atomic,
    write_text_atomic,
)


class _AmFailed(Exception):
    def __init__(self, result: PatchResult, output: str):
        super().__init__(result.name)
        self.result, self.output = result, output


def _symbolic_head(git: Git) -> str | None:
    proc = git("symbolic-ref", "-q", "HEAD", check=False)
    return proc.stdout.strip() or None


def restore(git: Git, start: str) -> None:
    """Abort a pending ``git am`` and hard-reset the tree to ``start``.

    Only call this for a tree that was clean at ``start`` (checked by the caller).

    Raises:
        TreeStateError: HEAD is not ``start`` afterwards.
    """
    aborted = not git.am_in_progress() or \
        git("am", "--abort", check=False, env=COMMITTER).returncode == 0
    if not aborted:
        git("am", "--quit", check=False)
    git("reset", "-q", "--hard", start, env=COMMITTER)
    if git.head() != start or git.dirty():
        raise TreeStateError(git.tree, f"could not restore it to {start}",
                             f"inspect it and run 'git reset --hard {start}' yourself")


def recover(git: Git) -> str | None:
    """Clean up after an interrupted run (state file left in ``.git``).

    Returns:
        The start commit the tree was put back on, or None if nothing to do.

    Raises:
        TreeStateError: a ``git am`` session exists that this tool did not start,
            or the interrupted run was on another branch.
    """
    state = read_state(git)
    state_path = git.git_dir() / STATE_FILE
    if state is None:
        if git.am_in_progress():
            raise TreeStateError(git.tree, "a 'git am' session is in progress "
                                 f"({git.git_dir() / 'rebase-apply'}) that rprockit did not start",
                                 "finish it with 'git am --continue' or drop it with "
                                 "'git am --abort', then run again")
        return None
    start: str = state.get("start") or ""
    ok = bool(start) and state.get("clean") is True and \
        git("cat-file", "-e", f"{start}^{{commit}}", check=False).returncode == 0
    if not ok:
        raise TreeStateError(git.tree, f"{state_path} is unreadable or names no valid start "
                             "commit", "check the tree by hand, then delete that file")
    if _symbolic_head(git) != state.get("branch"):
        raise TreeStateError(git.tree, f"an interrupted patch run started on "
                             f"{state.get('branch') or 'a detached HEAD'} at {start}, but HEAD is "
                             f"now {_symbolic_head(git) or 'detached'}",
                             f"check out {state.get('branch') or start} and run again, or "
                             f"delete {state_path} to keep the tree as it is")
    restore(git, str(start))
    state_path.unlink(missing_ok=True)
    return start


def _check_tree(git: Git) -> None:
    other = git.other_operation()
    if other:
        raise TreeStateError(git.tree, f"a {other} is in progress",
                             f"finish or abort the {other} first")
    dirty = git.dirty()
    if dirty:
        raise DirtyTreeError(git.tree, dirty)


def _write_report(report: PatchReport, git: Git, report_dir: Path | None) -> None:
    if report_dir is None:
        json_path = git.git_dir() / REPORT_FILE
        txt_path = git.git_dir() / "rprockit-patch-report.txt"
    else:
        json_path, txt_path = Path(report_dir) / "patch-report.json", \
            Path(report_dir) / "patch-report.txt"
    write_json_atomic(json_path, report.to_dict())
    write_text_atomic(txt_path, report.render())


def _first_failure(report: PatchReport, series: Series) -> PatchApplyError:
    r = next(r for r in report.results if r.failed)
    problem = "is corrupt" if r.status is Status.CORRUPT else f"conflicts: {r.detail}"
    fix = ("regenerate it with git format-patch" if r.status is Status.CORRUPT else
           "refresh the patch for this tree (or add a variant for its family in meta.yaml); "
           "the tree was not changed")
    report.error = f"{r.name}: {problem}"
    return PatchApplyError(r.name, report.tree, r.entry, problem, r.output, fix, report)


def _am(git: Git, series: Series, report: PatchReport) -> None:
    paths = {p.name: p.path for p in series}
    for r in report.results:
        if not r.status.to_apply:
            continue
        proc = git("am", "--3way", "--committer-date-is-author-date", *r.am_options,
                   paths[r.name], check=False, env=COMMITTER)
        if proc.returncode != 0:
            raise _AmFailed(r, proc.stdout + proc.stderr)
        r.commit = git.head()
        if r.status is Status.APPLIES:
            r.status, r.method = Status.APPLIED, "git-am"


def _apply(git: Git, series: Series, report: PatchReport) -> None:
    """Run git am for the report's patches; restore on any failure."""
    state_path = git.git_dir() / STATE_FILE
    write_json_atomic(state_path, {
        "start": report.start, "branch": _symbolic_head(git), "clean": True,
        "series": str(series.directory), "fingerprint": series.fingerprint(),
        "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    try:
        _am(git, series, report)
    except BaseException as e:
        restore(git, report.start)
        state_path.unlink(missing_ok=True)
        report.restored, report.end = True, report.start
        for r in report.results:
            r.commit = None
            if r.status is Status.APPLIED:
                r.status, r.method = Status.APPLIES, "strict"
        if isinstance(e, _AmFailed):
            e.result.status, e.result.method, e.result.output = Status.CONFLICT, "git-am", e.output
            e.result.detail = "git am --3way failed: " + (e.output.strip().splitlines()
                                                          or ["?"])[-1]
        report.error = f"{type(e).__name__}: {e}" if not isinstance(e, _AmFailed) else \
            f"{e.result.name}: {e.result.detail}"
        raise
    state_path.unlink(missing_ok=True)
    report.end = git.head()


def apply_series(tree: Path, series: Series, family: str | None = None,
                 runner: Runner | None = None, check: bool = False,
                 report_dir: Path | None = None) -> PatchReport:
    """Classify, then apply ``series`` to ``tree``, one commit per patch (``git am --3way``).

    One variant per fix is applied: the one the classification chose
    (:mod:`rprockit.patch.classify`).  Fixes classified already-present or
    not-applicable are skipped, so a
    re-run on a patched tree is a no-op.  Conflicting or corrupt patches fail
    the whole series before anything is applied; a ``git am`` failure or an
    interrupt puts the tree back on the start commit.  Commits get the
    patch's author and date, committer ``rprockit <rprockit@localhost>`` and
    committer date = author date, so the end commit is reproducible.

    Args:
        tree: kernel git work tree (must be clean unless ``check``).
        series: from :func:`~rprockit.patch.series.load_series`.
        family: family to order the fix variants by; detected from the tree
            when None (:func:`~rprockit.kernel_tree.detect_family`).
        runner: command runner (default :class:`~rprockit.runner.Runner`).
        check: classify only (dry run); never raises for conflicts.
        report_dir: where ``patch-report.json`` and ``patch-report.txt`` go;
            default ``<git dir>/rprockit-patch-report.{json,txt}`` (a dry run
            without ``report_dir`` writes none: it never writes to the tree).

    Returns:
        The :class:`PatchReport` (``start``/``end`` commits, per-patch status).

    Raises:
        PatchApplyError: a patch conflicts, is corrupt, or ``git am`` failed
            (``.report`` holds the report; the tree is on the start commit).
        TreeStateError: dirty tree, foreign git operation in progress, or an
            interrupted run that cannot be recovered safely.
        KeyboardInterrupt: re-raised after restoring the tree.
    """
    tree = Path(tree).resolve()
    git = Git(tree, runner or Runner())
    # a dry run never writes to the tree: an interrupted run is reported, not undone
    recovered = recover(git) if not check else None
    pending = check and read_state(git) is not None
    info = detect_family(tree, family)
    if not check:
        _check_tree(git)
    head = git.head()
    report = PatchReport(tree, info.family, info.version.short, series.directory,
                         series.fingerprint(), "check" if check else "apply", head, head,
                         recovered=recovered,
                         warnings=list(series.warnings) + family_warnings(info))
    if recovered:
        report.warnings.append(f"recovered an interrupted run: tree reset to {recovered}")
    if pending:
        report.warnings.append(f"an interrupted patch run left {git.git_dir() / STATE_FILE}; "
                               "it is undone by the next run without --check")
    if check and git.dirty():
        report.warnings.append("tree has uncommitted changes; patches were checked against HEAD")
    report.results = classify_on(git, series, info)
    report.warnings += [f"{r.name}: needs rebase: {w}" for r in report.results
                        if r.status is Status.NEEDS_REBASE for w in r.warnings]
    try:
        if check:
            return report
        if report.failed:
            raise _first_failure(report, series)
        try:
            _apply(git, series, report)
        except _AmFailed as e:
            raise PatchApplyError(e.result.name, tree, e.result.entry, "failed in git am",
                                  e.output, "refresh the patch for this tree; the tree was "
                                  f"reset to {report.start}", report) from e
        return report
    finally:
        if report_dir is not None or not check:
            _write_report(report, git, report_dir)
