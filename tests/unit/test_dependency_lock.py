"""The virtualenv is exactly uv.lock, and a lock that no longer matches pyproject.toml stops
scripts/lint with a message that says what to run."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
# what `python -m venv` seeds a virtualenv with (one made before provisioning used uv keeps
# them; uv sync leaves them be): tools of the virtualenv, not dependencies of the project
VENV_SEEDS = {"pip", "setuptools", "wheel"}


def _locked() -> dict[str, str]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return {canonicalize_name(p["name"]): p["version"] for p in lock["package"]}


def test_every_installed_distribution_is_the_locked_version() -> None:
    locked = _locked()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    project = canonicalize_name(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    )
    strays = {
        name: v
        for name, v in installed.items()
        if name not in locked and name not in VENV_SEEDS | {project}
    }
    assert strays == {}, "installed but not in uv.lock (run scripts/provision)"
    wrong = {
        name: (v, locked[name])
        for name, v in installed.items()
        if name in locked and locked[name] != v
    }
    assert wrong == {}, "installed version differs from uv.lock (run scripts/provision)"
    for needed in ("fastapi", "redis", "sqlalchemy", "alembic", "schemathesis"):
        assert needed in installed


def test_given_a_pyproject_the_lock_does_not_match_when_linting_then_it_stops_saying_what_to_run(
    tmp_path: Path,
) -> None:
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    shutil.copy(REPO / "uv.lock", tmp_path / "uv.lock")
    pyproject = (REPO / "pyproject.toml").read_text()
    changed = pyproject.replace('"anyio>=4",', '"anyio>=4",\n    "six>=1.16",', 1)
    assert changed != pyproject
    (tmp_path / "pyproject.toml").write_text(changed)
    done = subprocess.run(
        [str(tmp_path / "scripts" / "lint")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "uv.lock does not match pyproject.toml: run scripts/uv lock" in done.stderr
    assert "lint: ok" not in done.stdout
    # the lock itself is left as it was
    assert (tmp_path / "uv.lock").read_bytes() == (REPO / "uv.lock").read_bytes()
