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
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import UnreadableFileError


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


def read_regular(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """Read a regular file of at most ``limit`` bytes; refuse anything else by name.

    The file is opened non-blocking (a FIFO put in its place cannot hang the
    read), checked to be a regular file on the open descriptor, and read up to
    ``limit + 1`` bytes, so a file whose size lies (``/proc``, a growing file)
    is caught too.

    Args:
        path: the file.
        limit: the largest accepted size (bytes).
        what: what the file is (``profile``, ``firmware ELF``), for messages.

    Returns:
        The file's bytes.

    Raises:
        UnreadableFileError: missing, a directory, a FIFO, socket or device, too
            large, or unreadable (with the OS's reason).
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise UnreadableFileError(p, what, "is a directory", "give a file") from None
    except FileNotFoundError:
        raise UnreadableFileError(p, what, "does not exist", "check the path") from None
    except OSError as e:
        raise UnreadableFileError(p, what, f"cannot be opened: {e.strerror}",
                                  "check the path and its permissions") from e
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UnreadableFileError(p, what, "is a directory", "give a file")
        if not stat.S_ISREG(st.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else \
                "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
            raise UnreadableFileError(p, what, f"is {kind}, not a regular file",
                                      "give a regular file")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise UnreadableFileError(p, what, f"is larger than the {limit} bytes accepted",
                                      "give the right file (or trim it)")
        return b"".join(chunks)
    except OSError as e:
        raise UnreadableFileError(p, what, f"cannot be read: {e.strerror}",
                                  "check the file") from e
    finally:
        os.close(fd)


def decode_utf8(data: bytes, path: str | os.PathLike, what: str = "file") -> str:
    """``data`` decoded as UTF-8.

    Raises:
        UnreadableFileError: naming the byte offset and value of the first bad byte.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UnreadableFileError(Path(path), what, "is not UTF-8 text: byte "
                                  f"0x{data[e.start]:02x} at byte offset {e.start} (line "
                                  f"{line}) {e.reason}",
                                  "save it as UTF-8") from None
