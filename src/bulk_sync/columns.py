"""Compact columns: text in Arrow string arrays, row numbers in numpy arrays.

A million Python strings cost about 60 MB and a second to make; the same text in an
Arrow array costs its UTF-8 bytes plus 4 bytes of offset. Rows therefore travel from
loading to the report as :class:`TextColumn` (an Arrow ``ChunkedArray`` of strings)
and :class:`IntColumn` (a numpy array); Python strings are made only for the few rows a
stage looks at one by one (a problem, an upload job, a chunk of report lines).

Both are read-only :class:`~collections.abc.Sequence` values, so code and tests that
index them or compare them with lists keep working; the stages that handle every row
use :attr:`TextColumn.arrow` and :attr:`IntColumn.array` with vectorized operations.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pac  # type: ignore[import-untyped]

__all__ = ["IntColumn", "TextColumn", "int_array", "release_memory", "text_arrow"]

_BATCH = 65_536  # strings made at a time when a column is iterated


def _use_the_system_allocator() -> None:
    """Arrow memory from the C library's malloc rather than pyarrow's bundled mimalloc.

    Loading keeps a trimmed copy of every parsed block and frees the block: mimalloc
    keeps the freed pages between the kept ones, and a 5M-row CSV peaked at 486 MB
    loaded and 658 MB planned with it, against 319 MB and 454 MB with malloc (trimmed
    after each block by :func:`release_memory`). Measured with ``bench/bench_scale.py``;
    see docs/benchmarks.md. A choice made by the environment variable
    ``ARROW_DEFAULT_MEMORY_POOL`` is left alone.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _fixed_mmap_threshold(_MMAP_THRESHOLD)


_MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _fixed_mmap_threshold(size: int) -> None:
    """Blocks of ``size`` bytes and more get their own mapping, given back when freed.

    glibc raises this threshold (up to 32 MB) each time such a block is freed, after
    which the parser's blocks come from the heap, between the columns kept from them,
    and stay there: a 20M-row dry run peaked at 1.50 GB that way, 1.41 GB with 1 MiB
    fixed (128 KiB: 1.40 GB, but 30% slower). A C library without ``mallopt`` (musl,
    macOS) is left as it is.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mallopt(_M_MMAP_THRESHOLD, size)


_use_the_system_allocator()


def release_memory() -> None:
    """Hand the pages Arrow has freed back to the operating system now."""
    pa.default_memory_pool().release_unused()


class TextColumn(Sequence[str]):
    """An immutable column of strings held as an Arrow ``ChunkedArray`` (``string`` or
    ``large_string``); never null."""

    __slots__ = ("arrow",)

    def __init__(self, data: Any) -> None:
        self.arrow: Any = text_arrow(data)

    @classmethod
    def concat(cls, columns: Iterable[Sequence[str]]) -> TextColumn:
        chunks: list[Any] = []
        for column in columns:
            chunks.extend(text_arrow(column).chunks)
        return cls(_chunked(chunks))

    def __len__(self) -> int:
        return len(self.arrow)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> TextColumn: ...
    def __getitem__(self, index: int | slice) -> str | TextColumn:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return TextColumn(self.pylist()[index])
            return TextColumn(self.arrow.slice(start, max(0, stop - start)))
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("TextColumn index out of range")
        value: str = self.arrow[index].as_py()
        return value

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), _BATCH):
            yield from self.pylist(start, start + _BATCH)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TextColumn):
            return bool(self.arrow.equals(other.arrow)) or self.pylist() == other.pylist()
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and self.pylist() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = self.pylist(0, 5)
        more = ", ..." if len(self) > 5 else ""
        return f"TextColumn({head!r}{more} of {len(self)})"

    def pylist(self, start: int = 0, stop: int | None = None) -> list[str]:
        """Python strings of rows ``start`` .. ``stop``."""
        n = len(self)
        stop = n if stop is None else min(stop, n)
        if start >= stop:
            return []
        out: list[str] = self.arrow.slice(start, stop - start).to_pylist()
        return out

    def take(self, indices: Any) -> list[str]:
        """Python strings of the rows at ``indices`` (a numpy integer array or a list)."""
        if len(indices) == 0:
            return []
        out: list[str] = self.arrow.take(pa.array(np.asarray(indices, dtype=np.int64))).to_pylist()
        return out

    def combined(self) -> Any:
        """The column as one Arrow array (chunks joined; no copy for a single chunk)."""
        arrow = self.arrow
        if arrow.num_chunks == 1:
            return arrow.chunk(0)
        if arrow.num_chunks == 0:
            return pa.array([], pa.string())
        return arrow.combine_chunks()


class IntColumn(Sequence[int]):
    """An immutable column of whole numbers held in a numpy array (row numbers)."""

    __slots__ = ("array",)

    def __init__(self, data: Any) -> None:
        self.array: Any = int_array(data)

    def __len__(self) -> int:
        return len(self.array)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> IntColumn: ...
    def __getitem__(self, index: int | slice) -> int | IntColumn:
        if isinstance(index, slice):
            return IntColumn(self.array[index])
        return int(self.array[index])

    def __iter__(self) -> Iterator[int]:
        for start in range(0, len(self), _BATCH):
            yield from self.array[start : start + _BATCH].tolist()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IntColumn | range | list | tuple):
            return len(other) == len(self) and bool(np.array_equal(self.array, np.asarray(other)))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"IntColumn({self.array.tolist()[:5]!r} of {len(self)})"


def text_arrow(data: Any) -> Any:
    """``data`` (a TextColumn, an Arrow array or chunked array, or a sequence of str) as a
    ``ChunkedArray`` of Arrow strings."""
    if isinstance(data, TextColumn):
        return data.arrow
    if isinstance(data, pa.ChunkedArray):
        return _chunked(list(data.chunks)) if not _is_text(data.type) else data
    if isinstance(data, pa.Array):
        return _chunked([data])
    return _chunked([pa.array(list(data), type=pa.string())])


def int_array(data: Any) -> Any:
    """Row numbers as a numpy integer array (int32 where they fit; a range becomes
    ``arange``, without a list; an integer array is taken as it is)."""
    if isinstance(data, IntColumn):
        return data.array
    if isinstance(data, range):
        narrow = min(data.start, data.stop) >= -(2**31) and max(data.start, data.stop) < 2**31
        return np.arange(data.start, data.stop, data.step, dtype=np.int32 if narrow else np.int64)
    if isinstance(data, np.ndarray):
        return data if data.dtype.kind in "iu" else data.astype(np.int64)
    return np.asarray(list(data), dtype=np.int64)


def _is_text(kind: Any) -> bool:
    return bool(kind == pa.string() or kind == pa.large_string())


def _chunked(chunks: list[Any]) -> Any:
    if not chunks:
        return pa.chunked_array([], pa.string())
    kinds = {c.type for c in chunks}
    if kinds == {pa.string()} or kinds == {pa.large_string()}:
        return pa.chunked_array(chunks)
    # Mixed string widths (or dictionary / other text types): everything as large_string.
    converted = []
    for c in chunks:
        if pa.types.is_dictionary(c.type):
            c = c.dictionary.take(c.indices)
        converted.append(pac.cast(c, pa.large_string()))
    return pa.chunked_array(converted, pa.large_string())
