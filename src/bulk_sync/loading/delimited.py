"""CSV/TSV: encoding detection, delimiter sniffing, pyarrow's multi-threaded reader for
well-formed files and Python's csv module for the ones it cannot number exactly.

:func:`load_delimited` takes the file's bytes, wherever they were read from."""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import logging
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pac  # type: ignore[import-untyped]
import pyarrow.csv as pacsv  # type: ignore[import-untyped]

from bulk_sync.columns import IntColumn, TextColumn, release_memory
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
from bulk_sync.shard import only_shard, owned_mask

log = logging.getLogger("bulk_sync.loading")

_SAMPLE_BYTES = 64 * 1024
_BLOCK = 16 * MiB  # bytes read at a time from a file by the scans
# Bytes parsed at a time by pyarrow (a batch of rows). pyarrow's streaming reader reads
# about 36 blocks ahead as soon as it opens: 1 MiB blocks hold that to ~40 MB (4 MiB
# blocks: 145 MB) at the same speed (bench figures in docs/benchmarks.md).
_ARROW_BLOCK = 1 * MiB
_WHOLE_READ = 64 * MiB  # files up to this size are parsed whole (read_csv, all cores)
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
    except UnicodeDecodeError as exc:
        _refuse_mixed(data, exc, source)
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# A UTF-8 sequence of two to four bytes, and the characters such a sequence may decode to
# that show UTF-8 text in a file that is not UTF-8: a letter of Latin-1 or Latin
# Extended-A (é, ç, ł, ő: U+00C0 to U+017F) or a letter of another script written in
# three or four bytes. Read as cp1252 those bytes are mojibake ("Ã©"); the pairs a real
# cp1252 text forms (a capital accented letter, then a curly quote, an ellipsis or a
# symbol: "É…", "ß“") seldom decode to either: only Ã, Ä or Å before one of the 64
# bytes 0x80-0xBF do.
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_MIXED_SCAN = 10_000  # sequences looked at, at most, for one that is clearly UTF-8 text


def _refuse_mixed(data: bytes, exc: UnicodeDecodeError, source: str) -> None:
    """Refuse a file that is not UTF-8 (``exc``) but holds UTF-8 text elsewhere: read as
    cp1252, that text would be sent as mojibake ("JosÃ©"). Nothing tells which encoding
    each line is in, so the person decides (re-save it, or ``--encoding``). Binary data
    is left to :func:`check_not_binary`."""
    if control_ratio(data[:8192].decode("latin-1")) > BINARY_RATIO:
        return
    for k, match in enumerate(_UTF8_SEQUENCE.finditer(data)):
        if k >= _MIXED_SCAN:
            return
        try:
            char = match.group().decode("utf-8")
        except UnicodeDecodeError:  # (an overlong or surrogate form: not text)
            continue
        latin = "\u00c0" <= char <= "\u017f"
        if not (latin or (len(match.group()) > 2 and unicodedata.category(char).startswith("L"))):
            continue
        line = data.count(b"\n", 0, match.start()) + 1
        bad_line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex().upper()
        raise InputError(
            f"the file mixes encodings: line {line} holds UTF-8 text ({char!r}) but byte "
            f"0x{byte} on line {bad_line} is not UTF-8; save the file again in one encoding "
            "(UTF-8), or give --encoding to read it all in one (e.g. --encoding cp1252)",
            source=source,
        )


def _decoded(data: bytes, forced: str | None, source: str) -> str:
    """The text of a file that is not plain UTF-8: the forced encoding, the one its
    byte-order mark names, UTF-16/32 recognised by their NUL pattern, else as
    :func:`_decode_all` finds."""
    if forced is None and not data.startswith(tuple(bom for bom, _ in _BOMS)):
        unmarked = unmarked_wide_encoding(data)
        if unmarked is not None:
            try:
                text = data.decode(unmarked)
            except UnicodeDecodeError:
                pass
            else:
                log.info("%s: read as %s (no byte-order mark)", source, unmarked.upper())
                return text
    return _decode_all(data, forced, source)


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


def check_not_binary(sample: str, options: LoadOptions, source: str) -> None:
    """Refuse a text file's first characters when they are mostly binary data (unless an
    encoding is forced): what the loader and :func:`~bulk_sync.loading.peek.peek` both say."""
    if options.encoding is None and control_ratio(sample[:8192]) > BINARY_RATIO:
        raise InputError(
            "does not look like a text (CSV) file: it is mostly binary data "
            "(if it is UTF-16 or UTF-32 text without a byte-order mark, give --encoding "
            "utf-16 or --encoding utf-32)",
            source=source,
        )


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


class _Source:
    """The bytes of a delimited file, from ``start``: in memory, or a seekable binary file
    read a block at a time (so that a file of hundreds of megabytes is never held whole
    by the fast path)."""

    def __init__(self, data: bytes | BinaryIO, start: int = 0) -> None:
        self.data = data
        self.start = start
        if isinstance(data, bytes | bytearray | memoryview):
            self.size = len(data) - start
        else:
            self.size = (
                os.fstat(data.fileno()).st_size - start
                if _has_fd(data)
                else _tell_end(data) - start
            )

    def head(self, n: int) -> bytes:
        if isinstance(self.data, bytes | bytearray | memoryview):
            return bytes(self.data[self.start : self.start + n])
        self.data.seek(self.start)
        return self.data.read(n)

    def tail(self, n: int) -> bytes:
        n = min(n, self.size)
        if isinstance(self.data, bytes | bytearray | memoryview):
            return bytes(self.data[self.start + self.size - n : self.start + self.size])
        self.data.seek(self.start + self.size - n)
        return self.data.read(n)

    def blocks(self, size: int = _BLOCK) -> Iterator[bytes | bytearray]:
        """The bytes from ``start`` a block at a time. From a file, every full block is
        the same buffer, refilled: a caller keeps nothing of it past its turn."""
        if isinstance(self.data, bytes | bytearray | memoryview):
            view = memoryview(self.data)
            for k in range(self.start, self.start + self.size, size):
                yield bytes(view[k : min(k + size, self.start + self.size)])
            return
        self.data.seek(self.start)
        size = max(1, min(size, self.size))  # a small file: a small buffer
        buffer = bytearray(size)  # one buffer: no fresh pages to fault in for every block
        while n := self.data.readinto(buffer):  # type: ignore[attr-defined]
            yield buffer if n == size else buffer[:n]

    def read_all(self) -> bytes:
        if isinstance(self.data, bytes) and self.start == 0:
            return self.data
        return self.head(self.size)

    def arrow(self) -> Any:
        """A pyarrow input stream over the bytes from ``start``."""
        if isinstance(self.data, bytes | bytearray | memoryview):
            return pa.BufferReader(pa.py_buffer(self.data).slice(self.start))
        fd_path = f"/proc/self/fd/{self.data.fileno()}" if _has_fd(self.data) else ""
        if fd_path and os.path.exists(fd_path):
            # The very file already open, read by pyarrow's own (faster) file reader.
            native = pa.OSFile(fd_path)
            native.seek(self.start)
            return native
        self.data.seek(self.start)
        return pa.PythonFile(self.data, mode="r")


def _has_fd(f: BinaryIO) -> bool:
    try:
        f.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False
    return True


def _tell_end(f: BinaryIO) -> int:
    return f.seek(0, os.SEEK_END)


def load_delimited(data: bytes | BinaryIO, source: str, ext: str, options: LoadOptions) -> Table:
    """One table from a delimited file's bytes, or from a seekable binary file (read in
    blocks: well-formed UTF-8 files are never held whole in memory)."""
    src = _Source(data)
    head = src.head(1 << 20)
    kind = content_kind(head[:4096])
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
    text: str | None = None
    bom = _utf8_start(head, src.size, options.encoding)
    if bom is None:  # not UTF-8 (or not known to be): decode it all here
        text = _decoded(src.read_all(), options.encoding, source)
        src = _Source(text.encode("utf-8", "surrogatepass"))
    else:
        src = _Source(src.data, bom)
    head = src.head(1 << 20)
    sep = _EXCEL_SEP.match(head)
    if sep is not None:
        # Excel's "sep=;" line: the delimiter, and not a row (Excel does not show it)
        if options.delimiter is None:
            options = dataclasses.replace(options, delimiter=sep.group(1).decode())
        src = _Source(src.data, src.start + sep.end())
        if text is not None:
            text = src.read_all().decode("utf-8", "surrogatepass")
        head = src.head(1 << 20)
    skip = len(head) - len(head.lstrip(b"\r\n"))
    sample_bytes = head[skip : skip + _SAMPLE_BYTES]
    truncated = src.size - skip > _SAMPLE_BYTES
    sample = codecs.getincrementaldecoder("utf-8")("replace").decode(
        sample_bytes, final=not truncated
    )
    check_not_binary(sample, options, source)
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
        fast = _read_arrow(src, delimiter, layout, source, options)
        if fast is _UTF8_ERROR and text is None:
            text = _decode_all(src.read_all(), options.encoding, source)  # not UTF-8 after all
            src = _Source(text.encode("utf-8", "surrogatepass"))
            fast = _read_arrow(src, delimiter, layout, source, options)
        # The parser's blocks are gone: hand their pages back to the OS now rather than
        # keep them through validation, grouping and upload.
        release_memory()
        if isinstance(fast, Table):
            return fast
    raw = src.read_all()
    if text is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_all(raw, options.encoding, source)
    del raw
    table = _read_python_csv(text, delimiter, source, options, hint)
    return only_shard(table, options.shard) if options.shard is not None else table


def _utf8_start(head: bytes, size: int, forced: str | None) -> int | None:
    """Where the UTF-8 text starts (after a BOM), or None when the file must be decoded
    first (another encoding forced or announced by a BOM, or not UTF-8 at its start).

    UTF-8 without a BOM is only checked on the first 64 KB here; pyarrow validates the
    rest, and a failure there sends the file through :func:`_decode_all`.
    """
    if forced is not None:
        if codecs.lookup(forced).name in ("utf-8", "utf-8-sig"):
            return 3 if head.startswith(b"\xef\xbb\xbf") else 0
        return None
    if head.startswith(b"\xef\xbb\xbf"):
        return 3
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        return None
    if unmarked_wide_encoding(head) is not None:
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(
            head[:_SAMPLE_BYTES], final=size <= _SAMPLE_BYTES
        )
    except UnicodeDecodeError:
        return None
    return 0


_UTF8_ERROR = object()
_BLANK_PAIRS = (b"\n\n", b"\r\r", b"\n\r")


@dataclass
class _Scan:
    """What the fast path must know of the whole file, found in one pass over its blocks."""

    has_quotes: bool = False
    newlines: int = 0
    crs: int = 0
    crlfs: int = 0
    leading_blank: bool = False
    ends_with_newline: bool = False

    @classmethod
    def of(cls, src: _Source) -> _Scan:
        scan = cls()
        previous = b""
        for block in src.blocks():
            if not previous:
                scan.leading_blank = block[:1] in (b"\n", b"\r")
            scan.has_quotes = scan.has_quotes or block.find(b'"') != -1
            scan.newlines += block.count(b"\n")
            if block.find(b"\r") != -1:  # find stops early; count reads every byte
                scan.crs += block.count(b"\r")
                scan.crlfs += block.count(b"\r\n")
            if previous == b"\r" and block[:1] == b"\n":
                scan.crlfs += 1
            previous = bytes(block[-1:])
        scan.ends_with_newline = previous == b"\n"
        return scan


def _blank_line_before_end(src: _Source) -> bool:
    """Whether two line breaks follow each other (a blank line) before the line breaks
    that end the file (a second pass, only for the rare files that need it)."""
    tail = src.tail(_SAMPLE_BYTES)
    if tail.rstrip(b"\r\n") or len(tail) == src.size:
        end = src.size - (len(tail) - len(tail.rstrip(b"\r\n")))
    else:  # the last 64 KB are all line breaks
        end = len(src.read_all().rstrip(b"\r\n"))
    position = 0
    previous = b""
    for block in src.blocks():
        if previous and previous + block[:1] in _BLANK_PAIRS:
            return position - 1 + 2 <= end
        found = [k for k in (block.find(p) for p in _BLANK_PAIRS) if k != -1]
        if found:
            return position + min(found) + 2 <= end
        previous = bytes(block[-1:])
        position += len(block)
    return False


@dataclass
class _Batches:
    """The kept rows of every batch, in compact columns."""

    columns: list[list[Any]]  # per needed column, its chunks (trimmed Arrow strings)
    records: list[Any]  # per batch: data records kept (int32 array), or (first, count): all
    too_long: dict[int, tuple[int, int]]  # needed column -> (data record, characters), first


def _read_arrow(
    src: _Source, delimiter: str, layout: Layout, source: str, options: LoadOptions
) -> Table | object | None:
    """The fast path: pyarrow's streaming reader on a well-formed file, a block at a time.

    Rows are trimmed, checked and filtered (blank rows, and rows of other shards with
    ``options.shard``) batch by batch and kept as Arrow strings: the file is never held
    whole, nor as Python strings. Returns None when the file needs the exact reader
    (blank lines, which pyarrow drops and which would shift row numbers; records with
    the wrong number of fields; anything else pyarrow dislikes), or ``_UTF8_ERROR`` when
    the bytes are not UTF-8.
    """
    width = len(layout.header)
    needed = layout.needed
    names = [f"f{j}" for j in range(width)]
    scan = _Scan.of(src)
    wide = bool(layout.attribute_columns)
    kept = _Batches([[] for _ in needed], [], {})
    limit = options.max_cell_chars
    records = 0  # header included
    batches = 0
    last_field = ""
    try:
        parse_options = pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char='"',
            double_quote=True,
            escape_char=False,
            newlines_in_values=scan.has_quotes,
            ignore_empty_lines=True,
        )
        convert_options = pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            include_columns=[names[j] for j in sorted({*needed, width - 1})],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=True,
        )
        reader: Any
        if src.size <= _WHOLE_READ:
            # A file this small is parsed at once, on every core (the streaming reader
            # parses one block at a time); its table is gone once the rows are kept.
            reader = pacsv.read_csv(
                src.arrow(),
                read_options=pacsv.ReadOptions(column_names=names, block_size=4 * MiB),
                parse_options=parse_options,
                convert_options=convert_options,
            ).to_batches()
        else:
            reader = pacsv.open_csv(
                src.arrow(),
                read_options=pacsv.ReadOptions(
                    column_names=names, block_size=_ARROW_BLOCK, use_threads=True
                ),
                parse_options=parse_options,
                convert_options=convert_options,
            )
        for batch in reader:
            if not batch.num_rows:
                continue
            first = 0
            if records == 0:
                for j in needed:  # the header as pyarrow saw it must be the sniffer's
                    if batch.column(names[j])[0].as_py().strip() != layout.header[j]:
                        return None
                first = 1
            base = max(records - 1, 0)  # data record index of the batch's first data row
            records += batch.num_rows
            last_field = batch.column(names[width - 1])[-1].as_py()
            columns = [batch.column(names[j]).slice(first) for j in needed]
            _keep_batch(kept, columns, base, limit, options, wide)
            del batch, columns
            batches += 1
            if batches % 16 == 0:
                release_memory()  # the parser's blocks are freed: give their pages back
    except pa.ArrowInvalid as exc:
        return _UTF8_ERROR if "UTF8" in str(exc) else None
    except (pa.ArrowException, ValueError, TypeError):
        return None
    if records < 1:
        return None
    if scan.has_quotes and records > 1 and ("\n" in last_field or "\r" in last_field):
        # pyarrow accepts a quote opened in the last field and never closed (the field
        # runs to the end of the file); the exact reader tells the user where.
        return None
    # pyarrow skips empty lines: make sure that does not shift row numbers.
    terminators = records if scan.ends_with_newline else records - 1
    line_numbers: Any = None  # spreadsheet row of every record (header first), when not 1, 2, ...
    if scan.leading_blank or scan.newlines != terminators:
        if not scan.has_quotes and scan.crs == scan.crlfs:
            # Without quotes a record is a line: number the lines that are not empty.
            line_numbers = _nonempty_lines(src)
            if len(line_numbers) != records:
                return None
        elif scan.leading_blank or _blank_line_before_end(src):
            # Quoted line breaks or CR-only line ends: fine unless there is a blank line
            # before or between records.
            return None
    for position, j in enumerate(needed):
        if position in kept.too_long:
            k, chars = kept.too_long[position]
            raise InputError(
                f"a value has {chars:,} characters (the limit is {limit:,}); "
                'is a quote (") opened and never closed?',
                source=source,
                row=k + 2 if line_numbers is None else int(line_numbers[k + 1]),
                column=layout.header[j],
            )
    rows = _row_numbers(kept.records, records - 1, line_numbers)
    if wide:
        lists = [TextColumn(_chunked(chunks)).pylist() for chunks in kept.columns]
        table = build_table(source, "", layout, lists, list(rows), {})
        return only_shard(table, options.shard) if options.shard is not None else table
    c, a, v = layout.indices
    cids, attrs, vals = (TextColumn(_chunked(chunks)) for chunks in kept.columns)
    return Table(
        source=source,
        sheet="",
        rows=rows,
        customer_ids=cids,
        attributes=attrs,
        values=vals,
        headers=(layout.header[c], layout.header[a], layout.header[v]),
    )


def _keep_batch(
    kept: _Batches, columns: list[Any], base: int, limit: int, options: LoadOptions, wide: bool
) -> None:
    """Trim one batch's needed columns, note over-long cells, and keep the rows that are
    not blank (and, with a shard, belong to it)."""
    n = len(columns[0])
    if not n:
        return
    trimmed = [_trimmed(c) for c in columns]
    lengths = [pac.binary_length(c) for c in trimmed]
    for position, (column, length) in enumerate(zip(trimmed, lengths, strict=True)):
        if position in kept.too_long or pac.max(length).as_py() <= limit:
            continue  # bytes >= characters: only longer byte strings can be too long
        chars = pac.utf8_length(column)
        over = np.flatnonzero(pac.greater(chars, limit).to_numpy(zero_copy_only=False))
        if len(over):
            k = int(over[0])
            kept.too_long[position] = (base + k, chars[k].as_py())
    mask: Any = None
    if not wide:
        nonblank = pac.greater(lengths[0], 0)
        for length in lengths[1:]:
            nonblank = pac.or_(nonblank, pac.greater(length, 0))
        if not pac.all(nonblank).as_py():
            mask = nonblank.to_numpy(zero_copy_only=False)
        if options.shard is not None:
            owned = owned_mask(trimmed[0], options.shard)
            mask = owned if mask is None else mask & owned
    if mask is not None and not mask.all():
        selector = pa.array(mask)
        trimmed = [pac.filter(c, selector) for c in trimmed]
        kept.records.append((np.flatnonzero(mask) + base).astype(np.int32))
    else:
        kept.records.append((base, n))
    for chunks, column in zip(kept.columns, trimmed, strict=True):
        chunks.append(column)


def _trimmed(column: Any) -> Any:
    """``column`` with leading and trailing whitespace removed from every string; the
    column itself when no string starts or ends with a byte that may be whitespace (an
    ASCII space or control, or any non-ASCII byte), found without copying it."""
    data = _utf8_view(column)
    if data is not None:
        offsets, raw = data
        starts, ends = offsets[:-1], offsets[1:]
        filled = starts < ends
        edges = np.concatenate((raw[starts[filled]], raw[ends[filled] - 1]))
        if not len(edges) or not _MAY_BE_SPACE[edges].any():
            return column
    return pac.utf8_trim_whitespace(column)


_MAY_BE_SPACE = np.zeros(256, dtype=np.bool_)
_MAY_BE_SPACE[:0x21] = True  # ASCII controls and space (str.isspace: \t-\r, \x1c-\x1f, ' ')
_MAY_BE_SPACE[0x80:] = True  # non-ASCII: U+0085, U+00A0, U+2000... are whitespace too


def _utf8_view(column: Any) -> tuple[Any, Any] | None:
    """(offsets, bytes) of a plain string array, as numpy views; None for other kinds."""
    if column.type != pa.string() or column.null_count:
        return None
    buffers = column.buffers()
    if buffers[2] is None:
        return None
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[
        column.offset : column.offset + len(column) + 1
    ]
    return offsets, np.frombuffer(buffers[2], dtype=np.uint8)


def _row_numbers(batches: list[Any], data_records: int, line_numbers: Any) -> Any:
    """The spreadsheet row of every kept row: a range when nothing was dropped and the
    records are lines 2, 3, ...; else a numpy array (4 bytes a row)."""
    if line_numbers is None and all(isinstance(b, tuple) for b in batches):
        return range(2, data_records + 2)
    parts = [
        np.arange(b[0], b[0] + b[1], dtype=np.int32) if isinstance(b, tuple) else b for b in batches
    ]
    index = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    del parts
    if line_numbers is None:
        index += 2
        return IntColumn(index)
    return IntColumn(np.asarray(line_numbers)[index + 1].astype(np.int32))


def _chunked(chunks: list[Any]) -> Any:
    return pa.chunked_array(chunks, pa.string()) if chunks else pa.chunked_array([], pa.string())


def _nonempty_lines(src: _Source) -> Any:
    """1-based numbers of the lines that are not empty (LF or CRLF line ends), read a
    block at a time (each block cut after its last line feed)."""
    parts = []
    line = 0  # lines before the piece
    carry = b""
    for block in src.blocks():
        data = carry + block
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            continue
        numbers, breaks = _nonempty_in(data[:cut])
        parts.append(numbers + line)
        line += breaks
        carry = data[cut:]
    if carry:
        numbers, _ = _nonempty_in(carry)
        parts.append(numbers + line)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _nonempty_in(piece: bytes) -> tuple[Any, int]:
    """Numbers (1-based, within ``piece``) of its non-empty lines, and its line feeds."""
    data = np.frombuffer(piece, dtype=np.uint8)
    breaks = np.flatnonzero(data == 10)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(data)]))
    lengths = ends - starts
    before_break = data[np.maximum(ends - 1, 0)] if len(data) else np.zeros(0, dtype=np.uint8)
    lengths = lengths - ((lengths > 0) & (before_break == 13))
    return np.flatnonzero(lengths > 0) + 1, len(breaks)


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
