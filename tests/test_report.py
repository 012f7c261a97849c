"""The results report: CSV/XLSX writers and readers, formula neutralization, the journal."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_sync import report as report_module
from bulk_sync.errors import InputError, UsageError
from bulk_sync.models import REPORT_COLUMNS, ReportRow, Status
from bulk_sync.report import (
    Journal,
    accepted_rows,
    escape,
    is_dangerous,
    journal_path_for,
    read_report,
    unescape,
    write_report,
)

Line = tuple[str, str, int, str, str, str, Status, int | None, str, int]

TRICKY_VALUES = [
    "ação, café",
    'he said "hi"',
    "line one\nline two",
    "carriage\rreturn",
    "crlf\r\nhere",
    "=cmd|' /C calc'!A0",
    "'quoted",
    "''=double",
    "-5",
    "+351 912",
    "+351",
    "-3.5",
    "-1+2",
    "@SUM(A1)",
    "\tleading tab",
    "00123",
    "NA",
    "",
    "#N/A",
    "_x0041_",
    "nul\x00and\x01bell",
    " padded ",
]


def lines_with(values: Sequence[str]) -> list[Line]:
    out: list[Line] = []
    for k, v in enumerate(values):
        out.append(
            (
                "in.csv" if k % 2 else "=book.xlsx",
                "" if k % 2 else "Folha 1",
                k + 2,
                f"C{k}" if k % 3 else v,
                f"attr{k}" if k % 3 != 1 else v,
                v,
                list(Status)[k % len(Status)],
                None if k % 4 == 0 else 200 + k,
                v if k % 5 == 0 else "",
                k % 3,
            )
        )
    return out


def as_rows(lines: Sequence[Line]) -> list[ReportRow]:
    return [ReportRow(*line) for line in lines]


# -- formula neutralization ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("+A1", "'+A1"),
        ("-1+2", "'-1+2"),
        ("+351 912", "'+351 912"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("\nx", "'\nx"),
        ("-", "'-"),
        ("'=x", "''=x"),
        ("-5", "-5"),
        ("+351", "+351"),
        ("-3.5", "-3.5"),
        ("1e-3", "1e-3"),
        ("'quoted", "'quoted"),
        ("plain", "plain"),
        ("", ""),
        ("a=b", "a=b"),
        ("-٣", "'-٣"),
    ],
)
def test_escape_neutralizes_only_what_excel_could_run(value: str, escaped: str) -> None:
    assert escape(value) == escaped
    assert unescape(escaped) == value


def test_plain_numbers_are_not_dangerous() -> None:
    assert not is_dangerous("-5")
    assert not is_dangerous("+351")
    assert is_dangerous("=1")
    assert is_dangerous("-1-1")


@given(st.text())
def test_escape_and_unescape_are_inverse(value: str) -> None:
    assert unescape(escape(value)) == value


@given(st.text(alphabet=st.sampled_from("'=+-@\t1a. ")))
def test_escape_round_trips_apostrophe_and_formula_heavy_text(value: str) -> None:
    escaped = escape(value)
    assert unescape(escaped) == value
    assert not is_dangerous(escaped)


# -- CSV ------------------------------------------------------------------------------------


def test_csv_round_trip_keeps_every_value_exactly(tmp_path: Path) -> None:
    lines = lines_with(TRICKY_VALUES)
    path = tmp_path / "out.csv"
    write_report(path, lines)
    assert list(read_report(path)) == as_rows(lines)


def test_csv_is_utf8_without_bom_with_the_exact_header_and_neutralized_cells(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.csv"
    write_report(
        path,
        [
            ("in.csv", "", 2, "C1", "phone", "+351 912", Status.OK, 204, "", 1),
            ("in.csv", "", 3, "C1", "cmd", "=cmd|' /C calc'!A0", "failed", 422, "@bad", 2),
            ("in.csv", "", 4, "C2", "n", "-5", Status.INVALID, None, "value is empty", 0),
        ],
    )
    data = path.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8").split("\r\n") == [
        ",".join(REPORT_COLUMNS),
        "in.csv,,2,C1,phone,'+351 912,ok,204,,1",
        "in.csv,,3,C1,cmd,'=cmd|' /C calc'!A0,failed,422,'@bad,2",
        "in.csv,,4,C2,n,-5,invalid,,value is empty,0",
        "",
    ]


def test_csv_round_trip_of_a_value_larger_than_the_csv_module_default_limit(
    tmp_path: Path,
) -> None:
    lines = lines_with(["x" * 300_000])
    path = tmp_path / "big.csv"
    write_report(path, lines)
    assert list(read_report(path)) == as_rows(lines)


def test_csv_reader_accepts_a_bom_semicolons_and_keeps_text_as_text(tmp_path: Path) -> None:
    # What Excel writes when a user re-saves the report as "CSV UTF-8" in a ';' locale.
    path = tmp_path / "resaved.csv"
    body = ";".join(REPORT_COLUMNS) + "\r\n" + "a.csv;;7;00123;NA;=x;OK;;;1\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    assert list(read_report(path)) == [
        ReportRow("a.csv", "", 7, "00123", "NA", "=x", Status.OK, None, "", 1)
    ]


def test_csv_reader_accepts_windows_1252(tmp_path: Path) -> None:
    path = tmp_path / "ansi.csv"
    body = ",".join(REPORT_COLUMNS) + "\r\nfé.csv,,2,C1,cidade,São Paulo,ok,204,,1\r\n"
    path.write_bytes(body.encode("cp1252"))
    (row,) = read_report(path)
    assert (row.source, row.value) == ("fé.csv", "São Paulo")


def test_csv_reader_accepts_reordered_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    header = ["note", *reversed(REPORT_COLUMNS)]
    values = ["x", "1", "", "204", "ok", "v", "a", "C1", "2", "", "in.csv"]
    path.write_text(",".join(header) + "\n" + ",".join(values) + "\n", encoding="utf-8")
    assert list(read_report(path)) == [
        ReportRow("in.csv", "", 2, "C1", "a", "v", Status.OK, 204, "", 1)
    ]


def test_reading_a_report_with_missing_columns_names_them(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("source,sheet,row,customer_id,attribute,value\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"missing column.*status, http_status, error, attempts"):
        list(read_report(path))


def test_reading_a_bad_status_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        ",".join(REPORT_COLUMNS) + "\na,,2,C,a,v,ok,,,1\na,,3,C,a,v,great,,,1\n", encoding="utf-8"
    )
    with pytest.raises(InputError, match=r"bad\.csv, row 3, column 'status': unknown status"):
        list(read_report(path))


def test_reading_a_missing_file_or_unknown_suffix_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(read_report(tmp_path / "nope.csv"))
    (tmp_path / "r.txt").write_text("x")
    with pytest.raises(InputError, match=r"expected \.csv, \.xlsx or \.jsonl"):
        list(read_report(tmp_path / "r.txt"))


def test_unknown_report_suffix_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.csv or \.xlsx"):
        write_report(tmp_path / "out.txt", [])
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_report(path, lines_with(["old"]))
    before = path.read_bytes()

    def failing() -> Iterator[Line]:
        yield from lines_with(["new", "lines"])
        raise RuntimeError("crash while producing lines")

    with pytest.raises(RuntimeError):
        write_report(path, failing())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]

    write_report(path, lines_with(["new"]))
    assert [r.value for r in read_report(path)] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_new_report_gets_ordinary_file_permissions(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    old = os.umask(0o022)
    try:
        write_report(path, [])
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


_text = st.text(max_size=20)
_line = st.tuples(
    _text,
    _text,
    st.integers(min_value=1, max_value=2_000_000),
    _text,
    _text,
    _text,
    st.sampled_from(list(Status)),
    st.none() | st.integers(min_value=100, max_value=599),
    _text,
    st.integers(min_value=0, max_value=50),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_line, max_size=8))
def test_any_lines_survive_a_csv_round_trip(tmp_path: Path, lines: list[Line]) -> None:
    path = tmp_path / "prop.csv"
    write_report(path, lines)
    assert list(read_report(path)) == as_rows(lines)


# -- XLSX -----------------------------------------------------------------------------------


def test_xlsx_round_trip_keeps_every_value_exactly(tmp_path: Path) -> None:
    lines = lines_with(TRICKY_VALUES)
    path = tmp_path / "out.xlsx"
    write_report(path, lines, summary={"rows": len(lines)})
    assert list(read_report(path)) == as_rows(lines)


def test_xlsx_has_frozen_bold_header_filter_highlights_and_no_formula_cells(
    tmp_path: Path,
) -> None:
    lines = lines_with(TRICKY_VALUES)
    path = tmp_path / "out.xlsx"
    write_report(path, lines, summary={"rows": 22, "dry_run": False, "inputs": ["a.csv"]})
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["report", "summary"]
    ws = wb["report"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:J{len(lines) + 1}"
    assert [c.value for c in ws[1]] == list(REPORT_COLUMNS)
    assert all(c.font.bold for c in ws[1])
    rules = [
        (str(cf.sqref), rule.formula[0]) for cf in ws.conditional_formatting for rule in cf.rules
    ]
    assert (f"A2:J{len(lines) + 1}", '$G2="invalid"') in rules
    assert (f"A2:J{len(lines) + 1}", '$G2="failed"') in rules
    numeric = {REPORT_COLUMNS.index(c) for c in ("row", "http_status", "attempts")}
    for row in ws.iter_rows(min_row=2):
        for k, cell in enumerate(row):
            if cell.value is None:
                continue
            assert cell.data_type == ("n" if k in numeric else "s"), (cell.coordinate, cell.value)
    assert ws.column_dimensions["I"].width > ws.column_dimensions["C"].width
    summary = [tuple(c.value for c in r) for r in wb["summary"].iter_rows()]
    assert summary == [
        ("key", "value"),
        ("rows", 22),
        ("dry_run", "false"),
        ("inputs", '["a.csv"]'),
    ]


def test_xlsx_continues_on_further_sheets_past_the_row_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_module, "_XL_MAX_ROWS", 4)  # header + 3 lines per sheet
    lines = lines_with([f"v{k}" for k in range(8)])
    path = tmp_path / "big.xlsx"
    write_report(path, lines)
    wb = openpyxl.load_workbook(path, read_only=True)
    assert wb.sheetnames == ["report", "report 2", "report 3", "summary"]
    wb.close()
    assert list(read_report(path)) == as_rows(lines)


def test_an_empty_xlsx_report_has_the_header_only(tmp_path: Path) -> None:
    path = tmp_path / "empty.xlsx"
    write_report(path, [])
    assert list(read_report(path)) == []


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_line, max_size=5))
def test_any_lines_survive_an_xlsx_round_trip(tmp_path: Path, lines: list[Line]) -> None:
    path = tmp_path / "prop.xlsx"
    write_report(path, lines)
    assert list(read_report(path)) == as_rows(lines)


# -- journal --------------------------------------------------------------------------------


def test_journal_path_sits_beside_the_report() -> None:
    assert journal_path_for(Path("/r/out.csv")) == Path("/r/out.csv.journal.jsonl")


def test_journal_appends_raw_values_after_a_header_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "out.csv.journal.jsonl"
    lines = lines_with(TRICKY_VALUES)
    journal = Journal.open(path, {"report": "out.csv", "pid": 42})
    journal.append(lines[:5])
    journal.append([])
    journal.append(lines[5:])
    # flushed to the OS at once: readable before close
    assert list(read_report(path)) == as_rows(lines)
    journal.close()
    text = path.read_text(encoding="utf-8").splitlines()
    head = json.loads(text[0])
    assert head["bulk_sync_journal"] == 1
    assert head["report"] == "out.csv"
    assert head["columns"] == list(REPORT_COLUMNS)
    assert json.loads(text[1])[5] == TRICKY_VALUES[0]
    assert json.loads(text[1])[6] == "ok"
    assert len(text) == 1 + len(lines)


def test_journal_fsyncs_at_most_once_per_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    journal = Journal.open(tmp_path / "j.jsonl", clock=lambda: now[0])
    synced.clear()
    line = lines_with(["v"])
    for _ in range(100):
        journal.append(line)
        now[0] += 0.05
    assert 4 <= len(synced) <= 5
    journal.close()
    assert len(synced) in (5, 6)


def test_journal_tolerates_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    lines = lines_with(["a", "b", "c"])
    with Journal.open(path) as journal:
        journal.append(lines)
    with path.open("ab") as f:
        f.write(b'["in.csv","",9,"C9","a","v","o')  # kill -9 mid-write
    assert list(read_report(path)) == as_rows(lines)


def test_journal_with_a_garbled_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal.open(path) as journal:
        journal.append(lines_with(["a"]))
    with path.open("a", encoding="utf-8") as f:
        f.write("garbage\n")
    with Journal.open(path) as journal:
        journal.append(lines_with(["b"]))
    with pytest.raises(InputError, match=r"j\.jsonl, row 3: garbled journal line: 'garbage'"):
        list(read_report(path))


def test_reopening_a_journal_cuts_its_torn_tail_and_keeps_its_header(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    first, second = lines_with(["a"]), lines_with(["b"])
    with Journal.open(path, {"run": 1}) as journal:
        journal.append(first)
    with path.open("ab") as f:
        f.write(b'["torn')
    with Journal.open(path, {"run": 2}) as journal:
        journal.append(second)
    assert list(read_report(path)) == as_rows(first + second)
    assert path.read_text(encoding="utf-8").count("bulk_sync_journal") == 1


def test_a_file_without_the_journal_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps(list(lines_with(["a"])[0])) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="not a bulk_sync journal"):
        list(read_report(path))


# -- accepted_rows --------------------------------------------------------------------------


def line(cid: str, status: Status, error: str = "", value: str = "v") -> Line:
    return ("in.csv", "", 2, cid, "a", value, status, None, error, 1)


def test_accepted_rows_are_ok_rows_and_already_done_skips(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_report(
        path,
        [
            line("ok", Status.OK, value="=1+1"),
            line("resumed", Status.SKIPPED, "already sent (resume)"),
            line("state", Status.SKIPPED, "already synced; unchanged since the last run (state)"),
            line("superseded", Status.SKIPPED, "superseded by row 9 (--on-conflict last)"),
            line("failed", Status.FAILED, "HTTP 500"),
            line("invalid", Status.INVALID, "value is empty"),
            line("valid", Status.VALID),
            line("not_sent", Status.NOT_SENT),
        ],
    )
    assert accepted_rows(path) == {
        ("ok", "a", "=1+1"),
        ("resumed", "a", "v"),
        ("state", "a", "v"),
    }


def test_accepted_rows_read_the_report_and_its_journal_together(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    write_report(path, [line("from_report", Status.OK)])
    with Journal.open(journal_path_for(path)) as journal:
        journal.append([line("from_journal", Status.OK), line("no", Status.FAILED)])
    assert accepted_rows(path) == {("from_report", "a", "v"), ("from_journal", "a", "v")}
    assert accepted_rows(journal_path_for(path)) == {("from_journal", "a", "v")}


def test_accepted_rows_from_a_journal_alone_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    with Journal.open(journal_path_for(path)) as journal:
        journal.append([line("C1", Status.OK)])
    assert accepted_rows(path) == {("C1", "a", "v")}


def test_accepted_rows_need_something_to_read(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="neither the report nor its journal"):
        accepted_rows(tmp_path / "out.csv")
    with pytest.raises(InputError, match="no such file"):
        accepted_rows(tmp_path / "out.csv.journal.jsonl")
