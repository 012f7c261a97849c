"""Small helpers shared by the tests: write an input CSV, read a report as plain CSV
(with no product code in between, so the tests see exactly what a user's script sees)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HEADER = ("customer_id", "attribute", "value")


def write_csv(path: Path, rows: Sequence[Sequence[str]], header: Sequence[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def report_lines(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 24)  # reports may hold megabyte values
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def spawn_cli(args: Sequence[str], token: str) -> subprocess.Popen[str]:
    """``python -m bulk_sync ARGS`` as a real process, with the key in its environment."""
    env = dict(os.environ, IC_API_TOKEN=token, PYTHONUNBUFFERED="1")
    env.pop("BULK_SYNC_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bulk_sync", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")
