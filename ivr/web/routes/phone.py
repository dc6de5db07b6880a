"""The agent desk's softphone (section ``#phone`` of ``/agent``): its scripts and what it
needs to register the signed-in agent's browser endpoint over Asterisk's WebSocket.

Routes::

    GET /api/agent/phone                  the signed-in agent's softphone account (no-store)
    GET /static/agent-phone.js            the phone part of the page
    GET /static/vendor/jssip/jssip.min.js JsSIP (scripts/vendor-jssip), from this origin

The browser registers ``sip:<工号>-webrtc@<host>`` (the endpoint ``<工号>-webrtc`` of the SIP
directory, webrtc=yes) with the auth user ``<工号>``. The SIP password is never stored, only
its digest HA1 and realm, which is what JsSIP signs with (``ha1`` + ``realm`` in its
configuration instead of a password), so this route hands the agent its own HA1 and nothing
else: for the role ``agent``, about the agent its web account is linked to, never cached.
Errors: 403 ``no-agent-for-user``, 409 ``phone-unavailable`` (the agent is disabled, or its
password was made for another realm and must be reset).

The page's Content-Security-Policy lets it connect to the WebSocket's origin
(:func:`websocket_sources`): Asterisk's HTTP server listens on its own port.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from ivr.adapters.sql import agents as store
from ivr.adapters.sql.db import Agent
from ivr.core.agent_presence import BROWSER_SUFFIX
from ivr.errors import HotlineError
from ivr.settings import Settings
from ivr.web import static_pages
from ivr.web.auth import DbDep
from ivr.web.deps import SettingsDep
from ivr.web.routes.presence import AgentUser
from ivr.web.static_pages import NO_STORE

router = APIRouter(tags=["phone"])
static_pages.add_script(router, "agent-phone.js")
static_pages.add_script(router, "vendor/jssip/jssip.min.js")


class PhoneUnavailable(HotlineError):
    """The signed-in agent's softphone cannot register: the agent is disabled, or its SIP
    password was made for another realm than ``asterisk.sip_realm`` (HTTP 409; an admin
    resets it)."""

    slug = "phone-unavailable"
    status = 409


def _host(settings: Settings, request: Request) -> str:
    """Where the browser reaches Asterisk: ``sip_bind``, or the host the page was loaded
    from when Asterisk listens on every address."""
    bind = settings.asterisk.sip_bind
    return (request.url.hostname or "127.0.0.1") if bind.is_unspecified else str(bind)


def websocket_url(settings: Settings, request: Request) -> str:
    return f"ws://{_host(settings, request)}:{settings.asterisk.http_port}/ws"


def websocket_sources(settings: Settings, request: Request) -> list[str]:
    """What the agent desk's ``connect-src`` adds to ``'self'``: Asterisk's WebSocket."""
    return [f"ws://{_host(settings, request)}:{settings.asterisk.http_port}"]


@router.get("/api/agent/phone")
def own_phone(request: Request, user: AgentUser, db: DbDep, settings: SettingsDep) -> JSONResponse:
    work_number = store.agent_of_user(db, user)
    agent = db.scalars(select(Agent).where(Agent.work_number == work_number)).one()
    if not agent.active:
        raise PhoneUnavailable(f"agent {work_number} is disabled")
    realm = settings.asterisk.sip_realm
    if agent.sip_realm != realm:
        raise PhoneUnavailable(
            f"agent {work_number}'s SIP password was made for the realm {agent.sip_realm!r}, "
            f"not {realm!r}: an admin must reset it"
        )
    host = _host(settings, request)
    doc: dict[str, Any] = {
        "work_number": work_number,
        "name": agent.name,
        "websocket": websocket_url(settings, request),
        "uri": f"sip:{work_number}{BROWSER_SUFFIX}@{host}",
        "authorization_user": work_number,
        "realm": realm,
        "ha1": agent.sip_ha1,
    }
    return JSONResponse(doc, headers=NO_STORE)
