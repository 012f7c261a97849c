"""Logs, summary JSON and Prometheus metrics: what monitoring reads.

Logging goes to stderr, as text or one JSON object a line. A redacting filter removes
the API key from every record, whatever code logged it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from bulk_sync.files import atomic_write, safe_text, show_path
from bulk_sync.models import Status
from bulk_sync.redaction import Redactor as TextRedactor
from bulk_sync.runner import Summary

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class Redactor(logging.Filter):
    """A logging filter that masks the API key in records, by the rule of
    :class:`bulk_sync.redaction.Redactor` (runs of 16+ characters of the key, any case,
    and its ``Bearer`` form).

    As a filter it cleans a record's message; :func:`setup_logging` also runs every
    finished line through :meth:`redact`, which catches what a filter cannot see: the
    exception text (formatted after the filters ran) and fields passed with ``extra``.
    """

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self._redactor = secrets if isinstance(secrets, TextRedactor) else TextRedactor(secrets)
        self.secrets = list(self._redactor.secrets)

    def redact(self, text: str) -> str:
        return self._redactor.redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.redact(record.getMessage())
            record.args = None
            if record.exc_text:
                record.exc_text = self.redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        # A file name that is not UTF-8 becomes \\xNN: the line stays valid UTF-8 JSON.
        return json.dumps(_safe_strings(doc), ensure_ascii=False, default=str)


class _RedactedLines(logging.Formatter):
    """Another formatter's lines, with the secrets taken out of the whole line."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self._inner = inner
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.redact(self._inner.format(record))


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <message>``, one line a record: control characters in the
    message (an ANSI escape or a line break in a file name or a server's text) are shown
    as escapes, so nothing can repaint the terminal or forge a log line. (A traceback,
    only with ``BULK_SYNC_DEBUG``, follows on lines of its own.)"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
        self.converter = time.gmtime

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = show_path(record.message)
        return super().formatMessage(record)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record, so that a live
    progress bar that redirects stderr gets the log lines printed above it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def setup_logging(
    fmt: str = "text",
    *,
    secrets: Iterable[str] = (),
    level: int = logging.INFO,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Route the ``bulk_sync`` loggers to stderr. Returns the handler (to remove it)."""
    handler: logging.StreamHandler = (  # type: ignore[type-arg]
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    redactor = Redactor(secrets)
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    if redactor.secrets:
        formatter = _RedactedLines(formatter, redactor)
    handler.setFormatter(formatter)
    handler.addFilter(redactor)
    logger = logging.getLogger("bulk_sync")
    for old in list(logger.handlers):
        if getattr(old, "_bulk_sync", False):
            logger.removeHandler(old)
    handler._bulk_sync = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def _atomic_write(path: Path, text: str) -> None:
    # The mode a plain open() gives (umask applied), or the replaced file's: node_exporter,
    # running as its own user, must be able to read the metrics.
    data = text.encode("utf-8")

    def write(f: BinaryIO) -> None:
        f.write(data)

    atomic_write(path, write)


def write_summary_json(path: Path, summary: Summary) -> None:
    doc = _safe_strings(summary.to_dict())
    _atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def _safe_strings(value: Any) -> Any:
    """``value`` with every string made UTF-8-safe (a file name that was not UTF-8)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(str(k)): _safe_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe_strings(v) for v in value]
    return value


def metrics_text(
    summary: Summary,
    *,
    job: str = "bulk_sync",
    now: float | None = None,
    last_success: float | None = None,
) -> str:
    """The Prometheus text exposition format, for node_exporter's textfile collector.

    ``bulk_sync_last_success_timestamp_seconds`` is carried over from ``last_success``
    when this run did not succeed, so "no success for 2 days" can be alerted on.
    """
    ts = time.time() if now is None else now
    label = f'job="{label_value(job)}"'
    out = [
        "# HELP bulk_sync_rows Rows of the last run by final status.",
        "# TYPE bulk_sync_rows gauge",
    ]
    for s in Status:
        out.append(f'bulk_sync_rows{{{label},status="{s.value}"}} {summary.counts.get(s.value, 0)}')
    gauges = [
        ("bulk_sync_customers", "Customers in the last run.", summary.customers),
        ("bulk_sync_requests", "Requests made by the last run.", summary.requests),
        ("bulk_sync_retries", "Retried requests in the last run.", summary.retries),
        ("bulk_sync_throttled", "429 answers in the last run.", summary.throttled),
        (
            "bulk_sync_breaker_openings",
            "Times the API became unavailable (circuit breaker opened) in the last run.",
            summary.breaker_openings,
        ),
        (
            "bulk_sync_paused_seconds",
            "Seconds the last run held all requests back (API unavailable, Retry-After).",
            round(summary.flow.paused_seconds, 3) if summary.flow else 0,
        ),
        ("bulk_sync_duration_seconds", "Duration of the last run.", round(summary.elapsed, 3)),
        ("bulk_sync_exit_code", "Exit code of the last run.", summary.exit_code),
        ("bulk_sync_last_run_timestamp_seconds", "When the last run ended.", round(ts, 3)),
    ]
    if summary.flow is not None:
        gauges += [
            (
                "bulk_sync_concurrency_window",
                "Requests the last run allowed in flight when it ended (adaptive window).",
                summary.flow.window,
            ),
            (
                "bulk_sync_concurrency_ceiling",
                "The window's ceiling in the last run (--concurrency, or 256 for auto).",
                summary.flow.ceiling,
            ),
        ]
    success = ts if summary.exit_code == 0 else last_success
    if success is not None:
        gauges.append(
            (
                "bulk_sync_last_success_timestamp_seconds",
                "When a run last ended with exit 0.",
                round(success, 3),
            )
        )
    for name, help_text, value in gauges:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{{{label}}} {value}"]
    return "\n".join(out) + "\n"


def label_value(text: str) -> str:
    """``text`` as a label value of the Prometheus text format: backslash, double quote
    and line feed escaped, so a label can never end early and forge other series."""
    return safe_text(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_metrics(path: Path, summary: Summary, *, job: str = "bulk_sync") -> None:
    text = metrics_text(summary, job=job, last_success=_previous_success(path))
    _atomic_write(path, text)


def _previous_success(path: Path) -> float | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        if line.startswith("bulk_sync_last_success_timestamp_seconds"):
            try:
                return float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                return None
    return None
