"""Grouping: one map per customer, duplicates and conflicts resolved by policy."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_sync.grouping import group, split
from bulk_sync.models import CustomerMap, Pair, Rows, Table
from bulk_sync.validation import invalid_mask, validate


def table(
    rows: Sequence[tuple[str, str, str]], *, source: str = "in.csv", sheet: str = ""
) -> Table:
    return Table(
        source=source,
        sheet=sheet,
        rows=list(range(2, len(rows) + 2)),
        customer_ids=[r[0] for r in rows],
        attributes=[r[1] for r in rows],
        values=[r[2] for r in rows],
    )


def rows_of(*tables: Table) -> Rows:
    return Rows.of(tables)


def shape(maps: Sequence[CustomerMap]) -> list[tuple[str, list[tuple[str, str, tuple[int, ...]]]]]:
    return [(m.customer_id, [(p.attribute, p.value, p.indices) for p in m.pairs]) for m in maps]


def test_one_map_per_customer_in_order_of_first_row_with_pairs_in_first_seen_order() -> None:
    rows = rows_of(
        table([("C2", "tier", "1"), ("C1", "segment", "gold"), ("C2", "city", "Porto")]),
        table([("C1", "city", "Lisboa")], source="more.csv"),
    )
    grouped = group(rows, set(), "error")
    assert shape(grouped.maps) == [
        ("C2", [("tier", "1", (0,)), ("city", "Porto", (2,))]),
        ("C1", [("segment", "gold", (1,)), ("city", "Lisboa", (3,))]),
    ]
    assert grouped.invalid == ()
    assert grouped.superseded == {}
    assert grouped.maps[0].as_dict() == {"tier": "1", "city": "Porto"}


def test_invalid_rows_are_left_out_given_as_a_set_or_a_mask() -> None:
    rows = rows_of(table([("C1", "a", "1"), ("C2", "a", "2"), ("C1", "b", "3")]))
    by_set = group(rows, {0}, "error")
    by_mask = group(rows, bytearray([1, 0, 0]), "error")
    assert (
        shape(by_set.maps)
        == shape(by_mask.maps)
        == [
            ("C2", [("a", "2", (1,))]),
            ("C1", [("b", "3", (2,))]),
        ]
    )


def test_customer_with_every_row_invalid_gets_no_map() -> None:
    rows = rows_of(table([("C1", "a", "1"), ("C2", "a", "2")]))
    assert shape(group(rows, {0}, "error").maps) == [("C2", [("a", "2", (1,))])]


def test_identical_duplicates_travel_once_with_every_row() -> None:
    rows = rows_of(
        table([("C1", "segment", "gold"), ("C1", "tier", "2"), ("C1", "segment", "gold")]),
        table([("C1", "segment", "gold")], source="b.csv"),
    )
    grouped = group(rows, set(), "error")
    assert shape(grouped.maps) == [
        ("C1", [("segment", "gold", (0, 2, 3)), ("tier", "2", (1,))]),
    ]
    assert grouped.maps[0].indices == (0, 2, 3, 1)
    assert grouped.invalid == ()


def test_conflict_under_error_policy_makes_every_row_invalid_and_drops_the_attribute() -> None:
    rows = rows_of(
        table(
            [
                ("C1", "tier", "1"),
                ("C1", "segment", "gold"),
                ("C2", "segment", "x"),
                ("C1", "segment", "silver"),
            ]
        )
    )
    grouped = group(rows, set(), "error")
    assert shape(grouped.maps) == [
        ("C1", [("tier", "1", (0,))]),
        ("C2", [("segment", "x", (2,))]),
    ]
    assert [(p.index, p.kind, p.row, p.column) for p in grouped.invalid] == [
        (1, "conflict", 3, "value"),
        (3, "conflict", 5, "value"),
    ]
    assert grouped.invalid[0].message == (
        "customer 'C1' attribute 'segment' has different values in rows 3 and 5"
    )
    assert grouped.invalid[0].located().startswith("in.csv, row 3, column 'value': ")
    assert grouped.superseded == {}


def test_customer_whose_every_pair_conflicts_gets_no_map() -> None:
    rows = rows_of(table([("C1", "a", "1"), ("C2", "a", "x"), ("C1", "a", "2")]))
    grouped = group(rows, set(), "error")
    assert [m.customer_id for m in grouped.maps] == ["C2"]
    assert {p.index for p in grouped.invalid} == {0, 2}


def test_conflict_with_the_same_value_twice_lists_every_row() -> None:
    rows = rows_of(table([("C1", "a", "1"), ("C1", "a", "1"), ("C1", "a", "2")]))
    grouped = group(rows, set(), "error")
    assert grouped.maps == ()
    assert [p.index for p in grouped.invalid] == [0, 1, 2]
    assert grouped.invalid[0].message.endswith("in rows 2, 3 and 4")


def test_invalid_rows_take_no_part_in_conflicts() -> None:
    rows = rows_of(table([("C1", "a", "1"), ("C1", "a", "2")]))
    grouped = group(rows, {1}, "error")
    assert shape(grouped.maps) == [("C1", [("a", "1", (0,))])]
    assert grouped.invalid == ()


def test_last_policy_keeps_the_last_value_and_supersedes_the_other_rows() -> None:
    rows = rows_of(
        table(
            [
                ("C1", "segment", "gold"),
                ("C1", "tier", "1"),
                ("C1", "segment", "silver"),
                ("C1", "segment", "bronze"),
                ("C1", "segment", "silver"),
            ]
        )
    )
    grouped = group(rows, set(), "last")
    assert shape(grouped.maps) == [
        ("C1", [("segment", "silver", (2, 4)), ("tier", "1", (1,))]),
    ]
    assert grouped.superseded == {
        0: "superseded by row 6 (--on-conflict last)",
        3: "superseded by row 6 (--on-conflict last)",
    }
    assert grouped.invalid == ()


def test_conflicts_across_files_name_the_other_file() -> None:
    rows = rows_of(
        table([("C1", "segment", "gold")], source="a.csv"),
        table([("C9", "x", "y"), ("C1", "segment", "silver")], source="b.xlsx", sheet="S2"),
    )
    error = group(rows, set(), "error")
    assert [p.message for p in error.invalid] == [
        "customer 'C1' attribute 'segment' has different values in rows 2 and 3 "
        "(b.xlsx, sheet 'S2')",
        "customer 'C1' attribute 'segment' has different values in rows 2 (a.csv) and 3",
    ]
    assert [p.located().split(":")[0] for p in error.invalid] == [
        "a.csv, row 2, column 'value'",
        "b.xlsx, sheet 'S2', row 3, column 'value'",
    ]
    last = group(rows, set(), "last")
    assert last.superseded == {0: "superseded by row 3 of b.xlsx, sheet 'S2' (--on-conflict last)"}


def test_superseded_note_names_the_sheet_when_the_winner_is_on_another_sheet() -> None:
    rows = rows_of(
        table([("C1", "a", "1")], source="book.xlsx", sheet="Jan"),
        table([("C1", "a", "2")], source="book.xlsx", sheet="Feb"),
    )
    assert group(rows, set(), "last").superseded == {
        0: "superseded by row 2 of sheet 'Feb' (--on-conflict last)"
    }


def test_long_conflicts_name_a_bounded_number_of_rows() -> None:
    rows = rows_of(table([("C1", "a", str(i)) for i in range(50)]))
    grouped = group(rows, set(), "error")
    assert len(grouped.invalid) == 50
    assert grouped.invalid[0].message.endswith("rows 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 40 more")


def test_unknown_policy_and_wrong_mask_length_are_rejected() -> None:
    rows = rows_of(table([("C1", "a", "1")]))
    with pytest.raises(ValueError, match="on_conflict"):
        group(rows, set(), "first")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask"):
        group(rows, bytearray(2), "error")


def test_groups_many_rows() -> None:
    n = 100_000
    t = Table(
        "big.csv",
        "",
        range(2, n + 2),
        [f"C{i // 10}" for i in range(n)],
        [f"a{i % 10}" for i in range(n)],
        [f"v{i}" for i in range(n)],
    )
    grouped = group(Rows.of([t]), bytearray(n), "error")
    assert len(grouped.maps) == n // 10
    assert grouped.maps[-1].pairs[-1] == Pair("a9", f"v{n - 1}", (n - 1,))


def _map(n: int) -> CustomerMap:
    return CustomerMap("C1", tuple(Pair(f"a{i}", str(i), (i,)) for i in range(n)))


def test_split_keeps_a_small_map_whole() -> None:
    m = _map(3)
    assert split(m, None) == [m]
    assert split(m, 3) == [m]


def test_split_chunks_a_large_map_in_order() -> None:
    chunks = split(_map(5), 2)
    assert [len(c.pairs) for c in chunks] == [2, 2, 1]
    assert {c.customer_id for c in chunks} == {"C1"}
    assert [p for c in chunks for p in c.pairs] == list(_map(5).pairs)


def test_split_rejects_a_non_positive_size() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        split(_map(2), 0)


_small_text = st.sampled_from(["", "C1", "C2", "a", "b", "x", "y", "\x00"])


@settings(max_examples=300, deadline=None)
@given(
    tables=st.lists(
        st.lists(st.tuples(_small_text, _small_text, _small_text), max_size=12),
        min_size=1,
        max_size=3,
    ),
    policy=st.sampled_from(["error", "last"]),
)
def test_every_row_ends_in_exactly_one_place(
    tables: list[list[tuple[str, str, str]]], policy: str
) -> None:
    rows = Rows.of([table(t, source=f"f{k}.csv") for k, t in enumerate(tables)])
    problems = validate(rows)
    invalid = {p.index for p in problems}
    grouped = group(rows, invalid_mask(problems, len(rows)), policy)  # type: ignore[arg-type]
    conflicted = {p.index for p in grouped.invalid}
    assert not conflicted & invalid
    places: list[int] = []
    places.extend(i for m in grouped.maps for p in m.pairs for i in p.indices)
    places.extend(invalid | conflicted)
    places.extend(grouped.superseded)
    assert sorted(places) == list(range(len(rows)))
    for m in grouped.maps:
        assert m.pairs
        assert len({p.attribute for p in m.pairs}) == len(m.pairs)
        for p in m.pairs:
            assert all(rows.values[i] == p.value for i in p.indices)
            assert all(rows.customer_ids[i] == m.customer_id for i in p.indices)
            assert all(rows.attributes[i] == p.attribute for i in p.indices)
    if policy == "error":
        assert grouped.superseded == {}
    else:
        assert grouped.invalid == ()
