"""What reading number formats costs: a 200k-row XLSX whose id and value columns carry
formats (zero-padded ids, thousands separators, percentages, dates), loaded by bulk_sync,
side by side with a bare python-calamine read of the same file and with bulk_sync on the
same data without formats. Each measurement runs in its own process; best of N.

    python bench/bench_formats.py [--rows 200000] [--runs 3]

The files are made once in bench/data/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DATA, ensure_dirs, print_machine, ratio, run_child, table

CHILD = r"""
import json, sys, time
mode, path = sys.argv[1], sys.argv[2]
if mode == "calamine":
    import python_calamine as calamine
    started = time.perf_counter()
    wb = calamine.CalamineWorkbook.from_path(path)
    grid = wb.get_sheet_by_index(0).to_python(skip_empty_area=False)
    rows = len(grid) - 1
else:
    from bulk_sync.loading import load_file
    started = time.perf_counter()
    (t,) = load_file(path)
    rows = len(t)
print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows}))
"""

_FORMATS = ("#,##0.00", "0.0%", "dd/mm/yyyy", "General")


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


def best(mode: str, path: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        result = run_child([sys.executable, "-c", CHILD, mode, str(path)]).json()
        times.append(result["seconds"])
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ensure_dirs()
    print_machine()
    formatted = make(args.rows, True)
    plain = make(args.rows, False)
    bare = best("calamine", formatted, args.runs)
    with_formats = best("bulk_sync", formatted, args.runs)
    bare_plain = best("calamine", plain, args.runs)
    without = best("bulk_sync", plain, args.runs)
    rows = [
        ("python-calamine, bare read (reference)", "formatted", f"{bare:.2f}", "1.00x"),
        ("bulk_sync load_file", "formatted", f"{with_formats:.2f}", ratio(with_formats, bare)),
        ("python-calamine, bare read (reference)", "plain", f"{bare_plain:.2f}", "1.00x"),
        ("bulk_sync load_file", "plain", f"{without:.2f}", ratio(without, bare_plain)),
    ]
    print(table(("what", "workbook", "seconds (best)", "vs bare read"), rows))
    print(json.dumps({"rows": args.rows, "bare": bare, "formats": with_formats, "plain": without}))


if __name__ == "__main__":
    main()
