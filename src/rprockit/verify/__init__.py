"""verify stage: run the on-target pytest suite against a labgrid target.

The suite lives in ``rprockit/verify/suite``; the target is a labgrid
environment file (QEMUDriver + ShellDriver for the emulated board, SSHDriver
or a serial ShellDriver for a real one).  Only the file changes between them.
"""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from rprockit.errors import CommandError, UserError
from rprockit.runner import Runner
from rprockit.ssh import SSHTransport

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
               dtb: Path | None = None, in_process: bool = False,
               transport: SSHTransport | None = None) -> VerifyResult:
    """Run the suite against ``target_env``.

    The suite runs in a pytest process of its own, or with ``in_process`` in this
    one (``pytest.main``: the same arguments, plugins, checks, results.json and
    pytest.log, without the start-up of a second interpreter that imports pytest,
    labgrid and rprockit again: about 1.5 s on a 2-core machine).

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
        in_process: run pytest in this process (the inner loop's quick checks).
        transport: with ``in_process``, an open SSH connection to the target that the
            suite uses instead of opening its own (the one deploy just used).

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
    args = [str(SUITE), "-p", "rprockit.verify.results",
           "--lg-env", str(target_env), f"--rprockit-manifest={manifest}",
           f"--rprockit-cycles={cycles}", f"--rprockit-results={results_dir}",
           f"--junitxml={results_dir / 'junit.xml'}", "-o", "junit_family=xunit1",
           "-p", "no:cacheprovider", "-rA", "-v", "--rootdir", str(SUITE),
           *(["--rprockit-accept-new-host-key"] if accept_new_host_key else []),
           *([f"--rprockit-dtb={dtb}"] if dtb else []),
           *(extra_pytest_args or [])]
    if in_process:
        rc = _pytest_here(args, log, images, progress, transport)
        if rc not in (0, 1):
            progress(f"pytest exited {rc}")
    else:
        env = {"LG_RPROCKIT_IMAGES": str(images), "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            runner.stream([sys.executable, "-m", "pytest", *args], log, env=env,
                          progress=progress)
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


class _LogTee(io.TextIOBase):
    """pytest's terminal output in-process: appended to ``pytest.log``, each line to
    ``progress`` (what :meth:`rprockit.runner.Runner.stream` does for the process)."""

    def __init__(self, fh, progress):
        self.fh, self.progress, self.buf = fh, progress, ""

    def write(self, text: str) -> int:
        self.fh.write(text)
        self.buf += text
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            self.progress(line)
        return len(text)

    def flush(self) -> None:
        self.fh.flush()

    def isatty(self) -> bool:
        return False


class SharedTransport:
    """pytest plugin: hands an open SSH connection to the suite's ``shell`` fixture
    (``config.rprockit_transport``), which then opens none of its own."""

    def __init__(self, transport: SSHTransport | None):
        self.transport = transport

    def pytest_configure(self, config) -> None:
        config.rprockit_transport = self.transport


def _pytest_here(args: list[str], log: Path, images: Path, progress,
                 transport: SSHTransport | None) -> int:
    """``pytest.main(args)`` in this process, its output into ``log``; the exit code."""
    import contextlib

    import pytest

    from .target_shell import images_env

    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"{os.getcwd()}$ pytest {' '.join(args)}  # in-process\n")
        tee = _LogTee(fh, progress)
        no_pyc = sys.dont_write_bytecode  # no __pycache__ in the suite (PYTHONDONTWRITEBYTECODE)
        sys.dont_write_bytecode = True
        try:
            with images_env(images), contextlib.redirect_stdout(tee), \
                    contextlib.redirect_stderr(tee):
                rc = pytest.main(args, plugins=[SharedTransport(transport)])
        finally:
            sys.dont_write_bytecode = no_pyc
        if tee.buf:
            progress(tee.buf)
    return int(rc)


__all__ = ["QUICK", "SUITE", "Facts", "Match", "VerifyResult", "match", "os", "run_facts",
           "run_verify"]
