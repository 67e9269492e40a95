"""Apply series atomically with ``git am --3way``, one commit per patch.

Atomicity: one :class:`~rprockit.patch.txn.Transaction` spans every series of
a run.  It records in ``.git/rprockit-patch-state.json`` the process (pid and
start time), the start commit and branch, and each commit ``git am`` makes.
Any failure, ``KeyboardInterrupt`` included, in any series runs ``git am
--abort`` and ``git reset --hard <start>`` (the tree was checked clean before
starting), then removes the state file.  If the process dies before that,
the next run (``patch``, ``fetch`` or the pipeline) calls
:func:`~rprockit.patch.txn.recover`, which resets only a tree that is exactly
as the dead run left it, says so, and keeps a snapshot commit of what it
resets; anything else is refused and left alone.  A dry run (``check``)
writes nothing to the tree: no recovery, no report in ``.git``, no index
refresh.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from pathlib import Path

from ..errors import DirtyTreeError
from ..files import write_json_atomic, write_text_atomic
from ..runner import Runner
from .classify import classify_on, family_warnings
from .errors import PatchApplyError, TreeStateError
from .report import PatchReport, PatchResult, Status
from .series import Series
from .tree import (
    REPORT_FILE,
    STATE_FILE,
    Git,
    TreeInfo,
    detect_family,
)
from .txn import Transaction, read_state, recover, restore

__all__ = ["apply_all", "apply_series", "recover", "restore"]


class _AmFailed(Exception):
    def __init__(self, result: PatchResult, output: str, returncode: int):
        super().__init__(result.name)
        self.result, self.output, self.returncode = result, output, returncode


#: What git prints when it cannot write (a full disk shows as any of these).
_NO_SPACE = ("No space left on device", "Disk quota exceeded", "Out of diskspace",
             "write error", "couldn't write", "could not write", "unable to write")


def _free_bytes(path: Path) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 1 << 62
    return st.f_bavail * st.f_frsize


def _am_advice(e: _AmFailed, start: str, tree: Path) -> tuple[str, str]:
    """(problem, fix) for a failed ``git am``: the cause that is true for it."""
    back = f"the tree was reset to {start}"
    if e.returncode < 0:
        try:
            name = signal.Signals(-e.returncode).name
        except ValueError:
            name = f"signal {-e.returncode}"
        return (f"was interrupted: git am was killed by {name}",
                f"{back}; the patch is not at fault: find what killed git (the OOM killer "
                "shows in dmesg) and run again")
    if "Read-only file system" not in e.output and (
            any(m in e.output for m in _NO_SPACE) or _free_bytes(tree) < (256 << 10)):
        return ("could not be written: no space left on the device",
                f"{back}; free space on the file system of the tree (df -h) and run again")
    if "Read-only file system" in e.output:
        return ("could not be written: the tree is on a read-only file system",
                f"{back}; patch a writable clone, or use --check for a dry run")
    return ("failed in git am", f"refresh the patch for this tree; {back}")


def _check_tree(git: Git) -> None:
    lock = git.git_dir() / "index.lock"
    if lock.exists():
        raise TreeStateError(git.tree, f"{lock} exists: another git process is working in the "
                             "tree, or one crashed", "if no git process runs there, remove "
                             f"{lock}, then run again")
    other = git.other_operation()
    if other:
        raise TreeStateError(git.tree, f"a {other} is in progress",
                             f"finish or abort the {other} first")
    dirty = git.dirty()
    if dirty:
        raise DirtyTreeError(git.tree, dirty)


def _write_report(report: PatchReport, git: Git, report_dir: Path | None) -> None:
    if report_dir is None and report.mode == "check":
        return  # a dry run writes nothing into the tree
    if report_dir is None:
        json_path = git.git_dir() / REPORT_FILE
        txt_path = git.git_dir() / "rprockit-patch-report.txt"
    else:
        json_path, txt_path = Path(report_dir) / "patch-report.json", \
            Path(report_dir) / "patch-report.txt"
    write_json_atomic(json_path, report.to_dict(), sort_keys=False)
    write_text_atomic(txt_path, report.render())


def _first_failure(report: PatchReport, series: Series, start: str) -> PatchApplyError:
    r = next(r for r in report.results if r.failed)
    problem = "is corrupt" if r.status is Status.CORRUPT else f"conflicts: {r.detail}"
    kept = "the tree was not changed" if report.start == start else \
        f"the series before it were undone: the tree is back on {start}"
    fix = (f"regenerate it with git format-patch; {kept}" if r.status is Status.CORRUPT else
           "refresh the patch for this tree (or add a variant for its family in meta.yaml); "
           f"{kept}")
    report.error = f"{r.name}: {problem}"
    return PatchApplyError(r.name, report.tree, r.entry, problem, r.output, fix, report)


def _am(txn: Transaction, series: Series, report: PatchReport) -> None:
    paths = {p.name: p.path for p in series}
    for r in report.results:
        if not r.status.to_apply:
            continue
        proc = txn.am(paths[r.name], list(r.am_options))
        if proc.returncode != 0:
            raise _AmFailed(r, proc.stdout + proc.stderr, proc.returncode)
        r.commit = txn.git.head()
        if r.status is Status.APPLIES:
            r.status, r.method = Status.APPLIED, "git-am"


def _mark_restored(reports: list[PatchReport], start: str, e: BaseException) -> None:
    for report in reports:
        report.restored, report.end = True, start
        for r in report.results:
            r.commit = None
            if r.status is Status.APPLIED:
                r.status, r.method = Status.APPLIES, "strict"
        if report.error is None:
            report.error = f"{type(e).__name__}: {e}" if not isinstance(e, _AmFailed) else \
                f"{e.result.name}: {e.result.detail}"


def _new_report(git: Git, tree: Path, series: Series, info, check: bool,
                recovered: str | None) -> PatchReport:
    head = git.head()
    report = PatchReport(tree, info.family, info.version.short, series.directory,
                         series.fingerprint(), "check" if check else "apply", head, head,
                         recovered=recovered,
                         warnings=list(series.warnings) + family_warnings(info))
    if recovered:
        report.warnings.append(f"recovered an interrupted run: tree reset to {recovered}")
    report.results = classify_on(git, series, info)
    report.warnings += [f"{r.name}: needs rebase: {w}" for r in report.results
                        if r.status is Status.NEEDS_REBASE for w in r.warnings]
    return report


def _begin(git: Git, series_list: list[Series]) -> Transaction:
    try:
        return Transaction(git, [s.directory for s in series_list])
    except OSError as e:
        problem = "it is on a read-only file system" if e.errno == errno.EROFS else \
            f"cannot write {e.filename}: {e.strerror}"
        raise TreeStateError(git.tree, problem, "patch a writable clone (or free space), or "
                             "use --check for a dry run; nothing was changed") from e


def apply_all(tree: Path, series_list: list[Series], family: str | None = None,
              runner: Runner | None = None, report_dirs: list[Path | None] | None = None,
              say: Callable[[str], None] = lambda msg: None,
              tree_info: TreeInfo | None = None) -> list[PatchReport]:
    """Apply several series to ``tree`` as one transaction (all of them or none).

    Each series is classified on the tree as the series before it left it,
    then applied (``git am --3way``, one commit per patch).  A conflicting or
    corrupt patch, a ``git am`` failure or an interrupt in any series puts the
    tree back on the commit the run started from.

    Args:
        tree: kernel git work tree (must be clean).
        series_list: the series, in order.
        family: family to order the fix variants by (detected when None).
        runner: command runner.
        report_dirs: per series, where its reports go (None: ``.git``).
        say: console messages (a recovery of an interrupted run is announced).
        tree_info: version and family to classify by, for a tree without a kernel
            Makefile (the build directory of an out-of-tree module set takes the
            target kernel's); default: detected from ``tree``.

    Returns:
        One :class:`PatchReport` per series.

    Raises:
        PatchApplyError: a patch conflicts, is corrupt or ``git am`` failed
            (the tree is on the start commit of the run).
        TreeStateError: dirty tree, stale ``index.lock``, foreign git operation,
            read-only tree, or an interrupted run that cannot be recovered safely.
        KeyboardInterrupt: re-raised after restoring the tree.
    """
    tree = Path(tree).resolve()
    git = Git(tree, runner or Runner())
    dirs = list(report_dirs or [None] * len(series_list))
    recovered = recover(git, say=say)
    info = tree_info or detect_family(tree, family)
    _check_tree(git)
    txn = _begin(git, series_list)
    reports: list[PatchReport] = []
    try:
        for series in series_list:
            report = _new_report(git, tree, series, info, False, recovered)
            reports.append(report)
            if report.failed:
                raise _first_failure(report, series, txn.start)
            _am(txn, series, report)
            report.end = git.head()
    except BaseException as e:
        txn.rollback()
        if isinstance(e, _AmFailed):
            e.result.status, e.result.method, e.result.output = \
                Status.CONFLICT, "git-am", e.output
            e.result.detail = "git am --3way failed: " + (e.output.strip().splitlines()
                                                          or ["?"])[-1]
        _mark_restored(reports, txn.start, e)
        if isinstance(e, _AmFailed):
            problem, fix = _am_advice(e, txn.start, tree)
            raise PatchApplyError(e.result.name, tree, e.result.entry, problem, e.output, fix,
                                  reports[-1]) from e
        raise
    finally:
        for report, d in zip(reports, dirs, strict=False):
            _write_report(report, git, d)
    txn.commit()
    return reports


def apply_series(tree: Path, series: Series, family: str | None = None,
                 runner: Runner | None = None, check: bool = False,
                 report_dir: Path | None = None,
                 say: Callable[[str], None] = lambda msg: None) -> PatchReport:
    """Classify, then apply ``series`` to ``tree``, one commit per patch (``git am --3way``).

    One variant per fix is applied: the one the classification chose
    (:mod:`rprockit.patch.classify`).  Fixes classified already-present or
    not-applicable are skipped, so a re-run on a patched tree is a no-op.
    Conflicting or corrupt patches fail the whole series before anything is
    applied; a ``git am`` failure or an interrupt puts the tree back on the
    start commit (:func:`apply_all` with one series).  Commits get the
    patch's author and date, committer ``rprockit <rprockit@localhost>`` and
    committer date = author date, so the end commit is reproducible.

    Args:
        tree: kernel git work tree (must be clean unless ``check``).
        series: from :func:`~rprockit.patch.series.load_series`.
        family: family to order the fix variants by; detected from the tree
            when None (:func:`~rprockit.kernel_tree.detect_family`).
        runner: command runner (default :class:`~rprockit.runner.Runner`).
        check: classify only (dry run): nothing is written to the tree, and a
            tree left by an interrupted run is refused rather than recovered.
        report_dir: where ``patch-report.json`` and ``patch-report.txt`` go;
            default ``<git dir>/rprockit-patch-report.{json,txt}`` (a dry run
            without ``report_dir`` writes none: it never writes to the tree).
        say: console messages (a recovery is announced).

    Returns:
        The :class:`PatchReport` (``start``/``end`` commits, per-patch status).

    Raises:
        PatchApplyError: a patch conflicts, is corrupt, or ``git am`` failed
            (``.report`` holds the report; the tree is on the start commit).
        TreeStateError: dirty tree, foreign git operation in progress, or an
            interrupted run that cannot be recovered safely.
        KeyboardInterrupt: re-raised after restoring the tree.
    """
    if not check:
        return apply_all(tree, [series], family, runner, [report_dir], say)[0]
    tree = Path(tree).resolve()
    git = Git(tree, runner or Runner())
    # a dry run never writes to the tree: an interrupted run is reported, not undone
    pending = read_state(git) is not None
    info = detect_family(tree, family)
    report = _new_report(git, tree, series, info, True, None)
    if pending:
        report.warnings.append(f"an interrupted patch run left {git.git_dir() / STATE_FILE}; "
                               "it is undone by the next run without --check")
    if git.dirty(refresh=False):
        report.warnings.append("tree has uncommitted changes; patches were checked against HEAD")
    _write_report(report, git, report_dir)
    return report
