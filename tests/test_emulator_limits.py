"""The emulator's knobs for rehearsing an API at its limits: capacity, outage window,
token bucket. The pure core with an injected clock; the front end over loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from click.testing import CliRunner

from bulk_sync.cli_emulator import emulator as emulator_command
from bulk_sync.emulator import EmulatorSettings, EmulatorState, RunningEmulator

MakeEmulator = Callable[..., Awaitable[RunningEmulator]]
HEADERS = {"Authorization": "Bearer t", "Content-Type": "application/json"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def post(state: EmulatorState, cid: str = "c") -> int:
    """One POST through the core as the front end makes it: arrive, handle, leave."""
    path = f"/customers/{cid}/attributes"
    early = state.arrive(path)
    if early is not None:
        return early.status
    try:
        return state.handle("POST", path, HEADERS, b'{"a":"b"}').status
    finally:
        state.leave()


def test_an_outage_starts_after_k_accepted_requests_and_lasts_its_seconds() -> None:
    clock = Clock()
    state = EmulatorState(EmulatorSettings(outage_after=3, outage_seconds=20), clock=clock)
    assert [post(state, f"c{i}") for i in range(3)] == [200, 200, 200]
    assert state.in_outage()
    assert [post(state) for _ in range(4)] == [503] * 4
    clock.now += 19.9
    assert post(state) == 503
    clock.now += 0.1
    assert post(state) == 200
    assert state.faults["outage"] == 5
    assert state.accepted_total == 4


def test_an_outage_without_seconds_lasts_for_ever_and_k_0_starts_at_once() -> None:
    clock = Clock()
    state = EmulatorState(EmulatorSettings(outage_after=0), clock=clock)
    assert post(state) == 503
    clock.now += 1e6
    assert post(state) == 503
    assert state.outage_left() is None
    assert state.customers == {}


def test_refuse_mode_drops_requests_in_the_core() -> None:
    state = EmulatorState(EmulatorSettings(outage_after=1, outage_mode="refuse"))
    assert post(state) == 200
    early = state.arrive("/customers/c/attributes")
    assert early is not None
    assert early.drop


def test_capacity_answers_429_with_retry_after_beyond_n_in_flight() -> None:
    state = EmulatorState(EmulatorSettings(capacity=2, retry_after=1))
    path = "/customers/c/attributes"
    assert state.arrive(path) is None
    assert state.arrive(path) is None
    third = state.arrive(path)
    assert third is not None
    assert third.status == 429
    assert third.headers == {"Retry-After": "1"}
    state.leave()
    assert state.arrive(path) is None  # a place came free
    assert state.max_in_flight == 2
    assert state.faults["capacity"] == 1
    assert state.arrive("/_emulator/stats") is None  # inspection is never limited
    assert state.in_flight == 2


def test_the_token_bucket_takes_a_burst_size() -> None:
    clock = Clock()
    state = EmulatorState(EmulatorSettings(rate_limit=10, rate_burst=3), clock=clock)
    assert [post(state) for _ in range(4)] == [200, 200, 200, 429]
    clock.now += 0.1  # one token back at 10 per second
    assert [post(state), post(state)] == [200, 429]
    clock.now += 60  # never more than the burst
    assert [post(state) for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.parametrize(
    ("bad", "name"),
    [
        ({"capacity": 0}, "capacity"),
        ({"outage_after": -1}, "outage_after"),
        ({"outage_seconds": 0}, "outage_seconds"),
        ({"outage_mode": "teapot"}, "outage_mode"),
        ({"rate_limit": 5, "rate_burst": 0.5}, "rate_burst"),
    ],
)
def test_settings_refuse_impossible_limits(bad: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        EmulatorSettings(**bad)  # type: ignore[arg-type]


async def test_over_loopback_the_capacity_429s_come_at_once_and_the_rest_is_served(
    make_emulator: MakeEmulator, api_token: str
) -> None:
    emu = await make_emulator(capacity=3, latency=0.3, retry_after=2)
    url = f"{emu.base_url}/customers/C/attributes"
    headers = {"Authorization": f"Bearer {api_token}", "Content-Type": "application/json"}

    async def one(session: aiohttp.ClientSession) -> tuple[int, str | None, float]:
        started = time.monotonic()
        async with session.post(url, data=b'{"a":"b"}', headers=headers) as response:
            await response.read()
            return (
                response.status,
                response.headers.get("Retry-After"),
                (time.monotonic() - started),
            )

    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(one(session) for _ in range(5)))
    served = [a for a in answers if a[0] == 200]
    refused = [a for a in answers if a[0] == 429]
    assert len(served) == 3
    assert len(refused) == 2
    assert all(r[1] == "2" for r in refused)
    assert max(r[2] for r in refused) < 0.25 <= min(s[2] for s in served)
    assert emu.state.stats()["max_in_flight"] == 3


async def test_over_loopback_refuse_mode_closes_the_port_then_opens_it_again(
    make_emulator: MakeEmulator, api_token: str
) -> None:
    emu = await make_emulator(outage_after=1, outage_seconds=0.5, outage_mode="refuse")
    url = f"{emu.base_url}/customers/C/attributes"
    headers = {"Authorization": f"Bearer {api_token}", "Content-Type": "application/json"}

    async def status() -> int | str:
        try:
            async with (
                aiohttp.ClientSession() as session,  # a new connection each time
                session.post(url, data=b'{"a":"b"}', headers=headers) as r,
            ):
                return r.status
        except aiohttp.ClientConnectorError:
            return "refused"

    assert await status() == 200
    await asyncio.sleep(0.05)  # the port closes right after the answer
    assert await status() == "refused"
    await asyncio.sleep(0.6)
    assert await status() == 200
    assert emu.state.customers == {"C": {"a": "b"}}


def test_the_command_documents_the_knobs_and_refuses_bad_values() -> None:
    runner = CliRunner()
    text = runner.invoke(emulator_command, ["--help"]).output
    for flag in (
        "--capacity",
        "--outage-after",
        "--outage-seconds",
        "--outage-mode",
        "--rate-burst",
    ):
        assert flag in text
    bad = runner.invoke(emulator_command, ["--outage-mode", "sometimes"])
    assert bad.exit_code == 2
