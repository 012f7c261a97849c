"""``--shard K/N``: the customers one of N cooperating runs takes, and the rows it keeps.

A customer belongs to shard ``blake2b(customer id) mod N``: the same on every machine
and in every process (unlike Python's salted ``hash``), so N pods given ``K = 0..N-1``
cover every customer exactly once. Every row of a customer lands in the same shard,
so conflicts, duplicates and ``--on-conflict last`` are decided within one shard
exactly as in a single run.

A shard keeps only its own rows, as early as possible: the CSV reader drops the others
batch by batch while loading (:func:`owned_mask` on each batch), and :func:`only_shard`
does the same to tables loaded whole (workbooks, data frames), so validation, grouping,
the ledger and the report only ever see the shard's rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pac  # type: ignore[import-untyped]

from bulk_sync.columns import IntColumn, TextColumn, int_array, text_arrow
from bulk_sync.errors import ConfigError
from bulk_sync.models import Table

__all__ = ["Shard", "only_shard", "owned_mask", "shard_of"]


@dataclass(frozen=True, slots=True)
class Shard:
    """``--shard K/N``: customers whose stable hash modulo N is K."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            k_text, n_text = text.split("/")
            k, n = int(k_text), int(n_text)
        except ValueError:
            raise ConfigError(f"--shard must look like K/N, e.g. 0/4 (got {text!r})") from None
        if n < 1 or not 0 <= k < n:
            raise ConfigError(f"--shard {text}: need 0 <= K < N")
        return cls(k, n)

    def owns(self, customer_id: str) -> bool:
        return shard_of(customer_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(customer_id: str, count: int) -> int:
    """Stable across processes and machines (unlike Python's salted ``hash``)."""
    digest = hashlib.blake2b(customer_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def owned_mask(customer_ids: Any, shard: Shard) -> Any:
    """A numpy bool per row: whether ``shard`` owns that row's customer. The hash is
    computed once per distinct id (Arrow dictionary-encodes the column first)."""
    arrow = text_arrow(customer_ids)
    if len(arrow) == 0:
        return np.zeros(0, dtype=np.bool_)
    encoded = arrow.dictionary_encode()
    chunks = encoded.chunks
    dictionary = chunks[-1].dictionary.to_pylist()
    index, count = shard.index, shard.count
    owned = np.fromiter(
        (shard_of(c, count) == index for c in dictionary), dtype=np.bool_, count=len(dictionary)
    )
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    return owned[codes]


def only_shard(table: Table, shard: Shard) -> Table:
    """``table`` with only the rows of ``shard``'s customers (row numbers kept)."""
    if not len(table):
        return table
    keep = owned_mask(table.customer_ids, shard)
    if keep.all():
        return table
    return select_rows(table, keep)


def select_rows(table: Table, keep: Any) -> Table:
    """The rows of ``table`` where ``keep`` (a numpy bool per row) is true, with their
    defects and skips renumbered."""
    mask = pa.array(keep)
    position = np.cumsum(keep) - 1  # new local index of each kept row
    labels: Any = table.value_columns
    if len(labels):
        labels = TextColumn(pac.filter(text_arrow(labels), mask))
    return Table(
        source=table.source,
        sheet=table.sheet,
        rows=IntColumn(int_array(table.rows)[keep]),
        customer_ids=TextColumn(pac.filter(text_arrow(table.customer_ids), mask)),
        attributes=TextColumn(pac.filter(text_arrow(table.attributes), mask)),
        values=TextColumn(pac.filter(text_arrow(table.values), mask)),
        headers=table.headers,
        value_columns=labels,
        defects=tuple((int(position[k]), c, m) for k, c, m in table.defects if keep[k]),
        skips=tuple((int(position[k]), note) for k, note in table.skips if keep[k]),
    )
