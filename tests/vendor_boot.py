"""Helpers of the vendor-kernel boot tests (tests/test_vendor_boot.py).

A vendor profile of ``kernel_configs/profiles`` names NXP's public repository
at a release tag; the tests take the tree from the environment instead
(``RPROCKIT_NXP_5_4_TREE`` and the others, NXP linux-imx git work trees).
:func:`tree_profile` writes the same profile with ``source.path`` pointing at
that tree (every relative path made absolute, nothing else changed), so the
pipeline (fetch -> patch -> configure -> build -> preflight -> verify) runs
exactly as ``invoke all --profile NAME`` does, in the shared test workspace.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rprockit.verify.target_shell import TargetShell, images_env, open_shell

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "kernel_configs" / "profiles"


def vendor_tree(var: str) -> Path:
    """The vendor tree named by ``var``, or skip the test naming the variable."""
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"set {var} to an NXP linux-imx git work tree to run this test")
    tree = Path(value).expanduser().resolve()
    if not (tree / "Makefile").is_file():
        pytest.skip(f"{var}={value} is not a kernel tree (no Makefile)")
    return tree


#: The series of fixes (not build fixes); an unpatched kernel is built without it.
FIX_SERIES = ROOT / "patches" / "imx-rproc"
#: Kconfig symbols only the series creates (loadable-imx-rpmsg: tristate IMX_RPMSG);
#: the unpatched kernel's fragments leave them out, its module set drops what they build.
SERIES_SYMBOLS = {"CONFIG_IMX_RPMSG": "imx_rpmsg"}
#: Symbols a fragment requests as modules that only the series lets be modules:
#: unpatched, ``HAVE_IMX_RPMSG`` (bool, =y) selects ``RPMSG_VIRTIO``, which selects
#: ``RPMSG`` and ``RPMSG_NS`` (NXP 5.15 drivers/rpmsg/Kconfig, ``config
#: HAVE_IMX_RPMSG``), so all three are built in; the unpatched fragments leave the
#: requests out and the module set drops their modules.
SERIES_MODULAR = {"CONFIG_RPMSG_VIRTIO": "virtio_rpmsg_bus", "CONFIG_RPMSG_NS": "rpmsg_ns",
                  "CONFIG_RPMSG": "rpmsg_core"}


def tree_profile(name: str, tree: Path, out_dir: Path, unpatched: bool = False) -> Path:
    """Write profile ``name`` with its source replaced by ``source.path: tree``.

    Args:
        name: a shipped profile (``kernel_configs/profiles/<name>.yaml``).
        tree: the local git work tree of the same kernel.
        out_dir: where the profile (and the fetch stage's lock file) goes.
        unpatched: the same kernel without the fix series (``patches/imx-rproc``):
            profile ``<name>-unpatched``, build fixes only, the fragments without
            :data:`SERIES_SYMBOLS` and :data:`SERIES_MODULAR` (written next to the
            profile) and the module set without the modules those symbols build; no
            target (build only).

    Returns:
        The written profile file.
    """
    src = PROFILES / f"{name}.yaml"
    data = yaml.safe_load(src.read_text())
    data["source"] = {"path": str(tree), "family": data["source"]["family"]}
    out_dir.mkdir(parents=True, exist_ok=True)

    def absolute(rel: str) -> str:
        return str((src.parent / rel).resolve())

    data["config"]["fragments"] = [absolute(f) for f in data["config"].get("fragments", [])]
    data["patches"] = [absolute(p) for p in data.get("patches", [])]
    if unpatched:
        data["name"] = f"{name}-unpatched"
        data["description"] = f"{data['description']}, without the fix series"
        data["patches"] = [p for p in data["patches"] if Path(p) != FIX_SERIES]
        data["config"]["fragments"] = [_without_series_symbols(Path(f), out_dir)
                                       for f in data["config"]["fragments"]]
        mods = yaml.safe_load((src.parent / data["modules"]).read_text())
        dropped = {*SERIES_SYMBOLS.values(), *SERIES_MODULAR.values()}
        mods["load_order"] = [m for m in mods["load_order"] if m not in dropped]
        mfile = out_dir / f"{data['name']}-modules.yaml"
        _write_if_changed(mfile, yaml.safe_dump(mods, sort_keys=False))
        data["modules"] = str(mfile)
        data.pop("target", None)
        data["verify"] = {"boot": False}
        name = data["name"]
    for key in ("modules", "target"):
        if key in data:
            data[key] = absolute(data[key])
    if "board_dts" in data["build"]:
        data["build"]["board_dts"] = [absolute(d) for d in data["build"]["board_dts"]]
    if "firmware" in data:
        data["firmware"]["source"] = absolute(data["firmware"]["source"])
    out = out_dir / f"{name}.yaml"
    _write_if_changed(out, f"# {name} on the local tree {tree} (written by tests/vendor_boot.py "
                      f"from {src.relative_to(ROOT)})\n" + yaml.safe_dump(data, sort_keys=False))
    return out


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _without_series_symbols(fragment: Path, out_dir: Path) -> str:
    """``fragment``, or a copy of it without the lines that set :data:`SERIES_SYMBOLS`
    or :data:`SERIES_MODULAR`."""
    lines = fragment.read_text().splitlines()
    keep = [ln for ln in lines
            if ln.split("=")[0].strip() not in {*SERIES_SYMBOLS, *SERIES_MODULAR}]
    if keep == lines:
        return str(fragment)
    out = out_dir / f"unpatched-{fragment.name}"
    _write_if_changed(out, f"# {fragment.name} without the symbols of the fix series\n"
                      + "\n".join(keep) + "\n")
    return str(out)


_TS = re.compile(r"^\[\s*\d+\.\d+\]\s?")


@contextlib.contextmanager
def booted(images: Path, target_file: Path) -> Iterator[tuple[TargetShell, float]]:
    """Boot the emulated board of ``target_file`` on ``images`` (``LG_RPROCKIT_IMAGES``);
    yield ``(shell, seconds to the shell)``."""
    from labgrid import Environment

    with images_env(images):
        target = Environment(str(target_file)).get_target("main")
        t0 = time.monotonic()
        try:
            with open_shell(target, target_file) as sh:
                yield sh, time.monotonic() - t0
        finally:
            target.cleanup()


def kernel_log(sh: TargetShell) -> list[str]:
    """The target's kernel log, one line per entry, without timestamps."""
    return [_TS.sub("", ln) for ln in sh.check("dmesg").splitlines() if ln.strip()]
