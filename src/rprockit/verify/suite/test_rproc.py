"""On-target checks of the remoteproc/RPMsg stack.

Every check reads real state on the target through its command driver.  On
the emulated i.MX7D the M4 never executes (QEMU 10 models the SRC and OCRAM_S
but no M4, MU or TCM); what Linux does is real: the SRC register accesses,
ELF loading into OCRAM_S and reserved DDR, the resource table, vdev and
vrings, virtio RPMsg.  Results never claim the firmware ran.

On the emulated i.MX8M Plus with the stand-in remote core (``standin``), a
remote does run: the fourth Cortex-A53 executes ``firmware/standin-remote``
in place of the M7 and serves a RAM page as the MU; the checks that need the
other side (name service, tty echo, restarts) run there and say so
(:data:`STANDIN_NOTE`).

Checks run in file order; the ones that need the remoteproc stack skip (with
the reason) on targets that have no M core node, see conftest.py.
"""

from __future__ import annotations

import json
import re
import statistics
import time

import pytest

from rprockit.kmod import vermagic as host_vermagic
from rprockit.preflight.soc import load_soc
from rprockit.verify.facts import collect_facts
from rprockit.verify.integrity import IntegrityUnavailable, compare, expected_spans, read_back
from rprockit.verify.suite.conftest import load_stack
from rprockit.verify import signatures
from rprockit.verify.target_shell import q

# dmesg lines that mean a failure (kernel sources: remoteproc_core.c,
# remoteproc_elf_loader.c, imx_rproc.c, virtio_rpmsg_bus.c)
FATAL_RE = re.compile(r"Oops|BUG:|WARNING:|Unable to handle|self-detected stall|soft lockup")
SUBSYSTEM_RE = re.compile(r"\b(remoteproc\d*|imx[-_]rproc\w*|rproc-virtio|rpmsg\w*|virtio\w*"
                          r"|firmware|mbox\w*)\b", re.IGNORECASE)
FAIL_RE = re.compile(r"\b(fail\w*|error|unable|cannot|invalid|timed? ?out)\b|err:?\s*-\d+"
                     r"|bad phdr|already exist|No initialized mbox", re.IGNORECASE)
# imx_rproc_kick() logs it when virtio kicks a core without MU mailboxes
# (drivers/remoteproc/imx_rproc.c): expected on the emulated board (QEMU has
# no MU), a real problem on hardware (knowledge base: no-mu-tx-channel).
EXPECTED_WITHOUT_MU = re.compile(r"No initialized mbox tx channel")
# rpmsg_ns: the name-service endpoint at address 0x35 (drivers/rpmsg/rpmsg_ns.c,
# RPMSG_NS_ADDR) that the M core announces its channels to.
NS_RE = re.compile(r"^virtio\d+\.rpmsg_ns\.53\.53$")
#: Before Linux 5.11 the name service is part of virtio_rpmsg_bus (rpmsg_ns.c came
#: with "rpmsg: Turn name service into a stand alone driver", v5.11): no
#: rpmsg_ns device exists there (NXP 4.14, 5.4); the virtio device bound to
#: virtio_rpmsg_bus is what shows the RPMsg bus came up.
RPMSG_NS_DRIVER = "/sys/bus/rpmsg/drivers/rpmsg_ns"
VIRTIO_RPMSG = "virtio_rpmsg_bus"
TTY_CHANNELS = ("rpmsg-tty", "rpmsg-tty-channel", "rpmsg-virtual-tty-channel",
                "rpmsg-virtual-tty-channel-1", "rpmsg-openamp-demo-channel")
#: the channel mainline rpmsg_tty binds (drivers/tty/rpmsg_tty.c rpmsg_driver_tty_id_table)
TTY_CHANNEL = "rpmsg-tty"
#: the channels the stand-in announces (firmware/standin-remote/standin.c channels[])
STANDIN_CHANNELS = ("rpmsg-tty", "rpmsg-virtual-tty-channel", "rpmsg-raw")
#: what is emulated and what is real when the stand-in remote core runs
STANDIN_NOTE = ("emulated: the remote core (the fourth Cortex-A53 running "
                "firmware/standin-remote in place of the M7) and the MU (a RAM page it "
                "serves); real: the kernel's imx_rproc, imx-mailbox, virtio_rpmsg_bus, "
                "rpmsg_ns and rpmsg_tty")
#: the stand-in's answer to "rprockit-status" (firmware/standin-remote/standin.c)
STANDIN_STATUS_RE = re.compile(r"rprockit-standin (\w) starts (\d+)")


def is_error(line: str, emulated: bool = True) -> bool:
    """A kernel log line that reports a failure of the remoteproc/RPMsg stack, or an oops."""
    if emulated and EXPECTED_WITHOUT_MU.search(line):
        return False
    return bool(FATAL_RE.search(line) or (SUBSYSTEM_RE.search(line) and FAIL_RE.search(line)))


def _evidence(record_property, lines: list[str]) -> None:
    record_property("evidence", "\n".join(lines))


# -- kernel and modules -------------------------------------------------------------------
def test_kernel_release(shell, manifest, record_property):
    """The running kernel is the one the manifest names."""
    rel = shell.check("uname -r").strip()
    _evidence(record_property, [f"uname -r: {rel}; manifest {manifest.id}: "
                                + manifest.kernel_release])
    assert rel == manifest.kernel_release, (
        f"target runs {rel}, the build produced {manifest.kernel_release}: boot the kernel "
        "of the same build, or rebuild against the running kernel")


def _candidates(shell, name: str, release: str) -> list[str]:
    cands = []
    if shell.desc is not None:
        cands.append(f"{shell.desc.modules_dir(release)}/{name}.ko")
    return [*cands, f"/lib/modules/{release}/extra/{name}.ko",
            f"/lib/modules/{release}/updates/{name}.ko"]


def _target_module_files(shell, names: list[str], release: str) -> dict[str, str | None]:
    """Where each deployed module is: rprockit's modules_dir, else modinfo's lookup
    (one command for every candidate: each command is a round trip to the target)."""
    cands = {n: _candidates(shell, n, release) for n in names}
    every = [c for cs in cands.values() for c in cs]
    out = shell.for_each(every, '[ -e "$f" ] && echo "$f"')
    present = set(out.split())
    found: dict[str, str | None] = {}
    for n, cs in cands.items():
        found[n] = next((c for c in cs if c in present), None)
        if found[n] is None:
            res, rc = shell.run(f"modinfo -F filename {q(n)} 2>/dev/null")
            found[n] = res.strip() if rc == 0 and res.strip() else None
    return found


def test_module_vermagic(shell, manifest, record_property):
    """Each deployed module's vermagic matches the running kernel and the build manifest.

    Read on the target with ``modinfo -F vermagic FILE`` (busybox or kmod): the
    file that modprobe will load, not /sys/module (which has no vermagic and
    exists only once loaded).  The kernel compares the whole string
    (kernel/module/main.c check_modinfo(), same_magic()).
    """
    release = shell.check("uname -r").strip()
    art = manifest.artifacts / "modules"
    rows, bad = [], []
    files = _target_module_files(shell, list(manifest.load_order), release)
    paths = [p for p in files.values() if p]
    out = shell.for_each(paths, 'v=$(modinfo -F vermagic "$f" 2>&1); echo "VM|$?|$f|$v"')
    magic = {m[2]: (int(m[1]), m[3]) for ln in out.splitlines()
             if len(m := ln.split("|", 3)) == 4 and m[0] == "VM"}
    for name in list(manifest.load_order):
        built = host_vermagic(art / f"{name}.ko") if (art / f"{name}.ko").is_file() else None
        path = files[name]
        if path is None:
            bad.append(f"{name}: not installed for {release} on the target (modinfo cannot "
                       "find it): deploy the module set")
            continue
        rc, out = magic.get(path, (1, "no output"))
        got = " ".join(out.split())
        rows.append(f"{name}: {path}: '{got}' (build: '{built}')")
        if rc != 0 or not got:
            bad.append(f"{name}: modinfo -F vermagic {path} failed: {out}")
        elif got.split()[0] != release or (built and got != built):
            # the line load_module() would print (kernel/module/main.c check_modinfo)
            bad.append(f"{name}: version magic '{got} ' should be '{built or release} ' "
                       f"(the kernel refuses it: {path} was not built by manifest "
                       f"{manifest.id} for {release})")
        if built and built.split()[0] != manifest.kernel_release:
            bad.append(f"{name}: the artifact's vermagic '{built}' does not name the manifest's "
                       f"kernel release {manifest.kernel_release}")
    _evidence(record_property, rows)
    assert not bad, "\n".join(bad)


def test_modules_load_in_order(shell, manifest, rproc_expected, record_property):
    """modprobe each module of the module set in its load order; no unexpected taint."""
    if not rproc_expected[0]:
        pytest.skip(rproc_expected[1])
    order = list(manifest.load_order)
    lines = load_stack(shell, order)
    loaded = shell.check("cat /proc/modules")
    for name in order:
        assert re.search(rf"^{name} ", loaded, re.MULTILINE), f"{name} not in /proc/modules"
    taint = int(shell.read("/proc/sys/kernel/tainted"))
    _evidence(record_property, [*lines, f"tainted={taint}"])
    # bit 12 (4096) is TAINT_OOT_MODULE: out-of-tree modules are allowed
    assert taint & ~4096 == 0, f"kernel tainted {taint} beyond out-of-tree modules"


# -- remoteproc ------------------------------------------------------------------------------
def test_remoteproc_probed(rproc, record_property):
    """imx_rproc probed: remoteproc* exists; report name, state and firmware."""
    line = (f"{rproc['dir']}: name {rproc['name']}, state {rproc['state']}, "
            f"firmware {rproc['firmware']}")
    _evidence(record_property, [line])
    assert rproc["state"] in ("offline", "running", "detached", "attached"), rproc


def _fw_search_path(shell, release: str) -> list[str]:
    """The firmware loader's search path (drivers/base/firmware_loader/main.c fw_path[])."""
    custom = ""
    if shell.exists("/sys/module/firmware_class/parameters/path"):
        custom = shell.read("/sys/module/firmware_class/parameters/path")
    return [p for p in (custom, f"/lib/firmware/updates/{release}", "/lib/firmware/updates",
                        f"/lib/firmware/{release}", "/lib/firmware") if p]


def test_firmware_where_loader_looks(shell, manifest, record_property):
    """The firmware file is in the firmware loader's search path."""
    fw = manifest.firmware_name
    release = shell.check("uname -r").strip()
    dirs = _fw_search_path(shell, release)
    found = [d for d in dirs if shell.exists(shell.path(f"{d}/{fw}"))]
    _evidence(record_property, [f"searched {[shell.path(d) for d in dirs]}; found in {found}"])
    assert found, (f"{fw} is in none of {dirs}; request_firmware() will fail with: "
                   f"Direct firmware load for {fw} failed with error -2")


def test_target_facts(shell, built_dtb, results_dir, record_property):
    """Target facts (read-only): cmdline, live DT nodes vs the built DTB, reserved
    memory, modules, remoteproc; fails on findings of severity fail."""
    facts = collect_facts(shell, built_dtb)
    if results_dir is not None:
        (results_dir / "facts.json").write_text(json.dumps(facts.to_dict(), indent=2) + "\n")
        (results_dir / "facts.txt").write_text(facts.render())
    _evidence(record_property, facts.render().splitlines())
    fails = [f.text for f in facts.findings if f.severity == "fail"]
    assert not fails, "\n".join(fails)


def _stop(shell, d: str) -> None:
    if shell.read(f"{d}/state") in ("running", "attached", "detached"):
        shell.check(f"echo stop > {d}/state")


def test_detached_attach(shell, rproc, manifest, record_property):
    """A core started by the bootloader: attach, then stop and start with our firmware.

    imx_rproc reports ``detached`` when the SRC says the M4 runs
    (imx_rproc_detect_mode()); rproc_add() then attaches on its own
    (auto_boot -> rproc_boot() -> rproc_attach()), so the state is ``attached``
    after probe, or ``detached`` when auto-boot is off.  The emulated i.MX7D
    always takes this path: QEMU 10's SRC_SCR resets to 0, which is not
    IMX7D_M4_STOP (hw/misc/imx7_src.c).
    """
    if rproc["state"] not in ("detached", "attached"):
        pytest.skip(f"the core was '{rproc['state']}' when imx_rproc probed, not started by "
                    "the bootloader")
    d, fw = rproc["dir"], manifest.firmware_name
    ev = [f"state after probe: {rproc['state']}"]
    if shell.read(f"{d}/state") == "detached":
        shell.check(f"echo start > {d}/state")
    st = shell.read(f"{d}/state")
    ev.append(f"attach -> {st}")
    assert st == "attached", f"attach left the state '{st}'"
    shell.check(f"echo stop > {d}/state")
    st = shell.read(f"{d}/state")
    ev.append(f"stop -> {st}")
    assert st == "offline", f"stop of the attached core left the state '{st}'"
    shell.check(f"echo {q(fw)} > {d}/firmware && echo start > {d}/state")
    st = shell.read(f"{d}/state")
    rpmsg = shell.check("ls /sys/bus/rpmsg/devices").split()
    bound = shell.check("for x in /sys/bus/virtio/devices/*/driver; do [ -e $x ] && "
                        "basename $(readlink $x); done; true").split()
    ev.append(f"start {fw} -> {st}, rpmsg {rpmsg}, virtio drivers {bound}")
    shell.check(f"echo stop > {d}/state")
    _evidence(record_property, ev)
    assert st == "running", f"start after stop left the state '{st}'"
    why = rpmsg_up(shell.exists(RPMSG_NS_DRIVER), rpmsg, bound)
    assert why is None, why


CYCLE = ("echo {fw} > {d}/firmware && echo start > {d}/state; s1=$(cat {d}/state); "
         "v=$(ls /sys/bus/virtio/devices 2>/dev/null); r=$(ls /sys/bus/rpmsg/devices 2>/dev/null); "
         "b=$(for x in /sys/bus/virtio/devices/*/driver; do [ -e $x ] && "
         "basename $(readlink $x); done); "
         "echo stop > {d}/state; echo \"CYCLE|$s1|\"$v\"|\"$r\"|$(cat {d}/state)|\"$b\"\"")


def rpmsg_up(ns_driver: bool, rpmsg: list[str], bound: list[str]) -> str | None:
    """Why the RPMsg bus is not up after a start, or None when it is.

    Args:
        ns_driver: the kernel has the stand-alone name-service driver (v5.11+).
        rpmsg: ``/sys/bus/rpmsg/devices`` entries.
        bound: drivers the virtio devices are bound to.
    """
    if ns_driver:
        if not any(NS_RE.match(r) for r in rpmsg):
            return f"no rpmsg name-service channel (virtioN.rpmsg_ns.53.53): {rpmsg}"
        return None
    if VIRTIO_RPMSG not in bound:
        return f"no virtio device bound to {VIRTIO_RPMSG} (bound: {bound})"
    return None


def test_reload_cycles(shell, rproc, manifest, cycles, emulated, standin, record_property):
    """stop -> set firmware -> start -> running, N times: the virtio RPMsg device and the
    name-service channel come back each time, and the kernel logs no error."""
    d, fw = rproc["dir"], manifest.firmware_name
    _stop(shell, d)
    start = shell.poll_dmesg()
    cmd = CYCLE.format(fw=q(fw), d=d)
    ns_driver = shell.exists(RPMSG_NS_DRIVER)
    times, evidence, errors, ups = [], [], [], 0
    mark = start
    for i in range(1, cycles + 1):
        t0 = time.monotonic()
        out = shell.check(cmd)
        times.append(time.monotonic() - t0)
        row = next((ln for ln in out.splitlines() if ln.startswith("CYCLE|")), "")
        _, st, virtio, rpmsg, st2, bound = (row.split("|") + [""] * 6)[:6]
        virtio, rpmsg, bound = virtio.split(), rpmsg.split(), bound.split()
        if i <= 2 or i == cycles:
            evidence.append(f"cycle {i}: start -> {st}, virtio {virtio} ({bound}), "
                            f"rpmsg {rpmsg}; stop -> {st2}")
        said = " ".join(ln for ln in out.splitlines() if not ln.startswith("CYCLE|")).strip()
        assert st == "running", f"cycle {i}: state '{st}' after start" + (
            f" ({said})" if said else "")
        assert virtio, f"cycle {i}: no virtio device after start"
        why = rpmsg_up(ns_driver, rpmsg, bound)
        assert why is None, f"cycle {i}: {why}"
        assert st2 == "offline", f"cycle {i}: state '{st2}' after stop"
        if i % 25 == 0 or i == cycles:
            end = shell.poll_dmesg()
            new = shell.klog[mark:end]
            mark = end
            ups += sum("is now up" in ln for ln in new)
            errors += [ln for ln in new if is_error(ln, emulated)]
            assert not errors, f"dmesg errors by cycle {i}:\n" + "\n".join(errors[:20])
    total = sum(times)
    evidence.append(f"{cycles} cycles in {total:.2f} s: per cycle mean "
                    f"{total / cycles * 1000:.0f} ms, median "
                    f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    evidence.append(f"'remote processor ... is now up' logged {ups} times")
    evidence += [ln for ln in shell.klog[start:start + 12] if "remoteproc" in ln or "rpmsg" in ln]
    if standin:
        evidence.append(STANDIN_NOTE)
    elif emulated:
        evidence.append("emulated board: Linux loaded the ELF and set up the vdev/vrings; "
                        "the M4 itself does not execute in QEMU")
    _evidence(record_property, evidence)
    assert ups == cycles, f"'is now up' logged {ups} times for {cycles} starts"


def test_segment_integrity(shell, rproc, manifest, emulated, standin, record_property):
    """After start, the loaded memory equals the ELF's PT_LOAD segments byte for byte
    (file bytes, odd tail bytes, .bss zero-fill) at their ATT system addresses."""
    fw = manifest.firmware_name
    elf = manifest.artifacts / "firmware" / fw
    soc = load_soc(manifest.firmware_soc)
    spans = expected_spans(elf, soc.att)
    d = rproc["dir"]
    _stop(shell, d)
    shell.check(f"echo {q(fw)} > {d}/firmware && echo start > {d}/state")
    try:
        assert shell.read(f"{d}/state") == "running", "the core did not start"
        results = []
        for span in spans:
            try:
                got, method = read_back(shell, span)
            except IntegrityUnavailable as e:
                pytest.skip(f"cannot read physical memory on the target: {e}")
            results.append(compare(span, got, method))
    finally:
        shell.check(f"echo stop > {d}/state")
    ev = [r.describe() for r in results]
    # a core that runs (hardware, the stand-in) writes its own data segment
    ran = not emulated or standin
    must = [r for r in results if r.mismatches and (not ran or not r.span.writable)]
    info = [r for r in results if r.mismatches and r not in must]
    if info:
        ev.append("writable segments changed by the running firmware (not a failure on "
                  "hardware): " + ", ".join(str(r.span.index) for r in info))
    _evidence(record_property, ev)
    assert not must, "loaded memory differs from the ELF:\n" + "\n".join(
        r.describe() for r in must)


def _wait_channel(shell, name: str, seconds: int = 10) -> list[str]:
    """Wait until an RPMsg channel ``name`` exists; return every channel's name."""
    out = shell.check(f"i=0; while [ $i -lt {seconds * 10} ]; do grep -qx {q(name)} "
                      "/sys/bus/rpmsg/devices/*/name 2>/dev/null && break; sleep 0.1; "
                      "i=$((i+1)); done; cat /sys/bus/rpmsg/devices/*/name 2>/dev/null; true")
    return out.split()


def _tty_ttys(shell) -> list[str]:
    return shell.check("i=0; while [ $i -lt 20 ] && ! ls /dev/ttyRPMSG* >/dev/null 2>&1; do "
                       "sleep 0.1; i=$((i+1)); done; ls /dev/ttyRPMSG* 2>/dev/null; true").split()


def _tty_roundtrip(shell, tty: str, text: str, expect: str | None = None) -> str:
    """Write one line to an RPMsg tty; return what came back once it holds ``expect``
    (default: ``text``; nothing: wait one second), or after five seconds."""
    want = text if expect is None else expect
    wait = (f"i=0; while [ $i -lt 50 ] && ! grep -q {q(want)} /tmp/.rprockit-tty; do "
            "sleep 0.1; i=$((i+1)); done" if want else "sleep 1")
    return shell.check(f"t={q(tty)}; stty -F $t raw -echo 2>/dev/null; : > /tmp/.rprockit-tty; "
                       f"(cat $t > /tmp/.rprockit-tty &) ; sleep 0.2; echo {q(text)} > $t; "
                       f"{wait}; cat /tmp/.rprockit-tty; kill $(pidof cat) 2>/dev/null; true")


def _start_standin(shell, d: str, fw: str) -> list[str]:
    _stop(shell, d)
    shell.check(f"echo {q(fw)} > {d}/firmware && echo start > {d}/state")
    return _wait_channel(shell, TTY_CHANNEL)


def _need_standin(standin: bool) -> None:
    """Skip a check that needs a remote that runs."""
    if not standin:
        pytest.skip("needs a remote that runs: the stand-in remote core of the emulated "
                    "i.MX8M Plus (standin_remote: true)")


def _start_standin_tty(shell, d: str, fw: str) -> None:
    """Start the stand-in with ``fw``; it must announce its tty channel."""
    names = _start_standin(shell, d, fw)
    assert TTY_CHANNEL in names, f"no {TTY_CHANNEL} channel after start: {names}"


def test_rpmsg_tty_echo(shell, rproc, manifest, emulated, standin, record_property):
    """Round trip through /dev/ttyRPMSG* when the M core announces an rpmsg-tty channel.

    Meaningful on hardware with a firmware that runs an echo endpoint, and on the
    emulated i.MX8M Plus with the stand-in remote core; on the other emulated boards
    the M core does not execute, so no channel is ever announced there.
    """
    if emulated and not standin:
        pytest.skip("emulated board: the M4 does not execute in QEMU, so no rpmsg-tty "
                    "channel is announced; this check only means something on hardware "
                    "or with the stand-in remote core")
    d, fw = rproc["dir"], manifest.firmware_name
    if standin:
        names = _start_standin(shell, d, fw)
    else:
        if shell.read(f"{d}/state") != "running":
            shell.check(f"echo {q(fw)} > {d}/firmware && echo start > {d}/state")
        names = shell.check("cat /sys/bus/rpmsg/devices/*/name 2>/dev/null; true").split()
    if not any(n in TTY_CHANNELS for n in names):
        if standin:
            pytest.fail(f"the stand-in announced no {TTY_CHANNEL} channel (channels: {names})")
        pytest.skip(f"the firmware announced no rpmsg-tty channel (channels: {names})")
    shell.check("modprobe rpmsg_tty 2>/dev/null; sleep 1; true")
    ttys = _tty_ttys(shell)
    assert ttys, f"rpmsg-tty channel announced ({names}) but no /dev/ttyRPMSG* exists"
    token = f"rprockit-{int(time.time())}"
    out = _tty_roundtrip(shell, ttys[0], token)
    ev = [f"channels {names}", f"{ttys[0]}: sent {token!r}, got {out.strip()[:200]!r}"]
    if standin:
        ev.append(STANDIN_NOTE)
    _evidence(record_property, ev)
    assert token in out, f"no echo of {token!r} on {ttys[0]}"


def test_standin_restart_cycles(shell, rproc, standin, cycles, record_property):
    """The restart of the field reports, N times, with a remote that runs: stop, change
    the firmware file, start; the remote announces its channel again (sysfs and dmesg),
    the tty echoes, and the remote reports the image and its start count.

    The firmware file ``rprockit-standin.elf`` is overwritten in turn with the stand-in
    builds tagged ``a`` and ``b`` (the verify stage puts both in the initramfs), so the
    answer to ``rprockit-status`` proves the new file is the one running.
    """
    _need_standin(standin)
    d = rproc["dir"]
    fwdir = shell.path("/lib/firmware")
    _stop(shell, d)
    shell.check(f"echo rprockit-standin.elf > {d}/firmware")
    mark = shell.poll_dmesg()
    ev, prev = [], None
    for i in range(1, cycles + 1):
        tag = "a" if i % 2 else "b"
        shell.check(f"cp {fwdir}/rprockit-standin-{tag}.elf {fwdir}/rprockit-standin.elf && "
                    f"echo start > {d}/state")
        names = _wait_channel(shell, TTY_CHANNEL)
        assert TTY_CHANNEL in names, f"cycle {i}: no {TTY_CHANNEL} channel after start: {names}"
        ttys = _tty_ttys(shell)
        assert ttys, f"cycle {i}: {TTY_CHANNEL} announced but no /dev/ttyRPMSG*"
        token = f"rprockit-cycle-{i}"
        echo = _tty_roundtrip(shell, ttys[0], token)
        assert token in echo, f"cycle {i}: no echo of {token!r} on {ttys[0]}: {echo!r}"
        status = _tty_roundtrip(shell, ttys[0], "rprockit-status", "rprockit-standin")
        m = STANDIN_STATUS_RE.search(status)
        assert m, f"cycle {i}: no status answer on {ttys[0]}: {status!r}"
        assert m.group(1) == tag, f"cycle {i}: image {m.group(1)} runs, {tag} was installed"
        starts = int(m.group(2))
        assert prev is None or starts == prev + 1, f"cycle {i}: start count {starts} after {prev}"
        prev = starts
        shell.check(f"echo stop > {d}/state")
        st = shell.read(f"{d}/state")
        gone = shell.check("cat /sys/bus/rpmsg/devices/*/name 2>/dev/null; true").split()
        assert st == "offline" and TTY_CHANNEL not in gone, (
            f"cycle {i}: after stop: state {st}, channels {gone}")
        if i <= 2 or i == cycles:
            ev.append(f"cycle {i}: image {tag}, channels {names}, {ttys[0]} echo ok, "
                      f"status {m.group(0)!r}; stop -> {st}")
    new = shell.klog[mark:shell.poll_dmesg()]
    created = [ln for ln in new if f"creating channel {TTY_CHANNEL} addr" in ln]
    errors = [ln for ln in new if is_error(ln, emulated=True)]
    ev += [f"'creating channel {TTY_CHANNEL}' logged {len(created)} times", *created[:2],
           STANDIN_NOTE]
    _evidence(record_property, ev)
    assert len(created) == cycles, f"{len(created)} announcements for {cycles} starts"
    assert not errors, "\n".join(errors[:20])


def test_standin_tty_driver_reload(shell, rproc, manifest, standin, record_property):
    """rpmsg_tty unloaded and loaded again while the remote runs (field report 01:
    "modprobe -r imx-rpmsg-tty; modprobe imx-rpmsg-tty"): the channel stays, the tty
    goes with the driver and comes back with it, and it echoes."""
    _need_standin(standin)
    d, fw = rproc["dir"], manifest.firmware_name
    _start_standin_tty(shell, d, fw)
    try:
        out, rc = shell.run("rmmod rpmsg_tty 2>&1")
        assert rc == 0, f"rmmod rpmsg_tty failed: {out}"
        gone = shell.check("ls /dev/ttyRPMSG* 2>/dev/null; true").split()
        still = shell.check("cat /sys/bus/rpmsg/devices/*/name 2>/dev/null; true").split()
        out, rc = shell.run("modprobe rpmsg_tty 2>&1")
        assert rc == 0, f"modprobe rpmsg_tty failed: {out}"
        ttys = _tty_ttys(shell)
        echo = _tty_roundtrip(shell, ttys[0], "rprockit-tty-reload") if ttys else ""
    finally:
        shell.check(f"modprobe rpmsg_tty 2>/dev/null; echo stop > {d}/state; true")
    _evidence(record_property, [f"rmmod rpmsg_tty: ttys {gone}, channels {still}",
                                f"modprobe rpmsg_tty: ttys {ttys}, echo {echo.strip()[:80]!r}",
                                STANDIN_NOTE])
    assert not gone, f"/dev/ttyRPMSG* left after rmmod rpmsg_tty: {gone}"
    assert TTY_CHANNEL in still, f"the {TTY_CHANNEL} channel went with the driver: {still}"
    assert "rprockit-tty-reload" in echo, f"no echo after modprobe rpmsg_tty: {echo!r}"


def test_dmesg_clean(shell, emulated, standin, results_dir, record_property):
    """No failure line in the kernel log over the whole run (from boot when the suite
    booted the board, else from the suite's start)."""
    if not shell.dmesg_readable():
        pytest.skip("dmesg is not readable by this user (kernel.dmesg_restrict)")
    shell.poll_dmesg()
    lines = shell.klog
    errors = [ln for ln in lines if is_error(ln, emulated)]
    expected = [ln for ln in lines if EXPECTED_WITHOUT_MU.search(ln)]
    _evidence(record_property, [f"{len(lines)} kernel log lines in the run, {len(errors)} "
                                f"errors, {len(expected)} 'no MU' lines"
                                + (" (the stand-in serves the MU)" if standin else
                                   " (expected: QEMU models no MU)" if emulated else "")])
    assert not errors, "\n".join(errors[:40])


def test_standin_restart_behind_linux(shell, rproc, manifest, standin, record_property):
    """The failure the restart cycle guards against, provoked and diagnosed: the remote
    restarts outside remoteproc (as after a watchdog reset or a JTAG re-flash), so it
    announces its channels again while Linux still holds them; rpmsg_ns refuses each
    ("channel ... already exist", "rpmsg_create_channel failed") and the knowledge
    base names it.  Then the remedy: stop and start through remoteproc.

    Runs after test_dmesg_clean, since it puts failure lines in the kernel log.
    """
    _need_standin(standin)
    d, fw = rproc["dir"], manifest.firmware_name
    _start_standin_tty(shell, d, fw)
    ttys = _tty_ttys(shell)
    assert ttys, "no /dev/ttyRPMSG*"
    mark = shell.poll_dmesg()
    _tty_roundtrip(shell, ttys[0], "rprockit-restart", "")
    shell.check("i=0; while [ $i -lt 50 ] && [ $(dmesg | grep -c 'rpmsg_create_channel failed') "
                f"-lt {len(STANDIN_CHANNELS)} ]; do sleep 0.1; i=$((i+1)); done; true")
    new = shell.klog[mark:shell.poll_dmesg()]
    exist = [ln for ln in new if "already exist" in ln]
    failed = [ln for ln in new if "rpmsg_create_channel failed" in ln]
    found = [m.id for m in signatures.match(new)]
    ev = ["the stand-in restarted itself behind Linux's back (rprockit-restart)",
          *exist[:3], *failed[:1], f"knowledge base: {found}"]
    # the remedy of the knowledge base: the lifecycle through remoteproc
    shell.check(f"echo stop > {d}/state")
    mark = shell.poll_dmesg()
    shell.check(f"echo start > {d}/state")
    names = _wait_channel(shell, TTY_CHANNEL)
    ttys2 = _tty_ttys(shell)
    echo = _tty_roundtrip(shell, ttys2[0], "rprockit-after-remedy") if ttys2 else ""
    shell.check(f"echo stop > {d}/state")
    after = shell.klog[mark:shell.poll_dmesg()]
    ev += [f"stop/start through remoteproc: channels {names}, echo {echo.strip()[:80]!r}, "
           f"{sum('already exist' in ln for ln in after)} 'already exist' lines", STANDIN_NOTE]
    _evidence(record_property, ev)
    assert len(exist) == len(failed) == len(STANDIN_CHANNELS), (
        f"expected one refusal per announced channel {STANDIN_CHANNELS}:\n"
        + "\n".join(new[-20:]))
    assert "rpmsg-channel-exists" in found, found
    assert "rprockit-after-remedy" in echo, f"no echo after stop/start: {echo!r}"
    assert not any("already exist" in ln for ln in after), after
