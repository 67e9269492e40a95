"""The emulated i.MX7D as a board of a labgrid lab: deploy and verify through a coordinator.

The board runs on its own, as on a lab bench: QEMU is started here with the command
line labgrid's QEMUDriver builds from targets/qemu-imx7d-ssh.yaml (role ``qemu``),
its console on a TCP socket instead of labgrid's own, SSH through a user-networking
port forward, both on 127.0.0.1 and free ports.  A real labgrid coordinator and
exporter (tests/labgrid_fixture.py) export that console as a ``NetworkSerialPort``
and the SSH endpoint as a ``NetworkService``; rprockit knows only the place:

* ``rprockit deploy --target place.yaml`` and ``rprockit verify --target place.yaml``
  acquire the place, reach the board over the exported NetworkService (host key
  verified) and release it;
* a verify that fails (the host key no longer known) exits 2 and releases it too;
* ``rprockit verify --facts`` through a place exporting only the console uses the
  NetworkSerialPort (labgrid's SerialDriver + ShellDriver) and releases it.

The session's pipeline (``default_pipeline``) built the artifacts; the commands run
on a workspace that links to its tree, O= directory and artifacts, so the shared
workspace's recorded verify state stays the profile's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, rprockit
from labgrid_fixture import free_port, labgrid_lab, remote_place_env  # noqa: F401 - fixture
from test_deploy_qemu import wait_ssh

from rprockit.deploy import SSHTransport
from rprockit.initramfs import SSHAccess, generate_host_key, known_hosts_line, make_initramfs
from rprockit.runner import Runner
from rprockit.target import SSHParams

pytestmark = pytest.mark.slow
PROFILE = "imx7d-mainline-6.1"
ENV_FILE = ROOT / "targets" / "qemu-imx7d-ssh.yaml"
PLACE, CONSOLE_PLACE = "imx7d-qemu-1", "imx7d-qemu-console"


def _linked_workspace(session_ws: Path, tmp: Path) -> Path:
    """A workspace root whose profile dir links to the session's tree, out and artifacts
    and holds a copy of its stage state (stages skip by fingerprint)."""
    src_base, base = session_ws / PROFILE, tmp / "ws" / PROFILE
    base.mkdir(parents=True)
    for name in ("src", "out", "artifacts"):
        (base / name).symlink_to(src_base / name)
    shutil.copytree(src_base / "state", base / "state")
    (tmp / "ws" / "cache").symlink_to(session_ws / "cache")
    return tmp / "ws"


@pytest.fixture
def bench_board(default_pipeline, tmp_path):
    """Boot the emulated board with SSH access, console on TCP; yield its ports."""
    from labgrid import Environment

    art = default_pipeline[0] / PROFILE / "artifacts"
    man = json.loads((art / "manifest.json").read_text())
    runner = Runner()
    dot_ssh = Path(os.environ["HOME"]) / ".ssh"  # isolated per test by conftest
    dot_ssh.mkdir(mode=0o700, exist_ok=True)
    runner.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dot_ssh / "id_ed25519"])
    host_pub = generate_host_key(tmp_path / "host_ed25519", runner)
    ssh_port, console_port = free_port(), free_port()
    (dot_ssh / "known_hosts").write_text(known_hosts_line("127.0.0.1", ssh_port, host_pub) + "\n")
    images = tmp_path / "images"
    images.mkdir()
    (images / "zImage").symlink_to(art / "zImage")
    (images / "dtbs").symlink_to(art / "dtbs")
    fw = art / "firmware" / man["firmware"]["name"]
    make_initramfs("arm", man["kernel_release"], sorted((art / "modules").glob("*.ko")), [fw],
                   images / "initramfs.cpio", 1, runner,
                   ssh=SSHAccess(tmp_path / "host_ed25519",
                                 (dot_ssh / "id_ed25519.pub").read_text()))
    text = ENV_FILE.read_text().replace("127.0.0.1:10022-:22", f"127.0.0.1:{ssh_port}-:22")
    env_file = tmp_path / ENV_FILE.name
    env_file.write_text(text)
    os.environ["LG_RPROCKIT_IMAGES"] = str(images)
    try:
        qemu = Environment(str(env_file)).get_target("qemu").get_driver("QEMUDriver",
                                                                        activate=False)
        cmd = [*qemu.get_qemu_base_args(), "-monitor", "none", "-serial",
               f"tcp:127.0.0.1:{console_port},server=on,wait=off"]
    finally:
        del os.environ["LG_RPROCKIT_IMAGES"]
    log = (tmp_path / "qemu.log").open("w")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ssh(SSHTransport(SSHParams("127.0.0.1", ssh_port, "root"), connect_timeout=5), 120)
        yield {"ssh_port": ssh_port, "console_port": console_port, "ws": default_pipeline[0]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_deploy_and_verify_through_a_coordinator(bench_board, labgrid_lab, tmp_path):  # noqa: F811
    lab = labgrid_lab
    lab.export("bench", {"imx7d": {
        "NetworkService": {"address": "127.0.0.1", "port": bench_board["ssh_port"],
                           "username": "root"},
        "NetworkSerialPort": {"host": "127.0.0.1", "port": bench_board["console_port"],
                              "speed": 115200, "protocol": "raw"}}})
    lab.add_place(PLACE, "bench/imx7d/*")
    lab.add_place(CONSOLE_PLACE, "bench/imx7d/NetworkSerialPort")
    # the board behind the place is the emulated one: pre-flight and the suite judge it so
    env = remote_place_env(tmp_path / "place.yaml", PLACE, lab.address,
                           {"remoteproc": "imx-rproc", "emulated": True})
    ws = _linked_workspace(bench_board["ws"], tmp_path)
    common = ["--workspace", str(ws)]

    dep = rprockit("deploy", "--target", str(env), *common)
    assert dep.returncode == 0, dep.stdout[-3000:] + dep.stderr[-3000:]
    assert f"[{PLACE}] acquired place {PLACE}" in dep.stdout and f"[{PLACE}] released" in dep.stdout
    assert lab.acquired_by(PLACE) is None

    ver = rprockit("verify", "--target", str(env), "--cycles", "1", *common)
    assert ver.returncode == 0, ver.stdout[-3000:] + ver.stderr[-3000:]
    res = json.loads((ws / PROFILE / "verify" / "results.json").read_text())
    outcome = {c["check"]: c["outcome"] for c in res["checks"]}
    for name in ("test_module_vermagic", "test_remoteproc_probed", "test_reload_cycles"):
        assert outcome[name] == "passed", ver.stdout[-3000:]
    assert f"[{PLACE}] released" in ver.stdout and "[verify] done" in ver.stdout
    assert lab.acquired_by(PLACE) is None

    # the suite fails (the board's host key is no longer known): exit 2, place released;
    # another cycle count makes it a new run (the passed one above is recorded)
    kh = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
    kh.write_text("")
    bad = rprockit("verify", "--target", str(env), "--cycles", "2", *common)
    assert bad.returncode == 2, bad.stdout[-2000:] + bad.stderr[-2000:]
    assert "verify failed" in bad.stderr and f"[{PLACE}] released" in bad.stdout
    assert lab.acquired_by(PLACE) is None

    # a place with only the console: facts over the exported NetworkSerialPort
    console_env = remote_place_env(tmp_path / "console.yaml", CONSOLE_PLACE, lab.address,
                                   {"emulated": True})
    facts = rprockit("verify", "--facts", "--target", str(console_env), *common)
    assert facts.returncode == 0, facts.stdout[-3000:] + facts.stderr[-3000:]
    data = json.loads((ws / PROFILE / "verify" / "facts.json").read_text())
    assert data["release"].startswith("6.1.") and data["devicetree"] is True
    assert lab.acquired_by(CONSOLE_PLACE) is None
