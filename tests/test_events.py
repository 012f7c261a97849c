"""The engine's events: what every front end (CLI bar, logs, web page) follows a run by."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk_sync import events
from bulk_sync.cli import cli, flow_text
from bulk_sync.config import Settings
from bulk_sync.emulator import RunningEmulator
from bulk_sync.errors import RateLimited
from bulk_sync.events import (
    BREAKER_OPEN,
    CustomerDone,
    Finished,
    FlowState,
    Loaded,
    Planned,
    Progress,
    Throttled,
)
from bulk_sync.models import Status
from bulk_sync.observability import setup_logging
from bulk_sync.runner import sync_async
from bulk_sync.uploader import Uploader
from helpers import report_lines, write_csv

ROWS = [
    ("C1", "segment", "retail"),
    ("C1", "manager", "Ana"),
    ("C2", "segment", "b2b"),
    ("C3", "segment", ""),  # invalid: empty value
    ("C4", "a", "x"),
    ("C4", "a", "y"),  # conflict with the row above: both invalid
]


async def _no_wait(_: float) -> None:
    await asyncio.sleep(0)


class Echo:
    def __init__(self, throttle_first: int = 0) -> None:
        self.calls = 0
        self.throttle_first = throttle_first

    async def set_customer_attributes(
        self, customer_id: str, attributes: Mapping[str, str]
    ) -> dict[str, str]:
        self.calls += 1
        await asyncio.sleep(0)
        if self.calls <= self.throttle_first:
            raise RateLimited("slow down", status=429, retry_after=2.0)
        return dict(attributes)


def _run(tmp_path: Path, **kwargs: object) -> tuple[list[events.Event], object]:
    src = write_csv(tmp_path / "in.csv", ROWS)
    seen: list[events.Event] = []
    summary = asyncio.run(
        sync_async(  # type: ignore[arg-type]
            [src],
            Settings(concurrency=2),
            report=tmp_path / "out.csv",
            on_event=seen.append,
            sleep=_no_wait,
            **kwargs,
        )
    )
    return seen, summary


def test_a_sync_emits_loaded_planned_progress_rows_and_finished_in_order(tmp_path: Path) -> None:
    seen, summary = _run(tmp_path, sender=Echo())
    kinds = [type(e) for e in seen]
    assert kinds[0] is Loaded
    assert kinds[1] is Planned
    assert kinds[-1] is Finished
    assert set(kinds[2:-1]) == {Progress, CustomerDone}

    loaded = seen[0]
    assert isinstance(loaded, Loaded)
    assert loaded.rows == len(ROWS)
    assert loaded.tables == (("in.csv", "", len(ROWS)),)

    planned = seen[1]
    assert isinstance(planned, Planned)
    assert (planned.customers, planned.requests, planned.pairs) == (2, 2, 3)
    assert (planned.invalid_rows, planned.skipped_rows, planned.dry_run) == (3, 0, False)
    assert planned.rows_to_send == 3

    # every row sent is reported once, with the status the report gives it
    done = [o for e in seen if isinstance(e, CustomerDone) for o in e.outcomes]
    assert sorted(i for i, _ in done) == [0, 1, 2]
    statuses = [line["status"] for line in report_lines(tmp_path / "out.csv")]
    assert all(statuses[i] == s.value for i, s in done)

    last = [e for e in seen if isinstance(e, Progress)][-1]
    assert (last.rows_done, last.rows_total, last.ok_rows, last.failed_rows) == (3, 3, 3, 0)
    assert last.flow is not None
    assert last.flow.in_flight == 0

    finished = seen[-1]
    assert isinstance(finished, Finished)
    assert finished.summary is summary


def test_a_dry_run_plans_and_finishes_without_progress(tmp_path: Path) -> None:
    seen, _ = _run(tmp_path, dry_run=True)
    assert [type(e) for e in seen] == [Loaded, Planned, Finished]
    planned = seen[1]
    assert isinstance(planned, Planned)
    assert planned.dry_run
    assert planned.customers == 2


def test_a_handler_that_raises_does_not_break_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = write_csv(tmp_path / "in.csv", ROWS)

    def broken(event: events.Event) -> None:
        raise RuntimeError("front end bug")

    summary = asyncio.run(
        sync_async(
            [src], report=tmp_path / "out.csv", sender=Echo(), on_event=broken, sleep=_no_wait
        )
    )
    assert summary.counts["ok"] == 3
    assert summary.exit_code == 1
    assert len(report_lines(tmp_path / "out.csv")) == len(ROWS)
    assert "an event handler failed" in caplog.text


def test_the_older_on_progress_callback_gets_progress_events_only(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", ROWS)
    got: list[object] = []
    asyncio.run(
        sync_async(
            [src],
            report=tmp_path / "out.csv",
            sender=Echo(),
            on_progress=got.append,
            sleep=_no_wait,
        )
    )
    assert got
    assert all(isinstance(p, Progress) for p in got)


def test_a_retry_after_is_announced_and_counted_as_paused_time() -> None:
    from test_uploader import FakeTime, job

    time = FakeTime()
    seen: list[events.Event] = []
    uploader = Uploader(  # one at a time: the window cannot shrink, so the run pauses
        Echo(throttle_first=1),
        concurrency=1,
        sleep=time.sleep,
        clock=time.clock,
        on_event=seen.append,
    )
    asyncio.run(uploader.run([job("C1", ("a", "1"))], lambda r: None))
    assert seen == [Throttled(429, 2.0)]
    assert uploader.flow_state().paused_seconds == pytest.approx(2.0)


def test_progress_rate_and_eta() -> None:
    p = Progress(100, 25, 10, 2, 0, 3, 0, 5.0)
    assert p.rate == 5.0
    assert p.eta == 15.0
    assert Progress(100, 0, 10, 0, 0, 0, 0, 0.0).eta is None


def test_flow_text_says_since_when_the_api_is_unavailable_and_the_window() -> None:
    assert flow_text(None) == ""
    assert flow_text(FlowState(8, 8)) == ""
    assert flow_text(FlowState(3, 8)) == "window 3/8"
    since = 1_800_000_000.0
    text = flow_text(FlowState(1, 8, breaker=BREAKER_OPEN, unavailable_since=since, next_try_in=8))
    from datetime import datetime

    clock = datetime.fromtimestamp(since).strftime("%H:%M:%S")
    assert text == f"API unavailable since {clock}, next try in 8 s; window 1/8"
    probing = FlowState(
        1, 8, breaker="probing", unavailable_since=since, next_try_in=None, paused_seconds=42.4
    )
    assert flow_text(probing) == (
        f"API unavailable since {clock}, probing now; window 1/8; paused 42 s"
    )


def test_log_lines_follow_stderr_when_a_progress_bar_redirects_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler = setup_logging("text")
    try:
        redirected = io.StringIO()
        monkeypatch.setattr(sys, "stderr", redirected)
        logging.getLogger("bulk_sync.test").warning("above the bar")
        assert "above the bar" in redirected.getvalue()
    finally:
        logging.getLogger("bulk_sync").removeHandler(handler)


def test_a_dry_run_draws_no_progress_bar(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", ROWS)
    result = CliRunner().invoke(
        cli, ["sync", str(src), "--dry-run", "--progress", "--report", str(tmp_path / "r.csv")]
    )
    assert result.exit_code == 1, result.output  # the sample has invalid rows
    assert "eta" not in result.output
    assert "0/?" not in result.output


def test_statuses_in_customer_done_are_final(tmp_path: Path) -> None:
    seen, _ = _run(tmp_path, sender=Echo())
    assert {s for e in seen if isinstance(e, CustomerDone) for _, s in e.outcomes} == {Status.OK}


def test_the_end_of_sending_is_announced_once(tmp_path: Path) -> None:
    seen, _ = _run(tmp_path, sender=Echo())
    finals = [e for e in seen if isinstance(e, Progress) and e.rows_done == e.rows_total]
    assert len(finals) == 1


def test_the_summary_gives_the_widest_window_and_how_often_it_narrowed() -> None:
    from pathlib import Path

    from bulk_sync.cli import format_summary
    from bulk_sync.runner import Summary

    def summary(flow: FlowState | None, openings: int = 0) -> str:
        s = Summary(
            counts={"ok": 10}, rows=10, customers=10, requests=12, retries=2, elapsed=1.0,
            report=Path("r.csv"), exit_code=0, dry_run=False, flow=flow,
            breaker_openings=openings,
        )  # fmt: skip
        return format_summary(s)

    # narrowed in the tail to the one request still out: the window at the end misleads
    text = summary(FlowState(1, 8, widest=8, narrowed=3, paused_seconds=1.25))
    assert "window up to 8/8, narrowed 3 times; paused 1.2s" in text
    assert "at the end" not in text
    # `auto`: what it found
    found = summary(FlowState(47, 256, widest=48, narrowed=1))
    assert "window up to 48/256, narrowed 1 time\n" in found
    assert "window" not in summary(FlowState(8, 8, widest=8))  # nothing happened
    assert "window up to 8/8; API unavailable 2 times" in summary(FlowState(8, 8, widest=8), 2)


async def test_customers_left_not_sent_by_a_stop_are_not_counted_as_done(
    tmp_path: Path, emulator: RunningEmulator, api_token: str
) -> None:
    """A SIGTERM (the stop event) mid-run: the last progress counts as done only the
    customers whose rows were sent, not those drained as not_sent (it said 100%)."""
    src = write_csv(tmp_path / "in.csv", [(f"C{c:02d}", "segment", f"v{c}") for c in range(30)])
    stop = asyncio.Event()
    seen: list[events.Event] = []

    def on_event(event: events.Event) -> None:
        seen.append(event)
        if isinstance(event, CustomerDone):
            stop.set()  # after the first customer's answer

    summary = await sync_async(
        [src],
        Settings(base_url=emulator.base_url, concurrency=1),
        report=tmp_path / "out.csv",
        token=api_token,
        stop=stop,
        on_event=on_event,
        sleep=_no_wait,
    )
    assert summary.exit_code == 3
    sent = {
        e.customer_id
        for e in seen
        if isinstance(e, CustomerDone) and all(s is Status.OK for _, s in e.outcomes)
    }
    assert 1 <= len(sent) < 30
    assert len(sent) == emulator.state.accepted_total
    last = [e for e in seen if isinstance(e, Progress)][-1]
    assert (last.customers_done, last.customers_total) == (len(sent), 30)
    assert last.rows_done == len(sent)
