"""Classification by code: every variant of every fix on small kernel-like git trees.

The trees are real git repositories with a top-level Makefile and the few
lines of the files the fixes change, modelled on the vendor files named in
each fixture; the patches are real ``git format-patch`` output.
"""

from __future__ import annotations

from pathlib import Path

from test_patch_engine import (  # the autouse fixture isolates HOME and GIT_*
    git,
    isolated_git,  # noqa: F401
    make_patch,
    replace,
    write,
    write_series,
)

from rprockit.kernel_tree import detect_family
from rprockit.patch import Status, apply_series, classify, load_series, matrix

ELF = "drivers/remoteproc/remoteproc_elf_loader.c"

#: rproc_elf_load_segments() of NXP 4.14.78 (drivers/remoteproc/remoteproc_elf_loader.c
#: lines 160-205): no I/O copy, no memsz == 0 skip
LOADER_414 = [
    "int rproc_elf_load_segments(struct rproc *rproc, const struct firmware *fw)",
    "{",
    "\tfor (i = 0; i < ehdr->e_phnum; i++, phdr++) {",
    "\t\tu32 memsz = phdr->p_memsz;",
    "\t\tvoid *ptr;",
    "",
    "\t\tif (phdr->p_type != PT_LOAD)",
    "\t\t\tcontinue;",
    "",
    "\t\tptr = rproc_da_to_va(rproc, da, memsz);",
    "\t\tif (phdr->p_filesz)",
    "\t\t\tmemcpy(ptr, elf_data + phdr->p_offset, filesz);",
    "",
    "\t\tif (memsz > filesz)",
    "\t\t\tmemset(ptr + filesz, 0, memsz - filesz);",
    "\t}",
    "\treturn ret;",
    "}",
]

#: the same function in TechNexion's NXP 5.15.71 (lines 175-241): the I/O copy of
#: "remoteproc: elf_loader: Fix loading segment when is_iomem true" but no skip
LOADER_515 = [
    "int rproc_elf_load_segments(struct rproc *rproc, const struct firmware *fw)",
    "{",
    "\tfor (i = 0; i < phnum; i++, phdr += elf_phdr_get_size) {",
    "\t\tu64 memsz = elf_phdr_get_p_memsz(class, phdr);",
    "\t\tbool is_iomem = false;",
    "\t\tvoid *ptr;",
    "",
    "\t\tif (type != PT_LOAD)",
    "\t\t\tcontinue;",
    "",
    "\t\tptr = rproc_da_to_va(rproc, da, memsz, &is_iomem);",
    "\t\tif (filesz) {",
    "\t\t\tif (is_iomem)",
    "\t\t\t\tmemcpy_toio((void __iomem *)ptr, elf_data + offset, filesz);",
    "\t\t\telse",
    "\t\t\t\tmemcpy(ptr, elf_data + offset, filesz);",
    "\t\t}",
    "\t\tif (memsz > filesz) {",
    "\t\t\tif (is_iomem)",
    "\t\t\t\tmemset_io((void __iomem *)(ptr + filesz), 0, memsz - filesz);",
    "\t\t\telse",
    "\t\t\t\tmemset(ptr + filesz, 0, memsz - filesz);",
    "\t\t}",
    "\t}",
    "\treturn ret;",
    "}",
]

#: NXP 6.1.55 (line 184) and mainline since v5.19: both parts
LOADER_61 = [ln.replace("if (type != PT_LOAD)", "if (type != PT_LOAD || !memsz)")
             for ln in LOADER_515]

PRESENT_414 = [{"file": ELF, "regex": r"PT_LOAD \|\| !memsz\)"},
               {"file": ELF, "regex": r"memset_io\("}]
PRESENT_515 = [{"file": ELF, "regex": r"PT_LOAD \|\| !memsz\)"},
               {"file": ELF, "regex": r"memcpy_toio\("}]


def kernel_tree(path: Path, version: tuple[int, int], files: dict[str, list[str]],
                nxp: bool = True) -> Path:
    """A kernel-like git tree: Makefile (VERSION/PATCHLEVEL) plus ``files``."""
    path.mkdir(parents=True)
    git(path, "init", "-q")
    write(path, "Makefile", [f"VERSION = {version[0]}", f"PATCHLEVEL = {version[1]}",
                             "SUBLEVEL = 9", "EXTRAVERSION =", "NAME = test"])
    if nxp:  # the NXP marker of data/kernel-families.yaml
        write(path, "drivers/rpmsg/imx_rpmsg.c", ["/* NXP imx_rpmsg */", "arch_initcall(x);"])
    for rel, lines in files.items():
        write(path, rel, lines)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "base")
    return path


def _elf_series(tmp_path: Path) -> tuple[Path, str, str]:
    """An nxp-4.14 variant (I/O copy + skip) and an nxp-5.15 variant (skip only)."""
    sdir = tmp_path / "series"
    helper = kernel_tree(tmp_path / "h414", (4, 14), {ELF: LOADER_414})

    def io_copy(repo: Path) -> None:
        write(repo, ELF, [ln.replace("if (phdr->p_type != PT_LOAD)",
                                     "if (phdr->p_type != PT_LOAD || !memsz)")
                          .replace("memset(ptr + filesz", "memset_io(ptr + filesz")
                          for ln in LOADER_414])
    v414 = make_patch(helper, sdir, "nxp-4.14/0003-io.patch", io_copy,
                      "remoteproc: elf_loader: load segments into I/O memory")
    helper = kernel_tree(tmp_path / "h515", (5, 15), {ELF: LOADER_515})
    v515 = make_patch(helper, sdir, "nxp-5.15/0003-skip.patch",
                      replace(ELF, "if (type != PT_LOAD)\n", "if (type != PT_LOAD || !memsz)\n"),
                      "remoteproc: elf_loader: skip segment with memsz as zero")
    write_series(sdir, [
        (v414, {"fix": "elf-segment-loading", "families": ["nxp-4.14"],
                "present_if": PRESENT_414}),
        (v515, {"fix": "elf-segment-loading", "families": ["nxp-5.15", "mainline"],
                "present_if": PRESENT_515,
                "requires": [{"file": ELF, "regex": r"memcpy_toio\("}]}),
    ])
    return sdir, v414, v515


def test_each_line_gets_its_status_from_its_code(tmp_path):
    sdir, v414, v515 = _elf_series(tmp_path)
    series = load_series(sdir)
    trees = {"4.14": kernel_tree(tmp_path / "t414", (4, 14), {ELF: LOADER_414}),
             "5.15": kernel_tree(tmp_path / "t515", (5, 15), {ELF: LOADER_515}),
             "6.1": kernel_tree(tmp_path / "t61", (6, 1), {ELF: LOADER_61})}
    m = matrix(trees, series)
    assert m.cell("elf-segment-loading", "4.14") == ("applies", v414)
    assert m.cell("elf-segment-loading", "6.1") == ("already-present", v515)
    # 5.15: the I/O copy is there, the skip is not; the 5.15 variant adds it
    status, variant = m.cell("elf-segment-loading", "5.15")
    assert (status, variant) == ("partially-present", v515)
    r = m.reports["5.15"].results[0]
    assert r.evidence["adds"] == v515 and r.evidence["chosen"] == v515
    assert r.evidence["missing"] == [rf"{ELF} =~ /PT_LOAD \|\| !memsz\)/"]
    assert f"{ELF}:14: memcpy_toio((void __iomem *)ptr, elf_data + offset, filesz);" \
        in r.evidence["matched"]
    assert f"{ELF}:20: memset_io((void __iomem *)(ptr + filesz), 0, memsz - filesz);" \
        in r.evidence["matched"]
    # the 4.14 variant was tried too, and does not fit this code
    trials = {t["variant"]: t["result"] for t in r.evidence["trials"]}
    assert trials == {v515: "strict", v414: "conflict"}
    # applying adds the missing part; the tree then has the whole fix
    done = apply_series(trees["5.15"], series)
    assert done.results[0].status is Status.PARTIALLY_PRESENT and done.results[0].commit
    assert "if (type != PT_LOAD || !memsz)" in (trees["5.15"] / ELF).read_text()
    again = classify(trees["5.15"], series).results[0]
    assert (again.status, again.method) == (Status.ALREADY_PRESENT, "probe")


def test_family_orders_variants_but_another_variant_may_win(tmp_path):
    sdir, v414, v515 = _elf_series(tmp_path)
    series = load_series(sdir)
    # a mainline 5.10-like tree with no vendor marker and the 4.14 loader: the
    # mainline-tagged 5.15 variant comes first but needs the I/O copy
    tree = kernel_tree(tmp_path / "ml", (5, 10), {ELF: LOADER_414}, nxp=False)
    r = classify(tree, series).results[0]
    assert r.evidence["order"] == [v515, v414]
    assert (r.status, r.name) == (Status.APPLIES, v414)
    trials = {t["variant"]: t for t in r.evidence["trials"]}
    assert trials[v515]["result"] == "not-applicable"
    assert trials[v515]["missing"] == rf"{ELF} =~ /memcpy_toio\(/"


def test_unknown_vendor_line_and_forks_are_probed_too(tmp_path):
    kcfg = "drivers/rpmsg/Kconfig"
    kconfig = ["config HAVE_IMX_RPMSG", "\tbool \"IMX RPMSG driver on the AMP SOCs\"",
               "\tdefault y", "\tdepends on IMX_MBOX", "", "config IMX_RPMSG_TTY",
               "\ttristate \"tty\""]
    sdir = tmp_path / "series"
    names = []
    for fam, ver in (("nxp-5.15", (5, 15)), ("nxp-6.1", (6, 1))):
        helper = kernel_tree(tmp_path / f"h{fam}", ver, {kcfg: kconfig})
        names.append(make_patch(helper, sdir, f"{fam}/0004-tristate.patch",
                                replace(kcfg, "\tdepends on IMX_MBOX\n",
                                        "\tdepends on IMX_MBOX\n\nconfig IMX_RPMSG\n"
                                        "\ttristate \"i.MX RPMSG\"\n"),
                                f"rpmsg: imx_rpmsg: tristate ({fam})"))
    write_series(sdir, [(n, {"fix": "loadable-imx-rpmsg", "families": [n.split("/")[0]],
                             "present_if": [{"file": kcfg,
                                             "regex": r"config IMX_RPMSG\n\s*tristate"}],
                             "requires": [{"file": "drivers/rpmsg/imx_rpmsg.c"}]})
                        for n in names])
    series = load_series(sdir)
    # NXP 6.6 (no variant written for it): the nearest line, 6.1, is tried first
    t66 = kernel_tree(tmp_path / "t66", (6, 6), {kcfg: kconfig})
    assert detect_family(t66).family == "nxp-6.6"
    r = classify(t66, series).results[0]
    assert r.evidence["order"] == [names[1], names[0]]
    assert (r.status, r.name) == (Status.APPLIES, names[1])
    # a board maker's 5.15 fork (the NXP marker files): the 5.15 variant
    fork = kernel_tree(tmp_path / "fork", (5, 15), {kcfg: kconfig})
    r = classify(fork, series).results[0]
    assert (r.status, r.name) == (Status.APPLIES, names[0])
    # mainline: no imx_rpmsg.c; every variant says which file is missing
    ml = kernel_tree(tmp_path / "ml", (6, 1), {kcfg: kconfig}, nxp=False)
    r = classify(ml, series).results[0]
    assert (r.status, r.method) == (Status.NOT_APPLICABLE, "requires")
    assert "drivers/rpmsg/imx_rpmsg.c does not exist" in r.detail
    assert r.evidence["missing"] == ["drivers/rpmsg/imx_rpmsg.c"]


def test_conflict_names_each_variant_and_dry_run_writes_nothing(tmp_path):
    sdir, v414, v515 = _elf_series(tmp_path)
    series = load_series(sdir)
    # the loader reworked by a fork: the code exists, neither variant fits it
    reworked = [ln.replace("if (type != PT_LOAD)", "if (!rproc_segment_wanted(type))")
                .replace("memcpy(ptr, elf_data", "rproc_copy(ptr, elf_data")
                for ln in LOADER_515]
    tree = kernel_tree(tmp_path / "fork", (5, 15), {ELF: reworked})
    gitdir = tree / ".git"
    before = sorted(str(p.relative_to(gitdir)) for p in gitdir.rglob("*"))
    r = classify(tree, series).results[0]
    assert (r.status, r.name) == (Status.CONFLICT, v515)
    assert f"of {ELF} does not apply" in r.detail
    trials = {t["variant"]: t["result"] for t in r.evidence["trials"]}
    assert trials == {v515: "conflict", v414: "conflict"}
    # nothing in the user's tree or .git was written by the trial
    assert sorted(str(p.relative_to(gitdir)) for p in gitdir.rglob("*")) == before
    assert git(tree, "status", "--porcelain") == ""


def test_a_line_where_nxp_made_the_bool_a_module_is_already_present(tmp_path):
    # newer NXP lines declare "config HAVE_IMX_RPMSG / tristate" in drivers/rpmsg/Kconfig
    # (nxp-imx/linux-imx); with a module_exit the curated fix is there in another form
    series = load_series(Path(__file__).resolve().parents[1] / "patches" / "imx-rproc")
    tree = kernel_tree(tmp_path / "t66", (6, 6), {
        "drivers/rpmsg/Kconfig": ["config HAVE_IMX_RPMSG", "\ttristate \"IMX RPMSG driver\"",
                                  "\tdefault y", "\tdepends on IMX_MBOX"],
        "drivers/rpmsg/imx_rpmsg.c": ["rpdev->rx_ch = mbox_request_channel_byname(cl, \"rx\");",
                                      "module_init(imx_rpmsg_init);",
                                      "module_exit(imx_rpmsg_exit);"]})
    r = next(r for r in classify(tree, series).results if r.fix == "loadable-imx-rpmsg")
    assert (r.status, r.method) == (Status.ALREADY_PRESENT, "probe")
    assert r.name.startswith("nxp-6.1/")  # the nearest line's variant is asked first
    assert "drivers/rpmsg/Kconfig:1: config HAVE_IMX_RPMSG" in r.detail


def test_check_mode_neither_recovers_nor_writes_into_git(tmp_path):
    import json

    sdir, _, _ = _elf_series(tmp_path)
    series = load_series(sdir)
    tree = kernel_tree(tmp_path / "t515", (5, 15), {ELF: LOADER_515})
    write(tree, "README", ["a commit after an interrupted run"])
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "second")
    head = git(tree, "rev-parse", "HEAD")
    state = tree / ".git" / "rprockit-patch-state.json"
    state.write_text(json.dumps({"start": git(tree, "rev-parse", "HEAD~1"), "clean": True,
                                 "branch": "refs/heads/main"}))
    report = apply_series(tree, series, check=True)
    assert git(tree, "rev-parse", "HEAD") == head and state.is_file()
    assert any("interrupted patch run" in w for w in report.warnings)
    assert report.results[0].status is Status.PARTIALLY_PRESENT
    assert not (tree / ".git" / "rprockit-patch-report.json").exists()


def test_patch_tree_detects_the_family_of_the_tree_given(tmp_path):
    from rprockit.patch.stage import check_series
    from rprockit.profile import load_profile
    from rprockit.runner import Runner
    from rprockit.workspace import Workspace

    root = Path(__file__).resolve().parents[1]
    profile = load_profile(root / "kernel_configs" / "profiles" / "imx7d-mainline-6.1.yaml")
    assert profile.source.family == "mainline"
    tree = kernel_tree(tmp_path / "t515", (5, 15), {ELF: LOADER_515})
    (report,) = check_series(profile, Workspace(tmp_path / "ws", profile.name), Runner(),
                             tree, check=True)
    assert (report.family, report.version) == ("nxp-5.15", "5.15")
    elf = next(r for r in report.results if r.fix == "elf-segment-loading")
    assert elf.status is Status.PARTIALLY_PRESENT and elf.name.startswith("nxp-5.15/")
