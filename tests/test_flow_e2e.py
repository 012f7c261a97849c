"""Flow control end to end: the `bulk-sync` command against the emulator over loopback,
with a capacity, an outage window, refused connections; and a stand-in that answers 403.

These runs take real time (an outage lasts what it lasts); the retry backoff is made
tiny by a config file, the breaker's probe intervals keep their defaults unless said.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from bulk_sync.cli import cli
from bulk_sync.emulator import EmulatorThread
from helpers import report_lines, wait_for, write_csv
from test_security import ServerThread

FAST = "backoff_initial: 0.01\nbackoff_max: 0.05\n"


def rows(customers: int, tag: str = "") -> list[tuple[str, str, str]]:
    return [(f"C{c:05d}", "segment", f"v{c}{tag}") for c in range(customers)]


@pytest.fixture
def run(api_token: str, tmp_path: Path) -> Callable[..., Result]:
    config = tmp_path / "fast.yaml"
    config.write_text(FAST)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(
            cli,
            [*args, "--config", str(config), "--no-progress"],
            env={"IC_API_TOKEN": api_token},
            catch_exceptions=False,
        )

    return invoke


def statuses(report: Path) -> Counter[str]:
    return Counter(r["status"] for r in report_lines(report))


@pytest.mark.timeout(60)
def test_a_fixed_ceiling_above_the_capacity_ends_ok_with_few_429s(
    tmp_path: Path, run: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread(capacity=8, latency=0.02)
    src = write_csv(tmp_path / "in.csv", rows(400))
    report, summary = tmp_path / "r.csv", tmp_path / "s.json"
    result = run(
        "sync", str(src), "--report", str(report), "--base-url", server.base_url,
        "--concurrency", "32", "--summary-json", str(summary),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert statuses(report) == {"ok": 400}
    refused = server.state.faults["capacity"]
    assert refused >= 1  # the ceiling was above the capacity
    assert refused <= 40  # without the adaptive window: 24 of 32 refused, again and again
    flow = json.loads(summary.read_text())["flow"]
    assert flow["ceiling"] == 32
    assert flow["window"] <= 9


@pytest.mark.timeout(60)
def test_auto_finds_the_capacity_by_itself(
    tmp_path: Path, run: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread(capacity=12, latency=0.02)
    src = write_csv(tmp_path / "in.csv", rows(800))
    report, summary, metrics = tmp_path / "r.csv", tmp_path / "s.json", tmp_path / "m.prom"
    result = run(
        "sync", str(src), "--report", str(report), "--base-url", server.base_url,
        "--concurrency", "auto", "--summary-json", str(summary), "--metrics-file", str(metrics),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert statuses(report) == {"ok": 800}
    assert server.state.max_in_flight >= 10  # it found (nearly) all of the capacity
    assert server.state.faults["capacity"] <= 0.05 * server.state.requests_total
    flow = json.loads(summary.read_text())["flow"]
    assert flow["ceiling"] == 256
    assert 6 <= flow["window"] <= 13
    prom = metrics.read_text()
    assert 'bulk_sync_concurrency_ceiling{job="bulk_sync"} 256' in prom
    assert "bulk_sync_concurrency_window{" in prom
    assert 'bulk_sync_breaker_openings{job="bulk_sync"} 0' in prom


@pytest.mark.timeout(120)
def test_a_20_s_outage_ends_with_every_row_ok(
    tmp_path: Path, run: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread(latency=0.01, outage_after=150, outage_seconds=20)
    src = write_csv(tmp_path / "in.csv", rows(600))
    report, summary = tmp_path / "r.csv", tmp_path / "s.json"
    result = run(
        "sync", str(src), "--report", str(report), "--base-url", server.base_url,
        "--max-attempts", "3", "--summary-json", str(summary),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert statuses(report) == {"ok": 600}
    assert server.state.faults["outage"] <= 60  # requests that reached it while it was down
    assert "API unavailable since" in result.output
    assert "next try in 1 s" in result.output
    assert "API available again" in result.output
    # the progress line goes on while no row finishes, and says why (every 5 s)
    outage_lines = [
        line
        for line in result.output.splitlines()
        if "progress:" in line and "API unavailable since" in line and "next try in" in line
    ]
    assert len(outage_lines) >= 2
    doc = json.loads(summary.read_text())
    assert doc["breaker_openings"] == 1
    assert doc["flow"]["breaker"] == "closed"
    assert doc["flow"]["paused_seconds"] >= 19


@pytest.mark.timeout(60)
def test_refused_connections_are_an_outage_too(
    tmp_path: Path, run: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread(latency=0.01, outage_after=100, outage_seconds=2, outage_mode="refuse")
    src = write_csv(tmp_path / "in.csv", rows(300))
    report = tmp_path / "r.csv"
    result = run(
        "sync", str(src), "--report", str(report), "--base-url", server.base_url,
        "--max-attempts", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert statuses(report) == {"ok": 300}
    assert "API unavailable since" in result.output


@pytest.mark.timeout(60)
def test_a_permanent_outage_stops_at_max_outage_then_resume_sends_the_rest(
    tmp_path: Path, run: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    down = emulator_thread(latency=0.01, outage_after=100, outage_seconds=8)
    data = rows(400)
    src = write_csv(tmp_path / "in.csv", data)
    first, summary = tmp_path / "first.csv", tmp_path / "s.json"
    result = run(
        "sync", str(src), "--report", str(first), "--base-url", down.base_url,
        "--max-outage", "3", "--summary-json", str(summary), "--log-format", "json",
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    lines = report_lines(first)
    counts = Counter(r["status"] for r in lines)
    assert counts["failed"] == 0  # never failed for an outage
    accepted = down.state.accepted_total  # 100, and those already in flight then
    assert counts["ok"] == accepted >= 100
    assert counts["not_sent"] == 400 - accepted
    not_sent = [r for r in lines if r["status"] == "not_sent"]
    assert all("--max-outage" in r["error"] and "--resume" in r["error"] for r in not_sent)
    doc = json.loads(summary.read_text())
    assert doc["exit_code"] == 3
    assert "unavailable for more than 3 s" in doc["aborted"]
    assert doc["flow"]["breaker"] in ("open", "probing")
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any("API unavailable since" in d["message"] for d in logged)
    opened = [d for d in logged if d.get("event") == "breaker" and d["state"] == "open"]
    assert opened
    assert opened[0]["next_try_in"] == 1.0
    assert isinstance(opened[0]["unavailable_since"], float)

    wait_for(lambda: not down.state.in_outage())  # the API is back
    posts_before = dict(down.state.posts_by_customer)
    second = tmp_path / "second.csv"
    result = run(
        "sync", str(src), "--resume", str(first), "--report", str(second),
        "--base-url", down.base_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert statuses(second) == {"skipped": accepted, "ok": 400 - accepted}
    done_first = {r["customer_id"] for r in lines if r["status"] == "ok"}
    posted_now = {c for c, n in down.state.posts_by_customer.items() if n > posts_before.get(c, 0)}
    assert posted_now == {c for c, _, _ in data} - done_first  # only the rest
    assert all(down.state.customers[c] == {"segment": v} for c, _, v in data)


@pytest.mark.timeout(60)
def test_403_fails_that_customer_and_403s_for_many_customers_stop_the_run(
    tmp_path: Path, run: Callable[..., Result]
) -> None:
    async def credits(request: web.BaseRequest) -> web.StreamResponse:
        customer = request.path.split("/")[2]
        if customer in ("C00003", "C00007"):
            body = {"code": 403, "message": "Not enough SMS credits"}
            return web.json_response(body, status=403)
        return web.json_response(await request.json())

    src = write_csv(tmp_path / "in.csv", rows(30))
    report = tmp_path / "r.csv"
    with ServerThread(credits) as server:
        result = run("sync", str(src), "--report", str(report), "--base-url", server.url)
    assert result.exit_code == 1, result.output
    lines = {r["customer_id"]: r for r in report_lines(report)}
    assert Counter(r["status"] for r in lines.values()) == {"ok": 28, "failed": 2}
    assert lines["C00003"]["http_status"] == "403"
    assert "Not enough SMS credits" in lines["C00003"]["error"]

    async def no_permission(request: web.BaseRequest) -> web.StreamResponse:
        return web.json_response({"code": 403, "message": "Forbidden"}, status=403)

    report = tmp_path / "r2.csv"
    with ServerThread(no_permission) as server:
        result = run(
            "sync", str(src), "--report", str(report), "--base-url", server.url,
            "--concurrency", "1",
        )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert statuses(report) == {"failed": 10, "not_sent": 20}
    assert "permission" in result.output
