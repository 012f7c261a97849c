"""The page's data dir: uploaded files, drafts (files being prepared for a run), runs
and remembered column mappings. Everything is a file, so it survives a restart.

    DATA/
      uploads/<id>.<ext>       an uploaded file, under a name the server chose
      uploads/<id>.json        its original name, size and upload time
      drafts/<id>.json         files chosen for a run, with sheet and column choices
      runs/<id>/run.json       one run: when, which files, settings, outcome
      runs/<id>/report.csv     its report, written by the engine (journal beside it
                               while it runs)
      mappings.json            column mappings, keyed by the headers they were made for
      run.lock                 held while a run sends (one run at a time per data dir)

Ids are made here (``secrets``) and checked against a strict pattern before they touch
the file system, so no name a browser sends can point outside the data dir.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bulk_sync.cells import normalize_header

__all__ = [
    "ACCEPTED_EXTENSIONS",
    "DataDir",
    "Draft",
    "DraftFile",
    "RunRecord",
    "Upload",
    "clean_name",
    "headers_key",
]

ACCEPTED_EXTENSIONS: tuple[str, ...] = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".xls", ".ods")
_ID = re.compile(r"^[0-9A-Za-z-]{6,64}$")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def new_id(prefix: str = "") -> str:
    """A sortable, unguessable id: UTC time then random hex."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}{stamp}-{secrets.token_hex(4)}"


def valid_id(text: str) -> bool:
    return bool(_ID.match(text))


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_NAME_MAX = 200  # characters of a file name kept for the page and the report


def clean_name(name: str) -> str:
    """The last part of a name a browser sent, without path separators or control
    characters (``../../x.csv`` -> ``x.csv``), at most 200 characters (a longer one loses
    the middle, keeping the end and its extension); never empty. Only ever *shown* (escaped)
    and written in reports: files are stored under names the server chose."""
    base = re.split(r"[/\\]", name)[-1]
    base = _UNSAFE_NAME.sub("", base).strip().lstrip(".")
    if len(base) > _NAME_MAX:  # shortened in the middle: the extension says the file's kind
        stem, dot, ext = base.rpartition(".")
        end = 8 + (len(dot + ext) if stem and len(ext) <= 10 else 0)
        base = base[: _NAME_MAX - 1 - end] + "…" + base[-end:]
    return base or "upload"


def headers_key(headers: Sequence[str]) -> str:
    """Which headers a mapping was made for: equal for headers that differ only in
    case, spaces, ``-`` and ``_`` (as the loader matches them)."""
    text = "\x1f".join(normalize_header(h) for h in headers)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Upload:
    id: str
    name: str  # the name the user's file had (cleaned), used in reports and messages
    ext: str
    size: int
    uploaded: str

    def path(self, root: Path) -> Path:
        return root / "uploads" / f"{self.id}{self.ext}"


@dataclass(frozen=True)
class DraftFile:
    """One file of a draft and how to read it."""

    upload: str
    name: str
    ext: str
    size: int
    sheet: str | None = None  # None: the first visible sheet
    all_sheets: bool = False
    wide: bool = False
    columns: Mapping[str, str] = field(default_factory=dict)
    mapping_note: str = ""  # e.g. "column mapping remembered from an earlier file"

    @property
    def is_workbook(self) -> bool:
        return self.ext not in (".csv", ".tsv", ".txt")


@dataclass(frozen=True)
class Draft:
    id: str
    created: str
    files: tuple[DraftFile, ...]
    revision: int = 0

    def with_file(self, index: int, changed: DraftFile) -> Draft:
        files = list(self.files)
        files[index] = changed
        return dataclasses.replace(self, files=tuple(files), revision=self.revision + 1)


@dataclass(frozen=True)
class RunRecord:
    """One run as the history shows it. ``status``: ``running``, ``finished``,
    ``interrupted`` (the server stopped while it ran; resumable) or ``failed`` (it could
    not start: the message says why)."""

    id: str
    kind: str  # "sync", "resume" or "retry"
    started: str
    files: tuple[str, ...]
    draft: str = ""
    parent: str = ""  # the run resumed or retried
    base_url: str = ""
    status: str = "running"
    finished: str = ""
    exit_code: int | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""
    pid: int = 0


class DataDir:
    """Reads and writes the data dir. Every write is atomic (temporary file, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for sub in ("uploads", "drafts", "runs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @property
    def lock_path(self) -> Path:
        return self.root / "run.lock"

    # -- uploads -----------------------------------------------------------------------

    def new_upload_path(self, ext: str) -> tuple[str, Path]:
        upload_id = new_id("u")
        return upload_id, self.root / "uploads" / f"{upload_id}{ext}"

    def save_upload(self, upload: Upload) -> None:
        self._write_json(self.root / "uploads" / f"{upload.id}.json", dataclasses.asdict(upload))

    def upload_path(self, f: DraftFile) -> Path:
        if not valid_id(f.upload) or f.ext not in ACCEPTED_EXTENSIONS:
            raise ValueError("bad upload id")
        return self.root / "uploads" / f"{f.upload}{f.ext}"

    # -- drafts ------------------------------------------------------------------------

    def save_draft(self, draft: Draft) -> None:
        doc = dataclasses.asdict(draft)
        self._write_json(self._draft_path(draft.id), doc)

    def draft(self, draft_id: str) -> Draft | None:
        if not valid_id(draft_id):
            return None
        doc = self._read_json(self._draft_path(draft_id))
        if doc is None:
            return None
        files = tuple(
            DraftFile(**{k: v for k, v in f.items() if k in _DRAFT_FILE_FIELDS})
            for f in doc.get("files", [])
        )
        return Draft(doc["id"], doc["created"], files, int(doc.get("revision", 0)))

    def _draft_path(self, draft_id: str) -> Path:
        return self.root / "drafts" / f"{draft_id}.json"

    # -- runs --------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        if not valid_id(run_id):
            raise ValueError("bad run id")
        return self.root / "runs" / run_id

    def save_run(self, record: RunRecord) -> None:
        directory = self.run_dir(record.id)
        directory.mkdir(exist_ok=True)
        self._write_json(directory / "run.json", dataclasses.asdict(record))

    def run(self, run_id: str) -> RunRecord | None:
        if not valid_id(run_id):
            return None
        doc = self._read_json(self.run_dir(run_id) / "run.json")
        if doc is None:
            return None
        doc = {k: v for k, v in doc.items() if k in _RUN_FIELDS}
        doc["files"] = tuple(doc.get("files", ()))
        return RunRecord(**doc)

    def runs(self) -> Iterator[RunRecord]:
        """Every run, newest first."""
        for directory in sorted((self.root / "runs").iterdir(), reverse=True):
            record = self.run(directory.name)
            if record is not None:
                yield record

    def report_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "report.csv"

    # -- mappings ----------------------------------------------------------------------

    def mapping(self, key: str) -> dict[str, Any] | None:
        doc = self._read_json(self.root / "mappings.json") or {}
        found = doc.get(key)
        return dict(found) if isinstance(found, dict) else None

    def remember_mapping(self, key: str, mapping: Mapping[str, Any]) -> None:
        path = self.root / "mappings.json"
        doc = self._read_json(path) or {}
        doc[key] = dict(mapping)
        self._write_json(path, doc)

    # -- files -------------------------------------------------------------------------

    def _write_json(self, path: Path, doc: Any) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, ensure_ascii=False, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


_DRAFT_FILE_FIELDS = {f.name for f in dataclasses.fields(DraftFile)}
_RUN_FIELDS = {f.name for f in dataclasses.fields(RunRecord)}
