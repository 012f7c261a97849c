"""Find every problem of every input row before anything is sent (DESIGN.md section 5).

Works column by column on :class:`~bulk_sync.models.Rows`: each rule first asks a
C-speed question of the whole column (``all(column)``, ``"".join(column).isprintable()``,
``max(map(len, column))``, ``"." in column``) and only walks the column in Python when
the answer says some row breaks the rule. A clean million-row input is checked in
tens of milliseconds; :class:`~bulk_sync.models.Problem` objects are created only for
rows that have problems.

Rules (``Problem.kind`` in brackets):

- customer id, attribute or value empty [``empty_customer_id``, ``empty_attribute``,
  ``empty_value``];
- a control character (Unicode category Cc: C0, DEL, C1) in the customer id or the
  attribute, or one other than tab, LF and CR in the value [``control_character``];
  the message names the code point(s), e.g. ``U+0000``;
- customer id ``.`` or ``..``: it cannot be a URL path segment [``unaddressable_id``];
- longer than a configured limit [``too_long``];
- a record the loader found malformed (``Table.defects``) [``malformed``].

A row can have several problems; all are reported, sorted by row index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pac  # type: ignore[import-untyped]

from bulk_sync.columns import text_arrow
from bulk_sync.models import Problem, Rows, Table

__all__ = ["Limits", "invalid_mask", "validate"]

# Every control character (category Cc): C0, DEL and C1.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Values may legitimately hold tabs and line breaks (addresses, notes).
_VALUE_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_UNADDRESSABLE = (".", "..")


@dataclass(frozen=True, slots=True)
class Limits:
    """Maximum lengths in characters; ``None`` means no limit."""

    max_customer_id_length: int | None = None
    max_attribute_length: int | None = None
    max_value_length: int | None = None


_NO_LIMITS = Limits()


def validate(rows: Rows, limits: Limits = _NO_LIMITS) -> tuple[Problem, ...]:
    """Every problem of every row, sorted by row index (stable: rule order within a row).

    ``Problem.index`` is the global row index; ``column`` is the header text as
    written in the file (for a wide table's values and attributes, the column the
    value came from).
    """
    problems: list[Problem] = []
    for table, offset in zip(rows.tables, rows.offsets, strict=True):
        stop = offset + len(table)
        columns = (
            rows.customer_ids[offset:stop],
            rows.attributes[offset:stop],
            rows.values[offset:stop],
        )
        problems.extend(_validate_table(table, columns, offset, limits))
    problems.sort(key=_by_index)
    return tuple(problems)


def invalid_mask(problems: Iterable[Problem], n: int) -> bytearray:
    """A byte per row, 1 where the row has at least one problem (what :func:`group` takes)."""
    mask = bytearray(n)
    for p in problems:
        mask[p.index] = 1
    return mask


def _by_index(p: Problem) -> int:
    return p.index


class _Emitter:
    """Builds located problems for one table."""

    __slots__ = ("offset", "out", "table")

    def __init__(self, table: Table, offset: int) -> None:
        self.table = table
        self.offset = offset
        self.out: list[Problem] = []

    def add(self, k: int, column: str, message: str, kind: str) -> None:
        t = self.table
        self.out.append(
            Problem(
                index=self.offset + k,
                source=t.source,
                sheet=t.sheet,
                row=t.rows[k],
                column=column,
                message=message,
                kind=kind,
            )
        )


def _validate_table(
    table: Table,
    columns: tuple[Sequence[str], Sequence[str], Sequence[str]],
    offset: int,
    limits: Limits,
) -> list[Problem]:
    emit = _Emitter(table, offset)
    n = len(table)
    cid_header, attr_header, value_header = table.headers
    wide = table.value_columns

    def column_of(header: str) -> _ColumnName:
        # Wide tables: attribute and value come from one column per attribute.
        if header or not wide:
            return _ColumnName(header, None)
        return _ColumnName("", wide)

    for local, column, message in table.defects:
        emit.add(local, column, message, "malformed")

    _check_column(
        emit,
        columns[0],
        n,
        column_of(cid_header),
        label="customer id",
        empty_kind="empty_customer_id",
        control=_CONTROL,
        max_length=limits.max_customer_id_length,
        unaddressable=True,
    )
    _check_column(
        emit,
        columns[1],
        n,
        column_of(attr_header),
        label="attribute",
        empty_kind="empty_attribute",
        control=_CONTROL,
        max_length=limits.max_attribute_length,
        unaddressable=False,
    )
    _check_column(
        emit,
        columns[2],
        n,
        column_of(value_header),
        label="value",
        empty_kind="empty_value",
        control=_VALUE_CONTROL,
        max_length=limits.max_value_length,
        unaddressable=False,
    )
    return emit.out


@dataclass(frozen=True, slots=True)
class _ColumnName:
    header: str
    per_row: Sequence[str] | None

    def at(self, k: int) -> str:
        if self.per_row is None:
            return self.header
        return self.per_row[k] if k < len(self.per_row) else ""


def _check_column(
    emit: _Emitter,
    column: Sequence[str],
    n: int,
    name: _ColumnName,
    *,
    label: str,
    empty_kind: str,
    control: re.Pattern[str],
    max_length: int | None,
    unaddressable: bool,
) -> None:
    if n == 0:
        return
    arrow = text_arrow(column)
    # One list of row positions per rule, each found by a vectorized question of the whole
    # column; merged afterwards so a row's problems come out in rule order.
    found: list[tuple[int, int, str, str]] = []  # (k, rule order, message, kind)
    lengths = pac.binary_length(arrow)

    empty = _positions(pac.equal(lengths, 0))
    if len(empty):
        message = f"{label} is empty"
        found.extend((k, 0, message, empty_kind) for k in empty.tolist())

    if _may_hold_controls(arrow, allow_breaks=control is _VALUE_CONTROL):
        pattern = _RE2_VALUE_CONTROL if control is _VALUE_CONTROL else _RE2_CONTROL
        hits = _positions(pac.match_substring_regex(arrow, pattern))
        for k in hits.tolist():
            s = column[k]
            if control.search(s):
                found.append((k, 1, _control_message(label, control, s), "control_character"))

    if unaddressable:
        for bad in _UNADDRESSABLE:
            hits = _positions(pac.equal(arrow, bad))
            if len(hits):
                message = f"customer id {bad!r} cannot be used in a URL path"
                found.extend((k, 2, message, "unaddressable_id") for k in hits.tolist())

    if max_length is not None and (pac.max(lengths).as_py() or 0) > max_length:
        # Bytes >= characters: only rows with more bytes than the limit can be too long.
        for k in _positions(pac.greater(lengths, max_length)).tolist():
            size = len(column[k])
            if size > max_length:
                message = f"{label} is {size} characters long, longer than the limit {max_length}"
                found.append((k, 3, message, "too_long"))

    found.sort(key=_rule_key)
    for k, _, message, kind in found:
        emit.add(k, name.at(k), message, kind)


# The same classes as _CONTROL and _VALUE_CONTROL, for Arrow's (RE2) regex kernel.
_RE2_CONTROL = "[\\x00-\\x1f\\x7f-\\x9f]"
_RE2_VALUE_CONTROL = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]"
_C0 = np.ones(256, dtype=np.bool_)
_C0[0x20:] = False
_C0[0x7F] = True
_C0_VALUE = _C0.copy()
_C0_VALUE[[0x09, 0x0A, 0x0D]] = False


def _positions(mask: Any) -> Any:
    """Row positions where a boolean Arrow (chunked) array is true."""
    if isinstance(mask, pa.ChunkedArray):
        if mask.num_chunks == 0:
            return np.zeros(0, dtype=np.int64)
        mask = mask.combine_chunks() if mask.num_chunks > 1 else mask.chunk(0)
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False))


def _may_hold_controls(arrow: Any, *, allow_breaks: bool) -> bool:
    """Whether any string may hold a control character (C0, DEL, or C1 as UTF-8
    ``C2 80``-``C2 9F``), judged on the raw UTF-8 bytes at memory speed: the smallest
    byte, then DEL, then the C2 lead byte (Latin-1 letters start with C3)."""
    for chunk in arrow.chunks:
        data = _utf8_bytes(chunk)
        if data is None or not len(data):
            continue
        if data.min() < 0x20:
            table = _C0_VALUE if allow_breaks else _C0
            if table[data].any():
                return True
        if (data == 0x7F).any():
            return True
        lead = np.flatnonzero(data[:-1] == 0xC2)
        if len(lead):
            follow = data[lead + 1]
            if ((follow >= 0x80) & (follow <= 0x9F)).any():
                return True
    return False


def _utf8_bytes(chunk: Any) -> Any:
    """The UTF-8 bytes of a string array chunk (its slice of the data buffer)."""
    buffers = chunk.buffers()
    if len(chunk) == 0 or buffers[2] is None:
        return None
    wide = chunk.type == pa.large_string()
    offsets = np.frombuffer(buffers[1], dtype=np.int64 if wide else np.int32)
    start = int(offsets[chunk.offset])
    stop = int(offsets[chunk.offset + len(chunk)])
    return np.frombuffer(buffers[2], dtype=np.uint8)[start:stop]


def _rule_key(item: tuple[int, int, str, str]) -> tuple[int, int]:
    return item[0], item[1]


def _control_message(label: str, control: re.Pattern[str], s: str) -> str:
    codes: list[str] = []
    for m in control.finditer(s):
        code = f"U+{ord(m.group()):04X}"
        if code not in codes:
            codes.append(code)
    if len(codes) == 1:
        return f"{label} contains the control character {codes[0]}"
    shown = ", ".join(codes[:5]) + (", ..." if len(codes) > 5 else "")
    return f"{label} contains control characters {shown}"
