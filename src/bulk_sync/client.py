"""Async client for the Invisible Collector customer-attributes API.

Usable on its own as a library::

    import asyncio
    from bulk_sync.client import Client
    from bulk_sync.errors import ApiError

    async def main() -> None:
        async with Client(token="0123...cdef") as ic:
            try:
                merged = await ic.set_customer_attributes("C-001", {"plan": "gold"})
            except ApiError as exc:  # AuthError, CustomerNotFound, RateLimited, ...
                print(exc.status, exc.message, exc.retriable)
            else:
                print(merged)  # the customer's whole map after the merge

    asyncio.run(main())

All I/O goes through one seam, an :class:`httpx.AsyncBaseTransport`: by default
:class:`AiohttpTransport` (aiohttp's connection pool, the fastest), ``"httpx"``
for httpx's own pool, or any transport instance (tests pass
:class:`httpx.MockTransport`). The client calls the transport directly rather
than through :class:`httpx.AsyncClient`: no cookies, redirects or auth flows,
and the request path goes on the wire byte for byte as built here.

:func:`classify` is the one place where a response becomes an outcome (a map or
an :class:`~bulk_sync.errors.ApiError`); the API token never appears in any
exception, repr or log.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
import httpx
import yarl

from bulk_sync import __version__
from bulk_sync.errors import (
    ApiError,
    AuthError,
    CertificateError,
    ClientError,
    ConfigError,
    CustomerNotFound,
    DocumentRejected,
    Forbidden,
    InsecureURLError,
    RateLimited,
    ServerError,
    TransportError,
)
from bulk_sync.redaction import NO_REDACTION, Redactor, redact_then_shorten

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_ERROR_BODY_BYTES",
    "MAX_RESPONSE_BYTES",
    "MAX_URL_CHARS",
    "AiohttpTransport",
    "AttributeMap",
    "Client",
    "DeadlineExceeded",
    "classify",
    "customer_path",
    "encode_customer_id",
    "is_loopback_host",
    "parse_retry_after",
]

DEFAULT_BASE_URL: Final = "https://api.invisiblecollector.com"
MAX_MESSAGE_CHARS: Final = 300
MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024
"""The most of an accepted write's answer (the customer's whole map) that is read, after
decompression; a longer answer is a failed attempt. A customer with 100,000 attributes
answers about 2.7 MB."""
MAX_ERROR_BODY_BYTES: Final = 64 * 1024
"""The most of an error answer that is read; the rest is not waited for (the status alone
decides what happens, the body only gives the message)."""
MAX_URL_CHARS: Final = 65_536
"""The longest URL sent (httpx's own limit, applied to both transports alike)."""
ACCEPT_ENCODING: Final = "gzip, deflate"
"""What the client asks for, and all it can read back (bounded, see :func:`decode_body`)."""
JSON_CONTENT_TYPE: Final = "application/json; charset=utf-8"
"""As the official Java, Go and C# clients send it."""

_DEFAULT_MESSAGES: Final[Mapping[int, str]] = {
    400: "bad request",
    401: "credentials rejected: check the API token",
    403: "forbidden: the API token may not do this",
    404: "no customer with this id",
    409: "conflict",
    422: "attributes rejected (an empty key or value, or a limit exceeded)",
    429: "rate limited",
}
_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?")


class _LowerCaseHeaders(dict[str, str]):
    """Header names already lower-cased (built by :func:`_answer_headers`)."""

    __slots__ = ()


_NO_HEADERS: Final[Mapping[str, str]] = _LowerCaseHeaders()
_JSON_DECODER: Final = json.JSONDecoder()


class AttributeMap(dict[str, str]):
    """A customer's attribute map as an accepted write's answer shows it.

    A plain ``dict`` of the answer's string values, plus ``status`` (the HTTP status,
    200 or another 2xx) and ``note``: empty when the answer was a readable JSON object,
    else why it could not confirm anything (an empty body, an answer nested too deeply
    to read). A value sent but missing from the map, or different in it, was accepted
    but is not confirmed either: see :func:`bulk_sync.uploader.confirmation_note`.
    """

    __slots__ = ("note", "status")

    def __init__(self, values: Mapping[str, str] = _NO_HEADERS, status: int = 200, note: str = ""):
        super().__init__(values)
        self.status = status
        self.note = note


class DeadlineExceeded(httpx.ReadTimeout):
    """The whole exchange, answer included, took longer than its deadline (the ``total``
    of the request's ``timeout`` extension, for :class:`AiohttpTransport`)."""


class _BodyError(Exception):
    """A body that cannot be read within the limits: too large, or an unknown encoding."""


class _DamagedBody(Exception):
    """Compressed data (gzip, deflate) that cannot be decompressed."""


# --------------------------------------------------------------------------- pure functions


def encode_customer_id(customer_id: str) -> str:
    """The customer id as exactly one percent-encoded URL path segment.

    Every character except the unreserved ``A-Z a-z 0-9 - . _ ~`` is encoded (UTF-8),
    so ``/ ? # % + space`` can never change which URL is hit. A segment made only of
    dots is fully encoded too. ``""``, ``"."`` and ``".."`` are refused with a
    :class:`ClientError` (status ``None``): servers and proxies normalise them away
    (``%2E%2E`` is ``..`` by RFC 3986), so no client can address them safely.
    """
    if customer_id in ("", ".", ".."):
        raise ClientError(
            "this customer id cannot be addressed in a URL (empty, '.' and '..' are refused)",
            customer_id=customer_id,
        )
    try:
        encoded = quote(customer_id, safe="", errors="strict")
    except UnicodeEncodeError:
        raise ClientError(
            "customer id is not valid Unicode text", customer_id=customer_id
        ) from None
    if encoded.strip(".") == "":
        encoded = "%2E" * len(encoded)
    return encoded


def customer_path(customer_id: str, prefix: str = "") -> str:
    """``{prefix}/customers/{encoded id}/attributes``, the raw path as sent on the wire."""
    return f"{prefix}/customers/{encode_customer_id(customer_id)}/attributes"


def is_loopback_host(host: str) -> bool:
    """True for a literal loopback address (127.0.0.0/8, ``::1``, brackets allowed) and the
    exact name ``localhost``; nothing else, not even ``x.localhost`` or ``localhost.``:
    such names may go to DNS, and plain http would carry the key off the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` when absent or unusable.

    Accepts delta-seconds (``"120"``, also ``"1.5"``) and HTTP dates
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``, relative to ``now``, a UNIX time that
    defaults to the current time). Never negative: a date in the past gives ``0.0``.
    """
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 64:
        return None
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        timestamp = when.timestamp() if when.tzinfo else when.replace(tzinfo=UTC).timestamp()
    except (OverflowError, OSError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, timestamp - current)


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` undone from its ``Content-Encoding`` (gzip, deflate, identity; a list is
    undone last first), at most ``limit + 1`` bytes of it: a longer result means the
    answer is over the limit, and no more than that is ever held in memory (a gzip bomb
    stops there). Raises ``_BodyError`` for an encoding it cannot read, ``_DamagedBody``
    for data it cannot decompress."""
    if not content_encoding:
        return body[: limit + 1]
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    for coding in codings:  # an encoding it cannot read anywhere: nothing to decompress
        if coding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise _BodyError(coding)
    for coding in reversed(codings):
        if coding in ("", "identity"):
            continue
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, zlib.MAX_WBITS | 16, limit)
        elif coding == "deflate":
            try:  # RFC 9110 says zlib-wrapped; some servers send it raw
                body = _inflate(body, zlib.MAX_WBITS, limit)
            except zlib.error:
                body = _inflate(body, -zlib.MAX_WBITS, limit)
    return body[: limit + 1]


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """Decompress at most ``limit + 1`` bytes (the rest is never produced). Truncated
    data gives what could be decoded; corrupt data raises ``_DamagedBody``."""
    inflater = zlib.decompressobj(wbits)
    try:
        return inflater.decompress(data, limit + 1)
    except zlib.error:
        if wbits == zlib.MAX_WBITS:
            raise  # the caller tries raw deflate
        raise _DamagedBody from None


def classify(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    customer_id: str,
    *,
    now: float | None = None,
    redactor: Redactor = NO_REDACTION,
    url: str | None = None,
    max_body: int = MAX_RESPONSE_BYTES,
) -> AttributeMap | ApiError:
    """The one place where an HTTP response becomes an outcome. Never raises.

    ``body`` is as received: undone here from its ``Content-Encoding`` (bounded). Every
    text taken from the answer goes through ``redactor`` before it is shortened.

    - 2xx: the write was accepted. A JSON object → an :class:`AttributeMap` of its string
      values. An empty body, or JSON nested too deeply to read → an empty
      :class:`AttributeMap` whose ``note`` says the answer confirms nothing. A body that is
      not a JSON object (an HTML page: something other than the API answered, e.g. a wrong
      ``--base-url``), more than ``max_body`` bytes, or in an encoding not asked for →
      :class:`TransportError` (a failed attempt, retried).
    - 3xx: :class:`ClientError` saying it was a redirect, where to, and to fix
      ``--base-url`` (redirects are never followed: the request carries the key).
    - 401 → :class:`AuthError`; 403 → :class:`Forbidden`; 404 → :class:`CustomerNotFound`;
      422 → :class:`DocumentRejected`; 429 → :class:`RateLimited`; 5xx →
      :class:`ServerError`; any other → :class:`ClientError`. The message is the body's
      ``message`` (JSON, as the API writes it: ``{"code": 404, "message": "Customer not
      found"}``, the code a number or a string), else its plain text, else a default; a
      ``gid`` (a 409) is named.
      429 and 5xx carry ``retry_after`` from the ``Retry-After`` header.
    """
    success = 200 <= status_code < 300
    coding = _header(headers, "content-encoding")
    damaged = False
    try:
        body = decode_body(body, coding, max_body if success else MAX_ERROR_BODY_BYTES)
        unreadable = ""
    except _BodyError as exc:
        body, unreadable = b"", str(exc)
    except _DamagedBody:
        body, unreadable, damaged = b"", "", True
    if success:
        if damaged:  # not an empty answer: one that cannot be read
            shown = redact_then_shorten(coding or "", redactor, 40)
            return AttributeMap(
                status=status_code,
                note=f"the answer (HTTP {status_code}) could not be decompressed ({shown})",
            )
        return _accepted(status_code, headers, body, customer_id, unreadable, max_body, redactor)

    if 300 <= status_code < 400:
        return ClientError(
            _redirect_message(status_code, _header(headers, "location"), url, redactor),
            status=status_code,
            customer_id=customer_id,
        )
    message, code = _error_details(body[:MAX_ERROR_BODY_BYTES], redactor)
    if status_code == 401:
        cls: type[ApiError] = AuthError
    elif status_code == 403:
        cls = Forbidden
    elif status_code == 404:
        cls = CustomerNotFound
    elif status_code == 422:
        cls = DocumentRejected
    elif status_code == 429:
        cls = RateLimited
    elif 500 <= status_code < 600:
        cls = ServerError
    else:
        cls = ClientError
    if message is None:
        message = _DEFAULT_MESSAGES.get(status_code) or (
            "server error" if 500 <= status_code < 600 else "unexpected response"
        )
    retry_after = None
    if status_code == 429 or status_code >= 500:
        retry_after = parse_retry_after(_header(headers, "retry-after"), now)
    return cls(
        message, status=status_code, customer_id=customer_id, code=code, retry_after=retry_after
    )


def _accepted(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    customer_id: str,
    unreadable: str,
    max_body: int,
    redactor: Redactor,
) -> AttributeMap | ApiError:
    if unreadable:
        return TransportError(
            f"the answer is encoded as {redact_then_shorten(unreadable, redactor, 40)!r}, which "
            f"bulk-sync does not ask for ({ACCEPT_ENCODING}) and cannot read",
            status=status,
            customer_id=customer_id,
        )
    if len(body) > max_body:
        return TransportError(
            f"the answer is larger than {_size(max_body)}: not read, the attempt counts as failed",
            status=status,
            customer_id=customer_id,
        )
    if not body.strip():  # e.g. 204: accepted, nothing to confirm it with
        return AttributeMap(status=status, note=f"the answer (HTTP {status}) was empty")
    try:
        data = json.loads(body)
    except RecursionError:
        return AttributeMap(status=status, note="the answer was nested too deeply to be read")
    except (ValueError, UnicodeDecodeError):
        data = None
    if type(data) is dict:
        # The contract's values are strings; any other value (an old attribute stored
        # otherwise, a null) does not undo the write: it is only left out of the map.
        if all(type(v) is str for v in data.values()):
            return AttributeMap(data, status)
        return AttributeMap({k: v for k, v in data.items() if type(v) is str}, status)
    # Not a JSON object at all (an HTML page, say): something other than the API
    # answered, e.g. a wrong --base-url; treat it as a failed attempt.
    content_type = _header(headers, "content-type")
    kind = redact_then_shorten(content_type, redactor, 60) if content_type else "no content type"
    return TransportError(
        f"malformed response (HTTP {status}, {kind}): {_describe_body(body, redactor, 80)}; "
        "is --base-url the API's address?",
        status=status,
        customer_id=customer_id,
    )


def _redirect_message(
    status: int, location: str | None, url: str | None, redactor: Redactor
) -> str:
    target = urljoin(url or "", location.strip()) if location else ""
    shown = redact_then_shorten(target, redactor, 200)
    where = f" to {shown}" if shown else ""
    text = (
        f"the server answered with a redirect (HTTP {status}{where}); bulk-sync does not "
        "follow redirects (the request carries the API key): set --base-url to the "
        "address the API answers at"
    )
    if url and target:
        try:
            old, new = urlsplit(url), urlsplit(target)
            same_host = old.hostname == new.hostname and old.hostname is not None
        except ValueError:
            same_host = False
        if same_host and old.scheme == "http" and new.scheme == "https":
            base = redact_then_shorten(f"https://{new.netloc}", redactor, 120)
            text += f"; the API is served over https: use --base-url {base}"
    return text


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``name`` (lower case) in ``headers``, whatever the case of its keys."""
    value = headers.get(name)  # case-insensitive for httpx.Headers / multidicts
    if value is not None or type(headers) in _CASELESS:
        return value
    for key, item in headers.items():
        if key.lower() == name:
            return item
    return None


def _describe_body(body: bytes, redactor: Redactor, limit: int) -> str:
    if not body:
        return "empty body"
    try:
        text = body[:MAX_ERROR_BODY_BYTES].decode("utf-8")
    except UnicodeDecodeError:
        return f"{len(body)} bytes of binary data"
    return redact_then_shorten(text, redactor, limit) or "blank body"


def _error_details(body: bytes, redactor: Redactor) -> tuple[str | None, str | None]:
    """(message, code) from an error body, or Nones, redacted then shortened. Never raises.

    The API writes ``{"code": 404, "message": "Customer not found"}`` (the code sometimes
    a string); a 409 adds the ``gid`` of the customer in the way. Two JSON objects back to
    back: the first one counts.
    """
    if not body:
        return None, None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, None
    try:
        data, _ = _JSON_DECODER.raw_decode(text.strip())
    except ValueError:
        data = None
    except RecursionError:  # pathologically nested JSON
        return None, None
    if isinstance(data, dict):
        code = data.get("code")
        code_text = (
            redact_then_shorten(str(code), redactor, 40)
            if isinstance(code, str | int) and not isinstance(code, bool)
            else None
        ) or None
        message: str | None = None
        for key in ("message", "error", "detail", "title"):
            found = data.get(key)
            if isinstance(found, str) and found.strip():
                message = found
                break
        gid = data.get("gid")  # a 409: the customer already holding what was sent
        if isinstance(gid, str | int) and not isinstance(gid, bool) and str(gid).strip():
            message = f"{message or 'conflict'} (conflicting customer gid {str(gid)[:100]})"
        if message is None:
            return None, code_text
        return redact_then_shorten(message, redactor, MAX_MESSAGE_CHARS) or None, code_text
    if data is not None:  # a JSON array, number, string...
        if isinstance(data, str):
            return redact_then_shorten(data, redactor, MAX_MESSAGE_CHARS) or None, None
        return None, None
    if text.lstrip().startswith("<"):  # an HTML error page says nothing useful
        return None, None
    return redact_then_shorten(text, redactor, MAX_MESSAGE_CHARS) or None, None


# --------------------------------------------------------------------------- aiohttp transport


class AiohttpTransport(httpx.AsyncBaseTransport):
    """A minimal httpx transport over an :class:`aiohttp.ClientSession`.

    Unlike ``httpx_aiohttp.AiohttpTransport`` it hands aiohttp the URL with
    ``yarl.URL(..., encoded=True)``, so the path goes on the wire exactly as httpx
    holds it (yarl would otherwise turn ``%2E%2E`` into ``..`` and drop the segment);
    it reads the response body before returning (releasing the connection at once),
    but never more than a bound: ``max_body + 1`` bytes of a 2xx answer (so that a longer
    one can be told apart) and :data:`MAX_ERROR_BODY_BYTES` of any other; a connection
    whose answer was cut short is closed, not reused. The body is returned as received
    (``auto_decompress`` is off: :func:`classify` decompresses, bounded). Every aiohttp
    failure becomes the matching :class:`httpx.TransportError`. Timeouts come from the
    request's ``timeout`` extension (``connect``, ``read``, ``pool``) like httpx's own
    transport; the :class:`Client` adds a deadline for the whole attempt.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | bool = True,
        max_connections: int = 100,
        keepalive_timeout: float = 15.0,
        max_body: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.max_body = max_body
        self._ssl: ssl.SSLContext | bool = ssl_context
        self._max_connections = max_connections
        self._keepalive_timeout = keepalive_timeout
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout]
        self._timeouts = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            ssl=self._ssl,
            keepalive_timeout=self._keepalive_timeout,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # no cookies kept or sent back
        )
        return self._session

    def _timeout(self, extension: Mapping[str, float | None] | None) -> aiohttp.ClientTimeout:
        """aiohttp's timeouts from httpx's ``connect``/``read``/``pool``, plus ``total``
        (ours: the deadline of the whole exchange, answer included)."""
        ext = extension or {}
        key = (ext.get("connect"), ext.get("read"), ext.get("pool"), ext.get("total"))
        found = self._timeouts.get(key)
        if found is None:
            connect, read, pool, total = key
            total_connect = None if connect is None or pool is None else connect + pool
            found = aiohttp.ClientTimeout(
                total=total, connect=total_connect, sock_connect=connect, sock_read=read
            )
            self._timeouts[key] = found
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        status, raw_headers, content = await self.exchange(
            request.method,
            yarl.URL(str(request.url), encoded=True),
            request.headers.multi_items(),
            body,
            request.extensions.get("timeout"),
            request,
        )
        return httpx.Response(status, headers=raw_headers, content=content, request=request)

    async def exchange(
        self,
        method: str,
        url: yarl.URL,
        headers: Any,
        body: bytes | None,
        timeouts: Mapping[str, float | None] | None,
        request: httpx.Request | None = None,
    ) -> tuple[int, Any, bytes]:
        """One request without httpx objects: ``(status, raw headers, body)``.

        ``url`` goes on the wire as it is (build it with ``encoded=True``). Failures
        raise the matching :class:`httpx.TransportError` (carrying ``request`` if given).
        :class:`Client` calls this directly: the hot path of an upload.
        """
        session = self._session or self._open()
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(timeouts),
            ) as response:
                status = response.status
                limit = self.max_body + 1 if 200 <= status < 300 else MAX_ERROR_BODY_BYTES
                stream = response.content
                chunks: list[bytes] = []
                size = 0
                while size < limit:
                    chunk = await stream.read(limit - size)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                    if stream.at_eof():
                        break
                if not stream.at_eof():  # cut short: the connection cannot be reused
                    response.close()
                content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                return status, response.raw_headers, content
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(_text(exc, "connect timeout"), request=request) from exc
        except (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(_text(exc, "read timeout"), request=request) from exc
        except TimeoutError as exc:  # aiohttp's total timeout: the deadline of the exchange
            raise DeadlineExceeded(_text(exc, "deadline exceeded"), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(_text(exc, "connect error"), request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(
                "server disconnected without sending a complete response", request=request
            ) from exc
        except aiohttp.ClientPayloadError as exc:
            raise httpx.ReadError(_parser_text(exc, "incomplete body"), request=request) from exc
        except aiohttp.ClientResponseError as exc:
            raise httpx.RemoteProtocolError(
                _parser_text(exc, "not a valid HTTP answer"), request=request
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise httpx.UnsupportedProtocol(_text(exc, "invalid URL"), request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise httpx.ReadError(_text(exc, "network error"), request=request) from exc

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _text(exc: BaseException, fallback: str) -> str:
    return str(exc) or fallback


def _parser_text(exc: BaseException, what: str) -> str:
    """``what`` and the parser's own words. aiohttp prints its parser errors as
    ``400, message=..., url=...``, which a person reads as an HTTP 400 from the API."""
    for part in (exc, exc.__cause__, *exc.args):
        message = getattr(part, "message", None)
        if isinstance(message, str) and message.strip():
            return f"{what}: {message}"
    return f"{what}: {exc}" if str(exc) else what


# --------------------------------------------------------------------------- client


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        try:
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use CA bundle {verify!r}: {exc}") from None
    return httpx.create_ssl_context()


class Client:
    """Async Invisible Collector client owning one connection pool.

    Use it as ``async with Client(token=...) as client:``. ``transport`` is
    ``"aiohttp"`` (default, :class:`AiohttpTransport`), ``"httpx"``
    (:class:`httpx.AsyncHTTPTransport`) or a transport instance, which stays the
    caller's to close. ``verify`` is a bool or the path of a CA bundle. A plain
    ``http://`` base URL is refused (:class:`InsecureURLError`) unless its host is a
    loopback address or ``localhost``, or ``allow_insecure_http`` is true.

    Bounds on every attempt, whatever the server does: ``timeout`` seconds in all, from
    sending the request to the last byte of the answer (``connect_timeout`` for the
    connection within it); an accepted write's answer of at most ``max_response_bytes``
    after decompression (more is a failed attempt) and an error answer read no further
    than :data:`MAX_ERROR_BODY_BYTES`. The request asks for ``gzip, deflate`` and the
    answer is decompressed within the same bounds. Redirects are not followed.
    Text from the server is redacted (:class:`bulk_sync.redaction.Redactor`) before it
    reaches a message.
    """

    __slots__ = (
        "_base",
        "_closed",
        "_deadline",
        "_extensions",
        "_fast",
        "_fast_get_headers",
        "_fast_post_headers",
        "_fast_timeouts",
        "_get_headers",
        "_max_body",
        "_owns_transport",
        "_post_headers",
        "_redact",
        "_transport",
        "_transport_name",
        "base_url",
    )

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_connections: int = 100,
        transport: str | httpx.AsyncBaseTransport = "aiohttp",
        verify: bool | str = True,
        allow_insecure_http: bool = False,
        user_agent: str | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if not token:
            raise ConfigError("an API token is required")
        if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
            raise ConfigError("the API token contains characters that cannot be sent in a header")
        if max_connections < 1:
            raise ConfigError("max_connections must be at least 1")
        if not timeout > 0 or not connect_timeout > 0:
            raise ConfigError("timeouts must be positive")
        if max_response_bytes < 1:
            raise ConfigError("max_response_bytes must be at least 1")
        self.base_url = _check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self._base = self.base_url
        self._redact = Redactor([token])
        self._deadline = timeout
        self._max_body = max_response_bytes
        agent = user_agent or f"bulk-sync/{__version__}"
        common = [
            ("Authorization", f"Bearer {token}"),
            ("User-Agent", agent),
            ("Accept", "application/json"),
            ("Accept-Encoding", ACCEPT_ENCODING),
        ]
        self._get_headers = tuple(common)
        self._post_headers = (*common, ("Content-Type", JSON_CONTENT_TYPE))
        self._extensions = {
            "timeout": {
                "connect": connect_timeout,
                "read": timeout,
                "write": timeout,
                "pool": timeout,
            }
        }
        # Our own transport enforces the deadline itself (aiohttp's total timeout: one
        # timer it arms anyway); any other transport runs under asyncio.timeout.
        self._fast_timeouts = {**self._extensions["timeout"], "total": timeout}
        https = self.base_url.startswith("https:")
        if isinstance(transport, httpx.AsyncBaseTransport):
            self._transport: httpx.AsyncBaseTransport = transport
            self._owns_transport = False
            self._transport_name = type(transport).__name__
        elif transport == "aiohttp":
            self._transport = AiohttpTransport(
                ssl_context=_ssl_context(verify) if https else True,
                max_connections=max_connections,
                max_body=max_response_bytes,
            )
            self._owns_transport = True
            self._transport_name = "aiohttp"
        elif transport == "httpx":
            self._transport = httpx.AsyncHTTPTransport(
                verify=_ssl_context(verify) if https else True,
                limits=httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
            )
            self._owns_transport = True
            self._transport_name = "httpx"
        else:
            raise ConfigError(
                f"unknown transport {transport!r}: use 'aiohttp', 'httpx' or a transport object"
            )
        # Our own aiohttp transport is called without building httpx Request/URL/Response
        # objects (a third of the client's time per request); any other transport,
        # including subclasses, goes through the httpx seam.
        self._fast = self._transport if type(self._transport) is AiohttpTransport else None
        if self._fast is not None:
            self._max_body = self._fast.max_body
        # The names as httpx hands them to a transport (lower case), Host and
        # Content-Length being added by aiohttp.
        self._fast_get_headers = tuple((k.lower(), v) for k, v in self._get_headers)
        self._fast_post_headers = tuple((k.lower(), v) for k, v in self._post_headers)
        self._closed = False

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, transport={self._transport_name!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (only a transport this client created)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_transport:
            await self._transport.aclose()

    async def set_customer_attributes(
        self, customer_id: str, attributes: Mapping[str, str]
    ) -> dict[str, str]:
        """POST the attributes (merged by the API); returns the customer's whole map."""
        try:
            body = json.dumps(dict(attributes), ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:
            raise ClientError(
                "attributes are not valid Unicode text", customer_id=customer_id
            ) from None
        return await self._call("POST", customer_id, body)

    async def get_customer_attributes(self, customer_id: str) -> dict[str, str]:
        """GET the customer's attribute map."""
        return await self._call("GET", customer_id, None)

    async def _call(self, method: str, customer_id: str, body: bytes | None) -> dict[str, str]:
        if self._closed:
            raise RuntimeError("this Client is closed")
        url = f"{self._base}/customers/{encode_customer_id(customer_id)}/attributes"
        if len(url) > MAX_URL_CHARS:
            raise ClientError(
                f"this customer id is too long to be sent: its URL would be {len(url):,} "
                f"characters (at most {MAX_URL_CHARS:,})",
                customer_id=customer_id,
            )
        error: ApiError
        headers: Mapping[str, str]
        try:
            fast = self._fast
            if fast is not None:
                status, raw_headers, content = await fast.exchange(
                    method,
                    yarl.URL(url, encoded=True),
                    self._fast_post_headers if body is not None else self._fast_get_headers,
                    body,
                    self._fast_timeouts,
                )
                headers = _answer_headers(raw_headers)
            else:
                async with asyncio.timeout(self._deadline):
                    status, headers, content = await self._through_seam(method, url, body)
        except (TimeoutError, DeadlineExceeded):
            error = TransportError(
                "timed out waiting for the response: no complete answer within "
                f"{self._deadline:g} s (the time allowed for one attempt, --timeout)",
                customer_id=customer_id,
            )
        except httpx.TransportError as exc:
            error = self._transport_error(exc, customer_id)
        except httpx.InvalidURL as exc:  # a URL httpx will not build (length is checked above)
            error = ClientError(
                f"this customer id cannot be sent in a URL: {exc}", customer_id=customer_id
            )
        except (aiohttp.ClientError, OSError) as exc:  # a third-party transport leaking
            error = self._transport_error(exc, customer_id)
        else:
            outcome = classify(
                status,
                headers,
                content,
                customer_id,
                redactor=self._redact,
                url=url,
                max_body=self._max_body,
            )
            if type(outcome) is AttributeMap:
                return outcome
            assert isinstance(outcome, ApiError)
            error = outcome
        # raised outside the except blocks: no __context__ holding the request (and its token)
        raise error

    async def _through_seam(
        self, method: str, url: str, body: bytes | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request through the httpx transport interface; the body read as received
        (``aiter_raw``: no decompression here) and no further than the bounds."""
        request = httpx.Request(
            method,
            httpx.URL(url),
            headers=self._post_headers if body is not None else self._get_headers,
            content=body,
            extensions=self._extensions,
        )
        response = await self._transport.handle_async_request(request)
        status = response.status_code
        limit = self._max_body + 1 if 200 <= status < 300 else MAX_ERROR_BODY_BYTES
        headers: Mapping[str, str] = response.headers
        try:
            if response.is_stream_consumed:  # read already (httpx.MockTransport does), decoded
                content = response.content[:limit]
                headers = {k: v for k, v in headers.items() if k != "content-encoding"}
            else:
                content = await _read_at_most(response.aiter_raw(), limit)
        finally:
            await response.aclose()
        return status, headers, content

    def _transport_error(self, exc: BaseException, customer_id: str) -> ApiError:
        detail = redact_then_shorten(str(exc), self._redact, 200) or type(exc).__name__
        certificate = _certificate_problem(exc)
        if certificate is not None:
            # Not retried, and the run stops: a certificate does not fix itself.
            return CertificateError(
                f"the server's TLS certificate cannot be trusted (certificate verify failed: "
                f"{redact_then_shorten(certificate, self._redact, 120)}); if the API uses a "
                "private certificate "
                "authority, give its certificate with --ca-bundle",
                customer_id=customer_id,
            )
        if isinstance(exc, httpx.ConnectTimeout):
            message = "timed out connecting"
        elif isinstance(exc, httpx.PoolTimeout):
            message = "timed out waiting for a free connection"
        elif isinstance(exc, httpx.WriteTimeout):
            message = "timed out sending the request"
        elif isinstance(exc, httpx.ReadTimeout):
            message = "timed out waiting for the response"
        elif isinstance(exc, httpx.TimeoutException | TimeoutError):
            message = "timed out"
        elif isinstance(exc, httpx.ConnectError | aiohttp.ClientConnectorError):
            message = f"connection failed: {detail}"
        elif isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | OSError):
            message = f"connection lost: {detail}"
        else:
            message = f"transport error: {detail}"
        return TransportError(message, customer_id=customer_id)


def _certificate_problem(exc: BaseException | None) -> str | None:
    """Why TLS verification failed, if that is what ``exc`` (or its causes) says."""
    for _ in range(10):  # the chain: httpx error <- aiohttp/httpcore error <- ssl error
        if exc is None:
            return None
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            exc = exc.certificate_error
        if isinstance(exc, ssl.SSLCertVerificationError):
            return str(exc.verify_message or exc.reason or "certificate verify failed")
        exc = exc.__cause__ or exc.__context__
    return None


async def _read_at_most(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The first ``limit`` bytes of a stream, or all of it if shorter."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk[: limit - size])
        size += len(parts[-1])
        if size >= limit:
            break
    return b"".join(parts)


_WANTED_HEADERS: Final = frozenset(
    (b"content-encoding", b"content-type", b"location", b"retry-after")
)


def _answer_headers(raw: Any) -> Mapping[str, str]:
    """The few headers :func:`classify` reads, from aiohttp's raw ``(name, value)`` bytes
    (cheaper than a full header object on every request)."""
    found = _LowerCaseHeaders()
    for name, value in raw:
        lowered = name.lower()
        if lowered in _WANTED_HEADERS:
            found[lowered.decode("latin-1")] = value.decode("latin-1")
    return found or _NO_HEADERS


_CASELESS: Final = (_LowerCaseHeaders, httpx.Headers)


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:/*)[^/?#]*@")


def _check_base_url(base_url: str, *, allow_insecure_http: bool) -> str:
    """The base URL without trailing slash, or a UsageError saying what is wrong
    (showing the URL without any credentials it holds)."""
    shown = _USERINFO.sub(r"\1***@", base_url)
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        raise ConfigError(f"invalid base URL {shown!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"invalid base URL {shown!r}: expected https://host[/path]")
    if url.query or url.fragment or url.userinfo:
        raise ConfigError(f"invalid base URL {shown!r}: no credentials, query or fragment allowed")
    if url.scheme == "http" and not allow_insecure_http and not is_loopback_host(url.host):
        raise InsecureURLError(
            f"refusing plain http:// base URL {shown!r}: the API token would travel "
            "unencrypted; use https://, or allow it explicitly if you really mean it "
            "(--allow-insecure-http; allow_insecure_http: true in a config file; "
            "allow_insecure_http=True in Python)"
        )
    return str(url).rstrip("/")
