"""Loading CSV/TSV/XLSX/XLS/ODS files into tables (DESIGN.md sections 1 and 4)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlwt
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table as OdsTable
from odf.table import TableCell, TableRow
from odf.text import P

from bulk_sync.errors import ConfigError, InputError
from bulk_sync.loading import LoadOptions, load, load_bytes, load_file, parse_delimiter
from bulk_sync.models import Table

HEADER = ["customer_id", "attribute", "value"]


# ----------------------------------------------------------------------------- helpers


def write(tmp_path: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def one(path: Path, **options: Any) -> Table:
    tables = load_file(path, LoadOptions(**options))
    assert len(tables) == 1
    return tables[0]


def triples(table: Table) -> list[tuple[int, str, str, str]]:
    return list(zip(table.rows, table.customer_ids, table.attributes, table.values, strict=True))


def xlsx(tmp_path: Path, sheets: dict[str, list[list[Any]]], name: str = "book.xlsx") -> Path:
    """A workbook with one sheet per entry; a row is placed at its list position + 1."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    ws.cell(row=r, column=c, value=value)
    path = tmp_path / name
    wb.save(path)
    return path


def ods(tmp_path: Path, rows: list[list[Any]], name: str = "book.ods") -> Path:
    doc = OpenDocumentSpreadsheet()
    table = OdsTable(name="Folha1")
    for row in rows:
        tr = TableRow()
        for value in row:
            if value is None:
                cell = TableCell()
            elif isinstance(value, tuple):  # (kind, attributes, display text)
                kind, attrs, shown = value
                cell = TableCell(valuetype=kind, **attrs)
                cell.addElement(P(text=shown))
            else:
                cell = TableCell(valuetype="string")
                cell.addElement(P(text=value))
            tr.addElement(cell)
        table.addElement(tr)
    doc.spreadsheet.addElement(table)
    path = tmp_path / name
    doc.save(str(path))
    return path


def csv_text(rows: Sequence[Sequence[str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue()


# ----------------------------------------------------------------------------- CSV basics


def test_csv_rows_are_numbered_as_in_a_spreadsheet(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "customer_id,attribute,value\nc1,segment,Retail\nc2,x,y\n")
    table = one(path)
    assert table.source == "in.csv"
    assert table.sheet == ""
    assert triples(table) == [(2, "c1", "segment", "Retail"), (3, "c2", "x", "y")]
    assert table.headers == ("customer_id", "attribute", "value")
    assert table.value_columns == ()
    assert table.defects == ()


def test_csv_text_is_never_guessed_into_numbers_or_nulls(tmp_path: Path) -> None:
    body = "customer_id,attribute,value\n00123,contract,00123\nc1,a,NA\nc1,b,null\nc1,c,None\n"
    body += "c1,d,\nc1,e,1e5\nc1,f,TRUE\nc1,g,3.50\n"
    table = one(write(tmp_path, "in.csv", body))
    assert table.customer_ids[0] == "00123"
    assert list(table.values) == ["00123", "NA", "null", "None", "", "1e5", "TRUE", "3.50"]


def test_csv_fields_are_trimmed_including_non_breaking_spaces(tmp_path: Path) -> None:
    body = " customer_id , attribute ,value \n  c1 ,\u00a0name\u00a0,  João Gonçalves \t\n"
    table = one(write(tmp_path, "in.csv", body))
    assert triples(table) == [(2, "c1", "name", "João Gonçalves")]
    assert table.headers == ("customer_id", "attribute", "value")


def test_header_only_csv_gives_an_empty_table(tmp_path: Path) -> None:
    table = one(write(tmp_path, "in.csv", "customer_id,attribute,value\n"))
    assert len(table) == 0


def test_zero_byte_csv_is_refused_as_empty(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^in\.csv: file is empty$"):
        load_file(write(tmp_path, "in.csv", b""))


def test_csv_of_only_blank_lines_has_no_header(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no header row"):
        load_file(write(tmp_path, "in.csv", "\n\r\n\n"))


# ----------------------------------------------------------------------------- encodings


def test_cp1252_csv_is_detected(tmp_path: Path) -> None:
    body = "customer_id;attribute;value\nc1;region;Região Norte\nc1;limit;1000 €\nc1;q;“x”\n"
    table = one(write(tmp_path, "in.csv", body, encoding="cp1252"))
    assert list(table.values) == ["Região Norte", "1000 €", "“x”"]


def test_bytes_undefined_in_cp1252_fall_back_to_latin1(tmp_path: Path) -> None:
    data = b"customer_id,attribute,value\nc1,a,\x81\xe9\n"
    assert list(one(write(tmp_path, "in.csv", data)).values) == ["\x81é"]


def test_utf8_bom_is_removed_before_matching_the_header(tmp_path: Path) -> None:
    body = "\ufeffCustomer ID,attribute,value\nc1,region,Região\n"
    table = one(write(tmp_path, "in.csv", body))
    assert table.headers[0] == "Customer ID"
    assert list(table.values) == ["Região"]


def test_utf16_with_bom_is_decoded(tmp_path: Path) -> None:
    body = "customer_id\tattribute\tvalue\r\nc1\tname\tJoão\r\n"
    table = one(write(tmp_path, "in.txt", body, encoding="utf-16"))
    assert triples(table) == [(2, "c1", "name", "João")]


def test_forced_encoding_is_used(tmp_path: Path) -> None:
    body = "customer_id,attribute,value\nc1,name,Ωmega\n"
    path = write(tmp_path, "in.csv", body, encoding="iso-8859-7")
    assert list(one(path, encoding="iso-8859-7").values) == ["Ωmega"]


def test_forcing_utf8_on_cp1252_bytes_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "customer_id,attribute,value\nc1,r,Região\n", "cp1252")
    with pytest.raises(InputError, match=r"in\.csv: cannot be read as utf-8: byte 0xE3 on line 2"):
        load_file(path, LoadOptions(encoding="utf-8"))


def test_unknown_encoding_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        LoadOptions(encoding="klingon")


def test_invalid_utf8_late_in_a_large_file_falls_back_to_cp1252(tmp_path: Path) -> None:
    lines = ["customer_id,attribute,value"] + [f"c{i},a,ascii" for i in range(20000)]
    data = ("\n".join(lines) + "\n").encode() + "c9,a,Região\n".encode("cp1252")
    table = one(write(tmp_path, "in.csv", data))
    assert len(table) == 20001
    assert table.values[-1] == "Região"
    assert table.rows[-1] == 20002


# ----------------------------------------------------------------------------- delimiters


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected_despite_quoted_delimiters(tmp_path: Path, delimiter: str) -> None:
    rows = [HEADER, ["c1", "address", "Rua A, 1; 2\t3|4"], ["c2", "note", 'said "hi"']]
    table = one(write(tmp_path, "in.csv", csv_text(rows, delimiter)))
    assert list(table.values) == ["Rua A, 1; 2\t3|4", 'said "hi"']


def test_semicolon_file_with_quoted_newlines_counts_records_not_lines(tmp_path: Path) -> None:
    body = (
        "customer_id;attribute;value\n"
        'c1;address;"Rua das Flores; 12\n4000-123 Porto"\n'
        'c1;quote;"He said ""olá""\n\nand left"\n'
        "c2;segment;Retail\n"
    )
    table = one(write(tmp_path, "in.csv", body))
    assert triples(table) == [
        (2, "c1", "address", "Rua das Flores; 12\n4000-123 Porto"),
        (3, "c1", "quote", 'He said "olá"\n\nand left'),
        (4, "c2", "segment", "Retail"),
    ]


def test_tsv_extension_prefers_tab(tmp_path: Path) -> None:
    body = "customer_id\tattribute\tvalue\nc1\tnote\ta,b;c|d\n"
    assert list(one(write(tmp_path, "in.tsv", body)).values) == ["a,b;c|d"]


@pytest.mark.parametrize("spelling", ["\t", "\\t", "tab", "TAB"])
def test_tab_delimiter_can_be_spelled_several_ways(spelling: str) -> None:
    assert parse_delimiter(spelling) == "\t"
    assert LoadOptions(delimiter=spelling).delimiter == "\t"


def test_forced_delimiter_is_used(tmp_path: Path) -> None:
    body = "customer_id|attribute|value\nc1|a|x,y\n"
    table = one(write(tmp_path, "in.csv", body), delimiter="pipe")
    assert list(table.values) == ["x,y"]


def test_wrong_forced_delimiter_says_which_was_used(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "customer_id;attribute;value\nc1;a;b\n")
    with pytest.raises(InputError, match="read with delimiter ','"):
        load_file(path, LoadOptions(delimiter=","))


@pytest.mark.parametrize("bad", ["", "ab", '"', "\n", "x"])
def test_unusable_delimiters_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="delimiter"):
        LoadOptions(delimiter=bad)


# ----------------------------------------------------------------------------- row numbers


def test_blank_lines_in_the_middle_keep_row_numbers_true(tmp_path: Path) -> None:
    body = "customer_id,attribute,value\nc1,a,1\n\n\nc2,b,2\r\n,,\n  ,  , \nc3,c,3\n\n"
    table = one(write(tmp_path, "in.csv", body))
    assert triples(table) == [(2, "c1", "a", "1"), (5, "c2", "b", "2"), (8, "c3", "c", "3")]


def test_rows_of_empty_fields_are_skipped_on_the_fast_path_too(tmp_path: Path) -> None:
    lines = ["customer_id,attribute,value"] + [
        ",," if i % 1000 == 7 else f"c{i // 10},a{i % 3},v{i}" for i in range(12000)
    ]
    table = one(write(tmp_path, "in.csv", "\n".join(lines)))
    expected = [(i + 2, f"c{i // 10}", f"a{i % 3}", f"v{i}") for i in range(12000) if i % 1000 != 7]
    assert triples(table) == expected


@pytest.mark.parametrize("value", ["1", '"1"'])
def test_leading_blank_lines_push_the_header_down(tmp_path: Path, value: str) -> None:
    body = f"\r\n\r\ncustomer_id,attribute,value\r\nc1,a,{value}\r\n\r\nc2,b,2\r\n"
    table = one(write(tmp_path, "in.csv", body))
    assert triples(table) == [(4, "c1", "a", "1"), (6, "c2", "b", "2")]


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
def test_any_line_ending_is_understood(tmp_path: Path, newline: str) -> None:
    body = newline.join(["customer_id,attribute,value", "c1,a,1", "", "c2,b,2"]) + newline
    assert triples(one(write(tmp_path, "in.csv", body))) == [
        (2, "c1", "a", "1"),
        (4, "c2", "b", "2"),
    ]


def test_large_grouped_file_converts_every_value(tmp_path: Path) -> None:
    # Long enough for the run-length and dictionary shortcuts of the fast path.
    expected = [(f"C{i // 10:06d}", f"attr_{i % 20}", f"valor {i} ç") for i in range(30000)]
    expected[20000] = ("C002000", "attr_0", "nul \x00 inside")
    body = csv_text([HEADER, *expected])
    table = one(write(tmp_path, "in.csv", body))
    assert list(zip(table.customer_ids, table.attributes, table.values, strict=True)) == expected
    assert list(table.rows) == list(range(2, 30002))


# ----------------------------------------------------------------------------- malformed CSV


def test_short_records_get_empty_fields(tmp_path: Path) -> None:
    body = "customer_id,attribute,value\nc1,a\nc2\nc3,b,3\n"
    table = one(write(tmp_path, "in.csv", body))
    assert triples(table) == [(2, "c1", "a", ""), (3, "c2", "", ""), (4, "c3", "b", "3")]
    assert table.defects == ()


def test_long_records_keep_the_first_fields_and_carry_a_defect(tmp_path: Path) -> None:
    body = "customer_id,attribute,value\nc1,a,1\nc2,address,Rua A, 12,Porto\nc3,b,3,\n"
    table = one(write(tmp_path, "in.csv", body))
    assert triples(table) == [
        (2, "c1", "a", "1"),
        (3, "c2", "address", "Rua A"),
        (4, "c3", "b", "3"),
    ]
    assert table.defects == (
        (
            1,
            "",
            "row has 5 fields but the header has 3; is a value containing ',' missing its quotes?",
        ),
    )


def test_nul_characters_inside_fields_are_kept(tmp_path: Path) -> None:
    body = 'customer_id,attribute,value\nc1,a,x\x00y\nc2,b,"\x00"\n'
    assert list(one(write(tmp_path, "in.csv", body)).values) == ["x\x00y", "\x00"]


def test_unclosed_quote_is_refused_with_its_row(tmp_path: Path) -> None:
    body = 'customer_id,attribute,value\nc1,a,1\nc2,b,"oops\nc3,c,3\nc4,d,4\n'
    with pytest.raises(InputError, match=r"in\.csv, row 3: a quoted value is never closed"):
        load_file(write(tmp_path, "in.csv", body))


@pytest.mark.parametrize("blank_line", ["", "\n"])
def test_overlong_value_is_refused(tmp_path: Path, blank_line: str) -> None:
    body = f"customer_id,attribute,value\nc1,a,1\n{blank_line}c2,b,{'x' * 50}\n"
    row = 4 if blank_line else 3
    with pytest.raises(InputError, match=rf"row {row}, column 'value': a value has 50 characters"):
        load_file(write(tmp_path, "in.csv", body), LoadOptions(max_cell_chars=40))


def test_binary_garbage_named_csv_is_refused(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20
    with pytest.raises(InputError, match="does not look like a text"):
        load_file(write(tmp_path, "in.csv", data))


def test_workbook_named_csv_is_refused_with_a_rename_hint(tmp_path: Path) -> None:
    book = xlsx(tmp_path, {"S": [HEADER, ["c1", "a", "1"]]})
    path = write(tmp_path, "in.csv", book.read_bytes())
    with pytest.raises(InputError, match=r"in\.csv: this looks like an Excel .* rename it"):
        load_file(path)


def test_old_xls_named_csv_is_refused(tmp_path: Path) -> None:
    book = xls(tmp_path, [HEADER, ["c1", "a", "1"]])
    with pytest.raises(InputError, match=r"rename it to \.xls"):
        load_file(write(tmp_path, "in.csv", book.read_bytes()))


# ----------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    "header",
    [
        "Customer ID,Attribute,Value",
        "customer-id,ATTRIBUTE,value",
        "CUSTOMER_ID,attribute, Value ",
        "notes,value,customer id,attribute,more",
    ],
)
def test_header_variants_are_matched(tmp_path: Path, header: str) -> None:
    names = [h.strip() for h in header.split(",")]
    cells = {"customer_id": "c1", "attribute": "a", "value": "v"}
    row = [cells.get(h.strip().casefold().replace(" ", "_").replace("-", "_"), "x") for h in names]
    table = one(write(tmp_path, "in.csv", header + "\n" + ",".join(row) + "\n"))
    assert triples(table) == [(2, "c1", "a", "v")]


def test_columns_map_names_other_headers(tmp_path: Path) -> None:
    body = "NIF,Campo,Valor,customer_id\n500100200,segmento,Retalho,ignored\n"
    options = {"columns": {"customer_id": "nif", "attribute": "Campo", "value": "VALOR"}}
    table = one(write(tmp_path, "in.csv", body), **options)
    assert triples(table) == [(2, "500100200", "segmento", "Retalho")]
    assert table.headers == ("NIF", "Campo", "Valor")


def test_columns_map_rejects_unknown_logical_columns() -> None:
    with pytest.raises(ConfigError, match="unknown column 'email'"):
        LoadOptions(columns={"email": "E-mail"})


def test_missing_column_message_names_file_column_and_headers_found(tmp_path: Path) -> None:
    path = write(tmp_path, "clientes.csv", "customer_id,attr,value\nc1,a,1\n")
    with pytest.raises(InputError) as caught:
        load_file(path)
    assert str(caught.value) == (
        "clientes.csv: missing column 'attribute'; headers found in row 1: "
        "'customer_id', 'attr', 'value' (read with delimiter ','; give --delimiter if that "
        "is wrong)"
    )
    assert caught.value.source == "clientes.csv"


def test_missing_configured_column_names_the_configured_header(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "customer_id,attribute,value\nc1,a,1\n")
    with pytest.raises(InputError, match="missing column 'NIF' \\(configured for customer_id\\)"):
        load_file(path, LoadOptions(columns={"customer_id": "NIF"}))


def test_two_columns_matching_one_name_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "Customer ID,attribute,value,customer-id\nc1,a,1,c2\n")
    with pytest.raises(InputError, match="2 columns match 'customer_id'"):
        load_file(path)


# ----------------------------------------------------------------------------- wide files


def test_wide_csv_gives_one_row_per_non_empty_cell_and_loses_no_input(tmp_path: Path) -> None:
    body = "Customer ID,segment,email,\nc1,Retail,a@x.pt,stray\nc2,,b@x.pt,\n,,,\nc3,,,\n"
    table = one(write(tmp_path, "in.csv", body), wide=True)
    assert triples(table) == [
        (2, "c1", "segment", "Retail"),
        (2, "c1", "email", "a@x.pt"),
        (2, "c1", "", "stray"),  # a value under a column without a header: kept, to be invalid
        (3, "c2", "email", "b@x.pt"),
        (5, "c3", "", ""),  # a customer with no values: listed, to be skipped
    ]
    assert list(table.value_columns)[2] == "unnamed column 4"
    assert table.skips == ((4, "no attribute values in this row (--wide)"),)
    assert table.headers == ("Customer ID", "", "")
    assert list(table.value_columns) == ["segment", "email", "unnamed column 4", "email", ""]


def test_wide_workbook_uses_header_text_as_attribute(tmp_path: Path) -> None:
    path = xlsx(
        tmp_path,
        {"S": [["customer_id", " Credit Limit ", "Since"], ["c1", 1500, dt.date(2020, 5, 1)]]},
    )
    table = one(path, wide=True)
    assert triples(table) == [(2, "c1", "Credit Limit", "1500"), (2, "c1", "Since", "2020-05-01")]


def test_wide_file_without_attribute_columns_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "Customer ID,\nc1,\n")
    with pytest.raises(InputError, match=r"row 1: a wide file needs a column per attribute"):
        load_file(path, LoadOptions(wide=True))


def test_wide_row_with_extra_fields_keeps_its_defect(tmp_path: Path) -> None:
    body = "customer_id,email\nc1,a@x.pt,oops\n"
    table = one(write(tmp_path, "in.csv", body), wide=True)
    assert triples(table) == [(2, "c1", "email", "a@x.pt")]
    assert table.defects[0][0] == 0
    assert "row has 3 fields but the header has 2" in table.defects[0][2]


# ----------------------------------------------------------------------------- XLSX


def test_xlsx_numbers_dates_and_booleans_become_text(tmp_path: Path) -> None:
    values = [
        12345,
        12345.0,
        3.5,
        1e20,
        0.25,
        dt.date(2024, 1, 2),
        dt.datetime(2024, 1, 2, 3, 4, 5),
        True,
        False,
        "00123",
        "NA",
        "null",
        "  spaced  ",
    ]
    plain = xlsx(tmp_path, {"S": [HEADER, *[["c1", f"a{i}", v] for i, v in enumerate(values)]]})
    # openpyxl rounds floats to 15 digits when writing; Excel keeps 17 (0.1 + 0.2).
    path = patch_sheet(plain, {"<v>0.25</v>": f"<v>{0.1 + 0.2!r}</v>"})
    table = one(path)
    assert list(table.values) == [
        "12345",
        "12345",
        "3.5",
        "100000000000000000000",
        "0.3",  # Excel stores 0.1 + 0.2 with 17 digits and shows 15 (patched in below)
        "2024-01-02",
        "2024-01-02T03:04:05",
        "true",
        "false",
        "00123",
        "NA",
        "null",
        "spaced",
    ]
    assert table.sheet == "S"
    assert list(table.rows) == list(range(2, 2 + len(values)))


def test_xlsm_is_read_like_xlsx(tmp_path: Path) -> None:
    book = xlsx(tmp_path, {"S": [HEADER, ["c1", "a", "1"]]})
    path = write(tmp_path, "macros.xlsm", book.read_bytes())
    assert triples(one(path)) == [(2, "c1", "a", "1")]


def test_numeric_customer_ids_and_headers_are_text(tmp_path: Path) -> None:
    path = xlsx(tmp_path, {"S": [HEADER, [500100200, "contract", 123]]}, name="n.xlsx")
    assert triples(one(path)) == [(2, "500100200", "contract", "123")]


def test_xlsx_leading_empty_rows_and_columns_keep_true_row_numbers(tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        [],
        [],
        [None, *HEADER],
        [None, "c1", "a", "1"],
        [],
        [None, "c2", "b", "2"],
        [None, " ", None, ""],
    ]
    assert triples(one(xlsx(tmp_path, {"S": rows}))) == [(4, "c1", "a", "1"), (6, "c2", "b", "2")]


def test_xlsx_header_only_sheet_gives_an_empty_table(tmp_path: Path) -> None:
    assert len(one(xlsx(tmp_path, {"S": [HEADER]}))) == 0


def test_empty_first_sheet_is_refused_and_other_sheets_are_named(tmp_path: Path) -> None:
    path = xlsx(tmp_path, {"Empty": [], "Data": [HEADER, ["c1", "a", "1"]]})
    with pytest.raises(InputError, match=r"sheet 'Empty': sheet is empty; other sheets: 'Data'"):
        load_file(path)


def patch_sheet(path: Path, replacements: dict[str, str]) -> Path:
    """A copy of an openpyxl workbook with its first sheet's XML edited."""
    patched = path.with_name("patched-" + path.name)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(patched, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                for old, new in replacements.items():
                    assert old in text
                    text = text.replace(old, new)
                data = text.encode()
            out.writestr(item, data)
    return patched


def test_xlsx_formula_cells_give_their_cached_value(tmp_path: Path) -> None:
    rows = [HEADER, ["c1", "sum", "=1+2"], ["c1", "text", '="a"&"b"'], ["c1", "err", "=1/0"]]
    # openpyxl writes formulas without results; add them the way Excel stores them.
    path = patch_sheet(
        xlsx(tmp_path, {"S": rows}),
        {
            "<f>1+2</f><v />": "<f>1+2</f><v>3</v>",
            '<c r="C3"><f>"a"&amp;"b"</f><v />': '<c r="C3" t="str"><f>"a"&amp;"b"</f><v>ab</v>',
            '<c r="C4"><f>1/0</f><v />': '<c r="C4" t="e"><f>1/0</f><v>#DIV/0!</v>',
        },
    )
    assert list(one(path).values) == ["3", "ab", ""]


def test_first_visible_sheet_is_the_default(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    hidden = wb.active
    hidden.title = "Lookup"
    hidden.append(["code", "label"])
    hidden.sheet_state = "hidden"
    data = wb.create_sheet("Clientes")
    data.append(HEADER)
    data.append(["c1", "a", "1"])
    path = tmp_path / "book.xlsx"
    wb.save(path)
    table = one(path)
    assert table.sheet == "Clientes"
    assert triples(table) == [(2, "c1", "a", "1")]


def test_hidden_sheet_can_be_chosen_by_name(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.title = "Shown"
    hidden = wb.create_sheet("Arquivo")
    hidden.append(HEADER)
    hidden.append(["c9", "a", "1"])
    hidden.sheet_state = "hidden"
    path = tmp_path / "book.xlsx"
    wb.save(path)
    assert triples(one(path, sheet="arquivo")) == [(2, "c9", "a", "1")]


def test_sheet_is_chosen_by_name(tmp_path: Path) -> None:
    path = xlsx(tmp_path, {"A": [HEADER, ["c1", "a", "1"]], "B": [HEADER, ["c2", "b", "2"]]})
    table = one(path, sheet="B")
    assert (table.sheet, triples(table)) == ("B", [(2, "c2", "b", "2")])


def test_missing_sheet_lists_the_sheets(tmp_path: Path) -> None:
    path = xlsx(tmp_path, {"A": [HEADER], "B": [HEADER]})
    with pytest.raises(
        InputError, match=r"book\.xlsx: no sheet named 'C'; the sheets are: 'A', 'B'"
    ):
        load_file(path, LoadOptions(sheet="C"))


def test_all_sheets_loads_every_sheet_with_the_header_and_skips_empty_ones(
    tmp_path: Path,
) -> None:
    path = xlsx(
        tmp_path,
        {
            "Norte": [HEADER, ["c1", "a", "1"]],
            "Vazia": [],
            "Sul": [["Customer ID", "Value", "Attribute"], ["c2", "2", "b"]],
        },
    )
    tables = load_file(path, LoadOptions(all_sheets=True))
    assert [(t.sheet, triples(t)) for t in tables] == [
        ("Norte", [(2, "c1", "a", "1")]),
        ("Sul", [(2, "c2", "b", "2")]),
    ]


def test_all_sheets_leaves_out_a_sheet_without_the_columns_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = xlsx(tmp_path, {"Data": [HEADER, ["c1", "a", "1"]], "Notes": [["Read me first"]]})
    tables = load_file(path, LoadOptions(all_sheets=True))
    assert [t.sheet for t in tables] == ["Data"]
    assert "sheet 'Notes' left out: missing columns" in caplog.text


def test_all_sheets_with_no_sheet_having_the_columns_is_unusable(tmp_path: Path) -> None:
    path = xlsx(tmp_path, {"A": [["x", "y"], ["1", "2"]], "Notes": [["Read me first"]]})
    with pytest.raises(InputError, match=r"book\.xlsx: no sheet has the required columns: 'A'"):
        load_file(path, LoadOptions(all_sheets=True))


def test_sheet_and_all_sheets_together_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        LoadOptions(sheet="A", all_sheets=True)


# ----------------------------------------------------------------------------- broken workbooks


def test_garbage_named_xlsx_is_not_a_valid_workbook(tmp_path: Path) -> None:
    path = write(tmp_path, "in.xlsx", bytes(range(256)) * 8)
    with pytest.raises(InputError, match=r"in\.xlsx: not a valid XLSX workbook"):
        load_file(path)


def test_csv_named_xlsx_is_recognized_as_text(tmp_path: Path) -> None:
    path = write(tmp_path, "in.xlsx", "customer_id,attribute,value\nc1,a,1\n")
    with pytest.raises(InputError, match="not a valid XLSX workbook: it looks like a text"):
        load_file(path)


def test_html_named_xls_gets_an_explanation(tmp_path: Path) -> None:
    path = write(tmp_path, "export.xls", "<html><table><tr><td>x</td></tr></table></html>")
    with pytest.raises(InputError, match="not a valid XLS workbook: it is an HTML"):
        load_file(path)


def test_truncated_xlsx_is_reported_as_damaged(tmp_path: Path) -> None:
    data = xlsx(tmp_path, {"S": [HEADER, ["c1", "a", "1"]]}).read_bytes()
    path = write(tmp_path, "cut.xlsx", data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.xlsx: not a valid XLSX workbook: .*damaged"):
        load_file(path)


def test_empty_xlsx_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file is empty"):
        load_file(write(tmp_path, "in.xlsx", b""))


def test_zip_that_expands_too_much_is_refused(tmp_path: Path) -> None:
    path = xlsx(tmp_path, {"S": [HEADER, ["c1", "a", "1"]]})
    with pytest.raises(InputError, match="looks like a zip bomb"):
        load_file(path, LoadOptions(max_uncompressed_bytes=1000))


def test_xlsx_and_ods_named_the_other_way_get_a_rename_hint(tmp_path: Path) -> None:
    book = ods(tmp_path, [HEADER])
    with pytest.raises(InputError, match=r"OpenDocument spreadsheet; rename it to \.ods"):
        load_file(write(tmp_path, "in.xlsx", book.read_bytes()))
    workbook = xlsx(tmp_path, {"S": [HEADER]})
    with pytest.raises(InputError, match=r"not a valid XLS workbook: .*rename it to \.xlsx"):
        load_file(write(tmp_path, "in.xls", workbook.read_bytes()))


def test_zip_without_a_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<w/>")
    with pytest.raises(InputError, match="zip file without a workbook"):
        load_file(path)


def test_damaged_sheet_xml_is_an_input_error(tmp_path: Path) -> None:
    plain = xlsx(tmp_path, {"S": [HEADER, ["c1", "a", "1"]]})
    path = tmp_path / "bad.xlsx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data = data[: len(data) // 2]
            out.writestr(item, data)
    with pytest.raises(InputError, match=r"bad\.xlsx"):
        load_file(path)


# ----------------------------------------------------------------------------- ODS and XLS


def test_ods_numbers_dates_text_and_formulas(tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        [],
        HEADER,
        ["c1", "n", ("float", {"value": "12345"}, "12345")],
        ["c1", "f", ("float", {"value": "3.5"}, "3,5")],
        ["c1", "d", ("date", {"datevalue": "2024-01-02"}, "02/01/2024")],
        ["c1", "dt", ("date", {"datevalue": "2024-01-02T03:04:05"}, "02/01/2024 03:04")],
        ["c1", "b", ("boolean", {"booleanvalue": "true"}, "VERDADEIRO")],
        ["c1", "sum", ("float", {"value": "3", "formula": "of:=1+2"}, "3")],
        ["c1", "s", "00123"],
        ["c1", "r", "Região Norte"],
    ]
    table = one(ods(tmp_path, rows))
    assert table.sheet == "Folha1"
    assert triples(table) == [
        (3, "c1", "n", "12345"),
        (4, "c1", "f", "3.5"),
        (5, "c1", "d", "2024-01-02"),
        (6, "c1", "dt", "2024-01-02T03:04:05"),
        (7, "c1", "b", "true"),
        (8, "c1", "sum", "3"),
        (9, "c1", "s", "00123"),
        (10, "c1", "r", "Região Norte"),
    ]


def xls(tmp_path: Path, rows: list[list[Any]], name: str = "book.xls") -> Path:
    book = xlwt.Workbook()
    sheet = book.add_sheet("Plan1")
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    datetime_style = xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM:SS")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, dt.datetime):
                sheet.write(r, c, value, datetime_style)
            elif isinstance(value, dt.date):
                sheet.write(r, c, value, date_style)
            elif value is not None:
                sheet.write(r, c, value)
    path = tmp_path / name
    book.save(str(path))
    return path


def test_xls_numbers_dates_and_text(tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        [],
        [None, "Customer ID", "Attribute", "Value"],
        [None, "c1", "n", 12345],
        [None, "c1", "f", 12345.0],
        [None, "c1", "x", 3.5],
        [None, "c1", "d", dt.date(2024, 1, 2)],
        [None, "c1", "dt", dt.datetime(2024, 1, 2, 3, 4, 5)],
        [None, "c1", "b", True],
        [None, "c1", "s", "00123"],
    ]
    table = one(xls(tmp_path, rows))
    assert table.sheet == "Plan1"
    assert table.headers == ("Customer ID", "Attribute", "Value")
    assert triples(table) == [
        (3, "c1", "n", "12345"),
        (4, "c1", "f", "12345"),
        (5, "c1", "x", "3.5"),
        (6, "c1", "d", "2024-01-02"),
        (7, "c1", "dt", "2024-01-02T03:04:05"),
        (8, "c1", "b", "true"),
        (9, "c1", "s", "00123"),
    ]


# ----------------------------------------------------------------------------- files in general


def test_load_concatenates_files_in_the_order_given(tmp_path: Path) -> None:
    first = write(tmp_path, "b.csv", "customer_id,attribute,value\nc1,a,1\n")
    second = xlsx(tmp_path, {"S": [HEADER, ["c2", "b", "2"]]}, name="a.xlsx")
    tables = load([first, second])
    assert [(t.source, t.sheet, list(t.customer_ids)) for t in tables] == [
        ("b.csv", "", ["c1"]),
        ("a.xlsx", "S", ["c2"]),
    ]


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^nope\.csv: file not found$"):
        load_file(tmp_path / "nope.csv")


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InputError, match="not a file"):
        load_file(tmp_path / "dir.csv")


def test_unsupported_extension_lists_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"unsupported file type '\.json'; expected one of .csv"):
        load_file(write(tmp_path, "in.json", "{}"))


def test_file_above_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "customer_id,attribute,value\nc1,a,1\n")
    with pytest.raises(InputError, match="file is too large"):
        load_file(path, LoadOptions(max_file_bytes=10))


@pytest.mark.parametrize("name", ["customers.csv", "customers.xlsx"])
def test_bytes_already_read_load_as_the_file_does(name: str) -> None:
    path = Path(__file__).resolve().parents[1] / "samples" / name
    (from_file,) = load_file(path)
    (from_bytes,) = load_bytes(path.read_bytes(), f"elsewhere/{name}")
    assert from_bytes == from_file


def test_bytes_are_checked_like_a_file(tmp_path: Path) -> None:
    zipped = xlsx(tmp_path, {"S": [HEADER, ["c1", "a", "1"]]}).read_bytes()
    with pytest.raises(InputError, match=r"^in\.csv: this looks like an Excel"):
        load_bytes(zipped, "in.csv")
    with pytest.raises(InputError, match=r"^in\.xls: not a valid XLS workbook: it is a zip"):
        load_bytes(zipped, "in.xls")
    with pytest.raises(InputError, match="file is too large"):
        load_bytes(zipped, "in.xlsx", LoadOptions(max_file_bytes=10))
    with pytest.raises(InputError, match="unsupported file type"):
        load_bytes(zipped, "in.zip")


def test_committed_samples_load_with_their_deliberate_problems() -> None:
    samples = Path(__file__).resolve().parents[1] / "samples"
    csv_table, xlsx_table = load([samples / "customers.csv", samples / "customers.xlsx"])
    assert len(set(csv_table.customer_ids) - {""}) == 40
    assert "" in csv_table.customer_ids
    assert "" in csv_table.values
    assert "João Gonçalves" in csv_table.values
    assert "00123" in csv_table.values
    assert xlsx_table.headers == ("Customer ID", "Attribute", "Value")
    assert not set(xlsx_table.customer_ids) & set(csv_table.customer_ids)
    assert {"true", "false", "20240000"} <= set(xlsx_table.values)
    assert "" in xlsx_table.values


# ----------------------------------------------------------------------------- property


_cell_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(',;\t|"\n\r \u00a0xé€')),
        st.characters(exclude_categories=("Cs", "Cc")),
    ),
    max_size=8,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(st.tuples(_cell_text, _cell_text, _cell_text), max_size=15),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    lineterminator=st.sampled_from(["\r\n", "\n"]),
    bom=st.booleans(),
)
def test_any_csv_written_by_csv_writer_loads_back_exactly(
    tmp_path: Path,
    rows: list[tuple[str, str, str]],
    delimiter: str,
    quoting: Any,
    lineterminator: str,
    bom: bool,
) -> None:
    # csv.writer leaves a lone "\r" unquoted when the line terminator is "\n", and then
    # the file really does have a line break there: not a case of reading back.
    lone_cr = any("\r" in cell for row in rows for cell in row)
    assume(lineterminator == "\r\n" or quoting != csv.QUOTE_MINIMAL or not lone_cr)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator=lineterminator)
    writer.writerow(HEADER)
    writer.writerows(rows)
    path = write(tmp_path, "prop.csv", ("\ufeff" if bom else "") + out.getvalue())
    table = one(path)
    expected = [
        (number, *(cell.strip() for cell in row))
        for number, row in enumerate(rows, start=2)
        if any(cell.strip() for cell in row)
    ]
    assert triples(table) == expected


def test_a_title_above_the_header_of_a_sheet_is_skipped_and_row_numbers_stay_true(
    tmp_path: Path,
) -> None:
    path = xlsx(
        tmp_path,
        {"Clientes": [["Clientes 2026"], [], HEADER, ["c1", "a", "1"], ["c2", "b", "2"]]},
    )
    [table] = load_file(path)
    assert triples(table) == [(4, "c1", "a", "1"), (5, "c2", "b", "2")]


def test_a_sheet_whose_header_is_nowhere_near_the_top_names_the_first_row(
    tmp_path: Path,
) -> None:
    path = xlsx(tmp_path, {"S": [["Title"], *[["x"]] * 12, HEADER, ["c1", "a", "1"]]})
    with pytest.raises(InputError, match=r"headers found in row 1: 'Title'"):
        load_file(path)
