"""configure on the real Debian 6.1 tree: the .config is what `make olddefconfig` writes."""

import shutil
import subprocess
from pathlib import Path

import pytest

from rprockit import kconfig
from rprockit.profile import load_profile

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _olddefconfig(src: Path, config: Path, arch: str, cross: str, tmp: Path) -> bytes:
    out = tmp / f"olddef-{arch}"
    out.mkdir()
    shutil.copy(config, out / ".config")
    subprocess.run(["make", "-s", "-C", str(src), f"O={out}", f"ARCH={arch}",
                    f"CROSS_COMPILE={cross}", "olddefconfig"], check=True, capture_output=True)
    return (out / ".config").read_bytes()


def test_default_config_is_byte_identical_to_make_olddefconfig(kernel_tree, tmp_path):
    config = kernel_tree.parent / "out" / ".config"
    ours = config.read_bytes()
    assert b"CONFIG_IMX_REMOTEPROC=m\n" in ours
    assert ours == _olddefconfig(kernel_tree, config, "arm", "arm-linux-gnueabihf-", tmp_path)


@pytest.mark.parametrize("name", ["imx8mm-mainline-6.1"])
def test_arm64_profile_config_is_byte_identical(kernel_tree, tmp_path, name):
    p = load_profile(ROOT / "kernel_configs" / "profiles" / f"{name}.yaml")
    out = tmp_path / "ours" / ".config"
    res = kconfig.configure(kernel_tree, p.arch, p.cross_compile, p.config_base,
                            list(p.fragments), out)
    assert res.actual["IMX_REMOTEPROC"] == "m"
    assert out.read_bytes() == _olddefconfig(kernel_tree, out, p.arch, p.cross_compile, tmp_path)


def test_rerun_does_not_rewrite(kernel_tree, tmp_path):
    p = load_profile(ROOT / "kernel_configs" / "profiles" / "imx7d-mainline-6.1.yaml")
    out = tmp_path / ".config"
    first = kconfig.configure(kernel_tree, p.arch, p.cross_compile, p.config_base,
                              list(p.fragments), out)
    again = kconfig.configure(kernel_tree, p.arch, p.cross_compile, p.config_base,
                              list(p.fragments), out)
    assert first.changed and not again.changed
