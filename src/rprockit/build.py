"""build stage: cross-build the kernel image, DTBs and modules with ``make O=``.

The environment is fixed for reproducibility (tuxmake ``build.py``
``environment``): ``KBUILD_BUILD_TIMESTAMP``/``SOURCE_DATE_EPOCH`` come from
the tree's HEAD commit, ``KBUILD_BUILD_USER``/``HOST``/``VERSION`` are
constants.  ccache is used when installed, with path-independent hashing and the
site's shared remote storage (:mod:`rprockit.ccache`); the build's hit statistics
go into the stage summary and the manifest.  Outputs are collected into
``<workspace>/artifacts`` with ``manifest.json`` (inputs and sha256 of each
output), written atomically.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import ccache as ccache_mod
from . import firmware, oot, running
from .errors import BuildError, CommandError, KconfigError, ToolMissingError
from .files import sha256_file, write_json_atomic
from .git import Git
from .manifest import Manifest, board_dtb_name
from .patch.stage import baseline as patch_baseline
from .arch import arch_info, compiler_package
from .arch import known as known_arches
from .profile import Profile
from .runner import Runner, require_tool
from .stage import Outcome, Stage, StageContext
from .workspace import Workspace, fingerprint

BUILD_USER = "rprockit"
BUILD_HOST = "rprockit"
BUILD_VERSION = "1"


@dataclass
class BuildResult:
    """Outcome of the build stage.

    Attributes:
        manifest: path of ``artifacts/manifest.json``.
        data: its content.
        seconds: wall time of make and the board DTBs.
        ccache: the build's compiler cache statistics (None without ccache).
    """

    manifest: Path
    data: dict = field(default_factory=dict)
    seconds: float = 0.0
    ccache: ccache_mod.CcacheStats | None = None


def commit_epoch(tree: Path, runner: Runner | None = None) -> int:
    """Committer time (Unix seconds) of the tree's HEAD commit."""
    return Git(tree, runner).commit_time()


def make_env(tree: Path, runner: Runner | None = None) -> dict[str, str]:
    """Reproducibility environment for kbuild (Documentation/kbuild/reproducible-builds.rst)."""
    epoch = commit_epoch(tree, runner)
    stamp = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(epoch))
    return {
        "KBUILD_BUILD_TIMESTAMP": stamp,
        "SOURCE_DATE_EPOCH": str(epoch),
        "KBUILD_BUILD_USER": BUILD_USER,
        "KBUILD_BUILD_HOST": BUILD_HOST,
        "KBUILD_BUILD_VERSION": BUILD_VERSION,
        "LC_ALL": "C",
        "TZ": "UTC",
    }


def check_cross_compiler(profile: Profile) -> str:
    """Absolute path of ``<CROSS_COMPILE>gcc``.

    Raises:
        ToolMissingError: naming the Debian package that provides it.
    """
    cc = f"{profile.cross_compile}gcc"
    try:
        return require_tool(cc)
    except ToolMissingError as e:
        raise ToolMissingError(cc, compiler_package(profile.cross_compile),
                               f" (CROSS_COMPILE in {profile.file}, line "
                               f"{profile.line_of('cross_compile')})") from e


#: :func:`toolchain_versions` by CROSS_COMPILE and ARCH, for this process: the build
#: stage's inputs and its manifest ask for the same twelve tool runs.
_TOOLCHAIN_SEEN: dict[tuple[str, str], dict[str, str]] = {}


def toolchain_versions(profile: Profile, runner: Runner | None = None) -> dict[str, str]:
    """First ``--version`` line of the compiler, binutils, make and dtc, plus package versions
    (asked once per process)."""
    key = (profile.cross_compile, profile.arch)
    if key not in _TOOLCHAIN_SEEN:
        _TOOLCHAIN_SEEN[key] = _toolchain_versions(profile, runner or Runner())
    return dict(_TOOLCHAIN_SEEN[key])


def _toolchain_versions(profile: Profile, runner: Runner) -> dict[str, str]:
    out = {name: runner.first_line([tool, "--version"]) for name, tool in {
        "gcc": f"{profile.cross_compile}gcc",
        "binutils": f"{profile.cross_compile}ld",
        "make": "make",
        "dtc": "dtc",
    }.items()}
    pkg = compiler_package(profile.cross_compile)
    if pkg:
        info = arch_info(profile.arch) if profile.arch in known_arches() else None
        bpkg = info.binutils_package if info and info.cross_compile == profile.cross_compile \
            else "binutils-" + profile.cross_compile.rstrip("-")
        for key, name in (("package", pkg), ("binutils_package", bpkg)):
            version = runner.probe(["dpkg-query", "-W", "-f", "${Version}", name])
            out[key] = f"{name} {version or 'not installed'}"
    return out


def make_args(profile: Profile, ws: Workspace, jobs: int, wrapper: str | None = None
              ) -> list[str]:
    """The ``make`` argument list shared by the build and its reproduction recipe.

    Args:
        profile: the profile (ARCH, CROSS_COMPILE).
        ws: its workspace (``-C src``, ``O=out``).
        jobs: make -j.
        wrapper: a compiler wrapper (``ccache``, see :func:`rprockit.ccache.wrapper`),
            or None for the plain cross compiler.
    """
    args = ["make", "-C", str(ws.src), f"O={ws.out}", f"ARCH={profile.arch}",
            f"CROSS_COMPILE={profile.cross_compile}", f"-j{jobs}"]
    if wrapper:
        args.append(f"CC={wrapper} {profile.cross_compile}gcc")
    return args


def _dtb_out(profile: Profile, ws: Workspace, dtb: str) -> Path:
    return ws.out / "arch" / profile.arch / "boot" / "dts" / dtb


def dt_includes(profile: Profile, ws: Workspace, dts: Path) -> list[str]:
    """The ``-I`` options of the C preprocessor step for a board ``.dts``.

    The tree's DT directory, its DT include directory and the board file's own
    directory: ``scripts/dtc/include-prefixes`` since Linux 4.12, before that
    ``arch/<arch>/boot/dts/include`` (the ``dt-bindings`` symlink; 4.9
    scripts/Makefile.lib ``dtc_cpp_flags``, lines 176-180).
    """
    dts_dir = ws.src / "arch" / profile.arch / "boot" / "dts"
    prefixes = ws.src / "scripts/dtc/include-prefixes"
    include = prefixes if prefixes.is_dir() or not (dts_dir / "include").is_dir() \
        else dts_dir / "include"
    return ["-I", str(dts_dir), "-I", str(include), "-I", str(dts.parent)]


def build_board_dtb(profile: Profile, ws: Workspace, dts: Path, runner: Runner,
                    out_dir: Path | None = None) -> Path:
    """Compile a board ``.dts`` from the repo against the tree's DT includes.

    The same two steps as the kernel's ``cmd_dtc`` (scripts/Makefile.lib):
    the C preprocessor with ``-nostdinc -undef -D__DTS__``, then the dtc that
    the kernel build produced (``O=/scripts/dtc/dtc``).

    Args:
        out_dir: where the DTB goes; None: ``<out>/rprockit-dtbs`` of the workspace
            (a board DTS outside the profile's ``build.board_dts`` can go elsewhere,
            leaving the build's outputs alone).

    Returns:
        ``<out_dir>/<name>.dtb``.

    Raises:
        CommandError: the preprocessor or dtc fails (the hint names ``dts``).
    """
    dts_dir = ws.src / "arch" / profile.arch / "boot" / "dts"
    out_dir = out_dir or ws.out / "rprockit-dtbs"
    out_dir.mkdir(parents=True, exist_ok=True)
    pre = out_dir / f"{dts.stem}.dts.tmp"
    dtb = out_dir / f"{dts.stem}.dtb"
    runner.run(["gcc", "-E", "-nostdinc", *dt_includes(profile, ws, dts), "-undef",
                "-D__DTS__", "-x", "assembler-with-cpp", "-P", "-o", pre, dts])
    dtc = ws.out / "scripts/dtc/dtc"
    runner.run([str(dtc) if dtc.exists() else "dtc", "-q", "-O", "dtb", "-b", "0", "-i",
                str(dts.parent), "-i", str(dts_dir), "-o", dtb, pre],
               hint=f"in board DT source {dts}")
    return dtb


def reproduce_recipe(profile: Profile, ws: Workspace, env: dict, jobs: int,
                     targets: list[str]) -> list[str]:
    """The command sequence that rebuilds these artifacts (recorded in the manifest)."""
    import shlex

    from . import __version__

    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    steps = [
        f"# rprockit {__version__}; profile {profile.file}",
        (f"rprockit configure --profile {shlex.quote(str(profile.file))} "
         f"--workspace {shlex.quote(str(ws.root))}   # fetch, patch, configure"),
        f"git -C {ws.src} rev-parse HEAD   # must print the manifest's inputs.source.commit",
        f"sha256sum {ws.out}/.config   # must print inputs.config_sha256",
        f"{envs} {shlex.join(make_args(profile, ws, jobs) + targets)}",
    ]
    dts_dir = ws.src / "arch" / profile.arch / "boot" / "dts"
    for dts in profile.board_dts:
        pre = ws.out / "rprockit-dtbs" / f"{dts.stem}.dts.tmp"
        steps.append(shlex.join(["gcc", "-E", "-nostdinc", *dt_includes(profile, ws, dts),
                                 "-undef", "-D__DTS__", "-x",
                                 "assembler-with-cpp", "-P", "-o", str(pre), str(dts)]))
        steps.append(shlex.join([str(ws.out / "scripts/dtc/dtc"), "-q", "-O", "dtb", "-b", "0",
                                 "-i", str(dts.parent), "-i", str(dts_dir), "-o",
                                 str(ws.out / "rprockit-dtbs" / f"{dts.stem}.dtb"), str(pre)]))
    return steps


def check_module_signing(config: Path) -> None:
    """Refuse a build that would sign modules with a fresh random key.

    With ``CONFIG_MODULE_SIG=y`` and the default ``CONFIG_MODULE_SIG_KEY``
    (``certs/signing_key.pem``), kbuild generates a new key per build
    (certs/Makefile), so no two builds are identical.

    Raises:
        BuildError: naming the two ways out.
    """
    text = config.read_text() if config.is_file() else ""
    if "CONFIG_MODULE_SIG=y" in text and \
            'CONFIG_MODULE_SIG_KEY="certs/signing_key.pem"' in text:
        raise BuildError(
            f"{config}: CONFIG_MODULE_SIG=y with the default CONFIG_MODULE_SIG_KEY makes kbuild "
            "generate a random signing key per build, so builds cannot be reproduced. Either add "
            "'# CONFIG_MODULE_SIG is not set' to a fragment, or set "
            "CONFIG_MODULE_SIG_KEY=\"/path/to/your/key.pem\" to a key you keep.")


def kernel_release(ws: Workspace) -> str:
    return (ws.out / "include/config/kernel.release").read_text().strip()


#: Where the ``O=`` directory remembers the compiler command its objects were built with.
COMPILER_RECORD = ".rprockit-compiler"


def compiler_change(out: Path, command: str) -> str | None:
    """The message for a compiler command that differs from the one ``out`` was built
    with (ccache added or removed), or None.

    Kbuild keeps each object's full command in its ``.cmd`` file and rebuilds an
    object whose command changed (scripts/Kbuild.include ``if_changed``), so such a
    change rebuilds every object; the build stage says so before make starts.
    """
    rec = out / COMPILER_RECORD
    old = rec.read_text().strip() if rec.is_file() else None
    if old is None or old == command:
        return None
    return (f"the compiler command changed from '{old}' to '{command}' since the last build "
            f"in {out}: make rebuilds every object (kbuild compares each object's recorded "
            "command, scripts/Kbuild.include if_changed). ccache on or off is "
            "rprockit.ccache.enabled in invoke.yaml; CCACHE_DISABLE=1 keeps the command and "
            "only bypasses the cache")


def predicted_release(profile: Profile, ws: Workspace, localversion: str | None,
                      runner: Runner | None = None) -> running.ReleaseParts:
    """The release ``make`` will give for the tree, ``O=/.config`` and ``LOCALVERSION``
    (None: make sees the environment's, usually unset)."""
    from .kconfig import kernel_version

    env_lv = localversion if localversion is not None else os.environ.get("LOCALVERSION")
    text = (ws.out / ".config").read_text(errors="replace")
    return running.release_parts(ws.src, ws.out, text, kernel_version(ws.src), env_lv, runner)


def _collect(profile: Profile, ws: Workspace, board_dtbs: list[Path],
             extra: dict[str, Path], oot_modules: list[Path] | None = None) -> dict:
    art = ws.artifacts
    staging = art.with_name("artifacts.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "dtbs").mkdir(parents=True)
    (staging / "modules").mkdir()
    outputs = {}

    def put(src: Path, rel: str):
        dst = staging / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        outputs[rel] = {"sha256": sha256_file(dst), "size": dst.stat().st_size}

    put(ws.out / "arch" / profile.arch / "boot" / profile.image, profile.image)
    for name in profile.dtbs:
        put(_dtb_out(profile, ws, name), f"dtbs/{Path(name).name}")
    for dtb in board_dtbs:
        put(dtb, f"dtbs/{dtb.name}")
    put(ws.out / ".config", "config")
    put(ws.out / "Module.symvers", "Module.symvers")
    if profile.modules:
        for d in profile.modules.build_dirs:
            for ko in sorted((ws.out / d).rglob("*.ko")):
                put(ko, f"modules/{ko.name}")
    for ko in oot_modules or []:
        if f"modules/{ko.name}" in outputs:
            raise BuildError(f"{ko.name} is built both in the kernel tree and out of tree "
                             f"({ko}); drop it from one of them (the module set's build_dirs "
                             "or the kernel config)")
        put(ko, f"modules/{ko.name}")
    for rel, src in extra.items():
        put(src, rel)
    shutil.rmtree(art, ignore_errors=True)
    staging.rename(art)
    return outputs


@dataclass(frozen=True)
class MakeSetup:
    """How make runs for a profile's ``O=`` directory (the full and the modules-only build).

    Attributes:
        env: the recorded environment (reproducibility variables, ``KCFLAGS``,
            ``LOCALVERSION``).
        cc_env: ccache's variables (not recorded: the cache changes no output).
        wrapper: ``ccache`` or None.
        compiler: the compiler command (:func:`rprockit.ccache.compiler_command`).
        settings: the ccache settings.
        stats_log: ccache's per-build stats log (truncated here).
    """

    env: dict[str, str]
    cc_env: dict[str, str]
    wrapper: str | None
    compiler: str
    settings: ccache_mod.CcacheSettings
    stats_log: Path


def make_setup(profile: Profile, ws: Workspace, ccache: ccache_mod.CcacheSettings | None,
               localversion: str | None, runner: Runner) -> MakeSetup:
    """The environment and compiler of a make in ``ws.out``; the same for every build
    there, so kbuild's recorded commands stay the same (no needless rebuild)."""
    env = make_env(ws.src, runner)
    if "macro-prefix-map" not in (ws.src / "Makefile").read_text(errors="replace"):
        # kernels before 5.x lack it: keep the source path out of __FILE__
        env["KCFLAGS"] = f"-fmacro-prefix-map={ws.src}/="
    if localversion is not None:
        env["LOCALVERSION"] = localversion
    settings = ccache or ccache_mod.CcacheSettings()
    wrapper = ccache_mod.wrapper(settings)
    stats_log = ws.logs / "ccache-stats.log"
    stats_log.parent.mkdir(parents=True, exist_ok=True)
    stats_log.unlink(missing_ok=True)
    # not part of the recorded environment: where the cache is does not change an output
    cc_env = ccache_mod.environment(settings, ws.src, ws.out, stats_log,
                                    debug_info=_debug_info(ws.out / ".config")) \
        if wrapper else {}
    return MakeSetup(env, cc_env, wrapper,
                     ccache_mod.compiler_command(profile.cross_compile, wrapper), settings,
                     stats_log)


def build(profile: Profile, ws: Workspace, inputs: dict, runner: Runner | None = None,
          progress: Callable[[str], None] = lambda line: None, jobs: int | None = None,
          extra: dict[str, Path] | None = None, meta: dict | None = None,
          ccache: ccache_mod.CcacheSettings | None = None, localversion: str | None = None,
          say: Callable[[str], None] = lambda line: None) -> BuildResult:
    """Build the kernel image, DTBs and modules and collect them with a manifest.

    Args:
        profile: the profile.
        ws: its workspace; ``ws.out/.config`` must exist (configure stage).
        inputs: upstream facts for the manifest (source commit, patch results,
            config sha256, firmware sha256).
        runner: runs make, gcc and dtc.
        progress: called with each line make prints.
        jobs: parallel make jobs (default: the profile's, else CPU count).
        extra: more files to collect, ``{artifact name: path}`` (the M-core firmware).
        meta: facts copied into the manifest (module load order, firmware name).
        ccache: the compiler cache settings (default: ccache's own configuration,
            made path-independent); the statistics go to the manifest's ``ccache``.
        localversion: ``LOCALVERSION`` for make (a build for a running kernel,
            :func:`rprockit.running.localversion_for`), or None to leave it unset.
        say: one-line messages before make starts (a changed compiler command).

    Returns:
        The manifest path and content; ``seconds`` is the wall time of make,
        ``ccache`` the compiler cache statistics.

    Raises:
        ToolMissingError: cross compiler, make, bc, bison or flex missing.
        BuildError: make failed (the message names the full log), or module signing
            would make the build irreproducible.
    """
    runner = runner or Runner()
    check_tools(profile)
    jobs = jobs or profile.jobs or os.cpu_count() or 1
    tools = toolchain_versions(profile, runner)
    extra = extra or {}
    manifest = ws.artifacts / "manifest.json"
    check_module_signing(ws.out / ".config")
    targets = [profile.image, "modules", *profile.dtbs]
    setup = make_setup(profile, ws, ccache, localversion, runner)
    env, cc_env, wrapper, compiler = setup.env, setup.cc_env, setup.wrapper, setup.compiler
    settings, stats_log = setup.settings, setup.stats_log
    change = compiler_change(ws.out, compiler)
    if change:
        say(f"[build] {change}")
    cmd = make_args(profile, ws, jobs, wrapper) + targets
    log = ws.logs / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    t0 = time.monotonic()
    try:
        runner.stream(cmd, log, env={**env, **cc_env}, progress=progress)
        board = [build_board_dtb(profile, ws, d, runner) for d in profile.board_dts]
    except CommandError as e:
        raise BuildError(f"kernel build failed for profile {profile.name}; full log: {log}\n"
                         f"{e}") from e
    release = kernel_release(ws)
    sets = build_out_of_tree(profile, ws, env, jobs, release, runner, progress)
    seconds = time.monotonic() - t0
    (ws.out / COMPILER_RECORD).write_text(compiler + "\n")
    stats = ccache_mod.read_stats(stats_log) if wrapper else None
    outputs = _collect(profile, ws, board, extra, [ko for s in sets for ko in s.modules])
    try:
        parts: running.ReleaseParts | None = predicted_release(profile, ws, localversion,
                                                               runner)
    except KconfigError:  # a Makefile without version lines: no prediction to record
        parts = None
    data = {
        "format": 1,
        "profile": profile.name,
        "kernel_release": release,
        "release_parts": parts.to_dict() if parts and parts.release == release else None,
        "arch": profile.arch,
        "cross_compile": profile.cross_compile,
        **(meta or {}),
        **({"out_of_tree": [s.record for s in sets]} if sets else {}),
        "inputs": {**inputs, "toolchain": tools, "environment": env, "compiler": compiler},
        "outputs": outputs,
        "reproduce": reproduce_recipe(profile, ws, env, jobs, targets),
    }
    data["id"] = fingerprint(data["inputs"], outputs)[:16]
    data["board_dtb"] = board_dtb_name(profile.board_dts)
    data["build_seconds"] = round(seconds, 1)
    data["ccache"] = _ccache_record(settings, cc_env, stats)
    write_json_atomic(manifest, data)
    return BuildResult(manifest, data, seconds=seconds, ccache=stats)


def build_out_of_tree(profile: Profile, ws: Workspace, env: dict[str, str], jobs: int,
                      release: str, runner: Runner,
                      progress: Callable[[str], None] = lambda line: None) -> list[oot.BuiltSet]:
    """Build the module set's out-of-tree sets against the kernel just built.

    Each set goes to ``<ws>/oot/<name>`` (``make M=``), its compat series'
    report to ``<ws>/reports/oot-<name>/``, make's output to
    ``<ws>/logs/oot-<name>.log`` (:func:`rprockit.oot.build_set`).

    Returns:
        The built sets (none when the module set has no ``out_of_tree``).

    Raises:
        FetchError: a donor cannot be read.
        PatchApplyError: a compat patch conflicts or is corrupt.
        BuildError: a set failed to build, or a module's vermagic is not ``release``.
    """
    if not profile.modules or not profile.modules.out_of_tree:
        return []
    from .patch.tree import detect_family

    target = detect_family(ws.src)
    epoch = commit_epoch(ws.src, runner)
    args = [f"ARCH={profile.arch}", f"CROSS_COMPILE={profile.cross_compile}", f"-j{jobs}"]
    built = []
    for s in profile.modules.out_of_tree:
        log = ws.logs / f"oot-{s.name}.log"
        log.write_text("")
        progress(f"out-of-tree set {s.name}: sources from {s.donor.describe()}")
        built.append(oot.build_set(s, profile.modules.file, ws.src, ws.out,
                                   ws.oot_dir(s.name), args, env, log, release,
                                   ws.base / "reports" / f"oot-{s.name}", runner, progress,
                                   target, epoch))
    return built


def _debug_info(config: Path) -> bool:
    text = config.read_text(errors="replace") if config.is_file() else ""
    return "CONFIG_DEBUG_INFO=y" in text


def _ccache_record(settings: ccache_mod.CcacheSettings, cc_env: dict[str, str],
                   stats: ccache_mod.CcacheStats | None) -> dict:
    """The manifest's ``ccache`` entry (outside ``inputs``: the cache changes no output)."""
    if stats is None:
        return {"used": False}
    if ccache_mod.disabled_by_environment():
        return {"used": True, "disabled_by": "CCACHE_DISABLE", "stats": stats.to_dict()}
    remote = cc_env.get("CCACHE_REMOTE_STORAGE") or os.environ.get("CCACHE_REMOTE_STORAGE")
    return {"used": True, "base_dir": cc_env.get("CCACHE_BASEDIR"),
            "hash_dir": "CCACHE_NOHASHDIR" not in cc_env, "kcppflags": cc_env.get("KCPPFLAGS"),
            "remote_storage": ccache_mod.redact_url(remote) if remote else None,
            "stats": stats.to_dict()}


def check_tools(profile: Profile) -> None:
    """The host tools a kernel build needs: the cross compiler, make, bc, bison, flex.

    Raises:
        ToolMissingError: naming the Debian package of the first missing tool.
    """
    check_cross_compiler(profile)
    require_tool("make")
    for tool in ("bc", "bison", "flex"):
        require_tool(tool, " (the kernel build needs it)")


# --------------------------------------------------------------------------- stage contract

def _upstream(ctx: StageContext) -> tuple[dict, dict, Path | None]:
    """The manifest's ``inputs`` and module/firmware facts, and the firmware ELF."""
    p = ctx.profile
    st_patch = ctx.ws.load_state("patch") or {}
    st_cfg = ctx.ws.load_state("configure") or {}
    fw = firmware.built_elf(ctx)
    inputs = {
        "source": {"kind": p.source.kind, "baseline": patch_baseline(ctx),
                   "commit": Git(ctx.ws.src, ctx.runner).head()},
        "patches": st_patch.get("patches", []),
        "fragments": {f.name: sha256_file(f) for f in p.fragments},
        "config_sha256": st_cfg.get("config_sha256"),
        "firmware": {fw.name: sha256_file(fw)} if fw else {},
    }
    meta = {
        "modules": {"load_order": list(p.modules.load_order) if p.modules else [],
                    "rproc_driver": p.modules.rproc_driver if p.modules else None},
        "firmware": {"name": fw.name if fw else None, "soc": p.firmware_soc},
    }
    return inputs, meta, fw


def stage_inputs(ctx: StageContext) -> tuple:
    """Upstream results (source commit, patches, fragments, .config, firmware), module and
    firmware facts, toolchain versions, image/DTB list, board DT sources, tree HEAD, and
    the out-of-tree sets' donor file digests, Kbuild and compat series (if any)."""
    p = ctx.profile
    inputs, meta, _ = _upstream(ctx)
    compiler = ccache_mod.compiler_command(p.cross_compile, ccache_mod.wrapper(ctx.ccache))
    return ("build", inputs, meta, toolchain_versions(p, ctx.runner), p.image, p.dtbs,
            [sha256_file(d) for d in p.board_dts],
            p.modules.build_dirs if p.modules else None, Git(ctx.ws.src, ctx.runner).head(),
            compiler, ctx.match_release,
            *([oot.inputs(p.modules)] if p.modules and p.modules.out_of_tree else []))


def target_localversion(ctx: StageContext, quiet: bool = False) -> str | None:
    """The ``LOCALVERSION`` that makes the build's release the running kernel's
    (``ctx.match_release``), or None when no release is to be matched.

    Raises:
        ReleaseMismatchError: the release cannot be matched (the reason and the fix).
    """
    if ctx.match_release is None:
        return None
    parts = predicted_release(ctx.profile, ctx.ws, None, ctx.runner)
    lv = running.localversion_for(parts, ctx.match_release, "the target")
    if not quiet:
        ctx.say(f"[build] LOCALVERSION=\"{lv}\": release {parts.fixed}{lv}, as the target "
                "runs")
    return lv


def stage_outputs_ok(ctx: StageContext, state: dict) -> bool:
    """``artifacts/manifest.json`` exists."""
    return (ctx.ws.artifacts / "manifest.json").is_file()


def _summary(data: dict) -> str:
    return f"{data['kernel_release']}, manifest {data['id']}, {len(data['outputs'])} artifacts"


def stage_run(ctx: StageContext) -> Outcome:
    """Build and collect (see :func:`build`); the firmware stage ran first."""
    inputs, meta, fw = _upstream(ctx)
    res = build(ctx.profile, ctx.ws, inputs, ctx.runner, ctx.progress,
                extra={f"firmware/{fw.name}": fw} if fw else None, meta=meta,
                ccache=ctx.ccache, localversion=target_localversion(ctx), say=ctx.say)
    cache = f"; {res.ccache.render()}" if res.ccache else ""
    return Outcome(f"{_summary(res.data)}, make {res.seconds:.0f} s{cache}",
                   state={"manifest_id": res.data["id"]}, data=res.data)


def _skipped(ctx: StageContext, state: dict) -> str:
    return _summary(Manifest.load(ctx.ws.artifacts).data)


def _precheck(ctx: StageContext) -> None:
    check_tools(ctx.profile)


#: The build stage (the firmware helper stage runs first).
STAGE = Stage("build", inputs=stage_inputs, run=stage_run, outputs_ok=stage_outputs_ok,
              precheck=_precheck, skipped_summary=_skipped, honours_force=True,
              before=(firmware.STAGE,))
