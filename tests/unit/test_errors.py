"""The error catalogue: every HotlineError has its own slug and a docstring, and the tree in
``ivr/errors.py`` lists every class with its slug, its module and its parent."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections import Counter
from dataclasses import dataclass

import pytest

import ivr
from ivr import errors
from ivr.errors import HotlineError

TREE_LINE = re.compile(r"^ {4}(?P<indent>(?:[│ ] {3})*)(?P<branch>[├└]── )?(?P<rest>\w.*)$")


def every_error() -> list[type[HotlineError]]:
    """HotlineError and all its subclasses, after importing every module of ivr."""
    for module in pkgutil.walk_packages(ivr.__path__, "ivr."):
        if module.name != "ivr.__main__":  # that one runs the CLI
            importlib.import_module(module.name)
    found: list[type[HotlineError]] = []
    todo: list[type[HotlineError]] = [HotlineError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


@dataclass(frozen=True, slots=True)
class Listed:
    name: str
    slug: str
    module: str
    parent: str | None


def listed_tree(doc: str) -> list[Listed]:
    """The rows of the ``Hierarchy`` block of a module docstring."""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    rows: list[Listed] = []
    parents: list[str] = []
    for line in block.splitlines():
        match = TREE_LINE.match(line)
        assert match, f"not a tree line: {line!r}"
        depth = len(match["indent"]) // 4 + (1 if match["branch"] else 0)
        name, slug, *module = match["rest"].split()
        del parents[depth:]
        rows.append(
            Listed(name, slug, module[0] if module else "ivr.errors", (parents or [None])[-1])
        )
        parents.append(name)
    return rows


@pytest.fixture(scope="module")
def classes() -> list[type[HotlineError]]:
    return every_error()


def test_every_slug_is_unique(classes):
    counts = Counter(cls.slug for cls in classes)
    shared = {
        slug: sorted(c.__qualname__ for c in classes if c.slug == slug)
        for slug, n in counts.items()
        if n > 1
    }
    assert not shared, f"slugs used by more than one error: {shared}"


def test_every_error_sets_its_own_slug_and_says_what_it_means(classes):
    no_slug = sorted(c.__qualname__ for c in classes if "slug" not in vars(c))
    no_doc = sorted(c.__qualname__ for c in classes if not (vars(c).get("__doc__") or "").strip())
    assert not no_slug, f"errors that inherit their parent's slug: {no_slug}"
    assert not no_doc, f"errors without a docstring: {no_doc}"


def test_every_class_name_is_unique(classes):
    names = Counter(cls.__name__ for cls in classes)
    assert [name for name, n in names.items() if n > 1] == []


def test_the_tree_in_errors_py_lists_every_error_with_its_slug_module_and_parent(classes):
    assert errors.__doc__ is not None
    listed = {row.name: row for row in listed_tree(errors.__doc__)}
    actual = {
        cls.__name__: Listed(
            cls.__name__,
            cls.slug,
            cls.__module__,
            None if cls is HotlineError else cls.__bases__[0].__name__,
        )
        for cls in classes
    }

    assert sorted(set(actual) - set(listed)) == [], "errors missing from the tree"
    assert sorted(set(listed) - set(actual)) == [], "the tree lists errors that do not exist"
    wrong = {name: (listed[name], actual[name]) for name in actual if listed[name] != actual[name]}
    assert not wrong, f"tree rows that disagree with the code (tree, code): {wrong}"


def test_tree_reader_on_a_small_tree():
    doc = (
        "Errors.\n\nHierarchy::\n\n"
        "    HotlineError        hotline-error\n"
        "    ├── AError          a-error\n"
        "    │   └── ASub        a-sub           ivr.adapters.x\n"
        "    └── BError          b-error\n\n"
        "The end.\n"
    )

    assert listed_tree(doc) == [
        Listed("HotlineError", "hotline-error", "ivr.errors", None),
        Listed("AError", "a-error", "ivr.errors", "HotlineError"),
        Listed("ASub", "a-sub", "ivr.adapters.x", "AError"),
        Listed("BError", "b-error", "ivr.errors", "HotlineError"),
    ]
