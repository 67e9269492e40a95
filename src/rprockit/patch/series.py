"""Load a quilt-style ``series`` file and its ``meta.yaml``.

Layout (quilt: one patch file name per line, ``#`` comments)::

    patches/imx-rproc/series
    patches/imx-rproc/meta.yaml
    patches/imx-rproc/nxp-4.14/0002-remoteproc-....patch

``meta.yaml`` (``format: 1``) describes every series entry: the fix it
belongs to (variants of one fix for several tree families share ``fix``),
the dmesg lines it fixes, the tree families it was written for (they only
order the variants of a fix: every variant is tried on every tree), its
upstream status and two probes run against the tree before any ``git apply``:

* ``present_if``: ``{file, regex}`` pairs; when all match, the equivalent
  fix (mainline or vendor) is already in the tree; when only some match,
  the fix is partially present;
* ``requires``: ``{file[, regex]}`` pairs; when one is missing, the code the
  variant changes does not exist there and the variant is not applicable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..files import decode_utf8, read_regular
from ..yamlfile import Problem, check, keypath_str, line_of, parse, schema
from .errors import SeriesFormatError


#: JSON schema of ``meta.yaml`` (``src/rprockit/schemas/series-meta.json``); unknown keys
#: are warnings.
META_SCHEMA: dict[str, Any] = schema("series-meta")
META_FORMAT: int = META_SCHEMA["properties"]["format"]["const"]


@dataclass(frozen=True)
class Probe:
    """A ``{file, regex}`` test on a tree.

    Attributes:
        file: path relative to the tree top.
        regex: Python regex searched with ``re.MULTILINE``; None means "file exists".
    """

    file: str
    regex: str | None = None

    def matches(self, tree: Path) -> bool:
        """True when ``file`` exists in ``tree`` and ``regex`` (if any) is found in it."""
        path = tree / self.file
        if not path.is_file():
            return False
        if self.regex is None:
            return True
        text = path.read_text(encoding="utf-8", errors="replace")
        return re.search(self.regex, text, re.MULTILINE) is not None

    def describe(self) -> str:
        """``file`` or ``file =~ /regex/`` for reports."""
        return self.file if self.regex is None else f"{self.file} =~ /{self.regex}/"


@dataclass(frozen=True)
class PatchEntry:
    """One series entry and its metadata.

    Attributes:
        name: the file name as written in the series (relative to the series dir).
        path: absolute path of the patch file.
        line: 1-based line of the entry in the series file.
        fix: id shared by the per-family variants of one fix.
        fixes: dmesg lines (or build errors) the patch fixes.
        families: tree families it was written for (``nxp-4.14``, ``nxp-5.15``,
            ``mainline``); they order the variants of a fix, nothing more.
        upstream: ``{"status": ..., "commit": mainline title, "version": "5.13", "reason": ...}``.
        present_if: all match => the equivalent fix is already in the tree.
        requires: one fails => the code it changes does not exist (not applicable).
        subject: the patch ``Subject:`` without the ``[PATCH]`` prefix.
        author: the patch ``From:`` header.
        sha256: hex digest of the patch file (fingerprints).
    """

    name: str
    path: Path
    line: int
    fix: str
    fixes: tuple[str, ...]
    families: tuple[str, ...]
    upstream: dict[str, str]
    present_if: tuple[Probe, ...] = ()
    requires: tuple[Probe, ...] = ()
    subject: str = ""
    author: str = ""
    sha256: str = ""


@dataclass(frozen=True)
class Series:
    """A validated series: ordered entries plus their metadata.

    Attributes:
        directory: the series directory.
        series_file: ``<directory>/series``.
        meta_file: ``<directory>/meta.yaml``.
        patches: entries in series order.
        warnings: non-fatal findings (unknown keys, unused meta entries).
    """

    directory: Path
    series_file: Path
    meta_file: Path
    patches: tuple[PatchEntry, ...]
    warnings: tuple[str, ...] = field(default=())

    def entry(self, patch: PatchEntry) -> str:
        """``"<series file>:<line>"`` of ``patch``, for messages."""
        return f"{self.series_file}:{patch.line}"

    def fixes(self) -> list[str]:
        """Fix ids in first-seen series order."""
        return list(dict.fromkeys(p.fix for p in self.patches))

    def without(self, skip: dict[str, str], source: str) -> Series:
        """This series less the fixes in ``skip`` (every variant of each).

        Args:
            skip: ``{fix id: why it is not applied}``.
            source: where the skip list comes from (a profile file), for messages.

        Returns:
            A series whose warnings name each skipped fix and its reason.

        Raises:
            SeriesFormatError: a fix id in ``skip`` is not in the series.
        """
        unknown = sorted(set(skip) - set(self.fixes()))
        if unknown:
            raise SeriesFormatError(source, [(
                "patches", None, f"skips fix {', '.join(unknown)}, which {self.directory} does "
                f"not have; its fixes: {', '.join(self.fixes())}")])
        kept = tuple(p for p in self.patches if p.fix not in skip)
        notes = tuple(f"fix {fix} not applied ({source}): {why}" for fix, why in skip.items())
        return replace(self, patches=kept, warnings=self.warnings + notes)

    def fingerprint(self) -> str:
        """sha256 over entry names and patch digests, in order."""
        h = hashlib.sha256()
        for p in self.patches:
            h.update(f"{p.name}\0{p.sha256}\n".encode())
        return h.hexdigest()

    def __iter__(self) -> Iterator[PatchEntry]:
        return iter(self.patches)

    def __len__(self) -> int:
        return len(self.patches)


def read_series_file(path: Path) -> list[tuple[int, str]]:
    """Parse a quilt ``series`` file.

    Args:
        path: the series file.

    Returns:
        ``(line, name)`` pairs, line 1-based, in order.

    Raises:
        SeriesFormatError: every bad line (quilt options other than ``-p1``,
            absolute paths, ``..``, duplicates), all at once.
    """
    entries: list[tuple[int, str]] = []
    problems: list[tuple[str, int | None, str]] = []
    seen: dict[str, int] = {}
    text = decode_utf8(read_regular(path, 1 << 20, "series file"), path, "series file")
    for lineno, raw in enumerate(text.splitlines(), 1):
        text = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not text:
            continue
        name, *opts = text.split()
        if opts and opts != ["-p1"]:
            problems.append((name, lineno, (f"unsupported quilt option(s) {' '.join(opts)}; "
                             "only -p1 (the git format-patch default) is supported")))
        if name.startswith("/") or ".." in Path(name).parts:
            problems.append((name, lineno, "entries must be relative to the series directory"))
        if name in seen:
            problems.append((name, lineno, f"duplicate entry (first on line {seen[name]})"))
        seen.setdefault(name, lineno)
        entries.append((lineno, name))
    if problems:
        raise SeriesFormatError(str(path), problems)
    return entries


# --------------------------------------------------------------------------- meta.yaml

def validate_meta(path: Path) -> tuple[dict[str, Any], list[Problem], list[Problem]]:
    """Validate ``meta.yaml`` against :data:`META_SCHEMA` (through :mod:`rprockit.yamlfile`).

    Args:
        path: the meta file.

    Returns:
        ``(data, errors, warnings)``; each problem is ``(key_path, line, message)``
        with the 1-based line of the key.  Unknown keys are warnings, everything
        else an error.  Regexes are compiled.

    Raises:
        SeriesFormatError: the file is unreadable or not YAML at all.
    """
    data, lines = parse(path, SeriesFormatError)
    errors, unknown = check(data, "series-meta", lines)
    errors = [(kp or "<top>", line, msg) for kp, line, msg in errors]
    warnings = [(kp, line, f"{msg.split(';')[0]}, ignored") for kp, line, msg in unknown]
    for name, meta in (data.get("patches") or {}).items() if isinstance(data, dict) else ():
        for probe_key in ("present_if", "requires"):
            for i, probe in enumerate((meta or {}).get(probe_key) or [] if isinstance(meta, dict)
                                      else []):
                if isinstance(probe, dict) and isinstance(probe.get("regex"), str):
                    try:
                        re.compile(probe["regex"], re.MULTILINE)
                    except re.error as e:
                        kp = ("patches", name, probe_key, i, "regex")
                        errors.append((keypath_str(kp), line_of(lines, kp),
                                       f"invalid regex: {e}"))
    return data, errors, warnings


# --------------------------------------------------------------------------- patch headers

_TRAILER = re.compile(r"^Upstream-Status:\s*(\w+)", re.MULTILINE | re.IGNORECASE)


def _patch_headers(text: str) -> dict[str, str]:
    head = text.split("\n\n", 1)[0]
    out: dict[str, str] = {}
    for key in ("From", "Subject"):
        m = re.search(rf"^{key}: (.*(?:\n[ \t].*)*)", head, re.MULTILINE)
        if m:
            out[key] = re.sub(r"\s*\n[ \t]+", " ", m.group(1)).strip()
    out["Subject"] = re.sub(r"^\[PATCH[^\]]*\]\s*", "", out.get("Subject", ""))
    m = _TRAILER.search(text.split("\n---\n", 1)[0])
    if m:
        out["Upstream-Status"] = m.group(1).lower()
    return out


def _probes(raw: list[dict[str, str]] | None) -> tuple[Probe, ...]:
    return tuple(Probe(p["file"], p.get("regex")) for p in raw or [])


def load_series(series_dir: Path) -> Series:
    """Load and validate ``<series_dir>/series`` and ``<series_dir>/meta.yaml``.

    Checks, all reported at once: the series syntax, the meta schema
    (:data:`META_SCHEMA`), that every entry has metadata and an existing
    patch file in ``git format-patch`` form (``From:``/``Subject:`` headers and
    a ``diff --git``), and that the patch's ``Upstream-Status:`` trailer agrees
    with ``upstream.status``.

    Args:
        series_dir: directory holding ``series`` and ``meta.yaml``.

    Returns:
        The :class:`Series`; unknown meta keys and meta entries absent from
        the series are in ``Series.warnings``.

    Raises:
        SeriesFormatError: with file, key path and line of every problem.
    """
    series_dir = Path(series_dir).resolve()
    series_file, meta_file = series_dir / "series", series_dir / "meta.yaml"
    for f in (series_file, meta_file):
        if not f.is_file():
            raise SeriesFormatError(str(f), [("", None, ("file not found; a series directory "
                                              "needs both 'series' and 'meta.yaml'"))])
    entries = read_series_file(series_file)
    data, errors, warns = validate_meta(meta_file)
    if errors:
        raise SeriesFormatError(str(meta_file), errors)
    metas: dict[str, dict[str, Any]] = data["patches"]
    series_problems: list[tuple[str, int | None, str]] = []
    patches: list[PatchEntry] = []
    for lineno, name in entries:
        meta = metas.get(name)
        if meta is None:
            series_problems.append((name, lineno, f"no entry for it in {meta_file}"))
            continue
        path = series_dir / name
        if not path.is_file():
            series_problems.append((name, lineno, f"patch file {path} not found"))
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        hdr = _patch_headers(text)
        if "From" not in hdr or not hdr["Subject"] or "\ndiff --git " not in text:
            series_problems.append((name, lineno, ("not a 'git format-patch' mail (needs From:, "
                                    "Subject: and a 'diff --git' section); regenerate it "
                                    "with git format-patch")))
            continue
        status = meta["upstream"]["status"]
        if hdr.get("Upstream-Status") != status:
            series_problems.append((name, lineno, (f"Upstream-Status trailer is "
                                    f"{hdr.get('Upstream-Status', 'missing')!r} but meta.yaml "
                                    f"says {status!r}; make them agree")))
        patches.append(PatchEntry(
            name=name, path=path, line=lineno, fix=meta["fix"], fixes=tuple(meta["fixes"]),
            families=tuple(meta["families"]), upstream=dict(meta["upstream"]),
            present_if=_probes(meta.get("present_if")), requires=_probes(meta.get("requires")),
            subject=hdr["Subject"], author=hdr["From"],
            sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
    if series_problems:
        raise SeriesFormatError(str(series_file), series_problems)
    listed = {n for _, n in entries}
    warnings = [f"{meta_file}:{line or '?'}: {kp}: {msg}" for kp, line, msg in warns]
    warnings += [f"{meta_file}: patches.{n}: not listed in {series_file}, ignored"
                 for n in metas if n not in listed]
    return Series(series_dir, series_file, meta_file, tuple(patches), tuple(warnings))
