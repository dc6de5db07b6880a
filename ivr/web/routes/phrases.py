"""The standard phrases (标准话术) of the agent desk: ``GET /api/agent/phrases``, and the desk's
``#phrases`` part (``/static/agent-phrases.js``).

``GET /api/agent/phrases?surname=王&title=先生&lang=zh&level=L3`` (role ``agent``, its web
account linked to an agent: 403 ``no-agent-for-user`` otherwise) answers every phrase of
``routing/phrases.yaml`` filled in for now (:mod:`ivr.core.phrases`): the agent's 工号, the
hotline's name, the customer (``surname`` + ``title`` 先生/女士; both left out: 先生/女士),
the time of day and the kind of day in the hotline's time zone (``tickets.timezone``,
``tickets.holidays``, ``tickets.workdays``), in the call's language ``lang`` (default
``hotline.default_language``), with the reply time of the complaint ``level`` (default: the
level of ``phrases.complaint_desk``'s tickets, ``tickets.desk_levels``). A bad parameter is 422
``invalid-phrase-request`` naming it; routing without a ``phrases`` section is 500
``invalid-configuration``. No customer data is stored or logged: the surname is only echoed
into the texts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ivr.adapters.sql import agents as agent_store
from ivr.adapters.sql import tickets as ticket_store
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core import phrases as rules
from ivr.core.tickets import level_for
from ivr.errors import ConfigError
from ivr.web import static_pages
from ivr.web.auth import DbDep
from ivr.web.deps import SettingsDep
from ivr.web.routes.presence import AgentUser
from ivr.web.static_pages import NO_STORE

router = APIRouter(tags=["phrases"])
static_pages.add_script(router, "agent-phrases.js")

Param = Annotated[str | None, Query()]


def phrases_doc(work_number: str, rendered: rules.Rendered) -> dict[str, Any]:
    return {
        "work_number": work_number,
        "language": rendered.language,
        "day": rendered.day.isoformat(),
        "day_kind": rendered.day_kind.value,
        "day_part": rendered.day_part,
        "level": rendered.level.value,
        "customer_known": rendered.customer_known,
        "phrases": [
            {
                "id": p.id,
                "label": {"zh": p.label_zh, "en": p.label_en},
                "text": p.text,
                "gloss": p.gloss,
                "variant": p.variant,
            }
            for p in rendered.phrases
        ],
    }


@router.get("/api/agent/phrases")
def agent_phrases(
    user: AgentUser,
    db: DbDep,
    settings: SettingsDep,
    surname: Param = None,
    title: Param = None,
    lang: Param = None,
    level: Param = None,
) -> JSONResponse:
    """The standard phrases for the signed-in agent's call, filled in for now."""
    work_number = agent_store.agent_of_user(db, user)
    routing = load_routing(settings.routing_dir)
    if routing.phrases is None:
        raise ConfigError(
            "the routing has no phrases section (routing/phrases.yaml)", section="phrases"
        )
    customer = rules.Customer.of(surname, title)
    language = rules.check_language(lang or routing.hotline.default_language)
    tickets = settings.tickets
    rendered = rules.render(
        routing.phrases,
        hotline_name=routing.hotline.name,
        work_number=work_number,
        customer=customer,
        language=language,
        now=datetime.now(UTC),
        calendar=ticket_store.calendar(settings),
        level=rules.parse_level(level)
        if level
        else level_for(
            desk=routing.phrases.complaint_desk,
            emergency=False,
            danger=False,
            desk_levels=tickets.desk_levels,
            default_level=tickets.default_level,
        ),
    )
    return JSONResponse(phrases_doc(work_number, rendered), headers=NO_STORE)
