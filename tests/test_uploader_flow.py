"""The uploader's flow control against a model API, in virtual time: the adaptive window,
429s without collapse, the breaker through an outage, --max-outage, the 403 rule.

``VirtualTime`` is an event-loop-driven clock: ``sleep`` parks the caller until the
virtual clock reaches its time, and the driver moves the clock to the earliest such time
whenever every task is idle. A 20-second outage takes milliseconds; nothing sleeps for
real.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import pytest

from bulk_sync.errors import (
    ApiError,
    AuthError,
    CustomerNotFound,
    Forbidden,
    RateLimited,
    ServerError,
    TransportError,
)
from bulk_sync.events import BreakerChanged, Event
from bulk_sync.flow import Breaker
from bulk_sync.models import Pair, Status
from bulk_sync.uploader import (
    FORBIDDEN_IN_A_ROW,
    Concurrency,
    Job,
    JobResult,
    RetryPolicy,
    Uploader,
)

WALL0 = 1_800_000_000.0  # the wall clock at virtual time 0


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL0 + self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), next(self._seq), future))
        await future

    def _advance(self) -> bool:
        while self._timers:
            when, _, future = heapq.heappop(self._timers)
            if future.done():
                continue
            self.now = max(self.now, when)
            future.set_result(None)
            return True
        return False

    async def drive(self, coro: Coroutine[Any, Any, Any], idle: int = 30) -> Any:
        task = asyncio.ensure_future(coro)
        while not task.done():
            for _ in range(idle):
                await asyncio.sleep(0)
                if task.done():
                    break
            else:
                if not self._advance():
                    await asyncio.sleep(0.001)  # something real (a grace period) is pending
        return task.result()


class ModelApi:
    """An API with a capacity (429 + Retry-After beyond it), a latency (plus up to
    ``jitter``, so that answers do not all come back at the same instant), and an optional
    outage: ``down(now)`` says whether a request sent at ``now`` fails, and how."""

    def __init__(
        self,
        vt: VirtualTime,
        *,
        latency: float = 0.05,
        jitter: float = 0.0,
        capacity: int | None = None,
        retry_after: float = 1.0,
        down: Callable[[float], ApiError | None] | None = None,
        answer: Callable[[str, Mapping[str, str]], ApiError | None] | None = None,
        down_after: float = 0.001,
    ) -> None:
        self.vt = vt
        self.down_after = down_after  # how long a failure in an outage takes to come back
        self.latency = latency
        self.jitter = jitter
        self._rnd = random.Random(7)
        self.capacity = capacity
        self.retry_after = retry_after
        self.down = down
        self.answer = answer
        self.in_flight = 0
        self.max_in_flight = 0
        self.sent: list[tuple[float, str]] = []  # (time, customer)
        self.throttled = 0
        self.stored: dict[str, dict[str, str]] = {}

    async def set_customer_attributes(
        self, customer_id: str, attributes: Mapping[str, str]
    ) -> dict[str, str]:
        now = self.vt.now
        self.sent.append((now, customer_id))
        if self.down is not None and (failure := self.down(now)) is not None:
            await self.vt.sleep(self.down_after)
            raise failure
        if self.capacity is not None and self.in_flight >= self.capacity:
            self.throttled += 1
            await self.vt.sleep(0.001)
            raise RateLimited("too many", status=429, retry_after=self.retry_after)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.vt.sleep(self.latency + self._rnd.uniform(0, self.jitter))
        finally:
            self.in_flight -= 1
        if self.answer is not None and (refusal := self.answer(customer_id, attributes)):
            raise refusal
        self.stored.setdefault(customer_id, {}).update(attributes)
        return dict(self.stored[customer_id])


def jobs(n: int) -> list[Job]:
    return [Job(f"c{i:05d}", (Pair("a", f"v{i}", (i,)),)) for i in range(n)]


def uploader(
    api: ModelApi,
    *,
    concurrency: Concurrency = 8,
    events: list[Event] | None = None,
    **kw: Any,
) -> Uploader:
    vt = api.vt
    return Uploader(
        api,
        concurrency=concurrency,
        sleep=vt.sleep,
        clock=vt.clock,
        wall=vt.wall,
        grace_period=0.0,
        on_event=None if events is None else events.append,
        **kw,
    )


async def run(vt: VirtualTime, up: Uploader, work: list[Job]) -> list[JobResult]:
    results: list[JobResult] = []
    await vt.drive(up.run(work, results.append))
    assert sorted(r.job.customer_id for r in results) == sorted(j.customer_id for j in work)
    return results


def statuses(results: list[JobResult]) -> dict[Status, int]:
    out: dict[Status, int] = {}
    for r in results:
        for o in r.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
    return out


# ----------------------------------------------------------------------------- the window


@pytest.mark.parametrize("capacity", [48, 100])
async def test_a_fixed_ceiling_above_capacity_does_not_collapse(capacity: int) -> None:
    vt = VirtualTime()
    api = ModelApi(vt, capacity=capacity)
    n = 5000
    results = await run(vt, up := uploader(api, concurrency=capacity + 16), jobs(n))
    assert statuses(results) == {Status.OK: n}
    ideal = capacity / 0.05
    assert n / vt.now >= 0.85 * ideal  # the old global pause made this 6% (47/s of 960)
    assert api.throttled <= 0.02 * n
    assert up.flow_state().window <= capacity + 1


@pytest.mark.parametrize("capacity", [48, 100])
async def test_auto_finds_the_capacity_with_few_429s(capacity: int) -> None:
    vt = VirtualTime()
    api = ModelApi(vt, capacity=capacity)
    n = 5000
    up = uploader(api, concurrency="auto")
    results = await run(vt, up, jobs(n))
    assert statuses(results) == {Status.OK: n}
    assert n / vt.now >= 0.85 * capacity / 0.05
    assert api.throttled <= 0.02 * n
    state = up.flow_state()
    assert state.ceiling == 256
    assert 0.7 * capacity <= state.window <= capacity + 1


async def test_auto_starts_low_and_stops_growing_at_the_ceiling_when_nothing_pushes_back() -> None:
    vt = VirtualTime()
    api = ModelApi(vt)
    up = uploader(api, concurrency="auto")
    task = asyncio.ensure_future(vt.drive(up.run(jobs(3000), lambda r: None)))
    await asyncio.sleep(0)
    assert up.flow_state().window == 8  # what the default would send
    await task
    assert api.max_in_flight == 256
    assert up.flow_state().window == 256


async def test_a_429_shrinks_the_window_and_delays_only_its_own_request() -> None:
    vt = VirtualTime()
    throttled_once = {"c00000"}

    def answer(cid: str, body: Mapping[str, str]) -> ApiError | None:
        if cid in throttled_once:
            throttled_once.discard(cid)
            return RateLimited("slow down", status=429, retry_after=30)
        return None

    api = ModelApi(vt, answer=answer)
    up = uploader(api, concurrency=8)
    results = await run(vt, up, jobs(200))
    assert statuses(results) == {Status.OK: 200}
    others = [t for t, cid in api.sent if cid != "c00000"]
    assert max(others) < 5  # the rest went on: no run-wide pause, no stampede after it
    first, second = [t for t, cid in api.sent if cid == "c00000"]
    assert second - first >= 30  # the Retry-After is honoured for that request
    assert up.flow_state().paused_seconds == 0


async def test_the_rate_cap_stays_hard_whatever_the_window() -> None:
    vt = VirtualTime()
    api = ModelApi(vt, latency=0.2)
    await run(vt, uploader(api, concurrency="auto", rate=50), jobs(400))
    times = sorted(t for t, _ in api.sent)
    for k in range(len(times) - 50):
        assert times[k + 50] - times[k] >= 1.0 - 1e-9  # never 51 requests within a second


def token_bucket(rate: float, burst: int, refused: list[float]) -> Callable[[float], Any]:
    """An API's request-rate limit: ``rate`` requests a second, ``burst`` at once; 429 with
    ``Retry-After: 1`` beyond it (the times refused are added to ``refused``)."""
    bucket = {"tokens": float(burst), "at": 0.0}

    def down(now: float) -> ApiError | None:
        bucket["tokens"] = min(burst, bucket["tokens"] + (now - bucket["at"]) * rate)
        bucket["at"] = now
        if bucket["tokens"] < 1:
            refused.append(now)
            return RateLimited("rate limit", status=429, retry_after=1.0)
        bucket["tokens"] -= 1
        return None

    return down


@pytest.mark.parametrize("concurrency", [8, 64, "auto"])
async def test_a_rate_limited_api_gets_every_row_ok_and_nothing_goes_while_the_run_is_paused(
    concurrency: Concurrency,
) -> None:
    # 50 requests a second against 10 ms answers: even one request at a time is too fast,
    # so the run pauses for the Retry-After. Requests already queued for the one place
    # used to go out during that pause, one after the other, each refused again: with
    # `auto` or 64, rows failed after 5 attempts that were all 429s.
    vt = VirtualTime()
    refused: list[float] = []
    api = ModelApi(vt, latency=0.01, down=token_bucket(50, 10, refused))
    n = 600
    results = await run(vt, uploader(api, concurrency=concurrency), jobs(n))
    assert statuses(results) == {Status.OK: n}
    # after the first round trip (a fixed ceiling of 64 sends 64 at once): a few refusals
    # per pause, not one per queued request (c8 made 289 before)
    assert len([t for t in refused if t > 0.05]) <= 0.25 * n


# ----------------------------------------------------------------------------- outages


def outage(start: float, end: float, error: Callable[[], ApiError]) -> Callable[[float], Any]:
    return lambda now: error() if start <= now < end else None


def s503() -> ApiError:
    return ServerError("service unavailable", status=503)


def refused() -> ApiError:
    return TransportError("connection refused")


@pytest.mark.parametrize(
    ("error", "concurrency"), [(s503, 8), (refused, 8), (s503, "auto"), (refused, "auto")]
)
async def test_a_20_s_outage_ends_with_every_row_ok_and_few_requests_while_down(
    error: Callable[[], ApiError], concurrency: Concurrency
) -> None:
    vt = VirtualTime()
    api = ModelApi(vt, jitter=0.01, down=outage(0.5, 20.5, error))
    seen: list[Event] = []
    up = uploader(api, events=seen, concurrency=concurrency, retry=RetryPolicy(max_attempts=3))
    results = await run(vt, up, jobs(5000))
    assert statuses(results) == {Status.OK: 5000}
    during = [t for t, _ in api.sent if 0.5 <= t < 20.5]
    assert len(during) <= 60
    assert up.stats.breaker_openings == 1
    changes = [e for e in seen if isinstance(e, BreakerChanged)]
    assert changes[0].state == "open"
    assert changes[0].unavailable_since == pytest.approx(WALL0 + 0.5, abs=0.07)
    assert changes[0].next_try_in == pytest.approx(1.0)
    assert changes[-1].state == "closed"
    probes = [e for e in changes if e.state == "probing"]
    gaps = [b.unavailable_since for b in probes]  # all the same outage
    assert len(set(gaps)) == 1
    # one probe at a time, at growing intervals: ~1, 2, 4, 8, 10 s after each failure
    probe_times = sorted({round(t, 2) for t, _ in api.sent if 1.4 <= t < 20.5})
    intervals = [round(b - a) for a, b in itertools.pairwise(probe_times)]
    assert intervals == sorted(intervals)
    assert intervals[:3] == [2, 4, 8]
    # back to full speed: everything done within a few seconds of the end of the outage
    assert vt.now < 20.5 + 10 + 5000 / 140
    if concurrency == "auto":  # >100 in flight when it began: their late answers are no news
        assert api.max_in_flight > 100
    assert up.flow_state().paused_seconds >= 19


async def test_requests_held_back_by_the_breaker_keep_their_attempts_and_deadline() -> None:
    vt = VirtualTime()
    api = ModelApi(vt, down=outage(1.0, 100.0, s503))
    policy = RetryPolicy(max_attempts=2, deadline=5.0)
    results = await run(vt, uploader(api, retry=policy, max_outage=900), jobs(300))
    assert statuses(results) == {Status.OK: 300}
    requests = {o.attempts for r in results for o in r.outcomes}
    assert max(requests) > 2  # more requests than --max-attempts, none of them counted


@pytest.mark.parametrize("concurrency", [8, 64, "auto"])
async def test_an_outage_of_timeouts_costs_no_attempt_even_when_the_window_shrinks_to_one(
    concurrency: Concurrency,
) -> None:
    # The requests in flight when the API hangs all time out together: the window shrinks
    # to one, and the retries go one at a time. The first retry fails before the breaker
    # has seen its 10 failures in a row; that failure is part of the outage all the same.
    vt = VirtualTime()
    timed_out = lambda: TransportError("timed out waiting for the response")  # noqa: E731
    api = ModelApi(vt, down=outage(0.5, 4.5, timed_out), down_after=1.0)
    policy = RetryPolicy(max_attempts=2, initial=0.01, maximum=0.05)
    results = await run(vt, up := uploader(api, retry=policy, concurrency=concurrency), jobs(3000))
    assert statuses(results) == {Status.OK: 3000}
    assert up.stats.breaker_openings == 1


@pytest.mark.parametrize("concurrency", [8, "auto"])
async def test_an_outage_of_503s_with_retry_after_costs_no_attempt(
    concurrency: Concurrency,
) -> None:
    # The window drops to one; a run-wide pause for each Retry-After would then let one
    # request through every 3 s, the breaker would not see its 10 failures in a row for
    # 30 s, and meanwhile each request's own failures counted: rows failed with
    # --max-attempts 2. A 5xx is the breaker's business (it waits at least the
    # Retry-After before its probe); the run-wide pause is for 429s.
    vt = VirtualTime()
    unavailable = lambda: ServerError("down", status=503, retry_after=3.0)  # noqa: E731
    api = ModelApi(vt, down=outage(0.5, 6.5, unavailable))
    policy = RetryPolicy(max_attempts=2, initial=0.01, maximum=0.05)
    up = uploader(api, retry=policy, concurrency=concurrency)
    results = await run(vt, up, jobs(3000))
    assert statuses(results) == {Status.OK: 3000}
    assert up.stats.breaker_openings == 1


@pytest.mark.parametrize(("concurrency", "attempts"), [(1, 5), (1, 2), (2, 2), (3, 3)])
async def test_an_outage_costs_no_attempt_even_with_few_requests_in_flight(
    concurrency: int, attempts: int
) -> None:
    # With one request in flight, its own failures are the only ones: it used up its
    # --max-attempts (5) before the breaker saw 10 failures in a row, and its row ended
    # `failed` in an outage. The breaker opens before any request can use up its
    # attempts: after at most (max_attempts - 1) x ceiling + 1 failures in a row.
    vt = VirtualTime()
    api = ModelApi(vt, down=outage(0.5, 8.0, s503))
    policy = RetryPolicy(max_attempts=attempts, initial=0.01, maximum=0.05)
    up = uploader(api, retry=policy, concurrency=concurrency)
    results = await run(vt, up, jobs(200))
    assert statuses(results) == {Status.OK: 200}
    assert up.stats.breaker_openings == 1


async def test_flow_state_while_the_api_is_down_says_since_when_and_the_next_try() -> None:
    vt = VirtualTime()
    api = ModelApi(vt, down=outage(1.0, 1e9, s503))
    up = uploader(api, max_outage=60)
    task = asyncio.ensure_future(vt.drive(up.run(jobs(1000), lambda r: None)))
    while vt.now < 10 and not task.done():
        await asyncio.sleep(0)
    state = up.flow_state()
    assert state.breaker in ("open", "probing")
    assert state.unavailable_since == pytest.approx(WALL0 + 1.0, abs=0.01)
    assert state.next_try_in is None or 0 <= state.next_try_in <= 10
    assert state.in_flight <= 1
    assert state.paused_seconds == pytest.approx(vt.now - 1.0, abs=0.1)
    await task
    assert up.stats.outage


async def test_max_outage_stops_the_run_with_rows_not_sent_never_failed() -> None:
    vt = VirtualTime()
    api = ModelApi(vt, down=outage(3.0, 1e9, s503))
    up = uploader(api, max_outage=10)
    results = await run(vt, up, jobs(2000))
    counts = statuses(results)
    assert counts.get(Status.FAILED, 0) <= 8  # at most what was in flight
    assert counts[Status.OK] + counts[Status.NOT_SENT] + counts.get(Status.FAILED, 0) == 2000
    assert counts[Status.NOT_SENT] > 1000
    assert up.stats.outage
    assert "--max-outage" in up.stats.halted
    assert "--resume" in up.stats.halted
    assert vt.now <= 3.0 + 10 + 1
    not_sent = [o for r in results for o in r.outcomes if o.status is Status.NOT_SENT]
    assert all("unavailable for more than 10 s" in o.error for o in not_sent)


async def test_the_pause_reported_ends_when_max_outage_stops_the_run() -> None:
    """The summary's 'paused' is how long sending was held back: --max-outage 10 stops the
    run 10 s into the outage, and handing over the rows left (slow with millions of them)
    does not add to it (a 1M-row run with --max-outage 5 said 'paused 18.0s')."""
    vt = VirtualTime()
    api = ModelApi(vt, down=outage(3.0, 1e9, s503))
    up = uploader(api, max_outage=10)
    results: list[JobResult] = []

    def on_result(result: JobResult) -> None:
        results.append(result)
        if all(o.status is Status.NOT_SENT and not o.attempts for o in result.outcomes):
            vt.now += 0.01  # each customer left takes a while to report

    await vt.drive(up.run(jobs(2000), on_result))
    assert up.stats.outage
    assert vt.now > 3.0 + 10 + 5  # the rows left took seconds to hand over
    assert up.stats.flow is not None
    assert up.stats.flow.paused_seconds == pytest.approx(10.0, abs=1.0)


async def test_rows_not_sent_after_answers_keep_the_last_http_status() -> None:
    """DESIGN.md section 3: http_status is the final HTTP status, empty where none. A row
    whose requests were answered 503 until --max-outage stopped the run says 503; a row
    never sent says nothing."""
    vt = VirtualTime()
    api = ModelApi(vt, down=outage(3.0, 1e9, s503))
    results = await run(vt, uploader(api, max_outage=10), jobs(2000))
    not_sent = [o for r in results for o in r.outcomes if o.status is Status.NOT_SENT]
    tried = [o for o in not_sent if o.attempts]
    assert tried
    assert {o.http_status for o in tried} == {503}
    assert {o.http_status for o in not_sent if not o.attempts} <= {None}


@pytest.mark.parametrize(
    "refusal",
    [
        lambda: RateLimited("daily quota used up", status=429, retry_after=86400.0),
        lambda: ServerError("down for maintenance", status=503, retry_after=3600.0),
    ],
)
async def test_a_retry_after_longer_than_max_outage_stops_the_run_at_once(
    refusal: Callable[[], ApiError],
) -> None:
    # Waiting is capped at 5 minutes a time, so this used to wait 5 minutes per attempt,
    # one request at a time: hours for a few rows, with nothing to show for it.
    vt = VirtualTime()
    api = ModelApi(vt, down=lambda now: refusal() if now >= 0.2 else None)
    up = uploader(api, max_outage=900)
    results = await run(vt, up, jobs(100))
    counts = statuses(results)
    assert counts[Status.OK] >= 20
    assert counts[Status.NOT_SENT] == 100 - counts[Status.OK]
    assert vt.now < 5
    assert up.stats.outage
    assert "Retry-After" in up.stats.halted
    assert "--max-outage" in up.stats.halted
    assert "--resume" in up.stats.halted
    not_sent = [o for r in results for o in r.outcomes if o.status is Status.NOT_SENT]
    assert all("--max-outage" in o.error for o in not_sent)


async def test_answers_that_show_the_api_is_up_never_open_the_breaker() -> None:
    vt = VirtualTime()
    api = ModelApi(vt, answer=lambda cid, body: CustomerNotFound("nope", status=404))
    up = uploader(api)
    results = await run(vt, up, jobs(100))
    assert statuses(results) == {Status.FAILED: 100}
    assert up.stats.breaker_openings == 0


async def test_after_an_outage_the_window_slow_starts_back() -> None:
    vt = VirtualTime()
    api = ModelApi(vt, down=outage(1.0, 3.0, s503))
    seen: list[Event] = []
    up = uploader(api, concurrency=32, events=seen, breaker=Breaker(first_probe=0.5))
    windows: list[tuple[float, int]] = []

    async def watch() -> None:
        while True:
            windows.append((vt.now, up.flow_state().window))
            await vt.sleep(0.05)

    watcher = asyncio.ensure_future(watch())
    await run(vt, up, jobs(3000))
    watcher.cancel()
    closed = next(e for e in seen if isinstance(e, BreakerChanged) and e.state == "closed")
    assert closed is not None
    after = [w for t, w in windows if t > 3.0]
    assert min(after) <= 2  # restarted low
    assert max(after) >= 30  # and back near the ceiling


# ----------------------------------------------------------------------------- 403


async def test_a_403_fails_that_customer_with_the_servers_message_and_the_run_goes_on() -> None:
    vt = VirtualTime()

    def answer(cid: str, body: Mapping[str, str]) -> ApiError | None:
        if cid == "c00003":
            return Forbidden("Not enough SMS credits", status=403)
        return None

    api = ModelApi(vt, answer=answer)
    up = uploader(api)
    results = await run(vt, up, jobs(50))
    by_cid = {r.job.customer_id: r.outcomes[0] for r in results}
    refused_row = by_cid.pop("c00003")
    assert refused_row.status is Status.FAILED
    assert refused_row.http_status == 403
    assert "Not enough SMS credits" in refused_row.error
    assert {o.status for o in by_cid.values()} == {Status.OK}
    assert not up.stats.halted


async def test_403s_for_ten_different_customers_in_a_row_stop_the_run_like_a_401() -> None:
    vt = VirtualTime()
    api = ModelApi(vt, answer=lambda cid, body: Forbidden("Forbidden", status=403))
    up = uploader(api, concurrency=1)
    results = await run(vt, up, jobs(40))
    counts = statuses(results)
    assert counts == {Status.FAILED: FORBIDDEN_IN_A_ROW, Status.NOT_SENT: 40 - FORBIDDEN_IN_A_ROW}
    assert "403" in up.stats.halted
    assert "permission" in up.stats.halted
    assert len(api.sent) == FORBIDDEN_IN_A_ROW


async def test_403s_between_successes_or_for_one_customer_do_not_stop_the_run() -> None:
    vt = VirtualTime()
    refuse = {f"c{i:05d}" for i in range(0, 60, 2)}  # every other customer
    api = ModelApi(
        vt,
        answer=lambda cid, body: Forbidden("no", status=403) if cid in refuse else None,
    )
    up = uploader(api, concurrency=1)
    results = await run(vt, up, jobs(60))
    assert statuses(results) == {Status.FAILED: 30, Status.OK: 30}
    assert not up.stats.halted

    vt = VirtualTime()  # one customer split into 15 requests, each refused
    api = ModelApi(vt, answer=lambda cid, body: Forbidden("no", status=403))
    one = [Job("same", (Pair(f"a{k}", "v", (k,)),)) for k in range(15)]
    up = uploader(api, concurrency=1)
    results = await run(vt, up, one)
    assert statuses(results) == {Status.FAILED: 15}
    assert not up.stats.halted


async def test_a_401_still_stops_the_run_at_once() -> None:
    vt = VirtualTime()
    api = ModelApi(vt, answer=lambda cid, body: AuthError("bad key", status=401))
    up = uploader(api, concurrency=1)
    results = await run(vt, up, jobs(20))
    assert statuses(results) == {Status.NOT_SENT: 20}
    assert len(api.sent) == 1


async def test_a_stop_while_requests_wait_for_a_place_reports_them_not_sent() -> None:
    vt = VirtualTime()
    api = ModelApi(vt, latency=1.0)
    up = uploader(api, concurrency="auto")  # 256 workers, a window of 8: 248 wait
    stop = asyncio.Event()
    results: list[JobResult] = []

    async def stop_soon() -> None:
        await vt.sleep(0.5)
        stop.set()

    stopper = asyncio.ensure_future(stop_soon())
    await vt.drive(up.run(jobs(600), results.append, stop))
    await stopper
    assert len(results) == 600
    counts = statuses(results)
    assert counts[Status.NOT_SENT] >= 592
    waited = [r for r in results if r.outcomes[0].attempts == 0]
    assert len(waited) >= 592
    assert up.stats.halted == "interrupted"


async def test_paused_time_counts_each_second_once_when_an_outage_sends_retry_after() -> None:
    """A 503 with Retry-After during an outage pauses the run *and* is part of the outage:
    the time paused is the union of the two, never more than the time that went by (the
    page showed "paused 20 s so far" 14 s into a run)."""
    vt = VirtualTime()
    busy = lambda: ServerError("down", status=503, retry_after=1.0)  # noqa: E731
    api = ModelApi(vt, down=outage(1.0, 1e9, busy))
    up = uploader(api, max_outage=60)
    task = asyncio.ensure_future(vt.drive(up.run(jobs(1000), lambda r: None)))
    checked = 0
    while not task.done():
        await asyncio.sleep(0)
        if vt.now > 2 and checked < vt.now:
            paused = up.flow_state().paused_seconds
            assert paused <= vt.now - 1.0 + 0.05, (vt.now, paused)
            checked = vt.now
    await task
    assert up.stats.outage
    assert checked > 30
