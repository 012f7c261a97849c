"""The CSV fast path reads files a block at a time (issue 14): the same tables whatever
the block sizes, the same as the exact (Python csv) reader gives, never the whole file
in memory, and with ``--shard`` only that shard's rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_sync.columns import IntColumn, TextColumn
from bulk_sync.loading import LoadOptions, delimited, load_bytes, load_file
from bulk_sync.models import Table
from bulk_sync.shard import Shard, shard_of

_field = st.sampled_from(["C1", "C2", "a", "é", "", " x ", "a,b", 'say "hi"', "l1\nl2", "r\r\nn"])


def _csv_bytes(
    records: list[tuple[str, str, str]], blank_after: set[int], crlf: bool, final: bool
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(["customer_id", "attribute", "value"])
    end = "\r\n" if crlf else "\n"
    for k, record in enumerate(records):
        writer.writerow(record)
        if k in blank_after:
            out.write(end)
    text = out.getvalue()
    if not final:
        text = text[: -len(end)]
    return text.encode("utf-8")


def _columns(t: Table) -> tuple[list[int], list[str], list[str], list[str], tuple[object, ...]]:
    return (
        list(t.rows),
        list(t.customer_ids),
        list(t.attributes),
        list(t.values),
        t.defects,
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(st.tuples(_field, _field, _field), max_size=25),
    blank_after=st.sets(st.integers(0, 24), max_size=3),
    crlf=st.booleans(),
    final=st.booleans(),
)
def test_any_block_size_gives_the_tables_of_the_exact_reader(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    records: list[tuple[str, str, str]],
    blank_after: set[int],
    crlf: bool,
    final: bool,
) -> None:
    data = _csv_bytes(records, blank_after, crlf, final)
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    whole = load_bytes(data, "in.csv")
    with monkeypatch.context() as m:
        m.setattr(delimited, "_BLOCK", 7)
        m.setattr(delimited, "_ARROW_BLOCK", 512)
        m.setattr(delimited, "_WHOLE_READ", 0)
        streamed = load_file(path)
    exact = delimited._read_python_csv(data.decode("utf-8"), ",", "in.csv", LoadOptions(), "")
    assert _columns(streamed[0]) == _columns(whole[0]) == _columns(exact)


def test_a_well_formed_file_is_never_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.csv"
    rows = [f"C{k // 10},attr_{k % 10},value {k}\n" for k in range(20_000)]
    path.write_text("customer_id,attribute,value\n" + "".join(rows), encoding="utf-8")

    def whole(self: object) -> bytes:
        raise AssertionError("the fast path read the whole file")

    monkeypatch.setattr(delimited._Source, "read_all", whole)
    monkeypatch.setattr(delimited, "_WHOLE_READ", 0)  # files this small are read at once
    monkeypatch.setattr(delimited, "_BLOCK", 4096)
    monkeypatch.setattr(delimited, "_ARROW_BLOCK", 8192)
    (table,) = load_file(path)
    assert len(table) == 20_000
    assert isinstance(table.customer_ids, TextColumn)  # Arrow strings, not Python ones
    assert table.rows == range(2, 20_002)
    assert table.values[19_999] == "value 19999"


def test_blank_lines_give_true_row_numbers_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = ["customer_id,attribute,value"]
    for k in range(3000):
        lines.append(f"C{k},a,{k}")
        if k % 7 == 0:
            lines.append("")
    path = tmp_path / "gaps.csv"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    monkeypatch.setattr(delimited, "_BLOCK", 1000)
    monkeypatch.setattr(delimited, "_ARROW_BLOCK", 2048)
    monkeypatch.setattr(delimited, "_WHOLE_READ", 0)
    (table,) = load_file(path)
    assert isinstance(table.rows, IntColumn)
    expected = [n for n, line in enumerate(lines, 1) if line][1:]
    assert list(table.rows) == expected


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_shard_keeps_only_its_customers_rows_with_their_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    records = [(f"C{k % 97}", f"a{k % 5}", f"v{k}") for k in range(2000)]
    if kind == "csv":
        path = tmp_path / "in.csv"
        path.write_bytes(_csv_bytes(records, {10, 500}, crlf=False, final=True))
        monkeypatch.setattr(delimited, "_ARROW_BLOCK", 4096)
    else:
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.append(["customer_id", "attribute", "value"])
        for r in records:
            ws.append(list(r))
        path = tmp_path / "in.xlsx"
        wb.save(path)
    (everything,) = load_file(path)
    shard = Shard(2, 3)
    (mine,) = load_file(path, LoadOptions(shard=shard))
    expected = [
        (n, c, a, v)
        for n, c, a, v in zip(
            everything.rows, everything.customer_ids, everything.attributes,
            everything.values, strict=True,
        )
        if shard_of(c, 3) == 2
    ]  # fmt: skip
    got = list(zip(mine.rows, mine.customer_ids, mine.attributes, mine.values, strict=True))
    assert got == expected
    assert 0 < len(got) < len(records)
