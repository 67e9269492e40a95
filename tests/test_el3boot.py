"""The EL3 monitor of the emulated i.MX8M Plus and the boot DTB (real
aarch64-linux-gnu-gcc, real dtc, pylibfdt); booting Linux through it is
tests/test_imx8mp_qemu.py.

The stand-in remote core is shown here without Linux: real QEMU 10
``imx8mp-evk`` with four A53, the monitor, the stand-in image
(firmware/standin-remote) and, in place of the kernel, a few instructions
(tests/fixtures/el3-sip-client) that make imx_rproc's IMX_SIP_RPROC calls and
write what they got where QEMU's monitor reads it back."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import libfdt
import pytest
from elftools.elf.elffile import ELFFile

from rprockit.el3boot import (
    CC,
    DTB_ADDR,
    INITRD_ADDR,
    KERNEL_ADDR,
    El3BootError,
    boot_dtb,
    boot_dtb_name,
    build_monitor,
    build_standin,
)
from rprockit.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "firmware" / "el3-monitor"
STANDIN = ROOT / "firmware" / "standin-remote"
CLIENT = ROOT / "tests" / "fixtures" / "el3-sip-client"
QEMU = "qemu-system-aarch64"


@pytest.fixture(scope="module")
def monitor(tmp_path_factory) -> Path:
    return build_monitor(SRC, tmp_path_factory.mktemp("mon") / "el3-monitor.elf", Runner())


def test_monitor_loads_in_ocram_where_bl31_runs(monitor):
    with monitor.open("rb") as fh:
        elf = ELFFile(fh)
        assert elf["e_machine"] == "EM_AARCH64" and elf["e_entry"] == 0x00970000
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert len(loads) == 1 and loads[0]["p_paddr"] == 0x00970000
        assert loads[0]["p_paddr"] + loads[0]["p_memsz"] <= 0x00980000  # inside its 64 KiB
        syms = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
        # the state word a target preloads for a bootloader-started M core
        assert syms["m_core_running"] == 0x0097F000
        # the stop request the stand-in image polls (firmware/standin-remote/standin.c)
        assert syms["remote_stop"] == 0x0097F004
        ro = elf.get_section_by_name(".rodata")
        off = syms["kernel_entry"] - ro["sh_addr"]
        assert struct.unpack_from("<2Q", ro.data(), off) == (KERNEL_ADDR, DTB_ADDR)
        # not loaded: OCRAM reads 0 at power-on (M7 held), a target may preload 1
        assert elf.get_section_by_name(".rprockit_state")["sh_type"] == "SHT_NOBITS"
        assert loads[0]["p_paddr"] + loads[0]["p_filesz"] <= 0x0097F000
        assert loads[0]["p_memsz"] == loads[0]["p_filesz"]  # no zero-fill over a preload
        # VBAR_EL3 is 2 KiB aligned
        assert syms["vectors"] % 0x800 == 0


def test_boot_dtb_names_the_initramfs(tmp_path):
    dts = tmp_path / "b.dts"
    dts.write_text('/dts-v1/;\n/ { chosen { bootargs = "console=ttymxc1,115200"; }; };\n')
    Runner().run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", tmp_path / "b.dtb", dts])
    initrd = tmp_path / "initramfs.cpio"
    initrd.write_bytes(b"\x07" * 12345)
    out = boot_dtb(tmp_path / "b.dtb", initrd, tmp_path / "boot.dtb")
    fdt = libfdt.Fdt(out.read_bytes())
    node = fdt.path_offset("/chosen")
    start = struct.unpack(">Q", bytes(fdt.getprop(node, "linux,initrd-start")))[0]
    end = struct.unpack(">Q", bytes(fdt.getprop(node, "linux,initrd-end")))[0]
    assert (start, end) == (INITRD_ADDR, INITRD_ADDR + 12345)
    assert fdt.getprop(node, "bootargs").as_str() == "console=ttymxc1,115200"


def test_boot_dtb_without_chosen_is_a_user_error(tmp_path):
    dts = tmp_path / "b.dts"
    dts.write_text("/dts-v1/;\n/ { };\n")
    Runner().run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", tmp_path / "b.dtb", dts])
    (tmp_path / "i").write_bytes(b"x")
    with pytest.raises(El3BootError, match="needs a /chosen node"):
        boot_dtb(tmp_path / "b.dtb", tmp_path / "i", tmp_path / "boot.dtb")


def test_standin_image_has_the_m_core_vector_and_a_resource_table(tmp_path):
    elf_path = build_standin(STANDIN, tmp_path / "s.elf", "a", Runner())
    with elf_path.open("rb") as fh:
        elf = ELFFile(fh)
        assert elf["e_machine"] == "EM_AARCH64"
        syms = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
        vec = elf.get_section_by_name(".vectors")
        assert vec["sh_addr"] == 0x80000000  # base of m7_reserved: where the monitor reads it
        sp, pc = struct.unpack("<2I", vec.data())
        assert (sp, pc) == (syms["stack_top"], syms["_start"]) and pc % 4 == 0
        rsc = elf.get_section_by_name(".resource_table").data()
        ver, num = struct.unpack_from("<2I", rsc)
        off = struct.unpack_from("<I", rsc, 16)[0]
        typ, vid, _nid, dfeat = struct.unpack_from("<4I", rsc, off)
        assert (ver, num, typ, vid, dfeat) == (1, 1, 3, 7, 1)  # RSC_VDEV, VIRTIO_ID_RPMSG, NS
        # the boot record is in no loaded segment: a reload keeps it
        br = syms["boot_record"]
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD":
                assert not seg["p_paddr"] <= br < seg["p_paddr"] + seg["p_memsz"]
    with pytest.raises(El3BootError, match="one lower-case letter"):
        build_standin(STANDIN, tmp_path / "x.elf", "ab", Runner())



def test_standin_legacy_image_has_no_resource_table(tmp_path):
    """The build for NXP's vendor imx_rpmsg (``legacy=True``): the same vector and boot
    record, no resource table (imx_rpmsg creates the vdev itself; NXP 5.15
    imx_rproc_parse_fw() then logs "No resource table in elf")."""
    plain = build_standin(STANDIN, tmp_path / "p.elf", "a", Runner())
    legacy = build_standin(STANDIN, tmp_path / "l.elf", "a", Runner(), legacy=True)
    with legacy.open("rb") as fh:
        elf = ELFFile(fh)
        syms = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
        sp, pc = struct.unpack("<2I", elf.get_section_by_name(".vectors").data())
        assert elf.get_section_by_name(".vectors")["sh_addr"] == 0x80000000
        assert (sp, pc) == (syms["stack_top"], syms["_start"])
        assert elf.get_section_by_name(".resource_table") is None
        assert "resource_table" not in syms
        assert syms["boot_record"] == 0x80FFF000
    assert plain.read_bytes() != legacy.read_bytes()

def _hmp(proc: subprocess.Popen, cmd: str | None) -> str:
    """One QEMU monitor command over stdio (None: none, read the banner); its output up
    to the next prompt."""
    assert proc.stdin is not None and proc.stdout is not None
    if cmd is not None:
        proc.stdin.write(cmd + "\n")
        proc.stdin.flush()
    out = ""
    while not out.endswith("(qemu) "):
        ch = proc.stdout.read(1)
        if not ch:
            break
        out += ch
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out)


def _words(text: str) -> list[int]:
    return [int(w, 16) for ln in text.splitlines() if ln.startswith("00000000")
            for w in ln.split(":")[1].split()]


@pytest.mark.skipif(shutil.which(QEMU) is None, reason=f"{QEMU} is not installed")
@pytest.mark.parametrize("conduit", [True, False], ids=["hvc-conduit", "no-conduit"])
def test_sip_start_releases_the_fourth_a53_and_stop_parks_it(monitor, tmp_path, conduit):
    standin = build_standin(STANDIN, tmp_path / "standin.elf", "a", Runner())
    client = tmp_path / "client.elf"
    Runner().run([CC, "-nostdlib", "-nostartfiles", "-static", "-no-pie", "-Wl,--build-id=none",
                  "-Wl,-N", "-Wl,--no-warn-rwx-segments", "-T", "client.ld", "client.S", "-o",
                  str(client)], cwd=CLIENT)
    # as targets/qemu-imx8mp-standin.yaml: four A53, QEMU's PSCI on the HVC conduit;
    # as targets/qemu-imx8mp.yaml: one A53, no conduit (the monitor's HVC: SMC_UNK)
    extra = ["-smp", "4", "-global", "cortex-a53-arm-cpu.psci-conduit=2"] if conduit \
        else ["-smp", "1"]
    proc = subprocess.Popen(
        [QEMU, "-M", "imx8mp-evk", "-cpu", "cortex-a53", "-m", "2G",
         "-display", "none", "-serial", "null", "-serial", "null", "-nic", "none", *extra,
         "-device", f"loader,file={client}", "-device", f"loader,file={standin}",
         "-device", f"loader,addr=0x40100038,data={int(conduit)},data-len=4",
         "-device", f"loader,file={monitor},cpu-num=0", "-monitor", "stdio"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        _hmp(proc, None)
        deadline = time.monotonic() + 60
        while _words(_hmp(proc, "xp /1wx 0x4010003c")) != [0x600D]:
            assert time.monotonic() < deadline, "the SiP client never finished"
            time.sleep(0.2)
        res = _words(_hmp(proc, "xp /14wx 0x40100000"))
        state = _words(_hmp(proc, "xp /3wx 0x0097f000"))
    finally:
        _hmp(proc, "quit")
        proc.wait(timeout=10)
    started0, start, starts1, started1, aff_on, stop0, stop1, aff_off, starts2, aff_thumb, \
        stop_thumb, stop_ignored, aff_ignored, on_again = res
    assert (started0, start, started1) == (0, 0, 1)  # held at reset, as TF-A finds the M7
    assert (stop0, stop1, stop_thumb) == (0, 0, 0)   # STOP: the core is off, no forced stop
    assert state[0] == 0                              # held again
    if not conduit:
        # the core never ran, and every SMC still came back to the client
        assert (starts1, starts2, stop_ignored) == (0, 0, 0)
        assert on_again == state[2] == 0xFFFFFFFF  # CPU_ON: SMC_UNK
        return
    assert starts1 == 1                           # the image ran: its boot record counts 1
    assert aff_on == 0                            # PSCI AFFINITY_INFO: ON
    assert aff_off == 1                           # OFF after STOP
    assert starts2 == 2                           # a second START ran it again
    assert aff_thumb == 1                         # a Thumb reset PC (M-core image): stays off
    # an image that ignores the stop request: STOP stops it all the same (the stop SGI,
    # taken at EL2 by the monitor's hold code) and says so (x1 = 1, a forced stop),
    # and the next START powers the core on again
    assert (stop_ignored, aff_ignored) == (1, 1)  # forced; PSCI AFFINITY_INFO: OFF
    assert on_again == state[2] == 0              # QEMU's CPU_ON: success


def test_standin_target_settings_and_their_errors(tmp_path):
    from rprockit.errors import InvalidFileError
    from rprockit.target import load_target

    shipped = load_target(ROOT / "targets" / "qemu-imx8mp-standin.yaml").settings
    assert shipped.standin_remote and shipped.emulated_boot == "el3-monitor"
    assert shipped.board_dtb == "imx8mp-evk-standin-qemu.dtb"
    assert boot_dtb_name(shipped.board_dtb) == "boot-imx8mp-evk-standin-qemu.dtb"
    assert boot_dtb_name(None) == "boot.dtb"
    assert not load_target(ROOT / "targets" / "qemu-imx8mp.yaml").settings.standin_remote
    env = tmp_path / "bad.yaml"
    env.write_text(
        "targets:\n"                                     # 1
        "  main:\n"                                      # 2
        "    resources: {}\n"                            # 3
        "    drivers: {QEMUDriver: {qemu_bin: q, machine: m, cpu: c, memory: 1G}}\n"  # 4
        "    options:\n"                                 # 5
        "      rprockit:\n"                              # 6
        "        standin_remote: true\n"                 # 7
        "        board_dtb: ../boot.dtb\n")              # 8
    with pytest.raises(InvalidFileError) as err:
        load_target(env)
    msg = str(err.value)
    assert f"{env}:7: targets.main.options.rprockit.standin_remote: the stand-in remote core " \
           "needs emulated_boot: el3-monitor" in msg
    assert f"{env}:8: targets.main.options.rprockit.board_dtb:" in msg
