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
    # mainline has no imx_rpmsg: the requires probe of every variant says so
    assert m.cell("loadable-imx-rpmsg", "6.1")[0] == Status.NOT_APPLICABLE.value
    (rpmsg,) = [r for r in report.results if r.fix == "loadable-imx-rpmsg"]
    assert rpmsg.method == "requires" and "drivers/rpmsg/imx_rpmsg.c" in rpmsg.detail
    assert rpmsg.evidence["missing"] == ["drivers/rpmsg/imx_rpmsg.c"]
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


#: status and variant directory of each fix on the unpatched vendor tree, derived by
#: hand from each tree's drivers/remoteproc/{imx_rproc,remoteproc_core,
#: remoteproc_elf_loader}.c and drivers/rpmsg/{imx_rpmsg.c,Kconfig,Makefile};
#: a tree that already carries the series reports "already-present" instead
VENDOR_EXPECT = {
    "nxp-4.9": {
        "imx-rproc": {
            # no drivers/remoteproc/imx_rproc.c at all
            "optional-mu-mailboxes": ("not-applicable", None),
            # rproc_fw_boot() refuses a missing table (line 820) and 4.9 has no
            # rproc_start(), where the 4.14 variant moves the check: the 4.9 variant
            "empty-resource-table": ("applies", "nxp-4.9"),
            # rproc_elf_load_segments() is the 4.14 one, line for line
            "elf-segment-loading": ("applies", "nxp-4.14"),
            # MU-based driver, subsys_initcall; its Makefile has no glink lines
            "loadable-imx-rpmsg": ("conflict", None),
            # "config REMOTEPROC" / "tristate" without a prompt (Kconfig lines 4-5)
            "visible-remoteproc-core": ("applies", "nxp-4.9"),
            # rproc_alloc() sets dev.type but no dev.class (remoteproc_core.c line 1348)
            "remoteproc-sysfs": ("applies", "nxp-4.9"),
        },
        # "YYLTYPE yylloc;" (dtc-lexer.l line 41) and the cc-option fallback (arch/arm/
        # Makefile line 68) are there; the 4.14 variants apply 1-3 lines off; the
        # bcmdhd_1363 Kconfig's last entry is not indented (line 50)
        "build-compat": {"dtc-yylloc": ("needs-rebase", "nxp-4.14"),
                         "arm-march-cc-option": ("needs-rebase", "nxp-4.14"),
                         "kconfig-bcmdhd-help": ("applies", "nxp-4.9"),
                         # imx7d_pm_init() is the 4.14 one (pm-imx7.c line 1226)
                         "imx7-pm-without-suspend": ("applies", "nxp-4.14")},
    },
    "nxp-4.14": {
        "imx-rproc": {"optional-mu-mailboxes": ("not-applicable", None),
                      "empty-resource-table": ("applies", "nxp-4.14"),
                      "elf-segment-loading": ("applies", "nxp-4.14"),
                      "loadable-imx-rpmsg": ("applies", "nxp-4.14"),
                      # REMOTEPROC has its prompt (Kconfig line 4)
                      "visible-remoteproc-core": ("already-present", None),
                      # "rproc->dev.class = &rproc_class;" in rproc_alloc()
                      "remoteproc-sysfs": ("already-present", None)},
        "build-compat": {"dtc-yylloc": ("applies", "nxp-4.14"),
                         "arm-march-cc-option": ("applies", "nxp-4.14"),
                         "kconfig-bcmdhd-help": ("not-applicable", None),
                         # "imx7_pm_set_lpsr_resume_addr(0);" unchecked (pm-imx7.c line 1226)
                         "imx7-pm-without-suspend": ("applies", "nxp-4.14")},
    },
    "nxp-5.4": {
        "imx-rproc": {"optional-mu-mailboxes": ("applies", "nxp-5.4"),
                      "empty-resource-table": ("already-present", None),
                      "elf-segment-loading": ("applies", "nxp-5.4"),
                      "loadable-imx-rpmsg": ("applies", "nxp-5.4"),
                      # "bool "Support for Remote Processor subsystem"" (Kconfig line 5)
                      "visible-remoteproc-core": ("already-present", None),
                      # "rproc->dev.class = &rproc_class;" in rproc_alloc()
                      "remoteproc-sysfs": ("already-present", None)},
        "build-compat": {"dtc-yylloc": ("already-present", None),
                         "arm-march-cc-option": ("applies", "nxp-5.4"),
                         # no drivers/net/wireless/bcmdhd_1363 outside the 4.9.88 tree
                         "kconfig-bcmdhd-help": ("not-applicable", None),
                         "imx7-pm-without-suspend": ("applies", "nxp-5.4")},
    },
    "nxp-5.15": {
        "imx-rproc": {
            # imx_rproc_xtr_mbox_init() returns 0 without "mbox-names" (line 941),
            # imx_rproc_kick() checks tx_ch (line 754)
            "optional-mu-mailboxes": ("already-present", None),
            # rproc_handle_resources(): "if (!rproc->table_ptr) return 0;" (line 1136)
            "empty-resource-table": ("already-present", None),
            # memcpy_toio/memset_io (lines 223, 237) but "if (type != PT_LOAD)" (line 184)
            "elf-segment-loading": ("partially-present", "nxp-5.15"),
            # HAVE_IMX_RPMSG bool, arch_initcall, no .remove
            "loadable-imx-rpmsg": ("applies", "nxp-5.15"),
            # bool "Support for Remote Processor subsystem" (Kconfig line 5)
            "visible-remoteproc-core": ("already-present", None),
            "remoteproc-sysfs": ("already-present", None),
        },
        # the dtc fix is in 5.15; "ARM: 9156/1" is in 5.15.71 (arch/arm/Makefile line 64)
        "build-compat": {"dtc-yylloc": ("already-present", None),
                         "arm-march-cc-option": ("already-present", None),
                         "kconfig-bcmdhd-help": ("not-applicable", None),
                         # the unchecked write one line later (pm-imx7.c line 1224)
                         "imx7-pm-without-suspend": ("needs-rebase", "nxp-5.4")},
    },
    "nxp-6.1": {
        "imx-rproc": {"optional-mu-mailboxes": ("already-present", None),
                      "empty-resource-table": ("already-present", None),
                      # "if (type != PT_LOAD || !memsz)" (line 184) and the I/O copy
                      "elf-segment-loading": ("already-present", None),
                      "loadable-imx-rpmsg": ("applies", "nxp-6.1"),
                      "visible-remoteproc-core": ("already-present", None),
                      # "rproc->dev.class = &rproc_class;" in rproc_alloc()
                      "remoteproc-sysfs": ("already-present", None)},
        "build-compat": {"dtc-yylloc": ("already-present", None),
                         "arm-march-cc-option": ("already-present", None),
                         "kconfig-bcmdhd-help": ("not-applicable", None),
                         # the unchecked write one line later (pm-imx7.c line 1224)
                         "imx7-pm-without-suspend": ("needs-rebase", "nxp-5.4")},
    },
}
VENDOR_TREES = [("RPROCKIT_NXP_4_9_TREE", "nxp-4.9"), ("RPROCKIT_NXP_4_14_TREE", "nxp-4.14"),
                ("RPROCKIT_NXP_5_4_TREE", "nxp-5.4"), ("RPROCKIT_NXP_5_15_TREE", "nxp-5.15"),
                ("RPROCKIT_NXP_6_1_TREE", "nxp-6.1")]


@pytest.mark.vendor
@pytest.mark.parametrize("series_name", ["imx-rproc", "build-compat"])
@pytest.mark.parametrize("var,family", VENDOR_TREES)
def test_vendor_tree_classification(var, family, series_name):
    expect = VENDOR_EXPECT[family][series_name]
    tree = _vendor_tree(var)
    series = load_series(REPO / "patches" / series_name)
    assert set(expect) == set(series.fixes())
    m = matrix({family: tree}, series)
    report = m.reports[family]
    assert report.family == family, report.render()
    for fix, (status, variant_dir) in expect.items():
        got, variant = m.cell(fix, family)
        assert got in (status, "already-present"), (fix, m.render())
        if got == status and variant_dir:
            assert variant.split("/")[0] == variant_dir, (fix, variant)
    # the variant chosen for each fix applies as it is (stacked on the trial
    # index) unless a rebase is expected: no fuzz, offset or 3-way merge
    for r in report.results:
        if expect[r.fix][0] != "needs-rebase":
            assert r.method not in ("offset", "3way", "fuzz"), (r.name, r.detail)
