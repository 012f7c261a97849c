"""Big CSV inputs made on the fly (vectorized with pyarrow: 20M rows in seconds).

    python bench/big_data.py OUT.csv ROWS [--attributes-per-customer 10] [--seed 1]

The shape of ``make_data.py``'s files: rows grouped by customer (``C00000001``, ...),
each customer with ``--attributes-per-customer`` distinct names out of 20 (``attr_07``),
values a mix of numbers, words with accents, phone numbers and dates. The bench scripts
write these files to a temporary folder and delete them afterwards: they are never kept
in the repository (20M rows are about 600 MB).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pac

WORDS = (
    "retail",
    "gold",
    "São Paulo",
    "Lisboa",
    "Évora",
    "premium",
    "00123",
    "NA",
    "Conceição",
    "late payer",
    "2024-05-01",
    "+351 912 345 678",
)
NAMES = 20
CHUNK = 1_000_000


def _chunk(rng: np.random.Generator, first_row: int, rows: int, per: int, words: pa.Array) -> bytes:
    """The bytes of rows ``first_row`` .. ``first_row + rows`` (each ends in a newline)."""
    k = np.arange(first_row, first_row + rows, dtype=np.int64)
    customer = k // per + 1
    # Distinct attributes per customer: a random rotation of 0..NAMES-1 with a random step
    # coprime to NAMES, taken at position k % per.
    starts = rng.integers(0, NAMES, size=rows)
    steps = np.array([1, 3, 7, 9, 11, 13, 17, 19])[rng.integers(0, 8, size=rows)]
    # One start and step per customer: take those drawn for the customer's first row.
    head = (customer - 1) * per - first_row
    head = np.clip(head, 0, rows - 1)
    attr = (starts[head] + (k % per) * steps[head]) % NAMES
    cid = pac.binary_join_element_wise(
        "C", pac.utf8_lpad(pac.cast(pa.array(customer), pa.string()), 8, "0"), ""
    )
    names = pa.array([f"attr_{j:02d}" for j in range(NAMES)])
    attribute = names.take(pa.array(attr))
    pick = rng.random(rows)
    number = pac.cast(pa.array(rng.integers(0, 10**9, size=rows)), pa.string())
    word = words.take(pa.array(rng.integers(0, len(words), size=rows)))
    suffix = pac.cast(pa.array(rng.integers(0, 1000, size=rows)), pa.string())
    worded = pac.binary_join_element_wise(word, suffix, " ")
    value = pac.if_else(
        pa.array(pick < 0.5), number, pac.if_else(pa.array(pick < 0.8), word, worded)
    )
    line = pac.binary_join_element_wise(cid, attribute, value, ",")
    line = pac.binary_join_element_wise(line, "\n", "")  # every line ends in a newline
    offsets = np.frombuffer(line.buffers()[1], dtype=np.int32)[: len(line) + 1]
    data = line.buffers()[2]
    return data.to_pybytes()[offsets[0] : offsets[-1]]


def write_csv(path: Path, rows: int, per: int = 10, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    words = pa.array(WORDS)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(b"customer_id,attribute,value\n")
        step = max(1, CHUNK // per) * per  # no customer straddles two chunks
        for first in range(0, rows, step):
            f.write(_chunk(rng, first, min(step, rows - first), per, words))
    tmp.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("rows", type=int)
    parser.add_argument("--attributes-per-customer", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(write_csv(args.path, args.rows, args.attributes_per_customer, args.seed))


if __name__ == "__main__":
    main()
