"""Loads routing/*.yaml into :class:`ivr.core.routing_models.Routing`.

Every error names the file and the line: YAML syntax errors by their mark, validation
errors by walking the composed YAML nodes along pydantic's error location, cross-reference
problems (:func:`ivr.core.routing_models.cross_check`) by walking the file that defines the
section at fault.

Sections may be spread over several files (hotline.yaml, desks.yaml, ...); a section defined
in two files is an error naming both. Two more checks need other files and are run by
``ivr check-routing`` (and should be at start of the roles that play prompts):
:func:`check_prompts` (every prompt the routing names exists in every language of the
catalog) and :func:`check_queues` (every queue exists in dialplan/queues.conf).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ivr.core.routing_models import (
    Location,
    Routing,
    RoutingFileIn,
    RoutingProblem,
    RoutingSections,
    cross_check,
    defined_queue_problems,
    missing_prompts,
)
from ivr.errors import ConfigError

_QUEUE_SECTION = re.compile(r"^\[([^\]\s]+)\]\s*(\(([^)]*)\))?")


@dataclass(frozen=True, slots=True)
class _Source:
    path: Path
    node: yaml.Node | None  # the file's composed YAML, for line numbers

    def line_of(self, loc: Location) -> int:
        return _line_of(self.node, loc)


def load_routing(directory: Path) -> Routing:
    merged, sources = _read(directory)
    try:
        sections = RoutingSections.model_validate(merged)
    except ValidationError as exc:  # a missing section: no file to name, so the directory
        problems = [RoutingProblem(tuple(e["loc"]), e["msg"]) for e in exc.errors()]
        raise ConfigError(_report(problems, sources, directory, sep="; ")) from None
    problems = cross_check(sections)
    if problems:
        raise ConfigError(_report(problems, sources, directory))
    return Routing.model_validate(merged)


def check_prompts(
    directory: Path, routing: RoutingSections, available: Iterable[tuple[str, str]]
) -> None:
    """Refuse a routing that names a prompt the catalog lacks in any language.

    ``available``: ``(key, language)`` pairs, e.g. ``{(p.key, p.language) for p in catalog}``
    from :func:`ivr.adapters.telephony.prompts.load_catalog`. The error names file:line of each use.
    """
    problems = missing_prompts(routing, set(available))
    if problems:
        _, sources = _read(directory)
        raise ConfigError(_report(problems, sources, directory))


def check_queues(directory: Path, routing: RoutingSections, queues_conf: Path) -> None:
    """Refuse a routing that names a queue dialplan/queues.conf does not define."""
    problems = defined_queue_problems(routing, queues_defined(queues_conf))
    if problems:
        _, sources = _read(directory)
        raise ConfigError(_report(problems, sources, directory))


def queues_defined(queues_conf: Path) -> set[str]:
    """The queue names in an Asterisk queues.conf: its sections, minus [general] and templates."""
    try:
        text = queues_conf.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{queues_conf}: cannot read: {exc.strerror}") from None
    names = set()
    for line in text.splitlines():
        match = _QUEUE_SECTION.match(line.strip())
        if match is None or match.group(1) == "general":
            continue
        if match.group(3) is not None and "!" in match.group(3):
            continue  # a template, e.g. [desk](!)
        names.add(match.group(1))
    return names


# --- reading ----------------------------------------------------------------------------
def _read(directory: Path) -> tuple[dict[str, Any], dict[str, _Source]]:
    """Every file validated alone, then the sections merged; where each section came from."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{directory}: no routing files (*.yaml)")
    merged: dict[str, Any] = {}
    sources: dict[str, _Source] = {}
    for path in files:
        parsed, source = _load_file(path)
        for section, value in parsed.model_dump(exclude_none=True).items():
            if section in sources:
                first = sources[section]
                raise ConfigError(
                    f"{path}:{source.line_of((section,))}: section {section!r} is also defined "
                    f"in {first.path}:{first.line_of((section,))} (define it in one file only)"
                )
            merged[section] = value
            sources[section] = source
    return merged, sources


def _load_file(path: Path) -> tuple[RoutingFileIn, _Source]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{at}: invalid YAML: {problem}") from None
    except ValueError as exc:  # PyYAML builds dates itself: 2027-02-30 fails here
        line = _bad_timestamp_line(node)
        raise ConfigError(f"{path}:{line}: invalid date or time: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping at the top level")
    source = _Source(path, node)
    try:
        return RoutingFileIn.model_validate(data), source
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"{path}:{source.line_of(tuple(err['loc']))}: {where}: {err['msg']}"
        ) from None


def _report(
    problems: list[RoutingProblem],
    sources: dict[str, _Source],
    directory: Path,
    sep: str = "\n",
) -> str:
    """One line per problem: ``file:line: where: message`` (the directory if no file has it)."""
    lines = []
    for problem in problems:
        source = sources.get(str(problem.loc[0])) if problem.loc else None
        where = problem.where or "routing"
        if source is None:
            lines.append(f"{directory}: {where}: {problem.message}")
        else:
            lines.append(f"{source.path}:{source.line_of(problem.loc)}: {where}: {problem.message}")
    return sep.join(lines)


def _bad_timestamp_line(node: yaml.Node | None) -> int:
    """The line of the first YAML date/time scalar that is no real date or time."""
    stack = [node] if node is not None else []
    constructor = yaml.SafeLoader("")
    while stack:  # depth first, in document order
        current = stack.pop()
        if isinstance(current, yaml.ScalarNode) and current.tag.endswith(":timestamp"):
            try:
                constructor.construct_yaml_timestamp(current)
            except ValueError:
                return current.start_mark.line + 1
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(reversed(current.value))
        elif isinstance(current, yaml.MappingNode):
            stack.extend(reversed([n for pair in current.value for n in pair]))
    return 1


def _line_of(node: yaml.Node | None, loc: Location) -> int:
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
