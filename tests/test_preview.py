"""preview(): the dry run a front end shows, with the counts and messages of
``sync --dry-run``, problems with their row's cells one page at a time, and conflicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulk_sync.config import Settings
from bulk_sync.loading import load
from bulk_sync.models import Table
from bulk_sync.preview import preview
from bulk_sync.runner import sync
from helpers import report_lines

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def table(rows: list[tuple[str, str, str]], source: str = "in.csv") -> Table:
    return Table(
        source,
        "",
        list(range(2, len(rows) + 2)),
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
    )


def test_counts_and_messages_are_those_of_the_dry_run_report(tmp_path: Path) -> None:
    inputs = [SAMPLES / "customers.csv", SAMPLES / "customers.xlsx"]
    p = preview(load(inputs), Settings())
    summary = sync(inputs, Settings(), report=tmp_path / "dry.csv", dry_run=True)
    assert dict(p.counts) == summary.counts
    report = report_lines(tmp_path / "dry.csv")
    invalid = [(r["source"], r["row"]) for r in report if r["status"] == "invalid"]
    lines = p.problems(0, 100)
    assert [(line.source, str(line.row)) for line in lines] == invalid
    for line, row in zip(lines, [r for r in report if r["status"] == "invalid"], strict=True):
        assert row["error"].startswith(line.message)  # the report adds the column


def test_problems_carry_the_cells_of_their_row() -> None:
    p = preview([table([("1", "segment", "A"), ("", "region", "Norte")])], Settings())
    (line,) = p.problems()
    assert (line.row, line.column, line.kind) == (3, "customer_id", "empty_customer_id")
    assert (line.customer_id, line.attribute, line.value) == ("", "region", "Norte")
    assert line.located() == "in.csv, row 3, column 'customer_id': customer id is empty"


def test_problems_come_one_page_at_a_time_in_file_order() -> None:
    rows = [(str(k), "segment", "") for k in range(120)]
    p = preview([table(rows)], Settings())
    assert p.problem_count == 120
    assert [line.row for line in p.problems(100, 50)] == list(range(102, 122))
    assert p.problems(200, 50) == ()
    with pytest.raises(ValueError, match="negative"):
        p.problems(-1, 10)


def test_conflicts_are_grouped_per_customer_and_attribute_with_each_value() -> None:
    rows = [("1", "terms", "30"), ("2", "terms", "15"), ("1", "terms", "60"), ("1", "x", "y")]
    p = preview([table(rows)], Settings())
    (conflict,) = p.conflicts
    assert (conflict.customer_id, conflict.attribute) == ("1", "terms")
    assert [(s.row, s.value) for s in conflict.sides] == [(2, "30"), (4, "60")]
    assert p.customers == 2  # customer 1 still sends x, customer 2 sends terms


def test_customers_requests_and_values_follow_the_split_setting() -> None:
    rows = [("1", f"a{k}", "v") for k in range(5)] + [("2", "a", "v")]
    p = preview([table(rows)], Settings(max_attributes_per_request=2))
    assert (p.customers, p.requests, p.pairs) == (2, 4, 6)  # 3 calls for customer 1
    assert dict(p.kinds) == {}
    assert p.counts["valid"] == 6
