"""Small helpers shared by the tests: write an input CSV, read a report as plain CSV
(with no product code in between, so the tests see exactly what a user's script sees)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
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
