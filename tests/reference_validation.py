"""Validation as it was before issue 14 (Python loops over lists), kept as an oracle for
the vectorized one. Not used by the package.

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
        problems.extend(_validate_table(table, offset, limits))
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


def _validate_table(table: Table, offset: int, limits: Limits) -> list[Problem]:
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
        table.customer_ids,
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
        table.attributes,
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
        table.values,
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
    # One list of row positions per rule, each found at C speed when the column is clean;
    # merged afterwards so a row's problems come out in rule order.
    found: list[tuple[int, int, str, str]] = []  # (k, rule order, message, kind)

    if not all(column):
        empty = f"{label} is empty"
        found.extend((k, 0, empty, empty_kind) for k, s in enumerate(column) if not s)

    if not "".join(column).isprintable():
        # isprintable() is False for spaces other than ' ' and for format characters
        # too: only the regex decides.
        search = control.search
        for k, s in enumerate(column):
            if not s.isprintable() and search(s):
                found.append((k, 1, _control_message(label, control, s), "control_character"))

    if unaddressable:
        for bad in _UNADDRESSABLE:
            if bad in column:
                message = f"customer id {bad!r} cannot be used in a URL path"
                found.extend(
                    (k, 2, message, "unaddressable_id") for k, s in enumerate(column) if s == bad
                )

    if max_length is not None and max(map(len, column)) > max_length:
        for k, s in enumerate(column):
            if len(s) > max_length:
                message = f"{label} is {len(s)} characters long, longer than the limit {max_length}"
                found.append((k, 3, message, "too_long"))

    found.sort(key=_rule_key)
    for k, _, message, kind in found:
        emit.add(k, name.at(k), message, kind)


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
