"""What the page's modules share: the app's keys, its configuration, rendering and redaction."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jinja2
import markupsafe
from aiohttp import MultipartReader, web

from bulk_sync.config import Settings
from bulk_sync.errors import BulkSyncError
from bulk_sync.redaction import Redactor
from bulk_sync.web.analysis import AnalysisCache
from bulk_sync.web.runs import RunManager
from bulk_sync.web.security import Security, Session
from bulk_sync.web.store import DataDir, RunRecord

log = logging.getLogger("bulk_sync.web")

PAGE_SIZE = 50
FORM_MAX_BYTES = 256 * 1024  # urlencoded forms: a login, a mapping
CHUNK = 256 * 1024

CONFIG: web.AppKey[WebConfig] = web.AppKey("config")
SECURITY: web.AppKey[Security] = web.AppKey("security")
RUNS: web.AppKey[RunManager] = web.AppKey("runs")
DATA: web.AppKey[DataDir] = web.AppKey("data")
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates")
CACHE: web.AppKey[AnalysisCache] = web.AppKey("cache")
FLASH: web.AppKey[dict[str, list[str]]] = web.AppKey("flash")
SECRETS: web.AppKey[Secrets] = web.AppKey("secrets")
SESSION: web.RequestKey[Session | None] = web.RequestKey("session")
MULTIPART: web.RequestKey[MultipartReader] = web.RequestKey("multipart")


@dataclass(frozen=True)
class WebConfig:
    """What ``bulk-sync serve`` was started with. ``token`` reads the API key from the
    process environment when a run starts; it is never rendered."""

    data_dir: Path
    settings: Settings
    security: Security
    max_upload_bytes: int = 100 * 1024 * 1024
    token: Callable[[], str | None] | None = None
    samples: str = ""  # a folder of sample files the start page points to (make serve)


class Secrets:
    """Redacts the API key (and the access password) from anything shown or logged, with
    the project's one redaction rule (:mod:`bulk_sync.redaction`)."""

    def __init__(self, token: Callable[[], str | None], security: Security) -> None:
        self._token = token
        self._security = security
        self._redactor = Redactor()

    def redactor(self) -> Redactor:
        wanted = tuple(s for s in (self._token(), self._security.password) if s)
        if wanted != self._redactor.secrets:
            self._redactor = Redactor(wanted)
        return self._redactor

    def redact(self, text: str) -> str:
        return self.redactor().redact(text)

    def redact_bytes(self, body: bytes) -> bytes:
        redactor = self.redactor()
        if not redactor:
            return body
        text = body.decode("utf-8", "surrogateescape")
        if not redactor.leaks(text):
            return body
        return redactor.redact(text).encode("utf-8", "surrogateescape")


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", {"status": status, "message": message}, status=status)


# -- rendering -------------------------------------------------------------------------


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    env = request.app[TEMPLATES]
    session: Session | None = request.get(SESSION)
    security = request.app[SECURITY]
    base = {
        "request": request,
        "csrf_token": session.csrf if session is not None else "",
        "login_required": security.password is not None,
        "logged_in": security.password is not None and security.logged_in(session),
        "static": lambda name: request.app.router["static"].url_for(filename=name),
        "api_url": display_url(request.app[CONFIG].settings.base_url),
        "running": running_run(request),
    }
    html = env.get_template(template).render({**base, **context})
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def running_run(request: web.Request) -> RunRecord | None:
    """The record of the run this server is running now, or None."""
    live = request.app[RUNS].live
    return live.record if live is not None and not live.done.is_set() else None


def display_url(url: str) -> str:
    """The API URL without any user name or password it might carry."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


# The command line's advice in the engine's and the loader's messages, as the page says it:
# the page has no flags (its settings are the server's --config, its choices the page's own
# controls). The report's ``error`` column keeps the engine's words, as `sync` writes them.
_FOR_PAGE: tuple[tuple[str, str], ...] = (
    ("; run again with --resume REPORT to send the rest", "; Resume sends the rest"),
    (" (--max-outage)", " (max_outage in the server's settings)"),
    ("try --max-attributes-per-request", "max_attributes_per_request in the settings splits it"),
    ("; give --delimiter if that is wrong", "; if that is wrong, save the file again as CSV"),
    ("(give the right encoding, e.g. --encoding cp1252)", "(save it again as CSV UTF-8)"),
    (
        "(if it is UTF-16 or UTF-32 text without a byte-order mark, give --encoding "
        "utf-16 or --encoding utf-32)",
        "(if it is text, save it again as CSV UTF-8)",
    ),
    (" (use --sheet)", " (choose the sheet above)"),
    ("; with --all-sheets, sheets without", "; with all sheets, sheets without"),
    (" (--on-conflict last)", " (on_conflict: last in the settings)"),
)


def for_page(text: str) -> str:
    """A message of the engine or the loader with its command-line advice said as the
    page says it (``run again with --resume REPORT`` is the page's Resume button)."""
    for cli, page in _FOR_PAGE:
        text = text.replace(cli, page)
    return text


def unbroken(text: object, attr: bool = True) -> markupsafe.Markup:
    """`` class="unbroken"`` (or `` unbroken`` inside a class list, ``attr=False``) for a
    text with a run of more than 30 characters without a space, which the page lets
    break anywhere; nothing for ordinary text."""
    words = str(text or "").split()
    if not words or max(map(len, words)) <= 30:
        return markupsafe.Markup("")
    if attr:
        return markupsafe.Markup(' class="unbroken"')
    return markupsafe.Markup(" unbroken")


def times(n: int) -> str:
    """``once``, ``2 times``, ``1,024 times`` (``0 times`` before the first)."""
    return "once" if n == 1 else f"{n:,} times"


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, s = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


def not_ready(request: web.Request) -> str:
    try:
        request.app[RUNS].check_ready()
    except BulkSyncError as exc:
        return request.app[SECRETS].redact(str(exc))
    return ""
