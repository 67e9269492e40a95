"""Classify each fix of a series against a tree by its code, without touching the tree.

A fix (``meta.yaml`` ``fix:``) has one or more variants, each written for some
tree families.  The tree's family (:func:`rprockit.kernel_tree.detect_family`)
only orders the variants: the variant written for the family first, then the
same vendor's nearest line, then mainline, then the rest.  Every variant of
every fix is probed on every tree.

The trial runs in a temporary work tree: a ``git clone --shared
--no-checkout`` of the tree in a temporary directory whose index is read from
HEAD.  Patches are tried with ``git apply --cached`` on that index, and each
chosen variant is applied there so the next fix sees it.  Nothing is written
to the user's work tree, index or ``.git``.

For one fix, first that decides wins:

1. ``git apply --stat`` cannot parse a variant          -> corrupt
2. every ``present_if`` probe of a variant matches      -> already-present (``probe``)
3. a variant reverse-applies (on the tree, or after the
   series was peeled back from its last patch)           -> already-present (``reverse``)
4. trial of each variant, in preference order:
   a ``requires`` probe fails or a file it changes is
   missing -> that variant is not applicable; else
   ``git apply --check`` (clean, or with line offsets),
   ``--3way``, ``-C1``; the first clean variant wins, else
   the first that applies at all
5. a variant applies and some ``present_if`` probes of
   the fix matched                                       -> partially-present (the variant
                                                           that adds the rest)
6. a variant applies                                     -> applies / needs-rebase
                                                           (``offset``, ``3way``, ``fuzz``)
7. every variant is not applicable                       -> not-applicable (the missing file
                                                           or symbol)
8. otherwise                                             -> conflict, naming the hunk and file.

Every result carries ``evidence``: the probe lines that matched (file, line,
text), the probes that did not, the variant order and each variant's trial.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..kernel_tree import TreeFamily, family_distance
from ..runner import Runner
from .diff import FileDiff, find_hunk, parse_patch
from .report import PatchReport, PatchResult, Status
from .series import PatchEntry, Probe, Series
from .tree import Git, detect_family

_OFFSET = re.compile(r"^Hunk #(\d+) succeeded at (\d+) \(offset (-?\d+) lines?\)", re.MULTILINE)
_FAILED_AT = re.compile(r"^error: patch failed: (.+):(\d+)$", re.MULTILINE)
_NOT_IN_INDEX = re.compile(r"^error: (.+): (does not exist in index|already exists in index|"
                           r"does not match index)$", re.MULTILINE)

#: trial outcome -> (status, method, am options); a lower rank is preferred
_TRIAL_OK = {"strict": (0, Status.APPLIES, []), "offset": (1, Status.NEEDS_REBASE, []),
             "3way": (1, Status.NEEDS_REBASE, []), "fuzz": (2, Status.NEEDS_REBASE, ["-C1"])}


@contextlib.contextmanager
def trial_tree(git: Git, commit: str) -> Iterator[Git]:
    """A temporary work tree (``git clone --shared --no-checkout``) whose index holds ``commit``.

    Args:
        git: the user's tree.
        commit: the commit to read into the trial index (the tree's HEAD).

    Yields:
        A :class:`Git` for the trial clone; it is deleted on exit.
    """
    tmp = Path(tempfile.mkdtemp(prefix="rprockit-trial-"))
    try:
        git.runner.run(["git", "clone", "-q", "--shared", "--no-checkout", "--",
                        str(git.tree), str(tmp / "tree")])
        trial = Git(tmp / "tree", git.runner)
        trial("read-tree", commit)
        yield trial
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


def variant_order(variants: list[PatchEntry], tree: TreeFamily) -> list[PatchEntry]:
    """The variants of one fix, most fitting first for a ``tree`` (stable in series order).

    Args:
        variants: the series entries of one fix.
        tree: the tree's family (:func:`rprockit.kernel_tree.detect_family`).

    Returns:
        The same entries ordered by :func:`rprockit.kernel_tree.family_distance`
        of their nearest family.
    """
    def key(p: PatchEntry) -> tuple:
        return min(family_distance(tree.family, f, tree.version) for f in p.families)
    return sorted(variants, key=key)


@dataclass
class _Trial:
    """The outcome of trying one variant on the trial index."""

    variant: PatchEntry
    outcome: str                      # strict | offset | 3way | fuzz | conflict | not-applicable
    detail: str = ""
    warnings: list[str] = field(default_factory=list)
    output: str = ""
    missing: str = ""                 # the missing file or symbol (not-applicable)

    def to_dict(self) -> dict[str, Any]:
        d = {"variant": self.variant.name, "families": list(self.variant.families),
             "result": self.outcome, "detail": self.detail}
        if self.missing:
            d["missing"] = self.missing
        if self.warnings:
            d["warnings"] = list(self.warnings)
        return d


class _Classifier:
    """Runs the checks of one series on one trial tree."""

    def __init__(self, trial: Git, series: Series, tree: TreeFamily):
        self.git, self.series, self.tree = trial, series, tree
        self.present: set[str] = set()
        self._files: dict[str, str | None] = {}

    # ------------------------------------------------------------------ reading the trial index
    def text(self, path: str) -> str | None:
        """Content of ``path`` in the trial index (as the earlier fixes left it), or None."""
        if path not in self._files:
            proc = self.git("cat-file", "blob", f":{path}", check=False)
            self._files[path] = proc.stdout if proc.returncode == 0 else None
        return self._files[path]

    def probe(self, pr: Probe) -> dict[str, Any]:
        """Evaluate ``pr``: ``{probe, file, matched, line, text}`` (line 1-based)."""
        out: dict[str, Any] = {"probe": pr.describe(), "file": pr.file, "matched": False}
        text = self.text(pr.file)
        if text is None:
            out["absent"] = "file"
            return out
        if pr.regex is None:
            out["matched"] = True
            return out
        m = re.search(pr.regex, text, re.MULTILINE)
        if m and m.start() == m.end() == 0:
            # a look-ahead over the whole file: it matched because a line is absent
            out.update(matched=True, text="(whole file: the excluded text is absent)")
        elif m:
            line = text.count("\n", 0, m.start()) + 1
            out.update(matched=True, line=line,
                       text=text.splitlines()[line - 1].strip() if text else "")
        else:
            out["absent"] = "symbol"
        return out

    def existing(self, paths: list[str]) -> set[str]:
        if not paths:
            return set()
        out = self.git("ls-files", "-z", "--", *paths).stdout
        return set(filter(None, out.split("\0")))

    def apply_check(self, patch: Path, *opts: str, env: dict[str, str] | None = None):
        return self.git("apply", "--cached", "--check", "-v", *opts, patch, check=False, env=env)

    # ------------------------------------------------------------------ per-variant checks
    def trial(self, p: PatchEntry, files: list[FileDiff],
              requires: list[dict[str, Any]]) -> _Trial:
        """Try one variant on the trial index (nothing is applied)."""
        failed = [r for r in requires if not r["matched"]]
        if failed:
            r = failed[0]
            if r.get("absent") == "file":
                return _Trial(p, "not-applicable",
                              f"code it changes is absent: {r['file']} does not exist",
                              missing=r["file"])
            return _Trial(p, "not-applicable",
                          f"code it changes is absent: no /{r['probe'].split(' =~ /', 1)[-1]} "
                          f"in {r['file']}", missing=r["probe"])
        modified = [f.old_path for f in files if f.old_path]
        missing = sorted(set(modified) - self.existing(modified))
        if missing:
            return _Trial(p, "not-applicable",
                          f"file(s) it changes do not exist: {', '.join(missing)}",
                          missing=", ".join(missing))
        strict = self.apply_check(p.path)
        if strict.returncode == 0:
            offsets = _offsets(strict.stdout + strict.stderr)
            if offsets:
                return _Trial(p, "offset", "applies with line offsets; refresh the patch",
                              warnings=offsets)
            return _Trial(p, "strict", "applies cleanly")
        out = strict.stdout + strict.stderr
        detail = _conflict_detail(out, files)
        three = self.apply_check(p.path, "--3way")
        if three.returncode == 0 and "with conflicts" not in three.stdout + three.stderr:
            return _Trial(p, "3way", "applies only with a 3-way merge; refresh the patch",
                          warnings=[detail], output=out)
        fuzz = self.apply_check(p.path, "-C1")
        if fuzz.returncode == 0:
            return _Trial(p, "fuzz", "applies only with reduced context (-C1); refresh the patch",
                          warnings=[detail, *_offsets(fuzz.stdout + fuzz.stderr)], output=out)
        return _Trial(p, "conflict", detail, output=out)

    def peel(self, env_back: dict[str, str]) -> set[str]:
        """Names of the patches whose effect is in the tree, found from the last one back.

        Each patch that reverse-applies is reverted on the ``env_back`` index
        before the one before it is tried, so a fully applied series whose
        patches touch each other's context is still recognised.
        """
        present = set()
        for p in reversed(self.series.patches):
            proc = self.git("apply", "--cached", "-R", p.path, check=False, env=env_back)
            if proc.returncode == 0:
                present.add(p.name)
        return present

    # ------------------------------------------------------------------ one fix
    def result(self, p: PatchEntry, status: Status, method: str, detail: str,
               evidence: dict[str, Any], **kw) -> PatchResult:
        return PatchResult(p.name, p.fix, self.series.entry(p), status, method, detail,
                           evidence=evidence, **kw)

    def classify_fix(self, fix: str) -> PatchResult:
        """Classify the variants of ``fix`` and pick the one to apply."""
        variants = variant_order([p for p in self.series if p.fix == fix], self.tree)
        evidence: dict[str, Any] = {"family": self.tree.family,
                                    "order": [p.name for p in variants], "probes": []}
        parsed: dict[str, list[FileDiff]] = {}
        for p in variants:
            files = parse_patch(p.path.read_text(encoding="utf-8", errors="replace"))
            stat = self.git("apply", "--stat", p.path, check=False)
            if stat.returncode != 0 or not files:
                return self.result(p, Status.CORRUPT, "git-apply",
                                   "git apply cannot parse it: "
                                   + (stat.stderr.strip().splitlines() or ["no diff"])[0],
                                   evidence, output=stat.stderr)
            parsed[p.name] = files
        probes: dict[str, tuple[list[dict], list[dict]]] = {}
        for p in variants:
            present = [dict(self.probe(pr), variant=p.name, kind="present_if")
                       for pr in p.present_if]
            requires = [dict(self.probe(pr), variant=p.name, kind="requires")
                        for pr in p.requires]
            probes[p.name] = (present, requires)
            evidence["probes"] += present + requires
        for p in variants:
            present = probes[p.name][0]
            if present and all(r["matched"] for r in present):
                evidence["matched"] = [_where(r) for r in present]
                return self.result(p, Status.ALREADY_PRESENT, "probe",
                                   "equivalent fix found: " + " | ".join(evidence["matched"]),
                                   evidence)
        for p in variants:
            if p.name in self.present or self.apply_check(p.path, "-R").returncode == 0:
                evidence["reverse"] = p.name
                return self.result(p, Status.ALREADY_PRESENT, "reverse",
                                   "reverse-applies: already in the tree", evidence)
        trials = [self.trial(p, parsed[p.name], probes[p.name][1]) for p in variants]
        evidence["trials"] = [t.to_dict() for t in trials]
        ok = [t for t in trials if t.outcome in _TRIAL_OK]
        if ok:
            best = min(ok, key=lambda t: _TRIAL_OK[t.outcome][0] > 0)
            return self.chosen(best, evidence)
        if all(t.outcome == "not-applicable" for t in trials):
            first = trials[0]
            evidence["missing"] = sorted({t.missing for t in trials})
            return self.result(first.variant, Status.NOT_APPLICABLE,
                               "requires" if "absent" in first.detail else "missing-file",
                               first.detail, evidence)
        bad = next(t for t in trials if t.outcome == "conflict")
        return self.result(bad.variant, Status.CONFLICT, "git-apply", bad.detail, evidence,
                           output=bad.output)

    def chosen(self, t: _Trial, evidence: dict[str, Any]) -> PatchResult:
        """The result for a variant that applies: applies, needs-rebase or partially-present."""
        _rank, status, am_opts = _TRIAL_OK[t.outcome]
        evidence["chosen"] = t.variant.name
        matched = [r for r in evidence["probes"] if r["kind"] == "present_if" and r["matched"]]
        if matched:
            # what is missing is what the chosen variant looks for and does not find
            missing = [r for r in evidence["probes"] if r["kind"] == "present_if"
                       and not r["matched"] and r["variant"] == t.variant.name]
            evidence["matched"] = sorted({_where(r) for r in matched})
            evidence["missing"] = sorted({r["probe"] for r in missing})
            evidence["adds"] = t.variant.name
            detail = (f"present: {' | '.join(evidence['matched'])} -- missing: "
                      f"{' | '.join(evidence['missing'])} -- {t.variant.name} adds it"
                      + ("" if t.outcome == "strict" else f" ({t.detail})"))
            return self.result(t.variant, Status.PARTIALLY_PRESENT, t.outcome, detail, evidence,
                               warnings=t.warnings, output=t.output, am_options=am_opts)
        return self.result(t.variant, status, t.outcome, t.detail, evidence,
                           warnings=t.warnings, output=t.output, am_options=am_opts)

    def stack(self, p: PatchEntry, r: PatchResult) -> None:
        """Apply ``p`` to the trial index so the next fixes see it."""
        opts = {"3way": ["--3way"], "fuzz": ["-C1"]}.get(r.method, [])
        proc = self.git("apply", "--cached", *opts, p.path, check=False)
        self._files.clear()
        if proc.returncode != 0:
            r.status, r.method = Status.CONFLICT, "git-apply"
            r.detail = "applies alone but not on top of the previous patches: " \
                + _conflict_detail(proc.stderr, parse_patch(p.path.read_text(errors="replace")))
            r.output = proc.stderr

    def run(self, env_back: dict[str, str]) -> list[PatchResult]:
        self.present = self.peel(env_back)
        results = []
        entries = {p.name: p for p in self.series}
        for fix in self.series.fixes():
            r = self.classify_fix(fix)
            if r.status.to_apply:
                self.stack(entries[r.name], r)
            results.append(r)
        return results


def _where(r: dict[str, Any]) -> str:
    if r.get("line"):
        return f"{r['file']}:{r['line']}: {r['text']}"
    return f"{r['file']}: {r['text']}" if r.get("text") else r["file"]


def classify_on(git: Git, series: Series, tree: TreeFamily) -> list[PatchResult]:
    """Classify every fix of ``series`` on the HEAD of ``git.tree`` (in a trial tree).

    Returns:
        One :class:`PatchResult` per fix, in series order; its ``name`` is the
        variant chosen (or the one the status is about).
    """
    with trial_tree(git, git.head()) as trial:
        env_back = {"GIT_INDEX_FILE": str(trial.tree / ".git" / "rprockit-peel-index")}
        trial("read-tree", "HEAD", env=env_back)
        return _Classifier(trial, series, tree).run(env_back)


def classify(tree: Path, series: Series, family: str | None = None,
             runner: Runner | None = None) -> PatchReport:
    """Classify each fix of ``series`` against ``tree`` (dry run; nothing is written).

    Args:
        tree: kernel git work tree; fixes are judged against its HEAD.
        series: from :func:`~rprockit.patch.series.load_series`.
        family: family to order the variants by; detected
            (:func:`~rprockit.kernel_tree.detect_family`) when None.
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
    report = PatchReport(tree, info.family, info.version.short, series.directory,
                         series.fingerprint(), "check", head, head,
                         warnings=list(series.warnings) + family_warnings(info))
    dirty = git.dirty(refresh=False)  # a dry run writes nothing, not even the index
    if dirty:
        report.warnings.append(f"tree has {len(dirty)} uncommitted change(s); patches were "
                               "checked against HEAD")
    report.results = classify_on(git, series, info)
    report.warnings += [f"{r.name}: {w}" for r in report.results
                        if r.status is Status.NEEDS_REBASE for w in r.warnings]
    return report


def family_warnings(info: TreeFamily) -> list[str]:
    """A warning when a given family disagrees with what the tree says."""
    if info.family != info.detected:
        return [f"family {info.family} was given, but the tree looks like {info.detected} "
                f"(Makefile {info.version.full}"
                + (f", {info.marker}" if info.marker else ", no vendor marker")
                + "); variants are ordered for the family given"]
    return []
