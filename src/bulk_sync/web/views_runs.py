"""Pages of the runs: start, follow (event stream), stop, resume, retry, history, reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from aiohttp import web

from bulk_sync.errors import UsageError
from bulk_sync.models import Status
from bulk_sync.report import read_meta, read_report, write_report
from bulk_sync.web.base import DATA, RUNS, SECRETS, display_url, not_ready, render
from bulk_sync.web.runs import Busy, RunRequest
from bulk_sync.web.security import apply_headers
from bulk_sync.web.store import RunRecord

log = logging.getLogger("bulk_sync.web")


async def start_run(request: web.Request, job: RunRequest, back: str) -> web.StreamResponse:
    try:
        record = await request.app[RUNS].start(job)
    except (Busy, UsageError) as exc:
        message = request.app[SECRETS].redact(str(exc))
        return render(
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
    return render(request, "runs.html", {"runs": runs, "live": request.app[RUNS].live})


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
    return render(
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
    return render(
        request,
        "confirm.html",
        {
            "kind": action,
            "run": record,
            "customers": customers,
            "values": rows,
            "requests": None,
            "not_sent": 0,
            "problem": not_ready(request),
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
    return await start_run(request, job, f"/runs/{record.id}")


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
