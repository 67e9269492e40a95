"""Modules-only builds on the shared default workspace (real make, real kbuild).

The image check reads the real ``.cmd`` files of the default profile's build
(read-only; skipped without it).  The slow test runs ``build --modules-only``
on that workspace (``$RPROCKIT_TEST_WORKSPACE``): modules_prepare once, then a
one-line edit of a patch to ``drivers/remoteproc/imx_rproc.c`` rebuilds that
object alone, twice; the profile's own series then puts the tree back, so the
workspace is left as found (the module byte-identical to the full build's).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import _REAL_HOME, ROOT, TEST_WS, rprockit

from rprockit.files import sha256_file
from rprockit.git import Git
from rprockit.modbuild import check_image, module_goals, parse_config

BASE = TEST_WS / "imx7d-mainline-6.1"
needs_build = pytest.mark.skipif(not (BASE / "artifacts" / "config").is_file(),
                                 reason=f"needs the default profile's build in {BASE} "
                                        "(RPROCKIT_TEST_WORKSPACE)")


def _edited(tmp_path: Path, **changes: str) -> Path:
    text = (BASE / "artifacts" / "config").read_text()
    for sym, value in changes.items():
        text, n = re.subn(rf"^(CONFIG_{sym}=.*|# CONFIG_{sym} is not set)$",
                          f"CONFIG_{sym}={value}" if value != "n" else
                          f"# CONFIG_{sym} is not set", text, flags=re.MULTILINE)
        if not n:
            text += f"CONFIG_{sym}={value}\n"
    out = tmp_path / ".config"
    out.write_text(text)
    return out


@needs_build
def test_module_only_change_is_not_an_image_change(tmp_path):
    """By hand from the build's .config and .cmd files: RPMSG_TTY m -> n and IMX_MBOX
    n -> m touch only modules (no built-in object's .cmd names them)."""
    chk = check_image(BASE / "artifacts" / "config",
                      _edited(tmp_path, RPMSG_TTY="n", IMX_MBOX="m"), BASE / "out")
    assert chk.rebuild == []
    assert chk.module_only == ["CONFIG_IMX_MBOX n -> m", "CONFIG_RPMSG_TTY m -> n"]


@needs_build
def test_image_change_is_named_with_the_object(tmp_path):
    """PRINTK y -> n is built in; IPV6 n -> m is a tristate, but net/socket.o (built in)
    records include/config/IPV6 in its .cmd file, so the image must be rebuilt; the
    compiler's version text is not a kernel change."""
    assert "include/config/IPV6)" in (BASE / "out" / "net" / ".socket.o.cmd").read_text()
    chk = check_image(BASE / "artifacts" / "config",
                      _edited(tmp_path, PRINTK="n", IPV6="m", CC_VERSION_TEXT='"other"'),
                      BASE / "out")
    text = "\n".join(chk.rebuild)
    assert "CONFIG_PRINTK y -> n: the image has it built in" in text
    assert re.search(r"CONFIG_IPV6 n -> m: .*net/socket\.o.* \(built into the image\) "
                     r"depends on it", text)
    assert chk.ignored and chk.ignored[0].startswith("CONFIG_CC_VERSION_TEXT")


@needs_build
def test_module_goals_from_the_makefiles():
    """obj-$(CONFIG_X) += name.o lines whose symbol is m: the seven modules of the set."""
    cfg = parse_config((BASE / "out" / ".config").read_text())
    goals = module_goals(BASE / "src", ("drivers/remoteproc", "drivers/rpmsg", "drivers/tty"),
                         cfg)
    assert goals == ["drivers/remoteproc/imx_rproc.ko", "drivers/rpmsg/rpmsg_char.ko",
                     "drivers/rpmsg/rpmsg_core.ko", "drivers/rpmsg/rpmsg_ctrl.ko",
                     "drivers/rpmsg/rpmsg_ns.ko", "drivers/rpmsg/virtio_rpmsg_bus.ko",
                     "drivers/tty/rpmsg_tty.ko"]


def _modules_only(profile: Path | None = None) -> str:
    proc = rprockit("build", "--modules-only", "--workspace", str(TEST_WS),
                    *(["--profile", str(profile)] if profile else []),
                    env={"HOME": _REAL_HOME, "RPROCKIT_ROOT": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _compiled(log: Path) -> list[str]:
    return re.findall(r"^\s+CC \[M\]\s+(\S+)$", log.read_text(), re.MULTILINE)


@pytest.mark.slow
def test_modules_only_build_reused_across_edits(default_pipeline, tmp_path):
    """A one-line edit of a patch (bench/edits.py): modules_prepare runs once, each edit
    recompiles imx_rproc.o alone; going back to the profile's own series leaves the
    shared workspace as found (HEAD at the baseline, the module as the full build's)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from edits import edit_profile, set_tag

    base = default_pipeline[0] / "imx7d-mainline-6.1"
    head = Git(base / "src").head()
    ko, built = base / "modules" / "modules" / "imx_rproc.ko", \
        base / "artifacts" / "modules" / "imx_rproc.ko"
    prof = edit_profile(tmp_path, "edit-1")
    prepare_state = base / "state" / "modules_prepare.json"
    try:
        for n, tag in enumerate(("edit-1", "edit-2")):
            set_tag(tmp_path, tag)
            out = _modules_only(prof)
            assert "[patch] done" in out and "[modules] done" in out, out
            assert _compiled(base / "logs" / "modules.log") == \
                ["drivers/remoteproc/imx_rproc.o"]
            assert f"rprockit-{tag}".encode() in ko.read_bytes()
            if n == 0:
                prepared = prepare_state.read_text()
            assert prepare_state.read_text() == prepared  # modules_prepare ran once
        again = _modules_only(prof)  # nothing changed: skipped, no make
        assert "[modules] up to date, skipped" in again
    finally:
        _modules_only()
    assert Git(base / "src").head() == head
    assert sha256_file(ko) == sha256_file(built)  # the full build's module again


def test_new_tasks_have_help_for_every_option():
    for task, options in (("loop", ["--target", "--cycles", "--base-config", "--match-target"]),
                          ("board-up", ["--target", "--profile", "--workspace"]),
                          ("board-down", ["--profile", "--workspace"]),
                          ("build", ["--modules-only", "--base-config", "--match-target"]),
                          ("verify", ["--quick", "--modules-only"]),
                          ("deploy", ["--modules-only", "--symvers"]),
                          ("configure", ["--base-config"])):
        proc = rprockit(task, "--help")
        assert proc.returncode == 0, proc.stderr
        for opt in options:
            line = next(ln for ln in proc.stdout.splitlines() if opt in ln)
            assert len(line.split(opt, 1)[1].strip()) > 10, (task, opt, line)


def test_loop_refuses_when_the_emulated_board_is_not_up(tmp_path):
    """No board-up in this workspace: the loop says so before it builds anything."""
    from rprockit import board
    from rprockit.profile import load_profile
    from rprockit.runner import Runner
    from rprockit.stage import StageContext
    from rprockit.workspace import Workspace

    prof = load_profile(ROOT / "kernel_configs/profiles/imx7d-mainline-6.1.yaml")
    ctx = StageContext(prof, Workspace(tmp_path, prof.name), Runner())
    env = ROOT / "targets" / "qemu-imx7d-ssh.yaml"
    with pytest.raises(board.BoardError, match="the emulated board is not up: run board-up"):
        board.iterate(ctx, env, say=lambda line: None)
    assert not (tmp_path / prof.name / "src").exists()


def test_board_host_key_conflict_is_refused(tmp_path, monkeypatch):
    from rprockit import board

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    kh = tmp_path / ".ssh" / "known_hosts"
    kh.write_text("[127.0.0.1]:10022 ssh-ed25519 AAAAold\n")
    with pytest.raises(board.BoardError, match=r"ssh-keygen -R '\[127.0.0.1\]:10022'"):
        board._known_host("127.0.0.1", 10022, "ssh-ed25519 AAAAnew")
    kh.write_text("")
    board._known_host("127.0.0.1", 10022, "ssh-ed25519 AAAAnew")
    board._known_host("127.0.0.1", 10022, "ssh-ed25519 AAAAnew")  # once only
    assert kh.read_text() == "[127.0.0.1]:10022 ssh-ed25519 AAAAnew\n"
