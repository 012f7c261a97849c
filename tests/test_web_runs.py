"""Runs started from the ops page, in-process against the emulator: the same engine as
the CLI (same report bytes), live events, Stop and resume, Retry failed, one run at a
time, and a history that survives a restart."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk_sync.cli import cli
from bulk_sync.config import Settings
from bulk_sync.emulator import RunningEmulator
from bulk_sync.report import Journal, journal_path_for, read_report
from bulk_sync.web.store import DataDir
from helpers import report_lines, write_csv
from web_support import SAMPLES, Page, page_app

RUN_LINK = re.compile(r"/runs/(r[0-9TZ]+-[0-9a-f]+)")


def settings_for(emulator: RunningEmulator, **changes: object) -> Settings:
    base = Settings(base_url=emulator.base_url, backoff_initial=0.01, backoff_max=0.05)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def start_sync(page: Page, files: list[tuple[str, bytes]]) -> str:
    """Upload, confirm and start; the run's id."""
    status, text, draft_path = await page.upload("/upload", files)
    assert status == 200, text
    status, text = await page.get(draft_path + "/confirm")
    revision = re.search(r'name="revision" value="(\d+)"', text)
    assert revision is not None, text
    async with page.client.post(
        draft_path + "/sync",
        data={"csrf_token": page.csrf, "revision": revision.group(1)},
        allow_redirects=False,
    ) as response:
        body = await response.text()
        assert response.status == 303, body
        match = RUN_LINK.search(response.headers["Location"])
        assert match is not None
        return match.group(1)


async def wait_finished(page: Page, run_id: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, text = await page.get(f"/runs/{run_id}")
        assert status == 200
        if 'id="summary-heading"' in text:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError("the run did not finish in time")


def run_record(page: Page, run_id: str) -> dict[str, object]:
    return json.loads((page.data_dir / "runs" / run_id / "run.json").read_text())


def cli_report(tmp_path: Path, inputs: list[Path], base_url: str, token: str, name: str) -> bytes:
    """The CLI's report for the same input (run from the inputs' folder, by base name)."""
    report = tmp_path / name
    result = CliRunner().invoke(
        cli,
        ["sync", *[p.name for p in inputs], "--base-url", base_url, "--report", str(report),
         "--no-progress", "-q"],
        env={"IC_API_TOKEN": token},
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    return report.read_bytes()


async def test_a_page_sync_writes_the_report_the_cli_writes(
    tmp_path: Path, emulator: RunningEmulator, api_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = [SAMPLES / "customers.csv", SAMPLES / "customers.xlsx"]
    async with page_app(tmp_path / "data", settings_for(emulator), token=api_token) as page:
        run_id = await start_sync(page, [(p.name, p.read_bytes()) for p in inputs])
        text = await wait_finished(page, run_id)
        assert "Done, with problems" in text  # the samples have invalid rows: exit 1
        assert "(exit code 1, as the command line would give)" in text
        status, csv_text = await page.get(f"/runs/{run_id}/report.csv")
        assert status == 200
        page_bytes = (page.data_dir / "runs" / run_id / "report.csv").read_bytes()
        async with page.client.get(f"/runs/{run_id}/report.xlsx") as response:
            assert response.status == 200
            assert "attachment" in response.headers["Content-Disposition"]
            xlsx = await response.read()
        page.assert_no_secret()
    monkeypatch.chdir(SAMPLES)
    cli_bytes = await asyncio.to_thread(
        cli_report, tmp_path, inputs, emulator.base_url, api_token, "cli.csv"
    )
    assert page_bytes == cli_bytes  # byte for byte: same engine, same report
    assert csv_text.encode() == page_bytes
    lines = report_lines(tmp_path / "cli.csv")
    assert {r["status"] for r in lines} == {"ok", "invalid"}
    import io

    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(xlsx), read_only=True)["report"]
    rows = [["" if c is None else str(c) for c in row] for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == list(lines[0].keys())
    assert [r[:7] for r in rows[1:]] == [list(r.values())[:7] for r in lines]


async def test_progress_is_streamed_as_server_sent_events(
    tmp_path: Path, make_emulator: object, api_token: str
) -> None:
    emulator = await make_emulator(latency=0.02)  # type: ignore[operator]
    settings = settings_for(emulator, concurrency=2)
    async with page_app(tmp_path / "data", settings, token=api_token) as page:
        run_id = await start_sync(page, [("c.csv", (SAMPLES / "customers.csv").read_bytes())])
        events: list[tuple[str, dict[str, object]]] = []
        async with page.client.get(f"/runs/{run_id}/events") as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            kind = ""
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line[6:])))
                    if kind == "finished":
                        break
        kinds = [k for k, _ in events]
        assert kinds[-1] == "finished"
        progress = [e for k, e in events if k == "progress"]
        assert any(e["state"] == "sending" for e in progress)
        done = [e["rows_done"] for e in progress]
        assert done == sorted(done)  # never goes back
        last = progress[-1]
        assert last["rows_done"] == last["rows_total"] == 163  # valid rows (162 values)
        assert last["ok"] == 163
        assert last["flow"] is not None  # the flow state, for the page's "in flight"
        await wait_finished(page, run_id)
        page.assert_no_secret()


async def test_stop_leaves_the_rest_not_sent_and_resume_sends_it(
    tmp_path: Path, make_emulator: object, api_token: str
) -> None:
    emulator = await make_emulator(latency=0.05)  # type: ignore[operator]
    settings = settings_for(emulator, concurrency=1)
    rows = [(str(5000 + k), "segment", f"s{k}") for k in range(40)]
    content = write_csv(tmp_path / "many.csv", rows).read_bytes()
    async with page_app(tmp_path / "data", settings, token=api_token) as page:
        run_id = await start_sync(page, [("many.csv", content)])
        deadline = time.monotonic() + 20
        while emulator.state.requests_total < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        status, _ = await page.post(f"/runs/{run_id}/stop")
        assert status == 200
        text = await wait_finished(page, run_id)
        assert "Stopped before the end" in text
        record = run_record(page, run_id)
        counts = record["counts"]
        assert isinstance(counts, dict)
        assert record["exit_code"] == 3
        assert 0 < counts["ok"] < 40
        assert counts["ok"] + counts["not_sent"] == 40
        assert "Resume: send the rest" in text
        status, text = await page.get(f"/runs/{run_id}/resume")
        assert "Resume the run?" in text
        async with page.client.post(
            f"/runs/{run_id}/resume", data={"csrf_token": page.csrf}, allow_redirects=False
        ) as response:
            assert response.status == 303
            match = RUN_LINK.search(response.headers["Location"])
            assert match is not None
            resumed = match.group(1)
        await wait_finished(page, resumed)
        again = run_record(page, resumed)
        assert again["kind"] == "resume"
        assert again["parent"] == run_id
        assert again["exit_code"] == 0
        assert again["counts"] == {  # --resume semantics: what was accepted is skipped
            "ok": counts["not_sent"], "skipped": counts["ok"], "valid": 0, "invalid": 0,
            "failed": 0, "not_sent": 0,
        }  # fmt: skip
        assert len(emulator.state.customers) == 40
        page.assert_no_secret()


async def test_retry_failed_resends_only_the_failed_rows(
    tmp_path: Path, make_emulator: object, api_token: str
) -> None:
    known = frozenset(str(7000 + k) for k in range(10))
    emulator = await make_emulator(customers=known)  # type: ignore[operator]
    rows = [(str(7000 + k), "segment", "x") for k in range(14)]  # 4 unknown: 404
    content = write_csv(tmp_path / "c.csv", rows).read_bytes()
    async with page_app(tmp_path / "data", settings_for(emulator), token=api_token) as page:
        run_id = await start_sync(page, [("c.csv", content)])
        text = await wait_finished(page, run_id)
        assert "Retry the 4 rows that failed or were not sent" in text
        assert "customer not found" in text  # the most frequent failure, as the API said
        emulator.state.directory = None  # the API now knows every customer
        _status, text = await page.get(f"/runs/{run_id}/retry")
        assert "Send again the <strong>4</strong> rows" in text
        assert "<strong>4 customers</strong>" in text
        async with page.client.post(
            f"/runs/{run_id}/retry", data={"csrf_token": page.csrf}, allow_redirects=False
        ) as response:
            match = RUN_LINK.search(response.headers["Location"])
            assert match is not None
            retry_id = match.group(1)
        await wait_finished(page, retry_id)
        record = run_record(page, retry_id)
        assert record["kind"] == "retry"
        assert record["exit_code"] == 0
        report = report_lines(page.data_dir / "runs" / retry_id / "report.csv")
        assert [(r["source"], r["row"], r["status"]) for r in report] == [
            ("c.csv", str(k + 2), "ok") for k in range(10, 14)
        ]  # the original file and row numbers
        page.assert_no_secret()


async def test_only_one_run_at_a_time_per_data_dir(
    tmp_path: Path, make_emulator: object, api_token: str
) -> None:
    emulator = await make_emulator(latency=0.05)  # type: ignore[operator]
    settings = settings_for(emulator, concurrency=1)
    rows = [(str(5000 + k), "segment", "x") for k in range(30)]
    content = write_csv(tmp_path / "c.csv", rows).read_bytes()
    async with page_app(tmp_path / "data", settings, token=api_token) as page:
        first = await start_sync(page, [("c.csv", content)])
        status, text, draft = await page.upload("/upload", [("d.csv", content)])
        status, text = await page.get(draft + "/confirm")
        # Said before asking, with the way to the run that is going.
        assert "Another run is in progress" in text
        assert f'href="/runs/{first}"' in text
        status, text = await page.post(draft + "/sync", {"revision": "0"})
        assert status == 409
        assert "another run is in progress (started " in text
        assert f'href="/runs/{first}">Follow the run in progress' in text
        # Another server on the same data dir is refused by the lock.
        async with page_app(tmp_path / "data", settings, token=api_token) as other:
            status, text, draft = await other.upload("/upload", [("d.csv", content)])
            status, text = await other.post(draft + "/sync", {"revision": "0"})
            assert status == 409
            assert "another run is in progress" in text
        await page.post(f"/runs/{first}/stop")
        await wait_finished(page, first)


async def test_the_history_survives_a_restart_and_a_cut_off_run_can_be_resumed(
    tmp_path: Path, emulator: RunningEmulator, api_token: str
) -> None:
    data_dir = tmp_path / "data"
    rows = [(str(6000 + k), "segment", "x") for k in range(6)]
    content = write_csv(tmp_path / "c.csv", rows).read_bytes()
    async with page_app(data_dir, settings_for(emulator), token=api_token) as page:
        run_id = await start_sync(page, [("c.csv", content)])
        await wait_finished(page, run_id)
    # A server killed while sending leaves the run marked running, with a journal.
    data = DataDir(data_dir)
    finished = data.run(run_id)
    assert finished is not None
    cut = dataclasses.replace(finished, id="r20260101T000000Z-0000aaaa", status="running",
                              exit_code=None, counts={}, summary={})  # fmt: skip
    data.save_run(cut)
    report = data.report_path(cut.id)
    report.write_bytes(b"")  # the reservation
    accepted = list(read_report(data.report_path(run_id)))[:2]  # two rows accepted
    header = {"report": str(report), "base_url": emulator.base_url}  # as the engine writes it
    with Journal.open(journal_path_for(report), header) as journal:
        journal.append([
            (r.source, r.sheet, r.row, r.customer_id, r.attribute, r.value, "ok", 200, "", 1)
            for r in accepted
        ])  # fmt: skip
    async with page_app(data_dir, settings_for(emulator), token=api_token) as page:
        _status, text = await page.get("/runs")
        assert run_id in text
        assert "cut off" in text
        _status, text = await page.get(f"/runs/{cut.id}")
        assert "the server stopped while this run was sending" in text
        assert "Resume: send the rest" in text
        async with page.client.post(
            f"/runs/{cut.id}/resume", data={"csrf_token": page.csrf}, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
            match = RUN_LINK.search(response.headers["Location"])
            assert match is not None
        resumed = match.group(1)
        await wait_finished(page, resumed)
        record = run_record(page, resumed)
        counts = record["counts"]
        assert isinstance(counts, dict), record
        assert counts["skipped"] == 2
        assert counts["ok"] == 4


async def test_a_configured_state_is_honoured_and_locked(
    tmp_path: Path, emulator: RunningEmulator, api_token: str
) -> None:
    from bulk_sync.lock import RunLock

    state = tmp_path / "state.db"
    settings = settings_for(emulator, state=state)
    rows = [(str(8000 + k), "segment", "x") for k in range(5)]
    content = write_csv(tmp_path / "c.csv", rows).read_bytes()
    async with page_app(tmp_path / "data", settings, token=api_token) as page:
        run_id = await start_sync(page, [("c.csv", content)])
        await wait_finished(page, run_id)
        assert run_record(page, run_id)["counts"]["ok"] == 5  # type: ignore[index]
        assert state.exists()
        # The dry run reads the state: what is already synced would be skipped.
        _status, text, draft = await page.upload("/upload", [("c.csv", content)])
        assert re.search(r"<dt>Skipped</dt><dd>5</dd>", text)
        assert "There is nothing to send" in text
        # A CLI run holding the state's lock keeps the page from starting another.
        changed = content.replace(b",x\r\n", b",y\r\n").replace(b",x\n", b",y\n")
        _status, text, draft = await page.upload("/upload", [("d.csv", changed)])
        with RunLock(state.with_name("state.db.lock")):
            status, text = await page.post(draft + "/sync", {"revision": "0"})
        assert status == 409
        assert "another run is in progress" in text


async def test_an_outage_is_told_in_the_page_s_words_not_the_command_line_s(
    tmp_path: Path, make_emulator: object, api_token: str
) -> None:
    """The page has a Resume button, not a --resume flag: the engine's "run again with
    --resume REPORT" is said as the page says it; the report keeps the engine's words."""
    emulator = await make_emulator(outage_after=5, outage_seconds=60)  # type: ignore[operator]
    settings = settings_for(emulator, concurrency=1, max_outage=0.5)
    rows = [(str(7000 + k), "segment", "x") for k in range(20)]
    content = write_csv(tmp_path / "c.csv", rows).read_bytes()
    async with page_app(tmp_path / "data", settings, token=api_token) as page:
        run_id = await start_sync(page, [("c.csv", content)])
        text = await wait_finished(page, run_id)
        assert run_record(page, run_id)["exit_code"] == 3
        assert "the API was unavailable for more than 0.5 s" in text
        assert "(max_outage in the server&#39;s settings)" in text
        assert "Resume sends the rest" in text
        assert "--resume" not in text
        assert "--max-outage" not in text
        assert "Resume: send the rest…" in text  # the button it speaks of
        report = report_lines(page.data_dir / "runs" / run_id / "report.csv")
        assert any("--resume REPORT" in r["error"] for r in report if r["status"] == "not_sent")


async def test_the_first_sending_snapshot_already_has_the_rows_to_send() -> None:
    """The page announces "Sending… 0 of 163 rows done" to a screen reader when sending
    starts: the snapshot that says "sending" carries the rows to send (not 0 of 0 until the
    first progress event)."""
    from bulk_sync import events
    from bulk_sync.web.runs import LiveRun, _initial_snapshot, _Publisher
    from bulk_sync.web.store import RunRecord

    record = RunRecord("r20260101T000000Z-abcdef", "sync", "2026-01-01T00:00:00Z", ("c.csv",))
    live = LiveRun(record, _initial_snapshot(record))
    publisher = _Publisher(live, asyncio.get_running_loop(), lambda text: text)
    publisher(events.Planned(167, 40, 40, 162, 4, 0, False, "http://127.0.0.1:1"))
    await asyncio.sleep(0)  # the snapshot crosses to this loop
    assert live.snapshot["state"] == "sending"
    assert live.snapshot["rows_total"] == 163
    assert live.snapshot["rows_done"] == 0
