"""Data frames in and out (issue 14): pandas DataFrames, pyarrow tables and any object
with ``__arrow_c_stream__`` go to the API like a file; ``plan_frame`` returns the
validated plan as a pandas DataFrame."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import bulk_sync
from bulk_sync.client import Client
from bulk_sync.config import Settings
from bulk_sync.emulator import EmulatorSettings, running_emulator
from bulk_sync.errors import ConfigError, InputError
from bulk_sync.frames import Frame
from bulk_sync.runner import Shard, shard_of
from helpers import report_lines, write_csv

TOKEN = "7" * 64


class StreamOnly:
    """Exposes nothing but the Arrow PyCapsule stream interface (as polars, DuckDB...)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)


def _report(tmp_path: Path, inputs: Any, **kwargs: Any) -> list[dict[str, str]]:
    report = tmp_path / "r.csv"
    bulk_sync.sync(inputs, report=report, dry_run=True, overwrite=True, **kwargs)
    return report_lines(report)


def _shape(lines: list[dict[str, str]]) -> list[tuple[str, ...]]:
    return [
        (r["source"], r["sheet"], r["row"], r["customer_id"], r["attribute"], r["value"],
         r["status"])
        for r in lines
    ]  # fmt: skip


ROWS = {
    "customer_id": ["C1", "C1", "C2", " C3 "],
    "attribute": ["tier", "city", "tier", "tier"],
    "value": ["gold", "Lisboa", "", "silver"],
}
EXPECTED = [
    ("frame", "", "0", "C1", "tier", "gold", "valid"),
    ("frame", "", "1", "C1", "city", "Lisboa", "valid"),
    ("frame", "", "2", "C2", "tier", "", "invalid"),
    ("frame", "", "3", "C3", "tier", "silver", "valid"),
]


def test_a_pandas_frame_is_read_like_a_file_with_positions_as_rows(tmp_path: Path) -> None:
    assert _shape(_report(tmp_path, pd.DataFrame(ROWS))) == EXPECTED


def test_a_pandas_integer_index_gives_the_row_numbers(tmp_path: Path) -> None:
    df = pd.DataFrame(ROWS, index=[100, 7, 42, 3])
    assert [r["row"] for r in _report(tmp_path, df)] == ["100", "7", "42", "3"]
    labelled = pd.DataFrame(ROWS, index=["a", "b", "c", "d"])  # not numbers: positions
    assert [r["row"] for r in _report(tmp_path, labelled)] == ["0", "1", "2", "3"]


def test_a_pyarrow_table_and_a_bare_arrow_stream_read_the_same(tmp_path: Path) -> None:
    table = pa.table(ROWS)
    assert _shape(_report(tmp_path, table)) == EXPECTED
    assert _shape(_report(tmp_path, StreamOnly(table))) == EXPECTED


def test_columns_are_matched_like_headers_or_mapped(tmp_path: Path) -> None:
    renamed = pd.DataFrame({"Customer ID": ROWS["customer_id"], "ATTRIBUTE": ROWS["attribute"],
                            "value": ROWS["value"], "other": [1, 2, 3, 4]})  # fmt: skip
    assert _shape(_report(tmp_path, renamed)) == EXPECTED
    own = pa.table({"id": ROWS["customer_id"], "key": ROWS["attribute"], "v": ROWS["value"]})
    mapping = {"customer_id": "id", "attribute": "key", "value": "v"}
    assert _shape(_report(tmp_path, Frame(own, columns=mapping))) == EXPECTED
    assert _shape(_report(tmp_path, own, settings=Settings(columns=mapping))) == EXPECTED


def test_cells_of_other_types_become_text_by_the_cell_rules(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "customer_id": [12345, 2, 3, 4, 5, 6],
            "attribute": ["n", "x", "d", "t", "b", "missing"],
            "value": [7.0, 3.5, dt.date(2024, 5, 1), dt.datetime(2024, 5, 1, 13, 45, 10), True,
                      math.nan],
        }
    )  # fmt: skip
    lines = _report(tmp_path, df)
    assert [(r["customer_id"], r["value"], r["status"]) for r in lines] == [
        ("12345", "7", "valid"),
        ("2", "3.5", "valid"),
        ("3", "2024-05-01", "valid"),
        ("4", "2024-05-01T13:45:10", "valid"),
        ("5", "true", "valid"),
        ("6", "", "invalid"),
    ]
    typed = pa.table({"customer_id": pa.array([1, 2], pa.int64()), "attribute": ["a", "b"],
                      "value": pa.array([1.25, None], pa.float64())})  # fmt: skip
    assert [(r["customer_id"], r["value"]) for r in _report(tmp_path, typed)] == [
        ("1", "1.25"),
        ("2", ""),
    ]


def test_a_frame_without_the_columns_is_refused_naming_it(tmp_path: Path) -> None:
    df = pd.DataFrame({"customer_id": [1], "attribute": ["a"], "val": ["x"]})
    with pytest.raises(InputError, match=r"crm.*missing column 'value'.*'val'"):
        _report(tmp_path, Frame(df, name="crm"))
    with pytest.raises(ConfigError, match="melt"):
        _report(tmp_path, pd.DataFrame(ROWS), settings=Settings(wide=True))


def test_text_that_is_not_unicode_is_refused(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"customer_id": ["C1"], "attribute": ["a"], "value": ["bad \udce9"]}, dtype=object
    )
    with pytest.raises(InputError, match="not valid Unicode"):
        _report(tmp_path, df)


def test_frames_and_files_mix_and_several_frames_are_numbered(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "more.csv", [("C9", "a", "b")])
    lines = _report(tmp_path, [pd.DataFrame(ROWS), src, pa.table(ROWS)])
    assert [r["source"] for r in lines] == ["frame 1"] * 4 + ["more.csv"] + ["frame 2"] * 4
    named = _report(tmp_path, [Frame(pd.DataFrame(ROWS), name="crm export")])
    assert {r["source"] for r in named} == {"crm export"}


def test_a_shard_of_a_frame_keeps_its_customers_rows(tmp_path: Path) -> None:
    df = pd.DataFrame({"customer_id": [f"C{k}" for k in range(60)], "attribute": ["a"] * 60,
                       "value": [f"v{k}" for k in range(60)]})  # fmt: skip
    lines = _report(tmp_path, df, shard=Shard(2, 3))
    expected = [str(k) for k in range(60) if shard_of(f"C{k}", 3) == 2]
    assert [r["row"] for r in lines] == expected


def test_a_dataframe_goes_to_the_api_over_http(tmp_path: Path) -> None:
    df = pd.DataFrame({"customer_id": ["C1", "C1", "C2"], "attribute": ["tier", "city", "tier"],
                       "value": ["gold", "Lisboa", "silver"]})  # fmt: skip

    async def run() -> tuple[Any, dict[str, dict[str, str]]]:
        emulator = EmulatorSettings(port=0, token=TOKEN)
        async with running_emulator(emulator) as emu, Client(emu.base_url, TOKEN) as client:
            summary = await bulk_sync.sync_async(df, report=tmp_path / "r.csv", sender=client)
            return summary, {c: dict(emu.state.customers[c]) for c in ("C1", "C2")}

    summary, stored = asyncio.run(run())
    assert summary.exit_code == 0
    assert summary.counts["ok"] == 3
    assert stored == {"C1": {"tier": "gold", "city": "Lisboa"}, "C2": {"tier": "silver"}}


def test_plan_frame_returns_the_validated_plan_one_row_per_input_row() -> None:
    df = pd.DataFrame({"customer_id": ["C1", "C1", "", "C2"], "attribute": ["a", "a", "b", "c"],
                       "value": ["1", "2", "x", "=1+1"]})  # fmt: skip
    planned = bulk_sync.plan_frame(df)
    assert isinstance(planned, pd.DataFrame)
    assert list(planned.columns) == [
        "source", "sheet", "row", "customer_id", "attribute", "value", "status",
        "http_status", "error", "attempts",
    ]  # fmt: skip
    assert planned["status"].tolist() == ["invalid", "invalid", "invalid", "valid"]
    assert planned["row"].tolist() == [0, 1, 2, 3]
    assert "different values" in planned["error"][0]
    assert "customer id is empty" in planned["error"][2]
    assert planned["value"][3] == "=1+1"  # as it is: a frame is no spreadsheet
    assert planned["http_status"].isna().all()


def test_bulk_sync_runs_without_pandas_installed(tmp_path: Path) -> None:
    """pandas is an extra: files and Arrow tables need it not; plan_frame says to install it."""
    import subprocess
    import sys

    src = write_csv(tmp_path / "in.csv", [("C1", "a", "b"), ("C2", "a", "")])
    code = f"""
import sys
sys.modules["pandas"] = None  # as if it were not installed
import pyarrow as pa
import bulk_sync
s = bulk_sync.sync([{str(src)!r}], report={str(tmp_path / "a.csv")!r}, dry_run=True)
t = bulk_sync.sync(pa.table({{"customer_id": ["C1"], "attribute": ["a"], "value": ["b"]}}),
                   report={str(tmp_path / "b.csv")!r}, dry_run=True)
try:
    bulk_sync.plan_frame(pa.table({{"customer_id": ["C1"], "attribute": ["a"], "value": ["b"]}}))
except ImportError as e:
    print("plan_frame:", e)
print(s.counts["valid"], s.counts["invalid"], t.counts["valid"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'bulk-sync[pandas]'" in out.stdout
    assert out.stdout.strip().endswith("1 1 1")
