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

A local mirror replaces a ``git`` URL without editing the profile (offline
users, tests): ``--mirror PATH`` on the command line or
``RPROCKIT_GIT_MIRROR`` in the environment, either a path (for the profile's
URL) or ``URL=PATH`` pairs separated by commas.  The refs and commits come
from the mirror; the lock file and the fingerprint keep the profile's URL, so
a tree fetched from a mirror pins the same commit as one fetched upstream.

Re-running is a no-op when the tree is at its pinned baseline (or at patches
on top of it) and clean.  A dirty tree is refused, never reset.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import (
    CommandError,
    DirtyTreeError,
    FetchError,
    InvalidFileError,
    InvalidValueError,
    UserError,
)
from .files import write_text_atomic
from .git import IDENTITY, Git, check_commit, check_ref, check_url
from .profile import Profile, expand_env
from .runner import Runner, require_tool
from .stage import Outcome, Stage, StageContext
from .workspace import Workspace
from .yamlfile import parse

__all__ = ["STAGE", "DirtyTreeError", "FetchResult", "fetch", "lock_path", "read_lock",
           "write_lock"]

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
    """The lock file's ``source`` pin (``url``, ``ref``, ``commit``), or None when absent.

    Raises:
        InvalidFileError: the lock file is not a readable YAML mapping with a
            ``source`` mapping whose ``commit`` is 40 hex and ``ref`` a valid ref
            (the message names the file and says to delete it to re-resolve).
    """
    p = lock_path(profile)
    if not p.exists():
        return None
    fix = f"delete {p} to re-resolve the profile's ref"
    data, lines = parse(p)
    src = data.get("source") if isinstance(data, dict) else None
    if not isinstance(src, dict) or not src:
        raise InvalidFileError(str(p), [("source", 1, f"no 'source' mapping; {fix}")])
    # an all-digit sha would load as an int
    lock = {str(k): str(v) for k, v in src.items()}
    problems = []
    for key in ("url", "ref", "commit"):
        if key not in lock:
            problems.append((f"source.{key}", lines.get(("source",)), f"missing; {fix}"))
    if not problems:
        try:
            check_commit(lock["commit"], "commit")
            check_ref(lock["ref"], "ref")
            check_url(lock["url"], "url")
        except InvalidValueError as e:
            problems.append((f"source.{e.what}", lines.get(("source", e.what)), f"{e}; {fix}"))
    if problems:
        raise InvalidFileError(str(p), problems)
    return lock


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


def _debian_package(profile: Profile) -> str:
    pkg = profile.source.debian_package
    assert pkg is not None, "source.kind is debian"
    return pkg


def _remote_url(profile: Profile) -> str:
    s = profile.source
    return s.git_url if s.git_url else str(s.path)


def _valid_lock(profile: Profile) -> dict | None:
    """The lock file's pin, or None when there is none or the profile changed its source."""
    lock = read_lock(profile)
    url, ref = _remote_url(profile), profile.source.git_ref or "HEAD"
    if lock and (lock.get("url") != url or lock.get("ref") != ref):
        return None  # the profile changed its source: re-resolve
    return lock


def _detail(ctx: StageContext, baseline: str) -> str:
    p = ctx.profile
    if p.source.kind == "debian":
        pkg = _debian_package(p)
        return f"{pkg} {_package_version(pkg, ctx.runner)}"
    return f"{_remote_url(p)} {p.source.git_ref or 'HEAD'} @ {baseline[:12]}"


# --------------------------------------------------------------------------- stage contract

def inputs(ctx: StageContext) -> tuple | None:
    """Debian: package, version, tarball size and mtime.  git/path: URL and locked commit
    (None without a lock: the ref must be resolved by fetching).

    Raises:
        UserError: the Debian source package is not installed.
    """
    p = ctx.profile
    if p.source.kind == "debian":
        pkg = _debian_package(p)
        st = debian_tarball(pkg).stat()
        return ("debian", pkg, _package_version(pkg, ctx.runner), st.st_size, int(st.st_mtime))
    lock = _valid_lock(p)
    return ("git", _remote_url(p), lock["commit"]) if lock else None


def outputs_ok(ctx: StageContext, state: dict) -> bool:
    """The tree is at the recorded baseline or at commits on top of it (patches)."""
    return tree_at_baseline(ctx.ws.src, state["baseline"], ctx.runner)


def precheck(ctx: StageContext) -> None:
    """A ``path:`` source must be a git repository; an existing tree must be clean.

    Raises:
        FetchError: ``source.path`` is not a git repository.
        DirtyTreeError: the tree in the workspace has local changes.
    """
    p = ctx.profile
    if p.source.kind != "debian":
        _check_source(p, ctx.runner)
    g = Git(ctx.ws.src, ctx.runner)
    if ctx.ws.src.exists() and not ctx.ws.src.is_dir():
        raise FetchError(f"{ctx.ws.src} exists and is not a directory; remove it")
    if g.is_repo():
        # a patch run that was killed left its state: recover it (or refuse) first
        from .patch.apply import recover

        recover(ctx.ws.src, ctx.runner, ctx.say)
        g.require_clean()
        if p.source.kind != "debian":
            origin = g.remote_url("origin")
            url = _remote_url(p)
            if origin != url:
                raise FetchError(
                    f"the workspace tree {ctx.ws.src} was fetched from {origin or 'no origin'}, "
                    f"but profile {p.file} now names {url}; rprockit never mixes two sources "
                    f"in one tree: remove it (rm -rf {ctx.ws.src}) to fetch {url} fresh, or "
                    "use another --workspace")


def _check_source(p: Profile, runner: Runner) -> None:
    """Validate the URL, ref and local path of a git or path source before any command.

    Raises:
        InvalidValueError: the URL or ref is not acceptable (no option, no ``ext::``).
        FetchError: ``source.path`` is not a git repository, or it has uncommitted
            changes to tracked files (they would be left out of the build).
    """
    where = f"profile {p.file}, line {p.line_of('source')}"
    if p.source.git_ref is not None:
        try:
            check_ref(p.source.git_ref, "source.git.ref", runner)
        except InvalidValueError as e:
            raise InvalidValueError(f"source.git.ref ({where})", e.value,
                                    "a branch, tag or full commit id") from None
    if p.source.kind == "git":
        check_url(p.source.git_url, f"source.git.url ({where})")
        return
    if p.source.path is None:
        _, missing = expand_env(p.source.path_spec or "")
        raise FetchError(f"source.path {p.source.path_spec} (profile {p.file}, line "
                         f"{p.line_of('source', 'path')}): environment variable "
                         f"{', '.join(missing)} is not set; set it to the kernel git tree")
    path = Path(_remote_url(p))
    if not (path / ".git").exists() and not (path / "HEAD").exists():
        raise FetchError(f"source.path {path} is not a git repository "
                         f"(profile {p.file}, line {p.line_of('source', 'path')})")
    local = Git(path, runner)
    if (path / ".git").exists():
        changes = local.dirty(refresh=False)
        if changes:
            shown = "\n  ".join(changes[:20])
            raise FetchError(
                f"source.path {path} has {len(changes)} uncommitted change(s) to tracked files; "
                f"the build uses its commits only, so they would be left out:\n  {shown}\n"
                f"Commit them (git -C {path} commit -a) or stash them, and run again.")


def run(ctx: StageContext) -> Outcome:
    """Fetch (git) or unpack (Debian) the source; pin and record its baseline commit.

    Raises:
        FetchError: unreachable URL, vanished locked commit, foreign tree.
        UserError: the Debian source package is missing.
    """
    res = _fetch_debian(ctx) if ctx.profile.source.kind == "debian" else _fetch_git(ctx)
    return Outcome(f"{res.detail}, baseline {res.baseline[:12]}",
                   state={"baseline": res.baseline, "source": res.source},
                   data={"baseline": res.baseline, "detail": res.detail},
                   inputs=res.inputs)


def skipped_summary(ctx: StageContext, state: dict) -> str:
    """``<source> @ <commit>, baseline <commit>``."""
    return f"{_detail(ctx, state['baseline'])}, baseline {state['baseline'][:12]}"


STAGE = Stage("fetch", inputs=inputs, run=run, outputs_ok=outputs_ok, precheck=precheck,
              skipped_summary=skipped_summary)


@dataclass(frozen=True)
class _Fetched:
    baseline: str
    source: str
    detail: str
    inputs: tuple


def _fetch_debian(ctx: StageContext) -> _Fetched:
    ws, runner, progress = ctx.ws, ctx.runner, ctx.say
    pkg = _debian_package(ctx.profile)
    tarball = debian_tarball(pkg)
    st = tarball.stat()
    version = _package_version(pkg, runner)
    if ws.src.exists():
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
    return _Fetched(baseline, f"{pkg} {version}", f"{pkg} {version}",
                    ("debian", pkg, version, st.st_size, int(st.st_mtime)))


MIRROR_ENV = "RPROCKIT_GIT_MIRROR"


def mirror_for(url: str, spec: str | None) -> str | None:
    """The local mirror that replaces ``url``, or None.

    Args:
        url: the profile's ``source.git.url``.
        spec: ``PATH`` or ``URL=PATH[,URL=PATH...]`` (``--mirror``), else the
            value of ``$RPROCKIT_GIT_MIRROR``.

    Returns:
        The mirror path (``~`` expanded), or None when no mirror is given for ``url``.

    Raises:
        FetchError: the mirror for ``url`` is not a git repository.
    """
    spec = spec if spec is not None else os.environ.get(MIRROR_ENV)
    if not spec:
        return None
    chosen = None
    for item in (x.strip() for x in spec.split(",")):
        key, sep, where = item.rpartition("=")
        if not sep:
            chosen = item
        elif key == url:
            chosen = where
    if not chosen:
        return None
    path = Path(chosen).expanduser().resolve()
    if not ((path / ".git").exists() or (path / "HEAD").is_file()):
        raise FetchError(f"mirror {path} for {url} is not a git repository; give a clone or a "
                         f"bare mirror of it with --mirror or ${MIRROR_ENV}")
    return str(path)


def _fetch_git(ctx: StageContext) -> _Fetched:
    profile, ws, runner, progress = ctx.profile, ctx.ws, ctx.runner, ctx.say
    s = profile.source
    url = _remote_url(profile)
    source = mirror_for(url, ctx.mirror) if s.kind == "git" else None
    ref = s.git_ref or "HEAD"
    shallow = s.shallow and s.kind == "git"
    # a tree named by an environment variable is this machine's (a vendor snapshot, a
    # board maker's checkout): its commit means nothing elsewhere, so it is never pinned
    pinned = not (s.kind == "path" and s.path_spec and "$" in s.path_spec)
    lock = _valid_lock(profile) if pinned else None
    fresh = not ws.src.exists()
    tree = ws.base / f"src.partial-{os.getpid()}" if fresh else ws.src
    g = Git(tree, runner)
    if not fresh and not g.is_repo():
        raise FetchError(f"{ws.src} exists and is not a git tree; remove it")
    want = lock["commit"] if lock else ref
    try:
        if fresh:
            shutil.rmtree(tree, ignore_errors=True)
            g.init()
            g.add_remote("origin", url)
            if s.kind == "path":
                _share_objects(g, Path(url), runner)
        progress(f"fetching {url} {want}" + (f" from the mirror {source}" if source else ""))
        commit = _fetch(g, source or "origin", want, lock, url, ref, profile,
                        depth=1 if shallow else None)
        if lock and commit != lock["commit"]:
            raise FetchError(f"{url} returned {commit} for locked commit {lock['commit']}")
        g.checkout_detached(commit)
        if fresh:
            os.replace(tree, ws.src)
    except BaseException:
        if fresh:
            shutil.rmtree(tree, ignore_errors=True)
        else:
            for pack in (tree / ".git" / "objects" / "pack").glob("tmp_pack_*"):
                pack.unlink(missing_ok=True)
        raise
    if not lock and pinned:
        write_lock(profile, {"url": url, "ref": ref, "commit": commit})
    return _Fetched(commit, f"{url} {ref}", f"{url} {ref} @ {commit[:12]}", ("git", url, commit))


def _share_objects(g: Git, source: Path, runner: Runner) -> None:
    """Borrow the objects of a local ``source.path`` repository (``git clone --shared``)."""
    objects = Path(Git(source, runner).out("rev-parse", "--path-format=absolute",
                                           "--git-path", "objects"))
    info = g.tree / ".git" / "objects" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "alternates").write_text(f"{objects}\n")


def _fetch(g: Git, remote: str, want: str, lock: dict | None, url: str, ref: str,
           profile: Profile, depth: int | None) -> str:
    try:
        return g.fetch(remote, want, depth=depth)
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


def fetch(profile: Profile, ws: Workspace, runner: Runner | None = None,
          progress: Callable[[str], None] = lambda msg: None,
          mirror: str | None = None) -> FetchResult:
    """Run the fetch stage alone (through the pipeline, which skips it when unchanged).

    Args:
        profile: the loaded profile.
        ws: the profile's workspace.
        runner: runs tar and git.
        progress: called with one-line progress messages.
        mirror: local mirror for a ``git`` source (see :func:`mirror_for`);
            None reads ``$RPROCKIT_GIT_MIRROR``.

    Returns:
        The tree and its pinned baseline commit.

    Raises:
        FetchError: unreachable URL, vanished locked commit, foreign tree.
        DirtyTreeError: the existing tree has local changes.
        UserError: the Debian source package is missing.
    """
    from .pipeline import run_stage

    ctx = StageContext(profile, ws, runner or Runner(), say=progress, mirror=mirror)
    res = run_stage(STAGE, ctx)
    baseline = res.data["baseline"]
    return FetchResult(ws.src, baseline, res.skipped,
                       res.data.get("detail") or _detail(ctx, baseline))
