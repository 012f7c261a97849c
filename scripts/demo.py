"""`make demo`: the whole job against a local emulator with some latency and faults.

Starts `bulk-sync emulator` on loopback, runs `bulk-sync sync samples/...` against it
(dry run first, then the real run), prints the summary and where the report is, and
stops the emulator. Nothing leaves this machine.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out"


def _drain(stream: IO[str]) -> None:
    for line in stream:
        sys.stderr.write(line)


def start_emulator(token: str, state_file: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable, "-m", "bulk_sync", "emulator",
        "--host", "127.0.0.1", "--port", "0", "--token", token,
        "--latency", "0.02", "--jitter", "0.03",
        "--error-rate", "0.05", "--throttle-rate", "0.03", "--retry-after", "1",
        "--drop-rate", "0.02", "--seed", "7",
        "--state-file", str(state_file),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        sys.stderr.write(line)
        if "listening on" in line:
            url = line.split("listening on", 1)[1].split()[0]
            threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
            return proc, url
    proc.kill()
    raise SystemExit("demo: the emulator did not start")


def main() -> int:
    OUT.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    samples = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "samples").iterdir()
        if p.suffix in (".csv", ".xlsx", ".ods", ".xls", ".tsv")
    )
    token = secrets.token_hex(32)  # a throwaway key for the local emulator only
    state_file = OUT / f"demo-emulator-state-{stamp}.json"
    proc, url = start_emulator(token, state_file)
    env = dict(os.environ, IC_API_TOKEN=token)
    try:
        print(f"\n== 1. Dry run: validate {' '.join(samples)} (nothing is sent)\n", flush=True)
        dry_report = OUT / f"demo-dry-run-{stamp}.csv"
        subprocess.run(
            [sys.executable, "-m", "bulk_sync", "sync", *samples, "--dry-run",
             "--report", str(dry_report)],
            cwd=ROOT, env=env, check=False,
        )  # fmt: skip
        print(
            f"\n== 2. Sync against the emulator at {url}"
            " (latency, 5% 503s, 3% 429s, 2% dropped connections)\n",
            flush=True,
        )
        report = OUT / f"demo-report-{stamp}.xlsx"
        run = subprocess.run(
            [sys.executable, "-m", "bulk_sync", "sync", *samples, "--base-url", url,
             "--report", str(report), "--concurrency", "8"],
            cwd=ROOT, env=env, check=False,
        )  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(
        f"\nDemo finished (sync exit code {run.returncode}: "
        + {
            0: "every row ok",
            1: "some rows invalid or failed: see the report",
            2: "unusable input",
            3: "aborted",
        }.get(run.returncode, "?")
        + ")."
    )
    print(f"Report:          {report}")
    print(f"Dry-run report:  {dry_report}")
    print(f"Emulator state:  {state_file} (what the stand-in API holds now)")
    # The samples deliberately contain invalid rows, so exit code 1 is the expected outcome.
    return 0 if run.returncode in (0, 1) else run.returncode


if __name__ == "__main__":
    sys.exit(main())
