"""Shared fixtures. Add to this file freely; keep fixtures generic.

Emulator fixtures (real HTTP over loopback, free port, stopped at teardown):

- ``api_token``: the token the default emulator requires (64 hex characters).
- ``emulator``: a running :class:`bulk_sync.emulator.RunningEmulator` in the test's
  event loop, requiring ``api_token``, every customer id known.
- ``make_emulator(**settings)``: async factory for emulators with other settings
  (``port=0`` and ``token=api_token`` unless given; pass ``token=None`` for any token).
- ``emulator_thread(**settings)``: sync factory for an :class:`EmulatorThread` (own loop
  in a daemon thread), for tests that drive sync code or the CLI in-process.
- ``raw_http``: ``raw_http(base_url, method, raw_path, body=b"", headers=None)`` sends
  exactly these bytes with :mod:`http.client` and returns ``(status, headers, body)``.
  It blocks: from async tests (emulator in the same loop) use ``await araw_http(...)``,
  the same call run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest

from bulk_sync.emulator import EmulatorSettings, EmulatorThread, RunningEmulator, running_emulator

TEST_TOKEN = "0123456789abcdef" * 4

MakeEmulator = Callable[..., Awaitable[RunningEmulator]]
MakeEmulatorThread = Callable[..., EmulatorThread]
RawHttp = Callable[..., tuple[int, dict[str, str], bytes]]
AsyncRawHttp = Callable[..., Awaitable[tuple[int, dict[str, str], bytes]]]


def _settings(overrides: Mapping[str, Any]) -> EmulatorSettings:
    values: dict[str, Any] = {"port": 0, "token": TEST_TOKEN}
    values.update(overrides)
    return EmulatorSettings(**values)


@pytest.fixture
def api_token() -> str:
    return TEST_TOKEN


@pytest.fixture
async def make_emulator() -> AsyncIterator[MakeEmulator]:
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> RunningEmulator:
            return await stack.enter_async_context(running_emulator(_settings(overrides)))

        yield make


@pytest.fixture
async def emulator(make_emulator: MakeEmulator) -> RunningEmulator:
    return await make_emulator()


@pytest.fixture
def emulator_thread() -> Iterator[MakeEmulatorThread]:
    with contextlib.ExitStack() as stack:

        def make(**overrides: Any) -> EmulatorThread:
            return stack.enter_context(EmulatorThread(_settings(overrides)))

        yield make


def _raw_http(
    base_url: str,
    method: str,
    raw_path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    assert parts.port is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.putrequest(method, raw_path, skip_accept_encoding=True)
        sent = dict(headers or {})
        if body or method in ("POST", "PUT"):
            sent.setdefault("Content-Length", str(len(body)))
        for name, value in sent.items():
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture
def raw_http() -> RawHttp:
    return _raw_http


@pytest.fixture
def araw_http() -> AsyncRawHttp:
    async def send(*args: Any, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        return await asyncio.to_thread(_raw_http, *args, **kwargs)

    return send
