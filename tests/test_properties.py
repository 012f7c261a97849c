"""Whole-pipeline properties: for any table and any API behaviour, every input row
appears exactly once in the report, in input order, with a final status; every ``ok``
row is on the server with that value; and the report reads back to what was sent."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_sync.config import Settings
from bulk_sync.errors import (
    ApiError,
    CustomerNotFound,
    DocumentRejected,
    ServerError,
    TransportError,
)
from bulk_sync.report import read_report
from bulk_sync.runner import sync_async
from helpers import write_csv as _write

FINAL = {"ok", "skipped", "invalid", "failed", "not_sent"}

ids = st.sampled_from(["C1", "C2", "C3", "00123", "x/y", "", "  C1 "])
attrs = st.sampled_from(["segment", "manager", "=formula", "", "região"])
values = st.one_of(
    st.sampled_from(["", "retail", "-5", "=1+2", "'quoted", "NA", "null", " padded "]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
)
rows_st = st.lists(st.tuples(ids, attrs, values), min_size=1, max_size=25)
behaviour_st = st.dictionaries(
    st.sampled_from(["C1", "C2", "C3", "00123", "x/y"]),
    st.sampled_from(["ok", "404", "422-bad", "503", "flaky", "drop"]),
)


class ScriptedApi:
    """A sender whose answer per customer is scripted; it stores what it accepts."""

    def __init__(self, behaviour: Mapping[str, str]) -> None:
        self.behaviour = behaviour
        self.stored: dict[str, dict[str, str]] = {}
        self.calls: dict[str, int] = {}

    async def set_customer_attributes(
        self, customer_id: str, attributes: Mapping[str, str]
    ) -> dict[str, str]:
        n = self.calls[customer_id] = self.calls.get(customer_id, 0) + 1
        mode = self.behaviour.get(customer_id, "ok")
        error: ApiError | None = None
        if mode == "404":
            error = CustomerNotFound("no such customer", status=404, customer_id=customer_id)
        elif mode == "422-bad" and any(v.startswith("=") for v in attributes.values()):
            error = DocumentRejected("bad value", status=422, customer_id=customer_id)
        elif mode == "503":
            error = ServerError("down", status=503, customer_id=customer_id)
        elif mode == "flaky" and n % 2 == 1:
            error = ServerError("blip", status=503, customer_id=customer_id)
        elif mode == "drop" and n == 1:
            error = TransportError("connection reset", customer_id=customer_id)
        if error is not None:
            raise error
        self.stored.setdefault(customer_id, {}).update(attributes)
        return dict(self.stored[customer_id])


async def _no_wait(_: float) -> None:
    await asyncio.sleep(0)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rows=rows_st, behaviour=behaviour_st, on_conflict=st.sampled_from(["error", "last"]))
def test_every_row_once_in_order_and_ok_means_stored(
    rows: list[tuple[str, str, str]], behaviour: dict[str, str], on_conflict: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.csv"
        _write(src, rows)
        api = ScriptedApi(behaviour)
        report = Path(tmp) / "out.csv"
        s = Settings(max_attempts=3, on_conflict=on_conflict)  # type: ignore[arg-type]
        summary = asyncio.run(sync_async([src], s, report=report, sender=api, sleep=_no_wait))
        lines = list(read_report(report))

    # rows whose three cells are all blank are not input rows (README); others all appear
    expected = [
        (i + 2, c.strip(), a.strip(), v.strip())
        for i, (c, a, v) in enumerate(rows)
        if c.strip() or a.strip() or v.strip()
    ]
    assert [(r.row, r.customer_id, r.attribute, r.value) for r in lines] == expected
    assert all(r.status.value in FINAL for r in lines)
    assert sum(summary.counts.values()) == len(expected)
    for r in lines:
        if r.status.value == "ok":
            assert api.stored[r.customer_id][r.attribute] == r.value
            assert r.http_status == 200
            assert r.attempts >= 1
        if r.status.value == "invalid":
            assert r.error
            assert r.attempts == 0
    code = summary.exit_code
    bad = summary.counts["invalid"] + summary.counts["failed"]
    assert code == (1 if bad else 0)


@settings(max_examples=25, deadline=None)
@given(rows=rows_st)
def test_dry_run_report_says_valid_exactly_for_rows_a_real_run_would_send(
    rows: list[tuple[str, str, str]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.csv"
        _write(src, rows)
        dry = Path(tmp) / "dry.csv"
        real = Path(tmp) / "real.csv"
        api = ScriptedApi({})
        asyncio.run(sync_async([src], Settings(), report=dry, dry_run=True))
        asyncio.run(sync_async([src], Settings(), report=real, sender=api, sleep=_no_wait))
        dry_lines = list(read_report(dry))
        real_lines = list(read_report(real))
    assert api.calls or not any(r.status.value == "valid" for r in dry_lines)
    assert [r.status.value == "valid" for r in dry_lines] == [
        r.status.value == "ok" for r in real_lines
    ]
