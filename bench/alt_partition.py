"""The alternative measured for issue 14: partition by customer hash into spill files.

    python bench/alt_partition.py FILE.csv --parts 8 --report OUT.csv [--spill DIR]

A dry run of one well-formed CSV done the other way: instead of keeping every row in
memory (as Arrow columns, what bulk_sync does), rows are spilled to disk and processed
one partition at a time, so memory holds one partition (about 1/N of the rows):

1. partition: the CSV is streamed (pyarrow, 1 MiB blocks); each row goes, with its
   position in the file, to the Arrow IPC file of partition ``blake2b(customer) mod N``
   (the same hash as ``--shard``, so conflicts stay inside a partition);
2. plan: each partition is read back and planned with bulk_sync's own validation and
   grouping (``runner.plan``); its statuses and errors are spilled, by position;
3. merge: the CSV is streamed again for the texts, and every partition's results are
   read back in step, to write the report in input order (bulk_sync's column writer).

A prototype for measurement (bench/bench_scale.py runs it beside the real thing and
checks that the two reports are byte for byte the same); not part of the package.
Prints one JSON line: seconds per phase.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pac
import pyarrow.csv as pacsv

from bulk_sync.columns import IntColumn, TextColumn, release_memory
from bulk_sync.config import Settings
from bulk_sync.files import atomic_write
from bulk_sync.ledger import STATUSES
from bulk_sync.models import Table
from bulk_sync.report_columns import LineColumns, write_csv_columns
from bulk_sync.runner import plan
from bulk_sync.shard import shard_of

NAMES = ["customer_id", "attribute", "value"]
SCHEMA = pa.schema([("position", pa.int32()), *((n, pa.string()) for n in NAMES)])
RESULT = pa.schema([("position", pa.int32()), ("status", pa.uint8()), ("error", pa.string())])


def batches(path: Path) -> Any:
    """The CSV's data rows, trimmed, a block at a time (header skipped)."""
    reader = pacsv.open_csv(
        pa.OSFile(str(path)),
        read_options=pacsv.ReadOptions(block_size=1 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(NAMES, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    for batch in reader:
        yield [pac.utf8_trim_whitespace(batch.column(n)) for n in NAMES]


def partition(path: Path, parts: int, spill: Path) -> int:
    writers = [pa.ipc.new_stream(str(spill / f"part-{k}.arrow"), SCHEMA) for k in range(parts)]
    position = 0
    for cid, attr, value in batches(path):
        n = len(cid)
        encoded = cid.dictionary_encode()
        owner = np.fromiter(
            (shard_of(c, parts) for c in encoded.dictionary.to_pylist()), dtype=np.int32
        )[encoded.indices.to_numpy(zero_copy_only=False)]
        positions = pa.array(np.arange(position, position + n, dtype=np.int32))
        for k in range(parts):
            mask = pa.array(owner == k)
            columns = [pac.filter(c, mask) for c in (positions, cid, attr, value)]
            writers[k].write_batch(pa.record_batch(columns, schema=SCHEMA))
        position += n
        release_memory()
    for w in writers:
        w.close()
    return position


def plan_partitions(source: str, parts: int, spill: Path) -> None:
    for k in range(parts):
        with pa.OSFile(str(spill / f"part-{k}.arrow")) as f:
            part = pa.ipc.open_stream(f).read_all()
        positions = part.column("position").to_numpy()
        table = Table(
            source,
            "",
            IntColumn(positions + 2),
            *(TextColumn(part.column(n)) for n in NAMES),
            headers=("customer_id", "attribute", "value"),
        )
        del part
        ledger = plan([table], Settings()).ledger
        texts = pa.array(ledger.texts(), pa.string())
        result = pa.record_batch(
            [
                pa.array(positions.astype(np.int32)),
                pa.array(ledger.status),
                texts.take(pa.array(ledger.error)),
            ],
            schema=RESULT,
        )
        with pa.ipc.new_stream(str(spill / f"result-{k}.arrow"), RESULT) as w:
            w.write_batch(result)
        del ledger, table, result
        release_memory()


class Cursor:
    """One partition's results, read in position order a batch at a time."""

    def __init__(self, path: Path) -> None:
        self.reader = pa.ipc.open_stream(pa.OSFile(str(path)))
        self.pending: Any = None  # a RecordBatch of results not handed out yet
        self.done = False

    def take(self, stop: int) -> Any:
        """Results (a RecordBatch) for positions below ``stop``."""
        parts = []
        while True:
            if self.pending is None or not self.pending.num_rows:
                if self.done:
                    break
                try:
                    self.pending = self.reader.read_next_batch()
                except StopIteration:
                    self.done = True
                    break
            positions = self.pending.column(0).to_numpy()
            cut = int(np.searchsorted(positions, stop))
            parts.append(self.pending.slice(0, cut))
            self.pending = self.pending.slice(cut)
            if self.pending.num_rows:
                break
        return pa.Table.from_batches(parts, schema=RESULT).combine_chunks()


def merge(path: Path, parts: int, spill: Path, report: Path) -> None:
    cursors = [Cursor(spill / f"result-{k}.arrow") for k in range(parts)]
    status_texts = [s.value for s in STATUSES]

    def chunks() -> Any:
        position = 0
        for cid, attr, value in batches(path):
            n = len(cid)
            taken = pa.concat_tables([c.take(position + n) for c in cursors]).combine_chunks()
            where = taken.column("position").to_numpy() - position
            status = np.zeros(n, dtype=np.uint8)
            status[where] = taken.column("status").to_numpy()
            errors = taken.column("error").dictionary_encode().combine_chunks()
            error_codes = np.zeros(n, dtype=np.int32)
            error_codes[where] = errors.indices.to_numpy()
            yield LineColumns(
                source=path.name,
                sheet="",
                rows=np.arange(position + 2, position + n + 2),
                customer_ids=cid,
                attributes=attr,
                values=value,
                status=status,
                status_texts=status_texts,
                http=np.zeros(n, dtype=np.int16),
                errors=error_codes,
                error_texts=errors.dictionary.to_pylist(),
                attempts=np.zeros(n, dtype=np.int32),
            )
            position += n

    atomic_write(report, lambda f: write_csv_columns(f, chunks()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--spill", type=Path, default=None)
    args = parser.parse_args()
    spill = Path(tempfile.mkdtemp(prefix="bulk-sync-spill-", dir=args.spill))
    times: dict[str, float] = {}
    try:
        t = time.perf_counter()
        rows = partition(args.path, args.parts, spill)
        times["partition"] = time.perf_counter() - t
        t = time.perf_counter()
        plan_partitions(args.path.name, args.parts, spill)
        times["plan"] = time.perf_counter() - t
        t = time.perf_counter()
        merge(args.path, args.parts, spill, args.report)
        times["merge"] = time.perf_counter() - t
        spilled = sum(p.stat().st_size for p in spill.iterdir())
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    print(json.dumps({"rows": rows, "spilled_mb": spilled / 1e6, **times}))
    sys.exit(0)


if __name__ == "__main__":
    main()
