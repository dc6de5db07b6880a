"""How a domain error is answered over HTTP: one JSON shape, and nothing internal in it.

Every answer for a :class:`~ivr.errors.HotlineError` is ``{"error": slug, "message": …,
"details": {…}}`` with the error's status. An error class whose message can carry internals
(hosts and ports, file paths, a subprocess's output) sets ``public_message``: the answer says
that instead, with no details, and the full message goes to the log. An error that says when
to come back (``retry_after_s``) gets a ``Retry-After`` header.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from math import ceil

from fastapi.responses import JSONResponse

from ivr.errors import HotlineError

logger = logging.getLogger(__name__)


def retry_after(exc: HotlineError) -> dict[str, str]:
    """A ``Retry-After`` header for an error that says when to come back (its
    ``retry_after_s`` detail), in whole seconds, at least 1; none otherwise."""
    wait = exc.details.get("retry_after_s")
    return {"Retry-After": str(max(1, ceil(float(wait))))} if wait is not None else {}


def error_document(exc: HotlineError) -> dict[str, object]:
    """The JSON body for ``exc`` (also an SSE event's data)."""
    if exc.public_message is None:
        return {"error": exc.slug, "message": exc.message, "details": exc.details}
    logger.warning("%s: %s", exc.slug, exc.message)  # the whole story, for the operator
    kept = {k: v for k, v in exc.details.items() if k == "retry_after_s"}
    return {"error": exc.slug, "message": exc.public_message, "details": kept}


def error_response(exc: HotlineError, *, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        error_document(exc),
        status_code=exc.status,
        headers={**retry_after(exc), **(headers or {})},
    )
