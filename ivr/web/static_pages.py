"""How the app's own pages and their scripts and styles are served (ivr/web/static/).

Pages carry customer data once their script runs, so they are never cached and get a strict
Content-Security-Policy (same-origin scripts, styles and requests only; no frames). Scripts
and styles hold code only: no sign-in needed, revalidated on every load.

Each page is ``static/<name>.html`` at ``/<name>`` with its script ``/static/<name>.js`` and
style ``/static/<name>.css``, registered together by :func:`add_page`; every page's style
sheet comes after the shared ``/static/base.css`` (colours, header, layout). Only those
fixed names are served: nothing under ``/static/`` is looked up from the request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Final, get_args

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ivr.settings import Settings

STATIC: Final = Path(__file__).resolve().parent / "static"
NO_STORE: Final = {"Cache-Control": "no-store"}
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'{connect}; "
    "img-src 'self';{media} form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
ASSET_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


#: Where a page may connect besides its own origin, from the settings and its request
#: (the agent desk: Asterisk's WebSocket, on a port of its own).
ConnectSources = Callable[[Settings, Request], Sequence[str]]


def page_headers(*, media: bool = False, connect: Sequence[str] = ()) -> dict[str, str]:
    """Headers of a page; ``media``: it plays audio from this origin (``media-src 'self'``);
    ``connect``: more origins its scripts connect to (``connect-src``)."""
    return {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Content-Security-Policy": _CSP.format(
            media=" media-src 'self';" if media else "",
            connect="".join(f" {source}" for source in connect),
        ),
    }


def page(name: str, *, media: bool = False, connect: Sequence[str] = ()) -> HTMLResponse:
    """The page ``static/<name>`` (a fixed name from the route, never from the request)."""
    return HTMLResponse(
        (STATIC / name).read_text(encoding="utf-8"),
        headers=page_headers(media=media, connect=connect),
    )


def asset(name: str) -> Response:
    """The script or style ``static/<name>`` (a fixed name from the route)."""
    body = (STATIC / name).read_bytes()
    return Response(
        body, media_type=ASSET_TYPES[Path(name).suffix], headers={"Cache-Control": "no-cache"}
    )


def add_page(
    router: APIRouter,
    name: str,
    user: Any,
    *,
    description: str,
    media: bool = False,
    connect: ConnectSources | None = None,
) -> None:
    """Route ``/<name>`` to the page ``static/<name>.html`` for the users ``user`` lets in,
    and ``/static/<name>.js`` and ``/static/<name>.css`` to its script and style (public).

    ``user`` is a role alias such as ``SupervisorUser`` (``Annotated[User, Depends(...)]``):
    its dependency guards the page, so a visitor without a session is sent to the sign-in
    form and one without the role gets 403. ``description`` is the page's OpenAPI text;
    ``media``: the page plays audio from this origin; ``connect``: the other origins its
    scripts connect to.
    """
    guards = list(get_args(user)[1:])
    if not guards:  # a page shows customer data: never without a guard
        raise TypeError(f"add_page({name!r}): {user!r} carries no dependency to guard the page")

    def page_route(request: Request) -> HTMLResponse:
        sources = connect(request.app.state.settings, request) if connect else ()
        return page(f"{name}.html", media=media, connect=sources)

    def script_route() -> Response:
        return asset(f"{name}.js")

    def style_route() -> Response:
        return asset(f"{name}.css")

    router.add_api_route(
        f"/{name}", page_route, response_class=HTMLResponse, dependencies=guards,
        name=f"{name}_page", description=description,
    )  # fmt: skip
    router.add_api_route(
        f"/static/{name}.js", script_route, include_in_schema=False, name=f"{name}_script"
    )
    router.add_api_route(
        f"/static/{name}.css", style_route, include_in_schema=False, name=f"{name}_style"
    )


def add_script(router: APIRouter, name: str) -> None:
    """Route ``/static/<name>`` to one more script or style of a page (public, like the page's
    own): for a page made of parts, each part's file is registered by the module that serves
    its API. ``vendor/<library>/<file>`` serves a vendored library's file."""
    parts = PurePosixPath(name).parts
    vendored = len(parts) == 3 and parts[0] == "vendor" and ".." not in parts
    if Path(name).suffix not in ASSET_TYPES or (len(parts) != 1 and not vendored):
        raise ValueError(
            f"add_script({name!r}): a .js or .css file name in static/ or static/vendor/<lib>/"
        )

    def route() -> Response:
        return asset(name)

    router.add_api_route(f"/static/{name}", route, include_in_schema=False, name=name)
