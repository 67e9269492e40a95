"""fetch on real git repositories (a local bare repo served by file:// URLs)."""

import subprocess
from pathlib import Path

import pytest
import yaml

from rprockit import fetch as fetch_mod
from rprockit.errors import FetchError
from rprockit.profile import load_profile
from rprockit.runner import Runner
from rprockit.workspace import Workspace


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def upstream(tmp_path):
    """A small 'kernel' repo with two commits on main and a tag v1 on the first."""
    work = tmp_path / "upstream"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    git("tag", "v1", cwd=work)
    (work / "README").write_text("second\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "second", cwd=work)
    bare = tmp_path / "upstream.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    git("config", "uploadpack.allowAnySHA1InWant", "true", cwd=bare)
    return work, bare


def _profile(tmp_path, source: str) -> Path:
    p = tmp_path / "prof" / "p.yaml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(f"""format: 1
name: t
source:
{source}
arch: arm
cross_compile: arm-linux-gnueabihf-
config: {{base: allnoconfig}}
build: {{image: zImage}}
""")
    return p


def _fetch(p, tmp_path):
    prof = load_profile(p)
    return fetch_mod.fetch(prof, Workspace(tmp_path / "ws", prof.name), Runner()), prof


@pytest.mark.parametrize("ref", ["main", "v1", "sha"])
def test_git_ref_pinned_in_lock_file(tmp_path, upstream, ref):
    work, bare = upstream
    want = git("rev-parse", "HEAD" if ref in ("main", "sha") else "v1^{commit}", cwd=work)
    ref = want if ref == "sha" else ref
    p = _profile(tmp_path, f"  git: {{url: 'file://{bare}', ref: '{ref}'}}")
    res, prof = _fetch(p, tmp_path)
    assert res.baseline == want and not res.skipped
    lock = yaml.safe_load(fetch_mod.lock_path(prof).read_text())
    assert lock["source"]["commit"] == want
    assert git("rev-parse", "HEAD", cwd=res.tree) == want
    assert git("rev-parse", "--is-shallow-repository", cwd=res.tree) == "true"
    again, _ = _fetch(p, tmp_path)
    assert again.skipped and again.baseline == want


def test_locked_commit_is_used_even_when_branch_moves(tmp_path, upstream):
    work, bare = upstream
    p = _profile(tmp_path, f"  git: {{url: 'file://{bare}', ref: main}}")
    first, _ = _fetch(p, tmp_path)
    (work / "NEW").write_text("x")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "third", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)
    import shutil

    shutil.rmtree(tmp_path / "ws")
    again, _ = _fetch(p, tmp_path)
    assert again.baseline == first.baseline != git("rev-parse", "HEAD", cwd=work)


def test_vanished_locked_commit_fails_clearly(tmp_path, upstream):
    _work, bare = upstream
    p = _profile(tmp_path, f"  git: {{url: 'file://{bare}', ref: main}}")
    _, prof = _fetch(p, tmp_path)
    lock = fetch_mod.lock_path(prof)
    data = yaml.safe_load(lock.read_text())
    data["source"]["commit"] = "0123456789abcdef0123456789abcdef01234567"
    lock.write_text(yaml.safe_dump(data))
    import shutil

    shutil.rmtree(tmp_path / "ws")
    with pytest.raises(FetchError) as e:
        _fetch(p, tmp_path)
    msg = str(e.value)
    assert "locked commit 0123456789abcdef" in msg and "cannot be fetched any more" in msg
    assert str(lock) in msg
    assert not (tmp_path / "ws" / "t" / "src" / "Makefile").exists()


def test_unreachable_url_fails_clearly(tmp_path):
    p = _profile(tmp_path, f"  git: {{url: 'file://{tmp_path}/nope.git', ref: main}}")
    with pytest.raises(FetchError, match=r"cannot fetch 'main' from file://.*nope\.git"):
        _fetch(p, tmp_path)


def test_local_path_source_never_touches_user_tree(tmp_path, upstream):
    work, _ = upstream
    head = git("rev-parse", "HEAD", cwd=work)
    p = _profile(tmp_path, f"  path: {work}")
    res, _ = _fetch(p, tmp_path)
    assert res.baseline == head
    assert (res.tree / "README").read_text() == "second\n"
    assert git("status", "--porcelain", cwd=work) == ""


def test_tree_named_by_a_variable_is_not_pinned(tmp_path, upstream, monkeypatch):
    # `path: $RPROCKIT_NXP_4_9_TREE`: the tree's commit is this machine's, so no lock file
    # (it would hold a machine path and a commit no other machine has)
    work, _ = upstream
    monkeypatch.setenv("RPROCKIT_TEST_TREE", str(work))
    p = _profile(tmp_path, "  path: $RPROCKIT_TEST_TREE")
    res, prof = _fetch(p, tmp_path)
    assert res.baseline == git("rev-parse", "HEAD", cwd=work)
    assert not fetch_mod.lock_path(prof).exists()
    pinned = _profile(tmp_path, f"  path: {work}")
    _, prof = _fetch(pinned, tmp_path)
    assert fetch_mod.lock_path(prof).exists()


def test_dirty_tree_is_refused_not_reset(tmp_path, upstream):
    _, bare = upstream
    p = _profile(tmp_path, f"  git: {{url: 'file://{bare}', ref: main}}")
    res, _ = _fetch(p, tmp_path)
    (res.tree / "Makefile").write_text("local edit\n")
    with pytest.raises(fetch_mod.DirtyTreeError, match="M Makefile"):
        _fetch(p, tmp_path)
    assert (res.tree / "Makefile").read_text() == "local edit\n"
