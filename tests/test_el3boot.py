"""The EL3 monitor of the emulated i.MX8M Plus and the boot DTB (real
aarch64-linux-gnu-gcc, real dtc, pylibfdt); booting it is tests/test_imx8mp_qemu.py."""

from __future__ import annotations

import struct
from pathlib import Path

import libfdt
import pytest
from elftools.elf.elffile import ELFFile

from rprockit.el3boot import DTB_ADDR, INITRD_ADDR, KERNEL_ADDR, El3BootError, boot_dtb, build_monitor
from rprockit.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "firmware" / "el3-monitor"


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
