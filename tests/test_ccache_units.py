"""Compiler cache settings, environment and statistics, against the real ccache binary.

The stats-log records are produced by running ccache 4.x itself on a tiny C file
(no fixture text is hand-written), so a change in ccache's log format fails here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import rprockit

from rprockit.ccache import (
    CcacheSettings,
    environment,
    read_stats,
    redact_url,
    settings_from_config,
)
from rprockit.errors import InvalidFileError

needs_ccache = pytest.mark.skipif(shutil.which("ccache") is None or
                                  shutil.which("arm-linux-gnueabihf-gcc") is None,
                                  reason="needs ccache and arm-linux-gnueabihf-gcc")


def test_settings_validated_and_resolved(tmp_path):
    s = settings_from_config({"dir": str(tmp_path / "c"), "remote_storage": "redis://h:6379",
                              "reshare": True})
    assert s == CcacheSettings(dir=tmp_path / "c", remote_storage="redis://h:6379",
                               reshare=True)
    assert settings_from_config(None) == CcacheSettings()


@pytest.mark.parametrize(("cfg", "needle"), [
    ({"remote_storag": "redis://h"}, "unknown key 'remote_storag'"),
    ({"remote_storage": "rediss://h"}, "remote_storage"),
    ({"reshare": "yes"}, "reshare"),
])
def test_bad_settings_name_the_key(cfg, needle):
    with pytest.raises(InvalidFileError) as e:
        settings_from_config(cfg)
    assert needle in str(e.value) and "rprockit.ccache" in str(e.value)


def test_bad_settings_exit_2_from_the_cli(tmp_path):
    cfg = tmp_path / "invoke.yaml"
    cfg.write_text("rprockit:\n  ccache:\n    remote_storage: ftp://x\n")
    proc = rprockit("-f", str(cfg), "build", "--workspace", str(tmp_path / "ws"))
    assert proc.returncode == 2, proc.stderr
    assert "rprockit.ccache" in proc.stderr and "remote_storage" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("KCPPFLAGS", raising=False)
    s = CcacheSettings(dir=tmp_path / "c", remote_storage="redis://h:1", remote_only=True)
    ws = tmp_path / "ws"
    env = environment(s, ws / "src", ws / "out", tmp_path / "log", debug_info=False)
    assert env == {"CCACHE_BASEDIR": str(ws), "CCACHE_STATSLOG": str(tmp_path / "log"),
                   "CCACHE_NOHASHDIR": "1", "KCPPFLAGS": "-fmacro-prefix-map=../src/=",
                   "CCACHE_DIR": str(tmp_path / "c"),
                   "CCACHE_REMOTE_STORAGE": "redis://h:1", "CCACHE_REMOTE_ONLY": "1"}
    monkeypatch.setenv("KCPPFLAGS", "-DMINE")
    assert environment(s, ws / "src", ws / "out", tmp_path / "l", False)["KCPPFLAGS"] == \
        "-DMINE -fmacro-prefix-map=../src/="
    # debug information records paths (DW_AT_name, DW_AT_comp_dir): no rewriting at all
    dbg = environment(CcacheSettings(), ws / "src", ws / "out", tmp_path / "l", debug_info=True)
    assert dbg == {"CCACHE_STATSLOG": str(tmp_path / "l")}


def test_redact_url():
    assert redact_url("redis://:s3cret@cache:6379") == "redis://***@cache:6379"
    assert redact_url("redis://cache:6379") == "redis://cache:6379"


def _tree(root: Path) -> Path:
    """A miniature kernel layout: <ws>/src with an include dir, <ws>/out for objects."""
    (root / "src" / "include").mkdir(parents=True)
    (root / "out").mkdir()
    (root / "src" / "t.c").write_text('#include "h.h"\nconst char *f(void) '
                                      '{ return __FILE__; }\nint g(void) { return X; }\n')
    (root / "src" / "include" / "h.h").write_text("#define X 3\n")
    return root


def _compile(ws: Path, env: dict, *extra: str) -> None:
    """Compile as kbuild does with O=: from out/, absolute source and include paths."""
    src = ws / "src"
    subprocess.run(["ccache", "arm-linux-gnueabihf-gcc", f"-fmacro-prefix-map={src}/=",
                    f"-I{src}/include", "-c", str(src / "t.c"), "-o", "t.o", *extra],
                   cwd=ws / "out", env=env, check=True, capture_output=True)


@needs_ccache
def test_different_workspace_paths_hit_with_base_dir(tmp_path):
    """Two workspaces at different paths share one cache directory: with base_dir the
    second compile is a direct hit and the objects are identical; without, a miss."""
    cache = tmp_path / "cache"
    results = {}
    for use_base in (False, True):
        for name in ("a", "b"):
            ws = _tree(tmp_path / f"{name}-{use_base}" / "ws")
            log = tmp_path / f"stats-{name}-{use_base}.log"
            env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CCACHE_DIR": str(cache),
                   "CCACHE_STATSLOG": str(log)}
            if use_base:
                env.update(environment(CcacheSettings(), ws / "src", ws / "out", log,
                                       debug_info=False))
            _compile(ws, env, *([env["KCPPFLAGS"]] if use_base else []))
            results[name, use_base] = read_stats(log)
            if name == "a" and use_base:  # the same compile without ccache: same object
                plain = dict(env, CCACHE_DISABLE="1")
                subprocess.run(["arm-linux-gnueabihf-gcc", f"-fmacro-prefix-map={ws}/src/=",
                                f"-I{ws}/src/include", "-c", str(ws / "src" / "t.c"), "-o",
                                "plain.o"], cwd=ws / "out", env=plain, check=True)
                assert (ws / "out" / "plain.o").read_bytes() == \
                    (ws / "out" / "t.o").read_bytes(), "the cached build changed __FILE__"
    assert results["b", False].hits == 0 and results["b", False].misses == 1
    b = results["b", True]
    assert (b.hits, b.direct_hits, b.local_hits, b.misses, b.compilations) == (1, 1, 1, 0, 1)
    assert b.hit_rate == 1.0 and "100.0% hits (1/1 compilations; 1 local, 0 remote)" in b.render()
    assert (tmp_path / "a-True/ws/out/t.o").read_bytes() == \
        (tmp_path / "b-True/ws/out/t.o").read_bytes()


@needs_ccache
def test_stats_count_uncacheable_calls_and_unreachable_remote(tmp_path):
    ws = _tree(tmp_path / "ws")
    log = tmp_path / "stats.log"
    # a port nothing listens on (reserved tcpmux): every remote access fails
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CCACHE_DIR": str(tmp_path / "c"),
           **environment(CcacheSettings(remote_storage="redis://127.0.0.1:1"), ws / "src",
                         ws / "out", log, debug_info=False)}
    _compile(ws, env)
    subprocess.run(["ccache", "arm-linux-gnueabihf-gcc", "-E", f"-I{ws}/src/include",
                    str(ws / "src" / "t.c")],
                   cwd=ws / "out", env=env, check=True, capture_output=True)
    st = read_stats(log)
    assert (st.calls, st.compilations, st.misses, st.uncacheable) == (2, 1, 1, 1)
    assert st.remote_errors >= 1 and "remote storage errors" in st.render()
    assert read_stats(tmp_path / "missing.log").compilations == 0
