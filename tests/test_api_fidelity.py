"""Fidelity to the real API, as the official clients' code and test fixtures record it
(invisible-collector-java, -ruby, -go, InvisibleCollectorLib): issue 12.

- 12.1 a customer has a gid and maybe an external id, both address one map;
- 12.2 ``Content-Type: application/json; charset=utf-8`` and non-ASCII both ways;
- 12.4 error bodies as the real API writes them, in ``classify`` and in the emulator;
- 12.5 redirects are reported, with where to and what to change;
- 12.6 an accepted write whose answer does not confirm it is ``ok`` with a note;
- 12.7 the emulator checks credentials before the rate limit and injected faults.

(12.3, the 403 rule, is pinned by the uploader's tests.)
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner, Result

from bulk_sync.cli import cli
from bulk_sync.cli_emulator import read_customers
from bulk_sync.client import AttributeMap, Client, classify
from bulk_sync.customers import CustomerDirectory
from bulk_sync.emulator import EmulatorSettings, EmulatorState, EmulatorThread
from bulk_sync.errors import (
    ApiError,
    AuthError,
    ClientError,
    ConfigError,
    CustomerNotFound,
    DocumentRejected,
    ServerError,
    TransportError,
)
from helpers import report_lines, write_csv
from hostile import HostileServer, answer

KEY = "0f1e2d3c4b5a6978" * 4
FAST = "backoff_initial: 0.001\nbackoff_max: 0.01\nmax_attempts: 3\n"
GID = "061d2feb-81c2-4694-a74a-13cecbe7d2ce"  # the Ruby client's fixture customer
OTHER_GID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
TRANSPORTS = ["aiohttp", "httpx"]

pytestmark = pytest.mark.timeout(60)


def invoke(*args: str, token: str = KEY) -> Result:
    return CliRunner().invoke(cli, list(args), env={"IC_API_TOKEN": token, "BULK_SYNC_DEBUG": ""})


@pytest.fixture
def fast(tmp_path: Path) -> Path:
    config = tmp_path / "fast.yaml"
    config.write_text(FAST)
    return config


# ----------------------------------------------------------------------------- 12.4 bodies

JSON_TYPE = "application/json"
JSON = {"Content-Type": JSON_TYPE}
HTML = {"Content-Type": "text/html; charset=utf-8"}


CREDENTIALS = "Credentials are required to access this resource"
CONFLICT = {"code": 409, "message": "Customer already registered", "gid": GID}


def as_json(data: object) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind", "message", "code"),
    [
        pytest.param(401, JSON, as_json({"code": 401, "message": CREDENTIALS}),
                     AuthError, CREDENTIALS, "401", id="401"),
        pytest.param(401, JSON, as_json({"code": "401", "message": CREDENTIALS}),
                     AuthError, CREDENTIALS, "401", id="401-string-code"),
        pytest.param(404, JSON, b'{\n  "code": 404,\n  "message": "Customer not found"\n}',
                     CustomerNotFound, "Customer not found", "404", id="404"),
        pytest.param(422, JSON, as_json({"code": 422, "message": "Unprocessable request"}),
                     DocumentRejected, "Unprocessable request", "422", id="422"),
        pytest.param(400, JSON, as_json({"code": 400, "message": "Invalid JSON"}),
                     ClientError, "Invalid JSON", "400", id="400"),
        pytest.param(409, JSON, as_json(CONFLICT), ClientError,
                     f"Customer already registered (conflicting customer gid {GID})", "409",
                     id="409-gid"),
        pytest.param(401, {"Content-Type": "text/plain"}, b"Unauthorized\n",
                     AuthError, "Unauthorized", None, id="401-plain-text"),
        pytest.param(503, JSON, as_json({"code": 503, "message": "first"}) + as_json({"m": 2}),
                     ServerError, "first", "503", id="503-two-objects"),
        pytest.param(502, HTML, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                     ServerError, "server error", None, id="502-html"),
        pytest.param(500, JSON, b"{231,,[][[", ServerError, "{231,,[][[", None,
                     id="500-broken-json"),
    ],
)  # fmt: skip
def test_error_bodies_as_the_real_api_writes_them(
    status: int,
    headers: dict[str, str],
    body: bytes,
    kind: type[ApiError],
    message: str,
    code: str | None,
) -> None:
    outcome = classify(status, headers, body, "100001")
    assert type(outcome) is kind
    assert isinstance(outcome, ApiError)
    assert (outcome.status, outcome.message, outcome.code) == (status, message, code)
    assert outcome.customer_id == "100001"
    assert not outcome.retriable or status >= 500


def test_a_403_keeps_the_servers_business_message() -> None:
    # Ruby fixture sms/forbidden.json: 403 is also a business refusal, not only a bad key
    body = b'{"code": 403, "message": "Not enough SMS credits. Only has 0 credits to send 1 SMS"}'
    outcome = classify(403, JSON, body, "c")
    assert isinstance(outcome, ApiError)
    assert outcome.status == 403
    assert outcome.message == "Not enough SMS credits. Only has 0 credits to send 1 SMS"


@pytest.mark.parametrize(
    ("status", "headers", "body", "note"),
    [
        (200, JSON, b'{"plan": "gold", "n": 1}', ""),
        (200, JSON, b"", "the answer (HTTP 200) was empty"),
        (204, {}, b"", "the answer (HTTP 204) was empty"),
        (200, {"Content-Type": "text/plain"}, b'{"plan": "gold"}', ""),  # judged by the body
        (201, JSON, b'{"a":' * 5000 + b'"b"' + b"}" * 5000,
         "the answer was nested too deeply to be read"),
    ],
)  # fmt: skip
def test_an_accepted_write_is_an_attribute_map_saying_whether_it_confirms_anything(
    status: int, headers: dict[str, str], body: bytes, note: str
) -> None:
    outcome = classify(status, headers, body, "c")
    assert type(outcome) is AttributeMap
    assert (outcome.status, outcome.note) == (status, note)
    assert outcome == ({"plan": "gold"} if b"plan" in body else {})


@pytest.mark.parametrize(
    ("headers", "body", "shown"),
    [
        (HTML, b"<!doctype html><title>Welcome to nginx!</title>", "text/html; charset=utf-8"),
        (JSON, b"{231,,[][[", "application/json"),
        (JSON, b'{"a": "b"}{"c": "d"}', "application/json"),
        (JSON, b'["a", "b"]', "application/json"),
        ({}, b"OK", "no content type"),
    ],
)
def test_an_accepted_status_with_a_body_that_is_no_json_object_is_a_failed_attempt(
    headers: dict[str, str], body: bytes, shown: str
) -> None:
    outcome = classify(200, headers, body, "c")
    assert isinstance(outcome, TransportError)
    assert outcome.retriable
    assert outcome.message.startswith(f"malformed response (HTTP 200, {shown}): ")
    assert outcome.message.endswith("is --base-url the API's address?")


# ----------------------------------------------------------------------------- 12.5 redirects


def test_a_redirect_says_where_to_and_to_fix_the_base_url() -> None:
    outcome = classify(
        307, {"Location": "https://elsewhere.example/v2/customers/c/attributes"}, b"", "c",
        url="https://api.example/customers/c/attributes",
    )  # fmt: skip
    assert isinstance(outcome, ClientError)
    assert not outcome.retriable
    assert outcome.message == (
        "the server answered with a redirect (HTTP 307 to "
        "https://elsewhere.example/v2/customers/c/attributes); bulk-sync does not follow "
        "redirects (the request carries the API key): set --base-url to the address the "
        "API answers at"
    )


@pytest.mark.parametrize(
    ("location", "advice"),
    [
        ("https://api.example:8443/customers/c/attributes", "https://api.example:8443"),
        ("https://API.example/customers/c/attributes", "https://API.example"),
    ],
)
def test_a_redirect_from_http_to_https_on_the_same_host_says_to_use_https(
    location: str, advice: str
) -> None:
    outcome = classify(
        301, {"location": location}, b"", "c", url="http://api.example/customers/c/attributes"
    )
    assert isinstance(outcome, ClientError)
    assert outcome.message.endswith(f"; the API is served over https: use --base-url {advice}")


def test_a_scheme_relative_redirect_stays_on_http_and_gets_no_https_advice() -> None:
    outcome = classify(
        301, {"location": "//api.example:8443/x"}, b"", "c",
        url="http://api.example/customers/c/attributes",
    )  # fmt: skip
    assert isinstance(outcome, ClientError)
    assert "(HTTP 301 to http://api.example:8443/x)" in outcome.message
    assert "served over https" not in outcome.message


def test_a_relative_redirect_is_shown_as_the_full_address() -> None:
    outcome = classify(
        302, {"Location": "/login"}, b"", "c", url="https://api.example/customers/c/attributes"
    )
    assert isinstance(outcome, ClientError)
    assert "(HTTP 302 to https://api.example/login)" in outcome.message
    assert "served over https" not in outcome.message


def test_the_command_reports_a_redirect_to_https_in_the_error_column(
    tmp_path: Path, fast: Path
) -> None:
    with HostileServer(answer(0, b"")) as probe:
        port = probe.port
    redirect = answer(308, b"", {"Location": f"https://127.0.0.1:{port}/customers/C1/attributes"})
    with HostileServer(redirect) as server:
        src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
        result = invoke("sync", str(src), "--report", str(tmp_path / "r.csv"),
                        "--base-url", server.url, "--config", str(fast))  # fmt: skip
    assert result.exit_code == 1, result.output
    (line,) = report_lines(tmp_path / "r.csv")
    assert (line["status"], line["http_status"], line["attempts"]) == ("failed", "308", "1")
    assert "redirect (HTTP 308 to https://127.0.0.1:" in line["error"]
    assert line["error"].endswith(f"use --base-url https://127.0.0.1:{port}")


# ----------------------------------------------------------------------------- 12.6 confirmation


def test_an_empty_204_is_ok_with_a_note_saying_it_is_not_confirmed(
    tmp_path: Path, fast: Path
) -> None:
    with HostileServer(answer(204)) as server:
        src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
        result = invoke("sync", str(src), "--report", str(tmp_path / "r.csv"),
                        "--base-url", server.url, "--config", str(fast))  # fmt: skip
    assert result.exit_code == 0, result.output
    (line,) = report_lines(tmp_path / "r.csv")
    assert (line["status"], line["http_status"], line["attempts"]) == ("ok", "204", "1")
    assert line["error"] == "accepted, not confirmed: the answer (HTTP 204) was empty"
    assert "Accepted but not confirmed by the answer" in result.stdout
    assert "  x1: accepted, not confirmed: the answer (HTTP 204) was empty" in result.stdout


def test_an_answer_lacking_the_values_sent_is_ok_unconfirmed_and_not_recorded_as_synced(
    tmp_path: Path, fast: Path
) -> None:
    src = write_csv(
        tmp_path / "in.csv", [("C1", "shown", "1"), ("C1", "missing", "2"), ("C1", "other", "3")]
    )
    state = tmp_path / "state.db"
    with HostileServer(answer(200, {"shown": "1", "other": "changed"})) as server:
        for run in ("first", "second"):
            result = invoke("sync", str(src), "--report", str(tmp_path / f"{run}.csv"),
                            "--base-url", server.url, "--config", str(fast),
                            "--state", str(state),
                            *(["--summary-json", str(tmp_path / "summary.json")]
                              if run == "first" else []))  # fmt: skip
            assert result.exit_code == 0, result.output
    first = {
        r["attribute"]: (r["status"], r["error"]) for r in report_lines(tmp_path / "first.csv")
    }
    assert first == {
        "shown": ("ok", ""),
        "missing": ("ok", "accepted, not confirmed: the answer does not include this attribute"),
        "other": (
            "ok",
            "accepted, not confirmed: the answer shows another value for this attribute",
        ),
    }
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted((u["note"], u["count"]) for u in summary["unconfirmed"]) == [
        ("accepted, not confirmed: the answer does not include this attribute", 1),
        ("accepted, not confirmed: the answer shows another value for this attribute", 1),
    ]
    second = {r["attribute"]: r["status"] for r in report_lines(tmp_path / "second.csv")}
    # only the confirmed pair was recorded in the state: the others are sent again
    assert second == {"shown": "skipped", "missing": "ok", "other": "ok"}
    assert json.loads(server.requests[1].body) == {"missing": "2", "other": "3"}


def test_an_html_page_answered_200_fails_after_its_attempts_saying_it_is_not_the_api(
    tmp_path: Path, fast: Path
) -> None:
    page = answer(200, "<!doctype html><h1>Welcome</h1>", HTML)
    with HostileServer(page) as server:
        src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
        result = invoke("sync", str(src), "--report", str(tmp_path / "r.csv"),
                        "--base-url", server.url, "--config", str(fast))  # fmt: skip
    assert result.exit_code == 1, result.output
    (line,) = report_lines(tmp_path / "r.csv")
    assert (line["status"], line["http_status"], line["attempts"]) == ("failed", "200", "3")
    assert "malformed response (HTTP 200, text/html; charset=utf-8)" in line["error"]
    assert "is --base-url the API's address?" in line["error"]


# ----------------------------------------------------------------------------- 12.7 check order


def _state(**settings: Any) -> EmulatorState:
    return EmulatorState(EmulatorSettings(token=KEY, seed=1, **settings), clock=lambda: 0.0)


def _post(state: EmulatorState, token: str, cid: str = "C1") -> int:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    reply = state.handle("POST", f"/customers/{cid}/attributes", headers, b'{"a": "b"}')
    return 0 if reply.drop else reply.status


@pytest.mark.parametrize(
    "settings",
    [{"error_rate": 1.0}, {"throttle_rate": 1.0}, {"drop_rate": 1.0},
     {"drop_rate": 0.3, "error_rate": 0.3, "throttle_rate": 0.4}, {"rate_limit": 0.001}],
    ids=["errors", "throttles", "drops", "all-faults", "rate-limit"],
)  # fmt: skip
def test_a_wrong_key_is_answered_401_whatever_faults_and_limits_are_set(
    settings: dict[str, float],
) -> None:
    state = _state(**settings)
    assert [_post(state, "wrong") for _ in range(20)] == [401] * 20
    right = [_post(state, KEY) for _ in range(20)]
    assert 200 not in right[1:]  # while the right key meets the faults or the limit
    assert state.by_status[401] == 20


def test_under_injected_faults_a_wrong_key_stops_the_run_at_its_first_answer(
    tmp_path: Path, emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread(token=KEY, error_rate=0.5, drop_rate=0.2, throttle_rate=0.3)
    src = write_csv(tmp_path / "in.csv", [(f"C{i}", "a", "1") for i in range(50)])
    result = invoke("sync", str(src), "--report", str(tmp_path / "r.csv"), "--base-url",
                    server.base_url, "--concurrency", "1", token="f" * 64)  # fmt: skip
    assert result.exit_code == 3, result.output
    assert server.state.requests_total == 1
    assert server.state.by_status == {401: 1}
    assert {r["status"] for r in report_lines(tmp_path / "r.csv")} == {"not_sent"}


# ----------------------------------------------------------------------------- 12.2 content type


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_content_type_says_utf_8_and_non_ascii_values_arrive_intact_both_ways(
    transport: str, make_emulator: Callable[..., Any]
) -> None:
    values = {"nome": "João Ümlaut Ñandú", "cidade": "東京 😀", "nota": "a\u00a0b — «c» \u200d"}
    with HostileServer(answer(200, values)) as probe:
        async with Client(probe.url, KEY, transport=transport) as ic:
            await ic.set_customer_attributes("C-ç", values)
    sent = probe.requests[0]
    assert sent.headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(sent.body.decode("utf-8")) == values
    assert sent.path == "/customers/C-%C3%A7/attributes"

    emulator = await make_emulator(token=KEY)
    async with Client(emulator.base_url, KEY, transport=transport) as ic:
        assert await ic.set_customer_attributes("C-ç", values) == values
        assert await ic.get_customer_attributes("C-ç") == values
    assert emulator.state.customers == {"C-ç": values}


# ----------------------------------------------------------------------------- 12.1 ids


def test_a_customer_file_takes_gids_with_or_without_an_external_id(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(f"\ufeff# gid,externalId\n{GID},100001\n\n{OTHER_GID}\n  C-3 , 3  \n", "utf-8")
    directory = read_customers(path)
    assert directory.gids == {GID, OTHER_GID, "C-3"}
    assert dict(directory.external) == {"100001": GID, "3": "C-3"}
    assert [directory.gid_of(i) for i in (GID, "100001", OTHER_GID, "3", "C-3", "nope")] == [
        GID, GID, OTHER_GID, "C-3", "C-3", None,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("G1,X\nG2,X\n", "line 2: external id 'X' is given to two customers (lines 1 and 2)"),
        ("G1,X\nG1,Y\n", "line 2: customer 'G1' has two external ids ('X' on line 1, and 'Y')"),
        ("G1\nG2,G1\n", "line 2: external id 'G1' is the gid of another customer (line 1)"),
        ("G1,X\nX\n", "line 2: 'X' is the external id of another customer (line 1)"),
        ("G1,\n", "line 1: expected 'gid' or 'gid,externalId', got 'G1,'"),
        ("G1,X,Y\n", "line 1: expected 'gid' or 'gid,externalId', got 'G1,X,Y'"),
    ],
)
def test_a_customer_file_that_gives_an_id_to_two_customers_is_refused_naming_the_line(
    text: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        CustomerDirectory.parse(text, "c.csv")
    assert str(caught.value) == f"c.csv, {problem}"


async def test_the_emulator_serves_one_map_under_the_gid_and_the_external_id(
    make_emulator: Callable[..., Any],
) -> None:
    directory = CustomerDirectory.parse(f"{GID},100001\n{OTHER_GID}\n")
    emulator = await make_emulator(token=KEY, customers=directory)
    async with Client(emulator.base_url, KEY) as ic:
        assert await ic.set_customer_attributes("100001", {"plan": "gold"}) == {"plan": "gold"}
        assert await ic.set_customer_attributes(GID, {"city": "Lisboa"}) == {
            "plan": "gold",
            "city": "Lisboa",
        }
        assert await ic.get_customer_attributes("100001") == {"plan": "gold", "city": "Lisboa"}
        assert await ic.set_customer_attributes(OTHER_GID, {"plan": "silver"}) == {"plan": "silver"}
        with pytest.raises(CustomerNotFound) as caught:
            await ic.set_customer_attributes("100002", {"plan": "x"})
    assert caught.value.message == "Customer not found"
    assert emulator.state.customers == {
        GID: {"plan": "gold", "city": "Lisboa"},
        OTHER_GID: {"plan": "silver"},
    }


def test_without_a_customer_map_rows_naming_one_customer_by_both_ids_are_both_sent(
    tmp_path: Path, emulator_thread: Callable[..., EmulatorThread]
) -> None:
    # The documented limit: nothing in the file says 100001 and GID are one customer.
    server = emulator_thread(token=KEY, customers=CustomerDirectory.parse(f"{GID},100001\n"))
    src = write_csv(tmp_path / "in.csv", [("100001", "plan", "gold"), (GID, "plan", "silver")])
    result = invoke("sync", str(src), "--report", str(tmp_path / "r.csv"),
                    "--base-url", server.base_url, "--concurrency", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in report_lines(tmp_path / "r.csv")] == ["ok", "ok"]
    assert server.state.customers == {GID: {"plan": "silver"}}  # the later request won


@pytest.mark.parametrize("policy", ["error", "last"])
def test_with_a_customer_map_a_conflict_across_the_two_ids_is_seen(
    tmp_path: Path, emulator_thread: Callable[..., EmulatorThread], policy: str
) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text(f"{GID},100001\n{OTHER_GID},100002\n", "utf-8")
    server = emulator_thread(token=KEY, customers=read_customers(customers))
    rows = [
        ("100001", "plan", "gold"),  # row 2
        ("100001", "city", "Porto"),  # row 3: same value under both ids, no conflict
        (GID, "plan", "silver"),  # row 4
        (GID, "city", "Porto"),  # row 5
        ("100002", "plan", "bronze"),  # row 6: another customer
    ]
    src = write_csv(tmp_path / "in.csv", rows)
    result = invoke("sync", str(src), "--report", str(tmp_path / "r.csv"), "--base-url",
                    server.base_url, "--customer-map", str(customers),
                    "--on-conflict", policy)  # fmt: skip
    lines = report_lines(tmp_path / "r.csv")
    statuses = [line["status"] for line in lines]
    if policy == "error":
        assert result.exit_code == 1, result.output
        assert statuses == ["invalid", "ok", "invalid", "ok", "ok"]
        assert lines[0]["error"] == (
            f"customer '{GID}' (written '100001', '{GID}': one customer per the customer map) "
            "attribute 'plan' has different values in rows 2 and 4 (column 'value')"
        )
        assert server.state.customers == {GID: {"city": "Porto"}, OTHER_GID: {"plan": "bronze"}}
    else:
        assert result.exit_code == 0, result.output
        assert statuses == ["skipped", "ok", "ok", "ok", "ok"]
        assert lines[0]["error"] == (
            "superseded by row 4, the same customer under another id "
            "(--customer-map; --on-conflict last)"
        )
        assert server.state.customers == {
            GID: {"plan": "silver", "city": "Porto"},
            OTHER_GID: {"plan": "bronze"},
        }
    assert [line["customer_id"] for line in lines] == [r[0] for r in rows]  # as written


def test_an_unreadable_customer_map_stops_the_run_before_anything_is_sent(tmp_path: Path) -> None:
    with HostileServer(answer(200, {})) as server:
        src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
        bad = tmp_path / "map.csv"
        bad.write_text("G1,X\nG2,X\n", "utf-8")
        for given in (bad, tmp_path / "missing.csv"):
            result = invoke("sync", str(src), "--report", str(tmp_path / "r.csv"),
                            "--base-url", server.url, "--customer-map", str(given))  # fmt: skip
            assert result.exit_code == 2, result.output
            assert "--customer-map" in result.stderr
    assert server.requests == []


# ----------------------------------------------------------------------------- the curl example


def _read_line(stream: IO[bytes], deadline: float) -> str:
    fd = stream.fileno()
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no line from the emulator in time; got {line!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            char = os.read(fd, 1)
            assert char, f"the emulator exited; got {line!r}"
            line += char
    return line.decode()


def test_the_emulator_run_as_in_the_readme_answers_with_the_real_error_bodies(
    tmp_path: Path,
) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text(f"1234\n{GID},100001\n", "utf-8")
    command = [sys.executable, "-m", "bulk_sync", "emulator", "--port", "0", "--token", "T",
               "--customers", str(ids)]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, env={**os.environ})
    try:
        assert process.stderr is not None
        line = _read_line(process.stderr, time.monotonic() + 15)
        assert "(token required; 2 customers, 1 with an external id)" in line
        port = int(line.split("http://127.0.0.1:")[1].split()[0])

        def curl(path: str, body: bytes, token: str = "T") -> tuple[int, Any]:  # noqa: S107
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                headers = {"Authorization": f"Bearer {token}", "Content-Type": JSON_TYPE}
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                return response.status, json.loads(response.read())
            finally:
                connection.close()

        example = b'{"new_name_1": "attribute_1", "new_name_2": "attribute_2"}'
        assert curl("/customers/1234/attributes", example) == (
            200, {"new_name_1": "attribute_1", "new_name_2": "attribute_2"},
        )  # fmt: skip
        assert curl("/customers/1234/attributes", example, "wrong") == (
            401, {"code": 401, "message": "Credentials are required to access this resource"},
        )  # fmt: skip
        assert curl("/customers/9999/attributes", example) == (
            404, {"code": 404, "message": "Customer not found"},
        )  # fmt: skip
        assert curl("/customers/1234/attributes", b'{"k": ""}') == (
            422, {"code": 422, "message": "Unprocessable request"},
        )  # fmt: skip
        assert curl("/customers/1234/attributes", b"{231,,[][[") == (
            400, {"code": 400, "message": "Invalid JSON"},
        )  # fmt: skip
        assert curl("/customers/100001/attributes", b'{"k": "v"}') == (200, {"k": "v"})
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
