"""How the app's own pages and their scripts and styles are served (ivr/web/static/).

Pages carry customer data once their script runs, so they are never cached and get a strict
Content-Security-Policy (same-origin scripts, styles and requests only; no frames). Scripts
and styles hold code only: no sign-in needed, revalidated on every load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi.responses import HTMLResponse, Response

STATIC: Final = Path(__file__).resolve().parent / "static"
NO_STORE: Final = {"Cache-Control": "no-store"}
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self';{media} form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
ASSET_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


def page_headers(*, media: bool = False) -> dict[str, str]:
    """Headers of a page; ``media``: it plays audio from this origin (``media-src 'self'``)."""
    return {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Content-Security-Policy": _CSP.format(media=" media-src 'self';" if media else ""),
    }


def page(name: str, *, media: bool = False) -> HTMLResponse:
    """The page ``static/<name>`` (a fixed name from the route, never from the request)."""
    return HTMLResponse(
        (STATIC / name).read_text(encoding="utf-8"), headers=page_headers(media=media)
    )


def asset(name: str) -> Response:
    """The script or style ``static/<name>`` (a fixed name from the route)."""
    body = (STATIC / name).read_bytes()
    return Response(
        body, media_type=ASSET_TYPES[Path(name).suffix], headers={"Cache-Control": "no-cache"}
    )
