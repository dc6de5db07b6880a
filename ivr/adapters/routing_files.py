"""Loads routing/*.yaml into :class:`ivr.core.routing_models.Routing`.

Every error names the file and the line: YAML syntax errors by their mark, validation
errors by walking the composed YAML nodes along pydantic's error location.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ivr.core.routing_models import Routing, RoutingFileIn
from ivr.errors import ConfigError


def load_routing(directory: Path) -> Routing:
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{directory}: no routing files (*.yaml)")
    merged: dict[str, Any] = {}
    for path in files:
        parsed = _load_file(path)
        for section, value in parsed.model_dump(exclude_none=True).items():
            if section in merged:
                raise ConfigError(f"{path}: section {section!r} is defined in another file too")
            merged[section] = value
    try:
        return Routing.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"{directory}: {_messages(exc)}") from None


def _load_file(path: Path) -> RoutingFileIn:
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{at}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping at the top level")
    try:
        return RoutingFileIn.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        line = _line_of(node, err["loc"])
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}:{line}: {where}: {err['msg']}") from None


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the deepest YAML node along ``loc`` that exists.

    Through a mapping, the line is the key's (``hotline:``), not its value's: a missing key
    then points at the section that lacks it, not at the section's first entry.
    """
    line = 1 if node is None else node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:  # a missing key: point at its mapping
                return line
            node, line = pair[1], pair[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _messages(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'routing'}: {e['msg']}" for e in exc.errors()
    )
