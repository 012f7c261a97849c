"""Small typed values passed between the pipeline stages.

Rows travel in columns (:class:`Table`) rather than one object per row: a million
frozen dataclasses cost seconds, four lists of strings cost nothing.
Row *positions* (0-based, across every input in input order) are the glue between
stages: validation, grouping, upload and the report all speak of ``row index`` ``i``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from bulk_sync.columns import TextColumn
    from bulk_sync.grouping import Maps

REPORT_COLUMNS: tuple[str, ...] = (
    "source",
    "sheet",
    "row",
    "customer_id",
    "attribute",
    "value",
    "status",
    "http_status",
    "error",
    "attempts",
)


class Status(enum.StrEnum):
    """Final status of one input row (DESIGN.md section 3)."""

    OK = "ok"
    SKIPPED = "skipped"
    VALID = "valid"
    INVALID = "invalid"
    FAILED = "failed"
    NOT_SENT = "not_sent"


class Field(enum.StrEnum):
    """The three logical columns of an input row."""

    CUSTOMER_ID = "customer_id"
    ATTRIBUTE = "attribute"
    VALUE = "value"


@dataclass(frozen=True, slots=True)
class CellNotice:
    """A workbook column whose numbers are sent otherwise than a person sees them (a
    display-only format: thousands separators, currency, rounding, ...), with one
    example. One per sheet and column; front ends show :attr:`message`."""

    source: str
    sheet: str
    column: str  # the column's letters, e.g. "C"
    header: str  # the header text of that column
    row: int  # the example's spreadsheet row
    sent: str
    shown: str

    @property
    def message(self) -> str:
        return (
            f"sheet {self.sheet!r}, column {self.column}: {self.sent} is shown as "
            f"{self.shown}; the exact number is sent"
        )


@dataclass(frozen=True, slots=True)
class Table:
    """Rows loaded from one file (CSV/TSV) or one sheet of a workbook, as strings.

    ``rows[i]`` is the spreadsheet row number the user sees (header = 1).
    ``headers`` are the header texts as written in the file for customer id,
    attribute and value, used in messages. In wide files (one column per
    attribute) ``headers[2]`` is empty and ``value_columns[i]`` names the column
    each value came from; otherwise ``value_columns`` is empty.
    """

    source: str
    sheet: str
    rows: Sequence[int]
    customer_ids: Sequence[str]
    attributes: Sequence[str]
    values: Sequence[str]
    headers: tuple[str, str, str] = ("customer_id", "attribute", "value")
    value_columns: Sequence[str] = ()
    defects: tuple[tuple[int, str, str], ...] = ()
    """Rows the loader found malformed but could still place: (local index, column, message),
    e.g. a CSV record with more fields than the header. Validation makes them ``invalid``."""
    skips: tuple[tuple[int, str], ...] = ()
    """Rows with nothing to send that the report still lists: (local index, note), e.g. a
    customer of a wide file whose every attribute cell is empty. They end ``skipped``."""
    notices: tuple[CellNotice, ...] = ()
    """Columns sent otherwise than shown (display-only number formats), one per column."""

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True, slots=True)
class Rows:
    """All input rows of a run, concatenated in input order (global row index ``i``).

    The three columns are :class:`~bulk_sync.columns.TextColumn` values (Arrow strings):
    the tables' own arrays, one chunk each, not copied. Stages that handle every row
    work on their ``arrow`` form; indexing one row gives a Python string.
    """

    tables: tuple[Table, ...]
    offsets: tuple[int, ...]  # global index of each table's first row
    customer_ids: TextColumn
    attributes: TextColumn
    values: TextColumn

    @classmethod
    def of(cls, tables: Sequence[Table]) -> Rows:
        from bulk_sync.columns import TextColumn

        offsets: list[int] = []
        total = 0
        for t in tables:
            offsets.append(total)
            total += len(t)
        return cls(
            tuple(tables),
            tuple(offsets),
            TextColumn.concat(t.customer_ids for t in tables),
            TextColumn.concat(t.attributes for t in tables),
            TextColumn.concat(t.values for t in tables),
        )

    def __len__(self) -> int:
        return len(self.customer_ids)

    def locate(self, index: int) -> tuple[Table, int]:
        """The table a global row index belongs to, and its index inside that table."""
        lo, hi = 0, len(self.offsets) - 1
        while lo < hi:  # last table whose offset <= index
            mid = (lo + hi + 1) // 2
            if self.offsets[mid] <= index:
                lo = mid
            else:
                hi = mid - 1
        table = self.tables[lo]
        return table, index - self.offsets[lo]


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a row is invalid, located as the user sees it."""

    index: int  # row position across all inputs
    source: str
    sheet: str
    row: int
    column: str  # header text of the offending column ("" when not about one column)
    message: str  # short, without the location, e.g. "empty value"
    kind: str  # stable slug for counting, e.g. "empty_value", "conflict"

    def located(self) -> str:
        """The message with its location: ``file.xlsx, sheet 'S', row 7, column 'value': ...``."""
        where = [self.source]
        if self.sheet:
            where.append(f"sheet {self.sheet!r}")
        where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}"


class Pair(NamedTuple):
    """One attribute of one customer and the input rows it came from.

    A NamedTuple rather than a frozen dataclass: one is built per valid row, and the
    tuple is three times cheaper to make (immutable all the same)."""

    attribute: str
    value: str
    indices: tuple[int, ...]


class CustomerMap(NamedTuple):
    """Everything to send for one customer, in first-seen order (a NamedTuple, like Pair)."""

    customer_id: str
    pairs: tuple[Pair, ...]

    def as_dict(self) -> dict[str, str]:
        return {p.attribute: p.value for p in self.pairs}

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(i for p in self.pairs for i in p.indices)


@dataclass(frozen=True, slots=True)
class Grouped:
    """Result of grouping valid rows.

    ``maps``: one per customer, in order of first appearance (built lazily from arrays:
    :class:`~bulk_sync.grouping.Maps`).
    ``invalid``: rows made invalid by grouping (conflicting duplicates), with problems.
    ``superseded``: rows that lost to a later row under ``--on-conflict last``:
    index -> note for the report (status ``skipped``).
    """

    maps: Maps
    invalid: tuple[Problem, ...] = ()
    superseded: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One line of a results report, values as the user sees them (never escaped)."""

    source: str
    sheet: str
    row: int
    customer_id: str
    attribute: str
    value: str
    status: Status
    http_status: int | None
    error: str
    attempts: int
