"""The one YAML loader and JSON Schema validator for every file rprockit reads.

Profiles, module sets, series metadata, target settings, SoC data and the
knowledge base all go through here, each against its schema in
``src/rprockit/schemas/<name>.json``.  Every problem is reported at once as
``(key path, line, message)`` with the 1-based line of the key in the file
(kas ``includehandler.py`` validates with JSON Schema the same way).  This is
the only module that imports :mod:`jsonschema`.

Public API::

    doc = load(path, "profile")                    # parse + validate, raises InvalidFileError
    data, lines = parse(path)                      # parse only (data + key path -> line)
    validate(data, "modules", source=path, lines=lines)
    errors, warnings = check(data, "series-meta", lines)   # problems, no raise
"""

from __future__ import annotations

import json
import warnings as _warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from .errors import InvalidFileError

#: ``(key path, line, message)``: a dotted key path (``build.dtbs[0]``, ``''`` for the
#: top), the 1-based line or None, and what is wrong.
Problem = tuple[str, int | None, str]

#: Key path (mapping keys and list indexes) -> 1-based line of that key or item.
Lines = dict[tuple, int]

#: JSON Schema type names as a Python reader knows them, for messages.
_TYPE_NAMES = {"string": "str", "boolean": "bool", "integer": "int", "number": "int or float",
               "object": "mapping", "array": "list", "null": "null"}


@dataclass(frozen=True)
class Document:
    """A parsed and validated YAML file.

    Attributes:
        path: the file.
        data: its content (a mapping for every rprockit file).
        lines: the line of every key path (see :data:`Lines`).
        warnings: non-fatal problems (unknown keys where the caller asked for warnings).
    """

    path: Path
    data: Any
    lines: Lines = field(default_factory=dict, repr=False)
    warnings: tuple[Problem, ...] = ()

    def line_of(self, *keypath: str | int) -> int | None:
        """1-based line of ``keypath`` (or of its nearest parent), None if unknown."""
        return line_of(self.lines, keypath)


def line_map(node: yaml.Node | None) -> Lines:
    """The line of every key path in a composed YAML tree (``yaml.compose``).

    A mapping key maps to the line of the key itself; a list item to the line
    where the item starts.
    """
    lines: Lines = {}

    def walk(n: yaml.Node | None, keypath: tuple) -> None:
        if n is None:
            return
        lines.setdefault(keypath, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                walk(v, (*keypath, k.value))
                lines[(*keypath, k.value)] = k.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, (*keypath, i))

    walk(node, ())
    return lines


def line_of(lines: Mapping[tuple, int], keypath: Sequence[str | int]) -> int | None:
    """Line of ``keypath`` in ``lines``, or of the nearest parent that has one."""
    kp = tuple(keypath)
    while kp and kp not in lines:
        kp = kp[:-1]
    return lines.get(kp)


def keypath_str(keypath: Sequence[str | int]) -> str:
    """``("build", "dtbs", 0)`` -> ``build.dtbs[0]``."""
    out = ""
    for k in keypath:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
    return out


def parse_text(text: str, source: str | Path,
               error: type[InvalidFileError] = InvalidFileError) -> tuple[Any, Lines]:
    """Parse YAML ``text`` (safe loader).

    Args:
        text: the YAML document.
        source: the file it came from, for messages.
        error: the :class:`~rprockit.errors.InvalidFileError` subclass to raise.

    Returns:
        ``(data, lines)``.

    Raises:
        InvalidFileError: not valid YAML (with the line of the problem).
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise error(str(source), [("", line, f"not valid YAML: {getattr(e, 'problem', e)}")]) \
            from e
    return data, line_map(node)


def parse(path: str | Path,
          error: type[InvalidFileError] = InvalidFileError) -> tuple[Any, Lines]:
    """Read and parse the YAML file ``path`` without validating it.

    Returns:
        ``(data, lines)``.

    Raises:
        InvalidFileError: unreadable, or not valid YAML.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise error(str(path), [("", None, f"cannot read: {e.strerror}")]) from e
    return parse_text(text, path, error)


@cache
def schema(name: str) -> dict[str, Any]:
    """The packaged JSON schema ``src/rprockit/schemas/<name>.json``.

    Raises:
        FileNotFoundError: no such schema (a packaging bug).
    """
    text = resources.files("rprockit.schemas").joinpath(f"{name}.json").read_text()
    return json.loads(text)


def _sub_schema(err: jsonschema.ValidationError) -> Mapping[str, Any]:
    return err.schema if isinstance(err.schema, Mapping) else {}


def _message(err: jsonschema.ValidationError, data: Any) -> str:
    value: Any = err.validator_value
    if err.validator == "type":
        types = value if isinstance(value, list) else [value]
        names = " or ".join(_TYPE_NAMES.get(str(t), str(t)) for t in types)
        return f"{err.instance!r} is not a {names}"
    if err.validator == "required" and not err.absolute_path and isinstance(data, dict) \
            and "format" not in data and "format" in (value or ()):
        fmt = _sub_schema(err).get("properties", {}).get("format", {}).get("const", 1)
        return f"missing 'format' key; add 'format: {fmt}'"
    return err.message


def check(data: Any, schema_name: str, lines: Mapping[tuple, int] | None = None,
          prefix: Sequence[str | int] = ()) -> tuple[list[Problem], list[Problem]]:
    """Validate ``data`` against a schema and return its problems without raising.

    Args:
        data: the loaded YAML (or any JSON-like value).
        schema_name: ``src/rprockit/schemas/<schema_name>.json``; the draft follows its
            ``$schema`` (draft 7 and 2020-12 are used).
        lines: key path -> line, from :func:`parse`; key paths are looked up under ``prefix``.
        prefix: where ``data`` sits in its file (e.g. ``("targets", "main", "options",
            "rprockit")``), prepended to every key path.

    Returns:
        ``(errors, unknown_keys)``; each a list of :data:`Problem`.  Unknown keys
        (``additionalProperties: false``) are kept apart so that a caller can make
        them warnings.
    """
    tagged = _problems(data, schema_name, lines or {}, prefix)
    return [p for u, p in tagged if not u], [p for u, p in tagged if u]


def _problems(data: Any, schema_name: str, lines: Mapping[tuple, int],
              prefix: Sequence[str | int]) -> list[tuple[bool, Problem]]:
    """Every problem in key-path order, tagged True when it is an unknown key."""
    sch = schema(schema_name)
    validator = jsonschema.validators.validator_for(sch)(sch)
    out: list[tuple[bool, Problem]] = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        kp = (*prefix, *err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            props = _sub_schema(err).get("properties", {})
            allowed = ", ".join(sorted(props))
            for key in sorted(set(err.instance) - set(props)):
                out.append((True, (keypath_str((*kp, key)), line_of(lines, (*kp, key)),
                                   f"unknown key '{key}'; allowed keys here: {allowed}")))
            continue
        out.append((False, (keypath_str(kp), line_of(lines, kp), _message(err, data))))
    return out


def validate(data: Any, schema_name: str, source: str | Path,
             lines: Mapping[tuple, int] | None = None,
             unknown: Literal["error", "warn"] = "error",
             error: type[InvalidFileError] = InvalidFileError) -> list[Problem]:
    """Validate ``data`` against a schema; raise with every problem at once.

    Args:
        data: the loaded content.
        schema_name: see :func:`check`.
        source: the file the data came from, for messages.
        lines: key path -> line, from :func:`parse`.
        unknown: ``"error"`` (default) or ``"warn"``: what an unknown key is.
        error: the :class:`~rprockit.errors.InvalidFileError` subclass to raise.

    Returns:
        The unknown-key problems when ``unknown="warn"`` (else empty).

    Raises:
        InvalidFileError: listing every problem as ``file:line: key path: message``.
    """
    tagged = _problems(data, schema_name, lines or {}, ())
    errors = [p for u, p in tagged if unknown == "error" or not u]
    extra = [p for u, p in tagged if unknown == "warn" and u]
    if errors:
        raise error(str(source), errors)
    return extra


def load(path: str | Path, schema_name: str, unknown: Literal["error", "warn"] = "error",
         error: type[InvalidFileError] = InvalidFileError) -> Document:
    """Read, parse and validate the YAML mapping ``path`` against ``schema_name``.

    Args:
        path: the file.
        schema_name: ``src/rprockit/schemas/<schema_name>.json``.
        unknown: whether an unknown key is an error (default) or a warning.
        error: the :class:`~rprockit.errors.InvalidFileError` subclass to raise.

    Returns:
        The :class:`Document`; unknown keys are in ``warnings`` with ``unknown="warn"``.

    Raises:
        InvalidFileError: unreadable, not YAML, not a mapping, or schema problems, each with
            file, line and key path.
    """
    path = Path(path)
    data, lines = parse(path, error)
    if not isinstance(data, dict):
        raise error(str(path), [("", 1, "the file must be a YAML mapping")])
    warns = validate(data, schema_name, path, lines, unknown, error)
    fmt = data.get("format")
    if fmt is not None and fmt != 1:
        _warnings.warn(f"{path}: format {fmt} is newer than this rprockit understands",
                       stacklevel=2)
    return Document(path, data, lines, tuple(warns))


def load_validated(path: str | Path, schema_name: str) -> tuple[dict, Lines]:
    """``load(path, schema_name)`` as ``(data, lines)``; unknown keys are errors.

    Raises:
        InvalidFileError: see :func:`load`.
    """
    doc = load(path, schema_name)
    return doc.data, doc.lines
