#!/usr/bin/env python3
"""Benchmarks of the default profile's pipeline (numbers, not pass/fail).

Measures, each as wall seconds of the real commands:
  a  clean pipeline (fresh workspace, ccache disabled) through verify
  b  no-op re-run of the pipeline
  c  a one-line edit to a patch that touches drivers/remoteproc/imx_rproc.c, through verify
  d  a one-symbol fragment change, through verify
  e  plain `make` of the same kernel with the same .config (clean O=, no ccache)

Writes bench/results/<date>.json and a table (bench/results/<date>.txt) with
the machine's core count and tool versions.  Usage:

    .venv/bin/python bench/bench.py [--workspace DIR] [--skip a,e]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "kernel_configs" / "profiles" / "imx7d-mainline-6.1.yaml"
NAME = "imx7d-mainline-6.1"  # same name: the bench may reuse a workspace of the default profile

PATCH = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: rprockit bench <bench@localhost>
Date: Thu, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH] remoteproc: imx_rproc: say hello at probe ({tag})

Upstream-Status: Inappropriate [benchmark only]
Signed-off-by: rprockit bench <bench@localhost>
---
 drivers/remoteproc/imx_rproc.c | 2 ++
 1 file changed, 2 insertions(+)

diff --git a/drivers/remoteproc/imx_rproc.c b/drivers/remoteproc/imx_rproc.c
--- a/drivers/remoteproc/imx_rproc.c
+++ b/drivers/remoteproc/imx_rproc.c
@@ -22,6 +22,8 @@
 #include "imx_rproc.h"
 #include "remoteproc_internal.h"
 
+#define RPROCKIT_BENCH_TAG "{tag}"
+
 #define IMX7D_SRC_SCR			0x0C
 #define IMX7D_ENABLE_M4			BIT(3)
 #define IMX7D_SW_M4P_RST		BIT(2)
"""

META = """format: 1
patches:
  0001-bench.patch:
    fix: bench-hello
    fixes: ["none: a benchmark edit"]
    families: [mainline]
    upstream:
      status: inappropriate
      reason: benchmark only
"""


def sh(cmd, env=None, cwd=ROOT) -> float:
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, check=True,
                   stdout=subprocess.DEVNULL)
    return round(time.monotonic() - t0, 2)


def rprockit(*args, env=None) -> float:
    return sh([sys.executable, "-c", "from rprockit.cli import main; main()", *args], env=env)


def stage_times(ws: Path, name: str) -> dict:
    data = json.loads((ws / name / "reports" / "last-run.json").read_text())
    return {r["stage"]: (r["seconds"], r["skipped"]) for r in data}


def version(cmd) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.splitlines()[0]
    except (FileNotFoundError, IndexError):
        return "n/a"


def bench_profile(tmp: Path, fragment_extra: str) -> Path:
    """A copy of the default profile with one extra series and one extra fragment."""
    series = tmp / "bench-series"
    series.mkdir(parents=True, exist_ok=True)
    (series / "series").write_text("0001-bench.patch\n")
    (series / "meta.yaml").write_text(META)
    (series / "0001-bench.patch").write_text(PATCH.format(tag="one"))
    frag = tmp / "bench.config"
    frag.write_text(fragment_extra)
    text = PROFILE.read_text().replace("../../", f"{ROOT}/").replace("../", f"{PROFILE.parent.parent}/")
    text = text.replace(f"  - {ROOT}/patches/imx-rproc\n",
                        f"  - {ROOT}/patches/imx-rproc\n  - {series}\n")
    text = text.replace(f"    - {PROFILE.parent.parent}/fragments/rproc-rpmsg.config\n",
                        f"    - {PROFILE.parent.parent}/fragments/rproc-rpmsg.config\n    - {frag}\n")
    p = tmp / "bench-imx7d.yaml"
    p.write_text(text)
    return p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default=str(ROOT / "build" / "bench"))
    ap.add_argument("--skip", default="", help="comma-separated cases to skip (a,b,c,d,e)")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    ws = Path(args.workspace).resolve()
    tmp = ws / "inputs"
    prof = bench_profile(tmp, "CONFIG_RPMSG_TTY=m\n")
    base = ["--profile", str(prof), "--workspace", str(ws)]
    res: dict = {"cases": {}}
    if "a" not in skip:
        shutil.rmtree(ws / NAME, ignore_errors=True)
        res["cases"]["a_clean_pipeline"] = rprockit("all", *base, env={"CCACHE_DISABLE": "1"})
        res["cases"]["a_stages"] = stage_times(ws, NAME)
    if "b" not in skip:
        res["cases"]["b_noop_rerun"] = rprockit("all", *base)
        res["cases"]["b_stages"] = stage_times(ws, NAME)
    if "c" not in skip:
        (tmp / "bench-series" / "0001-bench.patch").write_text(PATCH.format(tag="two"))
        res["cases"]["c_patch_edit_to_verified"] = rprockit("all", *base)
        res["cases"]["c_stages"] = stage_times(ws, NAME)
    if "d" not in skip:
        (tmp / "bench.config").write_text("# CONFIG_RPMSG_TTY is not set\n")
        res["cases"]["d_fragment_change_to_verified"] = rprockit("all", *base)
        res["cases"]["d_stages"] = stage_times(ws, NAME)
        (tmp / "bench.config").write_text("CONFIG_RPMSG_TTY=m\n")
    if "e" not in skip:
        src, cfg = ws / NAME / "src", ws / NAME / "out" / ".config"
        out = ws / "plain-make"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        shutil.copy(cfg, out / ".config")
        res["cases"]["e_plain_make"] = sh(
            ["make", "-C", str(src), f"O={out}", "ARCH=arm", "CROSS_COMPILE=arm-linux-gnueabihf-",
             f"-j{os.cpu_count()}", "zImage", "modules", "imx7d-sdb.dtb"])
    res["machine"] = {"cores": os.cpu_count(), "platform": platform.platform(),
                      "python": platform.python_version()}
    res["tools"] = {"gcc": version(["arm-linux-gnueabihf-gcc", "--version"]),
                    "make": version(["make", "--version"]),
                    "qemu": version(["qemu-system-arm", "--version"]),
                    "ccache": version(["ccache", "--version"])}
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_json = ROOT / "bench" / "results" / f"{stamp}.json"
    out_json.write_text(json.dumps(res, indent=2) + "\n")
    lines = [f"rprockit benchmark {stamp}: {res['machine']['cores']} cores, {res['tools']['gcc']}",
             f"{'case':<34} {'seconds':>8}"]
    for k, v in res["cases"].items():
        if not isinstance(v, dict):
            lines.append(f"{k:<34} {v:>8.2f}")
        else:
            for st, (sec, skipped) in v.items():
                lines.append(f"  {st:<32} {sec:>8.2f}{' (skipped)' if skipped else ''}")
    (out_json.with_suffix(".txt")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
