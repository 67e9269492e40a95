"""Proof of reproducibility: two clean builds, compared artifact by artifact.

``check_reproducible`` builds the configured tree twice from scratch,
without ccache (a cache would hide nondeterminism), from two different
source paths (the workspace tree and a ``git worktree`` of the same commit)
into two different ``O=`` directories, one after the other.  It compares the
sha256 of the kernel image, every DTB and every ``.ko`` and reports each
differing artifact, with a ``diffoscope`` report where diffoscope (Debian
package ``diffoscope``) is installed.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import build as build_mod
from .errors import UserError
from .files import sha256_file, write_json_atomic
from .git import Git
from .profile import Profile
from .runner import Runner
from .workspace import Workspace


@dataclass
class ReproReport:
    """Result of a reproducibility check.

    Attributes:
        compared: artifact path (relative to ``O=``) -> sha256 of build A.
        differing: artifacts whose sha256 differ, or that exist in one build only.
        diffoscope: artifact -> diffoscope report file (when diffoscope is installed).
        seconds: wall time of each build.
    """

    compared: dict[str, str] = field(default_factory=dict)
    differing: list[str] = field(default_factory=list)
    diffoscope: dict[str, str] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return bool(self.compared) and not self.differing

    def to_dict(self) -> dict:
        return {"identical": self.identical, "artifacts": len(self.compared),
                "differing": self.differing, "diffoscope": self.diffoscope,
                "build_seconds": [round(s, 1) for s in self.seconds],
                "sha256": self.compared}

    def render(self) -> str:
        if self.identical:
            return (f"reproducible: {len(self.compared)} artifacts bit-identical across two clean "
                    f"builds ({', '.join(f'{s:.0f} s' for s in self.seconds)})")
        lines = [f"NOT reproducible: {len(self.differing)} of {len(self.compared)} artifacts "
                 "differ:"]
        for d in self.differing:
            extra = f" (diffoscope: {self.diffoscope[d]})" if d in self.diffoscope else ""
            lines.append(f"  {d}{extra}")
        return "\n".join(lines)


def artifact_hashes(out: Path, image_rel: str) -> dict[str, str]:
    """sha256 of the image, every ``*.dtb`` and every ``*.ko`` under a build dir."""
    files = [out / image_rel] if (out / image_rel).is_file() else []
    files += sorted(out.rglob("*.dtb")) + sorted(out.rglob("*.ko"))
    return {str(f.relative_to(out)): sha256_file(f) for f in files}


def compare_dirs(a: Path, b: Path, image_rel: str, report_dir: Path,
                 runner: Runner | None = None) -> ReproReport:
    """Compare the artifacts of two build directories.

    Args:
        a: first build's ``O=`` directory.
        b: second build's.
        image_rel: the kernel image relative to ``O=`` (e.g. ``arch/arm/boot/zImage``).
        report_dir: where diffoscope reports go.
        runner: runs diffoscope.

    Returns:
        The report; ``differing`` lists relative paths.
    """
    ha, hb = artifact_hashes(a, image_rel), artifact_hashes(b, image_rel)
    rep = ReproReport(compared=ha)
    rep.differing = sorted(k for k in set(ha) | set(hb) if ha.get(k) != hb.get(k))
    if rep.differing and shutil.which("diffoscope"):
        runner = runner or Runner()
        report_dir.mkdir(parents=True, exist_ok=True)
        for rel in rep.differing:
            if rel in ha and rel in hb:
                out = report_dir / (rel.replace("/", "_") + ".diffoscope.txt")
                runner.run(["diffoscope", "--text", str(out), str(a / rel), str(b / rel)],
                           check=False)
                rep.diffoscope[rel] = str(out)
    return rep


def _clean_build(profile: Profile, src: Path, out: Path, config: Path, runner: Runner,
                 log: Path, progress, jobs: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copy2(config, out / ".config")
    env = build_mod.make_env(src, runner)
    env["CCACHE_DISABLE"] = "1"
    args = ["make", "-C", str(src), f"O={out}", f"ARCH={profile.arch}",
            f"CROSS_COMPILE={profile.cross_compile}", f"-j{jobs}", profile.image, "modules",
            *profile.dtbs]
    t0 = time.monotonic()
    runner.stream(args, log, env=env, progress=progress)
    return time.monotonic() - t0


def check_reproducible(profile: Profile, ws: Workspace, runner: Runner | None = None,
                       progress=lambda line: None, jobs: int | None = None,
                       pause: float = 2.0) -> ReproReport:
    """Two clean builds from the same inputs, in different directories, compared.

    Args:
        profile: the profile (its configure stage must have run).
        ws: the workspace; builds go to ``<ws.base>/repro/a`` and ``b``, which are
            removed when the builds are identical and kept when they differ.
        runner: runs git, make and diffoscope.
        progress: per output line of make.
        jobs: make -j (default: CPU count).
        pause: seconds between the builds (they must not depend on wall time).

    Returns:
        The report, also written to ``<ws.base>/reports/reproducibility.json``.

    Raises:
        UserError: no configured tree yet.
        BuildError: a build failed (log named).
    """
    runner = runner or Runner()
    config = ws.out / ".config"
    if not config.is_file():
        raise UserError(f"no {config}: run the configure stage first (invoke configure)")
    jobs = jobs or profile.jobs or os.cpu_count() or 1
    base = ws.base / "repro"
    src_b = base / "src-b"
    repo = Git(ws.src, runner)
    head = repo.head()
    repo.worktree_remove(src_b)
    base.mkdir(parents=True, exist_ok=True)
    repo.worktree_add(src_b, head)
    seconds = []
    try:
        for i, (src, name) in enumerate(((ws.src, "a"), (src_b, "b"))):
            if i:
                time.sleep(pause)
            log = ws.logs / f"repro-{name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("")
            try:
                seconds.append(_clean_build(profile, src, base / name, config, runner, log,
                                            progress, jobs))
            except Exception as e:
                raise build_mod.BuildError(f"reproducibility build {name} failed; log: {log}\n"
                                           f"{e}") from e
    finally:
        repo.worktree_remove(src_b)
    rep = compare_dirs(base / "a", base / "b", f"arch/{profile.arch}/boot/{profile.image}",
                       ws.base / "reports" / "diffoscope", runner)
    rep.seconds = seconds
    write_json_atomic(ws.base / "reports" / "reproducibility.json", rep.to_dict())
    if rep.identical:
        # nothing to inspect: the two O= directories (about 130 MiB each for the
        # default profile) go; differing builds stay for diffoscope and the user
        for name in ("a", "b"):
            shutil.rmtree(base / name, ignore_errors=True)
    return rep
