"""The layers of ``ivr/``, kept by a test: who may import whom, and no import cycles.

Every import statement of every module under ``ivr/`` counts, wherever it stands: at the top,
inside a function (the lazy imports of the CLI and the roles), or under ``TYPE_CHECKING``.

The rules are data, below:

- ``CORE_MAY_IMPORT``: ``ivr/core`` is pure, so it imports the standard library and these
  only.
- ``FORBIDDEN``: for each layer (a module prefix), the modules it must not import: the
  protocols no adapter, the adapters neither the web app, the CLI nor dev-only code, and
  the pure layers (core, protocols: parsing and decisions, sans I/O) no I/O module.
- ``DEV_ONLY``: code that only the dev stack (``ivr up``) and the tests use. It may import
  anything; production code imports none of it, except the modules in ``DEV_ONLY_USERS``
  (the CLI modules holding the dev commands ``up``, ``down``, ``status``, ``restart``).
- No cycles between modules of ``ivr``.

A pattern names a module and everything below it (``ivr.web`` is ``ivr.web`` and
``ivr.web.routes.tickets``); a pattern ending in ``*`` is a plain prefix (``ivr.cli*`` is
``ivr.cli``, ``ivr.cli_users`` ...).

To extend them: a new layer is one line in ``FORBIDDEN`` (say ``"ivr.adapters.telephony":
("ivr.adapters.recordings",)``); adapters in sub-packages by concern (``ivr/adapters/<concern>/``)
fall under the ``ivr.adapters`` line as they are; a dev-only package (``ivr.devstack``) is one
entry in ``DEV_ONLY`` in place of the modules it takes in.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

IVR = Path(__file__).resolve().parents[2] / "ivr"

#: Besides the standard library, ``ivr/core`` imports only these.
CORE_MAY_IMPORT: tuple[str, ...] = ("ivr.core", "ivr.errors", "pydantic")

#: Code used only by the dev stack and the tests: the launcher, the sipp runner, the free-port
#: finder. (The Asterisk instance, ivr/adapters/telephony/asterisk.py, is production: systemd's
#: ``ivr asterisk prepare`` renders it.)
DEV_ONLY: tuple[str, ...] = (
    "ivr.devstack",  # the launcher, sipp, ports
)
#: The only production modules that may import dev-only code: the CLI modules with the dev
#: commands (``ivr up``/``down``/``status`` in cli.py, ``ivr restart`` in cli_units.py).
DEV_ONLY_USERS: tuple[str, ...] = ("ivr.cli", "ivr.cli_units")

#: Modules that do I/O: the pure layers (core, protocols) read no socket and await nothing.
IO_MODULES: tuple[str, ...] = ("asyncio", "socket", "selectors", "ssl", "subprocess")

#: Layer (module prefix) -> what it must not import. Dev-only modules are exempt.
FORBIDDEN: Mapping[str, tuple[str, ...]] = {
    "ivr.core": IO_MODULES,
    "ivr.protocols": ("ivr.adapters", *IO_MODULES),
    "ivr.adapters": ("ivr.web", "ivr.cli*", *DEV_ONLY),
}


# --- reading the imports ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Import:
    importer: str  # the module with the import statement
    imported: str  # the module it imports (an ivr module resolved to its file, or any name)
    line: int

    def __str__(self) -> str:
        path = self.importer.replace(".", "/")
        return f"{path}.py:{self.line} imports {self.imported}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = IVR) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imports_of(name: str, source: str, known: Iterable[str]) -> list[Import]:
    """The imports in ``source`` (module ``name``), wherever they stand.

    ``from a import b`` imports ``a.b`` when that is a module of ours, else ``a``; relative
    imports are resolved against ``name``. Names outside ``known`` are kept as written.
    """
    known = set(known)
    package = name if f"{name}.__init__" in known else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(Import(name, sub if sub in known else base, node.lineno))
    return found


def ivr_imports(root: Path = IVR) -> list[Import]:
    found = modules(root)
    known = set(found) | {f"{n}.__init__" for n, p in found.items() if p.name == "__init__.py"}
    return [
        imp
        for name, path in found.items()
        for imp in imports_of(name, path.read_text(encoding="utf-8"), known)
    ]


def matches(module: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return module.startswith(pattern[:-1])
    return module == pattern or module.startswith(pattern + ".")


def matches_any(module: str, patterns: Iterable[str]) -> bool:
    return any(matches(module, pattern) for pattern in patterns)


# --- the rules ----------------------------------------------------------------------------------
def core_violations(found: Iterable[Import]) -> list[Import]:
    return [
        imp
        for imp in found
        if matches(imp.importer, "ivr.core")
        and imp.imported.split(".")[0] not in sys.stdlib_module_names
        and imp.imported != "__future__"
        and not matches_any(imp.imported, CORE_MAY_IMPORT)
    ]


def layer_violations(found: Iterable[Import], layer: str) -> list[Import]:
    return [
        imp
        for imp in found
        if matches(imp.importer, layer)
        and not matches_any(imp.importer, DEV_ONLY)
        and matches_any(imp.imported, FORBIDDEN[layer])
    ]


def dev_only_violations(found: Iterable[Import]) -> list[Import]:
    return [
        imp
        for imp in found
        if matches_any(imp.imported, DEV_ONLY)
        and not matches_any(imp.importer, DEV_ONLY)
        and imp.importer not in DEV_ONLY_USERS
    ]


def cycles(found: Iterable[Import]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        if imp.imported != imp.importer and matches(imp.imported, "ivr"):
            graph.setdefault(imp.importer, set()).add(imp.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def report(found: Iterable[Import]) -> str:
    return "\n".join(str(imp) for imp in found)


# --- the tests ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def found() -> list[Import]:
    return ivr_imports()


def test_core_imports_only_the_standard_library_pydantic_and_itself(found):
    bad = core_violations(found)
    assert not bad, f"ivr/core is pure; allowed beyond the stdlib: {CORE_MAY_IMPORT}\n{report(bad)}"


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_does_not_import_what_sits_above_it(found, layer):
    bad = layer_violations(found, layer)
    assert not bad, f"{layer} must not import {FORBIDDEN[layer]}:\n{report(bad)}"


def test_production_code_imports_no_dev_only_module(found):
    bad = dev_only_violations(found)
    assert not bad, f"dev-only {DEV_ONLY}, only for {DEV_ONLY_USERS}:\n{report(bad)}"


def test_no_import_cycle_between_modules_of_ivr(found):
    assert cycles(found) == []


def test_every_rule_names_modules_that_exist(found):
    names = set(modules())
    patterns = [*CORE_MAY_IMPORT[:2], *DEV_ONLY, *DEV_ONLY_USERS, *FORBIDDEN]
    patterns += [p for ps in FORBIDDEN.values() for p in ps if matches(p, "ivr")]
    missing = [p for p in patterns if not any(matches(n, p) for n in names)]
    assert not missing, f"rules name no module (renamed? update the rules): {missing}"


# --- the checker itself, on made-up modules -----------------------------------------------------
KNOWN = {"ivr", "ivr.__init__", "ivr.core", "ivr.core.__init__", "ivr.core.a", "ivr.cli"}
KNOWN |= {"ivr.adapters", "ivr.adapters.__init__", "ivr.adapters.x"}
KNOWN |= {"ivr.web", "ivr.web.__init__", "ivr.web.app"}


def test_checker_sees_imports_inside_functions_and_resolves_from_imports():
    source = "import os\nfrom ivr.core import a\n\ndef f():\n    from ivr.web import app\n"

    got = imports_of("ivr.adapters.x", source, KNOWN)

    assert [(i.imported, i.line) for i in got] == [
        ("os", 1),
        ("ivr.core.a", 2),
        ("ivr.web.app", 5),
    ]
    assert [str(i) for i in layer_violations(got, "ivr.adapters")] == [
        "ivr/adapters/x.py:5 imports ivr.web.app"
    ]


def test_checker_resolves_relative_imports():
    got = imports_of("ivr.core.a", "from . import b\nfrom ..adapters import x\n", KNOWN)

    assert [i.imported for i in got] == ["ivr.core", "ivr.adapters.x"]
    assert [i.imported for i in core_violations(got)] == ["ivr.adapters.x"]


def test_checker_finds_a_cycle_through_a_function_level_import():
    got = [
        *imports_of("ivr.cli", "from ivr.adapters import x\n", KNOWN),
        *imports_of("ivr.adapters.x", "def f():\n    import ivr.cli\n", KNOWN),
    ]

    assert cycles(got) == [["ivr.adapters.x", "ivr.cli"]]
    assert [i.importer for i in dev_only_violations(got)] == []
    assert matches("ivr.cli_users", "ivr.cli*") and not matches("ivr.client", "ivr.cli")
