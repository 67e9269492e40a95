"""Hostile faults in the patch stage: killed runs, stale locks, foreign state, full and
read-only file systems, multi-series transactions, dry runs.

Each case asserts the exit code, no traceback, the culprit named, and the tree
byte-for-byte (:func:`hostile_util.tree_state`) where it must hold.  Faults are
real: the process group is killed from a git hook or a ``git`` wrapper on PATH
while ``git am`` runs, a tmpfs is filled, a bind mount is made read-only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hostile_util import (
    assert_error,
    cli,
    cli_proc,
    git,
    logical,
    make_tree,
    tree_state,
    two_series,
    write_profile,
)

STATE = ".git/rprockit-patch-state.json"


@pytest.fixture
def setup(tmp_path):
    """A tree, two series (3 patches) and a profile naming both."""
    tree = make_tree(tmp_path / "tree")
    a, b = two_series(tree, tmp_path)
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [a, b])
    return tree, prof, tmp_path / "ws"


def _patch(prof: Path, ws: Path, tree: Path, *more: str):
    return cli("patch", "--profile", str(prof), "--workspace", str(ws), "--tree", str(tree),
               *more)


def _hook(tree: Path, name: str, nth: int, action: str = "kill -KILL 0") -> None:
    """A git hook that runs ``action`` on its ``nth`` invocation (kill -KILL 0: the
    whole process group, rprockit included)."""
    hook = tree / ".git" / "hooks" / name
    hook.parent.mkdir(exist_ok=True)
    count = tree.parent / f"{name}.count"
    hook.write_text(f"#!/bin/sh\nn=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); "
                    f"echo $n > {count}\nif [ $n -eq {nth} ]; then {action}; fi\nexit 0\n")
    hook.chmod(0o755)


def _killed_run(tree: Path, prof: Path, ws: Path) -> subprocess.CompletedProcess:
    proc = cli_proc("patch", "--profile", str(prof), "--workspace", str(ws),
                    "--tree", str(tree))
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert (tree / STATE).is_file()
    return proc


def _drop_hooks(tree: Path) -> None:
    for h in (tree / ".git" / "hooks").iterdir():
        if not h.name.endswith(".sample"):
            h.unlink()


# ---------------------------------------------------------------- recovery of a killed run
@pytest.mark.parametrize("hook,nth", [
    ("applypatch-msg", 1),   # before the first patch is applied
    ("applypatch-msg", 2),   # before the second, the first committed
    ("pre-applypatch", 2),   # second applied to index and work tree, not committed
    ("pre-applypatch", 3),   # in the second series (one transaction)
    ("post-applypatch", 2),  # second committed, the state not yet updated
])
def test_killed_inside_git_am_is_recovered_and_said(setup, hook, nth):
    tree, prof, ws = setup
    start = git(tree, "rev-parse", "HEAD")
    _hook(tree, hook, nth)
    _killed_run(tree, prof, ws)
    _drop_hooks(tree)
    res = _patch(prof, ws, tree)
    assert res.code == 0, res.text
    assert "Traceback" not in res.text
    assert "recovering the interrupted patch run" in res.err and start[:12] in res.err
    assert not (tree / STATE).exists() and not (tree / ".git/rebase-apply").exists()
    assert git(tree, "rev-list", "--count", f"{start}..HEAD") == "3"
    assert git(tree, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(tree, "status", "--porcelain") == ""
    if nth > 1:  # something was reset: a snapshot commit is kept under a ref of ours
        refs = git(tree, "for-each-ref", "--format=%(refname)", "refs/rprockit/recovered")
        assert refs, res.err
        assert refs in res.err


def test_wrapper_on_path_kills_group_mid_am_then_stale_index_lock_is_removed(setup, tmp_path):
    """A ``git`` wrapper kills the process group while the real ``git am`` holds
    ``index.lock``; the lock is the run's own, so recovery removes it and says so."""
    tree, prof, ws = setup
    start = git(tree, "rev-parse", "HEAD")
    real = shutil.which("git")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "git").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = am ] && [ "$2" = --3way ] && [ ! -e {tmp_path}/fired ]; then\n'
        f"  touch {tmp_path}/fired\n"
        f"  : > {tree}/.git/index.lock\n"  # as git am holds it while writing the index
        "  kill -KILL 0\n"
        "fi\n"
        f'exec {real} "$@"\n')
    (bindir / "git").chmod(0o755)
    proc = cli_proc("patch", "--profile", str(prof), "--workspace", str(ws), "--tree",
                    str(tree), env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert proc.returncode == -signal.SIGKILL
    assert (tree / ".git/index.lock").exists()
    res = _patch(prof, ws, tree)
    assert res.code == 0, res.text
    assert "index.lock" in res.err and "removing" in res.err
    assert git(tree, "rev-list", "--count", f"{start}..HEAD") == "3"


def _killed_mid_series(setup) -> tuple[Path, Path, Path, str]:
    tree, prof, ws = setup
    start = git(tree, "rev-parse", "HEAD")
    _hook(tree, "pre-applypatch", 2)
    _killed_run(tree, prof, ws)
    _drop_hooks(tree)
    return tree, prof, ws, start


def test_user_edit_after_kill_is_refused_and_kept(setup):
    tree, prof, ws, _ = _killed_mid_series(setup)
    p = tree / "Makefile"
    p.write_text(p.read_text() + "# my edit\n")
    before = tree_state(tree)
    text = assert_error(_patch(prof, ws, tree), "no longer as that run left it", "Makefile",
                        "nothing was reset")
    assert tree_state(tree) == before, text


def test_user_commit_after_kill_is_not_dropped(setup):
    """The stale-state case that dropped a user's commit: HEAD moved on since."""
    tree, prof, ws, _ = _killed_mid_series(setup)
    git(tree, "am", "--abort")
    (tree / "mine.c").write_text("int mine;\n")
    git(tree, "add", "mine.c")
    git(tree, "commit", "-qm", "my work")
    mine = git(tree, "rev-parse", "HEAD")
    before = tree_state(tree)
    assert_error(_patch(prof, ws, tree), "new commits were made since", STATE.split("/")[1])
    assert tree_state(tree) == before
    assert git(tree, "rev-parse", "HEAD") == mine


def test_branch_switched_after_kill_is_refused(setup):
    tree, prof, ws, _ = _killed_mid_series(setup)
    git(tree, "am", "--abort")
    git(tree, "checkout", "-q", "-b", "other")
    before = tree_state(tree)
    assert_error(_patch(prof, ws, tree), "refs/heads/other", "refs/heads/main")
    assert tree_state(tree) == before


def test_untracked_files_survive_recovery(setup):
    tree, prof, ws, _ = _killed_mid_series(setup)
    (tree / "notes.txt").write_text("my notes\n")
    res = _patch(prof, ws, tree)
    assert res.code == 0, res.text
    assert (tree / "notes.txt").read_text() == "my notes\n"


def test_snapshot_holds_the_half_applied_work_tree(setup):
    tree, prof, ws, start = _killed_mid_series(setup)
    half = (tree / "drivers/remoteproc/core.c").read_text()
    assert "line 20 fixed" in half
    res = _patch(prof, ws, tree)
    assert res.code == 0, res.text
    ref = git(tree, "for-each-ref", "--format=%(refname)", "refs/rprockit/recovered")
    assert git(tree, "show", f"{ref}:drivers/remoteproc/core.c") + "\n" == half
    assert git(tree, "merge-base", "--is-ancestor", start, ref, check=False) == ""


def _state(tree: Path) -> dict:
    return json.loads((tree / STATE).read_text())


def test_live_process_is_refused(setup):
    """A state file whose process still runs (this test's own parent, same start time)."""
    tree, prof, ws, _ = _killed_mid_series(setup)
    st = _state(tree)
    ppid = os.getppid()
    stat = Path(f"/proc/{ppid}/stat").read_text().rsplit(")", 1)[1].split()
    st["pid"], st["pid_start"] = ppid, stat[19]
    (tree / STATE).write_text(json.dumps(st))
    before = tree_state(tree)
    assert_error(_patch(prof, ws, tree), f"pid {ppid}", "still working on it")
    assert tree_state(tree) == before


def test_reused_pid_is_not_mistaken_for_the_run(setup):
    """Same pid, another start time: the run is gone, the pid was reused."""
    tree, prof, ws, _ = _killed_mid_series(setup)
    st = _state(tree)
    st["pid"], st["pid_start"] = os.getppid(), "1"
    (tree / STATE).write_text(json.dumps(st))
    res = _patch(prof, ws, tree)
    assert res.code == 0, res.text


@pytest.mark.parametrize("content,named", [
    ("{not json", "not JSON"),
    ('["a", "list"]', "not a JSON object"),
    ('{"start": "' + "a" * 40 + '", "branch": "refs/heads/main", "clean": true}',
     "older rprockit"),
    ('{"format": 2, "start": "HEAD~1", "created": [], "pid": 1}', "invalid"),
    ('{"format": 2, "start": "' + "a" * 40 + '", "created": ["x"], "pid": 1}', "invalid"),
])
def test_foreign_or_corrupt_state_file_changes_nothing(setup, content, named):
    tree, prof, ws = setup
    (tree / STATE).write_text(content)
    (tree / "Makefile").write_text((tree / "Makefile").read_text() + "# edit\n")
    before = tree_state(tree)
    assert_error(_patch(prof, ws, tree), named, "nothing was changed")
    assert tree_state(tree) == before


def test_state_file_that_is_a_directory(setup):
    tree, prof, ws = setup
    (tree / STATE).mkdir()
    before = tree_state(tree)
    assert_error(_patch(prof, ws, tree), "not a regular file")
    assert tree_state(tree) == before


def test_stale_lock_older_than_the_run_is_refused_then_recovered(setup):
    tree, prof, ws, start = _killed_mid_series(setup)
    lock = tree / ".git" / "index.lock"
    lock.write_text("")
    old = time.time() - 3600
    os.utime(lock, (old, old))
    before = tree_state(tree)
    assert_error(_patch(prof, ws, tree), "index.lock", "not the run's own")
    assert tree_state(tree) == before
    lock.unlink()
    res = _patch(prof, ws, tree)
    assert res.code == 0, res.text
    assert git(tree, "rev-list", "--count", f"{start}..HEAD") == "3"


def test_stale_lock_before_any_run_is_refused(setup):
    tree, prof, ws = setup
    (tree / ".git" / "index.lock").write_text("")
    before = tree_state(tree)
    assert_error(_patch(prof, ws, tree), "index.lock", "remove")
    assert tree_state(tree) == before


def test_foreign_am_session_is_refused(setup, tmp_path):
    tree, prof, ws = setup
    b = (tmp_path / "series-b" / "0001-bfix1.patch").read_text()
    (tmp_path / "stuck.patch").write_text(b.replace("-rproc 5\n", "-rproc five\n"))
    git(tree, "am", "--3way", str(tmp_path / "stuck.patch"), check=False)
    assert (tree / ".git/rebase-apply").is_dir()
    before = tree_state(tree)
    assert_error(_patch(prof, ws, tree), "did not start", "git am --abort")
    assert tree_state(tree) == before


def test_dry_run_on_a_killed_tree_does_not_recover(setup):
    tree, prof, ws, _ = _killed_mid_series(setup)
    before = tree_state(tree)
    res = _patch(prof, ws, tree, "--check")
    assert "Traceback" not in res.text
    assert "interrupted patch run" in res.text and "without --check" in res.text
    assert tree_state(tree) == before


def test_pipeline_recovers_a_killed_patch_stage(tmp_path):
    """kill -9 of the group during the pipeline's git am: the next run recovers it in the
    workspace (no 'stash them', nothing put in the user's stash)."""
    tree = make_tree(tmp_path / "tree")
    a, b = two_series(tree, tmp_path)
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [a, b])
    ws = tmp_path / "ws"
    assert cli("fetch", "--profile", str(prof), "--workspace", str(ws)).code == 0
    src = ws / "hostile" / "src"
    _hook(src, "pre-applypatch", 2)
    proc = cli_proc("patch", "--profile", str(prof), "--workspace", str(ws))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    _drop_hooks(src)
    res = cli("patch", "--profile", str(prof), "--workspace", str(ws))
    assert res.code == 0, res.text
    assert "recovering the interrupted patch run" in res.text
    assert "stash" not in res.text.replace("git stash", "")
    assert "series changed" not in res.text
    assert git(src, "stash", "list") == ""
    assert git(src, "rev-list", "--count", "HEAD") == "4"


# ---------------------------------------------------------------- one transaction
@pytest.mark.parametrize("breakage", ["conflict", "corrupt", "am-fails"])
def test_failure_in_second_series_leaves_tree_byte_for_byte(tmp_path, breakage):
    tree = make_tree(tmp_path / "tree")
    a, b = two_series(tree, tmp_path, conflict_second=breakage == "conflict")
    if breakage == "corrupt":
        (b / "0001-bfix1.patch").write_text("From nobody\nSubject: x\n\n---\ndiff --git broken\n")
    if breakage == "am-fails":
        _hook(tree, "pre-applypatch", 3, "exit 1")
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [a, b])
    before = tree_state(tree)
    text = assert_error(_patch(prof, tmp_path / "ws", tree), "0001-bfix1.patch")
    if breakage == "conflict":
        assert "the series before it were undone" in text
    elif breakage == "corrupt":
        assert "regenerate it with git format-patch" in text
    else:
        assert "reset to" in text and "killed" not in text
    _drop_hooks(tree)
    # the series before were applied, then reset: the index is rewritten (same entries,
    # new stat data) and ORIG_HEAD written; everything else is byte-for-byte
    assert logical(tree_state(tree)) == logical(before)


def test_two_series_apply_as_one_transaction(setup):
    tree, prof, ws = setup
    start = git(tree, "rev-parse", "HEAD")
    res = _patch(prof, ws, tree)
    assert res.code == 0, res.text
    assert git(tree, "rev-list", "--count", f"{start}..HEAD") == "3"
    assert not (tree / STATE).exists()


def test_signal_killed_git_am_is_not_blamed_on_the_patch(setup, tmp_path):
    tree, prof, ws = setup
    real = shutil.which("git")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "git").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = am ] && [ "$2" = --3way ]; then kill -KILL $$; fi\nexec {real} "$@"\n')
    (bindir / "git").chmod(0o755)
    before = tree_state(tree)
    proc = cli_proc("patch", "--profile", str(prof), "--workspace", str(ws), "--tree",
                    str(tree), env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    text = assert_error(proc, "SIGKILL", "the patch is not at fault")
    assert "refresh the patch" not in text
    assert logical(tree_state(tree)) == logical(before)


# ---------------------------------------------------------------- file systems
@pytest.fixture
def mounts():
    made: list[Path] = []
    yield made
    for m in reversed(made):
        subprocess.run(["umount", "-l", str(m)], check=False)


def _ro_copy(tree: Path, where: Path, mounts: list[Path]) -> Path:
    where.mkdir()
    subprocess.run(["mount", "--bind", str(tree), str(where)], check=True)
    mounts.append(where)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], check=True)
    return where


def test_check_on_read_only_tree_works_and_writes_nothing(setup, tmp_path, mounts):
    tree, prof, ws = setup
    ro = _ro_copy(tree, tmp_path / "ro", mounts)
    before = tree_state(tree)
    res = _patch(prof, ws, ro, "--check")
    assert res.code == 0, res.text
    assert "Traceback" not in res.text and "fix1.patch" in res.text
    assert tree_state(tree) == before


def test_check_on_read_only_dirty_tree_warns(setup, tmp_path, mounts):
    tree, prof, ws = setup
    (tree / "Makefile").write_text((tree / "Makefile").read_text() + "# edit\n")
    ro = _ro_copy(tree, tmp_path / "ro", mounts)
    before = tree_state(tree)
    res = _patch(prof, ws, ro, "--check")
    assert res.code == 0 and "uncommitted changes" in res.text, res.text
    assert tree_state(tree) == before


def test_patch_matrix_on_read_only_tree(setup, tmp_path, mounts):
    tree, _prof, _ws = setup
    ro = _ro_copy(tree, tmp_path / "ro", mounts)
    before = tree_state(tree)
    res = cli("patch-matrix", "--series", str(tmp_path / "series-a"), "--tree", f"ro={ro}")
    assert res.code == 0, res.text
    assert "afix1" in res.text
    assert tree_state(tree) == before


def test_apply_on_read_only_tree_is_a_clean_error(setup, tmp_path, mounts):
    tree, prof, ws = setup
    ro = _ro_copy(tree, tmp_path / "ro", mounts)
    before = tree_state(tree)
    assert_error(_patch(prof, ws, ro), "read-only", str(ro))
    assert tree_state(tree) == before


def test_check_writes_nothing_into_a_writable_tree(setup):
    tree, prof, ws = setup
    before = tree_state(tree)
    assert _patch(prof, ws, tree, "--check").code == 0
    assert tree_state(tree) == before


def _full_tmpfs(where: Path, mounts: list[Path], size: str = "4m") -> Path:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True)
    mounts.append(where)
    return where


def _fill(fs: Path) -> None:
    subprocess.run(["dd", "if=/dev/zero", f"of={fs}/filler", "bs=64k"], capture_output=True,
                   check=False)


def test_full_disk_before_apply_changes_nothing(tmp_path, mounts):
    fs = _full_tmpfs(tmp_path / "fs", mounts)
    tree = make_tree(fs / "tree")
    a, b = two_series(tree, tmp_path)
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [a, b])
    _fill(fs)
    before = tree_state(tree)
    assert_error(_patch(prof, tmp_path / "ws", tree), "No space left on device")
    assert tree_state(tree) == before


def test_full_workspace_disk_is_a_clean_error(tmp_path, mounts):
    fs = _full_tmpfs(tmp_path / "fs", mounts, "1m")
    tree = make_tree(tmp_path / "tree")
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [])
    _fill(fs)
    res = cli("fetch", "--profile", str(prof), "--workspace", str(fs / "ws"))
    assert_error(res, "No space left on device")
    assert not (fs / "ws" / "hostile" / "src").exists()
    assert not list((fs / "ws" / "hostile").glob("src.partial*")) \
        if (fs / "ws" / "hostile").exists() else True


@pytest.mark.parametrize("free_pages", [6, 16, 18, 22])
def test_full_disk_inside_git_am_says_so(tmp_path, mounts, free_pages):
    """The tmpfs is filled to leave a few 4 KiB pages: git am runs out of space while
    writing objects, the index or a ref; the advice is the full disk, not the patch."""
    fs = _full_tmpfs(tmp_path / "fs", mounts)
    tree = make_tree(fs / "tree")
    a, b = two_series(tree, tmp_path)
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [a, b])
    _fill(fs)
    filler = fs / "filler"
    os.truncate(filler, filler.stat().st_size - free_pages * 4096)
    start = git(tree, "rev-parse", "HEAD")
    text = assert_error(_patch(prof, tmp_path / "ws", tree), "no space left", "free space")
    assert "refresh the patch" not in text
    assert git(tree, "rev-parse", "HEAD") == start
    assert git(tree, "status", "--porcelain", "--untracked-files=no") == ""
    assert not (tree / STATE).exists()


@pytest.mark.parametrize("how", ["patch --check", "patch-matrix"])
def test_dry_run_does_not_refresh_the_index(setup, tmp_path, how):
    """A touched, unchanged file: a stat refresh would rewrite .git/index; a dry run
    must leave even that file byte-for-byte."""
    tree, prof, ws = setup
    core = tree / "drivers/remoteproc/core.c"
    os.utime(core, (time.time() + 5, time.time() + 5))
    before = tree_state(tree)
    if how == "patch-matrix":
        res = cli("patch-matrix", "--series", str(tmp_path / "series-a"), "--tree", f"t={tree}")
    else:
        res = _patch(prof, ws, tree, "--check")
    assert res.code == 0, res.text
    assert tree_state(tree) == before


def test_restore_blocked_by_a_lock_keeps_state_then_recovers(setup):
    """git am fails on the second patch and leaves an index.lock (a hook makes it): the
    in-run restore cannot reset, so it says so and keeps the state file; once the lock
    is removed the next run recovers, and no commit of the branch is lost."""
    tree, prof, ws = setup
    start = git(tree, "rev-parse", "HEAD")
    _hook(tree, "pre-applypatch", 2, f": > {tree}/.git/index.lock; exit 1")
    text = assert_error(_patch(prof, ws, tree), "index.lock", "could not restore")
    assert (tree / STATE).is_file()
    _drop_hooks(tree)
    (tree / ".git" / "index.lock").unlink()
    res = _patch(prof, ws, tree)
    assert res.code == 0, res.text + text
    assert "recovering the interrupted patch run" in res.err
    assert git(tree, "rev-list", "--count", f"{start}..HEAD") == "3"
    assert git(tree, "merge-base", "--is-ancestor", start, "HEAD", check=False) == ""
