"""The ops page: an aiohttp.web application, Jinja2 templates, a little plain JavaScript.

    upload ──▶ draft (sheet, columns, dry run) ──▶ confirm ──▶ run (live) ──▶ reports
                                                                 │
                                       history ◀─────────────────┘ (retry, resume)

Pages are rendered on the server and work without JavaScript (a running run's page then
refreshes itself); the script adds the drop zone and the live progress stream
(Server-Sent Events). See ``docs/web.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jinja2
from aiohttp import BodyPartReader, MultipartReader, web

from bulk_sync import __version__
from bulk_sync.cells import normalize_header
from bulk_sync.config import Settings
from bulk_sync.errors import BulkSyncError, UsageError
from bulk_sync.loading.peek import peek
from bulk_sync.models import Status
from bulk_sync.redaction import Redactor
from bulk_sync.report import read_meta, read_report, write_report
from bulk_sync.web.analysis import Analysis, AnalysisCache, analyse, column_letters
from bulk_sync.web.runs import Busy, RunManager, RunRequest, load_options_for
from bulk_sync.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SAFE_METHODS,
    Security,
    Session,
    apply_headers,
)
from bulk_sync.web.store import (
    ACCEPTED_EXTENSIONS,
    DataDir,
    Draft,
    DraftFile,
    RunRecord,
    Upload,
    clean_name,
    headers_key,
    new_id,
    now_text,
)

__all__ = ["WebConfig", "create_app"]

log = logging.getLogger("bulk_sync.web")

PAGE_SIZE = 50
FORM_MAX_BYTES = 256 * 1024  # urlencoded forms: a login, a mapping
_CHUNK = 256 * 1024

CONFIG: web.AppKey[WebConfig] = web.AppKey("config")
SECURITY: web.AppKey[Security] = web.AppKey("security")
RUNS: web.AppKey[RunManager] = web.AppKey("runs")
DATA: web.AppKey[DataDir] = web.AppKey("data")
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates")
CACHE: web.AppKey[AnalysisCache] = web.AppKey("cache")
FLASH: web.AppKey[dict[str, list[str]]] = web.AppKey("flash")
SECRETS: web.AppKey[_Secrets] = web.AppKey("secrets")
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


def create_app(config: WebConfig) -> web.Application:
    app = web.Application(
        middlewares=[_guard_middleware, _security_middleware],
        client_max_size=FORM_MAX_BYTES,
    )
    data = DataDir(config.data_dir)
    token = config.token or config.settings.token
    secrets_of = _Secrets(token, config.security)
    app[CONFIG] = config
    app[SECURITY] = config.security
    app[DATA] = data
    app[CACHE] = AnalysisCache()
    app[FLASH] = {}
    app[RUNS] = RunManager(data, config.settings, token=token, redact=secrets_of.redact)
    app[SECRETS] = secrets_of
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bulk_sync.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["letters"] = column_letters
    env.filters["number"] = lambda n: f"{n:,}" if isinstance(n, int) else n
    env.filters["duration"] = _duration
    env.filters["when"] = lambda s: s.replace("T", " ").replace("Z", " UTC") if s else ""
    env.globals["version"] = __version__
    app[TEMPLATES] = env
    static = Path(__file__).parent / "static"
    app.router.add_static("/static/", static, name="static", append_version=True)
    r = app.router
    r.add_get("/", index, name="index")
    r.add_get("/login", login_page, name="login")
    r.add_post("/login", login)
    r.add_post("/logout", logout, name="logout")
    r.add_post("/upload", upload, name="upload")
    r.add_get("/drafts/{draft}", draft_page, name="draft")
    r.add_post("/drafts/{draft}/upload", upload, name="draft_upload")
    r.add_post("/drafts/{draft}/files/{index:\\d+}", set_file, name="set_file")
    r.add_post("/drafts/{draft}/files/{index:\\d+}/remove", remove_file, name="remove_file")
    r.add_get("/drafts/{draft}/confirm", confirm_page, name="confirm")
    r.add_post("/drafts/{draft}/sync", start_sync, name="sync")
    r.add_get("/runs", history, name="runs")
    r.add_get("/runs/{run}", run_page, name="run")
    r.add_get("/runs/{run}/events", run_events, name="events")
    r.add_post("/runs/{run}/stop", stop_run, name="stop")
    r.add_get("/runs/{run}/{action:retry|resume}", confirm_again, name="confirm_again")
    r.add_post("/runs/{run}/{action:retry|resume}", start_again, name="start_again")
    r.add_get("/runs/{run}/report.{fmt:csv|xlsx}", download, name="download")
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    return app


class _Secrets:
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


async def _on_startup(app: web.Application) -> None:
    marked = await asyncio.to_thread(app[RUNS].recover)
    for run_id in marked:
        log.warning("run %s was cut off when the server stopped; it can be resumed", run_id)


async def _on_shutdown(app: web.Application) -> None:
    await app[RUNS].shutdown()


# -- middleware ------------------------------------------------------------------------


@web.middleware
async def _guard_middleware(
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
        response = _error_page(request, exc.status, exc.text or exc.reason)
        for name in ("Set-Cookie", "Connection"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
    except Exception:
        log.exception("error answering %s %s", request.method, request.path)
        response = _error_page(
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
async def _security_middleware(
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


def _error_page(request: web.Request, status: int, message: str) -> web.Response:
    return _render(request, "error.html", {"status": status, "message": message}, status=status)


# -- rendering -------------------------------------------------------------------------


def _render(
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
    }
    html = env.get_template(template).render({**base, **context})
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def display_url(url: str) -> str:
    """The API URL without any user name or password it might carry."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def _duration(seconds: float | None) -> str:
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


# -- pages -----------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    data = request.app[DATA]
    runs = await asyncio.to_thread(lambda: list(_take(data.runs(), 5)))
    return _render(
        request,
        "index.html",
        {
            "runs": runs,
            "max_upload": request.app[CONFIG].max_upload_bytes,
            "accepted": ",".join(ACCEPTED_EXTENSIONS),
            "live": request.app[RUNS].live,
        },
    )


def _take(items: Any, n: int) -> Any:
    for k, item in enumerate(items):
        if k >= n:
            return
        yield item


async def login_page(request: web.Request) -> web.Response:
    security = request.app[SECURITY]
    if security.password is None or security.logged_in(request[SESSION]):
        raise web.HTTPSeeOther("/")
    return _render(request, "login.html", {"next": request.query.get("next", "/"), "error": ""})


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
    return _render(
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


# -- upload ----------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


async def upload(request: web.Request) -> web.StreamResponse:
    """Store the files of a multipart form under server-chosen names, then show the draft.

    The whole request is limited to ``max_upload_bytes``; a file type the loader cannot
    read is refused before it is stored."""
    config = request.app[CONFIG]
    data = request.app[DATA]
    limit = config.max_upload_bytes
    draft: Draft | None = None
    if "draft" in request.match_info:
        draft = data.draft(request.match_info["draft"])
        if draft is None:
            raise web.HTTPNotFound(text="No such set of files.")
    length = request.content_length
    if length is not None and length > limit + 64 * 1024:
        return _too_large(request, limit)
    reader: MultipartReader | None = request.get(MULTIPART)
    if reader is None:
        raise web.HTTPBadRequest(text="Choose one or more files to upload.")
    stored: list[tuple[Upload, Path]] = []
    refused: list[str] = []
    total = 0
    try:
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or not part.filename:
                continue
            name = clean_name(part.filename)
            ext = Path(name).suffix.lower()
            if ext not in ACCEPTED_EXTENSIONS:
                refused.append(
                    f"{name}: not a spreadsheet this tool reads (CSV, TSV, XLSX, XLS or ODS)"
                )
                await part.release()
                continue
            upload_id, path = data.new_upload_path(ext)
            size = 0
            with path.open("xb") as out:
                stored.append((Upload(upload_id, name, ext, 0, now_text()), path))
                while chunk := await part.read_chunk(_CHUNK):
                    size += len(chunk)
                    total += len(chunk)
                    if total > limit:
                        raise _TooLarge
                    out.write(chunk)
            if size == 0:
                refused.append(f"{name}: the file is empty")
                path.unlink(missing_ok=True)
                stored.pop()
                continue
            stored[-1] = (dataclasses.replace(stored[-1][0], size=size), path)
    except _TooLarge:
        for _, path in stored:
            path.unlink(missing_ok=True)
        return _too_large(request, limit)
    except BaseException:
        for _, path in stored:
            path.unlink(missing_ok=True)
        raise
    if not stored:
        return _render(
            request,
            "index.html",
            {
                "runs": [],
                "max_upload": limit,
                "accepted": ",".join(ACCEPTED_EXTENSIONS),
                "live": request.app[RUNS].live,
                "errors": refused or ["Choose one or more files to upload."],
            },
            status=400,
        )
    files: list[DraftFile] = []
    for up, _ in stored:
        data.save_upload(up)
        f = DraftFile(up.id, up.name, up.ext, up.size)
        files.append(await asyncio.to_thread(_remembered_mapping, data, f, request))
    if draft is None:
        draft = Draft(new_id("d"), now_text(), tuple(files))
    else:
        draft = dataclasses.replace(
            draft, files=draft.files + tuple(files), revision=draft.revision + 1
        )
    data.save_draft(draft)
    location = f"/drafts/{draft.id}"
    if refused:
        location += "?refused=" + str(len(refused))
        _flash(request, draft.id, refused)
    raise web.HTTPSeeOther(location)


def _flash(request: web.Request, key: str, messages: list[str]) -> None:
    """Messages for the next view of a draft (files refused at upload)."""
    flashes = request.app[FLASH]
    flashes[key] = messages[:20]
    while len(flashes) > 50:
        flashes.pop(next(iter(flashes)))


def _too_large(request: web.Request, limit: int) -> web.Response:
    mb = limit / (1024 * 1024)
    message = (
        f"The upload is too large: the limit is {mb:g} MB at a time. Upload fewer files at "
        "once, or split the file (or ask for a larger limit: `bulk-sync serve "
        "--max-upload-mb N`)."
    )
    response = _error_page(request, 413, message)
    response.force_close()
    return response


def _remembered_mapping(data: DataDir, f: DraftFile, request: web.Request) -> DraftFile:
    """A new file whose headers were mapped before gets that mapping again."""
    settings = request.app[CONFIG].settings
    try:
        look = peek(data.upload_path(f).read_bytes(), f.name, load_options_for(f, settings))
    except BulkSyncError:
        return f
    if look.complete or not look.headers:
        return f
    remembered = data.mapping(headers_key(look.headers))
    if remembered is None:
        return f
    # The headers are the same up to case, spaces, "-" and "_": use this file's spelling.
    by_key = {normalize_header(h): h for h in look.headers}
    columns = {
        k: by_key[normalize_header(v)]
        for k, v in remembered.get("columns", {}).items()
        if normalize_header(v) in by_key
    }
    return dataclasses.replace(
        f,
        columns=columns,
        wide=bool(remembered.get("wide")),
        mapping_note="Columns chosen as for an earlier file with the same headers.",
    )


# -- drafts ----------------------------------------------------------------------------


def _draft_or_404(request: web.Request) -> Draft:
    draft = request.app[DATA].draft(request.match_info["draft"])
    if draft is None:
        raise web.HTTPNotFound(text="No such set of files. Upload them again from the start page.")
    return draft


async def _analysis(request: web.Request, draft: Draft) -> Analysis:
    cache = request.app[CACHE]
    found = cache.get(draft)
    if found is None:
        found = await asyncio.to_thread(
            analyse, request.app[DATA], draft, request.app[CONFIG].settings
        )
        cache.put(draft, found)
    return found


async def draft_page(request: web.Request) -> web.Response:
    draft = _draft_or_404(request)
    analysis = await _analysis(request, draft)
    page = _page_number(request)
    problems: tuple[Any, ...] = ()
    pages = 1
    if analysis.preview is not None:
        pages = max(1, math.ceil(analysis.preview.problem_count / PAGE_SIZE))
        page = min(page, pages)
        problems = analysis.preview.problems((page - 1) * PAGE_SIZE, PAGE_SIZE)
    return _render(
        request,
        "draft.html",
        {
            "draft": draft,
            "analysis": analysis,
            "problems": problems,
            "page": page,
            "pages": pages,
            "page_size": PAGE_SIZE,
            "flash": request.app[FLASH].pop(draft.id, []),
            "token_present": request.app[RUNS].token_present(),
            "max_upload": request.app[CONFIG].max_upload_bytes,
            "accepted": ",".join(ACCEPTED_EXTENSIONS),
        },
    )


def _page_number(request: web.Request) -> int:
    try:
        return max(1, int(request.query.get("page", "1")))
    except ValueError:
        return 1


async def set_file(request: web.Request) -> web.StreamResponse:
    """Choose a file's sheet, or map its columns (remembered for the same headers)."""
    data = request.app[DATA]
    draft = _draft_or_404(request)
    index = int(request.match_info["index"])
    if index >= len(draft.files):
        raise web.HTTPNotFound(text="No such file in this set.")
    form = await request.post()
    f = draft.files[index]
    if "sheet" in form:
        choice = str(form["sheet"])
        if choice == "*all*":
            f = dataclasses.replace(f, sheet=None, all_sheets=True)
        else:
            f = dataclasses.replace(f, sheet=choice or None, all_sheets=False)
    if "layout" in form:
        f = _mapped(f, form)
        look = await asyncio.to_thread(_peek_headers, data, f, request)
        if look:
            data.remember_mapping(headers_key(look), {"columns": dict(f.columns), "wide": f.wide})
    data.save_draft(draft.with_file(index, f))
    raise web.HTTPSeeOther(f"/drafts/{draft.id}#file-{index}")


def _mapped(f: DraftFile, form: Mapping[str, Any]) -> DraftFile:
    wide = form.get("layout") == "wide"
    wanted = ("customer_id",) if wide else ("customer_id", "attribute", "value")
    columns = {k: str(form.get(k, "")) for k in wanted if str(form.get(k, ""))}
    return dataclasses.replace(f, columns=columns, wide=wide, mapping_note="")


def _peek_headers(data: DataDir, f: DraftFile, request: web.Request) -> tuple[str, ...]:
    settings = request.app[CONFIG].settings
    try:
        return peek(data.upload_path(f).read_bytes(), f.name, load_options_for(f, settings)).headers
    except BulkSyncError:
        return ()


async def remove_file(request: web.Request) -> web.StreamResponse:
    data = request.app[DATA]
    draft = _draft_or_404(request)
    index = int(request.match_info["index"])
    if index < len(draft.files):
        files = draft.files[:index] + draft.files[index + 1 :]
        draft = dataclasses.replace(draft, files=files, revision=draft.revision + 1)
        data.save_draft(draft)
    if not draft.files:
        raise web.HTTPSeeOther("/")
    raise web.HTTPSeeOther(f"/drafts/{draft.id}")


async def confirm_page(request: web.Request) -> web.Response:
    draft = _draft_or_404(request)
    analysis = await _analysis(request, draft)
    if analysis.preview is None:
        raise web.HTTPSeeOther(f"/drafts/{draft.id}")
    return _render(
        request,
        "confirm.html",
        {
            "draft": draft,
            "analysis": analysis,
            "kind": "sync",
            "customers": analysis.preview.customers,
            "values": analysis.preview.pairs,
            "requests": analysis.preview.requests,
            "not_sent": analysis.preview.counts.get("invalid", 0),
            "problem": _not_ready(request),
            "action": f"/drafts/{draft.id}/sync",
            "back": f"/drafts/{draft.id}",
            "files": [f.name for f in draft.files],
        },
    )


def _not_ready(request: web.Request) -> str:
    try:
        request.app[RUNS].check_ready()
    except BulkSyncError as exc:
        return request.app[SECRETS].redact(str(exc))
    return ""


async def start_sync(request: web.Request) -> web.StreamResponse:
    draft = _draft_or_404(request)
    form = await request.post()
    if str(form.get("revision", "")) != str(draft.revision):
        raise web.HTTPSeeOther(f"/drafts/{draft.id}?changed=1")
    return await _start(request, RunRequest("sync", draft.files, draft.id), f"/drafts/{draft.id}")


async def _start(request: web.Request, job: RunRequest, back: str) -> web.StreamResponse:
    try:
        record = await request.app[RUNS].start(job)
    except (Busy, UsageError) as exc:
        message = request.app[SECRETS].redact(str(exc))
        return _render(
            request,
            "error.html",
            {"status": 409, "message": message, "back": back},
            status=409,
        )
    raise web.HTTPSeeOther(f"/runs/{record.id}")


# -- runs ------------------------------------------------------------------------------


def _run_or_404(request: web.Request) -> RunRecord:
    record = request.app[DATA].run(request.match_info["run"])
    if record is None:
        raise web.HTTPNotFound(text="No such run.")
    return record


async def history(request: web.Request) -> web.Response:
    runs = await asyncio.to_thread(lambda: list(request.app[DATA].runs()))
    return _render(request, "runs.html", {"runs": runs, "live": request.app[RUNS].live})


def _report_ready(request: web.Request, record: RunRecord) -> bool:
    path = request.app[DATA].report_path(record.id)
    return record.status == "finished" and path.exists() and path.stat().st_size > 0


async def run_page(request: web.Request) -> web.Response:
    record = _run_or_404(request)
    manager = request.app[RUNS]
    live = manager.get_live(record.id)
    snapshot = live.snapshot if live is not None and not live.done.is_set() else None
    if live is not None and live.done.is_set():
        record = live.record
    counts = record.counts or {}
    return _render(
        request,
        "run.html",
        {
            "run": record,
            "snapshot": snapshot,
            "counts": counts,
            "statuses": [s.value for s in Status],
            "summary": record.summary or {},
            "report_ready": _report_ready(request, record),
            "retryable": counts.get("failed", 0) + counts.get("not_sent", 0),
            "resumable": _resumable(request, record),
            "busy": manager.live is not None and not manager.live.done.is_set(),
            "exit_text": _exit_text(record),
        },
    )


def _resumable(request: web.Request, record: RunRecord) -> bool:
    if record.kind == "retry":
        return False
    data = request.app[DATA]
    if record.status == "interrupted":
        from bulk_sync.report import journal_path_for

        return journal_path_for(data.report_path(record.id)).exists() and bool(
            data.draft(record.draft)
        )
    return (
        record.status == "finished"
        and record.exit_code == 3
        and bool(record.counts.get("not_sent"))
        and bool(data.draft(record.draft))
    )


def _exit_text(record: RunRecord) -> str:
    if record.status == "interrupted":
        return "Cut off: the server stopped while this run was sending."
    if record.status == "failed":
        return "Could not run."
    return {
        0: "Done: every row was sent or skipped.",
        1: "Done, with problems: some rows are invalid or failed. The report says which.",
        3: "Stopped before the end: rows not sent are marked not_sent in the report.",
    }.get(record.exit_code if record.exit_code is not None else -1, "")


async def run_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: the run's snapshot whenever it changes (at most 4 a second),
    a comment every 15 s to keep proxies from closing the stream, and ``finished``."""
    record = _run_or_404(request)
    live = request.app[RUNS].get_live(record.id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    apply_headers(response)
    await response.prepare(request)
    redact = request.app[SECRETS].redact
    if live is None:
        await response.write(b"event: finished\ndata: {}\n\n")
        return response
    version = -1
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        while True:
            changed = live.changed
            snapshot = live.snapshot
            if snapshot["version"] != version:
                version = snapshot["version"]
                payload = redact(json.dumps(snapshot, ensure_ascii=False))
                await response.write(f"event: progress\ndata: {payload}\n\n".encode())
            if live.done.is_set():
                await response.write(b"event: finished\ndata: {}\n\n")
                break
            try:
                await asyncio.wait_for(changed.wait(), 15.0)
            except TimeoutError:
                await response.write(b": still here\n\n")
            await asyncio.sleep(0.25)
    return response


async def stop_run(request: web.Request) -> web.StreamResponse:
    record = _run_or_404(request)
    request.app[RUNS].stop(record.id)
    raise web.HTTPSeeOther(f"/runs/{record.id}")


async def confirm_again(request: web.Request) -> web.Response:
    record = _run_or_404(request)
    action = request.match_info["action"]
    counts = record.counts or {}
    if action == "retry":
        rows = counts.get("failed", 0) + counts.get("not_sent", 0)
        if not rows or not _report_ready(request, record):
            raise web.HTTPSeeOther(f"/runs/{record.id}")
        customers = await asyncio.to_thread(
            _customers_in_retry, request.app[DATA].report_path(record.id)
        )
    else:
        if not _resumable(request, record):
            raise web.HTTPSeeOther(f"/runs/{record.id}")
        rows = counts.get("not_sent", 0)
        customers = None
    return _render(
        request,
        "confirm.html",
        {
            "kind": action,
            "run": record,
            "customers": customers,
            "values": rows,
            "requests": None,
            "not_sent": 0,
            "problem": _not_ready(request),
            "action": f"/runs/{record.id}/{action}",
            "back": f"/runs/{record.id}",
            "files": list(record.files),
        },
    )


def _customers_in_retry(report: Path) -> int:
    retry = (Status.FAILED, Status.NOT_SENT)
    return len({r.customer_id for r in read_report(report) if r.status in retry})


async def start_again(request: web.Request) -> web.StreamResponse:
    record = _run_or_404(request)
    action = request.match_info["action"]
    if action == "retry":
        if not _report_ready(request, record):
            raise web.HTTPSeeOther(f"/runs/{record.id}")
        job = RunRequest("retry", parent=record.id, draft=record.draft)
    else:
        draft = request.app[DATA].draft(record.draft)
        if draft is None or not _resumable(request, record):
            raise web.HTTPSeeOther(f"/runs/{record.id}")
        job = RunRequest("resume", draft.files, draft.id, parent=record.id)
    return await _start(request, job, f"/runs/{record.id}")


async def download(request: web.Request) -> web.StreamResponse:
    """The run's report: the engine's CSV as written, or the same lines as XLSX."""
    record = _run_or_404(request)
    if not _report_ready(request, record):
        raise web.HTTPNotFound(text="This run has no report (yet).")
    data = request.app[DATA]
    csv_path = data.report_path(record.id)
    name = f"bulk-sync-report-{record.id}"
    if request.match_info["fmt"] == "csv":
        path = csv_path
        ctype = "text/csv; charset=utf-8"
    else:
        path = csv_path.with_suffix(".xlsx")
        if not path.exists():
            await asyncio.to_thread(_xlsx_from_csv, csv_path, path, record)
        ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    response = web.FileResponse(
        path,
        headers={
            "Content-Type": ctype,
            "Content-Disposition": f'attachment; filename="{name}{path.suffix}"',
        },
    )
    return response


def _xlsx_from_csv(csv_path: Path, xlsx_path: Path, record: RunRecord) -> None:
    """The XLSX form of a run's report: the same lines (read back, values unescaped, and
    neutralized again by the writer) and, on the summary sheet, the facts the engine
    wrote beside the CSV (``report.csv.meta.json``): what ``sync --report x.xlsx`` puts
    there."""
    lines = (
        (r.source, r.sheet, r.row, r.customer_id, r.attribute, r.value, r.status,
         r.http_status, r.error, r.attempts)
        for r in read_report(csv_path)
    )  # fmt: skip
    facts = {k: v for k, v in (read_meta(csv_path) or {}).items() if k != "bulk_sync_report"}
    if isinstance(facts.get("base_url"), str):
        facts["base_url"] = display_url(str(facts["base_url"]))
    if not facts:  # a report without its sidecar: what the run record knows
        facts = {"mode": "sync", "inputs": list(record.files), "rows": sum(record.counts.values())}
    write_report(xlsx_path, lines, summary=facts)
