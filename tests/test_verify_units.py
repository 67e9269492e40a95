"""Unit tests of the verify stage's pieces: knowledge base, integrity, facts, results.

Real tools where they matter: arm-none-eabi-gcc builds the firmware whose
expected memory image is computed, dtc compiles the device trees compared
with the facts, and a real ``sh`` runs the kernel-log reader against a
``dmesg`` stand-in on PATH.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from rprockit.errors import ProfileError
from rprockit.firmware import build_firmware
from rprockit.preflight.soc import load_soc
from rprockit.runner import Runner
from rprockit.verify import match, signatures
from rprockit.verify.facts import compare_with_dtb, judge, parse_facts
from rprockit.verify.integrity import (
    compare,
    expected_spans,
    kernel_written_fields,
    parse_devmem,
    parse_od,
)
from rprockit.verify.results import render_table
from rprockit.verify.suite.test_rproc import is_error
from rprockit.verify.target_shell import CONSOLE_MAX_LINE, TargetShell

ROOT = Path(__file__).resolve().parents[1]


# -- knowledge base ---------------------------------------------------------------------------
def test_every_entry_matches_its_example_and_no_other_specific_entry():
    kb = signatures.knowledge_base()
    assert len(kb) >= 12
    for sig in kb:
        # the context lines the entry needs come with it (example_context)
        lines = [*sig.example_context, sig.example]
        assert not sig.context or sig.example_context, sig.id
        assert [m.id for m in match(lines)] == [sig.id], sig.id


REQUIRED = {
    # the signatures the field reports show, each as the kernel prints it
    "rsc-table-missing": ["remoteproc remoteproc0: Failed to find resource table",
                          "remoteproc remoteproc0: Boot failed: -22"],
    "firmware-missing": [("remoteproc remoteproc0: Direct firmware load for m7.elf failed "
                          "with error -2"), "remoteproc remoteproc0: request_firmware failed: -2",
                         "remoteproc remoteproc0: Boot failed: -2"],
    "kick-mbox-timeout": ["imx-rproc imx8mp-cm7: imx_rproc_kick: failed (0, err:-62)"],
    "rpmsg-channel-exists": ["virtio_rpmsg_bus virtio0: channel demo:ffffffff:1e already exist",
                             "virtio_rpmsg_bus virtio0: rpmsg_create_channel failed"],
    "imx-rpmsg-no-vring-buffer": ["imx-rpmsg 30800000.bus:rpmsg: No vring buffer.",
                                  "imx-rpmsg: probe of 30800000.bus:rpmsg failed with error -12"],
    "mbox-names-missing": [('imx-rproc imx7d-cm4: mbox_request_channel_byname() requires an '
                            '"mbox-names" property')],
    "imx8m-mcore-clock-stall": ["remoteproc remoteproc0: Booting fw image m7.elf, size 1251068",
                                "rcu: INFO: rcu_preempt self-detected stall on CPU",
                                "watchdog: BUG: soft lockup - CPU#0 stuck for 45s! [swapper/0:0]"],
    "elf-load-segments-oops": [("Unable to handle kernel NULL pointer dereference at "
                                "virtual address 00000000"), "PC is at rproc_elf_load_segments+0x98/0x1c0"],
}


@pytest.mark.parametrize("sig_id", sorted(REQUIRED))
def test_field_signatures_are_named(sig_id):
    found = match(REQUIRED[sig_id])
    assert found and found[0].id == sig_id
    assert "rproc-boot-failed" not in [m.id for m in found]  # generic entry suppressed
    entry = signatures.by_id(sig_id)
    assert entry.fix and entry.source and entry.remedy


def test_context_and_generic_rules():
    # an RCU stall with no firmware load around it is not the i.MX8M clock signature
    assert match(["rcu: INFO: rcu_sched self-detected stall on CPU"]) == []
    # a bare "Boot failed" gets the generic entry, pointing at the lines before it
    assert [m.id for m in match(["remoteproc remoteproc0: Boot failed: -12"])] == [
        "rproc-boot-failed"]
    # order follows the log
    got = match(["x: version magic 'a ' should be 'b '",
                 "remoteproc remoteproc0: Failed to find resource table"])
    assert [m.id for m in got] == ["module-vermagic-mismatch", "rsc-table-missing"]


def test_fixes_name_real_patches():
    import yaml

    meta = yaml.safe_load((ROOT / "patches/imx-rproc/meta.yaml").read_text())["patches"]
    fixes = {v["fix"] for v in meta.values()}
    for sig in signatures.knowledge_base():
        if sig.fix.startswith("patches/imx-rproc:"):
            fix_id = sig.fix.split(":", 1)[1].split()[0]
            assert fix_id in fixes, (sig.id, fix_id)
            for name in meta:
                if name.rsplit("/", 1)[-1] in sig.fix:
                    assert (ROOT / "patches/imx-rproc" / name).is_file()
        else:
            assert sig.fix.startswith("setting:"), sig.id


def test_bad_knowledge_base_is_reported_with_lines(tmp_path):
    bad = tmp_path / "kb.yaml"
    bad.write_text("format: 1\nsignatures:\n"
                   "  - id: a\n    regex: 'xx(('\n    cause: aaaaaaaaaaaa\n    remedy: bbbbbbbbbbbb\n"
                   "    fix: 'setting: x'\n    source: s s s\n    example: 'xx((x'\n"
                   "  - id: a\n    regex: 'yyy'\n    cause: aaaaaaaaaaaa\n    remedy: bbbbbbbbbbbb\n"
                   "    fix: 'setting: x'\n    source: s s s\n    example: 'yyy'\n    color: red\n"
                   "  - id: c\n    regex: 'zzz'\n")
    with pytest.raises(ProfileError) as e:
        signatures.load(bad)
    text = str(e.value)
    assert "unknown key 'color'" in text and ":18:" in text
    assert "'cause' is a required property" in text
    ok = tmp_path / "ok.yaml"
    ok.write_text(bad.read_text().split("  - id: c")[0].replace("    color: red\n", ""))
    with pytest.raises(ProfileError) as e:
        signatures.load(ok)
    assert "regex does not compile" in str(e.value) and "duplicate id 'a'" in str(e.value)


# -- integrity ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def firmware(tmp_path_factory) -> Path:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs arm-none-eabi-gcc (gcc-arm-none-eabi)")
    return build_firmware(ROOT / "firmware/rproc-test", tmp_path_factory.mktemp("fw"), Runner())


def test_expected_image_of_the_test_firmware(firmware):
    spans = expected_spans(firmware, load_soc("imx7d").att)
    # the vector table in OCRAM_S (M4 0 = system 0x00180000), then code and data in DDR
    assert [(hex(s.da), hex(s.sys)) for s in spans] == [("0x0", "0x180000"),
                                                          ("0x1fe00000", "0x8fe00000"),
                                                          ("0x1fe00070", "0x8fe00070")]
    vec, code, data = spans
    assert vec.filesz == vec.memsz == 8 and not vec.writable and not vec.masked
    assert data.filesz == 0xd and data.memsz == 0x418 and data.writable
    assert data.data[0xd:] == bytes(0x418 - 0xd)  # .bss/.stack zero-fill
    assert not code.writable
    # the resource table (0x1fe00018, vdev at +0x14) has kernel-written fields masked
    names = set(code.masked.values())
    assert {"vdev0.status", "vdev0.gfeatures", "vring0.da", "vring1.da"} <= names
    assert code.masked[0x44] == "vdev0.status" and code.masked[0x48] == "vring0.da"


def test_compare_finds_a_dropped_tail_byte_and_ignores_kernel_fields(firmware):
    spans = expected_spans(firmware, load_soc("imx7d").att)
    _vec, code, data = spans
    # what the kernel leaves after start: status DRIVER_OK, vring da assigned
    got = bytearray(code.data)
    got[0x44] = 7
    got[0x48:0x4c] = (0x8ff00000).to_bytes(4, "little")
    res = compare(code, bytes(got), "devmem")
    assert res.mismatches == 0 and res.kernel_written["vring0.da"] == "0x8ff00000"
    assert "identical" in res.describe()
    # NXP 5.4's imx_rproc_memcpy() copied count/4 words: the 13th .data byte is lost
    lost = bytearray(data.data)
    lost[0xc] = 0
    res = compare(data, bytes(lost), "devmem")
    assert res.mismatches == (1 if data.data[0xc] else 0)
    if data.data[0xc]:
        assert "1 tail byte" in res.describe() and "+0xc" in res.describe()
    assert compare(data, bytes(lost[:-8]), "dd").mismatches >= 8  # short read counts


def test_readers_parse_busybox_output():
    assert parse_od(" 90 04 e0 1f\n 09 00\n") == bytes([0x90, 4, 0xe0, 0x1f, 9, 0])
    assert parse_devmem("0x1FE00490\n0x1FE00009\n") == bytes.fromhex("9004e01f0900e01f")
    table = bytearray(0x58)
    table[0:4] = (1).to_bytes(4, "little")
    table[4:8] = (1).to_bytes(4, "little")
    table[16:20] = (0x14).to_bytes(4, "little")
    table[0x14:0x18] = (3).to_bytes(4, "little")
    table[0x14 + 4 + 21] = 2  # num_of_vrings
    marks = kernel_written_fields(0x1000, bytes(table))
    assert marks[0x1000 + 0x14 + 4 + 20] == "vdev0.status"
    assert marks[0x1000 + 0x14 + 4 + 24 + 20] == "vring1.da"


# -- facts -------------------------------------------------------------------------------------
FACTS_OUT = """RELEASE|6.1.55-imx
CMDLINE|console=ttymxc1,115200 root=/dev/mmcblk2p2
TAINT|4096
ROOT|toradex,verdin-imx8mp fsl,imx8mp
NODE|/imx8mp-cm7|fsl,imx8mp-cm7 |
NODE|/soc@0/rpmsg|fsl,imx8mq-rpmsg |disabled
RCELLS|00000002|00000002
RMEM|m7@80000000|000000008000000000000000 01000000|no-map||
MOD|imx_rproc 24576 0 - Live 0xffff800000a00000
RPROC|remoteproc0|imx-rproc|offline|rproc-imx-rproc-fw|enabled
"""

DTS = """/dts-v1/;
/ {
    #address-cells = <1>; #size-cells = <1>; compatible = "fsl,imx8mp";
    reserved-memory { #address-cells = <2>; #size-cells = <2>; ranges;
        m7@80000000 { reg = <0 0x80000000 0 0x1000000>; no-map; };
        vdev0vring0@55000000 { reg = <0 0x55000000 0 0x8000>; no-map; };
    };
    imx8mp-cm7 { compatible = "fsl,imx8mp-cm7"; };
    soc@0 { rpmsg { compatible = "fsl,imx8mq-rpmsg"; status = "okay"; }; };
};
"""


def test_facts_findings_against_the_built_dtb(tmp_path):
    if shutil.which("dtc") is None:
        pytest.skip("needs dtc (device-tree-compiler)")
    (tmp_path / "b.dts").write_text(DTS.replace(" 01000000", ""))
    subprocess.run(["dtc", "-q", "-O", "dtb", "-o", tmp_path / "b.dtb", tmp_path / "b.dts"],
                   check=True)
    facts = parse_facts(FACTS_OUT.replace("000000008000000000000000 01000000",
                                          "00000000800000000000000001000000"))
    assert facts.release == "6.1.55-imx" and facts.soc == "imx8mp" and facts.taint == 4096
    assert facts.reserved[0].base == 0x80000000 and facts.reserved[0].size == 0x1000000
    assert facts.modules["imx_rproc"]["state"] == "Live"
    compare_with_dtb(facts, tmp_path / "b.dtb")
    judge(facts)
    texts = [f.text for f in facts.findings]
    assert any("/soc@0/rpmsg is enabled in b.dtb but 'disabled'" in t and "U-Boot" in t
               for t in texts)
    assert any("vdev0vring0@55000000" in t and "not in the running" in t for t in texts)
    warn = [f for f in facts.findings if f.severity == "warn"]
    assert warn and warn[0].signature == "imx8m-mcore-clock-stall"
    assert facts.failed and "NOT in built DTB" not in facts.render()
    facts2 = parse_facts(FACTS_OUT.replace("root=", "clk-imx8mp.mcore_booted=1 root="))
    judge(facts2)
    assert facts2.mcore_booted == "1" and not facts2.findings


def test_facts_without_device_tree():
    facts = parse_facts("RELEASE|6.8.0\nCMDLINE|quiet\nTAINT|0\nNODT|\n")
    judge(facts)
    assert not facts.devicetree and not facts.cm_nodes() and not facts.failed
    assert "none on the target" in facts.render()


# -- kernel log reader, error filter, results table ----------------------------------------------
class LocalSh:
    """CommandProtocol over the real local /bin/sh."""

    def run(self, cmd, timeout=30.0):
        p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=timeout,
                           check=False)
        return p.stdout.splitlines(), p.stderr.splitlines(), p.returncode


def test_poll_dmesg_survives_ring_buffer_wrap(tmp_path, monkeypatch):
    log = tmp_path / "log"
    fake = tmp_path / "bin" / "dmesg"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ncat {log}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    log.write_text("[    1.000000] boot\n[    2.500000] old\n")
    sh = TargetShell(LocalSh())
    sh.start_dmesg()  # not booted here: the run starts after the newest line
    assert sh.poll_dmesg() == 0
    log.write_text("[    2.500000] old\n[    3.000000] remoteproc0: a\n   continuation\n")
    assert sh.poll_dmesg() == 2 and sh.klog == ["[    3.000000] remoteproc0: a",
                                                "   continuation"]
    # the ring buffer wrapped: older lines are gone, only the newer ones are added
    log.write_text("[    9.000000] remoteproc0: b\n[   10.000000] remoteproc0: c\n")
    assert sh.poll_dmesg() == 4 and sh.klog[-1].endswith("c")
    assert sh.poll_dmesg() == 4
    # more lines in the same microsecond as the last one read are not lost or repeated
    log.write_text(log.read_text() + "[   10.000000] remoteproc0: d\n")
    assert sh.poll_dmesg() == 5 and sh.klog[-1].endswith("d")
    log.write_text(log.read_text() + "[   10.000000] remoteproc0: e\n[   11.000000] f\n")
    assert sh.poll_dmesg() == 7 and sh.klog[-2:] == ["[   10.000000] remoteproc0: e",
                                                     "[   11.000000] f"]


def test_for_each_splits_a_long_list_into_console_lines(tmp_path):
    """Seven module paths under /lib/modules/<release>/updates/ (NXP 5.15's set) made one
    1271-byte loop, too long for a serial console line; for_each splits it."""
    paths = [str(tmp_path / f"lib/modules/5.15.71-g68eba1f9713e/updates/{'m' * 60}{i}.ko")
             for i in range(40)]
    for p in paths[::2]:
        Path(p).parent.mkdir(parents=True, exist_ok=True)
        Path(p).write_text("")
    sh = TargetShell(LocalSh())
    out = sh.for_each(paths, '[ -e "$f" ] && echo "$f"')
    assert out.split() == paths[::2]
    cmds = [c for c, *_ in sh.transcript]
    assert len(cmds) > 1 and all(len(shlex.quote(c)) <= CONSOLE_MAX_LINE for c in cmds)
    with pytest.raises(ValueError, match="too long for a console line"):
        sh.for_each(["x" * 2000], "echo $f")


def test_is_error_and_expected_mu_line():
    mu = "[ 1.0] imx-rproc imx7d-cm4: No initialized mbox tx channel"
    assert not is_error(mu, emulated=True) and is_error(mu, emulated=False)
    assert is_error("[ 1.0] remoteproc remoteproc0: bad phdr da 0x1ff00000 mem 0x78")
    assert not is_error("[ 1.0] remoteproc remoteproc0: remote processor imx-rproc is now up")


def test_table_names_the_signature():
    table = render_table([{"check": "test_reload_cycles", "outcome": "failed", "seconds": 1.0,
                           "message": "AssertionError: cycle 1: state 'offline'\nmore",
                           "evidence": "", "signatures": [{"id": "firmware-missing"}]}])
    assert "FAILED" in table and "[known: firmware-missing]" in table
