"""Helpers of the hostile-input and fault suite (tests/test_hostile_*.py).

* :func:`tree_state` snapshots everything a run must not change in a git
  tree (HEAD, refs, index bytes, staged entries, work tree bytes and modes,
  stash list, untracked files, the top of ``.git``); compare two snapshots
  with ``==``.
* :func:`make_tree` / :func:`make_series` build small kernel-like git trees and
  real ``git format-patch`` series, so no kernel build is needed.
* :func:`cli` runs the ``rprockit`` console script in-process (fast);
  :func:`cli_proc` in a subprocess of its own session (for killing it).
* :func:`assert_error` checks exit code, no traceback and the culprit named.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import yaml

from rprockit.cli import main

ROOT = Path(__file__).resolve().parents[1]
AUTHOR = "Jane Dev <jane@example.com>"
BASE = [f"line {i:02d}" for i in range(1, 61)]


def git(repo: Path, *args: str, check: bool = True, env: dict | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=False, env=None if env is None else {**os.environ, **env})
    if check and proc.returncode:
        raise AssertionError(f"git {args} failed: {proc.stderr}")
    return proc.stdout.strip()


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def tree_state(repo: Path) -> dict:
    """Everything about ``repo`` that a refused or dry run must leave as it was."""
    def q(*a: str) -> str:
        return git(repo, "--no-optional-locks", *a, check=False)

    work = {}
    for p in sorted(repo.rglob("*")):
        rel = p.relative_to(repo)
        if rel.parts[0] == ".git":
            continue
        if p.is_symlink():
            work[str(rel)] = ("link", os.readlink(p))
        elif p.is_file():
            work[str(rel)] = (oct(p.stat().st_mode), _sha(p))
    gd = repo / ".git"
    index = gd / "index"
    return {
        "HEAD": (gd / "HEAD").read_text(), "head": q("rev-parse", "HEAD"),
        "refs": q("for-each-ref", "--format=%(refname) %(objectname)"),
        "index": _sha(index) if index.exists() else None,
        "staged": q("ls-files", "-s"), "stash": q("stash", "list", "--format=%H %gs"),
        "untracked": q("ls-files", "-o", "--exclude-standard"),
        "worktree": work,
        "gitdir": sorted(x.name for x in gd.iterdir()),
        "gitdir_files": {x.name: _sha(x) for x in gd.iterdir() if x.is_file()},
    }


def logical(state: dict) -> dict:
    """``state`` without what a reset rewrites but keeps equal in content: the index
    file's bytes (stat data) and ORIG_HEAD."""
    out = {k: v for k, v in state.items() if k not in ("index", "gitdir_files")}
    out["gitdir"] = [n for n in state["gitdir"] if n != "ORIG_HEAD"]
    return out


def write(repo: Path, rel: str, lines: list[str]) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_tree(path: Path, version: tuple[int, int] = (5, 4), nxp: bool = False) -> Path:
    """A tiny kernel-like git tree (Makefile + drivers/remoteproc/core.c) on branch main.

    Mirrors the top-level Makefile version lines and drivers/remoteproc/ layout of a
    kernel tree (the NXP marker is drivers/rpmsg/imx_rpmsg.c, as in linux-imx).
    """
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    write(path, "Makefile", [f"VERSION = {version[0]}", f"PATCHLEVEL = {version[1]}",
                             "SUBLEVEL = 0", "EXTRAVERSION ="])
    write(path, "drivers/remoteproc/core.c", BASE)
    write(path, "drivers/remoteproc/imx_rproc.c", [f"rproc {i}" for i in range(40)])
    if nxp:
        write(path, "drivers/rpmsg/imx_rpmsg.c", ["/* imx rpmsg */"])
    git(path, "add", "-A")
    git(path, "commit", "-qm", "base")
    return path


def replace(rel: str, old: str, new: str):
    def edit(repo: Path) -> None:
        p = repo / rel
        p.write_text(p.read_text().replace(old, new))
    return edit


def make_patch(repo: Path, outdir: Path, name: str, edit, subject: str) -> str:
    """Commit ``edit(repo)`` as AUTHOR, format-patch it to ``outdir/name``, drop the commit."""
    edit(repo)
    git(repo, "add", "-A")
    msg = (f"{subject}\n\nFixes the test.\n\nUpstream-Status: Inappropriate [test only]\n"
           f"Signed-off-by: {AUTHOR}\n")
    git(repo, "commit", "-q", "--author", AUTHOR, "-m", msg)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / name).write_text(git(repo, "format-patch", "-1", "--stdout") + "\n")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    return name


def write_series(sdir: Path, names: list[str]) -> Path:
    sdir.mkdir(parents=True, exist_ok=True)
    (sdir / "series").write_text("# test series\n" + "".join(f"{n}\n" for n in names))
    patches = {n: {"fix": n.split(".")[0].lower()[:40],
                   "fixes": ["remoteproc remoteproc0: Boot failed: -22"],
                   "families": ["mainline", "nxp-5.4", "nxp-4.14"],
                   "upstream": {"status": "inappropriate", "reason": "test only"}}
               for n in names}
    (sdir / "meta.yaml").write_text(yaml.safe_dump({"format": 1, "patches": patches},
                                                   sort_keys=False))
    return sdir


def make_series(tree: Path, sdir: Path, edits: list[tuple[str, str, str]],
                prefix: str = "") -> Path:
    """A series of stacked patches; each edit is ``(file, old, new)`` applied in turn."""
    names = []
    for i, (rel, old, new) in enumerate(edits, 1):
        name = f"{i:04d}-{prefix}fix{i}.patch"
        make_patch(tree, sdir, name, replace(rel, old, new), f"remoteproc: {prefix}fix {i}")
        git(tree, "am", "-q", str(sdir / name))
        names.append(name)
    git(tree, "reset", "-q", "--hard", f"HEAD~{len(edits)}")
    return write_series(sdir, names)


def two_series(tree: Path, base: Path, conflict_second: bool = False) -> tuple[Path, Path]:
    """Series A (two stacked patches to core.c) and B (one patch to imx_rproc.c).

    With ``conflict_second`` B's patch changes a line the tree does not have.
    """
    a = make_series(tree, base / "series-a", [
        ("drivers/remoteproc/core.c", "line 10\n", "line 10 fixed\n"),
        ("drivers/remoteproc/core.c", "line 20\n", "line 20 fixed\n")], "a")
    b = make_series(tree, base / "series-b", [
        ("drivers/remoteproc/imx_rproc.c", "rproc 5\n", "rproc 5 fixed\n")], "b")
    if conflict_second:
        p = b / "0001-bfix1.patch"
        p.write_text(p.read_text().replace("-rproc 5\n", "-rproc five\n"))
    return a, b


def write_profile(path: Path, tree: Path, series: list[Path], name: str = "hostile",
                  extra: str = "", source: str | None = None) -> Path:
    src = source if source is not None else f"  path: {tree}\n"
    text = (f"format: 1\nname: {name}\nsource:\n{src}arch: arm\n"
            "cross_compile: arm-linux-gnueabihf-\nconfig:\n  base: allnoconfig\n"
            "build:\n  image: zImage\n"
            + ("patches:\n" + "".join(f"  - {s}\n" for s in series) if series else "")
            + extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(*args: str) -> Result:
    """Run ``rprockit ARGS`` in this process; a Python exception becomes code 1 + traceback."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        except BaseException:  # a bug: keep the traceback for the assertion message
            traceback.print_exc()
            code = 1
    return Result(code, out.getvalue(), err.getvalue())


def cli_proc(*args: str, env: dict | None = None, cwd: Path = ROOT,
             timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``rprockit ARGS`` as a subprocess leading its own process group."""
    return subprocess.run([sys.executable, "-c", "from rprockit.cli import main; main()", *args],
                          cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout, check=False, start_new_session=True)


def assert_error(res, *names: str, code: int = 2) -> str:
    """Exit ``code``, no traceback, every one of ``names`` in the output; return the output."""
    if isinstance(res, subprocess.CompletedProcess):
        rc, text = res.returncode, res.stdout + res.stderr
    else:
        rc, text = res.code, res.text
    assert rc == code, f"exit {rc}, expected {code}:\n{text}"
    assert "Traceback" not in text, text
    for n in names:
        assert n in text, f"{n!r} not in:\n{text}"
    return text
