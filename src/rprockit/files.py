"""Small file helpers every stage shares: sha256 of a file and atomic writes.

Atomic means written to a temporary file in the same directory, then
``os.replace``-d over the target (rename(2) is atomic on one filesystem), so a
reader sees the old content or the new one, never a part (tuxmake ``build.py``
``save_metadata``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex digest (64 characters) of a file's bytes, read in 1 MiB chunks.

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; parent directories are created.

    Raises:
        OSError: the directory is not writable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any, sort_keys: bool = True) -> None:
    """Write ``data`` as indented JSON (plus a newline) to ``path`` atomically.

    Values JSON does not know (paths) are written as their ``str``.
    """
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys, default=str) + "\n")
