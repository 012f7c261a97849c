"""What the loading stage can be told: :class:`LoadOptions`, the file kinds it knows, and
how a user may spell a delimiter."""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass, field

from bulk_sync.cells import normalize_header
from bulk_sync.errors import ConfigError
from bulk_sync.shard import Shard

DELIMITED_EXTENSIONS: tuple[str, ...] = (".csv", ".tsv", ".txt")
WORKBOOK_EXTENSIONS: dict[str, str] = {
    ".xlsx": "XLSX",
    ".xlsm": "XLSM",
    ".xlsb": "XLSB",
    ".xls": "XLS",
    ".ods": "ODS",
}
CANDIDATE_DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
LOGICAL_COLUMNS: tuple[str, str, str] = ("customer_id", "attribute", "value")
CELL_MODES: tuple[str, ...] = ("exact", "as_shown")

_DELIMITER_NAMES = {
    "tab": "\t",
    "\\t": "\t",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
}
MiB = 1024 * 1024
GiB = 1024 * MiB


def parse_delimiter(text: str) -> str:
    """A delimiter as a user may spell it (``";"``, ``"\\t"``, ``"tab"``, ``"pipe"``)."""
    char = _DELIMITER_NAMES.get(text.strip().casefold(), text) if len(text) != 1 else text
    if len(char) != 1 or char in '"\r\n' or char.isalnum():
        raise ConfigError(
            f"delimiter {text!r} cannot be used: give one character such as ',' ';' '|' or 'tab'"
        )
    return char


@dataclass(frozen=True)
class LoadOptions:
    """How to read input files. Every field has a default that detects what it can.

    ``columns`` maps a logical column (``customer_id``, ``attribute``, ``value``) to
    the header text used in the files instead (matched like any header: case, spaces,
    ``-`` and ``_`` do not matter). The ``max_*`` limits protect the run from files
    that would exhaust memory (zip bombs, a quote that is never closed). ``shard``:
    keep only the rows of that shard's customers (``--shard K/N``); the CSV reader drops
    the others while reading, so a shard holds about 1/N of the file in memory.
    """

    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    all_sheets: bool = False
    wide: bool = False
    columns: Mapping[str, str] = field(default_factory=dict)
    max_file_bytes: int = 2 * GiB
    max_uncompressed_bytes: int = 2 * GiB
    max_compression_ratio: int = 200
    max_cell_chars: int = 100_000
    cells: str = "exact"  # "as_shown": numbers with a display-only format sent as shown
    shard: Shard | None = None

    def __post_init__(self) -> None:
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ConfigError(f"unknown encoding {self.encoding!r}") from None
        if self.delimiter is not None:
            object.__setattr__(self, "delimiter", parse_delimiter(self.delimiter))
        if self.cells not in CELL_MODES:
            raise ConfigError(
                f"cells: {self.cells!r} is not one of " + ", ".join(repr(m) for m in CELL_MODES)
            )
        if self.sheet is not None and self.all_sheets:
            raise ConfigError("give either a sheet name or all sheets, not both")
        columns: dict[str, str] = {}
        for key, header in self.columns.items():
            logical = normalize_header(str(key))
            if logical not in LOGICAL_COLUMNS:
                raise ConfigError(
                    f"columns: unknown column {key!r}; expected one of "
                    + ", ".join(LOGICAL_COLUMNS)
                )
            if not str(header).strip():
                raise ConfigError(f"columns: the header for {logical!r} is empty")
            columns[logical] = str(header).strip()
        object.__setattr__(self, "columns", columns)
        for name in (
            "max_file_bytes",
            "max_uncompressed_bytes",
            "max_compression_ratio",
            "max_cell_chars",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")


def size_text(n: int) -> str:
    if n >= GiB:
        return f"{n / GiB:.1f} GB"
    if n >= MiB:
        return f"{n / MiB:.1f} MB"
    return f"{n} bytes"
