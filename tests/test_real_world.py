"""Valid workbooks and text files that real programs write (issue 15, B9-B12)."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import openpyxl
import pytest

from bulk_sync.errors import InputError
from bulk_sync.loading import load_bytes

HEADER = ["customer_id", "attribute", "value"]


def workbook_bytes(rows: list[list[object]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def rezip(
    data: bytes,
    rename: dict[str, str] | None = None,
    replace_text: dict[str, dict[bytes, bytes]] | None = None,
) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = source.read(info)
            for old, new in (replace_text or {}).get(info.filename, {}).items():
                body = body.replace(old, new)
            name = (rename or {}).get(info.filename, info.filename)
            target.writestr(name, body)
    return out.getvalue()


# ----------------------------------------------------------------------------- B9


def test_workbook_with_backslash_part_names_is_read(tmp_path: Path) -> None:
    data = workbook_bytes([HEADER, ["c1", "a", "1"]])
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    windows = rezip(data, rename={n: n.replace("/", "\\") for n in names})
    assert "xl\\workbook.xml" in zipfile.ZipFile(io.BytesIO(windows)).namelist()
    (table,) = load_bytes(windows, "windows.xlsx")
    assert list(table.values) == ["1"]


def test_zip_without_a_workbook_part_is_still_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("word/document.xml", "<w:document/>")
        z.writestr("[Content_Types].xml", "<Types/>")
    with pytest.raises(InputError, match="a zip file without a workbook inside"):
        load_bytes(out.getvalue(), "letter.xlsx")


# ----------------------------------------------------------------------------- B12


def test_excel_sep_line_gives_the_delimiter_and_is_not_a_row() -> None:
    (table,) = load_bytes(b"sep=;\r\ncustomer_id;attribute;value\r\nc1;a;1,5\r\n", "x.csv")
    assert (list(table.values), list(table.rows)) == (["1,5"], [2])
    (quoted,) = load_bytes(b'"sep=|"\ncustomer_id|attribute|value\nc1|a|x,y\n', "x.csv")
    assert list(quoted.values) == ["x,y"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_small_utf16_and_utf32_files_without_a_bom_are_decoded(encoding: str) -> None:
    data = "customer_id,attribute,value\nc1,nome,José\n".encode(encoding)
    assert len(data) < 256 * 4
    (table,) = load_bytes(data, "x.csv")
    assert list(table.values) == ["José"]
    assert "\x00" not in "".join(table.customer_ids)


def test_binary_message_names_utf32_too() -> None:
    with pytest.raises(InputError, match="utf-32"):
        load_bytes(bytes(range(256)) * 8, "x.csv")


# ----------------------------------------------------------------------------- B8


def test_a_stray_cell_at_xfd1048576_costs_nothing_and_is_no_error(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in [HEADER, ["c1", "a", 1], ["c2", "b", 0.125]]:
        ws.append(row)
    ws["C3"].number_format = "0.0%"
    ws["XFD1048576"] = "far away"
    path = tmp_path / "far.xlsx"
    wb.save(path)
    from bulk_sync.loading import load_file

    (table,) = load_file(path)  # a dense read would need 17 billion cells
    assert list(table.rows) == [2, 3]
    assert list(table.values) == ["1", "12.5%"]


def test_an_xls_with_cells_at_a1_and_iv65536_is_read_by_its_used_cells(tmp_path: Path) -> None:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("S")
    for c, text in enumerate(HEADER):
        sheet.write(0, c, text)
    sheet.write(1, 0, "c1")
    sheet.write(1, 1, "a")
    sheet.write(1, 2, 48929, xlwt.easyxf(num_format_str="00000000"))
    sheet.write(65535, 255, "far away")
    path = tmp_path / "far.xls"
    book.save(str(path))
    from bulk_sync.loading import load_file

    (table,) = load_file(path)
    assert list(table.values) == ["00048929"]
    assert list(table.rows) == [2]  # rows 3-65536 are blank in the needed columns


def test_a_large_workbook_with_a_stray_far_cell_is_read_too(tmp_path: Path) -> None:
    # poi 58325_db.xlsx (2.6 MB) with one more cell at XFD1048576 ended in SIGABRT: only
    # workbooks up to 2 MiB were read in the protected child.
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in [HEADER, ["c1", "a", "x"]]:
        ws.append(row)
    ws["XFD1048576"] = "far away"
    out = io.BytesIO()
    wb.save(out)
    big = io.BytesIO()
    with zipfile.ZipFile(big, "w") as z:
        for info in zipfile.ZipFile(out).infolist():
            z.writestr(info, zipfile.ZipFile(out).read(info))
        z.writestr("xl/media/image1.emf", random.Random(5).randbytes(3 * 1024 * 1024))
    path = tmp_path / "big.xlsx"
    path.write_bytes(big.getvalue())
    from bulk_sync.loading import load_file

    (table,) = load_file(path)
    assert list(table.values) == ["x"]


# ----------------------------------------------------------------------------- ODS


def ods_bytes(rows: list[list[object]]) -> bytes:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    table = Table(name="Folha1")
    for row in rows:
        tr = TableRow()
        for value in row:
            if isinstance(value, tuple):
                kind, attrs, shown = value
                cell = TableCell(valuetype=kind, **attrs)
            else:
                cell, shown = TableCell(valuetype="string"), str(value)
            cell.addElement(P(text=shown))
            tr.addElement(cell)
        table.addElement(tr)
    doc.spreadsheet.addElement(table)
    out = io.BytesIO()
    doc.write(out)
    return out.getvalue()


def test_ods_durations_read_as_hours_minutes_seconds() -> None:
    data = ods_bytes([HEADER, ["c1", "wait", ("time", {"timevalue": "PT255H10M10S"}, "255:10:10")]])
    (table,) = load_bytes(data, "book.ods")
    assert list(table.values) == ["255:10:10"]


def test_indented_ods_and_ods_without_mimetype_are_read() -> None:
    data = ods_bytes([HEADER, ["c1", "a", "1"]])
    content = zipfile.ZipFile(io.BytesIO(data)).read("content.xml")
    indented = content.replace(b"<table:table-row>", b"\n  <table:table-row>\n    ").replace(
        b"</table:table-cell>", b"</table:table-cell>\n    "
    )
    assert indented != content
    pretty = rezip(data, replace_text={"content.xml": {content: indented}})
    (table,) = load_bytes(pretty, "pretty.ods")
    assert list(table.values) == ["1"]
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in source.infolist():
            if info.filename != "mimetype":
                z.writestr(info, source.read(info))
    (bare,) = load_bytes(out.getvalue(), "bare.ods")
    assert list(bare.values) == ["1"]


def test_ods_percentages_and_zero_padded_ids_are_sent_as_shown() -> None:
    pct = ("percentage", {"value": "0.125"}, "12.5%")
    padded = ("float", {"value": "48929"}, "00048929")
    data = ods_bytes(
        [HEADER, [padded, "share", pct], ["c2", "plain", ("float", {"value": "3.5"}, "3.50")]]
    )
    (table,) = load_bytes(data, "book.ods")
    assert list(table.customer_ids) == ["00048929", "c2"]
    assert list(table.values) == ["12.5%", "3.5"]


def test_a_damaged_workbook_is_refused_in_words_a_person_can_act_on() -> None:
    garbage = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + random.Random(2).randbytes(4000)
    with pytest.raises(InputError) as caught:
        load_bytes(garbage, "broken.xls")
    message = str(caught.value)
    assert message.startswith("broken.xls: not a valid XLS workbook: the file is damaged")
    assert "save it again" in message


def test_an_ods_date_at_midnight_is_a_date_unless_its_text_shows_a_time() -> None:
    """Excel saves every ODS date as a date-time (office:date-value="1904-01-02T00:00:00")
    under a date style that shows 1904-01-02: a date cell, sent YYYY-MM-DD (DESIGN.md
    section 4) as from the XLSX it came from, not 1904-01-02T00:00:00 (SheetJS's
    1904/1904.ods). A cell whose text shows the time stays a date-time."""
    day = ("date", {"datevalue": "1904-01-02T00:00:00"}, "1904-01-02")
    long_day = ("date", {"datevalue": "2023-03-15T00:00:00"}, "Wednesday, March 15, 2023")
    clock = ("date", {"datevalue": "2023-03-15T00:00:00"}, "2023-03-15 00:00")
    later = ("date", {"datevalue": "2023-03-15T10:30:00"}, "15/03/2023")
    plain = ("date", {"datevalue": "2023-03-15"}, "03/15/23")
    data = ods_bytes(
        [
            HEADER,
            ["c1", "a", day],
            ["c2", "a", long_day],
            ["c3", "a", clock],
            ["c4", "a", later],
            ["c5", "a", plain],
        ]
    )
    (table,) = load_bytes(data, "book.ods")
    assert list(table.values) == [
        "1904-01-02",
        "2023-03-15",
        "2023-03-15T00:00:00",
        "2023-03-15T10:30:00",
        "2023-03-15",
    ]
