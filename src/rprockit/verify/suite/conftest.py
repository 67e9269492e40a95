"""Fixtures of the on-target suite (run by ``rprockit.verify.run_verify``).

The target is a labgrid environment file given with ``--lg-env``.  With a
QEMUDriver the board is powered on here; with a NetworkService the suite
talks SSH with verified host keys (``rprockit.verify.target_shell.SSHCommand``);
otherwise it uses the target's command driver (a serial ShellDriver).

Required versus skipped: checks of the remoteproc stack run when the target
should have one: the emulated board always, a real board when its live device
tree has an enabled ``fsl,imx*-cm*`` node (imx_rproc's of_match).  On a target
without such a node (a board without the M core node, or a plain Linux host)
they skip with that reason; on a target that has it, a missing remoteproc is
a failure.

Every failing check is matched against the knowledge base of field failure
signatures (``rprockit.verify.signatures``) using the kernel log lines and
command output of that check and its assertion message; the entries found are
appended to the failure message and recorded for results.json.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rprockit.el3boot import STANDIN_FIRMWARE
from rprockit.manifest import Manifest
from rprockit.target import is_emulated, load_target
from rprockit.verify import signatures
from rprockit.verify.facts import Facts, collect_facts
from rprockit.verify.target_shell import TargetShell, open_shell, q

RPROC_CLASS = "/sys/class/remoteproc"
#: knowledge-base entries that describe the emulated board itself, not a failure
EXPECTED_ON_EMULATED = {"no-mu-tx-channel"}


def pytest_addoption(parser):
    g = parser.getgroup("rprockit")
    g.addoption("--rprockit-manifest", required=True, help="build manifest.json")
    g.addoption("--rprockit-cycles", type=int, default=3, help="reload cycles (default 3)")
    g.addoption("--rprockit-accept-new-host-key", action="store_true", default=False,
                help="record an unknown SSH host key instead of refusing it")
    g.addoption("--rprockit-dtb", default=None, help="the built DTB the target boots")


@pytest.fixture(scope="session")
def standin(request) -> bool:
    """The emulated board runs the stand-in remote core (``standin_remote: true``):
    a Cortex-A53 of the board executes ``firmware/standin-remote`` in place of the
    M core, which QEMU does not model (:mod:`rprockit.el3boot`)."""
    env = request.config.getoption("--lg-env")
    return bool(env) and load_target(env).settings.standin_remote


@pytest.fixture(scope="session")
def manifest(request, standin) -> Manifest:
    """The build manifest whose artifacts are on (or boot) the target; with the
    stand-in remote core, its image (tag a) is the firmware every check loads."""
    man = Manifest.load(Path(request.config.getoption("--rprockit-manifest")))
    if standin:
        man = dataclasses.replace(man, firmware_name=STANDIN_FIRMWARE[0])
    return man


@pytest.fixture(scope="session")
def cycles(request) -> int:
    return request.config.getoption("--rprockit-cycles")


@pytest.fixture(scope="session")
def emulated(request) -> bool:
    """The target is the emulated board (:func:`rprockit.target.is_emulated`)."""
    return is_emulated(request.config.getoption("--lg-env"))


@pytest.fixture(scope="session")
def results_dir(request) -> Path | None:
    out = request.config.getoption("--rprockit-results", default=None)
    return Path(out) if out else None


@pytest.fixture(scope="session")
def shell(target, request, results_dir, emulated):
    """A command shell on the target; boots the emulated board when there is one."""
    request.config._rprockit_emulated = emulated
    env_file = Path(request.config.getoption("--lg-env"))
    accept = request.config.getoption("--rprockit-accept-new-host-key")
    shared = getattr(request.config, "rprockit_transport", None)  # run_verify in_process
    with open_shell(target, env_file, accept, transport=shared) as sh:
        sh.start_dmesg()
        sh.poll_dmesg()
        request.config._rprockit_shell = sh
        yield sh
        sh.poll_dmesg()
        if results_dir is not None:
            results_dir.mkdir(parents=True, exist_ok=True)
            (results_dir / "kernel.log").write_text("\n".join(sh.klog) + "\n")
        request.config._rprockit_shell = None


@pytest.fixture(scope="session")
def built_dtb(request, target, manifest) -> Path | None:
    """The built DTB the target boots: --rprockit-dtb, the environment's dtb image, the
    board DTB the manifest names, or the build's only DTB."""
    opt = request.config.getoption("--rprockit-dtb")
    if opt:
        return Path(opt)
    try:
        p = target.env.config.get_image_path("dtb")
        if p and Path(p).is_file():
            return Path(p)
    except Exception:
        pass
    named = manifest.board_dtb()
    if named is not None and named.is_file():
        return named
    dtbs = manifest.dtbs
    return dtbs[0] if len(dtbs) == 1 else None


@pytest.fixture(scope="session")
def first_facts(shell, built_dtb) -> Facts:
    """Facts read once when the session starts (before the suite changes anything)."""
    return collect_facts(shell, built_dtb)


@pytest.fixture(scope="session")
def rproc_expected(request, emulated) -> tuple[bool, str]:
    """Whether the target should have a remoteproc: ``(expected, why)``; the facts
    are read only for a real board (the emulated one always has the cm4 node)."""
    if emulated:
        return True, "emulated i.MX7D: the board's DT has the cm4 node"
    first_facts: Facts = request.getfixturevalue("first_facts")
    cm = first_facts.cm_nodes()
    if cm:
        return True, f"live device tree has {cm[0].path} ({cm[0].compatible[0]})"
    if first_facts.remoteprocs:
        return True, "a remoteproc instance exists"
    where = "no device tree" if not first_facts.devicetree else "no enabled fsl,imx*-cm* node"
    return False, (f"target has {where} and no {RPROC_CLASS}/remoteproc*: nothing for "
                   "imx_rproc to probe, so the remoteproc checks do not apply")


@pytest.fixture
def need_rproc(rproc_expected):
    expected, why = rproc_expected
    if not expected:
        pytest.skip(why)


def load_stack(shell: TargetShell, order: list[str]) -> list[str]:
    """modprobe each module of ``order`` not yet loaded; return evidence lines.

    Raises:
        AssertionError: a modprobe failed (with its output).
    """
    lines = []
    loaded = set(shell.run("ls /sys/module")[0].split())  # one round trip for all
    for name in order:
        if name in loaded:
            lines.append(f"{name}: already loaded")
            continue
        out, rc = shell.run(f"modprobe {q(name)} 2>&1")
        lines.append(f"modprobe {name}: rc={rc} {out}".strip())
        assert rc == 0, f"modprobe {name} failed (rc {rc}): {out}"
    return lines


@pytest.fixture(scope="session")
def stack(shell, manifest, rproc_expected) -> list[str]:
    """The module set loaded (in its load order); skipped when no remoteproc applies."""
    if not rproc_expected[0]:
        pytest.skip(rproc_expected[1])
    return load_stack(shell, list(manifest.load_order))


@pytest.fixture(scope="session")
def rproc(shell, stack) -> dict:
    """The remoteproc instance as first seen after the stack loaded:
    ``{dir, name, state, firmware}``."""
    out = shell.run(f"for d in {RPROC_CLASS}/remoteproc*; do [ -d $d ] && "
                    "echo \"$d|$(cat $d/name)|$(cat $d/state)|$(cat $d/firmware)\"; done")[0]
    rows = [ln.split("|") for ln in out.splitlines() if ln.count("|") == 3]
    assert rows, (f"no {RPROC_CLASS}/remoteproc* on the target: imx_rproc did not probe "
                  "(see dmesg for imx-rproc lines)")
    d, name, state, fw = rows[0]
    return {"dir": d, "name": name, "state": state, "firmware": fw}


# -- knowledge base on failures ---------------------------------------------------------
@pytest.fixture(autouse=True)
def _kb_mark(request):
    """Remember where the kernel log and transcript stood when the check began."""
    sh = getattr(request.config, "_rprockit_shell", None)
    if sh is not None:
        request.node._rprockit_mark = (sh.poll_dmesg(), len(sh.transcript))
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or report.when not in ("call", "setup"):
        return
    sh = getattr(item.config, "_rprockit_shell", None)
    lines = []
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        lines += crash.message.splitlines()
    if sh is not None:
        kmark, tmark = getattr(item, "_rprockit_mark", (0, 0))
        try:
            end = sh.poll_dmesg()
            lines += sh.klog[kmark:end]
        except Exception:
            pass
        lines += sh.outputs_since(tmark)
    found = signatures.match(lines)
    if getattr(item.config, "_rprockit_emulated", False):
        # expected on the emulated board: QEMU models no MU (see test_rproc.is_error)
        found = [m for m in found if m.id not in EXPECTED_ON_EMULATED]
    if not found:
        return
    report.user_properties.append(("signatures", json.dumps([m.to_dict() for m in found])))
    text = "known failure signature(s) (src/rprockit/data/signatures.yaml):\n" + "\n".join(
        m.render() for m in found)
    if crash is not None:
        crash.message += "\n" + text
    if hasattr(report.longrepr, "addsection"):
        report.longrepr.addsection("rprockit knowledge base", text)
