"""Hostile faults during deploy against a real sshd (tests/sshd_fixture.py): the SSH
connection dropped mid-upload and an interrupt mid-upload leave the target's files
byte-for-byte as they were, with no partial staging directory."""

from __future__ import annotations

import pytest
from sshd_fixture import sshd  # noqa: F401 - fixture
from test_deploy_ssh import (  # noqa: F401 - fixtures
    arm_object,
    build_set,
    pytestmark,
    root,
    snapshot,
    target,
)

from rprockit.deploy import UploadError, deploy


def _installed_v1(tmp_path, arm_object, target, root):  # noqa: F811
    deploy(target, build_set(arm_object, tmp_path / "v1"))
    return snapshot(root / "lib")


def test_dropped_connection_leaves_no_partial_staging(tmp_path, arm_object, target, root,  # noqa: F811
                                                      sshd):  # noqa: F811
    before = _installed_v1(tmp_path, arm_object, target, root)
    v2 = build_set(arm_object, tmp_path / "v2", version="2", fw_size=8 << 20)
    killed = []

    def drop(ev):
        if ev.stage == "upload" and ev.name == "rproc-test.elf" and not killed:
            killed.append(sshd.kill_sessions())

    with pytest.raises(UploadError) as err:
        deploy(target, v2, progress=drop)
    assert killed and killed[0] >= 1
    assert err.value.exit_code == 2
    assert "installed files were not changed" in str(err.value)
    assert "removed over a new connection" in str(err.value)
    assert snapshot(root / "lib") == before  # no lib/.rprockit/new left behind


def test_interrupt_during_upload_removes_staging(tmp_path, arm_object, target, root):  # noqa: F811
    before = _installed_v1(tmp_path, arm_object, target, root)
    v2 = build_set(arm_object, tmp_path / "v2", version="2", fw_size=2 << 20)

    def interrupt(ev):
        if ev.stage == "upload" and ev.name == "rproc-test.elf":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deploy(target, v2, progress=interrupt)
    assert snapshot(root / "lib") == before
