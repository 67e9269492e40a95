"""Targets from a labgrid coordinator: acquire the place, use its resources, release it.

A real labgrid coordinator and exporter run on loopback (tests/labgrid_fixture.py).
The exporter exports the NetworkService of a throwaway sshd on this host
(tests/sshd_fixture.py), the board stand-in of tests/test_verify_ssh.py: real ARM
module objects under a root prefix, checked by the on-target suite over SSH with a
verified host key.  The emulated board through a coordinator is
tests/test_place_qemu.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from labgrid_fixture import labgrid_lab, remote_place_env  # noqa: F401 - fixture
from sshd_fixture import sshd  # noqa: F401 - fixture
from test_verify_ssh import board  # noqa: F401 - fixture

from rprockit.errors import InvalidFileError
from rprockit.place import PlaceError, acquire, acquired, acquired_env, resolve
from rprockit.target import LABGRID_DEFAULT_COORDINATOR, PlaceRef, load_target
from rprockit.verify import run_verify

PLACE = "bench-imx7d-1"


@pytest.fixture
def lab_place(labgrid_lab, sshd, board, tmp_path):  # noqa: F811
    """The sshd exported as group ``ssh`` of exporter ``bench``; place PLACE matches it."""
    labgrid_lab.export("bench", {"ssh": {"NetworkService": {
        "address": sshd.host, "port": sshd.port, "username": sshd.user}}})
    labgrid_lab.add_place(PLACE, "bench/ssh/*")
    dot_ssh = Path(os.environ["HOME"]) / ".ssh"  # the workstation user's key
    dot_ssh.mkdir(mode=0o700, exist_ok=True)
    shutil.copy2(sshd.user_key, dot_ssh / "id_ed25519")
    env = remote_place_env(tmp_path / "place.yaml", PLACE, labgrid_lab.address,
                           {"known_hosts": str(board["kh"]), "root_prefix": str(board["root"])},
                           console=False)
    return labgrid_lab, env


def test_remote_place_target_file(tmp_path, monkeypatch):
    env = remote_place_env(tmp_path / "p.yaml", "lab-7", "10.0.0.5:20408")
    desc = load_target(env)
    assert desc.kind == "remote" and desc.ssh is None
    assert desc.place == PlaceRef("lab-7", "10.0.0.5:20408")
    (tmp_path / "q.yaml").write_text("targets:\n  main:\n    resources:\n"
                                     "      RemotePlace: {name: lab-8}\n")
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    assert load_target(tmp_path / "q.yaml").place.coordinator == LABGRID_DEFAULT_COORDINATOR
    monkeypatch.setenv("LG_COORDINATOR", "lab.example:1234")
    assert load_target(tmp_path / "q.yaml").place.coordinator == "lab.example:1234"
    (tmp_path / "bad.yaml").write_text("targets:\n  main:\n    resources:\n"
                                       "      RemotePlace: {name: '-x *'}\n")
    with pytest.raises(InvalidFileError) as e:
        load_target(tmp_path / "bad.yaml")
    assert "bad.yaml:4: targets.main.resources.RemotePlace.name" in str(e.value)


def test_verify_through_the_place_then_released(lab_place, board, tmp_path):  # noqa: F811
    lab, env = lab_place
    said: list[str] = []
    with acquired_env(env, say=said.append):
        assert lab.acquired_by(PLACE), "not acquired during the run"
        res = run_verify(env, board["art"] / "manifest.json", tmp_path / "r", board["art"],
                         extra_pytest_args=["-k", "kernel_release or vermagic or facts"])
    assert res.passed, res.table
    outcomes = {c["check"]: c["outcome"] for c in res.summary["checks"]}
    assert outcomes["test_module_vermagic"] == "passed", res.table
    assert lab.acquired_by(PLACE) is None
    assert said == [f"[{PLACE}] acquired place {PLACE} of coordinator {lab.address}",
                    f"[{PLACE}] released"]


def test_failing_suite_still_releases(lab_place, board, tmp_path):  # noqa: F811
    lab, env = lab_place
    board["kh"].write_text("")  # the host key is now unknown: the suite's checks error
    with acquired_env(env, say=lambda line: None):
        res = run_verify(env, board["art"] / "manifest.json", tmp_path / "r", board["art"],
                         extra_pytest_args=["-k", "kernel_release"])
    assert not res.passed
    assert "host key" in res.summary["checks"][0]["message"].lower()
    assert lab.acquired_by(PLACE) is None


def test_error_inside_the_block_releases_and_propagates(lab_place):
    lab, env = lab_place
    with pytest.raises(RuntimeError, match="boom"), acquired(load_target(env), say=print):
        assert lab.acquired_by(PLACE)
        raise RuntimeError("boom")
    assert lab.acquired_by(PLACE) is None


def test_resolve_reads_the_exported_service(lab_place, sshd):  # noqa: F811
    _lab, env = lab_place
    with acquired(load_target(env), say=print) as held:
        desc = resolve(held)
    assert (desc.ssh.host, desc.ssh.port, desc.ssh.user) == (sshd.host, sshd.port, sshd.user)
    assert desc.settings.known_hosts  # the file's rprockit settings are kept


def test_place_held_elsewhere_is_refused_and_left_alone(lab_place):
    lab, env = lab_place
    lab.client(f"--place={PLACE}", "acquire", user="alice")  # a colleague holds the board
    with pytest.raises(PlaceError) as e, acquired(load_target(env), say=print):
        pass
    assert "cannot acquire place bench-imx7d-1" in str(e.value)
    assert "already acquired by ws-alice/alice" in str(e.value) and e.value.exit_code == 2
    assert lab.acquired_by(PLACE) == "ws-alice/alice", "rprockit released a colleague's place"
    # our own earlier session still holding it: refused too, and left held
    lab.client(f"--place={PLACE}", "release", user="alice")
    lab.client(f"--place={PLACE}", "acquire")
    with pytest.raises(PlaceError, match="already acquired"), \
            acquired(load_target(env), say=print):
        pass
    assert lab.acquired_by(PLACE)


def test_unknown_place_and_unreachable_coordinator(labgrid_lab, tmp_path):  # noqa: F811
    with pytest.raises(PlaceError) as e:
        acquire(PlaceRef("no-such-place", labgrid_lab.address))
    assert "matches nothing" in str(e.value) and "places" in str(e.value)
    from labgrid_fixture import free_port

    with pytest.raises(PlaceError) as e:
        acquire(PlaceRef("x", f"127.0.0.1:{free_port()}"))
    assert "coordinator" in str(e.value).lower()
