"""XLS (BIFF2-8) through xlrd: cell values, their number formats, the sheets' visibility.

python-calamine reads XLS too, but garbles some strings (UTF-16 text with NULs, BIFF5
code pages), gives no number formats, and builds the sheet's whole bounding box (a cell
at IV65536 costs a gigabyte). xlrd decodes strings by the file's code page, gives each
cell's format, and keeps ragged rows: memory follows the cells used. The object below
answers the few calls :mod:`bulk_sync.loading.workbook` makes of a calamine workbook.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import python_calamine as calamine
import xlrd

from bulk_sync.numfmt import Kind, parse

__all__ = ["XlsBook", "XlsEncrypted", "open_xls"]

_VISIBILITY = {
    0: calamine.SheetVisibleEnum.Visible,
    1: calamine.SheetVisibleEnum.Hidden,
    2: calamine.SheetVisibleEnum.VeryHidden,
}


class XlsEncrypted(Exception):
    """xlrd met a FILEPASS record: the workbook is encrypted."""


class _Sheet:
    def __init__(self, sheet: Any) -> None:
        self._sheet = sheet

    def to_python(self, skip_empty_area: bool = True) -> list[list[Any]]:
        del skip_empty_area  # rows always start at row 1, column A
        sheet = self._sheet
        grid: list[list[Any]] = []
        for r in range(sheet.nrows):
            types = sheet.row_types(r)
            values = sheet.row_values(r)
            row: list[Any] = []
            for t, v in zip(types, values, strict=False):
                if t == xlrd.XL_CELL_TEXT:
                    row.append(v)
                elif t in (xlrd.XL_CELL_NUMBER, xlrd.XL_CELL_DATE):
                    row.append(float(v))
                elif t == xlrd.XL_CELL_BOOLEAN:
                    row.append(bool(v))
                else:  # empty, blank, error (#DIV/0! reads as empty, as from calamine)
                    row.append("")
            grid.append(row)
        return grid


class XlsBook:
    """An xlrd workbook behind the interface of a calamine one."""

    def __init__(self, book: Any) -> None:
        self._book = book
        self.sheet_names: list[str] = list(book.sheet_names())
        self.sheets_metadata = [
            calamine.SheetMetadata(
                name,
                calamine.SheetTypeEnum.WorkSheet,
                _VISIBILITY.get(book.sheet_by_index(k).visibility, _VISIBILITY[1]),
            )
            for k, name in enumerate(self.sheet_names)
        ]
        self.date1904 = book.datemode == 1
        self._xf_codes = _xf_codes(book)

    def get_sheet_by_name(self, name: str) -> _Sheet:
        return _Sheet(self._book.sheet_by_name(name))

    def formats(self, name: str, columns: Sequence[int]) -> dict[int, dict[str, Any]]:
        """For each of ``columns``, the 1-based rows of its cells in each format code
        (formats that change nothing left out)."""
        codes = self._xf_codes
        if not any(codes):
            return {}
        sheet = self._book.sheet_by_name(name)
        out: dict[int, dict[str, Any]] = {}
        for j in columns:
            by_code: dict[str, list[int]] = {}
            for r in range(sheet.nrows):
                if j >= sheet.row_len(r):
                    continue
                try:
                    xf = sheet.cell_xf_index(r, j)
                except (IndexError, AttributeError):
                    continue
                code = codes[xf] if 0 <= xf < len(codes) else None
                if code is not None:
                    by_code.setdefault(code, []).append(r + 1)
            if by_code:
                out[j] = {code: np.array(rows, dtype=np.int64) for code, rows in by_code.items()}
        return out

    def close(self) -> None:
        self._book.release_resources()


def _xf_codes(book: Any) -> list[str | None]:
    codes: list[str | None] = []
    for xf in getattr(book, "xf_list", []):
        fmt = book.format_map.get(xf.format_key)
        code = fmt.format_str if fmt is not None else "General"
        kinds = {s.kind for s in parse(code or "General")}
        codes.append(None if kinds <= {Kind.GENERAL} else code)
    return codes


def open_xls(data: Path | bytes) -> XlsBook:
    """The workbook, or xlrd's exception (:class:`XlsEncrypted` for an encrypted one)."""
    with open(os.devnull, "w", encoding="utf-8") as quiet:
        kwargs: dict[str, Any] = {"ragged_rows": True, "logfile": quiet, "verbosity": 0}
        if isinstance(data, Path):
            kwargs["filename"] = os.fspath(data)
        else:
            kwargs["file_contents"] = data
        try:
            try:
                book = xlrd.open_workbook(formatting_info=True, **kwargs)
            except (KeyError, IndexError, AssertionError, NotImplementedError):
                book = xlrd.open_workbook(formatting_info=False, **kwargs)
        except xlrd.XLRDError as exc:
            if "encrypted" in str(exc).lower():
                raise XlsEncrypted(str(exc)) from None
            raise
    return XlsBook(book)
