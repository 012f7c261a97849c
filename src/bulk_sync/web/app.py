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
import logging
from pathlib import Path

import jinja2
from aiohttp import web

from bulk_sync import __version__
from bulk_sync.web.analysis import AnalysisCache, column_letters
from bulk_sync.web.base import (
    CACHE,
    CONFIG,
    DATA,
    FLASH,
    FORM_MAX_BYTES,
    RUNS,
    SECRETS,
    SECURITY,
    TEMPLATES,
    Secrets,
    WebConfig,
    duration,
    for_page,
    times,
    unbroken,
)
from bulk_sync.web.middleware import guard_middleware, security_middleware
from bulk_sync.web.runs import RunManager
from bulk_sync.web.store import DataDir
from bulk_sync.web.views_auth import login, login_page, logout
from bulk_sync.web.views_files import (
    confirm_page,
    draft_page,
    index,
    remove_file,
    set_file,
    start_sync,
    upload,
)
from bulk_sync.web.views_runs import (
    confirm_again,
    download,
    history,
    run_events,
    run_page,
    start_again,
    stop_run,
)

__all__ = ["WebConfig", "create_app"]

log = logging.getLogger("bulk_sync.web")


def create_app(config: WebConfig) -> web.Application:
    app = web.Application(
        middlewares=[guard_middleware, security_middleware],
        client_max_size=FORM_MAX_BYTES,
    )
    data = DataDir(config.data_dir)
    token = config.token or config.settings.token
    secrets_of = Secrets(token, config.security)
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
    env.filters["duration"] = duration
    env.filters["times"] = times
    env.filters["for_page"] = for_page
    env.filters["unbroken"] = unbroken
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


async def _on_startup(app: web.Application) -> None:
    marked = await asyncio.to_thread(app[RUNS].recover)
    for run_id in marked:
        log.warning("run %s was cut off when the server stopped; it can be resumed", run_id)


async def _on_shutdown(app: web.Application) -> None:
    await app[RUNS].shutdown()
