"""The one-line edit of the benchmarks and the modules-only test: a patch series that adds
a tagged string to drivers/remoteproc/imx_rproc.c, and a copy of the default profile that
applies it after the curated series (same profile name, so it reuses that workspace).

The hunk's context is Debian linux-source-6.1 (6.1.192) drivers/remoteproc/imx_rproc.c,
lines 22-27 (``{blank}`` is the blank context line: one space).  Changing ``tag``
changes one line of the patch and the module's bytes.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "kernel_configs" / "profiles" / "imx7d-mainline-6.1.yaml"

PATCH = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: rprockit bench <bench@localhost>
Date: Thu, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH] remoteproc: imx_rproc: carry an edit tag ({tag})

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
{blank}
+static const char rprockit_edit_tag[] __used = "rprockit-{tag}";
+
 #define IMX7D_SRC_SCR\t\t\t0x0C
 #define IMX7D_ENABLE_M4\t\t\tBIT(3)
 #define IMX7D_SW_M4P_RST\t\tBIT(2)
"""

META = """format: 1
patches:
  0001-edit.patch:
    fix: bench-edit-tag
    fixes: ["none: a benchmark edit"]
    families: [mainline]
    upstream:
      status: inappropriate
      reason: benchmark only
"""


def edit_profile(tmp: Path, tag: str, fragment: str = "", target: Path | None = None) -> Path:
    """Write ``tmp/edit-series`` (the patch with ``tag``), ``tmp/edit.config``
    (``fragment``) and ``tmp/edit-imx7d.yaml``, a copy of the default profile that adds
    both (and names ``target`` when given).

    Returns:
        The profile file.
    """
    series = tmp / "edit-series"
    series.mkdir(parents=True, exist_ok=True)
    (series / "series").write_text("0001-edit.patch\n")
    (series / "meta.yaml").write_text(META)
    set_tag(tmp, tag)
    frag = tmp / "edit.config"
    frag.write_text(fragment)
    text = PROFILE.read_text().replace("../../", f"{ROOT}/").replace(
        "../", f"{PROFILE.parent.parent}/")
    text = text.replace(f"  - {ROOT}/patches/imx-rproc\n",
                        f"  - {ROOT}/patches/imx-rproc\n  - {series}\n")
    text = text.replace(f"    - {PROFILE.parent.parent}/fragments/rproc-rpmsg.config\n",
                        f"    - {PROFILE.parent.parent}/fragments/rproc-rpmsg.config\n"
                        f"    - {frag}\n")
    if target is not None:
        text = text.replace(f"target: {ROOT}/targets/qemu-imx7d.yaml", f"target: {target}")
    prof = tmp / "edit-imx7d.yaml"
    prof.write_text(text)
    return prof


def set_tag(tmp: Path, tag: str) -> None:
    """The one-line edit: the patch now carries ``tag``."""
    (tmp / "edit-series" / "0001-edit.patch").write_text(PATCH.format(tag=tag, blank=" "))
