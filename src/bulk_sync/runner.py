"""Wires the stages: load, validate, group, upload, report. What the CLI and library users call.

    >>> from bulk_sync import sync
    >>> summary = sync(["customers.csv"], report="out.csv", dry_run=True)  # doctest: +SKIP
    >>> summary.exit_code, summary.counts["valid"]  # doctest: +SKIP

Whatever happens after the inputs are loaded (API outage, rejected credentials,
SIGTERM, a bug), the report is written with one line per input row: rows not
accepted are ``not_sent``. While uploading, each finished customer's rows are
appended to a journal beside the report, so even a ``kill -9`` leaves a record that
``--resume`` reads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bulk_sync.config import Settings
from bulk_sync.customers import read_customer_file
from bulk_sync.errors import ConfigError, InputError, ReportExistsError, UsageError
from bulk_sync.events import (
    CustomerDone,
    EventHandler,
    Finished,
    FlowState,
    Loaded,
    Planned,
    Progress,
    emitter,
)
from bulk_sync.files import lexists, show_path
from bulk_sync.flow import Breaker
from bulk_sync.frames import Frame, frame_name, frame_table, is_frame
from bulk_sync.grouping import Maps, across_ids, group, split
from bulk_sync.ledger import Ledger
from bulk_sync.loading import LoadOptions, load, load_bytes
from bulk_sync.models import Pair, Problem, Rows, Status, Table
from bulk_sync.provenance import INPUT_FILES, bytes_identity, check_resume, path_identity
from bulk_sync.redaction import Redactor
from bulk_sync.report import (
    AcceptedKeys,
    Journal,
    accepted_keys,
    cut_note,
    journal_path_for,
    read_report,
    twin_path_for,
    write_report,
)
from bulk_sync.shard import Shard as Shard
from bulk_sync.shard import only_shard
from bulk_sync.shard import shard_of as shard_of
from bulk_sync.uploader import (
    Job,
    JobResult,
    RetryPolicy,
    Sender,
    Sleep,
    Uploader,
    UploadStats,
)
from bulk_sync.validation import Limits, validate

log = logging.getLogger(__name__)

PROGRESS_TICK = 1.0  # seconds: a Progress event at least this often while sending
SKIP_RESUMED = "already sent (resume)"
SKIP_UNCHANGED = "already synced; unchanged since the last run (state)"
NOT_SENT_YET = "not sent: the run stopped before this row was sent"


@dataclass(frozen=True, slots=True)
class InputBytes:
    """An input file its caller has already read, given to :func:`sync_async` instead of a
    path: the inbox reads each file once, through a descriptor opened with
    ``O_NOFOLLOW``, so what is loaded is exactly the file it checked."""

    name: str  # the file's path or name: its extension tells the kind of file
    data: bytes

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Summary:
    """What a run did. ``exit_code`` follows DESIGN.md section 2."""

    counts: dict[str, int]
    rows: int
    customers: int
    requests: int
    retries: int
    elapsed: float
    report: Path
    exit_code: int
    dry_run: bool
    aborted: str = ""
    problems: tuple[tuple[str, int, str], ...] = ()  # (kind, count, first located message)
    throttled: int = 0
    inputs: tuple[str, ...] = ()
    failures: tuple[tuple[str, int], ...] = ()  # (error of failed rows, count), most first
    # (note of ok rows the API's answer did not confirm, count), most first
    unconfirmed: tuple[tuple[str, int], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    flow: FlowState | None = None  # flow control when sending ended (None: nothing sent)
    breaker_openings: int = 0  # times the API became unavailable during the run

    def to_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "dry_run": self.dry_run,
            "aborted": self.aborted or None,
            "rows": self.rows,
            "customers": self.customers,
            "counts": dict(self.counts),
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "elapsed_seconds": round(self.elapsed, 3),
            "rows_per_second": round(self.rows / self.elapsed, 1) if self.elapsed else None,
            "report": str(self.report),
            "inputs": list(self.inputs),
            "problems": [{"kind": k, "count": c, "example": e} for k, c, e in self.problems],
            "failures": [{"error": e, "count": c} for e, c in self.failures],
            "unconfirmed": [{"note": e, "count": c} for e, c in self.unconfirmed],
            "flow": self.flow.to_dict() if self.flow is not None else None,
            "breaker_openings": self.breaker_openings,
            **self.extra,
        }


ProgressCallback = Callable[[Progress], None]
"""The older, narrower form of ``on_event``: called with :class:`Progress` events only."""


def _handlers(on_event: EventHandler | None, on_progress: ProgressCallback | None) -> EventHandler:
    """One safe handler for ``on_event`` and the ``Progress`` events of ``on_progress``."""
    if on_progress is None:
        return emitter(on_event)
    progress_only = on_progress

    def progress(event: object) -> None:
        if isinstance(event, Progress):
            progress_only(event)

    return emitter(on_event, progress)


# -- report paths ----------------------------------------------------------------------


def default_report_path(now: datetime | None = None, directory: Path | None = None) -> Path:
    """``bulk-sync-report-<UTC time>.csv`` in ``directory`` (default: the current folder),
    reserved (created empty) so that two runs started in the same second never share it."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = (directory or Path.cwd()) / f"bulk-sync-report-{stamp}.csv"
    return _first_free(base)


def _first_free(base: Path) -> Path:
    """``base``, else ``<stem>-1<suffix>``, ``-2``... : the first name that is free, with
    its journal's name free too (a dangling symlink counts as taken), reserved."""
    candidate, n = base, 1
    while lexists(journal_path_for(candidate)) or not _reserve(candidate):
        candidate = base.with_name(f"{base.stem}-{n}{base.suffix}")
        n += 1
    return candidate


def resolve_report_path(
    report: Path | None,
    *,
    resume: Path | None = None,
    overwrite: bool = False,
    inputs: Sequence[object] = (),
) -> Path:
    """Where the report goes. An existing file is never silently replaced.

    ``{timestamp}`` in the name is replaced by the UTC time, for cron jobs. Replacing an
    existing report is allowed with ``overwrite``, or when it is the report being resumed
    (the new report carries everything the old one said was done). The path is reserved
    at once (created empty, atomically), so a second run given the same path while this
    one still loads is refused rather than overwriting it at the end; callers release an
    unused reservation with :func:`release_report`.

    A report is never written over one of the ``inputs`` (file paths; other inputs are
    ignored), not even with ``overwrite``: ``--report customers.csv`` for
    ``customers-report.csv`` would otherwise replace the data with its report.
    """
    if report is None:
        return default_report_path()
    stamped = "{timestamp}" in str(report)
    if stamped:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        report = Path(str(report).replace("{timestamp}", stamp))
    if report.suffix.lower() not in (".csv", ".xlsx"):
        raise UsageError(f"--report {report}: the report must end in .csv or .xlsx")
    if not report.parent.exists():
        raise UsageError(f"--report {report}: folder {report.parent} does not exist")
    for source in inputs:
        if isinstance(source, str | os.PathLike) and _same_file(report, Path(source)):
            raise UsageError(
                f"--report {report} is an input file; the report would replace it: choose "
                "another --report path"
            )
    if stamped:
        # A name made for this run: one already taken (a run started in the same
        # second, or a file or link someone planted at a name they could predict) is
        # never used; the next free one is, as for the default name.
        return _first_free(report)
    journal = journal_path_for(report)
    if os.path.islink(journal):
        raise UsageError(
            f"{journal} is a symbolic link; bulk-sync never writes a journal through a link "
            "(someone may have planted it to make the run write into another file). Remove "
            "it, or choose another --report path"
        )
    # Resuming this very report (or its journal) may replace it: the new report carries
    # everything the old one, or the journal, said was done.
    same_as_resume = _same_file(report, resume) or _same_file(journal, resume)
    if journal.exists() and not same_as_resume:
        raise ReportExistsError(
            f"{journal} exists: an earlier run with this report path did not finish. Resume it "
            f"with --resume {journal}, or remove the journal"
        )
    if not _reserve(report) and not overwrite and not same_as_resume:
        empty = _size(report) == 0
        raise ReportExistsError(
            f"report {report} already exists"
            + (
                " (empty: another run is using it, or one was stopped before writing it)"
                if empty
                else ""
            )
            + "; choose another --report path (or pass --overwrite to replace it)"
        )
    return report


def release_report(path: Path) -> None:
    """Remove a reservation that never became a report (an empty file we created)."""
    if _size(path) == 0:
        path.unlink(missing_ok=True)


def _reserve(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _same_file(a: Path, b: Path | None) -> bool:
    if b is None:
        return False
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)  # (hard links too)
    except OSError:
        return False


# -- the run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What a run will send, after validation, grouping, resume, state and sharding."""

    ledger: Ledger
    maps: Maps
    problems: tuple[Problem, ...]
    customers: int


def plan(
    tables: Sequence[Table],
    settings: Settings,
    *,
    resume: Path | AcceptedKeys | None = None,
    shard: Shard | None = None,
    state: Any = None,
    full: bool = False,
) -> Plan:
    if shard is not None:  # a no-op for tables the loader already cut to the shard
        tables = [only_shard(t, shard) for t in tables]
    rows = Rows.of(tables)
    ledger = Ledger(rows)
    limits = Limits(
        max_customer_id_length=settings.max_customer_id_length,
        max_attribute_length=settings.max_attribute_length,
        max_value_length=settings.max_value_length,
    )
    skips = {
        offset + local: note
        for table, offset in zip(rows.tables, rows.offsets, strict=True)
        for local, note in table.skips
    }
    problems = [p for p in validate(rows, limits) if p.index not in skips]
    invalid = np.zeros(len(rows), dtype=np.uint8)
    invalid[[p.index for p in problems]] = 1
    invalid[list(skips)] = 1  # nothing to group or send
    grouped = group(rows, invalid, settings.on_conflict)
    del invalid
    if settings.customer_map is not None:
        directory = read_customer_file(settings.customer_map, "--customer-map")
        grouped = across_ids(rows, grouped, directory.gid_of, settings.on_conflict)
    problems.extend(grouped.invalid)
    problems.sort(key=lambda p: p.index)
    for p in problems:
        # The report line already says file, sheet and row; the error adds the column.
        ledger.add_error(p.index, f"{p.message} (column {p.column!r})" if p.column else p.message)
    ledger.mark([p.index for p in problems], Status.INVALID, error=None)
    for i, note in (*grouped.superseded.items(), *skips.items()):
        ledger.set(i, Status.SKIPPED, note)

    maps = grouped.maps
    if resume is not None:
        # 16 bytes a row accepted, whatever the report's size (read once by sync_async)
        keys = resume if isinstance(resume, AcceptedKeys) else accepted_keys(resume)

        def resumed(items: Sequence[tuple[str, Pair]]) -> Any:
            return keys.contains([(cid, p.attribute, p.value) for cid, p in items])

        maps = _drop_pairs(maps, ledger, resumed, SKIP_RESUMED)
    if state is not None and not full:

        def unchanged(items: Sequence[tuple[str, Pair]]) -> list[bool]:
            return [state.is_synced(cid, p) for cid, p in items]

        maps = _drop_pairs(maps, ledger, unchanged, SKIP_UNCHANGED)
    return Plan(ledger, maps, tuple(problems), len(maps))


def _drop_pairs(
    maps: Maps,
    ledger: Ledger,
    done: Callable[[Sequence[tuple[str, Pair]]], Sequence[bool]],
    note: str,
) -> Maps:
    """``maps`` without the pairs ``done`` says are done (asked a batch of maps at a
    time); their rows become ``skipped``."""
    keep = np.ones(maps.pair_count, dtype=np.bool_)
    dropped: list[int] = []
    k = 0
    for batch in maps.batches():
        items = [(m.customer_id, p) for m in batch for p in m.pairs]
        for (_, p), is_done in zip(items, done(items), strict=True):
            if is_done:
                keep[k] = False
                dropped.extend(p.indices)
            k += 1
    ledger.mark(dropped, Status.SKIPPED, note)
    return maps.keep_pairs(keep)


class _Jobs:
    """The requests of a plan, made as the uploader takes them, a batch of maps at a time:
    only the customers in flight exist as Python values, whatever the size of the input.
    ``left`` counts, per customer in flight, its requests not finished yet."""

    def __init__(self, maps: Maps, max_pairs: int | None) -> None:
        self.maps = maps
        self.max_pairs = max_pairs
        self.left: dict[str, int] = {}

    def __len__(self) -> int:
        return _requests(self.maps, self.max_pairs)

    def __iter__(self) -> Iterator[Job]:
        for batch in self.maps.batches():
            for m in batch:
                parts = split(m, self.max_pairs)
                self.left[m.customer_id] = len(parts)
                for part in parts:
                    yield Job(part.customer_id, part.pairs)


def _requests(maps: Maps, max_pairs: int | None) -> int:
    """Calls a sync of ``maps`` makes at least (one per map, or per chunk of a split one)."""
    if max_pairs is None:
        return len(maps)
    sizes = np.diff(maps.bounds)
    return int(((sizes + max_pairs - 1) // max_pairs).sum())


def load_options(settings: Settings, shard: Shard | None = None) -> LoadOptions:
    """How to read the inputs; with ``shard``, only that shard's rows are kept."""
    return LoadOptions(
        encoding=settings.encoding,
        delimiter=settings.delimiter,
        sheet=settings.sheet,
        all_sheets=settings.all_sheets,
        wide=settings.wide,
        columns=dict(settings.columns),
        cells=settings.cells,
        shard=shard,
    )


async def run_tables(
    tables: Sequence[Table],
    settings: Settings,
    *,
    report: Path,
    token: str | None,
    dry_run: bool = False,
    resume: Path | AcceptedKeys | None = None,
    shard: Shard | None = None,
    state: Any = None,
    full: bool = False,
    sender: Sender | None = None,
    stop: asyncio.Event | None = None,
    on_progress: ProgressCallback | None = None,
    on_event: EventHandler | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep | None = None,
    inputs: Sequence[str] = (),
    input_files: Sequence[Mapping[str, object]] = (),
) -> Summary:
    """Validate, group, upload (unless ``dry_run``) and report tables already loaded.

    ``on_event`` follows the run (:mod:`bulk_sync.events`); ``on_progress`` is the older
    form that gets the :class:`Progress` events only. Setting ``stop`` stops the run."""
    emit = _handlers(on_event, on_progress)
    started = clock()
    the_plan = plan(tables, settings, resume=resume, shard=shard, state=state, full=full)
    ledger = the_plan.ledger
    pairs = the_plan.maps.pair_count
    log.info(
        "%d customers, %d attributes to %s; %d rows invalid",
        the_plan.customers,
        pairs,
        "check (dry run)" if dry_run else "send",
        len({p.index for p in the_plan.problems}),
        extra={"event": "planned"},
    )
    counts_before = ledger.counts()
    emit(
        Planned(
            rows=sum(counts_before.values()),
            customers=the_plan.customers,
            requests=_requests(the_plan.maps, settings.max_attributes_per_request),
            pairs=pairs,
            invalid_rows=counts_before["invalid"],
            skipped_rows=counts_before["skipped"],
            dry_run=dry_run,
            base_url=settings.base_url,
        )
    )
    stats = UploadStats()
    if not dry_run and len(the_plan.maps):
        if sender is None and token is None:
            raise ConfigError(
                f"no API key: set the environment variable {settings.token_env} "
                "(or run with --dry-run)"
            )
        stats = await _upload(
            the_plan,
            settings,
            report=report,
            token=token,
            sender=sender,
            stop=stop,
            emit=emit,
            clock=clock,
            sleep=sleep,
            started=started,
            state=state,
            inputs=inputs,
            input_files=input_files,
        )
    else:
        facts: dict[str, object] = {
            "mode": "dry run" if dry_run else "sync",
            "inputs": inputs,
            "base_url": settings.base_url,
            INPUT_FILES: list(input_files),
        }
        _finish(ledger, report, None, facts)
    elapsed = clock() - started
    counts = ledger.counts()
    rows_in_report = sum(counts.values())
    if stats.halted:
        code = 3
    elif counts["invalid"] or counts["failed"] or counts["not_sent"]:
        code = 1
    else:
        code = 0
    kinds = Counter(p.kind for p in the_plan.problems)
    first: dict[str, str] = {}
    for p in the_plan.problems:
        first.setdefault(p.kind, p.located())
    summary = Summary(
        counts=counts,
        rows=rows_in_report,
        customers=ledger.customers(),
        requests=stats.requests,
        retries=stats.retries,
        elapsed=elapsed,
        report=report,
        exit_code=code,
        dry_run=dry_run,
        aborted=stats.halted,
        problems=tuple((k, c, first[k]) for k, c in kinds.most_common()),
        throttled=stats.throttled,
        inputs=tuple(inputs),
        failures=ledger.top_errors(Status.FAILED),
        unconfirmed=tuple((e, c) for e, c in ledger.top_errors(Status.OK, most=6) if e)[:5],
        flow=stats.flow,
        breaker_openings=stats.breaker_openings,
    )
    emit(Finished(summary))
    return summary


def _finish(
    ledger: Ledger,
    report: Path,
    journal: Journal | None,
    facts: dict[str, object],
) -> None:
    """Write the report (with a summary of counts and ``facts``) and drop the journal."""
    counts = ledger.counts()
    summary: dict[str, object] = {
        "written": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **facts,
        "rows": sum(counts.values()),
        **{f"rows {status}": n for status, n in counts.items()},
    }
    cut = write_report(report, ledger.lines(), summary=summary)
    if cut:
        twin = twin_path_for(report)
        write_report(twin, ledger.lines(), summary=summary)
        log.warning(
            "%d text(s) were longer than an Excel cell holds (32,767 characters): %s shows "
            "them cut, with a note; the CSV report %s holds them whole (use it for retry)",
            cut,
            report,
            twin,
            extra={"event": "report_cut", "cells": cut, "twin": str(twin)},
        )
    if journal is not None:
        journal.close()
        journal.path.unlink(missing_ok=True)


async def _upload(
    the_plan: Plan,
    settings: Settings,
    *,
    report: Path,
    token: str | None,
    sender: Sender | None,
    stop: asyncio.Event | None,
    emit: EventHandler,
    clock: Callable[[], float],
    sleep: Sleep | None,
    started: float,
    state: Any,
    inputs: Sequence[str],
    input_files: Sequence[Mapping[str, object]],
) -> UploadStats:
    ledger = the_plan.ledger
    maps = the_plan.maps
    rows = ledger.rows
    planned = maps.row_indices()
    ledger.mark(planned, Status.NOT_SENT, NOT_SENT_YET)
    rows_total = len(planned)
    del planned
    customers_total = len(maps)
    jobs = _Jobs(maps, settings.max_attributes_per_request)
    jobs_left = jobs.left

    journal_path = journal_path_for(report)
    journal = Journal.open(
        journal_path,
        {
            "report": str(report),
            "pid": os.getpid(),
            "base_url": settings.base_url,
            INPUT_FILES: list(input_files),
        },
    )
    resumed = ledger.where(Status.SKIPPED, SKIP_RESUMED)
    for start in range(0, len(resumed), 65_536):
        journal.append(ledger.lines_at(resumed[start : start + 65_536]))
    del resumed

    done_rows = 0
    done_customers = 0
    partly_unsent: set[str] = set()  # split customers with a request that ended not_sent
    failed_rows = 0
    ok_rows = 0
    uploader: Uploader | None = None
    last_progress = 0.0

    def progress(now: float) -> Progress:
        nonlocal last_progress
        last_progress = now
        stats = uploader.stats if uploader else UploadStats()
        return Progress(
            rows_total,
            done_rows,
            customers_total,
            done_customers,
            failed_rows,
            stats.requests,
            stats.retries,
            now - started,
            ok_rows=ok_rows,
            throttled=stats.throttled,
            flow=uploader.flow_state() if uploader else None,
        )

    # The client redacts what the server says; this second pass covers any sender. Texts
    # repeat (every pair of a job drained after a stop shares one), so each distinct text
    # is redacted once: a stop with millions of rows left must not take minutes.
    redact = functools.lru_cache(maxsize=4096)(Redactor([token]))

    def emit_progress() -> None:
        emit(progress(clock()))

    def on_result(result: JobResult) -> None:
        nonlocal done_rows, done_customers, failed_rows, ok_rows
        lines = []
        accepted: list[tuple[str, str]] = []
        outcomes: list[tuple[int, Status]] = []
        cid = result.job.customer_id
        for pair, outcome in zip(result.job.pairs, result.outcomes, strict=True):
            error = redact(outcome.error)
            # A row never sent (drained after a stop) is not journaled: the journal holds
            # the rows that finished, and --resume needs only those accepted.
            journaled = outcome.status is not Status.NOT_SENT or outcome.attempts > 0
            for i in pair.indices:
                ledger.set(i, outcome.status, error, outcome.http_status, outcome.attempts)
                if journaled:
                    table, local = rows.locate(i)
                    # The pair's texts are the row's own (rows of one pair hold equal texts).
                    lines.append(ledger.line_of(i, table, local, cid, pair.attribute, pair.value))
                outcomes.append((i, outcome.status))
                if outcome.status is not Status.NOT_SENT:  # progress counts what was done
                    done_rows += 1
                if outcome.status is Status.FAILED:
                    failed_rows += 1
                elif outcome.status is Status.OK:
                    ok_rows += 1
            # The state records a pair only when the API's answer shows the value sent:
            # one that shows another value (a concurrent writer, a normalization) is
            # sent again next time rather than wrongly taken as synced.
            if outcome.status is Status.OK and outcome.confirmed == pair.value:
                accepted.append((pair.attribute, pair.value))
        journal.append(lines)
        if state is not None and accepted:
            state.record(result.job.customer_id, accepted)
        # A customer is done when all its requests are, and none of its rows ended
        # not_sent: after a stop, the customers never sent are not counted as done.
        sent = all(o.status is not Status.NOT_SENT for o in result.outcomes)
        left = jobs_left[cid] - 1
        if left:
            jobs_left[cid] = left
            if not sent:
                partly_unsent.add(cid)
        else:
            del jobs_left[cid]
            if sent and cid not in partly_unsent:
                done_customers += 1
            partly_unsent.discard(cid)
        emit(CustomerDone(result.job.customer_id, tuple(outcomes)))
        now = clock()
        if now - last_progress >= 0.1 or done_rows == rows_total:
            emit(progress(now))

    try:
        client_cm = None
        if sender is None:
            warn_if_insecure(settings)
            client_cm = _make_client(settings, token)
            sender = await client_cm.__aenter__()
        try:
            uploader = Uploader(
                sender,
                concurrency=settings.concurrency,
                max_outage=settings.max_outage,
                breaker=Breaker(
                    threshold=settings.breaker_threshold,
                    first_probe=settings.probe_interval,
                    max_probe=settings.probe_interval_max,
                ),
                rate=settings.rate,
                retry=RetryPolicy(
                    max_attempts=settings.max_attempts,
                    initial=settings.backoff_initial,
                    maximum=settings.backoff_max,
                    deadline=settings.deadline,
                ),
                grace_period=settings.grace_period,
                sleep=sleep or asyncio.sleep,
                on_event=emit,
            )
            ticker = asyncio.create_task(_tick(lambda: clock() - last_progress, emit_progress))
            try:
                return await uploader.run(jobs, on_result, stop)
            finally:
                ticker.cancel()
                if done_rows != rows_total:  # else the last result just said so
                    emit(progress(clock()))
        finally:
            if client_cm is not None:
                await client_cm.__aexit__(None, None, None)
    finally:
        if state is not None:
            state.flush()
        stats = uploader.stats if uploader is not None else UploadStats()
        facts: dict[str, object] = {
            "mode": "sync",
            "inputs": list(inputs),
            "base_url": settings.base_url,
            INPUT_FILES: list(input_files),
            "requests": stats.requests,
            "retries": stats.retries,
            "stopped early": stats.halted or "no",
        }
        _finish(ledger, report, journal, facts)


def warn_if_insecure(settings: Settings) -> None:
    """Say loudly, on every run that sends, that certificates are not checked."""
    if settings.insecure_skip_tls_verify:
        log.warning(
            "INSECURE: TLS certificate checks are OFF (insecure_skip_tls_verify: true in the "
            "config): anyone between this machine and %s can pose as the API and take the "
            "API key. Never use this in production; trust a private CA with ca_bundle instead",
            settings.base_url,
            extra={"event": "insecure_tls"},
        )


async def _tick(quiet_for: Callable[[], float], emit_progress: Callable[[], None]) -> None:
    """A ``Progress`` event at least every second while sending, even when no row
    finishes (an outage, a long pause): the bar's "next try in 8 s" keeps counting down."""
    while True:
        await asyncio.sleep(PROGRESS_TICK)
        if quiet_for() >= PROGRESS_TICK:
            emit_progress()


def _make_client(settings: Settings, token: str | None) -> Any:
    from bulk_sync.client import Client

    verify: bool | str = not settings.insecure_skip_tls_verify
    if settings.ca_bundle is not None:
        verify = str(settings.ca_bundle)
    return Client(
        settings.base_url,
        token or "",
        timeout=settings.timeout,
        connect_timeout=settings.connect_timeout,
        max_connections=settings.ceiling,
        transport=settings.transport,
        verify=verify,
        allow_insecure_http=settings.allow_insecure_http,
    )


def check_base_url(settings: Settings, token: str | None = None) -> None:
    """Refuse an insecure base URL, and a key that cannot be sent (a line break or other
    character a header cannot carry), before any file is read or written."""
    _make_client(settings, token or "x")  # the constructor validates; nothing is opened


# -- library entry points ----------------------------------------------------------------


Inputs = Any
"""What :func:`sync_async` takes: a path, an :class:`InputBytes`, an in-memory table
(:mod:`bulk_sync.frames`), or a sequence of them."""


def _inputs(inputs: Inputs) -> list[Path | InputBytes | Frame]:
    """Every input as a Path, InputBytes or named Frame, in order."""
    if is_frame(inputs) or isinstance(inputs, str | Path | InputBytes):
        inputs = [inputs]
    count = sum(1 for x in inputs if is_frame(x))
    out: list[Path | InputBytes | Frame] = []
    position = 0
    for x in inputs:
        if is_frame(x):
            position += 1
            name = frame_name(x, position, count)
            out.append(
                dataclasses.replace(x, name=name) if isinstance(x, Frame) else Frame(x, name)
            )
        elif isinstance(x, InputBytes):
            out.append(x)
        else:
            out.append(Path(x))
    return out


def _check_paths(paths: Sequence[Path | InputBytes | Frame]) -> None:
    """The cheapest check first: a typo in a file name names the file."""
    for p in paths:
        if not isinstance(p, Path):
            continue
        if not p.exists():
            raise InputError("file not found", source=str(p))
        if p.is_dir():
            raise InputError("is a folder, not a file", source=str(p))


def _identity(p: Path | InputBytes | Frame) -> dict[str, object]:
    if isinstance(p, InputBytes):
        return bytes_identity(Path(p.name).name, p.data)
    if isinstance(p, Frame):
        return {"file": p.name, "bytes": None, "sha256": None}
    return path_identity(p)


def _load(
    paths: Sequence[Path | InputBytes | Frame], settings: Settings, shard: Shard | None
) -> list[Table]:
    # With a shard, the CSV reader drops the other shards' rows as it reads.
    options = load_options(settings, shard)
    tables: list[Table] = []
    for p in paths:
        if isinstance(p, Frame):
            tables.append(frame_table(p, p.name or "frame", options))
        elif isinstance(p, InputBytes):
            tables.extend(load_bytes(p.data, p.name, options))
        else:
            tables.extend(load([p], options))
    return tables


def load_inputs(inputs: Inputs, settings: Settings, shard: Shard | None = None) -> list[Table]:
    """The tables of ``inputs`` (paths, bytes, frames), as a run loads them."""
    paths = _inputs(inputs)
    _check_paths(paths)
    return _load(paths, settings, shard)


async def sync_async(
    inputs: Inputs,
    settings: Settings | None = None,
    *,
    report: str | Path | None = None,
    token: str | None = None,
    dry_run: bool = False,
    resume: str | Path | None = None,
    overwrite: bool = False,
    shard: Shard | None = None,
    state: Any = None,
    full: bool = False,
    sender: Sender | None = None,
    stop: asyncio.Event | None = None,
    on_progress: ProgressCallback | None = None,
    on_event: EventHandler | None = None,
    sleep: Sleep | None = None,
    resume_any_url: bool = False,
) -> Summary:
    """Load, validate, upload and report. Raises :class:`UsageError` (exit 2) before
    anything is sent when the command, config or input cannot be used.

    ``inputs``: file paths, in-memory tables (a pandas ``DataFrame``, anything with
    ``__arrow_c_stream__``, or a :class:`~bulk_sync.frames.Frame` naming one and mapping
    its columns), or a list mixing them (:mod:`bulk_sync.frames`).

    ``resume`` is refused when it was made against another base URL (or does not say
    which) unless ``resume_any_url`` (:mod:`bulk_sync.provenance`).

    ``on_event`` follows the run (:mod:`bulk_sync.events`); setting ``stop`` stops it."""
    settings = settings or Settings()
    paths = _inputs(inputs)
    if not paths:
        raise UsageError("no input files given")
    resume_path = Path(resume) if resume is not None else None
    report_path = resolve_report_path(
        Path(report) if report is not None else None,
        resume=resume_path,
        overwrite=overwrite,
        inputs=paths,
    )
    try:
        return await _sync_checked(
            paths, settings, report_path, token=token, dry_run=dry_run, resume=resume_path,
            shard=shard, state=state, full=full, sender=sender, stop=stop,
            emit=_handlers(on_event, on_progress), sleep=sleep, resume_any_url=resume_any_url,
        )  # fmt: skip
    except BaseException:
        release_report(report_path)
        raise


async def _sync_checked(
    paths: list[Path | InputBytes | Frame],
    settings: Settings,
    report_path: Path,
    *,
    token: str | None,
    dry_run: bool,
    resume: Path | None,
    shard: Shard | None,
    state: Any,
    full: bool,
    sender: Sender | None,
    stop: asyncio.Event | None,
    emit: EventHandler,
    sleep: Sleep | None,
    resume_any_url: bool = False,
) -> Summary:
    resume_path = resume
    _check_paths(paths)
    if not dry_run and sender is None:
        check_base_url(settings)
        if token is None:
            token = settings.token()
        if token is None:
            raise ConfigError(
                f"no API key: set the environment variable {settings.token_env} "
                "(or run with --dry-run)"
            )
        check_base_url(settings, token)
    input_files = [_identity(p) for p in paths]
    # fail early (exit 2) if it cannot be read, or was made against another API
    done = accepted_keys(resume_path) if resume_path is not None else None
    if resume_path is not None and done:
        check_resume(resume_path, settings.base_url, input_files, any_url=resume_any_url)
    tables = _load(paths, settings, shard)
    log.info(
        "read %d rows from %s",
        sum(len(t) for t in tables),
        ", ".join(
            show_path(f"{t.source} (sheet {t.sheet!r})" if t.sheet else t.source) for t in tables
        )
        or "no table",
        extra={"event": "loaded"},
    )
    emit(
        Loaded(
            rows=sum(len(t) for t in tables),
            tables=tuple((t.source, t.sheet, len(t)) for t in tables),
        )
    )
    return await run_tables(
        tables,
        settings,
        report=report_path,
        token=token,
        dry_run=dry_run,
        resume=done,
        shard=shard,
        state=state,
        full=full,
        sender=sender,
        stop=stop,
        on_event=emit,
        sleep=sleep,
        inputs=[str(p) for p in paths],
        input_files=input_files,
    )


def sync(inputs: Inputs, settings: Settings | None = None, **kwargs: Any) -> Summary:
    """Blocking form of :func:`sync_async` for scripts and schedulers."""
    return asyncio.run(sync_async(inputs, settings, **kwargs))


def retry_tables(report: Path) -> list[Table]:
    """The rows of a report whose status is ``failed`` or ``not_sent``, as input tables
    that keep the original file, sheet and row numbers."""
    tables: list[Table] = []
    key: tuple[str, str] | None = None
    cols: tuple[list[int], list[str], list[str], list[str]] = ([], [], [], [])

    def flush() -> None:
        if key is not None and cols[0]:
            tables.append(Table(key[0], key[1], *cols))

    for r in read_report(report):
        if r.status not in (Status.FAILED, Status.NOT_SENT):
            continue
        for column, text in (("customer_id", r.customer_id), ("attribute", r.attribute),
                             ("value", r.value)):  # fmt: skip
            cut = cut_note(text)
            if cut is not None:
                raise UsageError(
                    f"{report}: the {column} of {r.source} row {r.row} was cut to fit an Excel "
                    f"cell ({cut[0]:,} characters in all); retrying would send it cut. Retry "
                    f"from the CSV report that holds it whole: {cut[1]} beside it (or a .csv "
                    "report of the same run)"
                )
        if (r.source, r.sheet) != key:
            flush()
            key = (r.source, r.sheet)
            cols = ([], [], [], [])
        cols[0].append(r.row)
        cols[1].append(r.customer_id)
        cols[2].append(r.attribute)
        cols[3].append(r.value)
    flush()
    return tables


def default_retry_report_path(report: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = report.suffix if report.suffix.lower() in (".csv", ".xlsx") else ".csv"
    name = report.name.split(".", 1)[0] if suffix != report.suffix else report.stem
    base = report.with_name(f"{name}.retry-{stamp}{suffix}")
    candidate, n = base, 1
    while lexists(candidate) or lexists(journal_path_for(candidate)):
        candidate = base.with_name(f"{base.stem}-{n}{base.suffix}")
        n += 1
    return candidate
