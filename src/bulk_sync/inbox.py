"""Inbox mode: ``bulk-sync sync --inbox DIR --archive DIR`` serves a drop folder.

Each run (typically from cron or a systemd timer) takes the lock, then processes the
files waiting in the inbox one at a time, oldest first (by modification time, then
name):

- the file is synced like ``bulk-sync sync FILE`` with the other options given;
  its report is written into the archive as ``<name>.<UTC time>.report.csv``
  (``.report.xlsx`` when the input is a workbook);
- then the file is moved into the archive (as ``<stem>.<UTC time><suffix>`` when a
  file of that name is already there);
- a file that cannot be used (unreadable, missing columns: what makes a plain run
  exit 2) goes to ``<archive>/failed/`` with ``<name>.error.txt`` beside it saying
  why, and the run goes on with the next file;
- an aborted run (SIGINT/SIGTERM, credentials rejected: exit 3) stops there. The
  file stays in the inbox and the next run starts again with it: rows already
  accepted are sent again (the API is idempotent), or skipped with ``--state``.

Only regular files with a supported suffix (:data:`SUPPORTED_SUFFIXES`) are taken;
hidden files (``.name``, as many SFTP servers write uploads in progress) are ignored,
and so is a file modified less than ``BULK_SYNC_INBOX_MIN_AGE`` seconds ago
(default 10): it may still be being written; the next run takes it.

``--dry-run`` changes nothing in the inbox: it writes the reports (named
``<name>.<UTC time>.dry-run.report.csv``) into the archive and leaves every file where
it is, so that a rehearsal never makes the real run miss a file.

The exit code is the worst of the files' (3 > 2 > 1 > 0); 0 for an empty inbox.
``--summary-json`` and ``--metrics-file`` describe the whole inbox run (counts summed
over the files, one entry per file under ``files``), so an empty inbox still tells
monitoring that the job ran.

A run always holds ``<archive>/.bulk-sync.lock`` (besides the lock of ``--state`` or
``--lock``), so two runs never take the same files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulk_sync.errors import BulkSyncError, ConfigError, UsageError
from bulk_sync.loading import DELIMITED_EXTENSIONS, WORKBOOK_EXTENSIONS
from bulk_sync.lock import RunLock

if TYPE_CHECKING:
    from bulk_sync.config import Settings
    from bulk_sync.runner import Summary

log = logging.getLogger(__name__)

WORKBOOK_SUFFIXES: frozenset[str] = frozenset(WORKBOOK_EXTENSIONS)
SUPPORTED_SUFFIXES: tuple[str, ...] = (*DELIMITED_EXTENSIONS, *WORKBOOK_EXTENSIONS)
MIN_AGE_ENV = "BULK_SYNC_INBOX_MIN_AGE"
DEFAULT_MIN_AGE = 10.0
FAILED_FOLDER = "failed"
LOCK_NAME = ".bulk-sync.lock"

EXIT_OK, EXIT_ROWS, EXIT_UNUSABLE, EXIT_ABORTED = 0, 1, 2, 3

RunFile = Callable[[Path, Path], "Summary"]
"""Sync one inbox file, writing its report at the second path; raises UsageError when
the file cannot be used."""


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one inbox file."""

    source: Path  # where it was in the inbox
    outcome: str  # "done", "failed" (unusable, moved to failed/), "stopped", "dry_run"
    exit_code: int
    report: Path | None = None
    archived_as: Path | None = None
    error: str = ""
    summary: Summary | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.name,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "report": str(self.report) if self.report else None,
            "archived_as": str(self.archived_as) if self.archived_as else None,
            "error": self.error or None,
        }


@dataclass(frozen=True)
class InboxResult:
    files: tuple[FileOutcome, ...]
    waiting: tuple[Path, ...]  # too recently modified: left for the next run
    elapsed: float

    @property
    def exit_code(self) -> int:
        return max((f.exit_code for f in self.files), default=EXIT_OK)


# -- listing ----------------------------------------------------------------------------


def min_age_from_env(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a file must have been left alone before it is taken (``BULK_SYNC_INBOX_MIN_AGE``)."""
    env = os.environ if environ is None else environ
    text = env.get(MIN_AGE_ENV, "").strip()
    if not text:
        return DEFAULT_MIN_AGE
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses NaN
        raise ConfigError(f"{MIN_AGE_ENV} must be a number of seconds >= 0 (got {text!r})")
    return value


def scan_inbox(inbox: Path, *, min_age: float, now: float) -> tuple[list[Path], list[Path]]:
    """The files to process, oldest first, and those too recently modified to take yet."""
    ready: list[tuple[float, str, Path]] = []
    waiting: list[Path] = []
    with os.scandir(inbox) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                log.info(
                    "inbox: ignoring %s: not a supported file type (%s)",
                    name,
                    " ".join(SUPPORTED_SUFFIXES),
                )
                continue
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if now - mtime < min_age:
                waiting.append(Path(entry.path))
            else:
                ready.append((mtime, name, Path(entry.path)))
    ready.sort(key=lambda t: (t[0], t[1]))
    waiting.sort()
    return [p for _, _, p in ready], waiting


# -- naming -----------------------------------------------------------------------------


def _stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")


def _taken(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def report_path_for(archive: Path, source: Path, stamp: str, *, dry_run: bool = False) -> Path:
    """``<archive>/<name>.<stamp>[.dry-run].report.csv|xlsx``, not yet used (nor its journal)."""
    suffix = ".xlsx" if source.suffix.lower() in WORKBOOK_SUFFIXES else ".csv"
    kind = ".dry-run.report" if dry_run else ".report"
    base = f"{source.name}.{stamp}"
    n = 0
    while True:
        candidate = archive / f"{base}{f'-{n}' if n else ''}{kind}{suffix}"
        journal = candidate.with_name(candidate.name + ".journal.jsonl")
        if not _taken(candidate) and not _taken(journal):
            return candidate
        n += 1


def free_name(folder: Path, name: str, stamp: str) -> Path:
    """``folder/name``, or ``folder/<stem>.<stamp>[-n]<suffix>`` when that is taken."""
    candidate = folder / name
    if not _taken(candidate):
        return candidate
    p = Path(name)
    n = 0
    while True:
        candidate = folder / f"{p.stem}.{stamp}{f'-{n}' if n else ''}{p.suffix}"
        if not _taken(candidate):
            return candidate
        n += 1


def _move(source: Path, folder: Path, stamp: str) -> Path:
    dest = free_name(folder, source.name, stamp)
    try:
        folder.mkdir(exist_ok=True)
        shutil.move(source, dest)
    except OSError as exc:
        raise BulkSyncError(
            f"inbox: cannot move {source} to {dest}: {exc.strerror or exc}; "
            "the file stays in the inbox and the next run takes it again"
        ) from None
    return dest


# -- the loop ---------------------------------------------------------------------------


def process_inbox(
    inbox: Path,
    archive: Path,
    run_file: RunFile,
    *,
    dry_run: bool = False,
    min_age: float = DEFAULT_MIN_AGE,
    clock: Callable[[], float] = time.time,
) -> InboxResult:
    """Process the files waiting in ``inbox`` (see the module's documentation).

    ``run_file(path, report)`` syncs one file; a :class:`UsageError` from it sends the
    file to ``failed/``. Other exceptions propagate, leaving the file in the inbox.
    """
    started = clock()
    ready, waiting = scan_inbox(inbox, min_age=min_age, now=started)
    for path in waiting:
        log.info(
            "inbox: %s was modified less than %gs ago (it may still be being written); "
            "leaving it for the next run",
            path.name,
            min_age,
            extra={"event": "inbox_waiting", "file": path.name},
        )
    if not ready:
        log.info(
            "inbox empty: no file in %s to process",
            inbox,
            extra={"event": "inbox_empty", "waiting": len(waiting)},
        )
        return InboxResult((), tuple(waiting), clock() - started)
    log.info(
        "inbox: %d file(s) to process, oldest first: %s",
        len(ready),
        ", ".join(p.name for p in ready),
        extra={"event": "inbox_start", "files": [p.name for p in ready]},
    )
    outcomes: list[FileOutcome] = []
    for path in ready:
        if not path.exists():
            log.warning("inbox: %s disappeared before it was processed; skipping it", path.name)
            continue
        outcome = _process_one(path, archive, run_file, dry_run=dry_run, now=clock())
        outcomes.append(outcome)
        if outcome.outcome == "stopped":
            left = len(ready) - len(outcomes)
            log.warning(
                "inbox: run aborted while processing %s; it stays in the inbox (and %d "
                "file(s) after it) for the next run, which sends its rows again "
                "(with --state, only those not yet recorded)",
                path.name,
                left,
                extra={"event": "inbox_stopped", "file": path.name, "left": left},
            )
            break
    return InboxResult(tuple(outcomes), tuple(waiting), clock() - started)


def _process_one(
    path: Path, archive: Path, run_file: RunFile, *, dry_run: bool, now: float
) -> FileOutcome:
    stamp = _stamp(now)
    report = report_path_for(archive, path, stamp, dry_run=dry_run)
    log.info(
        "inbox: processing %s (report %s)",
        path.name,
        report,
        extra={"event": "inbox_file", "file": path.name, "report": str(report)},
    )
    try:
        summary = run_file(path, report)
    except UsageError as exc:
        message = str(exc)
        if dry_run:
            log.error(
                "inbox: %s cannot be used: %s (dry run: left in the inbox)",
                path.name,
                message,
                extra={"event": "inbox_failed", "file": path.name},
            )
            return FileOutcome(path, "failed", EXIT_UNUSABLE, error=message)
        failed = archive / FAILED_FOLDER
        dest = _move(path, failed, stamp)
        error_file = dest.with_name(dest.name + ".error.txt")
        error_file.write_text(
            f"{path.name} could not be used; nothing was sent.\n\n{message}\n\n"
            f"Fix the file and drop it into the inbox again.\n",
            encoding="utf-8",
        )
        log.error(
            "inbox: %s cannot be used: %s; moved to %s",
            path.name,
            message,
            dest,
            extra={"event": "inbox_failed", "file": path.name, "moved_to": str(dest)},
        )
        return FileOutcome(path, "failed", EXIT_UNUSABLE, archived_as=dest, error=message)
    code = summary.exit_code
    if code >= EXIT_ABORTED:
        return FileOutcome(
            path, "stopped", code, report=report, error=summary.aborted, summary=summary
        )
    if dry_run:
        return FileOutcome(path, "dry_run", code, report=report, summary=summary)
    dest = _move(path, archive, stamp)
    log.info(
        "inbox: %s done (exit code %d); moved to %s",
        path.name,
        code,
        dest,
        extra={"event": "inbox_done", "file": path.name, "exit_code": code, "moved_to": str(dest)},
    )
    return FileOutcome(path, "done", code, report=report, archived_as=dest, summary=summary)


# -- the command ------------------------------------------------------------------------


def _folders(opts: Mapping[str, Any]) -> tuple[Path, Path]:
    inbox, archive = opts.get("inbox"), opts.get("archive")
    if inbox is None or archive is None:
        raise UsageError("--inbox and --archive go together: give both folders")
    inbox, archive = Path(inbox), Path(archive)
    for flag, folder in (("--inbox", inbox), ("--archive", archive)):
        if not folder.is_dir():
            raise UsageError(f"{flag} {folder}: no such folder")
    if inbox.resolve() == archive.resolve():
        raise UsageError("--archive must be another folder than --inbox")
    if not os.access(archive, os.W_OK | os.X_OK):
        raise UsageError(f"--archive {archive}: folder is not writable")
    for flag in ("resume", "report"):
        if opts.get(flag):
            raise UsageError(
                f"--{flag} does not apply to --inbox: each file's report is written into the "
                "archive folder as <name>.<time>.report.csv (.xlsx for workbooks)"
            )
    return inbox, archive


def run_inbox_cli(settings: Settings, opts: dict[str, Any], hooks: dict[str, Any]) -> int:
    """``bulk-sync sync --inbox DIR --archive DIR [options]``; returns the exit code.

    ``hooks`` come from the CLI: ``lock_and_state(settings, opts)`` (context manager
    yielding the state store or ``None``), ``run_async(make, settings, opts)`` and
    ``finish(summary, settings, quiet)``.
    """
    from bulk_sync.runner import Shard, check_base_url, sync_async

    inbox, archive = _folders(opts)
    min_age = opts.get("inbox_min_age")
    min_age = min_age_from_env() if min_age is None else float(min_age)
    dry_run = bool(opts.get("dry_run"))
    quiet = bool(opts.get("quiet"))
    full = bool(opts.get("full"))
    shard = Shard.parse(opts["shard"]) if opts.get("shard") else None
    if shard is not None and settings.rate:
        settings = settings.replace(rate=settings.rate / shard.count)
    if not dry_run:
        # Problems of the run, not of a file: refuse before any file is touched.
        check_base_url(settings)
        token = settings.token()
        if token is None:
            raise ConfigError(
                f"no API key: set the environment variable {settings.token_env} "
                "(or run with --dry-run)"
            )
        check_base_url(settings, token)
    # Each file's summary goes to the terminal; the files (summary JSON, metrics)
    # describe the whole inbox run and are written once at the end.
    per_file = dataclasses.replace(settings, summary_json=None, metrics_file=None)

    with contextlib.ExitStack() as stack:
        archive_lock = archive / LOCK_NAME
        if not dry_run and (
            settings.lock is None or settings.lock.resolve() != archive_lock.resolve()
        ):
            # Two runs must never take the same files, whatever their --state or --lock:
            # the archive's lock is always held (besides the state's).
            stack.enter_context(RunLock(archive_lock))
        state = stack.enter_context(hooks["lock_and_state"](settings, opts))

        def run_file(path: Path, report: Path) -> Summary:
            summary: Summary = hooks["run_async"](
                lambda stop, on_event: sync_async(
                    [path],
                    settings,
                    report=report,
                    dry_run=dry_run,
                    shard=shard,
                    state=state,
                    full=full,
                    stop=stop,
                    on_event=on_event,
                ),
                settings,
                opts,
            )
            hooks["finish"](summary, per_file, quiet)
            return summary

        result = process_inbox(inbox, archive, run_file, dry_run=dry_run, min_age=min_age)

    total = inbox_summary(result, inbox=inbox, archive=archive, dry_run=dry_run)
    log.info(
        "inbox run finished: %d file(s), exit code %d",
        len(result.files),
        total.exit_code,
        extra={"event": "inbox_summary", **total.to_dict()},
    )
    if settings.summary_json is not None or settings.metrics_file is not None:
        from bulk_sync.observability import write_metrics, write_summary_json

        if settings.summary_json is not None:
            write_summary_json(settings.summary_json, total)
        if settings.metrics_file is not None:
            write_metrics(settings.metrics_file, total, job=settings.metrics_job)
    return total.exit_code


def inbox_summary(result: InboxResult, *, inbox: Path, archive: Path, dry_run: bool) -> Summary:
    """One :class:`~bulk_sync.runner.Summary` for the whole inbox run."""
    from bulk_sync.models import Status
    from bulk_sync.runner import Summary

    counts = {s.value: 0 for s in Status}
    summaries: Sequence[Summary] = [f.summary for f in result.files if f.summary is not None]
    for s in summaries:
        for key, n in s.counts.items():
            counts[key] = counts.get(key, 0) + n
    aborted = next((f.error or "aborted" for f in result.files if f.outcome == "stopped"), "")
    return Summary(
        counts=counts,
        rows=sum(s.rows for s in summaries),
        customers=sum(s.customers for s in summaries),
        requests=sum(s.requests for s in summaries),
        retries=sum(s.retries for s in summaries),
        elapsed=result.elapsed,
        report=archive,
        exit_code=result.exit_code,
        dry_run=dry_run,
        aborted=aborted,
        throttled=sum(s.throttled for s in summaries),
        inputs=tuple(str(f.source) for f in result.files),
        extra={
            "inbox": str(inbox),
            "archive": str(archive),
            "files": [f.to_dict() for f in result.files],
            "files_failed": sum(f.outcome == "failed" for f in result.files),
            "files_waiting": [p.name for p in result.waiting],
        },
    )
