"""The curated series on real kernel sources: Debian's mainline 6.1 and NXP vendor trees."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rprockit.patch import Status, apply_series, classify, load_series, matrix

REPO = Path(__file__).resolve().parents[1]
SERIES = REPO / "patches" / "imx-rproc"
BUILD_COMPAT = REPO / "patches" / "build-compat"
DEBIAN_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
#: only what the series and family detection look at
MEMBERS = ["Makefile", "arch/arm/Makefile", "drivers/remoteproc", "drivers/rpmsg",
           "include/linux/remoteproc.h", "include/linux/rpmsg.h", "scripts/dtc/dtc-lexer.l"]
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
    # mainline has no imx_rpmsg: the requires probe, not the family, rules fix 4 out
    assert m.cell("loadable-imx-rpmsg", "6.1")[0] == Status.NOT_APPLICABLE.value
    (rpmsg,) = [r for r in report.results if r.fix == "loadable-imx-rpmsg" and r.method != "family"]
    assert rpmsg.method == "requires" and "drivers/rpmsg/imx_rpmsg.c" in rpmsg.detail
    head = _git(mainline_61, "rev-parse", "HEAD")
    applied = apply_series(mainline_61, series, report_dir=mainline_61.parent / "report")
    assert applied.end == head and not applied.failed


@pytest.mark.slow
def test_mainline_61_needs_no_build_compat_patch(mainline_61):
    m = matrix({"6.1": mainline_61}, load_series(BUILD_COMPAT))
    for fix in ("dtc-yylloc", "arm-march-cc-option"):
        assert m.cell(fix, "6.1")[0] == Status.ALREADY_PRESENT.value, (fix, m.render())


def _vendor_tree(var: str) -> Path:
    path = os.environ.get(var)
    if not path:
        pytest.skip(f"set {var} to an NXP linux-imx git work tree to run this test")
    return Path(path)


#: status of each fix on the unpatched vendor tree (rprockit-base); a tree that
#: already carries the series reports "already-present" instead
VENDOR_EXPECT = {
    "nxp-4.14": {
        "imx-rproc": {"optional-mu-mailboxes": "not-applicable", "empty-resource-table": "applies",
                      "elf-segment-loading": "applies", "loadable-imx-rpmsg": "applies"},
        "build-compat": {"dtc-yylloc": "applies", "arm-march-cc-option": "applies"},
    },
    "nxp-5.4": {
        "imx-rproc": {"optional-mu-mailboxes": "applies", "empty-resource-table": "already-present",
                      "elf-segment-loading": "applies", "loadable-imx-rpmsg": "applies"},
        "build-compat": {"dtc-yylloc": "already-present", "arm-march-cc-option": "applies"},
    },
}


@pytest.mark.vendor
@pytest.mark.parametrize("series_name", ["imx-rproc", "build-compat"])
@pytest.mark.parametrize("var,family", [("RPROCKIT_NXP_4_14_TREE", "nxp-4.14"),
                                        ("RPROCKIT_NXP_5_4_TREE", "nxp-5.4")])
def test_vendor_tree_classification(var, family, series_name):
    tree = _vendor_tree(var)
    series = load_series(REPO / "patches" / series_name)
    expect = VENDOR_EXPECT[family][series_name]
    assert set(expect) == set(series.fixes())
    m = matrix({family: tree}, series)
    report = m.reports[family]
    assert report.family == family and not report.failed, report.render()
    for fix, status in expect.items():
        got = m.cell(fix, family)[0]
        assert got in (status, "already-present"), (fix, m.render())
    # every patch of the series meant for this family applies as it is (the
    # classification stacks them on a scratch index): no fuzz, offset or conflict
    for r in report.results:
        if r.method == "family":
            continue
        assert r.status in (Status.APPLIES, Status.ALREADY_PRESENT) \
            or (r.status is Status.NOT_APPLICABLE and r.method == "requires"), (r.name, r.detail)
