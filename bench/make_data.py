"""Make bench input files in bench/data/ (git-ignored). Files already there are reused.

    python bench/make_data.py csv 1000000            # 100k customers x 10 of 20 attribute names
    python bench/make_data.py csv 20000 --attributes-per-customer 1   # 20k customers x 1
    python bench/make_data.py xlsx 200000

Rows are grouped by customer (as exports usually are); each customer gets
``--attributes-per-customer`` distinct names out of ``--attribute-names`` (20 by
default), so nothing conflicts. Values mix digits, words, accents and dates.
Prints the path of the file.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DATA, ensure_dirs

_WORDS = (
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


def _name(kind: str, rows: int, per: int, names: int) -> Path:
    suffix = "" if (per, names) == (10, 20) else f"-{per}of{names}"
    return DATA / f"rows-{rows}{suffix}.{kind}"


def _records(rows: int, per: int, names: int, seed: int) -> list[tuple[str, str, str]]:
    rnd = random.Random(seed)
    attributes = [f"attr_{k:02d}" for k in range(names)]
    out: list[tuple[str, str, str]] = []
    customer = 0
    while len(out) < rows:
        customer += 1
        cid = f"C{customer:08d}"
        for attr in rnd.sample(attributes, per):
            if len(out) == rows:
                break
            pick = rnd.random()
            if pick < 0.5:
                value = str(rnd.randrange(10**9))
            elif pick < 0.8:
                value = rnd.choice(_WORDS)
            else:
                value = f"{rnd.choice(_WORDS)} {rnd.randrange(1000)}"
            out.append((cid, attr, value))
    return out


def make_csv(rows: int, per: int = 10, names: int = 20, seed: int = 1) -> Path:
    ensure_dirs()
    path = _name("csv", rows, per, names)
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write("customer_id,attribute,value\n")
        chunk: list[str] = []
        for cid, attr, value in _records(rows, per, names, seed):
            chunk.append(f"{cid},{attr},{value}\n")
            if len(chunk) >= 100_000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
    tmp.replace(path)
    return path


def make_xlsx(rows: int, per: int = 10, names: int = 20, seed: int = 1) -> Path:
    from openpyxl import Workbook

    ensure_dirs()
    path = _name("xlsx", rows, per, names)
    if path.exists():
        return path
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("data")
    ws.append(["Customer ID", "Attribute", "Value"])
    for cid, attr, value in _records(rows, per, names, seed):
        # Some values as numbers, as Excel users leave them.
        ws.append([cid, attr, int(value) if value.isdigit() and value[0] != "0" else value])
    tmp = path.with_name(path.stem + ".tmp.xlsx")
    wb.save(tmp)
    tmp.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("csv", "xlsx"))
    parser.add_argument("rows", type=int)
    parser.add_argument("--attributes-per-customer", type=int, default=10)
    parser.add_argument("--attribute-names", type=int, default=20)
    args = parser.parse_args()
    make = make_csv if args.kind == "csv" else make_xlsx
    print(make(args.rows, args.attributes_per_customer, args.attribute_names))


if __name__ == "__main__":
    main()
