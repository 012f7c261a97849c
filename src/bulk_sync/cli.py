"""The ``bulk-sync`` command. It only parses, shows progress and turns errors into
messages and exit codes; the work lives in :mod:`bulk_sync.runner`.

Exit codes: 0 every row ok or skipped; 1 finished with invalid or failed rows;
2 nothing was sent because the command, config or input is unusable;
3 aborted (credentials rejected, interrupted) with the rest ``not_sent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from bulk_sync import __version__
from bulk_sync.config import Settings, load_config
from bulk_sync.errors import BulkSyncError, UsageError
from bulk_sync.events import (
    BREAKER_PROBING,
    Event,
    EventHandler,
    Finished,
    FlowState,
    Planned,
    Progress,
    unavailable_text,
)
from bulk_sync.files import show_path
from bulk_sync.models import Status
from bulk_sync.observability import Redactor, setup_logging, write_metrics, write_summary_json
from bulk_sync.provenance import path_identity
from bulk_sync.report import JOURNAL_SUFFIX
from bulk_sync.runner import (
    Shard,
    Summary,
    default_retry_report_path,
    release_report,
    resolve_report_path,
    retry_tables,
    run_tables,
    sync_async,
)

log = logging.getLogger("bulk_sync.cli")

EXIT_OK, EXIT_ROWS, EXIT_UNUSABLE, EXIT_ABORTED = 0, 1, 2, 3

F = TypeVar("F", bound=Callable[..., Any])


def _concurrency(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
    """``--concurrency``: a whole number of at least 1, or ``auto``."""
    if value is None or value.strip().lower() == "auto":
        return None if value is None else "auto"
    try:
        number = int(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a whole number nor auto") from None
    if number < 1:
        raise click.BadParameter(f"{number} is less than 1")
    return number


def _common_options(f: F) -> F:
    """Options shared by ``sync`` and ``retry``."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(path_type=Path),
            help="YAML settings file (see config.example.yaml).",
        ),
        click.option("--base-url", help="API root [default: https://api.invisiblecollector.com]."),
        click.option(
            "--report",
            "report",
            type=click.Path(path_type=Path),
            help="Results report, .csv or .xlsx by suffix; {timestamp} is replaced. "
            "Never silently overwrites an existing file.",
        ),
        click.option(
            "--overwrite", is_flag=True, help="Allow --report to replace an existing file."
        ),
        click.option(
            "--concurrency",
            callback=_concurrency,
            metavar="N|auto",
            help="Requests in flight at most: a ceiling, the window adapts below it; auto "
            "finds the API's capacity (up to 256) [8].",
        ),
        click.option(
            "--max-outage",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help="Stop (exit 3, the rest not_sent, --resume finishes later) once the API "
            "has been unavailable this long [900].",
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0, min_open=True),
            help="Requests per second at most (whole job, shared by shards).",
        ),
        click.option(
            "--max-attempts",
            type=click.IntRange(min=1),
            help="Attempts per request, the first included [5].",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            help="Seconds one attempt may take, the whole answer included [30].",
        ),
        click.option(
            "--max-attributes-per-request",
            type=click.IntRange(min=1),
            help="Split larger maps into several calls.",
        ),
        click.option(
            "--state",
            "state_path",
            type=click.Path(path_type=Path),
            help="SQLite file of what is already synced: unchanged pairs are skipped; "
            "also locks out a second run.",
        ),
        click.option("--full", is_flag=True, help="Ignore --state for this run (still record)."),
        click.option(
            "--lock",
            "lock_path",
            type=click.Path(path_type=Path),
            help="Lock file that keeps two runs from overlapping.",
        ),
        click.option(
            "--log-format", type=click.Choice(["text", "json"]), help="Log format on stderr."
        ),
        click.option(
            "--summary-json",
            type=click.Path(path_type=Path),
            help="Write the run's summary as JSON here.",
        ),
        click.option(
            "--metrics-file",
            type=click.Path(path_type=Path),
            help="Write Prometheus metrics here (node_exporter textfile collector).",
        ),
        click.option(
            "--metrics-job",
            help="The job label of the metrics, one per job on a host [bulk_sync].",
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            default=None,
            help="Allow a plain http:// base URL to a non-loopback host.",
        ),
        click.option(
            "--ca-bundle",
            type=click.Path(path_type=Path, exists=True, dir_okay=False),
            help="CA certificates to verify the API's TLS certificate with.",
        ),
        click.option(
            "--transport", type=click.Choice(["aiohttp", "httpx"]), help="HTTP transport [aiohttp]."
        ),
        click.option(
            "--progress/--no-progress",
            default=None,
            help="Progress bar [on when stderr is a terminal].",
        ),
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            help="No summary on stdout; only warnings and errors on stderr.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


_OUTPUT_FLAGS = {
    "--log-format": "log_format",
    "--summary-json": "summary_json",
    "--metrics-file": "metrics_file",
    "--metrics-job": "metrics_job",
    "--config": "config_path",
}


def _output_flags(args: list[str]) -> dict[str, Any]:
    """The log format and output files a command line asks for, read leniently from the
    raw arguments (for a command line click refused), config file included when usable."""
    found: dict[str, Any] = {}
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in _OUTPUT_FLAGS:
            if not eq:
                if i + 1 >= len(args):
                    continue
                value = args[i + 1]
            found[_OUTPUT_FLAGS[name]] = value
    opts: dict[str, Any] = {}
    if "config_path" in found:
        try:
            base = load_config(Path(found["config_path"]))
        except BulkSyncError:
            pass
        else:
            opts = {
                "log_format": base.log_format,
                "summary_json": base.summary_json,
                "metrics_file": base.metrics_file,
                "metrics_job": base.metrics_job,
            }
    for key in ("summary_json", "metrics_file"):
        if key in found:
            opts[key] = Path(found[key])
    for key in ("log_format", "metrics_job"):
        if key in found:
            opts[key] = found[key]
    return opts


class _RunCommand(click.Command):
    """``sync``/``retry``: an option click refuses (a typo in a cron entry, a bad value)
    still ends as every unusable command does: exit 2, with ``--log-format json`` one
    JSON line on stderr (not click's usage text), and ``--summary-json``/``--metrics-file``
    rewritten so that monitoring never keeps showing an earlier run's result."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        raw = list(args)
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            opts = _output_flags(raw)
            token = Settings().token()
            message = Redactor([token] if token else []).redact(exc.format_message())
            settings = _output_settings(opts)
            if opts.get("log_format") == "json":
                _fail(message, {"log_format": "json"}, settings)
            _error_outputs(settings, EXIT_UNUSABLE, message, opts)
            raise


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="bulk-sync")
def cli() -> None:
    """Upload customer attributes from CSV/TSV/XLSX/XLS/ODS files to Invisible Collector.

    The API key is read from the environment variable IC_API_TOKEN.
    """


@cli.command(cls=_RunCommand)
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@_common_options
@click.option("--dry-run", is_flag=True, help="Load and validate only; send nothing.")
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    help="Skip rows an earlier report (or its journal) marks ok.",
)
@click.option(
    "--resume-any-url",
    is_flag=True,
    help="Resume even from a report made against another --base-url (or one that does not "
    "say which).",
)
@click.option("--sheet", help="Which sheet of a workbook [the first].")
@click.option(
    "--all-sheets", is_flag=True, default=None, help="Every sheet that has the required columns."
)
@click.option("--encoding", help="Force the CSV encoding [detected].")
@click.option("--delimiter", help="Force the CSV delimiter: , ; | or tab [detected].")
@click.option(
    "--wide", is_flag=True, default=None, help="One row per customer, one column per attribute."
)
@click.option(
    "--on-conflict",
    type=click.Choice(["error", "last"]),
    help="Same customer and attribute with different values [error].",
)
@click.option(
    "--customer-map",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File of 'gid,externalId' lines: rows naming one customer by both ids are "
    "checked for conflicts too.",
)
@click.option("--shard", help="K/N: only customers whose stable hash falls in shard K of N.")
@click.option(
    "--inbox",
    type=click.Path(path_type=Path, file_okay=False),
    help="Process every file in this folder, oldest first (needs --archive).",
)
@click.option(
    "--inbox-min-age",
    type=click.FloatRange(min=0),
    help="With --inbox: take only files unmodified for this many seconds [10].",
)
@click.option(
    "--archive",
    type=click.Path(path_type=Path, file_okay=False),
    help="With --inbox: where processed files and their reports are moved.",
)
def sync(inputs: tuple[Path, ...], **opts: Any) -> None:
    """Load, validate, upload INPUT files and write a report.

    \b
    Examples:
      bulk-sync sync customers.xlsx --dry-run
      IC_API_TOKEN=... bulk-sync sync customers.csv --report out.xlsx
      bulk-sync sync big.csv --resume out.csv --report out2.csv
    """
    settings = _settings(opts)
    quiet = opts["quiet"]
    if opts["inbox"] is not None or opts["archive"] is not None:
        from bulk_sync.inbox import run_inbox_cli

        if inputs:
            _fail("INPUT files and --inbox are exclusive: give one or the other", opts, settings)
        _exit(
            _guard(
                settings,
                lambda: run_inbox_cli(settings, opts, _runner_hooks(settings, opts)),
                dry_run=opts["dry_run"],
            )
        )
    if not inputs:
        _fail("no input files given (or use --inbox DIR --archive DIR)", opts, settings)
    try:
        shard = Shard.parse(opts["shard"]) if opts["shard"] else None
    except BulkSyncError as exc:
        _fail(str(exc), opts, settings)
    if shard is not None and settings.rate:
        settings = settings.replace(rate=settings.rate / shard.count)

    def job() -> int:
        with _lock_and_state(settings, opts) as state:
            summary = _run_async(
                lambda stop, on_event: sync_async(
                    inputs,
                    settings,
                    report=opts["report"],
                    dry_run=opts["dry_run"],
                    resume=opts["resume"],
                    resume_any_url=opts["resume_any_url"],
                    overwrite=opts["overwrite"],
                    shard=shard,
                    state=state,
                    full=opts["full"],
                    stop=stop,
                    on_event=on_event,
                ),
                settings,
                opts,
            )
        return _finish(summary, settings, quiet)

    _exit(_guard(settings, job, dry_run=opts["dry_run"]))


@cli.command(cls=_RunCommand)
@click.argument("report_in", metavar="REPORT", type=click.Path(path_type=Path))
@_common_options
@click.option("--dry-run", is_flag=True, help="Only list what would be re-sent; send nothing.")
def retry(report_in: Path, **opts: Any) -> None:
    """Re-send the rows of REPORT whose status is failed or not_sent.

    The values are taken from the report; the new report lists those rows with their
    new statuses (same file, sheet and row numbers as the original).
    """
    settings = _settings(opts)

    def job() -> int:
        if not report_in.exists():
            raise UsageError(f"report {report_in} does not exist")
        if report_in.name.endswith(JOURNAL_SUFFIX):
            raise UsageError(
                f"{report_in} is the journal of a run that did not finish: it holds only the "
                "rows that finished. To complete that run, run the same sync again with "
                f"--resume {report_in}"
            )
        out = opts["report"] or default_retry_report_path(report_in)
        report = resolve_report_path(out, overwrite=opts["overwrite"], inputs=[report_in])
        try:
            token = settings.token()
            if not opts["dry_run"]:
                if token is None:
                    raise UsageError(
                        f"no API key: set the environment variable {settings.token_env}"
                    )
                from bulk_sync.runner import check_base_url

                check_base_url(settings, token)
            tables = retry_tables(report_in)
            with _lock_and_state(settings, opts) as state:
                summary = _run_async(
                    lambda stop, on_event: run_tables(
                        tables,
                        settings,
                        report=report,
                        token=token,
                        dry_run=opts["dry_run"],
                        state=state,
                        full=opts["full"],
                        stop=stop,
                        on_event=on_event,
                        inputs=[str(report_in)],
                        input_files=[path_identity(report_in)],
                    ),
                    settings,
                    opts,
                )
        except BaseException:
            release_report(report)
            raise
        summary = dataclasses.replace(summary, extra={**summary.extra, "command": "retry"})
        return _finish(summary, settings, opts["quiet"])

    _exit(_guard(settings, job, dry_run=opts["dry_run"]))


def _register_emulator() -> None:
    from bulk_sync.cli_emulator import emulator

    cli.add_command(emulator)


_register_emulator()


def _register_serve() -> None:
    from bulk_sync.web.command import serve

    cli.add_command(serve)


_register_serve()


# -- helpers ---------------------------------------------------------------------------


def _settings(opts: dict[str, Any]) -> Settings:
    try:
        base = load_config(opts["config_path"]) if opts.get("config_path") else Settings()
        return base.replace(
            base_url=opts.get("base_url"),
            concurrency=opts.get("concurrency"),
            max_outage=opts.get("max_outage"),
            rate=opts.get("rate"),
            max_attempts=opts.get("max_attempts"),
            timeout=opts.get("timeout"),
            max_attributes_per_request=opts.get("max_attributes_per_request"),
            on_conflict=opts.get("on_conflict"),
            customer_map=opts.get("customer_map"),
            encoding=opts.get("encoding"),
            delimiter=opts.get("delimiter"),
            sheet=opts.get("sheet"),
            all_sheets=opts.get("all_sheets"),
            wide=opts.get("wide"),
            state=opts.get("state_path"),
            lock=opts.get("lock_path"),
            transport=opts.get("transport"),
            allow_insecure_http=opts.get("allow_insecure_http"),
            ca_bundle=opts.get("ca_bundle"),
            log_format=opts.get("log_format"),
            summary_json=opts.get("summary_json"),
            metrics_file=opts.get("metrics_file"),
            metrics_job=opts.get("metrics_job"),
        )
    except BulkSyncError as exc:
        _fail(str(exc), opts)


def _fail(
    message: str, opts: dict[str, Any] | None = None, settings: Settings | None = None
) -> NoReturn:
    """Exit 2 with ``message``: one JSON line with ``--log-format json``, else text.

    ``--summary-json`` and ``--metrics-file`` (from ``settings``, else the flags in
    ``opts``) say so too, so that monitoring never reads an earlier run's exit code."""
    if settings is not None:
        _error_outputs(settings, EXIT_UNUSABLE, message, opts)
    elif opts is not None:
        _error_outputs(_output_settings(opts), EXIT_UNUSABLE, message, opts)
    if opts is not None and opts.get("log_format") == "json":
        doc = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "error",
            "logger": "bulk_sync.cli",
            "message": f"error: {message}",
            "event": "error",
            "exit_code": EXIT_UNUSABLE,
        }
        click.echo(json.dumps(doc, ensure_ascii=False), err=True)
    else:
        click.echo(f"bulk-sync: error: {show_path(message)}", err=True)
    sys.exit(EXIT_UNUSABLE)


def _output_settings(opts: dict[str, Any]) -> Settings:
    """Settings holding only the output files that ``opts`` name, for a command line
    that could not be turned into settings (a bad --metrics-job too: none)."""
    try:
        return Settings().replace(
            summary_json=opts.get("summary_json"),
            metrics_file=opts.get("metrics_file"),
            metrics_job=opts.get("metrics_job"),
        )
    except BulkSyncError:
        return Settings()


def _error_outputs(
    settings: Settings,
    code: int,
    text: str,
    opts: dict[str, Any] | None,
    *,
    dry_run: bool = False,
) -> None:
    """A run that ended with an error before its summary: ``--summary-json`` and
    ``--metrics-file`` get its exit code and the message (no rows counted), so that
    neither keeps saying what an earlier run did."""
    if settings.summary_json is None and settings.metrics_file is None:
        return
    token = settings.token()
    text = Redactor([token] if token else []).redact(text)
    summary = Summary(
        counts={s.value: 0 for s in Status},
        rows=0,
        customers=0,
        requests=0,
        retries=0,
        elapsed=0.0,
        report=Path(),
        exit_code=code,
        dry_run=bool(opts.get("dry_run")) if opts is not None else dry_run,
        aborted=text if code == EXIT_ABORTED else "",
        extra={"report": None, "error": text},
    )
    # Each on its own: one that cannot be written does not keep the other stale.
    if settings.summary_json is not None:
        try:
            write_summary_json(settings.summary_json, summary)
        except OSError as exc:  # the message above is what matters; say why it is stale
            log.warning("could not write %s: %s", settings.summary_json, exc.strerror or exc)
    if settings.metrics_file is not None:
        try:
            write_metrics(settings.metrics_file, summary, job=settings.metrics_job)
        except OSError as exc:
            log.warning("could not write %s: %s", settings.metrics_file, exc.strerror or exc)


def _check_output_folders(settings: Settings) -> None:
    """Refuse, before anything is sent, a ``--summary-json``/``--metrics-file`` that
    could not be written at the end (as ``--report`` is refused): a mistyped folder
    must not let a run send everything and then end as an internal error."""
    for flag, path in (("--summary-json", settings.summary_json),
                       ("--metrics-file", settings.metrics_file)):  # fmt: skip
        if path is None:
            continue
        folder = path.parent
        if not folder.is_dir():
            raise UsageError(f"{flag} {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {path}: folder {folder} is not writable")


def _exit(code: int) -> NoReturn:
    sys.exit(code)


def _guard(settings: Settings, job: Callable[[], int], *, dry_run: bool = False) -> int:
    """Run ``job`` with logging set up; turn every error into a message and exit code
    (written to ``--summary-json``/``--metrics-file`` too)."""
    token = settings.token()
    redactor = Redactor([token] if token else [])
    handler = setup_logging(settings.log_format, secrets=redactor.secrets)

    def say(text: str, code: int) -> int:
        text = redactor.redact(text)
        _error_outputs(settings, code, text, None, dry_run=dry_run)
        if settings.log_format == "json":  # stderr stays one JSON object a line
            log.error(text, extra={"event": "error", "exit_code": code})
        else:
            click.echo(f"bulk-sync: {show_path(text)}", err=True)
        return code

    try:
        _check_output_folders(settings)
        return job()
    except UsageError as exc:
        return say(f"error: {exc}", EXIT_UNUSABLE)
    except BulkSyncError as exc:
        return say(f"error: {exc}", EXIT_ABORTED)
    except KeyboardInterrupt:
        return say("interrupted", EXIT_ABORTED)
    except Exception as exc:  # a bug: say so briefly, never dump a traceback at the user
        if os.environ.get("BULK_SYNC_DEBUG"):
            raise
        return say(
            f"internal error: {type(exc).__name__}: {exc} (set BULK_SYNC_DEBUG=1 for details)",
            EXIT_ABORTED,
        )
    finally:
        logging.getLogger("bulk_sync").removeHandler(handler)


@contextlib.contextmanager
def _lock_and_state(settings: Settings, opts: dict[str, Any]) -> Iterator[Any]:
    """Hold the run lock (``--lock``, or beside ``--state``) and open the state store."""
    if opts.get("dry_run"):
        # A dry run takes no lock and records nothing, but reads the state (if any) so
        # that its report shows which pairs a real run would skip.
        if settings.state is None or not settings.state.exists():
            yield None
            return
        from bulk_sync.state import StateStore

        with StateStore.open(settings.state, scope=settings.base_url, log_run=False) as readonly:
            yield readonly
        return
    lock_path = settings.lock
    if lock_path is None and settings.state is not None:
        lock_path = settings.state.with_name(settings.state.name + ".lock")
    with contextlib.ExitStack() as stack:
        if lock_path is not None:
            from bulk_sync.lock import RunLock

            stack.enter_context(RunLock(lock_path))
        state = None
        if settings.state is not None:
            from bulk_sync.state import StateStore

            state = stack.enter_context(StateStore.open(settings.state, scope=settings.base_url))
        yield state


def _runner_hooks(settings: Settings, opts: dict[str, Any]) -> dict[str, Any]:
    return {"run_async": _run_async, "lock_and_state": _lock_and_state, "finish": _finish}


def _run_async(
    make: Callable[[asyncio.Event, EventHandler], Coroutine[Any, Any, Summary]],
    settings: Settings,
    opts: dict[str, Any],
) -> Summary:
    """Run an engine call with SIGINT/SIGTERM turned into a graceful stop, and its
    progress shown (a bar on a terminal, else a log line every 5 s)."""
    show_bar = opts.get("progress")
    if show_bar is None:
        show_bar = sys.stderr.isatty() and settings.log_format == "text" and not opts.get("quiet")
    if opts.get("quiet"):
        logging.getLogger("bulk_sync").setLevel(logging.WARNING)

    async def main() -> Summary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signame: str) -> None:
            if stop.is_set() and signame == "SIGINT":
                # A second Ctrl-C: the user will not wait. Every accepted row is already in
                # the journal (flushed after each customer), so --resume loses nothing. (A
                # repeated SIGTERM, as service managers send, keeps the graceful stop.)
                log.error(
                    "%s received again: exiting at once; the report's journal holds every "
                    "accepted row (resume with --resume REPORT)",
                    signame,
                )
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(EXIT_ABORTED)
            if not stop.is_set():
                log.warning(
                    "%s received: stopping; in-flight requests get a short grace period "
                    "(Ctrl-C again to exit at once)",
                    signame,
                )
            stop.set()

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal, sig.name)
                installed.append(sig)
        try:
            with _progress_display(bool(show_bar)) as on_event:
                return await make(stop, on_event)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    return asyncio.run(main())


def flow_text(flow: FlowState | None) -> str:
    """The flow-control part of a progress line: the API's unavailability while the
    breaker is not closed (or a probe is out), the window when it is below the ceiling, and
    the time paused so far once there is any."""
    if flow is None:
        return ""
    parts = []
    if flow.unavailable_since is not None:
        text = unavailable_text(flow.unavailable_since, flow.next_try_in)
        if flow.breaker == BREAKER_PROBING:
            text += ", probing now"
        parts.append(text)
    if flow.window < flow.ceiling:
        parts.append(f"window {flow.window}/{flow.ceiling}")
    if flow.paused_seconds >= 1:
        parts.append(f"paused {flow.paused_seconds:.0f} s")
    return "; ".join(parts)


@contextlib.contextmanager
def _progress_display(bar: bool) -> Iterator[EventHandler]:
    """An event handler that shows the run's progress; the bar (a terminal) appears when
    sending starts, and log lines print above it while it is drawn."""
    if not bar:
        last = [0.0]

        def log_line(event: Event) -> None:
            if not isinstance(event, Progress):
                return
            p = event
            if p.elapsed - last[0] >= 5.0 or p.rows_done == p.rows_total:
                last[0] = p.elapsed
                flow = flow_text(p.flow)
                log.info(
                    "progress: %d/%d rows, %d/%d customers, %d failed, %d requests, "
                    "%d retries, %.0f rows/s%s",
                    p.rows_done,
                    p.rows_total,
                    p.customers_done,
                    p.customers_total,
                    p.failed_rows,
                    p.requests,
                    p.retries,
                    p.rate,
                    f"; {flow}" if flow else "",
                    extra={
                        "event": "progress",
                        "rows_done": p.rows_done,
                        "rows_total": p.rows_total,
                        "failed_rows": p.failed_rows,
                        "requests": p.requests,
                        "retries": p.retries,
                        "throttled": p.throttled,
                        **({"flow": p.flow.to_dict()} if p.flow else {}),
                    },
                )

        yield log_line
        return

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    console = Console(stderr=True)
    display = Bar(
        BarColumn(bar_width=20),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        redirect_stderr=True,  # log lines go above the bar
    )
    task: list[Any] = []

    def update(event: Event) -> None:
        if isinstance(event, Planned):
            if not event.dry_run and event.requests and not task:
                display.start()
                task.append(display.add_task("rows", total=event.rows_to_send, detail=""))
        elif isinstance(event, Progress) and task:
            p = event
            flow = flow_text(p.flow)
            display.update(
                task[0],
                total=p.rows_total,
                completed=p.rows_done,
                detail=f"rows {p.customers_done}/{p.customers_total} customers "
                f"{p.rate:,.0f}/s {p.failed_rows} failed {p.retries} retries"
                + (f" {p.throttled} throttled" if p.throttled else "")
                + (f" | {flow}" if flow else ""),
            )
        elif isinstance(event, Finished) and task:
            display.stop()

    try:
        yield update
    finally:
        display.stop()


def _finish(summary: Summary, settings: Settings, quiet: bool) -> int:
    if settings.summary_json is not None:
        write_summary_json(settings.summary_json, summary)
    if settings.metrics_file is not None:
        write_metrics(settings.metrics_file, summary, job=settings.metrics_job)
    if settings.log_format == "json":
        log.info("run finished", extra={"event": "summary", **summary.to_dict()})
    if not quiet:
        click.echo(format_summary(summary))
    return summary.exit_code


def format_summary(s: Summary) -> str:
    command = str(s.extra.get("command", "sync"))
    head = f"{command} (dry run)" if s.dry_run and command != "sync" else command
    if s.dry_run and command == "sync":
        head = "dry run"
    lines = [f"bulk-sync {head}: {s.rows} rows, {s.customers} customers"]
    for status, n in s.counts.items():
        if n:
            lines.append(f"  {status:<9} {n:>9}")
    if not s.dry_run:
        rate = s.rows / s.elapsed if s.elapsed else 0.0
        lines.append(
            f"  requests {s.requests}, retries {s.retries}, throttled {s.throttled}; "
            f"{s.elapsed:.1f}s ({rate:,.0f} rows/s)"
        )
    flow = s.flow
    if flow is not None and (
        flow.window < flow.ceiling
        or flow.narrowed
        or s.breaker_openings
        or flow.paused_seconds >= 0.05
    ):
        # the run's widest window and how often it narrowed: the window at the very end
        # says little (in the tail, a drop clamps it to the few requests still out)
        widest = flow.widest if flow.widest is not None else flow.window
        text = f"  window up to {widest}/{flow.ceiling}"
        if flow.narrowed:
            text += f", narrowed {flow.narrowed} time" + ("s" if flow.narrowed > 1 else "")
        if s.breaker_openings:
            text += f"; API unavailable {s.breaker_openings} time" + (
                "s" if s.breaker_openings > 1 else ""
            )
        if flow.paused_seconds >= 0.05:
            text += f"; paused {flow.paused_seconds:.1f}s"
        lines.append(text)
    if s.problems:
        lines.append("Most frequent problems:")
        for kind, count, example in s.problems[:5]:
            lines.append(f"  {kind} x{count}, e.g. {example}")
    if s.failures:
        lines.append("Most frequent failures:")
        for error, count in s.failures:
            lines.append(f"  x{count}: {error}")
    if s.unconfirmed:
        lines.append("Accepted but not confirmed by the answer (ok, with a note in error):")
        for note, count in s.unconfirmed:
            lines.append(f"  x{count}: {note}")
    if s.aborted:
        lines.append(f"Aborted: {s.aborted}; rows not accepted are marked not_sent.")
    lines.append(f"Report: {s.report}")
    return "\n".join(show_path(line) for line in lines)


def main() -> None:
    cli(prog_name="bulk-sync")


if __name__ == "__main__":
    main()
