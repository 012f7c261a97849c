"""bulk_sync.client against mocked transports (httpx.MockTransport / respx), plus a few
loopback sockets for real connection failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import traceback
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import unquote

import httpx
import pytest
import respx
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st

import bulk_sync
from bulk_sync.client import (
    AiohttpTransport,
    Client,
    classify,
    encode_customer_id,
    parse_retry_after,
)
from bulk_sync.errors import (
    ApiError,
    AuthError,
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

TOKEN = "f" * 16 + "0123456789abcdef" * 3
BASE = "https://api.example.test"

Handler = Callable[[httpx.Request], httpx.Response]


def mock_client(handler: Handler, base_url: str = BASE, **kwargs: object) -> Client:
    return Client(base_url, TOKEN, transport=httpx.MockTransport(handler), **kwargs)  # type: ignore[arg-type]


def reply(status: int, body: bytes | str = b"", **headers: str) -> Handler:
    content = body.encode() if isinstance(body, str) else body

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers=headers)

    return handler


def raising(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def everything_said(exc: BaseException) -> str:
    """str, repr, formatted traceback and the whole cause/context chain of an exception."""
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), *traceback.format_exception(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


# --------------------------------------------------------------------------- success


async def test_set_attributes_returns_the_merged_map_from_the_response() -> None:
    router = respx.MockRouter(base_url=BASE)
    route = router.post("/customers/C-1/attributes").mock(
        return_value=httpx.Response(200, json={"old": "1", "new": "2"})
    )
    async with Client(BASE, TOKEN, transport=httpx.MockTransport(router.async_handler)) as ic:
        merged = await ic.set_customer_attributes("C-1", {"new": "2"})
    assert merged == {"old": "1", "new": "2"}
    assert route.call_count == 1
    assert json.loads(route.calls.last.request.content) == {"new": "2"}


async def test_get_attributes_sends_a_get_without_body_and_returns_the_map() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"a": "b"})

    async with mock_client(handler) as ic:
        assert await ic.get_customer_attributes("C-1") == {"a": "b"}
    assert seen[0].method == "GET"
    assert seen[0].content == b""
    assert seen[0].url.raw_path == b"/customers/C-1/attributes"


async def test_post_sends_auth_user_agent_json_headers_and_compact_utf8_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async with mock_client(handler) as ic:
        await ic.set_customer_attributes("c", {"nome": "João", "k": "v"})
    request = seen[0]
    assert request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["user-agent"] == f"bulk-sync/{bulk_sync.__version__}"
    assert request.headers["accept"] == "application/json"
    # as the official Java, Go and C# clients send it (and their tests check)
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["accept-encoding"] == "gzip, deflate"
    assert request.content == '{"nome":"João","k":"v"}'.encode()


async def test_custom_user_agent_replaces_the_default() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async with mock_client(handler, user_agent="my-tool/2") as ic:
        await ic.get_customer_attributes("c")
    assert seen[0].headers["user-agent"] == "my-tool/2"


async def test_base_url_path_prefix_is_kept_and_trailing_slash_ignored() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async with mock_client(handler, base_url="https://gw.example.test/ic/v1/") as ic:
        await ic.get_customer_attributes("x")
    assert str(seen[0].url) == "https://gw.example.test/ic/v1/customers/x/attributes"


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("status", "error_type", "retriable"),
    [
        (401, AuthError, False),
        (403, Forbidden, False),
        (404, CustomerNotFound, False),
        (422, DocumentRejected, False),
        (429, RateLimited, True),
        (500, ServerError, True),
        (502, ServerError, True),
        (503, ServerError, True),
        (418, ClientError, False),
        (400, ClientError, False),
        (301, ClientError, False),
    ],
)
async def test_each_error_status_raises_its_api_error(
    status: int, error_type: type[ApiError], retriable: bool
) -> None:
    async with mock_client(reply(status)) as ic:
        with pytest.raises(error_type) as caught:
            await ic.set_customer_attributes("C-9", {"a": "b"})
    error = caught.value
    assert type(error) is error_type
    assert error.status == status
    assert error.customer_id == "C-9"
    assert error.retriable is retriable
    assert error.message  # a default message even without a body


async def test_error_body_message_and_code_are_used() -> None:
    body = json.dumps({"code": 422, "message": "Empty value for key 'plan'"})
    async with mock_client(reply(422, body, **{"content-type": "application/json"})) as ic:
        with pytest.raises(DocumentRejected) as caught:
            await ic.set_customer_attributes("C-1", {"plan": "x"})
    assert caught.value.message == "Empty value for key 'plan'"
    assert caught.value.code == "422"
    assert str(caught.value) == "HTTP 422 customer 'C-1': Empty value for key 'plan'"


async def test_plain_text_error_body_becomes_the_message() -> None:
    async with mock_client(reply(500, "upstream\n exploded\t badly")) as ic:
        with pytest.raises(ServerError) as caught:
            await ic.get_customer_attributes("c")
    assert caught.value.message == "upstream exploded badly"


async def test_429_with_retry_after_seconds_carries_them() -> None:
    async with mock_client(reply(429, **{"Retry-After": "7"})) as ic:
        with pytest.raises(RateLimited) as caught:
            await ic.set_customer_attributes("c", {"a": "b"})
    assert caught.value.retry_after == 7.0


def test_429_with_http_date_retry_after_is_seconds_from_now() -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    header = "Wed, 02 Jan 2030 03:04:35 GMT"
    outcome = classify(429, {"Retry-After": header}, b"", "c", now=now)
    assert isinstance(outcome, RateLimited)
    assert outcome.retry_after == 30.0


def test_503_retry_after_header_is_found_case_insensitively() -> None:
    outcome = classify(503, {"retry-after": "2.5"}, b"", "c")
    assert isinstance(outcome, ServerError)
    assert outcome.retry_after == 2.5


def test_non_retriable_statuses_carry_no_retry_after() -> None:
    outcome = classify(404, {"Retry-After": "5"}, b"", "c")
    assert isinstance(outcome, CustomerNotFound)
    assert outcome.retry_after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("Fri, 01 Jan 2100 00:00:10 GMT", 10.0),
        ("Thu, 31 Dec 2099 23:59:00 GMT", 0.0),  # in the past: never negative
        ("Friday, 01-Jan-2100 00:00:10 GMT", 10.0),  # obsolete RFC 850 format
        ("Fri Jan  1 00:00:10 2100", 10.0),  # asctime format
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
        ("inf", None),
        ("nan", None),
        ("1e3", None),
        ("Fri, 99 Foo 2100 00:00:10 GMT", None),
        ("9" * 100, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now) == expected


# --------------------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize(
    ("body", "confirmed"),
    [
        (b"", {}),
        (b"  \n", {}),
        (b'{"a": "b", "n": 1, "z": null, "o": {"x": "y"}}', {"a": "b"}),
    ],
)
async def test_an_accepted_write_is_success_even_with_an_empty_or_odd_json_object(
    body: bytes, confirmed: dict[str, str]
) -> None:
    async with mock_client(reply(200, body)) as ic:
        assert await ic.set_customer_attributes("c", {"a": "b"}) == confirmed


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"<html><body>Welcome</body></html>",
        b"[1, 2]",
        b'["a"]',
        b'"just a string"',
        b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe",
        b"{" * 100_000,
    ],
)
async def test_a_success_body_that_is_not_a_json_object_is_a_retriable_transport_error(
    body: bytes,
) -> None:
    async with mock_client(reply(200, body)) as ic:
        with pytest.raises(TransportError) as caught:
            await ic.set_customer_attributes("c", {"a": "b"})
    assert caught.value.message.startswith("malformed response")
    assert caught.value.retriable
    assert len(caught.value.message) < 200


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00binary\x00",
        b"x" * 5_000_000,
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b"[1, 2, 3]",
        b'{"message": {"nested": true}, "code": [1]}',
        b'{"message": "' + b"m" * 1000 + b'"}',
        b"[" * 100_000,
        b'"quoted text"',
        b"null",
    ],
)
def test_odd_error_bodies_never_crash_and_messages_stay_short(body: bytes) -> None:
    outcome = classify(502, {}, body, "c")
    assert isinstance(outcome, ServerError)
    assert 0 < len(outcome.message) <= 300


@given(status=st.integers(100, 599), body=st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_classify_never_raises_for_any_status_and_body(status: int, body: bytes) -> None:
    outcome = classify(status, {"Retry-After": "x"}, body, "c")
    assert isinstance(outcome, dict | ApiError)


# --------------------------------------------------------------------------- transport failures


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection failed"),
        (httpx.ConnectTimeout("boom"), "timed out connecting"),
        (httpx.ReadTimeout("boom"), "timed out waiting for the response"),
        (httpx.WriteTimeout("boom"), "timed out sending the request"),
        (httpx.PoolTimeout("boom"), "timed out waiting for a free connection"),
        (httpx.RemoteProtocolError("Server disconnected"), "connection lost"),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), "connection lost"),
        (httpx.ProxyError("proxy says no"), "transport error"),
    ],
)
async def test_transport_failures_raise_retriable_transport_error(
    exc: Exception, expected: str
) -> None:
    async with mock_client(raising(exc)) as ic:
        with pytest.raises(TransportError) as caught:
            await ic.set_customer_attributes("C-2", {"a": "b"})
    assert caught.value.message.startswith(expected)
    assert caught.value.retriable
    assert caught.value.status is None
    assert caught.value.customer_id == "C-2"
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_connection_refused_is_a_transport_error(transport: str, closed_port: int) -> None:
    async with Client(f"http://127.0.0.1:{closed_port}", TOKEN, transport=transport) as ic:
        with pytest.raises(TransportError) as caught:
            await ic.set_customer_attributes("c", {"a": "b"})
    assert caught.value.message.startswith("connection failed")


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections, reads, never answers."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readexactly(1 << 30)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"
        server.close()


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_read_timeout_is_a_transport_error(transport: str, silent_server: str) -> None:
    async with Client(silent_server, TOKEN, transport=transport, timeout=0.1) as ic:
        with pytest.raises(TransportError) as caught:
            await ic.set_customer_attributes("c", {"a": "b"})
    assert caught.value.message.startswith("timed out")


# --------------------------------------------------------------------------- the token stays secret


async def test_repr_of_the_client_does_not_show_the_token() -> None:
    async with mock_client(reply(200, "{}")) as ic:
        assert TOKEN not in repr(ic)
        assert TOKEN not in str(ic)
        assert BASE in repr(ic)


@pytest.mark.parametrize(
    "handler",
    [
        reply(401, json.dumps({"message": f"token {TOKEN} is not valid"})),
        reply(500, f"failed for Bearer {TOKEN}"),
        reply(429, "slow down"),
        reply(200, "garbage"),
        raising(httpx.ConnectError(f"cannot connect, auth={TOKEN}")),
        raising(httpx.ReadTimeout("timed out")),
        raising(httpx.RemoteProtocolError("Server disconnected")),
    ],
)
async def test_no_exception_text_reveals_the_token(handler: Handler) -> None:
    async with mock_client(handler) as ic:
        with pytest.raises(ApiError) as caught:
            await ic.set_customer_attributes("c", {"a": "b"})
    assert TOKEN not in everything_said(caught.value)


def test_a_token_that_cannot_be_a_header_is_refused_without_echoing_it() -> None:
    bad = TOKEN + "\r\nX-Evil: 1"
    with pytest.raises(ConfigError) as caught:
        Client(BASE, bad)
    assert TOKEN not in everything_said(caught.value)


def test_a_missing_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="token is required"):
        Client(BASE, "")


# --------------------------------------------------------------------------- customer id encoding


@pytest.mark.parametrize(
    ("customer_id", "raw_path"),
    [
        ("C-001", "/customers/C-001/attributes"),
        ("A/B", "/customers/A%2FB/attributes"),
        ("a%2Fb", "/customers/a%252Fb/attributes"),
        ("x?y#z", "/customers/x%3Fy%23z/attributes"),
        ("é ü", "/customers/%C3%A9%20%C3%BC/attributes"),
        ("100%", "/customers/100%25/attributes"),
        ("a+b", "/customers/a%2Bb/attributes"),
        ("...", "/customers/%2E%2E%2E/attributes"),
        ("%2E%2E", "/customers/%252E%252E/attributes"),
        ("a.b_c~d", "/customers/a.b_c~d/attributes"),
        ("tab\there", "/customers/tab%09here/attributes"),
    ],
)
async def test_customer_id_is_one_percent_encoded_segment_on_the_wire(
    customer_id: str, raw_path: str
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async with mock_client(handler) as ic:
        await ic.set_customer_attributes(customer_id, {"a": "b"})
    assert seen[0].url.raw_path == raw_path.encode()
    # what AiohttpTransport hands to aiohttp keeps the very same bytes
    assert yarl.URL(str(seen[0].url), encoded=True).raw_path == raw_path


@pytest.mark.parametrize("customer_id", ["", ".", ".."])
async def test_unaddressable_ids_are_refused_before_sending(customer_id: str) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={})

    async with mock_client(handler) as ic:
        with pytest.raises(ClientError) as caught:
            await ic.set_customer_attributes(customer_id, {"a": "b"})
    assert caught.value.status is None
    assert not caught.value.retriable
    assert calls == []


async def test_an_id_with_a_lone_surrogate_is_refused_as_a_client_error() -> None:
    async with mock_client(reply(200, "{}")) as ic:
        with pytest.raises(ClientError, match="not valid Unicode"):
            await ic.get_customer_attributes("bad\ud800")


@given(customer_id=st.text(min_size=1).filter(lambda s: s not in (".", "..")))
@settings(max_examples=200, deadline=None)
def test_any_id_goes_on_the_wire_as_exactly_one_segment_that_decodes_back(
    customer_id: str,
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async def call() -> None:
        async with mock_client(handler) as ic:
            await ic.get_customer_attributes(customer_id)

    asyncio.run(call())
    raw = seen[0].url.raw_path.decode("ascii")
    assert yarl.URL(str(seen[0].url), encoded=True).raw_path == raw
    segments = raw.split("/")
    assert len(segments) == 4
    assert segments[:2] == ["", "customers"]
    assert segments[3] == "attributes"
    assert unquote(segments[2], errors="strict") == customer_id
    assert segments[2] == encode_customer_id(customer_id)


# --------------------------------------------------------------------------- base URL policy


@pytest.mark.parametrize(
    "base_url",
    ["http://api.invisiblecollector.com", "http://10.0.0.5:8080", "http://[2001:db8::1]"],
)
def test_plain_http_to_a_remote_host_is_refused(base_url: str) -> None:
    with pytest.raises(InsecureURLError, match="allow_insecure_http"):
        Client(base_url, TOKEN)


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080",
        "http://127.1.2.3",
        "http://localhost:9000",
        "http://LOCALHOST",
        "http://[::1]:8080",
    ],
)
def test_plain_http_to_loopback_is_allowed(base_url: str) -> None:
    client = Client(base_url, TOKEN)
    assert client.base_url.lower() == base_url.lower()


def test_plain_http_to_a_remote_host_is_allowed_when_explicitly_asked() -> None:
    client = Client("http://staging.example.test", TOKEN, allow_insecure_http=True)
    assert client.base_url == "http://staging.example.test"


@pytest.mark.parametrize(
    "base_url", ["ftp://api.example.test", "api.example.test", "https://", "https://h/?q=1"]
)
def test_unusable_base_urls_are_config_errors(base_url: str) -> None:
    with pytest.raises(ConfigError):
        Client(base_url, TOKEN)


def test_unknown_transport_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown transport"):
        Client(BASE, TOKEN, transport="curl")


def test_a_missing_ca_bundle_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CA bundle"):
        Client(BASE, TOKEN, verify="/nonexistent/ca.pem")


# --------------------------------------------------------------------------- lifecycle


async def test_a_closed_client_refuses_further_calls() -> None:
    ic = mock_client(reply(200, "{}"))
    async with ic:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await ic.get_customer_attributes("c")


async def test_an_injected_transport_stays_open_and_an_owned_one_is_closed() -> None:
    class Tracking(httpx.MockTransport):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    injected = Tracking(reply(200, "{}"))
    async with Client(BASE, TOKEN, transport=injected):
        pass
    assert injected.closed is False

    owned = Client(BASE, TOKEN)
    transport = owned._transport
    assert isinstance(transport, AiohttpTransport)
    closed: list[bool] = []

    async def fake_close() -> None:
        closed.append(True)

    transport.aclose = fake_close  # type: ignore[method-assign]
    async with owned:
        pass
    assert closed == [True]
