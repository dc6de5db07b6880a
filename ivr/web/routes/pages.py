"""The front page ``/`` and the style sheet every signed-in page links before its own
(``static/base.css``).

``/`` is the hotline's front door: signed out, the sign-in form (which comes back to ``/``);
signed in, the pages the user's role opens (:mod:`ivr.core.front_door` says which) and, for
admins, the service status table (``static/index.js`` polls ``/health``). It carries no customer
data: page names, the user's own name and role, and the services' health only.
"""

from __future__ import annotations

import html
from string import Template

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ivr.adapters.sql.db import User
from ivr.core.front_door import FrontPage, pages_for, role_name, shows_status
from ivr.web import static_pages
from ivr.web.auth import DbDep, NotAuthenticated, get_current_user
from ivr.web.deps import SettingsDep
from ivr.web.routes.auth import login_page

router = APIRouter(tags=["pages"])
static_pages.add_script(router, "index.js")
static_pages.add_script(router, "index.css")

_STATUS = """<section id="status" aria-labelledby="status-title">
  <h2 id="status-title">服务状态 <small>Service status</small></h2>
  <table>
    <tr><th>web</th><td id="web">…</td></tr>
    <tr><th>Redis</th><td id="redis">…</td></tr>
    <tr><th>AMI 监听 <small>AMI listener</small></th><td id="ami">…</td></tr>
    <tr><th>AMI 事件 <small>AMI events seen</small></th><td id="events">…</td></tr>
    <tr><th>AMI 重连 <small>AMI reconnects</small></th><td id="reconnects">…</td></tr>
  </table>
  <p id="updated" class="muted"></p>
</section>"""


def _link(page: FrontPage) -> str:
    e = html.escape
    return (
        f'<li><a href="{e(page.path, quote=True)}">{e(page.zh)} <small>{e(page.en)}</small></a>'
        f'<span class="hint">{e(page.hint_zh)} <small>{e(page.hint_en)}</small></span></li>'
    )


def front_page(user: User) -> str:
    """The signed-in front page of ``user``: their role's links, the status table for admins."""
    pages = pages_for(user.role)
    links = (
        '<ul class="front-links">\n' + "\n".join(_link(p) for p in pages) + "\n</ul>"
        if pages
        else '<p class="muted">您的角色没有可用页面。<small>Your role opens no page.</small></p>'
    )
    return Template((static_pages.STATIC / "index.html").read_text(encoding="utf-8")).substitute(
        who=html.escape(f"{user.username} · {role_name(user.role)}"),
        links=links,
        status=_STATUS if shows_status(user.role) else "",
    )


@router.get("/", response_class=HTMLResponse)
def index(request: Request, db: DbDep, settings: SettingsDep) -> HTMLResponse:
    """The front page: the sign-in form when signed out, else the role's pages (and the
    service status for admins)."""
    try:
        user = get_current_user(request, db, settings)
    except NotAuthenticated:
        return login_page(None, "/")
    return HTMLResponse(front_page(user), headers=static_pages.page_headers())


@router.get("/static/base.css", include_in_schema=False)
def base_style() -> Response:
    """Colours, header and layout shared by every signed-in page."""
    return static_pages.asset("base.css")
