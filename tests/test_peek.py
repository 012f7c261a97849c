"""peek(): a file's sheets, header and first rows, as the loader would find them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from openpyxl import Workbook

from bulk_sync.errors import InputError
from bulk_sync.loading import LoadOptions, load_bytes
from bulk_sync.loading.peek import peek

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def workbook(sheets: dict[str, list[list[object]]], hidden: tuple[str, ...] = ()) -> bytes:
    wb = Workbook()
    first = True
    for name, rows in sheets.items():
        ws = wb.active if first else wb.create_sheet(name)
        assert ws is not None
        ws.title = name
        first = False
        for row in rows:
            ws.append(row)
        if name in hidden:
            ws.sheet_state = "hidden"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_a_csv_with_other_headers_shows_them_and_the_first_rows() -> None:
    data = (SAMPLES / "other-headers" / "clientes-crm.csv").read_bytes()
    p = peek(data, "clientes-crm.csv")
    assert p.headers == ("NIF", "Campo", "Valor", "Notas")
    assert p.header_row == 1
    assert p.delimiter == ";"
    assert p.sample[0] == ("500100267", "gestor_conta", "Sérgio Conceição", "mudou em março")
    assert len(p.sample) == 3
    assert p.found == ()
    assert not p.complete
    assert p.sheets == ()
    assert p.column_label(2) == "field 3"


def test_the_options_columns_are_what_found_reports() -> None:
    data = (SAMPLES / "other-headers" / "clientes-crm.csv").read_bytes()
    options = LoadOptions(columns={"customer_id": "nif", "attribute": "CAMPO", "value": "Valor"})
    assert peek(data, "x.csv", options).complete
    wide = LoadOptions(wide=True, columns={"customer_id": "NIF"})
    assert peek(data, "x.csv", wide).complete


def test_blank_lines_above_the_header_keep_the_row_numbers() -> None:
    p = peek(b"\r\n\r\ncustomer_id,attribute,value\r\n1,a,b\r\n", "x.csv")
    assert p.header_row == 3
    assert p.complete


def test_a_workbook_lists_its_sheets_and_peeks_at_the_chosen_one() -> None:
    data = workbook(
        {
            "Notes": [["Read me first"]],
            "Data": [["Clientes 2026"], ["NIF", "Campo", "Valor"], ["1", "a", "b"]],
            "Old": [["customer_id", "attribute", "value"]],
        },
        hidden=("Old",),
    )
    p = peek(data, "book.xlsx")
    assert [(s.name, s.visible) for s in p.sheets] == [
        ("Notes", True),
        ("Data", True),
        ("Old", False),
    ]
    assert p.sheet == "Notes"  # the default: the first visible sheet
    # A title above headers not known yet: the row below it is offered for mapping.
    data_sheet = peek(data, "book.xlsx", LoadOptions(sheet="Data"))
    assert (data_sheet.header_row, data_sheet.headers) == (2, ("NIF", "Campo", "Valor"))
    assert not data_sheet.complete
    mapped = LoadOptions(
        sheet="Data", columns={"customer_id": "NIF", "attribute": "Campo", "value": "Valor"}
    )
    p = peek(data, "book.xlsx", mapped)
    assert (p.header_row, p.headers) == (2, ("NIF", "Campo", "Valor"))  # below the title
    assert p.sample == (("1", "a", "b"),)
    assert p.column_label(1) == "column B"


def test_a_file_that_is_not_what_its_name_says_is_refused() -> None:
    with pytest.raises(InputError, match=r"rename it to \.csv"):
        peek(b"customer_id,attribute,value\n", "x.xlsx")
    with pytest.raises(InputError, match="file is empty"):
        peek(b"", "x.csv")
    with pytest.raises(InputError, match="unsupported file type"):
        peek(b"x", "x.pdf")


def test_excel_sep_line_and_other_encodings_are_read_as_the_loader_reads_them() -> None:
    from bulk_sync.loading import load_bytes

    data = "sep=;\r\nNIF;Campo;Valor\r\n1;região;Évora\r\n".encode("cp1252")
    p = peek(data, "x.csv")
    assert (p.header_row, p.headers, p.delimiter) == (1, ("NIF", "Campo", "Valor"), ";")
    assert p.sample == (("1", "região", "Évora"),)
    mapped = LoadOptions(columns={"customer_id": "NIF", "attribute": "Campo", "value": "Valor"})
    (table,) = load_bytes(data, "x.csv", mapped)
    assert list(table.rows) == [p.header_row + 1]


@pytest.mark.parametrize(
    ("name", "column", "text"),
    [
        ("Formate.xls", 1, "1907-07-03"),  # a date in a header cell of an XLS
        ("base.ods", 9, "255:10:10"),  # an ODS duration
    ],
)
def test_the_header_is_read_as_the_loader_reads_it(name: str, column: int, text: str) -> None:
    """The page maps columns by their header text: a header the peek spells otherwise than
    the loader (2741 for 1907-07-03) shows the wrong name and maps nothing."""
    data = (Path(__file__).parent / "corpus" / "files" / name).read_bytes()
    seen = peek(data, name)
    assert seen.headers[column] == text
    with pytest.raises(InputError) as refused:  # the loader's message lists the headers
        load_bytes(data, name)
    assert repr(text) in str(refused.value)
