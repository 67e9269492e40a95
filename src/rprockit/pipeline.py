"""The pipeline: fetch -> patch -> configure -> build -> preflight -> verify.

Each stage is a plain function over a :class:`Context`.  Each records a
fingerprint of its inputs (including the upstream stage's) in
``<workspace>/state/<stage>.json`` and is skipped when it is unchanged.
``invoke all`` is these calls in order; nothing else holds state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import build as build_mod
from . import fetch as fetch_mod
from . import kconfig
from .errors import UserError
from .files import sha256_file as file_sha256
from .git import Git
from .profile import Profile
from .runner import Runner
from .workspace import Workspace, fingerprint, write_json_atomic

STAGES = ("fetch", "patch", "configure", "build", "preflight", "verify")


@dataclass
class StageResult:
    """One stage's outcome: name, skipped or not, wall seconds, one-line summary."""

    stage: str
    skipped: bool
    seconds: float
    summary: str
    data: dict = field(default_factory=dict)


@dataclass
class Context:
    """What every stage gets: the profile, its workspace, the runner and progress callbacks."""

    profile: Profile
    ws: Workspace
    runner: Runner
    say: Callable[[str], None] = print
    progress: Callable[[str], None] = lambda line: None
    target: Path | None = None
    cycles: int | None = None
    force: bool = False
    accept_new_host_key: bool = False


def _timed(stage: str, fn, ctx: Context) -> StageResult:
    t0 = time.monotonic()
    skipped, summary, data = fn(ctx)
    res = StageResult(stage, skipped, time.monotonic() - t0, summary, data)
    ctx.say(f"[{stage}] {'up to date, skipped' if skipped else 'done'} in {res.seconds:.1f} s: "
            f"{summary}")
    return res


def stage_fetch(ctx: Context):
    res = fetch_mod.fetch(ctx.profile, ctx.ws, ctx.runner, ctx.say)
    return res.skipped, f"{res.detail}, baseline {res.baseline[:12]}", {"baseline": res.baseline}


def _baseline(ctx: Context) -> str:
    st = ctx.ws.load_state("fetch")
    if not st:
        raise UserError(f"no fetched tree for profile {ctx.profile.name}: "
                        "run the fetch stage first")
    return st["baseline"]


def stage_patch(ctx: Context):
    from . import patch as patch_mod

    baseline = _baseline(ctx)
    series_list = [patch_mod.load_series(d) for d in ctx.profile.patches]
    fp = fingerprint("patch", baseline, [s.fingerprint() for s in series_list],
                     ctx.profile.source.family)
    repo = Git(ctx.ws.src, ctx.runner)
    st = ctx.ws.load_state("patch")
    if st and st["fingerprint"] == fp and repo.head() == st.get("end"):
        repo.require_clean()
        return True, st.get("summary", ""), st
    repo.require_clean()
    if repo.head() != baseline:
        # patches stack: a changed series is re-applied from the baseline commit
        ctx.say(f"[patch] series changed: back to baseline {baseline[:12]}")
        repo.checkout_detached(baseline)
    reports: list[dict] = []
    counts: dict[str, int] = {}
    for series in series_list:
        # the family is detected from the fetched tree; it only orders fix variants
        rep = patch_mod.apply_series(ctx.ws.src, series, None, ctx.runner,
                                     report_dir=ctx.ws.base / "reports" / series.directory.name)
        ctx.say(rep.render())
        reports.append(rep.to_dict())
        for r in rep.results:
            counts[r.status.value] = counts.get(r.status.value, 0) + 1
    end = repo.head()
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no patches"
    write_json_atomic(ctx.ws.base / "reports" / "patch.json", reports)
    patches = [{"series": str(series.directory), "name": r["name"], "status": r["status"],
                "commit": r.get("commit"),
                "sha256": file_sha256(series.directory / r["name"])}
               for series, rep in zip(series_list, reports, strict=True)
               for r in rep.get("patches", [])]
    ctx.ws.save_state("patch", fp, end=end, summary=summary, patches=patches)
    return False, summary, {"end": end}


def stage_configure(ctx: Context):
    p = ctx.profile
    head = Git(ctx.ws.src, ctx.runner).head()
    cc_text = kconfig.kconfig_env(ctx.ws.src, p.arch, p.cross_compile)["CC_VERSION_TEXT"]
    fp = fingerprint("configure", head, p.arch, p.cross_compile, p.config_base,
                     [(str(f), file_sha256(f)) for f in p.fragments], cc_text)
    cfg = ctx.ws.out / ".config"
    st = ctx.ws.load_state("configure")
    if st and st["fingerprint"] == fp and cfg.is_file() and file_sha256(cfg) == st["config_sha256"]:
        return True, f".config {st['config_sha256'][:12]} unchanged", st
    res = kconfig.configure(ctx.ws.src, p.arch, p.cross_compile, p.config_base,
                            list(p.fragments), cfg)
    sha = file_sha256(cfg)
    write_json_atomic(ctx.ws.base / "reports" / "kconfig.json", res.to_dict())
    ctx.ws.save_state("configure", fp, config_sha256=sha)
    return False, f"{len(res.actual)} requested symbols all set; .config {sha[:12]}", {}


def _firmware(ctx: Context) -> Path | None:
    """Build the profile's M-core firmware, or reuse it when its sources are unchanged."""
    p = ctx.profile
    if not p.firmware_src:
        return None
    from .firmware import build_firmware

    srcs = sorted(f for f in p.firmware_src.rglob("*") if f.is_file())
    fp = fingerprint("firmware", [(f.name, file_sha256(f)) for f in srcs],
                     build_mod.tool_version("arm-none-eabi-gcc", ctx.runner))
    st = ctx.ws.load_state("firmware")
    if st and st["fingerprint"] == fp and Path(st["elf"]).is_file():
        return Path(st["elf"])
    elf = build_firmware(p.firmware_src, ctx.ws.out / "firmware", ctx.runner)
    ctx.ws.save_state("firmware", fp, elf=str(elf))
    return elf


def stage_build(ctx: Context):
    p = ctx.profile
    st_patch = ctx.ws.load_state("patch") or {}
    st_cfg = ctx.ws.load_state("configure") or {}
    fw = _firmware(ctx)
    inputs = {
        "source": {"kind": p.source.kind, "baseline": _baseline(ctx),
                   "commit": Git(ctx.ws.src, ctx.runner).head()},
        "patches": st_patch.get("patches", []),
        "fragments": {f.name: file_sha256(f) for f in p.fragments},
        "config_sha256": st_cfg.get("config_sha256"),
        "firmware": {fw.name: file_sha256(fw)} if fw else {},
    }
    meta = {
        "modules": {"load_order": list(p.modules.load_order) if p.modules else [],
                    "rproc_driver": p.modules.rproc_driver if p.modules else None},
        "firmware": {"name": fw.name if fw else None, "soc": p.firmware_soc},
    }
    counter = {"n": 0}

    def progress(line: str):
        counter["n"] += 1
        ctx.progress(line)

    res = build_mod.build(p, ctx.ws, inputs, ctx.runner, progress, force=ctx.force,
                          extra={f"firmware/{fw.name}": fw} if fw else None, meta=meta)
    d = res.data
    return res.skipped, (f"{d['kernel_release']}, manifest {d['id']}, {len(d['outputs'])} artifacts"
                         + ("" if res.skipped else f", make {res.seconds:.0f} s")), d


def _target_env(ctx: Context) -> Path | None:
    return ctx.target or ctx.profile.target


def _emulated(env: Path | None) -> bool:
    if not env:
        return False
    import yaml

    data = yaml.load(env.read_text(), Loader=_TemplateLoader)
    drivers = ((data.get("targets") or {}).get("main") or {}).get("drivers") or {}
    return "QEMUDriver" in drivers


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that reads labgrid's ``!template`` tag as a plain string."""


def _template(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_TemplateLoader.add_constructor("!template", _template)


def stage_preflight(ctx: Context):
    p = ctx.profile
    man = json.loads((ctx.ws.artifacts / "manifest.json").read_text())
    fw_name = man.get("firmware", {}).get("name")
    if not fw_name or not p.firmware_soc:
        return True, "no firmware in this profile", {}
    from .preflight import check_firmware

    dtbs = sorted((ctx.ws.artifacts / "dtbs").glob("*.dtb"))
    board = [d for d in dtbs if d.stem in {b.stem for b in p.board_dts}]
    dtb = next(iter(board or dtbs), None)
    emulated = _emulated(_target_env(ctx))
    fp = fingerprint("preflight", man["id"], p.firmware_soc, str(dtb), emulated)
    st = ctx.ws.load_state("preflight")
    if st and st["fingerprint"] == fp:
        return True, st["summary"], st
    ctx.ws.clear_state("preflight")
    report = check_firmware(ctx.ws.artifacts / "firmware" / fw_name, p.firmware_soc,
                            dtb=dtb, kernel_tree=ctx.ws.src, emulated=emulated,
                            runner=ctx.runner)
    write_json_atomic(ctx.ws.base / "reports" / "preflight.json", report.to_dict())
    ctx.say(report.render())
    if report.failed:
        raise UserError(f"pre-flight checks failed for {fw_name}; see the table above and "
                        f"{ctx.ws.base / 'reports' / 'preflight.json'}")
    counts = report.to_dict().get("counts") or {}
    summary = "firmware and device tree pass pre-flight" + (
        f" ({', '.join(f'{v} {k}' for k, v in counts.items())})" if counts else "")
    ctx.ws.save_state("preflight", fp, summary=summary)
    return False, summary, {}


def stage_verify(ctx: Context):
    from .initramfs import make_initramfs
    from .verify import run_verify

    p = ctx.profile
    env = _target_env(ctx)
    if env is None:
        return True, "profile has no target", {}
    if not p.boot and ctx.target is None:
        return True, "profile is build-only (verify.boot: false)", {}
    man_path = ctx.ws.artifacts / "manifest.json"
    man = json.loads(man_path.read_text())
    cycles = ctx.cycles or p.verify_cycles
    from .verify import SUITE

    suite = sorted(f for f in SUITE.parent.rglob("*.py"))
    fp = fingerprint("verify", man["id"], str(env), file_sha256(env), cycles,
                     [(f.name, file_sha256(f)) for f in suite])
    st = ctx.ws.load_state("verify")
    if not ctx.force and st and st["fingerprint"] == fp and st.get("passed"):
        return True, f"{st['summary']} (target and build unchanged)", st
    ctx.ws.clear_state("verify")
    if _emulated(env):
        mods = sorted((ctx.ws.artifacts / "modules").glob("*.ko"))
        fw = ctx.ws.artifacts / "firmware" / man["firmware"]["name"]
        epoch = build_mod.commit_epoch(ctx.ws.src, ctx.runner)
        make_initramfs(p.arch, man["kernel_release"], mods, [fw],
                       ctx.ws.artifacts / "initramfs.cpio", ctx.ws.cache, epoch, ctx.runner)
    ctx.say(f"[verify] target {env}, {cycles} reload cycles")
    board = [ctx.ws.artifacts / "dtbs" / f"{d.stem}.dtb" for d in p.board_dts]
    res = run_verify(env, man_path, ctx.ws.verify, ctx.ws.artifacts, cycles, ctx.runner,
                     ctx.progress, accept_new_host_key=ctx.accept_new_host_key,
                     dtb=next((d for d in board if d.is_file()), None))
    ctx.say(res.table)
    if not res.passed:
        raise VerifyFailed(res)
    c = res.summary["counts"]
    summary = (f"{c['passed']} passed, {c['skipped']} skipped; manifest {man['id']}; "
               f"results in {ctx.ws.verify}")
    ctx.ws.save_state("verify", fp, passed=True, summary=summary)
    return False, summary, res.summary


class VerifyFailed(UserError):
    def __init__(self, res):
        self.result = res
        failed = [c for c in res.summary["checks"] if c["outcome"] in ("failed", "error")]
        lines = [f"  {c['check']}: {c['message'].splitlines()[0] if c['message'] else ''}"
                 for c in failed]
        super().__init__("verify failed:\n" + "\n".join(lines)
                         + f"\nFull results: {res.results_dir}/results.json, log: {res.log}")


STAGE_FUNCS = {
    "fetch": stage_fetch, "patch": stage_patch, "configure": stage_configure,
    "build": stage_build, "preflight": stage_preflight, "verify": stage_verify,
}


def run(ctx: Context, stages: list[str] | tuple[str, ...] = STAGES,
        skip: tuple[str, ...] = ()) -> list[StageResult]:
    """Run ``stages`` in pipeline order, except ``skip``.

    Raises:
        UserError: an unknown stage name, or any stage's user error.
    """
    bad = [s for s in (*stages, *skip) if s not in STAGES]
    if bad:
        raise UserError(f"unknown stage(s) {', '.join(bad)}; stages are {', '.join(STAGES)}")
    results = []
    for s in STAGES:
        if s in stages and s not in skip:
            results.append(_timed(s, STAGE_FUNCS[s], ctx))
    write_json_atomic(ctx.ws.base / "reports" / "last-run.json",
                      [{"stage": r.stage, "skipped": r.skipped, "seconds": round(r.seconds, 2),
                        "summary": r.summary} for r in results])
    return results


def stages_until(last: str) -> tuple[str, ...]:
    return STAGES[: STAGES.index(last) + 1]
