"""Where the needed columns are in a header (:class:`Layout`), and the :class:`Table` built
from those columns, the wide layout (one column per attribute) included. Shared by the
delimited and the workbook readers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bulk_sync.cells import normalize_header
from bulk_sync.errors import InputError
from bulk_sync.loading.options import LOGICAL_COLUMNS, LoadOptions
from bulk_sync.models import Table

_MAX_LISTED = 30  # headers named in a message


def _columns_message(
    missing: list[str],
    headers: Sequence[str],
    header_row: int,
    options: LoadOptions,
    hint: str = "",
) -> str:
    names = []
    for logical in missing:
        configured = options.columns.get(logical)
        names.append(f"{configured!r} (configured for {logical})" if configured else repr(logical))
    shown = [repr(h) for h in headers if h]
    if len(shown) > _MAX_LISTED:
        shown[_MAX_LISTED:] = [f"... ({len(shown) - _MAX_LISTED} more)"]
    found = ", ".join(shown) or "none"
    plural = "columns" if len(missing) > 1 else "column"
    return f"missing {plural} {', '.join(names)}; headers found in row {header_row}: {found}{hint}"


@dataclass(frozen=True)
class Layout:
    """Where the needed columns are in a header."""

    header: tuple[str, ...]
    header_row: int
    indices: tuple[int, ...]  # customer id (, attribute, value) positions
    attribute_columns: tuple[tuple[int, str], ...] = ()  # wide: (position, header text)

    @property
    def needed(self) -> list[int]:
        return [*self.indices, *(j for j, _ in self.attribute_columns)]


def find_columns(
    header: Sequence[str], options: LoadOptions
) -> tuple[dict[str, int], list[str], list[tuple[str, list[int]]]]:
    """(found positions, missing logical names, ambiguous logical names with positions)."""
    wanted = LOGICAL_COLUMNS[:1] if options.wide else LOGICAL_COLUMNS
    normalized = [normalize_header(h) for h in header]
    found: dict[str, int] = {}
    missing: list[str] = []
    ambiguous: list[tuple[str, list[int]]] = []
    for logical in wanted:
        target = normalize_header(options.columns.get(logical, logical))
        hits = [j for j, name in enumerate(normalized) if name == target]
        if not hits:
            missing.append(logical)
        elif len(hits) > 1:
            ambiguous.append((logical, hits))
        else:
            found[logical] = hits[0]
    return found, missing, ambiguous


def find_layout(
    header: Sequence[str],
    header_row: int,
    options: LoadOptions,
    *,
    source: str,
    sheet: str = "",
    hint: str = "",
    column_label: Callable[[int], str] = lambda j: f"field {j + 1}",
) -> Layout:
    found, missing, ambiguous = find_columns(header, options)
    if missing:
        raise InputError(
            _columns_message(missing, header, header_row, options, hint),
            source=source,
            sheet=sheet,
        )
    if ambiguous:
        logical, hits = ambiguous[0]
        where = ", ".join(f"{column_label(j)} {header[j]!r}" for j in hits)
        raise InputError(
            f"{len(hits)} columns match {logical!r} ({where}); keep one or rename the others",
            source=source,
            sheet=sheet,
            row=header_row,
        )
    if options.wide:
        cid = found["customer_id"]
        # Every other column, named or not: a value under a column without a header is
        # reported (invalid: no attribute name), never dropped without a trace.
        attrs = tuple((j, h) for j, h in enumerate(header) if j != cid)
        if not any(h for _, h in attrs):
            raise InputError(
                f"a wide file needs a column per attribute besides {header[cid]!r}, "
                "and there is none",
                source=source,
                sheet=sheet,
                row=header_row,
            )
        return Layout(tuple(header), header_row, (cid,), attrs)
    return Layout(
        tuple(header),
        header_row,
        (found["customer_id"], found["attribute"], found["value"]),
    )


def check_cell_lengths(
    columns: Sequence[Sequence[str]], rows: Sequence[int], layout: Layout, limit: int, **where: str
) -> None:
    for j, col in zip(layout.needed, columns, strict=True):
        if col and max(map(len, col)) > limit:
            k = next(k for k, v in enumerate(col) if len(v) > limit)
            raise InputError(
                f"a value has {len(col[k]):,} characters (the limit is {limit:,}); "
                'is a quote (") opened and never closed?',
                row=rows[k],
                column=layout.header[j],
                **where,
            )


def build_table(
    source: str,
    sheet: str,
    layout: Layout,
    columns: Sequence[list[str]],
    rows: Sequence[int],
    defects: Mapping[int, str],
) -> Table:
    """A table from the needed columns (trimmed text, blank rows included) of every data row.

    ``columns`` follow ``layout.needed``; ``defects`` maps a data-row position to a message.
    """
    if layout.attribute_columns:
        return _build_wide(source, sheet, layout, columns, rows, defects)
    cids, attrs, vals = columns
    n = len(rows)
    keep = [k for k, (c, a, v) in enumerate(zip(cids, attrs, vals, strict=True)) if c or a or v]
    table_defects: list[tuple[int, str, str]] = []
    if defects:
        keep = sorted(set(keep).union(defects))
    if len(keep) != n:
        cids = [cids[k] for k in keep]
        attrs = [attrs[k] for k in keep]
        vals = [vals[k] for k in keep]
        rows = [rows[k] for k in keep]
    if defects:
        position = {k: i for i, k in enumerate(keep)}
        table_defects = [(position[k], "", msg) for k, msg in sorted(defects.items())]
    c, a, v = layout.indices
    return Table(
        source=source,
        sheet=sheet,
        rows=rows,
        customer_ids=cids,
        attributes=attrs,
        values=vals,
        headers=(layout.header[c], layout.header[a], layout.header[v]),
        defects=tuple(table_defects),
    )


def _build_wide(
    source: str,
    sheet: str,
    layout: Layout,
    columns: Sequence[list[str]],
    rows: Sequence[int],
    defects: Mapping[int, str],
) -> Table:
    cid_col = columns[0]
    pairs = [
        (name, name or f"unnamed column {j + 1}", col)
        for (j, name), col in zip(layout.attribute_columns, columns[1:], strict=True)
    ]
    out_rows: list[int] = []
    cids: list[str] = []
    attrs: list[str] = []
    vals: list[str] = []
    labels: list[str] = []
    table_defects: list[tuple[int, str, str]] = []
    skips: list[tuple[int, str]] = []
    for k, cid in enumerate(cid_col):
        row = rows[k]
        start = len(cids)
        for name, label, col in pairs:
            value = col[k]
            if value:
                cids.append(cid)
                attrs.append(name)
                vals.append(value)
                labels.append(label)
                out_rows.append(row)
        if len(cids) == start and not cid and k not in defects:
            continue  # a blank row: not an input row
        if len(cids) == start:  # nothing to send from this row: keep it visible
            cids.append(cid)
            attrs.append("")
            vals.append("")
            labels.append("")
            out_rows.append(row)
            if k not in defects:
                skips.append((start, "no attribute values in this row (--wide)"))
        if k in defects:
            table_defects.append((start, "", defects[k]))
    return Table(
        source=source,
        sheet=sheet,
        rows=out_rows,
        customer_ids=cids,
        attributes=attrs,
        values=vals,
        headers=(layout.header[layout.indices[0]], "", ""),
        value_columns=labels,
        defects=tuple(table_defects),
        skips=tuple(skips),
    )


def column_letter(j: int) -> str:
    letters = ""
    j += 1
    while j:
        j, rem = divmod(j - 1, 26)
        letters = chr(65 + rem) + letters
    return f"column {letters}"
