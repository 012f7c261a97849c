"""Load CSV/TSV/XLSX/XLSM/XLSB/XLS/ODS files into :class:`~bulk_sync.models.Table` values.

The first stage of the pipeline (DESIGN.md section 1). pandas, pyarrow and the Excel
reader stay inside this module: what leaves it is text (see :mod:`bulk_sync.cells`)
plus the place every row came from.

Rules, in the order a file meets them:

- The kind of file comes from its extension (``.csv``/``.tsv``/``.txt`` are delimited
  text; ``.xlsx``/``.xlsm``/``.xlsb``/``.xls``/``.ods`` are workbooks) and is checked
  against the first bytes, so a workbook named ``.csv``, a CSV named ``.xlsx``, an HTML
  page named ``.xls`` or a damaged zip is refused with a message saying what it is.
- Everything this module raises on purpose is :class:`~bulk_sync.errors.InputError`
  (options that make no sense raise :class:`~bulk_sync.errors.ConfigError`); errors of
  the underlying readers never escape.
- The header is the first row that is not blank; rows above it are blank rows. Row
  numbers are the ones a spreadsheet shows: the header of a file that starts with it is
  row 1. In CSV a row is a *record*: a quoted value spanning lines is still one row, and
  a blank line is a (blank) row.
- Blank rows (the customer id, attribute and value cells all empty after trimming; other
  columns are ignored) are skipped silently; later rows keep their true numbers.
- A header-only file or sheet gives a table with no rows. A file with no header at all
  (0 bytes, or nothing but blank lines) is an error, and so is an empty selected sheet.
- Header cells match the logical columns case-insensitively with space, ``-`` and ``_``
  alike (:func:`~bulk_sync.cells.normalize_header`), or as ``columns=`` maps them; other
  columns are ignored; two columns matching the same name are an error. In wide files
  (``wide=True``) every other non-empty header names an attribute and every non-empty
  cell under it is a row (cells under an empty header are ignored).
- ``Table.rows`` is a :class:`range` when the rows are consecutive (no blank row was
  skipped), a list otherwise.
- Limits (:class:`LoadOptions`): file size, size once unzipped (zip bombs), and the
  length of one value (a quote opened and never closed swallows the rest of the file).

CSV specifics: encoding is UTF-8 (a byte-order mark is removed), UTF-16/32 when a BOM
says so, else cp1252, else latin-1; ``encoding=`` forces one. The delimiter is chosen
among ``,`` ``;`` tab ``|`` by parsing the first 64 KB with each (quotes honoured) and
preferring the one whose header has the needed columns, then the one giving the most
consistent field count (tab first for ``.tsv``). A record with fewer fields than the
header gets empty fields; one with more keeps the first ones and carries a *defect* when
a dropped field is not empty. NUL characters inside a field are kept (validation flags
control characters); a file that is mostly control characters is refused as binary.
Well-formed files go through pyarrow's multi-threaded reader; files it cannot number
exactly (blank lines between quoted records, ragged records) through Python's csv module.

Workbook specifics: the default sheet is the first *visible* worksheet; ``sheet=`` names
any sheet (hidden ones included); ``all_sheets=True`` loads every visible worksheet that
has the needed columns ("every sheet sharing the header"), leaving out empty ones and,
with a warning, those without the columns; none with them is an error. Formula
cells give the value Excel/LibreOffice last computed (an error value such as
``#DIV/0!`` reads as empty); merged cells give their value in the top-left cell only;
hidden rows and columns are read like any other.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
import logging
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pac  # type: ignore[import-untyped]
import pyarrow.csv as pacsv  # type: ignore[import-untyped]
import python_calamine as calamine

from bulk_sync.cells import cell_to_str, normalize_header
from bulk_sync.errors import ConfigError, InputError
from bulk_sync.models import Table

log = logging.getLogger(__name__)

__all__ = [
    "DELIMITED_EXTENSIONS",
    "WORKBOOK_EXTENSIONS",
    "LoadOptions",
    "load",
    "load_file",
    "parse_delimiter",
]

DELIMITED_EXTENSIONS: tuple[str, ...] = (".csv", ".tsv", ".txt")
WORKBOOK_EXTENSIONS: dict[str, str] = {
    ".xlsx": "XLSX",
    ".xlsm": "XLSM",
    ".xlsb": "XLSB",
    ".xls": "XLS",
    ".ods": "ODS",
}
CANDIDATE_DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
LOGICAL_COLUMNS: tuple[str, str, str] = ("customer_id", "attribute", "value")

_DELIMITER_NAMES = {
    "tab": "\t",
    "\\t": "\t",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
}
_SAMPLE_BYTES = 64 * 1024
_SNIFF_RECORDS = 1000
_MiB = 1024 * 1024
_GiB = 1024 * _MiB

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BINARY_RATIO = 0.10  # more control characters than this: not a text file
_BINARY_MIN_SAMPLE = 256  # below this, rows speak for themselves (validation flags controls)
_MAX_LISTED = 30  # headers named in a message
# A workbook expanding past this much AND more than max_compression_ratio times its size
# is a zip bomb: real workbooks compress 5-20 times (even identical rows stay under 20),
# and the reader needs about four times the unpacked size in memory.
_BOMB_FLOOR = 32 * _MiB


def parse_delimiter(text: str) -> str:
    """A delimiter as a user may spell it (``";"``, ``"\\t"``, ``"tab"``, ``"pipe"``)."""
    char = _DELIMITER_NAMES.get(text.strip().casefold(), text) if len(text) != 1 else text
    if len(char) != 1 or char in '"\r\n' or char.isalnum():
        raise ConfigError(
            f"delimiter {text!r} cannot be used: give one character such as ',' ';' '|' or 'tab'"
        )
    return char


@dataclass(frozen=True)
class LoadOptions:
    """How to read input files. Every field has a default that detects what it can.

    ``columns`` maps a logical column (``customer_id``, ``attribute``, ``value``) to
    the header text used in the files instead (matched like any header: case, spaces,
    ``-`` and ``_`` do not matter). The ``max_*`` limits protect the run from files
    that would exhaust memory (zip bombs, a quote that is never closed).
    """

    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    all_sheets: bool = False
    wide: bool = False
    columns: Mapping[str, str] = field(default_factory=dict)
    max_file_bytes: int = 2 * _GiB
    max_uncompressed_bytes: int = 2 * _GiB
    max_compression_ratio: int = 200
    max_cell_chars: int = 100_000

    def __post_init__(self) -> None:
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ConfigError(f"unknown encoding {self.encoding!r}") from None
        if self.delimiter is not None:
            object.__setattr__(self, "delimiter", parse_delimiter(self.delimiter))
        if self.sheet is not None and self.all_sheets:
            raise ConfigError("give either a sheet name or all sheets, not both")
        columns: dict[str, str] = {}
        for key, header in self.columns.items():
            logical = normalize_header(str(key))
            if logical not in LOGICAL_COLUMNS:
                raise ConfigError(
                    f"columns: unknown column {key!r}; expected one of "
                    + ", ".join(LOGICAL_COLUMNS)
                )
            if not str(header).strip():
                raise ConfigError(f"columns: the header for {logical!r} is empty")
            columns[logical] = str(header).strip()
        object.__setattr__(self, "columns", columns)
        for name in (
            "max_file_bytes",
            "max_uncompressed_bytes",
            "max_compression_ratio",
            "max_cell_chars",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")


def load(paths: Sequence[Path | str], options: LoadOptions | None = None) -> list[Table]:
    """Every table of every file, in the order given."""
    opts = options if options is not None else LoadOptions()
    return [table for path in paths for table in load_file(path, opts)]


def load_file(path: Path | str, options: LoadOptions | None = None) -> list[Table]:
    """The tables of one file: one for a CSV/TSV, one per selected sheet of a workbook."""
    opts = options if options is not None else LoadOptions()
    path = Path(path)
    source = path.name
    ext = path.suffix.casefold()
    if ext not in DELIMITED_EXTENSIONS and ext not in WORKBOOK_EXTENSIONS:
        known = ", ".join((*DELIMITED_EXTENSIONS, *WORKBOOK_EXTENSIONS))
        raise InputError(
            f"unsupported file type {path.suffix or '(no extension)'!r}; expected one of {known}",
            source=source,
        )
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InputError("is not a file", source=source)
        if size > opts.max_file_bytes:
            raise InputError(
                f"file is too large ({_size(size)}; the limit is {_size(opts.max_file_bytes)})",
                source=source,
            )
        if ext in DELIMITED_EXTENSIONS:
            if opts.sheet is not None or opts.all_sheets:
                log.warning("%s: a text file has no sheets; --sheet/--all-sheets ignored", source)
            data = path.read_bytes()
            return [_load_delimited(data, source, ext, opts)]
        with path.open("rb") as fh:
            head = fh.read(4096)
        return _load_workbook(path, head, size, WORKBOOK_EXTENSIONS[ext], opts)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError("file not found", source=source) from None
    except PermissionError:
        raise InputError("permission denied: cannot read the file", source=source) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", source=source) from None
    except MemoryError:
        raise InputError("not enough memory to load this file", source=source) from None
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}", source=source) from None
    except Exception as exc:  # a reader failing in a way not foreseen: still the file's fault
        raise InputError(f"cannot be read ({type(exc).__name__}: {exc})", source=source) from exc


# --------------------------------------------------------------------------- helpers


def _size(n: int) -> str:
    if n >= _GiB:
        return f"{n / _GiB:.1f} GB"
    if n >= _MiB:
        return f"{n / _MiB:.1f} MB"
    return f"{n} bytes"


def _control_ratio(text: str) -> float:
    """Share of characters that never appear in text files (C0 controls but tab/CR/LF, DEL);
    0 for samples too small to judge. (U+FFFD is not counted: a cp1252 file read as UTF-8
    is full of them.)"""
    if len(text) < _BINARY_MIN_SAMPLE:
        return 0.0
    bad = sum(1 for ch in text if (ch < " " and ch not in "\t\r\n") or ch == "\x7f")
    return bad / len(text)


def _content_kind(head: bytes) -> str:
    """What the first bytes of a file say it is: zip, ole, gzip, pdf, html, text, binary."""
    if not head:
        return "empty"
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(_OLE_MAGIC):
        return "ole"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return "text"
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        return "html"
    if _control_ratio(head.decode("latin-1")) > _BINARY_RATIO:
        return "binary"
    return "text"


def _columns_message(
    missing: list[str],
    headers: Sequence[str],
    header_row: int,
    options: LoadOptions,
    hint: str = "",
) -> str:
    names = []
    for logical in missing:
        configured = options.columns.get(logical)
        names.append(f"{configured!r} (configured for {logical})" if configured else repr(logical))
    shown = [repr(h) for h in headers if h]
    if len(shown) > _MAX_LISTED:
        shown[_MAX_LISTED:] = [f"... ({len(shown) - _MAX_LISTED} more)"]
    found = ", ".join(shown) or "none"
    plural = "columns" if len(missing) > 1 else "column"
    return f"missing {plural} {', '.join(names)}; headers found in row {header_row}: {found}{hint}"


@dataclass(frozen=True)
class _Layout:
    """Where the needed columns are in a header."""

    header: tuple[str, ...]
    header_row: int
    indices: tuple[int, ...]  # customer id (, attribute, value) positions
    attribute_columns: tuple[tuple[int, str], ...] = ()  # wide: (position, header text)

    @property
    def needed(self) -> list[int]:
        return [*self.indices, *(j for j, _ in self.attribute_columns)]


def _find_columns(
    header: Sequence[str], options: LoadOptions
) -> tuple[dict[str, int], list[str], list[tuple[str, list[int]]]]:
    """(found positions, missing logical names, ambiguous logical names with positions)."""
    wanted = LOGICAL_COLUMNS[:1] if options.wide else LOGICAL_COLUMNS
    normalized = [normalize_header(h) for h in header]
    found: dict[str, int] = {}
    missing: list[str] = []
    ambiguous: list[tuple[str, list[int]]] = []
    for logical in wanted:
        target = normalize_header(options.columns.get(logical, logical))
        hits = [j for j, name in enumerate(normalized) if name == target]
        if not hits:
            missing.append(logical)
        elif len(hits) > 1:
            ambiguous.append((logical, hits))
        else:
            found[logical] = hits[0]
    return found, missing, ambiguous


def _layout(
    header: Sequence[str],
    header_row: int,
    options: LoadOptions,
    *,
    source: str,
    sheet: str = "",
    hint: str = "",
    column_label: Callable[[int], str] = lambda j: f"field {j + 1}",
) -> _Layout:
    found, missing, ambiguous = _find_columns(header, options)
    if missing:
        raise InputError(
            _columns_message(missing, header, header_row, options, hint),
            source=source,
            sheet=sheet,
        )
    if ambiguous:
        logical, hits = ambiguous[0]
        where = ", ".join(f"{column_label(j)} {header[j]!r}" for j in hits)
        raise InputError(
            f"{len(hits)} columns match {logical!r} ({where}); keep one or rename the others",
            source=source,
            sheet=sheet,
            row=header_row,
        )
    if options.wide:
        cid = found["customer_id"]
        # Every other column, named or not: a value under a column without a header is
        # reported (invalid: no attribute name), never dropped without a trace.
        attrs = tuple((j, h) for j, h in enumerate(header) if j != cid)
        if not any(h for _, h in attrs):
            raise InputError(
                f"a wide file needs a column per attribute besides {header[cid]!r}, "
                "and there is none",
                source=source,
                sheet=sheet,
                row=header_row,
            )
        return _Layout(tuple(header), header_row, (cid,), attrs)
    return _Layout(
        tuple(header),
        header_row,
        (found["customer_id"], found["attribute"], found["value"]),
    )


def _check_cell_lengths(
    columns: Sequence[Sequence[str]], rows: Sequence[int], layout: _Layout, limit: int, **where: str
) -> None:
    for j, col in zip(layout.needed, columns, strict=True):
        if col and max(map(len, col)) > limit:
            k = next(k for k, v in enumerate(col) if len(v) > limit)
            raise InputError(
                f"a value has {len(col[k]):,} characters (the limit is {limit:,}); "
                'is a quote (") opened and never closed?',
                row=rows[k],
                column=layout.header[j],
                **where,
            )


def _build_table(
    source: str,
    sheet: str,
    layout: _Layout,
    columns: Sequence[list[str]],
    rows: Sequence[int],
    defects: Mapping[int, str],
) -> Table:
    """A table from the needed columns (trimmed text, blank rows included) of every data row.

    ``columns`` follow ``layout.needed``; ``defects`` maps a data-row position to a message.
    """
    if layout.attribute_columns:
        return _build_wide(source, sheet, layout, columns, rows, defects)
    cids, attrs, vals = columns
    n = len(rows)
    keep = [k for k, (c, a, v) in enumerate(zip(cids, attrs, vals, strict=True)) if c or a or v]
    table_defects: list[tuple[int, str, str]] = []
    if defects:
        keep = sorted(set(keep).union(defects))
    if len(keep) != n:
        cids = [cids[k] for k in keep]
        attrs = [attrs[k] for k in keep]
        vals = [vals[k] for k in keep]
        rows = [rows[k] for k in keep]
    if defects:
        position = {k: i for i, k in enumerate(keep)}
        table_defects = [(position[k], "", msg) for k, msg in sorted(defects.items())]
    c, a, v = layout.indices
    return Table(
        source=source,
        sheet=sheet,
        rows=rows,
        customer_ids=cids,
        attributes=attrs,
        values=vals,
        headers=(layout.header[c], layout.header[a], layout.header[v]),
        defects=tuple(table_defects),
    )


def _build_wide(
    source: str,
    sheet: str,
    layout: _Layout,
    columns: Sequence[list[str]],
    rows: Sequence[int],
    defects: Mapping[int, str],
) -> Table:
    cid_col = columns[0]
    pairs = [
        (name, name or f"unnamed column {j + 1}", col)
        for (j, name), col in zip(layout.attribute_columns, columns[1:], strict=True)
    ]
    out_rows: list[int] = []
    cids: list[str] = []
    attrs: list[str] = []
    vals: list[str] = []
    labels: list[str] = []
    table_defects: list[tuple[int, str, str]] = []
    skips: list[tuple[int, str]] = []
    for k, cid in enumerate(cid_col):
        row = rows[k]
        start = len(cids)
        for name, label, col in pairs:
            value = col[k]
            if value:
                cids.append(cid)
                attrs.append(name)
                vals.append(value)
                labels.append(label)
                out_rows.append(row)
        if len(cids) == start and not cid and k not in defects:
            continue  # a blank row: not an input row
        if len(cids) == start:  # nothing to send from this row: keep it visible
            cids.append(cid)
            attrs.append("")
            vals.append("")
            labels.append("")
            out_rows.append(row)
            if k not in defects:
                skips.append((start, "no attribute values in this row (--wide)"))
        if k in defects:
            table_defects.append((start, "", defects[k]))
    return Table(
        source=source,
        sheet=sheet,
        rows=out_rows,
        customer_ids=cids,
        attributes=attrs,
        values=vals,
        headers=(layout.header[layout.indices[0]], "", ""),
        value_columns=labels,
        defects=tuple(table_defects),
        skips=tuple(skips),
    )


# --------------------------------------------------------------------------- delimited


_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def _decode_error(exc: UnicodeDecodeError, data: bytes, encoding: str, source: str) -> InputError:
    line = data.count(b"\n", 0, exc.start) + 1
    byte = data[exc.start : exc.start + 1].hex().upper()
    return InputError(
        f"cannot be read as {encoding}: byte 0x{byte} on line {line} is not valid "
        "(give the right encoding, e.g. --encoding cp1252)",
        source=source,
    )


def _decode_all(data: bytes, forced: str | None, source: str) -> str:
    """The whole file as text: the forced encoding, else UTF-8, else cp1252, else latin-1."""
    if forced is not None:
        name = codecs.lookup(forced).name
        body = data
        if name in ("utf-8", "utf-8-sig") and data.startswith(b"\xef\xbb\xbf"):
            body = data[3:]
        try:
            text = body.decode(forced)
        except UnicodeDecodeError as exc:
            raise _decode_error(exc, body, forced, source) from None
        return text[1:] if text.startswith("\ufeff") else text
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise _decode_error(exc, data[len(bom) :], encoding, source) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _utf8_bytes(data: bytes, forced: str | None, source: str) -> tuple[bytes, str | None]:
    """Bytes that are (probably) UTF-8 for the fast reader, and the text if already decoded.

    UTF-8 without a BOM is only checked on the first 64 KB here; pyarrow validates the
    rest, and a failure there sends the file through :func:`_decode_all`.
    """
    if forced is not None:
        if codecs.lookup(forced).name in ("utf-8", "utf-8-sig"):
            return (data[3:] if data.startswith(b"\xef\xbb\xbf") else data), None
        text = _decode_all(data, forced, source)
        return text.encode("utf-8", "surrogatepass"), text
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:], None
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        text = _decode_all(data, None, source)
        return text.encode("utf-8", "surrogatepass"), text
    try:
        codecs.getincrementaldecoder("utf-8")().decode(
            data[:_SAMPLE_BYTES], final=len(data) <= _SAMPLE_BYTES
        )
    except UnicodeDecodeError:
        text = _decode_all(data, None, source)
        return text.encode("utf-8", "surrogatepass"), text
    return data, None


@dataclass(frozen=True)
class _Sniffed:
    delimiter: str
    header: list[str] | None
    header_row: int


def _parse_sample(sample: str, delimiter: str, truncated: bool) -> list[list[str]]:
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter, strict=False)
    records: list[list[str]] = []
    try:
        for record in reader:
            records.append(record)
            if len(records) >= _SNIFF_RECORDS:
                return records
    except csv.Error:
        pass
    if truncated and records:
        records.pop()  # probably cut in the middle
    return records


def _sniff(sample: str, truncated: bool, ext: str, options: LoadOptions) -> _Sniffed:
    if options.delimiter is not None:
        candidates: tuple[str, ...] = (options.delimiter,)
    elif ext == ".tsv":
        candidates = ("\t", ",", ";", "|")
    else:
        candidates = CANDIDATE_DELIMITERS
    best: tuple[tuple[int, int, float, int], _Sniffed] | None = None
    for preference, delimiter in enumerate(candidates):
        records = _parse_sample(sample, delimiter, truncated)
        header_at = next((k for k, rec in enumerate(records) if any(f.strip() for f in rec)), None)
        if header_at is None:
            sniffed = _Sniffed(delimiter, None, 0)
            key = (0, 0, 0.0, -preference)
        else:
            header = [f.strip() for f in records[header_at]]
            found, _, _ = _find_columns(header, options)
            body = [rec for rec in records[header_at + 1 :] if rec]
            width = len(header)
            consistent = sum(1 for rec in body if len(rec) == width) / len(body) if body else 1.0
            key = (len(found), int(width > 1), consistent, -preference)
            sniffed = _Sniffed(delimiter, header, header_at + 1)
        if best is None or key > best[0]:
            best = (key, sniffed)
    assert best is not None
    return best[1]


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "','", ";": "';'", "|": "'|'"}.get(delimiter, repr(delimiter))


def _load_delimited(data: bytes, source: str, ext: str, options: LoadOptions) -> Table:
    kind = _content_kind(data[:4096])
    if kind == "empty":
        raise InputError("file is empty", source=source)
    if kind == "zip":
        raise InputError(
            "this looks like an Excel (XLSX) or OpenDocument (ODS) workbook, not a text file; "
            "rename it with its real extension (.xlsx or .ods)",
            source=source,
        )
    if kind == "ole":
        raise InputError(
            "this looks like an old Excel (XLS) workbook, not a text file; rename it to .xls",
            source=source,
        )
    if kind in ("gzip", "pdf"):
        raise InputError(
            f"this is a {'compressed (gzip)' if kind == 'gzip' else 'PDF'} file, not a CSV file",
            source=source,
        )
    raw, text = _utf8_bytes(data, options.encoding, source)
    del data
    skip = len(raw[: 1 << 20]) - len(raw[: 1 << 20].lstrip(b"\r\n"))
    sample_bytes = raw[skip : skip + _SAMPLE_BYTES]
    truncated = len(raw) - skip > _SAMPLE_BYTES
    sample = codecs.getincrementaldecoder("utf-8")("replace").decode(
        sample_bytes, final=not truncated
    )
    if options.encoding is None and _control_ratio(sample[:8192]) > _BINARY_RATIO:
        raise InputError(
            "does not look like a text (CSV) file: it is mostly binary data "
            "(if it is UTF-16 text without a byte-order mark, give --encoding utf-16)",
            source=source,
        )
    if truncated:
        cut = max(sample.rfind("\n"), sample.rfind("\r"))
        if cut > 0:
            sample = sample[: cut + 1]
    sniffed = _sniff(sample, truncated, ext, options)
    delimiter = sniffed.delimiter
    if sniffed.header is None and not truncated:
        raise InputError("file is empty (no header row)", source=source)
    hint = f" (read with delimiter {_delimiter_name(delimiter)}; give --delimiter if that is wrong)"
    if sniffed.header is not None and skip == 0 and sniffed.header_row == 1:
        layout = _layout(sniffed.header, 1, options, source=source, hint=hint)
        fast = _read_arrow(raw, delimiter, layout, source, options)
        if fast is _UTF8_ERROR and text is None:
            text = _decode_all(raw, options.encoding, source)
            raw = text.encode("utf-8", "surrogatepass")
            fast = _read_arrow(raw, delimiter, layout, source, options)
        # The Arrow table is gone: hand its pages back to the OS now (about 120 MB for a
        # million rows) rather than keep them through validation, grouping and upload.
        pa.default_memory_pool().release_unused()
        if isinstance(fast, Table):
            return fast
    if text is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_all(raw, options.encoding, source)
    return _read_python_csv(text, delimiter, source, options, hint)


_UTF8_ERROR = object()


def _read_arrow(
    raw: bytes, delimiter: str, layout: _Layout, source: str, options: LoadOptions
) -> Table | object | None:
    """The fast path: pyarrow's multi-threaded reader on a well-formed file.

    Returns None when the file needs the exact reader (blank lines, which pyarrow drops
    and which would shift row numbers; records with the wrong number of fields;
    anything else pyarrow dislikes), or ``_UTF8_ERROR`` when the bytes are not UTF-8.
    """
    width = len(layout.header)
    needed = layout.needed
    names = [f"f{j}" for j in range(width)]
    has_quotes = raw.find(b'"') != -1
    try:
        table = pacsv.read_csv(
            pa.BufferReader(raw),
            read_options=pacsv.ReadOptions(column_names=names, block_size=4 * _MiB),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=has_quotes,
                ignore_empty_lines=True,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                include_columns=[names[j] for j in sorted({*needed, width - 1})],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        return _UTF8_ERROR if "UTF8" in str(exc) else None
    except (pa.ArrowException, ValueError, TypeError):
        return None
    records = table.num_rows  # header included
    if records < 1:
        return None
    for j in needed:  # the header as pyarrow saw it must be the one the sniffer saw
        if table.column(names[j])[0].as_py().strip() != layout.header[j]:
            return None
    if has_quotes and records > 1:
        # pyarrow accepts a quote opened in the last field and never closed (the field
        # runs to the end of the file); the exact reader tells the user where.
        last = table.column(names[width - 1])[-1].as_py()
        if "\n" in last or "\r" in last:
            return None
    # pyarrow skips empty lines: make sure that does not shift row numbers.
    leading_blank = raw[:1] in (b"\n", b"\r")
    newlines = raw.count(b"\n")
    terminators = records if raw.endswith(b"\n") else records - 1
    line_numbers: Any = None  # spreadsheet row of every record (header first), when not 1, 2, ...
    if leading_blank or newlines != terminators:
        if not has_quotes and raw.count(b"\r") == raw.count(b"\r\n"):
            # Without quotes a record is a line: number the lines that are not empty.
            line_numbers = _nonempty_lines(raw)
            if len(line_numbers) != records:
                return None
        else:
            # Quoted line breaks or CR-only line ends: fine unless there is a blank line
            # before or between records.
            end = len(raw)
            while end and raw[end - 1] in b"\r\n":
                end -= 1
            if leading_blank or any(raw.find(p, 0, end) != -1 for p in (b"\n\n", b"\r\r", b"\n\r")):
                return None
    n = records - 1
    limit = options.max_cell_chars

    def prepare(j: int) -> tuple[Any, Any]:
        column = pac.utf8_trim_whitespace(table.column(names[j]).slice(1))
        length = pac.binary_length(column)
        if n and pac.max(length).as_py() > limit:  # bytes >= characters: look closer
            chars = pac.utf8_length(column)
            over = np.flatnonzero(pac.greater(chars, limit).to_numpy(zero_copy_only=False))
            if len(over):
                k = int(over[0])
                raise InputError(
                    f"a value has {chars[k].as_py():,} characters (the limit is {limit:,}); "
                    'is a quote (") opened and never closed?',
                    source=source,
                    row=k + 2 if line_numbers is None else int(line_numbers[k + 1]),
                    column=layout.header[j],
                )
        return column, length

    # pyarrow compute releases the GIL: trim the other columns in a worker thread while
    # this one turns the first column into Python strings.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(prepare, j) for j in needed[1:]]
        first, first_length = prepare(needed[0])
        columns = [_arrow_strings(first)]
        lengths = [first_length]
        for future in pending:
            column, length = future.result()
            columns.append(_arrow_strings(column))
            lengths.append(length)
    rows: Sequence[int] = range(2, n + 2) if line_numbers is None else line_numbers[1:].tolist()
    if layout.attribute_columns:
        return _build_table(source, "", layout, columns, rows, {})
    nonblank = pac.greater(lengths[0], 0)
    for length in lengths[1:]:
        nonblank = pac.or_(nonblank, pac.greater(length, 0))
    if n and not pac.all(nonblank).as_py():
        mask = nonblank.to_numpy(zero_copy_only=False)
        rows = list(itertools.compress(rows, mask))
        columns = [list(itertools.compress(column, mask)) for column in columns]
    cids, attrs, vals = columns
    c, a, v = layout.indices
    return Table(
        source=source,
        sheet="",
        rows=rows,
        customer_ids=cids,
        attributes=attrs,
        values=vals,
        headers=(layout.header[c], layout.header[a], layout.header[v]),
    )


def _nonempty_lines(raw: bytes) -> Any:
    """1-based numbers of the lines that are not empty (LF or CRLF line ends)."""
    data = np.frombuffer(raw, dtype=np.uint8)
    breaks = np.flatnonzero(data == 10)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(data)]))
    lengths = ends - starts
    before_break = data[np.maximum(ends - 1, 0)] if len(data) else np.zeros(0, dtype=np.uint8)
    lengths = lengths - ((lengths > 0) & (before_break == 13))
    return np.flatnonzero(lengths > 0) + 1


def _arrow_strings(column: Any) -> list[str]:
    """A pyarrow string column as a list of str, fast.

    Columns made of runs (customer ids sorted or grouped, as exports usually are) are
    run-length encoded first, so each distinct string is built once and shared.
    """
    out: list[str] = []
    for chunk in column.chunks:
        if len(chunk) < _PROBE:
            out.extend(chunk.to_pylist())
            continue
        probe = chunk.slice(0, _PROBE)
        if len(pac.run_end_encode(probe).values) * 4 <= _PROBE:
            encoded = pac.run_end_encode(chunk)
            out.extend(
                np.repeat(
                    _object_array(encoded.values.to_pylist()),
                    np.diff(encoded.run_ends.to_numpy(), prepend=0),
                ).tolist()
            )
        elif pac.count_distinct(probe).as_py() * 16 <= _PROBE:
            encoded = chunk.dictionary_encode()
            out.extend(
                _object_array(encoded.dictionary.to_pylist())[encoded.indices.to_numpy()].tolist()
            )
        else:
            out.extend(_split_strings(chunk))
    return out


_PROBE = 4096


def _split_strings(chunk: Any) -> list[str]:
    """All strings of a chunk: joined by pyarrow, then split by Python (faster than
    ``to_pylist``); a NUL inside a value spoils the split, and then ``to_pylist`` it is."""
    joined = pac.binary_join(
        pa.ListArray.from_arrays(pa.array([0, len(chunk)], pa.int32()), chunk), "\x00"
    )
    parts: list[str] = joined[0].as_py().split("\x00")
    return parts if len(parts) == len(chunk) else chunk.to_pylist()


def _object_array(items: list[str]) -> Any:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _read_python_csv(
    text: str, delimiter: str, source: str, options: LoadOptions, hint: str
) -> Table:
    """The exact path: Python's csv module, one record at a time."""
    if options.max_cell_chars >= csv.field_size_limit():
        csv.field_size_limit(options.max_cell_chars + 1)
    stream = io.StringIO(text, newline="")
    reader = csv.reader(stream, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    header: list[str] | None = None
    header_row = 0
    record_no = 0
    records: list[list[str]] = []
    rows: list[int] = []
    last_start = 0  # where the last record begins, to check its quotes
    while True:
        start = stream.tell()
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise InputError(
                    f"a value is longer than {options.max_cell_chars:,} characters; "
                    'is a quote (") opened and never closed?',
                    source=source,
                    row=record_no + 1,
                ) from None
            raise InputError(
                f"cannot be parsed as CSV: {exc}", source=source, row=record_no + 1
            ) from None
        record_no += 1
        if header is None:
            if any(f.strip() for f in record):
                header = [f.strip() for f in record]
                header_row = record_no
            continue
        records.append(record)
        rows.append(record_no)
        last_start = start
    if header is None:
        raise InputError("file is empty (no header row)", source=source)
    if records and any("\n" in f or "\r" in f for f in records[-1]):
        _check_closed_quotes(text[last_start:], delimiter, source, rows[-1])
    layout = _layout(header, header_row, options, source=source, hint=hint)
    width = len(header)
    defects: dict[int, str] = {}
    for k, record in enumerate(records):
        count = len(record)
        if count < width:
            record.extend([""] * (width - count))
        elif count > width and any(f.strip() for f in record[width:]):
            defects[k] = (
                f"row has {count} fields but the header has {width}; is a value containing "
                f"{_delimiter_name(delimiter)} missing its quotes?"
            )
    columns = [[record[j].strip() for record in records] for j in layout.needed]
    _check_cell_lengths(columns, rows, layout, options.max_cell_chars, source=source)
    return _build_table(source, "", layout, columns, rows, defects)


def _check_closed_quotes(tail: str, delimiter: str, source: str, row: int) -> None:
    try:
        for _ in csv.reader(io.StringIO(tail, newline=""), delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise InputError(
                'a quoted value is never closed: a quote (") is missing, so everything '
                "after it up to the end of the file would be one value",
                source=source,
                row=row,
            ) from None


# --------------------------------------------------------------------------- workbooks


def _column_letter(j: int) -> str:
    letters = ""
    j += 1
    while j:
        j, rem = divmod(j - 1, 26)
        letters = chr(65 + rem) + letters
    return f"column {letters}"


def _check_workbook_container(
    path: Path, head: bytes, size: int, fmt: str, options: LoadOptions
) -> None:
    source = path.name
    kind = _content_kind(head)
    if kind == "empty":
        raise InputError("file is empty", source=source)
    expected = "ole" if fmt == "XLS" else "zip"
    if kind != expected:
        if kind == "text":
            detail = "it looks like a text (CSV) file; rename it to .csv"
        elif kind == "html":
            detail = (
                "it is an HTML/XML page saved under a workbook name (some systems export like "
                "this); open it in Excel and save it as .xlsx, or export it as CSV"
            )
        elif kind == "zip":
            detail = "it is a zip-based workbook (XLSX or ODS); rename it to .xlsx or .ods"
        elif kind == "ole":
            detail = (
                "it is an old-format Excel (XLS) workbook or a password-protected workbook; "
                "rename it to .xls, or remove the password and save it again"
            )
        else:
            detail = "the content is not a spreadsheet"
        raise InputError(f"not a valid {fmt} workbook: {detail}", source=source)
    if kind != "zip":
        return
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            strings = _declared_shared_strings(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise InputError(
            f"not a valid {fmt} workbook: the file is damaged or incomplete ({exc})",
            source=source,
        ) from None
    total = sum(info.file_size for info in infos)
    largest = max((info.file_size for info in infos), default=0)
    if total > options.max_uncompressed_bytes or (
        total > _BOMB_FLOOR and total > options.max_compression_ratio * max(size, 1)
    ):
        raise InputError(
            f"looks like a zip bomb: {_size(size)} would expand to {_size(total)} "
            f"(largest part {_size(largest)}); refusing to open it",
            source=source,
        )
    if strings is not None and strings[0] > strings[1] // 5 + 1:  # "<si/>" is 5 bytes
        raise InputError(
            f"not a valid {fmt} workbook: the file is damaged: its shared-strings table "
            f"declares {strings[0]:,} strings but has room for at most {strings[1] // 5 + 1:,}",
            source=source,
        )
    names = {info.filename for info in infos}
    is_ods = "content.xml" in names and any(n == "mimetype" for n in names)
    is_ooxml = "xl/workbook.xml" in names or "xl/workbook.bin" in names
    if fmt == "ODS" and not is_ods:
        detail = "rename it to .xlsx" if is_ooxml else "it has no spreadsheet content"
        raise InputError(f"not a valid ODS workbook: {detail}", source=source)
    if fmt != "ODS" and not is_ooxml:
        detail = (
            "it is an OpenDocument spreadsheet; rename it to .ods"
            if is_ods
            else "it is a zip file without a workbook inside (a Word or other Office file?)"
        )
        raise InputError(f"not a valid {fmt} workbook: {detail}", source=source)
    if fmt == "XLSB" and "xl/workbook.bin" not in names:
        raise InputError("not a valid XLSB workbook: rename it to .xlsx", source=source)
    if fmt in ("XLSX", "XLSM") and "xl/workbook.xml" not in names:
        raise InputError(f"not a valid {fmt} workbook: rename it to .xlsb", source=source)


_UNIQUE_COUNT = re.compile(rb"<(?:\w+:)?sst\b[^>]*?\buniqueCount\s*=\s*[\"'](\d{1,20})[\"']")


def _declared_shared_strings(archive: zipfile.ZipFile) -> tuple[int, int] | None:
    """(uniqueCount, size) of an XLSX shared-strings table: the reader reserves room for
    uniqueCount strings before reading any, so a damaged count must be caught first."""
    try:
        info = archive.getinfo("xl/sharedStrings.xml")
        with archive.open(info) as f:
            head = f.read(4096)
    except (KeyError, OSError, zipfile.BadZipFile, ValueError, EOFError, zlib.error):
        return None
    match = _UNIQUE_COUNT.search(head)
    return (int(match.group(1)), info.file_size) if match else None


def _is_reader_failure(exc: BaseException) -> bool:
    """Errors from the Rust reader, including a panic (which is a BaseException)."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _calamine_error(exc: BaseException, fmt: str, source: str, sheet: str = "") -> InputError:
    if isinstance(exc, calamine.PasswordError):
        return InputError(
            "the workbook is password-protected; remove the password and save it again",
            source=source,
        )
    detail = str(exc).strip() or type(exc).__name__
    return InputError(f"not a valid {fmt} workbook: {detail}", source=source, sheet=sheet)


def _load_workbook(
    path: Path, head: bytes, size: int, fmt: str, options: LoadOptions
) -> list[Table]:
    _check_workbook_container(path, head, size, fmt, options)
    if size <= _ISOLATE_MAX_BYTES and hasattr(os, "fork"):
        return _isolated(lambda: _read_workbook(path, fmt, options), fmt, path.name)
    return _read_workbook(path, fmt, options)


# The Rust reader aborts the whole process (no exception: "memory allocation of N bytes
# failed", SIGABRT) on some damaged or crafted files: an XLS whose records or sector
# chains are garbled, a cell at XFD1048576, a shared-strings table declaring billions of
# strings (upstream calamine issues #550, #684, #714). Small workbooks, which is what such
# files are, are therefore read in a forked child with a memory and CPU limit; larger ones
# in-process (the fork and the hand-back cost about 0.05-0.1 s per MB of workbook).
_ISOLATE_MAX_BYTES = 2 * _MiB
_CHILD_EXTRA_MEMORY = 2 * _GiB  # address space the child may add to what it inherits
_CHILD_CPU_SECONDS = 60
_CHILD_WALL_SECONDS = 120  # the child is killed after this long, busy or not


def _isolated(work: Callable[[], list[Table]], fmt: str, source: str) -> list[Table]:
    """``work()`` run in a forked child: its tables, its InputError, or an InputError
    saying the file made the reader give up. Log records of the child are re-emitted."""
    import faulthandler
    import pickle
    import signal

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read_fd)
            with contextlib.suppress(Exception):
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)  # the reader's abort message is for us, not the user
                faulthandler.disable()  # nor a Python crash report, wherever it would go
                # Signals are the parent's business (it acts on them once the file is
                # read, as it would reading in-process); the child never writes to the
                # parent's event-loop wakeup descriptor either.
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _limit_child()
            # A wall-clock bound as well: a child that blocks (a lock some thread of the
            # parent held at fork time) dies of SIGALRM instead of hanging the run.
            signal.alarm(_CHILD_WALL_SECONDS)
            records: list[tuple[int, str]] = []
            handler = _Collect(records)
            logging.getLogger("bulk_sync").addHandler(handler)
            outcome: tuple[Any, ...]
            try:
                outcome = ("tables", work())
            except InputError as exc:
                outcome = ("input", exc.reason, exc.source, exc.sheet, exc.row, exc.column)
            except MemoryError:
                outcome = ("memory",)
            except BaseException as exc:
                outcome = ("error", f"{type(exc).__name__}: {exc}")
            data = pickle.dumps((records, outcome), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as f:
                f.write(data)
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as f:
            data = f.read()
    except BaseException:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    _, status = os.waitpid(pid, 0)
    try:
        records, outcome = pickle.loads(data)  # noqa: S301 - written by our own child
    except Exception:  # the child died before saying anything
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGALRM):
            why = f"reading it takes more than {_CHILD_CPU_SECONDS} seconds"
        else:
            why = (
                "reading it would need far more memory than its size justifies (a garbled "
                "structure, or a cell far outside the data such as XFD1048576)"
            )
        raise InputError(
            f"not a valid {fmt} workbook: the file is damaged: {why}", source=source
        ) from None
    for level, message in records:
        log.log(level, "%s", message)
    kind = outcome[0]
    if kind == "tables":
        tables: list[Table] = outcome[1]
        return tables
    if kind == "input":
        _, reason, src, sheet, row, column = outcome
        raise InputError(reason, source=src, sheet=sheet, row=row, column=column)
    if kind == "memory":
        raise MemoryError
    raise InputError(f"cannot be read ({outcome[1]})", source=source)


class _Collect(logging.Handler):
    def __init__(self, records: list[tuple[int, str]]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))


def _limit_child() -> None:
    """Cap the child's address space (what it inherited plus a margin) and CPU time, so a
    runaway allocation fails and a runaway loop stops. Best effort: Linux only."""
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as f:
            inherited = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = inherited + _CHILD_EXTRA_MEMORY
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        cpu = _CHILD_CPU_SECONDS
        if hard != resource.RLIM_INFINITY:
            cpu = min(cpu, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, hard))
    except (ImportError, OSError, ValueError):
        pass


def _read_workbook(path: Path, fmt: str, options: LoadOptions) -> list[Table]:
    source = path.name
    try:
        workbook = calamine.CalamineWorkbook.from_path(os.fspath(path))
    except BaseException as exc:
        if not _is_reader_failure(exc):
            raise
        raise _calamine_error(exc, fmt, source) from None
    try:
        names = _select_sheets(workbook, source, options)
        tables: list[Table] = []
        skipped: list[str] = []
        for name in names:
            try:
                # skip_empty_area=False keeps the empty rows and columns above and left of
                # the data (sheet.start says where it begins), so grid[i] is spreadsheet
                # row i + 1 in XLSX, XLS and ODS alike.
                grid = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
            except BaseException as exc:
                if not _is_reader_failure(exc):
                    raise
                raise _calamine_error(exc, fmt, source, name) from None
            try:
                table = _grid_table(grid, source, name, options)
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
    grid: list[list[Any]], first: int, options: LoadOptions, source: str, sheet: str
) -> int:
    """Where the header is: the first non-blank row, unless that row lacks the columns and
    one of the next few rows has them all (a title such as "Clientes 2026" above the
    header, as hand-made sheets often have). Row numbers stay those of the sheet."""
    if not _find_columns([cell_to_str(c) for c in grid[first]], options)[1]:
        return first
    for i in range(first + 1, min(len(grid), first + 1 + _TITLE_ROWS)):
        _, missing, ambiguous = _find_columns([cell_to_str(c) for c in grid[i]], options)
        if not missing and not ambiguous:
            log.info(
                "%s, sheet %r: header found in row %d; the rows above it are taken as a title",
                source,
                sheet,
                i + 1,
            )
            return i
    return first


def _grid_table(
    grid: list[list[Any]], source: str, sheet: str, options: LoadOptions
) -> Table | None:
    """The table of one sheet's cells (``grid[i]`` is spreadsheet row ``i + 1``), or None
    when the sheet has no non-blank row."""
    header_at = next((i for i, row in enumerate(grid) if not all(_is_blank(c) for c in row)), None)
    if header_at is None:
        return None
    header_at = _title_rows_skipped(grid, header_at, options, source, sheet)
    header = [cell_to_str(c) for c in grid[header_at]]
    layout = _layout(
        header,
        header_at + 1,
        options,
        source=source,
        sheet=sheet,
        column_label=_column_letter,
        hint=(
            "; with --all-sheets, sheets without them are left out" if options.all_sheets else ""
        ),
    )
    body = grid[header_at + 1 :]
    width = len(header)
    if min(map(len, body), default=width) < width:  # calamine gives rectangles; be safe
        body = [row if len(row) >= width else [*row, *([""] * (width - len(row)))] for row in body]
    columns = [
        [c.strip() if type(c) is str else cell_to_str(c) for c in map(itemgetter(j), body)]
        for j in layout.needed
    ]
    first = header_at + 2
    rows = range(first, first + len(body))
    return _build_table(source, sheet, layout, columns, rows, {})
