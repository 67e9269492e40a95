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
from .files import decode_utf8, read_regular

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


#: Largest YAML file read (bytes): far above any profile or data file rprockit ships.
MAX_YAML_BYTES = 4 << 20
#: Largest number of nodes once every alias is expanded (a "billion laughs" stops here).
MAX_NODES = 200_000
#: Deepest nesting of mappings and lists.
MAX_DEPTH = 64


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts composed nodes and bounds the nesting depth."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0
        self.composed = 0

    def compose_node(self, parent, index):
        self.depth += 1
        self.composed += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark)
            if self.composed > MAX_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_NODES} nodes", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _children(n: yaml.Node) -> list[yaml.Node]:
    if isinstance(n, yaml.MappingNode):
        return [x for kv in n.value for x in kv]
    if isinstance(n, yaml.SequenceNode):
        return list(n.value)
    return []


def _check_graph(root: yaml.Node) -> list[Problem]:
    """Problems of a composed tree: recursive or too large alias expansion, duplicate
    keys, keys that are not strings (each with its line)."""
    problems: list[Problem] = []
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        n, done = stack.pop()
        if done:
            on_path.discard(id(n))
            sizes[id(n)] = 1 + sum(sizes.get(id(c), 0) for c in _children(n))
            if sizes[id(n)] > MAX_NODES:
                return [("", n.start_mark.line + 1, f"aliases expand to more than {MAX_NODES} "
                         "nodes (an alias bomb?); write the values out")]
            continue
        if id(n) in sizes:
            continue
        if id(n) in on_path:
            return [("", n.start_mark.line + 1, "an alias refers to a node that contains it "
                     "(recursive alias)")]
        on_path.add(id(n))
        stack.append((n, True))
        stack.extend((c, False) for c in _children(n) if id(c) not in sizes)
        if isinstance(n, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, _v in n.value:
                line = k.start_mark.line + 1
                if not isinstance(k, yaml.ScalarNode) or k.tag != "tag:yaml.org,2002:str":
                    if k.tag == "tag:yaml.org,2002:merge":
                        continue
                    shown = k.value if isinstance(k, yaml.ScalarNode) else "a " + k.id
                    problems.append(("", line, f"key {str(shown)[:60]!r} is not a string "
                                     "(quote it)"))
                    continue
                if k.value in seen:
                    problems.append((str(k.value)[:60], line, f"duplicate key '{k.value!s:.60}'"
                                     f" (first at line {seen[k.value]}); keep one"))
                else:
                    seen[k.value] = line
        if len(problems) > 100:
            break
    return problems


def parse_text(text: str, source: str | Path,
               error: type[InvalidFileError] = InvalidFileError) -> tuple[Any, Lines]:
    """Parse YAML ``text`` (safe loader, bounded).

    Bounds: at most :data:`MAX_NODES` nodes with aliases expanded, nesting at
    most :data:`MAX_DEPTH` deep.  Duplicate keys, recursive aliases and keys
    that are not strings are errors.

    Args:
        text: the YAML document.
        source: the file it came from, for messages.
        error: the :class:`~rprockit.errors.InvalidFileError` subclass to raise.

    Returns:
        ``(data, lines)``.

    Raises:
        InvalidFileError: not valid YAML, or one of the problems above (with lines).
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        problems = _check_graph(node) if node is not None else []
        if problems:
            raise error(str(source), problems)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise error(str(source), [("", line, f"not valid YAML: {getattr(e, 'problem', e)}")]) \
            from e
    except RecursionError:
        raise error(str(source), [("", None, "nested too deeply")]) from None
    finally:
        loader.dispose()
    return data, line_map(node)


def compose_checked(text: str, source: str | Path) -> yaml.Node | None:
    """Compose ``text`` (no construction: custom tags such as labgrid's ``!template``
    pass) under the same bounds and key rules as :func:`parse_text`.

    Raises:
        InvalidFileError: not valid YAML, or bounds or key rules broken.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InvalidFileError(str(source), [("", mark.line + 1 if mark else None,
                                              f"not valid YAML: {getattr(e, 'problem', e)}")]) \
            from e
    except RecursionError:
        raise InvalidFileError(str(source), [("", None, "nested too deeply")]) from None
    finally:
        loader.dispose()
    problems = _check_graph(node) if node is not None else []
    if problems:
        raise InvalidFileError(str(source), problems)
    return node


def parse(path: str | Path,
          error: type[InvalidFileError] = InvalidFileError) -> tuple[Any, Lines]:
    """Read and parse the YAML file ``path`` without validating it.

    The file must be a regular UTF-8 file of at most :data:`MAX_YAML_BYTES`.

    Returns:
        ``(data, lines)``.

    Raises:
        InvalidFileError: unreadable, not a regular file, too large, not UTF-8
            (with the byte offset), or not valid YAML.
    """
    path = Path(path)
    text = decode_utf8(read_regular(path, MAX_YAML_BYTES, "YAML file"), path, "YAML file")
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
    if err.validator == "oneOf" and isinstance(value, list) \
            and all(isinstance(v, dict) and set(v) == {"required"} for v in value):
        req: list[str] = [n for v in value for n in v["required"]]
        given: list[str] = [n for n in req if isinstance(err.instance, dict) and n in err.instance]
        return (f"give exactly one of {', '.join(req)}"
                + (f" (found {' and '.join(given)})" if given else " (found none)"))
    text = str(err.message)
    return text if len(text) <= 300 else text[:297] + "..."


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
