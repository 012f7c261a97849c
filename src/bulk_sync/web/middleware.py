"""Middleware: security headers, friendly error pages and a last redaction on every answer;
host check, sessions, login and CSRF on every request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import BodyPartReader, web

from bulk_sync.web.base import MULTIPART, SECRETS, SECURITY, SESSION, error_page
from bulk_sync.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SAFE_METHODS,
    Security,
    Session,
    apply_headers,
)

log = logging.getLogger("bulk_sync.web")

# -- middleware ------------------------------------------------------------------------


@web.middleware
async def guard_middleware(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    """Outermost: security headers on every answer, friendly error pages, and a last
    check that no answer carries the API key."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:  # a redirect: aiohttp sends it as it is
            apply_headers(exc)
            raise
        response = error_page(request, exc.status, exc.text or exc.reason)
        for name in ("Set-Cookie", "Connection"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
    except Exception:
        log.exception("error answering %s %s", request.method, request.path)
        response = error_page(
            request, 500, "Something went wrong on the server. The server's log says what."
        )
    apply_headers(response)
    if isinstance(response, web.Response) and response.body is not None:
        body = response.body
        if isinstance(body, bytes | bytearray):
            cleaned = request.app[SECRETS].redact_bytes(bytes(body))
            if cleaned != body:
                log.error("an answer held a secret; it was redacted (%s)", request.path)
                response.body = cleaned
    return response


@web.middleware
async def security_middleware(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    security = request.app[SECURITY]
    if not security.host_ok(request):
        raise web.HTTPMisdirectedRequest(
            text="This server answers only on its own address (check the Host you used)."
        )
    static = request.path.startswith("/static/")
    session = security.session(request)
    new_sid: str | None = None
    if session is None and not static:
        session = security.new_session()
        new_sid = session.id
    request[SESSION] = session
    if request.method not in SAFE_METHODS:
        if security.cross_site(request):
            raise web.HTTPForbidden(text="Refused: this request came from another site.")
        if not await _csrf_ok(request, session):
            raise web.HTTPForbidden(
                text="Refused: the form was out of date or did not come from this page. "
                "Go back, reload the page and try again."
            )
    if not static and request.path != "/login" and not security.logged_in(session):
        if request.method in SAFE_METHODS and request.path != "/favicon.ico":
            response: web.StreamResponse = web.HTTPSeeOther(
                "/login?next=" + _safe_next(request.path_qs)
            )
        else:
            response = web.HTTPUnauthorized(text="Log in first.")
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
    if new_sid is not None:
        security.set_cookie(response, request, new_sid)
    if isinstance(response, web.HTTPException):
        raise response
    return response


async def _csrf_ok(request: web.Request, session: Session | None) -> bool:
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        ctype = request.content_type
        if ctype == "application/x-www-form-urlencoded":
            form = await request.post()
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
        elif ctype == "multipart/form-data":
            # The token is the form's first field, read before any file is stored.
            reader = await request.multipart()
            part = await reader.next()
            if isinstance(part, BodyPartReader) and part.name == CSRF_FIELD:
                token = (await part.read(decode=True)).decode("utf-8", "replace")[:200]
                request[MULTIPART] = reader
    return Security.csrf_ok(session, token)


def _safe_next(path: str) -> str:
    from urllib.parse import quote

    return quote(path if path.startswith("/") and not path.startswith("//") else "/", safe="")
