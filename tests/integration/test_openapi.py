"""The API description and the API under a property-based fuzzer, on real servers.

``/openapi.json`` is fetched from the session stack's running web role and validated as
OpenAPI 3 (openapi-spec-validator). Then schemathesis generates requests for every operation
it describes, signed out and signed in as each role, against a web role of its own (``ivr
web`` under uvicorn, on the stack's redis-server, with a private SQLite file): the fuzzer
signs in with made-up passwords, which the sign-in throttle counts per address, and that
must not lock the session stack's other tests out. No answer may be a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.adapters.sql import agents, schema, ticket_desk
from ivr.adapters.sql import db as sql
from ivr.core.agents import DeskAssignment
from ivr.devstack.ports import free_port
from ivr.devstack.stack import Stack
from ivr.settings import Settings, WebSettings
from tests.web_support import PASSWORD, add_user, web_role

pytestmark = pytest.mark.integration

ROLES = ("qa", "supervisor", "admin", "agent", "department")
EXAMPLES = 25  # per operation and role: a fixed seed, so a failure comes back every run
SIGN_OUT = ("POST", "/api/auth/logout")
SIGN_IN = ("POST", "/api/auth/login")
STREAMS = {("GET", "/api/metrics/stream")}  # answered with an endless body: read the head only


def test_openapi_document_of_the_running_web_role_is_valid_openapi_3(stack: Stack) -> None:
    web = stack.settings.web
    response = httpx.get(f"http://{web.host}:{web.port}/openapi.json", timeout=10)
    assert response.status_code == 200, response.text
    document = response.json()
    validate(document)  # raises, naming what is wrong
    assert document["openapi"].startswith("3.")
    operations = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    # the routes that read their own bodies or query strings describe them too
    for method, path in (
        SIGN_IN,
        ("POST", "/api/tickets/{ticket_id}/transitions"),
        ("POST", "/api/tickets/{ticket_id}/notes"),
        ("POST", "/api/recordings/{recording_id}/reviews"),
        ("POST", "/api/admin/agents"),
        ("PATCH", "/api/admin/agents/{work_number}"),
        ("PUT", "/api/agent/tickets/{ticket_id}/draft"),
        ("POST", "/api/agent/tickets/{ticket_id}/record"),
        ("POST", "/api/department/tickets/{ticket_id}/report"),
        ("POST", "/api/tickets/{ticket_id}/confirm"),
    ):
        assert (method, path) in operations
        assert "requestBody" in document["paths"][path][method.lower()], path
    ticket_list = document["paths"]["/api/tickets"]["get"]
    assert {p["name"] for p in ticket_list["parameters"]} >= {"state", "desk", "from", "to"}


@dataclass
class FuzzWeb:
    base: str
    settings: Settings
    document: dict[str, Any]

    def session(self, role: str | None) -> requests.Session:
        """A requests session sending the page's own Origin (the CSRF check wants it),
        signed in as ``role`` (None: signed out)."""
        session = requests.Session()
        session.headers["Origin"] = self.base
        if role is not None:
            answer = session.post(
                f"{self.base}/api/auth/login",
                json={"username": f"fuzz-{role}", "password": PASSWORD},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
        return session


@pytest.fixture(scope="module")
def fuzz_web(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzWeb]:
    run_dir = tmp_path_factory.mktemp("fuzz-web")
    settings = stack.settings.model_copy(
        update={"run_dir": run_dir, "web": WebSettings(port=free_port())}
    )
    engine = sql.settings_engine(settings)
    schema.upgrade(engine)
    for role in ROLES:
        add_user(engine, f"fuzz-{role}", PASSWORD, role)
    _seed(engine)
    engine.dispose()
    with web_role(settings) as (base, _):
        document = httpx.get(f"{base}/openapi.json", timeout=10).json()
        yield FuzzWeb(base, settings, document)


def _seed(engine: Any) -> None:
    """A recording, its ticket, an STT job and agents with small ids (工号 0 and 1, which
    fuzz-agent is), a ticket dispatched to fuzz-department's department, so that generated
    ids find rows as well as missing ones."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    with Session(engine) as db:
        recording = sql.Recording(
            linkedid="fuzz.1", uniqueid="fuzz.1", started_at=now, did="95158",
            caller="13800138000", caller_reversed="00083100831", desk="repair",
            file_name="missing.wav", status=sql.RecordingStatus.ok,
        )  # fmt: skip
        db.add(recording)
        db.flush()
        db.add(sql.Ticket(linkedid="fuzz.1", recording_id=recording.id, caller="13800138000",
                          agent="1"))  # fmt: skip
        db.add(sql.Ticket(linkedid="fuzz.2", caller="13800138000", agent="1",
                          state=sql.TicketState.in_progress, department="repair"))  # fmt: skip
        db.add(sql.SttJob(source_key=f"recording:{recording.id}", recording_id=recording.id))
        db.commit()
        for number, user in (("0", None), ("1", "fuzz-agent")):
            agents.add(db, number, "坐席", [DeskAssignment("repair", 0)],
                       agents.known_desks(Settings()), "hotline", agents.Actor("fuzz"),
                       user=user)  # fmt: skip
        department = db.scalars(select(sql.User).where(sql.User.username == "fuzz-department"))
        ticket_desk.set_departments(db, department.one(), ["repair"])
        db.commit()


def _operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((m.upper(), p) for p, ops in document["paths"].items() for m in ops)


def _fuzz(
    web: FuzzWeb,
    operation: tuple[str, str],
    session_for_case: Callable[[], requests.Session],
    examples: int,
) -> list[str]:
    """Run ``examples`` generated requests for one operation; the 5xx answers, described."""
    schema = schemathesis.openapi.from_dict(web.document)
    method, path = operation
    api_operation = schema[path][method]
    found: list[str] = []

    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=api_operation.as_strategy())
    def run(case: Any) -> None:
        if operation in STREAMS:  # the head only: the body never ends
            kwargs = case.as_transport_kwargs(base_url=web.base)
            with session_for_case().request(**kwargs, stream=True, timeout=20) as streamed:
                status, body = streamed.status_code, ""
        else:
            response = case.call(base_url=web.base, session=session_for_case(), timeout=20)
            status, body = response.status_code, response.text[:300]
        if status >= 500:
            found.append(f"{method} {case.formatted_path} {case.query} -> {status} {body}")

    run()
    return found


@pytest.mark.parametrize("role", [None, *ROLES], ids=["signed-out", *ROLES])
def test_fuzzing_every_operation_as_each_role_finds_no_server_error(
    fuzz_web: FuzzWeb, role: str | None
) -> None:
    session = fuzz_web.session(role)
    server_errors: list[str] = []
    operations = [op for op in _operations(fuzz_web.document) if op not in (SIGN_IN, SIGN_OUT)]
    assert len(operations) >= 25
    for operation in operations:
        server_errors += _fuzz(fuzz_web, operation, lambda: session, EXAMPLES)
    # signing out ends the session: each generated sign-out gets a session of its own
    server_errors += _fuzz(fuzz_web, SIGN_OUT, lambda: fuzz_web.session(role), 3)
    assert server_errors == []
    # and the session that took every other request is still signed in
    me = session.get(f"{fuzz_web.base}/api/auth/me", timeout=10)
    assert me.status_code == (401 if role is None else 200)


def test_fuzzing_the_sign_in_finds_no_server_error(fuzz_web: FuzzWeb) -> None:
    server_errors = _fuzz(fuzz_web, SIGN_IN, lambda: fuzz_web.session(None), 60)
    assert server_errors == []


def test_the_fuzz_web_role_logged_no_unhandled_exception(fuzz_web: FuzzWeb) -> None:
    log = Path(fuzz_web.settings.run_dir) / "web.log"
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
