"""Issue 14 at the level of a whole run: a shard loads only its share."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bulk_sync import runner
from bulk_sync.models import Table
from bulk_sync.runner import Shard, shard_of, sync_async
from helpers import report_lines, write_csv


def test_a_shard_run_loads_only_its_customers_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [(f"C{k % 50}", f"a{k % 7}", f"v{k}") for k in range(700)]
    src = write_csv(tmp_path / "in.csv", rows)
    loaded: list[Table] = []
    real_load = runner.load

    def spy(*args: object, **kwargs: object) -> list[Table]:
        tables = real_load(*args, **kwargs)  # type: ignore[arg-type]
        loaded.extend(tables)
        return tables

    monkeypatch.setattr(runner, "load", spy)
    report = tmp_path / "r.csv"
    summary = asyncio.run(sync_async([src], report=report, dry_run=True, shard=Shard(1, 3)))
    mine = [r for r in rows if shard_of(r[0], 3) == 1]
    assert sum(len(t) for t in loaded) == len(mine)  # the others never left the reader
    assert summary.rows == len(mine)
    assert [(r["customer_id"], r["attribute"], r["value"]) for r in report_lines(report)] == mine
