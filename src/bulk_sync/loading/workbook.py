"""XLSX/XLSM/XLSB/XLS/ODS through python-calamine: sheet selection, the header found
below a title, a sheet's cells to a :class:`Table`."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import logging
import os
import threading
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import python_calamine as calamine

from bulk_sync import numfmt
from bulk_sync.cells import (
    cell_to_str,
    column_texts,
    fast_moment,
    fast_moments,
    fast_sent_many,
    formatted_cell,
)
from bulk_sync.columns import IntColumn, TextColumn
from bulk_sync.errors import InputError
from bulk_sync.loading import encryption, ods, ooxml, xls
from bulk_sync.loading.container import OLE_MAGIC, check_workbook_container, is_raw_biff
from bulk_sync.loading.layout import build_table, column_letter, find_columns, find_layout
from bulk_sync.loading.ooxml import column_letters as letters
from bulk_sync.loading.options import LoadOptions
from bulk_sync.loading.sandbox import ReaderDied, isolated
from bulk_sync.models import CellNotice, Table

log = logging.getLogger("bulk_sync.loading")


def _is_reader_failure(exc: BaseException) -> bool:
    """Errors from the Rust reader, including a panic (which is a BaseException)."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _calamine_error(exc: BaseException, fmt: str, source: str, sheet: str = "") -> InputError:
    if isinstance(exc, calamine.PasswordError):
        return InputError(encryption.PROTECTED_MESSAGE, source=source)
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, ValueError) and detail.startswith("its "):  # our reader's own words
        return InputError(f"not a valid {fmt} workbook: {detail}", source=source, sheet=sheet)
    return InputError(
        f"not a valid {fmt} workbook: the file is damaged (the reader says: {detail}); if "
        "Excel or LibreOffice opens it, save it again from there",
        source=source,
        sheet=sheet,
    )


OLD_EXCEL = (
    "saved by an old Excel version (Excel 4 or older) in a form bulk-sync cannot read; "
    "open it in Excel or LibreOffice and save it as .xlsx"
)

WorkbookData = Path | bytes  # where the reader finds the workbook: a path, or its bytes


def load_workbook(
    data: WorkbookData, head: bytes, size: int, fmt: str, options: LoadOptions, source: str
) -> list[Table]:
    """The tables of the selected sheets of a workbook: ``data`` is its path or its bytes,
    ``head`` its first bytes. Read in a limited child process (the Rust reader aborts
    the process on some damaged files), whatever the workbook's size."""
    if head.startswith(OLE_MAGIC):
        unlocked = encryption.unlock(data, fmt, source)
        if unlocked is not None:  # Excel's default password: read what it hides
            data, head, size = unlocked, unlocked[:4096], len(unlocked)
            log.info("%s: encrypted with Excel's default password; decrypted", source)
    check_workbook_container(data, head, size, fmt, options, source)
    if not hasattr(os, "fork"):
        return _compact(_read_workbook(data, fmt, options, source, overlap=False))
    try:
        return isolated(
            lambda: _compact(_read_workbook(data, fmt, options, source, overlap=True)),
            fmt,
            source,
            size,
        )
    except ReaderDied as exc:
        if exc.timed_out or fmt not in ("XLSX", "XLSM"):
            raise
        # The reader may have died building a sheet our own checks would have read
        # sparsely (a cell far outside the data), checks it no longer waits for: once
        # more, checks first.
        log.debug("%s: the reader died; reading again, the sheet checked first", source)
        return isolated(
            lambda: _compact(_read_workbook(data, fmt, options, source, overlap=False)),
            fmt,
            source,
            size,
        )


def _compact(tables: list[Table]) -> list[Table]:
    """The tables with their texts in Arrow arrays and their row numbers in a numpy
    array (:class:`~bulk_sync.columns.TextColumn`, :class:`~bulk_sync.columns.IntColumn`),
    as the CSV reader gives them and the later stages work on them: from the protected
    child, a few buffers instead of a pickled Python string per cell."""
    out = []
    for t in tables:
        labels: Sequence[str] = t.value_columns
        out.append(
            dataclasses.replace(
                t,
                rows=t.rows if isinstance(t.rows, range | IntColumn) else IntColumn(t.rows),
                customer_ids=_text_column(t.customer_ids),
                attributes=_text_column(t.attributes),
                values=_text_column(t.values),
                value_columns=_text_column(labels) if len(labels) else labels,
            )
        )
    return out


def _text_column(texts: Sequence[str]) -> TextColumn:
    """Python strings as an Arrow string array, built from its two buffers: the array
    ``pyarrow.array`` makes, in a fraction of its time and without its first call's
    import of pandas (0.2 s, in every child). The texts are joined by NULs, encoded
    once, and the NULs' places give the offsets."""
    import pyarrow as pa  # type: ignore[import-untyped]

    if isinstance(texts, TextColumn):
        return texts
    n = len(texts)
    raw = "\0".join(texts).encode("utf-8")  # (a lone surrogate raises, as in pyarrow)
    marks = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 0)
    if len(marks) != max(n - 1, 0):  # a NUL inside a text: each text on its own
        encoded = [text.encode("utf-8") for text in texts]
        data = b"".join(encoded)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
    else:
        data = raw.replace(b"\0", b"")
        offsets = np.empty(n + 1, dtype=np.int64)
        offsets[0] = 0
        offsets[1:n] = marks - np.arange(n - 1)
        offsets[n] = len(data)
    if len(data) < 2**31:
        return TextColumn(
            pa.StringArray.from_buffers(
                n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)
            )
        )
    return TextColumn(
        pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    )


def _open_workbook(data: WorkbookData, fmt: str) -> Any:
    """An xlrd workbook for XLS (calamine when xlrd cannot read it), else calamine's."""
    if fmt == "XLS":
        try:
            return xls.open_xls(data)
        except xls.XlsEncrypted:
            raise
        except Exception as exc:  # xlrd gave up: calamine may still read it
            log.debug("xlrd cannot read the workbook (%s); trying calamine", exc)
            head = data.read_bytes()[:16] if isinstance(data, Path) else data[:16]
            if is_raw_biff(head):  # Excel 2-4: calamine reads only OLE files
                raise InputError(OLD_EXCEL) from None
    try:
        if isinstance(data, Path):
            return calamine.CalamineWorkbook.from_path(os.fspath(data))
        return calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except BaseException as exc:
        if not _is_reader_failure(exc) or fmt not in ("XLSX", "XLSM", "ODS"):
            raise
        if fmt == "ODS":
            fixed = ods.repaired(data)
            if fixed is None:
                raise
            log.info("python-calamine cannot read the ODS file as saved (%s); repaired", exc)
            return calamine.CalamineWorkbook.from_filelike(io.BytesIO(fixed))
        own = _own_book(data)
        if own is None:
            raise
        log.info("python-calamine cannot read the workbook (%s); reading it ourselves", exc)
        return own


def _own_book(data: WorkbookData) -> ooxml.OwnBook | None:
    """The workbook read by our own XLSX reader, when it finds worksheets in it."""
    try:
        archive = zipfile.ZipFile(data if isinstance(data, Path) else io.BytesIO(data))
        package = ooxml.open_package(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error):
        return None
    if package is None or not package.kinds:
        return None
    return ooxml.OwnBook(archive, package)


def _read_workbook(
    data: WorkbookData, fmt: str, options: LoadOptions, source: str, overlap: bool = False
) -> list[Table]:
    """The tables of the selected sheets. ``overlap``: python-calamine reads an XLSX sheet
    in a thread while this one checks the sheet's XML (see :func:`_sheet_rows`)."""
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
        names = _select_sheets(workbook, source, options)
        styles = _Styles(workbook, data if fmt in ("XLSX", "XLSM") else None)
        if fmt == "ODS":
            styles.ods = data
        tables: list[Table] = []
        skipped: list[str] = []
        for name in names:
            try:
                grid, numbers = _sheet_rows(workbook, styles, name, overlap)
                if fmt == "ODS":
                    grid = _ods_durations(grid)
            except BaseException as exc:
                if not _is_reader_failure(exc):
                    raise
                # python-calamine gave up on this sheet: our own reader may not
                own = None
                if fmt in ("XLSX", "XLSM") and not isinstance(workbook, ooxml.OwnBook):
                    own = styles.sparse_rows(name, force=True)
                if own is None:
                    raise _calamine_error(exc, fmt, source, name) from None
                grid, numbers = own
            try:
                try:
                    table = _grid_table(grid, source, name, options, styles.sheet(name), numbers)
                except _SerialsLost:
                    own = styles.sparse_rows(name, force=True)
                    if own is None:  # (python-calamine's time of day, then)
                        formats = styles.sheet(name)
                        if formats is not None:
                            formats.times_lose_serials = False
                        table = _grid_table(grid, source, name, options, formats, numbers)
                    else:
                        log.info("sheet %r read by our own reader (dates below day 1)", name)
                        table = _grid_table(
                            own[0], source, name, options, styles.sheet(name), own[1]
                        )
            except InputError as exc:
                if not options.all_sheets:
                    raise
                # --all-sheets means "every sheet sharing the header": a notes or
                # instructions sheet is left out, and said so.
                log.warning("%s: sheet %r left out: %s", source, name, exc.reason)
                skipped.append(f"{name!r} ({exc.reason})")
                continue
            if table is None:
                if not options.all_sheets:
                    others = [n for n in workbook.sheet_names if n != name]
                    more = (
                        f"; other sheets: {', '.join(repr(n) for n in others)} (use --sheet)"
                        if others
                        else ""
                    )
                    raise InputError(f"sheet is empty{more}", source=source, sheet=name)
                continue
            tables.append(table)
        if options.all_sheets and not tables:
            if skipped:
                raise InputError(
                    "no sheet has the required columns: " + "; ".join(skipped), source=source
                )
            raise InputError("every sheet of the workbook is empty", source=source)
        return tables
    finally:
        with contextlib.suppress(Exception):  # already closed: nothing to release
            workbook.close()


def _ods_durations(grid: list[list[Any]]) -> list[list[Any]]:
    """python-calamine gives an ODS duration as ISO-8601 text (PT255H10M10S): H:MM:SS."""
    for row in grid:
        for j, cell in enumerate(row):
            if type(cell) is str and cell[:3] in (
                "PT0",
                "PT1",
                "PT2",
                "PT3",
                "PT4",
                "PT5",
                "PT6",
                "PT7",
                "PT8",
                "PT9",
                "-PT",
            ):
                text = ods.duration_text(cell)
                if text is not None:
                    row[j] = text
    return grid


def _sheet_rows(
    workbook: Any, styles: _Styles, name: str, overlap: bool
) -> tuple[list[list[Any]], list[int] | None]:
    """The rows of a sheet: python-calamine's (``grid[i]`` is row ``i + 1``), or our own
    reader's (with their row numbers) where the sheet's XML says python-calamine would
    read it wrongly or at great cost (:meth:`_Styles.sparse_rows`).

    With ``overlap``, python-calamine builds the sheet in a thread (its Rust code lets go
    of the interpreter lock) while this thread reads the XML for those checks: on two
    cores the checks cost no time. Should a check find a cell far outside the data, the
    reader may meanwhile run out of memory building the whole bounding box and end the
    process: :func:`load_workbook` then reads again, without the overlap."""
    if not overlap or not styles.reads_xml or isinstance(workbook, ooxml.OwnBook):
        return styles.sparse_rows(name) or (_dense_rows(workbook, name), None)
    outcome: list[Any] = []

    def build() -> None:
        try:
            outcome.append(workbook.get_sheet_by_name(name))
        except BaseException as exc:  # a panic of the reader too: raised below
            outcome.append(exc)

    reader = threading.Thread(target=build, name="bulk-sync-sheet-reader", daemon=True)
    reader.start()
    try:
        own = styles.sparse_rows(name)
        if own is None:
            styles.look_ahead(name)
    finally:
        reader.join()
    if own is not None:
        return own
    sheet = outcome[0]
    if isinstance(sheet, BaseException):
        raise sheet
    rows: list[list[Any]] = sheet.to_python(skip_empty_area=False)
    return rows, None


def _dense_rows(workbook: Any, name: str) -> list[list[Any]]:
    # skip_empty_area=False keeps the empty rows and columns above and left of the data
    # (sheet.start says where it begins), so grid[i] is spreadsheet row i + 1 in XLSX,
    # XLS and ODS alike.
    rows: list[list[Any]] = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
    return rows


def _select_sheets(workbook: Any, source: str, options: LoadOptions) -> list[str]:
    metadata = list(workbook.sheets_metadata)
    worksheet = calamine.SheetTypeEnum.WorkSheet
    visible = calamine.SheetVisibleEnum.Visible

    def listing() -> str:
        return (
            ", ".join(
                repr(m.name) + ("" if m.visible == visible else " (hidden)") for m in metadata
            )
            or "none"
        )

    if options.sheet is not None:
        wanted = options.sheet
        exact = [m for m in metadata if m.name == wanted]
        loose = [m for m in metadata if m.name.strip().casefold() == wanted.strip().casefold()]
        match = exact or (loose if len(loose) == 1 else [])
        if not match:
            raise InputError(
                f"no sheet named {wanted!r}; the sheets are: {listing()}", source=source
            )
        if match[0].typ != worksheet:
            raise InputError(
                f"sheet {match[0].name!r} is not a worksheet (a chart or macro sheet)",
                source=source,
            )
        return [match[0].name]
    sheets = [m for m in metadata if m.typ == worksheet]
    shown = [m for m in sheets if m.visible == visible]
    if options.all_sheets:
        if not shown:
            raise InputError(f"the workbook has no visible worksheet ({listing()})", source=source)
        return [m.name for m in shown]
    chosen = shown or sheets
    if not chosen:
        raise InputError("the workbook has no worksheet", source=source)
    return [chosen[0].name]


def _is_blank(cell: object) -> bool:
    return type(cell) is str and not cell.strip()


_TITLE_ROWS = 10  # how far below the first non-blank row a sheet's header may stand


def _title_rows_skipped(
    grid: list[list[Any]],
    first: int,
    options: LoadOptions,
    source: str,
    sheet: str,
    number: Callable[[int], int],
) -> int:
    """Where the header is: the first non-blank row, unless that row lacks the columns and
    one of the next few rows has them all (a title such as "Clientes 2026" above the
    header, as hand-made sheets often have). Row numbers stay those of the sheet."""
    if not find_columns([cell_to_str(c) for c in grid[first]], options)[1]:
        return first
    for i in range(first + 1, min(len(grid), first + 1 + _TITLE_ROWS)):
        _, missing, ambiguous = find_columns([cell_to_str(c) for c in grid[i]], options)
        if not missing and not ambiguous:
            log.info(
                "%s, sheet %r: header found in row %d; the rows above it are taken as a title",
                source,
                sheet,
                number(i),
            )
            return i
    return first


def _grid_table(
    grid: list[list[Any]],
    source: str,
    sheet: str,
    options: LoadOptions,
    formats: SheetFormats | None = None,
    numbers: Sequence[int] | None = None,
) -> Table | None:
    """The table of one sheet's cells, or None when the sheet has no non-blank row.
    ``grid[i]`` is spreadsheet row ``i + 1``, or row ``numbers[i]`` when given (a sparse
    sheet: only the rows that have cells)."""
    header_at = next((i for i, row in enumerate(grid) if not all(_is_blank(c) for c in row)), None)
    if header_at is None:
        return None

    def number(i: int) -> int:
        return i + 1 if numbers is None else numbers[i]

    header_at = _title_rows_skipped(grid, header_at, options, source, sheet, number)
    header_cells = grid[header_at]
    if numbers is not None:  # our reader's rows end at their last cell: the header row
        # spans the widest row below it, as python-calamine's do (a value past the last
        # header is then seen, and reported, not dropped)
        widest = max(map(len, grid[header_at:]), default=0)
        if len(header_cells) < widest:
            header_cells = [*header_cells, *([""] * (widest - len(header_cells)))]
    header = _header_texts(header_cells, number(header_at), formats)
    layout = find_layout(
        header,
        number(header_at),
        options,
        source=source,
        sheet=sheet,
        column_label=column_letter,
        hint=(
            "; with --all-sheets, sheets without them are left out" if options.all_sheets else ""
        ),
    )
    body = grid[header_at + 1 :]
    width = max(layout.needed) + 1
    if min(map(len, body), default=width) < width:  # rows may be ragged; be safe
        body = [row if len(row) >= width else [*row, *([""] * (width - len(row)))] for row in body]
    rows: Sequence[int]
    if numbers is None:
        rows = range(header_at + 2, header_at + 2 + len(body))
    else:
        rows = list(numbers[header_at + 1 :])
    found = formats.of(layout.needed) if formats is not None else {}
    columns: list[list[str]] = []
    notices: list[CellNotice] = []
    for j in layout.needed:
        codes = found.get(j)
        if not codes:
            columns.append(column_texts(list(map(itemgetter(j), body))))
            continue
        assert formats is not None
        column, notice = _formatted_column(
            [row[j] for row in body],
            codes,
            rows,
            formats.date1904,
            options.cells == "as_shown",
            formats.times_lose_serials and numbers is None,
        )
        columns.append(column)
        if notice is not None:
            row, sent, shown = notice
            notices.append(CellNotice(source, sheet, letters(j), header[j], row, sent, shown))
    for n in notices:
        log.warning("%s: %s", source, n.message)
    table = build_table(source, sheet, layout, columns, rows, {})
    return dataclasses.replace(table, notices=tuple(notices)) if notices else table


def _header_texts(cells: list[Any], row: int, formats: SheetFormats | None) -> list[str]:
    """The header row's texts: number cells with their formats, like any cell."""
    texts = [cell_to_str(c) for c in cells]
    numbers = [j for j, c in enumerate(cells) if type(c) in (int, float)]
    if formats is None or not numbers:
        return texts
    found = formats.of(numbers)
    for j in numbers:
        for code, rows in found.get(j, {}).items():
            if row in rows:
                texts[j] = formatted_cell(cells[j], code, date1904=formats.date1904).sent
    return texts


def _positions(rows: Sequence[int], wanted: Any) -> Any:
    """Indexes into ``rows`` (sorted row numbers) of the row numbers in ``wanted``: a
    sorted numpy array."""
    wanted = np.asarray(wanted, dtype=np.int64)
    if isinstance(rows, range):
        found = wanted - rows.start
        return _sorted(found[(found >= 0) & (found < len(rows))])
    ordered = np.asarray(rows, dtype=np.int64)
    at = np.searchsorted(ordered, wanted)
    ok = at < len(ordered)
    at = at[ok]
    return _sorted(at[ordered[at] == wanted[ok]])


def _sorted(a: Any) -> Any:
    """``a`` sorted (row numbers found in a sheet's order usually are already)."""
    return a if len(a) < 2 or bool((a[1:] >= a[:-1]).all()) else np.sort(a)


class _SerialsLost(Exception):
    """python-calamine made a time of day of a number below 1 or a negative one in a
    date format (-12345.6789 read as 07:42:23): the number is lost. The sheet is read
    again by our reader, so that the cell reads as the same cell of an XLS does."""


def _formatted_column(
    cells: list[Any],
    codes: Mapping[str, Any],
    rows: Sequence[int],
    date1904: bool,
    as_shown: bool,
    times_lose_serials: bool = False,
) -> tuple[list[str], tuple[int, str, str] | None]:
    """The texts of one column's cells (``cells[k]`` is in row ``rows[k]``), whose formats
    are ``codes`` (a format code to the row numbers of its cells), and the first cell
    (row, sent, shown) whose text differs from what a person sees, if any.
    ``times_lose_serials``: raise :class:`_SerialsLost` at a time of day in a date format.

    Each cell is converted once: by its format, or as General. The cells of a format are
    picked out with numpy (an object array of the cells) and its numbers converted in one
    batch where the format has a quick path; the rest one at a time."""
    n = len(cells)
    plan: list[tuple[str, Any, bool]] = []
    rewritten = np.zeros(n, dtype=bool)
    for code, wanted in codes.items():
        positions = _positions(rows, wanted)
        changes = as_shown or numfmt.changes_numbers(code)
        plan.append((code, positions, changes))
        if changes:
            rewritten[positions] = True
    if len(plan) == 1 and plan[0][2] and len(plan[0][1]) == n:  # one format, every cell
        many = fast_sent_many(plan[0][0], date1904)
        if many is not None and set(map(type, cells)) == {float}:
            sent = many(cells)  # (a column of ids formatted 00000000, typically)
            if None not in sent:
                return sent, None  # type: ignore[return-value]
    values = np.fromiter(cells, dtype=object, count=n)
    kinds = np.fromiter(map(type, cells), dtype=object, count=n)
    floats = kinds == float  # noqa: E721 (numpy: cell by cell)
    column = np.empty(n, dtype=object)
    if rewritten.any():
        kept = np.flatnonzero(~rewritten)
        column[kept] = column_texts(values[kept].tolist())
    else:
        column[:] = column_texts(cells)
    notice: tuple[int, str, str] | None = None
    for code, positions, changes in plan:
        if not changes and notice is not None:
            continue  # display-only: the exact numbers are already there
        pending = positions
        many = fast_sent_many(code, date1904)  # only for formats that change numbers
        if many is not None:
            # Numbers a quick path takes never differ from what is shown (it declines
            # a number whose section would show it otherwise): no notice among them.
            at = positions[floats[positions]]
            sent = many(values[at].tolist())
            left = at[:0]
            if None in sent:
                done = np.fromiter((s is not None for s in sent), dtype=bool, count=len(sent))
                column[at[done]] = [s for s in sent if s is not None]
                left = at[~done]
            else:
                column[at] = sent
            others = positions[~floats[positions]]
            pending = np.sort(np.concatenate((others, left))) if len(left) else others
        moment = fast_moment(code)
        # python-calamine hands a date-time at midnight over as a date: a format that
        # shows a time gives it one (formatted_cell), any other the date
        day_kind = numfmt.parse(code)[0].kind
        day_shows_time = day_kind in (numfmt.Kind.DATETIME, numfmt.Kind.TIME)
        serial_lost = times_lose_serials and day_kind in (numfmt.Kind.DATE, numfmt.Kind.DATETIME)
        dated = pending[kinds[pending] == dt.datetime]
        if len(dated):  # date-times python-calamine made, at once where they allow it
            sent = fast_moments(code)(values[dated].tolist())
            if None not in sent:
                column[dated] = sent
                pending = pending[kinds[pending] != dt.datetime]
        for k in pending.tolist():
            value = cells[k]
            kind = type(value)
            if kind is str or (kind is dt.date and not day_shows_time):  # text, or a date
                if changes:
                    column[k] = cell_to_str(value)
                continue
            if kind is dt.time and serial_lost:
                raise _SerialsLost
            if kind is dt.datetime:
                text = moment(value)
                if text is not None:  # (a date-time is never shown otherwise)
                    column[k] = text
                    continue
            done_cell = formatted_cell(
                value, code, date1904=date1904, as_shown=as_shown, want_shown=notice is None
            )
            column[k] = done_cell.sent
            if done_cell.shown and notice is None:
                notice = (rows[k], done_cell.sent, done_cell.shown)
                if not changes:
                    break
    texts: list[str] = column.tolist()
    return texts, notice


class SheetFormats:
    """The number formats of one sheet's cells, read on demand for the needed columns."""

    def __init__(
        self,
        read: Callable[[Sequence[int]], dict[int, dict[str, Any]]],
        date1904: bool,
        times_lose_serials: bool = False,
    ) -> None:
        self._read = read
        self.date1904 = date1904
        # python-calamine read the cells (XLSX): a time of day in a date format stands
        # for a number below 1 or a negative one, which only our reader keeps
        self.times_lose_serials = times_lose_serials

    def of(self, columns: Sequence[int]) -> dict[int, dict[str, Any]]:
        return self._read(columns)


# A sheet whose cells, read densely from A1, would be this many times the cells it has
# (and at least _SPARSE_MIN cells) is read sparsely instead: memory follows used cells.
_SPARSE_RATIO = 4
_SPARSE_MIN = 2_000_000


class _Styles:
    """What python-calamine does not give of a workbook: the number formats of the cells
    (XLSX/XLSM from the style table, XLS from xlrd) and, for an XLSX sheet with a cell
    far outside its data, its cells read sparsely."""

    def __init__(self, workbook: Any, data: WorkbookData | None) -> None:
        self.ods: WorkbookData | None = None  # an ODS workbook: formats from its shown text
        self._xls = workbook if isinstance(workbook, xls.XlsBook) else None
        self._own = workbook if isinstance(workbook, ooxml.OwnBook) else None
        self._rich_strings: bool | None = None
        self._archive: zipfile.ZipFile | None = None
        self._package: ooxml.Package | None = None
        self._styles: list[str | None] = []
        self._xml: dict[str, bytes | None] = {}  # sheet name -> its XML part, once read
        self._found: dict[str, ooxml.StyledCells] = {}  # sheet name -> its styled cells
        if data is None:
            return
        try:
            self._archive = zipfile.ZipFile(data if isinstance(data, Path) else io.BytesIO(data))
            self._package = ooxml.open_package(self._archive)
            if self._package is not None:
                self._styles = ooxml.style_formats(self._archive, self._package)
        except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError, zlib.error):
            self._package = None

    @property
    def reads_xml(self) -> bool:
        """Whether this workbook's sheets are XML parts this class reads (XLSX, XLSM)."""
        return self._package is not None and self._archive is not None

    def _sheet_xml(self, name: str) -> bytes | None:
        if name in self._xml:
            return self._xml[name]
        package, archive = self._package, self._archive
        xml = None
        if package is not None and archive is not None and name in package.sheets:
            try:
                xml = archive.read(package.sheets[name])
            except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError, zlib.error):
                xml = None
        self._xml = {name: xml}  # the last sheet read only: one part in memory at a time
        return xml

    def sparse_rows(
        self, name: str, force: bool = False
    ) -> tuple[list[list[Any]], list[int]] | None:
        """The sheet's rows as our own reader reads them (only the rows that have cells),
        where python-calamine would read it wrongly or at great cost: a workbook it
        refuses; rich text whose runs have spaces at their edges (it drops them); dates
        stored as ISO 8601 text (it leaves some as text: ``...Z``); a cell
        far outside the data (it would build the whole bounding box); ``force``: a sheet
        it fails on (None then if our reader fails too). None to let python-calamine
        read it."""
        xml = self._sheet_xml(name)
        if xml is None or self._package is None or self._archive is None:
            return None
        if self._own is not None:
            return ooxml.read_sparse_sheet(ooxml.utf8_xml(xml), self._own.strings())
        if force:
            try:
                strings = ooxml.shared_strings(self._archive, self._package)
                return ooxml.read_sparse_sheet(ooxml.utf8_xml(xml), strings)
            except Exception:
                return None
        why = ""
        if ooxml.runs_lose_spaces(xml) or self._strings_lose_spaces():
            why = "rich text with spaces between its runs"
        elif ooxml.has_iso_dates(xml):
            why = "dates stored as ISO 8601 text"
        else:
            rows, columns = ooxml.sheet_extent(xml)
            if rows * columns > _SPARSE_MIN:  # (counting the cells costs two passes)
                cells = ooxml.cell_count(xml)
                if rows * columns > _SPARSE_RATIO * cells:
                    why = f"{rows} rows x {columns} columns for {cells} cells"
        if not why:
            if not any(self._styles):  # no format to look up in it later: let it go
                self._xml = {}
            return None
        try:
            strings = ooxml.shared_strings(self._archive, self._package)
            read = ooxml.read_sparse_sheet(ooxml.utf8_xml(xml), strings)
        except Exception as exc:  # python-calamine then reads it, or says what is wrong
            log.debug("our reader cannot read sheet %r: %s", name, exc)
            return None
        log.info("sheet %r read by our own reader (%s)", name, why)
        return read

    def _strings_lose_spaces(self) -> bool:
        if self._rich_strings is None:
            self._rich_strings = False
            package, archive = self._package, self._archive
            assert package is not None
            assert archive is not None
            name = next(
                (z for n, z in package.names.items() if n.endswith("sharedstrings.xml")), None
            )
            if name is not None:
                with contextlib.suppress(zipfile.BadZipFile, OSError, KeyError, zlib.error):
                    self._rich_strings = ooxml.runs_lose_spaces(archive.read(name))
        return self._rich_strings

    def sheet(self, name: str) -> SheetFormats | None:
        ods_data = self.ods
        if ods_data is not None:
            return SheetFormats(lambda columns: ods.cell_codes(ods_data, name, columns), False)
        book = self._xls
        if book is not None:
            return SheetFormats(lambda columns: book.formats(name, columns), book.date1904)
        package = self._package
        if package is None or not any(self._styles):
            return None

        def read(columns: Sequence[int]) -> dict[int, dict[str, Any]]:
            found = self._found.get(name)
            if found is not None:
                return ooxml.styles_by_column(found, columns, self._styles)
            xml = self._sheet_xml(name)
            return {} if xml is None else ooxml.cell_styles(xml, columns, self._styles)

        return SheetFormats(read, package.date1904, times_lose_serials=True)

    def look_ahead(self, name: str) -> None:
        """Find the styled cells of every column of a sheet now, while python-calamine
        builds the sheet in another thread; :meth:`sheet` then looks up the columns it
        needs among them. (Which columns are needed is known only once the header is
        read, after the sheet is built: scanning them all is cheaper than the sheet.)"""
        xml = self._sheet_xml(name) if any(self._styles) and self._xls is None else None
        if xml is not None:
            found = ooxml.styled_cells(xml, self._styles)
            if found is not None:
                self._found = {name: found}
                self._xml = {}  # all it was kept for is found: let it go


def sheet_texts(
    path: Path, options: LoadOptions | None = None
) -> dict[str, list[tuple[int, int, str]]]:
    """Every non-empty cell of every worksheet, as bulk_sync would send it: (row, column,
    text), 1-based rows, 0-based columns. For checking the reading against what another
    program shows (tests/corpus); not used by a run."""
    opts = options if options is not None else LoadOptions()
    fmt = {".xlsx": "XLSX", ".xlsm": "XLSM", ".xlsb": "XLSB", ".xls": "XLS", ".ods": "ODS"}[
        path.suffix.casefold()
    ]
    data: WorkbookData = path
    head = path.read_bytes()[:4096]
    if head.startswith(OLE_MAGIC):
        unlocked = encryption.unlock(data, fmt, path.name)
        if unlocked is not None:
            data, head = unlocked, unlocked[:4096]
    check_workbook_container(data, head, len(head), fmt, opts, path.name)
    workbook = _open_workbook(data, fmt)
    styles = _Styles(workbook, data if fmt in ("XLSX", "XLSM") else None)
    if fmt == "ODS":
        styles.ods = data
    out: dict[str, list[tuple[int, int, str]]] = {}
    worksheet = calamine.SheetTypeEnum.WorkSheet
    for meta in workbook.sheets_metadata:
        if meta.typ != worksheet:
            continue
        name = meta.name
        try:
            grid, numbers = styles.sparse_rows(name) or (_dense_rows(workbook, name), None)
        except BaseException as exc:
            if not _is_reader_failure(exc):
                raise
            own = styles.sparse_rows(name, force=True) if fmt in ("XLSX", "XLSM") else None
            if own is None:
                raise
            grid, numbers = own
        if fmt == "ODS":
            grid = _ods_durations(grid)
        rows: Sequence[int] = range(1, len(grid) + 1) if numbers is None else numbers
        width = max(map(len, grid), default=0)
        body = [row if len(row) >= width else [*row, *([""] * (width - len(row)))] for row in grid]
        formats = styles.sheet(name)
        try:
            out[name] = _all_cells(body, rows, formats, opts, numbers is None)
        except _SerialsLost:  # read again by our reader, as load_workbook does
            own = styles.sparse_rows(name, force=True)
            if own is None:
                out[name] = _all_cells(body, rows, formats, opts, False)
            else:
                width = max(map(len, own[0]), default=0)
                body = [r if len(r) >= width else [*r, *([""] * (width - len(r)))] for r in own[0]]
                out[name] = _all_cells(body, own[1], styles.sheet(name), opts, False)
    with contextlib.suppress(Exception):
        workbook.close()
    return out


def _all_cells(
    body: list[list[Any]],
    rows: Sequence[int],
    formats: SheetFormats | None,
    opts: LoadOptions,
    times_lose_serials: bool,
) -> list[tuple[int, int, str]]:
    """Every non-empty cell of a sheet's rows as :func:`sheet_texts` gives them."""
    width = max(map(len, body), default=0)
    found = formats.of(range(width)) if formats is not None else {}
    cells: list[tuple[int, int, str]] = []
    for j in range(width):
        values = [row[j] for row in body]
        codes = found.get(j)
        if codes and formats is not None:
            texts, _ = _formatted_column(
                values,
                codes,
                rows,
                formats.date1904,
                opts.cells == "as_shown",
                times_lose_serials and formats.times_lose_serials,
            )
        else:
            texts = column_texts(values)
        cells.extend((rows[k], j, text) for k, text in enumerate(texts) if text)
    return sorted(cells)
