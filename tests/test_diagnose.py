"""rprockit diagnose against real field logs (tests/data/field-logs, from public threads).

Every corpus log must get the cause its thread established (corpus.yaml says
who established it and how); the knowledge base's conditioned remedies,
truncated pastes, transient lines, the JSON schema, the pre-flight run on a
real firmware built with arm-none-eabi-gcc, and bad input (exit 2) are tested
through the library and through the real ``rprockit`` console script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rprockit.diagnose import MAX_LOG_BYTES, diagnose, diagnose_log, parse_text, read_log
from rprockit.errors import ProfileError, UserError
from rprockit.verify.signatures import soc_table
from rprockit.yamlfile import validate
from sshd_fixture import sshd  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "tests" / "data" / "field-logs"
CORPUS = yaml.safe_load((LOGS / "corpus.yaml").read_text())["logs"]
RPROCKIT = str(Path(sys.executable).with_name("rprockit"))


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([RPROCKIT, "diagnose", *args], capture_output=True, text=True,
                          input=stdin, cwd=ROOT, env={**os.environ, "RPROCKIT_ROOT": str(ROOT)},
                          timeout=120)


# -- the corpus --------------------------------------------------------------------------------
def test_corpus_size_and_families():
    assert len(CORPUS) >= 30
    families = {soc_table()[e["soc"]]["family"] for e in CORPUS}
    assert families == {"imx7d", "imx8m", "imx8qx", "imx8ulp", "imx93"}
    # the thread itself (not our reading of the kernel) established the cause
    established = [e for e in CORPUS if e["basis"] in ("thread", "thread+kernel")]
    assert len(established) >= 30
    assert {soc_table()[e["soc"]]["family"] for e in established} == families
    for e in CORPUS:
        assert (LOGS / f"{e['id']}.log").is_file(), e["id"]
        assert e["url"].startswith("http") and e["basis"] in ("thread", "thread+kernel", "kernel")
        assert len({x["id"] for x in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("entry", CORPUS, ids=[e["id"] for e in CORPUS])
def test_corpus_log_gets_the_established_cause(entry):
    diag = diagnose_log(LOGS / f"{entry['id']}.log", **entry.get("args", {}))
    ids = [m.id for m in diag.findings]
    if not entry["expect"]:
        assert ids == [] and diag.verdict == "no-known-failure" and diag.exit_code == 0
        assert diag.needs["preflight"] and diag.needs["facts"]
        return
    assert ids[0] == entry["expect"][0], ids
    assert set(entry["expect"]) <= set(ids), ids
    assert "rproc-boot-failed" not in ids  # the generic entry gives way to the specific one
    primary = diag.findings[0]
    assert primary.lines and primary.line in primary.lines
    assert all(ln in (LOGS / f"{entry['id']}.log").read_text() for ln in primary.lines)
    assert primary.cause and primary.remedy and primary.fix and primary.source
    assert diag.exit_code == (3 if primary.kind == "failure" else 0)
    if entry["soc"] and diag.context.family is not None:
        assert diag.context.family == soc_table()[entry["soc"]]["family"]
    validate(diag.to_dict(), "diagnose", source=entry["id"])


def test_benchmark_corpus(capsys):
    """Time per log (recorded, not asserted)."""
    times = []
    for e in CORPUS:
        t0 = time.perf_counter()
        diagnose_log(LOGS / f"{e['id']}.log", **e.get("args", {}))
        times.append(time.perf_counter() - t0)
    with capsys.disabled():
        print(f"\n[bench] diagnose: {len(times)} logs, mean {1000 * sum(times) / len(times):.2f} ms, "
              f"max {1000 * max(times):.2f} ms")
    assert len(times) == len(CORPUS)


# -- knowledge-base behaviour ------------------------------------------------------------------
KICK = "imx-rproc imx8x-cm4: imx_rproc_kick: failed (0, err:-62)"


def test_kick_timeout_remedy_is_conditioned_on_the_family():
    on_8x = diagnose(parse_text(KICK + "\n"), soc="imx8qxp").findings[0]
    on_8m = diagnose(parse_text(KICK.replace("imx8x-cm4", "imx8mp-cm7") + "\n")).findings[0]
    assert on_8x.id == on_8m.id == "kick-mbox-timeout"
    assert on_8x.condition == {"family": ["imx8qx"]} and "do not add it" in on_8x.remedy
    assert "SCU" in on_8x.cause
    assert on_8m.condition == {"family": ["imx8m"]} and "clk-imx8mp.mcore_booted=1" in on_8m.remedy
    # the device name alone tells the SoC: imx8x-cm4 is the i.MX8QXP/DX M4
    assert diagnose(parse_text(KICK)).context.family == "imx8qx"


def test_m4_image_on_dsp_remedy_differs_per_family():
    log = LOGS / "imx8qm-mek-m4-image-on-dsp.log"
    qm = diagnose_log(log, soc="imx8qm").findings[0]
    mp = diagnose_log(log, soc="imx8mp").findings[0]
    assert qm.id == mp.id == "mcore-image-on-dsp-rproc"
    assert "flash_linux_m4" in qm.remedy and "imx8mp-cm7" in mp.remedy


def test_truncated_alignment_fault_paste():
    full = (LOGS / "imx8mp-barebox-itcm-alignment-fault.log").read_text().splitlines()
    cut = full[: next(i for i, ln in enumerate(full) if "ESR 0x96000061" in ln) + 1]
    assert not any("rproc_elf_load_segments" in ln for ln in cut)  # no call trace left
    diag = diagnose(parse_text("\n".join(cut)))
    assert [m.id for m in diag.findings] == ["tcm-write-alignment-fault"]
    assert "elf-segment-loading" in diag.findings[0].fix
    # the line alone, without a remoteproc boot line around it, is not enough
    assert diagnose(parse_text(cut[-1])).findings == []


def test_transient_firmware_miss_is_cleared_by_a_later_boot():
    log = ("remoteproc remoteproc0: Direct firmware load for fw.elf failed with error -2\n"
           "remoteproc remoteproc0: powering up imx-rproc\n"
           "remoteproc remoteproc0: Booting fw image fw.elf, size 1000\n")
    assert diagnose(parse_text(log)).findings == []
    assert [m.id for m in diagnose(parse_text(log.split("\n")[0])).findings] == ["firmware-missing"]


def test_load_that_stops_at_the_boot_line_is_a_suspect_on_imx8m_only():
    """A paste ending at "Booting fw image" (the board froze) vs. one that goes on."""
    freeze = (LOGS / "imx8mp-evk-tcm-load-freeze.log").read_text()
    diag = diagnose(parse_text(freeze))
    assert [m.id for m in diag.findings] == ["imx8m-mcore-load-hang"]
    assert diag.verdict == "suspect" and diag.exit_code == 0
    assert "mcore_booted" in diag.findings[0].remedy and "prepare_mcore" in diag.findings[0].remedy
    # the same start that went on: a later kernel line clears it
    went_on = freeze.replace("<FROZEN>", "[ 43.700000] remoteproc remoteproc0: remote "
                             "processor imx-rproc is now up")
    assert diagnose(parse_text(went_on)).findings == []
    # an RCU stall after the boot line is the clock stall, reported as such
    stalled = freeze.replace("<FROZEN>", "[ 64.6] rcu: INFO: rcu_preempt self-detected stall on CPU")
    assert [m.id for m in diagnose(parse_text(stalled)).findings] == ["imx8m-mcore-clock-stall"]
    # not on another family, and not when the log names no SoC at all
    assert diagnose(parse_text(freeze), soc="imx7d").findings == []
    bare = "remoteproc remoteproc0: Booting fw image fw.elf, size 1000\n"
    assert diagnose(parse_text(bare)).findings == []
    assert [m.id for m in diagnose(parse_text(bare), soc="imx8mm").findings] == [
        "imx8m-mcore-load-hang"]


def test_ddr_segment_without_memory_region_names_the_boot_loader_device_tree():
    """A boot loader's own loader (barebox) prints the kernel's line; the i.MX8M remedy covers it."""
    ddr = diagnose_log(LOGS / "imx8mp-barebox-ddr-no-memory-region.log").findings[0]
    assert ddr.id == "segment-outside-mapped-memory" and ddr.condition == {"family": ["imx8m"]}
    assert "memory-region" in ddr.remedy and "boot loader's device tree" in ddr.remedy


def test_uboot_refused_load_is_named_only_for_an_mcore_address():
    """"Reading file would overwrite reserved memory" is the M-core class only for a TCM/OCRAM load."""
    refused = "** Reading file would overwrite reserved memory **\n"
    tcm = diagnose(parse_text("=> ext4load mmc 2:2 0x7e0000 /boot/m7.bin\n" + refused),
                   soc="imx8mp").findings
    assert [m.id for m in tcm] == ["uboot-load-into-mcore-memory-refused"]
    assert "cp.b ${loadaddr} 0x7e0000" in tcm[0].remedy
    assert [m.id for m in diagnose(parse_text("=> tftp 0x900000 m4.bin\n" + refused),
                                   soc="imx7d").findings] == ["uboot-load-into-mcore-memory-refused"]
    # a DRAM address (a kernel or FIT staged over a no-map region) is another problem
    assert diagnose(parse_text("=> fatload mmc 0 0x10000000 image.ub\n" + refused),
                    soc="imx8mp").findings == []
    assert diagnose(parse_text("=> load mmc 1:1 0x48000000 hello.bin\n" + refused)).findings == []


def test_restart_without_resource_table_after_a_stop():
    """The NULL copy of a freed resource table: only after a stop, remedy per kernel line.

    The log is assembled from the formats of NXP linux-imx 6.1 remoteproc_core.c
    (rproc_stop(), rproc_fw_boot()), imx_rproc.c (imx_rproc_parse_fw()) and
    arch/arm64/mm/fault.c; no board printed these exact lines.
    """
    stopped = "[   50.1] remoteproc remoteproc0: stopped remote processor imx-rproc\n"
    boot = ("[   60.0] remoteproc remoteproc0: powering up imx-rproc\n"
            "[   60.1] remoteproc remoteproc0: Booting fw image hello.elf, size 9000\n"
            "[   60.1] remoteproc remoteproc0: No resource table in elf\n"
            "[   60.2] Unable to handle kernel NULL pointer dereference at virtual address "
            "0000000000000000\n"
            "[   60.3] CPU: 0 PID: 500 Comm: sh Not tainted 6.1.55-lts-6.1.y-g0f9f3cd8dbbe #1\n")
    diag = diagnose(parse_text(stopped + boot), soc="imx93")
    assert [m.id for m in diag.findings] == ["restart-no-rsc-table-null-copy"]
    first = diag.findings[0]
    assert diag.context.vendor == "nxp" and first.condition == {"vendor": "nxp"}
    assert "lf-6.1.55" in first.remedy and "Clear table_sz" in first.remedy
    # without the earlier stop it is the first boot of an image without a table
    assert [m.id for m in diagnose(parse_text(boot), soc="imx93").findings] == [
        "no-rsc-table-null-call"]
    # the lock left held by the oopsed task is named on its own too
    locked = "remoteproc remoteproc0: can't lock rproc imx-rproc: -4\n"
    assert [m.id for m in diagnose(parse_text(locked)).findings] == ["rproc-lock-interrupted"]
    assert diagnose(parse_text(locked.replace("-4", "-22"))).findings == []


def test_scu_partition_reset_rcu_warning_needs_its_context_and_an_scu_family():
    """The RCU warning is generic: it names the SCU notifier bug only next to its context.

    The lines follow NXP linux-imx 5.4 drivers/rpmsg/imx_rpmsg.c imx_rpmsg_restore()
    and kernel/rcu/tree_plugin.h rcu_note_context_switch() (WARN_ON_ONCE at line 293).
    """
    warn = ("[  389.778729] WARNING: CPU: 0 PID: 397 at kernel/rcu/tree_plugin.h:293 "
            "rcu_note_context_switch+0x34/0x338\n")
    restore = "[  389.767362] Wait for remote ready timeout, use first_notify.\n"
    assert diagnose(parse_text(warn), soc="imx8qxp").findings == []
    found = diagnose(parse_text(restore + warn), soc="imx8qxp").findings
    assert [m.id for m in found] == ["scu-partition-reset-rcu-warning"]
    assert "BLOCKING_NOTIFIER_HEAD" in found[0].remedy
    # an i.MX8M has no SCU: the same lines are not this failure there
    assert diagnose(parse_text(restore + warn), soc="imx8mp").findings == []
    # the i.MX8DXL is named on its own and belongs to the SCU family
    assert diagnose(parse_text("Hardware name: Freescale i.MX8DXL MEK (DT)\n")).context.soc == "imx8dxl"


def test_mu_resume_frame_is_a_failure_only_inside_a_crash_report():
    """The lines follow Linux arch/arm64/kernel/traps.c die() and process.c __show_regs()."""
    frame = "[   79.184082] pc : imx_mu_resume_noirq+0x14/0x78\n"
    abort = "[   79.155733] Internal error: synchronous external abort: 96000210 [#1] PREEMPT SMP\n"
    assert diagnose(parse_text(frame), soc="imx8ulp").findings == []
    found = diagnose(parse_text(abort + frame), soc="imx8ulp").findings
    assert [m.id for m in found] == ["mu-resume-clock-gated-abort"]
    assert "priv->clk" in found[0].remedy


def test_restart_null_copy_is_named_from_the_oops_trace_alone():
    """rproc_start()'s only NULL source is the freed cached table (Linux 6.14 remoteproc_core.c).

    The trace follows the mainline arm64 oops format (arch/arm64/kernel/process.c __show_regs);
    without a stop line or an rproc_start frame the oops stays unnamed.
    """
    oops = ("Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000\n"
            "pc : __pi_memcpy_generic+0x110/0x22c\n")
    assert diagnose(parse_text(oops), soc="imx8mp").findings == []
    with_lr = oops + "lr : rproc_start+0x88/0x1e0\n"
    assert [m.id for m in diagnose(parse_text(with_lr), soc="imx8mp").findings] == [
        "restart-no-rsc-table-null-copy"]


def test_att_translation_remedy_names_the_itcm_bound_on_imx8m_only():
    line = "imx-rproc imx8mn-cm7: Translation failed: da = 0x1e578 len = 0xee68\n"
    on_8m = diagnose(parse_text(line)).findings[0]
    assert on_8m.id == "segment-not-in-att" and on_8m.condition == {"family": ["imx8m"]}
    assert "0x20000" in on_8m.cause and ".data" in on_8m.remedy
    on_7d = diagnose(parse_text(line.replace("imx8mn-cm7", "imx7d-cm4"))).findings[0]
    assert on_7d.id == "segment-not-in-att" and on_7d.condition is None


def test_att_miss_on_imx93_names_the_m33_windows():
    """An i.MX93 M33 segment at 0xa0000000 (no ATT entry in imx_rproc_att_imx93)."""
    line = "imx-rproc imx93-cm33: Translation failed: da = 0xa0000000 len = 0x400\n"
    on_93 = diagnose(parse_text(line), soc="imx93").findings[0]
    assert on_93.id == "segment-not-in-att" and on_93.condition == {"family": ["imx93"]}
    assert "0x80000000" in on_93.remedy and "trdc_config.h" in on_93.remedy
    on_7d = diagnose(parse_text(line.replace("imx93-cm33", "imx7d-cm4")), soc="imx7d").findings[0]
    assert on_7d.condition is None and "0x80000000" not in on_7d.remedy


def test_kernel_line_and_vendor_detection():
    diag = diagnose_log(LOGS / "imx8qxp-mek-load-null-pc.log")
    c = diag.context
    assert (c.soc, c.family, c.start, c.kernel, c.vendor, c.driver) == (
        "imx8qxp", "imx8qx", "scu", (5, 10), "nxp", "imx_rproc")
    assert diag.findings[0].condition == {"start": ["scu"]}


def test_no_known_failure_report_names_what_it_needs(tmp_path):
    log = tmp_path / "clean.log"
    log.write_text("[    1.0] remoteproc remoteproc0: imx-rproc is available\n"
                   "[    2.0] remoteproc remoteproc0: powering up imx-rproc\n"
                   "[    2.1] remoteproc remoteproc0: Booting fw image fw.elf, size 9000\n"
                   "[    2.2] remoteproc remoteproc0: remote processor imx-rproc is now up\n")
    diag = diagnose_log(log, soc="imx8mp")
    text = diag.render()
    assert diag.verdict == "no-known-failure" and diag.exit_code == 0
    assert "no known failure" in text and "boot.vector" in text and "mcore_booted" in text
    assert "is this the whole log" not in text and "does not prove it executes" in text


def test_facts_bundle_is_read(tmp_path):
    from rprockit.verify.facts import judge, parse_facts

    facts = parse_facts("RELEASE|6.1.55\nCMDLINE|console=ttymxc1\nROOT|fsl,imx8mp-evk fsl,imx8mp\n"
                        "NODE|/imx8mp-cm7|fsl,imx8mp-cm7|okay\n")
    judge(facts)
    data = facts.to_dict()
    data["kernel_log"] = ["rcu: INFO: rcu_preempt self-detected stall on CPU"]
    bundle = tmp_path / "facts.json"
    bundle.write_text(json.dumps(data))
    diag = diagnose_log(bundle)
    assert diag.input.kind == "facts" and diag.context.soc == "imx8mp"
    assert diag.context.kernel == (6, 1)
    # the facts name the family, so the stall alone is the i.MX8M clock signature
    assert [m.id for m in diag.findings] == ["imx8m-mcore-clock-stall"]
    assert diag.needs["facts"] == [] and diag.facts["findings"]
    validate(diag.to_dict(), "diagnose", source="bundle")


def test_preflight_runs_with_the_firmware(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs arm-none-eabi-gcc (gcc-arm-none-eabi)")
    from rprockit.firmware import build_firmware
    from rprockit.runner import Runner

    elf = build_firmware(ROOT / "firmware/rproc-test", tmp_path / "fw", Runner())
    log = LOGS / "imx7d-colibri-ocram-s-vectors-bin.log"
    diag = diagnose_log(log, firmware=elf)
    assert diag.preflight is not None and diag.preflight["soc"] == "imx7d"
    assert {c["id"] for c in diag.preflight["checks"]} >= {"elf.header", "rsc.table"}
    assert diag.needs["preflight"] == []
    # the test firmware is linked for the emulated board's DDR: boot.vector fails on hardware
    assert diag.exit_code == (3 if diag.preflight["failed"] else 0)
    assert "pre-flight" in diag.render()
    validate(diag.to_dict(), "diagnose", source="with preflight")
    # a SoC pre-flight does not model is said, not guessed
    other = diagnose_log(LOGS / "imx93-evk-bin-not-found.log", soc="imx93", firmware=elf)
    assert other.preflight is None and "imx93 is not one of them" in other.notes[0]


def test_schema_rejects_a_bad_report():
    data = diagnose_log(LOGS / "imx93-evk-bin-not-found.log").to_dict()
    data["verdict"] = "fine"
    del data["findings"][0]["cause"]
    with pytest.raises(ProfileError) as e:
        validate(data, "diagnose", source="diagnose --json output")
    assert "verdict" in str(e.value) and "'cause' is a required property" in str(e.value)


# -- bad input ---------------------------------------------------------------------------------
def test_bad_inputs_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_log(tmp_path / "missing.log")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(UserError, match="binary data"):
        read_log(junk)
    huge = tmp_path / "huge.log"
    with huge.open("wb") as f:
        f.truncate(MAX_LOG_BYTES + 1)  # sparse: no 32 MiB written
    with pytest.raises(UserError, match="larger than"):
        read_log(huge)
    (tmp_path / "empty.log").write_text("\n\n")
    with pytest.raises(UserError, match="empty"):
        read_log(tmp_path / "empty.log")
    with pytest.raises(UserError, match="directory"):
        read_log(tmp_path)
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(UserError, match="not a facts bundle"):
        read_log(tmp_path / "other.json")
    with pytest.raises(UserError, match="unknown SoC 'imx9'"):
        diagnose_log(LOGS / "imx93-evk-bin-not-found.log", soc="imx9")


def test_cli_exit_codes_and_json(tmp_path):
    found = run_cli(str(LOGS / "imx8ulp-evk-stop-not-supported.log"), "--json")
    assert found.returncode == 3, found.stderr
    data = json.loads(found.stdout)
    assert data["findings"][0]["id"] == "mcore-stop-unsupported" and data["exit_code"] == 3
    validate(data, "diagnose", source="cli")
    clean = run_cli("-", stdin=(LOGS / "imx7d-colibri-ocram-s-vectors-bin.log").read_text())
    assert clean.returncode == 0 and "no known failure" in clean.stdout
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x7fELF" + bytes(4000))
    for args, msg in (([str(tmp_path / "nope.log")], "no such file"),
                      ([str(junk)], "binary data"),
                      (["-", "--target", str(tmp_path / "none.yaml")], "does not exist")):
        res = run_cli(*args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert msg in res.stderr and "Traceback" not in res.stderr


def test_cli_reader_that_goes_away_gets_no_traceback():
    # `rprockit diagnose --json LOG | head -c 1`: the pipe closes before the JSON is written
    log = str(LOGS / "imx8ulp-evk-stop-not-supported.log")
    for cmd in ([RPROCKIT, "diagnose", log, "--json"],
                [str(Path(sys.executable).with_name("invoke")), "diagnose", log, "--json"]):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=Path(__file__).resolve().parents[1])
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1, (cmd, err)
        assert "Traceback" not in err and "BrokenPipe" not in err, (cmd, err)


def test_knowledge_base_rules_are_validated(tmp_path):
    from rprockit.errors import InvalidFileError
    from rprockit.verify.signatures import LogContext, Variant, load

    bad = tmp_path / "kb.yaml"
    bad.write_text("format: 1\nsignatures:\n"
                   "  - id: a\n    regex: 'xxx'\n    cause: aaaaaaaaaaaa\n    remedy: bbbbbbbbbbbb\n"
                   "    fix: 'setting: x'\n    source: s s s\n    example: 'xxx'\n"
                   "    supersedes: [nope]\n    families: [imx9]\n")
    with pytest.raises(InvalidFileError) as e:
        load(bad)
    assert "families[0]" in str(e.value)
    bad.write_text(bad.read_text().replace("    families: [imx9]\n", ""))
    with pytest.raises(InvalidFileError, match="no entry 'nope'"):
        load(bad)
    # a variant holds only when the log reveals what it is conditioned on
    v = Variant({"kernel": ">=5.13", "family": ["imx8m"]}, "remedy text")
    assert v.holds(LogContext(family="imx8m", kernel=(6, 1)))
    assert not v.holds(LogContext(family="imx8m", kernel=(5, 4)))
    assert not v.holds(LogContext(family="imx8m"))  # kernel unknown: default remedy


# -- live over SSH, against a real sshd on loopback (this host is the target) ----------------
def test_collect_from_target_over_ssh(tmp_path, sshd):  # noqa: F811
    """The host stands in for a board reached over SSH: no device tree, no remoteproc,
    so the log must name no failure; the SSH path, the facts and the bundle are real."""
    from rprockit.diagnose import collect_from_target

    env = sshd.environment_file(tmp_path)
    log, facts = collect_from_target(env)
    assert log.kind == "facts" and log.source == f"target:{env}"
    assert facts["release"] == os.uname().release and facts["devicetree"] is False
    diag = diagnose(log, facts=facts)
    assert diag.failures == [] and diag.facts is not None and diag.needs["facts"] == []
    validate(diag.to_dict(), "diagnose", source="ssh")
    # an unknown host key is refused, not accepted (exit 2 through the task)
    (tmp_path / "known_hosts").write_text("")
    res = run_cli("-", "--target", str(env))
    assert res.returncode == 2 and "host key" in res.stderr.lower(), res.stderr
