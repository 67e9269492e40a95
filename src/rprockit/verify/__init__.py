"""verify stage: run the on-target pytest suite against a labgrid target.

The suite lives in ``rprockit/verify/suite``; the target is a labgrid
environment file (QEMUDriver + ShellDriver for the emulated board, SSHDriver
or a serial ShellDriver for a real one).  Only the file changes between them.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from rprockit.errors import CommandError, UserError
from rprockit.runner import Runner

from .facts import Facts, run_facts
from .signatures import Match, match

SUITE = Path(__file__).parent / "suite"
#: The inner-loop subset (``verify --quick``): the running kernel, the modules' vermagic,
#: the module set loaded in order, the reload cycles and a clean dmesg.
QUICK = ("test_kernel_release", "test_module_vermagic", "test_modules_load_in_order",
         "test_reload_cycles", "test_dmesg_clean")


@dataclass
class VerifyResult:
    """Outcome of a verify run.

    Attributes:
        passed: every required check passed.
        summary: content of ``results.json``.
        table: the human table.
        results_dir: where results.json, results.txt and junit.xml are.
        log: pytest's full output.
    """

    passed: bool
    summary: dict
    table: str
    results_dir: Path
    log: Path


def run_verify(target_env: Path, manifest: Path, results_dir: Path, images: Path,
               cycles: int = 3, runner: Runner | None = None, progress=lambda line: None,
               extra_pytest_args: list[str] | None = None, accept_new_host_key: bool = False,
               dtb: Path | None = None) -> VerifyResult:
    """Run the suite against ``target_env``.

    Args:
        target_env: labgrid environment YAML.
        manifest: the build manifest.json whose artifacts are on (or boot) the target.
        results_dir: output directory for junit.xml, results.json, results.txt, pytest.log.
        images: directory exposed to the environment file as ``$LG_RPROCKIT_IMAGES``.
        cycles: reload cycles.
        runner: runs pytest.
        progress: called per output line.
        extra_pytest_args: e.g. ``["-k", "reload"]``.
        accept_new_host_key: SSH targets: record an unknown host key instead of
            refusing it (never done unless asked).
        dtb: the built DTB the target boots, for the facts comparison (default: the
            environment's ``dtb`` image, else the manifest's only ``dtbs/*.dtb``).

    Returns:
        The result; ``passed`` is False when any required check failed.

    Raises:
        UserError: the target file does not exist, or pytest could not start the suite.
    """
    runner = runner or Runner()
    if not Path(target_env).is_file():
        raise UserError(f"target environment file {target_env} does not exist")
    results_dir.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "results.txt", "junit.xml", "facts.json", "facts.txt",
                 "kernel.log"):
        (results_dir / name).unlink(missing_ok=True)
    log = results_dir / "pytest.log"
    log.write_text("")
    cmd = [sys.executable, "-m", "pytest", str(SUITE), "-p", "rprockit.verify.results",
           "--lg-env", str(target_env), f"--rprockit-manifest={manifest}",
           f"--rprockit-cycles={cycles}", f"--rprockit-results={results_dir}",
           f"--junitxml={results_dir / 'junit.xml'}", "-o", "junit_family=xunit1",
           "-p", "no:cacheprovider", "-rA", "-v", "--rootdir", str(SUITE),
           *(["--rprockit-accept-new-host-key"] if accept_new_host_key else []),
           *([f"--rprockit-dtb={dtb}"] if dtb else []),
           *(extra_pytest_args or [])]
    env = {"LG_RPROCKIT_IMAGES": str(images), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        runner.stream(cmd, log, env=env, progress=progress)
    except CommandError as e:
        # exit 1 means failed checks, judged from results.json below
        if e.returncode not in (1,):
            progress(f"pytest exited {e.returncode}")
    res = results_dir / "results.json"
    if not res.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise UserError(f"the verify suite did not run against {target_env}; see {log}:\n{tail}")
    summary = json.loads(res.read_text())
    return VerifyResult(summary["passed"], summary, (results_dir / "results.txt").read_text(),
                        results_dir, log)


__all__ = ["QUICK", "SUITE", "Facts", "Match", "VerifyResult", "match", "os", "run_facts",
           "run_verify"]
