"""Modules-only builds: ``make modules_prepare`` once per tree and config, then only the
module set, against the kernel image that is already built (or already running).

``rprockit build --modules-only`` runs fetch, patch and configure as usual, then:

1. **the image check**: the ``.config`` is compared with the config of the image
   the modules are for (the board's own config given as ``--base-config``, else
   the last full build's ``artifacts/config``).  A change is module-only when
   every changed symbol is a tristate that stays ``n`` or ``m`` *and* no object
   built into the image depends on it: fixdep records each object's config
   dependencies in its ``.cmd`` file (``$(wildcard include/config/FOO)``,
   scripts/basic/fixdep.c), and ``IS_ENABLED(CONFIG_FOO)`` in built-in code is
   true for ``m`` too.  Anything else (a ``=y`` symbol changed, a string, a
   built-in object that reads the symbol) means the image must be rebuilt: the
   build refuses and names each symbol and object;
2. **modules_prepare** (top ``Makefile``, Linux 6.1 line 1601) as a helper stage,
   fingerprinted on the tree (its baseline and what the patches change outside
   the module set's directories), the ``.config``, the toolchain, the compiler
   command and ``LOCALVERSION``: it runs once per tree and config, not per edit
   of a driver;
3. **the module set** as single ``.ko`` goals (top ``Makefile`` lines 2034-2050:
   ``make dir/name.ko`` compiles that module's objects and runs modpost for it):
   each ``obj-$(CONFIG_X) += name.o`` of a build directory's Makefile whose
   symbol is ``m``.  Its fingerprint has the tree HEAD (an edit is a patch of a
   series: the patch stage commits it; the tree is never dirty), the ``.config``
   and the image's config, so an edit rebuilds and a re-run does nothing.

The outputs go to ``<ws>/modules/`` (``modules/*.ko``, ``Module.symvers``,
``config``, the firmware and ``manifest.json`` with ``kind: modules``), so the full
build's ``artifacts/`` and the verify state that names its manifest are left as
they are.  ``image.symvers`` there is the image's ``Module.symvers`` (the full
build's or ``--symvers``): deploy checks the modules' CRCs against it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import build as build_mod
from . import ccache as ccache_mod
from . import firmware
from .errors import BuildError, CommandError
from .files import sha256_file, write_json_atomic
from .git import Git
from .manifest import Manifest
from .stage import Outcome, Stage, StageContext
from .workspace import fingerprint

__all__ = [
    "STAGE",
    "ImageCheck",
    "builtin_dependents",
    "check_image",
    "module_goals",
    "parse_config",
]

#: Symbols that describe the toolchain, not the kernel (init/Kconfig): a board's config
#: from another compiler differs there without the image differing in what modules see.
_TOOLCHAIN = re.compile(r"^(CC|AS|LD|GCC|CLANG|LLD|RUSTC|BINDGEN|PAHOLE)_")
_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")
_OBJ = re.compile(r"^obj-\$\(CONFIG_([A-Za-z0-9_]+)\)\s*[+:]?=\s*(.*)$")
_DEP = re.compile(r"include/config/([A-Za-z0-9_]+)\)")


class ImageRebuildNeeded(BuildError):
    """The config change is not module-only: the image itself must be rebuilt."""


def parse_config(text: str) -> dict[str, str]:
    """``{symbol: value}`` of a ``.config`` (unset symbols are ``n``)."""
    out = {}
    for line in text.splitlines():
        if m := _SET.match(line):
            out[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line.strip()):
            out[m.group(1)] = "n"
    return out


@dataclass
class ImageCheck:
    """What a config change means for the image.

    Attributes:
        reference: the config the image was built with (a file).
        rebuild: why the image must be rebuilt (one line per symbol); empty when the
            change is module-only.
        module_only: the module-only changes (``CONFIG_X n -> m``).
        ignored: toolchain symbols that differ (the board's compiler).
    """

    reference: Path
    rebuild: list[str] = field(default_factory=list)
    module_only: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _module_objects(out: Path) -> set[str]:
    """Objects linked into modules: every line of every ``*.mod`` file (kbuild writes
    one per module, scripts/Makefile.build ``cmd_mod``), relative to ``out``."""
    objs: set[str] = set()
    for mod in out.rglob("*.mod"):
        for word in mod.read_text(errors="replace").split():
            objs.add(os.path.normpath(word))
    return objs


def builtin_dependents(out: Path, symbols: set[str]) -> dict[str, list[str]]:
    """Objects built into the image whose ``.cmd`` file depends on a symbol of ``symbols``.

    Args:
        out: the ``O=`` directory of the image's build.
        symbols: symbol names (without ``CONFIG_``).

    Returns:
        ``{symbol: [object, ...]}`` (objects relative to ``out``, at most 3 each).
    """
    if not symbols:
        return {}
    in_modules = _module_objects(out)
    found: dict[str, list[str]] = {}
    for cmd in out.rglob(".*.o.cmd"):
        rel = os.path.relpath(cmd.parent / cmd.name[1:-4], out)
        if rel.startswith(("scripts/", "tools/")) or rel.endswith(".mod.o") or \
                rel in in_modules:
            continue
        text = cmd.read_text(errors="replace")
        for sym in symbols & set(_DEP.findall(text)):
            if len(found.setdefault(sym, [])) < 3:
                found[sym].append(rel)
    return found


def check_image(reference: Path, config: Path, out: Path) -> ImageCheck:
    """Compare the ``.config`` with the image's config (see the module docstring).

    Args:
        reference: the image's config.
        config: the new ``.config``.
        out: the ``O=`` directory (its ``.cmd`` files show what is built in).

    Returns:
        The check; ``rebuild`` lists each reason.
    """
    old = parse_config(reference.read_text(errors="replace"))
    new = parse_config(config.read_text(errors="replace"))
    res = ImageCheck(reference)
    candidates = {}
    for sym in sorted(set(old) | set(new)):
        a, b = old.get(sym, "n"), new.get(sym, "n")
        if a == b:
            continue
        what = f"CONFIG_{sym} {a} -> {b}"
        if _TOOLCHAIN.match(sym):
            res.ignored.append(what)
        elif a in ("n", "m") and b in ("n", "m"):
            candidates[sym] = what
        else:
            res.rebuild.append(f"{what}: the image has it built in or reads its value")
    deps = builtin_dependents(out, set(candidates))
    for sym, what in candidates.items():
        if sym in deps:
            res.rebuild.append(f"{what}: {', '.join(deps[sym])} (built into the image) "
                               f"depends on it (IS_ENABLED(CONFIG_{sym}) is true for m)")
        else:
            res.module_only.append(what)
    return res


def module_goals(src: Path, build_dirs: tuple[str, ...], config: dict[str, str]) -> list[str]:
    """The single ``.ko`` goals of the module set: ``<dir>/<name>.ko`` for each
    ``obj-$(CONFIG_X) += name.o`` line of each build directory's Makefile (line
    continuations joined) whose symbol is ``m`` in ``config``.

    Raises:
        BuildError: a build directory has no Makefile.
    """
    goals = []
    for d in build_dirs:
        mk = src / d / "Makefile"
        if not mk.is_file():
            raise BuildError(f"module set build directory {d}: {mk} does not exist; fix "
                             "build_dirs in the module-set file")
        text = mk.read_text(errors="replace").replace("\\\n", " ")
        for line in text.splitlines():
            m = _OBJ.match(line.strip())
            if m and config.get(m.group(1)) == "m":
                goals += [f"{d}/{w[:-2]}.ko" for w in m.group(2).split("#")[0].split()
                          if w.endswith(".o")]
    return sorted(set(goals))


# --------------------------------------------------------------------------- stages

def modules_dir(ctx: StageContext) -> Path:
    """``<ws>/modules``: the outputs of the modules-only build."""
    return ctx.ws.base / "modules"


def _reference(ctx: StageContext) -> Path | None:
    """The image's config: the board's (``--base-config``), else the full build's."""
    if ctx.base_config is not None:
        return ctx.base_config
    art = ctx.ws.artifacts / "config"
    return art if art.is_file() else None


def _setup(ctx: StageContext) -> build_mod.MakeSetup:
    return build_mod.make_setup(ctx.profile, ctx.ws, ctx.ccache,
                                build_mod.target_localversion(ctx, quiet=True), ctx.runner)


def _outside_modules(ctx: StageContext) -> tuple[str, str]:
    """The tree as modules_prepare sees it: the baseline commit and the sha256 of what
    the applied patches change outside the module set's directories (an edit to a
    driver of the set does not make modules_prepare run again)."""
    from .patch.stage import baseline

    base = baseline(ctx) or Git(ctx.ws.src, ctx.runner).head()
    dirs = ctx.profile.modules.build_dirs if ctx.profile.modules else ()
    diff = Git(ctx.ws.src, ctx.runner)("diff", base, "HEAD", "--", ".",
                                       *(f":(exclude){d}" for d in dirs)).stdout
    return base, hashlib.sha256(diff.encode()).hexdigest()


def _prepare_inputs(ctx: StageContext) -> tuple:
    p = ctx.profile
    wrapper = ccache_mod.wrapper(ctx.ccache)
    return ("modules_prepare", _outside_modules(ctx),
            sha256_file(ctx.ws.out / ".config"), build_mod.toolchain_versions(p, ctx.runner),
            ccache_mod.compiler_command(p.cross_compile, wrapper), ctx.match_release)


def _make(ctx: StageContext, setup: build_mod.MakeSetup, goals: list[str], log: Path) -> float:
    p = ctx.profile
    jobs = p.jobs or os.cpu_count() or 1
    cmd = build_mod.make_args(p, ctx.ws, jobs, setup.wrapper) + goals
    t0 = time.monotonic()
    try:
        ctx.runner.stream(cmd, log, env={**setup.env, **setup.cc_env}, progress=ctx.progress)
    except CommandError as e:
        raise BuildError(f"make {' '.join(goals[:3])}{' ...' if len(goals) > 3 else ''} "
                         f"failed for profile {p.name}; full log: {log}\n{e}") from e
    return time.monotonic() - t0


def _prepare_run(ctx: StageContext) -> Outcome:
    setup = _setup(ctx)
    change = build_mod.compiler_change(ctx.ws.out, setup.compiler)
    if change:
        ctx.say(f"[build] {change}")
    log = ctx.ws.logs / "modules_prepare.log"
    log.write_text("")
    secs = _make(ctx, setup, ["modules_prepare"], log)
    (ctx.ws.out / build_mod.COMPILER_RECORD).write_text(setup.compiler + "\n")
    return Outcome(f"make modules_prepare {secs:.1f} s")


def _prepare_ok(ctx: StageContext, state: dict) -> bool:
    return (ctx.ws.out / "include" / "generated" / "autoconf.h").is_file() and \
        (ctx.ws.out / "scripts" / "mod" / "modpost").is_file()


#: ``make modules_prepare``, once per tree and config (a helper of the modules stage).
PREPARE = Stage("modules_prepare", inputs=_prepare_inputs, run=_prepare_run,
                outputs_ok=_prepare_ok, quiet=True)


def _inputs(ctx: StageContext) -> tuple:
    ref = _reference(ctx)
    image = ctx.ws.artifacts / "manifest.json"
    fw = firmware.built_elf(ctx)
    return (*_prepare_inputs(ctx)[1:], Git(ctx.ws.src, ctx.runner).head(),
            str(ref) if ref else None,
            sha256_file(ref) if ref else None,
            sha256_file(image) if image.is_file() else None,
            ctx.profile.modules.build_dirs if ctx.profile.modules else None,
            list(ctx.profile.modules.load_order) if ctx.profile.modules else None,
            sha256_file(fw) if fw else None)


def _outputs_ok(ctx: StageContext, state: dict) -> bool:
    return (modules_dir(ctx) / "manifest.json").is_file()


def _check(ctx: StageContext) -> ImageCheck | None:
    ref = _reference(ctx)
    if ref is None:
        ctx.say("[build] no image config to compare with (no full build, no --base-config): "
                "the modules are built for this .config as it is")
        return None
    chk = check_image(ref, ctx.ws.out / ".config", ctx.ws.out)
    if chk.ignored:
        ctx.say(f"[build] toolchain symbols differ from {ref} (not checked): "
                + ", ".join(chk.ignored[:3]) + (" ..." if len(chk.ignored) > 3 else ""))
    if chk.rebuild:
        raise ImageRebuildNeeded(
            f"the image must be rebuilt: the .config differs from the image's ({ref}) in "
            "more than modules:\n  " + "\n  ".join(chk.rebuild[:20])
            + ("\n  ..." if len(chk.rebuild) > 20 else "")
            + "\nFix: run the build without --modules-only and boot the new image, or drop "
            "the change from the fragments")
    return chk


def _run(ctx: StageContext) -> Outcome:
    p = ctx.profile
    if p.modules is None:
        raise BuildError(f"profile {p.name} has no module set (modules: in {p.file}); "
                         "a modules-only build needs one")
    chk = _check(ctx)
    config = parse_config((ctx.ws.out / ".config").read_text(errors="replace"))
    goals = module_goals(ctx.ws.src, p.modules.build_dirs, config)
    if not goals:
        raise BuildError(f"no module of {', '.join(p.modules.build_dirs)} is =m in "
                         f"{ctx.ws.out / '.config'}; set the drivers to m in a fragment")
    setup = _setup(ctx)
    log = ctx.ws.logs / "modules.log"
    log.write_text("")
    secs = _make(ctx, setup, goals, log)
    stats = ccache_mod.read_stats(setup.stats_log) if setup.wrapper else None
    data = _collect(ctx, goals, setup, chk)
    data["build_seconds"] = round(secs, 1)
    write_json_atomic(modules_dir(ctx) / "manifest.json", data)
    cache = f"; {stats.render()}" if stats else ""
    changes = f"; {', '.join(chk.module_only)}" if chk and chk.module_only else ""
    return Outcome(f"{len(goals)} modules for {data['kernel_release']}, manifest {data['id']}, "
                   f"make {secs:.1f} s{changes}{cache}", state={"manifest_id": data["id"]},
                   data=data)


def _collect(ctx: StageContext, goals: list[str], setup: build_mod.MakeSetup,
             chk: ImageCheck | None) -> dict:
    ws, p = ctx.ws, ctx.profile
    dest = modules_dir(ctx)
    staging = dest.with_name("modules.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "modules").mkdir(parents=True)
    outputs = {}

    def put(src: Path, rel: str) -> None:
        dst = staging / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        outputs[rel] = {"sha256": sha256_file(dst), "size": dst.stat().st_size}

    for g in goals:
        put(ws.out / g, f"modules/{Path(g).name}")
    put(ws.out / ".config", "config")
    if (ws.out / "Module.symvers").is_file():
        put(ws.out / "Module.symvers", "Module.symvers")
    image = ws.artifacts / "Module.symvers"
    if image.is_file():
        put(image, "image.symvers")
    fw = firmware.built_elf(ctx)
    if fw:
        put(fw, f"firmware/{fw.name}")
    release = build_mod.kernel_release(ws)
    parts = build_mod.predicted_release(p, ws, setup.env.get("LOCALVERSION"), ctx.runner)
    image_id = None
    if (ws.artifacts / "manifest.json").is_file():
        image_id = Manifest.load(ws.artifacts).id
    data = {
        "format": 1, "kind": "modules", "profile": p.name, "kernel_release": release,
        "release_parts": parts.to_dict() if parts.release == release else None,
        "arch": p.arch, "cross_compile": p.cross_compile,
        "modules": {"load_order": list(p.modules.load_order) if p.modules else [],
                    "rproc_driver": p.modules.rproc_driver if p.modules else None},
        "firmware": {"name": fw.name if fw else None, "soc": p.firmware_soc},
        "image_manifest_id": image_id,
        "image_config": str(chk.reference) if chk else None,
        "module_only_changes": chk.module_only if chk else [],
        "inputs": {"source": {"commit": Git(ws.src, ctx.runner).head()},
                   "config_sha256": sha256_file(ws.out / ".config"),
                   "environment": setup.env, "compiler": setup.compiler, "goals": goals},
        "outputs": outputs,
    }
    data["id"] = fingerprint(data["inputs"], outputs)[:16]
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return data


def _skipped(ctx: StageContext, state: dict) -> str:
    return f"modules unchanged, manifest {state.get('manifest_id')}"


#: The modules-only build (``build --modules-only``); modules_prepare runs first.
STAGE = Stage("modules", inputs=_inputs, run=_run, outputs_ok=_outputs_ok,
              precheck=lambda ctx: build_mod.check_tools(ctx.profile), skipped_summary=_skipped,
              honours_force=True, before=(firmware.STAGE, PREPARE))
