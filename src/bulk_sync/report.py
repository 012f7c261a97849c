"""The results report (DESIGN.md section 3), its crash-safe journal, and their readers.

Formats, chosen by the report path's suffix:

- ``.csv``: UTF-8 *without* a BOM (scripts and pandas read it, and a BOM would stick
  to the first header name for naive readers; the ``.xlsx`` report is the one meant
  for Excel), written by the :mod:`csv` module with ``QUOTE_MINIMAL`` and its default
  ``"\\r\\n"`` line endings (RFC 4180; and Python 3.11's writer only quotes a lone
  ``\\r`` inside a value when ``\\r`` is part of the line terminator, so ``"\\n"`` would
  corrupt such values). Values holding commas, quotes or line breaks are quoted.
- ``.xlsx``: sheet ``report`` (bold frozen header, auto-filter, invalid / failed /
  not_sent rows highlighted by conditional formatting on the status column, fixed
  column widths) and sheet ``summary`` (key, value). Written with openpyxl's
  write-only mode whatever the size: it supports all of the above. Text cells are
  always strings (never formulas or error values); ``row``, ``http_status`` and
  ``attempts`` are numbers.
- ``.jsonl`` journal (:class:`Journal`): appended and flushed as rows finish, so a run
  killed at any point leaves a record of what the API accepted.

Formula neutralization (CSV and XLSX, undone by every reader): a text field that Excel
could run as a formula gets one leading apostrophe, see :func:`escape`. In XLSX text,
characters XML cannot carry (control characters other than tab and LF, CR, lone
surrogates) are written as OOXML ``_xHHHH_`` escapes, as Excel does; a literal
``_xHHHH_`` is escaped as ``_x005F_xHHHH_``. Excel limits a cell to 32,767 characters:
a longer text is cut in the XLSX and ends with a note saying so (``[...cut by bulk-sync:
N characters in all, ...]``); the caller then writes a CSV twin (``out.xlsx.full.csv``)
that holds every text whole, and ``retry`` refuses a cut value (:func:`cut_note`).

Every report is written to a temporary file in the target directory and renamed over
the target at the end: a reader never sees half a report.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from bulk_sync.errors import InputError, UsageError
from bulk_sync.files import atomic_write, open_private
from bulk_sync.models import REPORT_COLUMNS, ReportRow, Status

__all__ = [
    "JOURNAL_SUFFIX",
    "AcceptedKeys",
    "Journal",
    "accepted_keys",
    "accepted_rows",
    "cut_note",
    "escape",
    "is_dangerous",
    "journal_path_for",
    "meta_path_for",
    "read_journal_header",
    "read_meta",
    "read_report",
    "twin_path_for",
    "unescape",
    "write_report",
]

JOURNAL_SUFFIX = ".journal.jsonl"
# json.dumps(..., ensure_ascii=False) builds an encoder per call; a journal line is
# written per row sent (20M for a big migration): one encoder, the same text.
_JOURNAL_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
META_SUFFIX = ".meta.json"  # beside a CSV report: what the XLSX's summary sheet holds
_META_LIMIT = 1 << 20  # bytes of a sidecar or journal header read back
JOURNAL_VERSION = 1

# A line as written: the 10 fields of REPORT_COLUMNS.
_Line = tuple[str, str, int, str, str, str, str, int | None, str, int]
# A line as read, before it becomes a ReportRow.
_Raw = tuple[str, str, int, str, str, str, Status, int | None, str, int]

_STATUS_TEXT: dict[str, str] = {s.value: s.value for s in Status}
_STATUS: dict[str, Status] = {s.value: s for s in Status}
_TEXT_COLUMNS = ("source", "sheet", "customer_id", "attribute", "value", "error")

# ---------------------------------------------------------------------------------------
# Formula neutralization
# ---------------------------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ALWAYS_DANGEROUS = frozenset("=@\t\r\n")
_SIGNS = frozenset("+-")
# First characters after which escape() has anything to look at.
_MAYBE = frozenset("=@\t\r\n+-'")


def is_dangerous(s: str) -> bool:
    """Whether Excel could take ``s`` for a formula.

    It starts with ``=``, ``@``, tab, CR or LF, or with ``+``/``-`` and is not a plain
    number (``-5``, ``+351``, ``-3.5``, ``1e-3`` are harmless; ``-1+2``, ``+A1`` are not).
    """
    if not s:
        return False
    first = s[0]
    if first in _ALWAYS_DANGEROUS:
        return True
    if first in _SIGNS:
        return _PLAIN_NUMBER.fullmatch(s) is None
    return False


def escape(v: str) -> str:
    """``v`` safe to show in a spreadsheet: ``"'" + v`` if it could be a formula.

    Apostrophes already leading ``v`` are looked through, so that :func:`unescape`
    can tell an added apostrophe from a genuine one: the two are an exact bijection.
    """
    if v[:1] not in _MAYBE:
        return v
    return "'" + v if is_dangerous(v.lstrip("'")) else v


def unescape(s: str) -> str:
    """The value :func:`escape` turned into ``s``."""
    if s[:1] == "'" and is_dangerous(s.lstrip("'")):
        return s[1:]
    return s


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


def write_report(
    path: Path,
    lines: Iterable[Sequence[object]],
    *,
    summary: Mapping[str, object] | None = None,
) -> int:
    """Write a report atomically; ``.csv`` or ``.xlsx`` by ``path``'s suffix.

    Each line holds the 10 fields of :data:`~bulk_sync.models.REPORT_COLUMNS` in order:
    texts as the user sees them (they are neutralized here), ``row`` and ``attempts``
    ints, ``status`` a :class:`~bulk_sync.models.Status` or its value, ``http_status``
    an int or ``None``. ``summary`` becomes the XLSX's ``summary`` sheet; a CSV, whose
    columns are a contract, gets it as a JSON object in a file beside it
    (:func:`meta_path_for`: ``out.csv.meta.json``), written first.

    Returns the number of texts cut to Excel's cell limit (:data:`XL_CELL_LIMIT`; always 0
    for a CSV). Each cut text ends with a note saying so and naming the CSV twin
    (:func:`twin_path_for`), which the caller writes with the same lines.

    Raises :class:`~bulk_sync.errors.UsageError` for any other suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    cut = [0]
    if suffix == ".csv":
        if summary is not None:
            _write_meta(meta_path_for(path), summary)
        chunks = getattr(lines, "column_chunks", None)
        if chunks is not None:  # columns (a run's ledger): written a chunk at a time
            from bulk_sync.report_columns import write_csv_columns

            atomic_write(path, lambda f: write_csv_columns(f, chunks()))
        else:
            atomic_write(path, lambda f: _write_csv(f, cast(Iterable[_Line], lines)))
    elif suffix == ".xlsx":
        twin = twin_path_for(path).name

        def write(f: IO[bytes]) -> None:
            cut[0] = _write_xlsx(f, cast(Iterable[_Line], lines), summary or {}, twin)

        atomic_write(path, write)
    else:
        raise UsageError(f"{path}: a report must end in .csv or .xlsx, not {path.suffix!r}")
    return cut[0]


def twin_path_for(report_path: Path) -> Path:
    """The CSV twin of an XLSX report, written when a text was too long for an Excel cell:
    ``out.xlsx`` -> ``out.xlsx.full.csv``."""
    report_path = Path(report_path)
    return report_path.with_name(report_path.name + TWIN_SUFFIX)


def cut_note(text: str) -> tuple[int, str] | None:
    """``(length in all, twin's name)`` when ``text`` (as read back from an XLSX report)
    was cut to fit an Excel cell, else ``None``."""
    if "[...cut by bulk-sync: " not in text:
        return None
    m = _CUT.search(text)
    if m is None or int(m.group(1)) <= m.start():  # the whole must be longer than what is left
        return None
    return int(m.group(1)), m.group(2)


def _xl_fit(s: str, length: int, twin: str) -> str:
    """``s`` (encoded for XML) cut to Excel's cell limit, ending with a note that says so."""
    note = _CUT_NOTE.format(length=length, twin=twin)
    keep = XL_CELL_LIMIT - len(note)
    for k in range(max(0, keep - 6), keep):  # never split an _xHHHH_ escape
        if s.startswith("_x", k) and _XL_ESCAPED.match(s, k):
            keep = k
            break
    return s[:keep] + note


def meta_path_for(report_path: Path) -> Path:
    """Where the facts of a CSV report live: ``out.csv`` -> ``out.csv.meta.json``."""
    report_path = Path(report_path)
    return report_path.with_name(report_path.name + META_SUFFIX)


def _write_meta(path: Path, summary: Mapping[str, object]) -> None:
    doc = {"bulk_sync_report": 1, **summary}
    data = (json.dumps(doc, ensure_ascii=True, indent=2, default=str) + "\n").encode("ascii")

    def write(f: IO[bytes]) -> None:
        f.write(data)

    atomic_write(path, write)


def read_meta(report_path: Path) -> dict[str, object] | None:
    """The facts written with a report (summary sheet of an XLSX, sidecar of a CSV), or
    ``None`` when there are none (an older report, a sidecar not kept)."""
    report_path = Path(report_path)
    suffix = report_path.suffix.lower()
    if suffix == ".xlsx":
        return _read_xlsx_summary(report_path)
    if suffix != ".csv":
        return None
    doc = _read_json_head(meta_path_for(report_path), whole=True)
    return doc if doc is not None and "bulk_sync_report" in doc else None


def read_journal_header(path: Path) -> dict[str, object] | None:
    """The header object of a journal (its first line), or ``None``."""
    doc = _read_json_head(Path(path), whole=False)
    return doc if doc is not None and "bulk_sync_journal" in doc else None


def _read_json_head(path: Path, *, whole: bool) -> dict[str, object] | None:
    """A JSON object: the whole file, or its first line; ``None`` when missing or not one."""
    try:
        with open(path, "rb") as f:
            data = f.read(_META_LIMIT) if whole else f.readline(_META_LIMIT)
    except OSError:
        return None
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _status_text(status: str) -> str:
    try:
        return _STATUS_TEXT[status]
    except KeyError:
        raise ValueError(f"unknown report status {status!r}") from None


def _write_csv(out: IO[bytes], lines: Iterable[_Line]) -> None:
    # backslashreplace: the only strings UTF-8 cannot encode hold lone surrogates,
    # which no API call could have carried either; never crash the report over them.
    f = io.TextIOWrapper(out, encoding="utf-8", errors="backslashreplace", newline="")
    try:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow(REPORT_COLUMNS)
        writer.writerows(_neutralized(lines))
        f.flush()
    finally:
        f.detach()


def _neutralized(lines: Iterable[_Line]) -> Iterator[_Line]:
    """Lines with every text field escaped and the status as plain text (the hot loop)."""
    maybe = _MAYBE
    esc = escape
    status_text = _STATUS_TEXT
    for src, sheet, row, cid, attr, val, status, http, err, attempts in lines:
        if src[:1] in maybe:
            src = esc(src)
        if sheet[:1] in maybe:
            sheet = esc(sheet)
        if cid[:1] in maybe:
            cid = esc(cid)
        if attr[:1] in maybe:
            attr = esc(attr)
        if val[:1] in maybe:
            val = esc(val)
        if err[:1] in maybe:
            err = esc(err)
        st = status_text.get(status)
        if st is None:
            st = _status_text(status)
        yield src, sheet, row, cid, attr, val, st, http, err, attempts


# XML 1.0 cannot carry most C0 controls, lone surrogates, U+FFFE/U+FFFF; XML parsers turn
# CR into LF. OOXML writes them as _xHHHH_ (and a literal "_xHHHH_" as "_x005F_xHHHH_").
_XL_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ud800-\udfff\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)"
)
_XL_ESCAPED = re.compile("_x([0-9A-Fa-f]{4})_")
_XL_WIDTHS = (22, 12, 8, 20, 22, 30, 10, 11, 60, 9)
_CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)
_XL_MAX_ROWS = 1_048_576  # rows per sheet, header included (Excel's limit)
XL_CELL_LIMIT = 32_767  # characters in one Excel cell
TWIN_SUFFIX = ".full.csv"
_CUT_NOTE = (
    " [...cut by bulk-sync: {length} characters in all, more than an Excel cell holds; "
    "the whole text is in {twin}]"
)
_CUT = re.compile(
    r" \[\.\.\.cut by bulk-sync: ([0-9]+) characters in all, more than an Excel cell "
    r"holds; the whole text is in ([^\]\n]*)\]\Z"
)
_XL_READ_COLUMNS = 64  # a report has 10 columns; one re-saved from Excel may have a few more
_XL_MAX_BLANK_ROWS = 100_000  # consecutive blank rows read back before giving up
_XL_SUMMARY_ROWS = 1_000
_XL_HIGHLIGHT = {"invalid": "FFEB9C", "failed": "FFC7CE", "not_sent": "D9D9D9"}


def _xl_sub(m: re.Match[str]) -> str:
    return f"_x{ord(m.group()):04X}_"


def _xl_encode(s: str) -> str:
    return _XL_UNSAFE.sub(_xl_sub, s)


def _xl_decode(s: str) -> str:
    if "_x" not in s:
        return s
    return _XL_ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), s)


def _write_xlsx(
    out: IO[bytes], lines: Iterable[_Line], summary: Mapping[str, object], twin: str
) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ERROR_CODES
    from openpyxl.formatting.rule import FormulaRule
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    bold = Font(bold=True)
    error_codes = frozenset(ERROR_CODES)
    last_column = get_column_letter(len(REPORT_COLUMNS))
    status_column = get_column_letter(REPORT_COLUMNS.index("status") + 1)
    fills = {
        status: PatternFill(start_color=color, end_color=color, fill_type="solid")
        for status, color in _XL_HIGHLIGHT.items()
    }

    def header(ws: Any, names: Sequence[str]) -> list[Any]:
        cells = []
        for name in names:
            c = WriteOnlyCell(ws, value=name)
            c.font = bold
            cells.append(c)
        return cells

    cut = 0

    def text(s: str) -> Any:
        nonlocal cut
        length = len(s)
        s = _xl_encode(escape(s))
        if len(s) > XL_CELL_LIMIT:  # openpyxl would cut it silently
            s = _xl_fit(s, length, twin)
            cut += 1
        if s in error_codes:  # "#N/A" would become an error cell
            c = WriteOnlyCell(ws, value=s)
            c.data_type = "s"
            return c
        return s

    def number(v: int | None) -> Any:
        # Anything but a number would be typed by openpyxl ("=1" as a formula).
        return v if v is None or type(v) is int else text(str(v))

    def new_sheet(k: int) -> Any:
        ws = wb.create_sheet(_xl_sheet_name(k))
        ws.freeze_panes = "A2"
        for col, width in enumerate(_XL_WIDTHS, 1):
            ws.column_dimensions[get_column_letter(col)].width = width
        ws.append(header(ws, REPORT_COLUMNS))
        return ws

    def finish(ws: Any, count: int) -> None:
        ws.auto_filter.ref = f"A1:{last_column}{count + 1}"
        if count:
            for status, fill in fills.items():
                ws.conditional_formatting.add(
                    f"A2:{last_column}{count + 1}",
                    FormulaRule(formula=[f'${status_column}2="{status}"'], fill=fill),
                )

    sheets = 1
    ws = new_sheet(sheets)
    count = 0
    per_sheet = _XL_MAX_ROWS - 1
    for src, sheet, row, cid, attr, val, status, http, err, attempts in lines:
        if count == per_sheet:  # Excel's row limit: continue on "report 2", ...
            finish(ws, count)
            sheets += 1
            ws = new_sheet(sheets)
            count = 0
        ws.append(
            [
                text(src),
                text(sheet),
                number(row),
                text(cid),
                text(attr),
                text(val),
                _status_text(status),
                number(http),
                text(err),
                number(attempts),
            ]
        )
        count += 1
    finish(ws, count)

    ws = wb.create_sheet("summary")
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 60
    ws.append(header(ws, ("key", "value")))
    for key, value in summary.items():
        ws.append([text(str(key)), _summary_cell(value, text)])
    wb.save(out)
    return cut


def _xl_sheet_name(k: int) -> str:
    return "report" if k == 1 else f"report {k}"


def _summary_cell(value: object, text: Callable[[str], Any]) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return text(value)
    if isinstance(value, Mapping | list | tuple):
        return text(json.dumps(value, ensure_ascii=False, default=str))
    return text(str(value))


# ---------------------------------------------------------------------------------------
# Journal
# ---------------------------------------------------------------------------------------


def journal_path_for(report_path: Path) -> Path:
    """Where the journal of ``report_path`` lives: ``out.csv`` -> ``out.csv.journal.jsonl``."""
    report_path = Path(report_path)
    return report_path.with_name(report_path.name + JOURNAL_SUFFIX)


class Journal:
    """Append-only record of finished report lines, one JSON array per line.

    The first line is a header object ``{"bulk_sync_journal": 1, "columns": [...], ...}``
    with the metadata given to :meth:`open`. Each :meth:`append` writes its lines and
    flushes them to the operating system, so a process killed (even ``kill -9``)
    loses nothing already appended; ``fsync`` runs at most every ``fsync_interval``
    seconds (and on :meth:`close`) to bound what a power loss can take. Values are
    stored raw (not neutralized); status as its text. Not thread-safe: one writer.
    """

    def __init__(
        self,
        file: IO[str],
        path: Path,
        *,
        fsync_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self.path = path
        self._file = file
        self._fsync_interval = fsync_interval
        self._clock = clock
        self._last_sync = clock()

    @classmethod
    def open(
        cls,
        path: Path,
        metadata: Mapping[str, object] | None = None,
        *,
        fsync_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> Journal:
        """Open ``path`` for appending, creating it (with its header line) if needed.

        An existing journal keeps its header; a torn last line (a write cut short by a
        crash) is cut off first, so that appended lines start on a line of their own.
        A symbolic link (or anything but a plain file) at ``path`` is refused with a
        :class:`~bulk_sync.errors.UsageError`: the journal is never written through a
        link someone planted beside the report.
        """
        path = Path(path)
        fd = open_private(path, what="the journal", append=True)
        try:
            _drop_torn_tail(fd)
            # backslashreplace turns a lone surrogate into the JSON escape "\udXXX",
            # which reads back as the same character.
            f = open(fd, "a", encoding="utf-8", errors="backslashreplace", newline="\n")  # noqa: SIM115
        except BaseException:
            os.close(fd)
            raise
        try:
            if f.tell() == 0:
                head: dict[str, object] = {
                    "bulk_sync_journal": JOURNAL_VERSION,
                    "columns": list(REPORT_COLUMNS),
                }
                head.update(metadata or {})
                f.write(json.dumps(head, ensure_ascii=False, default=str) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            f.close()
            raise
        return cls(f, path, fsync_interval=fsync_interval, clock=clock)

    def append(self, lines: Sequence[Sequence[object]]) -> None:
        """Record finished lines (the 10 report fields each, values unescaped)."""
        if not lines:
            return
        encode = _JOURNAL_ENCODE
        out = []
        for line in cast(Sequence[_Line], lines):
            if len(line) != len(REPORT_COLUMNS):
                raise ValueError(f"a report line has {len(REPORT_COLUMNS)} fields, not {len(line)}")
            fields = list(line)
            fields[6] = _status_text(line[6])
            out.append(encode(fields))
        out.append("")
        self._file.write("\n".join(out))
        self._file.flush()
        now = self._clock()
        if now - self._last_sync >= self._fsync_interval:
            os.fsync(self._file.fileno())
            self._last_sync = now

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_torn_tail(fd: int) -> None:
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    # Find the last newline, reading backwards in blocks.
    end = size
    while end > 0:
        start = max(0, end - 65536)
        block = os.pread(fd, end - start, start)
        k = block.rfind(b"\n")
        if k >= 0:
            os.ftruncate(fd, start + k + 1)
            return
        end = start
    os.ftruncate(fd, 0)


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def read_report(path: Path) -> Iterator[ReportRow]:
    """The lines of a ``.csv`` or ``.xlsx`` report or a ``.jsonl`` journal, values unescaped.

    Raises :class:`~bulk_sync.errors.InputError` for a missing or unreadable file,
    missing columns, or a malformed line (naming the file and line). A journal's last
    line may be torn by a crash: it is skipped.
    """
    for raw in _read_raw(Path(path)):
        yield ReportRow(*raw)


def accepted_rows(path: Path) -> set[tuple[str, str, str]]:
    """The ``(customer_id, attribute, value)`` triples an earlier run got done, for ``--resume``.

    Done means status ``ok`` (the API accepted it), or status ``skipped`` with an
    error starting with ``"already"`` (the earlier run itself skipped it as already
    synced: ``--resume`` or state skips). Rows ``skipped`` for other reasons (e.g.
    ``superseded by row N``) are not done.

    ``path`` is a report: the report is read if it exists and so is its journal
    (:func:`journal_path_for`) if that exists; a crash during the final write leaves
    the journal, a clean run may leave both. ``path`` ending in ``.jsonl`` is a
    journal and is read alone. Raises :class:`~bulk_sync.errors.InputError` if
    nothing exists to read. (A run resuming a big report uses :func:`accepted_keys`:
    the same answer in 16 bytes a row.)
    """
    return set(_accepted(path))


class AcceptedKeys:
    """What :func:`accepted_rows` says, kept as sorted 128-bit hashes of the triples:
    16 bytes a row where a set of string triples takes about 250, so resuming a
    20-million-row migration costs 320 MB, not 5 GB. ``(cid, attribute, value) in keys``
    answers as the set would (a wrong answer needs two triples with the same 128-bit
    BLAKE2b hash)."""

    __slots__ = ("_high", "_low")

    def __init__(self, digests: bytes | bytearray) -> None:
        keys = np.frombuffer(bytes(digests), dtype=">u8").reshape(-1, 2)
        order = np.lexsort((keys[:, 1], keys[:, 0]))
        self._high = np.ascontiguousarray(keys[order, 0])
        self._low = np.ascontiguousarray(keys[order, 1])

    def __len__(self) -> int:
        return len(self._high)

    def __contains__(self, triple: object) -> bool:
        if not isinstance(triple, tuple) or len(triple) != 3:
            return False
        return bool(self.contains([triple])[0])

    def contains(self, triples: Sequence[tuple[str, str, str]]) -> Any:
        """A numpy bool per triple: whether it is among the keys."""
        if not triples:
            return np.zeros(0, dtype=np.bool_)
        keys = np.frombuffer(b"".join(map(_triple_key, triples)), dtype=">u8").reshape(-1, 2)
        high, low = keys[:, 0], keys[:, 1]
        start = np.searchsorted(self._high, high, side="left")
        stop = np.searchsorted(self._high, high, side="right")
        found = np.zeros(len(triples), dtype=np.bool_)
        for k in np.flatnonzero(stop > start).tolist():  # equal high halves: compare the rest
            found[k] = bool((self._low[start[k] : stop[k]] == low[k]).any())
        return found


def _triple_key(triple: tuple[str, str, str]) -> bytes:
    cid, attribute, value = triple
    text = f"{len(cid)}:{cid}{len(attribute)}:{attribute}{value}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def accepted_keys(path: Path) -> AcceptedKeys:
    """:func:`accepted_rows` as :class:`AcceptedKeys` (the rows are never all held as text)."""
    digests = bytearray()
    for triple in _accepted(path):
        digests += _triple_key(triple)
    return AcceptedKeys(digests)


def _accepted(path: Path) -> Iterator[tuple[str, str, str]]:
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        sources = [path]
    else:
        # An empty report is the reservation of a run that stopped before writing it.
        sources = [p for p in (path, journal_path_for(path)) if p.exists()]
        sources = [p for p in sources if p != path or p.stat().st_size > 0]
        if not sources:
            raise InputError(
                f"neither the report nor its journal {journal_path_for(path).name!r} exists",
                source=str(path),
            )
    ok, skipped = Status.OK, Status.SKIPPED
    for source in sources:
        for raw in _read_raw(source):
            status = raw[6]
            if status is ok or (status is skipped and raw[8].startswith("already")):
                yield raw[3], raw[4], raw[5]


def _read_raw(path: Path) -> Iterator[_Raw]:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx", ".jsonl"):
        raise InputError(
            f"cannot read a report from a {path.suffix or 'suffix-less'} file "
            "(expected .csv, .xlsx or .jsonl)",
            source=str(path),
        )
    if not path.is_file():
        raise InputError("no such file", source=str(path))
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".xlsx":
        return _read_xlsx(path)
    return _read_journal(path)


def _column_positions(header: Sequence[object], path: Path) -> list[int]:
    names = [str(h).strip().lower() if h is not None else "" for h in header]
    missing = [c for c in REPORT_COLUMNS if c not in names]
    if missing:
        raise InputError(
            f"not a bulk_sync report: missing column(s) {', '.join(missing)}",
            source=str(path),
        )
    return [names.index(c) for c in REPORT_COLUMNS]


def _to_int(value: object, column: str, path: Path, line: int) -> int | None:
    """A whole number, or ``None`` for an empty cell."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return int(str(value).strip())
    except ValueError:
        raise InputError(
            f"{column} {value!r} is not a whole number", source=str(path), row=line, column=column
        ) from None


def _to_status(value: object, path: Path, line: int) -> Status:
    text = "" if value is None else str(value).strip().lower()
    status = _STATUS.get(text)
    if status is None:
        raise InputError(
            f"unknown status {value!r} (expected one of {', '.join(_STATUS)})",
            source=str(path),
            row=line,
            column="status",
        )
    return status


def _parse(
    fields: Sequence[object], path: Path, line: int, decode: Callable[[object], str]
) -> _Raw:
    src, sheet, row, cid, attr, val, status, http, err, attempts = fields
    row_number = _to_int(row, "row", path, line)
    if row_number is None:
        raise InputError("row is empty", source=str(path), row=line, column="row")
    return (
        decode(src),
        decode(sheet),
        row_number,
        decode(cid),
        decode(attr),
        decode(val),
        _to_status(status, path, line),
        _to_int(http, "http_status", path, line),
        decode(err),
        _to_int(attempts, "attempts", path, line) or 0,
    )


def _csv_decode(v: object) -> str:
    s = cast(str, v)
    return s[1:] if s[:1] == "'" and is_dangerous(s.lstrip("'")) else s


def _parse_csv_fast(fields: list[str]) -> _Raw | None:
    """The common case at C speed where possible; ``None`` sends the line to :func:`_parse`."""
    src, sheet, row, cid, attr, val, status, http, err, attempts = fields
    st = _STATUS.get(status)
    if st is None:
        return None
    try:
        number = int(row)
        code = int(http) if http else None
        tries = int(attempts) if attempts else 0
    except ValueError:
        return None
    if src[:1] == "'":
        src = _csv_decode(src)
    if sheet[:1] == "'":
        sheet = _csv_decode(sheet)
    if cid[:1] == "'":
        cid = _csv_decode(cid)
    if attr[:1] == "'":
        attr = _csv_decode(attr)
    if val[:1] == "'":
        val = _csv_decode(val)
    if err[:1] == "'":
        err = _csv_decode(err)
    return src, sheet, number, cid, attr, val, st, code, err, tries


def _detect_encoding(path: Path) -> str:
    """UTF-8 (a BOM is allowed: Excel's "CSV UTF-8" writes one), else Windows-1252."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as f:
        try:
            while block := f.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"  # Excel's plain "CSV" on Western-European Windows
    return "utf-8-sig"


def _read_csv(path: Path) -> Iterator[_Raw]:
    encoding = _detect_encoding(path)
    # The default (128 KiB per field) is smaller than values the CSV writer accepts.
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        with open(path, encoding=encoding, newline="", buffering=1 << 20) as f:
            first = f.readline()
            reader = csv.reader(itertools.chain([first], f), delimiter=_sniff_delimiter(first))
            header = next(reader, None)
            if header is None:
                raise InputError("the report is empty", source=str(path))
            positions = _column_positions(header, path)
            width = max(positions) + 1
            simple = positions == list(range(len(REPORT_COLUMNS)))
            for fields in reader:
                if not fields:
                    continue
                line = reader.line_num
                if len(fields) < width:
                    if not any(fields):
                        continue
                    raise InputError(
                        f"{len(fields)} fields where {len(header)} were expected",
                        source=str(path),
                        row=line,
                    )
                if simple and len(fields) == 10:
                    fast = _parse_csv_fast(fields)
                    if fast is not None:
                        yield fast
                        continue
                picked = fields if simple else [fields[k] for k in positions]
                yield _parse(picked[: len(REPORT_COLUMNS)], path, line, _csv_decode)
    except UnicodeDecodeError as e:
        raise InputError(f"cannot decode the file as {encoding}: {e}", source=str(path)) from e
    except csv.Error as e:
        raise InputError(f"malformed CSV: {e}", source=str(path)) from e


def _sniff_delimiter(first_line: str) -> str:
    """``,`` unless the header is split by ``;`` or tab (Excel in some locales)."""
    best, best_hits = ",", -1
    for delimiter in (",", ";", "\t"):
        row = next(csv.reader(io.StringIO(first_line), delimiter=delimiter), [])
        hits = sum(1 for name in row if name.strip().lstrip("\ufeff").lower() in REPORT_COLUMNS)
        if hits > best_hits:
            best, best_hits = delimiter, hits
    return best


def _xlsx_decode(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        s = _xl_decode(v)
        return s[1:] if s[:1] == "'" and is_dangerous(s.lstrip("'")) else s
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _check_xlsx(path: Path) -> None:
    """The loader's checks before openpyxl opens a report: a zip bomb (a small file that
    unpacks to gigabytes), a damaged shared-strings count, a file over the size limit,
    something that is not a workbook at all."""
    from bulk_sync.loading.container import check_workbook_container
    from bulk_sync.loading.options import LoadOptions, size_text

    options = LoadOptions()
    with open(path, "rb") as f:
        head = f.read(4096)
        size = os.fstat(f.fileno()).st_size
    if size > options.max_file_bytes:
        raise InputError(
            f"the report is too large ({size_text(size)}; the limit is "
            f"{size_text(options.max_file_bytes)})",
            source=str(path),
        )
    check_workbook_container(path, head, size, "XLSX", options, str(path))


def _read_xlsx_summary(path: Path) -> dict[str, object] | None:
    from openpyxl import load_workbook

    _check_xlsx(path)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception:  # zipfile/XML errors of many kinds: no facts to read
        return None
    try:
        if "summary" not in wb.sheetnames:
            return None
        facts: dict[str, object] = {}
        rows = wb["summary"].iter_rows(max_row=_XL_SUMMARY_ROWS, max_col=2, values_only=True)
        for k, row in enumerate(rows):
            if k == 0 or not row or row[0] is None:
                continue
            facts[_xlsx_decode(row[0])] = _xlsx_decode(row[1]) if len(row) > 1 else ""
        return facts
    finally:
        wb.close()


def _read_xlsx(path: Path) -> Iterator[_Raw]:
    from openpyxl import load_workbook

    _check_xlsx(path)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # zipfile/XML errors of many kinds
        raise InputError(f"cannot open the workbook: {e}", source=str(path)) from e
    try:
        names = []
        for k in itertools.count(1):
            if _xl_sheet_name(k) not in wb.sheetnames:
                break
            names.append(_xl_sheet_name(k))
        sheets = [wb[name] for name in names] or [wb.worksheets[0]]
        for ws in sheets:
            # Columns and blank rows are bounded: a sheet declaring a cell at XFD1048576
            # would have openpyxl pad every row to 16,384 cells, and a million blank rows.
            header = next(
                ws.iter_rows(min_row=1, max_row=1, max_col=_XL_READ_COLUMNS, values_only=True),
                None,
            )
            if header is None:
                raise InputError("the sheet is empty", source=str(path), sheet=ws.title)
            positions = _column_positions(header, path)
            rows = ws.iter_rows(min_row=2, max_col=max(positions) + 1, values_only=True)
            blank = 0
            for line, values in enumerate(rows, 2):
                if all(v is None or v == "" for v in values):
                    blank += 1
                    if blank > _XL_MAX_BLANK_ROWS:
                        raise InputError(
                            f"more than {_XL_MAX_BLANK_ROWS:,} blank rows in a row: not a report "
                            "bulk-sync wrote (or a damaged one)",
                            source=str(path),
                            sheet=ws.title,
                            row=line,
                        )
                    continue
                blank = 0
                picked = [values[k] if k < len(values) else None for k in positions]
                try:
                    parsed = _parse(picked, path, line, _xlsx_decode)
                except InputError as e:
                    raise InputError(
                        e.reason, source=e.source, sheet=ws.title, row=e.row, column=e.column
                    ) from None
                yield parsed
    finally:
        wb.close()


def _read_journal(path: Path) -> Iterator[_Raw]:
    """Journal lines; a torn *last* line is skipped, a bad line elsewhere is an error."""
    with open(path, "rb") as f:
        pending: tuple[int, bytes] | None = None  # a bad line, fatal unless it is the last
        seen_header = False
        for number, raw in enumerate(f, 1):
            if pending is not None:
                _bad_journal_line(path, *pending, quote=seen_header)
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: nested 100,000 deep
                pending = (number, raw)
                continue
            if isinstance(item, dict) and "bulk_sync_journal" in item:
                version = item["bulk_sync_journal"]
                if version != JOURNAL_VERSION:
                    raise InputError(
                        f"journal version {version!r} is not supported (expected "
                        f"{JOURNAL_VERSION})",
                        source=str(path),
                        row=number,
                    )
                seen_header = True
                continue
            if not seen_header:
                raise InputError(
                    "not a bulk_sync journal (its first line is not the journal header)",
                    source=str(path),
                    row=number,
                )
            if not isinstance(item, list) or len(item) != len(REPORT_COLUMNS):
                pending = (number, raw)
                continue
            try:
                parsed = _parse(item, path, number, _journal_text)
            except (InputError, ValueError, TypeError):
                pending = (number, raw)
                continue
            yield parsed
        # A torn last line (kill -9 mid-write) is expected and skipped.


def _journal_text(v: object) -> str:
    if isinstance(v, str):
        return v
    raise ValueError("not a string")


def _bad_journal_line(path: Path, number: int, raw: bytes, *, quote: bool) -> None:
    if not quote:  # not a journal at all: whatever file it is, its content is not shown
        raise InputError(
            "not a bulk_sync journal (its first line is not the journal header)",
            source=str(path),
            row=number,
        )
    shown = raw[:80].decode("utf-8", "replace").rstrip("\n")
    raise InputError(f"garbled journal line: {shown!r}", source=str(path), row=number)
