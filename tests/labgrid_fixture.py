"""A real labgrid coordinator and exporter on loopback (labgrid >= 24, gRPC).

``labgrid_lab`` starts ``labgrid-coordinator --listen 127.0.0.1:<free port>`` in a
temporary directory (its places.yaml lives there) and yields a :class:`Lab`
that starts exporters (``labgrid-exporter --coordinator ... --name ... --hostname
127.0.0.1 <config>``) and creates places with ``labgrid-client``.  Every process is
stopped when the test ends.  Nothing is faked: these are labgrid's own programs
from this virtual environment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _labgrid(module: str) -> list[str]:
    return [sys.executable, "-m", f"labgrid.remote.{module}"]


@dataclass
class Lab:
    """A running coordinator on 127.0.0.1 and the exporters started for it."""

    address: str
    workdir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def client(self, *args: str, check: bool = True,
               user: str | None = None) -> subprocess.CompletedProcess:
        """Run ``labgrid-client --coordinator <this lab> ARGS`` (as ``user``: labgrid's
        ``LG_USERNAME``, e.g. a colleague at another workstation)."""
        env = dict(os.environ, **({"LG_USERNAME": user, "LG_HOSTNAME": "ws-" + user}
                                  if user else {}))
        proc = subprocess.run([*_labgrid("client"), f"--coordinator={self.address}", *args],
                              capture_output=True, text=True, timeout=60, check=False, env=env)
        if check and proc.returncode:
            raise AssertionError(f"labgrid-client {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc

    def export(self, name: str, groups: dict) -> None:
        """Start an exporter named ``name`` exporting ``{group: {ResourceClass: params}}``
        and wait until the coordinator lists every resource."""
        cfg = self.workdir / f"exporter-{name}.yaml"
        cfg.write_text(yaml.safe_dump(groups))
        log = (self.workdir / f"exporter-{name}.log").open("w")
        self.procs.append(subprocess.Popen(
            [*_labgrid("exporter"), f"--coordinator={self.address}", f"--name={name}",
             "--hostname=127.0.0.1", str(cfg)], cwd=self.workdir, stdout=log,
            stderr=subprocess.STDOUT))
        want = {f"{name}/{g}/{cls}" for g, res in groups.items() for cls in res}
        deadline = time.monotonic() + 60
        while True:
            listed = set(self.client("resources", check=False).stdout.split())
            if want <= listed:
                return
            assert time.monotonic() < deadline, f"exporter {name} did not register {want}"
            time.sleep(0.3)

    def add_place(self, place: str, *matches: str) -> None:
        """``labgrid-client -p PLACE create`` and one ``add-match`` per pattern."""
        self.client(f"--place={place}", "create")
        for m in matches:
            self.client(f"--place={place}", "add-match", m)

    def acquired_by(self, place: str) -> str | None:
        """Who holds the place (``host/user``), or None when it is free."""
        out = self.client(f"--place={place}", "show").stdout
        for line in out.splitlines():
            if line.strip().startswith("acquired:"):
                who = line.split(":", 1)[1].strip()
                return None if who in ("", "None") else who
        raise AssertionError(f"no 'acquired:' line in labgrid-client show:\n{out}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def labgrid_lab(tmp_path_factory):
    """A coordinator on a free loopback port (stopped, with its exporters, afterwards)."""
    work = tmp_path_factory.mktemp("labgrid")
    port = free_port()
    address = f"127.0.0.1:{port}"
    log = (work / "coordinator.log").open("w")
    coord = subprocess.Popen([*_labgrid("coordinator"), f"--listen={address}"], cwd=work,
                             stdout=log, stderr=subprocess.STDOUT)
    lab = Lab(address, work)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert coord.poll() is None, (work / "coordinator.log").read_text()
                assert time.monotonic() < deadline, "labgrid-coordinator did not listen"
                time.sleep(0.2)
        yield lab
    finally:
        for p in reversed(lab.procs):
            _stop(p)
        _stop(coord)


def remote_place_env(path: Path, place: str, coordinator: str, settings: dict | None = None,
                     console: bool = True) -> Path:
    """Write a labgrid environment file naming ``place`` of ``coordinator``."""
    main: dict = {"resources": {"RemotePlace": {"name": place}}}
    if console:
        main["drivers"] = {"SerialDriver": {},
                           "ShellDriver": {"prompt": "rprockit# ", "login_prompt": " login: ",
                                           "username": "root", "login_timeout": 120}}
    if settings:
        main["options"] = {"rprockit": settings}
    path.write_text(yaml.safe_dump({"targets": {"main": main},
                                    "options": {"coordinator_address": coordinator}}))
    return path
