"""docker/app-healthcheck.py, the containers' healthchecks (the readiness checks of `ivr up`),
run against the session's real stack: each role is healthy, and a role that is gone is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.cli import ROLES

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docker" / "app-healthcheck.py"

pytestmark = pytest.mark.integration


def healthcheck(role: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), role], env=os.environ | env,
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
def test_given_stack_up_when_the_container_healthcheck_runs_then_the_role_is_healthy(role, cli_env):
    result = healthcheck(role, cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"{role}: ok: ")


def test_given_a_recorder_heartbeat_of_a_dead_process_then_unhealthy(cli_env, tmp_path):
    (tmp_path / "recorder.json").write_text('{"pid": 999999999, "at": 0}')
    result = healthcheck("recorder", cli_env | {"IVR_RUN_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "recorder: DOWN: the recorder (pid 999999999) is gone" in result.stdout
