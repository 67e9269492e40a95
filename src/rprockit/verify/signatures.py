"""Knowledge base of field failure signatures (``data/signatures.yaml``).

Each entry pairs a kernel log line (a regex) with its cause, the remedy and
the fix (a patch of ``patches/imx-rproc`` or a setting).  :func:`match` finds
the entries a log shows; the verify suite attaches them to every failing
check (results.json, the table and the pytest failure message).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from ..errors import ProfileError
from ..yamlfile import load_validated

#: The packaged knowledge base.
DATA_FILE = Path(str(resources.files("rprockit.data").joinpath("signatures.yaml")))


@dataclass(frozen=True)
class Signature:
    """One knowledge-base entry (see ``data/signatures.yaml`` for the fields)."""

    id: str
    regex: re.Pattern
    cause: str
    remedy: str
    fix: str
    source: str
    example: str
    context: tuple[re.Pattern, ...] = ()
    generic: bool = False


@dataclass(frozen=True)
class Match:
    """A knowledge-base entry found in a log.

    Attributes:
        id: the entry id (``firmware-missing``).
        line: the first log line its regex matched.
        cause, remedy, fix, source: from the entry.
    """

    id: str
    line: str
    cause: str
    remedy: str
    fix: str
    source: str

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)

    def render(self) -> str:
        """Four lines: id and line, cause, remedy, fix."""
        return (f"[{self.id}] {self.line.strip()}\n  cause: {self.cause}\n"
                f"  remedy: {self.remedy}\n  fix: {self.fix}")


def load(path: str | Path = DATA_FILE) -> tuple[Signature, ...]:
    """Load and validate a knowledge base file.

    Args:
        path: the YAML file (default: the packaged ``data/signatures.yaml``).

    Returns:
        The entries in file order.

    Raises:
        ProfileError: schema violations, duplicate ids or a regex that does not
            compile, each with its key path and line.
    """
    data, lines = load_validated(path, "signatures")
    out, problems, seen = [], [], set()
    for i, e in enumerate(data["signatures"]):
        key = ("signatures", i)
        if e["id"] in seen:
            problems.append((f"signatures[{i}].id", lines.get(key + ("id",)),
                             f"duplicate id '{e['id']}'"))
        seen.add(e["id"])
        try:
            regex = re.compile(e["regex"])
            context = tuple(re.compile(c) for c in e.get("context", ()))
        except re.error as err:
            problems.append((f"signatures[{i}]", lines.get(key), f"regex does not compile: {err}"))
            continue
        out.append(Signature(e["id"], regex, " ".join(e["cause"].split()),
                             " ".join(e["remedy"].split()), e["fix"],
                             " ".join(e["source"].split()), e["example"], context,
                             bool(e.get("generic", False))))
    if problems:
        raise ProfileError(str(path), problems)
    return tuple(out)


@functools.cache
def knowledge_base() -> tuple[Signature, ...]:
    """The packaged knowledge base, loaded once."""
    return load(DATA_FILE)


def match(lines: Iterable[str], kb: tuple[Signature, ...] | None = None) -> list[Match]:
    """Find the knowledge-base entries that ``lines`` show.

    An entry matches when its regex is found in a line and, if it has
    ``context`` regexes, one of them is found in any line.  Generic entries
    (e.g. a bare ``Boot failed: -22``) are returned only when no specific
    entry matched.

    Args:
        lines: kernel log lines and command output, in order.
        kb: entries to use (default: the packaged knowledge base).

    Returns:
        One :class:`Match` per entry, in the order of the first matching line.
    """
    kb = knowledge_base() if kb is None else kb
    lines = [ln for ln in lines if ln.strip()]
    found: list[tuple[int, Signature, str]] = []
    for sig in kb:
        if sig.context and not any(c.search(ln) for c in sig.context for ln in lines):
            continue
        for n, ln in enumerate(lines):
            if sig.regex.search(ln):
                found.append((n, sig, ln))
                break
    if any(not s.generic for _, s, _ in found):
        found = [f for f in found if not f[1].generic]
    found.sort(key=lambda f: f[0])
    return [Match(s.id, ln, s.cause, s.remedy, s.fix, s.source) for _, s, ln in found]


def by_id(sig_id: str) -> Signature:
    """The packaged entry ``sig_id``.

    Raises:
        KeyError: no such entry.
    """
    for s in knowledge_base():
        if s.id == sig_id:
            return s
    raise KeyError(sig_id)
