"""Pre-flight checks on real ELFs (arm-none-eabi-gcc, host gcc) and real DTBs (dtc).

Fixture sources: tests/fixtures/preflight/ (C, linker scripts, .dts); the good firmware is
the pipeline's firmware/rproc-test built by rprockit.firmware.build_firmware.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    "past_end": ("imx7d-past-end.ld", "cortex-m4", []),
    "memsz0": ("imx7d-memsz0.ld", "cortex-m4", []),
    "imx8mp_ddr": ("imx8mp-ddr.ld", "cortex-m7", []),
    "imx8mp_ddr_tcm": ("imx8mp-ddr-tcm.ld", "cortex-m7", ["-DTCM_VECTORS"]),
}
DTS = ["imx7d-good", "imx7d-no-memregion", "imx7d-mu-conflict", "imx7d-small-rpmsg",
       "imx8mp-ddr"]


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


def test_pipeline_firmware_emulated_passes_with_only_boot_vector_warn(built):
    rep = check_firmware(built["good"], "imx7d", dtb=built["imx7d-good"], emulated=True)
    assert not rep.failed
    assert _ids(rep, "warn") == ["boot.vector"]
    bv = rep.by_id("boot.vector")
    assert "expected on the emulated target" in bv.message and "OCRAM_S" in bv.message
    assert [(s.paddr, s.filesz, s.memsz, s.sys) for s in rep.segments] == [
        (0x1FE00000, 0x78, 0x78, 0x8FE00000), (0x1FE00078, 0xD, 0x418, 0x8FE00078)]
    assert rep.resource_table["ver"] == 1 and len(rep.resource_table["entries"]) == 1
    assert {"dt.cm_node", "dt.memory_region", "dt.vdev_regions", "dt.mbox"} <= set(
        _ids(rep, "pass"))
    doc = json.loads(json.dumps(rep.to_dict()))
    assert doc["verdict"] == "warn" and doc["counts"]["fail"] == 0
    text = rep.render()
    assert "boot vector" in text and "0x1fe00078" in text and "verdict: WARN" in text


def test_pipeline_firmware_without_dtb_is_still_only_boot_vector_warn(built):
    rep = check_firmware(built["good"], "imx7d", emulated=True)
    assert _ids(rep, "warn") == ["boot.vector"] and not rep.failed
    assert "not verified: no DTB given" in rep.by_id("att.segment0").message


def test_pipeline_firmware_on_hardware_fails_boot_vector(built):
    rep = check_firmware(built["good"], "imx7d", dtb=built["imx7d-good"])
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
    dts += "&{/reserved-memory} { m4_small: m4@8fe00000 { reg = <0x8fe00000 0x490>; no-map; }; };\n"
    (tmp_path / "imx7d-base.dtsi").write_text((FIX / "imx7d-base.dtsi").read_text()
                                              .replace("m4@8fe00000", "m4old@8fe00000"))
    (tmp_path / "exact.dts").write_text(dts)
    Runner().run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", tmp_path / "exact.dtb",
                  tmp_path / "exact.dts"])
    rep = check_firmware(built["good"], "imx7d", dtb=tmp_path / "exact.dtb", emulated=True)
    c = rep.by_id("att.segment1")  # ends at 0x1fe00490 == region end
    assert c.status == "fail" and "sys + len < end" in c.message
    assert c.details["first_bad_sys"] == 0x8FE0048F


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
    seg = rep.by_id("att.segment0")
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


@pytest.fixture(scope="session")
def linux61(tmp_path_factory) -> Path:
    if not LINUX_TARBALL.exists():
        pytest.skip(f"{LINUX_TARBALL} not installed (Debian package linux-source-6.1)")
    out = tmp_path_factory.mktemp("linux61")
    want = {"linux-source-6.1/Makefile", "linux-source-6.1/drivers/remoteproc/imx_rproc.c",
            "linux-source-6.1/drivers/remoteproc/remoteproc_core.c",
            "linux-source-6.1/drivers/remoteproc/remoteproc_elf_loader.c"}
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

