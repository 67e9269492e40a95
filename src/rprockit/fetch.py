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
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import CommandError, DirtyTreeError, FetchError, UserError
from .files import write_text_atomic
from .git import IDENTITY, Git
from .profile import Profile
from .runner import Runner, require_tool
from .workspace import Workspace, fingerprint

__all__ = ["DirtyTreeError", "FetchResult", "fetch", "lock_path", "read_lock", "write_lock"]

#: Fixed identity (the date is the tarball's) for the baseline commit of unpacked
#: tarballs, so the same tarball always gives the same commit id.
BASELINE_IDENTITY = IDENTITY


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
    write_text_atomic(lock_path(profile),
                      "# Written by rprockit fetch: the commit this profile is pinned to.\n"
                      "# Delete this file to re-resolve the ref.\n"
                      + yaml.safe_dump({"format": 1, "source": data}, sort_keys=True))


def tree_at_baseline(tree: Path, baseline: str, runner: Runner | None = None) -> bool:
    """True when ``tree`` is a git repo whose HEAD is ``baseline`` or descends from it."""
    g = Git(tree, runner)
    head = g.head_or_none()
    if head is None:
        return False
    return head == baseline or g.is_ancestor(baseline, head)


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


def _package_version(package: str, runner: Runner) -> str:
    return runner.probe(["dpkg-query", "-W", "-f", "${Version}", "--", package]) or "unknown"


def _fetch_debian(profile: Profile, ws: Workspace, runner: Runner, progress) -> FetchResult:
    pkg = profile.source.debian_package
    assert pkg is not None  # source.kind == "debian"
    tarball = debian_tarball(pkg)
    st = tarball.stat()
    version = _package_version(pkg, runner)
    fp = fingerprint("debian", pkg, version, st.st_size, int(st.st_mtime))
    state = ws.load_state("fetch")
    if state and state.get("fingerprint") == fp and tree_at_baseline(ws.src, state["baseline"],
                                                                     runner):
        Git(ws.src, runner).require_clean()
        return FetchResult(ws.src, state["baseline"], True, f"{pkg} {version}")
    if ws.src.exists():
        if (ws.src / ".git").exists():
            Git(ws.src, runner).require_clean()
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
    g = Git(tree, runner)
    g.init("rprockit-baseline")
    g("-c", "core.autocrlf=false", "add", "-A", "-f")
    g("commit", "-q", "--no-gpg-sign", "--no-verify", "-m",
      f"baseline: {pkg} {version}\n\nUnpacked from {tarball} by rprockit fetch.", env=env)
    os.replace(tree, ws.src)
    shutil.rmtree(tmp, ignore_errors=True)
    baseline = Git(ws.src, runner).head()
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
    g = Git(ws.src, runner)
    if lock and state and state.get("baseline") == lock["commit"] \
            and tree_at_baseline(ws.src, lock["commit"], runner):
        g.require_clean()
        return FetchResult(ws.src, lock["commit"], True, f"{url} {ref} @ {lock['commit'][:12]}")
    if ws.src.exists():
        if g.is_repo():
            g.require_clean()
        else:
            raise FetchError(f"{ws.src} exists and is not a git tree; remove it")
    else:
        g.init()
        g.add_remote("origin", url)
    want = lock["commit"] if lock else ref
    progress(f"fetching {url} {want}")
    try:
        commit = g.fetch("origin", want, depth=1 if shallow else None)
    except CommandError as e:
        err = e.stderr_tail.strip()
        if lock:
            raise FetchError(
                f"the locked commit {lock['commit']} of {url} cannot be fetched any more (it was "
                f"removed or rewritten upstream): {err}\nRemove {lock_path(profile)} to re-resolve "
                f"'{ref}', or pin another ref in {profile.file}.") from e
        raise FetchError(f"cannot fetch '{ref}' from {url}: {err}\nCheck the URL and ref in "
                         f"{profile.file} (line {profile.line_of('source', 'git')}) and that the "
                         "host is reachable.") from e
    if lock and commit != lock["commit"]:
        raise FetchError(f"{url} returned {commit} for locked commit {lock['commit']}")
    g.checkout_detached(commit)
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
