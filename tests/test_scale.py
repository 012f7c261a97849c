"""Issue 14 at the level of a whole run: a shard loads only its share; a resume keeps
what was accepted as 16-byte keys and answers as the set of triples did."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest

from bulk_sync import runner
from bulk_sync.errors import CustomerNotFound
from bulk_sync.models import Table
from bulk_sync.report import accepted_keys, accepted_rows
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


class _SomeFail:
    """Accepts every customer but those whose id ends in 7 (404)."""

    async def set_customer_attributes(
        self, customer_id: str, attributes: Mapping[str, str]
    ) -> dict[str, str]:
        if customer_id.endswith("7"):
            raise CustomerNotFound("no such customer", status=404, customer_id=customer_id)
        return dict(attributes)


def test_resume_keys_answer_as_the_set_of_accepted_triples(tmp_path: Path) -> None:
    rows = [(f"C{k}", f"a{k % 3}", f"v{k}") for k in range(300)] + [("C1", "b", "x,\ny")]
    src = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "r.csv"
    asyncio.run(sync_async([src], report=report, sender=_SomeFail()))
    done = accepted_rows(report)
    keys = accepted_keys(report)
    assert 0 < len(done) < len(rows)
    assert len(keys) == len(done)
    probes = [*rows, ("C1", "b", "x,\ny "), ("C10", "a1", "v10"), ("C1", "0", "v1"), ("", "", "")]
    assert [t in keys for t in probes] == [t in done for t in probes]
    assert list(keys.contains(probes)) == [t in done for t in probes]
