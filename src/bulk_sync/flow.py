"""Flow control: how many requests may be in flight, and whether the API is there at all.

Two small objects, each fed one sample per answered request and asked one question
(the shape of Netflix's concurrency-limits and Envoy's adaptive concurrency filter).
Neither reads a clock, sleeps or does I/O: the caller passes the times, so tests drive
them with plain numbers. See ``docs/flow-control.md`` for why this design.

:class:`Limiter`: *how many requests in flight now?* A loss-based AIMD window (TCP
Reno's rules) under a ceiling (``--concurrency N``, or 256 for ``auto``):

- an overload signal (429, 502/503/504, a timeout or a dropped connection) multiplies the
  window by ``decrease`` (0.9), at most once per round trip: drops of requests sent
  before the last decrease were caused by the old window and are not counted again; and
  the window never stays above the requests still holding a place when a drop comes back;
- a clean answer adds ``1/window`` (one request per round trip's worth of answers), or
  1 during slow start (doubling per round trip), which runs from a low start until the
  first overload signal, again after an outage, back up to the window before it, and
  after a drop, back up to 95% of the window the API refused;
- the window only grows while it is full (as many requests on the wire as it allows when
  the request was sent: a window not used proves nothing, and requests waiting out a
  ``Retry-After`` must not let it creep back up), and while answers are not much
  slower than usual (a server that queues instead of refusing): the smoothed latency
  must stay under ``latency_tolerance`` times the fastest latency of the last
  ``baseline_period`` seconds.

:class:`Breaker`: *may a request go now?* A run-wide circuit breaker for outages:
``threshold`` retriable failures in a row (5xx, refused or dropped connections, DNS
failures, timeouts) open it; while open nothing is sent until the next probe; then one
request probes (``probing``); its success closes the breaker, its failure opens it again
for twice as long (``first_probe``, doubling up to ``max_probe``; a ``Retry-After`` on
the failure lengthens the wait). Any answer that shows the API is up (a success, a 4xx,
a 429) to a request sent after the streak's first failed one ends the streak: failures
count in a row in the order requests were sent, not answered.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Final

AUTO_CEILING: Final = 256  # the most requests ``--concurrency auto`` puts in flight
AUTO_INITIAL: Final = 8  # where ``--concurrency auto`` starts: the default's load (then slow start)

CLOSED: Final = "closed"
OPEN: Final = "open"
PROBING: Final = "probing"


class Limiter:
    """AIMD concurrency window under a ceiling; fed one sample per answered request.

    ``initial``: the window at start (default: the ceiling, a fixed ``--concurrency N``
    starts at N; ``auto`` starts at :data:`AUTO_INITIAL` and slow-starts).
    """

    def __init__(
        self,
        ceiling: int,
        *,
        initial: int | None = None,
        minimum: int = 1,
        decrease: float = 0.9,
        latency_tolerance: float = 2.0,
        baseline_period: float = 30.0,
        smoothing: float = 0.1,
    ) -> None:
        if ceiling < 1 or minimum < 1 or minimum > ceiling:
            raise ValueError("need 1 <= minimum <= ceiling")
        if not 0.0 < decrease < 1.0:
            raise ValueError("decrease must be between 0 and 1")
        self.ceiling = ceiling
        self.minimum = minimum
        self._decrease = decrease
        self._regain = (1.0 + decrease) / 2  # after a drop, slow start back to this share
        self._tolerance = latency_tolerance
        self._smoothing = smoothing
        start = ceiling if initial is None else max(minimum, min(initial, ceiling))
        self._window = float(start)
        self.window = start  # requests allowed in flight now (int(_window), kept in step)
        self._slow_start_until = float(ceiling)  # TCP's ssthresh
        self._last_decrease = -math.inf
        self._known_limit = math.inf  # the window at which the last drop came
        self._baseline = _WindowedMin(baseline_period)
        self._smoothed: float | None = None
        self.decreases = 0  # how many times the window shrank (for tests and stats)
        self.widest = start  # the widest window of the run (what `auto` found, for stats)

    def _set(self, window: float) -> None:
        self._window = max(float(self.minimum), min(float(self.ceiling), window))
        self.window = int(self._window)
        if self.window > self.widest:
            self.widest = self.window

    @property
    def at_minimum(self) -> bool:
        return self._window < self.minimum + 1

    @property
    def latency(self) -> float | None:
        """The smoothed latency of clean answers (``None`` before the first)."""
        return self._smoothed

    def on_success(
        self, *, sent_at: float, now: float, in_flight: int, may_grow: bool = True
    ) -> bool:
        """A clean answer, at ``now``, to a request sent at ``sent_at``; ``in_flight``:
        requests on the wire when it came (itself included). ``may_grow=False``: do not
        probe above the capacity found so far (the caller knows a refusal would not pay);
        the window still grows back to just under the window of the last drop. True when
        the window grew."""
        latency = now - sent_at if now > sent_at else 0.0
        self._baseline.add(now, latency)
        smoothed = self._smoothed
        smoothed = (
            latency if smoothed is None else smoothed + self._smoothing * (latency - smoothed)
        )
        self._smoothed = smoothed
        before = self.window
        if before >= self.ceiling or (not may_grow and before + 1 >= self._known_limit):
            return False
        if in_flight < before:
            return False  # the window was not full: growing it would prove nothing
        baseline = self._baseline.value()
        if baseline > 0 and smoothed > self._tolerance * baseline:
            return False  # answers are slowing down: the server is queueing
        if self._window < self._slow_start_until:
            self._set(min(self._window + 1.0, self._slow_start_until))
        else:
            self._set(self._window + 1.0 / self._window)
        return self.window != before

    def on_drop(self, *, sent_at: float, now: float, in_flight: int | None = None) -> bool:
        """An overload signal, at ``now``, for a request sent at ``sent_at``;
        ``in_flight``: requests still holding a place (without this one). True when the
        window shrank.

        The window shrinks by ``decrease`` once per round trip (drops of requests sent
        before the last decrease are not counted again), and never stays above what is
        still held: a burst of fast 429s tells that whatever is not refused is all
        the API holds (TCP also sizes its decrease from the data in flight, not the
        window)."""
        before = self._window
        if sent_at > self._last_decrease:
            self._known_limit = float(self.window)
            self._set(self._window * self._decrease)
            self._last_decrease = now
        if in_flight is not None:
            self._set(min(self._window, float(in_flight)))
            self._known_limit = min(self._known_limit, float(in_flight + 1))
        if self._window == before:
            return False
        # Back quickly (one round trip, as in slow start) to just under where the API
        # said no, then slowly above it (CUBIC's idea in its simplest form).
        self._slow_start_until = max(self._window, self._regain * self._known_limit)
        self.decreases += 1
        return True

    def restart(self, now: float) -> None:
        """After an outage: slow start from the minimum back up to the window before it
        (doubling per round trip), then additive growth as usual."""
        self._slow_start_until = max(float(self.minimum), self._window)
        self._set(float(self.minimum))
        self._last_decrease = now  # answers to requests sent before now are stale
        self._smoothed = None


class _WindowedMin:
    """The smallest value added in the last ``period`` seconds (ten buckets)."""

    def __init__(self, period: float) -> None:
        self._bucket = period / 10
        self._period = period
        self._buckets: deque[tuple[float, float]] = deque()  # (bucket start, min)

    def add(self, now: float, value: float) -> None:
        buckets = self._buckets
        if buckets:
            start, low = buckets[-1]
            if now - start < self._bucket:
                if value < low:
                    buckets[-1] = (start, value)
                return
        buckets.append((now, value))
        while buckets[0][0] <= now - self._period:
            buckets.popleft()

    def value(self) -> float:
        return min((low for _, low in self._buckets), default=0.0)


class Permit(Enum):
    """What the breaker says to a request that wants to go."""

    GO = "go"  # closed: send
    PROBE = "probe"  # send: this request is the probe
    WAIT = "wait"  # open or probing: wait (see Breaker.next_try_at)


@dataclass(frozen=True, slots=True)
class BreakerChange:
    """A transition, for the caller to report: the new state and why."""

    state: str
    reason: str


class Breaker:
    """Run-wide circuit breaker; fed one sample per answered request (times passed in)."""

    def __init__(
        self, *, threshold: int = 10, first_probe: float = 1.0, max_probe: float = 10.0
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if first_probe <= 0 or max_probe < first_probe:
            raise ValueError("need 0 < first_probe <= max_probe")
        self.threshold = threshold
        self._first = first_probe
        self._max = max_probe
        self.state = CLOSED
        self.streak = 0  # retriable failures in a row while closed
        self._streak_since: float | None = None  # when the streak's first failure came
        self._streak_sent: float | None = None  # when that failed request was sent
        self.unavailable_since: float | None = None  # set while open or probing
        self.next_try_at: float | None = None  # while open
        self._interval = first_probe
        self.last_error = ""

    def permit(self, now: float) -> Permit:
        """May a request go at ``now``? ``PROBE`` turns the breaker to probing: that
        request's outcome decides (report it with ``probe=True``)."""
        if self.state == CLOSED:
            return Permit.GO
        if self.state == OPEN and self.next_try_at is not None and now >= self.next_try_at:
            self.state = PROBING
            self.next_try_at = None
            return Permit.PROBE
        return Permit.WAIT

    def unavailable_for(self, now: float) -> float:
        """Seconds since the API became unavailable (0 while closed)."""
        if self.unavailable_since is None:
            return 0.0
        return max(0.0, now - self.unavailable_since)

    def on_success(
        self, now: float, *, probe: bool = False, sent_at: float | None = None
    ) -> BreakerChange | None:
        """An answer that shows the API is up (a success, a 4xx, a 429), to a request
        sent at ``sent_at``. Failures count in a row in the order requests were *sent*:
        the late success of a request sent before the row's first failed one is older
        news (it was taken in before the API went down) and neither breaks the row nor
        closes the breaker. A probe's success always counts."""
        stale = (
            not probe
            and sent_at is not None
            and self._streak_sent is not None
            and sent_at < self._streak_sent
        )
        if stale:
            return None
        self.streak = 0
        self._streak_since = None
        self._streak_sent = None
        if self.state == CLOSED:
            return None
        down = self.unavailable_for(now)
        self.state = CLOSED
        self.unavailable_since = None
        self.next_try_at = None
        self._interval = self._first
        how = "a probe" if probe else "a request"
        return BreakerChange(CLOSED, f"{how} succeeded after {down:.0f} s")

    def on_failure(
        self,
        now: float,
        *,
        probe: bool = False,
        retry_after: float | None = None,
        error: str = "",
        sent_at: float | None = None,
    ) -> BreakerChange | None:
        """A retriable failure (5xx, a refused or dropped connection, a timeout) of a
        request sent at ``sent_at`` (default: ``now``)."""
        if error:
            self.last_error = error
        if self.state == CLOSED:
            if self.streak == 0:
                self._streak_since = now
                self._streak_sent = now if sent_at is None else sent_at
            self.streak += 1
            if self.streak < self.threshold:
                return None
            self.state = OPEN
            self.unavailable_since = self._streak_since
            self._interval = self._first
            self.next_try_at = now + max(self._interval, retry_after or 0.0)
            return BreakerChange(
                OPEN, f"{self.streak} failures in a row" + (f" (last: {error})" if error else "")
            )
        if self.state == PROBING and probe:
            self._interval = min(self._max, self._interval * 2)
            self.state = OPEN
            self.next_try_at = now + max(self._interval, retry_after or 0.0)
            return BreakerChange(OPEN, "the probe failed" + (f" ({error})" if error else ""))
        return None  # a late answer to a request sent before the breaker opened

    def abandon_probe(self, now: float) -> None:
        """The probe went away without an answer (cancelled): probe again at once."""
        if self.state == PROBING:
            self.state = OPEN
            self.next_try_at = now


class HeldBack:
    """Seconds during which sending was held back, each counted once: run-wide
    ``Retry-After`` pauses and outages overlap (a 503 with ``Retry-After`` during an
    outage is both), and their sum would exceed the time that went by.

    ``add(start, end)`` records a span (a pause, known in advance; an outage, once it
    ended); ``seconds(now, since)`` is the length of their union up to ``now``, with the
    outage still going on since ``since`` (the breaker's ``unavailable_since``)."""

    def __init__(self) -> None:
        self._spans: list[tuple[float, float]] = []  # disjoint, in order
        self._total = 0.0  # their lengths

    def add(self, start: float, end: float) -> None:
        if end <= start:
            return
        spans = self._spans
        i = len(spans)
        while i and spans[i - 1][1] >= start:  # spans that end after this one starts
            i -= 1
        j = i
        while j < len(spans) and spans[j][0] <= end:  # ... and begin before it ends: merged
            start, end = min(start, spans[j][0]), max(end, spans[j][1])
            self._total -= spans[j][1] - spans[j][0]
            j += 1
        spans[i:j] = [(start, end)]
        self._total += end - start

    def seconds(self, now: float, since: float | None = None) -> float:
        low = now if since is None else min(now, since)
        total = self._total
        tail: list[tuple[float, float]] = []
        for start, end in reversed(self._spans):  # only the last spans can reach past low
            if end <= low:
                break
            total -= end - start
            if start < now:
                tail.append((start, min(end, now)))
        if since is not None and since < now:
            tail.append((since, now))
        reach = -math.inf
        for start, end in sorted(tail):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total
