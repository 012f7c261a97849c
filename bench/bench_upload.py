"""Upload throughput: bulk_sync side by side with raw aiohttp, httpx and curl, same run.

    python bench/bench_upload.py [--rounds 100] [--concurrency 8 32 128] [--latency 0.05]
                                 [--customers 20000] [--requests 20000] [--curl 600]

Part 1, emulated latency: the bulk_sync emulator (``python -m bulk_sync emulator``) in
its own process with ``--latency``; at each concurrency C, ``C x rounds`` requests by
raw aiohttp (the reference), by bulk_sync's Uploader over its Client, and by a whole
``bulk_sync.runner.sync`` run of that many customers x 1 attribute (rate over the run's
own elapsed time: plan, upload with retries, journal, progress callback and report).
The ideal is C / latency.

Then the same clients against bench/minimal_server.py ``--latency`` (a bare asyncio
server answering by ``loop.call_later``): the floor this machine's event loops allow.

Part 2, zero latency: bench/minimal_server.py in its own process (so the server is never
the limit), then every client: raw aiohttp, stock httpx, httpx over httpx-aiohttp,
bulk_sync's Client (aiohttp and httpx transports), its Uploader, a whole sync of
``--customers`` x 1 attribute, and curl through ``xargs -P32``. The sync run is then
repeated against the emulator at zero latency.

Every client runs in its own process (bench/upload_client.py); all traffic goes to
127.0.0.1; every server started here is stopped.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    PYTHON,
    TOKEN,
    emulator,
    ensure_dirs,
    minimal_server,
    print_machine,
    run_child,
    table,
)
from make_data import make_csv


def client(mode: str, base: str, n: int, c: int, **kw: Any) -> dict[str, Any]:
    cmd = [PYTHON, str(BENCH / "upload_client.py"), mode, base]
    cmd += ["--requests", str(n), "--concurrency", str(c)]
    if "input" in kw:
        cmd += ["--input", str(kw["input"])]
    if "settings" in kw:
        cmd += ["--settings", kw["settings"]]
    child = run_child(cmd, timeout=kw.get("timeout", 300))
    result = child.json()
    result["child_maxrss_mb"] = child.maxrss_mb
    return result


def curl(base: str, n: int, parallel: int = 32) -> dict[str, Any]:
    if shutil.which("curl") is None or shutil.which("xargs") is None:
        return {"rate": 0.0, "requests": 0, "seconds": 0.0}
    script = (
        f"seq {n} | xargs -P{parallel} -I{{}} curl -s -o /dev/null --max-time 10 -X POST "
        f"-H 'Authorization: Bearer {TOKEN}' -H 'Content-Type: application/json' "
        f'-d \'{{"segment":"v{{}}"}}\' {base}/customers/C{{}}/attributes'
    )
    child = run_child(["bash", "-c", script], timeout=120)
    if child.returncode != 0:
        raise RuntimeError(f"curl failed: {child.stderr[-500:]}")
    return {"rate": n / child.wall, "requests": n, "seconds": child.wall}


def latency_part(args: argparse.Namespace) -> list[list[object]]:
    rows: list[list[object]] = []
    print(f"\n## Emulated latency {args.latency * 1000:.0f} ms (emulator in its own process)\n")
    with emulator("--latency", str(args.latency)) as server:
        for c in args.concurrency:
            n = c * args.rounds
            ideal = c / args.latency
            data = make_csv(n, per=1)
            results = {
                "raw aiohttp (reference)": client("aiohttp", server.base_url, n, c),
                "bulk_sync Uploader + Client": client("uploader", server.base_url, n, c),
                "bulk_sync sync (everything)": client("sync", server.base_url, n, c, input=data),
            }
            for name, r in results.items():
                rows.append(
                    [
                        c,
                        f"{ideal:,.0f}",
                        name,
                        r["requests"],
                        f"{r['rate']:,.0f}",
                        f"{100 * r['rate'] / ideal:.1f}%",
                        "yes" if ideal > 1000 else ("MET" if r["rate"] >= 0.95 * ideal else "no"),
                    ]
                )
    print(
        table(
            ["concurrency", "ideal req/s", "client", "requests", "req/s", "of ideal", "≥95%?"],
            rows,
        ).replace("| yes ", "| n/a ")
    )
    if args.floor:
        floor_rows: list[list[object]] = []
        print(
            f"\nFloor: bench/minimal_server.py --latency {args.latency} (answers by "
            "loop.call_later, no framework): what this machine's event loops allow\n"
        )
        with minimal_server("--latency", str(args.latency)) as server:
            for c in args.concurrency:
                n = c * args.rounds
                ideal = c / args.latency
                for name, mode in (("raw aiohttp", "aiohttp"), ("bulk_sync Uploader", "uploader")):
                    r = client(mode, server.base_url, n, c)
                    floor_rows.append(
                        [
                            c,
                            f"{ideal:,.0f}",
                            name,
                            f"{r['rate']:,.0f}",
                            f"{100 * r['rate'] / ideal:.1f}%",
                        ]
                    )
        print(table(["concurrency", "ideal req/s", "client", "req/s", "of ideal"], floor_rows))
    return rows


def zero_part(args: argparse.Namespace) -> list[list[object]]:
    n, c = args.requests, 32
    data = make_csv(args.customers, per=1)
    rows: list[list[object]] = []
    print(f"\n## Zero latency, concurrency {c} (server in its own process)\n")
    with minimal_server() as server:
        base = server.base_url
        ref = client("aiohttp", base, n, c)
        runs: list[tuple[str, dict[str, Any]]] = [
            ("raw aiohttp (reference)", ref),
            ("stock httpx 0.28 AsyncClient", client("httpx", base, max(1000, n // 4), c)),
            ("httpx over httpx-aiohttp transport", client("httpx-aiohttp", base, n, c)),
            ("bulk_sync Client (aiohttp transport)", client("client", base, n, c)),
            (
                "bulk_sync Client (httpx transport)",
                client("client-httpx", base, max(1000, n // 4), c),
            ),
            ("bulk_sync Uploader + Client", client("uploader", base, n, c)),
            ("bulk_sync sync (everything)", client("sync", base, n, c, input=data)),
            (f"curl via xargs -P{c}", curl(base, args.curl, c)),
        ]
        for name, r in runs:
            rows.append(
                [
                    "minimal",
                    name,
                    r["requests"],
                    f"{r['rate']:,.0f}",
                    f"{r['rate'] / ref['rate']:.2f}",
                ]
            )
    with emulator() as server:
        ref = client("aiohttp", server.base_url, n, c)
        mine = client("sync", server.base_url, n, c, input=data)
        rows.append(["emulator", "raw aiohttp (reference)", n, f"{ref['rate']:,.0f}", "1.00"])
        rows.append(
            [
                "emulator",
                "bulk_sync sync (everything)",
                mine["requests"],
                f"{mine['rate']:,.0f}",
                f"{mine['rate'] / ref['rate']:.2f}",
            ]
        )
    print(table(["server", "client", "requests", "req/s", "vs raw aiohttp"], rows))
    sync_rate = float(rows[6][3].replace(",", ""))
    print(f"\nsync against the minimal server: {sync_rate:,.0f} req/s (target ≥ 1,500)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="requests per worker (latency)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--customers", type=int, default=20000, help="sync run, zero latency")
    parser.add_argument("--requests", type=int, default=20000, help="other clients, zero latency")
    parser.add_argument("--curl", type=int, default=600, help="requests sent by curl")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--no-floor", dest="floor", action="store_false", help="skip the minimal-server floor"
    )
    parser.add_argument("--skip-zero", action="store_true")
    args = parser.parse_args()
    ensure_dirs()
    print_machine()
    if not args.skip_latency:
        latency_part(args)
    if not args.skip_zero:
        zero_part(args)


if __name__ == "__main__":
    main()
