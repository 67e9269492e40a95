"""The shared glue: the stage contract, the git module, the YAML validator, the CLI program,
and the layering rules (checked on the source with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT, rprockit

from rprockit.errors import CommandError, DirtyTreeError, InvalidFileError, UserError
from rprockit.git import Git
from rprockit.profile import load_profile
from rprockit.runner import Runner
from rprockit.stage import Outcome, Stage, StageContext
from rprockit.workspace import Workspace
from rprockit import arch, pipeline, yamlfile

SRC = ROOT / "src" / "rprockit"


# -- stage contract -------------------------------------------------------------------------
class Toy:
    """A stage whose inputs, outputs and applicability the test sets."""

    def __init__(self):
        self.runs = 0
        self.parts: tuple | None = ("toy", 1)
        self.intact = True
        self.reason: str | None = None
        self.discovered: tuple | None = None

    def stage(self, **kw) -> Stage:
        def run(ctx):
            self.runs += 1
            return Outcome(f"run {self.runs}", state={"n": self.runs}, inputs=self.discovered)

        return Stage("toy", inputs=lambda ctx: self.parts, run=run,
                     outputs_ok=lambda ctx, st: self.intact,
                     not_applicable=lambda ctx: self.reason, **kw)


@pytest.fixture
def ctx(tmp_path) -> StageContext:
    prof = load_profile(ROOT / "kernel_configs" / "profiles" / "imx7d-mainline-6.1.yaml")
    return StageContext(prof, Workspace(tmp_path, prof.name), Runner(), say=lambda m: None)


def test_pipeline_skips_unchanged_and_reruns_on_change(ctx):
    toy = Toy()
    st = toy.stage()
    assert not pipeline.run_stage(st, ctx).skipped and toy.runs == 1
    again = pipeline.run_stage(st, ctx)
    assert again.skipped and toy.runs == 1 and again.data["n"] == 1
    toy.parts = ("toy", 2)                      # an input changed
    assert not pipeline.run_stage(st, ctx).skipped and toy.runs == 2
    toy.intact = False                          # an output went away
    assert not pipeline.run_stage(st, ctx).skipped and toy.runs == 3
    assert ctx.ws.load_state("toy")["n"] == 3


def test_force_only_for_stages_that_honour_it(ctx):
    toy = Toy()
    ctx.force = True
    plain, forced = toy.stage(), toy.stage(honours_force=True)
    pipeline.run_stage(plain, ctx)
    assert pipeline.run_stage(plain, ctx).skipped
    assert not pipeline.run_stage(forced, ctx).skipped and toy.runs == 2


def test_not_applicable_records_nothing_and_unknown_inputs_always_run(ctx):
    toy = Toy()
    toy.reason = "nothing to do"
    res = pipeline.run_stage(toy.stage(), ctx)
    assert res.skipped and res.summary == "nothing to do" and ctx.ws.load_state("toy") is None
    toy.reason, toy.parts, toy.discovered = None, None, ("toy", "resolved")
    pipeline.run_stage(toy.stage(), ctx)
    assert not pipeline.run_stage(toy.stage(), ctx).skipped and toy.runs == 2
    # the fingerprint recorded is the one of the inputs the run discovered
    toy.parts = ("toy", "resolved")
    assert pipeline.run_stage(toy.stage(), ctx).skipped


def test_failed_runs_and_precheck(ctx):
    toy = Toy()
    pipeline.run_stage(toy.stage(), ctx)

    def refuse(c):
        raise UserError("tree is dirty")

    with pytest.raises(UserError, match="dirty"):
        pipeline.run_stage(toy.stage(precheck=refuse), ctx)

    def boom(c):
        raise UserError("failed")

    # a failed attempt with other inputs keeps the state of the last good ones
    other = Stage("toy", inputs=lambda c: ("toy", 9), run=boom)
    with pytest.raises(UserError):
        pipeline.run_stage(other, ctx)
    assert pipeline.run_stage(toy.stage(), ctx).skipped and toy.runs == 1
    # a failed forced rerun of the same inputs leaves nothing that looks done
    ctx.force = True
    forced = Stage("toy", inputs=lambda c: ("toy", 1), run=boom, honours_force=True)
    with pytest.raises(UserError):
        pipeline.run_stage(forced, ctx)
    assert ctx.ws.load_state("toy") is None


def test_every_pipeline_stage_follows_the_contract():
    assert pipeline.STAGES == ("fetch", "patch", "configure", "build", "preflight", "verify")
    assert all(isinstance(s, Stage) for s in pipeline.PIPELINE)
    assert [h.name for h in pipeline.PIPELINE[3].before] == ["firmware"]


# -- git module ------------------------------------------------------------------------------
def _repo(tmp_path: Path) -> Git:
    g = Git(tmp_path / "t")
    g.init("main")
    (g.tree / "a.c").write_text("int a;\n")
    g("add", "a.c")
    g("commit", "-q", "-m", "first")
    return g


def test_one_dirty_tree_rule(tmp_path):
    g = _repo(tmp_path)
    (g.tree / "untracked.o").write_text("x")
    g.require_clean()                           # untracked files are not local changes
    (g.tree / "a.c").write_text("int b;\n")
    with pytest.raises(DirtyTreeError) as ei:
        g.require_clean()
    assert "1 uncommitted change(s)" in str(ei.value) and " M a.c" in str(ei.value)
    assert (g.tree / "a.c").read_text() == "int b;\n"   # nothing reset


def test_git_failures_are_command_errors_with_gits_message(tmp_path):
    g = _repo(tmp_path)
    with pytest.raises(CommandError, match="does-not-exist") as ei:
        g.fetch(str(tmp_path / "does-not-exist.git"), "main")
    assert ei.value.cmd[:2] == ["git", "fetch"] and ei.value.returncode != 0
    assert g.head_or_none() == g.head() and len(g.head()) == 40
    assert Git(tmp_path / "nothing").head_or_none() is None


# -- YAML validator --------------------------------------------------------------------------
def test_yamlfile_load_and_validate_report_file_line_and_key(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("format: 1\nbuild_dirs: [drivers/remoteproc]\nload_order:\n  - imx_rproc\n")
    doc = yamlfile.load(f, "modules")
    assert doc.data["load_order"] == ["imx_rproc"] and doc.line_of("load_order", 0) == 4
    with pytest.raises(InvalidFileError) as ei:
        yamlfile.validate({"format": 1, "build_dirs": "x", "load_order": ["a"], "colour": 1},
                          "modules", source="given.yaml", lines={("colour",): 7})
    msg = str(ei.value)
    assert "given.yaml:?: build_dirs: 'x' is not a list" in msg
    assert "given.yaml:7: colour: unknown key 'colour'" in msg
    warns = yamlfile.validate({"sudo": True, "colour": 1}, "target-settings", source="t",
                              unknown="warn")
    assert [w[0] for w in warns] == ["colour"]


def test_architecture_facts_are_data():
    assert arch.known() == ("arm", "arm64")
    a = arch.arch_info("arm64")
    assert (a.debian_arch, a.multiarch, a.image, a.srcarch) == (
        "arm64", "aarch64-linux-gnu", "Image", "arm64")
    assert arch.compiler_package("arm-linux-gnueabihf-") == "gcc-arm-linux-gnueabihf"
    with pytest.raises(UserError, match="unknown ARCH 'mips'"):
        arch.arch_info("mips")


# -- the rprockit program --------------------------------------------------------------------
def test_rprockit_without_arguments_lists_its_tasks():
    proc = rprockit()
    assert proc.returncode == 0, proc.stderr
    assert "check-firmware" in proc.stdout and "patch-matrix" in proc.stdout
    assert "--write-pyc" not in proc.stdout


def test_parse_errors_exit_2_and_options_have_types_and_help():
    bad_type = rprockit("verify", "--cycles", "many")
    assert bad_type.returncode == 2 and "many" in bad_type.stderr
    unknown = rprockit("fetch", "--no-such-option")
    assert unknown.returncode == 2 and "--no-such-option" in unknown.stderr
    helped = rprockit("check-firmware", "--help")
    assert helped.returncode == 0 and "the SoC: imx7d" in helped.stdout
    assert "--cycles=INT" in rprockit("verify", "--help").stdout


# -- layering rules --------------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add("." * node.level + node.module)
    return names


def test_one_runner_one_validator_and_verify_below_deploy():
    files = sorted(SRC.rglob("*.py"))
    by_rule = {
        "jsonschema": {"yamlfile.py"},
        "subprocess": {"runner.py", "git.py"},
        "git": set(),                                   # GitPython: not used at all
    }
    for mod, allowed in by_rule.items():
        users = {str(f.relative_to(SRC)) for f in files
                 if any(n == mod or n.startswith(mod + ".") for n in _imports(f))}
        assert users <= allowed, f"{mod} imported by {sorted(users - allowed)}"
    verify_imports = {n for f in (SRC / "verify").rglob("*.py") for n in _imports(f)}
    assert not [n for n in verify_imports if "deploy" in n]


def test_emulated_is_one_fact_of_the_environment_file():
    from rprockit.target import is_emulated, load_target

    targets = ROOT / "targets"
    assert load_target(targets / "qemu-imx7d.yaml").kind == "qemu"
    ssh = load_target(targets / "qemu-imx7d-ssh.yaml")  # main: SSH to the board QEMU powers
    assert ssh.kind == "ssh" and ssh.emulated
    assert is_emulated(targets / "qemu-imx7d.yaml") and not is_emulated(None)
    assert not load_target("root@192.0.2.10").emulated
