#!/usr/bin/env python3
"""Benchmarks of the inner loop and the build (numbers, not pass/fail).

Each figure is the median of ``--runs`` runs of the real commands, with the
spread (min, max); each run is timed as a user runs it (``rprockit ...`` in a
fresh process, the environment as it is: no CCACHE_DISABLE trick).

  setup    the bench profile (the default one plus bench/edits.py's series and
           fragment) built in its own workspace, and the emulated board booted
           with SSH access (``rprockit board-up``); not a figure
  edit     a one-line patch edit to verified on the running guest:
           ``rprockit loop`` (fetch/patch/configure skipped or rerun, modules-only
           build, deploy over SSH with reload, quick checks)
  kconfig  a one-symbol Kconfig change (CONFIG_IMX_MBOX n <-> m in the bench
           fragment, module-only) to verified: ``rprockit loop``
  noop     ``rprockit loop`` with nothing changed
  clean    (``--clean N``) a clean build (``rprockit build`` after removing O=) and
           plain ``make`` of the same tree with the same .config into an empty
           O=, alternating N pairs so that machine drift cancels; both without a
           warm cache (the rprockit build with CCACHE_DISABLE=1: ccache then calls
           the compiler directly)

Writes bench/results/<date>.json and a table (bench/results/<date>.txt) with the
machine's core count and tool versions.  Usage (hold the build lock):

    flock /tmp/rprockit-build.lock .venv/bin/python bench/bench.py [--runs 5] [--clean 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from edits import ROOT, edit_profile, set_tag

NAME = "imx7d-mainline-6.1"
SSH_ENV = ROOT / "targets" / "qemu-imx7d-ssh.yaml"


def sh(cmd: list[str], env: dict | None = None, cwd: Path = ROOT) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, check=False,
                          capture_output=True, text=True)
    secs = round(time.monotonic() - t0, 2)
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd[:6])} failed ({proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return secs


def rprockit(*args: str, env: dict | None = None) -> float:
    return sh([sys.executable, "-c", "from rprockit.cli import main; main()", *args], env=env)


def version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True,
                              check=False).stdout.splitlines()[0]
    except (FileNotFoundError, IndexError):
        return "n/a"


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": min(values),
            "max": max(values), "runs": values}


def loop_cases(base: list[str], tmp: Path, runs: int) -> dict:
    cases: dict[str, list[float]] = {"edit": [], "kconfig": [], "noop": []}
    for i in range(runs):
        set_tag(tmp, f"edit-{i}")
        cases["edit"].append(rprockit("loop", *base))
        cases["noop"].append(rprockit("loop", *base))
        (tmp / "edit.config").write_text("" if i % 2 else "CONFIG_IMX_MBOX=m\n")
        cases["kconfig"].append(rprockit("loop", *base))
    return {k: summary(v) for k, v in cases.items()}


def clean_cases(ws: Path, prof: Path, pairs: int) -> dict:
    src, cfg = ws / NAME / "src", ws / NAME / "artifacts" / "config"
    plain_out = ws / "plain-make"
    jobs = str(os.cpu_count() or 1)
    times: dict[str, list[float]] = {"rprockit_build": [], "plain_make": []}
    for _ in range(pairs):
        shutil.rmtree(ws / NAME / "out", ignore_errors=True)
        for st in ("configure", "build"):
            (ws / NAME / "state" / f"{st}.json").unlink(missing_ok=True)
        times["rprockit_build"].append(rprockit("build", "--profile", str(prof),
                                                "--workspace", str(ws),
                                                env={"CCACHE_DISABLE": "1"}))
        shutil.rmtree(plain_out, ignore_errors=True)
        plain_out.mkdir(parents=True)
        shutil.copy(cfg, plain_out / ".config")
        times["plain_make"].append(sh(
            ["make", "-C", str(src), f"O={plain_out}", "ARCH=arm",
             "CROSS_COMPILE=arm-linux-gnueabihf-", f"-j{jobs}", "zImage", "modules",
             "imx7d-sdb.dtb"]))
    out = {k: summary(v) for k, v in times.items()}
    out["ratio_of_medians"] = round(out["rprockit_build"]["median"] /
                                    out["plain_make"]["median"], 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default=str(ROOT / "build" / "bench"),
                    help="the bench's workspace (its own: the edits change its tree)")
    ap.add_argument("--runs", type=int, default=5, help="runs per loop figure (default 5)")
    ap.add_argument("--clean", type=int, default=0,
                    help="alternating clean-build/plain-make pairs (default 0: skipped; "
                         "each pair is two full kernel builds)")
    ap.add_argument("--keep-board", action="store_true", help="leave the board up at the end")
    args = ap.parse_args()
    ws = Path(args.workspace).resolve()
    tmp = ws / "inputs"
    prof = edit_profile(tmp, "edit-start", target=SSH_ENV)
    base = ["--profile", str(prof), "--workspace", str(ws), "--target", str(SSH_ENV)]
    res: dict = {"cases": {}, "runs": args.runs}
    t_setup = rprockit("build", "--profile", str(prof), "--workspace", str(ws))
    t_board = rprockit("board-up", *base)
    res["setup"] = {"build": t_setup, "board_up": t_board}
    rprockit("loop", *base)  # the board gets the bench profile's modules once
    try:
        res["cases"].update(loop_cases(base, tmp, args.runs))
    finally:
        if not args.keep_board:
            rprockit("board-down", "--profile", str(prof), "--workspace", str(ws))
    set_tag(tmp, "edit-start")
    (tmp / "edit.config").write_text("")
    if args.clean:
        # the tree back at the start tag (patch and configure re-applied, not timed), so
        # that the first clean build is a build like the others and not also the undoing
        # of the last loop edit
        rprockit("build", "--profile", str(prof), "--workspace", str(ws))
        res["cases"]["clean"] = clean_cases(ws, prof, args.clean)
    res["machine"] = {"cores": os.cpu_count(), "platform": platform.platform(),
                      "python": platform.python_version(),
                      "loadavg_at_end": os.getloadavg()}
    res["tools"] = {"gcc": version(["arm-linux-gnueabihf-gcc", "--version"]),
                    "make": version(["make", "--version"]),
                    "qemu": version(["qemu-system-arm", "--version"]),
                    "ccache": version(["ccache", "--version"])}
    res["commands"] = {"edit": "rprockit loop " + " ".join(base) + "   # after set_tag()",
                       "noop": "rprockit loop " + " ".join(base),
                       "kconfig": "rprockit loop " + " ".join(base) + "   # edit.config toggled",
                       "bench": "bench/bench.py " + " ".join(sys.argv[1:])}
    if args.clean:
        res["commands"]["clean"] = (
            f"rm -rf O=; CCACHE_DISABLE=1 rprockit build --profile {prof} --workspace {ws}"
            f"  vs  make -C src O=<empty, .config copied> ARCH=arm "
            f"CROSS_COMPILE=arm-linux-gnueabihf- -j{os.cpu_count()} zImage modules "
            "imx7d-sdb.dtb, alternating")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_json = ROOT / "bench" / "results" / f"{stamp}.json"
    out_json.write_text(json.dumps(res, indent=2) + "\n")
    lines = [f"rprockit benchmark {stamp}: {res['machine']['cores']} cores, "
             f"{res['tools']['gcc']}; median (min..max) of {args.runs} runs, seconds",
             f"setup: build {t_setup:.1f} s, board-up {t_board:.1f} s"]
    for k, v in res["cases"].items():
        if k == "clean":
            for kk in ("rprockit_build", "plain_make"):
                s = v[kk]
                lines.append(f"  clean {kk:<16} {s['median']:>8.2f} ({s['min']}..{s['max']})")
            lines.append(f"  clean ratio of medians   {v['ratio_of_medians']:>8.3f}")
        else:
            lines.append(f"  {k:<22} {v['median']:>8.2f} ({v['min']}..{v['max']})")
    out_json.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
