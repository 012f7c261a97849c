"""CSV/TSV: encoding detection, delimiter sniffing, pyarrow's multi-threaded reader for
well-formed files and Python's csv module for the ones it cannot number exactly.

:func:`load_delimited` takes the file's bytes, wherever they were read from."""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import itertools
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pac  # type: ignore[import-untyped]
import pyarrow.csv as pacsv  # type: ignore[import-untyped]

from bulk_sync.errors import InputError
from bulk_sync.loading.container import BINARY_RATIO, content_kind, control_ratio
from bulk_sync.loading.layout import (
    Layout,
    build_table,
    check_cell_lengths,
    find_columns,
    find_layout,
)
from bulk_sync.loading.options import CANDIDATE_DELIMITERS, LoadOptions, MiB
from bulk_sync.models import Table

log = logging.getLogger("bulk_sync.loading")

_SAMPLE_BYTES = 64 * 1024
_SNIFF_RECORDS = 1000

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
    unmarked = unmarked_wide_encoding(data)
    if unmarked is not None:
        try:
            text = data.decode(unmarked)
        except UnicodeDecodeError:
            pass
        else:
            log.info("%s: read as %s (no byte-order mark)", source, unmarked.upper())
            return text.encode("utf-8", "surrogatepass"), text
    try:
        codecs.getincrementaldecoder("utf-8")().decode(
            data[:_SAMPLE_BYTES], final=len(data) <= _SAMPLE_BYTES
        )
    except UnicodeDecodeError:
        text = _decode_all(data, None, source)
        return text.encode("utf-8", "surrogatepass"), text
    return data, None


def unmarked_wide_encoding(data: bytes) -> str | None:
    """UTF-16 or UTF-32 (LE/BE) when the first bytes have the NUL pattern of mostly-ASCII
    text in that encoding and no byte-order mark says so; None otherwise."""
    sample = data[:4096]
    sample = sample[: len(sample) - len(sample) % 4]
    if len(sample) < 4 or b"\x00" not in sample:
        return None

    def zero_share(part: bytes) -> float:
        return part.count(0) / len(part)

    lanes = [sample[k::4] for k in range(4)]
    if all(zero_share(lanes[k]) > 0.95 for k in (1, 2, 3)) and zero_share(lanes[0]) < 0.5:
        return "utf-32-le"
    if all(zero_share(lanes[k]) > 0.95 for k in (0, 1, 2)) and zero_share(lanes[3]) < 0.5:
        return "utf-32-be"
    odd, even = sample[1::2], sample[0::2]
    if zero_share(odd) > 0.9 and zero_share(even) < 0.5:
        return "utf-16-le"
    if zero_share(even) > 0.9 and zero_share(odd) < 0.5:
        return "utf-16-be"
    return None


_EXCEL_SEP = re.compile(rb'"?sep=([^\r\n"])"?[^\r\n]*(?:\r\n|\n|\r)')


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
            found, _, _ = find_columns(header, options)
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


def load_delimited(data: bytes, source: str, ext: str, options: LoadOptions) -> Table:
    kind = content_kind(data[:4096])
    if kind == "empty":
        raise InputError("file is empty", source=source)
    if kind == "zip":
        raise InputError(
            "this looks like an Excel (XLSX) or OpenDocument (ODS) workbook, not a text file; "
            "rename it with its real extension (.xlsx or .ods)",
            source=source,
        )
    if kind in ("ole", "biff"):
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
    sep = _EXCEL_SEP.match(raw)
    if sep is not None:
        # Excel's "sep=;" line: the delimiter, and not a row (Excel does not show it)
        if options.delimiter is None:
            options = dataclasses.replace(options, delimiter=sep.group(1).decode())
        raw = raw[sep.end() :]
        if text is not None:
            text = raw.decode("utf-8", "surrogatepass")
    skip = len(raw[: 1 << 20]) - len(raw[: 1 << 20].lstrip(b"\r\n"))
    sample_bytes = raw[skip : skip + _SAMPLE_BYTES]
    truncated = len(raw) - skip > _SAMPLE_BYTES
    sample = codecs.getincrementaldecoder("utf-8")("replace").decode(
        sample_bytes, final=not truncated
    )
    if options.encoding is None and control_ratio(sample[:8192]) > BINARY_RATIO:
        raise InputError(
            "does not look like a text (CSV) file: it is mostly binary data "
            "(if it is UTF-16 or UTF-32 text without a byte-order mark, give --encoding "
            "utf-16 or --encoding utf-32)",
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
        layout = find_layout(sniffed.header, 1, options, source=source, hint=hint)
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
    raw: bytes, delimiter: str, layout: Layout, source: str, options: LoadOptions
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
            read_options=pacsv.ReadOptions(column_names=names, block_size=4 * MiB),
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
        return build_table(source, "", layout, columns, rows, {})
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
    layout = find_layout(header, header_row, options, source=source, hint=hint)
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
    check_cell_lengths(columns, rows, layout, options.max_cell_chars, source=source)
    return build_table(source, "", layout, columns, rows, defects)


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
