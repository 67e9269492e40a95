"""Deploy against a real OpenSSH server on loopback, into a stand-in target root.

The target is this host reached through a throwaway sshd (tests/sshd_fixture.py);
``root_prefix`` points at a temporary directory standing in for the target's ``/``.
Modules are real ARM ELF objects with a ``.modinfo`` section (built with
arm-linux-gnueabihf-gcc/objcopy) so ``modinfo -F vermagic`` reads them for real, and
the kernel release they are compared with is the real ``uname -r`` read over SSH.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import fakemod
import pytest
from sshd_fixture import sshd  # noqa: F401 - fixture

from rprockit.deploy import (
    DeployArtifacts,
    HostKeyMismatchError,
    HostKeyUnknownError,
    NothingToRollBackError,
    PrecheckError,
    ReloadError,
    ReloadImpossibleError,
    SSHTransport,
    UploadError,
    deploy,
    rollback,
)
from rprockit.target import load_target

RELEASE = platform.release()  # what `uname -r` prints over SSH to this host
CROSS = "arm-linux-gnueabihf-"

pytestmark = pytest.mark.skipif(
    shutil.which(CROSS + "gcc") is None or shutil.which("modinfo") is None,
    reason="needs arm-linux-gnueabihf-gcc (gcc-arm-linux-gnueabihf) and modinfo (kmod)")


# -- helpers -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def arm_object(tmp_path_factory) -> Path:
    return fakemod.arm_object(tmp_path_factory.mktemp("ko"))


make_ko = fakemod.make_ko


def build_set(arm_object: Path, d: Path, release: str = RELEASE, version: str = "1",
              fw_size: int = 4096, names=("rprockit_a", "rprockit_b")) -> DeployArtifacts:
    d.mkdir(parents=True, exist_ok=True)
    mods = tuple(make_ko(arm_object, d / f"{n}.ko", release, version) for n in names)
    fw = d / "rproc-test.elf"
    fw.write_bytes(os.urandom(fw_size))
    manifest = d / "manifest.json"
    manifest.write_text(json.dumps({"id": f"build-{version}", "kernel_release": release}))
    return DeployArtifacts(modules=mods, firmware=(fw,), kernel_release=release,
                           load_order=tuple(names), manifest_id=f"build-{version}",
                           manifest_path=manifest)


def write_env(path: Path, server, root: Path, known_hosts: Path | None = None,
              **settings) -> Path:
    opts = {"root_prefix": str(root), "known_hosts": str(known_hosts or server.known_hosts),
            "connect_timeout": 5, **settings}
    env = {"targets": {"main": {
        "resources": {"NetworkService": {"address": server.host, "username": server.user,
                                         "port": server.port}},
        "drivers": {"SSHDriver": {"keyfile": str(server.user_key)}},
        "options": {"rprockit": opts}}}}
    path.write_text(json.dumps(env))  # JSON is YAML
    return path


def snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under ``root`` with its sha256."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def root(tmp_path) -> Path:
    # A space and shell syntax in the path: every remote argument must be quoted.
    r = tmp_path / "target root $(touch PWNED)"
    (r / "lib" / "modules" / RELEASE / "kernel").mkdir(parents=True)
    (r / "lib" / "firmware").mkdir(parents=True)
    return r


@pytest.fixture
def target(tmp_path, sshd, root):  # noqa: F811
    return load_target(write_env(tmp_path / "env.yaml", sshd, root))


def updates(root: Path) -> Path:
    return root / "lib" / "modules" / RELEASE / "updates"


# -- tests ---------------------------------------------------------------------------------
def test_deploy_then_rollback(tmp_path, arm_object, target, root):
    # A distro module of the same name already in updates/ must come back on rollback.
    updates(root).mkdir(parents=True)
    (updates(root) / "rprockit_a.ko").write_bytes(b"distro module")
    v1 = build_set(arm_object, tmp_path / "v1", version="1")
    events = []
    res = deploy(target, v1, progress=events.append)

    assert res.release == RELEASE and not res.forced
    for ko in v1.modules:
        assert sha(updates(root) / ko.name) == sha(ko)
    assert sha(root / "lib/firmware/rproc-test.elf") == sha(v1.firmware[0])
    record = json.loads((root / "lib/.rprockit/deploy.json").read_text())
    assert record["build"]["manifest_id"] == "build-1"
    assert record["build"]["manifest_sha256"] == sha(v1.manifest_path)
    assert record["modules"] == {ko.name: sha(ko) for ko in v1.modules}
    assert record["load_order"] == ["rprockit_a", "rprockit_b"]
    assert record["forced"] is False
    dep = (root / "lib/modules" / RELEASE / "modules.dep").read_text()
    assert "updates/rprockit_a.ko:" in dep  # depmod -b ran on the target tree
    assert not (root / "lib/.rprockit/new").exists()
    assert not list(tmp_path.rglob("PWNED"))
    assert {e.stage for e in events} >= {"connect", "precheck", "upload", "switch", "done"}

    v2 = build_set(arm_object, tmp_path / "v2", version="2", names=("rprockit_a",))
    deploy(target, v2)
    assert sha(updates(root) / "rprockit_a.ko") == sha(v2.modules[0])
    assert not (updates(root) / "rprockit_b.ko").exists()  # no longer in the set

    res = rollback(target)
    assert res.record["build"]["manifest_id"] == "build-1"
    for ko in v1.modules:
        assert sha(updates(root) / ko.name) == sha(ko)
    assert json.loads((root / "lib/.rprockit/deploy.json").read_text())["build"][
        "manifest_id"] == "build-1"
    with pytest.raises(NothingToRollBackError, match="nothing to roll back"):
        rollback(target)


def test_rollback_of_first_deploy_restores_the_original_files(tmp_path, arm_object, target,
                                                              root):
    updates(root).mkdir(parents=True)
    (updates(root) / "rprockit_a.ko").write_bytes(b"distro module")
    before = snapshot(root / "lib/firmware") | snapshot(updates(root))
    deploy(target, build_set(arm_object, tmp_path / "v1"))
    res = rollback(target)
    assert res.record is None
    assert snapshot(root / "lib/firmware") | snapshot(updates(root)) == before
    assert not (root / "lib/.rprockit/deploy.json").exists()


def test_release_mismatch_is_refused_and_changes_nothing(tmp_path, arm_object, target, root):
    other = build_set(arm_object, tmp_path / "other", release="6.1.99-other")
    before = snapshot(root)
    with pytest.raises(PrecheckError) as err:
        deploy(target, other)
    msg = str(err.value)
    assert "kernel release mismatch: the build is 6.1.99-other" in msg
    assert f"the target runs {RELEASE}" in msg
    assert "vermagic mismatch: rprockit_a.ko" in msg and "--force" in msg
    assert snapshot(root) == before

    res = deploy(target, other, force=True)
    assert res.forced and any("vermagic mismatch" in w for w in res.warnings)
    record = json.loads((root / "lib/.rprockit/deploy.json").read_text())
    assert record["forced"] is True and record["force_overrides"]


def test_connection_killed_mid_upload_keeps_old_files(tmp_path, arm_object, target, root,
                                                      sshd):  # noqa: F811
    v1 = build_set(arm_object, tmp_path / "v1")
    deploy(target, v1)
    installed = snapshot(root / "lib")
    installed = {k: v for k, v in installed.items() if not k.startswith(".rprockit/new")}

    v2 = build_set(arm_object, tmp_path / "v2", version="2", fw_size=8 << 20)
    killed = []

    def kill_during_firmware(ev):
        if ev.stage == "upload" and ev.name == "rproc-test.elf" and not killed:
            killed.append(sshd.kill_sessions())

    with pytest.raises(UploadError) as err:
        deploy(target, v2, progress=kill_during_firmware)
    assert killed and killed[0] >= 1
    assert "lost during the upload of" in str(err.value)
    assert "installed files were not changed" in str(err.value)
    after = {k: v for k, v in snapshot(root / "lib").items()
             if not k.startswith(".rprockit/new")}
    assert after == installed

    deploy(target, v2)
    assert sha(root / "lib/firmware/rproc-test.elf") == sha(v2.firmware[0])
    assert not (root / "lib/.rprockit/new").exists()


@pytest.fixture
def small_fs(root):
    """Mount a 256 KiB tmpfs on the stand-in target root."""
    saved = snapshot(root)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(root)],
                      check=False, capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (needs root / CAP_SYS_ADMIN)")
    try:
        for rel, kind in saved.items():
            if kind == "dir":
                (root / rel).mkdir(parents=True, exist_ok=True)
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def test_disk_full_is_refused_before_upload(tmp_path, arm_object, target, small_fs):
    big = build_set(arm_object, tmp_path / "big", fw_size=400 * 1024)
    before = snapshot(small_fs)
    with pytest.raises(PrecheckError, match="not enough space") as err:
        deploy(target, big)
    assert "--force" not in str(err.value)
    assert snapshot(small_fs) == before


def test_disk_full_during_upload(tmp_path, arm_object, target, small_fs):
    (updates(small_fs)).mkdir(parents=True)
    (updates(small_fs) / "rprockit_a.ko").write_bytes(b"old module")
    before = snapshot(small_fs)
    arts = build_set(arm_object, tmp_path / "mid", fw_size=100 * 1024)

    def fill(ev):  # after the pre-checks passed, something else eats the space
        if ev.stage == "upload" and ev.name == "rproc-test.elf" and ev.done == 32768:
            fd = os.open(small_fs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)

    with pytest.raises(UploadError) as err:
        deploy(target, arts, progress=fill)
    assert "No space left on device" in str(err.value)
    assert "staging directory is full" in str(err.value)
    (small_fs / "filler").unlink()
    assert snapshot(small_fs) == before


def test_read_only_root_is_named(tmp_path, arm_object, target, root):
    saved = snapshot(root)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(root)],
                      check=False, capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (needs root / CAP_SYS_ADMIN)")
    try:
        with pytest.raises(PrecheckError) as err:
            deploy(target, build_set(arm_object, tmp_path / "ro"))
        assert "read-only" in str(err.value) and "options.rprockit" in str(err.value)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)
    assert saved  # the underlying directory was never touched


def test_unknown_host_key_refused_then_accepted_explicitly(tmp_path, arm_object, sshd, root):  # noqa: F811
    kh = tmp_path / "kh" / "known_hosts"
    target = load_target(write_env(tmp_path / "env.yaml", sshd, root, known_hosts=kh))
    arts = build_set(arm_object, tmp_path / "v1")
    before = snapshot(root)
    with pytest.raises(HostKeyUnknownError) as err:
        deploy(target, arts)
    assert f"[127.0.0.1]:{sshd.port}" in str(err.value)
    fp = subprocess.run(["ssh-keygen", "-lf", str(sshd.known_hosts.parent / "host_ed25519.pub")],
                        check=True, capture_output=True, text=True).stdout.split()[1]
    assert fp.startswith("SHA256:") and fp in str(err.value)  # same as OpenSSH shows
    assert "--accept-new-host-key" in str(err.value)
    assert snapshot(root) == before and not kh.exists()

    deploy(target, arts, accept_new_host_key=True)
    assert kh.read_text().split() == sshd.known_hosts_line.split()
    deploy(target, arts)  # now known: no option needed


def test_changed_host_key_is_refused_even_with_accept_new(tmp_path, arm_object, sshd, root):  # noqa: F811
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    kh = tmp_path / "known_hosts"
    pub = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    kh.write_text(f"[127.0.0.1]:{sshd.port} {pub}\n")
    target = load_target(write_env(tmp_path / "env.yaml", sshd, root, known_hosts=kh))
    with pytest.raises(HostKeyMismatchError, match="CHANGED"):
        deploy(target, build_set(arm_object, tmp_path / "v1"), accept_new_host_key=True)
    assert kh.read_text() == f"[127.0.0.1]:{sshd.port} {pub}\n"


def fake_sysfs(root: Path, modules: dict[str, str], rproc_state: str = "running") -> Path:
    sysfs = root / "sys"
    for name, kind in modules.items():
        d = sysfs / "module" / name
        (d / "parameters").mkdir(parents=True)
        if kind == "loaded":
            (d / "initstate").write_text("live\n")
            (d / "refcnt").write_text("0\n")
    rp = sysfs / "class" / "remoteproc" / "remoteproc0"
    rp.mkdir(parents=True)
    (rp / "name").write_text("imx-rproc\n")
    (rp / "state").write_text(rproc_state + "\n")
    (rp / "firmware").write_text("old.elf\n")
    return sysfs


def test_reload_refused_for_builtin_module_changes_nothing(tmp_path, arm_object, target, root):
    fake_sysfs(root, {"rprockit_a": "loaded", "rprockit_b": "builtin"})
    before = snapshot(root)
    with pytest.raises(ReloadImpossibleError) as err:
        deploy(target, build_set(arm_object, tmp_path / "v1"), reload=True)
    assert "rprockit_b is built into the target's kernel" in str(err.value)
    assert "loadable-imx_rpmsg fix" in str(err.value)
    assert snapshot(root) == before


def test_failed_reload_step_rolls_files_back(tmp_path, arm_object, target, root):
    v1 = build_set(arm_object, tmp_path / "v1")
    deploy(target, v1)
    # rprockit_fake_* are not loaded on this host, so the real rmmod fails.
    sysfs = fake_sysfs(root, {"rprockit_a": "loaded"})
    v2 = build_set(arm_object, tmp_path / "v2", version="2")
    with pytest.raises(ReloadError) as err:
        deploy(target, v2, reload=True)
    msg = str(err.value)
    assert "failed at step: rmmod rprockit_a" in msg
    assert "rolled back to the previous set" in msg
    assert "--- target dmesg (tail) ---" in msg
    # the remote processor was stopped first, in order
    assert (sysfs / "class/remoteproc/remoteproc0/state").read_text() == "stop\n"
    for ko in v1.modules:
        assert sha(updates(root) / ko.name) == sha(ko)
    assert json.loads((root / "lib/.rprockit/deploy.json").read_text())["build"][
        "manifest_id"] == "build-1"


def test_remote_arguments_are_quoted(sshd, tmp_path):  # noqa: F811
    t = SSHTransport(load_target(f"{sshd.user}@{sshd.host}:{sshd.port}").ssh,
                     known_hosts=str(sshd.known_hosts))
    t.params = t.params.__class__(sshd.host, sshd.port, sshd.user, str(sshd.user_key))
    with t:
        weird = "a b; touch PWNED $(touch PWNED2) `x` 'q' \"d\" *"
        out = t.run(["printf", "%s\n", weird], input=None).stdout
        assert out == weird + "\n"
        got = t.run(["sh", "-c", 'cat > "$1"', "sh", str(tmp_path / "x y")],
                    input=b"payload").returncode
        assert got == 0 and (tmp_path / "x y").read_bytes() == b"payload"
    assert not list(Path.cwd().glob("PWNED*")) and not list(Path.home().glob("PWNED*"))
