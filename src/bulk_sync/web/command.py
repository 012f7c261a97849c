"""``bulk-sync serve``: start the ops page.

Binds loopback by default. A non-loopback ``--host`` needs an access password from the
environment (``BULK_SYNC_WEB_PASSWORD``) or a file (``BULK_SYNC_WEB_PASSWORD_FILE``),
never from a flag (a flag shows in ``ps`` and the shell's history).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bulk_sync.config import Settings, load_config
from bulk_sync.errors import BulkSyncError
from bulk_sync.observability import setup_logging

if TYPE_CHECKING:
    from bulk_sync.web.security import Security

__all__ = ["serve"]

log = logging.getLogger("bulk_sync.web")


class _CannotStart(click.ClickException):
    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(f"bulk-sync: error: {self.message}", err=True)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on; 0 picks a free one (printed at start).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="YAML settings, as for sync (API URL, concurrency, state, ...).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("bulk-sync-data"),
    show_default=True,
    help="Where uploads, runs and their reports are kept.",
)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=100.0,
    show_default=True,
    help="Largest upload accepted at a time, in MB.",
)
def serve(
    host: str, port: int, config_path: Path | None, data_dir: Path, max_upload_mb: float
) -> None:
    """Serve the ops page: upload spreadsheets, check them, sync, follow, download reports.

    The API key comes from the environment variable IC_API_TOKEN of this process (or the
    one named by token_env in --config) and never reaches the browser. A --host other
    than loopback needs the access password in BULK_SYNC_WEB_PASSWORD (or in a file named
    by BULK_SYNC_WEB_PASSWORD_FILE).
    """
    from bulk_sync.web.security import Security, read_password

    try:
        settings = load_config(config_path) if config_path is not None else Settings()
        password = read_password()
        security = Security.for_bind(host, port, password)
        data_dir.mkdir(parents=True, exist_ok=True)
    except BulkSyncError as exc:
        raise _CannotStart(str(exc)) from None
    except OSError as exc:
        raise _CannotStart(f"cannot use the data dir {data_dir}: {exc.strerror or exc}") from None
    token = settings.token()
    secrets = [s for s in (token, password) if s]
    handler = setup_logging(settings.log_format, secrets=secrets)
    _redact_aiohttp_logs(handler)
    if token is None:
        log.warning(
            "no API key in %s: the page can check files, but not sync until the server is "
            "restarted with it",
            settings.token_env,
        )
    try:
        asyncio.run(
            _main(host, port, settings, security, data_dir, int(max_upload_mb * 1024 * 1024))
        )
    except OSError as exc:
        raise _CannotStart(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _redact_aiohttp_logs(handler: logging.Handler) -> None:
    """aiohttp's own loggers (access, server errors) through the same redacting handler."""
    for name in ("aiohttp.access", "aiohttp.server", "aiohttp.web"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO if name == "aiohttp.access" else logging.WARNING)


async def _main(
    host: str,
    port: int,
    settings: Settings,
    security: Security,
    data_dir: Path,
    max_upload: int,
) -> None:
    from aiohttp import web

    from bulk_sync.web.app import WebConfig, create_app
    from bulk_sync.web.security import Security

    samples = os.environ.get("BULK_SYNC_WEB_SAMPLES", "")  # set by `make serve`
    config = WebConfig(data_dir, settings, security, max_upload_bytes=max_upload, samples=samples)
    app = create_app(config)
    runner = web.AppRunner(app, access_log_format='%a "%r" %s %b %Tfs')
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = _bound_port(runner) or port
        if security.allowed_hosts:
            fresh = Security.for_bind(host, bound, security.password)
            security.allowed_hosts = fresh.allowed_hosts
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        if ":" in shown:
            shown = f"[{shown}]"
        url = f"http://{shown}:{bound}/"
        click.echo(f"bulk-sync serve: open {url} in your browser (Ctrl-C to stop)", err=True)
        click.echo(f"  data dir: {data_dir}; API: {settings.base_url}", err=True)
        sys.stderr.flush()
        await stop.wait()
        click.echo(
            "bulk-sync serve: stopping (a run in progress writes its report first)", err=True
        )
    finally:
        await runner.cleanup()


def _bound_port(runner: object) -> int | None:
    addresses = getattr(runner, "addresses", [])
    for address in addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
