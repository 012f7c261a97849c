"""Valid rows to one attribute map per customer (DESIGN.md section 5).

Vectorized over the whole input (numpy and Arrow, no Python object per row):

1. customer ids and attributes are dictionary-encoded (Arrow) into integer codes;
2. customers are ranked by their first valid row, and the valid rows put in that order
   with a stable sort (a no-op check for inputs already grouped by customer, as exports
   are): each customer's rows are then contiguous and in input order;
3. a stable sort of ``customer rank x attribute`` finds the (customer, attribute) pairs
   seen more than once; only those rows are looked at one by one.

Duplicates are then resolved by policy:

- same value every time: one :class:`~bulk_sync.models.Pair` whose ``indices`` lists
  every row (they travel as one pair and share its outcome);
- different values, policy ``"error"``: every row of that (customer, attribute) becomes
  invalid (``Problem.kind == "conflict"``) and the attribute is not sent; a customer
  left with nothing to send gets no map;
- different values, policy ``"last"``: the last row's value wins; the pair's ``indices``
  are the rows holding that final value; every other row goes to ``superseded`` with a
  note naming the winning row (status ``skipped`` in the report).

Maps come in the order of each customer's first valid row; pairs in the order each
attribute was first seen. The result, :class:`Maps`, holds integer arrays (about 4 bytes
per pair) and builds :class:`~bulk_sync.models.CustomerMap` values only when asked,
a batch at a time, so that a 20-million-row input never has 20 million ``Pair`` objects.

Rows are grouped by the customer id as written. The API also knows a customer by a
second id (its gid and its external id, :mod:`bulk_sync.customers`); only a list of
which ids go together can tell that two ids are one customer. :func:`across_ids` applies
the same policy to rows naming one customer by different ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal, overload

import numpy as np

from bulk_sync.models import CustomerMap, Grouped, Pair, Problem, Rows, Table

__all__ = ["Maps", "OnConflict", "across_ids", "group", "split"]

OnConflict = Literal["error", "last"]

_MAX_REFS = 10  # rows named in one conflict message
_BATCH = 4096  # maps built at a time when iterating


class Maps(Sequence[CustomerMap]):
    """The maps to send, as arrays over :class:`~bulk_sync.models.Rows`.

    ``pair_rows``: for every pair, in map order then pair order, the row it was first
    seen in (its attribute, and its value unless ``value_rows`` says otherwise);
    ``bounds``: map ``k`` holds pairs ``bounds[k]`` to ``bounds[k + 1]``;
    ``indices``: for the few pairs made of several rows, keyed by that first row, every
    row it stands for (otherwise just the first row); ``value_rows``: for pairs whose
    value comes from another row (``--on-conflict last``), that row.
    """

    __slots__ = ("bounds", "indices", "pair_rows", "rows", "value_rows")

    def __init__(
        self,
        rows: Rows,
        pair_rows: Any,
        bounds: Any,
        indices: Mapping[int, tuple[int, ...]] | None = None,
        value_rows: Mapping[int, int] | None = None,
    ) -> None:
        self.rows = rows
        self.pair_rows: Any = pair_rows
        self.bounds: Any = bounds
        self.indices: Mapping[int, tuple[int, ...]] = indices or {}
        self.value_rows: Mapping[int, int] = value_rows or {}

    @classmethod
    def empty(cls, rows: Rows) -> Maps:
        return cls(rows, np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64))

    @property
    def pair_count(self) -> int:
        return len(self.pair_rows)

    def __len__(self) -> int:
        return len(self.bounds) - 1

    @overload
    def __getitem__(self, index: int) -> CustomerMap: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[CustomerMap, ...]: ...
    def __getitem__(self, index: int | slice) -> CustomerMap | tuple[CustomerMap, ...]:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                return tuple(self[k] for k in range(start, stop, step))
            return tuple(self.build(start, stop))
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("Maps index out of range")
        return self.build(index, index + 1)[0]

    def __iter__(self) -> Iterator[CustomerMap]:
        for start in range(0, len(self), _BATCH):
            yield from self.build(start, min(start + _BATCH, len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Maps({len(self)} customers, {self.pair_count} pairs)"

    def build(self, start: int, stop: int) -> list[CustomerMap]:
        """Maps ``start`` .. ``stop`` as values (Python strings made for these only)."""
        if start >= stop:
            return []
        bounds = self.bounds
        first, last = int(bounds[start]), int(bounds[stop])
        pair_rows = self.pair_rows[first:last]
        heads = pair_rows.tolist()
        rows = self.rows
        attributes = rows.attributes.take(pair_rows)
        if self.value_rows:
            get = self.value_rows.get
            values = rows.values.take([get(r, r) for r in heads])
        else:
            values = rows.values.take(pair_rows)
        cids = rows.customer_ids.take(pair_rows[bounds[start:stop] - first])
        indices = self.indices
        if indices:
            get_indices = indices.get
            pairs = [
                Pair(a, v, get_indices(r) or (r,))
                for a, v, r in zip(attributes, values, heads, strict=True)
            ]
        else:
            pairs = [Pair(a, v, (r,)) for a, v, r in zip(attributes, values, heads, strict=True)]
        edges = (bounds[start : stop + 1] - first).tolist()
        return [
            CustomerMap(cid, tuple(pairs[edges[k] : edges[k + 1]])) for k, cid in enumerate(cids)
        ]

    def row_indices(self) -> Any:
        """Every row the maps stand for (each pair's first row and the others it carries)."""
        extra = [j for idx in self.indices.values() for j in idx]
        heads = self.pair_rows.astype(np.int64)
        if self.value_rows or extra:
            covered = set(self.indices)
            heads = heads[[r not in covered for r in self.pair_rows.tolist()]] if covered else heads
            return np.concatenate((heads, np.asarray(extra, dtype=np.int64)))
        return heads

    def batches(self, size: int = _BATCH) -> Iterator[list[CustomerMap]]:
        for start in range(0, len(self), size):
            yield self.build(start, min(start + size, len(self)))

    def keep_pairs(self, keep: Any) -> Maps:
        """These maps with only the pairs where ``keep`` (a bool per pair) is true; maps
        left with no pair are dropped."""
        keep = np.asarray(keep, dtype=np.bool_)
        if keep.all():
            return self
        counts: Any = np.zeros(0, dtype=np.int64)
        if len(self):
            counts = np.add.reduceat(keep.astype(np.int64), self.bounds[:-1])
        sizes = np.diff(self.bounds)
        counts[sizes == 0] = 0
        counts = counts[counts > 0]
        bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        pair_rows = self.pair_rows[keep]
        kept = set(pair_rows.tolist()) if (self.indices or self.value_rows) else set()
        indices = {r: v for r, v in self.indices.items() if r in kept}
        value_rows = {r: v for r, v in self.value_rows.items() if r in kept}
        return Maps(self.rows, pair_rows, bounds, indices, value_rows)


def group(
    rows: Rows,
    invalid: AbstractSet[int] | bytes | bytearray | Any,
    on_conflict: OnConflict = "error",
) -> Grouped:
    """Group the rows not in ``invalid`` (row indices, or a 0/1 byte per row) per customer."""
    if on_conflict not in ("error", "last"):
        raise ValueError(f"on_conflict must be 'error' or 'last', not {on_conflict!r}")
    n = len(rows)
    valid = _valid_rows(invalid, n)
    if not len(valid):
        return Grouped(Maps.empty(rows))
    index_type = np.int32 if n < 2**31 else np.int64

    cid_codes, cid_count = _codes(rows.customer_ids)
    cv = cid_codes[valid]
    del cid_codes
    # Rank customers by their first valid row (assigning in reverse: the first row wins).
    first = np.full(cid_count, n, dtype=np.int64)
    first[cv[::-1]] = valid[::-1]
    used = np.flatnonzero(first < n)
    ranked = used[np.argsort(first[used], kind="stable")]
    del first, used
    rank = np.empty(cid_count, dtype=np.int32)
    rank[ranked] = np.arange(len(ranked), dtype=np.int32)
    by_rank = rank[cv]
    del rank, cv
    if len(by_rank) > 1 and not bool(np.all(by_rank[1:] >= by_rank[:-1])):
        order = np.argsort(by_rank, kind="stable")
        valid = valid[order]
        by_rank = by_rank[order]
        del order
    pair_rows = valid.astype(index_type)
    del valid

    attr_codes, attr_count = _codes(rows.attributes)
    span = max(attr_count, 1)
    key_type = np.int32 if len(ranked) * span < 2**31 else np.int64
    key = by_rank.astype(key_type) * key_type(span) + attr_codes[pair_rows].astype(key_type)
    del attr_codes, ranked
    sorted_key = np.sort(key, kind="stable")
    repeated = sorted_key[1:] == sorted_key[:-1]
    if not repeated.any():
        del sorted_key, repeated, key
        return Grouped(Maps(rows, pair_rows, _bounds(by_rank)))
    dup_keys = np.unique(sorted_key[1:][repeated])
    del sorted_key, repeated
    in_dup = np.flatnonzero(np.isin(key, dup_keys))
    return _resolve(rows, pair_rows, by_rank, key[in_dup], in_dup, on_conflict)


def _bounds(by_rank: Any) -> Any:
    """Where each customer's run starts in ``by_rank`` (sorted), and the end."""
    starts = np.flatnonzero(by_rank[1:] != by_rank[:-1]) + 1
    return np.concatenate(([0], starts, [len(by_rank)])).astype(np.int64)


def _codes(column: Any) -> tuple[Any, int]:
    """Integer codes of a text column (equal strings, equal codes) and how many there are."""
    encoded = column.arrow.dictionary_encode()
    chunks = encoded.chunks
    if not chunks:
        return np.zeros(0, dtype=np.int32), 0
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    return codes, len(chunks[-1].dictionary)


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
    pair_rows: Any,
    by_rank: Any,
    dup_keys: Any,
    dup_positions: Any,
    on_conflict: OnConflict,
) -> Grouped:
    """Settle the (customer, attribute) pairs seen in several rows.

    ``dup_positions`` are positions in ``pair_rows`` (customer order, input order within
    a customer) of every row of such a pair, ``dup_keys`` their pair keys.
    """
    positions = dup_positions.tolist()
    rows_at = pair_rows[dup_positions].tolist()
    values = rows.values.take(pair_rows[dup_positions])
    value_of = dict(zip(rows_at, values, strict=True))
    groups: dict[int, list[tuple[int, int]]] = {}  # key -> [(position, row)] in input order
    for key, position, row in zip(dup_keys.tolist(), positions, rows_at, strict=True):
        groups.setdefault(key, []).append((position, row))

    keep = np.ones(len(pair_rows), dtype=np.bool_)
    indices: dict[int, tuple[int, ...]] = {}
    value_rows: dict[int, int] = {}
    problems: list[Problem] = []
    superseded: dict[int, str] = {}
    for members in groups.values():
        idx = [row for _, row in members]
        head = idx[0]
        for position, _ in members[1:]:
            keep[position] = False  # the pair stays where its first row was
        first_value = value_of[head]
        if all(value_of[j] == first_value for j in idx):
            indices[head] = tuple(idx)
        elif on_conflict == "last":
            winner = idx[-1]
            final = value_of[winner]
            indices[head] = tuple(j for j in idx if value_of[j] == final)
            if winner != head:
                value_rows[head] = winner
            for j in idx:
                if value_of[j] != final:
                    superseded[j] = f"superseded by {_ref(rows, winner, j)} (--on-conflict last)"
        else:
            keep[members[0][0]] = False
            cid = rows.customer_ids[head]
            attribute = rows.attributes[head]
            problems.extend(_conflict_problems(rows, f"customer {cid!r}", attribute, idx))

    kept_rows = pair_rows[keep]
    bounds = _bounds(by_rank[keep]) if len(kept_rows) else np.zeros(1, dtype=np.int64)
    problems.sort(key=lambda p: p.index)
    return Grouped(Maps(rows, kept_rows, bounds, indices, value_rows), tuple(problems), superseded)


def across_ids(
    rows: Rows,
    grouped: Grouped,
    gid_of: Callable[[str], str | None],
    on_conflict: OnConflict = "error",
) -> Grouped:
    """``grouped`` with the conflict policy applied across the ids of one customer.

    ``gid_of`` tells which customer an id names (``None``: not known). Two maps whose ids
    name the same customer (``100001`` and its gid) and hold the same attribute with
    different values are a conflict like any other: ``error`` makes every such row
    invalid; ``last`` keeps the pairs holding the last row's value and marks the others
    superseded. The same value under both ids is no conflict: each id's request carries
    it (the API merges, so sending it twice is harmless). Rows keep the id they were
    written with: that is the id they are sent to and reported under.
    """
    maps = grouped.maps
    members: dict[str, list[int]] = {}
    for k, m in enumerate(maps):
        gid = gid_of(m.customer_id)
        if gid is not None:
            members.setdefault(gid, []).append(k)
    shared = {gid: ks for gid, ks in members.items() if len(ks) > 1}
    if not shared:
        return grouped
    values = rows.values
    keep = np.ones(maps.pair_count, dtype=np.bool_)  # pairs to send
    problems = list(grouped.invalid)
    superseded = dict(grouped.superseded)
    for gid, ks in shared.items():
        found: dict[str, list[tuple[int, int, Pair]]] = {}  # attribute -> (map, pair, Pair)
        for k in ks:
            for position, p in enumerate(maps[k].pairs, int(maps.bounds[k])):
                found.setdefault(p.attribute, []).append((k, position, p))
        for attribute, holders in found.items():
            if len(holders) < 2 or len({p.value for _, _, p in holders}) == 1:
                continue
            idx = sorted(i for _, _, p in holders for i in p.indices)
            names = ", ".join(repr(maps[k].customer_id) for k, _, _ in holders)
            if on_conflict == "last":
                winner = idx[-1]
                for _, position, p in holders:
                    if p.value != values[winner]:
                        keep[position] = False
                        for i in p.indices:
                            superseded[i] = (
                                f"superseded by {_ref(rows, winner, i)}, the same customer "
                                f"under another id (--customer-map; --on-conflict last)"
                            )
            else:
                for _, position, _ in holders:
                    keep[position] = False
                who = f"customer {gid!r} (written {names}: one customer per the customer map)"
                problems.extend(_conflict_problems(rows, who, attribute, idx))
    problems.sort(key=lambda p: p.index)
    return Grouped(maps.keep_pairs(keep), tuple(problems), superseded)


def _conflict_problems(rows: Rows, who: str, attribute: str, idx: list[int]) -> list[Problem]:
    """``who`` names the customer: ``customer 'C1'``."""
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
                message=f"{who} attribute {attribute!r} has different values in rows {listed}",
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


def _valid_rows(invalid: AbstractSet[int] | bytes | bytearray | Any, n: int) -> Any:
    """Positions of the valid rows (int64), from a set of invalid indices or a 0/1 mask."""
    if isinstance(invalid, bytes | bytearray | np.ndarray):
        if len(invalid) != n:
            raise ValueError(f"invalid mask has {len(invalid)} entries for {n} rows")
        mask = (
            np.frombuffer(invalid, dtype=np.uint8)
            if not isinstance(invalid, np.ndarray)
            else invalid
        )
        return np.flatnonzero(mask == 0)
    valid = np.ones(n, dtype=np.bool_)
    if invalid:
        valid[np.fromiter(invalid, dtype=np.int64, count=len(invalid))] = False
    return np.flatnonzero(valid)
