"""Where a profile's tree, build outputs, artifacts and stage state live.

Layout under the workspace root (default ``./build``, or ``$RPROCKIT_WORKSPACE``)::

    <root>/<profile>/src/         kernel tree (git), owned by fetch and patch
    <root>/<profile>/out/         make O= directory
    <root>/<profile>/artifacts/   collected outputs + manifest.json
    <root>/<profile>/state/       one JSON per stage: its input fingerprint
    <root>/<profile>/logs/        full tool logs
    <root>/<profile>/oot/<set>/   out-of-tree module sets: donor sources, Kbuild, .ko
    <root>/<profile>/verify/      verify results (JUnit XML, JSON, table)
    <root>/cache/                 downloaded Debian packages
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import write_json_atomic

__all__ = ["Workspace", "default_root", "fingerprint", "write_json_atomic"]


def default_root() -> Path:
    return Path(os.environ.get("RPROCKIT_WORKSPACE", "build")).resolve()


def fingerprint(*parts: Any) -> str:
    """sha256 hex of the canonical JSON of ``parts``."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Workspace:
    """Paths for one profile inside a workspace root."""

    root: Path
    profile_name: str

    @property
    def base(self) -> Path:
        return self.root / self.profile_name

    @property
    def src(self) -> Path:
        return self.base / "src"

    @property
    def out(self) -> Path:
        return self.base / "out"

    @property
    def artifacts(self) -> Path:
        return self.base / "artifacts"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def verify(self) -> Path:
        return self.base / "verify"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def oot_dir(self, set_name: str) -> Path:
        """The build directory of out-of-tree module set ``set_name``."""
        return self.base / "oot" / set_name

    def state_file(self, stage: str) -> Path:
        return self.base / "state" / f"{stage}.json"

    def load_state(self, stage: str) -> dict | None:
        """The stage's recorded state, or None when it never completed."""
        try:
            return json.loads(self.state_file(stage).read_text())
        except (OSError, ValueError):
            return None

    def save_state(self, stage: str, fp: str, **data: Any) -> None:
        """Record that ``stage`` completed with input fingerprint ``fp``."""
        write_json_atomic(self.state_file(stage), {"fingerprint": fp, **data})

    def clear_state(self, stage: str) -> None:
        self.state_file(stage).unlink(missing_ok=True)

    def up_to_date(self, stage: str, fp: str) -> bool:
        st = self.load_state(stage)
        return st is not None and st.get("fingerprint") == fp
