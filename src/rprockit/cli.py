"""The task layer: Invoke tasks over the library, and the ``rprockit`` console script.

Each task parses its options and calls one library function (the library
never imports invoke).  Only this layer turns exceptions into exit codes: a
:class:`~rprockit.errors.UserError` exits 2 with its message, and so does a
command line invoke cannot parse; anything else is a bug and exits 1 with the
traceback.  ``tasks.py`` at the project root re-exports :data:`ns`, so
``invoke <task>`` and ``rprockit <task>`` are the same.

Defaults shared by the tasks live in the ``rprockit`` configuration section
(``ns.configure`` below); a site overrides them in ``invoke.yaml``::

    rprockit:
      profile: imx8mm-mainline-6.1
      workspace: /srv/rprockit
      ccache:                             # the build's compiler cache (rprockit.ccache)
        remote_storage: redis://cache.lab.example:6379
"""

from __future__ import annotations

import errno
import functools
import json as _json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke import Collection, Context, Exit, ParseError, Program, task

from . import __version__
from .errors import InvalidValueError, UserError
from .profile import DEFAULT_PROFILE

PROJECT_ROOT = Path(__file__).resolve().parents[2]

F = TypeVar("F", bound=Callable[..., Any])


def _root() -> Path:
    """Directory holding kernel_configs/, patches/, ...: the project checkout."""
    env = os.environ.get("RPROCKIT_ROOT")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd()
    if (cwd / "kernel_configs" / "profiles").is_dir():
        return cwd
    return PROJECT_ROOT


#: OS errors that come from the machine, not from rprockit: errno -> what to do.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "the file system is full: free space (df -h) and run again",
    errno.EDQUOT: "the disk quota is exceeded: free space and run again",
    errno.EROFS: "the file system is read-only: use a writable directory",
    errno.EACCES: "permission denied: check the owner and mode of the path",
    errno.EPERM: "operation not permitted: check the owner and mode of the path",
    errno.EIO: "an I/O error: check the disk (dmesg)",
}


def cycles_value(value: Any) -> int | None:
    """``--cycles``: None (0, the default: the profile's) or an integer >= 1.

    A ``--cycles 0`` given on the command line is refused by
    :meth:`RprockitProgram.parse_tasks` before it gets here.

    Raises:
        InvalidValueError: not an integer, or < 0.
    """
    if value in (None, "", 0):
        return None
    try:
        n = int(str(value), 10)
    except ValueError:
        raise InvalidValueError("--cycles", value, "a positive integer, e.g. --cycles 3") \
            from None
    if n < 1:
        raise InvalidValueError("--cycles", value, "a positive integer, e.g. --cycles 3")
    return n


def _out_file(value: str, option: str) -> Path:
    """A file path to write: its directory must exist, and it must not be a directory.

    Raises:
        InvalidValueError: naming the option and the path.
    """
    p = Path(value).expanduser()
    if p.is_dir():
        raise InvalidValueError(option, value, "a file name, not a directory")
    if not p.resolve().parent.is_dir():
        raise InvalidValueError(option, value, f"a file in an existing directory "
                                f"({p.resolve().parent} does not exist)")
    return p


def user_errors(fn: F) -> F:
    """Turn UserError into ``Exit(code=2)`` with the message on stderr.

    Also shows the task's help when ``--help`` was swallowed as the value of a
    positional argument (invoke parses ``task --help`` that way).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if any(v in ("--help", "-h") for v in kwargs.values()):
            name = fn.__name__.rstrip("_").replace("_", "-")
            RprockitProgram(namespace=ns, name="rprockit", binary="rprockit").run(
                ["rprockit", "--help", name], exit=False)
            return None
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print(f"rprockit: error: {e}", file=sys.stderr)
            raise Exit(code=e.exit_code) from None
        except OSError as e:
            if e.errno not in _ENVIRONMENT_ERRNOS:
                raise
            where = f"{e.filename}: " if e.filename else ""
            print(f"rprockit: error: {where}{e.strerror}; {_ENVIRONMENT_ERRNOS[e.errno]}",
                  file=sys.stderr)
            raise Exit(code=2) from None
        except KeyboardInterrupt:
            print("rprockit: interrupted", file=sys.stderr)
            raise Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def _context(c: Context, profile: str | None, workspace: str | None,
             target: str | None = None, cycles: Any = None, force: bool = False,
             verbose: bool = False, accept_new_host_key: bool = False,
             mirror: str | None = None):
    """The stage context for the profile and workspace given (or configured)."""
    from .ccache import settings_from_config
    from .profile import find_profile, load_profile
    from .progress import Progress
    from .runner import Runner
    from .stage import StageContext
    from .workspace import Workspace, default_root

    cfg = c.config.get("rprockit", {}) if c is not None else {}
    n_cycles = cycles_value(cycles)
    prof = load_profile(find_profile(profile or cfg.get("profile") or DEFAULT_PROFILE, _root()))
    ws_dir = workspace or cfg.get("workspace")
    root = Path(ws_dir).expanduser().resolve() if ws_dir else default_root()
    if root.exists() and not root.is_dir():
        raise InvalidValueError("--workspace" if workspace else "rprockit.workspace",
                                str(ws_dir or root), "a directory (it is a file)")
    if target and not Path(target).is_file():
        raise InvalidValueError("--target", target, "a labgrid environment file ("
                                + ("it is not a regular file)" if Path(target).exists()
                                   else "no such file)"))
    runner = Runner(echo=(lambda line: print(f"  $ {line}", file=sys.stderr)) if verbose else None)
    return StageContext(prof, Workspace(root, prof.name), runner,
                        say=functools.partial(print, flush=True), progress=Progress("rprockit"),
                        target=Path(target).resolve() if target else None,
                        cycles=n_cycles, force=force,
                        accept_new_host_key=accept_new_host_key, mirror=mirror,
                        ccache=settings_from_config(cfg.get("ccache")))


def _for_running_kernel(ctx, base_config: str | None, match_target: bool,
                        accept_new_host_key: bool = False) -> None:
    """Set the context's base config (``--base-config FILE|target``) and the release to
    match (``--match-target``), reading the target over SSH when asked."""
    from .running import read_from_target

    if base_config and base_config != "target":
        p = Path(base_config).expanduser()
        if not p.is_file():
            raise InvalidValueError("--base-config", base_config,
                                    "a board's config file (.config, config.gz) or 'target'")
        ctx.base_config = p.resolve()
    if base_config != "target" and not match_target:
        return
    if ctx.target_env is None:
        raise UserError("--base-config target and --match-target read the running kernel "
                        "over SSH: give --target (a labgrid environment file or user@host)")
    release, cfg = read_from_target(ctx.target_env, ctx.ws.base / "base",
                                    base_config == "target", accept_new_host_key)
    if cfg is not None:
        print(f"[configure] base config from {cfg.where} on the target ({release})")
        ctx.base_config = cfg.path
    if match_target:
        ctx.match_release = release


def _run(ctx, last: str, skip: str = ""):
    """The pipeline up to stage ``last``, minus the comma-separated ``skip``."""
    from .pipeline import run, stages_until

    try:
        return run(ctx, stages_until(last), tuple(s for s in skip.split(",") if s))
    finally:
        ctx.progress.done()


HELP = {
    "profile": f"profile name (kernel_configs/profiles/NAME.yaml) or path; default "
               f"rprockit.profile of invoke.yaml, else {DEFAULT_PROFILE}",
    "workspace": "workspace directory (default rprockit.workspace of invoke.yaml, "
                 "$RPROCKIT_WORKSPACE or ./build)",
}
TARGET_HELP = "labgrid environment file (default: the profile's target)"
HOST_KEY_HELP = "trust an SSH host key not yet in known_hosts (recorded there)"
CYCLES_HELP = "remoteproc reload cycles, an integer (default: the profile's, 3)"
BASE_CONFIG_HELP = ("base config instead of the profile's: a board's .config, a copied "
                    "/proc/config.gz or /boot/config-*, or 'target' to read it from --target "
                    "over SSH (/proc/config.gz, else /boot/config-$(uname -r))")
MATCH_HELP = ("build for the kernel --target runs: set LOCALVERSION so the release equals its "
              "uname -r, or refuse with the reason")
MIRROR_HELP = ("local git mirror replacing the profile's source URL: PATH or URL=PATH[,...] "
               "(default $RPROCKIT_GIT_MIRROR)")


@task(help={**HELP, "mirror": MIRROR_HELP})
@user_errors
def fetch(c, profile=None, workspace=None, mirror=None):
    """Fetch the profile's kernel source into the workspace, pinned to a commit."""
    _run(_context(c, profile, workspace, mirror=mirror), "fetch")


@task(help={**HELP, "check": "classify only (dry run); the tree is not touched",
            "tree": "classify/apply on this git tree instead of the profile's"})
@user_errors
def patch(c, profile=None, workspace=None, check=False, tree=None):
    """Classify and apply the profile's patch series (atomic; JSON report + table)."""
    ctx = _context(c, profile, workspace)
    if not (check or tree):
        _run(ctx, "patch")
        return
    from .patch.stage import check_series

    reports = check_series(ctx.profile, ctx.ws, ctx.runner,
                           Path(tree).expanduser().resolve() if tree else None, check=check,
                           say=functools.partial(print, file=sys.stderr, flush=True))
    for rep in reports:
        print(rep.render())
    if any(rep.failed for rep in reports):
        raise Exit(code=2)


@task(name="patch-matrix", iterable=["tree"],
      help={"series": "series directory, relative to the current directory (default: the "
                      "project's patches/imx-rproc)",
            "tree": "LABEL=PATH of a kernel git tree; repeat for each tree",
            "json_out": "also write the matrix as JSON to this file"})
@user_errors
def patch_matrix(c, series=None, tree=None, json_out=None):
    """Print the patch x tree applicability matrix (dry run on every tree)."""
    from .files import write_text_atomic
    from .patch import load_series, matrix

    trees: dict[str, Path] = {}
    for spec in tree or []:
        label, _, path = spec.partition("=")
        if not path or not label:
            raise UserError(f"--tree '{spec}' must be LABEL=PATH, e.g. nxp-5.4=~/src/linux-imx")
        if label in trees:
            raise UserError(f"--tree label '{label}' is given twice ({trees[label]} and "
                            f"{path}); give each tree its own label")
        p = Path(path).expanduser().resolve()
        if not p.is_dir():
            raise UserError(f"--tree {spec}: {p} " + ("is not a directory" if p.exists() else
                            "does not exist") + "; give the top of a kernel git tree")
        trees[label] = p
    if not trees:
        raise UserError("give at least one --tree LABEL=PATH")
    out = _out_file(json_out, "--json-out") if json_out else None
    series_dir = Path(series).expanduser().resolve() if series else \
        _root() / "patches" / "imx-rproc"
    m = matrix(trees, load_series(series_dir))
    print(m.render())
    if out is not None:
        write_text_atomic(out, _json.dumps(m.to_dict(), indent=2) + "\n")


@task(help={**HELP, "base_config": BASE_CONFIG_HELP,
            "target": "the target to read the config from (--base-config target)",
            "accept_new_host_key": HOST_KEY_HELP})
@user_errors
def configure(c, profile=None, workspace=None, base_config=None, target=None,
              accept_new_host_key=False):
    """Merge base config and fragments (kconfiglib); fail if any symbol did not stick."""
    ctx = _context(c, profile, workspace, target=target)
    _for_running_kernel(ctx, base_config, False, accept_new_host_key)
    _run(ctx, "configure")


@task(help={**HELP, "force": "rebuild even when inputs are unchanged",
            "verbose": "print every command",
            "check_reproducible": "two clean builds without ccache in different directories; "
                                  "compare every image, DTB and .ko (exit 2 on any difference; "
                                  "the two builds stay in <workspace>/repro/ only then)",
            "base_config": BASE_CONFIG_HELP, "match_target": MATCH_HELP,
            "target": "the running target (--base-config target, --match-target)",
            "modules_only": "only the module set, against the image already built or "
                            "running (make modules_prepare once per tree and config); "
                            "refused, naming the symbols, when the image must be rebuilt; "
                            "outputs in <workspace>/<profile>/modules/",
            "accept_new_host_key": HOST_KEY_HELP})
@user_errors
def build(c, profile=None, workspace=None, force=False, verbose=False,
          check_reproducible=False, base_config=None, match_target=False, target=None,
          modules_only=False, accept_new_host_key=False):
    """Cross-build kernel image, DTBs, modules and firmware; write manifest.json."""
    if modules_only and check_reproducible:
        raise UserError("--check-reproducible builds the whole kernel twice; drop "
                        "--modules-only")
    ctx = _context(c, profile, workspace, force=force, verbose=verbose, target=target)
    _for_running_kernel(ctx, base_config, match_target, accept_new_host_key)
    if modules_only:
        from .pipeline import run_modules_only

        try:
            run_modules_only(ctx)
        finally:
            ctx.progress.done()
        return
    _run(ctx, "build")
    if check_reproducible:
        from .repro import check_reproducible as check

        print("[reproducible] two clean builds without ccache (this takes two full builds)")
        try:
            rep = check(ctx.profile, ctx.ws, ctx.runner, ctx.progress)
        finally:
            ctx.progress.done()
        print(rep.render())
        if not rep.identical:
            raise Exit(code=2)


@task(name="check-firmware", positional=["elf"],
      help={"elf": "M-core firmware ELF (positional)",
            "soc": "the SoC: imx7d, imx8mq, imx8mm, imx8mn or imx8mp",
            "dtb": "board DTB to check the cm node and reserved-memory against",
            "kernel_tree": "kernel tree: its version and family (mainline, NXP 5.4/5.15/6.1) "
                           "pick the imx_rproc rules checked (default: mainline 6.1)",
            "driver_dir": "an out-of-tree module source directory built against "
                          "--kernel-tree (laid out like the tree, e.g. a workspace's "
                          "oot/imx-rproc); its drivers/remoteproc/imx_rproc.c is read when "
                          "the tree has none (NXP 4.9)",
            "emulated": "the target is the emulated board (a missing boot vector is a "
                        "warning)",
            "json": "print JSON instead of the table (errors too)"})
@user_errors
def check_firmware(c, elf=None, soc=None, dtb=None, kernel_tree=None, driver_dir=None,
                   emulated=False, json=False):
    """Pre-flight checks of an M-core firmware ELF (and DTB) before touching a board."""
    from .preflight import check_firmware as check
    from .preflight import error_document

    try:
        if not elf or not soc:
            raise UserError("usage: check-firmware FW.elf --soc "
                            "{imx7d,imx8mq,imx8mm,imx8mn,imx8mp}")
        if driver_dir and not kernel_tree:
            raise UserError("--driver-dir needs --kernel-tree: give the kernel tree the "
                            "out-of-tree driver was built against")
        if driver_dir and not Path(driver_dir).is_dir():
            raise UserError(f"--driver-dir {driver_dir}: not a directory; give the module "
                            "source directory (e.g. <workspace>/<profile>/oot/imx-rproc)")
        report = check(Path(elf), soc, dtb=Path(dtb) if dtb else None,
                       kernel_tree=Path(kernel_tree) if kernel_tree else None, emulated=emulated,
                       oot_dirs=[Path(driver_dir)] if driver_dir else ())
    except UserError as e:
        if not json:
            raise
        print(_json.dumps(error_document(e, elf, soc), indent=2))
        raise Exit(code=e.exit_code) from None
    print(_json.dumps(report.to_dict(), indent=2) if json else report.render())
    if report.failed:
        raise Exit(code=2)


QUICK_HELP = ("the inner-loop subset: kernel release, vermagic, module load, the reload "
              "cycles, dmesg (default: the full suite)")
MODULES_ONLY_HELP = "the modules-only build's outputs (build --modules-only)"


@task(help={**HELP, "target": TARGET_HELP, "cycles": CYCLES_HELP,
            "facts": "only collect the target facts report; change nothing on the target",
            "quick": QUICK_HELP, "modules_only": MODULES_ONLY_HELP,
            "accept_new_host_key": HOST_KEY_HELP})
@user_errors
def verify(c, profile=None, workspace=None, target=None, cycles=0, facts=False, quick=False,
           modules_only=False, accept_new_host_key=False):
    """Run the on-target suite (boots the emulated board when the target is QEMU)."""
    ctx = _context(c, profile, workspace, target=target, cycles=cycles,
                   accept_new_host_key=accept_new_host_key)
    ctx.quick, ctx.modules_only = quick, modules_only
    if (modules_only or quick) and not facts:
        from .pipeline import run_stage
        from .verify.stage import QUICK_STAGE, STAGE

        res = run_stage(QUICK_STAGE if quick else STAGE, ctx)
        print(f"[verify] {'up to date, skipped' if res.skipped else 'done'} in "
              f"{res.seconds:.1f} s: {res.summary}")
        return
    if not facts:
        _run(ctx, "verify")
        return
    from .verify.stage import collect_facts

    rep = collect_facts(ctx)
    print(rep.render())
    if getattr(rep, "failed", False):
        raise Exit(code=2)


@task(help={**HELP, "target": "labgrid environment file (a RemotePlace is acquired and "
                              "released) or [user@]host[:port]",
            "reload": "after installing: stop the M core, reload the modules, start it again",
            "rollback": "restore the set installed before the last deploy",
            "force": "deploy despite a kernel release/vermagic mismatch (loud; recorded)",
            "symvers": "the running kernel's Module.symvers: refuse modules whose symbol "
                       "CRCs differ from it (CONFIG_MODVERSIONS)",
            "modules_only": MODULES_ONLY_HELP,
            "accept_new_host_key": HOST_KEY_HELP})
@user_errors
def deploy(c, target=None, profile=None, workspace=None, reload=False, rollback=False,
           force=False, symvers=None, modules_only=False, accept_new_host_key=False):
    """Install the built modules and firmware on a running target over SSH, atomically."""
    from . import deploy as deploy_mod
    from .place import acquired, resolve
    from .target import load_target

    if not target:
        raise UserError("deploy needs --target: a labgrid environment file or [user@]host[:port]")
    if rollback and force:
        raise UserError("--force overrides the kernel release check of a deploy; a --rollback "
                        "restores the previous set as it was, so drop --force")
    desc = load_target(target)
    ctx = _context(c, profile, workspace)
    ctx.modules_only = modules_only
    arts = None if rollback else deploy_artifacts(ctx.manifest_dir)
    if symvers and arts is not None:
        if not Path(symvers).is_file():
            raise InvalidValueError("--symvers", symvers, "a Module.symvers file")
        import dataclasses

        arts = dataclasses.replace(arts, symvers=Path(symvers).resolve())
    with acquired(desc) as held:  # a RemotePlace: taken and given back
        tgt = resolve(held)
        if arts is None:
            res = deploy_mod.rollback(tgt, reload=reload, accept_new_host_key=accept_new_host_key)
        else:
            res = deploy_mod.deploy(tgt, arts, force=force, reload=reload,
                                    accept_new_host_key=accept_new_host_key)
    for w in res.warnings:
        print(f"rprockit: WARNING: {w}", file=sys.stderr)
    for n in res.notes:
        print(n)
    print(f"deploy: {len(res.installed)} files on {res.where} ({res.release}) in "
          f"{res.seconds:.1f} s" + (", reloaded" if res.reload_steps else ""))


@task(name="diagnose", positional=["log"],
      help={"log": "saved kernel log, serial console log or facts.json; '-' reads stdin; "
                   "with --target: the file the collected bundle (facts + kernel log) is "
                   "saved to, '-' for none",
            "target": "labgrid environment file: read dmesg and the facts from the running "
                      "target (boots the emulated board), changing nothing",
            "soc": "SoC when the log does not name it: imx7d, imx8mq, imx8mm, imx8mn, imx8mp, "
                   "imx8qm, imx8qxp, imx8ulp, imx93",
            "firmware": "the M-core firmware ELF: run the pre-flight checks on it too",
            "dtb": "board DTB for the pre-flight device-tree checks",
            "json": "print JSON (schemas/diagnose.json) instead of the report",
            **HELP, "accept_new_host_key": HOST_KEY_HELP})
@user_errors
def diagnose_(c, log=None, target=None, soc=None, firmware=None, dtb=None, json=False,
              profile=None, workspace=None, accept_new_host_key=False):
    """Name the known failure in a kernel log (exit 0 none, 3 found, 2 bad input)."""
    from . import diagnose as diag_mod

    if not log:
        raise UserError("usage: diagnose LOG|- [--soc S] [--firmware FW.elf] [--json], "
                        "or diagnose SAVE.json|- --target env.yaml")
    fw, board = (Path(firmware) if firmware else None), (Path(dtb) if dtb else None)
    if target:
        # the profile's artifacts boot the emulated board (the environment's templates)
        art = _context(c, profile, workspace).ws.artifacts
        log_in, facts = diag_mod.collect_from_target(
            Path(target).resolve(), images=art if art.is_dir() else None,
            accept_new_host_key=accept_new_host_key)
        if log != "-":
            Path(log).write_text(_json.dumps(facts, indent=2) + "\n")
        result = diag_mod.diagnose(log_in, soc=soc, firmware=fw, dtb=board, facts=facts)
    else:
        stdin = sys.stdin.read() if log == "-" else None
        result = diag_mod.diagnose_log(log, soc=soc, firmware=fw, dtb=board, stdin_text=stdin)
    if json:
        from .yamlfile import validate

        data = result.to_dict()
        validate(data, "diagnose", source="diagnose --json output")
        print(_json.dumps(data, indent=2))
    else:
        print(result.render(), end="")
    if result.exit_code:
        raise Exit(code=result.exit_code)


def deploy_artifacts(artifacts: Path):
    """DeployArtifacts from a build's ``artifacts/`` directory and its manifest.json."""
    from .deploy import DeployArtifacts

    return DeployArtifacts.from_build(artifacts)


SSH_TARGET = "targets/qemu-imx7d-ssh.yaml"


def _board_target(target: str | None) -> Path:
    p = Path(target or _root() / SSH_TARGET)
    if not p.is_file():
        raise InvalidValueError("--target", str(p), "a labgrid environment file")
    return p.resolve()


@task(name="board-up", help={**HELP, "target": f"the emulated board's SSH target (default "
                                               f"{SSH_TARGET})"})
@user_errors
def board_up(c, profile=None, workspace=None, target=None):
    """Boot the emulated board with SSH access from the last full build; it stays up."""
    from . import board

    env = _board_target(target)
    ctx = _context(c, profile, workspace, target=str(env))
    b = board.up(env, ctx.ws, ctx.profile.arch, ctx.runner, say=print)
    print(f"board up (pid {b.pid}, boot id {b.boot_id[:8]}) "
          + (f"in {b.seconds:.1f} s" if b.seconds else "already") + f"; target {env}")


@task(name="board-down", help=HELP)
@user_errors
def board_down(c, profile=None, workspace=None):
    """Stop the emulated board that board-up started."""
    from . import board

    ws = _context(c, profile, workspace).ws
    print("board stopped" if board.down(ws) else "no board was up")


@task(help={**HELP, "target": f"the running board (default: the emulated one, {SSH_TARGET}, "
                              "started by board-up)",
            "cycles": "remoteproc reload cycles of the quick checks, an integer (default 1)",
            "base_config": BASE_CONFIG_HELP,
            "match_target": MATCH_HELP, "accept_new_host_key": HOST_KEY_HELP})
@user_errors
def loop(c, profile=None, workspace=None, target=None, cycles=0, base_config=None,
         match_target=False, accept_new_host_key=False):
    """One edit to verified on a running board: modules-only build, deploy with reload,
    quick checks; nothing is done again for what did not change."""
    from . import board

    env = _board_target(target)
    ctx = _context(c, profile, workspace, target=str(env), cycles=cycles,
                   accept_new_host_key=accept_new_host_key)
    _for_running_kernel(ctx, base_config, match_target, accept_new_host_key)
    try:
        res = board.iterate(ctx, env)
    finally:
        ctx.progress.done()
    s = res.seconds
    print(f"loop: verified in {s['total']:.1f} s (build {s['build']:.1f} s, deploy "
          f"{s['deploy']:.1f} s, checks {s['verify']:.1f} s); manifest {res.manifest_id}")


@task(name="all", help={**HELP, "skip": "comma-separated stages to skip, e.g. verify",
                        "target": TARGET_HELP, "cycles": CYCLES_HELP, "mirror": MIRROR_HELP})
@user_errors
def all_(c, profile=None, workspace=None, skip="", target=None, cycles=0, mirror=None):
    """Run every stage in order: fetch, patch, configure, build, preflight, verify."""
    results = _run(_context(c, profile, workspace, target=target, cycles=cycles,
                            mirror=mirror), "verify", skip=skip)
    total = sum(r.seconds for r in results)
    print(f"pipeline finished in {total:.1f} s: "
          + ", ".join(f"{r.stage} {r.seconds:.1f}s{' (skipped)' if r.skipped else ''}"
                      for r in results))


ns = Collection(fetch, patch, patch_matrix, configure, build, check_firmware, verify, deploy,
                diagnose_, board_up, board_down, loop, all_)
ns.configure({"rprockit": {"profile": DEFAULT_PROFILE, "workspace": None, "ccache": {}}})


class RprockitProgram(Program):
    """invoke's Program with rprockit's exit codes: a command line it cannot parse exits 2
    (bad input), and no task at all lists the tasks."""

    def parse_core(self, argv: list[str] | None) -> None:
        try:
            super().parse_core(argv)
        except ParseError as e:
            raise Exit(f"rprockit: error: {e}", code=2) from None

    def parse_tasks(self) -> None:
        _checked_parse_tasks(self, super().parse_tasks)

    def parse_cleanup(self) -> None:
        _checked_parse_cleanup(super().parse_cleanup)

    def no_tasks_given(self) -> None:
        print(f"Usage: {self.binary} [--core-opts] <task> [--task-opts] ...   "
              f"({self.binary} <task> --help for a task's options)\n")
        self.list_tasks()
        raise Exit


def _checked_parse_tasks(program: Program, parse: Callable[[], None]) -> None:
    """Run invoke's task parsing; a command line it cannot parse exits 2, naming the culprit."""
    try:
        parse()
    except ParseError as e:
        binary = (getattr(program, "binary_names", None) or [program.binary])[0]
        raise Exit(f"rprockit: error: {e}; see {binary} --list", code=2) from None
    except ValueError as e:  # an option value of the wrong type (--cycles x)
        raise Exit(f"rprockit: error: {_culprit(program.argv, str(e))}bad option value: {e}; "
                   "give an integer", code=2) from None
    for parsed in program.tasks:
        arg = parsed.args.get("cycles") if "cycles" in parsed.args else None
        if arg is not None and arg.got_value and not arg.value >= 1:
            raise Exit(f"rprockit: error: {parsed.name} --cycles {arg.value}: give a "
                       "positive number of reload cycles, e.g. --cycles 3", code=2)


def _checked_parse_cleanup(parse: Callable[[], None]) -> None:
    """Run invoke's end-of-parse step (``--help TASK`` and the like); errors exit 2."""
    try:
        parse()
    except ParseError as e:
        raise Exit(f"rprockit: error: {e}", code=2) from None


def _reader_gone() -> None:
    """End quietly when the reader of stdout went away (``rprockit diagnose --json | head``).

    As the Python documentation's note on SIGPIPE (``signal`` module) advises: point stdout
    at /dev/null, so that the interpreter's final flush raises nothing, and exit 1. The
    output already written was read; nothing else is lost.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)


def adopt_invoke_binary() -> None:
    """Give the ``invoke`` binary the command-line errors of ``rprockit``: exit 2, no traceback.

    ``invoke`` loads ``tasks.py`` in ``Program.parse_collection()``, before it parses the
    tasks and their options in ``Program.parse_tasks()`` (invoke 2.x ``Program.run``); on
    its own it ends a ``ParseError`` with exit 1 and a bad option value (``--cycles x``)
    with a traceback. ``tasks.py`` calls this so that the rest of the command line is
    checked as :class:`RprockitProgram` checks it, and a reader that goes away (``| head``)
    ends it quietly, as it ends ``rprockit``. Idempotent.
    """
    if getattr(Program, "_rprockit_errors", False):
        return
    own_tasks, own_cleanup = Program.parse_tasks, Program.parse_cleanup
    own_hook = sys.excepthook

    def excepthook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        # the binary's entry point bound Program.run before tasks.py was loaded: a reader
        # that went away reaches the top level, where the interpreter exits 1 after this
        if issubclass(kind, BrokenPipeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        else:
            own_hook(kind, value, tb)

    def parse_tasks(self: Program) -> None:
        _checked_parse_tasks(self, lambda: own_tasks(self))

    def parse_cleanup(self: Program) -> None:
        _checked_parse_cleanup(lambda: own_cleanup(self))

    Program.parse_tasks = parse_tasks  # type: ignore[method-assign]
    Program.parse_cleanup = parse_cleanup  # type: ignore[method-assign]
    sys.excepthook = excepthook
    Program._rprockit_errors = True  # type: ignore[attr-defined]


def _culprit(argv: list[str], message: str) -> str:
    """``--cycles abc: `` for the option whose value ``message`` quotes, else ''."""
    m = re.search(r"'(.*)'", message)
    if not m:
        return ""
    for i, arg in enumerate(argv):
        if arg.startswith("--") and "=" in arg and arg.split("=", 1)[1] == m.group(1):
            return f"{arg.split('=', 1)[0]} {m.group(1)}: "
        if arg == m.group(1) and i and argv[i - 1].startswith("-"):
            return f"{argv[i - 1]} {arg}: "
    return ""


def _help_first(argv: list[str]) -> list[str]:
    """``TASK ... --help`` -> ``--help TASK`` (a positional would swallow ``--help``)."""
    if argv and argv[0] in ns.task_names and any(a in ("--help", "-h") for a in argv[1:]):
        return ["--help", argv[0]]
    return argv


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``rprockit`` console script.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).
    """
    args = _help_first(list(sys.argv[1:] if argv is None else argv))
    try:
        RprockitProgram(namespace=ns, version=__version__, name="rprockit",
                        binary="rprockit").run(["rprockit", *args])
    except BrokenPipeError:
        _reader_gone()
