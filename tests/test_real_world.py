"""Valid workbooks and text files that real programs write (issue 15, B9-B12)."""

from __future__ import annotations

import io
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
