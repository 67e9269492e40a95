"""Patch engine on small real git repos with real ``git format-patch`` patches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from rprockit.errors import PatchError, UserError
from rprockit.patch import (
    PatchApplyError,
    Status,
    TreeStateError,
    apply_series,
    classify,
    detect_family,
    load_series,
    matrix,
)
from rprockit.runner import Runner

AUTHOR = "Jane Dev <jane@example.com>"
BASE = [f"line {i:02d}" for i in range(1, 61)]


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory, monkeypatch):
    """Own HOME/XDG, no inherited GIT_* variables, a fixed identity for test commits."""
    home = tmp_path_factory.mktemp("home")
    for var in list(os.environ):
        if var.startswith("GIT_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    (home / ".gitconfig").write_text("[user]\n\tname = Tree Owner\n\temail = owner@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n")


def git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=False)
    if check and proc.returncode:
        raise AssertionError(f"git {args} failed: {proc.stderr}")
    return proc.stdout.strip()


def write(repo: Path, rel: str, lines: list[str]) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_tree(path: Path, version: tuple[int, int] = (5, 4), nxp: bool = False,
              core: list[str] | None = None) -> Path:
    """A tiny kernel-like git tree: Makefile + drivers/remoteproc/core.c."""
    path.mkdir(parents=True)
    git(path, "init", "-q")
    write(path, "Makefile", [f"VERSION = {version[0]}", f"PATCHLEVEL = {version[1]}",
                             "SUBLEVEL = 0", "EXTRAVERSION ="])
    write(path, "drivers/remoteproc/core.c", core or BASE)
    if nxp:
        write(path, "drivers/rpmsg/imx_rpmsg.c", ["/* imx rpmsg */"])
    git(path, "add", "-A")
    git(path, "commit", "-qm", "base")
    return path


def make_patch(repo: Path, outdir: Path, name: str, edit, subject: str,
               upstream: str = "Inappropriate [test only]") -> str:
    """Commit ``edit(repo)`` as AUTHOR, format-patch it into outdir/name, drop the commit."""
    edit(repo)
    git(repo, "add", "-A")
    msg = f"{subject}\n\nFixes the test.\n\nUpstream-Status: {upstream}\nSigned-off-by: {AUTHOR}\n"
    git(repo, "commit", "-q", "--author", AUTHOR, "-m", msg)
    out = git(repo, "format-patch", "-1", "--stdout")
    (outdir / name).parent.mkdir(parents=True, exist_ok=True)
    (outdir / name).write_text(out + "\n")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    return name


def replace(rel: str, old: str, new: str):
    def edit(repo: Path) -> None:
        p = repo / rel
        p.write_text(p.read_text().replace(old, new))
    return edit


def write_series(sdir: Path, entries: list[tuple[str, dict]]) -> Path:
    sdir.mkdir(parents=True, exist_ok=True)
    (sdir / "series").write_text("# test series\n" + "".join(f"{n}\n" for n, _ in entries))
    patches = {}
    for name, meta in entries:
        m = {"fix": name.split(".")[0].lower().replace("_", "-")[:40],
             "fixes": ["remoteproc remoteproc0: Boot failed: -22"],
             "families": ["mainline", "nxp-5.4", "nxp-4.14"],
             "upstream": {"status": "inappropriate", "reason": "test only"}}
        m.update(meta)
        patches[name] = m
    (sdir / "meta.yaml").write_text(yaml.safe_dump({"format": 1, "patches": patches},
                                                   sort_keys=False))
    return sdir


@pytest.fixture
def two_patch_series(tmp_path):
    """Tree + series of two stacked patches to core.c (the second builds on the first)."""
    tree = make_tree(tmp_path / "tree")
    sdir = tmp_path / "series"
    p1 = make_patch(tree, sdir, "0001-first.patch",
                    replace("drivers/remoteproc/core.c", "line 10\n", "line 10 fixed\n"),
                    "remoteproc: first fix")
    # the second patch is made on top of the first one
    git(tree, "am", "-q", str(sdir / p1))
    p2 = make_patch(tree, sdir, "0002-second.patch",
                    replace("drivers/remoteproc/core.c", "line 10 fixed\n",
                            "line 10 fixed\nline 10b added\n"), "remoteproc: second fix")
    git(tree, "reset", "-q", "--hard", "HEAD~1")
    series = load_series(write_series(sdir, [(p1, {}), (p2, {})]))
    return tree, series


def test_apply_commits_each_patch_with_authorship_and_rerun_is_noop(two_patch_series, tmp_path):
    tree, series = two_patch_series
    start = git(tree, "rev-parse", "HEAD")
    report = apply_series(tree, series, report_dir=tmp_path / "rep")
    assert [r.status for r in report.results] == [Status.APPLIED, Status.APPLIED]
    assert report.start == start and report.end == git(tree, "rev-parse", "HEAD")
    log = git(tree, "log", "--format=%an <%ae>|%cn|%s", f"{start}..HEAD").splitlines()
    assert log == [f"{AUTHOR}|rprockit|remoteproc: second fix",
                   f"{AUTHOR}|rprockit|remoteproc: first fix"]
    assert report.results[0].commit == git(tree, "rev-parse", "HEAD~1")
    assert "line 10b added" in (tree / "drivers/remoteproc/core.c").read_text()
    data = json.loads((tmp_path / "rep/patch-report.json").read_text())
    assert data["start"] == start and data["end"] == report.end and data["failed"] is False
    assert [p["status"] for p in data["patches"]] == ["applied", "applied"]
    assert "0002-second.patch" in (tmp_path / "rep/patch-report.txt").read_text()

    again = apply_series(tree, series)
    assert [r.status for r in again.results] == [Status.ALREADY_PRESENT] * 2
    assert again.start == again.end == report.end
    assert git(tree, "rev-parse", "HEAD") == report.end
    # default report location is inside .git, so the tree stays clean
    assert json.loads((tree / ".git/rprockit-patch-report.json").read_text())["mode"] == "apply"
    assert git(tree, "status", "--porcelain") == ""


def test_end_commit_is_reproducible(two_patch_series, tmp_path):
    tree, series = two_patch_series
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(tree), str(clone))
    assert apply_series(tree, series).end == apply_series(clone, series).end


def test_check_mode_classifies_stacked_patches_without_touching(two_patch_series):
    tree, series = two_patch_series
    start = git(tree, "rev-parse", "HEAD")
    report = apply_series(tree, series, check=True)
    # the second patch only applies on top of the first: judged on the simulated stack
    assert [r.status for r in report.results] == [Status.APPLIES, Status.APPLIES]
    assert report.mode == "check" and report.end == start
    assert git(tree, "rev-parse", "HEAD") == start and git(tree, "status", "--porcelain") == ""


def test_conflict_names_hunk_file_and_entry_and_tree_is_untouched(tmp_path):
    tree = make_tree(tmp_path / "tree")
    sdir = tmp_path / "series"
    ok = make_patch(tree, sdir, "0001-ok.patch",
                    replace("drivers/remoteproc/core.c", "line 05\n", "line 05 ok\n"), "ok")

    def two_hunks(repo):
        replace("drivers/remoteproc/core.c", "line 20\n", "line 20 x\n")(repo)
        replace("drivers/remoteproc/core.c", "line 50\n", "line 50 y\n")(repo)
    bad = make_patch(tree, sdir, "0002-bad.patch", two_hunks, "conflicting")
    # the tree moves on: hunk 2's context is gone
    write(tree, "drivers/remoteproc/core.c",
          [ln if not ln.startswith(("line 4", "line 5")) else ln + " changed" for ln in BASE])
    git(tree, "commit", "-qam", "upstream rework")
    start = git(tree, "rev-parse", "HEAD")
    series = load_series(write_series(sdir, [(ok, {}), (bad, {})]))

    with pytest.raises(PatchApplyError) as ei:
        apply_series(tree, series)
    err = ei.value
    msg = str(err)
    assert isinstance(err, PatchError) and isinstance(err, UserError)
    assert "0002-bad.patch" in msg and f"{sdir / 'series'}:3" in msg and str(tree) in msg
    assert "hunk #2" in msg and "drivers/remoteproc/core.c" in msg
    assert "patch failed" in msg  # the git apply output
    assert err.report.result("0002-bad.patch").status is Status.CONFLICT
    assert err.report.result("0001-ok.patch").status is Status.APPLIES
    assert git(tree, "rev-parse", "HEAD") == start
    assert git(tree, "status", "--porcelain") == ""
    assert not (tree / ".git/rprockit-patch-state.json").exists()


def test_git_am_failure_midway_restores_exact_start(two_patch_series):
    tree, series = two_patch_series
    start = git(tree, "rev-parse", "HEAD")
    hook = tree / ".git/hooks/pre-applypatch"
    # refuse the second patch only: the first one is already committed by then
    hook.write_text("#!/bin/sh\ngrep -q 'second fix' .git/rebase-apply/final-commit && exit 1\n"
                    "exit 0\n")
    hook.chmod(0o755)
    with pytest.raises(PatchApplyError) as ei:
        apply_series(tree, series)
    assert "0002-second.patch" in str(ei.value) and "git am" in str(ei.value)
    assert ei.value.report.restored and ei.value.report.end == start
    assert git(tree, "rev-parse", "HEAD") == start
    assert git(tree, "status", "--porcelain") == ""
    assert not (tree / ".git/rebase-apply").exists()
    assert not (tree / ".git/rprockit-patch-state.json").exists()


def test_corrupt_patch_fails_without_touching_tree(tmp_path):
    tree = make_tree(tmp_path / "tree")
    sdir = tmp_path / "series"
    name = make_patch(tree, sdir, "0001-corrupt.patch",
                      replace("drivers/remoteproc/core.c", "line 10\n", "line 10 x\n"), "corrupt")
    p = sdir / name
    p.write_text(p.read_text().replace("@@ -7,7 +7,7 @@", "@@ -7,9 +7,11 @@"))
    series = load_series(write_series(sdir, [(name, {})]))
    start = git(tree, "rev-parse", "HEAD")
    assert classify(tree, series).results[0].status is Status.CORRUPT
    with pytest.raises(PatchApplyError, match=r"0001-corrupt.patch.*is corrupt"):
        apply_series(tree, series)
    assert git(tree, "rev-parse", "HEAD") == start


def test_dirty_tree_is_refused(two_patch_series):
    tree, series = two_patch_series
    f = tree / "drivers/remoteproc/core.c"
    f.write_text(f.read_text() + "local edit\n")
    with pytest.raises(TreeStateError) as ei:
        apply_series(tree, series)
    assert "uncommitted" in str(ei.value) and "drivers/remoteproc/core.c" in str(ei.value)
    assert f.read_text().endswith("local edit\n")
    assert git(tree, "rev-list", "--count", "HEAD") == "1"
    # a dry run on a dirty tree is allowed and says so
    assert "uncommitted" in " ".join(apply_series(tree, series, check=True).warnings)


class _InterruptingRunner(Runner):
    """Raises KeyboardInterrupt when the second ``git am`` starts (Ctrl-C mid-series)."""

    def __init__(self):
        super().__init__()
        self.ams = 0

    def run(self, cmd, *a, **kw):
        if list(cmd[:2]) == ["git", "am"] and "--abort" not in cmd:
            self.ams += 1
            if self.ams == 2:
                raise KeyboardInterrupt
        return super().run(cmd, *a, **kw)


def test_keyboard_interrupt_restores_start(two_patch_series):
    tree, series = two_patch_series
    start = git(tree, "rev-parse", "HEAD")
    with pytest.raises(KeyboardInterrupt):
        apply_series(tree, series, runner=_InterruptingRunner())
    assert git(tree, "rev-parse", "HEAD") == start
    assert git(tree, "status", "--porcelain") == ""
    assert not (tree / ".git/rprockit-patch-state.json").exists()
    report = json.loads((tree / ".git/rprockit-patch-report.json").read_text())
    assert report["restored"] is True and "KeyboardInterrupt" in report["error"]


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, subprocess, sys
    from pathlib import Path
    from rprockit.patch import apply_series, load_series
    from rprockit.runner import Runner

    tree, series_dir, stuck_patch = map(Path, sys.argv[1:4])

    class Killer(Runner):
        ams = 0
        def run(self, cmd, *a, **kw):
            if list(cmd[:2]) == ["git", "am"]:
                self.ams += 1
                if self.ams == 2:
                    # a git am that stops on a conflict, then the process dies
                    subprocess.run(["git", "am", "--3way", str(stuck_patch)], cwd=tree,
                                   capture_output=True)
                    os.kill(os.getpid(), signal.SIGKILL)
            return super().run(cmd, *a, **kw)

    apply_series(tree, load_series(series_dir), runner=Killer())
""")


def test_killed_run_is_recovered_by_next_run(two_patch_series, tmp_path):
    tree, series = two_patch_series
    start = git(tree, "rev-parse", "HEAD")
    stuck = tmp_path / "stuck.patch"
    make_patch(tree, tmp_path, "stuck.patch",
               replace("drivers/remoteproc/core.c", "line 10\n", "line 10 other\n"), "stuck")
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tree), str(series.directory),
                           str(stuck)], capture_output=True, text=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (tree / ".git/rebase-apply").is_dir()
    assert (tree / ".git/rprockit-patch-state.json").is_file()
    assert git(tree, "rev-parse", "HEAD") != start  # first patch was committed

    report = apply_series(tree, series)
    assert report.recovered == start and report.start == start
    assert [r.status for r in report.results] == [Status.APPLIED, Status.APPLIED]
    assert not (tree / ".git/rebase-apply").exists()
    assert git(tree, "rev-list", "--count", f"{start}..HEAD") == "2"
    assert not (tree / ".git/rprockit-patch-state.json").exists()


def test_foreign_git_am_session_is_refused(two_patch_series, tmp_path):
    tree, series = two_patch_series
    make_patch(tree, tmp_path, "stuck.patch",
               replace("drivers/remoteproc/core.c", "line 10\n", "line 10 other\n"), "stuck")
    git(tree, "am", "-q", str(series.directory / "0001-first.patch"))
    git(tree, "am", "--3way", str(tmp_path / "stuck.patch"), check=False)
    assert (tree / ".git/rebase-apply").is_dir()
    with pytest.raises(TreeStateError, match="did not start"):
        apply_series(tree, series)
    assert (tree / ".git/rebase-apply").is_dir()  # left for its owner


def test_offset_is_needs_rebase_and_still_applied(tmp_path):
    tree = make_tree(tmp_path / "tree")
    sdir = tmp_path / "series"
    name = make_patch(tree, sdir, "0001-offset.patch",
                      replace("drivers/remoteproc/core.c", "line 30\n", "line 30 x\n"), "offset")
    write(tree, "drivers/remoteproc/core.c", ["new a", "new b", "new c", *BASE])
    git(tree, "commit", "-qam", "three lines on top")
    series = load_series(write_series(sdir, [(name, {})]))
    r = classify(tree, series).results[0]
    assert (r.status, r.method) == (Status.NEEDS_REBASE, "offset")
    assert r.warnings == ["hunk #1 of drivers/remoteproc/core.c at line 30 (offset 3 lines)"]
    report = apply_series(tree, series)
    assert report.results[0].status is Status.NEEDS_REBASE and report.results[0].commit
    assert any("offset 3 lines" in w for w in report.warnings)
    assert "line 30 x" in (tree / "drivers/remoteproc/core.c").read_text()


def test_three_way_and_fuzz_are_needs_rebase(tmp_path):
    # patch made where the original blob exists: git can 3-way merge it
    base = make_tree(tmp_path / "base")
    sdir = tmp_path / "series"
    name = make_patch(base, sdir, "0001-ctx.patch",
                      replace("drivers/remoteproc/core.c", "line 30\n", "line 30 x\n"), "ctx")
    series = load_series(write_series(sdir, [(name, {})]))
    moved = [ln + " changed" if ln == "line 28" else ln for ln in BASE]
    write(base, "drivers/remoteproc/core.c", moved)
    git(base, "commit", "-qam", "context line changed")
    r = classify(base, series).results[0]
    assert (r.status, r.method) == (Status.NEEDS_REBASE, "3way")
    assert "hunk #1" in r.warnings[0]
    assert apply_series(base, series).results[0].commit
    assert "line 30 x" in (base / "drivers/remoteproc/core.c").read_text()

    # the same patch on a tree that never had the original blob: only fuzz works
    other = make_tree(tmp_path / "other", core=moved)
    r = classify(other, series).results[0]
    assert (r.status, r.method) == (Status.NEEDS_REBASE, "fuzz")
    done = apply_series(other, series).results[0]
    assert done.commit and "line 30 x" in (other / "drivers/remoteproc/core.c").read_text()


def test_not_applicable_and_probe_classification(tmp_path):
    tree = make_tree(tmp_path / "tree", version=(6, 1))
    sdir = tmp_path / "series"
    fam = make_patch(tree, sdir, "0001-family.patch",
                     replace("drivers/remoteproc/core.c", "line 05\n", "line 05 x\n"), "family")
    req = make_patch(tree, sdir, "0002-requires.patch",
                     replace("drivers/remoteproc/core.c", "line 20\n", "line 20 x\n"), "requires")
    probe = make_patch(tree, sdir, "0003-probe.patch",
                       replace("drivers/remoteproc/core.c", "line 40\n", "line 40 x\n"), "probe")

    def new_file(repo):
        write(repo, "drivers/remoteproc/gone.c", ["a", "b"])
    helper = tmp_path / "helper"
    make_tree(helper)
    new_file(helper)
    git(helper, "add", "-A")
    git(helper, "commit", "-qm", "gone")
    missing = make_patch(helper, sdir, "0004-missing.patch",
                         replace("drivers/remoteproc/gone.c", "a\n", "a x\n"), "missing")
    series = load_series(write_series(sdir, [
        (fam, {"fix": "fam", "families": ["nxp-4.14", "nxp-5.4"]}),
        (req, {"fix": "req", "requires": [{"file": "drivers/remoteproc/core.c",
                                           "regex": r"imx_rproc_xtr_mbox_init\("}]}),
        (probe, {"fix": "probe", "present_if": [{"file": "drivers/remoteproc/core.c",
                                                 "regex": r"^line 1\d$"},
                                                {"file": "Makefile", "regex": "PATCHLEVEL"}]}),
        (missing, {"fix": "missing"}),
    ]))
    report = classify(tree, series)
    got = {r.name: (r.status, r.method) for r in report.results}
    assert got == {
        # written for NXP lines only, but the code it changes is there: the
        # family orders variants, it never rules a fix out
        fam: (Status.APPLIES, "strict"),
        req: (Status.NOT_APPLICABLE, "requires"),
        probe: (Status.ALREADY_PRESENT, "probe"),
        missing: (Status.NOT_APPLICABLE, "missing-file"),
    }
    assert report.family == "mainline" and not report.failed
    assert "imx_rproc_xtr_mbox_init" in report.result(req).detail
    assert report.result(req).evidence["missing"] == [
        r"drivers/remoteproc/core.c =~ /imx_rproc_xtr_mbox_init\(/"]
    assert "gone.c" in report.result(missing).detail
    assert report.result(probe).evidence["matched"] == [
        "drivers/remoteproc/core.c:10: line 10", "Makefile:2: PATCHLEVEL = 1"]
    done = apply_series(tree, series)
    assert [r.name for r in done.results if r.commit] == [fam]


def test_family_detection_and_override(tmp_path):
    nxp = make_tree(tmp_path / "nxp", version=(4, 14), nxp=True)
    ml = make_tree(tmp_path / "ml", version=(6, 1))
    info = detect_family(nxp)
    assert (info.family, info.version.short, info.version.full, info.marker) == (
        "nxp-4.14", "4.14", "4.14.0", "drivers/rpmsg/imx_rpmsg.c")
    assert detect_family(ml).family == "mainline"
    given = detect_family(ml, override="nxp-5.4")
    assert (given.family, given.detected) == ("nxp-5.4", "mainline")
    (tmp_path / "notkernel").mkdir()
    with pytest.raises(TreeStateError, match=r"cannot read .*notkernel/Makefile"):
        detect_family(tmp_path / "notkernel")
    (tmp_path / "notkernel" / "Makefile").write_text("all:\n\ttrue\n")
    with pytest.raises(TreeStateError, match="no numeric VERSION/PATCHLEVEL"):
        detect_family(tmp_path / "notkernel")


def test_matrix_picks_the_variant_for_each_family(tmp_path):
    t414 = make_tree(tmp_path / "t414", version=(4, 14), nxp=True)
    t54 = make_tree(tmp_path / "t54", version=(5, 4), nxp=True)
    ml = make_tree(tmp_path / "ml", version=(6, 1),
                   core=[ln if ln != "line 10" else "line 10 x" for ln in BASE])
    sdir = tmp_path / "series"
    edit = replace("drivers/remoteproc/core.c", "line 10\n", "line 10 x\n")
    a = make_patch(t414, sdir, "nxp-4.14/0001-fix.patch", edit, "fix for 4.14")
    b = make_patch(t54, sdir, "nxp-5.4/0001-fix.patch", edit, "fix for 5.4")
    series = load_series(write_series(sdir, [
        (a, {"fix": "the-fix", "families": ["nxp-4.14"]}),
        (b, {"fix": "the-fix", "families": ["nxp-5.4", "mainline"]}),
    ]))
    m = matrix({"4.14": t414, "5.4": t54, "6.1": ml}, series)
    assert m.cell("the-fix", "4.14") == ("applies", a)
    assert m.cell("the-fix", "5.4") == ("applies", b)
    assert m.cell("the-fix", "6.1") == ("already-present", b)
    d = m.to_dict()
    cell = d["fixes"]["the-fix"]["6.1"]
    assert (cell["status"], cell["variant"], cell["method"]) == ("already-present", b, "reverse")
    assert d["fixes"]["the-fix"]["4.14"]["evidence"]["order"] == [a, b]
    assert d["fixes"]["the-fix"]["5.4"]["evidence"]["order"] == [b, a]
    text = m.render()
    assert "the-fix" in text and "already-present" in text and "nxp-4.14" in text
