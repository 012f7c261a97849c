"""Per-request latency distribution of raw aiohttp against a server with fixed latency.

    python bench/latency_probe.py [--latency 0.05] [--concurrency 1 8 32 128] [--rounds 60]

Starts bench/minimal_server.py ``--latency`` (answers by ``loop.call_later``) and, if
``--emulator``, the bulk_sync emulator too, each in its own process; then for each
concurrency C sends ``C x rounds`` requests with raw aiohttp from this process and
prints min/p50/p90/max/mean of the time each request took, and the cycle time
(C / rate). Shows how far above the emulated latency a request's round trip is on
this machine whatever the client: the floor under "% of ideal".
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TOKEN, emulator, minimal_server, print_machine, table

HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


async def probe(base: str, n: int, c: int) -> list[object]:
    import aiohttp

    latencies: list[float] = []
    counter = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:

        async def worker() -> None:
            for k in counter:
                t = time.perf_counter()
                async with session.post(
                    f"{base}/customers/C{k}/attributes", data=b'{"a":"b"}', headers=HEADERS
                ) as r:
                    await r.read()
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return [
        c,
        f"{n / elapsed:,.0f}",
        f"{1000 * c * elapsed / n:.2f}",
        f"{ms[0]:.2f}",
        f"{ms[len(ms) // 2]:.2f}",
        f"{ms[int(len(ms) * 0.9)]:.2f}",
        f"{ms[-1]:.2f}",
        f"{statistics.fmean(ms):.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--emulator", action="store_true", help="probe the emulator too")
    args = parser.parse_args()
    print_machine()
    servers = [("minimal_server", minimal_server("--latency", str(args.latency)))]
    if args.emulator:
        servers.append(("emulator", emulator("--latency", str(args.latency))))
    header = ["concurrency", "req/s", "cycle ms", "min", "p50", "p90", "max", "mean ms"]
    for name, server in servers:
        with server:
            rows = [
                asyncio.run(probe(server.base_url, c * args.rounds, c)) for c in args.concurrency
            ]
        print(f"\n## raw aiohttp against {name} --latency {args.latency}\n")
        print(table(header, rows))


if __name__ == "__main__":
    main()
