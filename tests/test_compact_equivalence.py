"""The vectorized validation and grouping (issue 14) against the Python loops they
replaced (kept in ``reference_*.py`` as oracles): same problems, in the same order, with
the same messages; same maps, pairs, row indices, conflicts and notes."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

import reference_grouping
import reference_validation
from bulk_sync.grouping import group
from bulk_sync.models import CustomerMap, Rows, Table
from bulk_sync.validation import Limits, invalid_mask, validate

_text = st.sampled_from(
    ["", "C1", "C2", "C3", "a", "b", "x", "y", ".", "..", "é", "\x00", "a\x85b", "\xa0",
     "tab\there", "line\nbreak", "\x7f", "ºª°", "a much longer value than the limit"]
)  # fmt: skip


def _table(rows: Sequence[tuple[str, str, str]], k: int, gaps: bool) -> Table:
    numbers = [2 + 2 * j if gaps else 2 + j for j in range(len(rows))]
    return Table(
        source=f"f{k % 2}.csv",
        sheet=f"S{k}" if k > 1 else "",
        rows=numbers if gaps else range(2, len(rows) + 2),
        customer_ids=[r[0] for r in rows],
        attributes=[r[1] for r in rows],
        values=[r[2] for r in rows],
        headers=("Customer", "Attr", f"Value {k}"),
    )


def _shape(maps: Sequence[CustomerMap]) -> list[tuple[str, list[tuple[str, str, tuple[int, ...]]]]]:
    return [(m.customer_id, [(p.attribute, p.value, p.indices) for p in m.pairs]) for m in maps]


tables_strategy = st.lists(
    st.lists(st.tuples(_text, _text, _text), max_size=15), min_size=1, max_size=4
)


@settings(max_examples=400, deadline=None)
@given(
    tables=tables_strategy,
    gaps=st.booleans(),
    limit=st.sampled_from([None, 1, 5]),
)
def test_validation_finds_what_the_python_loops_found(
    tables: list[list[tuple[str, str, str]]], gaps: bool, limit: int | None
) -> None:
    rows = Rows.of([_table(t, k, gaps) for k, t in enumerate(tables)])
    limits = Limits(limit, limit, limit)
    old_limits = reference_validation.Limits(limit, limit, limit)
    assert validate(rows, limits) == reference_validation.validate(rows, old_limits)


@settings(max_examples=400, deadline=None)
@given(tables=tables_strategy, policy=st.sampled_from(["error", "last"]), gaps=st.booleans())
def test_grouping_gives_what_the_dict_pass_gave(
    tables: list[list[tuple[str, str, str]]], policy: str, gaps: bool
) -> None:
    rows = Rows.of([_table(t, k, gaps) for k, t in enumerate(tables)])
    mask = invalid_mask(validate(rows), len(rows))
    new = group(rows, mask, policy)  # type: ignore[arg-type]
    old = reference_grouping.group(rows, mask, policy)  # type: ignore[arg-type]
    assert _shape(new.maps) == _shape(old.maps)
    assert new.invalid == old.invalid
    assert new.superseded == old.superseded


def test_grouping_of_rows_not_grouped_by_customer_keeps_first_seen_order() -> None:
    cids = [f"C{(k * 7919) % 1000}" for k in range(5000)]
    t = Table("in.csv", "", range(2, 5002), cids, [f"a{k % 13}" for k in range(5000)],
              [f"v{k % 3}" for k in range(5000)])  # fmt: skip
    rows = Rows.of([t])
    for policy in ("error", "last"):
        new = group(rows, bytearray(len(rows)), policy)  # type: ignore[arg-type]
        old = reference_grouping.group(rows, bytearray(len(rows)), policy)  # type: ignore[arg-type]
        assert _shape(new.maps) == _shape(old.maps)
        assert new.invalid == old.invalid
        assert new.superseded == old.superseded
