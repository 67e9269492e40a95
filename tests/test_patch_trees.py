"""The curated series on real kernel sources: Debian's mainline 6.1 and NXP vendor trees."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rprockit.patch import Status, apply_series, classify, load_series, matrix

REPO = Path(__file__).resolve().parents[1]
SERIES = REPO / "patches" / "imx-rproc"
DEBIAN_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
#: only what the series and family detection look at
MEMBERS = ["Makefile", "drivers/remoteproc", "drivers/rpmsg", "include/linux/remoteproc.h",
           "include/linux/rpmsg.h", "scripts/dtc/dtc-lexer.l"]
MAINLINE_PRESENT = ["optional-mu-mailboxes", "empty-resource-table", "elf-segment-loading"]


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo.parent)}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="session")
def mainline_61(tmp_path_factory) -> Path:
    """A small git repo with the files of Debian's linux-source-6.1 the series touches."""
    if not DEBIAN_TARBALL.is_file():
        pytest.skip(f"{DEBIAN_TARBALL} missing (apt-get install linux-source-6.1)")
    top = tmp_path_factory.mktemp("debian")
    subprocess.run(["tar", "-xJf", DEBIAN_TARBALL, "-C", top, "--wildcards",
                    *[f"linux-source-6.1/{m}" for m in MEMBERS]], check=True)
    tree = top / "linux-source-6.1"
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-qm", "linux-source-6.1 (subset)")
    return tree


@pytest.mark.slow
def test_mainline_61_has_every_fix_already(mainline_61):
    series = load_series(SERIES)
    report = classify(mainline_61, series)
    assert (report.family, report.version) == ("mainline", "6.1")
    m = matrix({"6.1": mainline_61}, series)
    for fix in MAINLINE_PRESENT:
        assert m.cell(fix, "6.1")[0] == Status.ALREADY_PRESENT.value, (fix, m.render())
    # variants for NXP families only are not applicable to mainline
    nxp_only = [p.name for p in series if "mainline" not in p.families]
    assert nxp_only and all(report.result(n).status is Status.NOT_APPLICABLE for n in nxp_only)
    head = _git(mainline_61, "rev-parse", "HEAD")
    applied = apply_series(mainline_61, series, report_dir=mainline_61.parent / "report")
    assert applied.end == head and not applied.failed


def _vendor_tree(var: str) -> Path:
    path = os.environ.get(var)
    if not path:
        pytest.skip(f"set {var} to an NXP linux-imx git work tree to run this test")
    return Path(path)


@pytest.mark.vendor
@pytest.mark.parametrize("var,family,expect", [
    ("RPROCKIT_NXP_4_14_TREE", "nxp-4.14",
     {"optional-mu-mailboxes": "not-applicable", "empty-resource-table": "applies",
      "elf-segment-loading": "applies"}),
    ("RPROCKIT_NXP_5_4_TREE", "nxp-5.4",
     {"optional-mu-mailboxes": "applies", "empty-resource-table": "already-present",
      "elf-segment-loading": "applies"}),
])
def test_vendor_tree_classification(var, family, expect):
    tree = _vendor_tree(var)
    series = load_series(SERIES)
    m = matrix({family: tree}, series)
    report = m.reports[family]
    assert report.family == family and not report.failed, report.render()
    for fix, status in expect.items():
        got = m.cell(fix, family)[0]
        # a tree that already carries the series reports the fixes as present
        assert got in (status, "already-present"), (fix, m.render())
