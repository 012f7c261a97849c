"""Every benchmark, in a few minutes: what ``make bench`` runs.

    python bench/run_all.py [--quick]

Runs bench_upload.py, bench_load.py, bench_memory.py and bench_scale.py one after the
other (each starts and stops its own servers and children) and prints their tables; the output
is also saved to bench/out/run_all-<UTC time>.md. ``--quick`` uses smaller sizes
(no 5M-row file), for a smoke test.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH, OUT, PYTHON, ensure_dirs, run_child

FULL = [
    ["bench_upload.py"],
    ["bench_load.py", "--scale", "100000", "1000000", "5000000"],
    ["bench_memory.py", "--rows", "20000", "100000"],
    # Migration sizes up to 5M rows (the 20M figures: see docs/benchmarks.md for the command)
    ["bench_scale.py", "--rows", "1000000", "5000000", "--sync-rows", "1000000",
     "--shard-rows", "5000000", "--alt-rows", "5000000", "--alt-parts", "4"],
]  # fmt: skip
QUICK = [
    ["bench_upload.py", "--rounds", "40", "--requests", "5000", "--customers", "5000"],
    ["bench_load.py", "--csv-rows", "200000", "--xlsx-rows", "50000", "--scale", "--repeat", "1"],
    ["bench_memory.py", "--rows", "5000", "--faults", "0", "0.3"],
    ["bench_scale.py", "--rows", "200000", "--sync-rows", "200000", "--shard-rows", "200000",
     "--inner-rows", "200000", "--alt-rows", "200000", "--alt-parts", "4", "--repeat", "1"],
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    ensure_dirs()
    started = time.perf_counter()
    out: list[str] = []
    failed = 0
    for script, *rest in QUICK if args.quick else FULL:
        print(f"\n# {script} {' '.join(rest)}", flush=True)
        t = time.perf_counter()
        run = run_child([PYTHON, str(BENCH / script), *rest], timeout=3600)
        text = run.stdout if run.returncode == 0 else run.stdout + run.stderr[-3000:]
        failed += run.returncode != 0
        print(text, flush=True)
        print(f"({script}: {time.perf_counter() - t:.0f} s, exit {run.returncode})", flush=True)
        out.append(f"# {script} {' '.join(rest)}\n\n{text}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    saved = OUT / f"run_all-{stamp}.md"
    saved.write_text("\n".join(out), encoding="utf-8")
    print(f"\nall benchmarks: {time.perf_counter() - started:.0f} s; saved to {saved}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
