"""What the engine tells its front ends while a run goes on.

The CLI's progress bar and log lines, the inbox mode and the web page all drive the same
engine call (:func:`bulk_sync.runner.sync_async`, or :func:`bulk_sync.runner.run_tables`
for tables already loaded) and follow the run through one callback, ``on_event(event)``,
which receives these frozen values, in this order::

    Loaded          the inputs were read (sync_async only; before validation)
    Planned         what the run will do: rows, customers, requests, invalid, skipped
    Progress        while sending, at most ten a second, and once when sending ends
    CustomerDone    one request's worth of a customer finished (its rows' outcomes)
    Throttled       the API asked to slow down (a 429, or a Retry-After)
    BreakerChanged  the API became unavailable, is being probed, or is back
    Finished        the run is over and its report written (the Summary)

A dry run sends no ``Progress``, ``CustomerDone``, ``Throttled`` or ``BreakerChanged``.
The engine never prints and never waits on a handler: a handler must be quick, and an
exception it raises is logged and otherwise ignored, so a front end cannot break a run.

To stop a run, set the ``asyncio.Event`` passed as ``stop``: dispatching stops at once,
requests on the wire get a short grace period, and the rows not accepted are reported
``not_sent`` (exit code 3).

    >>> import asyncio
    >>> from bulk_sync import events, sync_async
    >>> def show(event: events.Event) -> None:
    ...     if isinstance(event, events.Progress):
    ...         print(f"{event.rows_done}/{event.rows_total}")
    >>> asyncio.run(sync_async(["customers.csv"], on_event=show))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bulk_sync.models import Status

if TYPE_CHECKING:
    from bulk_sync.runner import Summary

log = logging.getLogger(__name__)

BREAKER_CLOSED = "closed"  # requests flow
BREAKER_OPEN = "open"  # the API is unavailable: nothing is dispatched until the next probe
BREAKER_PROBING = "probing"  # one request is testing whether the API is back


@dataclass(frozen=True, slots=True)
class FlowState:
    """How fast the uploader may send right now (a snapshot).

    ``window``: requests allowed in flight now (adapts below ``ceiling``);
    ``ceiling``: ``--concurrency`` (or the cap of ``--concurrency auto``);
    ``in_flight``: requests on the wire now;
    ``breaker``: ``closed``, ``open`` or ``probing``;
    ``unavailable_since``: wall-clock time (epoch seconds) the API became unavailable,
    ``None`` while it is available;
    ``next_try_in``: seconds until the next probe while the breaker is open;
    ``paused_seconds``: time dispatching was held back so far (Retry-After pauses and
    outages, a second in both counted once: never more than the time that went by);
    ``widest``: the widest the window has been so far (``None``: not known);
    ``narrowed``: how many times the window shrank so far (429, 503, timeouts).
    """

    window: int
    ceiling: int
    in_flight: int = 0
    breaker: str = BREAKER_CLOSED
    unavailable_since: float | None = None
    next_try_in: float | None = None
    paused_seconds: float = 0.0
    widest: int | None = None
    narrowed: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "window": self.window,
            "ceiling": self.ceiling,
            "in_flight": self.in_flight,
            "breaker": self.breaker,
            "unavailable_since": self.unavailable_since,
            "next_try_in": None if self.next_try_in is None else round(self.next_try_in, 1),
            "paused_seconds": round(self.paused_seconds, 3),
            "widest": self.widest,
            "narrowed": self.narrowed,
        }


def unavailable_text(since: float | None, next_try_in: float | None) -> str:
    """ "API unavailable since 14:02:10, next try in 8 s": what the progress line and the
    log say while the breaker is not closed (``since``: wall-clock epoch seconds, shown
    in local time)."""
    shown = datetime.fromtimestamp(since).strftime("%H:%M:%S") if since is not None else "?"
    text = f"API unavailable since {shown}"
    if next_try_in is not None:
        text += f", next try in {math.ceil(next_try_in - 1e-9):.0f} s"
    return text


@dataclass(frozen=True, slots=True)
class Loaded:
    """The inputs were read: ``tables`` is (source, sheet, rows) per file or sheet.
    ``warnings``: what a person should know about how cells were read (e.g. a display
    format that differs from the value sent), one line each."""

    rows: int
    tables: tuple[tuple[str, str, int], ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Planned:
    """What the run will do, after validation, grouping, resume, state and sharding.

    ``requests``: calls a sync makes at least (one per customer, or per chunk of a map
    split by ``--max-attributes-per-request``); retries come on top."""

    rows: int
    customers: int
    requests: int
    pairs: int
    invalid_rows: int
    skipped_rows: int
    dry_run: bool
    base_url: str

    @property
    def rows_to_send(self) -> int:
        """Rows whose values a sync sends (neither invalid nor skipped)."""
        return self.rows - self.invalid_rows - self.skipped_rows


@dataclass(frozen=True, slots=True)
class Progress:
    """Where the sending stands. ``rows_total`` counts only the rows to send."""

    rows_total: int
    rows_done: int
    customers_total: int
    customers_done: int
    failed_rows: int
    requests: int
    retries: int
    elapsed: float
    ok_rows: int = 0
    throttled: int = 0
    flow: FlowState | None = None

    @property
    def rate(self) -> float:
        """Rows done per second so far."""
        return self.rows_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far; ``None`` before any row is done."""
        rate = self.rate
        if rate <= 0:
            return None
        return max(0.0, (self.rows_total - self.rows_done) / rate)


@dataclass(frozen=True, slots=True)
class CustomerDone:
    """One request's worth of one customer finished: ``outcomes`` holds each of its
    input rows as (global row index, final status)."""

    customer_id: str
    outcomes: tuple[tuple[int, Status], ...]


@dataclass(frozen=True, slots=True)
class Throttled:
    """The API asked to slow down: ``status`` (429, 503...), ``retry_after`` seconds it
    asked for (``None`` when it did not say)."""

    status: int | None
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    """The run-wide circuit breaker changed state (see :class:`FlowState`)."""

    state: str
    unavailable_since: float | None
    next_try_in: float | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Finished:
    """The run is over; the report is written."""

    summary: Summary


Event = Loaded | Planned | Progress | CustomerDone | Throttled | BreakerChanged | Finished
EventHandler = Callable[[Event], None]


def emitter(*handlers: EventHandler | None) -> EventHandler:
    """One handler that calls each of ``handlers`` (``None`` ones left out) and never
    lets an exception of theirs reach the engine."""
    live = tuple(h for h in handlers if h is not None)

    def emit(event: Event) -> None:
        for handler in live:
            try:
                handler(event)
            except Exception:
                log.exception(
                    "an event handler failed on %s; the run goes on", type(event).__name__
                )

    return emit
