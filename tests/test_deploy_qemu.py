"""Deploy with reload on the running emulated i.MX7D, then verify it over SSH.

The guest boots an initramfs with SSH access built here (dropbear, a host key
made on this host so the known_hosts entry exists before boot, this test's
throwaway user key), through labgrid (targets/qemu-imx7d-ssh.yaml, role
``qemu``).  Deploy and verify reach it as role ``main`` over a QEMU user
networking port forward, with verified host keys.

What makes the reload observable:
* the image's own imx_rproc.ko has its ``intree`` modinfo key renamed, so the
  kernel marks that module out-of-tree (``/sys/module/imx_rproc/taint`` = ``O``,
  kernel/module/main.c ``check_modinfo()``); the deployed file is the pristine
  build, so an empty per-module taint after the reload proves the module loaded
  is the deployed one;
* the deployed firmware differs from the image's in one byte of its ``.data``
  segment (``rproc-test-1`` -> ``rproc-test-2``); after the reload the M4 DDR
  region holds the new bytes (read back through /dev/mem), i.e. remoteproc
  loaded the new file.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from rprockit.cli import deploy_artifacts
from rprockit.deploy import DeployArtifacts, SSHTransport, deploy
from rprockit.deploy.artifacts import sha256_file
from rprockit.initramfs import (
    SSHAccess,
    generate_host_key,
    known_hosts_line,
    make_initramfs,
    ssh_kernel_problems,
)
from rprockit.runner import Runner
from rprockit.target import load_target
from rprockit.verify import run_verify

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "targets" / "qemu-imx7d-ssh.yaml"
ENV_PORT = 10022
PROFILE = "imx7d-mainline-6.1"
DTB = "imx7d-sdb-rproc-qemu.dtb"
FEC1 = "/soc/bus@30800000/ethernet@30be0000"
#: M4 address 0x1fe00070 (.data of rproc-test.elf) seen by the A7 through
#: imx_rproc_att_imx7d {0x10000000, 0x80000000, 0x0FFF0000}.
FW_DATA_SYS = 0x8FE00070

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fec1_waits_for_gpio(dtb: Path) -> bool:
    """True when fec1 (imx7s.dtsi ``ethernet@30be0000``) has ``phy-reset-gpios``."""
    import libfdt

    fdt = libfdt.Fdt(dtb.read_bytes())
    node = fdt.path_offset(FEC1, libfdt.QUIET_NOTFOUND)
    return node >= 0 and fdt.getprop(node, "phy-reset-gpios", libfdt.QUIET_NOTFOUND) != \
        -libfdt.FDT_ERR_NOTFOUND


def mark_out_of_tree(ko: Path, out: Path) -> Path:
    """Copy a module with its ``intree=`` modinfo key renamed (same length)."""
    data = ko.read_bytes()
    assert data.count(b"\0intree=Y\0") == 1, f"{ko} has no single intree=Y modinfo entry"
    out.write_bytes(data.replace(b"\0intree=Y\0", b"\0intreX=Y\0"))
    return out


def patch_firmware_data(elf: Path, out: Path, old: bytes, new: bytes) -> Path:
    """Copy the firmware ELF with ``old`` replaced by ``new`` in its ``.data`` section."""
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as fh:
        sec = ELFFile(fh).get_section_by_name(".data")
        off, size = sec["sh_offset"], sec["sh_size"]
    data = bytearray(elf.read_bytes())
    at = data.find(old, off, off + size)
    assert at >= 0, f"{old!r} not in .data of {elf}"
    data[at:at + len(new)] = new
    out.write_bytes(bytes(data))
    return out


def wait_ssh(transport: SSHTransport, seconds: float) -> float:
    """Connect (retrying until the guest's dropbear answers); return seconds waited."""
    t0 = time.monotonic()
    while True:
        try:
            transport.connect()
            transport.close()
            return time.monotonic() - t0
        except Exception:
            if time.monotonic() - t0 > seconds:
                raise
            time.sleep(0.5)


def devmem(t: SSHTransport, addr: int) -> bytes:
    """4 bytes of physical memory read on the target (busybox devmem, 32-bit word)."""
    return int(sh(t, f"devmem {addr:#x} 32"), 16).to_bytes(4, "little")


def sh(t: SSHTransport, script: str) -> str:
    return t.run(["sh", "-c", script]).stdout.strip()


@pytest.fixture
def ssh_board(default_pipeline, tmp_path, monkeypatch):
    """Boot the emulated board with SSH access; yield (target desc, artifacts, qemu target)."""
    from labgrid import Environment

    art = default_pipeline[0] / PROFILE / "artifacts"
    man = json.loads((art / "manifest.json").read_text())
    missing = ssh_kernel_problems((art / "config").read_text(), "arm")
    assert not missing, ("the kernel cannot run the SSH image; add to "
                         "kernel_configs/fragments/imx7d-qemu.config: " + ", ".join(missing))
    assert not fec1_waits_for_gpio(art / "dtbs" / DTB), (
        f"{DTB}: fec1 has phy-reset-gpios on the 74x164 expander (spi-gpio), which the "
        "kernel does not build and QEMU does not model, so fw_devlink keeps fec1 "
        "waiting and eth0 never appears; add '&fec1 { /delete-property/ phy-reset-gpios; };' "
        "to kernel_configs/dts/imx7d-sdb-rproc-qemu.dts")
    runner = Runner()
    home = Path(os.environ["HOME"])  # isolated per test by conftest
    dot_ssh = home / ".ssh"
    dot_ssh.mkdir(mode=0o700, exist_ok=True)
    runner.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dot_ssh / "id_ed25519"])
    host_pub = generate_host_key(tmp_path / "host_ed25519", runner)
    port = free_port()
    (dot_ssh / "known_hosts").write_text(known_hosts_line("127.0.0.1", port, host_pub) + "\n")

    images = tmp_path / "images"
    images.mkdir()
    (images / "zImage").symlink_to(art / "zImage")
    (images / "dtbs").symlink_to(art / "dtbs")
    mods = [m for m in sorted((art / "modules").glob("*.ko")) if m.name != "imx_rproc.ko"]
    mods.append(mark_out_of_tree(art / "modules" / "imx_rproc.ko", tmp_path / "imx_rproc.ko"))
    fw = art / "firmware" / man["firmware"]["name"]
    make_initramfs("arm", man["kernel_release"], mods, [fw], images / "initramfs.cpio", 1,
                   runner,
                   ssh=SSHAccess(tmp_path / "host_ed25519", (dot_ssh / "id_ed25519.pub").read_text()))

    text = ENV_FILE.read_text()
    for old, new in ((f"127.0.0.1:{ENV_PORT}-:22", f"127.0.0.1:{port}-:22"),
                     (f"port: {ENV_PORT}\n", f"port: {port}\n")):
        assert text.count(old) == 1, f"{ENV_FILE}: expected '{old}' once"
        text = text.replace(old, new)
    env_file = tmp_path / ENV_FILE.name
    env_file.write_text(text)
    monkeypatch.setenv("LG_RPROCKIT_IMAGES", str(images))

    env = Environment(str(env_file))
    board = env.get_target("qemu")
    qemu = board.get_driver("QEMUDriver")
    board.activate(qemu)
    qemu.on()
    try:
        board.get_driver("ShellDriver")  # waits for the console prompt
        yield env_file, art, board
    finally:
        board.deactivate(qemu)  # stops QEMU


def test_deploy_reload_keeps_linux_running(ssh_board, tmp_path):
    env_file, art, _board = ssh_board
    desc = load_target(env_file)
    assert desc.kind == "ssh" and desc.ssh.port != ENV_PORT
    built = deploy_artifacts(art)
    new_fw = patch_firmware_data(built.firmware[0], tmp_path / built.firmware[0].name,
                                 b"rproc-test-1", b"rproc-test-2")
    arts = DeployArtifacts(modules=built.modules, firmware=(new_fw,),
                           kernel_release=built.kernel_release, load_order=built.load_order,
                           manifest_id=built.manifest_id, manifest_path=built.manifest_path,
                           firmware_name=built.firmware_name)

    waited = wait_ssh(SSHTransport(desc.ssh, connect_timeout=5), 40)
    with SSHTransport(desc.ssh, connect_timeout=5) as t:
        boot_id = sh(t, "cat /proc/sys/kernel/random/boot_id")
        # the image's stack, running the image's firmware
        for m in built.load_order:
            t.run(["modprobe", m])
        rp = sh(t, "for d in /sys/class/remoteproc/*; do echo $d; done")
        assert rp.count("\n") == 0 and rp, f"expected one remoteproc, got {rp!r}"
        # QEMU 10's SRC reads 0 at reset: the M4 is found running, remoteproc attached
        assert sh(t, f"cat {rp}/state") == "attached"
        sh(t, f"echo stop > {rp}/state")
        sh(t, f"echo {built.firmware_name} > {rp}/firmware; echo start > {rp}/state")
        assert sh(t, f"cat {rp}/state") == "running"
        assert sh(t, "cat /sys/module/imx_rproc/taint") == "O"
        assert devmem(t, FW_DATA_SYS + 8) == b"st-1"  # "rproc-test-1"[8:12]
        available = sh(t, "dmesg | grep -c 'is available' || true")

    res = deploy(desc, arts, reload=True)

    with SSHTransport(desc.ssh, connect_timeout=5) as t:
        assert sh(t, "cat /proc/sys/kernel/random/boot_id") == boot_id, "the guest rebooted"
        installed = sh(t, f"sha256sum /lib/modules/{res.release}/updates/imx_rproc.ko "
                          f"/lib/firmware/{new_fw.name}").split()
        assert installed[0] == sha256_file(built.modules[[m.name for m in built.modules]
                                                       .index("imx_rproc.ko")])
        assert installed[2] == sha256_file(new_fw) != sha256_file(built.firmware[0])
        assert sh(t, "cat /sys/module/imx_rproc/initstate") == "live"
        assert sh(t, "cat /sys/module/imx_rproc/taint") == "", \
            "the module loaded after the reload is not the deployed (in-tree) file"
        assert int(sh(t, "dmesg | grep -c 'is available' || true")) > int(available)
        assert sh(t, f"cat {rp}/state") == "running"
        assert sh(t, f"cat {rp}/firmware") == new_fw.name
        # the M4 region holds the new .data: remoteproc loaded the deployed file
        assert devmem(t, FW_DATA_SYS + 8) == b"st-2"
    assert any(s.startswith("rmmod imx_rproc") for s in res.reload_steps), res.reload_steps

    # the build as it is (what `invoke deploy --reload` installs), then the verify
    # suite against the same running guest, over SSH (role main)
    res2 = deploy(desc, built, reload=True)
    with SSHTransport(desc.ssh, connect_timeout=5) as t:
        assert devmem(t, FW_DATA_SYS + 8) == b"st-1"
        assert sh(t, "cat /sys/module/imx_rproc/taint") == ""
    t0 = time.monotonic()
    ver = run_verify(env_file, art / "manifest.json", tmp_path / "verify",
                     Path(os.environ["LG_RPROCKIT_IMAGES"]), cycles=1)
    verify_s = time.monotonic() - t0
    assert ver.passed, ver.table
    with SSHTransport(desc.ssh, connect_timeout=5) as t:
        assert sh(t, "cat /proc/sys/kernel/random/boot_id") == boot_id
    print(f"ssh ready after {waited:.1f} s; deploy+reload {res.seconds:.1f} s; "
          f"again {res2.seconds:.1f} s; verify {verify_s:.1f} s; steps: {res.reload_steps}")
