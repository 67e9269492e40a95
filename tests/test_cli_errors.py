"""Bad input through the real command line: exit code 2, one paragraph naming
the culprit, and the tree and outputs left as they were."""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, rprockit

PROFILES = ROOT / "kernel_configs" / "profiles"
DEFAULT = (PROFILES / "imx7d-mainline-6.1.yaml").read_text()


def _variant(tmp_path: Path, text: str) -> Path:
    """A copy of the default profile (same name, so the same workspace) with ``text``.

    Paths are made absolute so the copy can live in ``tmp_path``.
    """
    text = text.replace("../../", f"{ROOT}/").replace("../", f"{PROFILES.parent}/")
    p = tmp_path / "profile.yaml"
    p.write_text(text)
    return p


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _configure_refused(tmp_path: Path, ws: Path, profile_text: str, env=None) -> str:
    """Run configure on a variant profile in the session workspace; assert exit 2 and an
    untouched .config; return stderr."""
    cfg = ws / "imx7d-mainline-6.1" / "out" / ".config"
    before = _sha(cfg)
    p = _variant(tmp_path, profile_text)
    proc = rprockit("configure", "--profile", str(p), "--workspace", str(ws), env=env)
    assert proc.returncode == 2, proc.stderr
    assert _sha(cfg) == before
    return proc.stderr


def test_unknown_profile_key(tmp_path):
    p = _variant(tmp_path, DEFAULT.replace("arch: arm\n", "arch: arm\nmachine: imx7d\n"))
    proc = rprockit("configure", "--profile", str(p), "--workspace", str(tmp_path / "ws"))
    assert proc.returncode == 2
    assert f"{p}:" in proc.stderr and "unknown key 'machine'" in proc.stderr
    assert not (tmp_path / "ws").exists()


def test_unknown_profile_name():
    proc = rprockit("fetch", "--profile", "imx9-nothing")
    assert proc.returncode == 2 and "imx7d-mainline-6.1" in proc.stderr


def test_unreachable_git_url(tmp_path):
    text = DEFAULT.replace("  debian_package: linux-source-6.1\n",
                           f"  git: {{url: 'file://{tmp_path}/gone.git', ref: lf-5.4.y}}\n")
    p = _variant(tmp_path, text)
    proc = rprockit("fetch", "--profile", str(p), "--workspace", str(tmp_path / "ws"))
    assert proc.returncode == 2, proc.stderr
    assert "cannot fetch 'lf-5.4.y'" in proc.stderr and "gone.git" in proc.stderr
    assert not (tmp_path / "profile.lock.yaml").exists()


def test_locked_commit_gone(tmp_path):
    repo = tmp_path / "up"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    text = DEFAULT.replace("  debian_package: linux-source-6.1\n",
                           f"  git: {{url: 'file://{repo}', ref: main}}\n")
    p = _variant(tmp_path, text)
    (tmp_path / "profile.lock.yaml").write_text(
        f"format: 1\nsource: {{url: 'file://{repo}', ref: main, "
        "commit: 1111111111111111111111111111111111111111}\n")
    proc = rprockit("fetch", "--profile", str(p), "--workspace", str(tmp_path / "ws"))
    assert proc.returncode == 2, proc.stderr
    assert "locked commit 1111111111111111111111111111111111111111" in proc.stderr
    assert "profile.lock.yaml" in proc.stderr


@pytest.mark.slow
def test_missing_cross_compiler(tmp_path, default_pipeline):
    ws, _ = default_pipeline
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("git", "make", "tar", "dpkg-query", "gcc", "sh"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool), bindir / tool)
    err = _configure_refused(tmp_path, ws, DEFAULT, env={"PATH": str(bindir)})
    assert "arm-linux-gnueabihf-gcc" in err
    assert "apt-get install gcc-arm-linux-gnueabihf" in err


@pytest.mark.slow
def test_unknown_kconfig_symbol(tmp_path, default_pipeline):
    ws, _ = default_pipeline
    frag = tmp_path / "typo.config"
    frag.write_text("# typo\nCONFIG_IMX_REMOTEPROCS=m\n")
    err = _configure_refused(tmp_path, ws, DEFAULT.replace(
        "    - ../fragments/rproc-rpmsg.config\n",
        f"    - ../fragments/rproc-rpmsg.config\n    - {frag}\n"))
    assert f"{frag}:2: unknown Kconfig symbol CONFIG_IMX_REMOTEPROCS" in err
    assert "did you mean IMX_REMOTEPROC" in err


@pytest.mark.slow
def test_unmet_dependency_explained(tmp_path, default_pipeline):
    ws, _ = default_pipeline
    frag = tmp_path / "only-rproc.config"
    frag.write_text("CONFIG_MODULES=y\nCONFIG_REMOTEPROC=y\nCONFIG_IMX_REMOTEPROC=m\n")
    err = _configure_refused(tmp_path, ws, DEFAULT.replace(
        "    - ../fragments/imx7d-qemu.config\n    - ../fragments/rproc-rpmsg.config\n",
        f"    - {frag}\n"))
    # allnoconfig on ARM turns MMU off, so nothing selects HAVE_ARM_SMCCC
    assert "IMX_REMOTEPROC=m requested" in err and "got n" in err
    assert "HAVE_ARM_SMCCC (=n)" in err and "CPU_V7 (=n)" in err and "MMU (=n)" in err
