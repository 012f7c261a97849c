"""Migration-sized runs: time and peak memory at 1M, 5M and 20M rows (issue 14).

    python bench/bench_scale.py [--rows 1000000 5000000 20000000] [--sync-rows 1000000]
                                [--shard-rows 20000000] [--inner-rows 1000000]
                                [--small 1000 10000 100000] [--baseline SRC] [--repeat 3]
                                [--tmp DIR]

Every input is generated on the fly (``big_data.py``) in a temporary folder and deleted
when its rows are measured: nothing big is ever kept. For each size, each in its own
process, peak RSS from ``os.wait4``:

- reference: ``pandas.read_csv(path, engine="pyarrow", dtype=str)``;
- ``inner``: load + validate + group (``bulk_sync.loading.load`` + ``runner.plan``),
  timed inside the child (imports excluded), ``--inner-rows`` sizes only (best of
  ``--repeat``);
- ``dry``: ``python -m bulk_sync sync FILE --dry-run --report OUT.csv`` (the CSV report
  written), wall time of the whole command; the report's line count is checked;
- ``shard``: the same dry run with ``--shard 0/4`` (``--shard-rows`` sizes);
- ``sync``: a full sync against the emulator (its own process, zero latency,
  ``--concurrency 32``), every row checked ``ok`` (``--sync-rows`` sizes);
- ``shard sync``: the full sync of ``--shard 0/4`` (``--shard-sync-rows`` sizes);
- ``resume``: a dry run resuming the full sync's report (``--resume-rows`` sizes, which
  must also be ``--sync-rows`` sizes): every row skipped as already sent;
- ``alternative``: ``alt_partition.py``, the same dry run with the rows partitioned by
  customer hash into ``--alt-parts`` spill files and planned one partition at a time
  (``--alt-rows`` sizes); its report must be byte for byte the dry run's.

``--small`` sizes run the dry run and ``inner`` side by side with ``--baseline SRC``, a
``src`` folder of an earlier bulk_sync (e.g. ``git archive e133a47 src | tar -x -C
/tmp/base``), best of ``--repeat``: the regression check at 1k-100k rows.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH, PYTHON, ROOT, TOKEN, emulator, print_machine, run_child, table

TIMEOUT = 3600.0


def write_csv(path: Path, rows: int) -> Path:
    """big_data.py in a child: this process stays small, so that the peak RSS of the
    children it forks (which starts at this process's size) is their own."""
    run = run_child([PYTHON, str(BENCH / "big_data.py"), str(path), str(rows)], timeout=900)
    if run.returncode != 0:
        raise RuntimeError(f"big_data.py failed: {run.stderr[-2000:]}")
    return path


def _env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONHASHSEED="0")
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def inner(path: Path, repeat: int, src: Path | None = None) -> dict[str, Any]:
    best: dict[str, Any] | None = None
    peak = 0.0
    for _ in range(repeat):
        run = run_child(
            [PYTHON, str(BENCH / "load_child.py"), "bulk_sync", str(path)],
            timeout=TIMEOUT,
            env=_env(src),
        )
        result = run.json()
        peak = max(peak, run.maxrss_mb)
        if best is None or result["seconds"] < best["seconds"]:
            best = result
    assert best is not None
    best["maxrss_mb"] = peak
    return best


def reference(path: Path, repeat: int) -> dict[str, Any]:
    best: dict[str, Any] | None = None
    for _ in range(repeat):
        run = run_child([PYTHON, str(BENCH / "load_child.py"), "pandas", str(path)], timeout=600)
        result = run.json()
        result["maxrss_mb"] = run.maxrss_mb
        if best is None or result["seconds"] < best["seconds"]:
            best = result
    assert best is not None
    return best


def cli(
    path: Path,
    rows: int,
    *args: str,
    repeat: int = 1,
    src: Path | None = None,
    token: str | None = None,
    expect_ok: bool = False,
    keep: Path | None = None,
) -> dict[str, Any]:
    """``python -m bulk_sync sync PATH ARGS``: best wall time, highest peak RSS."""
    report = path.with_name(f"report-{os.getpid()}.csv")
    summary = path.with_name(f"summary-{os.getpid()}.json")
    best: dict[str, Any] | None = None
    peak = 0.0
    env = _env(src)
    if token is not None:
        env["IC_API_TOKEN"] = token
    for _ in range(repeat):
        cmd = [PYTHON, "-m", "bulk_sync", "sync", str(path), *args, "--report", str(report)]
        cmd += ["--overwrite", "--no-progress", "--quiet", "--summary-json", str(summary)]
        run = run_child(cmd, timeout=TIMEOUT, env=env, cwd=ROOT)
        if run.returncode not in (0, 1):
            raise RuntimeError(f"{cmd} failed ({run.returncode}): {run.stderr[-2000:]}")
        lines, digest = _count_and_hash(report)
        facts = json.loads(summary.read_text())
        if expect_ok and facts["counts"]["ok"] != facts["rows"]:
            raise RuntimeError(f"not every row ok: {facts['counts']}")
        peak = max(peak, run.maxrss_mb)
        if best is None or run.wall < best["wall"]:
            best = {"wall": run.wall, "lines": lines, "summary": facts, "sha256": digest}
        if keep is not None:
            report.replace(keep)
            meta = report.with_name(report.name + ".meta.json")
            if meta.exists():
                meta.replace(keep.with_name(keep.name + ".meta.json"))
        else:
            report.unlink()
        summary.unlink()
    assert best is not None
    best["maxrss_mb"] = peak
    if best["lines"] > rows:
        raise RuntimeError(f"{best['lines']} report lines for {rows} rows")
    return best


def _count_and_hash(report: Path) -> tuple[int, str]:
    """Report lines (header excepted: the generated values hold no line break, so a line
    is a record) and the file's SHA-256."""
    digest = hashlib.sha256()
    lines = 0
    with report.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
            lines += chunk.count(b"\n")
    return lines - 1, digest.hexdigest()


def alternative(path: Path, parts: int) -> dict[str, Any]:
    """bench/alt_partition.py (partitions spilled to disk) on the same file."""
    report = path.with_name(f"alt-{os.getpid()}.csv")
    run = run_child(
        [PYTHON, str(BENCH / "alt_partition.py"), str(path), "--parts", str(parts),
         "--report", str(report), "--spill", str(path.parent)],
        timeout=TIMEOUT,
    )  # fmt: skip
    result = run.json()
    result["wall"] = run.wall
    result["maxrss_mb"] = run.maxrss_mb
    result["lines"], result["sha256"] = _count_and_hash(report)
    report.unlink()
    return result


def mb(x: float) -> str:
    return f"{x:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--sync-rows", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--shard-rows", type=int, nargs="*", default=[20_000_000])
    parser.add_argument("--inner-rows", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--alt-rows", type=int, nargs="*", default=[20_000_000])
    parser.add_argument("--shard-sync-rows", type=int, nargs="*", default=[])
    parser.add_argument("--resume-rows", type=int, nargs="*", default=[])
    parser.add_argument("--alt-parts", type=int, nargs="*", default=[4, 8])
    parser.add_argument("--small", type=int, nargs="*", default=[])
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmp", type=Path, default=None)
    args = parser.parse_args()
    print_machine()
    folder = Path(tempfile.mkdtemp(prefix="bulk-sync-bench-", dir=args.tmp))
    try:
        if args.small:
            _small(folder, args)
        _large(folder, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _small(folder: Path, args: argparse.Namespace) -> None:
    rows: list[list[object]] = []
    for n in args.small:
        path = write_csv(folder / f"rows-{n}.csv", n)
        for label, src in (("before (baseline)", args.baseline), ("now", None)):
            if label.startswith("before") and src is None:
                continue
            dry = cli(path, n, "--dry-run", repeat=args.repeat, src=src)
            mine = inner(path, args.repeat, src)
            rows.append(
                [
                    f"{n:,}",
                    label,
                    f"{mine['seconds'] * 1000:.1f} ms",
                    f"{dry['wall']:.2f} s",
                    mb(dry["maxrss_mb"]),
                ]
            )
        path.unlink()
    print("\n## Small runs, side by side with the baseline (best of", args.repeat, ")\n")
    print(table(["rows", "code", "load+validate+group", "dry run wall", "dry run peak"], rows))


def _large(folder: Path, args: argparse.Namespace) -> None:
    out: list[list[object]] = []
    peaks: dict[str, list[tuple[int, float]]] = {}
    for n in args.rows:
        t = time.perf_counter()
        path = write_csv(folder / f"rows-{n}.csv", n)
        size = path.stat().st_size
        print(f"  ({n:,} rows: {size / 1e6:,.0f} MB made in {time.perf_counter() - t:.1f}s)",
              file=sys.stderr)  # fmt: skip
        repeat = args.repeat if n <= 1_000_000 else 1
        ref = reference(path, repeat)
        label = f"{n:,} ({size / 1e6:,.0f} MB)"
        out.append(
            [label, "pandas.read_csv(engine=pyarrow, dtype=str)", f"{ref['seconds']:.2f} s",
             mb(ref["maxrss_mb"]), ""]
        )  # fmt: skip
        if n in args.inner_rows:
            mine = inner(path, repeat)
            out.append(
                [label, f"load+validate+group (load {mine['load_seconds']:.2f} s)",
                 f"{mine['seconds']:.2f} s", mb(mine["maxrss_mb"]),
                 f"{mine['seconds'] / ref['seconds']:.1f}x the reference"]
            )  # fmt: skip
        dry = cli(path, n, "--dry-run", repeat=repeat)
        peaks.setdefault("dry run", []).append((n, dry["maxrss_mb"]))
        out.append(
            [label, "sync --dry-run, CSV report", f"{dry['wall']:.1f} s", mb(dry["maxrss_mb"]),
             f"{dry['lines']:,} report lines"]
        )  # fmt: skip
        for parts in args.alt_parts if n in args.alt_rows else ():
            alt = alternative(path, parts)
            same = "the same bytes" if alt["sha256"] == dry["sha256"] else "REPORT DIFFERS"
            out.append(
                [label, f"alternative: {parts} partitions spilled to disk (alt_partition.py)",
                 f"{alt['wall']:.1f} s", mb(alt["maxrss_mb"]),
                 f"{alt['spilled_mb']:,.0f} MB spilled; partition {alt['partition']:.1f} s, "
                 f"plan {alt['plan']:.1f} s, merge {alt['merge']:.1f} s; report: {same}"]
            )  # fmt: skip
        if n in args.shard_rows:
            shard = cli(path, n, "--dry-run", "--shard", "0/4", repeat=repeat)
            share = shard["maxrss_mb"] / dry["maxrss_mb"]
            out.append(
                [label, "sync --dry-run --shard 0/4", f"{shard['wall']:.1f} s",
                 mb(shard["maxrss_mb"]), f"{shard['lines']:,} lines; {share:.0%} of unsharded"]
            )  # fmt: skip
        if n in args.shard_sync_rows:
            with emulator() as server:
                part = cli(
                    path, n, "--base-url", server.base_url, "--concurrency", "32",
                    "--shard", "0/4", token=TOKEN, expect_ok=True,
                )  # fmt: skip
            s = part["summary"]
            out.append(
                [label, "sync --shard 0/4 against the emulator", f"{part['wall']:.1f} s",
                 mb(part["maxrss_mb"]),
                 f"{s['rows']:,} rows, {s['requests']:,} requests, "
                 f"{s['requests'] / part['wall']:,.0f} req/s"]
            )  # fmt: skip
        if n in args.sync_rows:
            done = path.with_name(f"done-{n}.csv") if n in args.resume_rows else None
            with emulator() as server:
                full = cli(
                    path, n, "--base-url", server.base_url, "--concurrency", "32",
                    token=TOKEN, expect_ok=True, keep=done,
                )  # fmt: skip
            s = full["summary"]
            peaks.setdefault("full sync", []).append((n, full["maxrss_mb"]))
            out.append(
                [label, "sync against the emulator (zero latency)", f"{full['wall']:.1f} s",
                 mb(full["maxrss_mb"]),
                 f"{s['requests']:,} requests, {s['requests'] / full['wall']:,.0f} req/s"]
            )  # fmt: skip
            if done is not None:
                again = cli(path, n, "--dry-run", "--resume", str(done), "--resume-any-url")
                skipped = again["summary"]["counts"]["skipped"]
                out.append(
                    [label, "sync --dry-run --resume (the full sync's report)",
                     f"{again['wall']:.1f} s", mb(again["maxrss_mb"]),
                     f"{skipped:,} rows skipped as already sent"]
                )  # fmt: skip
                done.unlink()
                done.with_name(done.name + ".meta.json").unlink(missing_ok=True)
        path.unlink()
    print("\n## Migration sizes (each line its own process; peak RSS from wait4)\n")
    print(table(["rows (file)", "what", "time", "peak RSS", "notes"], out))
    growth: list[list[object]] = []
    for what, points in peaks.items():
        for (n1, p1), (n2, p2) in itertools.pairwise(points):
            per_row = (p2 - p1) * 1e6 / (n2 - n1)
            floor = p1 - per_row * n1 / 1e6
            growth.append([what, f"{n1:,} -> {n2:,}", f"{per_row:.0f} bytes", mb(floor)])
    if growth:
        print("\n## Peak memory per row (slope between sizes) and the floor it implies\n")
        print(table(["run", "rows", "per row", "floor (intercept)"], growth))


if __name__ == "__main__":
    main()
