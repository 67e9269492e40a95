"""kconfiglib handling that needs no kernel tree: fragments and the ``modules`` attribute."""

from pathlib import Path

import pytest

from rprockit import kconfig
from rprockit.errors import KconfigError, ToolMissingError

KCONFIG_513 = """\
mainmenu "Linux/$(ARCH) $(KERNELVERSION) Kernel Configuration"

menuconfig MODULES
\tbool "Enable loadable module support"
\tmodules
\thelp
\t  modules is also a word in help text and must stay as it is

config FOO
\ttristate "foo"
\tdepends on BAR

config BAR
\tbool
"""


def _tree(tmp_path: Path, text: str = KCONFIG_513) -> Path:
    (tmp_path / "Kconfig").write_text(text)
    (tmp_path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 7\nEXTRAVERSION =\nNAME = x\n")
    return tmp_path


def test_bare_modules_attribute_parses(tmp_path):
    """Linux >= 5.13 writes 'modules' as an attribute; stock kconfiglib 14.1.0 rejects it."""
    import kconfiglib

    tree = _tree(tmp_path)
    import contextlib
    import os

    with contextlib.chdir(tree):
        os.environ["SRCTREE"] = str(tree)
        with pytest.raises(kconfiglib.KconfigError, match="couldn't parse 'modules'"):
            kconfiglib.Kconfig("Kconfig", warn=False)
    kconf = kconfig.load(tree, "arm", "arm-linux-gnueabihf-")
    assert kconf.modules.name == "MODULES"
    assert "modules is also a word" in kconf.syms["MODULES"].nodes[0].help


def test_kernel_version_stops_at_line_end(tmp_path):
    assert kconfig.kernel_version(_tree(tmp_path)) == "6.1.7"


def test_mainmenu_text_expanded(tmp_path):
    kconf = kconfig.load(_tree(tmp_path), "arm", "arm-linux-gnueabihf-")
    assert kconf.mainmenu_text == "Linux/arm 6.1.7 Kernel Configuration"


def test_fragment_parse_and_bad_line(tmp_path):
    f = tmp_path / "a.config"
    f.write_text("# comment\nCONFIG_FOO=m\n# CONFIG_BAR is not set\n\nCONFIG_S=\"x y\"\n")
    reqs = kconfig.parse_fragment(f)
    assert [(r.name, r.value, r.line) for r in reqs] == [("FOO", "m", 2), ("BAR", "n", 3),
                                                          ("S", '"x y"', 5)]
    f.write_text("CONFIG_FOO=m\nFOO=y\n")
    with pytest.raises(KconfigError, match=r"a\.config:2: cannot read 'FOO=y'"):
        kconfig.parse_fragment(f)


def test_unknown_symbol_named_with_file_line_and_suggestion(tmp_path):
    tree = _tree(tmp_path)
    f = tmp_path / "frag.config"
    f.write_text("CONFIG_FOO=m\nCONFIG_MODULEZ=y\n")
    kconf = kconfig.load(tree, "arm", "arm-linux-gnueabihf-")
    with pytest.raises(KconfigError) as e:
        kconfig.merge(kconf, "allnoconfig", [f])
    assert f"{f}:2: unknown Kconfig symbol CONFIG_MODULEZ" in str(e.value)
    assert "did you mean MODULES" in str(e.value)


def test_unmet_dependency_explained(tmp_path):
    tree = _tree(tmp_path)
    f = tmp_path / "frag.config"
    f.write_text("CONFIG_MODULES=y\nCONFIG_FOO=m\n")
    kconf = kconfig.load(tree, "arm", "arm-linux-gnueabihf-")
    reqs = kconfig.merge(kconf, "allnoconfig", [f])
    with pytest.raises(KconfigError) as e:
        kconfig.check(kconf, reqs)
    msg = str(e.value)
    assert "FOO=m requested" in msg and "got n" in msg
    assert "depends on BAR (=n)" in msg
    assert "BAR (=n) has no prompt and nothing selects it" in msg


def test_missing_cross_compiler_names_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler anywhere on PATH
    with pytest.raises(ToolMissingError, match="apt-get install gcc-arm-linux-gnueabihf"):
        kconfig.kconfig_env(_tree(tmp_path), "arm", "arm-linux-gnueabihf-")
