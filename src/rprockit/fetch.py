"""fetch stage: bring the profile's kernel source into ``<workspace>/src`` as git.

Three kinds of source (``Profile.source``):

* ``git``: a URL with a branch, tag or sha.  Shallow by default.  The ref is
  resolved to a commit and pinned in a lock file next to the profile
  (``<profile>.lock.yaml``, as kas pins refs in ``*.lock.yml``).  A later
  fetch checks out exactly the locked commit and fails if it is gone.
* ``path``: a local git repository, cloned with ``--shared`` (no copy of its
  objects) and pinned the same way; the user's tree is never modified.
* ``debian_package``: Debian's ``/usr/src/linux-source-X.Y.tar.xz``, unpacked
  once into a git repository with one baseline commit.

Re-running is a no-op when the tree is at its pinned baseline (or at patches
on top of it) and clean.  A dirty tree is refused, never reset.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import git
import yaml

from .errors import FetchError, UserError
from .profile import Profile
from .runner import Runner, require_tool
from .workspace import Workspace, fingerprint

#: Fixed identity and date for the baseline commit of unpacked tarballs, so
#: the same tarball always gives the same commit id.
BASELINE_IDENTITY = {
    "GIT_AUTHOR_NAME": "rprockit", "GIT_AUTHOR_EMAIL": "rprockit@localhost",
    "GIT_COMMITTER_NAME": "rprockit", "GIT_COMMITTER_EMAIL": "rprockit@localhost",
}


class DirtyTreeError(FetchError):
    def __init__(self, tree: Path, status: str):
        lines = status.splitlines()
        more = f"\n  ... and {len(lines) - 10} more" if len(lines) > 10 else ""
        super().__init__(
            f"kernel tree {tree} has local changes; rprockit never resets them:\n  "
            + "\n  ".join(lines[:10]) + more
            + f"\nCommit or stash them (git -C {tree} stash -u), or remove the tree to start over.")


@dataclass
class FetchResult:
    """Outcome of the fetch stage.

    Attributes:
        tree: the kernel work tree.
        baseline: the pinned commit every later stage starts from (40 hex).
        skipped: True when nothing had to be done.
        detail: human summary (package version, URL and ref).
    """

    tree: Path
    baseline: str
    skipped: bool
    detail: str


def lock_path(profile: Profile) -> Path:
    return profile.file.with_name(profile.file.stem + ".lock.yaml")


def read_lock(profile: Profile) -> dict | None:
    p = lock_path(profile)
    if not p.is_file():
        return None
    data = yaml.safe_load(p.read_text()) or {}
    src = data.get("source") or {}
    # an all-digit sha would load as an int
    return {k: str(v) for k, v in src.items()} or None


def write_lock(profile: Profile, data: dict) -> None:
    p = lock_path(profile)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text("# Written by rprockit fetch: the commit this profile is pinned to.\n"
                   "# Delete this file to re-resolve the ref.\n"
                   + yaml.safe_dump({"format": 1, "source": data}, sort_keys=True))
    os.replace(tmp, p)


def dirty_status(tree: Path) -> str:
    """``git status --porcelain`` of ``tree`` ('' when clean)."""
    return git.Repo(tree).git.status("--porcelain")


def require_clean(tree: Path) -> None:
    """Raises DirtyTreeError when ``tree`` has changes or untracked files."""
    st = dirty_status(tree)
    if st:
        raise DirtyTreeError(tree, st)


def _tree_ok(tree: Path, baseline: str) -> bool:
    """True when ``tree`` is a git repo whose HEAD is ``baseline`` or descends from it."""
    if not (tree / ".git").exists():
        return False
    repo = git.Repo(tree)
    try:
        head = repo.head.commit.hexsha
    except ValueError:
        return False
    return head == baseline or repo.is_ancestor(baseline, head)


def debian_tarball(package: str) -> Path:
    """Path of the tarball that Debian's ``linux-source-X.Y`` package installs.

    Raises:
        UserError: the package is not installed (names the apt-get command).
    """
    p = Path("/usr/src") / f"{package}.tar.xz"
    if not p.is_file():
        raise UserError(f"{p} not found: the Debian package {package} is not installed; "
                        f"install it with: apt-get install {package}")
    return p


def _package_version(package: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                             capture_output=True, text=True, check=False)
        return out.stdout.strip() or "unknown"
    except FileNotFoundError:
        return "unknown"


def _fetch_debian(profile: Profile, ws: Workspace, runner: Runner, progress) -> FetchResult:
    pkg = profile.source.debian_package
    tarball = debian_tarball(pkg)
    st = tarball.stat()
    version = _package_version(pkg)
    fp = fingerprint("debian", pkg, version, st.st_size, int(st.st_mtime))
    state = ws.load_state("fetch")
    if state and state.get("fingerprint") == fp and _tree_ok(ws.src, state["baseline"]):
        require_clean(ws.src)
        return FetchResult(ws.src, state["baseline"], True, f"{pkg} {version}")
    if ws.src.exists():
        if (ws.src / ".git").exists():
            require_clean(ws.src)
        raise FetchError(
            f"{ws.src} exists but does not hold {pkg} {version}; remove it to unpack again "
            f"(rm -rf {ws.src})")
    require_tool("tar")
    tmp = ws.base / "src.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    progress(f"unpacking {tarball} ({st.st_size // (1 << 20)} MiB)")
    runner.run(["tar", "-xJf", tarball, "-C", tmp])
    tops = list(tmp.iterdir())
    if len(tops) != 1 or not tops[0].is_dir():
        raise FetchError(f"{tarball} does not hold a single top directory")
    tree = tops[0]
    progress("creating the baseline git commit")
    env = dict(BASELINE_IDENTITY, GIT_AUTHOR_DATE=f"@{int(st.st_mtime)} +0000",
               GIT_COMMITTER_DATE=f"@{int(st.st_mtime)} +0000")
    runner.run(["git", "init", "-q", "-b", "rprockit-baseline", tree])
    runner.run(["git", "-c", "core.autocrlf=false", "add", "-A", "-f"], cwd=tree)
    runner.run(["git", "commit", "-q", "--no-gpg-sign", "--no-verify", "-m",
                f"baseline: {pkg} {version}\n\nUnpacked from {tarball} by rprockit fetch."],
               cwd=tree, env=env)
    os.replace(tree, ws.src)
    shutil.rmtree(tmp, ignore_errors=True)
    baseline = git.Repo(ws.src).head.commit.hexsha
    ws.save_state("fetch", fp, baseline=baseline, source=f"{pkg} {version}")
    return FetchResult(ws.src, baseline, False, f"{pkg} {version}")


def _remote_url(profile: Profile) -> str:
    s = profile.source
    return s.git_url if s.git_url else str(s.path)


def _fetch_git(profile: Profile, ws: Workspace, runner: Runner, progress) -> FetchResult:
    s = profile.source
    url = _remote_url(profile)
    ref = s.git_ref or "HEAD"
    shallow = s.shallow and s.kind == "git"
    lock = read_lock(profile)
    if lock and (lock.get("url") != url or lock.get("ref") != ref):
        lock = None  # the profile changed its source: re-resolve
    if s.kind == "path" and not (Path(url) / ".git").exists() and not Path(url, "HEAD").exists():
        raise FetchError(f"source.path {url} is not a git repository "
                         f"(profile {profile.file}, line {profile.line_of('source', 'path')})")
    state = ws.load_state("fetch")
    if lock and state and state.get("baseline") == lock["commit"] and _tree_ok(ws.src, lock["commit"]):
        require_clean(ws.src)
        return FetchResult(ws.src, lock["commit"], True, f"{url} {ref} @ {lock['commit'][:12]}")
    if ws.src.exists():
        if (ws.src / ".git").exists():
            require_clean(ws.src)
        else:
            raise FetchError(f"{ws.src} exists and is not a git tree; remove it")
    else:
        ws.src.mkdir(parents=True)
        repo = git.Repo.init(ws.src)
        repo.create_remote("origin", url)
    repo = git.Repo(ws.src)
    want = lock["commit"] if lock else ref
    args = ["fetch", "--no-tags", "origin", want]
    if shallow:
        args.insert(1, "--depth=1")
    progress(f"fetching {url} {want}")
    try:
        repo.git.execute(["git", *args])
    except git.GitCommandError as e:
        err = (e.stderr or "").strip()
        if lock:
            raise FetchError(
                f"the locked commit {lock['commit']} of {url} cannot be fetched any more (it was "
                f"removed or rewritten upstream): {err}\nRemove {lock_path(profile)} to re-resolve "
                f"'{ref}', or pin another ref in {profile.file}.") from e
        raise FetchError(f"cannot fetch '{ref}' from {url}: {err}\nCheck the URL and ref in "
                         f"{profile.file} (line {profile.line_of('source', 'git')}) and that the "
                         "host is reachable.") from e
    commit = repo.git.rev_parse("FETCH_HEAD^{commit}")
    if lock and commit != lock["commit"]:
        raise FetchError(f"{url} returned {commit} for locked commit {lock['commit']}")
    repo.git.checkout("-q", "--detach", commit)
    if not lock:
        write_lock(profile, {"url": url, "ref": ref, "commit": commit})
    ws.save_state("fetch", fingerprint("git", url, commit), baseline=commit, source=f"{url} {ref}")
    return FetchResult(ws.src, commit, False, f"{url} {ref} @ {commit[:12]}")


def fetch(profile: Profile, ws: Workspace, runner: Runner | None = None,
          progress=lambda msg: None) -> FetchResult:
    """Run the fetch stage.

    Args:
        profile: the loaded profile.
        ws: the profile's workspace.
        runner: runs tar and git.
        progress: called with one-line progress messages.

    Returns:
        The tree and its pinned baseline commit.

    Raises:
        FetchError: unreachable URL, vanished locked commit, foreign tree.
        DirtyTreeError: the existing tree has local changes.
        UserError: the Debian source package is missing.
    """
    runner = runner or Runner()
    if profile.source.kind == "debian":
        return _fetch_debian(profile, ws, runner, progress)
    return _fetch_git(profile, ws, runner, progress)
