"""The CSV report written a column at a time is byte for byte the one the csv module
writes line by line, whatever the texts (issue 14: the report stays identical)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_sync.ledger import Ledger
from bulk_sync.models import Rows, Status, Table
from bulk_sync.report import write_report

_text = st.one_of(
    st.sampled_from(
        ["", "plain", "a,b", 'say "hi"', "l1\nl2", "cr\rhere", "=SUM(A1)", "@x", "+351 9",
         "-5", "-1+2", "'quoted", "''=x", "\ttab", "\nlead", "São Paulo 🌞", "_x000D_", " "]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
)  # fmt: skip
_status = st.sampled_from(list(Status))
# Error texts may quote a file name that is not UTF-8 (a lone surrogate in Python).
_error = st.one_of(_text, st.just("cannot read clientes-\udce9t\udce9.csv, row 3"))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(_text, _text, _text, _status, st.sampled_from([0, 200, 404, 422]), _error,
                  st.integers(0, 9)),
        max_size=30,
    ),
    source=st.sampled_from(["in.csv", "=evil.csv", "a,b.xlsx", "clientes-\udce9t\udce9.csv"]),
    sheet=st.sampled_from(["", "Jan", '"q"', "-x"]),
)  # fmt: skip
def test_columns_and_lines_give_the_same_bytes(
    tmp_path: Path,
    rows: list[tuple[str, str, str, Status, int, str, int]],
    source: str,
    sheet: str,
) -> None:
    half = len(rows) // 2
    tables = [
        Table(source, sheet, range(2, half + 2), *([r[k] for r in rows[:half]] for k in range(3))),
        Table("b.csv", "", [5 + 3 * k for k in range(len(rows) - half)],
              *([r[k] for r in rows[half:]] for k in range(3))),
    ]  # fmt: skip
    ledger = Ledger(Rows.of(tables))
    for i, (_, _, _, status, http, error, attempts) in enumerate(rows):
        ledger.set(i, status, error, http or None, attempts)
    by_columns = tmp_path / "columns.csv"
    by_lines = tmp_path / "lines.csv"
    write_report(by_columns, ledger.lines())
    write_report(by_lines, list(ledger.lines()))  # a plain list: the line-by-line writer
    assert by_columns.read_bytes() == by_lines.read_bytes()
