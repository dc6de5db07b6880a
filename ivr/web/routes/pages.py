"""The pages people open: the service status page (no customer data on it), and the style
sheet that every signed-in page links before its own (``static/base.css``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from ivr.web import static_pages

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse)
async def index() -> HTMLResponse:
    return HTMLResponse((static_pages.STATIC / "index.html").read_text(encoding="utf-8"))


@router.get("/static/base.css", include_in_schema=False)
def base_style() -> Response:
    """Colours, header and layout shared by the supervisor, QA and tickets pages."""
    return static_pages.asset("base.css")
