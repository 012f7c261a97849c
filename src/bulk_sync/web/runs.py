"""Runs started from the page: one at a time per data dir, in a thread of their own.

The engine is the CLI's: :func:`bulk_sync.runner.run_tables` on the tables the loader
gives (``sync``, and ``--resume`` semantics for a resume), or on
:func:`bulk_sync.runner.retry_tables` of an earlier report (``retry``). It runs on its own
event loop in a worker thread, so validating a large file never stalls the page; its
events (:mod:`bulk_sync.events`) come back to the server's loop as a snapshot that the
page's event stream sends on. ``Stop`` sets the engine's stop event: dispatching stops,
requests on the wire get the grace period, the rest is ``not_sent``.

One run at a time: the data dir's ``run.lock`` (a :class:`~bulk_sync.lock.RunLock`, so a
second server on the same data dir is refused too), plus the ``--state`` lock when a
state file is configured, exactly as the CLI takes it. A run record (``run.json``) is
written when the run starts and when it ends, so the history survives a restart; a run
still marked ``running`` when the server starts again was cut off, and the page offers
to resume it from its journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulk_sync import events
from bulk_sync.config import Settings
from bulk_sync.errors import BulkSyncError, ConfigError, LockedError, UsageError
from bulk_sync.loading import LoadOptions, load_bytes
from bulk_sync.lock import RunLock
from bulk_sync.models import Table
from bulk_sync.provenance import bytes_identity, check_resume, path_identity
from bulk_sync.report import accepted_rows, journal_path_for
from bulk_sync.runner import (
    check_base_url,
    release_report,
    resolve_report_path,
    retry_tables,
    run_tables,
)
from bulk_sync.web.store import DataDir, DraftFile, RunRecord, new_id, now_text

__all__ = ["Busy", "LiveRun", "RunManager", "RunRequest", "load_options_for"]

log = logging.getLogger("bulk_sync.web")

SHUTDOWN_WAIT = 30.0  # seconds a stopping server waits for a run to write its report


class Busy(UsageError):
    """Another run holds the data dir (or the state file)."""


@dataclass(frozen=True)
class RunRequest:
    """What to run. ``kind``: ``sync`` (``files``), ``resume`` (``files`` and the report of
    ``parent``) or ``retry`` (the failed and not-sent rows of ``parent``'s report)."""

    kind: str
    files: tuple[DraftFile, ...] = ()
    draft: str = ""
    parent: str = ""


def load_options_for(f: DraftFile, settings: Settings) -> LoadOptions:
    """How one file of a draft is read: the configured options, with this file's sheet
    and column choices."""
    columns = dict(settings.columns)
    columns.update(f.columns)
    return LoadOptions(
        encoding=settings.encoding,
        delimiter=settings.delimiter,
        sheet=f.sheet if f.is_workbook else None,
        all_sheets=f.all_sheets if f.is_workbook else False,
        wide=f.wide or (settings.wide and not f.columns),
        columns=columns,
    )


def load_draft_files(
    data: DataDir, files: Sequence[DraftFile], settings: Settings
) -> tuple[list[Table], list[dict[str, object]]]:
    """Every table of the files, read as ``sync`` reads them, named as the user named them;
    and each file's identity (name, size, SHA-256) for the report's facts."""
    tables: list[Table] = []
    identities: list[dict[str, object]] = []
    for f in files:
        raw = data.upload_path(f).read_bytes()
        identities.append(bytes_identity(f.name, raw))
        tables.extend(load_bytes(raw, f.name, load_options_for(f, settings)))
    return tables, identities


@dataclass
class LiveRun:
    """A run in progress, as the page sees it. Lives on the server's event loop."""

    record: RunRecord
    snapshot: dict[str, Any]
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    worker_loop: asyncio.AbstractEventLoop | None = None
    stop_event: asyncio.Event | None = None
    stop_requested: bool = False
    thread: threading.Thread | None = None

    def publish(self, changes: Mapping[str, Any]) -> None:
        self.snapshot = {**self.snapshot, **changes, "version": self.snapshot["version"] + 1}
        old, self.changed = self.changed, asyncio.Event()
        old.set()


class RunManager:
    """Starts, follows and stops the page's runs."""

    def __init__(
        self,
        data: DataDir,
        settings: Settings,
        *,
        token: Callable[[], str | None],
        redact: Callable[[str], str],
    ) -> None:
        self.data = data
        self.settings = settings
        self._token = token
        self.redact = redact
        self.live: LiveRun | None = None

    # -- startup -----------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Mark runs left ``running`` by a server that was stopped as ``interrupted``
        (unless another process holds the data dir: then they may be its runs)."""
        lock = RunLock(self.data.lock_path, command=["bulk-sync serve (start-up check)"])
        try:
            lock.acquire()
        except BulkSyncError:
            return []
        marked = []
        try:
            for record in self.data.runs():
                if record.status != "running":
                    continue
                message = (
                    "the server stopped while this run was sending; rows accepted before "
                    "that are in its journal: resume it to send the rest"
                )
                if not journal_path_for(self.data.report_path(record.id)).exists():
                    message = "the server stopped before this run started sending"
                self.data.save_run(
                    dataclasses.replace(
                        record, status="interrupted", finished=now_text(), message=message
                    )
                )
                marked.append(record.id)
        finally:
            lock.release()
        return marked

    # -- starting ----------------------------------------------------------------------

    def token_present(self) -> bool:
        return self._token() is not None

    def check_ready(self) -> None:
        """Raise :class:`ConfigError` when a run cannot start: no API key, an insecure URL."""
        if self._token() is None:
            raise ConfigError(
                f"the server has no API key: set the environment variable "
                f"{self.settings.token_env} where `bulk-sync serve` runs, and restart it"
            )
        check_base_url(self.settings)

    async def start(self, request: RunRequest) -> RunRecord:
        """Take the locks, write the run record and start the engine in a worker thread.
        Raises :class:`Busy` when another run holds the data dir or the state."""
        self.check_ready()
        if self.live is not None and not self.live.done.is_set():
            started = self.live.record.started.replace("T", " ").replace("Z", " UTC")
            raise Busy(
                f"another run is in progress (started {started}). Only one run at a time: "
                "wait for it to finish, or stop it"
            )
        locks = self._take_locks()
        try:
            record = self._new_record(request)
            report = resolve_report_path(self.data.report_path(record.id))
        except BaseException:
            for lock in locks:
                lock.release()
            raise
        live = LiveRun(record, _initial_snapshot(record))
        self.live = live
        loop = asyncio.get_running_loop()
        ready = threading.Event()
        thread = threading.Thread(
            target=self._thread_main,
            args=(live, request, report, locks, loop, ready),
            name=f"bulk-sync-run-{record.id}",
            daemon=True,
        )
        live.thread = thread
        thread.start()
        await asyncio.to_thread(ready.wait, 10.0)
        return record

    def _take_locks(self) -> list[RunLock]:
        locks: list[RunLock] = []
        paths = [self.data.lock_path]
        state_lock = self.settings.lock
        if state_lock is None and self.settings.state is not None:
            state_lock = self.settings.state.with_name(self.settings.state.name + ".lock")
        if state_lock is not None:
            paths.append(state_lock)
        try:
            for path in paths:
                lock = RunLock(path, command=["bulk-sync serve", f"data dir {self.data.root}"])
                lock.acquire()
                locks.append(lock)
        except LockedError as exc:
            for lock in locks:
                lock.release()
            raise Busy(
                "another run is in progress (" + str(exc) + "). Only one run at a time: "
                "wait for it to finish, or stop it"
            ) from None
        except BaseException:
            for lock in locks:
                lock.release()
            raise
        return locks

    def _new_record(self, request: RunRequest) -> RunRecord:
        files = tuple(f.name for f in request.files)
        if request.kind == "retry":
            parent = self.data.run(request.parent)
            files = parent.files if parent is not None else ()
        record = RunRecord(
            id=new_id("r"),
            kind=request.kind,
            started=now_text(),
            files=files,
            draft=request.draft,
            parent=request.parent,
            base_url=self.settings.base_url,
            pid=os.getpid(),
        )
        self.data.save_run(record)
        return record

    # -- the worker thread -------------------------------------------------------------

    def _thread_main(
        self,
        live: LiveRun,
        request: RunRequest,
        report: Path,
        locks: list[RunLock],
        loop: asyncio.AbstractEventLoop,
        ready: threading.Event,
    ) -> None:
        outcome: dict[str, Any] = {}
        try:
            outcome = asyncio.run(self._engine(live, request, report, loop, ready))
        except BaseException as exc:
            ready.set()
            outcome = {"error": self._failure_text(exc)}
            release_report(report)
        finally:
            for lock in locks:
                lock.release()
            with contextlib.suppress(RuntimeError):  # the server's loop is closed
                loop.call_soon_threadsafe(self._finished, live, outcome)

    async def _engine(
        self,
        live: LiveRun,
        request: RunRequest,
        report: Path,
        loop: asyncio.AbstractEventLoop,
        ready: threading.Event,
    ) -> dict[str, Any]:
        live.worker_loop = asyncio.get_running_loop()
        live.stop_event = asyncio.Event()
        if live.stop_requested:
            live.stop_event.set()
        ready.set()
        publisher = _Publisher(live, loop, self.redact)
        settings = self.settings
        with self._state() as state:
            resume: Path | None = None
            if request.kind == "retry":
                parent_report = self.data.report_path(request.parent)
                tables = await asyncio.to_thread(retry_tables, parent_report)
                inputs = [parent_report.name]
                identities = [await asyncio.to_thread(path_identity, parent_report)]
            else:
                tables, identities = await asyncio.to_thread(
                    load_draft_files, self.data, request.files, settings
                )
                inputs = [f.name for f in request.files]
                if request.kind == "resume":
                    resume = self.data.report_path(request.parent)
                    # as `sync --resume` checks it: made against this API?
                    if await asyncio.to_thread(accepted_rows, resume):
                        check_resume(resume, settings.base_url, identities, any_url=False)
            publisher.loaded(tables)
            summary = await run_tables(
                tables,
                settings,
                report=report,
                token=self._token(),
                resume=resume,
                state=state,
                stop=live.stop_event,
                on_event=publisher,
                inputs=inputs,
                input_files=identities,
            )
        return {"summary": summary.to_dict(), "exit_code": summary.exit_code}

    @contextlib.contextmanager
    def _state(self) -> Iterator[Any]:
        if self.settings.state is None:
            yield None
            return
        from bulk_sync.state import StateStore

        with StateStore.open(self.settings.state, scope=self.settings.base_url) as state:
            yield state

    def _failure_text(self, exc: BaseException) -> str:
        if isinstance(exc, BulkSyncError):
            return self.redact(str(exc))
        log.exception("run failed")
        return self.redact(f"internal error: {type(exc).__name__}: {exc}")

    # -- back on the server's loop -----------------------------------------------------

    def _finished(self, live: LiveRun, outcome: Mapping[str, Any]) -> None:
        record = live.record
        if "error" in outcome:
            record = dataclasses.replace(
                record, status="failed", finished=now_text(), message=outcome["error"]
            )
            live.publish({"state": "failed", "message": outcome["error"]})
        else:
            summary = outcome["summary"]
            record = dataclasses.replace(
                record,
                status="finished",
                finished=now_text(),
                exit_code=outcome["exit_code"],
                counts=summary["counts"],
                summary=summary,
                message=self.redact(summary.get("aborted") or ""),
            )
            live.publish({"state": "finished", "exit_code": outcome["exit_code"]})
        self.data.save_run(record)
        live.record = record
        live.done.set()

    # -- stopping ----------------------------------------------------------------------

    def stop(self, run_id: str) -> bool:
        """Ask the run to stop (graceful). False when it is not running."""
        live = self.live
        if live is None or live.record.id != run_id or live.done.is_set():
            return False
        live.stop_requested = True
        if live.worker_loop is not None and live.stop_event is not None:
            with contextlib.suppress(RuntimeError):
                live.worker_loop.call_soon_threadsafe(live.stop_event.set)
        live.publish({"state": "stopping"})
        return True

    async def shutdown(self) -> None:
        """Stop the run in progress (if any) and wait for its report."""
        live = self.live
        if live is None or live.done.is_set():
            return
        self.stop(live.record.id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(live.done.wait(), SHUTDOWN_WAIT)

    def get_live(self, run_id: str) -> LiveRun | None:
        live = self.live
        return live if live is not None and live.record.id == run_id else None


def _initial_snapshot(record: RunRecord) -> dict[str, Any]:
    return {
        "version": 0,
        "run": record.id,
        "state": "loading",
        "rows_total": 0,
        "rows_done": 0,
        "ok": 0,
        "failed": 0,
        "customers_total": 0,
        "customers_done": 0,
        "requests": 0,
        "retries": 0,
        "throttled": 0,
        "elapsed": 0.0,
        "rate": 0.0,
        "eta": None,
        "flow": None,
        "breaker": events.BREAKER_CLOSED,
        "message": "",
        "started_at": time.time(),
    }


class _Publisher:
    """The engine's ``on_event``: runs in the worker thread, hands snapshots to the loop."""

    def __init__(
        self, live: LiveRun, loop: asyncio.AbstractEventLoop, redact: Callable[[str], str]
    ) -> None:
        self.live = live
        self.loop = loop
        self.redact = redact

    def _send(self, changes: dict[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.live.publish, changes)

    def loaded(self, tables: Sequence[Table]) -> None:
        self._send({"state": "checking", "rows_read": sum(len(t) for t in tables)})

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.Planned):
            self._send(
                {
                    "state": "sending" if not self.live.stop_requested else "stopping",
                    "customers_total": event.customers,
                    "requests_planned": event.requests,
                    "invalid_rows": event.invalid_rows,
                    "skipped_rows": event.skipped_rows,
                    "rows_to_send": event.pairs,
                    "rows_total": event.rows_to_send,  # "0 of 163 rows done", not "0 of 0"
                }
            )
        elif isinstance(event, events.Progress):
            flow = event.flow.to_dict() if event.flow is not None else None
            self._send(
                {
                    "rows_total": event.rows_total,
                    "rows_done": event.rows_done,
                    "ok": event.ok_rows,
                    "failed": event.failed_rows,
                    "customers_total": event.customers_total,
                    "customers_done": event.customers_done,
                    "requests": event.requests,
                    "retries": event.retries,
                    "throttled": event.throttled,
                    "elapsed": round(event.elapsed, 1),
                    "rate": round(event.rate, 1),
                    "eta": None if event.eta is None else round(event.eta),
                    "flow": flow,
                    "breaker": flow["breaker"] if flow else events.BREAKER_CLOSED,
                }
            )
        elif isinstance(event, events.Throttled):
            self._send(
                {
                    "last_throttle": {
                        "status": event.status,
                        "retry_after": event.retry_after,
                        "at": time.time(),
                    }
                }
            )
        elif isinstance(event, events.BreakerChanged):
            self._send(
                {
                    "breaker": event.state,
                    "unavailable_since": event.unavailable_since,
                    "next_try_in": event.next_try_in,
                    "breaker_reason": self.redact(event.reason),
                }
            )
        elif isinstance(event, events.Finished):
            self._send({"state": "writing report"})
