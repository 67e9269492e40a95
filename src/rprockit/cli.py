"""The task layer: Invoke tasks over the library, and the ``rprockit`` console script.

Each task parses its options and calls the library (which never imports
invoke).  Only this layer turns exceptions into exit codes: a
:class:`~rprockit.errors.UserError` exits 2 with its message; anything else
is a bug and exits 1 with the traceback.  ``tasks.py`` at the project root
re-exports :data:`ns`, so ``invoke <task>`` and ``rprockit <task>`` are the same.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path

from invoke import Collection, Exit, Program, task

from . import __version__
from .errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _root() -> Path:
    """Directory holding kernel_configs/, patches/, ...: the project checkout."""
    env = os.environ.get("RPROCKIT_ROOT")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd()
    if (cwd / "kernel_configs" / "profiles").is_dir():
        return cwd
    return PROJECT_ROOT


def user_errors(fn):
    """Turn UserError into ``Exit(code=2)`` with the message on stderr.

    Also shows the task's help when ``--help`` was swallowed as the value of a
    positional argument (invoke parses ``task --help`` that way).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if any(v in ("--help", "-h") for v in kwargs.values()):
            name = fn.__name__.rstrip("_").replace("_", "-")
            Program(namespace=ns, name="rprockit", binary="rprockit").run(
                ["rprockit", "--help", name], exit=False)
            return None
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print(f"rprockit: error: {e}", file=sys.stderr)
            raise Exit(code=e.exit_code) from None
        except KeyboardInterrupt:
            print("rprockit: interrupted", file=sys.stderr)
            raise Exit(code=130) from None

    return wrapper


class Progress:
    """Compact progress for long tool output: a counter and the last line, once a second."""

    def __init__(self, label: str):
        self.label = label
        self.n = 0
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, line: str) -> None:
        self.n += 1
        now = time.monotonic()
        if now - self.last < (1.0 if self.tty else 15.0):
            return
        self.last = now
        text = f"[{self.label}] {self.n} lines | {line.strip()[:100]}"
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty and self.n:
            sys.stderr.write("\r\033[K")


def _context(profile: str, workspace: str | None, target: str | None = None,
             cycles: int | None = None, force: bool = False, verbose: bool = False,
             accept_new_host_key: bool = False):
    from .pipeline import Context
    from .profile import find_profile, load_profile
    from .runner import Runner
    from .workspace import Workspace, default_root

    prof = load_profile(find_profile(profile, _root()))
    root = Path(workspace).resolve() if workspace else default_root()
    say = functools.partial(print, flush=True)
    runner = Runner(echo=(lambda line: print(f"  $ {line}", file=sys.stderr)) if verbose else None)
    progress = Progress("rprockit")
    return Context(prof, Workspace(root, prof.name), runner, say, progress,
                   Path(target).resolve() if target else None, cycles, force,
                   accept_new_host_key)


def _run(stages, profile, workspace, skip="", **kw):
    from .pipeline import run

    ctx = _context(profile, workspace, **kw)
    try:
        results = run(ctx, stages, tuple(s for s in skip.split(",") if s))
    finally:
        ctx.progress.done()
    return results


PROFILE_HELP = ("profile name (kernel_configs/profiles/NAME.yaml) or path; "
                "default imx7d-mainline-6.1")
WS_HELP = "workspace directory (default ./build or $RPROCKIT_WORKSPACE)"
HELP = {"profile": PROFILE_HELP, "workspace": WS_HELP}


@task(help=HELP)
@user_errors
def fetch(c, profile="imx7d-mainline-6.1", workspace=None):
    """Fetch the profile's kernel source into the workspace, pinned to a commit."""
    _run(("fetch",), profile, workspace)


@task(help={**HELP, "check": "classify only (dry run); the tree is not touched",
            "tree": "classify/apply on this git tree instead of the profile's"})
@user_errors
def patch(c, profile="imx7d-mainline-6.1", workspace=None, check=False, tree=None):
    """Classify and apply the profile's patch series (atomic; JSON report + table)."""
    if check or tree:
        from . import patch as patch_mod

        ctx = _context(profile, workspace)
        path = Path(tree).resolve() if tree else ctx.ws.src
        failed = False
        for d in ctx.profile.patches:
            series = patch_mod.load_series(d)
            # the family of the tree given, not the profile's (it only orders variants)
            rep = patch_mod.apply_series(path, series, None, ctx.runner, check=check,
                                         report_dir=ctx.ws.base / "reports" / series.directory.name)
            print(rep.render())
            failed |= rep.failed
        if failed:
            raise Exit(code=2)
        return
    _run(("fetch", "patch"), profile, workspace)


@task(name="patch-matrix", iterable=["tree"],
      help={"series": "series directory (default patches/imx-rproc)",
            "tree": "LABEL=PATH of a kernel git tree; repeat for each tree",
            "json_out": "also write the matrix as JSON to this file"})
@user_errors
def patch_matrix(c, series="patches/imx-rproc", tree=None, json_out=None):
    """Print the patch x tree applicability matrix (dry run on every tree)."""
    from . import patch as patch_mod

    trees = {}
    for spec in tree or []:
        label, _, path = spec.partition("=")
        if not path:
            raise UserError(f"--tree '{spec}' must be LABEL=PATH, e.g. nxp-5.4=~/src/linux-imx")
        trees[label] = Path(path).expanduser().resolve()
    if not trees:
        raise UserError("give at least one --tree LABEL=PATH")
    series_dir = Path(series) if Path(series).is_absolute() else _root() / series
    m = patch_mod.matrix(trees, patch_mod.load_series(series_dir))
    print(m.render())
    if json_out:
        Path(json_out).write_text(json.dumps(m.to_dict(), indent=2))


@task(help=HELP)
@user_errors
def configure(c, profile="imx7d-mainline-6.1", workspace=None):
    """Merge base config and fragments (kconfiglib); fail if any symbol did not stick."""
    _run(("fetch", "patch", "configure"), profile, workspace)


@task(help={**HELP, "force": "rebuild even when inputs are unchanged",
            "verbose": "print every command",
            "check_reproducible": "two clean builds without ccache in different directories; "
                                  "compare every image, DTB and .ko (exit 2 on any difference)"})
@user_errors
def build(c, profile="imx7d-mainline-6.1", workspace=None, force=False, verbose=False,
          check_reproducible=False):
    """Cross-build kernel image, DTBs, modules and firmware; write manifest.json."""
    _run(("fetch", "patch", "configure", "build"), profile, workspace, force=force,
         verbose=verbose)
    if check_reproducible:
        from .repro import check_reproducible as check

        ctx = _context(profile, workspace, verbose=verbose)
        print("[reproducible] two clean builds without ccache (this takes two full builds)")
        try:
            rep = check(ctx.profile, ctx.ws, ctx.runner, ctx.progress)
        finally:
            ctx.progress.done()
        print(rep.render())
        if not rep.identical:
            raise Exit(code=2)


@task(name="check-firmware", positional=["elf"],
      help={"elf": "M-core firmware ELF", "soc": "imx7d, imx8mq, imx8mm, imx8mn or imx8mp",
            "dtb": "board DTB to check the cm node and reserved-memory against",
            "kernel_tree": "kernel tree: its version and family (mainline, NXP 5.4/5.15/6.1) "
                           "pick the imx_rproc rules checked (default: mainline 6.1)",
            "emulated": "the target is the emulated board (boot vector is a warning)",
            "json": "print JSON instead of the table (errors too)"})
@user_errors
def check_firmware(c, elf=None, soc=None, dtb=None, kernel_tree=None, emulated=False, json=False):
    """Pre-flight checks of an M-core firmware ELF (and DTB) before touching a board."""
    import json as _json

    from .preflight import check_firmware as check
    from .preflight import error_document

    try:
        if not elf or not soc:
            raise UserError("usage: check-firmware FW.elf --soc "
                            "{imx7d,imx8mq,imx8mm,imx8mn,imx8mp}")
        report = check(Path(elf), soc, dtb=Path(dtb) if dtb else None,
                       kernel_tree=Path(kernel_tree) if kernel_tree else None, emulated=emulated)
    except UserError as e:
        if not json:
            raise
        print(_json.dumps(error_document(e, elf, soc), indent=2))
        raise Exit(code=e.exit_code) from None
    print(_json.dumps(report.to_dict(), indent=2) if json else report.render())
    if report.failed:
        raise Exit(code=2)


@task(help={**HELP, "target": "labgrid environment file (default: the profile's target)",
            "cycles": "remoteproc reload cycles (default: the profile's, 3)",
            "facts": "only collect the target facts report; change nothing on the target",
            "accept_new_host_key": "trust an SSH host key not yet in known_hosts"})
@user_errors
def verify(c, profile="imx7d-mainline-6.1", workspace=None, target=None, cycles=None,
           facts=False, accept_new_host_key=False):
    """Run the on-target suite (boots the emulated board when the target is QEMU)."""
    if facts:
        from .verify import run_facts

        ctx = _context(profile, workspace, target=target)
        env = ctx.target or ctx.profile.target
        if env is None:
            raise UserError("verify --facts needs --target (the profile names none)")
        board = [ctx.ws.artifacts / "dtbs" / f"{d.stem}.dtb" for d in ctx.profile.board_dts]
        dtb = next((d for d in board if d.is_file()), None)
        rep = run_facts(env, images=ctx.ws.artifacts, out_dir=ctx.ws.verify, dtb=dtb,
                        accept_new_host_key=accept_new_host_key)
        print(rep.render())
        if getattr(rep, "failed", False):
            raise Exit(code=2)
        return
    _run(("fetch", "patch", "configure", "build", "preflight", "verify"), profile, workspace,
         target=target, cycles=int(cycles) if cycles else None,
         accept_new_host_key=accept_new_host_key)


@task(help={**HELP, "target": "labgrid environment file or [user@]host[:port]",
            "reload": "after installing: stop the M core, reload the modules, start it again",
            "rollback": "restore the set installed before the last deploy",
            "force": "deploy despite a kernel release/vermagic mismatch (loud; recorded)",
            "accept_new_host_key": "trust an SSH host key not yet in known_hosts"})
@user_errors
def deploy(c, target=None, profile="imx7d-mainline-6.1", workspace=None, reload=False,
           rollback=False, force=False, accept_new_host_key=False):
    """Install the built modules and firmware on a running target over SSH, atomically."""
    from . import deploy as deploy_mod
    from .target import load_target

    if not target:
        raise UserError("deploy needs --target: a labgrid environment file or [user@]host[:port]")
    tgt = load_target(target)
    if rollback:
        res = deploy_mod.rollback(tgt, reload=reload, accept_new_host_key=accept_new_host_key)
    else:
        ctx = _context(profile, workspace)
        res = deploy_mod.deploy(tgt, deploy_artifacts(ctx.ws.artifacts), force=force,
                                reload=reload, accept_new_host_key=accept_new_host_key)
    for w in res.warnings:
        print(f"rprockit: WARNING: {w}", file=sys.stderr)
    for n in res.notes:
        print(n)
    print(f"deploy: {len(res.installed)} files on {res.where} ({res.release}) in "
          f"{res.seconds:.1f} s" + (", reloaded" if res.reload_steps else ""))


def deploy_artifacts(artifacts: Path):
    """DeployArtifacts from a build's ``artifacts/`` directory and its manifest.json."""
    from .deploy import DeployArtifacts

    man_path = artifacts / "manifest.json"
    if not man_path.is_file():
        raise UserError(f"no build in {artifacts}: run `invoke build` first")
    man = json.loads(man_path.read_text())
    fw = man.get("firmware", {}).get("name")
    return DeployArtifacts(
        modules=tuple(sorted((artifacts / "modules").glob("*.ko"))),
        firmware=(artifacts / "firmware" / fw,) if fw else (),
        kernel_release=man["kernel_release"],
        load_order=tuple(man.get("modules", {}).get("load_order", ())),
        manifest_id=man.get("id"), manifest_path=man_path, firmware_name=fw)


@task(name="all", help={**HELP, "skip": "comma-separated stages to skip, e.g. verify",
                        "cycles": "remoteproc reload cycles for verify"})
@user_errors
def all_(c, profile="imx7d-mainline-6.1", workspace=None, skip="", cycles=None):
    """Run every stage in order: fetch, patch, configure, build, preflight, verify."""
    results = _run(("fetch", "patch", "configure", "build", "preflight", "verify"), profile,
                   workspace, skip=skip, cycles=int(cycles) if cycles else None)
    total = sum(r.seconds for r in results)
    print(f"pipeline finished in {total:.1f} s: "
          + ", ".join(f"{r.stage} {r.seconds:.1f}s{' (skipped)' if r.skipped else ''}"
                      for r in results))


ns = Collection(fetch, patch, patch_matrix, configure, build, check_firmware, verify, deploy,
                all_)
ns.configure({"run": {"echo": True}})


def main() -> None:
    """Entry point of the ``rprockit`` console script."""
    Program(namespace=ns, version=__version__, name="rprockit", binary="rprockit").run()
