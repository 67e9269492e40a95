"""The verify suite and the facts report over SSH, against a real sshd on loopback.

The target is this host through a throwaway OpenSSH server (tests/sshd_fixture.py)
described by a labgrid environment file with a NetworkService and an SSHDriver;
the suite talks SSH through rprockit's paramiko transport, which verifies the
host key.  Deployed files live under ``root_prefix`` (a temporary directory
standing in for the target's ``/``): real ARM ELF objects with a ``.modinfo``
section (arm-linux-gnueabihf-gcc/objcopy), read with the target's
``modinfo -F vermagic``.  The host has no device tree and no remoteproc, so the
remoteproc checks skip with that reason while kernel, vermagic, firmware and
facts checks run.
"""

from __future__ import annotations

import json
import platform
import shutil

import fakemod
import pytest
from sshd_fixture import sshd  # noqa: F401 - fixture

from rprockit.deploy import HostKeyUnknownError
from rprockit.verify import run_facts, run_verify

RELEASE = platform.release()  # what `uname -r` prints over SSH to this host
CROSS = "arm-linux-gnueabihf-"
ORDER = ["rpmsg_core", "rpmsg_ns", "imx_rproc"]

pytestmark = pytest.mark.skipif(
    shutil.which(CROSS + "gcc") is None or shutil.which("modinfo") is None,
    reason="needs arm-linux-gnueabihf-gcc (gcc-arm-linux-gnueabihf) and modinfo (kmod)")


make_ko = fakemod.make_ko


@pytest.fixture
def board(tmp_path, sshd):  # noqa: F811
    """A built set (artifacts + manifest), deployed under a root prefix; the env file."""
    obj = fakemod.arm_object(tmp_path, "rprockit_verify_test")
    art = tmp_path / "artifacts"
    (art / "modules").mkdir(parents=True)
    (art / "firmware").mkdir()
    for name in ORDER:
        make_ko(obj, art / "modules" / f"{name}.ko", RELEASE)
    (art / "firmware" / "rproc-test.elf").write_bytes(b"\x7fELF" + bytes(60))
    (art / "manifest.json").write_text(json.dumps({
        "id": "ssh-test", "kernel_release": RELEASE,
        "modules": {"load_order": ORDER, "rproc_driver": "imx_rproc"},
        "firmware": {"name": "rproc-test.elf", "soc": "imx7d"}}))
    root = tmp_path / "root"
    moddir = root / "lib" / "modules" / RELEASE / "updates"
    moddir.mkdir(parents=True)
    for ko in (art / "modules").glob("*.ko"):
        shutil.copy2(ko, moddir / ko.name)
    (root / "lib" / "firmware").mkdir(parents=True)
    shutil.copy2(art / "firmware" / "rproc-test.elf", root / "lib" / "firmware")
    env = sshd.environment_file(tmp_path, root_prefix=str(root))
    kh = tmp_path / "known_hosts"
    return {"env": env, "art": art, "root": root, "kh": kh, "moddir": moddir, "obj": obj}


def check(res, name: str) -> dict:
    return next(c for c in res.summary["checks"] if c["check"] == name)


def test_suite_over_ssh_runs_module_and_facts_checks(board, tmp_path):
    res = run_verify(board["env"], board["art"] / "manifest.json", tmp_path / "r", board["art"])
    assert res.passed, res.table
    for name in ("test_kernel_release", "test_module_vermagic",
                 "test_firmware_where_loader_looks", "test_target_facts"):
        assert check(res, name)["outcome"] == "passed", (name, res.table)
    vm = check(res, "test_module_vermagic")["evidence"]
    assert f"{board['moddir']}/rpmsg_ns.ko: '{RELEASE} SMP mod_unload ARMv7 p2v8'" in vm
    for name in ("test_modules_load_in_order", "test_remoteproc_probed", "test_reload_cycles",
                 "test_segment_integrity", "test_detached_attach"):
        c = check(res, name)
        assert c["outcome"] == "skipped" and "nothing for imx_rproc to probe" in c["message"]
    facts = res.summary["facts"]
    assert facts["release"] == RELEASE and facts["devicetree"] is False


def test_vermagic_mismatch_over_ssh_names_kb_entry(board, tmp_path):
    make_ko(board["obj"], board["moddir"] / "rpmsg_ns.ko", "5.10.0-other")
    res = run_verify(board["env"], board["art"] / "manifest.json", tmp_path / "r", board["art"],
                     extra_pytest_args=["-k", "vermagic"])
    assert not res.passed
    c = check(res, "test_module_vermagic")
    assert c["outcome"] == "failed"
    assert [m["id"] for m in c["signatures"]] == ["module-vermagic-mismatch"]
    assert "rpmsg_ns: version magic '5.10.0-other SMP" in c["message"]
    assert "remedy:" in c["message"]  # the knowledge base entry is in the failure message


def test_unknown_host_key_is_refused_not_accepted(board, tmp_path):
    board["kh"].write_text("")
    res = run_verify(board["env"], board["art"] / "manifest.json", tmp_path / "r", board["art"],
                     extra_pytest_args=["-k", "kernel_release"])
    assert not res.passed
    c = check(res, "test_kernel_release")
    assert c["outcome"] == "error" and "host key" in c["message"].lower()
    assert board["kh"].read_text() == ""  # nothing recorded
    with pytest.raises(HostKeyUnknownError):
        run_facts(board["env"], None, tmp_path / "facts")
    assert not (tmp_path / "facts" / "facts.json").exists()


def test_new_host_key_accepted_only_when_asked(board, tmp_path, sshd):  # noqa: F811
    board["kh"].write_text("")
    res = run_verify(board["env"], board["art"] / "manifest.json", tmp_path / "r", board["art"],
                     extra_pytest_args=["-k", "kernel_release"], accept_new_host_key=True)
    assert res.passed, res.table
    assert sshd.host_key_pub.split()[1] in board["kh"].read_text()


def test_facts_over_ssh(board, tmp_path):
    facts = run_facts(board["env"], None, tmp_path)
    data = json.loads((tmp_path / "facts.json").read_text())
    assert data["release"] == RELEASE == facts.release
    assert data["devicetree"] is False and data["remoteprocs"] == [] and not data["failed"]
    assert "none on the target" in (tmp_path / "facts.txt").read_text()
