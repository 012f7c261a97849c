"""Validation: every problem of every row, located as the user sees it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bulk_sync.models import Problem, Rows, Table
from bulk_sync.validation import Limits, invalid_mask, validate

HEADERS = ("Customer ID", "Attribute", "Value")


def table(
    rows: Sequence[tuple[str, str, str]],
    *,
    source: str = "in.csv",
    sheet: str = "",
    headers: tuple[str, str, str] = HEADERS,
    value_columns: Sequence[str] = (),
    defects: tuple[tuple[int, str, str], ...] = (),
) -> Table:
    return Table(
        source=source,
        sheet=sheet,
        rows=list(range(2, len(rows) + 2)),
        customer_ids=[r[0] for r in rows],
        attributes=[r[1] for r in rows],
        values=[r[2] for r in rows],
        headers=headers,
        value_columns=list(value_columns),
        defects=defects,
    )


NO_LIMITS = Limits()


def check(*tables: Table, limits: Limits = NO_LIMITS) -> tuple[Problem, ...]:
    return validate(Rows.of(tables), limits)


def test_clean_rows_have_no_problems() -> None:
    assert check(table([("C1", "segment", "gold"), ("C2", "tier", "00123")])) == ()


def test_empty_table_has_no_problems() -> None:
    assert check(table([])) == ()


def test_each_empty_field_is_a_problem_located_at_its_row_and_column() -> None:
    problems = check(table([("C1", "a", "v"), ("", "", "")]))
    assert [p.kind for p in problems] == ["empty_customer_id", "empty_attribute", "empty_value"]
    assert [p.located() for p in problems] == [
        "in.csv, row 3, column 'Customer ID': customer id is empty",
        "in.csv, row 3, column 'Attribute': attribute is empty",
        "in.csv, row 3, column 'Value': value is empty",
    ]
    assert {p.index for p in problems} == {1}


def test_problem_location_names_the_sheet_of_a_workbook() -> None:
    problems = check(
        table([("C1", "a", "")], source="book.xlsx", sheet="Clientes", headers=("id", "k", "Valor"))
    )
    assert [p.located() for p in problems] == [
        "book.xlsx, sheet 'Clientes', row 2, column 'Valor': value is empty"
    ]
    assert (problems[0].source, problems[0].sheet, problems[0].row) == ("book.xlsx", "Clientes", 2)


def test_nul_in_value_is_a_control_character_named_by_code_point() -> None:
    (p,) = check(table([("C1", "note", "abc\x00def")]))
    assert p.kind == "control_character"
    assert p.column == "Value"
    assert "U+0000" in p.message


def test_tab_and_line_breaks_are_allowed_in_values_only() -> None:
    ok = check(table([("C1", "address", "Rua A\r\nLisboa\tPT")]))
    assert ok == ()
    problems = check(table([("C\t1", "a", "v"), ("C2", "multi\nline", "v")]))
    assert [(p.index, p.column, p.kind) for p in problems] == [
        (0, "Customer ID", "control_character"),
        (1, "Attribute", "control_character"),
    ]
    assert "U+0009" in problems[0].message
    assert "U+000A" in problems[1].message


def test_del_and_c1_controls_are_rejected_and_all_distinct_code_points_named() -> None:
    (p,) = check(table([("C1", "a", "x\x7fy\x85z\x7f")]))
    assert p.kind == "control_character"
    assert "U+007F" in p.message
    assert "U+0085" in p.message


@pytest.mark.parametrize("text", ["a\u00a0b", "zero\u200bwidth", "emoji 😀", "ação", "\u2028"])
def test_unprintable_but_not_control_characters_are_accepted(text: str) -> None:
    assert check(table([(text, text, text)])) == ()


@pytest.mark.parametrize("cid", [".", ".."])
def test_dot_customer_ids_cannot_be_addressed(cid: str) -> None:
    (p,) = check(table([(cid, "a", "v")]))
    assert p.kind == "unaddressable_id"
    assert p.column == "Customer ID"
    assert repr(cid) in p.message


def test_ids_merely_containing_dots_are_fine() -> None:
    assert check(table([("...", "a", "v"), ("a.b", "a", "v"), ("./x", "a", "v")])) == ()


def test_too_long_fields_name_the_limit() -> None:
    limits = Limits(max_customer_id_length=5, max_attribute_length=3, max_value_length=4)
    problems = check(table([("C1234", "abc", "vvvv"), ("C12345", "abcd", "vvvvv")]), limits=limits)
    assert [(p.index, p.column, p.kind) for p in problems] == [
        (1, "Customer ID", "too_long"),
        (1, "Attribute", "too_long"),
        (1, "Value", "too_long"),
    ]
    assert "limit 5" in problems[0].message
    assert "6 characters" in problems[0].message


def test_no_length_limit_by_default() -> None:
    assert check(table([("C" * 10_000, "a" * 10_000, "v" * 100_000)])) == ()


def test_a_row_with_several_problems_reports_them_all_in_column_order() -> None:
    problems = check(table([("", "a\x01", "")]))
    assert [p.kind for p in problems] == ["empty_customer_id", "control_character", "empty_value"]


def test_problems_are_sorted_by_row_index_across_tables() -> None:
    first = table([("C1", "a", ""), ("", "a", "v")], source="a.csv")
    second = table([("C3", "", "v"), ("C4", "a", "ok")], source="b.csv")
    problems = check(first, second)
    assert [(p.index, p.source, p.row, p.kind) for p in problems] == [
        (0, "a.csv", 2, "empty_value"),
        (1, "a.csv", 3, "empty_customer_id"),
        (2, "b.csv", 2, "empty_attribute"),
    ]


def test_wide_table_problems_name_the_column_the_value_came_from() -> None:
    wide = table(
        [("C1", "segment", "gold"), ("C1", "tier", ""), ("C2", "segment", "x\x00")],
        source="wide.csv",
        headers=("Customer", "", ""),
        value_columns=["segment", "tier", "segment"],
    )
    problems = check(wide)
    assert [p.located() for p in problems] == [
        "wide.csv, row 3, column 'tier': value is empty",
        "wide.csv, row 4, column 'segment': value contains the control character U+0000",
    ]


def test_loader_defects_are_malformed_problems_in_row_order() -> None:
    t = table(
        [("C1", "a", "v"), ("C2", "b", "")],
        defects=((1, "", "4 fields where the header has 3"),),
    )
    problems = check(table([("C0", "a", "v")], source="first.csv"), t)
    assert [(p.index, p.kind, p.row) for p in problems] == [
        (2, "malformed", 3),
        (2, "empty_value", 3),
    ]
    assert problems[0].located() == "in.csv, row 3: 4 fields where the header has 3"


def test_invalid_mask_marks_rows_with_problems() -> None:
    problems = check(table([("C1", "a", "v"), ("", "", ""), ("C3", "a", "")]))
    assert invalid_mask(problems, 3) == bytearray([0, 1, 1])


def test_validates_a_large_clean_input_quickly() -> None:
    n = 200_000
    cids = [f"C{i // 10}" for i in range(n)]
    t = Table("big.csv", "", range(2, n + 2), cids, ["a"] * n, ["v"] * n)
    assert validate(Rows.of([t]), Limits(10, 10, 10)) == ()
