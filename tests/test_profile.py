"""Profile loading: schema errors carry file, key path and line."""

from pathlib import Path

import pytest

from rprockit.errors import ProfileError
from rprockit.profile import find_profile, load_modules, load_profile

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "kernel_configs/profiles/imx7d-mainline-6.1.yaml"


def test_default_profile_loads():
    p = load_profile(DEFAULT)
    assert p.name == "imx7d-mainline-6.1"
    assert p.source.kind == "debian" and p.source.debian_package == "linux-source-6.1"
    assert p.arch == "arm" and p.cross_compile == "arm-linux-gnueabihf-"
    assert p.config_base == "allnoconfig"
    assert all(f.is_file() for f in p.fragments)
    assert p.modules.load_order[-1] == "imx_rproc"
    assert p.target.name == "qemu-imx7d.yaml"


def test_every_shipped_profile_loads():
    # lock files (<profile>.lock.yaml, written by fetch) sit next to the profiles
    profiles = sorted(p for p in (ROOT / "kernel_configs/profiles").glob("*.yaml")
                      if not p.name.endswith(".lock.yaml"))
    names = {load_profile(p).name for p in profiles}
    assert "imx7d-mainline-6.1" in names
    assert any(load_profile(p).arch == "arm64" for p in profiles)


def _write(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


BASE = """format: 1
name: t
source:
  debian_package: linux-source-6.1
arch: arm
cross_compile: arm-linux-gnueabihf-
config:
  base: allnoconfig
build:
  image: zImage
"""


def test_unknown_key_names_file_key_and_line(tmp_path):
    p = _write(tmp_path, BASE + "  dtbz: [a.dtb]\n")
    with pytest.raises(ProfileError) as e:
        load_profile(p)
    msg = str(e.value)
    assert f"{p}:11: build.dtbz: unknown key 'dtbz'" in msg
    assert "dtbs" in msg  # the allowed keys are listed


def test_all_errors_reported_at_once(tmp_path):
    p = _write(tmp_path, BASE.replace("arch: arm", "arch: mips").replace("format: 1", "format: 1\nbogus: 2"))
    with pytest.raises(ProfileError) as e:
        load_profile(p)
    assert len(e.value.problems) == 2
    keys = {k for k, _, _ in e.value.problems}
    assert keys == {"arch", "bogus"}
    assert (":2: bogus" in str(e.value)) and (":6: arch" in str(e.value))


def test_missing_fragment_file_is_named(tmp_path):
    p = _write(tmp_path, BASE.replace("  base: allnoconfig", "  base: allnoconfig\n  fragments: [nope.config]"))
    with pytest.raises(ProfileError, match=r"config\.fragments\.0.*nope\.config not found"):
        load_profile(p)


def test_invalid_yaml_reports_line(tmp_path):
    p = _write(tmp_path, "format: 1\nname: [unclosed\n")
    with pytest.raises(ProfileError, match=r"p\.yaml:\d+: <top>: not valid YAML"):
        load_profile(p)


def test_two_sources_rejected(tmp_path):
    p = _write(tmp_path, BASE.replace("  debian_package: linux-source-6.1",
                                      "  debian_package: linux-source-6.1\n  path: /tmp"))
    with pytest.raises(ProfileError, match="source"):
        load_profile(p)


def test_find_profile_by_name_and_unknown():
    assert find_profile("imx7d-mainline-6.1", ROOT) == DEFAULT
    with pytest.raises(ProfileError, match=r"imx7d-mainline-6.1"):
        find_profile("no-such-profile", ROOT)


def test_module_set_validation(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("format: 1\nbuild_dirs: [drivers/remoteproc]\nload_order: ['bad name']\n")
    with pytest.raises(ProfileError, match=r"m\.yaml:3: load_order\[0\]"):
        load_modules(p)
