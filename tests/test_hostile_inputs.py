"""Hostile inputs through the real command line: injection, YAML bombs and tricks,
inputs that are not regular files, bad option values, sources that change.

Every case asserts exit 2 (bad input), no traceback and the culprit named;
where a tree or workspace must not change, it is compared byte-for-byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_util import (
    ROOT,
    assert_error,
    cli,
    git,
    make_tree,
    tree_state,
    two_series,
    write_profile,
)


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "tree")


def _fetch(prof: Path, ws: Path):
    return cli("fetch", "--profile", str(prof), "--workspace", str(ws))


def _git_profile(tmp_path: Path, tree: Path, url: str, ref: str = "main") -> Path:
    return write_profile(tmp_path / "prof" / "hostile.yaml", tree, [],
                         source=f"  git:\n    url: {url!r}\n    ref: {ref!r}\n")


# ---------------------------------------------------------------- injection (17)
@pytest.mark.parametrize("ref", [
    "--upload-pack=touch PWNED;:", "-oops", "a..b", "has space", "x.lock", "main~1", "main^",
    "a:b", "", "@{-1}",
])
def test_bad_ref_never_reaches_git(tmp_path, tree, ref):
    prof = _git_profile(tmp_path, tree, f"file://{tree}", ref)
    res = cli("fetch", "--profile", str(prof), "--workspace", str(tmp_path / "ws"))
    assert_error(res, "source.git.ref", "not valid")
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    assert not (tmp_path / "ws" / "hostile" / "src").exists()


@pytest.mark.parametrize("url", [
    "--upload-pack=touch PWNED", "-oProxyCommand=touch PWNED", "ext::sh -c touch% PWNED",
    "fd::3", "relative/path",
])
def test_bad_url_never_reaches_git(tmp_path, tree, url):
    prof = _git_profile(tmp_path, tree, url)
    res = cli("fetch", "--profile", str(prof), "--workspace", str(tmp_path / "ws"))
    assert_error(res, "source.git.url", "not valid")
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize("commit", [
    "--upload-pack=touch PWNED", "abc123", "A" * 40, "1" * 41, "HEAD",
])
def test_bad_lock_commit_never_reaches_git(tmp_path, tree, commit):
    prof = _git_profile(tmp_path, tree, f"file://{tree}")
    lock = prof.with_name("hostile.lock.yaml")
    lock.write_text(f"format: 1\nsource: {{url: 'file://{tree}', ref: main, "
                    f"commit: {commit!r}}}\n")
    assert_error(_fetch(prof, tmp_path / "ws"), str(lock), "commit", "delete")
    assert not list(tmp_path.rglob("PWNED"))


# ---------------------------------------------------------------- lock files (6)
@pytest.mark.parametrize("content,named", [
    ("- a\n- list\n", "no 'source' mapping"),
    ("format: 1\nsource: {url: x, ref: main}\n", "source.commit"),
    ("format: 1\nsource: [unclosed\n", "not valid YAML"),
    (b"format: 1\nsource: {url: '\xff'}\n", "byte offset 25"),
    ("", "no 'source' mapping"),
])
def test_garbage_lock_file(tmp_path, tree, content, named):
    prof = _git_profile(tmp_path, tree, f"file://{tree}")
    lock = prof.with_name("hostile.lock.yaml")
    lock.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_error(_fetch(prof, tmp_path / "ws"), str(lock), named)


def test_lock_file_that_is_a_directory(tmp_path, tree):
    prof = _git_profile(tmp_path, tree, f"file://{tree}")
    prof.with_name("hostile.lock.yaml").mkdir()
    assert_error(_fetch(prof, tmp_path / "ws"), "hostile.lock.yaml", "is a directory")


# ---------------------------------------------------------------- YAML (24)
def _profile_text(tree: Path, body: str = "") -> str:
    return (f"format: 1\nname: hostile\nsource:\n  path: {tree}\narch: arm\n"
            "cross_compile: arm-linux-gnueabihf-\nconfig:\n  base: allnoconfig\n"
            f"build:\n  image: zImage\n{body}")


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


YAML_CASES = {
    "billion-laughs": (lambda t: _profile_text(t) + "x-bomb:\n" + "".join(
        f"  {ln}\n" for ln in _bomb().splitlines()), "200000 nodes"),
    "recursive-alias": (lambda t: _profile_text(t) + "x: &a [*a]\n", "recursive alias"),
    "duplicate-top-key": (lambda t: _profile_text(t) + "arch: arm64\n", "duplicate key 'arch'"),
    "duplicate-nested-key": (lambda t: _profile_text(t).replace(
        "  base: allnoconfig\n", "  base: allnoconfig\n  base: imx_v6_v7_defconfig\n"),
        "duplicate key 'base'"),
    "int-key": (lambda t: _profile_text(t) + "1: one\n", "key '1' is not a string"),
    "null-key": (lambda t: _profile_text(t) + "null: x\n", "is not a string"),
    "bool-key": (lambda t: _profile_text(t) + "true: x\n", "is not a string"),
    "complex-key": (lambda t: _profile_text(t) + "? [a, b]\n: x\n", "is not a string"),
    "name-dotdot": (lambda t: _profile_text(t).replace("name: hostile", 'name: ".."'), "name"),
    "name-dot": (lambda t: _profile_text(t).replace("name: hostile", 'name: "."'), "name"),
    "name-slash": (lambda t: _profile_text(t).replace("name: hostile", 'name: "../x"'), "name"),
    "name-too-long": (lambda t: _profile_text(t).replace("name: hostile", "name: " + "n" * 300),
                      "name"),
    "deep-nesting": (lambda t: _profile_text(t) + "x: " + "[" * 200 + "]" * 200 + "\n",
                     "nested deeper than 64"),
    "path-and-git": (lambda t: _profile_text(t).replace(
        f"  path: {t}\n", f"  path: {t}\n  git: {{url: 'file://{t}', ref: main}}\n"),
        "give exactly one of debian_package, git, path (found git and path)"),
    "no-source-kind": (lambda t: _profile_text(t).replace(f"  path: {t}\n", "  family: mainline\n"),
                       "found none"),
    "tab-indent": (lambda t: _profile_text(t).replace("  base:", "\tbase:"), "not valid YAML"),
    "a-list": (lambda t: "- a\n- b\n", "must be a YAML mapping"),
    "empty": (lambda t: "", "must be a YAML mapping"),
    "wrong-type": (lambda t: _profile_text(t).replace("arch: arm", "arch: [arm]"), "arch"),
}


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_hostile_profile_yaml(tmp_path, tree, case):
    make, named = YAML_CASES[case]
    prof = tmp_path / "p.yaml"
    prof.write_text(make(tree))
    text = assert_error(_fetch(prof, tmp_path / "ws"), str(prof), named)
    assert len(text) < 20_000
    assert not (tmp_path / "ws").exists()  # nothing written outside (name: ..) or at all


def test_non_utf8_profile_names_byte_offset(tmp_path, tree):
    prof = tmp_path / "p.yaml"
    text = _profile_text(tree).encode()
    prof.write_bytes(text[:20] + b"\xe9" + text[20:])
    assert_error(_fetch(prof, tmp_path / "ws"), str(prof), "byte offset 20", "0xe9")


def test_huge_profile_is_refused_with_a_short_message(tmp_path, tree):
    """700,000 keys (about 8 MB): over the size limit; the message stays short."""
    prof = tmp_path / "p.yaml"
    prof.write_text(_profile_text(tree) + "".join(f"k{i}: 1\n" for i in range(700_000)))
    text = assert_error(_fetch(prof, tmp_path / "ws"), str(prof), "larger than")
    assert len(text) < 2000


def test_many_unknown_keys_give_a_bounded_message(tmp_path, tree):
    prof = tmp_path / "p.yaml"
    prof.write_text(_profile_text(tree) + "".join(f"k{i}: 1\n" for i in range(60_000)))
    text = assert_error(_fetch(prof, tmp_path / "ws"), str(prof), "unknown key", "more problem")
    assert len(text) < 20_000


def test_too_many_nodes_without_aliases(tmp_path, tree):
    prof = tmp_path / "p.yaml"
    prof.write_text(_profile_text(tree) + "x: [" + ",".join(["1"] * 250_000) + "]\n")
    assert_error(_fetch(prof, tmp_path / "ws"), str(prof), "200000 nodes")


def test_non_utf8_module_set(tmp_path, tree):
    mods = tmp_path / "mods.yaml"
    mods.write_bytes(b"format: 1\nbuild_dirs: [drivers/remoteproc]\nload_order: [\xff]\n")
    prof = tmp_path / "p.yaml"
    prof.write_text(_profile_text(tree, f"modules: {mods}\n"))
    assert_error(_fetch(prof, tmp_path / "ws"), str(mods), "not UTF-8")


def test_non_utf8_series_file(tmp_path, tree):
    a, _ = two_series(tree, tmp_path)
    (a / "series").write_bytes(b"0001-afix1.patch\n\xfe\n")
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [a])
    before = tree_state(tree)
    assert_error(cli("patch", "--profile", str(prof), "--workspace", str(tmp_path / "ws"),
                     "--tree", str(tree)), str(a / "series"), "byte offset 17")
    assert tree_state(tree) == before


def test_non_utf8_series_meta(tmp_path, tree):
    a, _ = two_series(tree, tmp_path)
    meta = a / "meta.yaml"
    meta.write_bytes(meta.read_bytes().replace(b"test only", b"test \xff only"))
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [a])
    assert_error(cli("patch", "--profile", str(prof), "--workspace", str(tmp_path / "ws"),
                     "--tree", str(tree), "--check"), str(meta), "not UTF-8")


def test_duplicate_patch_in_meta(tmp_path, tree):
    a, _ = two_series(tree, tmp_path)
    meta = a / "meta.yaml"
    text = meta.read_text()
    first = text.split("  0002-afix2.patch:")[0].split("patches:\n")[1]
    meta.write_text(text + first)
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [a])
    assert_error(cli("patch", "--profile", str(prof), "--workspace", str(tmp_path / "ws"),
                     "--tree", str(tree), "--check"), str(meta), "duplicate key")


# ---------------------------------------------------------------- not regular files (12)
@pytest.fixture(scope="module")
def firmware_elf(tmp_path_factory) -> Path:
    """The project's M-core test firmware, built with arm-none-eabi-gcc."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs arm-none-eabi-gcc (gcc-arm-none-eabi)")
    from rprockit.firmware import build_firmware
    from rprockit.runner import Runner

    return build_firmware(ROOT / "firmware" / "rproc-test",
                          tmp_path_factory.mktemp("fw") / "good", Runner())


@pytest.fixture
def fifo(tmp_path):
    p = tmp_path / "fifo"
    os.mkfifo(p)
    return p


def _special(kind: str, tmp_path: Path, fifo: Path) -> Path:
    if kind == "fifo":
        return fifo
    if kind == "dir":
        (tmp_path / "adir").mkdir()
        return tmp_path / "adir"
    return Path("/dev/zero")


@pytest.mark.parametrize("kind,named", [("fifo", "FIFO"), ("dir", "directory"),
                                        ("zero", "not a regular file")])
def test_firmware_that_is_not_a_file(tmp_path, fifo, kind, named):
    p = _special(kind, tmp_path, fifo)
    assert_error(cli("check-firmware", str(p), "--soc", "imx7d"), str(p), named)


@pytest.mark.parametrize("kind,named", [("fifo", "FIFO"), ("dir", "directory"),
                                        ("zero", "not a regular file")])
def test_dtb_that_is_not_a_file(tmp_path, fifo, kind, named, firmware_elf):
    elf = firmware_elf
    p = _special(kind, tmp_path, fifo)
    assert_error(cli("check-firmware", str(elf), "--soc", "imx7d", "--dtb", str(p)), str(p),
                 named)


@pytest.mark.parametrize("kind,named", [("fifo", "FIFO"), ("dir", "directory"),
                                        ("zero", "not a regular file")])
def test_kernel_log_that_is_not_a_file(tmp_path, fifo, kind, named):
    p = _special(kind, tmp_path, fifo)
    assert_error(cli("diagnose", str(p)), str(p), named)


@pytest.mark.parametrize("kind,named", [("fifo", "not a regular file"),
                                        ("dir", "is a directory"),
                                        ("zero", "not a regular file")])
def test_profile_that_is_not_a_file(tmp_path, fifo, kind, named):
    p = _special(kind, tmp_path, fifo)
    assert_error(cli("fetch", "--profile", str(p), "--workspace", str(tmp_path / "ws")),
                 str(p), named)


# ---------------------------------------------------------------- command line (22)
@pytest.mark.parametrize("args,named", [
    (["fetch", "--bogus"], "--bogus"),
    (["no-such-task"], "no-such-task"),
    (["verify", "--cycles", "abc"], "--cycles abc"),
    (["all", "--cycles", "abc"], "--cycles abc"),
    (["verify", "--cycles", "0"], "--cycles 0"),
    (["verify", "--cycles", "-1"], "--cycles -1"),
    (["all", "--cycles=0"], "--cycles 0"),
    (["patch-matrix"], "--tree"),
    (["patch-matrix", "--tree", "nolabel"], "LABEL=PATH"),
    (["patch-matrix", "--tree", "=/tmp"], "LABEL=PATH"),
    (["patch-matrix", "--tree", "x=/nonexistent/tree"], "/nonexistent/tree"),
    (["deploy"], "--target"),
    (["deploy", "--target", "root@127.0.0.1:1", "--rollback", "--force"], "--force"),
    (["deploy", "--target", "root@127.0.0.1:99999"], "99999"),
    (["check-firmware"], "elf"),
    (["verify", "--facts", "--target", "/nonexistent.yaml"], "/nonexistent.yaml"),
])
def test_bad_command_line(args, named):
    assert_error(cli(*args), named)


def test_duplicate_tree_labels(tmp_path, tree):
    other = make_tree(tmp_path / "other")
    assert_error(cli("patch-matrix", "--tree", f"x={tree}", "--tree", f"x={other}"),
                 "label 'x' is given twice")


def test_json_out_to_missing_dir(tmp_path, tree):
    a, _ = two_series(tree, tmp_path)
    out = tmp_path / "missing" / "m.json"
    assert_error(cli("patch-matrix", "--series", str(a), "--tree", f"t={tree}", "--json-out",
                     str(out)), "--json-out", "does not exist")
    assert not out.parent.exists()


def test_json_out_to_a_directory(tmp_path, tree):
    a, _ = two_series(tree, tmp_path)
    assert_error(cli("patch-matrix", "--series", str(a), "--tree", f"t={tree}", "--json-out",
                     str(tmp_path)), "--json-out", "not a directory")


def test_relative_series_resolves_against_cwd(tmp_path, tree, monkeypatch):
    two_series(tree, tmp_path)
    monkeypatch.chdir(tmp_path)
    res = cli("patch-matrix", "--series", "series-a", "--tree", f"t={tree}")
    assert res.code == 0, res.text
    assert "afix1" in res.text
    assert_error(cli("patch-matrix", "--series", "no-such-series", "--tree", f"t={tree}"),
                 str(tmp_path / "no-such-series"))


def test_patch_tree_missing(tmp_path, tree):
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [])
    assert_error(cli("patch", "--profile", str(prof), "--tree", "/nonexistent/kernel"),
                 "/nonexistent/kernel", "no such directory")


def test_patch_tree_not_git(tmp_path, tree):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "Makefile").write_text("VERSION = 5\nPATCHLEVEL = 4\n")
    a, _ = two_series(tree, tmp_path)
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [a])
    assert_error(cli("patch", "--profile", str(prof), "--workspace", str(tmp_path / "ws"),
                     "--tree", str(plain)), str(plain), "not a git")


def test_patch_matrix_on_a_non_kernel_dir_names_it(tmp_path, tree):
    a, _ = two_series(tree, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    assert_error(cli("patch-matrix", "--series", str(a), "--tree", f"e={empty}"), str(empty))


def test_workspace_that_is_a_file(tmp_path, tree):
    ws = tmp_path / "ws"
    ws.write_text("not a dir")
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [])
    assert_error(cli("fetch", "--profile", str(prof), "--workspace", str(ws)), "--workspace",
                 str(ws))


@pytest.mark.parametrize("content,named", [
    ("{broken", "not a rprockit build manifest"),
    ("{}", "not a rprockit build manifest"),
    ('{"id": "x"}', "kernel_release"),
    ("[1, 2]", "not a rprockit build manifest"),
])
def test_broken_manifest_on_deploy(tmp_path, tree, content, named):
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [])
    art = tmp_path / "ws" / "hostile" / "artifacts"
    art.mkdir(parents=True)
    (art / "manifest.json").write_text(content)
    assert_error(cli("deploy", "--target", "root@127.0.0.1:1", "--profile", str(prof),
                     "--workspace", str(tmp_path / "ws")), "manifest.json", named)


def test_deploy_without_a_build(tmp_path, tree):
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [])
    assert_error(cli("deploy", "--target", "root@127.0.0.1:1", "--profile", str(prof),
                     "--workspace", str(tmp_path / "ws")), "run the build stage first")


def test_unknown_option_exits_2_from_the_console_script():
    proc = subprocess.run([sys.executable, "-c", "from rprockit.cli import main; main()",
                           "patch", "--bogus"], capture_output=True, text=True, check=False)
    assert_error(proc, "--bogus")


# ---------------------------------------------------------------- a workspace knows its source (7)
def test_changed_source_path_is_refused_with_the_fix(tmp_path, tree):
    other = make_tree(tmp_path / "other", (6, 1))
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [])
    ws = tmp_path / "ws"
    assert _fetch(prof, ws).code == 0
    src = ws / "hostile" / "src"
    before = tree_state(src)
    write_profile(prof, other, [])
    assert_error(_fetch(prof, ws), str(tree), str(other), "rm -rf")
    assert tree_state(src) == before
    lock = prof.with_name("hostile.lock.yaml").read_text()
    assert str(other) not in lock


def test_fixed_url_after_a_typo_fetches_fresh(tmp_path, tree):
    prof = _git_profile(tmp_path, tree, f"file://{tmp_path}/typo.git")
    ws = tmp_path / "ws"
    assert_error(_fetch(prof, ws), "typo.git")
    assert not (ws / "hostile" / "src").exists()
    assert not list((ws / "hostile").glob("src.partial*"))
    _git_profile(tmp_path, tree, f"file://{tree}")
    res = _fetch(prof, ws)
    assert res.code == 0, res.text
    assert git(ws / "hostile" / "src", "rev-parse", "HEAD") == git(tree, "rev-parse", "HEAD")


def test_failed_fetch_leaves_no_partial_repo(tmp_path, tree):
    prof = _git_profile(tmp_path, tree, f"file://{tree}", "no-such-branch")
    ws = tmp_path / "ws"
    assert_error(_fetch(prof, ws), "no-such-branch")
    assert not (ws / "hostile" / "src").exists()
    assert not list(ws.rglob("tmp_pack_*")) and not list(ws.rglob("src.partial*"))


def test_local_source_with_uncommitted_edit_is_refused(tmp_path, tree):
    p = tree / "drivers/remoteproc/core.c"
    p.write_text(p.read_text() + "/* my edit */\n")
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [])
    before = tree_state(tree)
    assert_error(_fetch(prof, tmp_path / "ws"), "drivers/remoteproc/core.c", "left out")
    assert tree_state(tree) == before
    assert not (tmp_path / "ws" / "hostile" / "src").exists()


def test_local_source_objects_are_shared(tmp_path, tree):
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [])
    assert _fetch(prof, tmp_path / "ws").code == 0
    alt = tmp_path / "ws" / "hostile" / "src" / ".git" / "objects" / "info" / "alternates"
    assert alt.read_text().strip() == str(tree / ".git" / "objects")
    assert not list((alt.parent.parent / "pack").glob("*.pack"))


def test_source_path_not_a_repo(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", plain, [])
    assert_error(_fetch(prof, tmp_path / "ws"), str(plain), "not a git repository")


def test_workspace_src_that_is_not_git(tmp_path, tree):
    prof = write_profile(tmp_path / "prof" / "hostile.yaml", tree, [])
    src = tmp_path / "ws" / "hostile" / "src"
    src.mkdir(parents=True)
    (src / "mine").write_text("keep me\n")
    assert_error(_fetch(prof, tmp_path / "ws"), str(src), "not a git tree")
    assert (src / "mine").read_text() == "keep me\n"


# ---------------------------------------------------------------- Kconfig advice (7)
KCONFIG = """mainmenu "hostile mini Kconfig"
config MODULES
\tbool "modules"
\toption modules
config FOO
\tbool "foo"
config BAR
\ttristate "bar"
config DRAM_BASE
\thex "dram base"
\tdefault 0x80000000
config NR_CPUS
\tint "cpus"
\tdefault 2
"""


@pytest.fixture
def kconfig_tree(tmp_path):
    """A kernel-like tree with a five-symbol Kconfig (types as in Linux: bool, tristate,
    hex, int)."""
    t = make_tree(tmp_path / "ktree", (6, 1))
    (t / "Kconfig").write_text(KCONFIG)
    git(t, "add", "Kconfig")
    git(t, "commit", "-qm", "Kconfig")
    return t


def _configure(tmp_path: Path, tree: Path, *fragments: str):
    frags = []
    for i, text in enumerate(fragments):
        f = tmp_path / f"frag{i}.config"
        f.write_bytes(text if isinstance(text, bytes) else text.encode())
        frags.append(f)
    prof = tmp_path / "prof" / "hostile.yaml"
    write_profile(prof, tree, [])
    prof.write_text(prof.read_text().replace(
        "  base: allnoconfig\n",
        "  base: allnoconfig\n  fragments:\n" + "".join(f"    - {f}\n" for f in frags)))
    return cli("configure", "--profile", str(prof), "--workspace", str(tmp_path / "ws"))


@pytest.mark.parametrize("frag,named", [
    ("CONFIG_DRAM_BASE=0xZZZZ\n", "'0xZZZZ' is not a hex value"),
    ("CONFIG_NR_CPUS=abc\n", "'abc' is not an integer"),
    ("CONFIG_MODULES=y\nCONFIG_FOO=m\n", "m is impossible for a bool"),
    ("CONFIG_BAR=yes\n", "tristate"),
    (b"CONFIG_FOO=y\n# caf\xe9\n", "byte offset 18"),
])
def test_kconfig_value_advice(tmp_path, kconfig_tree, frag, named):
    text = assert_error(_configure(tmp_path, kconfig_tree, frag), named)
    assert "depends on" not in text
    assert not (tmp_path / "ws" / "hostile" / "out" / ".config").exists()


def test_conflicting_values_across_fragments_warn(tmp_path, kconfig_tree):
    res = _configure(tmp_path, kconfig_tree, "CONFIG_NR_CPUS=4\n", "CONFIG_NR_CPUS=8\n")
    assert res.code == 0, res.text
    assert "Value of CONFIG_NR_CPUS is redefined by fragment" in res.text
    assert "Previous value: 4" in res.text and "New value: 8" in res.text


def test_conflicting_values_in_one_fragment_warn(tmp_path, kconfig_tree):
    res = _configure(tmp_path, kconfig_tree, "CONFIG_FOO=y\nCONFIG_FOO=n\n")
    assert res.code == 0, res.text
    assert "Value of CONFIG_FOO is redefined" in res.text and "frag0.config:2" in res.text
