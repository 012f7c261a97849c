"""One upload client, run in its own process by bench_upload.py; prints one JSON line.

    python bench/upload_client.py MODE BASE_URL --requests N --concurrency C [--input CSV]

Modes (each sends N POSTs of a one-attribute map to /customers/{id}/attributes, C at a
time, and times from the first request to the last answer; imports and setup excluded):

- ``aiohttp``: a raw aiohttp ClientSession (the floor of what Python can do here);
- ``httpx``: stock httpx.AsyncClient with its own pool;
- ``httpx-aiohttp``: httpx.AsyncClient over the httpx-aiohttp package's transport;
- ``client``: bulk_sync.client.Client alone (our AiohttpTransport, classify);
- ``client-httpx``: bulk_sync.client.Client with transport="httpx";
- ``uploader``: bulk_sync's Uploader (tenacity retry wrapper, rate gate) over Client;
- ``sync``: the whole job, ``bulk_sync.runner.sync`` on ``--input`` (load, validate, group,
  upload with retries, journal, progress callback, report). Its rate is requests over the
  run's own elapsed time (everything from loading to the report written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

TOKEN = "b" * 64
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


CPU_TIMED = [0.0]  # CPU seconds (user + system) of the timed part of the run


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _drive(n: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    counter = iter(range(n))

    async def worker() -> None:
        for k in counter:
            await one(k)

    started, cpu = time.perf_counter(), _cpu()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    CPU_TIMED[0] = _cpu() - cpu
    return time.perf_counter() - started


def _body(k: int) -> bytes:
    return b'{"segment":"value-%d"}' % k


async def run_aiohttp(base: str, n: int, c: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:

        async def one(k: int) -> None:
            async with session.post(
                f"{base}/customers/C{k:08d}/attributes", data=_body(k), headers=HEADERS
            ) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")

        return await _drive(n, c, one)


async def run_httpx(base: str, n: int, c: int, *, aiohttp_transport: bool = False) -> float:
    import httpx

    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    transport: Any = None
    if aiohttp_transport:
        import httpx_aiohttp

        transport = httpx_aiohttp.AiohttpTransport()
    async with httpx.AsyncClient(
        base_url=base, limits=limits, transport=transport, timeout=30
    ) as client:

        async def one(k: int) -> None:
            r = await client.post(
                f"/customers/C{k:08d}/attributes", content=_body(k), headers=HEADERS
            )
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}")

        return await _drive(n, c, one)


async def run_client(base: str, n: int, c: int, transport: str) -> float:
    from bulk_sync.client import Client

    async with Client(base, TOKEN, max_connections=c, transport=transport) as client:

        async def one(k: int) -> None:
            await client.set_customer_attributes(f"C{k:08d}", {"segment": f"value-{k}"})

        return await _drive(n, c, one)


async def run_uploader(base: str, n: int, c: int) -> float:
    from bulk_sync.client import Client
    from bulk_sync.models import Pair
    from bulk_sync.uploader import Job, JobResult, Uploader

    jobs = [Job(f"C{k:08d}", (Pair("segment", f"value-{k}", (k,)),)) for k in range(n)]
    results: list[JobResult] = []
    async with Client(base, TOKEN, max_connections=c) as client:
        uploader = Uploader(client, concurrency=c)
        started, cpu = time.perf_counter(), _cpu()
        stats = await uploader.run(jobs, results.append)
        elapsed = time.perf_counter() - started
        CPU_TIMED[0] = _cpu() - cpu
    if stats.requests != n or len(results) != n:
        raise RuntimeError(f"{stats.requests} requests, {len(results)} results for {n} jobs")
    return elapsed


def run_sync(base: str, c: int, input_path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    from bulk_sync.config import Settings
    from bulk_sync.runner import sync

    settings = Settings(base_url=base, concurrency=c, **extra)
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / "out") as tmp:
        report = Path(tmp) / "report.csv"
        progress_calls = 0

        def on_progress(_: object) -> None:
            nonlocal progress_calls
            progress_calls += 1

        started, cpu = time.perf_counter(), _cpu()
        summary = sync([input_path], settings, report=report, token=TOKEN, on_progress=on_progress)
        wall = time.perf_counter() - started
        CPU_TIMED[0] = _cpu() - cpu
        lines = sum(1 for _ in report.open(encoding="utf-8")) - 1
    return {
        "requests": summary.requests,
        "retries": summary.retries,
        "seconds": summary.elapsed,
        "wall": wall,
        "rate": summary.requests / summary.elapsed,
        "rows": summary.rows,
        "report_lines": lines,
        "counts": summary.counts,
        "exit_code": summary.exit_code,
        "progress_calls": progress_calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "mode",
        choices=("aiohttp", "httpx", "httpx-aiohttp", "client", "client-httpx", "uploader", "sync"),
    )
    parser.add_argument("base_url")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--input", type=Path)
    parser.add_argument("--settings", default="{}", help="JSON of extra Settings fields (sync)")
    args = parser.parse_args()
    base, n, c = args.base_url, args.requests, args.concurrency
    if not base.startswith("http://127.0.0.1:"):
        sys.exit("the bench only talks to 127.0.0.1")
    result: dict[str, Any]
    if args.mode == "sync":
        result = run_sync(base, c, args.input, json.loads(args.settings))
    else:
        if args.mode == "aiohttp":
            coro = run_aiohttp(base, n, c)
        elif args.mode in ("httpx", "httpx-aiohttp"):
            coro = run_httpx(base, n, c, aiohttp_transport=args.mode == "httpx-aiohttp")
        elif args.mode == "uploader":
            coro = run_uploader(base, n, c)
        else:
            coro = run_client(base, n, c, "httpx" if args.mode == "client-httpx" else "aiohttp")
        seconds = asyncio.run(coro)
        result = {"requests": n, "seconds": seconds, "rate": n / seconds}
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["cpu_seconds"] = CPU_TIMED[0]  # user + system CPU of the timed part
    print(json.dumps(result))


if __name__ == "__main__":
    main()
