"""The uploader's own CPU cost per request, in one process; prints one JSON line.

    python bench/uploader_overhead.py [--requests 50000] [--concurrency 8 32 128] [--repeat 5]

The Uploader alone (admission, retries wrapper, flow control, results) over a sender that
answers at once (one ``asyncio.sleep(0)``), so nothing but the uploader's code is timed:
CPU seconds (``time.process_time``) per request, best of ``--repeat``. Run it with
PYTHONPATH pointing at another version of the package to compare (bench_flow.py does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Mapping

from bulk_sync.models import Pair
from bulk_sync.uploader import Job, Uploader


class Instant:
    async def set_customer_attributes(
        self, customer_id: str, attributes: Mapping[str, str]
    ) -> dict[str, str]:
        await asyncio.sleep(0)
        return dict(attributes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.requests
    jobs = [Job(f"C{k:08d}", (Pair("segment", f"v{k}", (k,)),)) for k in range(n)]
    result: dict[str, float] = {}
    for c in args.concurrency:
        best = float("inf")
        for _ in range(args.repeat):
            uploader = Uploader(Instant(), concurrency=c)
            started = time.process_time()
            asyncio.run(uploader.run(jobs, lambda r: None))
            best = min(best, time.process_time() - started)
        result[str(c)] = 1e6 * best / n
    print(json.dumps(result))


if __name__ == "__main__":
    main()
