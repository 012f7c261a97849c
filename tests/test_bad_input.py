"""Bad input through the real command: every file a user (or an attacker) could hand the
job gets a clear message naming the file (and sheet, row, column where that helps) and
the right exit code: 2 when the file is unusable, 1 when some rows are invalid, 0
otherwise. Never a traceback, never a hang, never unbounded memory.

Most cases run ``bulk-sync sync FILE --dry-run --report R`` in-process (click's
CliRunner); a few run as a real process to be sure nothing reaches stderr but the
message. Then hypothesis throws random and mutated bytes at the loader.
"""

from __future__ import annotations

import csv
import io
import os
import random
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlwt
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table as OdsTable
from odf.table import TableCell, TableRow
from odf.text import P

from bulk_sync.cli import cli
from bulk_sync.emulator import EmulatorThread
from bulk_sync.errors import InputError
from bulk_sync.loading import load_file
from bulk_sync.models import Table
from bulk_sync.report import Journal, journal_path_for
from helpers import report_lines

HEADER = ["customer_id", "attribute", "value"]
HEADER_LINE = b"customer_id,attribute,value\r\n"

pytestmark = pytest.mark.timeout(60)  # nothing here may hang


# ----------------------------------------------------------------------------- helpers


def dry_run(path: Path | str, report: Path, *extra: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["sync", str(path), "--dry-run", "--report", str(report), "--no-progress", *extra],
        env={"IC_API_TOKEN": ""},
    )


def check_clean(result: Result) -> None:
    """No traceback and no exception escaped click: every failure is a message."""
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)


def xlsx(path: Path, rows: list[list[Any]], **sheet_options: Any) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    for row in rows:
        ws.append(row)
    for cells in sheet_options.get("merge", ()):
        ws.merge_cells(cells)
    wb.save(path)
    return path


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([HEADER, *rows])
    return out.getvalue().encode()


# -- a minimal XLSX with a shared-strings table, written part by part --------------------

_CT = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>'
)
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def _row(r: int, *indices: int) -> str:
    cells = "".join(
        f'<c r="{col}{r}" t="s"><v>{i}</v></c>' for col, i in zip("ABC", indices, strict=True)
    )
    return f'<row r="{r}">{cells}</row>'


def handmade_xlsx(
    path: Path, *, shared_strings: Callable[[Any], None], sheet: str | None = None
) -> Path:
    """An XLSX whose ``xl/sharedStrings.xml`` is streamed by ``shared_strings(file)``
    (so a huge, highly compressible part costs no memory to build). Strings 0-5 are
    customer_id, attribute, value, c1, a, and the value of row 2."""
    if sheet is None:
        sheet = (
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet {_NS}><sheetData>'
            f"{_row(1, 0, 1, 2)}{_row(2, 3, 4, 5)}</sheetData></worksheet>"
        )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", _CT)
        z.writestr("_rels/.rels", _RELS)
        z.writestr("xl/workbook.xml", _WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        z.writestr("xl/worksheets/sheet1.xml", sheet)
        info = zipfile.ZipInfo("xl/sharedStrings.xml")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            shared_strings(f)
    return path


_SST_HEAD = (
    f'<?xml version="1.0" encoding="UTF-8"?><sst {_NS}><si><t>customer_id</t></si>'
    "<si><t>attribute</t></si><si><t>value</t></si><si><t>c1</t></si><si><t>a</t></si>"
).encode()


def one_huge_string(megabytes: int) -> Callable[[Any], None]:
    def write(f: Any) -> None:
        f.write(_SST_HEAD + b"<si><t>")
        block = b"A" * (1 << 20)
        for _ in range(megabytes):
            f.write(block)
        f.write(b"</t></si></sst>")

    return write


def millions_of_strings(megabytes: int) -> Callable[[Any], None]:
    def write(f: Any) -> None:
        f.write(_SST_HEAD + b"<si><t>v</t></si>")
        block = b"<si><t>x</t></si>" * ((1 << 20) // 17)
        for _ in range(megabytes):
            f.write(block)
        f.write(b"</sst>")

    return write


_MEASURED = """
import atexit, sys
def peak(path):
    try:
        with open("/proc/self/status") as f:
            kib = next(line.split()[1] for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        kib = "0"
    with open(path, "w") as out:
        out.write(kib)
atexit.register(peak, sys.argv[1])
sys.argv = ["bulk-sync", *sys.argv[2:]]
from bulk_sync.cli import main
main()
"""


def run_process(args: list[str], cwd: Path) -> tuple[int, str, str, int]:
    """Run ``bulk-sync ARGS`` as a process: (exit code, stdout, stderr, peak RSS in KiB,
    0 where /proc cannot say). The peak is the process's own (VmHWM): what wait4 reports
    includes the memory of the parent it was forked from."""
    env = dict(os.environ, IC_API_TOKEN="")
    env.pop("BULK_SYNC_DEBUG", None)
    peak = cwd / "peak.txt"
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(peak), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    kib = int(peak.read_text() or 0) if peak.exists() else 0
    return done.returncode, done.stdout, done.stderr, kib


# ----------------------------------------------------------------------------- the corpus

# name -> (file bytes or a builder, exit code, message fragments that must appear)
Builder = Callable[[Path], Path]


def _bytes(name: str, data: bytes) -> Builder:
    def build(d: Path) -> Path:
        path = d / name
        path.write_bytes(data)
        return path

    return build


def _truncated_xlsx(d: Path) -> Path:
    whole = xlsx(d / "whole.xlsx", [HEADER, ["c1", "a", "1"]]).read_bytes()
    path = d / "truncated.xlsx"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    return path


def _ole_named_xlsx(d: Path) -> Path:
    path = d / "protected.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(random.Random(1).randbytes(4000)))
    return path


def _garbage_ole_xls(d: Path) -> Path:
    path = d / "broken.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(random.Random(2).randbytes(4000)))
    return path


def _zip_without_workbook(d: Path) -> Path:
    path = d / "letter.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("word/document.xml", "<w/>")
    return path


def _billion_laughs(d: Path) -> Path:
    entities = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10)
    )
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE worksheet [{entities}]>'
        f"<worksheet {_NS}><sheetData>{_row(1, 0, 1, 2)}"
        '<row r="2"><c r="A2" t="s"><v>3</v></c><c r="B2" t="s"><v>4</v></c>'
        '<c r="C2" t="inlineStr"><is><t>&a9;</t></is></c></row></sheetData></worksheet>'
    )
    return handmade_xlsx(d / "laughs.xlsx", shared_strings=one_huge_string(0), sheet=sheet)


def _only_blank_lines(d: Path) -> Path:
    path = d / "blank.csv"
    path.write_bytes(b"\r\n\r\n   \r\n")
    return path


def _unclosed_quote(d: Path) -> Path:
    path = d / "quote.csv"
    path.write_bytes(HEADER_LINE + b'c1,a,"never closed\r\nc2,b,2\r\nc3,c,3\r\n')
    return path


def _huge_csv_cell(d: Path) -> Path:
    path = d / "bigcell.csv"
    path.write_bytes(HEADER_LINE + b"c1,a,x\r\nc2,b," + b"y" * (1 << 20) + b"\r\n")
    return path


def _binary_named_csv(d: Path) -> Path:
    # (UTF-16/32 text without a BOM is read since issue 15: tests/test_real_world.py)
    path = d / "utf16.csv"
    path.write_bytes(bytes(range(32)) * 40)
    return path


def _missing_columns(d: Path) -> Path:
    path = d / "columns.csv"
    path.write_bytes(b"id,name,val\r\nc1,a,1\r\n")
    return path


def _hidden_sheet_has_the_data(d: Path) -> Path:
    wb = openpyxl.Workbook()
    hidden = wb.active
    hidden.title = "Secret"
    hidden.append(HEADER)
    hidden.append(["h1", "a", "x"])
    hidden.sheet_state = "hidden"
    cover = wb.create_sheet("Cover")
    cover.append(["This workbook is for internal use"])
    wb.active = 1
    path = d / "hidden.xlsx"
    wb.save(path)
    return path


def _garbled_xls(d: Path) -> Path:
    # 64 zero bytes after the compound-file header: the reader's sector chains go wrong
    # and it asks for 8 GB (it would abort the whole process if it ran in-process).
    valid = VALID[".xls"]
    path = d / "garbled.xls"
    path.write_bytes(valid[:512] + bytes(64) + valid[512:])
    return path


def _xls_directory_past_the_end(d: Path) -> Path:
    data = bytearray(VALID[".xls"])
    data[0x30:0x34] = b"\xff\xff\xff\x7f"  # first directory sector
    path = d / "dir.xls"
    path.write_bytes(bytes(data))
    return path


def _shared_strings_declaring_billions(padding: int) -> Builder:
    def build(d: Path) -> Path:
        def write(f: Any) -> None:
            f.write(_SST_HEAD.replace(b"<sst ", b'<sst uniqueCount="4000000000" '))
            f.write(b"<si><t>v</t></si>")
            if padding:  # incompressible: makes a file too big for the isolated reader
                f.write(b"<si><t>" + random.Random(8).randbytes(padding).hex().encode())
                f.write(b"</t></si>")
            f.write(b"</sst>")

        name = f"sst{padding}.xlsx"
        return handmade_xlsx(d / name, shared_strings=write)

    return build


UNUSABLE: list[Any] = [
    pytest.param(_bytes("empty.csv", b""), ["empty.csv", "file is empty"], id="empty-csv"),
    pytest.param(_bytes("empty.xlsx", b""), ["empty.xlsx", "file is empty"], id="empty-xlsx"),
    pytest.param(_bytes("empty.ods", b""), ["empty.ods", "file is empty"], id="empty-ods"),
    pytest.param(_only_blank_lines, ["blank.csv", "no header row"], id="blank-lines"),
    pytest.param(
        _bytes("binary.csv", random.Random(3).randbytes(20_000)),
        ["binary.csv", "binary data"],
        id="binary-csv",
    ),
    pytest.param(
        _bytes("garbage.xlsx", random.Random(4).randbytes(20_000)),
        ["garbage.xlsx", "not a valid XLSX workbook"],
        id="garbage-xlsx",
    ),
    pytest.param(
        _bytes("garbage.ods", random.Random(5).randbytes(20_000)),
        ["garbage.ods", "not a valid ODS workbook"],
        id="garbage-ods",
    ),
    pytest.param(
        _bytes("garbage.xls", b"hello, I am a text file\r\n" * 50),
        ["garbage.xls", "not a valid XLS workbook", ".csv"],
        id="text-named-xls",
    ),
    pytest.param(
        _bytes("zip.csv", b"PK\x03\x04" + bytes(100)), ["zip.csv", "workbook"], id="zip-named-csv"
    ),
    pytest.param(
        _bytes("report.pdf.csv", b"%PDF-1.7\n" + bytes(100)), ["report.pdf.csv", "PDF"], id="pdf"
    ),
    pytest.param(_truncated_xlsx, ["truncated.xlsx", "damaged or incomplete"], id="truncated-zip"),
    pytest.param(_ole_named_xlsx, ["protected.xlsx", "rename it to .xls"], id="ole-named-xlsx"),
    pytest.param(_garbage_ole_xls, ["broken.xls", "not a valid XLS workbook"], id="garbage-xls"),
    pytest.param(_zip_without_workbook, ["letter.xlsx", "without a workbook"], id="zip-no-book"),
    pytest.param(_billion_laughs, ["laughs.xlsx", "Sheet1", "entity"], id="billion-laughs"),
    pytest.param(_garbled_xls, ["garbled.xls", "damaged", "memory"], id="garbled-xls-sectors"),
    pytest.param(
        _xls_directory_past_the_end, ["dir.xls", "not a valid XLS", "past end"], id="xls-header"
    ),
    pytest.param(
        _shared_strings_declaring_billions(0),
        ["sst0.xlsx", "declares 4,000,000,000 strings"],
        id="sst-declares-4-billion-strings",
    ),
    pytest.param(
        _shared_strings_declaring_billions(1_500_000),
        ["sst1500000.xlsx", "declares 4,000,000,000 strings"],
        id="sst-declares-4-billion-strings-in-a-3MB-file",
    ),
    pytest.param(_unclosed_quote, ["quote.csv", "row 2", "never closed"], id="unclosed-quote"),
    pytest.param(_huge_csv_cell, ["bigcell.csv", "row 3", "100,000"], id="1MB-csv-cell"),
    pytest.param(
        _binary_named_csv, ["utf16.csv", "--encoding utf-16 or --encoding utf-32"], id="binary-csv"
    ),
    pytest.param(
        _missing_columns,
        ["columns.csv", "missing columns 'customer_id', 'attribute', 'value'", "'id'"],
        id="missing-columns",
    ),
    pytest.param(
        _hidden_sheet_has_the_data,
        ["hidden.xlsx", "sheet 'Cover'", "missing columns"],
        id="only-a-hidden-sheet-has-the-columns",
    ),
    pytest.param(
        _bytes("notes.json", b"{}"), ["notes.json", "unsupported file type '.json'"], id="json"
    ),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("build", "fragments"), UNUSABLE)
def test_an_unusable_file_is_refused_with_exit_2_and_a_message_naming_it(
    tmp_path: Path, build: Builder, fragments: list[str]
) -> None:
    path = build(tmp_path)
    report = tmp_path / "report.csv"
    result = dry_run(path, report)
    check_clean(result)
    assert result.exit_code == 2, result.output
    first = result.output.strip().splitlines()[0]
    assert first.startswith("bulk-sync: error: "), result.output
    for fragment in fragments:
        assert fragment in first, (fragment, first)
    assert not report.exists(), "an unusable input must not produce a report"


def test_a_directory_given_as_input_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "exports.csv"
    folder.mkdir()
    result = dry_run(folder, tmp_path / "r.csv")
    check_clean(result)
    assert result.exit_code == 2
    assert "exports.csv" in result.output
    assert "folder" in result.output or "directory" in result.output


def test_a_missing_file_is_refused_and_named(tmp_path: Path) -> None:
    result = dry_run(tmp_path / "typo.csv", tmp_path / "r.csv")
    check_clean(result)
    assert result.exit_code == 2
    assert "typo.csv" in result.output
    assert "not found" in result.output


@pytest.mark.skipif(
    os.geteuid() == 0, reason="running as root: file permissions do not stop root from reading"
)
def test_a_file_without_read_permission_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.csv"
    path.write_bytes(csv_bytes([["c1", "a", "1"]]))
    path.chmod(0)
    result = dry_run(path, tmp_path / "r.csv")
    check_clean(result)
    assert result.exit_code == 2
    assert "secret.csv" in result.output
    assert "permission" in result.output


def test_one_bad_file_among_good_ones_stops_everything_and_names_it(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_bytes(csv_bytes([["c1", "a", "1"]]))
    bad = _truncated_xlsx(tmp_path)
    report = tmp_path / "r.csv"
    result = CliRunner().invoke(
        cli,
        ["sync", str(good), str(bad), "--dry-run", "--report", str(report)],
        env={"IC_API_TOKEN": ""},
    )
    check_clean(result)
    assert result.exit_code == 2
    assert "truncated.xlsx" in result.output
    assert "good.csv" not in result.output
    assert not report.exists()


# -- usable files with invalid rows: exit 1, each problem located ------------------------


def test_header_only_files_are_an_empty_run_with_exit_0(tmp_path: Path) -> None:
    for path in (
        tmp_path / "header.csv",
        xlsx(tmp_path / "header.xlsx", [HEADER]),
    ):
        if path.suffix == ".csv":
            path.write_bytes(HEADER_LINE)
        report = tmp_path / f"{path.stem}-{path.suffix[1:]}-report.csv"
        result = dry_run(path, report)
        check_clean(result)
        assert result.exit_code == 0, result.output
        assert report_lines(report) == []
        assert "0 rows" in result.output


def test_ragged_csv_rows_are_padded_or_flagged_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_bytes(
        HEADER_LINE
        + b"c1,a,1\r\n"  # 2: fine
        + b"c2,a\r\n"  # 3: one field short: empty value
        + b"c3,a,3,surplus\r\n"  # 4: a field too many, not empty
        + b"c4,a,4,\r\n"  # 5: a trailing delimiter is harmless
        + b"c5\r\n"  # 6: two fields short
        + b"c6,a,6,,,,\r\n"  # 7: empty surplus fields are harmless
    )
    report = tmp_path / "r.csv"
    result = dry_run(path, report)
    check_clean(result)
    assert result.exit_code == 1, result.output
    lines = report_lines(report)
    assert [(r["row"], r["status"]) for r in lines] == [
        ("2", "valid"),
        ("3", "invalid"),
        ("4", "invalid"),
        ("5", "valid"),
        ("6", "invalid"),
        ("7", "valid"),
    ]
    assert "value is empty" in lines[1]["error"]
    assert "4 fields but the header has 3" in lines[2]["error"]
    assert "attribute is empty" in lines[4]["error"]
    assert "ragged.csv, row 3, column 'value': value is empty" in result.output


def test_embedded_nul_characters_make_their_rows_invalid(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(HEADER_LINE + b"c1,a,x\x00y\r\nc\x002,a,2\r\nc3,a,3\r\n")
    report = tmp_path / "r.csv"
    result = dry_run(path, report)
    check_clean(result)
    assert result.exit_code == 1, result.output
    lines = report_lines(report)
    assert [r["status"] for r in lines] == ["invalid", "invalid", "valid"]
    assert "U+0000" in lines[0]["error"]
    assert "U+0000" in lines[1]["error"]
    assert "nul.csv, row 2, column 'value': value contains the control character U+0000" in (
        result.output
    )


def test_invalid_utf8_falls_back_to_cp1252_or_with_a_forced_encoding_names_the_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(HEADER_LINE + b"c1,a,caf\xe9\r\nc2,a,\x80uro\r\n")
    report = tmp_path / "r.csv"
    result = dry_run(path, report)
    check_clean(result)
    assert result.exit_code == 0, result.output
    assert [r["value"] for r in report_lines(report)] == ["café", "€uro"]

    forced = dry_run(path, tmp_path / "r2.csv", "--encoding", "utf-8")
    check_clean(forced)
    assert forced.exit_code == 2
    assert "latin.csv" in forced.output
    assert "byte 0xE9 on line 2" in forced.output
    assert "--encoding" in forced.output


@pytest.mark.parametrize(
    ("utf8_text", "line"),
    [("José".encode(), 2), ("Łódź".encode(), 2), ("東京".encode(), 2)],
)
def test_a_file_mixing_utf8_and_cp1252_is_refused_not_sent_as_mojibake(
    tmp_path: Path, utf8_text: bytes, line: int
) -> None:
    """Not UTF-8, so cp1252 (DESIGN.md section 4); but a line in UTF-8 would then be
    sent as mojibake ('JosÃ©'), exit 0. Exit 2 naming both lines; --encoding decides."""
    path = tmp_path / "mixed.csv"
    path.write_bytes(HEADER_LINE + b"c1,name," + utf8_text + b"\r\nc2,name,caf\xe9\r\n")
    result = dry_run(path, tmp_path / "r.csv")
    check_clean(result)
    assert result.exit_code == 2, result.output
    assert "mixed.csv" in result.output
    assert f"line {line} holds UTF-8 text" in result.output
    assert "byte 0xE9 on line 3" in result.output
    assert "--encoding" in result.output
    forced = dry_run(path, tmp_path / "r2.csv", "--encoding", "latin-1")
    assert forced.exit_code in (0, 1), forced.output  # (1: a C1 control read from UTF-8)
    assert report_lines(tmp_path / "r2.csv")[1]["value"] == "café"


@pytest.mark.parametrize(
    "cp1252_text",
    ["Região Norte; „Fuß“ “ÄRGER”", "SÃO PAULO ©2024 É… Ü¹", "Straße – Größe ½ ¾ µ"],
)
def test_a_cp1252_file_is_still_read_as_cp1252(tmp_path: Path, cp1252_text: str) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(HEADER_LINE + b'c1,a,"' + cp1252_text.encode("cp1252") + b'"\r\n')
    result = dry_run(path, tmp_path / "r.csv")
    assert result.exit_code == 0, result.output
    assert report_lines(tmp_path / "r.csv")[0]["value"] == cp1252_text


def test_merged_cells_give_their_value_to_the_top_left_cell_only(tmp_path: Path) -> None:
    path = xlsx(
        tmp_path / "merged.xlsx",
        [HEADER, ["c1", "a", "1"], [None, "b", "2"], ["c3", "a", "3"], ["c4", "wide", None]],
        merge=["A2:A3", "B5:C5"],
    )
    report = tmp_path / "r.csv"
    result = dry_run(path, report)
    check_clean(result)
    assert result.exit_code == 1, result.output
    lines = report_lines(report)
    assert [(r["sheet"], r["row"], r["status"]) for r in lines] == [
        ("Data", "2", "valid"),
        ("Data", "3", "invalid"),
        ("Data", "4", "valid"),
        ("Data", "5", "invalid"),
    ]
    assert "customer id is empty" in lines[1]["error"]
    assert "value is empty" in lines[3]["error"]
    assert "merged.xlsx, sheet 'Data', row 3, column 'customer_id'" in result.output


def test_hidden_sheets_are_read_only_when_named(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    hidden = wb.active
    hidden.title = "Old"
    hidden.append(HEADER)
    hidden.append(["h1", "a", "stale"])
    hidden.sheet_state = "hidden"
    visible = wb.create_sheet("Current")
    visible.append(HEADER)
    visible.append(["v1", "a", "fresh"])
    wb.active = 1
    path = tmp_path / "book.xlsx"
    wb.save(path)

    for extra, expected in (
        ((), [("Current", "v1")]),
        (("--all-sheets",), [("Current", "v1")]),
        (("--sheet", "Old"), [("Old", "h1")]),
    ):
        report = tmp_path / f"r{len(extra)}{extra[-1] if extra else ''}.csv"
        result = dry_run(path, report, *extra)
        check_clean(result)
        assert result.exit_code == 0, result.output
        assert [(r["sheet"], r["customer_id"]) for r in report_lines(report)] == expected


def test_a_megabyte_cell_in_a_workbook_is_kept_whole(tmp_path: Path) -> None:
    # CSV refuses a cell over 100,000 characters (an unclosed quote, most likely: see
    # the corpus above); a workbook cell cannot come from a stray quote. (Excel itself
    # stops at 32,767 characters, and so does openpyxl: the file is written by hand.)
    path = handmade_xlsx(tmp_path / "big.xlsx", shared_strings=one_huge_string(1))
    report = tmp_path / "r.csv"
    started = time.monotonic()
    result = dry_run(path, report)
    assert time.monotonic() - started < 10
    check_clean(result)
    assert result.exit_code == 0, result.output
    (line,) = report_lines(report)
    assert line["value"] == "A" * (1 << 20)
    assert (line["customer_id"], line["status"]) == ("c1", "valid")


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_100k_attributes_for_one_customer_load_validate_and_upload(
    tmp_path: Path, api_token: str, emulator_thread: Callable[..., EmulatorThread]
) -> None:
    path = tmp_path / "wide.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(("C1", f"attr_{i:06d}", f"value {i}") for i in range(100_000))
    started = time.monotonic()
    result = dry_run(path, tmp_path / "dry.csv")
    check_clean(result)
    assert result.exit_code == 0, result.output
    assert "100000 rows, 1 customers" in result.output
    assert time.monotonic() - started < 15

    server = emulator_thread()
    # One request with every attribute (2.6 MB) is more than the server takes (HTTP 413):
    # every row fails, with the server's reason; split, it goes through.
    for extra, requests, status in (
        ((), 1, "failed"),
        (("--max-attributes-per-request", "30000"), 4, "ok"),
    ):
        report = tmp_path / f"up{requests}.csv"
        result = CliRunner().invoke(
            cli,
            ["sync", str(path), "--report", str(report), "--base-url", server.base_url, *extra],
            env={"IC_API_TOKEN": api_token},
        )
        check_clean(result)
        assert result.exit_code == (0 if status == "ok" else 1), result.output
        assert f"requests {requests}, retries 0" in result.output
        lines = report_lines(report)
        assert len(lines) == 100_000
        assert {r["status"] for r in lines} == {status}
        if status == "failed":
            assert {r["http_status"] for r in lines} == {"413"}
            assert "body size" in lines[0]["error"]
    assert len(server.state.customers["C1"]) == 100_000
    assert server.state.customers["C1"]["attr_099999"] == "value 99999"


# -- resume and retry read reports: broken ones are input too ------------------------------


def test_broken_reports_given_to_resume_or_retry_are_refused_with_their_line(
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes([["c1", "a", "1"]]))
    garbled = tmp_path / "old.csv.journal.jsonl"
    with Journal.open(garbled, {"report": "old.csv"}) as journal:
        journal.append([["in.csv", "", 2, "c1", "a", "1", "ok", 200, "", 1]])
    with garbled.open("ab") as f:
        f.write(b"this is not json\n")
        f.write(b'["in.csv","",3,"c2","a","2","ok",200,"",1]\n')
    wrong_status = tmp_path / "status.csv"
    wrong_status.write_text(
        "source,sheet,row,customer_id,attribute,value,status,http_status,error,attempts\r\n"
        "in.csv,,2,c1,a,1,done,200,,1\r\n"
    )
    binary = tmp_path / "binary.csv"
    binary.write_bytes(random.Random(6).randbytes(5000))
    cases = [
        (garbled, ["old.csv.journal.jsonl", "row 3", "garbled journal line"]),
        (wrong_status, ["status.csv", "row 2", "unknown status 'done'"]),
        (tmp_path / "nothing.csv", ["nothing.csv", "neither the report nor its journal"]),
    ]
    for bad, fragments in cases:
        result = dry_run(src, tmp_path / "new.csv", "--resume", str(bad))
        check_clean(result)
        assert result.exit_code == 2, (bad, result.output)
        for fragment in fragments:
            assert fragment in result.output, (fragment, result.output)
    for bad in (wrong_status, binary):
        result = CliRunner().invoke(
            cli,
            ["retry", str(bad), "--report", str(tmp_path / "retried.csv")],
            env={"IC_API_TOKEN": "0" * 64},
        )
        check_clean(result)
        assert result.exit_code == 2, (bad, result.output)
        assert bad.name in result.output
    assert not journal_path_for(tmp_path / "new.csv").exists()


# -- as real processes: only the message reaches stderr ------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_as_a_real_process_no_traceback_reaches_stderr(tmp_path: Path) -> None:
    corpus = [
        _bytes("binary.csv", random.Random(7).randbytes(5000))(tmp_path),
        _truncated_xlsx(tmp_path),
        _billion_laughs(tmp_path),
        _bytes("empty.xlsx", b"")(tmp_path),
    ]
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    corpus.append(folder)
    for path in corpus:
        code, out, err, _ = run_process(
            ["sync", str(path), "--dry-run", "--report", str(tmp_path / "r.csv")], tmp_path
        )
        assert code == 2, (path, err)
        assert "Traceback" not in err + out
        assert err.startswith("bulk-sync: error: "), err
        assert path.name in err
        assert len(err.strip().splitlines()) == 1, err
    nul = tmp_path / "nul.csv"
    nul.write_bytes(HEADER_LINE + b"c1,a,x\x00y\r\nc2,a,2\r\n")
    code, out, err, _ = run_process(
        ["sync", str(nul), "--dry-run", "--report", str(tmp_path / "nul-report.csv")], tmp_path
    )
    assert code == 1, err
    assert "Traceback" not in err + out
    assert "nul.csv, row 2, column 'value'" in out


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "shared_strings",
    [
        pytest.param(one_huge_string(250), id="one-250MB-string"),
        pytest.param(millions_of_strings(100), id="6-million-strings"),
    ],
)
def test_a_zip_bomb_is_refused_in_bounded_time_and_memory(
    tmp_path: Path, shared_strings: Callable[[Any], None]
) -> None:
    bomb = handmade_xlsx(tmp_path / "bomb.xlsx", shared_strings=shared_strings)
    assert bomb.stat().st_size < 4 * 1024 * 1024  # a small file...
    started = time.monotonic()
    code, out, err, peak_kib = run_process(
        ["sync", str(bomb), "--dry-run", "--report", str(tmp_path / "r.csv")], tmp_path
    )
    elapsed = time.monotonic() - started
    assert code == 2, err
    assert "Traceback" not in err + out
    assert "bomb.xlsx" in err
    assert "zip bomb" in err
    assert elapsed < 10
    assert peak_kib < 400 * 1024, f"peak memory {peak_kib // 1024} MiB"
    assert not (tmp_path / "r.csv").exists()


# ----------------------------------------------------------------------------- fuzzing


def _valid_files() -> dict[str, bytes]:
    rows = [["c1", "a", "1"], ["c2", "b", "=1+2"], ["c3", "c", "ção"]]
    out: dict[str, bytes] = {
        ".csv": csv_bytes(rows),
        ".tsv": csv_bytes(rows).replace(b",", b"\t"),
    }
    wb = openpyxl.Workbook()
    for row in [HEADER, *rows]:
        wb.active.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    out[".xlsx"] = buf.getvalue()
    book = xlwt.Workbook()
    sheet = book.add_sheet("S")
    for r, row in enumerate([HEADER, *rows]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    buf = io.BytesIO()
    book.save(buf)
    out[".xls"] = buf.getvalue()
    doc = OpenDocumentSpreadsheet()
    table = OdsTable(name="S")
    for row in [HEADER, *rows]:
        tr = TableRow()
        for value in row:
            cell = TableCell(valuetype="string")
            cell.addElement(P(text=value))
            tr.addElement(cell)
        table.addElement(tr)
    doc.spreadsheet.addElement(table)
    buf = io.BytesIO()
    doc.save(buf)
    out[".ods"] = buf.getvalue()
    return out


VALID = _valid_files()
EXTENSIONS = [".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"]


@st.composite
def file_bytes(draw: st.DrawFn, ext: str) -> bytes:
    seed = VALID.get(ext) or VALID[".xlsx" if ext.startswith(".xls") else ".csv"]
    how = draw(st.sampled_from(["random", "magic", "mutated", "truncated", "spliced"]))
    if how == "random":
        return draw(st.binary(max_size=3000))
    if how == "magic":  # the right first bytes, then garbage
        magic = seed[:8]
        return magic + draw(st.binary(max_size=3000))
    data = bytearray(seed)
    if how == "truncated":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if how == "spliced":
        at = draw(st.integers(0, len(data)))
        return bytes(data[:at]) + draw(st.binary(max_size=200)) + bytes(data[at:])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), ext=st.sampled_from(EXTENSIONS))
def test_the_loader_turns_any_bytes_into_tables_or_an_input_error(
    tmp_path: Path, data: st.DataObject, ext: str
) -> None:
    path = tmp_path / f"fuzz{ext}"
    path.write_bytes(data.draw(file_bytes(ext)))
    try:
        tables = load_file(path)
    except InputError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert message.startswith("fuzz"), message  # it names the file
        return
    for table in tables:
        assert isinstance(table, Table)
        n = len(table.rows)
        assert len(table.customer_ids) == len(table.attributes) == len(table.values) == n
        assert all(isinstance(v, str) for v in (*table.customer_ids, *table.values))


_cell = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(",;\t|\"\r\n \x00=+-@'")),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=10,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    header=st.sampled_from([HEADER, ["Customer ID", "Attribute", "Value", "extra"], ["x"]]),
    body=st.lists(st.lists(_cell, max_size=5), max_size=12),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]),
)
def test_any_csv_through_the_command_gives_a_report_or_a_message(
    tmp_path: Path, header: list[str], body: list[list[str]], encoding: str
) -> None:
    out = io.StringIO()
    csv.writer(out).writerows([header, *body])
    path = tmp_path / "fuzz.csv"
    try:
        path.write_bytes(out.getvalue().encode(encoding))
    except UnicodeEncodeError:
        path.write_bytes(out.getvalue().encode(encoding, "replace"))
    report = tmp_path / "fuzz-report.csv"
    report.unlink(missing_ok=True)
    result = dry_run(path, report)
    check_clean(result)
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code == 2:
        assert result.output.startswith("bulk-sync: error: fuzz.csv"), result.output
        assert not report.exists()
    else:
        lines = report_lines(report)
        assert {r["status"] for r in lines} <= {"valid", "invalid"}
        assert (result.exit_code == 1) == any(r["status"] == "invalid" for r in lines)
