"""The agent desk page ``/agent`` (role ``agent``): one page made of parts, each served with
the API it talks to.

=================  ===================================  ====================================
part (section)     script                               what it shows
=================  ===================================  ====================================
``#presence``      ``/static/agent.js``                 log in, pause with a reason, resume
``#phone``         ``/static/agent-phone.js``           the softphone (WebRTC endpoint)
``#pop``           ``/static/agent-pop.js``             who is calling, before answering
``#ticket``        ``/static/agent-ticket.js``          the 工单 filled in while talking
``#phrases``       ``/static/agent-phrases.js``         the standard phrases (标准话术)
=================  ===================================  ====================================

The parts talk to each other only through DOM events on ``document`` (docs/agent-desk.md):
``hotline:pop``, ``hotline:connected``, ``hotline:ended`` (a call of this agent, keyed on its
Linkedid), ``hotline:customer`` (the form of address typed in), ``hotline:session-expired``.
"""

from __future__ import annotations

from fastapi import APIRouter

from ivr.web import static_pages
from ivr.web.routes.phone import websocket_sources
from ivr.web.routes.presence import AgentUser

router = APIRouter(tags=["pages"])

static_pages.add_page(
    router,
    "agent",
    AgentUser,
    description="坐席工作台 The agent desk: presence, softphone, screen pop, 工单, phrases.",
    media=True,
    connect=websocket_sources,  # the softphone's WebSocket to Asterisk
)
