"""Flow control: an API at its capacity, outages, and the healthy-API cost, side by side.

    python bench/bench_flow.py [--customers 5000] [--latency 0.05] [--capacities 48 100]
                               [--fixed 8 48 64 128] [--outage 20] [--long-outage 600]
                               [--max-outage-check] [--healthy] [--before REV]
                               [--parts capacity outage long permanent healthy]

Every run is the real command, ``python -m bulk_sync sync data.csv ...``, in its own
process, against the bulk_sync emulator in its own process on 127.0.0.1 (one emulator per
table row, so that counters start at zero). Its figures come from the run's own
``--summary-json`` (elapsed, requests, flow) and from the emulator's
``/_emulator/stats`` (429s it answered, requests that reached it while down, the most
requests it had in flight at once).

- ``capacity``: ``--capacity C --latency L``, 5,000 customers x 1 attribute, with
  ``--concurrency`` 8/48/64/128 and ``auto``; the ideal is C / L requests a second. The
  references in the same run: raw aiohttp at exactly C in flight (what knowing the
  capacity gives), and the code before flow control (``--before``) at 48 and 64.
- ``outage``: ``--outage-after`` 30% of the customers, ``--outage-seconds 20`` (503 to
  everything): default settings and ``auto``, and the code before (``--before``).
- ``long``: the same with a 10-minute outage (``--long-outage 600``), default settings.
- ``permanent``: an outage for 40 s with ``--max-outage 10``: exit code, seconds from the
  outage's start to the exit, rows failed; then ``--resume`` against the same API after
  it is back.
- ``healthy``: ``--latency L`` without limits, at concurrency 8/32/128: the Uploader and a
  whole ``sync`` of the code before (``--before``) and after, alternated, and raw aiohttp;
  with the client's CPU per request (user + system, timed part only).
- ``overhead``: bench/uploader_overhead.py, the Uploader's own CPU per request over a
  sender that answers at once, before and after: the cost of flow control alone.

``--before REV`` (default: the last commit before flow control) is extracted with
``git archive`` into bench/out/before-REV and imported through PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    OUT,
    PYTHON,
    TOKEN,
    ChildResult,
    before_src,
    emulator,
    ensure_dirs,
    print_machine,
    run_child,
    table,
)
from make_data import make_csv

BEFORE_FLOW = "8334cf0"  # main just before issue 10's flow control


def stats(base: str) -> dict[str, Any]:
    """The emulator's counters (``base`` is always http://127.0.0.1:PORT)."""
    url = f"{base}/_emulator/stats"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        data: dict[str, Any] = json.loads(answer.read())
    return data


def sync_run(
    base: str,
    data: Path,
    *args: str,
    before: Path | None = None,
    timeout: float = 1800,
    report: Path | None = None,
) -> dict[str, Any]:
    """The command as a real process; its summary JSON, exit code and wall time. The
    report goes to ``report`` (kept), else to a temporary folder."""
    env = dict(os.environ, IC_API_TOKEN=TOKEN)
    if before is not None:
        env["PYTHONPATH"] = str(before)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        report = report or Path(tmp) / "report.csv"
        summary = Path(tmp) / "summary.json"
        cmd = [PYTHON, "-m", "bulk_sync", "sync", str(data), "--base-url", base]
        cmd += ["--report", str(report), "--summary-json", str(summary), "--quiet"]
        cmd += list(args)
        child: ChildResult = run_child(cmd, timeout=timeout, env=env)
        if not summary.exists():
            raise RuntimeError(f"no summary (exit {child.returncode}): {child.stderr[-2000:]}")
        doc: dict[str, Any] = json.loads(summary.read_text())
    doc["wall"] = child.wall
    doc["returncode"] = child.returncode
    doc["stderr"] = child.stderr
    return doc


def aiohttp_reference(base: str, n: int, c: int) -> dict[str, Any]:
    cmd = [PYTHON, str(BENCH / "upload_client.py"), "aiohttp", base]
    cmd += ["--requests", str(n), "--concurrency", str(c)]
    result: dict[str, Any] = run_child(cmd, timeout=600).json()
    return result


def _flow(doc: dict[str, Any]) -> str:
    flow = doc.get("flow") or {}
    return f"{flow.get('window', '-')}/{flow.get('ceiling', '-')}"


# ----------------------------------------------------------------------------- capacity


def capacity_part(args: argparse.Namespace, before: Path | None) -> None:
    n, latency = args.customers, args.latency
    data = make_csv(n, per=1)
    rows: list[list[object]] = []
    for capacity in args.capacities:
        ideal = capacity / latency
        knobs = ("--capacity", str(capacity), "--latency", str(latency))
        with emulator(*knobs) as server:
            ref = aiohttp_reference(server.base_url, n, capacity)
            refused = stats(server.base_url)["faults"].get("capacity", 0)
        rows.append(
            [capacity, f"raw aiohttp, {capacity} in flight (reference)", f"{ref['rate']:,.0f}",
             f"{100 * ref['rate'] / ideal:.0f}%", n, refused, "-", "-"]
        )  # fmt: skip
        runs: list[tuple[str, list[str], Path | None]] = [
            (f"--concurrency {c}", ["--concurrency", str(c)], None) for c in args.fixed
        ]
        runs.append(("--concurrency auto", ["--concurrency", "auto"], None))
        if before is not None:
            runs += [
                (f"before flow control, --concurrency {c}", ["--concurrency", str(c)], before)
                for c in args.before_fixed
            ]
        for label, extra, code in runs:
            with emulator(*knobs) as server:
                doc = sync_run(server.base_url, data, "--max-attempts", "50", *extra, before=code)
                st = stats(server.base_url)
            ok = doc["counts"]["ok"]
            rate = ok / doc["elapsed_seconds"]
            rows.append(
                [capacity, label, f"{rate:,.0f}", f"{100 * rate / ideal:.0f}%", doc["requests"],
                 st["faults"].get("capacity", 0), st["max_in_flight"], _flow(doc)]
            )  # fmt: skip
            print(f"  capacity {capacity}, {label}: {rate:,.0f}/s", file=sys.stderr, flush=True)
    print(f"\n## At the API's capacity: {n:,} customers x 1, {latency * 1000:.0f} ms latency\n")
    print(
        table(
            [
                "capacity",
                "client",
                "accepted/s",
                "of ideal",
                "requests",
                "429s",
                "most in flight",
                "window at end",
            ],
            rows,
        )
    )


# ----------------------------------------------------------------------------- outages


def outage_row(label: str, doc: dict[str, Any], st: dict[str, Any], outage: float) -> list[object]:
    counts = doc["counts"]
    flow = doc.get("flow") or {}
    paused = flow.get("paused_seconds")
    return [
        label,
        f"{outage:g} s",
        doc["returncode"],
        counts.get("ok", 0),
        counts.get("failed", 0),
        counts.get("not_sent", 0),
        st["faults"].get("outage", 0),
        f"{doc['elapsed_seconds']:.1f}",
        "-" if paused is None else f"{paused:.1f}",
    ]


OUTAGE_HEADER = [
    "client", "outage", "exit", "ok", "failed", "not_sent", "requests while down",
    "run s", "paused s",
]  # fmt: skip


def outage_part(args: argparse.Namespace, before: Path | None, seconds: float) -> None:
    n, latency = args.customers, args.latency
    data = make_csv(n, per=1)
    after = str(int(n * 0.3))
    knobs = ("--latency", str(latency), "--outage-after", after, "--outage-seconds", str(seconds))
    runs: list[tuple[str, list[str], Path | None]] = [("default settings", [], None)]
    if seconds <= 60:
        runs.append(("--concurrency auto", ["--concurrency", "auto"], None))
        if before is not None:
            runs.append(("before flow control, default settings", [], before))
    rows = []
    for label, extra, code in runs:
        with emulator(*knobs) as server:
            doc = sync_run(server.base_url, data, *extra, before=code, timeout=seconds + 900)
            st = stats(server.base_url)
        rows.append(outage_row(label, doc, st, seconds))
        print(f"  outage {seconds:g} s, {label}: exit {doc['returncode']}", file=sys.stderr)
    print(
        f"\n## A {seconds:g}-second outage (503 to everything) after {after} accepted "
        f"requests: {n:,} customers, {latency * 1000:.0f} ms latency\n"
    )
    print(table(OUTAGE_HEADER, rows))


def permanent_part(args: argparse.Namespace) -> None:
    n, latency = args.customers, args.latency
    data = make_csv(n, per=1)
    after = str(int(n * 0.3))
    knobs = ("--latency", str(latency), "--outage-after", after, "--outage-seconds", "40")
    with emulator(*knobs) as server, tempfile.TemporaryDirectory(dir=OUT) as tmp:
        first = Path(tmp) / "first.csv"
        doc = sync_run(server.base_url, data, "--max-outage", "10", report=first)
        st = stats(server.base_url)
        exit_after = st["outage_for"]  # seconds since the outage began, read at the exit
        while stats(server.base_url)["in_outage"]:
            time.sleep(0.5)
        resumed = sync_run(server.base_url, data, "--resume", str(first))
    counts = doc["counts"]
    print(f"\n## A 40-second outage with --max-outage 10, after {after} accepted requests\n")
    rows = [
        ["first run", doc["returncode"], f"{exit_after:.1f}", counts.get("ok", 0),
         counts.get("failed", 0), counts.get("not_sent", 0), st["faults"].get("outage", 0),
         doc.get("aborted") or "-"],
    ]  # fmt: skip
    print(
        table(
            [
                "run",
                "exit",
                "s from outage start to exit",
                "ok",
                "failed",
                "not_sent",
                "requests while down",
                "why",
            ],
            rows,
        )
    )
    print(
        f"\nThen, once the API is back, `sync --resume` of that report: exit "
        f"{resumed['returncode']}, {resumed['counts'].get('skipped', 0)} rows skipped, "
        f"{resumed['counts'].get('ok', 0)} ok, {resumed['requests']} requests."
    )


# ----------------------------------------------------------------------------- healthy


def client_rate(
    base: str, mode: str, n: int, c: int, data: Path, code: Path | None
) -> tuple[float, float]:
    """Requests a second, and CPU microseconds per request, of one bench/upload_client.py
    run (``code``: the package to use)."""
    cmd = [PYTHON, str(BENCH / "upload_client.py"), mode, base]
    cmd += ["--requests", str(n), "--concurrency", str(c)]
    if mode == "sync":
        cmd += ["--input", str(data)]
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    result = run_child(cmd, timeout=600, env=env).json()
    return float(result["rate"]), 1e6 * float(result["cpu_seconds"]) / n


def healthy_part(args: argparse.Namespace, before: Path | None) -> None:
    latency = args.latency
    rows: list[list[object]] = []
    with emulator("--latency", str(latency)) as server:
        base = server.base_url
        for c in (8, 32, 128):
            n = c * args.rounds
            ideal = c / latency
            data = make_csv(n, per=1)
            results: dict[str, list[float]] = {}
            cpu: dict[str, list[float]] = {}

            def one(name: str, mode: str, code: Path | None) -> None:
                rate, us = client_rate(base, mode, n, c, data, code)  # noqa: B023 - called now
                results.setdefault(name, []).append(rate)  # noqa: B023
                cpu.setdefault(name, []).append(us)  # noqa: B023

            one("raw aiohttp (reference)", "aiohttp", None)
            for turn in range(2):  # alternate, so that drift hits both alike
                order = [("before", before), ("after", None)]
                for label, code in order if turn == 0 else order[::-1]:
                    if label == "before" and code is None:
                        continue
                    one(f"Uploader + Client, {label}", "uploader", code)
                    one(f"sync (everything), {label}", "sync", code)
            for name, rates in results.items():
                mean = sum(rates) / len(rates)
                rows.append(
                    [c, name, " / ".join(f"{r:,.0f}" for r in rates), f"{mean:,.0f}",
                     f"{100 * mean / ideal:.1f}%", f"{min(cpu[name]):.0f}"]
                )  # fmt: skip
            for what in ("Uploader + Client", "sync (everything)"):
                b = results.get(f"{what}, before")
                a = results.get(f"{what}, after")
                if a and b:
                    ratio = (sum(a) / len(a)) / (sum(b) / len(b))
                    cpu_ratio = min(cpu[f"{what}, after"]) / min(cpu[f"{what}, before"])
                    rows.append(
                        [c, f"{what}: after / before", "", f"{ratio:.3f}", "",
                         f"{cpu_ratio:.3f}"]
                    )  # fmt: skip
            print(f"  healthy, concurrency {c} done", file=sys.stderr, flush=True)
    print(f"\n## A healthy API, {latency * 1000:.0f} ms latency: before and after, alternated\n")
    print(
        table(
            ["concurrency", "client", "req/s (each run)", "mean", "of ideal", "CPU µs/req (best)"],
            rows,
        )
    )


def overhead_part(args: argparse.Namespace, before: Path | None) -> None:
    """The uploader's own CPU per request, before and after, alternated: what flow
    control costs, apart from everything else that changed in the client since."""
    rows: list[list[object]] = []
    runs: dict[str, list[dict[str, float]]] = {}
    order = [("before", before), ("after", None)]
    for turn in range(3):
        for label, code in order if turn % 2 == 0 else order[::-1]:
            if label == "before" and code is None:
                continue
            env = dict(os.environ)
            if code is not None:
                env["PYTHONPATH"] = str(code)
            child = run_child([PYTHON, str(BENCH / "uploader_overhead.py")], env=env)
            runs.setdefault(label, []).append(child.json())
    for c in ("8", "32", "128"):
        best = {label: min(r[c] for r in results) for label, results in runs.items()}
        row: list[object] = [c]
        row += [f"{best[k]:.1f}" if k in best else "-" for k in ("before", "after")]
        if "before" in best:
            row.append(f"{best['after'] - best['before']:+.1f}")
        rows.append(row)
    print("\n## The uploader's own CPU per request (no network), best of 3 x 5 runs\n")
    print(table(["concurrency", "before µs", "after µs", "difference µs"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--capacities", type=int, nargs="+", default=[48, 100])
    parser.add_argument("--fixed", type=int, nargs="+", default=[8, 48, 64, 128])
    parser.add_argument("--before-fixed", type=int, nargs="*", default=[48, 64])
    parser.add_argument("--outage", type=float, default=20.0)
    parser.add_argument("--long-outage", type=float, default=600.0)
    parser.add_argument("--rounds", type=int, default=100, help="requests per worker (healthy)")
    parser.add_argument("--before", default=BEFORE_FLOW, help="git revision, or '' for none")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["capacity", "outage", "permanent", "healthy", "overhead"],
        choices=["capacity", "outage", "long", "permanent", "healthy", "overhead"],
    )
    args = parser.parse_args()
    ensure_dirs()
    print_machine()
    with open("/proc/loadavg") as f:
        print(f"# load average at start: {' '.join(f.read().split()[:3])}")
    before = before_src(args.before) if args.before else None
    started = time.perf_counter()
    if "capacity" in args.parts:
        capacity_part(args, before)
    if "outage" in args.parts:
        outage_part(args, before, args.outage)
    if "long" in args.parts:
        outage_part(args, None, args.long_outage)
    if "permanent" in args.parts:
        permanent_part(args)
    if "healthy" in args.parts:
        healthy_part(args, before)
    if "overhead" in args.parts:
        overhead_part(args, before)
    with open("/proc/loadavg") as f:
        print(f"\n# load average at the end: {' '.join(f.read().split()[:3])}")
    print(f"# bench_flow.py: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
