"""Concurrent upload of customer maps: adaptive concurrency, a circuit breaker, a rate
cap, retries.

Policies are small parts (tenacity style) and every dependency is passed in: the
sender (anything with ``set_customer_attributes``), the sleep, the clocks and the random
source, so tests run a thousand retries and a ten-minute outage without waiting.

Flow control (:mod:`bulk_sync.flow`, ``docs/flow-control.md``): every attempt asks, in
this order, the breaker (is the API there?), a global pause (a ``Retry-After`` when the
window cannot shrink further), the limiter's window (how many requests in flight now?)
and the rate cap (``--rate``, a hard cap); every answer is fed back to the limiter and
the breaker as one sample.

What each API outcome means for a run (DESIGN.md section 5):

- success: every pair of the map is ``ok``;
- retriable (429, 5xx, connection errors, timeouts): retried with exponential backoff
  and jitter, within ``max_attempts`` and the per-request ``deadline``. A 429 or a
  503 shrinks the window; the request that got a ``Retry-After`` waits at least that
  long; the whole run pauses for it only when the window is already down to one;
- an outage (``Breaker.threshold`` retriable failures in a row): nothing is sent but one
  probe at growing intervals. Attempts that fail while the breaker is open or probing
  (and the one that opens it) do not count against ``max_attempts``, nor does time held
  back count against ``deadline``. After ``max_outage`` seconds the run halts as on
  SIGTERM: what was not accepted is ``not_sent``;
- 422 on a map of several pairs: the map is re-sent one pair at a time, so only the
  offending pairs fail (safe: the API merges);
- 404 and other 4xx: that map's pairs fail, the run goes on;
- 403: that map's pairs fail with the server's message; 403s for
  ``FORBIDDEN_IN_A_ROW`` different customers in a row (no other answer between them)
  mean the key lacks a permission: the run halts as on a 401;
- 401: the run halts; nothing new is sent; what was not accepted is ``not_sent``.

A halt (credentials rejected, the API down too long, or the caller's ``stop`` event)
stops dispatching at once, interrupts backoff sleeps and waits, and gives requests
already on the wire ``grace_period`` seconds before they are cancelled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from typing import Literal, Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from bulk_sync.errors import (
    ApiError,
    AuthError,
    CertificateError,
    CustomerNotFound,
    DocumentRejected,
    Forbidden,
    RateLimited,
    RetriableError,
    ServerError,
    TransportError,
)
from bulk_sync.events import (
    BreakerChanged,
    EventHandler,
    FlowState,
    Throttled,
    unavailable_text,
)
from bulk_sync.flow import (
    AUTO_CEILING,
    AUTO_INITIAL,
    CLOSED,
    OPEN,
    Breaker,
    HeldBack,
    Limiter,
    Permit,
)
from bulk_sync.models import Pair, Status

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
Concurrency = int | Literal["auto"]

MAX_RETRY_AFTER = 300.0  # a Retry-After longer than this is treated as this
FORBIDDEN_IN_A_ROW = 10  # 403s for this many different customers in a row stop the run
OVERLOAD_STATUSES = frozenset({429, 502, 503, 504})  # besides timeouts and dropped connections


class Sender(Protocol):
    async def set_customer_attributes(
        self, customer_id: str, attributes: Mapping[str, str]
    ) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    initial: float = 0.5
    maximum: float = 30.0
    deadline: float | None = 600.0  # seconds from a request's first attempt

    def backoff(self, failures: int, rnd: random.Random) -> float:
        """Equal-jitter exponential backoff after ``failures`` failed attempts."""
        base: float = min(self.maximum, self.initial * 2.0 ** (failures - 1))
        return base / 2 + rnd.uniform(0, base / 2)


@dataclass(frozen=True, slots=True)
class Job:
    """One request's worth of one customer's map."""

    customer_id: str
    pairs: tuple[Pair, ...]

    def body(self) -> dict[str, str]:
        return {p.attribute: p.value for p in self.pairs}


@dataclass(frozen=True, slots=True)
class PairOutcome:
    status: Status  # OK, FAILED or NOT_SENT
    http_status: int | None
    error: str
    attempts: int
    confirmed: str | None = None  # the value as the API's response shows it


@dataclass(frozen=True, slots=True)
class JobResult:
    job: Job
    outcomes: tuple[PairOutcome, ...]  # aligned with job.pairs
    requests: int


@dataclass
class UploadStats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429 answers
    jobs: int = 0
    halted: str = ""  # why the run stopped early, "" when it did not
    auth_failed: bool = False
    outage: bool = False  # the run stopped because the API was down longer than max_outage
    breaker_openings: int = 0  # how many times the API became unavailable
    window_decreases: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    flow: FlowState | None = None  # the flow state when the run ended


@dataclass(slots=True)
class _Flight:
    """What one job has done so far, for a job cancelled mid-way."""

    requests: int = 0
    on_wire: bool = False
    done: dict[int, PairOutcome] = field(default_factory=dict)
    last_status: int | None = None  # the HTTP status of the last answer, if any


@dataclass(slots=True)
class _Tries:
    """One request's attempts: ``requests`` made, ``counted`` against ``max_attempts``,
    seconds ``held`` back by the breaker.

    A failure that may be the start of an outage (a 5xx, no answer) is ``unsure`` until
    the next attempt: if the breaker opened meanwhile it was part of the outage and does
    not count; otherwise it does."""

    started: float
    requests: int = 0
    counted: int = 0
    held: float = 0.0
    unsure: int = 0
    epoch: int = 0  # breaker openings when the unsure failures came
    last: ApiError | None = None


class _Halted(Exception):
    """Raised inside a worker when the run halts; the job ends ``not_sent``."""


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, RetriableError)


def _is_outage_failure(exc: ApiError) -> bool:
    """A failure that says the API may be down: 5xx, or no HTTP answer at all."""
    if isinstance(exc, ServerError):
        return True
    return isinstance(exc, TransportError) and exc.status is None


def _is_overload(exc: ApiError) -> bool:
    """A failure that says "too much": 429, 502/503/504, a timeout, a dropped connection."""
    if isinstance(exc, TransportError):
        return exc.status is None
    return exc.status in OVERLOAD_STATUSES


class Uploader:
    """Sends jobs. ``concurrency``: the ceiling of the window (``"auto"``: up to
    :data:`~bulk_sync.flow.AUTO_CEILING`, starting low). ``max_outage``: seconds the API
    may be unavailable before the run halts (``None``: never)."""

    def __init__(
        self,
        sender: Sender,
        *,
        concurrency: Concurrency = 8,
        rate: float | None = None,
        retry: RetryPolicy | None = None,
        grace_period: float = 2.0,
        max_outage: float | None = 900.0,
        limiter: Limiter | None = None,
        breaker: Breaker | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        rnd: random.Random | None = None,
        on_event: EventHandler | None = None,
    ) -> None:
        if limiter is None:
            if concurrency == "auto":
                limiter = Limiter(AUTO_CEILING, initial=AUTO_INITIAL)
            elif isinstance(concurrency, int) and concurrency >= 1:
                limiter = Limiter(concurrency)
            else:
                raise ValueError("concurrency must be at least 1, or 'auto'")
        self._sender = sender
        self._limiter = limiter
        self._breaker = breaker or Breaker()
        self._max_outage = max_outage
        self._interval = 1.0 / rate if rate else 0.0
        self._retry = retry or RetryPolicy()
        # With few requests in flight their own failures are all the breaker sees: it
        # must open before any request uses up its attempts in an outage (one request at
        # a time would give up after 5 while the breaker waited for 10). When all fail,
        # a request's last attempt fails at the latest as failure number
        # (attempts - 1) x ceiling + 1 in a row.
        cap = max(2, (self._retry.max_attempts - 1) * limiter.ceiling + 1)
        if self._breaker.threshold > cap:
            self._breaker.threshold = cap
        self._grace = grace_period
        self._sleep = sleep
        self._clock = clock
        self._wall = wall
        self._rnd = rnd or random.Random()
        self._on_event = on_event
        self._next_slot = 0.0
        self._resume_at = 0.0
        self._halted = asyncio.Event()
        self._halt_reason = ""
        self._halted_at: float | None = None  # when the run halted (the pause ends there)
        self._held = 0  # window slots taken (a request about to go, or on the wire)
        self._in_flight = 0  # requests on the wire
        self._pacing = 0  # window slots taken by requests waiting for the rate cap
        self._total: int | None = None  # jobs in the run, when known
        self._finished = 0  # jobs finished
        self._longest_wait = 0.0  # the longest Retry-After seen (what a throttled request costs)
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()
        self._changed = asyncio.Event()  # set (and replaced) when the breaker changes
        self._held_back = HeldBack()  # Retry-After pauses and finished outages, overlaps once
        self._since_wall: float | None = None  # wall-clock start of the current outage
        self._forbidden: dict[str, str] = {}  # customers refused with 403 in a row
        self.stats = UploadStats()

    # -- public -------------------------------------------------------------------------

    async def run(
        self,
        jobs: Iterable[Job],
        on_result: Callable[[JobResult], None],
        stop: asyncio.Event | None = None,
    ) -> UploadStats:
        """Send every job; ``on_result`` is called exactly once per job, as it finishes."""
        self._total = len(jobs) if isinstance(jobs, Sized) else None
        queue: Iterator[Job] = iter(jobs)
        workers = [
            asyncio.create_task(self._worker(queue, on_result))
            for _ in range(self._limiter.ceiling)
        ]
        watchers = [
            asyncio.create_task(self._cancel_after_grace(workers)),
            asyncio.create_task(self._watch_outage()),
        ]
        if stop is not None:
            watchers.append(asyncio.create_task(self._relay_stop(stop)))
        try:
            await asyncio.gather(*workers, return_exceptions=True)
        finally:
            for w in watchers:
                w.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        reason = self._halt_reason or "run stopped"
        for job in queue:  # never dispatched
            on_result(self._not_sent(job, f"not sent: {reason}", 0, None))
        self.stats.halted = self._halt_reason
        self.stats.window_decreases = self._limiter.decreases
        self.stats.flow = self.flow_state()
        return self.stats

    def flow_state(self) -> FlowState:
        """A snapshot of how fast the uploader may send now (see :mod:`bulk_sync.events`)."""
        now = self._clock()
        breaker = self._breaker
        next_try = breaker.next_try_at
        return FlowState(
            window=self._limiter.window,
            ceiling=self._limiter.ceiling,
            in_flight=self._in_flight,
            breaker=breaker.state,
            unavailable_since=self._since_wall if breaker.state != CLOSED else None,
            next_try_in=max(0.0, next_try - now) if next_try is not None else None,
            paused_seconds=self._paused_seconds(
                now if self._halted_at is None else min(now, self._halted_at)
            ),
            widest=self._limiter.widest,
            narrowed=self._limiter.decreases,
        )

    def halt(self, reason: str) -> None:
        if not self._halted.is_set():
            self._halt_reason = reason
            self._halted_at = self._clock()
            self._halted.set()
            self._grant()
            log.warning("halting: %s", reason)

    # -- workers --------------------------------------------------------------------------

    async def _relay_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.halt("interrupted")

    async def _cancel_after_grace(self, workers: list[asyncio.Task[None]]) -> None:
        await self._halted.wait()
        await asyncio.sleep(self._grace)
        for w in workers:
            w.cancel()

    async def _watch_outage(self) -> None:
        """Halt the run once the API has been unavailable for ``max_outage`` seconds."""
        limit = self._max_outage
        if limit is None:
            return
        while not self._halted.is_set():
            changed = self._changed
            since = self._breaker.unavailable_since
            if since is None:
                await self._until(changed, None)
                continue
            left = since + limit - self._clock()
            if left <= 0:
                self.stats.outage = True
                self.halt(
                    f"the API was unavailable for more than {limit:g} s (--max-outage), "
                    f"since {_hms(self._since_wall)}; run again with --resume REPORT to "
                    "send the rest"
                )
                return
            await self._until(changed, left)

    async def _worker(self, queue: Iterator[Job], on_result: Callable[[JobResult], None]) -> None:
        for job in queue:
            if self._halted.is_set():
                on_result(self._not_sent(job, f"not sent: {self._halt_reason}", 0, None))
                continue
            flight = _Flight()
            try:
                result = await self._send_job(job, flight)
            except asyncio.CancelledError:
                on_result(self._cancelled(job, flight))
                raise
            self.stats.jobs += 1
            self._finished += 1
            on_result(result)

    def _cancelled(self, job: Job, flight: _Flight) -> JobResult:
        """A job cut off after the grace period: what finished stands, the rest is
        ``not_sent``, saying so when a request was on the wire (it may have been applied;
        sending it again is safe, the API merges)."""
        error = f"not sent: {self._halt_reason}"
        if flight.on_wire:
            error += (
                "; a request was in flight and may have been applied (sending it again is safe)"
            )
        rest = PairOutcome(Status.NOT_SENT, flight.last_status, error, flight.requests)
        outcomes = tuple(flight.done.get(k, rest) for k in range(len(job.pairs)))
        return JobResult(job, outcomes, flight.requests)

    async def _send_job(self, job: Job, flight: _Flight | None = None) -> JobResult:
        flight = flight or _Flight()
        outcome, tries = await self._request(job.customer_id, job.body(), flight)
        attempts = tries.requests
        if isinstance(outcome, dict):
            return JobResult(job, tuple(_ok(p, outcome, attempts) for p in job.pairs), attempts)
        if isinstance(outcome, DocumentRejected) and len(job.pairs) > 1:
            log.info(
                "customer %r: map rejected (HTTP 422), re-sending its %d attributes one by one",
                job.customer_id,
                len(job.pairs),
            )
            outcomes = []
            requests = attempts
            for k, pair in enumerate(job.pairs):
                single, more = await self._request(
                    job.customer_id, {pair.attribute: pair.value}, flight
                )
                requests += more.requests
                if isinstance(single, dict):
                    outcomes.append(_ok(pair, single, attempts + more.requests))
                else:
                    outcomes.append(self._failure(single, more, attempts + more.requests))
                flight.done[k] = outcomes[-1]
            return JobResult(job, tuple(outcomes), requests)
        failure = self._failure(outcome, tries, attempts)
        return JobResult(job, (failure,) * len(job.pairs), attempts)

    def _failure(self, exc: BaseException, tries: _Tries, attempts: int) -> PairOutcome:
        if isinstance(exc, _Halted):  # the last answer, if any, is the final HTTP status
            status = tries.last.status if tries.last is not None else None
            return PairOutcome(Status.NOT_SENT, status, f"not sent: {self._halt_reason}", attempts)
        if isinstance(exc, AuthError):
            return PairOutcome(
                Status.NOT_SENT,
                exc.status,
                f"not sent: credentials rejected (HTTP {exc.status}); the run stopped",
                attempts,
            )
        if isinstance(exc, CertificateError):
            return PairOutcome(Status.NOT_SENT, None, f"not sent: {exc.message}", attempts)
        if isinstance(exc, ApiError):
            text = _describe(exc, tries.counted)
            return PairOutcome(Status.FAILED, exc.status, text, attempts)
        return PairOutcome(Status.FAILED, None, f"internal error: {type(exc).__name__}", attempts)

    def _not_sent(self, job: Job, error: str, attempts: int, http_status: int | None) -> JobResult:
        o = PairOutcome(Status.NOT_SENT, http_status, error, attempts)
        return JobResult(job, (o,) * len(job.pairs), attempts)

    # -- one request with retries ------------------------------------------------------

    async def _request(
        self, customer_id: str, body: dict[str, str], flight: _Flight | None = None
    ) -> tuple[dict[str, str] | BaseException, _Tries]:
        """Send until accepted or given up: ``(map or the last error, the attempts)``.

        The first attempt runs without tenacity (most requests succeed at once, and
        building a retry controller per request was a fifth of the upload's CPU time);
        after a retriable failure, the rest runs in :meth:`_retry_rest`, with the same
        decisions in the same order as one tenacity loop would make them (retry? then
        wait, drawing the jitter; then stop? then sleep).
        """
        tries = _Tries(self._clock())
        try:
            try:
                result = await self._attempt(customer_id, body, flight, tries)
            except ApiError as exc:
                if not isinstance(exc, RetriableError):
                    return exc, tries
                delay = self._wait(tries.counted + tries.unsure, exc)
                if self._stop(tries):
                    return exc, tries
                await self._interruptible_sleep(delay)
            else:
                return result, tries
        except _Halted as exc:
            return exc, tries
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected library error: fail this map only
            log.exception("customer %r: unexpected error while sending", customer_id)
            return exc, tries
        return await self._retry_rest(customer_id, body, tries, flight)

    def _wait(self, failures: int, exc: BaseException | None) -> float:
        """The backoff after ``failures`` failed attempts (at least the Retry-After)."""
        delay = self._retry.backoff(max(1, failures), self._rnd)
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER))
        return delay

    def _stop(self, tries: _Tries) -> bool:
        policy = self._retry
        if tries.counted >= policy.max_attempts:
            return True
        if policy.deadline is None:
            return False
        return self._clock() - tries.started - tries.held >= policy.deadline

    async def _retry_rest(
        self,
        customer_id: str,
        body: dict[str, str],
        tries: _Tries,
        flight: _Flight | None = None,
    ) -> tuple[dict[str, str] | BaseException, _Tries]:
        """Attempts 2, 3, ... after a retriable failure of the first (tenacity)."""

        def stop(state: RetryCallState) -> bool:
            return self._stop(tries)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self._wait(tries.counted + tries.unsure, exc)

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(_retriable),
            sleep=self._interruptible_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    result = await self._attempt(customer_id, body, flight, tries, retry=True)
                    return result, tries
        except (ApiError, _Halted) as exc:
            return exc, tries
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected library error: fail this map only
            log.exception("customer %r: unexpected error while sending", customer_id)
            return exc, tries
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        customer_id: str,
        body: dict[str, str],
        flight: _Flight | None,
        tries: _Tries,
        *,
        retry: bool = False,
    ) -> dict[str, str]:
        """One attempt: admission (breaker, pause, window, rate), the request, and its
        answer fed back as one sample. Raises the attempt's :class:`ApiError`.

        Failures still ``unsure`` are decided once this attempt has its place, just before
        it goes, not when it starts to wait for one: the requests ahead of it in the queue
        may be the ones whose failures open the breaker (after the requests in flight all
        time out, the window is down to one and they go one at a time)."""
        probe = await self._admit(tries)
        if tries.unsure:
            if probe or self.stats.breaker_openings > tries.epoch or self._breaker.state != CLOSED:
                tries.unsure = 0  # they were the start of an outage
            else:
                tries.counted += tries.unsure
                tries.unsure = 0
                if tries.last is not None and self._stop(tries):
                    self._release()  # the place taken for an attempt that will not go
                    raise tries.last
        tries.requests += 1
        self.stats.requests += 1
        if retry:
            self.stats.retries += 1
        sent_at = self._clock()
        self._in_flight += 1
        try:
            result = await self._on_wire(customer_id, body, flight)
        except ApiError as exc:
            self._in_flight -= 1
            tries.last = exc
            if flight is not None and exc.status is not None:
                flight.last_status = exc.status
            try:
                verdict = self._observe(exc, customer_id, sent_at, probe)
            finally:
                self._release()  # after the window has taken the refusal into account
            if verdict == "counted":
                tries.counted += 1
            elif verdict == "unsure":
                tries.unsure += 1
                tries.epoch = self.stats.breaker_openings
            raise
        except BaseException:
            self._in_flight -= 1
            self._release()
            if probe:
                self._breaker.abandon_probe(self._clock())
                self._signal_change()
            raise
        busy = self._held - self._pacing  # on the wire, or about to be
        self._in_flight -= 1
        self._release()
        self.stats.by_status[200] = self.stats.by_status.get(200, 0) + 1
        tries.counted += 1
        now = self._clock()
        limiter = self._limiter
        if limiter.window < limiter.ceiling:
            limiter.on_success(
                sent_at=sent_at, now=now, in_flight=busy, may_grow=self._worth_probing()
            )
        else:
            limiter.on_success(sent_at=sent_at, now=now, in_flight=busy, may_grow=False)
        self._api_answered(customer_id, sent_at, now, probe)
        return result

    async def _on_wire(
        self, customer_id: str, body: dict[str, str], flight: _Flight | None
    ) -> dict[str, str]:
        if flight is None:
            return await self._sender.set_customer_attributes(customer_id, body)
        flight.requests += 1
        flight.on_wire = True
        try:
            result = await self._sender.set_customer_attributes(customer_id, body)
        except asyncio.CancelledError:
            raise  # cut off mid-flight: on_wire stays set for the report
        except BaseException:
            flight.on_wire = False
            raise
        flight.on_wire = False
        return result

    # -- feedback: one sample per answer ---------------------------------------------------

    def _observe(
        self, exc: ApiError, customer_id: str, sent_at: float, probe: bool
    ) -> Literal["counted", "unsure", "free"]:
        """Feed a failed attempt to the limiter, the breaker and the 403 rule, and say
        whether it counts against ``max_attempts``: ``free`` when it failed in an outage
        (the breaker open or probing, or opened by it), ``unsure`` when it may be the
        start of one (see :class:`_Tries`)."""
        now = self._clock()
        if exc.status is not None:
            self.stats.by_status[exc.status] = self.stats.by_status.get(exc.status, 0) + 1
        if isinstance(exc, RateLimited):
            self.stats.throttled += 1
        at_minimum = self._limiter.at_minimum
        if _is_overload(exc):
            # what still holds a place (this request's is given back just after)
            self._limiter.on_drop(sent_at=sent_at, now=now, in_flight=self._held - 1)
        if isinstance(exc, RateLimited) or (
            isinstance(exc, RetriableError) and exc.retry_after is not None
        ):
            self._throttled(exc, now, at_minimum)
        if isinstance(exc, AuthError):
            self.stats.auth_failed = True
            self.halt(f"credentials rejected (HTTP {exc.status})")
        if isinstance(exc, CertificateError):
            self.halt("the server's TLS certificate cannot be trusted (see --ca-bundle)")
        if not _is_outage_failure(exc):
            self._api_answered(customer_id, sent_at, now, probe, exc)
            return "counted"
        was_closed = self._breaker.state == CLOSED
        change = self._breaker.on_failure(
            now, probe=probe, retry_after=exc.retry_after, error=_short(exc), sent_at=sent_at
        )
        if change is not None:
            self._breaker_changed(now, change.reason)
        return "unsure" if was_closed and change is None else "free"

    def _worth_probing(self) -> bool:
        """Whether probing above the capacity found so far may still pay: the request that
        gets throttled pays its ``Retry-After``, which near the end of the run is no
        longer hidden behind other work but becomes the run's tail. So once what is left
        would be sent within twice that wait, the window only grows back to just under
        the window of the last refusal."""
        if self._total is None or not self._longest_wait:
            return True
        left = self._total - self._finished
        latency = self._limiter.latency or 0.0
        return left * latency > 2 * self._longest_wait * self._limiter.window

    def _throttled(self, exc: ApiError, now: float, at_minimum: bool) -> None:
        limit = self._max_outage
        if exc.retry_after is not None and limit is not None and exc.retry_after > limit:
            # The API says it will not take requests for longer than the run may wait
            # for it (a quota used up for the day, a maintenance window): stop now, as
            # --max-outage would after waiting that long, instead of waiting
            # MAX_RETRY_AFTER per attempt, one request at a time.
            self.stats.outage = True
            self.halt(
                f"the API asked to wait {exc.retry_after:.0f} s (HTTP {exc.status}, "
                f"Retry-After), longer than --max-outage ({limit:g} s); run again later "
                "with --resume REPORT to send the rest"
            )
            return
        if exc.retry_after is not None:
            self._longest_wait = max(self._longest_wait, min(exc.retry_after, MAX_RETRY_AFTER))
        if self._on_event is not None:
            self._on_event(Throttled(exc.status, exc.retry_after))
        if exc.retry_after is None or not at_minimum:
            return  # the smaller window is the answer; only this request waits
        if _is_outage_failure(exc):
            # A 5xx is the breaker's business: it waits at least the Retry-After before
            # its probe. Pausing the run here would let one request through per
            # Retry-After, and the breaker would not see its failures in a row while
            # each request's own failures counted against --max-attempts.
            return
        # The window cannot shrink further: honour the Retry-After for the whole run.
        until = now + min(exc.retry_after, MAX_RETRY_AFTER)
        if until > self._resume_at:
            self._held_back.add(max(now, self._resume_at), until)
            self._resume_at = until
            log.info(
                "server asked to wait %.1fs (HTTP %s) with one request in flight; "
                "pausing all requests",
                exc.retry_after,
                exc.status,
            )

    def _api_answered(
        self,
        customer_id: str,
        sent_at: float,
        now: float,
        probe: bool,
        exc: ApiError | None = None,
    ) -> None:
        """An answer that shows the API is up: the breaker closes, and the 403 rule
        counts (a 403) or starts again (anything else)."""
        breaker = self._breaker
        if exc is None and breaker.streak == 0 and breaker.state == CLOSED:
            if self._forbidden:
                self._forbidden.clear()
            return  # the common case: nothing to change
        down = breaker.unavailable_for(now)
        change = breaker.on_success(now, probe=probe, sent_at=sent_at)
        if change is not None:
            self._held_back.add(now - down, now)
            self._limiter.restart(now)
            self._breaker_changed(now, change.reason)
        if isinstance(exc, RetriableError):
            return  # a 429 says nothing about permissions
        if not isinstance(exc, Forbidden):
            self._forbidden.clear()
            return
        self._forbidden[customer_id] = exc.message
        if len(self._forbidden) >= FORBIDDEN_IN_A_ROW:
            self.stats.auth_failed = True
            self.halt(
                f"the API refused {len(self._forbidden)} customers in a row with HTTP 403 "
                f"(last: {exc.message}): the API key may lack a permission"
            )

    def _breaker_changed(self, now: float, reason: str) -> None:
        """Report a transition: a log line, and a :class:`BreakerChanged` event."""
        breaker = self._breaker
        if breaker.state == OPEN and self._since_wall is None:
            assert breaker.unavailable_since is not None
            self._since_wall = self._wall() - (now - breaker.unavailable_since)
            self.stats.breaker_openings += 1
        next_in = None if breaker.next_try_at is None else max(0.0, breaker.next_try_at - now)
        since = self._since_wall
        extra = {
            "event": "breaker",
            "state": breaker.state,
            "unavailable_since": since,
            "next_try_in": None if next_in is None else round(next_in, 1),
            "reason": reason,
        }
        if breaker.state == CLOSED:
            self._since_wall = None
            log.warning("API available again (%s); sending resumes", reason, extra=extra)
        elif breaker.state == OPEN:
            log.warning("%s (%s)", unavailable_text(since, next_in), reason, extra=extra)
        else:
            log.info("%s: probing with one request", unavailable_text(since, None), extra=extra)
        self._signal_change()
        if self._on_event is not None:
            self._on_event(BreakerChanged(breaker.state, self._since_wall, next_in, reason))

    def _paused_seconds(self, now: float) -> float:
        down = self._breaker.unavailable_for(now)
        return self._held_back.seconds(now, now - down if down else None)

    def _signal_change(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- admission: breaker, pause, window, rate ---------------------------------------------

    async def _admit(self, tries: _Tries) -> bool:
        """Wait until this attempt may go. True when it is the breaker's probe."""
        while True:
            if self._halted.is_set():
                raise _Halted
            probe = False
            if self._breaker.state != CLOSED:
                probe = await self._breaker_permit(tries)
            while self._resume_at and (delay := self._resume_at - self._clock()) > 0:
                await self._interruptible_sleep(delay)
            await self._take_slot()
            if probe:
                break
            if self._breaker.state == CLOSED and self._resume_at <= self._clock():
                break
            # The breaker opened, or the run was paused (a Retry-After with the window at
            # one), while this attempt waited for its place: it must not go now (one
            # queued attempt after another would be sent into the pause and refused).
            self._release()
        if self._interval:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
            if slot > now:
                self._pacing += 1
                try:
                    await self._interruptible_sleep(slot - now)
                except BaseException:
                    self._release()
                    raise
                finally:
                    self._pacing -= 1
        return probe

    async def _breaker_permit(self, tries: _Tries) -> bool:
        """Wait while the breaker holds requests back (not counted against the
        request's ``deadline``). True when this attempt is the probe."""
        started = self._clock()
        try:
            while True:
                if self._halted.is_set():
                    raise _Halted
                now = self._clock()
                permit = self._breaker.permit(now)
                if permit is Permit.GO:
                    return False
                if permit is Permit.PROBE:
                    self._breaker_changed(now, "one request probes whether the API is back")
                    return True
                next_try = self._breaker.next_try_at
                await self._until(self._changed, None if next_try is None else next_try - now)
        finally:
            tries.held += self._clock() - started

    async def _until(self, event: asyncio.Event, seconds: float | None) -> None:
        """Wait for ``event``, at most ``seconds`` (``None``: no limit), or a halt."""
        waiters: list[asyncio.Future[object]] = [
            asyncio.ensure_future(event.wait()),
            asyncio.ensure_future(self._halted.wait()),
        ]
        if seconds is not None:
            waiters.append(asyncio.ensure_future(self._sleep(max(0.0, seconds))))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _take_slot(self) -> None:
        """Take a place in the window, waiting (first come, first served) for one."""
        if self._held < self._limiter.window and not self._waiters:
            self._held += 1
            return
        granted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            got = await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled() and granted.result():
                self._release()  # a place was handed over just before the cancellation
            else:
                with contextlib.suppress(ValueError):  # _grant may have dropped it already
                    self._waiters.remove(granted)
            raise
        if not got:
            raise _Halted

    def _release(self) -> None:
        """Give back a place taken by :meth:`_take_slot`."""
        self._held -= 1
        self._grant()

    def _grant(self) -> None:
        """Hand free places to waiters (on a halt, wake them all without one)."""
        halted = self._halted.is_set()
        while self._waiters and (halted or self._held < self._limiter.window):
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            if not halted:
                self._held += 1
            waiter.set_result(not halted)

    async def _interruptible_sleep(self, seconds: float) -> None:
        if self._halted.is_set():
            raise _Halted
        if seconds <= 0:
            return
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        halt = asyncio.ensure_future(self._halted.wait())
        try:
            await asyncio.wait({sleeper, halt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            halt.cancel()
        if self._halted.is_set():
            raise _Halted


def _hms(wall: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall)) if wall is not None else "?"


def _short(exc: ApiError) -> str:
    return f"HTTP {exc.status}: {exc.message}" if exc.status is not None else exc.message


def _ok(pair: Pair, response: Mapping[str, str], attempts: int) -> PairOutcome:
    shown = response.get(pair.attribute)
    status = getattr(response, "status", 200)
    return PairOutcome(Status.OK, status, confirmation_note(pair, response, shown), attempts, shown)


def confirmation_note(pair: Pair, response: Mapping[str, str], shown: str | None) -> str:
    """The ``error`` of an ``ok`` row: empty when the API's answer shows the value sent
    (confirmed), else why the write, accepted, is not confirmed."""
    if shown == pair.value:
        return ""
    why = getattr(response, "note", "")
    if not why:
        why = (
            "the answer does not include this attribute"
            if shown is None
            else "the answer shows another value for this attribute"
        )
    return f"accepted, not confirmed: {why}"


def _describe(exc: ApiError, attempts: int) -> str:
    if isinstance(exc, CustomerNotFound):
        text = f"customer not found (HTTP 404): {exc.message}"
    elif isinstance(exc, DocumentRejected):
        text = f"rejected by the API (HTTP 422): {exc.message}"
    elif isinstance(exc, Forbidden):
        text = f"refused by the API (HTTP 403): {exc.message}"
    elif exc.status == 413:
        text = (
            f"HTTP 413: {exc.message} (the map is too large for one call: "
            "try --max-attributes-per-request)"
        )
    elif exc.status is not None:
        text = f"HTTP {exc.status}: {exc.message}"
    else:
        text = exc.message
    if exc.retriable and attempts > 1:
        text = f"gave up after {attempts} attempts; last error: {text}"
    return text
