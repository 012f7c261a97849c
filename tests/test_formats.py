"""Number formats: cells as a person sees them (issue 15, A1-A4, A6, A7)."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bulk_sync.cells import CellText, fast_sent, formatted_cell
from bulk_sync.errors import ConfigError
from bulk_sync.loading import LoadOptions, load_file
from bulk_sync.loading.workbook import sheet_texts
from bulk_sync.numfmt import Kind, parse, render_number

HEADER = ["customer_id", "attribute", "value"]


@pytest.mark.parametrize(
    ("code", "value", "shown"),
    [
        ("00000000", 48929, "00048929"),
        ('"C-"0000', 12, "C-0012"),
        ("000-00-0000", 123456789, "123-45-6789"),
        ("0.0%", 0.974, "97.4%"),
        ("0%", 0.125, "13%"),
        ("#,##0", 1758.331589, "1,758"),
        ("#,##0.00", 1234567.891, "1,234,567.89"),
        ("0,000", 5, "0,005"),
        ("#,##0,", 1234567, "1,235"),
        ("0.00E+00", 12345.678, "1.23E+04"),
        ("##0.0E+0", 12345, "12.3E+3"),
        ("# ?/?", 1.5, "1 1/2"),
        ("# ?/8", 2.25, "2 2/8"),
        ("$#,##0.00_);($#,##0.00)", -1234.5, "($1,234.50)"),
        ('#,##0.00 "€"', 1234.5, "1,234.50 €"),
        ("[$€-407] #,##0.00", 9.5, "€ 9.50"),
        ("0.00", 3.5, "3.50"),
        ("0", 2.5, "3"),
        ("#,##0;[Red]-#,##0", -1234, "-1,234"),
        ("0.0%", -0.5, "-50.0%"),
        ('_(* #,##0_);_(* (#,##0);_(* "-"_);_(@_)', 0, "-"),
        ("General", 0.1, "0.1"),
    ],
)
def test_numbers_render_as_excel_shows_them(code: str, value: float, shown: str) -> None:
    assert render_number(code, value).strip() == shown


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("General", Kind.GENERAL),
        ("@", Kind.GENERAL),
        ("00000", Kind.ZERO_PADDED),
        ('"C-"0000', Kind.ZERO_PADDED),
        ("0", Kind.DISPLAY),
        ("0.0%", Kind.PERCENT),
        ("yyyy-mm-dd", Kind.DATE),
        ("d/m/yy", Kind.DATE),
        ("mmm-yy", Kind.DATE),
        ("hh:mm", Kind.TIME),
        ("mm:ss", Kind.TIME),
        ("h:mm AM/PM", Kind.TIME),
        ("m/d/yy h:mm", Kind.DATETIME),
        ("[h]:mm:ss", Kind.ELAPSED),
        ("[mm]:ss", Kind.ELAPSED),
        ("[$-409]mmmm d, yyyy;@", Kind.DATE),
        ("[Red]#,##0.00", Kind.DISPLAY),
    ],
)
def test_format_sections_are_classified(code: str, kind: Kind) -> None:
    assert parse(code)[0].kind == kind


@pytest.mark.parametrize(
    ("value", "code", "expected"),
    [
        # A1: a format of zeros gives the padded id as shown
        (48929.0, "00000000", CellText("00048929")),
        (6083, "00000", CellText("06083")),
        (12.0, '"C-"0000', CellText("C-0012")),
        (12.5, "0000", CellText("12.5", "0013")),  # not an id: the exact number
        # A2: percentages as shown, with the format's decimals
        (0.974, "0.0%", CellText("97.4%")),
        (0.125, "0.0%", CellText("12.5%")),
        (0.125, "0%", CellText("13%")),
        (0.00261493408061246, "0.00%", CellText("0.26%")),
        # A3: dates, times and durations, conditional and bracketed formats included
        (0.020833333333333332, "[=0]?;[<4.17][hh]:mm:ss;[hh]:mm", CellText("00:30:00")),
        (10.6, "[h]:mm:ss", CellText("254:24:00")),
        (45000.0, "dd/mm/yyyy", CellText("2023-03-15")),
        (45000.75, "m/d/yy h:mm", CellText("2023-03-15T18:00:00")),
        (0.5, "h:mm AM/PM", CellText("12:00:00")),
        (dt.timedelta(hours=255, minutes=10, seconds=10), "[h]:mm:ss", CellText("255:10:10")),
        (dt.datetime(2024, 1, 2, 3, 4), "yyyy-mm-dd", CellText("2024-01-02")),
        # A4: 15 significant digits
        (3.9299999999999997, "General", CellText("3.93")),
        # A6: display-only formats keep the exact number and say what is shown
        (1758.331589, "#,##0", CellText("1758.331589", "1,758")),
        (1234.5, '#,##0.00 "€"', CellText("1234.5", "1,234.50 €")),
        (0.000123, "0.00E+00", CellText("0.000123", "1.23E-04")),
        (3.0, "0.00", CellText("3", "3.00")),
        (5.0, "#,##0", CellText("5")),
        # text and booleans ignore number formats
        ("00123", "0.00", CellText("00123")),
        (True, "0.00", CellText("true")),
    ],
)
def test_a_formatted_cell_is_sent_as_the_rules_say(
    value: object, code: str, expected: CellText
) -> None:
    assert formatted_cell(value, code) == expected


def test_dates_of_the_1904_system_are_shifted() -> None:
    assert formatted_cell(0.0, "yyyy-mm-dd", date1904=True) == CellText("1904-01-01")
    assert formatted_cell(1.0, "yyyy-mm-dd") == CellText("1900-01-01")
    assert formatted_cell(61.0, "yyyy-mm-dd") == CellText("1900-03-01")


def test_as_shown_sends_the_displayed_text_of_display_only_formats() -> None:
    assert formatted_cell(1758.331589, "#,##0", as_shown=True) == CellText("1,758")
    assert formatted_cell(45000.0, "dd/mm/yyyy", as_shown=True) == CellText("2023-03-15")


# ----------------------------------------------------------------------------- workbooks


def styled_xlsx(tmp_path: Path, rows: list[tuple[Any, str, Any, str]], title: str = "S") -> Path:
    """customer id (with its format), attribute, value (with its format) per row."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    ws.append(HEADER)
    for r, (cid, attr, value, value_format) in enumerate(rows, start=2):
        if isinstance(cid, tuple):
            ws.cell(r, 1, cid[0]).number_format = cid[1]
        else:
            ws.cell(r, 1, cid)
        ws.cell(r, 2, attr)
        ws.cell(r, 3, value).number_format = value_format
    path = tmp_path / "book.xlsx"
    wb.save(path)
    return path


def test_xlsx_cells_are_sent_as_a_person_sees_them(tmp_path: Path) -> None:
    path = styled_xlsx(
        tmp_path,
        [
            ((48929, "00000000"), "zip", 6083, "00000"),
            ("c2", "share", 0.125, "0.0%"),
            ("c3", "wait", 0.0208333333333333, "[h]:mm:ss"),
            ("c4", "due", 45000, "dd/mm/yyyy"),
            ("c5", "ratio", 3.9299999999999997, "General"),
        ],
    )
    (table,) = load_file(path)
    assert list(table.customer_ids) == ["00048929", "c2", "c3", "c4", "c5"]
    assert list(table.values) == ["06083", "12.5%", "0:30:00", "2023-03-15", "3.93"]
    assert table.notices == ()


def test_a_date_time_format_on_a_whole_day_gives_a_date_time_and_a_time_format_its_time(
    tmp_path: Path,
) -> None:
    """DESIGN.md section 4: date-time cells are YYYY-MM-DDTHH:MM:SS, midnight included
    (python-calamine hands such a cell over as a date); a time-only format shows 0:00."""
    path = styled_xlsx(
        tmp_path,
        [
            ("c1", "at", dt.datetime(2023, 3, 15, 0, 0), "yyyy-mm-dd h:mm:ss"),
            ("c2", "at", 45000, "m/d/yy h:mm"),
            ("c3", "at", dt.datetime(2023, 3, 15, 18, 0), "yyyy-mm-dd h:mm:ss"),
            ("c4", "on", dt.date(2023, 3, 15), "yyyy-mm-dd"),
            ("c5", "at", 45000, "h:mm:ss"),
            ("c6", "no", 45000, "General"),
        ],
    )
    (table,) = load_file(path)
    assert list(table.values) == [
        "2023-03-15T00:00:00",
        "2023-03-15T00:00:00",
        "2023-03-15T18:00:00",
        "2023-03-15",
        "00:00:00",
        "45000",
    ]
    assert formatted_cell(dt.date(2023, 3, 15), "m/d/yy h:mm") == CellText("2023-03-15T00:00:00")
    assert formatted_cell(dt.date(2023, 3, 15), "h:mm") == CellText("00:00:00")
    assert formatted_cell(dt.date(2023, 3, 15), "dd/mm/yyyy") == CellText("2023-03-15")


def test_a_number_below_day_1_in_a_date_format_reads_as_in_an_xls(tmp_path: Path) -> None:
    """python-calamine makes a time of day of a number below 1 (or a negative one) in a
    date format: -12345.6789 was sent as 07:42:23, the number lost, where the same cell
    of an XLS gives 1866-03-13 (SheetJS's LONumbers/number_format files). Both read the
    serial number now."""
    cases = [
        (-12345.6789, "yyyy-mm-dd"),
        (-1.2, "yy"),
        (0.0, "d-mmm-yy"),
        (0.75, "m/d/yy h:mm"),
        (-12345.6789, "m/d/yy h:mm"),
        (0.75, "h:mm"),  # a time format: the time of day, as before
        (45000.5, "yyyy-mm-dd"),
    ]
    path = styled_xlsx(tmp_path, [(f"c{k}", "at", v, code) for k, (v, code) in enumerate(cases)])
    (table,) = load_file(path)
    expected = [formatted_cell(v, code).sent for v, code in cases]
    assert list(table.values) == expected
    assert expected[0] == "1866-03-13"
    assert expected[5] == "18:00:00"
    texts = sheet_texts(path)["S"]
    assert [t for r, c, t in texts if c == 2 and r > 1] == expected


def test_a_wide_value_past_the_header_is_invalid_whichever_reader_reads_the_sheet(
    tmp_path: Path,
) -> None:
    """python-calamine pads the header row to the sheet's width, so a value in a column
    without a header is reported invalid (README, --wide); our own reader (here chosen
    by an ISO 8601 date cell) gave a short header row and the value was dropped."""
    plain = openpyxl.Workbook()
    ws = plain.active
    ws.append(["customer_id", "segment"])
    ws.append(["c1", "retail", "stray"])
    path = tmp_path / "plain.xlsx"
    plain.save(path)
    own = openpyxl.Workbook(iso_dates=True)
    ws = own.active
    ws.append(["customer_id", "segment", None, "since"])
    ws.append(["c1", "retail", "stray", dt.date(2020, 1, 2)])
    ws.append(["c2", "retail", None, None, "far"])
    iso = tmp_path / "iso.xlsx"
    own.save(iso)
    (table,) = load_file(path, LoadOptions(wide=True))
    assert list(table.values) == ["retail", "stray"]
    (table,) = load_file(iso, LoadOptions(wide=True))
    assert list(table.values) == ["retail", "stray", "2020-01-02", "retail", "far"]
    assert list(table.attributes) == ["segment", "", "since", "segment", ""]  # "": invalid


def _own_reader_xlsx(
    tmp_path: Path, build: Any, date1904: bool = False, sheet: tuple[bytes, bytes] = (b"", b"")
) -> Path:
    """An XLSX written by openpyxl that our own reader reads (an ISO 8601 date cell in
    it), its workbook.xml given Excel 2013's ``x15:workbookPr`` extension, and
    ``sheet[0]`` replaced by ``sheet[1]`` in the sheet's XML."""
    wb = openpyxl.Workbook(iso_dates=True)
    wb.epoch = openpyxl.utils.datetime.CALENDAR_MAC_1904 if date1904 else wb.epoch
    build(wb.active)
    plain = tmp_path / "plain.xlsx"
    wb.save(plain)
    path = tmp_path / "own.xlsx"
    ext = (
        b'<extLst><ext uri="{140A7094-0E35-4892-8432-C4D2E57EDEB5}" '
        b'xmlns:x15="http://schemas.microsoft.com/office/spreadsheetml/2010/11/main">'
        b'<x15:workbookPr chartTrackingRefBase="1"/></ext></extLst></workbook>'
    )
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w") as out:
        for name in src.namelist():
            data = src.read(name)
            if name == "xl/workbook.xml":
                data = data.replace(b"</workbook>", ext)
            if name == "xl/worksheets/sheet1.xml" and sheet[0]:
                assert sheet[0] in data
                data = data.replace(*sheet)
            out.writestr(name, data)
    return path


def test_the_1904_date_system_survives_excels_x15_workbook_properties(tmp_path: Path) -> None:
    """Excel 2013+ writes a second, extension ``x15:workbookPr`` after the real one:
    it took its (absent) date1904 for the workbook's, and our reader's dates of a 1904
    workbook were 4 years and a day early (SheetJS's 1904/1904.xlsx)."""

    def build(ws: Any) -> None:
        ws.append(HEADER)
        ws.append(["c1", "since", 43832])  # a serial number in a date format
        ws.cell(2, 3).number_format = "yyyy-mm-dd"
        ws.append(["c2", "iso", dt.date(2021, 5, 6)])

    (table,) = load_file(_own_reader_xlsx(tmp_path, build, date1904=True))
    assert list(table.values) == ["2024-01-03", "2021-05-06"]  # 1904 system: day 0 1904-01-01
    assert formatted_cell(43832.0, "yyyy-mm-dd", date1904=True).sent == "2024-01-03"


def test_escaped_characters_of_xlsx_strings_are_decoded_by_our_reader(tmp_path: Path) -> None:
    """_x000D_ in an XLSX string is a carriage return (ECMA-376 ST_Xstring), as
    python-calamine reads it; our reader sent the escape itself."""

    def build(ws: Any) -> None:
        ws.append(HEADER)
        ws.append(["c1", "note", "ABC\r\nDEF"])
        ws.append(["c2", "iso", dt.date(2021, 5, 6)])

    escaped = (b"ABC\r\nDEF", b"ABC_x000D_\n_x005F_x0041_DEF_xD83D__xDE00_")
    path = _own_reader_xlsx(tmp_path, build, sheet=escaped)
    (table,) = load_file(path)
    assert list(table.values) == ["ABC\r\n_x0041_DEF\U0001f600", "2021-05-06"]


def test_iso_date_cells_are_sent_by_their_format_whatever_their_suffix(tmp_path: Path) -> None:
    """XLSX date cells stored as ISO 8601 text (``t="d"``, written by SheetJS, POI and
    openpyxl's iso_dates) follow DESIGN.md section 4 like serial-number dates, also with
    the ``Z``, offset, milliseconds or missing seconds that python-calamine leaves as
    text (SheetJS's own test file: ``2014-02-14T08:27:48.765Z`` under ``m/d/yy``)."""
    stored = [
        ("2014-02-14T08:27:48.765Z", "m/d/yy", "2014-02-14"),
        ("2014-02-14T08:27:48Z", "yyyy-mm-dd hh:mm:ss", "2014-02-14T08:27:48"),
        ("2014-02-14T08:27:48+01:00", "h:mm:ss", "08:27:48"),
        ("2014-02-14T08:27", "yyyy-mm-dd h:mm", "2014-02-14T08:27:00"),
        ("2014-02-14T08:27:48.765Z", "General", "2014-02-14T08:27:48.765"),
        ("2014-02-14", "dd/mm/yyyy", "2014-02-14"),
        ("08:27:48", "h:mm:ss", "08:27:48"),
        ("not a date", "m/d/yy", "not a date"),
    ]
    wb = openpyxl.Workbook(iso_dates=True)
    ws = wb.active
    ws.append(HEADER)
    for r, (_, code, _) in enumerate(stored, start=2):
        ws.append([f"c{r}", "at", dt.datetime(2001, 1, 1, 1, 1, 1)])
        ws.cell(r, 3).number_format = code
    plain = tmp_path / "plain.xlsx"
    wb.save(plain)
    path = tmp_path / "iso.xlsx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w") as out:
        for name in src.namelist():
            data = src.read(name)
            if name == "xl/worksheets/sheet1.xml":
                for r, (text, _, _) in enumerate(stored, start=2):
                    cell = re.search(rf'<c r="C{r}"[^>]*t="d"[^>]*><v>[^<]*</v>'.encode(), data)
                    assert cell is not None
                    fixed = re.sub(rb"<v>[^<]*</v>", f"<v>{text}</v>".encode(), cell.group())
                    data = data.replace(cell.group(), fixed)
            out.writestr(name, data)
    (table,) = load_file(path)
    assert list(table.values) == [sent for _, _, sent in stored]


def test_display_only_formats_send_the_exact_number_and_warn_once_per_column(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = styled_xlsx(
        tmp_path,
        [
            ("c1", "amount", 1758.331589, "#,##0"),
            ("c2", "amount", 99.5, "#,##0"),
            ("c3", "amount", 12, "#,##0"),
        ],
        title="Clientes",
    )
    (table,) = load_file(path)
    assert list(table.values) == ["1758.331589", "99.5", "12"]
    (notice,) = table.notices
    assert (notice.sheet, notice.column, notice.header, notice.row) == ("Clientes", "C", "value", 2)
    assert notice.message == (
        "sheet 'Clientes', column C: 1758.331589 is shown as 1,758; the exact number is sent"
    )
    assert [r.getMessage() for r in caplog.records if "shown as" in r.getMessage()] == [
        f"book.xlsx: {notice.message}"
    ]
    (shown,) = load_file(path, LoadOptions(cells="as_shown"))
    assert list(shown.values) == ["1,758", "100", "12"]
    assert shown.notices == ()


def test_unknown_cells_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cells"):
        LoadOptions(cells="shown")


@pytest.mark.parametrize(
    "code",
    [
        "00000000",
        '"C-"0000',
        "0%",
        "0.0%",
        "0.00%",
        "dd/mm/yyyy",
        "yyyy-mm-dd hh:mm:ss",
        "hh:mm",
        "[h]:mm:ss",
        "[hh]:mm",
        "0000;-0000",
    ],
)
@pytest.mark.parametrize(
    "value", [0.0, 1.0, 12.0, 48929.0, 0.125, 0.97444, 45000.5, 45000.999999, 60.5, 61.0, 12.5]
)
def test_quick_paths_agree_with_the_rules(code: str, value: float) -> None:
    fast = fast_sent(code)
    assert fast is not None
    for date1904 in (False, True):
        quick = fast_sent(code, date1904)
        assert quick is not None
        sent = quick(value)
        if sent is not None:
            assert sent == formatted_cell(value, code, date1904=date1904).sent


def test_config_cells_as_shown_reaches_the_loader(tmp_path: Path) -> None:
    from bulk_sync.config import settings_from_mapping
    from bulk_sync.runner import load_options

    assert load_options(settings_from_mapping({"cells": "as_shown"})).cells == "as_shown"
    assert load_options(settings_from_mapping({})).cells == "exact"
    with pytest.raises(ConfigError, match="cells"):
        settings_from_mapping({"cells": "pretty"})
