"""A local mirror replaces a profile's git URL (offline users, tests), without editing it."""

import subprocess

import pytest
import yaml

from rprockit import fetch as fetch_mod
from rprockit.errors import FetchError
from rprockit.profile import load_profile
from rprockit.runner import Runner
from rprockit.workspace import Workspace

#: a URL nothing can be fetched from here: only the mirror can provide the tree
URL = "https://git.invalid/nxp-imx/linux-imx.git"


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def mirror(tmp_path):
    """A bare mirror holding the release tag the profile pins."""
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "Makefile").write_text("VERSION = 5\nPATCHLEVEL = 15\nSUBLEVEL = 71\n")
    git("add", ".", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "5.15.71", cwd=work)
    git("tag", "lf-5.15.71-2.2.0", cwd=work)
    bare = tmp_path / "mirror.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    return git("rev-parse", "HEAD", cwd=work), bare


def _profile(tmp_path):
    p = tmp_path / "prof" / "nxp.yaml"
    p.parent.mkdir()
    p.write_text(f"""format: 1
name: nxp
source:
  git: {{url: '{URL}', ref: lf-5.15.71-2.2.0}}
  family: nxp-5.15
arch: arm64
cross_compile: aarch64-linux-gnu-
config: {{base: imx_v8_defconfig}}
build: {{image: Image}}
""")
    return load_profile(p)


def test_mirror_argument_replaces_the_url_and_the_lock_keeps_it(tmp_path, mirror, monkeypatch):
    commit, bare = mirror
    monkeypatch.delenv(fetch_mod.MIRROR_ENV, raising=False)
    prof = _profile(tmp_path)
    msgs: list[str] = []
    res = fetch_mod.fetch(prof, Workspace(tmp_path / "ws", prof.name), Runner(), msgs.append,
                          mirror=str(bare))
    assert res.baseline == commit and git("rev-parse", "HEAD", cwd=res.tree) == commit
    assert any(f"from the mirror {bare}" in m for m in msgs)
    lock = yaml.safe_load(fetch_mod.lock_path(prof).read_text())
    assert URL in yaml.safe_dump(lock) and str(bare) not in yaml.safe_dump(lock)
    assert commit in yaml.safe_dump(lock)
    # the profile file was not edited
    assert URL in prof.file.read_text() and str(bare) not in prof.file.read_text()


def test_mirror_from_the_environment_by_url(tmp_path, mirror, monkeypatch):
    commit, bare = mirror
    monkeypatch.setenv(fetch_mod.MIRROR_ENV, f"https://other.invalid/x.git=/nowhere,{URL}={bare}")
    prof = _profile(tmp_path)
    res = fetch_mod.fetch(prof, Workspace(tmp_path / "ws", prof.name), Runner())
    assert res.baseline == commit


def test_mirror_for_matching_and_bad_mirror(tmp_path, mirror, monkeypatch):
    _, bare = mirror
    monkeypatch.delenv(fetch_mod.MIRROR_ENV, raising=False)
    assert fetch_mod.mirror_for(URL, None) is None
    assert fetch_mod.mirror_for(URL, f"https://other.invalid/x.git={bare}") is None
    assert fetch_mod.mirror_for(URL, str(bare)) == str(bare)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FetchError, match=r"mirror .*empty for https://git.invalid/.* is not a "
                                         r"git repository"):
        fetch_mod.mirror_for(URL, str(tmp_path / "empty"))
