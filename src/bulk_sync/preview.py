"""What a run would do, for a person to review before anything is sent.

The dry run of the web page (and of any front end that shows problems one by one):

    >>> from bulk_sync.loading import load
    >>> from bulk_sync.preview import preview
    >>> p = preview(load(["customers.csv"]), Settings())  # doctest: +SKIP
    >>> p.counts["invalid"], p.customers, p.requests  # doctest: +SKIP
    >>> for line in p.problems(offset=0, limit=50): ...  # doctest: +SKIP

It calls the same :func:`bulk_sync.runner.plan` as ``sync --dry-run``, so the counts,
the messages and which rows are invalid are exactly those of the dry-run report. What it
adds is the shape a page needs: every problem with the cells of its row, the problems
of a large file one page at a time (built when asked for, never all at once), and the
conflicts side by side (one entry per customer and attribute, with each row's value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulk_sync.config import Settings
from bulk_sync.grouping import split
from bulk_sync.models import Problem, Rows, Table
from bulk_sync.runner import Shard, plan

__all__ = ["Conflict", "ConflictSide", "Preview", "ProblemLine", "preview"]

CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class ProblemLine:
    """One problem of one row, located as the spreadsheet shows it, with the row's cells
    (customer id, attribute, value as read and trimmed; in a wide file the attribute is
    the column's header)."""

    source: str
    sheet: str
    row: int
    column: str  # header text of the offending column ("" when not about one column)
    message: str
    kind: str
    customer_id: str
    attribute: str
    value: str

    def located(self) -> str:
        """The message as the CLI prints it: ``file, sheet 'S', row 7, column 'value': ...``."""
        return Problem(
            0, self.source, self.sheet, self.row, self.column, self.message, ""
        ).located()


@dataclass(frozen=True, slots=True)
class ConflictSide:
    """One row of a conflict: where it is and the value it holds."""

    source: str
    sheet: str
    row: int
    value: str


@dataclass(frozen=True, slots=True)
class Conflict:
    """The same customer and attribute with different values in several rows (both
    ``invalid`` under ``on_conflict: error``; the attribute is not sent)."""

    customer_id: str
    attribute: str
    sides: tuple[ConflictSide, ...]


@dataclass(frozen=True)
class Preview:
    """The dry run of a set of tables.

    ``counts``: rows per status, as the dry-run report would count them (``valid``,
    ``invalid``, ``skipped``); ``customers`` and ``requests``: what a sync would send
    (one request per customer, or per chunk of ``max_attributes_per_request``; retries
    come on top); ``pairs``: attribute values sent; ``kinds``: problems per kind, the most
    frequent first; ``problem_count``: problems in all (a row can have several).
    """

    rows: int
    counts: Mapping[str, int]
    customers: int
    requests: int
    pairs: int
    problem_count: int
    kinds: tuple[tuple[str, int], ...]
    conflicts: tuple[Conflict, ...]
    _rows: Rows
    _problems: tuple[Problem, ...]

    def problems(self, offset: int = 0, limit: int = 50) -> tuple[ProblemLine, ...]:
        """Problems ``offset`` to ``offset + limit`` (in input order), with their cells."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must not be negative")
        rows = self._rows
        return tuple(
            ProblemLine(
                p.source,
                p.sheet,
                p.row,
                p.column,
                p.message,
                p.kind,
                rows.customer_ids[p.index],
                rows.attributes[p.index],
                rows.values[p.index],
            )
            for p in self._problems[offset : offset + limit]
        )


def preview(
    tables: Sequence[Table],
    settings: Settings,
    *,
    resume: Path | None = None,
    shard: Shard | None = None,
    state: Any = None,
    full: bool = False,
) -> Preview:
    """The dry run of ``tables`` under ``settings`` (with ``resume``/``state`` skips, as
    ``sync --dry-run`` would make them). Sends nothing and writes nothing."""
    the_plan = plan(tables, settings, resume=resume, shard=shard, state=state, full=full)
    counts = the_plan.ledger.counts()
    problems = the_plan.problems
    kinds: dict[str, int] = {}
    for p in problems:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    rows = the_plan.ledger.rows
    return Preview(
        rows=sum(counts.values()),
        counts=counts,
        customers=the_plan.customers,
        requests=sum(len(split(m, settings.max_attributes_per_request)) for m in the_plan.maps),
        pairs=sum(len(m.pairs) for m in the_plan.maps),
        problem_count=len(problems),
        kinds=tuple(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
        conflicts=_conflicts(rows, problems),
        _rows=rows,
        _problems=problems,
    )


def _conflicts(rows: Rows, problems: Sequence[Problem]) -> tuple[Conflict, ...]:
    """Conflict problems grouped per (customer, attribute), in order of first row."""
    groups: dict[tuple[str, str], list[ConflictSide]] = {}
    for p in problems:
        if p.kind != CONFLICT:
            continue
        key = (rows.customer_ids[p.index], rows.attributes[p.index])
        groups.setdefault(key, []).append(
            ConflictSide(p.source, p.sheet, p.row, rows.values[p.index])
        )
    return tuple(Conflict(cid, attr, tuple(sides)) for (cid, attr), sides in groups.items())
