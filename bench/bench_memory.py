"""Peak memory of whole sync runs: it should grow with rows, not concurrency or retries.

    python bench/bench_memory.py [--rows 20000 100000] [--concurrency 8 128] [--faults 0 0.3]

Each run is ``bulk_sync.runner.sync`` in its own process (bench/upload_client.py sync)
against the emulator in another process; peak RSS is that child's ``ru_maxrss`` from
``os.wait4``. Faults are the emulator's ``--error-rate`` (503 answers, retried with a
1-10 ms backoff so the run stays short; up to 10 attempts).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emulator, ensure_dirs, print_machine, table
from bench_upload import client
from make_data import make_csv

FAST_RETRIES = {"backoff_initial": 0.001, "backoff_max": 0.01, "max_attempts": 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 128])
    parser.add_argument("--faults", type=float, nargs="+", default=[0.0, 0.3])
    args = parser.parse_args()
    ensure_dirs()
    print_machine()
    rows: list[list[object]] = []
    settings = json.dumps(FAST_RETRIES)
    for n in args.rows:
        data = make_csv(n, per=1)
        for fault in args.faults:
            extra = ("--error-rate", str(fault), "--seed", "7") if fault else ()
            with emulator(*extra) as server:
                for c in args.concurrency:
                    r = client("sync", server.base_url, n, c, input=data, settings=settings)
                    rows.append(
                        [
                            f"{n:,}",
                            c,
                            f"{fault:.0%}",
                            f"{r['requests']:,}",
                            f"{r['retries']:,}",
                            r["counts"]["ok"] == n,
                            f"{r['seconds']:.1f} s",
                            f"{r['child_maxrss_mb']:,.0f} MB",
                        ]
                    )
    print("\n## Peak RSS of a whole sync run (customers x 1 attribute)\n")
    print(
        table(
            [
                "rows",
                "concurrency",
                "503 faults",
                "requests",
                "retries",
                "all ok",
                "run time",
                "peak RSS",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
