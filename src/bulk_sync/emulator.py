"""A local stand-in for the Invisible Collector customer-attributes API, over real HTTP.

Three layers:

- :class:`EmulatorSettings`: what to emulate (token, known customers, faults, limits).
- :class:`EmulatorState`: the pure core. ``handle(method, raw_path, headers, body)``
  returns a :class:`Reply`; it owns every customer's attributes and the statistics,
  and is deterministic given ``seed`` and the injected clock.
- the aiohttp front end (a low-level :class:`aiohttp.web.Server`, no router, no access
  log): adds latency and connection drops, saves the state file. Started with
  :func:`running_emulator` (in the current event loop), :class:`EmulatorThread`
  (own loop in a daemon thread) or :func:`serve` (blocking, for the CLI).

Endpoints:

- ``POST /customers/{id}/attributes``: a JSON object of non-empty strings, merged
  into the customer's map; 200 with the whole map. 401 (token), 404 (unknown
  customer), 400 (not JSON), 422 (not an object of non-empty strings, or a configured
  limit exceeded), 415 (not ``application/json``), faults 429/503/drop.
- ``GET /customers/{id}/attributes``: the map (``{}`` for a known customer never written).
- ``GET /_emulator/customers`` (every map) and ``GET /_emulator/stats``: read-only
  inspection; they need the token too when one is configured, and are never counted
  in the statistics nor subject to faults.

Limits and outages to rehearse flow control (see :meth:`EmulatorState.arrive`): a
``capacity`` (more requests in flight than that get 429 with ``Retry-After`` at once),
a token-bucket ``rate_limit`` (with ``rate_burst``), and an outage window that starts
once ``outage_after`` requests were accepted and lasts ``outage_seconds`` (or for ever):
503 to everything, or (``outage_mode="refuse"``) the port closed.

The ``{id}`` segment is taken from the raw request path and percent-decoded exactly
once (``A%2FB`` is customer ``A/B``). It is a customer's gid or its external id (see
:mod:`bulk_sync.customers`): both address the same map, kept under the gid.

Checks come in the order of a real API gateway: the route and method, then the
credentials (every request must carry ``Authorization: Bearer <something>``; with
``token`` set, ``<something>`` must be that token), then the rate limit, then the
injected faults (a backend failing behind the gateway), then the customer and the body.
So a wrong key is answered 401 at once, however many faults are injected.

Error bodies are as the real API writes them (the official clients' fixtures):
``{"code": 401, "message": "Credentials are required to access this resource"}``,
``{"code": 404, "message": "Customer not found"}``, ``{"code": 400, "message":
"Invalid JSON"}`` and the generic ``{"code": 422, "message": "Unprocessable request"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import os
import random
import re
import signal
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NamedTuple, Self
from urllib.parse import unquote_to_bytes

from aiohttp import web

from bulk_sync.customers import CustomerDirectory
from bulk_sync.errors import ConfigError

__all__ = [
    "EmulatorSettings",
    "EmulatorState",
    "EmulatorThread",
    "Reply",
    "RunningEmulator",
    "load_state_file",
    "running_emulator",
    "serve",
    "write_state_file",
]

SAVE_INTERVAL: Final = 1.0
OUTAGE_MODES: Final = ("503", "refuse")
_ATTRIBUTES_PATH = re.compile(r"/customers/([^/]+)/attributes")
_JSON: Final = "application/json"


@dataclass(frozen=True)
class EmulatorSettings:
    """What the emulator does. Rates are fractions of API requests in [0, 1].

    ``customers``: ``None`` = every id exists (each its own gid); else a
    :class:`~bulk_sync.customers.CustomerDirectory` (gids and external ids) or a set of
    ids (gids without external ids), and other ids get 404.
    ``token``: ``None`` = any Bearer token is accepted.
    ``error_rate`` → 503, ``throttle_rate`` → 429 with ``Retry-After: retry_after``,
    ``drop_rate`` → connection closed without an answer (before anything is stored);
    the three together must not exceed 1. ``rate_limit``: requests per second (token
    bucket, bursts of one second's worth), beyond it 429 with ``Retry-After``.
    ``rate_burst``: the bucket's size (default: one second's worth, at least 1).
    ``capacity``: requests in flight at once; one more gets 429 with ``Retry-After:
    retry_after`` at once, without the latency (a gateway's concurrency limit).
    ``outage_after``: the outage starts once this many requests were accepted (0: with
    the first request); ``outage_seconds``: how long (``None``: for ever);
    ``outage_mode``: ``"503"`` (every API request answered 503 at once) or
    ``"refuse"`` (the port is closed, so connections are refused; requests on
    connections already open are dropped).
    ``max_*``: limits whose excess gives 422 (lengths in characters).
    ``initial_state``: maps to start with; the ``state_file``, if it exists, is loaded
    on top. The state file is written at most every second while running and on stop.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    customers: CustomerDirectory | frozenset[str] | None = None
    latency: float = 0.0
    jitter: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    retry_after: float = 1.0
    drop_rate: float = 0.0
    rate_limit: float | None = None
    rate_burst: float | None = None
    capacity: int | None = None
    outage_after: int | None = None
    outage_seconds: float | None = None
    outage_mode: str = "503"
    max_key_length: int | None = None
    max_value_length: int | None = None
    max_keys: int | None = None
    seed: int | None = None
    state_file: Path | None = None
    initial_state: Mapping[str, Mapping[str, str]] | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "throttle_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.error_rate + self.throttle_rate + self.drop_rate > 1.0 + 1e-9:
            raise ValueError("error_rate + throttle_rate + drop_rate must not exceed 1")
        for name in ("latency", "jitter", "retry_after"):
            value = getattr(self, name)
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a non-negative number of seconds, got {value}")
        if self.rate_limit is not None and not (
            self.rate_limit > 0 and math.isfinite(self.rate_limit)
        ):
            raise ValueError(f"rate_limit must be positive, got {self.rate_limit}")
        if self.rate_burst is not None and not (
            self.rate_burst >= 1 and math.isfinite(self.rate_burst)
        ):
            raise ValueError(f"rate_burst must be at least 1, got {self.rate_burst}")
        if self.capacity is not None and self.capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {self.capacity}")
        if self.outage_after is not None and self.outage_after < 0:
            raise ValueError(f"outage_after must not be negative, got {self.outage_after}")
        if self.outage_seconds is not None and not (
            self.outage_seconds > 0 and math.isfinite(self.outage_seconds)
        ):
            raise ValueError(f"outage_seconds must be positive, got {self.outage_seconds}")
        if self.outage_mode not in OUTAGE_MODES:
            raise ValueError(f"outage_mode must be one of {', '.join(OUTAGE_MODES)}")
        for name in ("max_key_length", "max_value_length", "max_keys"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")


class Reply(NamedTuple):
    """What to answer: status, JSON body, extra headers; ``drop`` = close without answering."""

    status: int
    body: bytes
    headers: Mapping[str, str] | None = None
    drop: bool = False


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (aiohttp's mapping is case-insensitive already;
    a plain dict from an in-process caller may not be)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _json(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, _json({"code": status, "message": message}), headers)


_DROP: Final = Reply(0, b"", None, True)

# As the real API writes them (invisible-collector-ruby's spec/fixtures).
UNAUTHORIZED: Final = "Credentials are required to access this resource"
NOT_FOUND: Final = "Customer not found"
INVALID_JSON: Final = "Invalid JSON"
UNPROCESSABLE: Final = "Unprocessable request"


class EmulatorState:
    """The pure core: customers' attributes, statistics and the request semantics.

    Read freely in-process: ``customers`` (gid → map), ``requests_total`` (every API
    request, inspection endpoints excluded), ``by_status`` (answers by status code; drops
    have none), ``posts_by_customer`` (every POST that named a customer, whatever its
    outcome), ``accepted_by_customer`` (POSTs answered 200), ``faults`` (``drop``,
    ``error``, ``throttle``, ``rate_limit``), or all of it as JSON-ready :meth:`stats`.
    ``clock`` (monotonic seconds) drives the rate limit; faults draw from
    ``random.Random(seed)``, one number per API request while any fault rate is set.
    """

    def __init__(
        self,
        settings: EmulatorSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        known = settings.customers
        self.directory: CustomerDirectory | None = (
            CustomerDirectory.of(known) if isinstance(known, frozenset | set) else known
        )
        self.customers: dict[str, dict[str, str]] = {}
        if settings.initial_state:
            for cid, attrs in settings.initial_state.items():
                self.customers.setdefault(self.gid_of(cid) or cid, {}).update(attrs)
        if settings.state_file is not None and settings.state_file.exists():
            for cid, attrs in load_state_file(settings.state_file).items():
                self.customers.setdefault(self.gid_of(cid) or cid, {}).update(attrs)
        self.requests_total = 0
        self.by_status: Counter[int] = Counter()
        self.posts_by_customer: Counter[str] = Counter()
        self.accepted_by_customer: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.changes = 0  # bumped on every accepted write; the saver compares it
        self._clock = clock
        self._rng = random.Random(settings.seed)
        self._fault_rates = (
            settings.drop_rate,
            settings.drop_rate + settings.error_rate,
            settings.drop_rate + settings.error_rate + settings.throttle_rate,
        )
        self._any_fault = self._fault_rates[2] > 0
        seconds = settings.retry_after
        self._throttle_header = {
            "Retry-After": str(int(seconds)) if seconds == int(seconds) else str(seconds)
        }
        self._token = settings.token.encode() if settings.token is not None else None
        self._rate = settings.rate_limit
        self._bucket_size = settings.rate_burst or max(1.0, settings.rate_limit or 0.0)
        self._bucket = self._bucket_size
        self._bucket_time: float | None = None
        self.in_flight = 0  # requests arrived and not yet answered (see arrive/leave)
        self.max_in_flight = 0
        self.accepted_total = 0
        self.outage_started: float | None = None  # clock time the outage began
        self._capacity_header = {"Retry-After": self._throttle_header["Retry-After"]}

    # ------------------------------------------------------------------ the request

    def handle(
        self,
        method: str,
        raw_path: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Reply:
        """Answer one request. ``raw_path`` is the path as on the wire (still encoded)."""
        path = raw_path.partition("?")[0]
        match = _ATTRIBUTES_PATH.fullmatch(path)
        if match is None and path.startswith("/_emulator/"):
            return self._inspect(method, path, headers)
        self.requests_total += 1
        if match is None:
            return self._count(_error(404, "no such endpoint"))
        try:
            customer_id = unquote_to_bytes(match.group(1)).decode("utf-8")
        except UnicodeDecodeError:
            return self._count(_error(404, "customer id is not valid UTF-8"))
        if method == "POST":
            self.posts_by_customer[customer_id] += 1
        elif method != "GET":
            return self._count(_error(405, "method not allowed", {"Allow": "GET, POST"}))
        # A gateway authenticates before it counts a caller's requests or passes them on.
        if not self._authorized(headers):
            return self._count(_error(401, UNAUTHORIZED))
        if self._rate is not None:
            wait = self._take_token()
            if wait > 0:
                self.faults["rate_limit"] += 1
                retry = {"Retry-After": str(max(1, math.ceil(wait)))}
                return self._count(_error(429, "Too many requests", retry))
        if self._any_fault:
            draw = self._rng.random()
            drop_below, error_below, throttle_below = self._fault_rates
            if draw < drop_below:
                self.faults["drop"] += 1
                return _DROP
            if draw < error_below:
                self.faults["error"] += 1
                return self._count(_error(503, "Service unavailable (injected fault)"))
            if draw < throttle_below:
                self.faults["throttle"] += 1
                return self._count(
                    _error(429, "Too many requests (injected fault)", self._throttle_header)
                )
        gid = self.gid_of(customer_id)
        if gid is None:
            return self._count(_error(404, NOT_FOUND))
        if method == "GET":
            return self._count(Reply(200, _json(self.customers.get(gid, {}))))
        content_type = _header(headers, "Content-Type") or ""
        if content_type.split(";")[0].strip().lower() != "application/json":
            # Strict on purpose: the contract's request is JSON, and a client that drops
            # the header should fail here, not in production.
            return self._count(_error(415, "Content-Type must be application/json"))
        status, attributes = self._parse(body)
        if status != 200:
            return self._count(_error(status, INVALID_JSON if status == 400 else UNPROCESSABLE))
        current = self.customers.get(gid)
        if current is None:
            current = self.customers[gid] = {}
        current.update(attributes)
        self.changes += 1
        self.accepted_by_customer[customer_id] += 1
        self.accepted_total += 1
        after = self.settings.outage_after
        if after is not None and self.outage_started is None and self.accepted_total >= after:
            self.outage_started = self._clock()
        return self._count(Reply(200, _json(current)))

    def gid_of(self, customer_id: str) -> str | None:
        """The gid under which ``customer_id`` (a gid or an external id) is kept, or
        ``None`` for an unknown customer. With no customer list, every id is a gid."""
        if self.directory is None:
            return customer_id
        return self.directory.gid_of(customer_id)

    def in_outage(self, now: float | None = None) -> bool:
        """Whether the outage window is on at ``now`` (the clock's time by default)."""
        started = self.outage_started
        if started is None:
            return False
        seconds = self.settings.outage_seconds
        if seconds is None:
            return True
        return (self._clock() if now is None else now) < started + seconds

    def outage_left(self) -> float | None:
        """Seconds until the outage ends (0 when over); ``None`` if it never ends or has
        not begun."""
        started, seconds = self.outage_started, self.settings.outage_seconds
        if started is None or seconds is None:
            return None
        return max(0.0, started + seconds - self._clock())

    def arrive(self, raw_path: str, headers: Mapping[str, str] | None = None) -> Reply | None:
        """A request arrives, before any latency. The outage and the capacity answer at
        once: a :class:`Reply` (the request is counted and done), or ``None``: go on, and
        call :meth:`leave` once answered. The outage comes before everything (nothing
        behind the load balancer answers); the capacity, a gateway's concurrency limit,
        only after the credentials (a wrong key is left to :meth:`handle`: 401)."""
        if raw_path.startswith("/_emulator/"):
            return None
        s = self.settings
        if s.outage_after == 0 and self.outage_started is None:
            self.outage_started = self._clock()
        if self.in_outage():
            self.requests_total += 1
            self.faults["outage"] += 1
            if s.outage_mode == "refuse":
                return _DROP
            return self._count(_error(503, "Service unavailable"))
        if (
            s.capacity is not None
            and self.in_flight >= s.capacity
            and (headers is None or self._authorized(headers))
        ):
            self.requests_total += 1
            self.faults["capacity"] += 1
            return self._count(_error(429, "Too many requests in flight", self._capacity_header))
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        return None

    def leave(self) -> None:
        """The request let in by :meth:`arrive` was answered (or dropped)."""
        self.in_flight -= 1

    def _count(self, reply: Reply) -> Reply:
        self.by_status[reply.status] += 1
        return reply

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        value = _header(headers, "Authorization")
        if value is None:
            return False
        scheme, _, credentials = value.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            return False
        if self._token is None:
            return True
        return hmac.compare_digest(credentials.encode(), self._token)

    def _take_token(self) -> float:
        """Token bucket: 0 if the request may pass, else seconds until it could."""
        assert self._rate is not None
        now = self._clock()
        capacity = self._bucket_size
        if self._bucket_time is not None:
            self._bucket = min(capacity, self._bucket + (now - self._bucket_time) * self._rate)
        self._bucket_time = now
        if self._bucket >= 1.0:
            self._bucket -= 1.0
            return 0.0
        return (1.0 - self._bucket) / self._rate

    def _parse(self, body: bytes) -> tuple[int, dict[str, str]]:
        """(200, the attributes), or (400, {}) for a body that is not JSON, or (422, {})
        for one the API refuses: not an object of non-empty strings, or over a limit.
        The real API says only "Unprocessable request" for every 422, and so do we."""
        try:
            data = json.loads(body)
        except RecursionError:
            return 422, {}
        except (ValueError, UnicodeDecodeError):
            return 400, {}
        if type(data) is not dict:
            return 422, {}
        s = self.settings
        if s.max_keys is not None and len(data) > s.max_keys:
            return 422, {}
        for key, value in data.items():
            if not key or type(value) is not str or not value:
                return 422, {}
            if s.max_key_length is not None and len(key) > s.max_key_length:
                return 422, {}
            if s.max_value_length is not None and len(value) > s.max_value_length:
                return 422, {}
        return 200, data

    # ------------------------------------------------------------------ inspection

    def _inspect(self, method: str, path: str, headers: Mapping[str, str]) -> Reply:
        if path not in ("/_emulator/customers", "/_emulator/stats"):
            return _error(404, "no such endpoint")
        if method != "GET":
            return _error(405, "method not allowed", {"Allow": "GET"})
        if not self._authorized(headers):
            return _error(401, UNAUTHORIZED)
        if path == "/_emulator/stats":
            return Reply(200, _json(self.stats()))
        return Reply(200, _json(self.customers))

    def stats(self) -> dict[str, Any]:
        """Counters as JSON-ready data (status codes as strings)."""
        return {
            "requests_total": self.requests_total,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "posts_by_customer": dict(self.posts_by_customer),
            "accepted_by_customer": dict(self.accepted_by_customer),
            "faults": dict(self.faults),
            "customers": len(self.customers),
            "max_in_flight": self.max_in_flight,
            "outage_for": (  # seconds since the outage began, None before
                None
                if self.outage_started is None
                else round(self._clock() - self.outage_started, 3)
            ),
            "in_outage": self.in_outage(),
        }

    def snapshot(self) -> bytes:
        """Every customer's attributes as JSON (what the state file holds)."""
        return json.dumps(self.customers, ensure_ascii=False, indent=1, sort_keys=True).encode()


# ----------------------------------------------------------------------------- state file


def load_state_file(path: Path) -> dict[str, dict[str, str]]:
    """Read a state file (``{customer id: {attribute: value}}``); ConfigError if unusable."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"state file {str(path)!r} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(attrs, dict) and all(isinstance(v, str) for v in attrs.values())
        for attrs in data.values()
    ):
        raise ConfigError(
            f"state file {str(path)!r} is not a JSON object of customer id -> attribute map"
        )
    return {str(cid): dict(attrs) for cid, attrs in data.items()}


def write_state_file(path: Path, data: bytes) -> None:
    """Write atomically: a temporary file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------- HTTP front end


class RunningEmulator:
    """A started emulator: ``base_url``, ``port``, live ``state``, ``settings``."""

    def __init__(self, settings: EmulatorSettings, state: EmulatorState) -> None:
        self.settings = settings
        self.state = state
        self.port = 0
        self.base_url = ""
        self._runner: web.ServerRunner | None = None
        self._saver: asyncio.Task[None] | None = None
        self._saved_changes = state.changes
        self._jitter = random.Random(None if settings.seed is None else settings.seed + 1)
        self._site: web.TCPSite | None = None
        self._outage: asyncio.Task[None] | None = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        settings = self.settings
        state = self.state
        early = state.arrive(request.raw_path, request.headers)
        if early is not None:
            reply = early
        else:
            try:
                if settings.latency or settings.jitter:
                    await asyncio.sleep(
                        settings.latency + self._jitter.uniform(0.0, settings.jitter)
                    )
                reply = state.handle(request.method, request.raw_path, request.headers, body)
            finally:
                state.leave()
        if settings.outage_mode == "refuse" and self._outage is None and state.in_outage():
            self._outage = asyncio.create_task(self._refuse_connections())
        if reply.drop:
            request.protocol.force_close()
            transport = request.transport
            if transport is not None:
                transport.abort()
            return web.Response(
                status=500
            )  # writing it fails quietly: aiohttp sees a client that went away
        return web.Response(
            status=reply.status, body=reply.body, headers=reply.headers, content_type=_JSON
        )

    async def _refuse_connections(self) -> None:
        """The ``refuse`` outage: stop listening (new connections are refused; requests
        on connections already open are dropped by ``arrive``), and listen again on the
        same port when the outage window ends."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        left = self.state.outage_left()
        if left is None:
            return
        await asyncio.sleep(left)
        if self._runner is not None:
            site = web.TCPSite(self._runner, self.settings.host, self.port)
            await site.start()
            self._site = site

    async def start(self) -> None:
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self.settings.host, self.settings.port)
            await site.start()
            self._site = site
        except BaseException:
            await runner.cleanup()
            self._runner = None
            raise
        address = runner.addresses[0]
        self.port = int(address[1])
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{self.port}"
        if self.settings.state_file is not None:
            self._saver = asyncio.create_task(self._save_periodically())

    async def stop(self) -> None:
        if self._outage is not None:
            self._outage.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outage
            self._outage = None
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
            await self.save()

    async def save(self) -> None:
        """Write the state file now if anything changed since the last write."""
        path = self.settings.state_file
        changes = self.state.changes
        if path is None or (changes == self._saved_changes and path.exists()):
            return
        data = self.state.snapshot()
        await asyncio.to_thread(write_state_file, path, data)
        self._saved_changes = changes

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(SAVE_INTERVAL)
            await self.save()


@contextlib.asynccontextmanager
async def running_emulator(settings: EmulatorSettings) -> AsyncIterator[RunningEmulator]:
    """Run the emulator in the current event loop (use ``port=0`` for a free port)."""
    emulator = RunningEmulator(settings, EmulatorState(settings))
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


class EmulatorThread:
    """The emulator on its own event loop in a daemon thread (a sync context manager)."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.state = EmulatorState(settings)
        self._emulator = RunningEmulator(settings, self.state)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        return self._emulator.base_url

    @property
    def port(self) -> int:
        return self._emulator.port

    def start(self, timeout: float = 10.0) -> Self:
        self._thread = threading.Thread(target=self._run, name="bulk-sync-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the emulator did not start in time")
        if self._failure is not None:
            failure, self._failure = self._failure, None
            self._thread.join()
            self._thread = None
            raise failure
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop = self._loop, self._stop
        if self._thread is None or loop is None or stop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)
        self._thread = None
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the starting/stopping thread
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self._emulator.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._emulator.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    settings: EmulatorSettings,
    on_ready: Callable[[str], None] | None = None,
    *,
    on_stop: Callable[[EmulatorState], None] | None = None,
) -> None:
    """Run until SIGINT or SIGTERM, then write the state file and return.

    ``on_ready`` gets the base URL once the port is bound; ``on_stop`` the final state.
    """

    async def main() -> None:
        emulator = RunningEmulator(settings, EmulatorState(settings))  # may raise ConfigError
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                pass
        try:
            await emulator.start()
            if on_ready is not None:
                on_ready(emulator.base_url)
            await stop.wait()
        finally:
            await emulator.stop()
            for sig in installed:
                loop.remove_signal_handler(sig)
        if on_stop is not None:
            on_stop(emulator.state)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (for callers that need it before starting)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
