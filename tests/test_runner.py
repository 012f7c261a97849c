"""The runner's own rules: where reports go, what the state records, crash handling."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest

from bulk_sync.config import Settings
from bulk_sync.errors import ReportExistsError, UsageError
from bulk_sync.models import Status
from bulk_sync.report import journal_path_for, read_report
from bulk_sync.runner import default_report_path, resolve_report_path, sync_async
from bulk_sync.state import StateStore
from helpers import write_csv


async def _no_wait(_: float) -> None:
    await asyncio.sleep(0)


class EchoApi:
    """Accepts everything; ``rewrite`` changes what the answer shows for some values."""

    def __init__(
        self, rewrite: Mapping[str, str] | None = None, omit: frozenset[str] = frozenset()
    ) -> None:
        self.rewrite = dict(rewrite or {})
        self.omit = omit
        self.sent: list[tuple[str, dict[str, str]]] = []

    async def set_customer_attributes(
        self, customer_id: str, attributes: Mapping[str, str]
    ) -> dict[str, str]:
        self.sent.append((customer_id, dict(attributes)))
        return {k: self.rewrite.get(v, v) for k, v in attributes.items() if k not in self.omit}


def test_state_records_only_values_the_api_answer_confirms(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "x"), ("C1", "b", "y"), ("C1", "c", "z")])
    # the answer shows another value for b, and no c at all
    api = EchoApi(rewrite={"y": "Y"}, omit=frozenset({"c"}))
    with StateStore.open(tmp_path / "state.db") as state:
        asyncio.run(
            sync_async([src], report=tmp_path / "1.csv", sender=api, state=state, sleep=_no_wait)
        )
    again = EchoApi()
    with StateStore.open(tmp_path / "state.db") as state:
        summary = asyncio.run(
            sync_async([src], report=tmp_path / "2.csv", sender=again, state=state, sleep=_no_wait)
        )
    assert again.sent == [("C1", {"b": "y", "c": "z"})]  # only a was confirmed
    assert summary.counts["skipped"] == 1
    assert summary.exit_code == 0


def test_a_crash_in_the_sender_still_writes_every_row_and_removes_nothing_it_needs(
    tmp_path: Path,
) -> None:
    src = write_csv(tmp_path / "in.csv", [(f"C{i}", "a", "1") for i in range(5)])

    class Crashing(EchoApi):
        async def set_customer_attributes(
            self, customer_id: str, attributes: Mapping[str, str]
        ) -> dict[str, str]:
            if customer_id == "C2":
                raise KeyboardInterrupt  # as a Ctrl-C without a handler would
            return await super().set_customer_attributes(customer_id, attributes)

    report = tmp_path / "r.csv"
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(
            sync_async(
                [src], Settings(concurrency=1), report=report, sender=Crashing(), sleep=_no_wait
            )
        )
    lines = list(read_report(report))
    assert [r.customer_id for r in lines] == [f"C{i}" for i in range(5)]
    assert [r.status for r in lines[:2]] == [Status.OK, Status.OK]
    assert {r.status for r in lines[2:]} == {Status.NOT_SENT}
    assert not journal_path_for(report).exists()


def test_report_placeholders_and_refusals(tmp_path: Path) -> None:
    stamped = resolve_report_path(tmp_path / "r-{timestamp}.csv")
    assert "{timestamp}" not in stamped.name
    assert stamped.name.startswith("r-2")
    with pytest.raises(UsageError, match=r"\.csv or \.xlsx"):
        resolve_report_path(tmp_path / "r.txt")
    with pytest.raises(UsageError, match="does not exist"):
        resolve_report_path(tmp_path / "nope" / "r.csv")
    existing = tmp_path / "old.csv"
    existing.write_text("x")
    with pytest.raises(ReportExistsError):
        resolve_report_path(existing)
    assert resolve_report_path(existing, overwrite=True) == existing
    assert resolve_report_path(existing, resume=existing) == existing


def test_a_left_over_journal_blocks_the_report_path_until_resumed(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    journal_path_for(report).write_text('{"bulk_sync_journal": 1}\n')
    with pytest.raises(ReportExistsError, match="--resume"):
        resolve_report_path(report)
    assert resolve_report_path(report, resume=report) == report
    assert resolve_report_path(report, resume=journal_path_for(report)) == report


def test_default_report_names_never_collide(tmp_path: Path) -> None:
    first = default_report_path(directory=tmp_path)
    first.write_text("x")
    second = default_report_path(directory=tmp_path)
    assert second != first
    assert second.parent == tmp_path
    assert second.suffix == ".csv"


def test_a_report_path_is_reserved_at_once_so_a_second_run_cannot_take_it(
    tmp_path: Path,
) -> None:
    report = tmp_path / "r.csv"
    assert resolve_report_path(report) == report
    assert report.exists()  # reserved while the first run still loads
    with pytest.raises(ReportExistsError, match="another run is using it"):
        resolve_report_path(report)


def test_a_run_that_fails_before_writing_releases_its_reservation(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    with pytest.raises(UsageError):
        asyncio.run(sync_async([tmp_path / "missing.csv"], report=report, dry_run=True))
    assert not report.exists()
    again = default_report_path(directory=tmp_path)
    assert again.exists()
    assert default_report_path(directory=tmp_path) != again  # same second: another name
