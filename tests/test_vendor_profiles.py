"""The NXP vendor profiles: they validate, pin a release tag and build the series' modules."""

from pathlib import Path

import pytest

from rprockit.kernel_tree import parse_family
from rprockit.patch import load_series
from rprockit.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "kernel_configs" / "profiles"

#: profile -> (board's arch, NXP release tag, family, defconfig)
VENDOR = {
    "nxp-imx7d-4.14": ("arm", "imx_4.14.78_1.0.0_ga", "nxp-4.14", "imx_v7_defconfig"),
    "nxp-imx7d-5.4": ("arm", "imx_5.4.47_2.2.0", "nxp-5.4", "imx_v7_defconfig"),
    "nxp-imx8mp-5.15": ("arm64", "lf-5.15.71-2.2.0", "nxp-5.15", "imx_v8_defconfig"),
    "nxp-imx8mp-6.1": ("arm64", "lf-6.1.55-2.2.0", "nxp-6.1", "imx_v8_defconfig"),
}


@pytest.mark.parametrize("name", sorted(VENDOR))
def test_vendor_profile_validates_and_pins_the_release(name):
    arch, tag, family, defconfig = VENDOR[name]
    p = load_profile(PROFILES / f"{name}.yaml")
    assert (p.name, p.arch, p.source.kind, p.source.git_ref) == (name, arch, "git", tag)
    assert p.source.git_url == "https://github.com/nxp-imx/linux-imx.git"
    assert p.source.family == family and parse_family(family)[0] == "nxp"
    assert p.config_base == defconfig and p.jobs == 2
    assert all(f.is_file() for f in p.fragments)
    # the series every vendor profile applies; the loadable imx_rpmsg fix is in it
    fixes = {fix for d in p.patches for fix in load_series(d).fixes()}
    assert "loadable-imx-rpmsg" in fixes
    assert {"imx_rproc", "imx_rpmsg"} <= set(p.modules.load_order)
    text = "".join(f.read_text() for f in p.fragments)
    assert "CONFIG_IMX_RPMSG=m" in text and "CONFIG_IMX_REMOTEPROC=m" in text
