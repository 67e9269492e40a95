"""series / meta.yaml validation, and the curated series in patches/."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from rprockit.patch import SeriesFormatError, Status, load_series
from rprockit.patch.diff import parse_patch

REPO = Path(__file__).resolve().parents[1]

PATCH = textwrap.dedent("""\
    From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
    From: Jane Dev <jane@example.com>
    Date: Mon, 1 Jan 2024 00:00:00 +0000
    Subject: [PATCH] remoteproc: fix

    Upstream-Status: {status}
    Signed-off-by: Jane Dev <jane@example.com>
    ---
    diff --git a/drivers/remoteproc/core.c b/drivers/remoteproc/core.c
    index 1111111..2222222 100644
    --- a/drivers/remoteproc/core.c
    +++ b/drivers/remoteproc/core.c
    @@ -1,3 +1,3 @@ int f(void)
     a
    -b
    +c
     d
    """)


def make_dir(tmp_path: Path, meta: str, series: str = "0001-fix.patch\n",
             status: str = "Backport [remoteproc: the title]") -> Path:
    d = tmp_path / "s"
    d.mkdir()
    (d / "series").write_text(series)
    (d / "0001-fix.patch").write_text(PATCH.format(status=status))
    (d / "meta.yaml").write_text(textwrap.dedent(meta))
    return d


GOOD = textwrap.dedent("""\
    format: 1
    patches:
      0001-fix.patch:
        fix: the-fix
        fixes: ["remoteproc remoteproc0: Failed to find resource table"]
        families: [nxp-4.14, mainline]
        upstream: {status: backport, commit: "remoteproc: the title", version: "5.13"}
        present_if:
          - {file: drivers/remoteproc/core.c, regex: '^c$'}
    """)


def test_good_series_loads(tmp_path):
    s = load_series(make_dir(tmp_path, GOOD))
    (p,) = s.patches
    assert (p.name, p.line, p.fix, p.families) == ("0001-fix.patch", 1, "the-fix",
                                                   ("nxp-4.14", "mainline"))
    assert p.subject == "remoteproc: fix" and p.author == "Jane Dev <jane@example.com>"
    assert p.present_if[0].regex == "^c$" and s.warnings == ()
    assert len(s.fingerprint()) == 64


def test_meta_errors_have_key_path_and_line(tmp_path):
    meta = """\
    format: 1
    patches:
      0001-fix.patch:
        fix: The Fix
        fixes: []
        families: [nxp-5.x]
        upstream: {status: backport}
        present_if:
          - {file: a.c, regex: '(unclosed'}
        colour: blue
    """
    with pytest.raises(SeriesFormatError) as ei:
        load_series(make_dir(tmp_path, meta))
    msg = str(ei.value)
    assert "meta.yaml" in msg
    assert ":4: patches.0001-fix.patch.fix: 'The Fix' does not match" in msg
    assert ":5: patches.0001-fix.patch.fixes: [] should be non-empty" in msg
    assert ":6: patches.0001-fix.patch.families[0]: 'nxp-5.x' does not match" in msg
    assert ":7: patches.0001-fix.patch.upstream: 'commit' is a required property" in msg
    assert ":9: patches.0001-fix.patch.present_if[0].regex: invalid regex" in msg
    assert "colour" not in msg  # unknown keys are warnings, not errors
    assert len(ei.value.problems) == 5


def test_missing_format_and_unknown_keys(tmp_path):
    with pytest.raises(SeriesFormatError, match=r":1: <top>: missing 'format' key; add 'format: 1'"):
        load_series(make_dir(tmp_path, GOOD.replace("format: 1\n", "")))
    d2 = tmp_path / "two"
    d2.mkdir()
    s = load_series(make_dir(d2, GOOD + "    colour: blue\n  0009-unused.patch: {fix: x, fixes: [y], families: [mainline], "
                                  "upstream: {status: pending}}\n"))
    assert any(":10: patches.0001-fix.patch.colour: unknown key" in w for w in s.warnings)
    assert any("0009-unused.patch: not listed" in w for w in s.warnings)


def test_series_file_problems_name_lines(tmp_path):
    d = make_dir(tmp_path, GOOD, series="# c\n0001-fix.patch -p0\n0002-none.patch\n")
    with pytest.raises(SeriesFormatError) as ei:
        load_series(d)
    assert "series:2: 0001-fix.patch: unsupported quilt option(s) -p0" in str(ei.value)
    (d / "series").write_text("0001-fix.patch\n\n0002-none.patch  # later\n")
    with pytest.raises(SeriesFormatError, match=r"series:3: 0002-none.patch: no entry for it"):
        load_series(d)


def test_upstream_trailer_must_agree(tmp_path):
    d = make_dir(tmp_path, GOOD, status="Inappropriate [vendor-only]")
    with pytest.raises(SeriesFormatError, match=r"trailer is 'inappropriate' but meta.yaml says "
                                                "'backport'"):
        load_series(d)


def test_not_a_format_patch(tmp_path):
    d = make_dir(tmp_path, GOOD)
    (d / "0001-fix.patch").write_text("just text\n")
    with pytest.raises(SeriesFormatError, match=r"series:1: 0001-fix.patch: not a 'git format-patch'"):
        load_series(d)


def test_parse_patch_names_hunks():
    (f,) = parse_patch(PATCH.format(status="x"))
    assert f.path == "drivers/remoteproc/core.c" and f.hunks[0].number == 1
    assert f.hunks[0].header == "@@ -1,3 +1,3 @@ int f(void)"


@pytest.mark.parametrize("name", ["imx-rproc", "build-compat"])
def test_curated_series_is_valid(name):
    d = REPO / "patches" / name
    if not d.is_dir():
        pytest.skip(f"{d} not present")
    s = load_series(d)
    assert len(s) > 0 and s.warnings == ()
    for p in s:
        text = p.path.read_text()
        assert "Signed-off-by: rprockit maintainers <rprockit@localhost>" in text, p.name
        assert parse_patch(text), p.name
        assert p.fixes and all(p.fixes), p.name
    assert Status  # the status names the docs refer to exist
    assert os.path.basename(s.series_file) == "series"


def _quoted(fix: str, message: str) -> bool:
    """True when ``fix`` (``...`` is a wildcard) is quoted in ``message``."""
    return re.search(".*?".join(map(re.escape, fix.split("..."))), message) is not None


def test_imx_rproc_patches_quote_the_failure_they_fix():
    s = load_series(REPO / "patches" / "imx-rproc")
    for p in s:
        message = p.path.read_text().split("\n---\n", 1)[0]
        assert any(_quoted(f, message) for f in p.fixes), p.name
        if p.upstream["status"] == "inappropriate":
            assert f"Upstream-Status: Inappropriate [{p.upstream['reason']}]" in message, p.name


def test_loadable_imx_rpmsg_variants():
    s = load_series(REPO / "patches" / "imx-rproc")
    variants = {p.name.split("/")[0]: p for p in s if p.fix == "loadable-imx-rpmsg"}
    assert set(variants) == {"nxp-4.14", "nxp-5.4", "nxp-5.15", "nxp-6.1"}
    for family, p in variants.items():
        text = p.path.read_text()
        assert "+config IMX_RPMSG\n+\ttristate" in text, family
        assert "+obj-$(CONFIG_IMX_RPMSG)\t+= imx_rpmsg.o" in text, family
        assert "+module_exit(imx_rpmsg_exit);" in text and ".remove = imx_rpmsg_remove" in text
        # HAVE_IMX_RPMSG stays the bool the SoC symbols select
        assert "-config HAVE_IMX_RPMSG" not in text, family
        # the probes recognise the patched Kconfig and imx_rpmsg.c
        kconfig = "config IMX_RPMSG\n\ttristate \"x\"\n"
        assert re.search(p.present_if[0].regex, kconfig, re.MULTILINE), family
        assert [pr.file for pr in p.requires] == ["drivers/rpmsg/imx_rpmsg.c"]
    # 5.15 and 6.1: the RPMsg core can be a module: the tristate, not the bool, selects it
    for family in ("nxp-5.15", "nxp-6.1"):
        text = variants[family].path.read_text()
        assert "+	select RPMSG_VIRTIO\n" in text and "-	select RPMSG_VIRTIO\n" in text, family
        assert "IMX_SC_IRQ_GROUP_REBOOTED,\n+\t\t\t\t\t BIT(rpdev->mub_partition), false);" \
            in text, family
        assert "mbox_free_channel(rpdev->rxdb_ch);" in text \
            and "cancel_delayed_work_sync(&rpdev->rpmsg_work);" in text \
            and "of_reserved_mem_device_release(dev);" in text, family
    # nxp-4.14: the MU helpers imx_rpmsg.ko calls are exported
    text = variants["nxp-4.14"].path.read_text()
    for fn in ("MU_Init", "MU_SendMessage", "MU_SendMessageTimeout", "MU_ReceiveMsg",
               "MU_EnableRxFullInt", "MU_DisableRxFullInt", "MU_ReadStatus", "MU_SetFn"):
        assert f"+EXPORT_SYMBOL_GPL({fn});" in text, fn

