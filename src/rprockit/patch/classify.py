"""Classify each patch of a series against a tree, without touching it.

The series is simulated on a scratch index (``GIT_INDEX_FILE`` =
``.git/rprockit-scratch/index``, read from HEAD): each patch is checked
against the index as the patches before it left it, so a patch that builds
on an earlier one is judged correctly.  Neither the work tree nor the real
index is written.

Order of the checks, first that decides wins:

1. family not targeted                  -> not-applicable (``family``)
2. ``git apply --stat`` cannot parse it  -> corrupt
3. all ``present_if`` probes match        -> already-present (``probe``)
4. a ``requires`` probe fails             -> not-applicable (``requires``)
5. a file it modifies does not exist      -> not-applicable (``missing-file``)
6. ``git apply --check -R`` succeeds      -> already-present (``reverse``); the
   series is first reverse-applied from its last patch back on a second
   scratch index, so stacked patches are recognised on a patched tree
7. ``git apply --check`` succeeds         -> applies, or needs-rebase if a hunk
   needed an offset (``-v`` "Hunk #N succeeded at L (offset K lines)")
8. ``git apply --check --3way`` succeeds  -> needs-rebase (``3way``)
9. ``git apply --check -C1`` succeeds     -> needs-rebase (``fuzz``; ``git am -C1``)
10. otherwise                            -> conflict, naming the hunk and file.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..runner import Runner
from .diff import FileDiff, find_hunk, parse_patch
from .report import PatchReport, PatchResult, Status
from .series import PatchEntry, Series
from .tree import Git, detect_family

_OFFSET = re.compile(r"^Hunk #(\d+) succeeded at (\d+) \(offset (-?\d+) lines?\)", re.MULTILINE)
_FAILED_AT = re.compile(r"^error: patch failed: (.+):(\d+)$", re.MULTILINE)
_NOT_IN_INDEX = re.compile(r"^error: (.+): (does not exist in index|already exists in index|"
                           r"does not match index)$", re.MULTILINE)


@contextlib.contextmanager
def scratch_index(git: Git) -> Iterator[dict[str, str]]:
    """A throw-away index holding HEAD; yields the env that selects it."""
    tmp = Path(tempfile.mkdtemp(prefix="rprockit-scratch-", dir=git.git_dir()))
    env = {"GIT_INDEX_FILE": str(tmp / "index")}
    try:
        git("read-tree", "HEAD", env=env)
        yield env
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _offsets(output: str) -> list[str]:
    out, current = [], "?"
    for line in output.splitlines():
        m = re.match(r"Checking patch (.+)\.\.\.$", line)
        if m:
            current = m.group(1)
        m = _OFFSET.match(line)
        if m:
            out.append(f"hunk #{m.group(1)} of {current} at line {m.group(2)} "
                       f"(offset {m.group(3)} lines)")
    return out


def _conflict_detail(output: str, files: list[FileDiff]) -> str:
    m = _FAILED_AT.search(output)
    if m:
        path, line = m.group(1), int(m.group(2))
        hunk = find_hunk(files, path, line)
        if hunk:
            return f"hunk #{hunk.number} ({hunk.header}) of {path} does not apply"
        return f"hunk at line {line} of {path} does not apply"
    m = _NOT_IN_INDEX.search(output)
    if m:
        return f"{m.group(1)}: {m.group(2).replace('index', 'tree')}"
    last = output.strip().splitlines()
    return last[-1] if last else "git apply failed"


class _Classifier:
    """Runs the checks of one series on one tree (scratch index ``env``)."""

    def __init__(self, git: Git, series: Series, family: str, env: dict[str, str]):
        self.git, self.series, self.family, self.env = git, series, family, env
        self.present: set[str] = set()

    def apply_check(self, patch: Path, *opts: str):
        return self.git("apply", "--cached", "--check", "-v", *opts, patch,
                        check=False, env=self.env)

    def existing(self, paths: list[str]) -> set[str]:
        if not paths:
            return set()
        out = self.git("ls-files", "-z", "--", *paths, env=self.env).stdout
        return set(filter(None, out.split("\0")))

    def result(self, p: PatchEntry, status: Status, method: str, detail: str = "",
               **kw) -> PatchResult:
        return PatchResult(p.name, p.fix, self.series.entry(p), status, method, detail, **kw)

    def before_git(self, p: PatchEntry, files: list[FileDiff]) -> PatchResult | None:
        """Checks 1-5 (no git apply)."""
        tree = self.git.tree
        if self.family not in p.families:
            return self.result(p, Status.NOT_APPLICABLE, "family",
                               f"targets {', '.join(p.families)}; tree is {self.family}")
        stat = self.git("apply", "--stat", p.path, check=False)
        if stat.returncode != 0 or not files:
            return self.result(p, Status.CORRUPT, "git-apply",
                               "git apply cannot parse it: "
                               + (stat.stderr.strip().splitlines() or ["no diff"])[0],
                               output=stat.stderr)
        if p.present_if and all(pr.matches(tree) for pr in p.present_if):
            return self.result(p, Status.ALREADY_PRESENT, "probe",
                               "equivalent fix found: "
                               + "; ".join(pr.describe() for pr in p.present_if))
        for pr in p.requires:
            if not pr.matches(tree):
                return self.result(p, Status.NOT_APPLICABLE, "requires",
                                   f"code it changes is absent: {pr.describe()}")
        modified = [f.old_path for f in files if f.old_path]
        missing = sorted(set(modified) - self.existing(modified))
        if missing:
            return self.result(p, Status.NOT_APPLICABLE, "missing-file",
                               f"file(s) it changes do not exist: {', '.join(missing)}")
        return None

    def peel(self, env_back: dict[str, str]) -> set[str]:
        """Names of the patches whose effect is in the tree, found from the last one back.

        Each patch that reverse-applies is reverted on the ``env_back`` scratch
        index before the one before it is tried, so a fully applied series
        whose patches touch each other's context is still recognised.
        """
        present = set()
        for p in reversed(self.series.patches):
            if self.family not in p.families:
                continue
            proc = self.git("apply", "--cached", "-R", p.path, check=False, env=env_back)
            if proc.returncode == 0:
                present.add(p.name)
        return present

    def with_git(self, p: PatchEntry, files: list[FileDiff]) -> PatchResult:
        """Checks 6-10."""
        if p.name in self.present:
            return self.result(p, Status.ALREADY_PRESENT, "reverse",
                               "reverse-applies: already in the tree")
        if self.apply_check(p.path, "-R").returncode == 0:
            return self.result(p, Status.ALREADY_PRESENT, "reverse",
                               "reverse-applies: already in the tree")
        strict = self.apply_check(p.path)
        if strict.returncode == 0:
            offsets = _offsets(strict.stdout + strict.stderr)
            if offsets:
                return self.result(p, Status.NEEDS_REBASE, "offset",
                                   "applies with line offsets; refresh the patch",
                                   warnings=offsets)
            return self.result(p, Status.APPLIES, "strict", "applies cleanly")
        out = strict.stdout + strict.stderr
        detail = _conflict_detail(out, files)
        three = self.apply_check(p.path, "--3way")
        if three.returncode == 0 and "with conflicts" not in three.stdout + three.stderr:
            return self.result(p, Status.NEEDS_REBASE, "3way",
                               "applies only with a 3-way merge; refresh the patch",
                               warnings=[detail], output=out)
        fuzz = self.apply_check(p.path, "-C1")
        if fuzz.returncode == 0:
            return self.result(p, Status.NEEDS_REBASE, "fuzz",
                               "applies only with reduced context (-C1); refresh the patch",
                               warnings=[detail] + _offsets(fuzz.stdout + fuzz.stderr),
                               output=out, am_options=["-C1"])
        return self.result(p, Status.CONFLICT, "git-apply", detail, output=out)

    def stack(self, p: PatchEntry, r: PatchResult) -> None:
        """Apply ``p`` to the scratch index so the next patches see it."""
        opts = {"3way": ["--3way"], "fuzz": ["-C1"]}.get(r.method, [])
        proc = self.git("apply", "--cached", *opts, p.path, check=False, env=self.env)
        if proc.returncode != 0:
            r.status, r.method = Status.CONFLICT, "git-apply"
            r.detail = "applies alone but not on top of the previous patches: " \
                + _conflict_detail(proc.stderr, parse_patch(p.path.read_text(errors="replace")))
            r.output = proc.stderr

    def run(self, env_back: dict[str, str]) -> list[PatchResult]:
        self.present = self.peel(env_back)
        results = []
        for p in self.series:
            files = parse_patch(p.path.read_text(encoding="utf-8", errors="replace"))
            r = self.before_git(p, files) or self.with_git(p, files)
            if r.status.to_apply:
                self.stack(p, r)
            results.append(r)
        return results


def classify_on(git: Git, series: Series, family: str) -> list[PatchResult]:
    """Classify every patch of ``series`` for ``family`` on the HEAD of ``git.tree``.

    Returns:
        One :class:`PatchResult` per series entry, in series order.
    """
    with scratch_index(git) as env, scratch_index(git) as env_back:
        return _Classifier(git, series, family, env).run(env_back)


def classify(tree: Path, series: Series, family: str | None = None,
             runner: Runner | None = None) -> PatchReport:
    """Classify each patch of ``series`` against ``tree`` (dry run; nothing is written).

    Args:
        tree: kernel git work tree; patches are judged against its HEAD
            (probes read the work tree).
        series: from :func:`~rprockit.patch.series.load_series`.
        family: tree family from the profile; detected
            (:func:`~rprockit.patch.tree.detect_family`) when None.
        runner: the command runner (default :class:`~rprockit.runner.Runner`).

    Returns:
        A :class:`PatchReport` with ``mode="check"`` and ``start == end == HEAD``.

    Raises:
        TreeStateError: not a git work tree or not a kernel tree.
        ToolMissingError: git is not installed.
    """
    tree = Path(tree).resolve()
    git = Git(tree, runner or Runner())
    info = detect_family(tree, family)
    head = git.head()
    report = PatchReport(tree, info.family, info.version, series.directory,
                         series.fingerprint(), "check", head, head,
                         warnings=list(series.warnings))
    dirty = git.dirty()
    if dirty:
        report.warnings.append(f"tree has {len(dirty)} uncommitted change(s); patches were "
                               "checked against HEAD")
    report.results = classify_on(git, series, info.family)
    report.warnings += [f"{r.name}: {w}" for r in report.results
                        if r.status is Status.NEEDS_REBASE for w in r.warnings]
    return report
