"""Build the rproc-test Cortex-M4 firmware with the real arm-none-eabi-gcc and inspect it."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

from rprockit.errors import ToolMissingError
from rprockit.firmware import build_firmware
from rprockit.runner import Runner

FW_SRC = Path(__file__).resolve().parents[1] / "firmware" / "rproc-test"
DDR_LO, DDR_HI = 0x1FE00000, 0x1FF00000  # M4 device addresses, 1 MiB

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                reason="arm-none-eabi-gcc (gcc-arm-none-eabi) not installed")


@pytest.fixture(scope="module")
def fw_elf(tmp_path_factory) -> Path:
    return build_firmware(FW_SRC, tmp_path_factory.mktemp("fw-a"), Runner())


def test_build_is_reproducible_across_output_dirs(fw_elf, tmp_path):
    other = build_firmware(FW_SRC, tmp_path / "elsewhere" / "deeper", Runner())
    assert other.name == "rproc-test.elf"
    assert other.read_bytes() == fw_elf.read_bytes()


def test_elf_header(fw_elf):
    with fw_elf.open("rb") as fh:
        elf = ELFFile(fh)
        assert elf.elfclass == 32
        assert elf.little_endian
        assert elf["e_machine"] == "EM_ARM"
        assert elf["e_entry"] & 1 == 1, "entry must carry the Thumb bit"


def test_resource_table_has_one_rpmsg_vdev_with_two_vrings(fw_elf):
    with fw_elf.open("rb") as fh:
        sec = ELFFile(fh).get_section_by_name(".resource_table")
        assert sec is not None
        data = sec.data()
    ver, num, r0, r1 = struct.unpack_from("<4I", data, 0)
    assert (ver, num, r0, r1) == (1, 1, 0, 0)
    (off,) = struct.unpack_from("<I", data, 16)
    rtype, vid, _notify, dfeat, _gfeat, cfg_len, _status, nvr, res0, res1 = struct.unpack_from(
        "<6I4B", data, off)
    assert rtype == 3 and vid == 7  # RSC_VDEV, VIRTIO_ID_RPMSG
    assert dfeat & 1  # VIRTIO_RPMSG_F_NS
    assert cfg_len == 0 and nvr == 2 and (res0, res1) == (0, 0)
    vrings = [struct.unpack_from("<5I", data, off + 28 + 20 * i) for i in range(2)]
    for da, align, qnum, _nid, _pa in vrings:
        assert da == 0xFFFFFFFF and align == 4096 and qnum == 16
    assert len(data) == off + 28 + 40


def test_data_bss_and_segments(fw_elf):
    with fw_elf.open("rb") as fh:
        elf = ELFFile(fh)
        data = elf.get_section_by_name(".data")
        assert data["sh_size"] % 4 != 0
        assert data.data().startswith(b"rproc-test")
        assert elf.get_section_by_name(".bss")["sh_type"] == "SHT_NOBITS"
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert loads
        assert any(s["p_memsz"] > s["p_filesz"] for s in loads)
        # the vector table alone at M4 address 0 (OCRAM_S), the rest in the DDR alias
        vec, *rest = sorted(loads, key=lambda s: s["p_paddr"])
        assert (vec["p_paddr"], vec["p_filesz"], vec["p_memsz"]) == (0, 8, 8)
        assert not vec["p_flags"] & P_FLAGS.PF_W
        for s in rest:
            assert s["p_paddr"] >= DDR_LO and s["p_paddr"] + s["p_memsz"] <= DDR_HI
        assert rest[0]["p_paddr"] == DDR_LO and rest[0]["p_flags"] & P_FLAGS.PF_X
        sp, pc = struct.unpack("<2I", vec.data()[:8])
        assert DDR_LO < sp <= DDR_HI and sp % 8 == 0
        assert pc == elf["e_entry"] and pc & 1  # Thumb


def test_missing_compiler_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError, match="gcc-arm-none-eabi"):
        build_firmware(FW_SRC, tmp_path / "out", Runner())
