"""The dry run of a draft: each file's sheets and header, whether it loads, and the
:func:`~bulk_sync.preview.preview` of all of them together.

Runs in a worker thread (loading and validating a large file takes seconds); the result
is cached per draft revision, so paging through problems does not load again.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bulk_sync.cells import normalize_header
from bulk_sync.config import Settings
from bulk_sync.errors import BulkSyncError
from bulk_sync.loading import load_bytes
from bulk_sync.loading.peek import Peek, peek
from bulk_sync.models import CellNotice, Table
from bulk_sync.preview import Preview, preview
from bulk_sync.web.runs import load_options_for
from bulk_sync.web.store import DataDir, Draft, DraftFile

__all__ = ["Analysis", "FileView", "analyse", "column_letters"]


def column_letters(j: int) -> str:
    """``A`` for 0, ``Z`` for 25, ``AA`` for 26: the spreadsheet's own column names."""
    letters = ""
    j += 1
    while j:
        j, rem = divmod(j - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


@dataclass(frozen=True)
class FileView:
    """One file of a draft as the page shows it."""

    index: int
    file: DraftFile
    peek: Peek | None
    peek_error: str
    load_error: str
    tables: tuple[tuple[str, int], ...]  # (sheet, rows) of what was loaded
    notices: tuple[CellNotice, ...] = ()  # cells sent otherwise than the sheet shows them

    @property
    def ok(self) -> bool:
        return not self.load_error and not self.peek_error

    @property
    def left_out(self) -> tuple[tuple[str, str], ...]:
        """With "all sheets": the worksheets not read, each with why (``hidden``, or
        ``without the columns``), as the command line warns about them."""
        if self.peek is None or not self.file.all_sheets or not self.tables:
            return ()
        read = {sheet for sheet, _ in self.tables}
        return tuple(
            (s.name, "without the columns" if s.visible else "hidden")
            for s in self.peek.sheets
            if s.name not in read
        )

    def chosen(self, logical: str) -> str:
        """The header chosen (or found) for ``customer_id``, ``attribute`` or ``value``."""
        if logical in self.file.columns:
            return self.file.columns[logical]
        if self.peek is None:
            return ""
        wanted = normalize_header(logical)
        return next((h for h in self.peek.headers if normalize_header(h) == wanted), "")

    def letter_of(self, header: str) -> str:
        """The column letter of a header text in this file ("" when not found)."""
        if self.peek is None or not header:
            return ""
        try:
            return column_letters(self.peek.headers.index(header))
        except ValueError:
            return ""


@dataclass(frozen=True)
class Analysis:
    revision: int
    files: tuple[FileView, ...]
    preview: Preview | None
    error: str = ""

    @property
    def ready(self) -> bool:
        return self.preview is not None

    def letter(self, source: str, sheet: str, header: str) -> str:
        for view in self.files:
            if view.file.name == source and (not sheet or any(s == sheet for s, _ in view.tables)):
                letter = view.letter_of(header)
                if letter:
                    return letter
        return ""


def analyse(data: DataDir, draft: Draft, settings: Settings) -> Analysis:
    views: list[FileView] = []
    tables: list[Table] = []
    for index, f in enumerate(draft.files):
        options = load_options_for(f, settings)
        raw = data.upload_path(f).read_bytes()
        the_peek: Peek | None = None
        peek_error = load_error = ""
        loaded: list[Table] = []
        try:
            the_peek = peek(raw, f.name, options)
        except BulkSyncError as exc:
            peek_error = str(exc)
        try:
            loaded = load_bytes(raw, f.name, options)
        except BulkSyncError as exc:
            load_error = str(exc)
        del raw
        tables.extend(loaded)
        views.append(
            FileView(
                index,
                f,
                the_peek,
                peek_error,
                load_error,
                tuple((t.sheet, len(t)) for t in loaded),
                tuple(n for t in loaded for n in t.notices),
            )
        )
    result: Preview | None = None
    error = ""
    if views and all(v.ok for v in views):
        try:
            with _read_only_state(settings) as state:
                result = preview(tables, settings, state=state)
        except BulkSyncError as exc:
            error = str(exc)
    return Analysis(draft.revision, tuple(views), result, error)


@contextlib.contextmanager
def _read_only_state(settings: Settings) -> Iterator[Any]:
    """The ``--state`` file, read only (as ``sync --dry-run`` reads it): pairs already
    synced show as ``skipped``."""
    if settings.state is None or not settings.state.exists():
        yield None
        return
    from bulk_sync.state import StateStore

    with StateStore.open(settings.state, scope=settings.base_url, log_run=False) as state:
        yield state


class AnalysisCache:
    """The last few analyses, keyed by draft id and revision."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int], Analysis] = OrderedDict()

    def get(self, draft: Draft) -> Analysis | None:
        key = (draft.id, draft.revision)
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, draft: Draft, analysis: Analysis) -> None:
        self._items[(draft.id, draft.revision)] = analysis
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def forget(self, ids: Sequence[str]) -> None:
        for key in [k for k in self._items if k[0] in ids]:
            del self._items[key]
