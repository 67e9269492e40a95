"""Load a YAML file we own and validate it against a JSON schema.

Every error is reported at once with file, key path and line
(kas ``includehandler.py`` validates with JSON Schema the same way).
"""

from __future__ import annotations

import json
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ProfileError


def _compose(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Parse ``path``; return the data and a map ``key path -> 1-based line``."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ProfileError(str(path), [("", None, f"cannot read: {e.strerror}")]) from e
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ProfileError(str(path), [("", line, f"not valid YAML: {getattr(e, 'problem', e)}")]) from e
    lines: dict[tuple, int] = {}

    def walk(n, keypath):
        if n is None:
            return
        lines[keypath] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                lines[keypath + (k.value,)] = k.start_mark.line + 1
                walk(v, keypath + (k.value,))
                lines[keypath + (k.value,)] = k.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, keypath + (i,))

    walk(node, ())
    return data, lines


def _line(lines: dict[tuple, int], keypath: tuple) -> int | None:
    while keypath and keypath not in lines:
        keypath = keypath[:-1]
    return lines.get(keypath)


def _keystr(keypath) -> str:
    out = ""
    for k in keypath:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
    return out


def schema(name: str) -> dict:
    """The packaged JSON schema ``src/rprockit/schemas/<name>.json``."""
    return json.loads(resources.files("rprockit.schemas").joinpath(f"{name}.json").read_text())


def load_validated(path: str | Path, schema_name: str) -> tuple[dict, dict[tuple, int]]:
    """Load ``path`` and validate it against the schema ``schema_name``.

    Unknown keys are errors where the schema sets ``additionalProperties: false``.

    Returns:
        ``(data, lines)``: the mapping and the line of every key path.

    Raises:
        ProfileError: listing every problem with key path and line.
    """
    path = Path(path)
    data, lines = _compose(path)
    if not isinstance(data, dict):
        raise ProfileError(str(path), [("", 1, "the file must be a YAML mapping")])
    validator = jsonschema.Draft7Validator(schema(schema_name))
    problems = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        keypath = tuple(err.absolute_path)
        msg = err.message
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            for key in extra:
                allowed = ", ".join(sorted(err.schema.get("properties", {})))
                problems.append((_keystr(keypath + (key,)), _line(lines, keypath + (key,)),
                                 f"unknown key '{key}'; allowed keys here: {allowed}"))
            continue
        problems.append((_keystr(keypath), _line(lines, keypath), msg))
    if problems:
        raise ProfileError(str(path), problems)
    fmt = data.get("format")
    if fmt is not None and fmt != 1:
        warnings.warn(f"{path}: format {fmt} is newer than this rprockit understands", stacklevel=2)
    return data, lines
