"""The grouping as it was before issue 14 (one Python dict pass), kept as an oracle:
tests check that the vectorized grouping gives the very same maps, pairs, problems and
notes. Not used by the package.

One flat pass over the column lists builds ``customer id -> {attribute: first row}``;
a second (rarely taken) dictionary collects the rows of every (customer, attribute)
seen more than once. Duplicates are then resolved by policy:

- same value every time: one :class:`~bulk_sync.models.Pair` whose ``indices`` lists
  every row (they travel as one pair and share its outcome);
- different values, policy ``"error"``: every row of that (customer, attribute) becomes
  invalid (``Problem.kind == "conflict"``) and the attribute is not sent; a customer
  left with nothing to send gets no map;
- different values, policy ``"last"``: the last row's value wins; the pair's ``indices``
  are the rows holding that final value; every other row goes to ``superseded`` with a
  note naming the winning row (status ``skipped`` in the report).

Maps come in the order of each customer's first valid row; pairs in the order each
attribute was first seen. pandas ``groupby`` was measured 5x slower for this and is
not used.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from typing import Literal

from bulk_sync.models import CustomerMap, Grouped, Pair, Problem, Rows, Table

__all__ = ["OnConflict", "group", "split"]

OnConflict = Literal["error", "last"]

_FLIP = bytes(1 if b == 0 else 0 for b in range(256))  # invalid mask -> valid mask
_MAX_REFS = 10  # rows named in one conflict message


def group(
    rows: Rows,
    invalid: AbstractSet[int] | bytes | bytearray,
    on_conflict: OnConflict = "error",
) -> Grouped:
    """Group the rows not in ``invalid`` (row indices, or a 0/1 byte per row) per customer."""
    if on_conflict not in ("error", "last"):
        raise ValueError(f"on_conflict must be 'error' or 'last', not {on_conflict!r}")
    n = len(rows)
    cids = rows.customer_ids
    attrs = rows.attributes
    values = rows.values

    customers: dict[str, dict[str, int]] = {}  # cid -> attribute -> first row index
    dups: dict[tuple[str, str], list[int]] = {}  # (cid, attribute) -> every row, if > 1

    with _gc_paused():
        stream: Iterator[tuple[int, str, str]] = zip(range(n), cids, attrs, strict=False)
        valid = _valid_bytes(invalid, n)
        if valid is not None:
            stream = itertools.compress(stream, valid)
        get = customers.get
        for i, cid, attr in stream:
            m = get(cid)
            if m is None:
                customers[cid] = {attr: i}
                continue
            first = m.setdefault(attr, i)
            if first != i:
                key = (cid, attr)
                seen = dups.get(key)
                if seen is None:
                    dups[key] = [first, i]
                else:
                    seen.append(i)

        if not dups:
            maps = tuple(
                [
                    CustomerMap(cid, tuple([Pair(a, values[i], (i,)) for a, i in m.items()]))
                    for cid, m in customers.items()
                ]
            )
            return Grouped(maps)

        return _resolve(rows, customers, dups, on_conflict)


def split(m: CustomerMap, max_pairs: int | None) -> list[CustomerMap]:
    """``m`` as consecutive maps of at most ``max_pairs`` pairs each (``None``: no limit)."""
    if max_pairs is not None and max_pairs < 1:
        raise ValueError(f"max_pairs must be at least 1, not {max_pairs}")
    if max_pairs is None or len(m.pairs) <= max_pairs:
        return [m]
    return [
        CustomerMap(m.customer_id, m.pairs[k : k + max_pairs])
        for k in range(0, len(m.pairs), max_pairs)
    ]


def _resolve(
    rows: Rows,
    customers: dict[str, dict[str, int]],
    dups: dict[tuple[str, str], list[int]],
    on_conflict: OnConflict,
) -> Grouped:
    values = rows.values
    dup_cids = {cid for cid, _ in dups}
    maps: list[CustomerMap] = []
    problems: list[Problem] = []
    superseded: dict[int, str] = {}

    for cid, m in customers.items():
        if cid not in dup_cids:
            maps.append(CustomerMap(cid, tuple([Pair(a, values[i], (i,)) for a, i in m.items()])))
            continue
        pairs: list[Pair] = []
        for a, i in m.items():
            idx = dups.get((cid, a))
            if idx is None:
                pairs.append(Pair(a, values[i], (i,)))
                continue
            first_value = values[idx[0]]
            if all(values[j] == first_value for j in idx):
                pairs.append(Pair(a, first_value, tuple(idx)))
            elif on_conflict == "last":
                winner = idx[-1]
                final = values[winner]
                pairs.append(Pair(a, final, tuple(j for j in idx if values[j] == final)))
                for j in idx:
                    if values[j] != final:
                        superseded[j] = (
                            f"superseded by {_ref(rows, winner, j)} (--on-conflict last)"
                        )
            else:
                problems.extend(_conflict_problems(rows, cid, a, idx))
        if pairs:
            maps.append(CustomerMap(cid, tuple(pairs)))

    problems.sort(key=lambda p: p.index)
    return Grouped(tuple(maps), tuple(problems), superseded)


def _conflict_problems(rows: Rows, cid: str, attribute: str, idx: list[int]) -> list[Problem]:
    out: list[Problem] = []
    for j in idx:
        table, k = rows.locate(j)
        refs = [_ref(rows, other, j, bare=True) for other in idx[:_MAX_REFS]]
        if len(idx) > _MAX_REFS:
            refs.append(f"{len(idx) - _MAX_REFS} more")
        listed = refs[0] if len(refs) == 1 else f"{', '.join(refs[:-1])} and {refs[-1]}"
        out.append(
            Problem(
                index=j,
                source=table.source,
                sheet=table.sheet,
                row=table.rows[k],
                column=_value_column(table, k),
                message=f"customer {cid!r} attribute {attribute!r} has different values "
                f"in rows {listed}",
                kind="conflict",
            )
        )
    return out


def _ref(rows: Rows, target: int, home: int, *, bare: bool = False) -> str:
    """Row ``target`` as the user of row ``home`` sees it: "row 9", "row 9 of b.csv", ...

    ``bare`` drops the word "row" (for lists: "rows 4 and 9 (b.csv)").
    """
    t, k = rows.locate(target)
    h, _ = rows.locate(home)
    number = str(t.rows[k])
    where = ""
    if t.source != h.source:
        where = t.source + (f", sheet {t.sheet!r}" if t.sheet else "")
    elif t.sheet != h.sheet:
        where = f"sheet {t.sheet!r}"
    if bare:
        return f"{number} ({where})" if where else number
    return f"row {number} of {where}" if where else f"row {number}"


def _value_column(table: Table, k: int) -> str:
    if table.headers[2] or not table.value_columns:
        return table.headers[2]
    return table.value_columns[k] if k < len(table.value_columns) else ""


def _valid_bytes(invalid: AbstractSet[int] | bytes | bytearray, n: int) -> bytes | None:
    """A 1-per-valid-row selector for itertools.compress, or None when every row is valid."""
    if isinstance(invalid, bytes | bytearray):
        if len(invalid) != n:
            raise ValueError(f"invalid mask has {len(invalid)} entries for {n} rows")
        if not any(invalid):
            return None
        return bytes(invalid).translate(_FLIP)
    if not invalid:
        return None
    mask = bytearray(n)
    for i in invalid:
        mask[i] = 1
    return bytes(mask).translate(_FLIP)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building millions of small objects.

    Every few hundred allocations of container objects trigger a collection that walks
    the young objects, and full collections walk everything already built: about half
    the cost of creating a million ``Pair`` objects. Nothing built here forms cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
