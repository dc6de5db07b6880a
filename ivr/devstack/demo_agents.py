"""The dev stack's two demo agents and their phones (``ivr up``; ``--no-demo-agents`` skips).

1001 张三 (repair, consultation) and 1002 李四 (billing, complaints, consultation and the
emergency desk, so the emergency line is answered too) are added
through the agents store (:mod:`ivr.adapters.sql.agents`, audited as ``ivr up``) when they
do not exist. Their SIP passwords, shown once by the store, are kept in the run dir
(``demo-agents/<工号>.password``, mode 0600); a demo agent whose file is missing, or whose
password was made for another realm, gets a new one (a password reset, audited too).

Each demo agent's phone is a sipp process (:func:`ivr.devstack.sipp.phone_command`) on its own
loopback address, a stack role ``phone-<工号>``: it registers with digest authentication,
again before expiry, and answers every call after :data:`RING_S` seconds. A disabled demo
agent gets no phone. Once the phones have registered, :func:`log_in` logs the agents in to
their desks (their presence, audited as ``ivr up``); the ami role puts them in the queues.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy.orm import Session

from ivr.adapters.private_files import write_private
from ivr.adapters.sql import agents
from ivr.adapters.sql.db import settings_engine
from ivr.core.agents import DeskAssignment
from ivr.devstack import sipp
from ivr.errors import StackError
from ivr.settings import Settings

ROLE_PREFIX = "phone-"
MARKER = "agent-phone.xml"  # in the phone's command line: the PID is still our sipp
RING_S = 2.0
ACTOR = agents.Actor("ivr up")


@dataclass(frozen=True, slots=True)
class DemoAgent:
    work_number: str
    name: str
    desks: tuple[str, ...]
    address: str  # the phone's own loopback address (127.0.0.1 is the trunk's)


DEMO_AGENTS = (
    DemoAgent("1001", "张三", ("repair", "consultation"), "127.0.0.101"),
    DemoAgent(
        "1002", "李四", ("billing", "complaints", "consultation", "emergency"), "127.0.0.102"
    ),
)


@dataclass(frozen=True, slots=True)
class Prepared:
    """What :func:`ensure` did: the agents whose phones start, and what it said."""

    phones: tuple[DemoAgent, ...]
    notes: tuple[str, ...]


def role_name(agent: DemoAgent) -> str:
    return f"{ROLE_PREFIX}{agent.work_number}"


def by_role(role: str) -> DemoAgent:
    for agent in DEMO_AGENTS:
        if role_name(agent) == role:
            return agent
    raise StackError(f"unknown role {role!r}")


def password_file(settings: Settings, agent: DemoAgent) -> Path:
    return settings.run_dir / "demo-agents" / f"{agent.work_number}.password"


def ensure(settings: Settings) -> Prepared:
    """Add the demo agents that are missing and give a new password to those whose file is
    missing or whose password was made for another realm; one transaction."""
    realm = settings.asterisk.sip_realm
    engine = settings_engine(settings)
    new_passwords: dict[DemoAgent, str] = {}
    phones: list[DemoAgent] = []
    notes: list[str] = []
    try:
        with Session(engine) as session:
            known = agents.known_desks(settings)
            for demo in DEMO_AGENTS:
                try:
                    info = agents.get(session, demo.work_number)
                except agents.AgentNotFound:
                    desks = [DeskAssignment(desk) for desk in demo.desks if desk in known]
                    _, new_passwords[demo] = agents.add(
                        session, demo.work_number, demo.name, desks, known, realm, ACTOR
                    )
                    notes.append(f"demo agent {demo.work_number} {demo.name} added")
                    phones.append(demo)
                    continue
                if not info.active:
                    notes.append(
                        f"demo agent {demo.work_number} is disabled: no phone for it "
                        f"(ivr agents enable {demo.work_number})"
                    )
                    continue
                if not password_file(settings, demo).exists() or info.password_realm != realm:
                    _, new_passwords[demo] = agents.reset_password(
                        session, demo.work_number, realm, ACTOR
                    )
                    notes.append(f"demo agent {demo.work_number}: new SIP password")
                phones.append(demo)
            session.commit()
    finally:
        engine.dispose()
    for demo, password in new_passwords.items():
        path = password_file(settings, demo)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(path, password + "\n")
    return Prepared(tuple(phones), tuple(notes))


def phone_command(
    settings: Settings,
    agent: DemoAgent,
    workdir_inner: PurePosixPath,
    port: int,
    run_as: tuple[int, int] | None = None,
) -> list[str]:
    """The sipp command of ``agent``'s phone on ``agent.address:port``, with the password
    kept in the run dir."""
    path = password_file(settings, agent)
    try:
        password = path.read_text().strip()
    except OSError as exc:
        raise StackError(
            f"no SIP password for demo agent {agent.work_number} ({path}): {exc}"
        ) from exc
    return sipp.phone_command(
        settings.asterisk.root,
        workdir_inner,
        target=f"127.0.0.1:{settings.asterisk.sip_port}",
        username=agent.work_number,
        password=password,
        ring_s=RING_S,
        local_ip=agent.address,
        local_port=port,
        run_as=run_as,
    )


def log_in(settings: Settings, phones: tuple[DemoAgent, ...]) -> None:
    """Log the demo agents with a phone in to their desks (no change if they already are)."""
    engine = settings_engine(settings)
    try:
        with Session(engine) as session:
            for demo in phones:
                agents.change_presence(session, demo.work_number, "login", "", ACTOR)
            session.commit()
    finally:
        engine.dispose()
