"""Pre-deploy checks: read the target, change nothing, report every problem at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from pathlib import Path

from ..kmod import symbol_versions
from ..running import ReleaseParts, check_crcs, has_crcs, read_symvers, release_mismatch_reason
from ..target import TargetDesc
from .artifacts import CheckedArtifacts, DeployArtifacts
from .install import Layout
from .remote import DiskFree, RemoteShell, check_dirs, release_and_tools

#: Tools looked up on the target; sha256sum, df, mv, ln, cp, rm, cat, mkdir are required.
REQUIRED_TOOLS = ("sha256sum", "df", "mv", "ln", "cp", "rm", "cat", "mkdir")
OPTIONAL_TOOLS = ("depmod", "modprobe", "insmod", "rmmod", "dmesg")

#: Room kept free beyond the staged bytes (deploy record, directory blocks), KiB.
MARGIN_KIB = 64


@dataclass
class Findings:
    """Outcome of the checks.

    Attributes:
        release: the target's ``uname -r``.
        tools: available tools and their paths on the target.
        hard: problems ``--force`` does not override (space, writability, tools).
        forceable: kernel release / vermagic mismatches.
        notes: informational lines (e.g. depmod missing).
    """

    release: str
    tools: dict[str, str]
    hard: list[str] = field(default_factory=list)
    forceable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def target_release(remote: RemoteShell) -> str:
    """The running kernel's release (``uname -r`` on the target)."""
    return remote.run(["uname", "-r"]).stdout.strip()


def run_prechecks(remote: RemoteShell, target: TargetDesc, artifacts: DeployArtifacts,
                  checked: CheckedArtifacts) -> tuple[Findings, Layout]:
    """Check release, vermagic, tools, writability, filesystem and free space.

    Returns:
        The findings and the layout for the target's release.
    """
    release, found = release_and_tools(remote, REQUIRED_TOOLS + OPTIONAL_TOOLS)
    f = Findings(release, found)
    layout = Layout.for_target(target, release)
    _check_release(f, artifacts, checked)
    f.hard += check_symbol_crcs(artifacts)
    missing = [t for t in REQUIRED_TOOLS if t not in found]
    if missing:
        f.hard.append(f"the target lacks {', '.join(missing)} (busybox provides them)")
        return f, layout
    dirs = {"staging_dir": layout.state}
    if checked.modules:
        dirs["modules_dir"] = layout.modules
    if checked.firmware:
        dirs["firmware_dir"] = layout.firmware
    checked_dirs = check_dirs(remote, sorted(set(dirs.values())))  # one round trip
    frees = {key: checked_dirs[d][0] for key, d in dirs.items()}
    _check_writable(f, {key: checked_dirs[d][1] for key, d in dirs.items()}, dirs, frees)
    _check_same_fs(f, frees)
    _check_space(f, frees["staging_dir"], checked)
    return f, layout


def _check_release(f: Findings, artifacts: DeployArtifacts, checked: CheckedArtifacts) -> None:
    if artifacts.kernel_release and artifacts.kernel_release != f.release:
        parts = ReleaseParts.from_dict(artifacts.release_parts) \
            if artifacts.release_parts else None
        why = release_mismatch_reason(parts, artifacts.kernel_release, f.release)
        f.forceable.append(
            f"kernel release mismatch: the build is {artifacts.kernel_release}, the target "
            f"runs {f.release} (uname -r): {why}")
    for m in checked.modules:
        built_for = (m.vermagic or "").split()[0] if m.vermagic else ""
        if built_for != f.release:
            f.forceable.append(
                f"vermagic mismatch: {m.name} has vermagic '{m.vermagic}', the target runs "
                f"{f.release}; the kernel would refuse to load it (kernel/module/main.c "
                "check_modinfo(): \"version magic '...' should be '...'\")")


def check_symbol_crcs(artifacts: DeployArtifacts) -> list[str]:
    """The modules' imported symbol CRCs against the running kernel's Module.symvers.

    Only with ``artifacts.symvers``; a module with no ``__versions`` against a
    kernel with CRCs (or the reverse) is named too, since CONFIG_MODVERSIONS then
    differs.  These are not forceable: the kernel itself would refuse the module.

    Returns:
        One problem per mismatch (see :func:`rprockit.running.check_crcs`).
    """
    if artifacts.symvers is None:
        return []
    ref = read_symvers(artifacts.symvers)
    own = read_symvers(artifacts.own_symvers) if artifacts.own_symvers else {}
    versions = {Path(m).name: symbol_versions(Path(m)) for m in artifacts.modules}
    if not has_crcs(ref):
        built = [n for n, v in versions.items() if v]
        return [f"{built[0]} has symbol CRCs (CONFIG_MODVERSIONS=y) but "
                f"{artifacts.symvers} has none: the running kernel was built without "
                "CONFIG_MODVERSIONS; configure from its config (--base-config target)"] \
            if built else []
    bare = [n for n, v in versions.items() if not v]
    if bare:
        return [f"{', '.join(bare)}: no symbol CRCs (__versions), but the running kernel "
                f"checks them ({artifacts.symvers} has CRCs, CONFIG_MODVERSIONS=y); "
                "configure from its config (--base-config target) and rebuild"]
    return check_crcs(versions, ref, str(artifacts.symvers), own)


def _check_writable(f: Findings, errors: dict[str, str | None], dirs: dict[str, str],
                    frees: dict[str, DiskFree]) -> None:
    for key, d in dirs.items():
        err = errors[key]
        if err is None:
            continue
        where = frees[key].existing
        if "read-only" in err.lower():
            f.hard.append(
                f"{key} {d}: the filesystem holding {where} (mounted on {frees[key].mount}) "
                "is read-only, as is common for embedded root filesystems. Remount it "
                "read-write for the deploy (mount -o remount,rw "
                f"{frees[key].mount}), or point {key} (and the other directories) at a "
                "writable overlay or data partition in the target's options.rprockit")
        else:
            f.hard.append(f"{key} {d}: cannot write into {where} ({err}); log in as root "
                          "or set 'sudo: true' in the target's options.rprockit")


def _check_same_fs(f: Findings, frees: dict[str, DiskFree]) -> None:
    staging = frees["staging_dir"]
    for key, df in frees.items():
        if key != "staging_dir" and df.mount != staging.mount:
            f.hard.append(
                f"staging_dir {staging.directory} is on {staging.mount} but {key} "
                f"{df.directory} is on {df.mount}: the switch must be a rename on one "
                "filesystem; set staging_dir to a directory on the same filesystem as "
                f"{key}")


def _check_space(f: Findings, staging: DiskFree, checked: CheckedArtifacts) -> None:
    need = sum(x.size for x in checked.modules + checked.firmware)
    need_kib = -(-need // 1024) + MARGIN_KIB
    if staging.available_kib < need_kib:
        f.hard.append(
            f"not enough space: {staging.available_kib} KiB free on {staging.mount} "
            f"(holding {staging.directory}), the upload needs {need_kib} KiB ({need} bytes "
            f"plus {MARGIN_KIB} KiB); free space there or set staging_dir, modules_dir and "
            "firmware_dir to a larger filesystem")
