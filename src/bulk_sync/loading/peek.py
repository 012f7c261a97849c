"""A look at a file before it is loaded: its sheets, its header and the first rows.

What a front end needs to let a person choose the sheet and say which columns hold the
customer id, the attribute and the value when the headers are not the expected ones:

    >>> p = peek(data, "clientes.xlsx")  # doctest: +SKIP
    >>> p.sheets, p.header_row, p.headers, p.found  # doctest: +SKIP

The header is found as :func:`~bulk_sync.loading.load_bytes` finds it (the first row that
is not blank; in a workbook, a row below a title when that row has the columns; in a
text file, with the delimiter the loader would choose), and the same checks refuse a
file that is not what its name says. Cells are strings as the loader makes them. Only
the first rows are parsed: a peek at a large file is quick.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import python_calamine as calamine

from bulk_sync.errors import InputError
from bulk_sync.loading import encryption, xls
from bulk_sync.loading.container import OLE_MAGIC, check_workbook_container, content_kind
from bulk_sync.loading.delimited import (
    _EXCEL_SEP,
    _decoded,
    _parse_sample,
    _sniff,
    _utf8_start,
    check_not_binary,
)
from bulk_sync.loading.layout import column_letter, find_columns
from bulk_sync.loading.options import DELIMITED_EXTENSIONS, WORKBOOK_EXTENSIONS, LoadOptions
from bulk_sync.loading.sandbox import isolated
from bulk_sync.loading.workbook import (
    SheetFormats,
    _calamine_error,
    _header_texts,
    _is_blank,
    _is_reader_failure,
    _ods_durations,
    _open_workbook,
    _select_sheets,
    _Styles,
    _title_rows_skipped,
)

__all__ = ["Peek", "SheetInfo", "peek"]

_SAMPLE_BYTES = 64 * 1024
_TITLE_ROWS = 10  # as the loader: how far below a title the header may stand
_GRID_ROWS = 40  # rows read from a sheet: blank rows and a title above the header, samples


@dataclass(frozen=True, slots=True)
class SheetInfo:
    name: str
    visible: bool


@dataclass(frozen=True, slots=True)
class Peek:
    """``sheets``: the worksheets of a workbook in order (empty for a text file);
    ``sheet``: the one looked at (``""`` for a text file); ``header_row``: the header's
    row number as the spreadsheet shows it (0 when the sheet is empty); ``headers``: its
    cells; ``sample``: up to ``rows`` data rows below it; ``found``: which logical columns
    (``customer_id``, ``attribute``, ``value``) the options find in the header;
    ``shared``: those that several columns match (same header up to case and spaces: the
    loader refuses that, and a mapping by header text cannot tell them apart)."""

    source: str
    sheets: tuple[SheetInfo, ...]
    sheet: str
    header_row: int
    headers: tuple[str, ...]
    sample: tuple[tuple[str, ...], ...]
    found: tuple[str, ...]
    delimiter: str = ""
    shared: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """The options find every column they need (customer id alone for a wide file)."""
        return "customer_id" in self.found and len(self.found) in (1, 3)

    def column_label(self, j: int) -> str:
        """``column C`` in a workbook, ``field 3`` in a text file (as messages say)."""
        return column_letter(j) if self.sheets else f"field {j + 1}"


def peek(data: bytes, name: str, options: LoadOptions | None = None, *, rows: int = 3) -> Peek:
    """The sheets, header and first ``rows`` data rows of a file whose bytes are ``data``
    (``name`` gives its kind by extension). Raises :class:`InputError` for a file the
    loader would refuse for what it is (empty, a workbook named .csv, ...)."""
    opts = options if options is not None else LoadOptions()
    source = Path(name).name
    ext = Path(name).suffix.casefold()
    if ext in DELIMITED_EXTENSIONS:
        return _peek_text(data, source, ext, opts, rows)
    if ext in WORKBOOK_EXTENSIONS:
        return _peek_workbook(data, source, WORKBOOK_EXTENSIONS[ext], opts, rows)
    known = ", ".join((*DELIMITED_EXTENSIONS, *WORKBOOK_EXTENSIONS))
    raise InputError(
        f"unsupported file type {Path(name).suffix or '(no extension)'!r}; expected one of {known}",
        source=source,
    )


def _found(header: Sequence[str], options: LoadOptions) -> tuple[str, ...]:
    found, _, _ = find_columns(header, options)
    return tuple(found)


def _shared(header: Sequence[str], options: LoadOptions) -> tuple[str, ...]:
    _, _, ambiguous = find_columns(header, options)
    return tuple(logical for logical, _ in ambiguous)


def _peek_text(data: bytes, source: str, ext: str, options: LoadOptions, rows: int) -> Peek:
    kind = content_kind(data[:4096])
    if kind == "empty":
        raise InputError("file is empty", source=source)
    if kind in ("zip", "ole", "biff", "gzip", "pdf"):
        raise InputError("this is not a text (CSV) file", source=source)
    head = data[: _SAMPLE_BYTES * 2]
    start = _utf8_start(head, len(data), options.encoding)
    if start is None:  # another encoding: decode the whole file, as the loader does
        raw = _decoded(data, options.encoding, source).encode("utf-8", "surrogatepass")
        head = raw[: _SAMPLE_BYTES * 2]
        size = len(raw)
    else:
        head = head[start:]
        size = len(data) - start
    sep = _EXCEL_SEP.match(head)
    if sep is not None:  # Excel's "sep=;" line: the delimiter, not a row
        if options.delimiter is None:
            options = dataclasses.replace(options, delimiter=sep.group(1).decode())
        head = head[sep.end() :]
    skip = len(head) - len(head.lstrip(b"\r\n"))
    truncated = size - skip - (sep.end() if sep else 0) > _SAMPLE_BYTES
    sample = codecs.getincrementaldecoder("utf-8")("replace").decode(
        head[skip : skip + _SAMPLE_BYTES], final=not truncated
    )
    check_not_binary(sample, options, source)  # as the loader: no columns in binary data
    if truncated:
        cut = max(sample.rfind("\n"), sample.rfind("\r"))
        if cut > 0:
            sample = sample[: cut + 1]
    sniffed = _sniff(sample, truncated, ext, options)
    if sniffed.header is None:
        return Peek(source, (), "", 0, (), (), (), sniffed.delimiter)
    records = _parse_sample(sample, sniffed.delimiter, truncated)
    header_at = sniffed.header_row - 1
    body = [
        tuple(f.strip() for f in rec)
        for rec in records[header_at + 1 :]
        if any(f.strip() for f in rec)
    ][:rows]
    # Row numbers count the blank lines before the sample (not a "sep=" line: Excel hides it).
    header_row = sniffed.header_row + sample_line_count(head[:skip])
    return Peek(
        source,
        (),
        "",
        header_row,
        tuple(sniffed.header),
        tuple(body),
        _found(sniffed.header, options),
        sniffed.delimiter,
        _shared(sniffed.header, options),
    )


def sample_line_count(blank: bytes) -> int:
    """Line breaks in a run of blank lines (``\\r\\n`` counts once)."""
    return blank.count(b"\n") + blank.count(b"\r") - blank.count(b"\r\n")


def _peek_workbook(data: bytes, source: str, fmt: str, options: LoadOptions, rows: int) -> Peek:
    """As :func:`~bulk_sync.loading.workbook.load_workbook` reads a workbook: decrypted
    when Excel's default password locks it, the same container checks, and the reader in
    a limited child process (a damaged file cannot take the caller down)."""
    if data.startswith(OLE_MAGIC):
        unlocked = encryption.unlock(data, fmt, source)
        if unlocked is not None:
            data = unlocked
    check_workbook_container(data, data[:4096], len(data), fmt, options, source)
    if hasattr(os, "fork"):
        return isolated(
            lambda: _read_peek(data, source, fmt, options, rows), fmt, source, len(data)
        )
    return _read_peek(data, source, fmt, options, rows)


def _read_peek(data: bytes, source: str, fmt: str, options: LoadOptions, rows: int) -> Peek:
    try:
        workbook = _open_workbook(data, fmt)
    except xls.XlsEncrypted:
        raise InputError(encryption.PROTECTED_MESSAGE, source=source) from None
    except InputError as exc:
        raise InputError(exc.reason, source=source) from None
    except BaseException as exc:
        if not _is_reader_failure(exc):
            raise
        raise _calamine_error(exc, fmt, source) from None
    try:
        worksheet = calamine.SheetTypeEnum.WorkSheet
        visible = calamine.SheetVisibleEnum.Visible
        sheets = tuple(
            SheetInfo(m.name, m.visible == visible)
            for m in workbook.sheets_metadata
            if m.typ == worksheet
        )
        one = options if not options.all_sheets else _first_sheet_options(options)
        name = _select_sheets(workbook, source, one)[0]
        try:
            sheet = workbook.get_sheet_by_name(name)
            try:
                grid: list[list[Any]] = sheet.to_python(skip_empty_area=False, nrows=_GRID_ROWS)
            except TypeError:  # the XLS reader reads the whole sheet
                grid = sheet.to_python(skip_empty_area=False)[:_GRID_ROWS]
        except BaseException as exc:
            if not _is_reader_failure(exc):
                raise
            raise _calamine_error(exc, fmt, source, name) from None
    finally:
        with contextlib.suppress(Exception):
            workbook.close()
    first = next((i for i, row in enumerate(grid) if not all(_is_blank(c) for c in row)), None)
    if first is None:
        return Peek(source, sheets, name, 0, (), (), ())
    at = _title_rows_skipped(grid, first, options, source, name, lambda i: i + 1)
    if at == first and _filled(grid[first]) == 1:
        # A title above headers the options do not know yet ("Clientes 2026"): show the
        # first row below it with several cells as the header, so that a person can map
        # its columns (the loader then finds it below the title by those names).
        below = grid[first + 1 : first + 1 + _TITLE_ROWS]
        at = next((first + 1 + k for k, row in enumerate(below) if _filled(row) >= 2), first)
    formats = _formats(workbook, data, fmt, name)
    if fmt == "ODS":
        grid = _ods_durations(grid)
    header = tuple(_header_texts(grid[at], at + 1, formats))
    body = [
        tuple(t.strip() for t in _header_texts(row, at + 2 + k, formats))
        for k, row in enumerate(grid[at + 1 :])
        if not all(_is_blank(c) for c in row)
    ][:rows]
    return Peek(
        source,
        sheets,
        name,
        at + 1,
        header,
        tuple(body),
        _found(header, options),
        shared=_shared(header, options),
    )


def _formats(workbook: Any, data: bytes, fmt: str, name: str) -> SheetFormats | None:
    """The number formats of an XLS or ODS sheet, so that a date or a duration in the
    header reads as the loader reads it (python-calamine gives an XLS date as its serial).
    Not for XLSX, where python-calamine gives dates as dates and the styles would cost a
    read of the sheet's XML."""
    if fmt not in ("XLS", "ODS"):
        return None
    styles = _Styles(workbook, None)
    if fmt == "ODS":
        styles.ods = data
    return styles.sheet(name)


def _filled(row: Sequence[Any]) -> int:
    return sum(1 for c in row if not _is_blank(c) and c is not None)


def _first_sheet_options(options: LoadOptions) -> LoadOptions:
    return LoadOptions(
        encoding=options.encoding,
        delimiter=options.delimiter,
        wide=options.wide,
        columns=options.columns,
    )
