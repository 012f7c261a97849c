"""The quick paths of workbook reading (issue 15 A7: formats cost little) give exactly what
the rules give: batches of cells against one cell at a time, the pattern scan of a sheet's
XML against a careful read, the reader in a thread against the reader alone."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_sync.cells import (
    cell_to_str,
    column_texts,
    fast_moment,
    fast_moments,
    fast_sent,
    fast_sent_many,
    formatted_cell,
)
from bulk_sync.columns import TextColumn
from bulk_sync.loading import LoadOptions, load_file, ooxml
from bulk_sync.loading import workbook as workbook_module
from bulk_sync.loading.sandbox import ReaderDied
from bulk_sync.numfmt import changes_numbers

HEADER = ["customer_id", "attribute", "value"]

CODES = [
    "00000000",
    '"C-"0000',
    "0000;-0000",
    "0%",
    "0.0%",
    "0.00%",
    "0.000%",
    "0%;#,##0.00",
    "dd/mm/yyyy",
    "yyyy-mm-dd hh:mm:ss",
    "hh:mm",
    "hh:mm:ss.00",
    "[h]:mm:ss",
    "#,##0.00",
    "0",
    "0.00E+00",
    "# ?/?",
    "[=0]?;[<4.17][hh]:mm:ss;[hh]:mm",
    "00000;#,##0.00",
    "General",
]

numbers = st.one_of(
    st.floats(),
    st.integers(-(10**6), 10**9).map(float),
    st.integers(0, 10**7).map(lambda k: k / 1000),
    st.integers(0, 10**6).map(lambda k: (k + 0.5) / 10**4),  # halves: rounding ties
    st.sampled_from([0.0, -0.0, 0.125, 0.005, 1.005, 2.675, 45000.5, 60.5, 61.0, 1e15]),
)
moments = st.datetimes(min_value=dt.datetime(1900, 3, 1), max_value=dt.datetime(9999, 12, 30))
cells = st.one_of(
    numbers,
    moments,
    st.dates(),
    st.times(),
    st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=5000)),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.integers(-(10**20), 10**20),
)


@settings(deadline=None)
@given(st.lists(cells, max_size=40))
def test_a_column_reads_as_each_of_its_cells_does(column: list[Any]) -> None:
    assert column_texts(column) == [cell_to_str(c) for c in column]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CODES), st.lists(numbers, max_size=30), st.booleans())
def test_a_batch_of_numbers_reads_as_each_number_does(
    code: str, values: list[float], date1904: bool
) -> None:
    many = fast_sent_many(code, date1904)
    one = fast_sent(code, date1904)
    assert (many is None) == (one is None)
    if many is None or one is None:
        return
    texts = many(values)
    for value, text in zip(values, texts, strict=True):
        assert text == one(value)
        if text is not None:
            assert text == formatted_cell(value, code, date1904=date1904).sent


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["0%", "0.0%", "0.00%", "0.000%", "0.0%;-0.0%"]), numbers)
def test_quick_percentages_round_half_up_as_the_rules_do(code: str, value: float) -> None:
    quick = fast_sent(code)
    assert quick is not None
    sent = quick(value)
    if sent is not None:
        assert sent == formatted_cell(value, code).sent


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(CODES),
    st.one_of(moments, moments.map(lambda m: m.replace(hour=23, minute=59, second=59))),
)
def test_date_times_the_reader_made_read_as_the_rules_say(code: str, moment: dt.datetime) -> None:
    sent = fast_moment(code)(moment)
    if sent is not None:
        assert sent == formatted_cell(moment, code).sent


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(CODES),
    st.lists(
        st.one_of(moments, moments.map(lambda m: m.replace(hour=23, minute=59, second=59))),
        max_size=20,
    ),
)
def test_a_batch_of_date_times_reads_as_each_does(code: str, batch: list[dt.datetime]) -> None:
    assert fast_moments(code)(batch) == [fast_moment(code)(m) for m in batch]


def _one_cell_at_a_time(
    cells: list[Any], codes: dict[str, Any], rows: list[int], date1904: bool, as_shown: bool
) -> tuple[list[str], tuple[int, str, str] | None]:
    """The rules, a cell at a time: each cell by its format, or as General; the notice is
    the first cell (formats in order, then rows) whose text differs from what is shown."""
    column = [cell_to_str(c) for c in cells]
    notice = None
    for code, wanted in codes.items():
        changes = as_shown or changes_numbers(code)
        for k in sorted(rows.index(r) for r in wanted.tolist() if r in rows):
            value = cells[k]
            if type(value) is str:
                continue
            text = formatted_cell(value, code, date1904=date1904, as_shown=as_shown)
            if changes:
                column[k] = text.sent
            if text.shown and notice is None:
                notice = (rows[k], text.sent, text.shown)
    return column, notice


@settings(max_examples=300, deadline=None)
@given(st.data(), st.booleans(), st.booleans(), st.booleans())
def test_a_formatted_column_reads_as_its_cells_one_at_a_time(
    data: st.DataObject, sparse: bool, date1904: bool, as_shown: bool
) -> None:
    column = data.draw(st.lists(cells, min_size=1, max_size=40))
    n = len(column)
    if sparse:
        rows: Any = sorted(data.draw(st.sets(st.integers(2, 200), min_size=n, max_size=n)))
    else:
        rows = range(2, 2 + n)
    codes: dict[str, list[int]] = {}
    for r in rows:
        code = data.draw(st.sampled_from([None, *CODES]))
        if code is not None:
            codes.setdefault(code, []).append(r)
    formats = {c: np.array(v) for c, v in codes.items()}
    got = workbook_module._formatted_column(list(column), formats, rows, date1904, as_shown)
    assert got == _one_cell_at_a_time(column, formats, list(rows), date1904, as_shown)


# ----------------------------------------------------------------------------- sheet XML


def _sheet(cells: list[str]) -> bytes:
    body = "".join(f'<row r="{r}">{c}</row>' for r, c in enumerate(cells, start=1))
    return (
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetPr><outlinePr/></sheetPr><sheetData>{body}</sheetData></worksheet>"
    ).encode()


STYLES: list[str | None] = [None, "00000000", "0.0%", None, "dd/mm/yyyy"] + [None] * 7 + ["0%"]


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C", "AA", "AB"]),
            st.sampled_from([None, 0, 1, 2, 3, 4, 12]),
            st.sampled_from(["rst", "rts", "rs", "r", "rcs", "srt"]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_the_pattern_scan_of_styles_finds_what_a_careful_read_does(
    layout: list[tuple[str, int | None, str]],
) -> None:
    cells = []
    expected: dict[int, dict[str, list[int]]] = {}
    for row, (letters, style, order) in enumerate(layout, start=1):
        attrs = {"r": f' r="{letters}{row}"', "t": ' t="n"', "c": ' cm="1"'}
        attrs["s"] = "" if style is None else f' s="{style}"'
        cells.append(f"<c{''.join(attrs[a] for a in order)}><v>{row}</v></c>")
        code = STYLES[style] if style is not None else None
        if code is not None and "s" in order:
            column = ooxml.column_index(letters)
            expected.setdefault(column, {}).setdefault(code, []).append(row)
    wanted = [0, 2, 26, 27]
    found = ooxml.cell_styles(_sheet(cells), wanted, STYLES)
    got = {j: {c: sorted(r.tolist()) for c, r in codes.items()} for j, codes in found.items()}
    assert got == {j: v for j, v in expected.items() if j in wanted}
    # Every column at once (while the reader builds the sheet), in chunks of a few rows
    with pytest.MonkeyPatch.context() as m:
        m.setattr(ooxml, "_CHUNK", 100)
        every = ooxml.styled_cells(_sheet(cells), STYLES)
    if every is not None:
        ahead = ooxml.styles_by_column(every, wanted, STYLES)
        assert {j: {c: sorted(r.tolist()) for c, r in v.items()} for j, v in ahead.items()} == got


def test_the_extent_of_a_sheet_sees_a_far_cell_between_ordinary_ones() -> None:
    rows = [f'<c r="A{r}"><v>1</v></c><c r="C{r}"><v>1</v></c>' for r in range(1, 30_001)]
    middle = _sheet([*rows[:15_000], '<c r="Q15001"><v>1</v></c>', *rows[15_001:]])
    assert ooxml.sheet_extent(middle) == (30_000, 17)
    wide = _sheet([*rows[:15_000], '<c r="XFD15001"><v>1</v></c>', *rows[15_001:]])
    assert ooxml.sheet_extent(wide) == (30_000, 16_384)
    assert ooxml.sheet_extent(_sheet(rows)) == (30_000, 3)
    assert ooxml.cell_count(_sheet(rows)) == 60_000


def test_rich_text_runs_are_found_by_one_pass_whatever_their_prefix() -> None:
    plain = _sheet(['<c r="A1" t="inlineStr"><is><t>x</t></is></c>'])
    assert not ooxml.runs_lose_spaces(plain)  # "r>" of </sheetPr> is no run
    run = (
        '<c r="A1" t="inlineStr"><is><{p}r><{p}t>a </{p}t></{p}r>'
        "<{p}r><{p}t>b</{p}t></{p}r></is></c>"
    )
    assert ooxml.runs_lose_spaces(_sheet([run.format(p="")]))
    assert ooxml.runs_lose_spaces(_sheet([run.format(p="x:")]))


# ----------------------------------------------------------------------------- the child


def _workbook(tmp_path: Path, rows: list[list[Any]], formats: dict[str, str]) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in [HEADER, *rows]:
        ws.append(row)
    for ref, code in formats.items():
        ws[ref].number_format = code
    path = tmp_path / "book.xlsx"
    wb.save(path)
    return path


def test_workbook_tables_come_back_from_the_child_as_arrow_columns(tmp_path: Path) -> None:
    path = _workbook(
        tmp_path,
        [["c1", "a", 48929], [None, None, None], ["c2", "b", 0.5]],
        {"A2": "00000000", "C4": "0%"},
    )
    (table,) = load_file(path)
    assert isinstance(table.customer_ids, TextColumn)
    assert isinstance(table.values, TextColumn)
    assert list(table.customer_ids) == ["c1", "c2"]
    assert list(table.values) == ["48929", "50%"]
    assert list(table.rows) == [2, 4]


def test_a_sheet_read_in_a_thread_reads_as_one_read_alone(tmp_path: Path) -> None:
    rows = [[f"c{k:03d}", f"a{k % 3}", k / 7] for k in range(300)]
    path = _workbook(tmp_path, rows, {f"C{r}": "0.0%" for r in range(2, 300, 3)})
    options = LoadOptions()
    alone = workbook_module._read_workbook(path, "XLSX", options, path.name, overlap=False)
    both = workbook_module._read_workbook(path, "XLSX", options, path.name, overlap=True)
    assert [list(t.values) for t in both] == [list(t.values) for t in alone]
    assert [list(t.customer_ids) for t in both] == [list(t.customer_ids) for t in alone]


@pytest.mark.parametrize(("timed_out", "reads"), [(False, 2), (True, 1)])
def test_a_reader_that_died_is_tried_once_more_unless_it_ran_out_of_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, timed_out: bool, reads: int
) -> None:
    path = _workbook(tmp_path, [["c1", "a", 1]], {})
    calls: list[int] = []

    def dying(work: Any, fmt: str, source: str, size: int = 0) -> Any:
        calls.append(1)
        raise ReaderDied("the file is damaged", source=source, timed_out=timed_out)

    monkeypatch.setattr(workbook_module, "isolated", dying)
    with pytest.raises(ReaderDied):
        load_file(path)
    assert len(calls) == reads


def test_the_xml_of_a_zip_part_is_read_once_per_sheet(tmp_path: Path) -> None:
    path = _workbook(tmp_path, [[48929, "a", "x"]], {"A2": "00000000"})
    reads: list[str] = []
    real = zipfile.ZipFile.read

    def counting(self: zipfile.ZipFile, name: Any, pwd: Any = None) -> bytes:
        reads.append(str(name))
        return real(self, name, pwd)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(zipfile.ZipFile, "read", counting)
        (table,) = workbook_module._read_workbook(path, "XLSX", LoadOptions(), path.name)
    assert list(table.customer_ids) == ["00048929"]
    assert sum("sheet1" in n for n in reads) == 1


@settings(deadline=None)
@given(st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=6)))
def test_texts_become_the_arrow_array_pyarrow_would_make(texts: list[str]) -> None:
    import pyarrow as pa

    column = workbook_module._text_column(texts)
    column.arrow.validate(full=True)
    assert column.combined().equals(pa.array(texts, pa.string()))
