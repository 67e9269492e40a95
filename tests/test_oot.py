"""Out-of-tree module sets: donor sources, compat patches through the patch engine, make M=.

The slow tests build an imx_rproc.ko out of tree from Debian's linux-source-6.1
(the tarball, and the default profile's unpacked tree as a path donor) into the
default profile's kernel (the session's shared workspace, built once).  The
fast tests use a small donor tree written here: a Makefile with version lines
and one C file of our own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import textwrap
from pathlib import Path

import pytest
from conftest import _REAL_HOME, TEST_WS, rprockit

from rprockit import kmod, oot
from rprockit.errors import FetchError, InvalidFileError
from rprockit.kernel_tree import detect_family
from rprockit.patch import PatchApplyError, load_series
from rprockit.patch.errors import SeriesFormatError
from rprockit.patch.report import Status
from rprockit.profile import load_modules, load_profile

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "oot" / "imx-rproc-6.1.yaml"
TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")

DRIVER = textwrap.dedent("""\
    // a donor driver of our own (the fast tests' stand-in for imx_rproc.c)
    static int demo_start(void)
    {
    \treturn 0;
    }
    """)

PATCH = textwrap.dedent("""\
    From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
    From: rprockit maintainers <rprockit@localhost>
    Date: Mon, 1 Jan 2024 00:00:00 +0000
    Subject: [PATCH] demo: start returns 1

    Upstream-Status: Inappropriate [test fixture]
    ---
     drivers/demo/demo.c | 2 +-
     1 file changed, 1 insertion(+), 1 deletion(-)

    diff --git a/drivers/demo/demo.c b/drivers/demo/demo.c
    --- a/drivers/demo/demo.c
    +++ b/drivers/demo/demo.c
    @@ -1,5 +1,5 @@
     // a donor driver of our own (the fast tests' stand-in for imx_rproc.c)
     static int demo_start(void)
     {
    -\treturn 0;
    +\treturn 1;
     }
    --
    2.39.2
    """)


def _donor(tmp_path: Path, version=(4, 14), text: str = DRIVER) -> Path:
    d = tmp_path / "donor"
    (d / "drivers" / "demo").mkdir(parents=True)
    (d / "Makefile").write_text(f"VERSION = {version[0]}\nPATCHLEVEL = {version[1]}\n"
                                "SUBLEVEL = 78\nEXTRAVERSION =\n")
    (d / "drivers" / "demo" / "demo.c").write_text(text)
    return d


def _set(tmp_path: Path, donor: str, version: str | None = "4.14", patch: str = PATCH,
         sources: str = "[drivers/demo/demo.c]") -> Path:
    s = tmp_path / "set"
    (s / "patches").mkdir(parents=True, exist_ok=True)
    (s / "Kbuild").write_text("obj-m := demo.o\ndemo-y := drivers/demo/demo.o\n")
    (s / "patches" / "series").write_text("0001-demo-start-returns-1.patch\n")
    (s / "patches" / "0001-demo-start-returns-1.patch").write_text(patch)
    (s / "patches" / "meta.yaml").write_text(textwrap.dedent("""\
        format: 1
        patches:
          0001-demo-start-returns-1.patch:
            fix: demo-start
            fixes: ["demo: start failed"]
            families: [nxp-4.9]
            upstream: {status: inappropriate, reason: test fixture}
            present_if:
              - {file: drivers/demo/demo.c, regex: 'return 1;'}
        """))
    ver = f'      version: "{version}"\n' if version else ""
    f = tmp_path / "set.yaml"
    f.write_text("format: 1\nbuild_dirs: [drivers/demo]\nload_order: [demo]\nout_of_tree:\n"
                 "  - name: demo\n    donor:\n"
                 f"      path: {donor}\n{ver}"
                 f"    sources: {sources}\n    patches: set/patches\n    kbuild: set/Kbuild\n")
    return f


def _target(tmp_path: Path):
    """The family and version the compat variants are ordered by (an NXP 4.9 target)."""
    t = tmp_path / "target"
    (t / "drivers" / "rpmsg").mkdir(parents=True, exist_ok=True)
    (t / "Makefile").write_text("VERSION = 4\nPATCHLEVEL = 9\nSUBLEVEL = 88\n")
    (t / "drivers" / "rpmsg" / "imx_rpmsg.c").write_text("/* NXP marker file */\n")
    return detect_family(t)


def test_prepare_copies_donor_sources_and_applies_compat_patches(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_DONOR", str(_donor(tmp_path)))
    f = _set(tmp_path, "$DEMO_DONOR")
    m = load_modules(f)
    build = tmp_path / "build"
    files, report = oot.prepare(m.out_of_tree[0], m.file, _target(tmp_path), build,
                                tmp_path / "reports")
    assert files.version.full == "4.14.78" and list(files.files) == ["drivers/demo/demo.c"]
    # the patch engine classified and applied it, ordered by the target's family
    assert report.family == "nxp-4.9" and report.version == "4.9"
    (r,) = report.results
    assert (r.fix, r.status) == ("demo-start", Status.APPLIED) and r.commit
    assert "return 1;" in (build / "drivers/demo/demo.c").read_text()
    assert (build / "Kbuild").read_text().startswith("obj-m := demo.o")
    assert (tmp_path / "reports" / "patch-report.json").is_file()
    # the donor is only read
    assert "return 0;" in (tmp_path / "donor/drivers/demo/demo.c").read_text()


def test_prepare_is_repeatable_and_classifies_an_already_present_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_DONOR", str(_donor(tmp_path, text=DRIVER.replace("0;", "1;"))))
    m = load_modules(_set(tmp_path, "${DEMO_DONOR}"))
    for _ in range(2):
        _, report = oot.prepare(m.out_of_tree[0], m.file, _target(tmp_path), tmp_path / "b")
        assert [r.status for r in report.results] == [Status.ALREADY_PRESENT]


def test_a_conflicting_compat_patch_names_the_patch(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_DONOR", str(_donor(tmp_path, text=DRIVER.replace("0;", "2;"))))
    m = load_modules(_set(tmp_path, "$DEMO_DONOR"))
    with pytest.raises(PatchApplyError) as e:
        oot.prepare(m.out_of_tree[0], m.file, _target(tmp_path), tmp_path / "b")
    assert "0001-demo-start-returns-1.patch" in str(e.value)


def test_donor_errors_name_the_set_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("DEMO_DONOR", raising=False)
    m = load_modules(_set(tmp_path, "$DEMO_DONOR"))
    with pytest.raises(FetchError, match="DEMO_DONOR is not set"):
        oot.donor_files(m.out_of_tree[0], m.file)
    monkeypatch.setenv("DEMO_DONOR", str(_donor(tmp_path, version=(5, 4))))
    with pytest.raises(FetchError, match=r"is Linux 5\.4\.78, but the set takes its sources "
                                         r"from 4\.14"):
        oot.donor_files(m.out_of_tree[0], m.file)
    m = load_modules(_set(tmp_path, "$DEMO_DONOR", version=None,
                          sources="[drivers/demo/demo.c, drivers/demo/demo.h]"))
    with pytest.raises(FetchError, match=r"has no drivers/demo/demo\.h"):
        oot.donor_files(m.out_of_tree[0], m.file)


def test_module_set_validation(tmp_path):
    f = _set(tmp_path, "/nowhere", sources="[../etc/passwd]")
    with pytest.raises(InvalidFileError, match=r"out_of_tree\[0\]\.sources\[0\]: '\.\./etc"):
        load_modules(f)
    f = _set(tmp_path, "/nowhere", sources="[drivers/../../etc/passwd]")
    with pytest.raises(InvalidFileError, match=r"out_of_tree\.0\.sources\.0: drivers/\.\./\.\./etc"
                                               r"/passwd: give a path inside the donor tree"):
        load_modules(f)
    f = _set(tmp_path, "/nowhere")
    (tmp_path / "set" / "Kbuild").unlink()
    with pytest.raises(InvalidFileError, match=r"out_of_tree\.0\.kbuild: file set/Kbuild not found"):
        load_modules(f)


def test_the_4_9_profile_and_its_set_validate():
    p = load_profile(ROOT / "kernel_configs/profiles/nxp-imx7d-4.9.yaml")
    assert p.source.path_spec == "$RPROCKIT_NXP_4_9_TREE" and p.source.family == "nxp-4.9"
    assert list(p.patch_skip) == [str(ROOT / "patches/imx-rproc")]
    (why,) = p.patch_skip[str(ROOT / "patches/imx-rproc")].values()
    assert list(p.patch_skip[str(ROOT / "patches/imx-rproc")]) == ["loadable-imx-rpmsg"]
    assert "imx_rpmsg" in why
    (s,) = p.modules.out_of_tree
    assert s.donor.path == "$RPROCKIT_NXP_4_14_TREE" and s.donor.version == "4.14"
    assert s.sources == ("drivers/remoteproc/imx_rproc.c",)
    series = load_series(s.patches)
    assert all("Upstream-Status:" in e.path.read_text() for e in series)


def test_a_profile_skip_of_an_unknown_fix_is_refused():
    series = load_series(ROOT / "patches/imx-rproc")
    with pytest.raises(SeriesFormatError, match="skips fix no-such-fix"):
        series.without({"no-such-fix": "why"}, "p.yaml")
    kept = series.without({"loadable-imx-rpmsg": "no 4.9 variant"}, "p.yaml")
    assert "loadable-imx-rpmsg" not in kept.fixes() and len(kept) < len(series)
    assert any("no 4.9 variant" in w for w in kept.warnings)


@pytest.mark.skipif(not TARBALL.is_file(), reason="linux-source-6.1 is not installed")
def test_tarball_donor_reads_only_the_named_files():
    m = load_modules(FIXTURE)
    files = oot.donor_files(m.out_of_tree[0], m.file)
    assert files.version.short == "6.1" and files.where == str(TARBALL)
    assert set(files.files) == set(m.out_of_tree[0].sources)
    # mainline 6.1 imx_rproc.c includes both headers it is shipped with
    text = files.files["drivers/remoteproc/imx_rproc.c"].decode()
    assert '#include "imx_rproc.h"' in text and '#include "remoteproc_internal.h"' in text


# --------------------------------------------------------------------------- real make M=

def _build(default_ws: Path, tmp_path: Path, set_file: Path) -> oot.BuiltSet:
    ws = default_ws / "imx7d-mainline-6.1"
    release = (ws / "out/include/config/kernel.release").read_text().strip()
    m = load_modules(set_file)
    return oot.build_set(m.out_of_tree[0], m.file, ws / "src", ws / "out", tmp_path / "oot",
                         ["ARCH=arm", "CROSS_COMPILE=arm-linux-gnueabihf-", "-j2"],
                         {"LC_ALL": "C"}, tmp_path / "oot.log", release, tmp_path / "reports")


def _check(built: oot.BuiltSet, release: str) -> None:
    (ko,) = built.modules
    assert ko.name == "imx_rproc.ko"
    info = kmod.modinfo(ko)
    # the compat patch took (MODULE_INFO), the driver's match table made the aliases
    assert info["oot_set"] == ["imx-rproc-6.1"]
    assert "of:N*T*Cfsl,imx7d-cm4" in info["alias"] and "of:N*T*Cfsl,imx8mp-cm7" in info["alias"]
    assert info["vermagic"][0].split()[0] == release
    assert "intree" not in info  # modpost marks only in-tree modules
    (r,) = built.report.results
    assert (r.fix, r.status) == ("oot-modinfo-tag", Status.APPLIED)
    assert built.record["modules"]["imx_rproc.ko"]["vermagic"].startswith(release + " ")


@pytest.mark.slow
@pytest.mark.skipif(not TARBALL.is_file(), reason="linux-source-6.1 is not installed")
def test_build_from_the_debian_tarball_into_the_default_kernel(default_pipeline, tmp_path):
    built = _build(default_pipeline[0], tmp_path, FIXTURE)
    release = (default_pipeline[0] / "imx7d-mainline-6.1/out/include/config/kernel.release"
               ).read_text().strip()
    _check(built, release)
    assert built.record["donor"] == "linux-source-6.1" and built.record["version"].startswith("6.1.")


@pytest.mark.slow
def test_build_from_a_donor_tree_given_by_environment(default_pipeline, tmp_path, monkeypatch):
    ws = default_pipeline[0] / "imx7d-mainline-6.1"
    monkeypatch.setenv("RPROCKIT_TEST_DONOR", str(ws / "src"))
    text = FIXTURE.read_text().replace("debian_package: linux-source-6.1",
                                       "path: $RPROCKIT_TEST_DONOR")
    shutil.copytree(FIXTURE.parent / "imx-rproc-6.1", tmp_path / "imx-rproc-6.1")
    (tmp_path / "set.yaml").write_text(text)
    built = _build(default_pipeline[0], tmp_path, tmp_path / "set.yaml")
    _check(built, (ws / "out/include/config/kernel.release").read_text().strip())
    assert built.record["where"] == str(ws / "src")


# --------------------------------------------------------------------------- NXP 4.9 profile

@pytest.mark.slow
@pytest.mark.vendor
def test_nxp_49_profile_builds_imx_rproc_out_of_tree():
    """The 4.9 profile's build: imx_rproc.ko from NXP 4.14, vermagic and aliases of 4.9.88.

    Expected by hand: 4.9.88's Makefile (VERSION 4, PATCHLEVEL 9, SUBLEVEL 88) with
    imx_v7_defconfig's CONFIG_LOCALVERSION_AUTO=y gives "4.9.88-g<12 hex>" (the
    patched HEAD); include/linux/vermagic.h adds "SMP preempt mod_unload ARMv7 p2v8"
    (CONFIG_SMP, CONFIG_PREEMPT, CONFIG_MODULE_UNLOAD, CONFIG_CPU_V7,
    CONFIG_ARM_PATCH_PHYS_VIRT); NXP 4.14's imx_rproc_of_match (line 407) has
    fsl,imx7d-cm4 and fsl,imx6sx-cm4, each giving "of:N*T*C<compatible>" and
    "...C*" (scripts/mod/file2alias.c do_of_entry).
    """
    for var in ("RPROCKIT_NXP_4_9_TREE", "RPROCKIT_NXP_4_14_TREE"):
        if not os.environ.get(var):
            pytest.skip(f"set {var} to an NXP linux-imx git work tree to run this test")
    proc = rprockit("build", "--profile", "nxp-imx7d-4.9", "--workspace", str(TEST_WS),
                    env={"HOME": _REAL_HOME})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ws = TEST_WS / "nxp-imx7d-4.9"
    ko = ws / "artifacts" / "modules" / "imx_rproc.ko"
    info = kmod.modinfo(ko)
    release, *flags = info["vermagic"][0].split()
    assert re.fullmatch(r"4\.9\.88-g[0-9a-f]{8,}", release), release
    assert flags == ["SMP", "preempt", "mod_unload", "ARMv7", "p2v8"]
    assert sorted(info["alias"]) == ["of:N*T*Cfsl,imx6sx-cm4", "of:N*T*Cfsl,imx6sx-cm4C*",
                                     "of:N*T*Cfsl,imx7d-cm4", "of:N*T*Cfsl,imx7d-cm4C*"]
    assert set(info["parm"]) >= {"firmware:M4 firmware file in /lib/firmware (default "
                                 "rproc-imx-rproc-fw)"}
    manifest = json.loads((ws / "artifacts" / "manifest.json").read_text())
    (rec,) = manifest["out_of_tree"]
    assert rec["version"] == "4.14.78" and rec["target"] == {"version": "4.9.88",
                                                              "family": "nxp-4.9"}
    assert [(p["fix"], p["status"]) for p in rec["patches"]] == [
        ("imx-rproc-firmware-param", "applied")]
    # the core gaps went onto the kernel tree, classified by the patch engine
    report = json.loads((ws / "reports" / "imx-rproc" / "patch-report.json").read_text())
    status = {p["fix"]: p["status"] for p in report["patches"]}
    assert status == {"optional-mu-mailboxes": "not-applicable",
                      "empty-resource-table": "applied", "elf-segment-loading": "applied",
                      "visible-remoteproc-core": "applied", "remoteproc-sysfs": "applied"}
    assert (ws / "artifacts" / "dtbs" / "imx7d-sdb-rproc-4.9.dtb").is_file()
