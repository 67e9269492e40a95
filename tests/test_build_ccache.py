"""The build stage's ccache plumbing, on a miniature kbuild-like tree (seconds, no kernel).

The tree's Makefile compiles like kbuild with ``O=``: from the output directory,
with absolute ``-I<src>/include`` and ``-fmacro-prefix-map=<src>/=`` on the
command line, through ``$(CC)`` (what the build stage passes as ``CC=ccache
<CROSS_COMPILE>gcc``), with the real arm-linux-gnueabihf-gcc and ccache.  It is
not a kernel: it makes the files the stage collects (image, DTB, Module.symvers,
kernel.release) so that :func:`rprockit.build.build` runs end to end.  The real
kernel build against a shared Redis is tests/test_ccache_shared.py (slow).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rprockit.build import build
from rprockit.ccache import CcacheSettings
from rprockit.profile import load_profile
from rprockit.workspace import Workspace

pytestmark = pytest.mark.skipif(shutil.which("ccache") is None or
                                shutil.which("arm-linux-gnueabihf-gcc") is None,
                                reason="needs ccache and arm-linux-gnueabihf-gcc")

MAKEFILE = """\
# a miniature of kbuild's out-of-tree compile (Linux 6.1 Makefile: srctree is absolute
# with O=, KBUILD_CPPFLAGS += -fmacro-prefix-map=$(srctree)/=)
srctree := $(abspath $(CURDIR))
ifeq ($(origin CC),default)
CC := $(CROSS_COMPILE)gcc
endif
FLAGS := -fmacro-prefix-map=$(srctree)/= $(KCPPFLAGS) -I$(srctree)/include -O2
zImage:
\tmkdir -p $(O)/arch/arm/boot/dts $(O)/include/config
\tcd $(O) && $(CC) $(FLAGS) -c $(srctree)/a.c -o a.o && $(CC) $(FLAGS) -c $(srctree)/b.c -o b.o
\tcat $(O)/a.o $(O)/b.o > $(O)/arch/arm/boot/zImage
\techo 6.1.0-mini > $(O)/include/config/kernel.release
modules:
\ttouch $(O)/Module.symvers
%.dtb:
\tmkdir -p $(O)/arch/arm/boot/dts && echo dtb > $(O)/arch/arm/boot/dts/$@
"""

PROFILE = """\
format: 1
name: mini
source: {path: src}
arch: arm
cross_compile: arm-linux-gnueabihf-
config: {base: allnoconfig}
build: {image: zImage, dtbs: [mini.dtb], jobs: 1}
"""


def _workspace(root: Path) -> tuple:
    prof = root / "mini.yaml"
    root.mkdir(parents=True)
    prof.write_text(PROFILE)
    (root / "src").mkdir()
    ws = Workspace(root / "ws", "mini")
    ws.src.mkdir(parents=True)
    (ws.src / "Makefile").write_text(MAKEFILE)
    (ws.src / "include").mkdir()
    (ws.src / "include" / "m.h").write_text("#define M 7\n")
    for name in ("a", "b"):
        (ws.src / f"{name}.c").write_text(
            f'#include "m.h"\nconst char *{name}_file(void) {{ return __FILE__; }}\n'
            f"int {name}(void) {{ return M; }}\n")
    # one fixed commit date and author: two workspaces made in different seconds hold the
    # same commit, as two clones of one tree do (the commit id is a build input)
    env = {**os.environ, "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z", "GIT_AUTHOR_NAME": "mini",
           "GIT_AUTHOR_EMAIL": "mini@example.invalid", "GIT_COMMITTER_NAME": "mini",
           "GIT_COMMITTER_EMAIL": "mini@example.invalid"}
    subprocess.run(["git", "init", "-q", str(ws.src)], check=True)
    subprocess.run(["git", "-C", str(ws.src), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(ws.src), "commit", "-q", "-m", "mini"], check=True, env=env)
    ws.out.mkdir()
    (ws.out / ".config").write_text("CONFIG_MINI=y\n")
    return load_profile(prof), ws


def test_second_workspace_hits_and_the_manifest_says_so(tmp_path):
    cache = CcacheSettings(dir=tmp_path / "ccache")
    results = []
    for name in ("first", "elsewhere/second"):
        prof, ws = _workspace(tmp_path / name)
        results.append((ws, build(prof, ws, {"source": "mini"}, ccache=cache)))
    (ws_a, a), (ws_b, b) = results
    assert a.ccache is not None and b.ccache is not None
    assert (a.ccache.compilations, a.ccache.misses) == (2, 2)
    assert (b.ccache.hits, b.ccache.local_hits, b.ccache.misses) == (2, 2, 0)
    entry = b.data["ccache"]
    assert entry["used"] and entry["base_dir"] == str(ws_b.base) and not entry["hash_dir"]
    assert entry["stats"]["hit_rate"] == 1.0 and entry["remote_storage"] is None
    # the cache is not an input: same inputs and outputs give the same manifest id
    assert "CCACHE_BASEDIR" not in b.data["inputs"]["environment"]
    assert a.data["id"] == b.data["id"]
    assert (ws_a.artifacts / "zImage").read_bytes() == (ws_b.artifacts / "zImage").read_bytes()
    assert "ccache-stats.log" in str(ws_b.logs / "ccache-stats.log")
    assert (ws_b.logs / "ccache-stats.log").read_text().count("# ../src/") == 2
    assert "'CC=ccache arm-linux-gnueabihf-gcc'" in (ws_b.logs / "build.log").read_text()


def test_uncached_build_is_identical_to_the_cached_one(tmp_path):
    """__FILE__ of a cached object is what the uncached build gives (KCPPFLAGS map)."""
    cached = []
    for name, settings in (("cached", CcacheSettings(dir=tmp_path / "ccache")),
                           ("plain", CcacheSettings(enabled=False))):
        prof, ws = _workspace(tmp_path / name)
        res = build(prof, ws, {"source": "mini"}, ccache=settings)
        cached.append((ws.artifacts / "zImage").read_bytes())
        if not settings.enabled:
            assert res.ccache is None and res.data["ccache"] == {"used": False}
            assert "CC=ccache" not in (ws.logs / "build.log").read_text()
            assert not (ws.logs / "ccache-stats.log").exists()
    assert b"../src/" not in cached[0] and b"a.c" in cached[0]
    assert cached[0] == cached[1]
