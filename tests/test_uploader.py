"""The upload engine: concurrency, rate cap, retries, Retry-After, 422 isolation, halts.

A fake sender and a fake clock whose sleep only advances time: no test waits.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping

import pytest

from bulk_sync.errors import (
    ApiError,
    AuthError,
    CustomerNotFound,
    DocumentRejected,
    RateLimited,
    ServerError,
    TransportError,
)
from bulk_sync.models import Pair, Status
from bulk_sync.uploader import Job, JobResult, RetryPolicy, Uploader


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Virtual time: wake at (time of the call + seconds), never earlier than now."""
        self.sleeps.append(seconds)
        target = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, target)


Behaviour = Callable[[str, Mapping[str, str], int], ApiError | None]


class FakeSender:
    """Answers according to ``behaviour(customer_id, body, call_number_for_customer)``."""

    def __init__(self, behaviour: Behaviour | None = None, clock: FakeTime | None = None) -> None:
        self.behaviour = behaviour or (lambda cid, body, n: None)
        self.calls: list[tuple[str, dict[str, str], float]] = []
        self.per_customer: dict[str, int] = {}
        self.stored: dict[str, dict[str, str]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.time = clock
        self.delay = 0.0

    async def set_customer_attributes(
        self, customer_id: str, attributes: Mapping[str, str]
    ) -> dict[str, str]:
        n = self.per_customer.get(customer_id, 0) + 1
        self.per_customer[customer_id] = n
        self.calls.append((customer_id, dict(attributes), self.time.now if self.time else 0.0))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            error = self.behaviour(customer_id, attributes, n)
            if error is not None:
                raise error
            self.stored.setdefault(customer_id, {}).update(attributes)
            return dict(self.stored[customer_id])
        finally:
            self.in_flight -= 1


def job(cid: str, *pairs: tuple[str, str], first_index: int = 0) -> Job:
    return Job(
        cid,
        tuple(Pair(a, v, (first_index + k,)) for k, (a, v) in enumerate(pairs)),
    )


def make(sender: FakeSender, t: FakeTime, **kw: object) -> Uploader:
    return Uploader(sender, sleep=t.sleep, clock=t.clock, rnd=random.Random(1), **kw)  # type: ignore[arg-type]


async def run(
    uploader: Uploader, jobs: list[Job], stop: asyncio.Event | None = None
) -> list[JobResult]:
    results: list[JobResult] = []
    await uploader.run(jobs, results.append, stop)
    return results


async def test_every_job_reported_once_and_ok_when_api_accepts() -> None:
    t = FakeTime()
    sender = FakeSender()
    jobs = [job(f"c{i}", ("a", "1"), ("b", "2"), first_index=2 * i) for i in range(50)]
    results = await run(make(sender, t, concurrency=4), jobs)
    assert sorted(r.job.customer_id for r in results) == sorted(j.customer_id for j in jobs)
    assert all(o.status is Status.OK and o.attempts == 1 for r in results for o in r.outcomes)
    assert sender.stored["c7"] == {"a": "1", "b": "2"}


async def test_concurrency_is_bounded() -> None:
    t = FakeTime()
    sender = FakeSender()
    sender.delay = 0.001
    await run(make(sender, t, concurrency=3), [job(f"c{i}", ("a", "1")) for i in range(30)])
    assert sender.max_in_flight == 3


async def test_transient_errors_are_retried_with_growing_backoff() -> None:
    t = FakeTime()

    def flaky(cid: str, body: Mapping[str, str], n: int) -> ApiError | None:
        return ServerError("unavailable", status=503) if n <= 3 else None

    sender = FakeSender(flaky)
    up = make(sender, t, retry=RetryPolicy(max_attempts=5, initial=1.0, maximum=60))
    [result] = await run(up, [job("c1", ("a", "1"))])
    assert result.outcomes[0].status is Status.OK
    assert result.outcomes[0].attempts == 4
    assert up.stats.retries == 3
    # equal jitter: the n-th wait lies in [base/2, base] with base = 1, 2, 4
    assert [0.5 <= t.sleeps[0] <= 1, 1 <= t.sleeps[1] <= 2, 2 <= t.sleeps[2] <= 4] == [True] * 3


async def test_gives_up_after_max_attempts_and_says_so() -> None:
    t = FakeTime()
    sender = FakeSender(lambda c, b, n: TransportError("connection reset"))
    [result] = await run(
        make(sender, t, retry=RetryPolicy(max_attempts=3)), [job("c1", ("a", "1"))]
    )
    outcome = result.outcomes[0]
    assert outcome.status is Status.FAILED
    assert outcome.attempts == 3
    assert "gave up after 3 attempts" in outcome.error
    assert "connection reset" in outcome.error
    assert len(sender.calls) == 3


async def test_deadline_stops_retrying_before_max_attempts() -> None:
    t = FakeTime()
    sender = FakeSender(lambda c, b, n: ServerError("down", status=500))
    policy = RetryPolicy(max_attempts=100, initial=10, maximum=10, deadline=25)
    [result] = await run(make(sender, t, retry=policy), [job("c1", ("a", "1"))])
    assert result.outcomes[0].status is Status.FAILED
    assert 2 <= len(sender.calls) <= 5


async def test_retry_after_is_honoured() -> None:
    t = FakeTime()

    def throttled(cid: str, body: Mapping[str, str], n: int) -> ApiError | None:
        return RateLimited("slow down", status=429, retry_after=7) if n == 1 else None

    sender = FakeSender(throttled, t)
    [result] = await run(make(sender, t), [job("c1", ("a", "1"))])
    assert result.outcomes[0].status is Status.OK
    assert sender.calls[1][2] - sender.calls[0][2] >= 7


async def test_retry_after_pauses_every_worker_not_only_the_throttled_one() -> None:
    t = FakeTime()

    def first_call_throttled(cid: str, body: Mapping[str, str], n: int) -> ApiError | None:
        if cid == "c0" and n == 1:
            return RateLimited("slow down", status=429, retry_after=30)
        return None

    sender = FakeSender(first_call_throttled, t)
    jobs = [job(f"c{i}", ("a", "1")) for i in range(6)]
    await run(make(sender, t, concurrency=1), jobs)
    # with one worker, c0 is throttled at t=0; every later request starts after the pause
    later = [at for cid, _, at in sender.calls[1:]]
    assert later
    assert min(later) >= 30


async def test_rate_cap_gives_each_request_its_own_slot() -> None:
    class FrozenTime(FakeTime):
        async def sleep(self, seconds: float) -> None:  # time stands still: slots pile up
            self.sleeps.append(seconds)
            await asyncio.sleep(0)

    t = FrozenTime()
    sender = FakeSender(clock=t)
    await run(
        make(sender, t, concurrency=4, rate=10), [job(f"c{i}", ("a", "1")) for i in range(20)]
    )
    # at 10 requests/s, the k-th request (k = 0..19) is held back k/10 seconds
    assert sorted(round(s, 6) for s in t.sleeps) == [round(k / 10, 6) for k in range(1, 20)]


async def test_422_resends_pair_by_pair_so_only_offending_rows_fail() -> None:
    t = FakeTime()

    def picky(cid: str, body: Mapping[str, str], n: int) -> ApiError | None:
        return DocumentRejected("value too long", status=422) if "bad" in body else None

    sender = FakeSender(picky)
    [result] = await run(make(sender, t), [job("c1", ("a", "1"), ("bad", "x" * 10), ("b", "2"))])
    statuses = [o.status for o in result.outcomes]
    assert statuses == [Status.OK, Status.FAILED, Status.OK]
    assert result.outcomes[1].http_status == 422
    assert "value too long" in result.outcomes[1].error
    assert result.outcomes[0].attempts == 2  # the map, then the pair alone
    assert sender.stored["c1"] == {"a": "1", "b": "2"}
    assert result.requests == 4


async def test_404_fails_that_customer_and_the_run_goes_on() -> None:
    t = FakeTime()
    sender = FakeSender(
        lambda c, b, n: CustomerNotFound("no such customer", status=404) if c == "ghost" else None
    )
    results = await run(
        make(sender, t, concurrency=1), [job("ghost", ("a", "1")), job("c2", ("a", "1"))]
    )
    by_cid = {r.job.customer_id: r.outcomes[0] for r in results}
    assert by_cid["ghost"].status is Status.FAILED
    assert by_cid["ghost"].http_status == 404
    assert "customer not found" in by_cid["ghost"].error
    assert by_cid["c2"].status is Status.OK
    assert len(sender.calls) == 2  # 404 is not retried


async def test_401_halts_the_run_and_nothing_more_is_sent() -> None:
    t = FakeTime()
    sender = FakeSender(lambda c, b, n: AuthError("bad token", status=401) if c == "c2" else None)
    jobs = [job(f"c{i}", ("a", "1")) for i in range(10)]
    up = make(sender, t, concurrency=1)
    results = await run(up, jobs)
    assert len(results) == 10
    by_cid = {r.job.customer_id: r.outcomes[0] for r in results}
    assert [by_cid[f"c{i}"].status for i in range(2)] == [Status.OK, Status.OK]
    assert all(by_cid[f"c{i}"].status is Status.NOT_SENT for i in range(2, 10))
    assert by_cid["c2"].http_status == 401
    assert "credentials rejected" in by_cid["c5"].error
    assert [c for c, _, _ in sender.calls] == ["c0", "c1", "c2"]
    assert up.stats.halted.startswith("credentials rejected")


async def test_stop_event_halts_dispatch_and_interrupts_backoff() -> None:
    t = FakeTime()
    stop = asyncio.Event()

    def failing_then_stop(cid: str, body: Mapping[str, str], n: int) -> ApiError | None:
        if cid == "c3":
            stop.set()
            return ServerError("busy", status=503)
        return None

    sender = FakeSender(failing_then_stop)
    up = make(sender, t, concurrency=1, grace_period=0.0)
    results = await run(up, [job(f"c{i}", ("a", "1")) for i in range(8)], stop)
    statuses = {r.job.customer_id: r.outcomes[0].status for r in results}
    assert [statuses[f"c{i}"] for i in range(3)] == [Status.OK] * 3
    assert all(statuses[f"c{i}"] is Status.NOT_SENT for i in range(3, 8))
    assert sum(1 for c, _, _ in sender.calls if c == "c3") == 1  # no retry after the stop
    assert up.stats.halted == "interrupted"


async def test_requests_still_in_flight_after_the_grace_period_are_not_sent() -> None:
    t = FakeTime()
    stop = asyncio.Event()
    sender = FakeSender()
    sender.delay = 5.0  # real seconds: far longer than the grace period

    up = make(sender, t, concurrency=2, grace_period=0.05)
    task = asyncio.create_task(run(up, [job(f"c{i}", ("a", "1")) for i in range(4)], stop))
    await asyncio.sleep(0.01)
    stop.set()
    results = await asyncio.wait_for(task, timeout=2)
    assert len(results) == 4
    assert all(r.outcomes[0].status is Status.NOT_SENT for r in results)
    cut = [r.outcomes[0] for r in results if r.job.customer_id in ("c0", "c1")]
    assert [o.attempts for o in cut] == [1, 1]  # the request was made: it counts
    assert all("may have been applied" in o.error for o in cut)
    queued = [r.outcomes[0] for r in results if r.job.customer_id in ("c2", "c3")]
    assert [o.attempts for o in queued] == [0, 0]


async def test_pairs_done_before_a_cancellation_keep_their_outcome() -> None:
    t = FakeTime()
    stop = asyncio.Event()

    class SlowOnB(FakeSender):
        async def set_customer_attributes(
            self, customer_id: str, attributes: Mapping[str, str]
        ) -> dict[str, str]:
            if len(attributes) > 1:
                raise DocumentRejected("bad", status=422)
            if "b" in attributes:
                stop.set()
                await asyncio.sleep(5)  # cut off by the grace period
            return await super().set_customer_attributes(customer_id, attributes)

    up = make(SlowOnB(), t, grace_period=0.05)
    [result] = await asyncio.wait_for(
        run(up, [job("c1", ("a", "1"), ("b", "2"), ("c", "3"))], stop), timeout=2
    )
    assert [o.status for o in result.outcomes] == [Status.OK, Status.NOT_SENT, Status.NOT_SENT]
    assert "may have been applied" in result.outcomes[1].error


async def test_an_unexpected_exception_fails_only_that_map() -> None:
    t = FakeTime()

    class Boom(FakeSender):
        async def set_customer_attributes(
            self, customer_id: str, attributes: Mapping[str, str]
        ) -> dict[str, str]:
            if customer_id == "c1":
                raise RuntimeError("bug")
            return await super().set_customer_attributes(customer_id, attributes)

    results = await run(make(Boom(), t), [job("c1", ("a", "1")), job("c2", ("a", "1"))])
    by_cid = {r.job.customer_id: r.outcomes[0] for r in results}
    assert by_cid["c1"].status is Status.FAILED
    assert "internal error" in by_cid["c1"].error
    assert by_cid["c2"].status is Status.OK


@pytest.mark.parametrize("failures", [1, 2, 3])
def test_backoff_stays_within_its_band(failures: int) -> None:
    policy = RetryPolicy(initial=0.5, maximum=30)
    rnd = random.Random(0)
    base = min(30, 0.5 * 2 ** (failures - 1))
    waits = [policy.backoff(failures, rnd) for _ in range(200)]
    assert min(waits) >= base / 2
    assert max(waits) <= base


async def test_413_says_how_to_split_large_maps() -> None:
    from bulk_sync.errors import ClientError

    t = FakeTime()
    sender = FakeSender(lambda c, b, n: ClientError("payload too large", status=413))
    [result] = await run(make(sender, t), [job("c1", ("a", "1"))])
    assert result.outcomes[0].status is Status.FAILED
    assert "--max-attributes-per-request" in result.outcomes[0].error
    assert len(sender.calls) == 1
