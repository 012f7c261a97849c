"""One loading measurement, run in its own process by bench_load.py; prints one JSON line.

    python bench/load_child.py MODE PATH

- ``pandas``: bare ``pandas.read_csv(path, engine="pyarrow", dtype=str)`` (reference);
- ``pandas_object``: the same with ``dtype=object``: pandas 3 keeps ``dtype=str`` columns
  as Arrow strings and never makes Python strings; this is the read that does (what
  ``dtype=str`` meant in pandas 2), a second reference for a pipeline of Python values;
- ``calamine``: bare python-calamine read of the first sheet (reference);
- ``bulk_sync``: ``bulk_sync.loading.load`` then ``bulk_sync.runner.plan`` (concatenate
  the tables, validate every row, group into one map per customer, the per-row ledger):
  everything a run does before the first request.

``seconds`` covers that work only (imports excluded, pyarrow's lazy import of pandas
included among them); ``maxrss_mb`` is the process's peak resident memory, imports
included.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    mode, path = sys.argv[1], Path(sys.argv[2])
    result: dict[str, object] = {"mode": mode}
    if mode == "pandas":
        import pandas as pd

        started = time.perf_counter()
        frame = pd.read_csv(path, engine="pyarrow", dtype=str)
        result["seconds"] = time.perf_counter() - started
        result["rows"] = len(frame)
    elif mode == "pandas_object":
        import pandas as pd

        started = time.perf_counter()
        frame = pd.read_csv(path, engine="pyarrow", dtype=object)
        result["seconds"] = time.perf_counter() - started
        result["rows"] = len(frame)
    elif mode == "calamine":
        import python_calamine

        started = time.perf_counter()
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
        grid = workbook.get_sheet_by_index(0).to_python()
        result["seconds"] = time.perf_counter() - started
        result["rows"] = len(grid) - 1
    elif mode == "bulk_sync":
        import pyarrow

        from bulk_sync.config import Settings
        from bulk_sync.loading import load
        from bulk_sync.runner import load_options, plan

        # pyarrow imports pandas, when installed, on its first conversion of a Python
        # value: an import (0.2-0.3 s here), done before the clock like the others.
        pyarrow.scalar(0)
        settings = Settings()
        started = time.perf_counter()
        tables = load([path], load_options(settings))
        loaded = time.perf_counter()
        the_plan = plan(tables, settings)
        result["seconds"] = time.perf_counter() - started
        result["load_seconds"] = loaded - started
        result["rows"] = len(the_plan.ledger.rows)
        result["customers"] = the_plan.customers
        result["problems"] = len(the_plan.problems)
    else:
        sys.exit(f"unknown mode {mode!r}")
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
