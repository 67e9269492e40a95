"""The verify suite on the emulated i.MX7D, with the session's real kernel build.

Positive: the whole suite passes with 100 reload cycles, the loaded-segment
integrity check and the facts report.  Negative: the same board booted with
a broken initramfs (built here with make_initramfs) fails for the right
reason and names the knowledge-base entry: a missing firmware file, a
firmware whose segment lies outside the reserved memory, a module built for
another kernel.  QEMU 10's SRC model resets SRC_SCR to 0, so the board boots
with the M4 found running and remoteproc attached: the suite stops it first,
then runs the lifecycle.  Each negative boot runs only the checks it is about.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from rprockit.firmware import build_firmware
from rprockit.initramfs import make_initramfs
from rprockit.runner import Runner
from rprockit.verify import run_facts, run_verify

ROOT = Path(__file__).resolve().parents[1]
ENV = ROOT / "targets" / "qemu-imx7d.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def art(default_pipeline) -> Path:
    """The artifacts directory of the session's default-profile build."""
    ws, _proc = default_pipeline
    art = ws / "imx7d-mainline-6.1" / "artifacts"
    assert (art / "manifest.json").is_file() and (art / "initramfs.cpio").is_file()
    return art


@pytest.fixture(scope="module")
def manifest(art) -> dict:
    return json.loads((art / "manifest.json").read_text())


def images_with(tmp: Path, art: Path, manifest: dict, modules: list[Path],
                firmware: list[Path]) -> Path:
    """An images dir: the build's zImage and DTBs plus an initramfs of the given files."""
    img = tmp / "images"
    img.mkdir()
    (img / "zImage").symlink_to(art / "zImage")
    (img / "dtbs").symlink_to(art / "dtbs")
    make_initramfs("arm", manifest["kernel_release"], modules, firmware,
                   img / "initramfs.cpio", epoch=0, runner=Runner())
    return img


def check(res, name: str) -> dict:
    return next(c for c in res.summary["checks"] if c["check"] == name)


def sig_ids(c: dict) -> list[str]:
    return [m["id"] for m in c["signatures"]]


def test_suite_passes_with_100_cycles_integrity_and_facts(art, tmp_path):
    res = run_verify(ENV, art / "manifest.json", tmp_path / "results", art, cycles=100)
    assert res.passed, res.table
    rel = check(res, "test_reload_cycles")
    assert rel["outcome"] == "passed" and "100 cycles in" in rel["evidence"]
    assert "is now up' logged 100 times" in rel["evidence"]
    integ = check(res, "test_segment_integrity")
    assert integ["outcome"] == "passed", integ
    # three PT_LOADs: the vector table read back from OCRAM_S (system 0x00180000), text, data
    assert integ["evidence"].count(": identical") == 3 and "devmem" in integ["evidence"]
    assert "0x00180000" in integ["evidence"]
    assert check(res, "test_target_facts")["outcome"] == "passed"
    facts = res.summary["facts"]
    assert facts["soc"] == "imx7d" and not facts["failed"]
    assert {r["name"] for r in facts["reserved"]} >= {"m4@8fe00000", "vdev0buffer@8ff10000"}
    assert all(r["in_built_dtb"] for r in facts["reserved"])
    for name in ("test_kernel_release", "test_module_vermagic", "test_modules_load_in_order",
                 "test_remoteproc_probed", "test_firmware_where_loader_looks",
                 "test_dmesg_clean"):
        assert check(res, name)["outcome"] == "passed", name
    # only meaningful on hardware / a bootloader-started core: skipped with the reason
    assert "M4 does not execute in QEMU" in check(res, "test_rpmsg_tty_echo")["message"]
    # the real SRC reads 0 at reset: attached at probe, stopped, then started with ours
    det = check(res, "test_detached_attach")
    assert det["outcome"] == "passed", det
    assert "state after probe: attached" in det["evidence"]
    assert "stop -> offline" in det["evidence"] and "-> running" in det["evidence"]
    # every check of the on-target suite ran once: the JUnit file names each test function
    suite = (Path(run_verify.__code__.co_filename).parent / "suite" / "test_rproc.py").read_text()
    junit = (tmp_path / "results" / "junit.xml").read_text()
    assert sorted(re.findall(r'<testcase [^>]*name="(test_\w+)', junit)) == \
        sorted(re.findall(r"^def (test_\w+)", suite, re.M))
    klog = (tmp_path / "results" / "kernel.log").read_text()
    assert "remote processor imx-rproc is now attached" in klog
    assert "remote processor imx-rproc is now up" in klog


def test_facts_report_on_emulated_board(art, tmp_path):
    facts = run_facts(ENV, art, tmp_path)
    data = json.loads((tmp_path / "facts.json").read_text())
    assert data["release"] == facts.release and data["built_dtb"].endswith(
        "imx7d-sdb-rproc-qemu.dtb")
    cm = [n for n in data["nodes"] if n["path"] == "/imx7d-cm4"]
    assert cm and cm[0]["live_status"] == "" and cm[0]["built_status"] == ""
    assert "rdinit=/init" in data["cmdline"] and data["mcore_booted"] is None
    assert data["remoteprocs"] == [] and not data["failed"]  # nothing loaded: read-only
    assert "m4@8fe00000" in (tmp_path / "facts.txt").read_text()


def test_missing_firmware_fails_with_kb_entry(art, manifest, tmp_path):
    mods = sorted((art / "modules").glob("*.ko"))
    img = images_with(tmp_path, art, manifest, mods, [])
    res = run_verify(ENV, art / "manifest.json", tmp_path / "r", img, cycles=1,
                     extra_pytest_args=["-k", "firmware_where or reload_cycles"])
    assert not res.passed
    fw = check(res, "test_firmware_where_loader_looks")
    assert fw["outcome"] == "failed" and sig_ids(fw) == ["firmware-missing"]
    cyc = check(res, "test_reload_cycles")
    assert cyc["outcome"] == "failed" and "firmware-missing" in sig_ids(cyc)
    assert "Direct firmware load for rproc-test.elf failed with error -2" in cyc["message"]
    assert "[known: firmware-missing]" in res.table
    assert "known failure signature" in res.log.read_text()


def test_segment_outside_reserved_memory_fails_with_kb_entry(art, manifest, tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs arm-none-eabi-gcc")
    src = tmp_path / "fw-src"
    shutil.copytree(ROOT / "firmware" / "rproc-test", src)
    ld = src / "rproc-test.ld"
    # 0x1ff00000 translates (ATT DDR alias) to 0x8ff00000: a vdev vring region, which
    # imx_rproc does not map, outside the 0x8fe00000/1 MiB m4 reservation; the first
    # DDR segment (code and resource table, 0x70 bytes) is the one refused
    ld.write_text(ld.read_text().replace("ORIGIN = 0x1FE00000", "ORIGIN = 0x1FF00000"))
    elf = build_firmware(src, tmp_path / "fw", Runner())
    img = images_with(tmp_path, art, manifest, sorted((art / "modules").glob("*.ko")), [elf])
    res = run_verify(ENV, art / "manifest.json", tmp_path / "r", img, cycles=1,
                     extra_pytest_args=["-k", "reload_cycles"])
    cyc = check(res, "test_reload_cycles")
    assert not res.passed and cyc["outcome"] == "failed"
    assert sig_ids(cyc)[0] == "segment-outside-mapped-memory", cyc
    klog = (tmp_path / "r" / "kernel.log").read_text()
    assert "remoteproc remoteproc0: bad phdr da 0x1ff00000 mem 0x70" in klog
    assert "Boot failed: -22" in klog


def test_module_for_another_kernel_fails_with_kb_entry(art, manifest, tmp_path):
    release = manifest["kernel_release"]
    other = re.sub(r"\d", "9", release)  # same length: .modinfo layout unchanged
    assert other != release
    mods = []
    for ko in sorted((art / "modules").glob("*.ko")):
        if ko.name == "rpmsg_ns.ko":
            blob = ko.read_bytes()
            old = f"vermagic={release} ".encode()
            assert blob.count(old) == 1
            ko = tmp_path / ko.name
            ko.write_bytes(blob.replace(old, f"vermagic={other} ".encode()))
        mods.append(ko)
    img = images_with(tmp_path, art, manifest, mods, [art / "firmware" / "rproc-test.elf"])
    res = run_verify(ENV, art / "manifest.json", tmp_path / "r", img, cycles=1,
                     extra_pytest_args=["-k", "vermagic or modules_load"])
    assert not res.passed
    vm = check(res, "test_module_vermagic")
    assert vm["outcome"] == "failed" and sig_ids(vm) == ["module-vermagic-mismatch"]
    assert f"rpmsg_ns: version magic '{other} SMP" in vm["message"]
    load = check(res, "test_modules_load_in_order")
    assert load["outcome"] == "failed" and "module-vermagic-mismatch" in sig_ids(load)
    assert f"rpmsg_ns: version magic '{other} SMP mod_unload ARMv7 p2v8 ' should be " \
           f"'{release} SMP" in (tmp_path / "r" / "kernel.log").read_text()


