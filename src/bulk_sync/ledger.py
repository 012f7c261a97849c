"""Per-row results of a run, in compact columns, and the report lines made from them.

Every input row has a status, an HTTP status, an error text and an attempt count. For a
20-million-row migration these cannot be Python objects per row (four lists of 20M
references alone are 640 MB): the ledger keeps them in numpy arrays, 11 bytes a row:

- ``status``: one byte, the position of the :class:`~bulk_sync.models.Status` in
  :data:`STATUSES`;
- ``http``: two bytes, 0 for none;
- ``attempts``: four bytes;
- ``error``: four bytes, a code into a table of distinct texts (most rows share a
  handful: "", "not sent: ...", one message per kind of problem).

Report lines are made a chunk at a time, in input order, from these arrays and the rows'
Arrow columns (:meth:`Ledger.lines`), so the report writer never holds more than a chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow.compute as pac  # type: ignore[import-untyped]

from bulk_sync.columns import IntColumn
from bulk_sync.models import Rows, Status, Table
from bulk_sync.report_columns import LineColumns

__all__ = ["STATUSES", "Ledger"]

STATUSES: tuple[Status, ...] = tuple(Status)
_CODE: dict[Status, int] = {s: k for k, s in enumerate(STATUSES)}
_TEXT: tuple[str, ...] = tuple(s.value for s in STATUSES)
_CHUNK = 65_536  # report lines made at a time


class Ledger:
    """What happened to every row (see the module docstring for the layout)."""

    __slots__ = ("_codes", "_texts", "attempts", "error", "http", "rows", "status")

    def __init__(self, rows: Rows) -> None:
        n = len(rows)
        self.rows = rows
        self.status: Any = np.full(n, _CODE[Status.VALID], dtype=np.uint8)
        self.http: Any = np.zeros(n, dtype=np.int16)
        self.attempts: Any = np.zeros(n, dtype=np.int32)
        self.error: Any = np.zeros(n, dtype=np.int32)
        self._texts: list[str] = [""]
        self._codes: dict[str, int] = {"": 0}

    def __len__(self) -> int:
        return len(self.status)

    # -- writing ------------------------------------------------------------------------

    def code(self, text: str) -> int:
        """The error code of ``text`` (added to the table on first use)."""
        code = self._codes.get(text)
        if code is None:
            code = self._codes[text] = len(self._texts)
            self._texts.append(text)
        return code

    def set(
        self,
        i: int,
        status: Status,
        error: str = "",
        http: int | None = None,
        attempts: int = 0,
    ) -> None:
        """Record the outcome of row ``i``."""
        self.status[i] = _CODE[status]
        self.error[i] = self.code(error)
        self.http[i] = http or 0
        self.attempts[i] = attempts

    def mark(self, indices: Any, status: Status, error: str | None = "") -> None:
        """Give every row of ``indices`` (integers) ``status``, and ``error`` unless None."""
        indices = np.asarray(indices, dtype=np.int64)
        if not len(indices):
            return
        self.status[indices] = _CODE[status]
        if error is not None:
            self.error[indices] = self.code(error)

    def add_error(self, i: int, text: str) -> None:
        """Append ``text`` to row ``i``'s error ("; " between texts)."""
        current = self._texts[self.error[i]]
        self.error[i] = self.code(f"{current}; {text}" if current else text)

    # -- reading ------------------------------------------------------------------------

    def status_of(self, i: int) -> Status:
        return STATUSES[int(self.status[i])]

    def error_of(self, i: int) -> str:
        return self._texts[int(self.error[i])]

    def texts(self) -> list[str]:
        """The error texts, in code order (``error`` holds codes into this list)."""
        return list(self._texts)

    def where(self, status: Status, error: str | None = None) -> Any:
        """Rows with ``status`` (and exactly ``error`` when given), as an index array."""
        mask = self.status == _CODE[status]
        if error is not None:
            code = self._codes.get(error)
            if code is None:
                return np.zeros(0, dtype=np.int64)
            mask &= self.error == code
        return np.flatnonzero(mask)

    def counts(self) -> dict[str, int]:
        """Rows per status, every status present (0 when none)."""
        counts = np.bincount(self.status, minlength=len(STATUSES))
        return {s.value: int(counts[k]) for k, s in enumerate(STATUSES)}

    def customers(self) -> int:
        """Distinct non-empty customer ids among the rows."""
        arrow = self.rows.customer_ids.arrow
        if len(arrow) == 0:
            return 0
        distinct = int(pac.count_distinct(arrow).as_py())
        return distinct - (1 if pac.any(pac.equal(arrow, "")).as_py() else 0)

    def top_errors(self, status: Status, most: int = 5) -> tuple[tuple[str, int], ...]:
        """The most frequent errors of rows with ``status``, most first; ties in the order
        their first row comes (as ``collections.Counter.most_common`` gives them)."""
        codes = self.error[self.status == _CODE[status]]
        if not len(codes):
            return ()
        found, first, counts = np.unique(codes, return_index=True, return_counts=True)
        order = np.lexsort((first, -counts))[:most]
        return tuple((self._texts[int(found[k])], int(counts[k])) for k in order)

    def line(self, i: int) -> list[object]:
        """Report line of row ``i`` (the 10 fields of ``REPORT_COLUMNS``)."""
        table, local = self.rows.locate(i)
        rows = self.rows
        return self.line_of(
            i, table, local, rows.customer_ids[i], rows.attributes[i], rows.values[i]
        )

    def line_of(
        self, i: int, table: Table, local: int, customer_id: str, attribute: str, value: str
    ) -> list[object]:
        """Report line of row ``i`` whose texts the caller already has (an upload job)."""
        http = int(self.http[i])
        return [
            table.source,
            table.sheet,
            table.rows[local],
            customer_id,
            attribute,
            value,
            _TEXT[self.status[i]],
            http or None,
            self._texts[self.error[i]],
            int(self.attempts[i]),
        ]

    def lines_at(self, indices: Any) -> list[list[object]]:
        """Report lines of the rows at ``indices`` (an integer array), texts taken in bulk."""
        rows = self.rows
        cids = rows.customer_ids.take(indices)
        attributes = rows.attributes.take(indices)
        values = rows.values.take(indices)
        out: list[list[object]] = []
        for k, i in enumerate(np.asarray(indices).tolist()):
            table, local = rows.locate(i)
            out.append(self.line_of(i, table, local, cids[k], attributes[k], values[k]))
        return out

    def lines(self) -> LedgerLines:
        """Every report line, in input order (an iterable made a chunk at a time, which
        the CSV writer also takes as columns)."""
        return LedgerLines(self)

    def _chunks(self) -> Iterator[tuple[Table, int, int, int, int]]:
        """(table, local start, local stop, global start, global stop) of every chunk."""
        for table, offset in zip(self.rows.tables, self.rows.offsets, strict=True):
            for start in range(0, len(table), _CHUNK):
                stop = min(start + _CHUNK, len(table))
                yield table, start, stop, offset + start, offset + stop


class LedgerLines:
    """The report lines of a :class:`Ledger`: iterated as tuples (XLSX writer, tests) or
    taken as :class:`~bulk_sync.report_columns.LineColumns` chunks (CSV writer)."""

    __slots__ = ("ledger",)

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def __iter__(self) -> Iterator[tuple[object, ...]]:
        ledger = self.ledger
        rows = ledger.rows
        texts = np.array(ledger._texts, dtype=object)
        status_texts = np.array(_TEXT, dtype=object)
        for table, start, stop, a, b in ledger._chunks():
            http = ledger.http[a:b].astype(object)
            http[http == 0] = None
            yield from zip(
                repeat(table.source),
                repeat(table.sheet),
                _numbers(table.rows, start, stop),
                rows.customer_ids.pylist(a, b),
                rows.attributes.pylist(a, b),
                rows.values.pylist(a, b),
                status_texts[ledger.status[a:b]].tolist(),
                http.tolist(),
                texts[ledger.error[a:b]].tolist(),
                ledger.attempts[a:b].tolist(),
                strict=False,  # repeat() is endless; the other columns are equal
            )

    def column_chunks(self) -> Iterator[LineColumns]:
        ledger = self.ledger
        rows = ledger.rows
        for table, start, stop, a, b in ledger._chunks():
            yield LineColumns(
                source=table.source,
                sheet=table.sheet,
                rows=np.asarray(_numbers(table.rows, start, stop), dtype=np.int64)
                if not isinstance(table.rows, IntColumn)
                else table.rows.array[start:stop],
                customer_ids=rows.customer_ids.arrow.slice(a, b - a),
                attributes=rows.attributes.arrow.slice(a, b - a),
                values=rows.values.arrow.slice(a, b - a),
                status=ledger.status[a:b],
                status_texts=_TEXT,
                http=ledger.http[a:b],
                errors=ledger.error[a:b],
                error_texts=ledger._texts,
                attempts=ledger.attempts[a:b],
            )


def _numbers(numbers: Any, start: int, stop: int) -> list[int]:
    if isinstance(numbers, IntColumn):
        out: list[int] = numbers.array[start:stop].tolist()
        return out
    return list(numbers[start:stop])
