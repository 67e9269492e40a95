"""Pre-flight checks on real ELFs (arm-none-eabi-gcc, host gcc) and real DTBs (dtc).

Fixture sources: tests/fixtures/preflight/ (C, linker scripts, .dts); the good firmware is
the pipeline's firmware/rproc-test built by rprockit.firmware.build_firmware.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import rprockit

from rprockit.errors import UserError
from rprockit.firmware import build_firmware
from rprockit.preflight import (
    SOCS,
    DtbFileError,
    FirmwareFileError,
    KernelTreeError,
    UnknownSocError,
    check_firmware,
)
from rprockit.preflight.checks import CHECKS, rpmsg_buffer_bytes
from rprockit.preflight.driver import LINES, load_line
from rprockit.preflight.kernel import detect_kernel
from rprockit.preflight.rsctable import vring_bytes
from rprockit.preflight.soc import load_soc
from rprockit.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "preflight"
FW_SRC = ROOT / "firmware" / "rproc-test"
LINUX_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")

pytestmark = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("dtc") and shutil.which("gcc")),
    reason="needs arm-none-eabi-gcc (gcc-arm-none-eabi), dtc (device-tree-compiler) and gcc")

#: name -> (linker script, -mcpu, extra flags)
ARM_CASES = {
    "norsc": ("imx7d-ddr.ld", "cortex-m4", ["-DNO_RSC_TABLE"]),
    # the pipeline firmware linked DDR-only (no OCRAM_S vector table)
    "ddr_only": ("imx7d-ddr.ld", "cortex-m4", []),
    "past_end": ("imx7d-past-end.ld", "cortex-m4", []),
    "memsz0": ("imx7d-memsz0.ld", "cortex-m4", []),
    "imx8mp_ddr": ("imx8mp-ddr.ld", "cortex-m7", []),
    "imx8mp_ddr_tcm": ("imx8mp-ddr-tcm.ld", "cortex-m7", ["-DTCM_VECTORS"]),
    # the NXP MCUXpresso SDK layouts (see each linker script's comment), vrings of 256 as the SDK
    "m4_tcm": ("imx8m-tcm.ld", "cortex-m4", ["-DVRING_NUM=256u"]),
    "m7_itcm": ("imx8m-itcm.ld", "cortex-m7", ["-DVRING_NUM=256u"]),
    "m4_ddr": ("imx8m-ddr.ld", "cortex-m4", ["-DVRING_NUM=256u"]),
    "m4_overlap": ("imx8m-overlap.ld", "cortex-m4", ["-DVRING_NUM=256u", "-DMOVED_DATA"]),
}
DTS = ["imx7d-good", "imx7d-no-memregion", "imx7d-mu-conflict", "imx7d-small-rpmsg",
       "imx8mp-ddr", "imx8mm-evk-rpmsg", "imx8mq-evk-rpmsg-5.4", "imx8mp-evk-rpmsg",
       "imx8mn-evk-rpmsg"]


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, Path]:
    """Every fixture ELF and DTB, built once per session with the real tools."""
    out = tmp_path_factory.mktemp("preflight")
    run = Runner().run
    files = {"good": build_firmware(FW_SRC, out / "good", Runner())}
    for name, (ld, cpu, extra) in ARM_CASES.items():
        elf = out / f"{name}.elf"
        run(["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", "-Os", "-ffreestanding", "-nostdlib",
             "-nostartfiles", "-Wl,--build-id=none", f"-I{FW_SRC}", *extra, "-T", FIX / ld,
             FIX / "fw.c", "-o", elf])
        files[name] = elf
    files["host"] = out / "host.elf"
    run(["gcc", FIX / "host.c", "-o", files["host"]])
    good = files["good"].read_bytes()
    files["truncated"] = out / "truncated.elf"
    files["truncated"].write_bytes(good[:len(good) // 3])
    files["random"] = out / "random.bin"
    files["random"].write_bytes(bytes((i * 197 + 89) % 256 for i in range(4096)))
    for d in DTS:
        files[d] = out / f"{d}.dtb"
        run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", files[d], FIX / f"{d}.dts"])
    return files


def _ids(rep, status):
    return sorted(c.id for c in rep.checks if c.status == status)


# --------------------------------------------------------------------------- good firmware


@pytest.mark.parametrize("emulated", [True, False])
def test_pipeline_firmware_passes_with_its_ocram_s_vector_table(built, emulated):
    rep = check_firmware(built["good"], "imx7d", dtb=built["imx7d-good"], emulated=emulated)
    assert not rep.failed
    assert _ids(rep, "warn") == []
    bv = rep.by_id("boot.vector")
    assert bv.status == "pass" and bv.details["da"] == 0 and bv.details["segment"] == 0
    # vector table at M4 0 = OCRAM_S system 0x00180000; code and data in the DDR alias
    assert [(s.paddr, s.filesz, s.memsz, s.sys) for s in rep.segments] == [
        (0x0, 0x8, 0x8, 0x00180000), (0x1FE00000, 0x70, 0x70, 0x8FE00000),
        (0x1FE00070, 0xD, 0x418, 0x8FE00070)]
    assert rep.resource_table["ver"] == 1 and len(rep.resource_table["entries"]) == 1
    assert {"dt.cm_node", "dt.memory_region", "dt.vdev_regions", "dt.mbox"} <= set(
        _ids(rep, "pass"))
    doc = json.loads(json.dumps(rep.to_dict()))
    assert doc["verdict"] == "pass" and doc["counts"]["fail"] == 0
    text = rep.render()
    assert "boot vector" in text and "0x1fe00070" in text and "verdict: PASS" in text


def test_pipeline_firmware_without_dtb_warns_on_what_needs_the_dtb(built):
    rep = check_firmware(built["good"], "imx7d", emulated=True)
    # DDR-linked segments map only through a memory-region: undecidable without the DTB
    assert _ids(rep, "warn") == ["att.segment1", "att.segment2", "dt.probe"]
    assert not rep.failed
    assert rep.by_id("att.segment0").status == "pass"  # OCRAM_S: imx_rproc maps it itself
    seg = rep.by_id("att.segment1")
    assert "not verified: no DTB given" in seg.message and "--dtb" in seg.remedy
    assert seg.details["needs"] == "dtb"
    assert "clocks" in rep.by_id("dt.probe").message


def test_ddr_only_firmware_on_hardware_fails_boot_vector(built):
    rep = check_firmware(built["ddr_only"], "imx7d", dtb=built["imx7d-good"])
    assert rep.failed and _ids(rep, "fail") == ["boot.vector"]
    c = rep.by_id("boot.vector")
    assert "0x00180000" in c.message and "bootaux" in c.message
    assert "ROMSTART_RELOCATION_ROM" in c.remedy


# --------------------------------------------------------------------------- bad firmware


def test_no_resource_table_warns_and_names_the_4_14_dmesg(built):
    rep = check_firmware(built["norsc"], "imx7d", dtb=built["imx7d-good"], emulated=True)
    c = rep.by_id("rsc.table")
    assert c.status == "warn"
    assert '"Failed to find resource table" then "Boot failed: -22"' in c.message
    assert "No resource table in elf" in c.message
    assert rep.resource_table is None
    assert rep.by_id("dt.vdev_regions").status == "warn"  # DT reserves vdev regions for nothing


def test_segment_one_byte_past_reserved_region(built):
    rep = check_firmware(built["past_end"], "imx7d", dtb=built["imx7d-good"], emulated=True)
    c = rep.by_id("att.segment2")
    assert c.status == "fail"
    assert "first byte out of range: device 0x1ff00000 (system 0x8ff00000)" in c.message
    assert '"bad phdr da 0x1feffff0 mem 0x11"' in c.message
    assert c.details["first_bad_da"] == 0x1FF00000
    assert rep.by_id("att.segment0").status == "pass"


def test_segment_ending_exactly_at_region_end_hits_the_strict_bound(built, tmp_path):
    dts = (FIX / "imx7d-good.dts").read_text().replace("<&m4_reserved>", "<&m4_small>")
    dts += "&{/reserved-memory} { m4_small: m4@8fe00000 { reg = <0x8fe00000 0x488>; no-map; }; };\n"
    (tmp_path / "imx7d-base.dtsi").write_text((FIX / "imx7d-base.dtsi").read_text()
                                              .replace("m4@8fe00000", "m4old@8fe00000"))
    (tmp_path / "exact.dts").write_text(dts)
    Runner().run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", tmp_path / "exact.dtb",
                  tmp_path / "exact.dts"])
    rep = check_firmware(built["good"], "imx7d", dtb=tmp_path / "exact.dtb", emulated=True)
    c = rep.by_id("att.segment2")  # ends at 0x1fe00488 == region end
    assert c.status == "fail" and "sys + len < end" in c.message
    assert c.details["first_bad_sys"] == 0x8FE00487


def test_imx8mp_ddr_image_without_tcm_vectors_fails_boot_vector(built):
    rep = check_firmware(built["imx8mp_ddr"], "imx8mp", dtb=built["imx8mp-ddr"])
    assert _ids(rep, "fail") == ["boot.vector"]
    c = rep.by_id("boot.vector")
    assert "TCM, system 0x007e0000" in c.message and '"running"' in c.message
    assert "no Linux imx_rproc does" in c.message
    assert rep.by_id("att.segment0").details["region"] == "m7"


def test_imx8mp_ddr_image_with_tcm_stub_passes(built):
    rep = check_firmware(built["imx8mp_ddr_tcm"], "imx8mp", dtb=built["imx8mp-ddr"])
    assert not rep.failed and not rep.warned
    c = rep.by_id("boot.vector")
    assert c.details["pc"] & 1 and 0x80000000 <= c.details["sp"] <= 0x81000000
    assert rep.by_id("att.segment0").details["region"] == "ITCM"


def test_memsz_zero_segment_warns_without_kernel_tree(built):
    rep = check_firmware(built["memsz0"], "imx7d", emulated=True)
    c = rep.by_id("elf.memsz0")
    assert c.status == "warn" and "v5.19" in c.message and "bad phdr da 0x0 mem 0x0" in c.message
    assert any(s.memsz == 0 for s in rep.segments)


def test_host_elf_is_a_clean_fail(built):
    rep = check_firmware(built["host"], "imx7d")
    assert rep.failed and [c.id for c in rep.checks] == ["elf.header"]
    msg = rep.by_id("elf.header").message
    assert "ELF64" in msg and "EM_X86_64" in msg


@pytest.mark.parametrize("name,needle", [("truncated", "truncated"), ("random", "not an ELF")])
def test_truncated_and_random_files_are_user_errors(built, name, needle):
    with pytest.raises(FirmwareFileError) as ei:
        check_firmware(built[name], "imx7d")
    assert needle in str(ei.value) and str(built[name]) in str(ei.value)


def test_missing_files_and_bad_soc_are_user_errors(built, tmp_path):
    with pytest.raises(FirmwareFileError, match="cannot read"):
        check_firmware(tmp_path / "nope.elf", "imx7d")
    with pytest.raises(UnknownSocError, match="imx8mp"):
        check_firmware(built["good"], "imx6sx")
    with pytest.raises(DtbFileError, match="libfdt rejects"):
        check_firmware(built["good"], "imx7d", dtb=built["good"])
    with pytest.raises(KernelTreeError, match="no readable Makefile"):
        check_firmware(built["good"], "imx7d", kernel_tree=tmp_path)


# --------------------------------------------------------------------------- device trees


def test_dtb_missing_memory_region(built):
    rep = check_firmware(built["good"], "imx7d", dtb=built["imx7d-no-memregion"], emulated=True)
    assert rep.by_id("dt.memory_region").status == "fail"
    assert rep.by_id("att.segment0").status == "pass"  # OCRAM_S needs no memory-region
    seg = rep.by_id("att.segment1")
    assert seg.status == "fail" and "in no region the kernel maps" in seg.message
    assert seg.details["first_bad_da"] == 0x1FE00000


def test_dtb_rpmsg_and_rproc_share_mu_channels(built):
    rep = check_firmware(built["good"], "imx7d", dtb=built["imx7d-mu-conflict"], emulated=True)
    c = rep.by_id("dt.mu_conflict")
    assert c.status == "fail" and "-EBUSY" in c.message and "/soc/rpmsg" in c.message
    assert "status = \"disabled\"" in c.remedy


def test_dtb_small_rpmsg_reg(built):
    rep = check_firmware(built["good"], "imx7d", dtb=built["imx7d-small-rpmsg"], emulated=True)
    c = rep.by_id("dt.rpmsg_node")
    assert c.status == "fail" and "No vring buffer" in c.message and "0x20000" in c.message
    assert rep.by_id("dt.mbox").status == "warn"  # no mbox-names: no kick for the vdev


def test_dtb_wrong_soc_has_no_cm_node(built):
    rep = check_firmware(built["good"], "imx8mm", dtb=built["imx7d-good"])
    c = rep.by_id("dt.cm_node")
    assert c.status == "fail" and "fsl,imx8mm-cm4" in c.message


# --------------------------------------------------------------------------- NXP layouts


@pytest.mark.parametrize("soc", ["imx8mm", "imx8mq"])
def test_tcml_linked_vector_table_is_the_boot_vector(built, soc):
    # MIMX8MM6xxxxx_cm4_ram.ld links the vectors at device 0x1FFE0000; the ATT maps it to
    # system 0x007E0000, the TCML bytes the M4 reads at its address 0 after reset.
    rep = check_firmware(built["m4_tcm"], soc)
    c = rep.by_id("boot.vector")
    assert c.status == "pass", c.message
    assert c.details["da"] == 0x1FFE0000 and c.details["pc"] & 1
    assert "system 0x007e0000" in c.message
    assert [(s.sys, s.region) for s in rep.segments] == [
        (0x007E0000, "TCML"), (0x007E0240, "TCML"), (0x00800000, "TCMU")]
    # every segment is in an ATT_OWN region, so only the DT-dependent checks are undecided
    assert _ids(rep, "fail") == [] and _ids(rep, "warn") == ["dt.probe"]


def test_tcm_image_on_nxp_imx8mm_dt_passes_probe_checks(built):
    rep = check_firmware(built["m4_tcm"], "imx8mm", dtb=built["imx8mm-evk-rpmsg"])
    assert not rep.failed
    for cid in ("dt.cm_node", "dt.clocks", "dt.syscon", "dt.mbox", "dt.memory_region",
                "dt.vdev_buffer", "boot.vector"):
        assert rep.by_id(cid).status == "pass", cid
    # mainline 6.1 writes the updated table to the rsc-table region; this firmware reads its own
    assert _ids(rep, "warn") == ["rsc.location"]
    buf = rep.by_id("dt.vdev_buffer").message
    assert "memory-region[0]" in buf and "vdevbuffer" in buf and "0x40000" in buf


def test_rsc_table_region_smaller_than_the_table_fails(built, tmp_path):
    dts = (FIX / "imx8mm-evk-rpmsg.dts").read_text().replace(
        "reg = <0 0xb80ff000 0 0x1000>;", "reg = <0 0xb80ff000 0 0x20>;")
    for name in ("imx8mm-evk-rpmsg.dts", "imx8m-base.dtsi"):
        (tmp_path / name).write_text((FIX / name).read_text())
    (tmp_path / "small.dts").write_text(dts)
    Runner().run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", tmp_path / "small.dtb",
                  tmp_path / "small.dts"])
    rep = check_firmware(built["m4_tcm"], "imx8mm", dtb=tmp_path / "small.dtb")
    c = rep.by_id("rsc.location")
    assert c.status == "fail" and "0xb80ff000+0x20" in c.message and "imx_rproc.c:642" in c.message


def test_vring_region_the_m_core_cannot_address_fails(built, tmp_path):
    # vdev0vring1 moved into TCM at system 0x007F8000: imx_rproc gives the firmware that
    # number as the vring's device address, and no i.MX8MQ ATT entry holds device 0x007F8000
    dts = (FIX / "imx8mm-evk-rpmsg.dts").read_text().replace(
        "vdev0vring1@b8008000 {\n\t\t\treg = <0 0xb8008000 0 0x8000>;",
        "vdev0vring1@7f8000 {\n\t\t\treg = <0 0x007f8000 0 0x8000>;")
    assert "0x007f8000" in dts
    (tmp_path / "imx8m-base.dtsi").write_text((FIX / "imx8m-base.dtsi").read_text())
    (tmp_path / "tcm-vring.dts").write_text(dts)
    Runner().run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", tmp_path / "tcm-vring.dtb",
                  tmp_path / "tcm-vring.dts"])
    rep = check_firmware(built["m4_tcm"], "imx8mm", dtb=tmp_path / "tcm-vring.dtb")
    c = rep.by_id("dt.vdev_regions")
    assert c.status == "fail" and "vdev0vring1" in c.message
    assert "device address 0x007f8000" in c.message and "cannot reach" in c.message


def test_ddr_only_image_fails(built):
    # MIMX8MM6xxxxx_cm4_ddr_ram.ld: nothing at the TCML boot address, and the DDR it uses is
    # reserved (m4@80000000) but not listed in the cm node's memory-region.
    rep = check_firmware(built["m4_ddr"], "imx8mm", dtb=built["imx8mm-evk-rpmsg"])
    assert rep.failed
    bv = rep.by_id("boot.vector")
    assert bv.status == "fail" and "no PT_LOAD segment lands there" in bv.message
    assert "0x00000000, 0x1ffe0000" in bv.message  # both device aliases of system 0x007E0000
    seg = rep.by_id("att.segment0")
    assert seg.status == "fail" and "in no region the kernel maps" in seg.message


def test_imx8mn_cm7_compatible_on_imx8mp_dt_is_accepted(built):
    rep = check_firmware(built["m7_itcm"], "imx8mp", dtb=built["imx8mp-evk-rpmsg"])
    c = rep.by_id("dt.cm_node")
    assert c.status == "pass" and c.details["compatible"] == "fsl,imx8mn-cm7"
    assert "imx_rproc_cfg_imx8mn" in c.message and "imx_rproc.c:877" in c.message
    # the node's memory-region is used: vrings and buffers are found
    assert rep.by_id("dt.vdev_regions").status == "pass"
    assert rep.by_id("dt.vdev_buffer").status == "pass"
    assert rep.by_id("dt.syscon").status == "pass"  # SMC method: no syscon needed
    assert not rep.failed


def test_accepted_compatibles_come_from_the_match_table():
    for name in LINES:
        line = load_line(name)
        assert set(line.accepted("fsl,imx8mp-cm7")) == {"fsl,imx8mp-cm7", "fsl,imx8mn-cm7"}
        assert set(line.accepted("fsl,imx8mm-cm4")) == {"fsl,imx8mm-cm4", "fsl,imx8mq-cm4"}
        assert line.accepted("fsl,imx7d-cm4") == ("fsl,imx7d-cm4",)


def _nxp_tree(root: Path, version: tuple[int, int]) -> Path:
    """A tree the kernel module recognizes as NXP linux-imx X.Y (its marker files; see
    data/kernel-families.yaml) without imx_rproc sources: the line data decides."""
    tree = _fake_tree(root, version, "", "")
    (tree / "drivers" / "rpmsg").mkdir(parents=True)
    (tree / "drivers" / "rpmsg" / "imx_rpmsg.c").write_text("/* marker */\n")
    return tree


def test_cm_node_without_clocks_fails_on_mainline_only(built, tmp_path):
    rep = check_firmware(built["m7_itcm"], "imx8mn", dtb=built["imx8mn-evk-rpmsg"])
    c = rep.by_id("dt.clocks")
    assert c.status == "fail" and "devm_clk_get(dev, NULL)" in c.message
    assert "Failed to get clock" in c.message and "imx_rproc.c:761" in c.message
    rep = check_firmware(built["m7_itcm"], "imx8mn", dtb=built["imx8mn-evk-rpmsg"],
                         kernel_tree=_nxp_tree(tmp_path / "k", (5, 15)))
    assert rep.driver_line == "nxp-5.15"
    c = rep.by_id("dt.clocks")
    assert c.status == "pass" and "devm_clk_get_optional" in c.message
    # NXP 5.15 takes any "rsc_table*" node as the resource-table region
    assert "rsc_table region" in rep.by_id("rsc.location").message


def test_vdev_buffer_fallback_too_small_fails(built, tmp_path):
    # NXP 5.4 imx8mq-evk-rpmsg.dts on 6.1: no vdev0buffer carveout, so the buffers come from
    # memory-region[0], the 32 KiB vdev0vring0 pool; 256-entry vrings need 512 x 512 bytes.
    rep = check_firmware(built["m4_tcm"], "imx8mq", dtb=built["imx8mq-evk-rpmsg-5.4"])
    c = rep.by_id("dt.vdev_buffer")
    assert c.status == "fail" and "-ENOMEM" in c.message
    assert "vdev0vring0" in c.message and "0x8000" in c.message and "0x40000" in c.message
    assert rep.by_id("dt.vdev_regions").status == "pass"
    # NXP 5.4 finds the "vdevbuffer" carveout by name (remoteproc_virtio.c:347)
    rep = check_firmware(built["m4_tcm"], "imx8mq", dtb=built["imx8mq-evk-rpmsg-5.4"],
                         kernel_tree=_nxp_tree(tmp_path / "k", (5, 4)))
    c = rep.by_id("dt.vdev_buffer")
    assert c.status == "pass" and "\"vdevbuffer\"" in c.message


def test_rpmsg_buffer_bytes_follow_virtio_rpmsg_bus():
    assert rpmsg_buffer_bytes(256) == 512 * 512
    assert rpmsg_buffer_bytes(16) == 16 * 2 * 512
    assert rpmsg_buffer_bytes(100) == 0x20000  # 100 KiB rounded up to a power-of-two of pages


def test_overlapping_segments_fail(built):
    rep = check_firmware(built["m4_overlap"], "imx8mm")
    assert rep.failed
    c = rep.by_id("elf.overlap")
    assert c.status == "fail" and c.details["pairs"] == [[1, 2]]
    assert c.details["sys"] == [[0x007E0240, 0x007E0280]]
    assert ".resource_table" in c.message


def test_tcm_image_without_dtb_warns_naming_the_dtb(built):
    rep = check_firmware(built["m7_itcm"], "imx8mp")
    assert not rep.failed and _ids(rep, "warn") == ["dt.probe"]
    c = rep.by_id("dt.probe")
    assert c.details["needs"] == "dtb" and "--dtb" in c.remedy
    assert "fsl,imx8mp-cm7 or fsl,imx8mn-cm7" in c.message


def test_checks_are_independent_of_order(built):
    from rprockit.preflight import load_model

    m = load_model(built["m4_tcm"], "imx8mq", dtb=built["imx8mq-evk-rpmsg-5.4"])
    forward = [c for check in CHECKS for c in check(m)]
    backward = [c for check in reversed(CHECKS) for c in check(m)]
    assert sorted(forward, key=lambda c: c.id) == sorted(backward, key=lambda c: c.id)


def test_check_firmware_json_prints_json_for_errors_too(built, tmp_path):
    bad = tmp_path / "fw.bin"
    bad.write_bytes(b"not an elf at all, just text " * 4)
    r = rprockit("check-firmware", str(bad), "--soc", "imx8mm", "--json")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "error" and doc["error"]["type"] == "FirmwareFileError"
    assert "not an ELF" in doc["error"]["message"]
    r = rprockit("check-firmware", str(built["m4_tcm"]), "--soc", "imx9", "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["type"] == "UnknownSocError"
    r = rprockit("check-firmware", str(built["m4_overlap"]), "--soc", "imx8mm", "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["verdict"] == "fail"


# --------------------------------------------------------------------------- kernel tree


def _fake_tree(root: Path, version: tuple[int, int], core: str, loader: str) -> Path:
    (root / "drivers" / "remoteproc").mkdir(parents=True)
    (root / "Makefile").write_text(f"VERSION = {version[0]}\nPATCHLEVEL = {version[1]}\n"
                                   "SUBLEVEL = 0\n")
    (root / "drivers/remoteproc/remoteproc_core.c").write_text(core)
    (root / "drivers/remoteproc/remoteproc_elf_loader.c").write_text(loader)
    return root


def test_kernel_4_14_style_tree_turns_memsz0_and_missing_table_into_fails(built, tmp_path):
    tree = _fake_tree(tmp_path / "k", (4, 14),
                      'dev_err(dev, "Failed to find resource table\\n");\n',
                      "if (phdr->p_type != PT_LOAD)\n\tcontinue;\n")
    rep = check_firmware(built["memsz0"], "imx7d", kernel_tree=tree, emulated=True)
    assert rep.by_id("elf.memsz0").status == "fail"
    assert rep.kernel["version"] == "4.14.0"
    assert rep.by_id("kernel.att").status == "fail"  # no imx_rproc.c in that tree
    rep = check_firmware(built["norsc"], "imx7d", kernel_tree=tree, emulated=True)
    assert rep.by_id("rsc.table").status == "fail"


def test_kernel_without_imx_rproc_reads_the_out_of_tree_driver(built, tmp_path):
    """NXP 4.9 has no imx_rproc.c; the nxp-imx7d-4.9 profile builds NXP 4.14's out of
    tree into ``<ws>/oot/imx-rproc/``, and that is the driver whose ATT applies."""
    tree = _fake_tree(tmp_path / "k", (4, 9),
                      'dev_err(dev, "Failed to find resource table\n");\n',
                      "if (phdr->p_type != PT_LOAD)\n\tcontinue;\n")
    oot = tmp_path / "ws" / "oot" / "imx-rproc"
    (oot / "drivers" / "remoteproc").mkdir(parents=True)
    shutil.copyfile(FIX / "imx_rproc-4.14-excerpt.c",
                    oot / "drivers" / "remoteproc" / "imx_rproc.c")
    rep = check_firmware(built["good"], "imx7d", kernel_tree=tree, emulated=True)
    assert rep.by_id("kernel.att").status == "fail"
    assert "has no drivers/remoteproc/imx_rproc.c" in rep.by_id("kernel.att").message
    k = detect_kernel(tree, [tmp_path / "ws" / "oot" / "absent", oot])
    assert k.has_imx_rproc and k.imx_rproc_source == oot / "drivers/remoteproc/imx_rproc.c"
    att = k.att_by_compatible["fsl,imx7d-cm4"]
    assert len(att.entries) == 12 and (att.entries[5].da, att.entries[5].sa) == (0x1FFF8000,
                                                                                0x007F8000)
    rep = check_firmware(built["good"], "imx7d", kernel_tree=tree, emulated=True,
                         oot_dirs=[oot])
    assert rep.by_id("kernel.att").status == "pass", rep.by_id("kernel.att").message
    assert rep.kernel["imx_rproc_source"] == str(oot / "drivers/remoteproc/imx_rproc.c")


@pytest.fixture(scope="session")
def linux61(tmp_path_factory) -> Path:
    if not LINUX_TARBALL.exists():
        pytest.skip(f"{LINUX_TARBALL} not installed (Debian package linux-source-6.1)")
    out = tmp_path_factory.mktemp("linux61")
    want = {"linux-source-6.1/Makefile", "linux-source-6.1/drivers/remoteproc/imx_rproc.c",
            "linux-source-6.1/drivers/remoteproc/remoteproc_core.c",
            "linux-source-6.1/drivers/remoteproc/remoteproc_elf_loader.c",
            "linux-source-6.1/drivers/remoteproc/remoteproc_virtio.c"}
    with tarfile.open(LINUX_TARBALL) as tf:
        members = []
        for m in tf:
            if m.name in want:
                members.append(m)
                if len(members) == len(want):
                    break
        tf.extractall(out, members=members, filter="data")
    return out / "linux-source-6.1"


@pytest.mark.slow
def test_linux_6_1_source_matches_the_att_data_files(linux61):
    k = detect_kernel(linux61)
    assert k.version[:2] == (6, 1) and k.family == "mainline"
    assert k.skips_memsz0 is True and k.rsc_table_required is False
    for soc in SOCS:
        info = load_soc(soc)
        tree = k.att_by_compatible[info.cm_compatible]
        assert [(e.da, e.sa, e.size, e.own, e.iomem) for e in tree.entries] == [
            (e.da, e.sa, e.size, e.own, e.iomem) for e in info.att.entries], soc


def _source_tokens(line) -> list[tuple[str, tuple[str, ...]]]:
    """``(file.c:N, tokens that line N must contain)`` for every fact of a driver line."""
    out = [(e.source, (f'"{e.compatible}"', f"&{e.cfg}")) for e in line.match]
    out += [(c.source, (f"imx_rproc_dcfg {c.name} =",)) for c in line.configs.values()]
    out += [(line.clock_source, (line.clock_call,)),
            (line.syscon_source, ('"syscon"',)),
            (line.mbox_source, ('"tx"',)),
            (line.prepare_source, (f'"{(line.prepare_skip or ("vdevbuffer",))[0]}"',)),
            (line.map_source, (f'"{line.map_skip_prefix}"' if line.map_skip_prefix
                               else '"memory-region"',)),
            (line.rsc_source, (f'"{(line.rsc_prefixes or line.rsc_names)[0]}"'
                               if line.rsc_names else "check_dt_rsc_table",)),
            (line.buffer_source, ('"vdev%dbuffer"',)),
            (line.buffer_fallback_source, ("of_reserved_mem_device_init_by_idx(dev, np, 0)",))]
    return out


def _assert_sources(tree: Path, line) -> None:
    for source, tokens in _source_tokens(line):
        name, num = source.split(":")
        text = (tree / "drivers" / "remoteproc" / name).read_text().splitlines()[int(num) - 1]
        for tok in tokens:
            assert tok in text, f"{line.line} {source}: {tok!r} not in {text.strip()!r}"


@pytest.mark.slow
def test_mainline_6_1_line_data_cites_the_right_source_lines(linux61):
    _assert_sources(linux61, load_line("mainline-6.1"))


@pytest.mark.parametrize("env,line", [("RPROCKIT_NXP_5_4_TREE", "nxp-5.4"),
                                      ("RPROCKIT_NXP_5_15_TREE", "nxp-5.15"),
                                      ("RPROCKIT_NXP_6_1_TREE", "nxp-6.1")])
def test_nxp_line_data_cites_the_right_source_lines(env, line):
    tree = os.environ.get(env)
    if not tree:
        pytest.skip(f"set {env} to an NXP linux-imx tree to check data/imx_rproc/{line}.yaml")
    k = detect_kernel(Path(tree))
    assert (k.family, k.version[:2]) == ("nxp", load_line(line).version)
    _assert_sources(Path(tree), load_line(line))


@pytest.mark.slow
def test_memsz0_passes_on_linux_6_1(built, linux61):
    rep = check_firmware(built["memsz0"], "imx7d", kernel_tree=linux61, emulated=True)
    assert rep.by_id("elf.memsz0").status == "pass"
    assert rep.by_id("kernel.att").status == "pass"


def test_vring_size_matches_virtio_layout():
    # 16 descriptors of 16 bytes + avail (2*(3+16)) -> 4096 aligned, + used (6 + 8*16) -> 2 pages
    assert vring_bytes(16, 4096) == 0x2000
    assert vring_bytes(256, 4096) == 0x3000


# --------------------------------------------------------------------------- fuzzing


def _mutations(base: bytes):
    flips = st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)),
                     min_size=1, max_size=8)
    mutate = flips.map(lambda fl: _apply(base, fl))
    cut = st.integers(0, len(base)).map(lambda n: base[:n])
    header = st.tuples(st.integers(0, 63), st.binary(min_size=1, max_size=8)).map(
        lambda t: base[:t[0]] + t[1] + base[t[0] + len(t[1]):])
    return st.one_of(mutate, cut, header, st.binary(max_size=512))


def _apply(base: bytes, flips) -> bytes:
    b = bytearray(base)
    for pos, val in flips:
        b[pos] = val
    return bytes(b)


def _check_clean(fn):
    try:
        rep = fn()
    except UserError as e:
        assert str(e)
        return
    json.dumps(rep.to_dict())
    assert rep.render()


@pytest.fixture(scope="session")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.slow
def test_fuzz_elf_entry_point(built, fuzz_dir):
    base = built["good"].read_bytes()
    target = fuzz_dir / "fw.elf"

    @settings(max_examples=2000, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_mutations(base))
    def run(blob):
        target.write_bytes(blob)
        _check_clean(lambda: check_firmware(target, "imx7d", dtb=built["imx7d-good"]))

    run()


@pytest.mark.slow
def test_fuzz_dtb_entry_point(built, fuzz_dir):
    base = built["imx7d-mu-conflict"].read_bytes()
    target = fuzz_dir / "board.dtb"

    @settings(max_examples=2000, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_mutations(base))
    def run(blob):
        target.write_bytes(blob)
        _check_clean(lambda: check_firmware(built["good"], "imx7d", dtb=target))

    run()



@pytest.mark.slow
def test_fuzz_dtb_through_the_probe_checks(built, fuzz_dir):
    # the NXP-style i.MX8MM DT reaches the clocks, syscon, vdev buffer and rsc-table checks
    base = built["imx8mm-evk-rpmsg"].read_bytes()
    target = fuzz_dir / "imx8mm.dtb"

    @settings(max_examples=1000, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_mutations(base))
    def run(blob):
        target.write_bytes(blob)
        _check_clean(lambda: check_firmware(built["m4_tcm"], "imx8mm", dtb=target))

    run()


def test_check_firmware_driver_dir_errors_name_the_fix(built, tmp_path):
    r = rprockit("check-firmware", str(built["good"]), "--soc", "imx7d",
                 "--driver-dir", str(tmp_path))
    assert r.returncode == 2 and "--driver-dir needs --kernel-tree" in r.stderr
    tree = _fake_tree(tmp_path / "k", (4, 9), "", "")
    r = rprockit("check-firmware", str(built["good"]), "--soc", "imx7d", "--kernel-tree",
                 str(tree), "--driver-dir", str(tmp_path / "absent"))
    assert r.returncode == 2 and "not a directory" in r.stderr and "oot/imx-rproc" in r.stderr
