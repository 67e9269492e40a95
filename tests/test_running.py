"""The kernel a board runs: its config (file or SSH), release string, symbol CRCs.

Real material: a real sshd on loopback (tests/sshd_fixture.py) stands in for the
board, with its ``/proc`` and ``/boot`` under a ``root_prefix``; the release
prediction is compared with the kernel's own ``scripts/setlocalversion`` (Debian's
linux-source-6.1 in the shared workspace, skipped without it); the CRC check reads
a ``__versions`` section built here with arm-linux-gnueabihf-objcopy against
lines of a real ``Module.symvers`` (tests/fixtures/modversions/README), and, when
``RPROCKIT_NXP_IMX7D_5_4_ARTIFACTS`` names the artifacts of a real NXP 5.4 build,
the real modules against its real file.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import fakemod
import pytest

from rprockit import kconfig, running
from rprockit.deploy import DeployArtifacts, PrecheckError, deploy
from rprockit.kmod import symbol_versions
from rprockit.target import load_target

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "modversions"
RELEASE = platform.release()  # what `uname -r` prints over SSH to this host
TEST_WS = Path(os.environ.get("RPROCKIT_TEST_WORKSPACE", ROOT / "build" / "test-workspace"))
SETLOCALVERSION = TEST_WS / "imx7d-mainline-6.1" / "src" / "scripts" / "setlocalversion"

needs_cross = pytest.mark.skipif(
    shutil.which("arm-linux-gnueabihf-gcc") is None or shutil.which("modinfo") is None,
    reason="needs arm-linux-gnueabihf-gcc (gcc-arm-linux-gnueabihf) and modinfo (kmod)")

BOARD_CONFIG = "CONFIG_MODULES=y\nCONFIG_BAR=y\nCONFIG_FOO=m\n# CONFIG_BAZ is not set\n"
KCONFIG = """\
mainmenu "Linux/$(ARCH) $(KERNELVERSION) Kernel Configuration"
config MODULES
\tbool "modules"
\toption modules
config BAR
\tbool "bar"
config FOO
\ttristate "foo"
\tdepends on BAR
config BAZ
\tbool "baz"
\tdefault y
config QUX
\ttristate "qux"
"""


def _tree(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "Kconfig").write_text(KCONFIG)
    (d / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 7\nEXTRAVERSION =\n")
    return d


# -- config from a file ------------------------------------------------------------------
def test_parse_config_plain_gzip_and_not_a_config(tmp_path):
    assert running.parse_config(BOARD_CONFIG.encode(), "x") == BOARD_CONFIG
    assert running.parse_config(gzip.compress(BOARD_CONFIG.encode()), "x") == BOARD_CONFIG
    with pytest.raises(running.ConfigSourceError, match=r"board\.cfg: no 'CONFIG_X=value'"):
        running.parse_config(b"hello\n", "board.cfg")
    with pytest.raises(running.ConfigSourceError, match="not a readable gzip"):
        running.parse_config(b"\x1f\x8b\x08\x00broken", "config.gz")


@pytest.mark.parametrize("gz", [False, True], ids=["dot-config", "config.gz"])
def test_configure_from_a_board_config_file(tmp_path, gz):
    """The board's values are the base; a fragment on top wins; read-back as today.
    By hand: BAZ is 'default y' but the board says not set, so it stays n; QUX is
    not in the board's config, so it takes its default (n)."""
    tree = _tree(tmp_path / "tree")
    base = tmp_path / ("config.gz" if gz else "board.config")
    base.write_bytes(gzip.compress(BOARD_CONFIG.encode()) if gz else BOARD_CONFIG.encode())
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_QUX=m\n")
    out = tmp_path / "out" / ".config"
    res = kconfig.configure(tree, "arm", "arm-linux-gnueabihf-", str(base), [frag], out)
    text = out.read_text()
    assert "CONFIG_FOO=m\n" in text and "CONFIG_BAR=y\n" in text and "CONFIG_QUX=m\n" in text
    assert "# CONFIG_BAZ is not set\n" in text
    assert res.actual == {"QUX": "m"}


def test_profile_base_path_is_resolved_and_checked(tmp_path):
    from rprockit.errors import ProfileError
    from rprockit.profile import load_profile

    text = (ROOT / "kernel_configs/profiles/imx7d-mainline-6.1.yaml").read_text()
    text = text.replace("../../", f"{ROOT}/").replace("../", f"{ROOT}/kernel_configs/")
    board = tmp_path / "boards" / "sabre.config"
    board.parent.mkdir()
    board.write_text(BOARD_CONFIG)
    prof = tmp_path / "p.yaml"
    prof.write_text(text.replace("base: allnoconfig", "base: boards/sabre.config"))
    assert load_profile(prof).config_base == str(board)
    board.unlink()
    with pytest.raises(ProfileError, match=r"config\.base.*boards/sabre.config not found"):
        load_profile(prof)


# -- config from the target over SSH -------------------------------------------------------
@pytest.fixture
def board_root(tmp_path) -> Path:
    root = tmp_path / "board root"
    (root / "proc").mkdir(parents=True)
    (root / "boot").mkdir()
    return root


def test_config_from_target_over_ssh(tmp_path, sshd, board_root):
    env = sshd.environment_file(tmp_path, root_prefix=str(board_root))
    # /proc/config.gz first (CONFIG_IKCONFIG_PROC, kernel/configs.c)
    (board_root / "proc" / "config.gz").write_bytes(gzip.compress(BOARD_CONFIG.encode()))
    (board_root / "boot" / f"config-{RELEASE}").write_text("CONFIG_OTHER=y\n")
    release, cfg = running.read_from_target(env, tmp_path / "base", want_config=True)
    assert release == RELEASE and cfg is not None
    assert cfg.where == f"{board_root}/proc/config.gz"
    assert cfg.path.read_text() == BOARD_CONFIG
    # then the distribution's /boot/config-$(uname -r)
    (board_root / "proc" / "config.gz").unlink()
    _, cfg = running.read_from_target(env, tmp_path / "base", want_config=True)
    assert cfg is not None and cfg.where.endswith(f"/boot/config-{RELEASE}")
    assert cfg.path.read_text() == "CONFIG_OTHER=y\n"
    # neither: the error names both paths and the two fixes
    (board_root / "boot" / f"config-{RELEASE}").unlink()
    with pytest.raises(running.ConfigSourceError) as err:
        running.read_from_target(env, tmp_path / "base", want_config=True)
    msg = str(err.value)
    assert "/proc/config.gz" in msg and f"/boot/config-{RELEASE}" in msg
    assert "CONFIG_IKCONFIG_PROC=y" in msg and "--base-config FILE" in msg


def test_cli_configure_base_config_target(tmp_path, sshd, board_root):
    """`rprockit configure --base-config target` reads the config over SSH before the
    pipeline runs; a target that has none is a clean error (exit 2), nothing fetched."""
    from conftest import rprockit

    env = sshd.environment_file(tmp_path, root_prefix=str(board_root))
    proc = rprockit("configure", "--base-config", "target", "--target", str(env),
                    "--workspace", str(tmp_path / "ws"))
    assert proc.returncode == 2, proc.stderr
    assert "has none of" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "ws" / "imx7d-mainline-6.1" / "src").exists()


# -- the release string --------------------------------------------------------------------
def _git_tree(d: Path, tag: str | None) -> Path:
    _tree(d)
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(d), *cmd], check=True)
    if tag:
        subprocess.run(["git", "-C", str(d), "tag", "-a", "-m", tag, tag], check=True)
    return d


def _real_setlocalversion(src: Path, out: Path, config: str, env_lv: str | None) -> str:
    (out / "include" / "config").mkdir(parents=True, exist_ok=True)
    # 6.1 writes strings unquoted into auto.conf (scripts/kconfig/confdata.c)
    (out / "include" / "config" / "auto.conf").write_text(config.replace('"', ""))
    env = {k: v for k, v in os.environ.items() if k != "LOCALVERSION"}
    if env_lv is not None:
        env["LOCALVERSION"] = env_lv
    res = subprocess.run(["sh", str(SETLOCALVERSION), str(src)], cwd=out, env=env,
                         capture_output=True, text=True, check=True)
    return "6.1.7" + res.stdout.strip()


CASES = [  # (tag at HEAD, dirty, CONFIG_LOCALVERSION, LOCALVERSION, expected by hand)
    (None, False, '""', None, "6.1.7+"),          # untagged git tree: '+' (lines 133-142)
    ("v6.1.7", False, '""', None, "6.1.7"),       # at an annotated tag: nothing
    ("v6.1.7", True, '""', None, "6.1.7+"),       # at the tag but dirty: '+'
    (None, False, '"-imx"', None, "6.1.7-imx+"),  # CONFIG_LOCALVERSION, then '+'
    (None, False, '"-imx"', "", "6.1.7-imx"),     # LOCALVERSION set (empty): no '+'
    (None, True, '""', "-lab", "6.1.7-lab"),      # LOCALVERSION appended, no '+'
]


@pytest.mark.parametrize(("tag", "dirty", "cfg_lv", "env_lv", "expected"), CASES)
def test_release_prediction_matches_setlocalversion(tmp_path, tag, dirty, cfg_lv, env_lv,
                                                    expected):
    src = _git_tree(tmp_path / "src", tag)
    if dirty:
        (src / "Kconfig").write_text(KCONFIG + "# edited\n")
    out = tmp_path / "out"
    out.mkdir()
    config = f"CONFIG_LOCALVERSION={cfg_lv}\n# CONFIG_LOCALVERSION_AUTO is not set\n"
    parts = running.release_parts(src, out, config, "6.1.7", env_lv)
    assert parts.release == expected
    if SETLOCALVERSION.is_file():  # the kernel's own script agrees
        assert _real_setlocalversion(src, out, config, env_lv) == expected


def test_localversion_for_the_running_kernel():
    plus = running.ReleaseParts("6.1.192", config="", scm="+")
    assert running.localversion_for(plus, "6.1.192", "board") == ""
    assert running.localversion_for(plus, "6.1.192-imx-lab", "board") == "-imx-lab"
    with pytest.raises(running.ReleaseMismatchError) as err:
        running.localversion_for(plus, "6.1.150", "board")
    assert "the tree is 6.1.192, the target runs 6.1.150" in str(err.value)
    imx = running.ReleaseParts("6.1.192", config="-imx")
    with pytest.raises(running.ReleaseMismatchError, match="set CONFIG_LOCALVERSION"):
        running.localversion_for(imx, "6.1.192-lab", "board")
    auto = running.ReleaseParts("6.1.192", auto=True, scm="-g0123456789ab")
    with pytest.raises(running.ReleaseMismatchError, match="LOCALVERSION_AUTO"):
        running.localversion_for(auto, "6.1.192", "board")


# -- refused before deploy -----------------------------------------------------------------
@pytest.fixture(scope="module")
def arm_obj(tmp_path_factory) -> Path:
    return fakemod.arm_object(tmp_path_factory.mktemp("ko"))


def _set(d: Path, obj: Path, release: str, versions: dict[str, int] | None = None,
         **fields) -> DeployArtifacts:
    d.mkdir(parents=True, exist_ok=True)
    ko = fakemod.make_ko(obj, d / "imx_rproc.ko", release)
    if versions:
        fakemod.add_versions(ko, versions)
    man = d / "manifest.json"
    man.write_text(json.dumps({"id": "t", "kernel_release": release}))
    return DeployArtifacts(modules=(ko,), kernel_release=release, load_order=("imx_rproc",),
                           manifest_id="t", manifest_path=man, **fields)


def _target(tmp_path, sshd, root: Path):
    (root / "lib" / "modules" / RELEASE).mkdir(parents=True)
    (root / "lib" / "firmware").mkdir(parents=True)
    return load_target(sshd.environment_file(tmp_path, root_prefix=str(root)))


@needs_cross
def test_release_plus_mismatch_refused_with_the_reason(tmp_path, sshd, arm_obj):
    """A build from an untagged git tree is '<release>+' (setlocalversion line 142); the
    target runs '<release>': refused before anything is copied, the '+' explained."""
    root = tmp_path / "root"
    target = _target(tmp_path, sshd, root)
    parts = running.ReleaseParts(RELEASE, scm="+")
    arts = _set(tmp_path / "b", arm_obj, RELEASE + "+", release_parts=parts.to_dict())
    with pytest.raises(PrecheckError) as err:
        deploy(target, arts)
    msg = str(err.value)
    assert f"the build is {RELEASE}+, the target runs {RELEASE}" in msg
    assert "the trailing '+' comes from scripts/setlocalversion" in msg
    assert "--match-target" in msg and 'LOCALVERSION=""' in msg
    assert not (root / "lib" / "modules" / RELEASE / "updates").exists()


def _fixture_crcs() -> dict[str, int]:
    return {e: v.crc for e, v in running.read_symvers(FIXTURES / "Module.symvers").items()}


@needs_cross
def test_modversions_crc_match_deploys_and_mismatch_is_refused(tmp_path, sshd, arm_obj):
    root = tmp_path / "root"
    target = _target(tmp_path, sshd, root)
    symvers = FIXTURES / "Module.symvers"
    good = _set(tmp_path / "good", arm_obj, RELEASE, _fixture_crcs(), symvers=symvers)
    assert symbol_versions(good.modules[0])["module_layout"] == 0x1871D2CA
    res = deploy(target, good)
    assert res.installed and not res.forced

    crcs = _fixture_crcs() | {"rproc_del": 0x12345678}  # the module's view differs
    bad = _set(tmp_path / "bad", arm_obj, RELEASE, crcs, symvers=symvers)
    installed = root / "lib" / "modules" / RELEASE / "updates" / "imx_rproc.ko"
    before = installed.read_bytes()
    with pytest.raises(PrecheckError) as err:
        deploy(target, bad, force=True)  # not forceable: the kernel would refuse it
    msg = str(err.value)
    assert "imx_rproc.ko: symbol rproc_del has CRC 0x12345678 in the module but " \
           "0x98f3abda in" in msg
    assert 'disagrees about version of symbol rproc_del' in msg
    assert installed.read_bytes() == before

    unknown = _set(tmp_path / "unk", arm_obj, RELEASE, {"rproc_shutdown": 1}, symvers=symvers)
    with pytest.raises(PrecheckError, match=r"imports rproc_shutdown .* does not export it"):
        deploy(target, unknown)
    bare = dataclasses.replace(_set(tmp_path / "bare", arm_obj, RELEASE), symvers=symvers)
    with pytest.raises(PrecheckError, match=r"no symbol CRCs \(__versions\)"):
        deploy(target, bare)


VENDOR = os.environ.get("RPROCKIT_NXP_IMX7D_5_4_ARTIFACTS")


@pytest.mark.skipif(not VENDOR, reason="set RPROCKIT_NXP_IMX7D_5_4_ARTIFACTS to the "
                    "artifacts/ of an nxp-imx7d-5.4 build (CONFIG_MODVERSIONS=y)")
def test_real_vendor_modules_against_their_symvers(tmp_path):
    """By hand: modpost wrote both from one build, so every CRC matches; a copy of the
    file with module_layout's CRC changed (a kernel whose struct module differs) is
    refused for every module, naming module_layout."""
    from rprockit.deploy.precheck import check_symbol_crcs

    art = Path(str(VENDOR))
    mods = tuple(sorted((art / "modules").glob("*.ko")))
    assert mods and all(symbol_versions(m) for m in mods)
    ok = DeployArtifacts(modules=mods, symvers=art / "Module.symvers")
    assert check_symbol_crcs(ok) == []
    text = (art / "Module.symvers").read_text()
    assert "0x1871d2ca\tmodule_layout\t" in text
    other = tmp_path / "Module.symvers"
    other.write_text(text.replace("0x1871d2ca\tmodule_layout\t", "0x00c0ffee\tmodule_layout\t"))
    problems = check_symbol_crcs(dataclasses.replace(ok, symvers=other))
    assert len(problems) == len(mods)
    assert all("symbol module_layout has CRC 0x1871d2ca" in p for p in problems)
