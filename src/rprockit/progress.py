"""Compact progress for long tool output (make, pytest): a line counter and the last line.

On a terminal the line is redrawn at most once a second; otherwise (CI logs) a
line is printed at most every 15 seconds.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """A ``progress(line)`` callback that shows ``[label] N lines | last line``.

    Args:
        label: the prefix.
        stream: where to write (default stderr).
    """

    def __init__(self, label: str, stream: TextIO | None = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.n = 0
        self.last = 0.0
        self.tty = self.stream.isatty()

    def __call__(self, line: str) -> None:
        self.n += 1
        now = time.monotonic()
        if now - self.last < (1.0 if self.tty else 15.0):
            return
        self.last = now
        text = f"[{self.label}] {self.n} lines | {line.strip()[:100]}"
        self.stream.write("\r\033[K" + text if self.tty else text + "\n")
        self.stream.flush()

    def done(self) -> None:
        """Clear the redrawn line (terminal only)."""
        if self.tty and self.n:
            self.stream.write("\r\033[K")
