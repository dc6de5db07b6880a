"""scripts/asterisk-packages.sh takes Asterisk 22 only, and the built root is on record.

The refusal runs the real script in the real sid root, with ``apt-cache`` answering as a
mirror that offers another version would (a stand-in placed first on PATH; ``apt-get`` is
one too, so nothing is installed or removed). The script refuses before anything else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def in_root() -> Iterator[tuple[Path, str]]:
    """A scratch folder inside the sid root: (its path on the host, its path in the root)."""
    root = Settings().asterisk.root
    inside = f"/tmp/packages-test-{uuid.uuid4().hex[:8]}"
    host = root / inside.lstrip("/")
    (host / "bin").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "asterisk-packages.sh", host / "asterisk-packages.sh")
    try:
        yield host, inside
    finally:
        shutil.rmtree(host)


def _run_with_mirror_offering(in_root: tuple[Path, str], apt_cache_answer: str) -> tuple[int, str]:
    host, inside = in_root
    stand_ins = {
        "apt-cache": f"#!/bin/sh\nprintf '%s' '{apt_cache_answer}'\n",
        "apt-get": f'#!/bin/sh\necho "apt-get $*" >> {inside}/apt-get.calls\n',
    }
    for name, text in stand_ins.items():
        (host / "bin" / name).write_text(text)
        (host / "bin" / name).chmod(0o755)
    path = f"PATH={inside}/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    done = subprocess.run(
        ["chroot", str(Settings().asterisk.root), "/usr/bin/env", path,
         "sh", f"{inside}/asterisk-packages.sh"],
        capture_output=True, text=True, timeout=60, env=os.environ | {"LC_ALL": "C"},
    )  # fmt: skip
    return done.returncode, done.stderr


def test_given_a_mirror_with_asterisk_23_when_installing_then_refused_by_name(in_root) -> None:
    code, err = _run_with_mirror_offering(in_root, "Package: asterisk\nVersion: 1:23.1.0-1\n")
    assert code == 1
    assert "Asterisk 1:23.1.0-1" in err and "tested with Asterisk 22.x only" in err
    calls = (in_root[0] / "apt-get.calls").read_text().splitlines()
    assert calls == ["apt-get update -qq"]  # nothing was installed


def test_given_a_mirror_without_asterisk_when_installing_then_refused_clearly(in_root) -> None:
    code, err = _run_with_mirror_offering(in_root, "")
    assert code == 1
    assert "offers no 'asterisk' package" in err


def test_the_built_root_lists_every_package_at_its_version() -> None:
    root = Settings().asterisk.root
    manifest = (root / ".hotline-packages").read_text().splitlines()
    versions = dict(line.split("=", 1) for line in manifest)
    assert versions["asterisk"].split(":")[-1].startswith("22.")
    assert {"asterisk-modules", "sip-tester", "python3"} <= set(versions)
    installed = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f=${Package}=${Version}\\n"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert sorted(installed) == manifest
