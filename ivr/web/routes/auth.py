"""Sign-in page and the auth API.

- ``GET /login``: the form (no script, no external assets). ``?next=/path`` comes back after
  sign-in; ``?notice=invalid|throttled|signed-out`` shows a message.
- ``POST /api/auth/login``: JSON ``{"username", "password"}`` answers 200 JSON (401 for a wrong
  username or password alike, 429 when throttled); a form post (the page) answers 303 to
  ``next`` or back to the page. Either way the session cookie is set on success.
- ``POST /api/auth/logout``: ends the session server-side and clears the cookie (204; 303 to
  the page for a form post). Harmless without a session.
- ``GET /api/auth/me``: the signed-in user.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from string import Template
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from ivr.adapters.sql.db import Role
from ivr.adapters.sql.users import InvalidCredentials
from ivr.settings import Settings
from ivr.web import api_docs
from ivr.web.auth import (
    CurrentUser,
    DbDep,
    InvalidAuthRequest,
    LoginThrottle,
    LoginThrottled,
    PasswordChecksDep,
    SignIn,
    SignInBusy,
    ThrottleDep,
    check_same_origin,
    check_throttle,
    clear_session_cookie,
    client_ip,
    get_engine,
    login_name,
    session_token,
    set_session_cookie,
    sign_in,
    sign_out,
)
from ivr.web.deps import SettingsDep, parse_json, read_body

router = APIRouter(tags=["auth"])
STATIC = Path(__file__).resolve().parent.parent / "static"
MAX_LOGIN_BODY = 16 * 1024
NOTICES = {
    "invalid": ("error", "用户名或密码错误。Wrong username or password."),
    "throttled": (
        "error",
        "登录失败次数过多，请稍候再试。Too many failed sign-ins. Wait a few minutes and try again.",
    ),
    "signed-out": ("info", "已退出。Signed out."),
}
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
NO_STORE = {"Cache-Control": "no-store"}


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserPublic(BaseModel):
    username: str
    role: Role


class LoginResponse(BaseModel):
    user: UserPublic
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LoginBody:
    credentials: LoginRequest
    next: str
    form: bool  # posted by the HTML form: answer with redirects


def safe_next(value: str | None) -> str:
    """A local path to go to after sign-in; anything else (other sites included) is "/"."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and value.isprintable()
    ):
        return value
    return "/"


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_form(request: Request) -> bool:
    return content_type(request) == "application/x-www-form-urlencoded"


async def read_login(request: Request) -> LoginBody:
    """The credentials, from JSON or from the page's urlencoded form (at most 16 KiB)."""
    body = await read_body(request, MAX_LOGIN_BODY, InvalidAuthRequest)
    form = is_form(request)
    if not form and content_type(request) != "application/json":
        raise InvalidAuthRequest("send JSON {username, password} or a form")
    try:
        fields: Any = (
            dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=10))
            if form
            else parse_json(body, InvalidAuthRequest)
        )
    except ValueError:  # not UTF-8, or too many form fields
        raise InvalidAuthRequest("send JSON {username, password} or a form") from None
    if not isinstance(fields, dict):
        raise InvalidAuthRequest("send JSON {username, password} or a form")
    try:
        credentials = LoginRequest.model_validate(
            {k: fields.get(k) for k in ("username", "password")}
        )
    except ValidationError:
        raise InvalidAuthRequest("username and password are required") from None
    raw_next = fields.get("next")
    return LoginBody(credentials, safe_next(raw_next if isinstance(raw_next, str) else None), form)


def login_redirect(notice: str, next_path: str) -> RedirectResponse:
    query = urlencode({"notice": notice} | ({"next": next_path} if next_path != "/" else {}))
    return RedirectResponse(f"/login?{query}", status_code=303)


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(
    notice: str | None = None, next_path: Annotated[str | None, Query(alias="next")] = None
) -> HTMLResponse:
    message = ""
    if notice in NOTICES:
        css, text = NOTICES[notice]
        message = f'<p class="{css}" role="alert">{html.escape(text)}</p>'
    page = Template((STATIC / "login.html").read_text(encoding="utf-8")).substitute(
        message=message, next=html.escape(safe_next(next_path), quote=True)
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.post(
    "/api/auth/login",
    response_model=LoginResponse,
    openapi_extra=api_docs.json_body(LoginRequest, form=True),
)
async def login(
    request: Request,
    body: Annotated[LoginBody, Depends(read_login)],
    settings: SettingsDep,
    throttle: ThrottleDep,
    checks: PasswordChecksDep,
) -> Response:
    """Sign in. A throttled name or address is answered at once, before it queues for a
    password check; the check itself runs in a worker thread, at most
    ``auth.max_password_checks`` at a time."""
    check_same_origin(request)
    ip = client_ip(request)
    try:
        check_throttle(throttle, login_name(body.credentials.username), ip)
        signed = await checks.run(_sign_in, request, settings, throttle, body, ip)
    except (InvalidCredentials, LoginThrottled, SignInBusy) as exc:
        if body.form:
            notice = "invalid" if isinstance(exc, InvalidCredentials) else "throttled"
            return login_redirect(notice, body.next)
        raise
    response: Response
    if body.form:
        response = RedirectResponse(body.next, status_code=303)
    else:
        doc = LoginResponse(
            user=UserPublic(username=signed.user.username, role=signed.user.role),
            expires_at=signed.session.expires_at,
        )
        response = JSONResponse(doc.model_dump(mode="json"), headers=NO_STORE)
    set_session_cookie(response, request, settings, signed.token)
    return response


def _sign_in(
    request: Request, settings: Settings, throttle: LoginThrottle, body: LoginBody, ip: str
) -> SignIn:
    with Session(get_engine(request), expire_on_commit=False) as db:
        return sign_in(
            db,
            settings,
            throttle,
            body.credentials.username,
            body.credentials.password,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
        )


@router.post("/api/auth/logout", status_code=204, response_class=Response)
def logout(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    check_same_origin(request)
    sign_out(db, settings, session_token(request, settings), ip=client_ip(request))
    response: Response = (
        login_redirect("signed-out", "/") if is_form(request) else Response(status_code=204)
    )
    clear_session_cookie(response, request, settings)
    return response


@router.get("/api/auth/me")
def me(user: CurrentUser, response: Response) -> UserPublic:
    response.headers.update(NO_STORE)
    return UserPublic(username=user.username, role=user.role)
