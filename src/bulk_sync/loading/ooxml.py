"""The parts of an XLSX/XLSM package that python-calamine does not give: where the
workbook part is (found as readers find it, through the package relationships), the
sheets' parts, the 1904 date system, the number format of each cell style, and the style
of the cells of the columns a run needs.

Part names are matched as zip readers and Excel match them: a leading ``/`` dropped,
``\\`` read as ``/``, case ignored.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import posixpath
import re
import string
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np

from bulk_sync.numfmt import BUILTIN_FORMATS, Kind, parse

__all__ = ["Package", "column_index", "open_package"]

_REL_OFFICE_DOCUMENT = "/officeDocument"
_REL_WORKSHEET = "/worksheet"
_REL_STYLES = "/styles"


def _norm(name: str) -> str:
    return name.replace("\\", "/").lstrip("/").casefold()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(element: ET.Element, name: str) -> str | None:
    """An attribute by local name, whatever its namespace."""
    for key, value in element.attrib.items():
        if _local(key) == name:
            return value
    return None


def _xml(data: bytes) -> ET.Element:
    # ElementTree (expat) resolves no external entity and caps entity expansion.
    return ET.fromstring(utf8_xml(data))  # noqa: S314


@dataclass(frozen=True)
class Package:
    """What bulk_sync needs of an OOXML workbook package."""

    names: dict[str, str]  # normalized part name -> name in the zip
    workbook: str  # zip name of the workbook part
    sheets: dict[str, str] = field(default_factory=dict)  # sheet name -> zip name of its part
    date1904: bool = False
    styles: str | None = None  # zip name of the styles part
    # sheet name -> (kind: "worksheet", "macrosheet", "chartsheet", "dialogsheet", state:
    # "visible", "hidden", "veryHidden"), in workbook order
    kinds: dict[str, tuple[str, str]] = field(default_factory=dict)

    def read(self, archive: zipfile.ZipFile, name: str) -> bytes:
        return archive.read(name)


def _rels(archive: zipfile.ZipFile, names: dict[str, str], part: str) -> list[tuple[str, str]]:
    """(type, target part, normalized) of the relationships of ``part`` ("" = package)."""
    folder, base = posixpath.split(part)
    rels_name = _norm(posixpath.join(folder, "_rels", base + ".rels"))
    zip_name = names.get(rels_name)
    if zip_name is None:
        return []
    try:
        root = _xml(archive.read(zip_name))
    except (ET.ParseError, KeyError, ValueError):
        return []
    out = []
    for rel in root:
        if _local(rel.tag) != "Relationship" or rel.get("TargetMode") == "External":
            continue
        target = (rel.get("Target") or "").replace("\\", "/")
        resolved = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
        out.append((rel.get("Type") or "", _norm(posixpath.normpath(resolved))))
    return out


def find_workbook_part(names: Sequence[str]) -> str | None:
    """The zip name of the workbook part, from the names alone (no relationships read):
    for the container check. None when there is none."""
    normalized = {_norm(n): n for n in names}
    for candidate in ("xl/workbook.xml", "xl/workbook.bin", "workbook.xml", "workbook.bin"):
        if candidate in normalized:
            return normalized[candidate]
    for norm, name in normalized.items():
        if norm.endswith(("/workbook.xml", "/workbook.bin")) and "_rels" not in norm:
            return name
    return None


def workbook_part(archive: zipfile.ZipFile) -> str | None:
    """The zip name of the workbook part, as readers find it: the package's
    officeDocument relationship, else the usual names."""
    names = {_norm(n): n for n in archive.namelist()}
    for typ, target in _rels(archive, names, ""):
        if typ.endswith(_REL_OFFICE_DOCUMENT) and target in names:
            return names[target]
    return find_workbook_part(list(names.values()))


def open_package(archive: zipfile.ZipFile) -> Package | None:
    """The package's workbook, sheets and styles; None when it has no XML workbook."""
    names = {_norm(n): n for n in archive.namelist()}
    workbook = workbook_part(archive)
    if workbook is None or not _norm(workbook).endswith(".xml"):
        return None
    try:
        root = _xml(archive.read(workbook))
    except (ET.ParseError, KeyError, ValueError):
        return None
    rels = {}
    folder = posixpath.dirname(_norm(workbook))
    rels_name = names.get(
        _norm(posixpath.join(folder, "_rels", posixpath.basename(workbook) + ".rels"))
    )
    if rels_name is not None:
        try:
            rel_root = _xml(archive.read(rels_name))
        except (ET.ParseError, KeyError, ValueError):
            rel_root = None
        for rel in rel_root if rel_root is not None else ():
            target = (rel.get("Target") or "").replace("\\", "/")
            resolved = (
                target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
            )
            rels[rel.get("Id") or ""] = (rel.get("Type") or "", _norm(posixpath.normpath(resolved)))
    sheets: dict[str, str] = {}
    kinds: dict[str, tuple[str, str]] = {}
    date1904 = False
    for element in root.iter():
        tag = _local(element.tag)
        if tag == "workbookPr" and _attr(element, "date1904") is not None:
            # (Excel 2013+ adds an x15:workbookPr extension without it: not a reset)
            date1904 = (_attr(element, "date1904") or "").strip().lower() in ("1", "true")
        elif tag == "sheet":
            rid = _attr(element, "id")
            name = element.get("name")
            if name is None or rid not in rels:
                continue
            typ, target = rels[rid]
            if target in names:
                sheets[name] = names[target]
                kind = typ.rsplit("/", 1)[-1].casefold()
                kind = next(
                    (k for k in ("macrosheet", "chartsheet", "dialogsheet") if k[:5] in kind),
                    "worksheet",
                )
                kinds[name] = (kind, element.get("state") or "visible")
    styles = next(
        (names[t] for typ, t in rels.values() if typ.endswith(_REL_STYLES) and t in names), None
    )
    return Package(names, workbook, sheets, date1904, styles, kinds)


def style_formats(archive: zipfile.ZipFile, package: Package) -> list[str | None]:
    """The number format code of each cell style (``cellXfs`` index), None where it is
    General or text: formats that leave a number as it is."""
    if package.styles is None:
        return []
    try:
        root = _xml(archive.read(package.styles))
    except (ET.ParseError, KeyError, ValueError):
        return []
    custom: dict[int, str] = {}
    xfs: list[str | None] = []
    for element in root:
        tag = _local(element.tag)
        if tag == "numFmts":
            for fmt in element:
                try:
                    custom[int(fmt.get("numFmtId", ""))] = fmt.get("formatCode", "")
                except ValueError:
                    continue
        elif tag == "cellXfs":
            for xf in element:
                try:
                    fid = int(xf.get("numFmtId", "0"))
                except ValueError:
                    fid = 0
                code = custom.get(fid, BUILTIN_FORMATS.get(fid, "General"))
                kinds = {s.kind for s in parse(code)}
                xfs.append(None if kinds <= {Kind.GENERAL} else code)
    return xfs


def utf8_xml(data: bytes) -> bytes:
    """An XML part as UTF-8 bytes (some writers save parts as UTF-16)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:2] in (b"<\x00", b"\x00<"):
        encoding = (
            "utf-16"
            if data[:2] in (b"\xff\xfe", b"\xfe\xff")
            else ("utf-16-le" if data[:1] == b"<" else "utf-16-be")
        )
        text = data.decode(encoding).lstrip("\ufeff")
        text = re.sub(r'^(<\?xml[^>]*?encoding=)["\'][^"\']*["\']', r'\1"UTF-8"', text)
        return text.encode("utf-8")
    return data


def column_index(letters: str) -> int:
    """0-based index of a column's letters (``A`` = 0, ``AA`` = 26)."""
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


_REF = re.compile(rb'\br="([A-Z]{1,3})(\d{1,7})"')
_STYLE = re.compile(rb'\bs="(\d{1,9})"')
_NOT_DIGITS = (string.ascii_letters + '"=').encode()  # what the quick parse drops
_NOT_R_FIRST = re.compile(rb"<c [^r]")  # a cell tag whose first attribute is not r


StyledCells = tuple[Any, Any, Any]  # (column, row, style index): numpy arrays, one per cell


def cell_styles(
    sheet_xml: bytes, columns: Sequence[int], styles: Sequence[str | None]
) -> dict[int, dict[str, Any]]:
    """For each of ``columns`` (0-based) that has any, the 1-based rows (a numpy array)
    of its cells in each format code, for the styles that have one. Reads only the
    cell tags' ``r`` and ``s`` attributes, by pattern, in C: about a tenth of a second
    for 200,000 rows."""
    if not columns or not any(styles):
        return {}
    found = styled_cells(sheet_xml, styles, columns)
    if found is None:  # cell tags of an unusual shape: every tag read in order
        found = _styled_cells_slow(utf8_xml(sheet_xml), set(columns))
    return styles_by_column(found, columns, styles)


def styled_cells(
    sheet_xml: bytes, styles: Sequence[str | None], columns: Sequence[int] | None = None
) -> StyledCells | None:
    """The cells of ``columns`` (all columns: None) whose style has a format, found by
    one pattern when every cell tag starts ``<c r="..."``, as usual; None otherwise."""
    interesting = [str(k).encode() for k, code in enumerate(styles) if code is not None]
    sheet_xml = utf8_xml(sheet_xml)
    if _NOT_R_FIRST.search(sheet_xml) is not None:
        return None
    found = _styled_cells_quick(sheet_xml, columns, interesting) if interesting else None
    if found is not None and not len(found[0]) and b"<c " not in sheet_xml:
        return None  # no tag <c at all: a namespace prefix, perhaps
    return found


def styles_by_column(
    found: StyledCells, columns: Sequence[int], styles: Sequence[str | None]
) -> dict[int, dict[str, Any]]:
    """:func:`cell_styles`'s answer from the styled cells found."""
    column_of, rows, style_of = found
    out: dict[int, dict[str, Any]] = {}
    for j in columns:
        mask = column_of == j
        if not mask.any():
            continue
        rows_j, styles_j = rows[mask], style_of[mask]
        by_code: dict[str, Any] = {}
        known = styles_j[(styles_j >= 0) & (styles_j < len(styles))]  # (others: no format)
        for k in np.flatnonzero(np.bincount(known, minlength=len(styles))).tolist():
            code = styles[k]
            if code is None:
                continue
            picked = rows_j[styles_j == k].astype(np.int64)
            by_code[code] = np.concatenate((by_code[code], picked)) if code in by_code else picked
        if by_code:
            out[j] = by_code
    return out


_CHUNK = 8 << 20  # bytes of XML matched at a time: bounds the match objects alive at once


def _styled_cells_quick(
    sheet_xml: bytes, columns: Sequence[int] | None, interesting: Sequence[bytes]
) -> StyledCells | None:
    """The styled cells of ``columns`` (or all), for sheets whose cell tags all start
    ``<c r="``: one pattern matched in C, each match one bytes object (``A12" s="3``, or
    ``A12" t="n" s="3``), the numbers of a chunk of them parsed at once. None when a
    match holds anything else between ``r`` and ``s`` (read slowly then)."""
    if columns is None:
        names = rb"[A-Z]{1,3}"
        width = 4
    else:
        letters = sorted({column_letters(j) for j in columns}, key=lambda x: (-len(x), x))
        names = b"|".join(n.encode() for n in letters)
        width = max(map(len, letters)) + 1
    pattern = re.compile(
        rb'<c r="((?:' + names + rb')\d{1,7}"[^>]*? s="(?:' + b"|".join(interesting) + rb'))"'
    )
    parts: list[StyledCells] = []
    start = 0
    while start < len(sheet_xml):
        # a chunk ends where a row starts: no cell tag is cut
        end = sheet_xml.find(b"<row", start + _CHUNK) if len(sheet_xml) > start + _CHUNK else -1
        end = len(sheet_xml) if end < 0 else end
        part = _parse_matches(pattern.findall(sheet_xml, start, end), width)
        if part is None:
            return None
        parts.append(part)
        start = end
    if len(parts) <= 1:
        empty = np.zeros(0, dtype=np.int32)
        return parts[0] if parts else (empty, empty, empty)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _parse_matches(found: list[bytes], width: int) -> StyledCells | None:
    n = len(found)
    if not n:
        empty = np.zeros(0, dtype=np.int32)
        return empty, empty, empty
    numbers = b" ".join(found).translate(None, _NOT_DIGITS)
    if numbers.translate(None, b"0123456789 "):
        return None  # a sign, a point, ...: not the usual attributes
    parsed = np.fromstring(numbers, dtype=np.int64, sep=" ")
    if len(parsed) != 2 * n:
        return None  # another attribute with digits between r and s
    pairs = parsed.reshape(n, 2).astype(np.int32)
    # The column: the letters each match starts with (at most 3; digits follow).
    heads = np.array(found, dtype=f"S{width}").view(np.uint8).reshape(n, width)
    column_of = np.zeros(n, dtype=np.int32)
    letter = np.ones(n, dtype=bool)
    for i in range(width - 1):
        letter &= heads[:, i] >= ord("A")
        column_of = np.where(letter, column_of * 26 + heads[:, i].astype(np.int32) - 64, column_of)
    return column_of - 1, pairs[:, 0], pairs[:, 1]


def _styled_cells_slow(sheet_xml: bytes, wanted: set[int]) -> StyledCells:
    """The styled cells of ``wanted`` columns, for sheets whose cells omit ``r`` or put
    ``s`` first: every row and cell tag read in order."""
    found: list[tuple[int, int, int]] = []
    row = 0
    col = -1
    for m in re.finditer(rb"<(?:\w+:)?(row|c)\b([^>]*)>", sheet_xml):
        attrs = m.group(2)
        if m.group(1) == b"row":
            r = re.search(rb'\br="(\d{1,9})"', attrs)
            row = int(r.group(1)) if r else row + 1
            col = -1
            continue
        ref = _REF.search(attrs)
        if ref:
            col = column_index(ref.group(1).decode())
            row = int(ref.group(2))
        else:
            col += 1
        if col not in wanted:
            continue
        s = _STYLE.search(attrs)
        if s:
            found.append((col, row, int(s.group(1))))
    table = np.array(found, dtype=np.int64).reshape(len(found), 3)
    return table[:, 0], table[:, 1], table[:, 2]


# --------------------------------------------------------------------------- sparse sheets

_LAST_ROW = re.compile(rb'<(?:\w+:)?row\b[^>]*?\br="(\d{1,7})"')
_ONE_LETTER = re.compile(rb' r="([A-Z])\d')
_ROW_OF_REF = re.compile(rb'\br="[A-Z]{1,3}(\d{1,7})"')
_ENDS = 1 << 16  # bytes at either end of a sheet where its last column is looked for first


def sheet_extent(sheet_xml: bytes) -> tuple[int, int]:
    """(last row, last column + 1) of a sheet, cheaply: what a dense read of the sheet
    from A1 would hold is ``rows * columns`` (compare :func:`cell_count`). One pass over
    the part in C, plus its first and last megabyte."""
    tail = sheet_xml.rfind(b"<row") if b"<row" in sheet_xml else sheet_xml.rfind(b":row ")
    last = _LAST_ROW.search(sheet_xml, max(tail - 1, 0))
    rows = int(last.group(1)) if last else 0
    for m in _ROW_OF_REF.finditer(sheet_xml, max(tail, 0)):
        rows = max(rows, int(m.group(1)))
    # The last column letter seen near either end, then one pass for any cell beyond it
    # (or with two or three letters).
    letters = set(_ONE_LETTER.findall(sheet_xml, max(len(sheet_xml) - _ENDS, 0)))
    letters |= set(_ONE_LETTER.findall(sheet_xml, 0, _ENDS))
    columns = max((column_index(x.decode()) + 1 for x in letters), default=1)
    found = set(_beyond(columns).findall(sheet_xml))
    columns = max((column_index(x.decode()) + 1 for x in found), default=columns)
    if not last and not rows:
        rows = cell_count(sheet_xml)
    return rows, columns


@functools.lru_cache(maxsize=32)
def _beyond(columns: int) -> re.Pattern[bytes]:
    """Cell references with two or three letters, or one past the first ``columns``."""
    beyond = rb"[A-Z]{2,3}" if columns >= 26 else rb"[" + bytes([65 + columns]) + rb"-Z]|[A-Z]{2,3}"
    return re.compile(rb' r="(' + beyond + rb")\d")


def cell_count(sheet_xml: bytes) -> int:
    """How many cell tags a sheet has (two passes over the part)."""
    return sheet_xml.count(b"<c ") + sheet_xml.count(b":c ")


def shared_strings(archive: zipfile.ZipFile, package: Package) -> list[str]:
    """The shared-strings table, each rich-text string the concatenation of its runs
    (phonetic guides left out)."""
    name = next(
        (
            zip_name
            for norm, zip_name in package.names.items()
            if norm.endswith("sharedstrings.xml") and "_rels" not in norm
        ),
        None,
    )
    if name is None:
        return []
    out: list[str] = []
    try:
        for _, element in ET.iterparse(io.BytesIO(utf8_xml(archive.read(name)))):  # noqa: S314
            if _local(element.tag) == "si":
                out.append(_text_of(element))
                element.clear()
    except ET.ParseError as exc:
        raise _parse_error(exc, "shared-strings table") from None
    return out


def _parse_error(exc: ET.ParseError, what: str) -> ValueError:
    if "amplification" in str(exc) or "entit" in str(exc):
        return ValueError(
            f"its {what} defines XML entities that expand far beyond the file (an entity "
            "bomb); refusing to read it"
        )
    return ValueError(f"its {what} is damaged XML ({exc})")


_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def unescape(text: str) -> str:
    """A string of an XLSX part with its ``_xHHHH_`` escapes decoded (ECMA-376
    ST_Xstring: ``_x000D_`` is a carriage return, ``_x005F_`` an underscore; surrogate
    pairs joined), as Excel and python-calamine read them."""
    if "_x" not in text:
        return text
    decoded = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    try:
        return decoded.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:  # a lone surrogate: left as escaped
        return text


def _text_of(element: ET.Element) -> str:
    """The text of a string item: its <t> elements, in order, outside phonetic runs."""
    parts: list[str] = []

    def walk(node: ET.Element) -> None:
        for child in node:
            tag = _local(child.tag)
            if tag == "rPh":
                continue
            if tag == "t":
                parts.append(child.text or "")
            else:
                walk(child)

    walk(element)
    return unescape("".join(parts))


def read_sparse_sheet(
    sheet_xml: bytes, strings: Sequence[str]
) -> tuple[list[list[Any]], list[int]]:
    """The rows of a sheet that have cells, and their 1-based numbers: memory follows the
    cells used, not the sheet's bounding box (a stray cell at XFD1048576)."""
    try:
        return _read_sparse(sheet_xml, strings)
    except ET.ParseError as exc:
        raise _parse_error(exc, "sheet") from None


_CELL_REF = re.compile(r"([A-Z]{1,3})(\d+)")


def _read_sparse(sheet_xml: bytes, strings: Sequence[str]) -> tuple[list[list[Any]], list[int]]:
    rows: list[list[Any]] = []
    numbers: list[int] = []
    row_number = 0
    cells: dict[int, Any] = {}
    col = -1
    for event, element in ET.iterparse(io.BytesIO(sheet_xml), events=("start", "end")):  # noqa: S314
        tag = _local(element.tag)
        if event == "start":
            if tag == "row":
                r = element.get("r")
                row_number = int(r) if r and r.isdigit() else row_number + 1
                cells = {}
                col = -1
            continue
        if tag == "c":
            ref = element.get("r")
            m = _CELL_REF.fullmatch(ref or "")
            col = column_index(m.group(1)) if m else col + 1
            value = _cell_value(element, strings)
            if value != "":
                cells[col] = value
            element.clear()
        elif tag == "row":
            if cells:
                row = [""] * (max(cells) + 1)
                for j, v in cells.items():
                    row[j] = v
                rows.append(row)
                numbers.append(row_number)
            element.clear()
    return rows, numbers


def _cell_value(element: ET.Element, strings: Sequence[str]) -> Any:
    kind = element.get("t", "n")
    v = next((child.text for child in element if _local(child.tag) == "v"), None)
    if kind == "inlineStr":
        box = next((child for child in element if _local(child.tag) == "is"), None)
        return _text_of(box) if box is not None else ""
    if v is None:
        return ""
    if kind == "s":
        try:
            return strings[int(v)]
        except (ValueError, IndexError):
            return ""
    if kind == "d":
        return iso_moment(v)
    if kind == "str":
        return unescape(v)
    if kind == "b":
        return v.strip() in ("1", "true")
    if kind == "e":
        return ""
    try:
        return float(v)
    except ValueError:
        return v


def iso_moment(text: str) -> Any:
    """The moment of an ISO 8601 date cell (``t="d"``): a date, a date-time (its time
    zone dropped: the clock time as written, since a sheet's moments have no zone), or
    a time of day; a date-time at midnight is a date, as python-calamine gives it. Text
    that is not ISO 8601 stays text."""
    s = text.strip()
    try:
        if "T" not in s[1:]:
            if ":" in s:
                return dt.time.fromisoformat(s.removeprefix("T")).replace(tzinfo=None)
            return dt.date.fromisoformat(s)
        moment = dt.datetime.fromisoformat(s).replace(tzinfo=None)
    except ValueError:
        return text
    return moment.date() if moment.time() == dt.time() else moment


def has_iso_dates(xml: bytes) -> bool:
    """Whether cells of this sheet part hold dates as ISO 8601 text (``t="d"``), which
    python-calamine leaves as text when they end with a zone (``Z``, ``+01:00``) or lack
    the seconds."""
    return b't="d"' in xml or b"t='d'" in xml


# --------------------------------------------------------------------------- own reader

_RICH_SPACE = re.compile(rb"<(?:\w+:)?t>(?:\s[^<]*|[^<]*\s)</(?:\w+:)?t>")


def runs_lose_spaces(xml: bytes) -> bool:
    """Whether rich-text runs with spaces at their edges (``<t> richtext</t>``, without
    ``xml:space``) are in this part: python-calamine drops those spaces, Excel keeps them."""
    return _has_runs(xml) and _RICH_SPACE.search(xml) is not None


def _has_runs(xml: bytes) -> bool:
    """Whether a rich-text run (``<r>``, ``<x:r>``) starts in this part: one pass for
    ``r>``, which elsewhere ends only a few tags (``</sheetPr>``) and some texts."""
    at = xml.find(b"r>")
    while at > 0:
        if xml[at - 1] in b"<:":
            return True
        at = xml.find(b"r>", at + 2)
    return False


class OwnSheet:
    def __init__(self, rows: list[list[Any]]) -> None:
        self.rows = rows

    def to_python(self, skip_empty_area: bool = True) -> list[list[Any]]:
        return self.rows


class OwnBook:
    """An XLSX/XLSM workbook read by this module, for files python-calamine refuses (an
    Excel 4 macro sheet, UTF-16 parts): the calls :mod:`~bulk_sync.loading.workbook`
    makes of a calamine workbook."""

    def __init__(self, archive: zipfile.ZipFile, package: Package) -> None:
        import python_calamine as calamine

        self.archive = archive
        self.package = package
        types = {
            "worksheet": calamine.SheetTypeEnum.WorkSheet,
            "macrosheet": calamine.SheetTypeEnum.MacroSheet,
            "chartsheet": calamine.SheetTypeEnum.ChartSheet,
            "dialogsheet": calamine.SheetTypeEnum.DialogSheet,
        }
        states = {
            "visible": calamine.SheetVisibleEnum.Visible,
            "hidden": calamine.SheetVisibleEnum.Hidden,
            "veryHidden": calamine.SheetVisibleEnum.VeryHidden,
        }
        self.sheet_names = list(package.kinds)
        self.sheets_metadata = [
            calamine.SheetMetadata(
                name,
                types.get(kind, calamine.SheetTypeEnum.WorkSheet),
                states.get(state, calamine.SheetVisibleEnum.Hidden),
            )
            for name, (kind, state) in package.kinds.items()
        ]
        self._strings: list[str] | None = None

    def strings(self) -> list[str]:
        if self._strings is None:
            self._strings = shared_strings(self.archive, self.package)
        return self._strings

    def close(self) -> None:
        self.archive.close()


def read_sheet(
    archive: zipfile.ZipFile, package: Package, name: str, strings: Sequence[str]
) -> tuple[list[list[Any]], list[int]]:
    return read_sparse_sheet(utf8_xml(archive.read(package.sheets[name])), strings)
