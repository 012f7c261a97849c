"""The emulator over real loopback HTTP, driven by the real Client (both transports),
raw http.client requests, the pure core, and the CLI command."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bulk_sync import emulator as emulator_module
from bulk_sync.cli_emulator import emulator as emulator_command
from bulk_sync.client import AiohttpTransport, Client
from bulk_sync.emulator import EmulatorSettings, EmulatorState, EmulatorThread, RunningEmulator
from bulk_sync.errors import (
    AuthError,
    ConfigError,
    CustomerNotFound,
    DocumentRejected,
    RateLimited,
    ServerError,
    TransportError,
)

MakeEmulator = Callable[..., Awaitable[RunningEmulator]]
MakeEmulatorThread = Callable[..., EmulatorThread]
RawHttp = Callable[..., tuple[int, dict[str, str], bytes]]
AsyncRawHttp = Callable[..., Awaitable[tuple[int, dict[str, str], bytes]]]

TRANSPORTS = ["aiohttp", "httpx"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connect(transport: str, api_token: str) -> Callable[..., Client]:
    def make(emu: RunningEmulator, token: str | None = None) -> Client:
        return Client(emu.base_url, token or api_token, transport=transport, timeout=5.0)

    return make


@pytest.fixture
async def ic(emulator: RunningEmulator, connect: Callable[..., Client]) -> AsyncIterator[Client]:
    async with connect(emulator) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


# --------------------------------------------------------------------------- the contract


async def test_contract_example_merges_and_answers_the_whole_map(
    make_emulator: MakeEmulator, connect: Callable[..., Client]
) -> None:
    emu = await make_emulator(initial_state={"C-1": {"existing_name_1": "old_attribute_1"}})
    async with connect(emu) as ic:
        merged = await ic.set_customer_attributes(
            "C-1", {"new_name_1": "attribute_1", "new_name_2": "attribute_2"}
        )
    assert merged == {
        "existing_name_1": "old_attribute_1",
        "new_name_1": "attribute_1",
        "new_name_2": "attribute_2",
    }
    assert emu.state.customers["C-1"] == merged


async def test_merge_adds_and_updates_but_never_deletes(
    ic: Client, emulator: RunningEmulator
) -> None:
    await ic.set_customer_attributes("C", {"a": "1", "b": "2"})
    merged = await ic.set_customer_attributes("C", {"b": "20", "c": "3"})
    assert merged == {"a": "1", "b": "20", "c": "3"}
    assert await ic.get_customer_attributes("C") == merged
    again = await ic.set_customer_attributes("C", {"b": "20", "c": "3"})  # idempotent
    assert again == merged


async def test_get_of_a_known_customer_never_written_is_an_empty_map(
    make_emulator: MakeEmulator, connect: Callable[..., Client]
) -> None:
    emu = await make_emulator(customers=frozenset({"K"}))
    async with connect(emu) as ic:
        assert await ic.get_customer_attributes("K") == {}


async def test_wrong_token_is_401_and_the_answer_does_not_echo_it(
    emulator: RunningEmulator, connect: Callable[..., Client], araw_http: AsyncRawHttp
) -> None:
    async with connect(emulator, token="wrong-token-123") as ic:
        with pytest.raises(AuthError) as caught:
            await ic.set_customer_attributes("C", {"a": "b"})
    assert caught.value.status == 401
    status, headers, body = await araw_http(
        emulator.base_url, "POST", "/customers/C/attributes", b'{"a":"b"}', auth("wrong-token-123")
    )
    assert status == 401
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["code"] == 401
    assert b"wrong-token-123" not in body
    assert emulator.state.customers == {}


async def test_a_request_without_bearer_credentials_is_401(
    emulator: RunningEmulator, araw_http: AsyncRawHttp
) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        status, _, _ = await araw_http(
            emulator.base_url, "GET", "/customers/C/attributes", b"", headers
        )
        assert status == 401


async def test_without_a_configured_token_any_bearer_token_is_accepted(
    make_emulator: MakeEmulator, connect: Callable[..., Client]
) -> None:
    emu = await make_emulator(token=None)
    async with connect(emu, token="anything-at-all") as ic:
        assert await ic.set_customer_attributes("C", {"a": "b"}) == {"a": "b"}


async def test_unknown_customer_is_404_when_customers_are_listed(
    make_emulator: MakeEmulator, connect: Callable[..., Client]
) -> None:
    emu = await make_emulator(customers=frozenset({"known"}))
    async with connect(emu) as ic:
        with pytest.raises(CustomerNotFound) as caught:
            await ic.set_customer_attributes("unknown", {"a": "b"})
        assert await ic.set_customer_attributes("known", {"a": "b"}) == {"a": "b"}
    assert caught.value.status == 404
    assert "unknown" not in emu.state.customers


@pytest.mark.parametrize(
    "attributes",
    [{"ok": "fine", "empty": ""}, {"": "no name"}],
    ids=["empty-value", "empty-key"],
)
async def test_one_empty_key_or_value_rejects_the_whole_call_and_stores_nothing(
    ic: Client, emulator: RunningEmulator, attributes: dict[str, str]
) -> None:
    with pytest.raises(DocumentRejected) as caught:
        await ic.set_customer_attributes("C", attributes)
    assert caught.value.status == 422
    assert caught.value.message == "Unprocessable request"  # as generic as the real API
    assert emulator.state.customers == {}
    assert await ic.get_customer_attributes("C") == {}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[1, 2]", 422),
        (b'"text"', 422),
        (b'{"a": 1}', 422),
        (b'{"a": {"b": "c"}}', 422),
        (b"[" * 100_000 + b"]" * 100_000, 422),
        (b"not json", 400),
        (b"{231,,[][[", 400),
        (b"", 400),
        (b"\xff\xfe", 400),
    ],
)
async def test_a_body_that_is_not_json_is_400_and_not_an_object_of_strings_422(
    emulator: RunningEmulator,
    araw_http: AsyncRawHttp,
    api_token: str,
    body: bytes,
    expected: int,
) -> None:
    status, _, answer = await araw_http(
        emulator.base_url, "POST", "/customers/C/attributes", body, auth(api_token)
    )
    assert status == expected
    message = "Invalid JSON" if expected == 400 else "Unprocessable request"
    assert json.loads(answer) == {"code": expected, "message": message}
    assert emulator.state.customers == {}


@pytest.mark.parametrize(
    ("limits", "too_much", "just_right"),
    [
        ({"max_value_length": 5}, {"k": "123456"}, {"k": "12345"}),
        ({"max_key_length": 3}, {"long": "v"}, {"key": "v"}),
        ({"max_keys": 2}, {"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "2"}),
    ],
)
async def test_configured_limits_answer_422_beyond_and_200_at_the_limit(
    make_emulator: MakeEmulator,
    connect: Callable[..., Client],
    limits: dict[str, int],
    too_much: dict[str, str],
    just_right: dict[str, str],
) -> None:
    emu = await make_emulator(**limits)
    async with connect(emu) as ic:
        with pytest.raises(DocumentRejected):
            await ic.set_customer_attributes("C", too_much)
        assert await ic.set_customer_attributes("C", just_right) == just_right
    assert emu.state.customers == {"C": just_right}


# --------------------------------------------------------------------------- ids in the path


@pytest.mark.parametrize(
    "customer_id", ["A/B", "a%2Fb", "x?y#z", "é ü", "100%", "a+b", "...", "%2E%2E", " lead"]
)
async def test_odd_customer_ids_reach_exactly_that_customer(
    ic: Client, emulator: RunningEmulator, customer_id: str
) -> None:
    merged = await ic.set_customer_attributes(customer_id, {"id": customer_id})
    assert merged == {"id": customer_id}
    assert list(emulator.state.customers) == [customer_id]
    assert await ic.get_customer_attributes(customer_id) == {"id": customer_id}


async def test_percent_encoded_slash_on_the_wire_is_customer_a_slash_b(
    emulator: RunningEmulator, araw_http: AsyncRawHttp, api_token: str
) -> None:
    status, _, body = await araw_http(
        emulator.base_url, "POST", "/customers/A%2FB/attributes", b'{"k":"v"}', auth(api_token)
    )
    assert (status, json.loads(body)) == (200, {"k": "v"})
    assert emulator.state.customers == {"A/B": {"k": "v"}}
    assert emulator.state.posts_by_customer == {"A/B": 1}
    # an unencoded slash is a different (unknown) path, never customer "A/B"
    status, _, _ = await araw_http(
        emulator.base_url, "POST", "/customers/A/B/attributes", b'{"k":"w"}', auth(api_token)
    )
    assert status == 404
    # decoded exactly once: %252F is the three characters "%2F"
    await araw_http(
        emulator.base_url, "POST", "/customers/A%252FB/attributes", b'{"k":"x"}', auth(api_token)
    )
    assert emulator.state.customers == {"A/B": {"k": "v"}, "A%2FB": {"k": "x"}}


@pytest.mark.parametrize("transport_class", [AiohttpTransport, httpx.AsyncHTTPTransport])
async def test_transports_put_the_raw_path_on_the_wire_byte_for_byte(
    emulator: RunningEmulator, api_token: str, transport_class: type[httpx.AsyncBaseTransport]
) -> None:
    # yarl would normalise %2E%2E to ".." and drop the segment; our transport must not
    url = httpx.URL(f"{emulator.base_url}/customers/%2E%2E/attributes")
    request = httpx.Request("POST", url, headers=auth(api_token), content=b'{"k":"v"}')
    transport = transport_class()
    try:
        response = await transport.handle_async_request(request)
        await response.aread()
    finally:
        await transport.aclose()
    assert response.status_code == 200
    assert emulator.state.customers == {"..": {"k": "v"}}


async def test_other_paths_and_methods_answer_json_404_and_405(
    emulator: RunningEmulator, araw_http: AsyncRawHttp, api_token: str
) -> None:
    status, _, body = await araw_http(
        emulator.base_url, "GET", "/nothing/here", b"", auth(api_token)
    )
    assert (status, json.loads(body)["code"]) == (404, 404)
    status, headers, body = await araw_http(
        emulator.base_url, "DELETE", "/customers/C/attributes", b"", auth(api_token)
    )
    assert (status, json.loads(body)["code"]) == (405, 405)
    assert "POST" in headers["Allow"]


# --------------------------------------------------------------------------- faults and limits


async def test_fault_rates_are_roughly_honoured_with_a_seed(
    make_emulator: MakeEmulator, connect: Callable[..., Client]
) -> None:
    emu = await make_emulator(error_rate=0.2, throttle_rate=0.1, retry_after=3, seed=42)
    outcomes = {"ok": 0, "503": 0, "429": 0}
    retry_afters: set[float | None] = set()
    async with connect(emu) as ic:
        for i in range(200):
            try:
                await ic.set_customer_attributes(f"c{i}", {"a": "b"})
                outcomes["ok"] += 1
            except ServerError as exc:
                outcomes[str(exc.status)] += 1
            except RateLimited as exc:
                outcomes[str(exc.status)] += 1
                retry_afters.add(exc.retry_after)
    assert set(outcomes) == {"ok", "503", "429"}
    assert retry_afters == {3.0}
    assert 20 <= outcomes["503"] <= 60
    assert 5 <= outcomes["429"] <= 35
    assert outcomes["ok"] == emu.state.by_status[200] == len(emu.state.customers)
    assert emu.state.faults == {"error": outcomes["503"], "throttle": outcomes["429"]}


def test_the_same_seed_injects_the_same_faults() -> None:
    def statuses(seed: int) -> list[int]:
        state = EmulatorState(EmulatorSettings(error_rate=0.3, throttle_rate=0.3, seed=seed))
        headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
        return [
            state.handle("POST", f"/customers/c{i}/attributes", headers, b'{"a":"b"}').status
            for i in range(100)
        ]

    assert statuses(7) == statuses(7)
    assert statuses(7) != statuses(8)
    assert {200, 429, 503} == set(statuses(7))


async def test_beyond_the_rate_limit_answers_429_with_retry_after(
    make_emulator: MakeEmulator, connect: Callable[..., Client]
) -> None:
    emu = await make_emulator(rate_limit=5)
    ok = 0
    retry_afters: list[float | None] = []
    async with connect(emu) as ic:
        for i in range(20):
            try:
                await ic.set_customer_attributes(f"c{i}", {"a": "b"})
                ok += 1
            except RateLimited as exc:
                retry_afters.append(exc.retry_after)
    limited = len(retry_afters)
    assert all(seconds is not None and seconds >= 1 for seconds in retry_afters)
    assert 5 <= ok <= 7  # a burst of one second's worth, plus what refills meanwhile
    assert limited == 20 - ok
    assert emu.state.faults["rate_limit"] == limited


def test_the_rate_limit_refills_with_time() -> None:
    now = [100.0]
    state = EmulatorState(EmulatorSettings(rate_limit=2), clock=lambda: now[0])
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}

    def post() -> int:
        return state.handle("POST", "/customers/c/attributes", headers, b'{"a":"b"}').status

    assert [post(), post(), post()] == [200, 200, 429]
    now[0] += 0.5  # one token back at 2 per second
    assert [post(), post()] == [200, 429]
    now[0] += 10  # never more than one second's worth
    assert [post(), post(), post()] == [200, 200, 429]


async def test_dropped_connections_are_transport_errors_in_the_client(
    make_emulator: MakeEmulator, connect: Callable[..., Client]
) -> None:
    emu = await make_emulator(drop_rate=1.0)
    async with connect(emu) as ic:
        for _ in range(3):
            with pytest.raises(TransportError) as caught:
                await ic.set_customer_attributes("C", {"a": "b"})
            assert caught.value.retriable
    assert emu.state.faults["drop"] == 3
    assert emu.state.customers == {}


async def test_partial_drop_rate_leaves_the_emulator_serving(
    make_emulator: MakeEmulator, connect: Callable[..., Client]
) -> None:
    emu = await make_emulator(drop_rate=0.3, seed=1)
    failures = 0
    async with connect(emu) as ic:
        for i in range(60):
            try:
                await ic.set_customer_attributes(f"c{i}", {"a": "b"})
            except TransportError:
                failures += 1
    assert failures == emu.state.faults["drop"]
    assert 5 <= failures <= 35
    assert len(emu.state.customers) == 60 - failures


async def test_latency_delays_every_answer(
    make_emulator: MakeEmulator, connect: Callable[..., Client]
) -> None:
    emu = await make_emulator(latency=0.05, jitter=0.01)
    async with connect(emu) as ic:
        started = time.perf_counter()
        await ic.get_customer_attributes("C")
        elapsed = time.perf_counter() - started
    assert 0.05 <= elapsed < 1.0


# --------------------------------------------------------------------------- state file and stats


async def test_state_file_is_written_on_stop_and_reloaded_on_start(
    tmp_path: Path, connect: Callable[..., Client], api_token: str
) -> None:
    state_file = tmp_path / "sub" / "state.json"
    settings = EmulatorSettings(port=0, token=api_token, state_file=state_file)
    async with emulator_module.running_emulator(settings) as emu, connect(emu) as ic:
        await ic.set_customer_attributes("A/B", {"k": "v", "nome": "João"})
    assert json.loads(state_file.read_text("utf-8")) == {"A/B": {"k": "v", "nome": "João"}}
    assert [p.name for p in state_file.parent.iterdir()] == ["state.json"]  # no temp files

    async with emulator_module.running_emulator(settings) as emu, connect(emu) as ic:
        assert await ic.get_customer_attributes("A/B") == {"k": "v", "nome": "João"}
        assert await ic.set_customer_attributes("A/B", {"x": "y"}) == {
            "k": "v",
            "nome": "João",
            "x": "y",
        }


async def test_state_file_is_saved_periodically_while_running(
    tmp_path: Path,
    make_emulator: MakeEmulator,
    connect: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(emulator_module, "SAVE_INTERVAL", 0.02)
    state_file = tmp_path / "state.json"
    emu = await make_emulator(state_file=state_file)
    async with connect(emu) as ic:
        await ic.set_customer_attributes("C", {"a": "b"})
    saved: object = None
    for _ in range(200):  # a save from before the request may be there first: {}
        if state_file.exists():
            saved = json.loads(state_file.read_text("utf-8"))
            if saved == {"C": {"a": "b"}}:
                break
        await asyncio.sleep(0.01)
    assert saved == {"C": {"a": "b"}}


def test_an_unreadable_state_file_is_a_config_error(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text('{"C": ["not", "a", "map"]}')
    with pytest.raises(ConfigError, match="state file"):
        EmulatorState(EmulatorSettings(state_file=state_file))


async def test_stats_and_customers_endpoints_report_what_happened(
    make_emulator: MakeEmulator,
    connect: Callable[..., Client],
    araw_http: AsyncRawHttp,
    api_token: str,
) -> None:
    emu = await make_emulator(customers=frozenset({"C1", "C2"}))
    async with connect(emu) as ic:
        await ic.set_customer_attributes("C1", {"a": "1"})
        await ic.set_customer_attributes("C1", {"b": "2"})
        with pytest.raises(DocumentRejected):
            await ic.set_customer_attributes("C2", {"c": ""})
        with pytest.raises(CustomerNotFound):
            await ic.set_customer_attributes("C3", {"d": "4"})
        await ic.get_customer_attributes("C2")

    status, _, body = await araw_http(emu.base_url, "GET", "/_emulator/stats", b"", auth(api_token))
    assert status == 200
    stats = json.loads(body)
    assert stats["requests_total"] == 5
    assert stats["by_status"] == {"200": 3, "404": 1, "422": 1}
    assert stats["posts_by_customer"] == {"C1": 2, "C2": 1, "C3": 1}
    assert stats["accepted_by_customer"] == {"C1": 2}
    assert stats == emu.state.stats()

    status, _, body = await araw_http(
        emu.base_url, "GET", "/_emulator/customers", b"", auth(api_token)
    )
    assert (status, json.loads(body)) == (200, {"C1": {"a": "1", "b": "2"}})

    status, _, _ = await araw_http(emu.base_url, "GET", "/_emulator/stats", b"", {})
    assert status == 401  # inspection needs the token when one is configured
    assert emu.state.requests_total == 5  # inspection is not counted


def test_emulator_thread_serves_sync_callers(
    emulator_thread: MakeEmulatorThread, raw_http: RawHttp, api_token: str
) -> None:
    emu = emulator_thread(initial_state={"C": {"old": "1"}})
    status, _, body = raw_http(
        emu.base_url, "POST", "/customers/C/attributes", b'{"new":"2"}', auth(api_token)
    )
    assert (status, json.loads(body)) == (200, {"old": "1", "new": "2"})
    assert emu.state.customers == {"C": {"old": "1", "new": "2"}}
    assert emu.state.by_status == {200: 1}


def test_emulator_thread_reports_a_port_already_in_use(
    emulator_thread: MakeEmulatorThread,
) -> None:
    first = emulator_thread()
    with pytest.raises(OSError, match=r"(?i)address already in use"):
        emulator_thread(port=first.port)


def test_settings_refuse_impossible_rates() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        EmulatorSettings(error_rate=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        EmulatorSettings(error_rate=0.5, throttle_rate=0.4, drop_rate=0.2)
    with pytest.raises(ValueError, match="rate_limit"):
        EmulatorSettings(rate_limit=0)


# --------------------------------------------------------------------------- the CLI command


@pytest.mark.parametrize(
    "args",
    [
        ["--error-rate", "1.5"],
        ["--throttle-rate", "-0.1"],
        ["--drop-rate", "x"],
        ["--error-rate", "0.6", "--throttle-rate", "0.6"],
        ["--rate-limit", "0"],
        ["--port", "70000"],
        ["--latency", "-1"],
        ["--max-keys", "0"],
        ["--customers", "/nonexistent/customers.txt"],
    ],
)
def test_cli_refuses_invalid_options_with_exit_code_2(args: list[str]) -> None:
    result = CliRunner().invoke(emulator_command, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output or "Error" in result.output


def test_cli_refuses_an_unreadable_state_file(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text("not json")
    result = CliRunner().invoke(emulator_command, ["--port", "0", "--state-file", str(state_file)])
    assert result.exit_code == 2
    assert "state file" in result.output


def _read_line(stream: object, deadline: float) -> str:
    """One line of a subprocess's stderr, waiting at most until ``deadline``."""
    fd = stream.fileno()  # type: ignore[attr-defined]
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no line from the emulator in time; got {data!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 1)
            assert chunk, f"emulator exited early; got {data!r}"
            data += chunk
    return data.decode()


@pytest.mark.slow
def test_cli_serves_until_sigterm_then_exits_0_and_saves_state(tmp_path: Path) -> None:
    token = "cli-secret-token-0123456789"
    customers = tmp_path / "customers.txt"
    customers.write_text("C-1  \n\nA/B\n   \nC-3\n", encoding="utf-8")
    state_file = tmp_path / "state.json"
    command = [
        sys.executable,
        "-c",
        "from bulk_sync.cli_emulator import emulator; emulator()",
        "--port",
        "0",
        "--customers",
        str(customers),
        "--state-file",
        str(state_file),
    ]
    env = {**os.environ, "IC_EMULATOR_TOKEN": token}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, env=env)
    try:
        line = _read_line(process.stderr, time.monotonic() + 15)
        assert "bulk-sync emulator listening on http://127.0.0.1:" in line
        assert "(token required; 3 customers)" in line
        assert token not in line
        port = int(line.split("http://127.0.0.1:")[1].split()[0])

        def request(method: str, path: str, body: bytes, bearer: str) -> tuple[int, bytes]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                connection.request(
                    method,
                    path,
                    body,
                    {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
                )
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()

        status, body = request("POST", "/customers/A%2FB/attributes", b'{"k":"v"}', token)
        assert (status, json.loads(body)) == (200, {"k": "v"})
        assert request("POST", "/customers/C-2/attributes", b'{"k":"v"}', token)[0] == 404
        assert request("GET", "/customers/C-1/attributes", b"", "wrong")[0] == 401

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stderr is not None
        rest = process.stderr.read().decode()
        assert "stopped (3 requests" in rest
        assert token not in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
    assert json.loads(state_file.read_text("utf-8")) == {"A/B": {"k": "v"}}


def test_a_post_without_a_json_content_type_is_refused_and_stores_nothing() -> None:
    state = EmulatorState(EmulatorSettings(port=0))
    auth = {"Authorization": "Bearer t"}
    assert state.handle("POST", "/customers/c/attributes", auth, b'{"a":"b"}').status == 415
    text = {**auth, "content-type": "text/plain"}
    assert state.handle("POST", "/customers/c/attributes", text, b'{"a":"b"}').status == 415
    ok = {**auth, "content-type": "application/json; charset=utf-8"}
    assert state.handle("POST", "/customers/c/attributes", ok, b'{"a":"b"}').status == 200
    assert state.customers == {"c": {"a": "b"}}
