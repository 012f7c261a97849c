"""A small hostile HTTP server for tests: real sockets on loopback, raw HTTP/1.1 written
by hand so that it can misbehave in ways no framework allows.

    with HostileServer(trickle_body(b'{"a": "b"}', every=0.2)) as server:
        ... Client(server.url, ...) ...   # or the command, with --base-url server.url
    server.requests      # what reached it: method, path, headers, body
    server.bytes_sent    # how much of an answer went out before the client hung up

Each connection carries one request and is closed after the answer (``Connection:
close``). The server runs its own event loop in a daemon thread, so the same object
serves sync tests (the command through click's runner) and async ones. A behaviour is
``async def behave(request, send)``: ``send(bytes)`` writes and flushes, and raises
``ConnectionError`` once the client is gone (which ends the behaviour quietly).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import threading
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

Send = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


Behaviour = Callable[[Request, Send], Awaitable[None]]


def head(status: int, headers: dict[str, str] | None = None, *, length: int | None = None) -> bytes:
    """A status line and headers, ``Content-Length`` when ``length`` is given."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Whatever"
    lines = [f"HTTP/1.1 {status} {reason}", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# ----------------------------------------------------------------------------- behaviours


def answer(status: int, body: bytes | str | Any = b"", headers: dict[str, str] | None = None
           ) -> Behaviour:  # fmt: skip
    """A plain answer; a dict or list body is sent as JSON."""
    fixed = dict(headers or {})
    if isinstance(body, dict | list):
        body = json.dumps(body).encode()
        fixed.setdefault("Content-Type", "application/json")
    data = body.encode() if isinstance(body, str) else body

    async def behave(request: Request, send: Send) -> None:
        await send(head(status, fixed, length=len(data)) + data)

    return behave


def echo(status: int, make_body: Callable[[str], str], headers: dict[str, str] | None = None
         ) -> Behaviour:  # fmt: skip
    """An answer built from the request's ``Authorization`` header (a server echoing it)."""

    async def behave(request: Request, send: Send) -> None:
        data = make_body(request.headers.get("authorization", "")).encode()
        await send(head(status, headers, length=len(data)) + data)

    return behave


def trickle_body(body: bytes, every: float, status: int = 200) -> Behaviour:
    """Headers at once, then the body one byte every ``every`` seconds."""

    async def behave(request: Request, send: Send) -> None:
        await send(head(status, {"Content-Type": "application/json"}, length=len(body)))
        for i in range(len(body)):
            await asyncio.sleep(every)
            await send(body[i : i + 1])

    return behave


def trickle_headers(every: float, lines: int = 1000) -> Behaviour:
    """A status line, then one more header line every ``every`` seconds, never ending."""

    async def behave(request: Request, send: Send) -> None:
        await send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        for i in range(lines):
            await asyncio.sleep(every)
            await send(f"X-Slow-{i}: {i}\r\n".encode())

    return behave


def endless_chunked(status: int = 200, chunk: bytes = b'{"a": "' + b"x" * 65536) -> Behaviour:
    """A chunked body that never ends, as fast as the client reads it."""

    async def behave(request: Request, send: Send) -> None:
        await send(
            head(status, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
        )
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        while True:
            await send(frame)

    return behave


def huge_body(status: int, size: int, headers: dict[str, str] | None = None) -> Behaviour:
    """A ``Content-Length: size`` answer whose body is sent, 64 KiB at a time, until the
    client stops reading."""
    block = b"x" * 65536

    async def behave(request: Request, send: Send) -> None:
        await send(head(status, headers, length=size))
        sent = 0
        while sent < size:
            await send(block[: size - sent])
            sent += len(block)

    return behave


def encoded(status: int, body: bytes, coding: str) -> Behaviour:
    """``body`` compressed with ``coding``: gzip, deflate (zlib), raw-deflate (sent as
    ``deflate``), or sent as it is under any other name (``br``)."""
    if coding == "gzip":
        data = gzip.compress(body)
    elif coding == "deflate":
        data = zlib.compress(body)
    elif coding == "raw-deflate":
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data = compressor.compress(body) + compressor.flush()
        coding = "deflate"
    else:
        data = body
    return answer(status, data, {"Content-Encoding": coding, "Content-Type": "application/json"})


_BOMBS: dict[int, bytes] = {}


def gzip_bomb(expanded: int) -> bytes:
    """gzip data that expands to ``expanded`` zero bytes (about a thousandth of it)."""
    if expanded not in _BOMBS:
        compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        block = bytes(1 << 20)
        parts = [compressor.compress(block) for _ in range(expanded >> 20)]
        parts.append(compressor.compress(bytes(expanded & ((1 << 20) - 1))))
        parts.append(compressor.flush())
        _BOMBS[expanded] = b"".join(parts)
    return _BOMBS[expanded]


def sequence(*behaviours: Behaviour) -> Behaviour:
    """One behaviour per request in turn; the last one repeats."""
    calls = [0]

    async def behave(request: Request, send: Send) -> None:
        index = min(calls[0], len(behaviours) - 1)
        calls[0] += 1
        await behaviours[index](request, send)

    return behave


# ----------------------------------------------------------------------------- the server


@dataclass
class HostileServer:
    behaviour: Behaviour
    host: str = "127.0.0.1"
    requests: list[Request] = field(default_factory=list)
    bytes_sent: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send(data: bytes) -> None:
            writer.write(data)
            await writer.drain()
            self.bytes_sent += len(data)

        try:
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = Request(method, path, headers, body)
            self.requests.append(request)
            await self.behaviour(request, send)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            with contextlib.suppress(Exception, asyncio.CancelledError):  # shutting down
                writer.close()
                await writer.wait_closed()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

    def __enter__(self) -> HostileServer:
        self._thread.start()
        assert self._ready.wait(10), "the hostile server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
