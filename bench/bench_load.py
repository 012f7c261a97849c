"""Loading, validation, grouping and the dry run, side by side with bare readers.

    python bench/bench_load.py [--csv-rows 1000000] [--xlsx-rows 200000]
                               [--scale 100000 1000000 5000000] [--repeat 3] [--xlsx-only]

1. CSV of ``--csv-rows`` rows (customers = rows / 10, 20 attribute names): a bare
   ``pandas.read_csv(path, engine="pyarrow", dtype=str)`` vs bulk_sync's load +
   validate + group (``loading.load`` + ``runner.plan``), each in its own process;
   best of ``--repeat``; peak RSS of each process. Targets: ≤ 5x, ≤ 600 MB.
2. XLSX of ``--xlsx-rows`` rows: a bare python-calamine read vs the same bulk_sync path.
   Target: ≤ 2x.
3. ``bulk-sync sync CSV --dry-run --report OUT.csv`` as a subprocess, wall time
   (interpreter start, imports, load, validate, group, report written). Target: ≤ 10 s
   for 1M rows.
4. Growth with rows (``--scale``): the dry run and the bulk_sync path, time and memory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH, OUT, PYTHON, ensure_dirs, print_machine, run_child, table
from make_data import make_csv, make_xlsx


def child(mode: str, path: Path, repeat: int) -> dict[str, Any]:
    """Best time of ``repeat`` runs, highest peak RSS."""
    best: dict[str, Any] | None = None
    peak = 0.0
    for _ in range(repeat):
        run = run_child([PYTHON, str(BENCH / "load_child.py"), mode, str(path)], timeout=600)
        result = run.json()
        peak = max(peak, run.maxrss_mb)
        if best is None or result["seconds"] < best["seconds"]:
            best = result
    assert best is not None
    best["maxrss_mb"] = peak
    return best


def dry_run(path: Path, repeat: int) -> dict[str, Any]:
    report = OUT / f"dry-{path.stem}.csv"
    best: dict[str, Any] | None = None
    for _ in range(repeat):
        cmd = [PYTHON, "-m", "bulk_sync", "sync", str(path), "--dry-run"]
        cmd += ["--report", str(report), "--overwrite", "--no-progress", "--quiet"]
        run = run_child(cmd, timeout=600)
        if run.returncode not in (0, 1):
            raise RuntimeError(f"dry run failed ({run.returncode}): {run.stderr[-1000:]}")
        lines = sum(1 for _ in report.open(encoding="utf-8")) - 1
        if best is None or run.wall < best["wall"]:
            best = {"wall": run.wall, "maxrss_mb": run.maxrss_mb, "report_lines": lines}
    report.unlink(missing_ok=True)
    assert best is not None
    return best


def csv_rows(n: int, repeat: int) -> list[list[object]]:
    """Part 1: the CSV side by side."""
    rows: list[list[object]] = []
    csv_path = make_csv(n)
    ref = child("pandas", csv_path, repeat)
    objects = child("pandas_object", csv_path, repeat)
    mine = child("bulk_sync", csv_path, repeat)
    rows.append(
        [
            f"CSV {n:,} rows",
            "pandas.read_csv(engine=pyarrow, dtype=str)",
            f"{ref['seconds']:.2f} s",
            mb(ref["maxrss_mb"]),
            "1.00x",
        ]
    )
    ok = mine["seconds"] <= 5 * ref["seconds"] and mine["maxrss_mb"] <= 600
    rows.append(
        [
            f"CSV {n:,} rows",
            f"bulk_sync load+validate+group (load {mine['load_seconds']:.2f} s)",
            f"{mine['seconds']:.2f} s",
            mb(mine["maxrss_mb"]),
            f"{mine['seconds'] / ref['seconds']:.2f}x (≤5x, ≤600 MB: {'MET' if ok else 'no'})",
        ]
    )
    rows.append(
        [
            f"CSV {n:,} rows",
            "pandas.read_csv(engine=pyarrow, dtype=object) (Python strings)",
            f"{objects['seconds']:.2f} s",
            mb(objects["maxrss_mb"]),
            f"bulk_sync is {mine['seconds'] / objects['seconds']:.2f}x this",
        ]
    )

    return rows


def mb(x: float) -> str:
    return f"{x:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv-rows", type=int, default=1_000_000)
    parser.add_argument("--xlsx-rows", type=int, default=200_000)
    parser.add_argument("--scale", type=int, nargs="*", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--xlsx-only", action="store_true", help="part 2 only")
    args = parser.parse_args()
    ensure_dirs()
    print_machine()

    rows: list[list[object]] = []
    if not args.xlsx_only:
        rows.extend(csv_rows(args.csv_rows, args.repeat))
    xlsx_path = make_xlsx(args.xlsx_rows)
    ref = child("calamine", xlsx_path, args.repeat)
    mine = child("bulk_sync", xlsx_path, args.repeat)
    rows.append(
        [
            f"XLSX {args.xlsx_rows:,} rows",
            "python-calamine to_python()",
            f"{ref['seconds']:.2f} s",
            mb(ref["maxrss_mb"]),
            "1.00x",
        ]
    )
    ratio = mine["seconds"] / ref["seconds"]
    rows.append(
        [
            f"XLSX {args.xlsx_rows:,} rows",
            f"bulk_sync load+validate+group (load {mine['load_seconds']:.2f} s)",
            f"{mine['seconds']:.2f} s",
            mb(mine["maxrss_mb"]),
            f"{ratio:.2f}x (≤2x: {'MET' if ratio <= 2 else 'no'})",
        ]
    )
    print("\n## Loading, side by side (best of", args.repeat, "runs, each in its own process)\n")
    print(table(["input", "what", "time", "peak RSS", "ratio"], rows))
    if args.xlsx_only:
        return

    scale_rows: list[list[object]] = []
    for n in sorted(set(args.scale) | {args.csv_rows}):
        path = make_csv(n)
        repeat = args.repeat if n <= 1_000_000 else 1
        inner = child("bulk_sync", path, repeat)
        bare = child("pandas", path, repeat)
        dry = dry_run(path, repeat)
        target = ""
        if n == 1_000_000:
            target = " (≤10 s: " + ("MET" if dry["wall"] <= 10 else "no") + ")"
        scale_rows.append(
            [
                f"{n:,}",
                f"{n // 10:,}",
                f"{bare['seconds']:.2f} s / {mb(bare['maxrss_mb'])}",
                f"{inner['seconds']:.2f} s / {mb(inner['maxrss_mb'])}",
                f"{dry['wall']:.2f} s{target}",
                mb(dry["maxrss_mb"]),
                f"{dry['report_lines']:,}",
            ]
        )
    print("\n## Growth with rows: CSV, 10 rows per customer, 20 attribute names\n")
    print(
        table(
            [
                "rows",
                "customers",
                "bare pandas read",
                "load+validate+group",
                "sync --dry-run wall (subprocess)",
                "dry-run peak RSS",
                "report lines",
            ],
            scale_rows,
        )
    )


if __name__ == "__main__":
    main()
