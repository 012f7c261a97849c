"""What a hostile or broken server can do to the client and the command, over real sockets
on loopback (tests/hostile.py): echo the key, trickle, never end, bomb, redirect, nest.

Issue 11 (hardening) items 1, 3, 4, 12, 15 and issue 12 (fidelity) items 5 and 6.
Trickling needs real time: those tests use deadlines well under a second.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bulk_sync.cli import cli
from bulk_sync.client import MAX_RESPONSE_BYTES, AttributeMap, Client, is_loopback_host
from bulk_sync.emulator import EmulatorThread
from bulk_sync.errors import ClientError, InsecureURLError, ServerError, TransportError
from helpers import report_lines, write_csv
from hostile import (
    HostileServer,
    Request,
    Send,
    answer,
    echo,
    encoded,
    endless_chunked,
    gzip_bomb,
    huge_body,
    trickle_body,
    trickle_headers,
)

KEY = "c0ffee15deadbeef0badf00d8badf00dfacefeed123456789abcdef013579bdf"
FAST = "backoff_initial: 0.001\nbackoff_max: 0.01\nmax_attempts: 2\n"
TRANSPORTS = ["aiohttp", "httpx"]

pytestmark = pytest.mark.timeout(60)


def runs_of_key(text: str | bytes) -> list[str]:
    """Every 16-character piece of KEY in ``text``, whatever its case."""
    blob = (text.decode("utf-8", "replace") if isinstance(text, bytes) else text).lower()
    return [KEY[i : i + 16] for i in range(len(KEY) - 15) if KEY[i : i + 16] in blob]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"IC_API_TOKEN": KEY, "BULK_SYNC_DEBUG": ""})


def sync_against(server_url: str, tmp_path: Path, *extra: str, rows: int = 2) -> Result:
    config = tmp_path / "fast.yaml"
    config.write_text(FAST)
    src = write_csv(tmp_path / "in.csv", [(f"C{i}", "plan", "gold") for i in range(rows)])
    return invoke(
        "sync", str(src), "--report", str(tmp_path / "report.csv"), "--base-url", server_url,
        "--config", str(config), *extra,
    )  # fmt: skip


# ----------------------------------------------------------------------------- 11.1 echoes


ECHOES = {
    # the review's reproducer: padded so that cutting at 300 characters first kept 63 of 64
    "padded-503": lambda: echo(
        503,
        lambda auth: json.dumps(
            {"message": "p" * 234 + auth.removeprefix("Bearer ") + " was refused"}
        ),
    ),
    "upper-cased-401": lambda: echo(401, lambda auth: "bad auth " + auth.upper()),
    "html-200-echoing-headers": lambda: echo(
        200,
        lambda auth: (
            f"<html><body><pre>Host: x\nAuthorization: {auth}\nAccept: */*</pre></body></html>"
        ),
        {"Content-Type": "text/html"},
    ),
    "code-and-location": lambda: echo(
        302, lambda auth: json.dumps({"code": auth}), {"Location": "/x?k=" + KEY.upper()}
    ),
    "retry-after-and-content-encoding": lambda: echo(
        200, lambda auth: "{}", {"Content-Encoding": KEY + ", gzip"}
    ),
}


@pytest.mark.parametrize("case", sorted(ECHOES))
def test_a_server_echoing_the_key_cannot_make_any_output_show_16_characters_of_it(
    tmp_path: Path, case: str
) -> None:
    with HostileServer(ECHOES[case]()) as server:
        result = sync_against(
            server.url, tmp_path, "--log-format", "json",
            "--summary-json", str(tmp_path / "summary.json"),
            "--metrics-file", str(tmp_path / "metrics.prom"),
        )  # fmt: skip
    assert server.requests, "the server was reached"
    assert result.exit_code in (1, 3), result.output
    said = result.stdout + result.stderr + repr(result.exception)
    assert runs_of_key(said) == [], said
    for path in tmp_path.iterdir():
        assert runs_of_key(path.read_bytes()) == [], path.name
    lines = report_lines(tmp_path / "report.csv")
    assert all(line["status"] in ("failed", "not_sent") for line in lines)
    if case == "padded-503":  # the message itself still reads, the key masked
        assert lines[0]["error"].endswith("*** was refused"), lines[0]["error"]
        assert "Most frequent failures" in result.stdout
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["failures"][0]["error"].endswith("*** was refused")


def test_a_server_echoing_the_key_in_small_groups_cannot_make_any_output_show_it(
    tmp_path: Path,
) -> None:
    # No group holds 16 characters of the key, the whole key is there all the same.
    def grouped(auth: str) -> str:
        key = auth.removeprefix("Bearer ")
        groups = "-".join(key[i : i + 4] for i in range(0, len(key), 4))
        return json.dumps({"message": f"key {groups} has no access"})

    with HostileServer(echo(400, grouped)) as server:
        result = sync_against(
            server.url, tmp_path, "--log-format", "json",
            "--summary-json", str(tmp_path / "summary.json"),
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    said = result.stdout + result.stderr
    bare = "".join(c for c in said if c.isalnum())
    assert runs_of_key(bare) == [], said
    for path in tmp_path.iterdir():
        text = path.read_text("utf-8", "replace")
        assert runs_of_key("".join(c for c in text if c.isalnum())) == [], path.name
    lines = report_lines(tmp_path / "report.csv")
    assert {line["error"] for line in lines} == {"HTTP 400: key *** has no access"}


async def test_the_client_masks_echoes_in_every_exception_text() -> None:
    with HostileServer(echo(500, lambda auth: f"{'z' * 250} {auth.lower()}")) as server:
        async with Client(server.url, KEY, timeout=5) as ic:
            with pytest.raises(ServerError) as caught:
                await ic.set_customer_attributes("c", {"a": "b"})
    assert runs_of_key(str(caught.value)) == []
    assert runs_of_key(repr(caught.value)) == []
    assert caught.value.message.endswith(" bearer ***")


# ----------------------------------------------------------------------------- 11.3 bounds


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(lambda: trickle_body(b'{"a": "' + b"d" * 100 + b'"}', every=0.05), id="body"),
        pytest.param(lambda: trickle_headers(every=0.05), id="headers"),
    ],
)
async def test_a_trickling_answer_ends_the_attempt_at_the_deadline(
    transport: str, behaviour: Callable[[], object]
) -> None:
    # Each byte or header line comes well within the read timeout; only a deadline for
    # the whole attempt stops it.
    with HostileServer(behaviour()) as server:  # type: ignore[arg-type]
        async with Client(server.url, KEY, timeout=0.5, transport=transport) as ic:
            started = time.monotonic()
            with pytest.raises(TransportError) as caught:
                await ic.set_customer_attributes("c", {"a": "b"})
            elapsed = time.monotonic() - started
    assert caught.value.message.startswith("timed out")
    assert "0.5 s" in caught.value.message
    assert caught.value.retriable
    assert 0.4 < elapsed < 3  # the whole answer would take 5 s or more


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_endless_accepted_answer_is_cut_at_the_cap_and_counts_as_a_failed_attempt(
    transport: str,
) -> None:
    with HostileServer(endless_chunked()) as server:
        async with Client(server.url, KEY, timeout=20, transport=transport) as ic:
            tracemalloc.start()
            try:
                with pytest.raises(TransportError) as caught:
                    await ic.set_customer_attributes("c", {"a": "b"})
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert "larger than 8 MiB" in caught.value.message
    assert caught.value.retriable
    assert peak < 6 * MAX_RESPONSE_BYTES
    assert server.bytes_sent < 100 * 1024 * 1024


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_huge_error_answer_is_not_read_in_full(transport: str) -> None:
    size = 300 * 1024 * 1024
    with HostileServer(huge_body(503, size, {"Retry-After": "7"})) as server:
        async with Client(server.url, KEY, timeout=20, transport=transport) as ic:
            started = time.monotonic()
            with pytest.raises(ServerError) as caught:
                await ic.set_customer_attributes("c", {"a": "b"})
    assert time.monotonic() - started < 5
    assert caught.value.retry_after == 7
    assert server.bytes_sent < size // 10


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", [200, 503])
async def test_a_gzip_bomb_is_decompressed_no_further_than_the_cap(
    transport: str, status: int
) -> None:
    bomb = gzip_bomb(128 * 1024 * 1024)
    assert len(bomb) < 256 * 1024
    behaviour = answer(
        status, bomb, {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    with HostileServer(behaviour) as server:
        async with Client(server.url, KEY, timeout=20, transport=transport) as ic:
            tracemalloc.start()
            try:
                with pytest.raises((TransportError, ServerError)) as caught:
                    await ic.set_customer_attributes("c", {"a": "b"})
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert peak < 6 * MAX_RESPONSE_BYTES
    if status == 200:
        assert isinstance(caught.value, TransportError)
        assert "larger than 8 MiB" in caught.value.message
    else:
        assert isinstance(caught.value, ServerError)


# ----------------------------------------------------------------------------- 11.4 gzip


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
async def test_a_compressed_answer_is_read_and_confirms_the_write(
    transport: str, coding: str
) -> None:
    body = json.dumps({"old": "1", "plan": "gold €"}).encode()
    with HostileServer(encoded(200, body, coding)) as server:
        async with Client(server.url, KEY, timeout=5, transport=transport) as ic:
            merged = await ic.set_customer_attributes("c", {"plan": "gold €"})
    assert merged == {"old": "1", "plan": "gold €"}
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_encoding_not_asked_for_is_a_failed_attempt_saying_so(transport: str) -> None:
    with HostileServer(encoded(200, b'{"plan": "gold"}', "br")) as server:
        async with Client(server.url, KEY, timeout=5, transport=transport) as ic:
            with pytest.raises(TransportError) as caught:
                await ic.set_customer_attributes("c", {"plan": "gold"})
    assert "encoded as 'br'" in caught.value.message
    assert caught.value.retriable


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_an_accepted_answer_whose_compression_is_damaged_says_so_not_empty(
    transport: str, coding: str
) -> None:
    garbage = answer(200, b"this is not compressed", {"Content-Encoding": coding})
    with HostileServer(garbage) as server:
        async with Client(server.url, KEY, timeout=5, transport=transport) as ic:
            merged = await ic.set_customer_attributes("c", {"plan": "gold"})
    assert merged == {}  # accepted (HTTP 200), confirming nothing
    assert merged.note == f"the answer (HTTP 200) could not be decompressed ({coding})"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"HTTP/1.1 abc Nope\r\nContent-Length: 0\r\n\r\n", "not a valid HTTP answer: "),
        (b"hello there\r\n\r\n", "not a valid HTTP answer: "),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}",
            "incomplete body: Not enough data",
        ),
    ],
)
async def test_an_answer_that_is_not_valid_http_says_so_without_a_made_up_status(
    raw: bytes, says: str
) -> None:
    # aiohttp's parser errors print as "400, message=..., url=...": a person reads HTTP 400
    async def behave(request: Request, send: Send) -> None:
        await send(raw)

    with HostileServer(behave) as server:
        async with Client(server.url, KEY, timeout=5) as ic:
            with pytest.raises(TransportError) as caught:
                await ic.set_customer_attributes("c", {"plan": "gold"})
    message = caught.value.message
    assert says in message
    assert "400" not in message
    assert "url=" not in message


def test_a_gzipping_server_gets_every_row_ok_in_one_attempt(tmp_path: Path) -> None:
    # Before: every accepted write was reported failed after five attempts, each re-applying it.
    with HostileServer(encoded(200, b'{"plan": "gold"}', "gzip")) as server:
        result = sync_against(server.url, tmp_path, rows=3)
    assert result.exit_code == 0, result.output
    lines = report_lines(tmp_path / "report.csv")
    assert [(r["status"], r["attempts"], r["error"]) for r in lines] == [("ok", "1", "")] * 3
    assert len(server.requests) == 3


# ----------------------------------------------------------------------------- 11.12 loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("[::1]", True),
        ("::1", True),
        ("x.localhost", False),
        ("localhost.", False),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),
        ("0.0.0.0", False),  # noqa: S104
        ("10.0.0.1", False),
        ("", False),
    ],
)
def test_only_literal_loopback_addresses_and_localhost_count_as_loopback(
    host: str, loopback: bool
) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    "url", ["http://x.localhost:8080", "http://api.localhost", "http://localhost.:80"]
)
def test_plain_http_to_a_localhost_subdomain_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(InsecureURLError):
        Client(url, KEY)
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    result = invoke("sync", str(src), "--report", str(tmp_path / "r.csv"), "--base-url", url)
    assert result.exit_code == 2, result.output
    assert "refusing plain http://" in result.stderr


# ----------------------------------------------------------------------------- 11.15 odd outcomes


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("shape", ["object", "array"])
async def test_an_accepted_answer_nested_200000_levels_deep_is_accepted_unconfirmed(
    transport: str, shape: str
) -> None:
    depth = 200_000
    body = (
        ('{"a":' * depth + "1" + "}" * depth) if shape == "object" else ("[" * depth + "]" * depth)
    )
    with HostileServer(answer(200, body, {"Content-Type": "application/json"})) as server:
        async with Client(server.url, KEY, timeout=5, transport=transport) as ic:
            merged = await ic.set_customer_attributes("c", {"a": "b"})
    assert isinstance(merged, AttributeMap)
    assert merged == {}
    assert "nested too deeply" in merged.note


def test_a_deeply_nested_answer_makes_the_row_ok_with_a_note_not_a_traceback(
    tmp_path: Path,
) -> None:
    depth = 200_000
    with HostileServer(answer(200, "[" * depth + "]" * depth)) as server:
        result = sync_against(server.url, tmp_path, rows=1)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.stderr
    (line,) = report_lines(tmp_path / "report.csv")
    assert (line["status"], line["attempts"]) == ("ok", "1")
    assert line["error"].startswith("accepted, not confirmed: the answer was nested too deeply")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_90000_character_id_fails_its_rows_with_a_message_not_a_traceback(
    tmp_path: Path, transport: str, emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread(token=KEY)
    src = write_csv(tmp_path / "in.csv", [("x" * 90_000, "a", "1"), ("C2", "a", "1")])
    result = invoke(
        "sync", str(src), "--report", str(tmp_path / "r.csv"), "--base-url", server.base_url,
        "--transport", transport,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    assert "InvalidURL" not in result.output + result.stderr
    long, short = report_lines(tmp_path / "r.csv")
    assert long["status"] == "failed"
    assert "too long to be sent" in long["error"]
    assert long["attempts"] == "1"
    assert short["status"] == "ok"


async def test_a_too_long_id_is_refused_by_the_client_before_anything_is_sent() -> None:
    with HostileServer(answer(200, "{}")) as server:
        for transport in TRANSPORTS:
            async with Client(server.url, KEY, transport=transport) as ic:
                with pytest.raises(ClientError) as caught:
                    await ic.set_customer_attributes("é" * 30_000, {"a": "b"})
            assert not caught.value.retriable
            assert "180,0" in caught.value.message  # the URL's length, percent-encoded
    assert server.requests == []


# ----------------------------------------------------------------------------- beyond the list


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cookies_a_server_sets_are_never_sent_back(transport: str) -> None:
    setter = answer(200, {"a": "b"}, {"Content-Type": "application/json", "Set-Cookie": "s=1"})
    with HostileServer(setter) as server:
        # by name: aiohttp's default jar would keep no cookie of an IP address anyway
        url = f"http://localhost:{server.port}"
        async with Client(url, KEY, timeout=5, transport=transport) as ic:
            for _ in range(3):
                await ic.set_customer_attributes("c", {"a": "b"})
    assert [r.headers.get("cookie") for r in server.requests] == [None, None, None]


def test_terminal_escapes_and_bidi_overrides_in_a_servers_message_never_reach_the_output(
    tmp_path: Path,
) -> None:
    message = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\u202egnp.exe\u2066 done"
    with HostileServer(answer(404, {"code": 404, "message": message})) as server:
        result = sync_against(server.url, tmp_path, rows=1)
    assert result.exit_code == 1, result.output
    (line,) = report_lines(tmp_path / "report.csv")
    said = result.stdout + result.stderr + line["error"]
    for forbidden in ("\x1b", "\x07", "\u202e", "\u2066"):
        assert forbidden not in said
    assert line["error"].endswith("]0;owned [2J [31mred gnp.exe done")
