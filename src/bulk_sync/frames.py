"""Data frames in and out, for Python callers (issue 14).

In: :func:`bulk_sync.sync` and :func:`bulk_sync.sync_async` take, besides file paths,
in-memory tables: a pandas ``DataFrame``, or any object with the Arrow PyCapsule stream
interface (``__arrow_c_stream__``: pyarrow tables and record batch readers, polars
frames, DuckDB results...). Wrap one in :class:`Frame` to name it or map its columns.

- Columns: ``customer_id``, ``attribute`` and ``value``, matched like file headers
  (case, spaces, ``-`` and ``_`` aside), or as ``Frame(columns=...)`` (else the
  settings' ``columns``) names them. Other columns are ignored. Long format only: a
  wide frame (one column per attribute) is refused; ``DataFrame.melt`` makes it long.
- Cells become text by the rules for spreadsheet cells (:mod:`bulk_sync.cells`): text
  trimmed, whole numbers without ``.0``, dates ``YYYY-MM-DD``, booleans
  ``true``/``false``; a missing value (``None``, ``NaN``, null) is empty, so its row is
  ``invalid``. Every row of a frame is an input row (a frame has no blank lines to skip).
- In the report, ``source`` is the frame's name (``Frame(name=...)``; by default
  ``frame``, or ``frame 1``, ``frame 2``... when a run is given several), ``sheet`` is
  empty, and ``row`` is the row's label in a pandas frame's integer index (so
  ``df.loc[row]`` finds it), else its position from 0 (``df.iloc[row]``,
  ``table.slice(row, 1)``).
- Text columns stay Arrow strings all the way (no Python object per row): a frame of
  tens of millions of rows costs what the same CSV costs.

Out: :func:`plan_frame` returns the validated plan as a pandas ``DataFrame``: one row
per input row, with the report's columns (``status`` ``valid``, ``invalid`` or
``skipped``, and ``error``), for a look in a notebook before sending. It needs pandas
(``pip install 'bulk-sync[pandas]'``); the rest of bulk-sync never imports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pac  # type: ignore[import-untyped]

from bulk_sync.cells import cell_to_str
from bulk_sync.columns import IntColumn, TextColumn, release_memory
from bulk_sync.errors import ConfigError, InputError
from bulk_sync.loading.layout import find_columns
from bulk_sync.loading.options import LoadOptions
from bulk_sync.models import REPORT_COLUMNS, Table
from bulk_sync.shard import owned_mask

if TYPE_CHECKING:
    from bulk_sync.config import Settings
    from bulk_sync.ledger import Ledger
    from bulk_sync.runner import Shard

__all__ = ["Frame", "frame_table", "is_frame", "ledger_frame", "plan_frame"]

_BATCH = 1 << 20  # rows converted at a time


@dataclass(frozen=True)
class Frame:
    """An in-memory table given as an input: ``data`` is a pandas ``DataFrame`` or an
    object with ``__arrow_c_stream__``; ``name`` is its ``source`` in the report and in
    messages; ``columns`` maps ``customer_id``/``attribute``/``value`` to its column
    names where they differ."""

    data: Any
    name: str | None = None
    columns: Mapping[str, str] | None = None


def is_frame(obj: object) -> bool:
    """Whether ``obj`` is an in-memory table :func:`frame_table` reads."""
    return (
        isinstance(obj, Frame)
        or _is_pandas(obj)
        or hasattr(obj, "__arrow_c_stream__")
        or isinstance(obj, pa.Table | pa.RecordBatch | pa.RecordBatchReader)
    )


def _is_pandas(obj: object) -> bool:
    return type(obj).__module__.startswith("pandas") and hasattr(obj, "iloc")


def frame_name(frame: object, position: int, count: int) -> str:
    """The ``source`` of the ``position``-th (from 1) of ``count`` frames of a run."""
    if isinstance(frame, Frame) and frame.name:
        return frame.name
    return "frame" if count == 1 else f"frame {position}"


def frame_table(frame: object, name: str, options: LoadOptions) -> Table:
    """``frame`` as a :class:`~bulk_sync.models.Table` of Arrow text columns.

    Raises :class:`~bulk_sync.errors.InputError` (naming the frame) when a column is
    missing, ambiguous, or holds values that are not text, numbers, dates or booleans.
    """
    columns = options.columns
    data = frame
    if isinstance(frame, Frame):
        data = frame.data
        if frame.columns is not None:
            columns = frame.columns
    if options.wide:
        raise ConfigError(
            f"{name}: a data frame must have customer_id, attribute and value columns "
            "(wide frames are not read; DataFrame.melt makes one long)"
        )
    mapped = dataclasses.replace(options, columns=dict(columns))
    if _is_pandas(data):
        header, parts, numbers = _pandas_parts(data, mapped, name)
    else:
        header, parts, numbers = _arrow_parts(data, mapped, name)
    kept: list[list[Any]] = [[], [], []]
    rows: list[Any] = []
    for part, part_numbers in zip(parts, numbers, strict=True):
        texts = [pac.utf8_trim_whitespace(_as_text(c, header[k], name)) for k, c in enumerate(part)]
        if options.shard is not None:
            mask = owned_mask(texts[0], options.shard)
            selector = pa.array(mask)
            texts = [pac.filter(t, selector) for t in texts]
            part_numbers = part_numbers[mask]
        for chunks, text in zip(kept, texts, strict=True):
            chunks.append(text)
        rows.append(part_numbers)
        release_memory()
    all_rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    cids, attrs, vals = (
        TextColumn(pa.chunked_array(chunks, pa.string()) if chunks else pa.array([], pa.string()))
        for chunks in kept
    )
    return Table(
        source=name,
        sheet="",
        rows=IntColumn(all_rows),
        customer_ids=cids,
        attributes=attrs,
        values=vals,
        headers=(header[0], header[1], header[2]),
    )


def _layout(names: Sequence[str], options: LoadOptions, source: str) -> list[int]:
    """Positions of the customer id, attribute and value columns among ``names``."""
    found, missing, ambiguous = find_columns(names, options)
    if missing:
        wanted = ", ".join(
            repr(options.columns.get(m, m)) + (f" (for {m})" if m in options.columns else "")
            for m in missing
        )
        shown = ", ".join(repr(n) for n in names[:30]) or "none"
        raise InputError(
            f"missing column{'s' if len(missing) > 1 else ''} {wanted}; the frame's columns: "
            f"{shown} (map yours with Frame(df, columns={{'customer_id': ...}}))",
            source=source,
        )
    if ambiguous:
        logical, hits = ambiguous[0]
        raise InputError(
            f"{len(hits)} columns match {logical!r} ({', '.join(repr(names[j]) for j in hits)}); "
            "keep one or map the right one with Frame(df, columns=...)",
            source=source,
        )
    return [found["customer_id"], found["attribute"], found["value"]]


def _pandas_parts(df: Any, options: LoadOptions, source: str) -> tuple[list[str], Any, Any]:
    """(the three column names, Arrow column triples by slice, row numbers by slice)."""
    names = [str(c) for c in df.columns]
    picked = _layout(names, options, source)
    header = [names[j] for j in picked]
    n = len(df)
    index = df.index
    if index.dtype.kind in "iu" and not index.hasnans:
        numbers = np.asarray(index, dtype=np.int64)
    else:
        numbers = np.arange(n, dtype=np.int64)
    arrays = [_from_pandas(df.iloc[:, j], header[k], source) for k, j in enumerate(picked)]
    parts = [[a.slice(s, _BATCH) for a in arrays] for s in range(0, n, _BATCH)]
    return header, parts, [numbers[s : s + _BATCH] for s in range(0, n, _BATCH)]


def _from_pandas(series: Any, column: str, source: str) -> Any:
    """One pandas column as an Arrow array (Python values converted one by one only when
    pandas' own conversion refuses a column of mixed types)."""
    try:
        return pa.Array.from_pandas(series)
    except (pa.ArrowException, TypeError, ValueError):
        pass
    except UnicodeEncodeError:
        raise InputError(
            "holds text that is not valid Unicode (a lone surrogate)", source=source, column=column
        ) from None
    texts = [_python_text(v) for v in series.tolist()]
    try:
        return pa.array(texts, pa.string())
    except (pa.ArrowException, UnicodeEncodeError):
        raise InputError(
            "holds text that is not valid Unicode (a lone surrogate)", source=source, column=column
        ) from None


def _python_text(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if type(value).__name__ in ("NaTType", "NAType"):
        return ""
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    return cell_to_str(value)


def _arrow_parts(data: Any, options: LoadOptions, source: str) -> tuple[list[str], Any, Any]:
    reader = _reader(data, source)
    names = [str(n) for n in reader.schema.names]
    picked = _layout(names, options, source)
    header = [names[j] for j in picked]
    parts: list[list[Any]] = []
    numbers: list[Any] = []
    position = 0
    for batch in reader:
        n = batch.num_rows
        if not n:
            continue
        parts.append([batch.column(j) for j in picked])
        numbers.append(np.arange(position, position + n, dtype=np.int64))
        position += n
    return header, parts, numbers


def _reader(data: Any, source: str) -> Any:
    """A RecordBatchReader over ``data`` (read once, a batch at a time)."""
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.Table):
        return data.to_reader(max_chunksize=_BATCH)
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data]).to_reader(max_chunksize=_BATCH)
    if hasattr(data, "__arrow_c_stream__"):
        try:
            return pa.RecordBatchReader.from_stream(data)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise InputError(f"cannot read the frame's Arrow stream: {exc}", source=source) from exc
    raise InputError(
        f"a {type(data).__name__} is not a table bulk-sync reads (a pandas DataFrame, or an "
        "object with __arrow_c_stream__ such as a pyarrow or polars table)",
        source=source,
    )


def _as_text(column: Any, name: str, source: str) -> Any:
    """A column of any simple Arrow type as text, by the cell rules (null: empty)."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return _as_text(column.dictionary.take(column.indices), name, source)
    if pa.types.is_string(kind):
        return pac.fill_null(column, "")
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pac.fill_null(pac.cast(column, pa.string()), "")
    if pa.types.is_null(kind):
        return pa.array([""] * len(column), pa.string())
    if pa.types.is_integer(kind) or pa.types.is_date32(kind) or pa.types.is_date64(kind):
        return pac.fill_null(pac.cast(column, pa.string()), "")
    if pa.types.is_boolean(kind):
        return pac.fill_null(pac.if_else(column, "true", "false"), "")
    if (
        pa.types.is_floating(kind)
        or pa.types.is_timestamp(kind)
        or pa.types.is_time(kind)
        or pa.types.is_duration(kind)
        or pa.types.is_decimal(kind)
    ):
        return pa.array([_python_text(v) for v in column.to_pylist()], pa.string())
    raise InputError(
        f"holds {kind} values; bulk-sync reads text, numbers, dates and booleans",
        source=source,
        column=name,
    )


# -- out -----------------------------------------------------------------------------


def ledger_frame(ledger: Ledger) -> Any:
    """The ledger as a pandas ``DataFrame`` with the report's columns (texts as they are,
    never formula-neutralized; ``http_status`` a nullable integer)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("plan_frame needs pandas: pip install 'bulk-sync[pandas]'") from None
    from bulk_sync.ledger import STATUSES

    rows = ledger.rows
    sources: list[Any] = []
    sheets: list[Any] = []
    numbers: list[Any] = []
    for table in rows.tables:
        n = len(table)
        sources.append(np.full(n, table.source, dtype=object))
        sheets.append(np.full(n, table.sheet, dtype=object))
        numbers.append(IntColumn(table.rows).array.astype(np.int64))

    def texts(parts: list[Any]) -> Any:
        return pa.array(np.concatenate(parts) if parts else np.zeros(0, dtype=object), pa.string())

    status = pa.array([s.value for s in STATUSES], pa.string()).take(pa.array(ledger.status))
    error_texts = pa.array(ledger.texts(), pa.string())
    http = pa.array(ledger.http.astype(np.int64), mask=ledger.http == 0)
    table = pa.table(
        [
            texts(sources),
            texts(sheets),
            pa.array(np.concatenate(numbers) if numbers else np.zeros(0, dtype=np.int64)),
            rows.customer_ids.combined(),
            rows.attributes.combined(),
            rows.values.combined(),
            status,
            http,
            error_texts.take(pa.array(ledger.error)),
            pa.array(ledger.attempts.astype(np.int64)),
        ],
        names=list(REPORT_COLUMNS),
    )
    mapping = {pa.string(): pd.StringDtype("pyarrow"), pa.int64(): pd.Int64Dtype()}
    return table.to_pandas(types_mapper=mapping.get)


def plan_frame(
    inputs: Any,
    settings: Settings | None = None,
    *,
    resume: str | Path | None = None,
    shard: Shard | None = None,
    state: Any = None,
    full: bool = False,
) -> Any:
    """Load and validate ``inputs`` (frames and/or file paths) and return the plan as a
    pandas ``DataFrame``: one row per input row, the report's columns, ``status``
    ``valid`` (would be sent), ``invalid`` (``error`` says why) or ``skipped``.
    Nothing is sent and no report is written.
    """
    from bulk_sync.config import Settings as _Settings
    from bulk_sync.runner import load_inputs, plan

    settings = settings or _Settings()
    tables = load_inputs(inputs, settings, shard)
    the_plan = plan(
        tables,
        settings,
        resume=Path(resume) if resume is not None else None,
        shard=shard,
        state=state,
        full=full,
    )
    return ledger_frame(the_plan.ledger)
