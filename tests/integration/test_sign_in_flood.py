"""A flood of bad sign-ins against the web role under uvicorn: the password checks are
capped (memory stays within budget), the role keeps answering, and nobody else is locked out.

The web role runs as its own process behind a "proxy" it trusts (127.0.0.1, the test), so
each request names its client in X-Forwarded-For: the attackers' addresses and the honest
user's are header values only (documentation ranges), no traffic goes to them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from ivr.adapters.processes import memory_mib
from ivr.devstack.ports import free_port
from ivr.devstack.stack import Stack
from ivr.settings import AuthSettings, Settings, WebSettings
from tests.web_support import PASSWORD, web_role

pytestmark = pytest.mark.integration

FLOOD = 100
CHECKS = 2  # password checks at once in the role under test
ARGON2_MIB = 64  # what one check allocates (argon2-cffi's defaults, ivr.adapters.sql.users)


def _settings(stack: Stack, run_dir: Path) -> Settings:
    """The session stack's Redis, a private SQLite file, a port of its own."""
    return stack.settings.model_copy(
        update={
            "run_dir": run_dir,
            "web": WebSettings(port=free_port(), trusted_proxies=["127.0.0.1"]),
            "auth": AuthSettings(max_password_checks=CHECKS, password_check_wait_s=1.0),
        }
    )


async def test_given_100_parallel_bad_sign_ins_then_memory_bounded_health_fast_and_others_sign_in(
    stack: Stack, tmp_path: Path
) -> None:
    settings = _settings(stack, tmp_path / "run")
    with web_role(settings, [("duty", "supervisor")]) as (base, process):
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            # warm: one sign-in has run (imports, first hash) before the baseline is taken
            honest = {"Origin": base, "X-Forwarded-For": "192.0.2.7"}
            duty = {"username": "duty", "password": PASSWORD}
            first = await client.post("/api/auth/login", json=duty, headers=honest)
            assert first.status_code == 200, first.text
            baseline = memory_mib(process.pid)
            budget = baseline + CHECKS * ARGON2_MIB + 64

            async def bad(n: int) -> int:
                answer = await client.post(
                    "/api/auth/login",
                    json={"username": f"nobody{n}", "password": "wrong password"},
                    headers={"Origin": base, "X-Forwarded-For": f"198.51.100.{n % 250 + 1}"},
                )
                return answer.status_code

            health_ms: list[float] = []
            flooding = True

            async def watch_health() -> None:  # its own connection, not one of the flood's
                async with httpx.AsyncClient(base_url=base, timeout=30) as own:
                    while flooding:
                        started = time.perf_counter()
                        answer = await own.get("/health")
                        health_ms.append((time.perf_counter() - started) * 1000)
                        assert answer.status_code == 200
                        await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch_health())
            statuses = await asyncio.gather(*(bad(n) for n in range(FLOOD)))
            # meanwhile-or-after: the honest user from another address signs in
            signed_in = None
            deadline = time.monotonic() + 20
            while signed_in is None and time.monotonic() < deadline:
                answer = await client.post("/api/auth/login", json=duty, headers=honest)
                if answer.status_code == 200:
                    signed_in = answer
                else:
                    assert answer.status_code == 429, answer.text
                    await asyncio.sleep(float(answer.headers["Retry-After"]))
            flooding = False
            await watcher
            peak = memory_mib(process.pid, "VmHWM")

    assert signed_in is not None, "the honest user could not sign in after the flood"
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) >= CHECKS  # some were checked ...
    busy = statuses.count(429)
    assert busy > 0  # ... and the rest turned away rather than queued without bound
    log = (settings.run_dir / "web.log").read_text()
    assert "Traceback" not in log
    assert len(health_ms) >= 10
    assert max(health_ms) < 200, sorted(health_ms)[-5:]
    assert peak <= budget, (peak, budget)
