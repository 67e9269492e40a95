"""Knowledge base of field failure signatures (``data/signatures.yaml``).

Each entry describes a failure class: a kernel log line (a regex), optional
context lines, the cause, the remedy (conditioned on the SoC family, driver,
start method and kernel line where the remedy differs) and the fix (a patch of
``patches/imx-rproc``, a setting or a pre-flight check).  :func:`match` finds
the entries a log shows; the verify suite attaches them to every failing check
(results.json, the table and the pytest failure message) and
``rprockit.diagnose`` prints them for a pasted log.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import InvalidFileError
from .. import yamlfile

#: The packaged knowledge base.
DATA_FILE = Path(str(resources.files("rprockit.data").joinpath("signatures.yaml")))


@dataclass(frozen=True)
class LogContext:
    """What a log (or the user) says about the system: every field may be unknown.

    Attributes:
        soc: SoC name (``imx8mp``) or None.
        family: ``imx7d``, ``imx8m``, ``imx8qx``, ``imx8ulp`` or ``imx93``, or None.
        driver: ``imx_rproc``, ``imx_dsp_rproc`` or ``imx_rpmsg``, or None.
        start: imx_rproc start method ``mmio``, ``smc``, ``scu`` or ``none``, or None.
        kernel: ``(major, minor)`` of the running kernel, or None.
        vendor: ``nxp`` (linux-imx/lf kernel) or ``mainline``, or None.
    """

    soc: str | None = None
    family: str | None = None
    driver: str | None = None
    start: str | None = None
    kernel: tuple[int, int] | None = None
    vendor: str | None = None


@dataclass(frozen=True)
class Variant:
    """A remedy that applies under a condition (``when``: family/driver/start/kernel/vendor)."""

    when: dict
    remedy: str
    cause: str | None = None
    fix: str | None = None

    def holds(self, ctx: LogContext) -> bool:
        """True when every ``when`` key is known in ``ctx`` and satisfied."""
        for key, want in self.when.items():
            if key == "kernel":
                if ctx.kernel is None or not _version_ok(ctx.kernel, want):
                    return False
            elif key == "vendor":
                if ctx.vendor != want:
                    return False
            elif getattr(ctx, key) not in want:
                return False
        return True


def _version_ok(have: tuple[int, int], spec: str) -> bool:
    m = re.match(r"(<=|>=|<|>)(\d+)\.(\d+)$", spec)
    if not m:
        return False
    want = (int(m.group(2)), int(m.group(3)))
    return {"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want}[m.group(1)]


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
    unless: tuple[re.Pattern, ...] = ()
    supersedes: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    kind: str = "failure"
    preflight: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = ()
    example_context: tuple[str, ...] = ()
    context_optional_for: tuple[str, ...] = ()

    def resolve(self, ctx: LogContext) -> tuple[str, str, str, dict | None]:
        """``(cause, remedy, fix, condition)`` for ``ctx``: the first variant that holds."""
        for v in self.variants:
            if v.holds(ctx):
                return v.cause or self.cause, v.remedy, v.fix or self.fix, dict(v.when)
        return self.cause, self.remedy, self.fix, None


@dataclass(frozen=True)
class Match:
    """A knowledge-base entry found in a log.

    Attributes:
        id: the entry id (``firmware-missing``).
        line: the first log line its regex matched.
        cause, remedy, fix, source: from the entry (the variant for the log's context).
        kind: ``failure`` or ``suspect``.
        lines: the matching line plus the context lines that made it apply.
        line_no: 1-based index of ``line`` among the non-empty input lines.
        condition: the ``when`` of the variant used, or None (default remedy).
        preflight: pre-flight check ids that address the cause.
        facts: target facts that confirm it.
    """

    id: str
    line: str
    cause: str
    remedy: str
    fix: str
    source: str
    kind: str = "failure"
    lines: list[str] = field(default_factory=list)
    line_no: int = 0
    condition: dict | None = None
    preflight: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)

    def render(self) -> str:
        """Four lines: id and line, cause, remedy, fix."""
        return (f"[{self.id}] {self.line.strip()}\n  cause: {self.cause}\n"
                f"  remedy: {self.remedy}\n  fix: {self.fix}")


def _flat(text: str) -> str:
    return " ".join(text.split())


def _compile_all(entry: dict, key: str) -> tuple[re.Pattern, ...]:
    return tuple(re.compile(c) for c in entry.get(key, ()))


def _signature(e: dict) -> Signature:
    variants = tuple(Variant(dict(v["when"]), _flat(v["remedy"]),
                             _flat(v["cause"]) if v.get("cause") else None, v.get("fix"))
                     for v in e.get("variants", ()))
    return Signature(
        e["id"], re.compile(e["regex"]), _flat(e["cause"]), _flat(e["remedy"]), e["fix"],
        _flat(e["source"]), e["example"], _compile_all(e, "context"),
        bool(e.get("generic", False)), _compile_all(e, "unless"),
        tuple(e.get("supersedes", ())), tuple(e.get("families", ())), e.get("kind", "failure"),
        tuple(e.get("preflight", ())), tuple(e.get("facts", ())), variants,
        tuple(e.get("example_context", ())), tuple(e.get("context_optional_for", ())))


def load(path: str | Path = DATA_FILE) -> tuple[Signature, ...]:
    """Load and validate a knowledge base file.

    Args:
        path: the YAML file (default: the packaged ``data/signatures.yaml``).

    Returns:
        The entries in file order.

    Raises:
        InvalidFileError: schema violations, duplicate ids, a regex that does not
            compile or a ``supersedes`` naming no entry, each with its key path
            and line.
    """
    doc = yamlfile.load(path, "signatures")
    data, lines = doc.data, doc.lines
    out, problems, seen = [], [], set()
    for i, e in enumerate(data["signatures"]):
        key = ("signatures", i)
        if e["id"] in seen:
            problems.append((f"signatures[{i}].id", lines.get((*key, "id")),
                             f"duplicate id '{e['id']}'"))
        seen.add(e["id"])
        try:
            out.append(_signature(e))
        except re.error as err:
            problems.append((f"signatures[{i}]", lines.get(key), f"regex does not compile: {err}"))
    for i, e in enumerate(data["signatures"]):
        for other in e.get("supersedes", ()):
            if other not in seen:
                problems.append((f"signatures[{i}].supersedes", lines.get(("signatures", i)),
                                 f"no entry '{other}'"))
    if problems:
        raise InvalidFileError(str(path), problems)
    return tuple(out)


@functools.cache
def knowledge_base() -> tuple[Signature, ...]:
    """The packaged knowledge base, loaded once."""
    return load(DATA_FILE)


@functools.cache
def soc_table(path: str | Path = DATA_FILE) -> dict[str, dict]:
    """The ``socs`` section: SoC name -> ``{family, start, match: [compiled regexes]}``.

    Raises:
        InvalidFileError: the file is invalid.
    """
    data = yamlfile.load(path, "signatures").data
    return {name: {"family": s["family"], "start": s["start"],
                   "match": [re.compile(m, re.IGNORECASE) for m in s["match"]]}
            for name, s in data.get("socs", {}).items()}


def _applies(sig: Signature, ctx: LogContext | None) -> bool:
    return not (sig.families and ctx is not None and ctx.family is not None
                and ctx.family not in sig.families)


def match(lines: Iterable[str], kb: tuple[Signature, ...] | None = None,
          ctx: LogContext | None = None) -> list[Match]:
    """Find the knowledge-base entries that ``lines`` show.

    An entry matches when its regex is found in a line, one of its ``context``
    regexes (if any) is found in any line, no ``unless`` regex matches a later
    line, and its ``families`` (if any) include the log's family (or the family
    is unknown).  Entries named in a matching entry's ``supersedes`` are
    dropped; generic entries (e.g. a bare ``Boot failed: -22``) are returned
    only when no specific entry matched.

    Args:
        lines: kernel log lines and command output, in order.
        kb: entries to use (default: the packaged knowledge base).
        ctx: what is known about the system; selects the entries' variants.

    Returns:
        One :class:`Match` per entry, in the order of the first matching line.
    """
    kb = knowledge_base() if kb is None else kb
    lines = [ln for ln in lines if ln.strip()]
    rctx = ctx or LogContext()
    found: list[tuple[int, Signature, str, list[str]]] = []
    for sig in kb:
        if not _applies(sig, ctx):
            continue
        ctx_lines: list[str] = []
        if sig.context:
            ctx_lines = [ln for ln in lines if any(c.search(ln) for c in sig.context)][:3]
            if not ctx_lines and not (ctx is not None and ctx.family in sig.context_optional_for):
                continue
        for n, ln in enumerate(lines):
            if sig.regex.search(ln):
                if any(u.search(later) for u in sig.unless for later in lines[n + 1:]):
                    break
                found.append((n, sig, ln, ctx_lines))
                break
    dropped = {s for _, sig, _, _ in found for s in sig.supersedes}
    found = [f for f in found if f[1].id not in dropped]
    if any(not s.generic for _, s, _, _ in found):
        found = [f for f in found if not f[1].generic]
    found.sort(key=lambda f: f[0])
    out = []
    for n, s, ln, ctx_lines in found:
        cause, remedy, fix, cond = s.resolve(rctx)
        shown = sorted({ln, *ctx_lines}, key=lines.index)
        out.append(Match(s.id, ln, cause, remedy, fix, s.source, s.kind, shown, n + 1, cond,
                         list(s.preflight), list(s.facts)))
    return out


def by_id(sig_id: str) -> Signature:
    """The packaged entry ``sig_id``.

    Raises:
        KeyError: no such entry.
    """
    for s in knowledge_base():
        if s.id == sig_id:
            return s
    raise KeyError(sig_id)
