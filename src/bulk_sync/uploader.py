"""Concurrent upload of customer maps: bounded concurrency, a rate cap, retries.

Policies are small parts (tenacity style) and every dependency is passed in:
the sender (anything with ``set_customer_attributes``), the sleep, the clock and the
random source, so tests run a thousand retries without waiting.

What each API outcome means for a run (DESIGN.md section 5):

- success: every pair of the map is ``ok``;
- retriable (429, 5xx, connection errors, timeouts): retried with exponential backoff
  and jitter, within ``max_attempts`` and the per-request ``deadline``; a
  ``Retry-After`` pauses *every* worker, not only the one that got it;
- 422 on a map of several pairs: the map is re-sent one pair at a time, so only the
  offending pairs fail (safe: the API merges);
- 404 and other 4xx: that map's pairs fail, the run goes on;
- 401/403: the run halts; nothing new is sent; what was not accepted is ``not_sent``.

A halt (credentials rejected, or the caller's ``stop`` event) stops dispatching at
once, interrupts backoff sleeps, and gives requests already on the wire
``grace_period`` seconds before they are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from bulk_sync.errors import (
    ApiError,
    AuthError,
    CertificateError,
    CustomerNotFound,
    DocumentRejected,
    RateLimited,
    RetriableError,
)
from bulk_sync.events import EventHandler, FlowState, Throttled
from bulk_sync.models import Pair, Status

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

MAX_RETRY_AFTER = 300.0  # a Retry-After longer than this is treated as this


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
    by_status: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Flight:
    """What one job has done so far, for a job cancelled mid-way."""

    requests: int = 0
    on_wire: bool = False
    done: dict[int, PairOutcome] = field(default_factory=dict)


class _Halted(Exception):
    """Raised inside a worker when the run halts; the job ends ``not_sent``."""


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, RetriableError)


class Uploader:
    def __init__(
        self,
        sender: Sender,
        *,
        concurrency: int = 8,
        rate: float | None = None,
        retry: RetryPolicy | None = None,
        grace_period: float = 2.0,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rnd: random.Random | None = None,
        on_event: EventHandler | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._sender = sender
        self._concurrency = concurrency
        self._interval = 1.0 / rate if rate else 0.0
        self._retry = retry or RetryPolicy()
        self._grace = grace_period
        self._sleep = sleep
        self._clock = clock
        self._rnd = rnd or random.Random()
        self._next_slot = 0.0
        self._resume_at = 0.0
        self._halted = asyncio.Event()
        self._halt_reason = ""
        self._on_event = on_event
        self._in_flight = 0
        self._paused = 0.0  # seconds of Retry-After pauses so far (overlaps counted once)
        self.stats = UploadStats()

    # -- public -------------------------------------------------------------------------

    async def run(
        self,
        jobs: Iterable[Job],
        on_result: Callable[[JobResult], None],
        stop: asyncio.Event | None = None,
    ) -> UploadStats:
        """Send every job; ``on_result`` is called exactly once per job, as it finishes."""
        queue: Iterator[Job] = iter(jobs)
        workers = [
            asyncio.create_task(self._worker(queue, on_result)) for _ in range(self._concurrency)
        ]
        watchers = [asyncio.create_task(self._cancel_after_grace(workers))]
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
        return self.stats

    def flow_state(self) -> FlowState:
        """A snapshot of how fast the uploader may send now (see :mod:`bulk_sync.events`)."""
        pause_left = max(0.0, self._resume_at - self._clock())
        return FlowState(
            window=self._concurrency,
            ceiling=self._concurrency,
            in_flight=self._in_flight,
            paused_seconds=self._paused - pause_left,
        )

    def halt(self, reason: str) -> None:
        if not self._halted.is_set():
            self._halt_reason = reason
            self._halted.set()
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
        rest = PairOutcome(Status.NOT_SENT, None, error, flight.requests)
        outcomes = tuple(flight.done.get(k, rest) for k in range(len(job.pairs)))
        return JobResult(job, outcomes, flight.requests)

    async def _send_job(self, job: Job, flight: _Flight | None = None) -> JobResult:
        flight = flight or _Flight()
        outcome, attempts = await self._request(job.customer_id, job.body(), flight)
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
                single, n = await self._request(
                    job.customer_id, {pair.attribute: pair.value}, flight
                )
                requests += n
                if isinstance(single, dict):
                    outcomes.append(_ok(pair, single, attempts + n))
                else:
                    outcomes.append(self._failure(single, attempts + n))
                flight.done[k] = outcomes[-1]
            return JobResult(job, tuple(outcomes), requests)
        failure = self._failure(outcome, attempts)
        return JobResult(job, (failure,) * len(job.pairs), attempts)

    def _failure(self, exc: BaseException, attempts: int) -> PairOutcome:
        if isinstance(exc, _Halted):
            return PairOutcome(Status.NOT_SENT, None, f"not sent: {self._halt_reason}", attempts)
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
            return PairOutcome(Status.FAILED, exc.status, _describe(exc, attempts), attempts)
        return PairOutcome(Status.FAILED, None, f"internal error: {type(exc).__name__}", attempts)

    def _not_sent(self, job: Job, error: str, attempts: int, http_status: int | None) -> JobResult:
        o = PairOutcome(Status.NOT_SENT, http_status, error, attempts)
        return JobResult(job, (o,) * len(job.pairs), attempts)

    # -- one request with retries ------------------------------------------------------

    async def _request(
        self, customer_id: str, body: dict[str, str], flight: _Flight | None = None
    ) -> tuple[dict[str, str] | BaseException, int]:
        """Send until accepted or given up: ``(map or the last error, attempts made)``.

        The first attempt runs without tenacity (most requests succeed at once, and
        building a retry controller per request was a fifth of the upload's CPU time);
        after a retriable failure, the rest runs in :meth:`_retry_rest`, with the same
        decisions in the same order as one tenacity loop would make them (retry? then
        wait, drawing the jitter; then stop? then sleep).
        """
        attempts = 0
        started = self._clock()
        try:
            await self._gate()
            attempts = 1
            self.stats.requests += 1
            try:
                result = await self._on_wire(customer_id, body, flight)
            except ApiError as exc:
                self._observe(exc)
                if not isinstance(exc, RetriableError):
                    return exc, 1
                delay = self._wait(1, exc)
                if self._stop(1, started):
                    return exc, 1
                await self._interruptible_sleep(delay)
            else:
                self.stats.by_status[200] = self.stats.by_status.get(200, 0) + 1
                return result, 1
        except _Halted as exc:
            return exc, attempts
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected library error: fail this map only
            log.exception("customer %r: unexpected error while sending", customer_id)
            return exc, attempts
        return await self._retry_rest(customer_id, body, started, flight)

    def _wait(self, failures: int, exc: BaseException | None) -> float:
        delay = self._retry.backoff(failures, self._rnd)
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER))
        return delay

    def _stop(self, attempts: int, started: float) -> bool:
        policy = self._retry
        if attempts >= policy.max_attempts:
            return True
        return policy.deadline is not None and self._clock() - started >= policy.deadline

    async def _on_wire(
        self, customer_id: str, body: dict[str, str], flight: _Flight | None
    ) -> dict[str, str]:
        self._in_flight += 1
        try:
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
        finally:
            self._in_flight -= 1

    async def _retry_rest(
        self,
        customer_id: str,
        body: dict[str, str],
        started: float,
        flight: _Flight | None = None,
    ) -> tuple[dict[str, str] | BaseException, int]:
        """Attempts 2, 3, ... after a retriable failure of the first (tenacity)."""
        attempts = 1

        def stop(state: RetryCallState) -> bool:
            return self._stop(state.attempt_number + 1, started)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self._wait(state.attempt_number + 1, exc)

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
                    await self._gate()
                    attempts += 1
                    self.stats.requests += 1
                    self.stats.retries += 1
                    try:
                        result = await self._on_wire(customer_id, body, flight)
                    except ApiError as exc:
                        self._observe(exc)
                        raise
                    self.stats.by_status[200] = self.stats.by_status.get(200, 0) + 1
                    return result, attempts
        except (ApiError, _Halted) as exc:
            return exc, attempts
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected library error: fail this map only
            log.exception("customer %r: unexpected error while sending", customer_id)
            return exc, attempts
        raise AssertionError("unreachable")  # pragma: no cover

    def _observe(self, exc: ApiError) -> None:
        if exc.status is not None:
            self.stats.by_status[exc.status] = self.stats.by_status.get(exc.status, 0) + 1
        if isinstance(exc, RateLimited):
            self.stats.throttled += 1
        if self._on_event is not None and (
            isinstance(exc, RateLimited)
            or (isinstance(exc, RetriableError) and exc.retry_after is not None)
        ):
            self._on_event(Throttled(exc.status, exc.retry_after))
        if isinstance(exc, RetriableError) and exc.retry_after is not None:
            # A Retry-After slows the whole run, not only this request.
            now = self._clock()
            until = now + min(exc.retry_after, MAX_RETRY_AFTER)
            if until > self._resume_at:
                self._paused += until - max(now, self._resume_at)
                self._resume_at = until
                log.info(
                    "server asked to wait %.1fs (HTTP %s); pausing all requests",
                    exc.retry_after,
                    exc.status,
                )
        if isinstance(exc, AuthError):
            self.stats.auth_failed = True
            self.halt(f"credentials rejected (HTTP {exc.status})")
        if isinstance(exc, CertificateError):
            self.halt("the server's TLS certificate cannot be trusted (see --ca-bundle)")

    async def _gate(self) -> None:
        """Wait for any global pause and for this request's slot under the rate cap."""
        if self._halted.is_set():
            raise _Halted
        while (delay := self._resume_at - self._clock()) > 0:
            await self._interruptible_sleep(delay)
        if self._interval:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
            if slot > now:
                await self._interruptible_sleep(slot - now)

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
