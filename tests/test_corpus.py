"""A corpus of real-world spreadsheets from public projects' test data (tests/corpus/,
origins and licences in its README): each file loads, or is refused with the message
a person can act on, and every cell sent is what LibreOffice shows, apart from the
documented differences (ISO dates, booleans, display-only number formats)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bulk_sync.cli import cli
from bulk_sync.errors import InputError
from bulk_sync.loading import load_file
from bulk_sync.loading.workbook import sheet_texts

CORPUS = Path(__file__).resolve().parent / "corpus"
MANIFEST: list[dict[str, Any]] = json.loads((CORPUS / "manifest.json").read_text("utf-8"))
LOADS = [e for e in MANIFEST if e["outcome"] == "loads"]
REFUSED = [e for e in MANIFEST if e["outcome"] == "refused"]


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["file"] for e in entries]


# ----------------------------------------------------------------------------- outcomes


@pytest.mark.parametrize("entry", REFUSED, ids=ids(REFUSED))
def test_refused_files_get_exit_2_and_a_message_a_person_can_act_on(
    entry: dict[str, Any], tmp_path: Path
) -> None:
    path = CORPUS / "files" / entry["file"]
    with pytest.raises(InputError) as caught:
        load_file(path)
    assert entry["message"] in str(caught.value)
    result = CliRunner().invoke(
        cli,
        ["sync", str(path), "--dry-run", "--no-progress", "--report", str(tmp_path / "r.csv")],
        env={"IC_API_TOKEN": ""},
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert entry["file"] in result.output


@pytest.mark.parametrize("entry", LOADS, ids=ids(LOADS))
def test_readable_files_load_and_a_wide_dry_run_sends_their_cells(
    entry: dict[str, Any], tmp_path: Path
) -> None:
    path = CORPUS / "files" / entry["file"]
    texts = sheet_texts(path)
    assert sum(len(c) for c in texts.values()) == entry["cells"]
    if not entry.get("id_header"):
        return
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"columns": {"customer_id": entry["id_header"]}}))
    report = tmp_path / "r.csv"
    result = CliRunner().invoke(
        cli,
        [
            "sync",
            str(path),
            "--dry-run",
            "--no-progress",
            "--wide",
            "--config",
            str(config),
            "--sheet",
            entry["sheet"],
            "--report",
            str(report),
        ],
        env={"IC_API_TOKEN": ""},
    )
    assert "Traceback" not in result.output
    assert result.exit_code == entry["exit"], result.output
    if result.exit_code == 2:  # e.g. a one-column sheet: nothing to send in a wide file
        assert f"bulk-sync: error: {entry['file']}" in result.output
        return
    sent = {(int(r["row"]), r["value"]) for r in csv.DictReader(report.open(encoding="utf-8"))}
    cells = {(row, text) for row, _, text in texts[entry["sheet"]]}
    assert {pair for pair in sent if pair[1]} <= cells  # every value sent is a cell's text


# ----------------------------------------------------------------------------- the cells

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_ISO = re.compile(r"\d{4}-\d\d-\d\d(?:T\d\d:\d\d:\d\d(?:\.\d+)?)?|-?\d+:\d\d:\d\d(?:\.\d+)?")
_MONTHS = {
    m: k + 1
    for k, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}


def _same_moment(shown: str, sent: str) -> bool:
    """Whether LibreOffice's date/time text and our ISO text name the same moment."""
    numbers = [float(n) for n in _NUMBER.findall(shown.replace("-", " "))]
    low = shown.lower()
    numbers += [float(v) for m, v in _MONTHS.items() if m in low]
    if "pm" in low and numbers and ":" in shown:
        hour_at = _NUMBER.findall(shown.split(":")[0])
        if hour_at and float(hour_at[-1]) < 12:
            numbers[numbers.index(float(hour_at[-1]))] += 12
    ours = [float(n) for n in _NUMBER.findall(sent.replace("-", " ").replace("T", " "))]
    for n in numbers:
        match = next((k for k, o in enumerate(ours) if o == n), None)
        if match is None:  # a two-digit year
            match = next((k for k, o in enumerate(ours) if o >= 1000 and o % 100 == n), None)
        if match is None:
            return False
        ours.pop(match)
    return all(o == 0 for o in ours)


def _shown_number(shown: str) -> tuple[float, float] | None:
    """The number LibreOffice shows, and the half-unit of its last digit."""
    text = shown.replace(",", "").replace("\u00a0", " ").strip()
    negative = (text.startswith("(") and text.endswith(")")) or text.startswith("-")
    text = re.sub(r"[^0-9.E+\-/ ]", "", text.strip("()-")).strip()
    fraction = re.fullmatch(r"(?:(\d+) )?(\d+)/(\d+)", text)
    if fraction:
        whole, num, den = fraction.groups()
        value = int(whole or 0) + int(num) / int(den)
        return (-value if negative else value), 0.5 / int(den)
    try:
        value = float(text)
    except ValueError:
        return None
    mantissa = text.split("E")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(text.split("E")[1]) if "E" in text else 0
    return (-value if negative else value), 0.5 * 10.0 ** (exponent - decimals)


def verdict(shown: str, sent: str) -> str | None:
    """Why what is sent may differ from what LibreOffice shows; None when it may not."""
    if shown == sent:
        return "same"
    if shown.upper() in ("TRUE", "FALSE") and sent == shown.lower():
        return "boolean"
    if _ISO.fullmatch(sent) and _same_moment(shown, sent):
        return "date or time as ISO text"
    if _NUMBER.fullmatch(sent):
        if not shown:
            return "display-only format: number hidden"
        if not any(ch.isdigit() for ch in shown) and float(sent) == 0:
            return "display-only format: zero shown as text"
        number = _shown_number(shown)
        if number is not None and (
            abs(float(sent) - number[0]) <= number[1] * 1.0001 + 1e-12
            or abs(float(sent) + number[0]) <= number[1] * 1.0001 + 1e-12  # literal ( )
        ):
            return "display-only format: exact number sent"
    return None


LIBREOFFICE = [e for e in LOADS if e["libreoffice"]]


def _libreoffice_sheet(entry: dict[str, Any], sheet: str, sheets: int) -> list[list[str]]:
    folder = CORPUS / "libreoffice" / entry["file"]
    stem = entry["file"].rsplit(".", 1)[0]
    path = folder / f"{stem}-{sheet}.csv"
    if not path.exists():  # LibreOffice names some sheets otherwise (code pages, BIFF3/4)
        others = sorted(folder.glob("*.csv"))
        assert sheets == 1, sheet
        assert len(others) == 1, others
        path = others[0]
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("entry", LIBREOFFICE, ids=ids(LIBREOFFICE))
def test_every_cell_sent_is_what_libreoffice_shows_or_a_documented_difference(
    entry: dict[str, Any],
) -> None:
    texts = sheet_texts(CORPUS / "files" / entry["file"])
    known = {(k["sheet"], k["row"], k["column"]): k for k in entry.get("known", [])}
    unexplained = []
    counts: dict[str, int] = {}
    for sheet, cells in texts.items():
        shown_rows = _libreoffice_sheet(entry, sheet, len(texts))
        shown = {
            (r + 1, c): v.strip()
            for r, row in enumerate(shown_rows)
            for c, v in enumerate(row)
            if v.strip()
        }
        sent = {(r, c): t for r, c, t in cells}
        for key in sorted(set(shown) | set(sent)):
            why = verdict(shown.get(key, ""), sent.get(key, ""))
            if why is None and (sheet, *key) in known:
                mistake = known[(sheet, *key)]
                assert (shown.get(key, ""), sent.get(key, "")) == (
                    mistake["shown"],
                    mistake["sent"],
                )
                why = "known: " + mistake["why"]
            if why is None:
                unexplained.append((sheet, key, shown.get(key, ""), sent.get(key, "")))
            else:
                counts[why] = counts.get(why, 0) + 1
    assert unexplained == []
    assert counts == entry["verdicts"]


# ----------------------------------------------------------------------------- the issue's files


def _cell(name: str, sheet: str | None, row: int, column: int) -> str:
    texts = sheet_texts(CORPUS / "files" / name)
    cells = texts[sheet] if sheet is not None else next(iter(texts.values()))
    return next((t for r, c, t in cells if (r, c) == (row, column)), "")


@pytest.mark.parametrize(
    ("name", "sheet", "row", "column", "sent"),
    [
        ("float2.xlsx", None, 1, 0, "00048929"),  # A1: zeros format, was 48929
        ("zero-padded-number.xlsx", None, 2, 0, "06083"),  # A1: was 6083
        ("float2.xlsx", None, 1, 4, "0.3%"),  # A2: was 0.00261493408061246
        ("57181.xlsm", "CCSInfo", 1, 4, "00:30:00"),  # A3: was 0.020833333333333332
        ("base.ods", "Sheet1", 2, 9, "255:10:10"),  # A3: was PT255H10M10S
        ("Formate.xls", "Blätt1", 1, 1, "1907-07-03"),  # A3: XLS date format
        ("float2.xlsx", None, 1, 7, "20.4100614385744"),  # A6: shown 20.41, exact sent
        ("sheet_name_parsing.xls", None, 1, 0, "Titel"),  # A5: was T\x00i\x00t\x00e\x00l\x00
        ("ex41187-19267.xls", None, 1, 0, "Hi Excel!"),  # A5: UTF-16 with NULs before
        ("richtext_example.xlsx", None, 1, 1, "Example richtext"),  # A5: was Examplerichtext
        ("formatted_inline_string.xlsx", None, 1, 0, "Regular Bold"),  # A5
        ("maccentraleurope.biff5.xls", None, 1, 8, "Ładowność"),  # A5: BIFF5 code page
        ("xlsx-stream-d-date-cell.xlsx", None, 5, 1, "2014-02-14"),  # t="d" ...Z, m/d/yy
    ],
)
def test_the_cells_named_in_issue_15_are_sent_as_a_person_sees_them(
    name: str, sheet: str | None, row: int, column: int, sent: str
) -> None:
    assert _cell(name, sheet, row, column) == sent


def test_biff5_bullets_and_quotes_are_decoded_by_the_files_code_page() -> None:
    texts = "".join(
        t for _, _, t in sheet_texts(CORPUS / "files" / "biff5-rich-text-string.xls")["Sheet1"]
    )
    assert "\u0095" not in texts
    assert "\u0092" not in texts
    assert "’" in texts


def test_a_workbook_encrypted_with_excels_default_password_is_read() -> None:
    assert _cell("protect.xlsx", None, 4, 1).startswith("При запуске")
    assert _cell("50833.xls", None, 1, 0) == "test cell value"
