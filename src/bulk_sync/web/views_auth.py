"""Log in and out (only when an access password is configured)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bulk_sync.web.base import SECURITY, SESSION, render

log = logging.getLogger("bulk_sync.web")


async def login_page(request: web.Request) -> web.Response:
    security = request.app[SECURITY]
    if security.password is None or security.logged_in(request[SESSION]):
        raise web.HTTPSeeOther("/")
    return render(request, "login.html", {"next": request.query.get("next", "/"), "error": ""})


async def login(request: web.Request) -> web.StreamResponse:
    security = request.app[SECURITY]
    form = await request.post()
    given = form.get("password")
    target = str(form.get("next") or "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    if isinstance(given, str) and security.check_password(given):
        session = security.new_session()  # a fresh id at login (no session fixation)
        session.authenticated = True
        old = request[SESSION]
        if old is not None:
            security.sessions.pop(old.id, None)
        response = web.HTTPSeeOther(target)
        security.set_cookie(response, request, session.id)
        return response
    security.failed_logins += 1
    await asyncio.sleep(min(5.0, 0.5 * security.failed_logins))  # slows down guessing
    return render(
        request,
        "login.html",
        {"next": target, "error": "That password is not right."},
        status=401,
    )


async def logout(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    if session is not None:
        request.app[SECURITY].sessions.pop(session.id, None)
    raise web.HTTPSeeOther("/login")
