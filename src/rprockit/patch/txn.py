"""One transaction per patch run, and the only recovery that may reset a tree.

Before the first ``git am`` of a run, :class:`Transaction` writes
``.git/rprockit-patch-state.json`` (format 2)::

    {"format": 2, "pid": 4242, "pid_start": "123456", "boot_id": "...",
     "start": "<40 hex>", "branch": "refs/heads/main" | null,
     "created": ["<40 hex>", ...],           # commits git am made, in order
     "am": {"patch": "/abs/0002-x.patch", "files": ["drivers/..."], "since": 1700000000.0}
           | null,                            # the git am running now, if any
     "series": ["/abs/patches/imx-rproc", ...], "started": "2026-12-01T16:00:00+0000"}

It is rewritten (atomically) before and after every ``git am``.  A failure or
interrupt inside the run resets the tree to ``start`` and removes the file.

When the process dies instead (``kill -9``, power loss), the next run finds the
file and :func:`recover` decides:

* the recorded process (pid *and* its start time in ``/proc/<pid>/stat``,
  same boot) still runs: refuse, change nothing;
* the tree is not as the run left it (HEAD on another branch, HEAD not
  ``start`` nor one of ``created``, edits outside the files of the pending
  patch, a ``git am`` session or ``index.lock`` it did not make, another git
  operation): refuse, explain, change nothing;
* otherwise say so on the console, save the work tree and index as a commit
  under ``refs/rprockit/recovered/<time>`` (parent: HEAD, so the created commits
  stay reachable too), end the pending ``git am`` and reset to ``start``.

A stale ``index.lock`` counts as the run's own only when the run was inside
``git am`` when it was made (its mtime is not older than the ``am.since``
time) and no process has its working directory in the tree.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..files import write_json_atomic
from ..git import IDENTITY, is_sha
from ..runner import Runner
from .diff import parse_patch
from .errors import TreeStateError
from .tree import COMMITTER, STATE_FILE, Git

STATE_FORMAT = 2
#: Where recovery keeps the snapshot of what it reset.
RECOVERED_REFS = "refs/rprockit/recovered"

Say = Callable[[str], None]


def _quiet(_msg: str) -> None:
    return None


def process_start(pid: int) -> str | None:
    """Start time of process ``pid`` (clock ticks since boot, ``/proc/<pid>/stat`` field 22).

    Returns:
        The start time as a string, or None when no such process exists.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def boot_id() -> str:
    """This boot's id (``/proc/sys/kernel/random/boot_id``), '' when unknown."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _alive(state: dict[str, Any]) -> bool:
    pid = state.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    if state.get("boot_id") != boot_id() or state.get("host") != socket.gethostname():
        return False
    return process_start(pid) == state.get("pid_start")


def _processes_in(tree: Path) -> list[int]:
    """Pids (other than ours) whose working directory is inside ``tree``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(d / "cwd"))
        except OSError:
            continue
        if cwd == tree or tree in cwd.parents:
            out.append(int(d.name))
    return out


def read_state(git: Git) -> dict[str, Any] | None:
    """The state file of an unfinished run: its content, ``{"corrupt": reason}``, or None."""
    path = git.git_dir() / STATE_FILE
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        return {"corrupt": "it is not a regular file"}
    try:
        data = json.loads(path.read_bytes()[: 1 << 20])
    except (OSError, ValueError) as e:
        return {"corrupt": f"it is not JSON ({e})"}
    if not isinstance(data, dict):
        return {"corrupt": "it is not a JSON object"}
    if data.get("format") != STATE_FORMAT:
        return {"corrupt": "it was written by an older rprockit (no process or created "
                           "commits recorded)"}
    created = data.get("created")
    if not is_sha(data.get("start")) or not isinstance(created, list) \
            or not all(is_sha(c) for c in created) or not isinstance(data.get("pid"), int):
        return {"corrupt": "its start commit, created commits or pid are missing or invalid"}
    return data


class Transaction:
    """The patch run in progress on one tree (see the module docstring).

    Args:
        git: the tree (checked clean by the caller).
        series: the series directories of the run (recorded for the message).
    """

    def __init__(self, git: Git, series: list[Path]):
        self.git = git
        self.path = git.git_dir() / STATE_FILE
        self.start = git.head()
        self.state: dict[str, Any] = {
            "format": STATE_FORMAT, "pid": os.getpid(), "pid_start": process_start(os.getpid()),
            "boot_id": boot_id(), "host": socket.gethostname(), "start": self.start,
            "branch": symbolic_head(git), "created": [], "am": None,
            "series": [str(s) for s in series],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self._write()

    def _write(self) -> None:
        write_json_atomic(self.path, self.state, sort_keys=False)

    def am(self, patch: Path, options: list[str]):
        """Run ``git am --3way`` for one patch, recording it before and its commit after.

        Returns:
            The completed process (not checked: the caller reads its status).
        """
        diffs = parse_patch(patch.read_text(errors="replace"))
        files = sorted({f.path for f in diffs} | {f.old_path for f in diffs if f.old_path})
        self.state["am"] = {"patch": str(patch), "files": files, "since": time.time() - 1}
        self._write()
        proc = self.git("am", "--3way", "--committer-date-is-author-date", *options, patch,
                        check=False, env=COMMITTER)
        if proc.returncode == 0:
            self.state["created"].append(self.git.head())
            self.state["am"] = None
            self._write()
        return proc

    def rollback(self) -> None:
        """Put the tree back on the start commit and drop the state file.

        Raises:
            TreeStateError: the tree could not be restored; the state file stays so
                that the next run can recover it once the cause is removed.
        """
        restore(self.git, self.start)
        self.path.unlink(missing_ok=True)

    def commit(self) -> None:
        """The run succeeded: drop the state file."""
        self.path.unlink(missing_ok=True)


def symbolic_head(git: Git) -> str | None:
    """The branch HEAD is on (``refs/heads/...``), None when detached."""
    proc = git("symbolic-ref", "-q", "HEAD", check=False)
    return proc.stdout.strip() or None


def restore(git: Git, start: str) -> None:
    """Abort a pending ``git am`` and hard-reset the tree to ``start``.

    Only for a tree that was clean at ``start`` and that only this run changed.

    Raises:
        TreeStateError: HEAD is not ``start`` afterwards, or the tree is not clean
            (e.g. a stale ``index.lock`` blocked git).
    """
    aborted = not git.am_in_progress() or \
        git("am", "--abort", check=False, env=COMMITTER).returncode == 0
    if not aborted:
        git("am", "--quit", check=False)
    proc = git("reset", "-q", "--hard", start, check=False, env=COMMITTER)
    if git.head() != start or git.dirty(refresh=False):
        lock = git.git_dir() / "index.lock"
        why = f" ({lock} exists)" if lock.exists() else ""
        raise TreeStateError(git.tree, f"could not restore it to {start}{why}",
                             f"inspect it; if no git process runs there, remove {lock} "
                             "and run rprockit again to finish the recovery",
                             proc.stderr.strip())


def _dirty_paths(lines: list[str]) -> set[str]:
    out: set[str] = set()
    for ln in lines:
        path = ln[3:]
        out.update(p.strip('"') for p in path.split(" -> "))
    return out


def _made_by_pending_am(git: Git, state: dict[str, Any], head: str | None) -> bool:
    """True when ``head`` is the commit the pending ``git am`` made just before the run
    died (its parent is the last known commit and rprockit committed it)."""
    if head is None or not isinstance(state.get("am"), dict):
        return False
    last = (state["created"] or [state["start"]])[-1]
    info = git("log", "-1", "--format=%P%n%ce", head, "--", check=False).stdout.split("\n")
    return len(info) >= 2 and info[0] == last and info[1] == COMMITTER["GIT_COMMITTER_EMAIL"]


def _problems(git: Git, state: dict[str, Any]) -> tuple[list[str], Path | None]:
    """What differs from the tree the run left; and its own stale index.lock, if any."""
    problems: list[str] = []
    start, created = state["start"], list(state["created"])
    branch, head = symbolic_head(git), git.head_or_none()
    if branch != state.get("branch"):
        problems.append(f"HEAD was on {state.get('branch') or 'a detached HEAD'}, "
                        f"it is now on {branch or 'a detached HEAD'}")
    elif head not in (start, *created) and not _made_by_pending_am(git, state, head):
        problems.append(f"HEAD is {head}, neither the start commit {start[:12]} nor a commit "
                        "the run created (new commits were made since)")
    am = state.get("am")
    gd = git.git_dir()
    if git.am_in_progress() and not isinstance(am, dict):
        problems.append(f"a 'git am' session ({gd / 'rebase-apply'}) exists that the run "
                        "did not start")
    other = git.other_operation()
    if other:
        problems.append(f"a {other} is in progress")
    own_lock: Path | None = None
    lock = gd / "index.lock"
    if lock.exists():
        busy = _processes_in(git.tree)
        ours = isinstance(am, dict) and lock.stat().st_mtime >= float(am.get("since", 0)) \
            and not busy
        if ours:
            own_lock = lock
        else:
            who = f"processes {busy} work in the tree" if busy else \
                "it is older than the interrupted git am"
            problems.append(f"{lock} exists and is not the run's own ({who})")
    allowed = set(am.get("files", [])) if isinstance(am, dict) else set()
    foreign = sorted(_dirty_paths(git.dirty(refresh=False)) - allowed)
    if foreign:
        problems.append("tracked files were changed since: " + ", ".join(foreign[:10])
                        + (f" and {len(foreign) - 10} more" if len(foreign) > 10 else ""))
    return problems, own_lock


def snapshot(git: Git, message: str) -> tuple[str, str]:
    """Save the work tree and index of ``git.tree`` as a commit under :data:`RECOVERED_REFS`.

    The tracked files (as in the index, conflicted ones too) are read from the
    work tree into a temporary index; the commit's parent is HEAD.

    Returns:
        ``(ref, commit)``.
    """
    gd = git.git_dir()
    tmp_index = gd / f"rprockit-snapshot-index-{os.getpid()}"
    try:
        if (gd / "index").is_file():
            shutil.copyfile(gd / "index", tmp_index)
        env = {"GIT_INDEX_FILE": str(tmp_index)}
        if not tmp_index.exists():
            git("read-tree", "HEAD", env=env)
        git("add", "-u", "--", ".", env=env)
        tree = git("write-tree", env=env).stdout.strip()
        commit = git("commit-tree", tree, "-p", "HEAD", "-m", message,
                     env=IDENTITY).stdout.strip()
    finally:
        tmp_index.unlink(missing_ok=True)
    ref = f"{RECOVERED_REFS}/{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    git("update-ref", "-m", "rprockit: snapshot before recovery", ref, commit)
    return ref, commit


def recover(tree: Path | Git, runner: Runner | None = None, say: Say = _quiet) -> str | None:
    """Recover the tree from a patch run that died, or refuse and change nothing.

    Args:
        tree: the kernel git work tree (or its :class:`Git`).
        runner: runs git.
        say: one-line console messages (what is recovered, where the snapshot is).

    Returns:
        The start commit the tree was put back on, or None when there was nothing
        to recover.

    Raises:
        TreeStateError: a ``git am`` session rprockit did not start; an unreadable
            or old state file; the run is still alive; the tree changed since the
            run died (each names what differs and the commands to resolve it).
    """
    git = tree if isinstance(tree, Git) else Git(Path(tree), runner or Runner())
    state = read_state(git)
    path = git.git_dir() / STATE_FILE
    if state is None:
        if git.am_in_progress():
            raise TreeStateError(git.tree, "a 'git am' session is in progress "
                                 f"({git.git_dir() / 'rebase-apply'}) that rprockit did not "
                                 "start", "finish it with 'git am --continue' or drop it with "
                                 "'git am --abort', then run again")
        return None
    keep = (f"to keep the tree as it is, delete {path}; to undo the run yourself: "
            f"git -C {git.tree} am --abort; git -C {git.tree} reset --hard "
            f"{state.get('start', '<start commit>')}")
    if "corrupt" in state:
        raise TreeStateError(git.tree, f"{path} is left by an interrupted patch run, but "
                             f"{state['corrupt']}; nothing was changed",
                             "check the tree by hand (git status, git log), then delete "
                             "that file")
    who = f"pid {state['pid']}, started {state.get('started', '?')}"
    if _alive(state):
        raise TreeStateError(git.tree, f"an rprockit patch run ({who}) is still working on "
                             "it; nothing was changed", "wait for it to finish (or stop it), "
                             "then run again")
    problems, own_lock = _problems(git, state)
    if problems:
        raise TreeStateError(git.tree, f"an interrupted patch run ({who}) left {path}, but the "
                             "tree is no longer as that run left it, so nothing was reset: "
                             + "; ".join(problems), keep)
    start = state["start"]
    say(f"[patch] recovering the interrupted patch run ({who}) in {git.tree}: "
        f"back to its start commit {start[:12]}")
    if own_lock is not None:
        say(f"[patch] removing {own_lock}, left by the killed git am")
        own_lock.unlink(missing_ok=True)
    if git.head() != start or git.dirty(refresh=False):
        ref, commit = snapshot(git, f"rprockit: tree before recovering the patch run of "
                               f"{state.get('started', '?')}\n\nHEAD and work tree as the "
                               f"interrupted run ({who}) left them.")
        say(f"[patch] saved the tree as it was in {ref} ({commit[:12]}): "
            f"git -C {git.tree} show {ref}")
    restore(git, start)
    path.unlink(missing_ok=True)
    say(f"[patch] recovered: {git.tree} is back on {start[:12]}")
    return start
