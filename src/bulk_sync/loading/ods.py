"""ODS files python-calamine refuses although LibreOffice opens them, made readable: a
``content.xml`` indented with whitespace between the table elements ("Expecting
'table-cell', found 'Text(...)'"), and a package without its ``mimetype`` entry. The
package is rewritten in memory (whitespace after table tags dropped, the mimetype added)
and handed to python-calamine again.

Also: python-calamine gives an ODS duration (``office:time-value``) as its ISO-8601 text
(``PT255H10M10S``); :func:`duration_text` turns it into ``255:10:10`` as for the other
formats.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np

__all__ = ["cell_codes", "duration_text", "repaired"]

_TABLE_TAG_SPACE = re.compile(rb"(</?table:[^>]*>)\s+(?=<)")
_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
_DURATION = re.compile(r"-?PT(\d+)H(\d+)M(\d+)(?:\.(\d+))?S")


def repaired(data: Path | bytes) -> bytes | None:
    """The package with its content.xml un-indented and a mimetype entry; None when there
    is nothing to repair."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    try:
        source = zipfile.ZipFile(io.BytesIO(raw))
        names = source.namelist()
        if "content.xml" not in names:
            return None
        content = source.read("content.xml")
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError):
        return None
    flat = _TABLE_TAG_SPACE.sub(rb"\1", content)
    if flat == content and "mimetype" in names:
        return None
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        target.writestr(zipfile.ZipInfo("mimetype"), _MIMETYPE, zipfile.ZIP_STORED)
        for info in source.infolist():
            if info.filename == "mimetype":
                continue
            body = flat if info.filename == "content.xml" else source.read(info)
            target.writestr(info.filename, body)
    return out.getvalue()


def duration_text(value: str) -> str | None:
    """``PT255H10M10S`` as ``255:10:10`` (fractions of a second as milliseconds); None
    when ``value`` is not such a duration."""
    m = _DURATION.fullmatch(value)
    if m is None:
        return None
    hours, minutes, seconds, fraction = m.groups()
    total = int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    h, rest = divmod(total, 3600)
    mm, ss = divmod(rest, 60)
    frac = f".{(fraction + '000')[:3]}" if fraction and int(fraction) else ""
    sign = "-" if value.startswith("-") else ""
    return f"{sign}{h}:{mm:02d}:{ss:02d}{frac}"


_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_MAX_REPEAT = 1_048_576


def cell_codes(data: Path | bytes, sheet: str, columns: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Excel-style format codes for the ODS cells of ``columns`` whose shown text differs
    from the number in a way the rules keep: a percentage (``12.5%`` gives ``0.0%``), a
    zero-padded whole number (``00048929`` gives ``00000000``), a date-time at midnight
    shown without its time (``yyyy-mm-dd``). The 1-based rows of each code's cells, per
    column (as :func:`bulk_sync.loading.ooxml.cell_styles`)."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    try:
        content = zipfile.ZipFile(io.BytesIO(raw)).read("content.xml")
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError):
        return {}
    wanted = set(columns)
    found: dict[int, dict[str, list[int]]] = {}
    in_sheet = False
    row = 0
    col = 0
    row_repeat = 1
    try:
        for event, element in ET.iterparse(io.BytesIO(content), events=("start", "end")):  # noqa: S314
            tag = element.tag
            if tag == f"{{{_TABLE}}}table":
                if event == "start":
                    in_sheet = element.get(f"{{{_TABLE}}}name") == sheet
                    row = 0
                elif in_sheet:
                    break
                continue
            if not in_sheet:
                if event == "end":
                    element.clear()
                continue
            if tag == f"{{{_TABLE}}}table-row":
                if event == "start":
                    row_repeat = _repeat(element, "number-rows-repeated")
                    col = 0
                else:
                    row += row_repeat
                    element.clear()
                continue
            if tag in (f"{{{_TABLE}}}table-cell", f"{{{_TABLE}}}covered-table-cell"):
                if event == "start":
                    continue
                repeat = _repeat(element, "number-columns-repeated")
                code = _code_of(element) if wanted.intersection(range(col, col + repeat)) else None
                if code is not None:
                    for j in wanted.intersection(range(col, min(col + repeat, col + 16384))):
                        rows = found.setdefault(j, {}).setdefault(code, [])
                        rows.extend(range(row + 1, row + 1 + min(row_repeat, _MAX_REPEAT)))
                col += repeat
                element.clear()
    except ET.ParseError:
        return {}
    return {
        j: {code: np.array(rows, dtype=np.int64) for code, rows in codes.items()}
        for j, codes in found.items()
    }


def _repeat(element: ET.Element, name: str) -> int:
    try:
        return max(1, min(int(element.get(f"{{{_TABLE}}}{name}", "1")), _MAX_REPEAT))
    except ValueError:
        return 1


_MIDNIGHT = re.compile(r"-?\d{4,}-\d\d-\d\dT00:00(?::00(?:\.0*)?)?")


def _code_of(element: ET.Element) -> str | None:
    kind = element.get(f"{{{_OFFICE}}}value-type")
    if kind == "date":
        # A date-time at midnight whose text shows no time (Excel writes every ODS date
        # so): a date, as its style shows it.
        moment = element.get(f"{{{_OFFICE}}}date-value", "")
        if _MIDNIGHT.fullmatch(moment) and ":" not in "".join(element.itertext()):
            return "yyyy-mm-dd"
        return None
    if kind not in ("percentage", "float", "currency"):
        return None
    shown = "".join(element.itertext()).strip()
    if kind == "percentage":
        m = re.fullmatch(r"-?[\d,]*(?:\.(\d+))?\s?%", shown)
        if m is None:
            return None
        return "0" + (f".{'0' * len(m.group(1))}" if m.group(1) else "") + "%"
    try:
        value = float(element.get(f"{{{_OFFICE}}}value", ""))
    except ValueError:
        return None
    padded = value.is_integer() and value >= 0 and re.fullmatch(r"0\d+", shown) is not None
    return "0" * len(shown) if padded and int(shown) == int(value) else None
