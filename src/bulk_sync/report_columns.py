"""The CSV report written a column at a time (Arrow kernels), byte for byte what
:mod:`csv` writes line by line.

A 20-million-row report made line by line costs a minute of Python (a list and a
``writerow`` per line); here each chunk of lines is made by a few vectorized passes:

- formula neutralization (:func:`bulk_sync.report.escape`) is decided in Python only
  for the texts whose first character may start a formula (``= @ + - ' tab CR LF``);
- quoting follows ``csv.QUOTE_MINIMAL`` with the report's dialect: a field holding the
  delimiter, a quote, CR or LF is quoted, its quotes doubled; numbers and empty fields
  never are;
- the ten fields are joined by ``,`` and the line ends in ``\\r\\n``; the UTF-8 bytes of
  the chunk are written at once.

``tests/test_report_columns.py`` checks it against :func:`bulk_sync.report.write_report`'s
line-by-line writer on random texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pac  # type: ignore[import-untyped]

from bulk_sync.models import REPORT_COLUMNS
from bulk_sync.report import escape

__all__ = ["LineColumns", "write_csv_columns"]

_MAYBE = sorted("=@\t\r\n+-'")  # first characters escape() may change
_NEEDS_QUOTES = '[,"\\r\\n]'


@dataclass(frozen=True)
class LineColumns:
    """Consecutive report lines of one table, as columns.

    ``rows``, ``status``, ``http`` (0: none), ``errors`` and ``attempts`` are numpy
    integer arrays; ``status`` and ``errors`` are codes into ``status_texts`` and
    ``error_texts``; the three texts are Arrow string arrays.
    """

    source: str
    sheet: str
    rows: Any
    customer_ids: Any
    attributes: Any
    values: Any
    status: Any
    status_texts: Sequence[str]
    http: Any
    errors: Any
    error_texts: Sequence[str]
    attempts: Any


def write_csv_columns(out: IO[bytes], chunks: Iterable[LineColumns]) -> None:
    """The header and every chunk's lines, as the CSV report's bytes."""
    out.write((",".join(REPORT_COLUMNS) + "\r\n").encode("utf-8"))
    known: tuple[Sequence[str], int, Any] | None = None  # error texts, how many, as fields
    for chunk in chunks:
        if not len(chunk.rows):
            continue
        texts = chunk.error_texts
        if known is None or known[0] is not texts or known[1] != len(texts):
            known = (texts, len(texts), pa.array([_field(escape(t)) for t in texts], pa.string()))
        errors = known[2]
        statuses = pa.array([_field(t) for t in chunk.status_texts], pa.string())
        http = pa.array(chunk.http)
        fields = [
            pa.scalar(_field(escape(chunk.source))),
            pa.scalar(_field(escape(chunk.sheet))),
            pac.cast(pa.array(chunk.rows), pa.string()),
            _text_fields(chunk.customer_ids),
            _text_fields(chunk.attributes),
            _text_fields(chunk.values),
            statuses.take(pa.array(chunk.status)),
            pac.if_else(pac.equal(http, 0), "", pac.cast(http, pa.string())),
            errors.take(pa.array(chunk.errors)),
            pac.cast(pa.array(chunk.attempts), pa.string()),
        ]
        lines = pac.binary_join_element_wise(*fields, ",")
        lines = pac.binary_join_element_wise(lines, "\r\n", "")
        out.write(_utf8(lines))


def _field(text: str) -> str:
    """One CSV field as ``csv.QUOTE_MINIMAL`` writes it (the report's dialect), then as
    the line writer's ``backslashreplace`` encodes it: a lone surrogate (a file name
    that is not UTF-8, say) becomes ``\\udcXX``. (Arrow strings cannot hold one.)"""
    if any(c in text for c in ',"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _text_fields(column: Any) -> Any:
    """A text column neutralized (:func:`escape`) and quoted as CSV fields."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if column.type != pa.string():
        column = pac.cast(column, pa.string())
    first = pac.utf8_slice_codeunits(column, 0, 1)
    maybe = np.flatnonzero(
        pac.is_in(first, value_set=pa.array(_MAYBE, pa.string())).to_numpy(zero_copy_only=False)
    )
    if len(maybe):
        originals = column.take(pa.array(maybe)).to_pylist()
        escaped = [escape(v) for v in originals]
        changed = [k for k, (a, b) in enumerate(zip(originals, escaped, strict=True)) if a != b]
        if changed:
            mask = np.zeros(len(column), dtype=np.bool_)
            mask[maybe[changed]] = True
            column = pac.replace_with_mask(
                column, pa.array(mask), pa.array([escaped[k] for k in changed], pa.string())
            )
    quote = pac.match_substring_regex(column, _NEEDS_QUOTES)
    if not pac.any(quote).as_py():
        return column
    doubled = pac.replace_substring(column, '"', '""')
    return pac.if_else(quote, pac.binary_join_element_wise('"', doubled, '"', ""), column)


def _utf8(lines: Any) -> bytes | memoryview:
    """The concatenated UTF-8 bytes of a string array's values (no copy)."""
    if isinstance(lines, pa.ChunkedArray):
        return b"".join(bytes(_utf8(c)) for c in lines.chunks)
    buffers = lines.buffers()
    if not len(lines) or buffers[2] is None:
        return b""
    wide = lines.type == pa.large_string()
    offsets = np.frombuffer(buffers[1], dtype=np.int64 if wide else np.int32)
    start = int(offsets[lines.offset])
    stop = int(offsets[lines.offset + len(lines)])
    return memoryview(buffers[2])[start:stop]
