"""Load CSV/TSV/XLSX/XLSM/XLSB/XLS/ODS files into :class:`~bulk_sync.models.Table` values.

The first stage of the pipeline (DESIGN.md section 1). pandas, pyarrow and the Excel
reader stay inside this package: what leaves it is text (see :mod:`bulk_sync.cells`)
plus the place every row came from.

One module per job: :mod:`~bulk_sync.loading.options` (:class:`LoadOptions`),
:mod:`~bulk_sync.loading.container` (what the first bytes say, the zip/OLE pre-checks),
:mod:`~bulk_sync.loading.delimited` (CSV/TSV), :mod:`~bulk_sync.loading.workbook`
(python-calamine, sheet selection), :mod:`~bulk_sync.loading.sandbox` (the reader in a
limited child process), :mod:`~bulk_sync.loading.layout` (columns found in a header, and
the :class:`~bulk_sync.models.Table` built from them). This module dispatches: a file is
opened and read in :func:`load_file` only; :func:`load_bytes` takes bytes the caller read.

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

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from bulk_sync.errors import InputError
from bulk_sync.loading.delimited import load_delimited
from bulk_sync.loading.options import (
    DELIMITED_EXTENSIONS,
    WORKBOOK_EXTENSIONS,
    LoadOptions,
    parse_delimiter,
    size_text,
)
from bulk_sync.loading.workbook import load_workbook
from bulk_sync.models import Table
from bulk_sync.shard import only_shard

log = logging.getLogger(__name__)

__all__ = [
    "DELIMITED_EXTENSIONS",
    "WORKBOOK_EXTENSIONS",
    "LoadOptions",
    "load",
    "load_bytes",
    "load_file",
    "parse_delimiter",
]

_HEAD_BYTES = 4096  # what the container checks look at


def load(paths: Sequence[Path | str], options: LoadOptions | None = None) -> list[Table]:
    """Every table of every file, in the order given."""
    opts = options if options is not None else LoadOptions()
    return [table for path in paths for table in load_file(path, opts)]


def load_file(path: Path | str, options: LoadOptions | None = None) -> list[Table]:
    """The tables of one file: one for a CSV/TSV, one per selected sheet of a workbook.

    The one place where the loading stage opens a file by name (workbooks are then
    read by the reader from the same path).
    """
    opts = options if options is not None else LoadOptions()
    path = Path(path)
    source = path.name
    ext = _extension(path.suffix, source)
    with _input_errors(source):
        size = path.stat().st_size
        if not path.is_file():
            raise InputError("is not a file", source=source)
        _check_size(size, source, opts)
        if ext in DELIMITED_EXTENSIONS:
            with path.open("rb") as fh:  # read a block at a time by the fast path
                return _delimited(fh, source, ext, opts)
        with path.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
        tables = load_workbook(path, head, size, WORKBOOK_EXTENSIONS[ext], opts, source)
        return _sharded(tables, opts)


def load_bytes(data: bytes, name: str, options: LoadOptions | None = None) -> list[Table]:
    """The tables of a file whose bytes the caller has already read (from a descriptor
    opened with ``O_NOFOLLOW``, an upload, ...), as :func:`load_file` would give them.

    ``name`` is the file's name: its extension says the kind of file, and it is the
    ``source`` of the tables and of every message.
    """
    opts = options if options is not None else LoadOptions()
    source = Path(name).name
    ext = _extension(Path(name).suffix, source)
    with _input_errors(source):
        _check_size(len(data), source, opts)
        if ext in DELIMITED_EXTENSIONS:
            return _delimited(data, source, ext, opts)
        tables = load_workbook(
            data, data[:_HEAD_BYTES], len(data), WORKBOOK_EXTENSIONS[ext], opts, source
        )
        return _sharded(tables, opts)


def _extension(suffix: str, source: str) -> str:
    ext = suffix.casefold()
    if ext not in DELIMITED_EXTENSIONS and ext not in WORKBOOK_EXTENSIONS:
        known = ", ".join((*DELIMITED_EXTENSIONS, *WORKBOOK_EXTENSIONS))
        raise InputError(
            f"unsupported file type {suffix or '(no extension)'!r}; expected one of {known}",
            source=source,
        )
    return ext


def _check_size(size: int, source: str, options: LoadOptions) -> None:
    if size > options.max_file_bytes:
        raise InputError(
            f"file is too large ({size_text(size)}; "
            f"the limit is {size_text(options.max_file_bytes)})",
            source=source,
        )


def _sharded(tables: list[Table], options: LoadOptions) -> list[Table]:
    """With ``options.shard``, only that shard's rows (workbooks are read whole first)."""
    if options.shard is None:
        return tables
    return [only_shard(t, options.shard) for t in tables]


def _delimited(data: bytes | BinaryIO, source: str, ext: str, options: LoadOptions) -> list[Table]:
    if options.sheet is not None or options.all_sheets:
        log.warning("%s: a text file has no sheets; --sheet/--all-sheets ignored", source)
    return [load_delimited(data, source, ext, options)]


@contextlib.contextmanager
def _input_errors(source: str) -> Iterator[None]:
    """Whatever goes wrong reading a file becomes an InputError naming it."""
    try:
        yield
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
