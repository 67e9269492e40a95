"""Reproducibility: the comparison names differing files; the default profile is bit-identical."""

import json
import subprocess

import pytest
from conftest import ROOT, rprockit

from rprockit.repro import compare_dirs

pytestmark = pytest.mark.slow
PROFILE = "imx7d-mainline-6.1"

NONDET_MAKEFILE = """\
obj-m += rprockit_nondet.o
# a fresh random value per build: the kind of input that breaks reproducibility
ccflags-y += -DBUILD_SALT_VALUE=$(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
"""
NONDET_C = """\
#include <linux/module.h>
static unsigned int salt = BUILD_SALT_VALUE;
module_param(salt, uint, 0444);
MODULE_LICENSE("GPL");
"""
DET_C = """\
#include <linux/module.h>
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("deterministic control module");
"""


def _external_module(ws, moddir, out_dir):
    """Build the two external modules against the session's real O= tree (kbuild M=)."""
    src = ws / PROFILE / "src"
    out = ws / PROFILE / "out"
    subprocess.run(["make", "-C", str(src), f"O={out}", "ARCH=arm",
                    "CROSS_COMPILE=arm-linux-gnueabihf-", f"M={moddir}", "modules"],
                   check=True, capture_output=True, text=True,
                   env={"PATH": "/usr/bin:/bin", "KBUILD_BUILD_TIMESTAMP": "x",
                        "SOURCE_DATE_EPOCH": "0"})
    out_dir.mkdir()
    for ko in moddir.glob("*.ko"):
        (out_dir / ko.name).write_bytes(ko.read_bytes())


def test_random_value_in_a_module_is_reported_by_name(tmp_path, default_pipeline):
    ws, _ = default_pipeline
    builds = []
    for name in ("a", "b"):
        moddir = tmp_path / f"mod-{name}"
        moddir.mkdir()
        (moddir / "Makefile").write_text(NONDET_MAKEFILE + "obj-m += rprockit_det.o\n")
        (moddir / "rprockit_nondet.c").write_text(NONDET_C)
        (moddir / "rprockit_det.c").write_text(DET_C)
        _external_module(ws, moddir, tmp_path / f"out-{name}")
        builds.append(tmp_path / f"out-{name}")
    rep = compare_dirs(builds[0], builds[1], "zImage", tmp_path / "diffoscope")
    assert rep.differing == ["rprockit_nondet.ko"]
    assert "rprockit_det.ko" in rep.compared
    assert not rep.identical
    assert "NOT reproducible: 1 of 2 artifacts differ" in rep.render()
    assert "rprockit_nondet.ko" in rep.render()


def test_default_profile_is_bit_identical(default_pipeline):
    """Two clean builds without ccache, different source and O= paths: every artifact equal."""
    ws, _ = default_pipeline
    proc = rprockit("build", "--check-reproducible", "--workspace", str(ws),
                    env={"RPROCKIT_ROOT": str(ROOT)}, timeout=3600)
    report = json.loads((ws / PROFILE / "reports" / "reproducibility.json").read_text())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert report["identical"] and report["differing"] == []
    names = report["sha256"].keys()
    assert "arch/arm/boot/zImage" in names
    assert any(n.endswith("imx_rproc.ko") for n in names)
    assert any(n.endswith("imx7d-sdb.dtb") for n in names)
    # identical builds leave nothing to inspect: their O= directories are gone
    assert not (ws / PROFILE / "repro" / "a").exists()
    assert not (ws / PROFILE / "repro" / "b").exists()
