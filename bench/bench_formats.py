"""What reading XLSX costs, number formats included: bulk_sync's ``load_file`` side by side
with a bare python-calamine read of the same file, each in its own process, best of N
(the runs of the different readers alternated).

    python bench/bench_formats.py [--rows 200000] [--runs 3] [--small 1000 10000]
                                  [--before REV ...]

Workbooks (made once in bench/data/, git-ignored):

- ``formatted``: written by openpyxl, the customer id column formatted ``00000000`` and
  the value column cycling through ``#,##0.00``, ``0.0%``, ``dd/mm/yyyy`` and General
  (values ``k / 7``: 17-digit floats), every id and value cell formatted;
- ``plain``: the same data without any format;
- ``text``: bench_load.py's workbook (``make_data.py xlsx``: text ids, mixed values).

For each: the load's wall time (``seconds``, best of N) and its CPU time (user + system of
the process and of the reader's protected child, ``cpu``), and the ratio to the bare read.
``--small`` sizes are measured the same way; ``--before REV ...`` adds the code of git
revisions (extracted with ``git archive`` into bench/out/before-REV, imported through
PYTHONPATH), e.g. the last commit before issue 15, to see what changed for small files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DATA,
    PYTHON,
    before_src,
    ensure_dirs,
    print_machine,
    run_child,
    table,
)
from make_data import make_xlsx

CHILD = r"""
import json, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]

def cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

if mode == "calamine":
    import python_calamine as calamine
    started, used = time.perf_counter(), cpu()
    wb = calamine.CalamineWorkbook.from_path(path)
    grid = wb.get_sheet_by_index(0).to_python(skip_empty_area=False)
    rows = len(grid) - 1
else:
    from bulk_sync.loading import load_file
    started, used = time.perf_counter(), cpu()
    (t,) = load_file(path)
    rows = len(t)
seconds = time.perf_counter() - started
import threading
for thread in threading.enumerate():  # the reader's child is reaped in the background
    if thread.name == "bulk-sync-reaper":
        thread.join()
print(json.dumps({"seconds": seconds, "cpu": cpu() - used, "rows": rows}))
"""

_FORMATS = ("#,##0.00", "0.0%", "dd/mm/yyyy", "General")

# The last commit before issue 15 (number formats, every workbook in the protected child).
BEFORE_ISSUE_15 = "9824b4c^"


def make(rows: int, formatted: bool) -> Path:
    path = DATA / f"formats-{rows}{'' if formatted else '-plain'}.xlsx"
    if path.exists():
        return path
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Clientes")
    ws.append(["customer_id", "attribute", "value"])
    for i in range(rows):
        cid = WriteOnlyCell(ws, 10_000 + i // 10)
        value = WriteOnlyCell(ws, (i * 7919 % 100_000) / 7.0)
        if formatted:
            cid.number_format = "00000000"
            value.number_format = _FORMATS[i % len(_FORMATS)]
        ws.append([cid, f"attr_{i % 10}", value])
    tmp = path.with_suffix(".tmp.xlsx")
    wb.save(tmp)
    tmp.rename(path)
    return path


def measure(readers: dict[str, Path | None], path: Path, runs: int) -> dict[str, dict[str, float]]:
    """Best wall time (and the CPU time of that run) of each reader, runs alternated."""
    best: dict[str, dict[str, float]] = {}
    for _ in range(runs):
        for reader, src in readers.items():
            env = None
            if src is not None:
                env = dict(os.environ, PYTHONPATH=str(src))
            mode = "calamine" if reader == "calamine" else "bulk_sync"
            result: dict[str, Any] = run_child(
                [PYTHON, "-c", CHILD, mode, str(path)], env=env
            ).json()
            if reader not in best or result["seconds"] < best[reader]["seconds"]:
                best[reader] = {"seconds": result["seconds"], "cpu": result["cpu"]}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, nargs="*", default=[])
    parser.add_argument(
        "--before", nargs="*", default=[], help=f"git revisions, e.g. {BEFORE_ISSUE_15}"
    )
    parser.add_argument(
        "--workbooks",
        nargs="*",
        default=["formatted", "plain", "text"],
        choices=["formatted", "plain", "text"],
    )
    args = parser.parse_args()
    ensure_dirs()
    print_machine()
    readers: dict[str, Path | None] = {"calamine": None, "bulk_sync": None}
    for rev in args.before:
        readers[f"bulk_sync at {rev}"] = before_src(rev)
    rows_out = []
    figures = []
    for n in [args.rows, *args.small]:
        for kind in args.workbooks:
            path = make_xlsx(n) if kind == "text" else make(n, kind == "formatted")
            best = measure(readers, path, args.runs)
            bare = best["calamine"]["seconds"]
            for reader, got in best.items():
                shown = "python-calamine, bare read" if reader == "calamine" else reader
                rows_out.append(
                    (
                        f"{n:,}",
                        kind,
                        shown,
                        f"{got['seconds']:.3f}",
                        f"{got['cpu']:.3f}",
                        f"{got['seconds'] / bare:.2f}x",
                    )
                )
            figures.append({"rows": n, "workbook": kind, **best})
    print(table(("rows", "workbook", "reader", "seconds (best)", "CPU s", "vs bare"), rows_out))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
