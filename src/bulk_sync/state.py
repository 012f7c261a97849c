"""Incremental state: what is already synced, in an embedded SQLite file (``--state``).

    >>> with StateStore.open(Path("state.db")) as state:  # doctest: +SKIP
    ...     state.is_synced("C1", pair)        # True only for exactly this value
    ...     state.record("C1", [("plan", "gold")])  # after the API accepted it

What is stored, per (customer, attribute): a blake2b-16 hash of the value the API
confirmed (never the value itself: the file stays small and holds no customer data)
and when it was synced. A ``runs`` table logs each run that opened the file.

Guarantees:

- a pair is recorded only after :meth:`StateStore.record` was told it was accepted;
  records are buffered and committed in transactions (every 500 records or every
  second, and on :meth:`flush`/:meth:`close`). A crash loses at most the records of
  the last second, which the next run simply sends again (the API is idempotent); it
  never leaves a half-written transaction or a pair that was not accepted.
- WAL mode: other processes may read the file while a run writes it.
- ``scope`` (for example the API base URL) is written into the file on first use, and
  a later open with another scope is refused: a state built against the emulator
  must not make a production run skip everything.

Lookups: :meth:`is_synced` answers its first calls with one indexed query each; once
a run has asked more than :data:`POINT_QUERY_LIMIT` times it loads one 16-byte hash
per stored pair into a set (about 80 bytes of memory per pair) and answers from
memory, so a million pairs are checked in about a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from bulk_sync.errors import UsageError
from bulk_sync.files import show_path
from bulk_sync.models import Pair

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
FLUSH_EVERY_RECORDS = 500
FLUSH_EVERY_SECONDS = 1.0
POINT_QUERY_LIMIT = 5_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pairs (
    customer_id TEXT NOT NULL,
    attribute   TEXT NOT NULL,
    value_hash  BLOB NOT NULL,   -- blake2b-16 of the value as confirmed by the API
    pair_hash   BLOB NOT NULL,   -- blake2b-16 of (customer, attribute, value): what lookups use
    synced_at   TEXT NOT NULL,   -- UTC, ISO 8601
    run_id      INTEGER,
    PRIMARY KEY (customer_id, attribute)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    pid         INTEGER,
    host        TEXT,
    command     TEXT,
    checked     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    recorded    INTEGER NOT NULL DEFAULT 0
);
"""

_UPSERT = """
INSERT INTO pairs (customer_id, attribute, value_hash, pair_hash, synced_at, run_id)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (customer_id, attribute) DO UPDATE SET
    value_hash = excluded.value_hash,
    pair_hash  = excluded.pair_hash,
    synced_at  = excluded.synced_at,
    run_id     = excluded.run_id
"""

_Record = tuple[str, str, bytes, bytes, str, int | None]


def value_hash(value: str) -> bytes:
    """blake2b-16 of a value (what the state stores instead of the value)."""
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def pair_hash(customer_id: str, attribute: str, value: str) -> bytes:
    """blake2b-16 of the triple, length-prefixed so that no two triples share an input."""
    text = f"{len(customer_id)}:{customer_id}{len(attribute)}:{attribute}{value}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def _refuse_links(path: Path) -> None:
    """SQLite follows symbolic links, and writes its ``-wal``/``-shm`` files beside the
    database: a link planted at any of those names (in a folder others can write to)
    would have the run create or overwrite the file it points to. Refuse them; create a
    new state file ourselves, never through a link."""
    for suffix in _SIDE_FILES:
        name = path.with_name(path.name + suffix)
        if os.path.islink(name):
            raise UsageError(
                f"--state {show_path(path)}: {show_path(name)} is a symbolic link; the state "
                "is never written through a link (someone may have planted it to have the "
                "run overwrite another file). Remove it and run again"
            )
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666
        )
    except FileExistsError:
        if not os.path.isfile(path) or os.path.islink(path):
            raise UsageError(f"--state {show_path(path)}: not a plain file") from None
        return
    except OSError as exc:
        raise UsageError(
            f"--state {show_path(path)}: cannot create it: {exc.strerror or exc}"
        ) from None
    os.close(fd)


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StateStore:
    """What is already synced. Open with :meth:`open`; use as a context manager."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        run_id: int | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        self.path = path
        self.run_id = run_id
        self._clock = clock
        self._buffer: list[_Record] = []
        self._last_flush = clock()
        self._hashes: set[bytes] | None = None  # loaded lazily, see is_synced
        self._point_queries = 0
        self._checked = 0
        self._unchanged = 0
        self._recorded = 0
        self._closed = False

    # -- opening and closing ------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        scope: str | None = None,
        log_run: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> StateStore:
        """Open (creating it if needed) the state file at ``path``.

        ``scope`` names what the state is about (e.g. the API base URL); an existing
        file recorded with another scope is refused. ``log_run=False`` opens it without
        adding a line to the ``runs`` table (for inspection). ``clock`` (monotonic
        seconds) times the commits.
        Raises :class:`UsageError` when the file cannot be used.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise UsageError(f"--state {path}: folder {path.parent} does not exist")
        _refuse_links(path)
        try:
            conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise UsageError(f"--state {path}: cannot open the state file: {exc}") from None
        try:
            run_id = cls._prepare(conn, path, scope, log_run)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, run_id, clock=clock)

    @staticmethod
    def _prepare(
        conn: sqlite3.Connection, path: Path, scope: str | None, log_run: bool
    ) -> int | None:
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise UsageError(
                    f"--state {path}: cannot switch the state file to WAL mode "
                    f"(journal_mode is {mode[0] if mode else '?'}); is it on a network drive?"
                )
            conn.execute("PRAGMA synchronous = NORMAL")
            meta = _read_meta(conn)
            _check_meta(meta, path, scope)
            fresh = "schema_version" not in meta
            if not (fresh or log_run or (scope is not None and "scope" not in meta)):
                return None  # nothing to write: a reader never waits for a writer
            with _transaction(conn):
                if fresh:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                meta = _read_meta(conn)  # again, inside the transaction
                _check_meta(meta, path, scope)
                conn.executemany(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)), ("created_at", _utc_now())]
                    + ([("scope", scope)] if scope is not None else []),
                )
                if not log_run:
                    return None
                cur = conn.execute(
                    "INSERT INTO runs (started_at, pid, host, command) VALUES (?, ?, ?, ?)",
                    (_utc_now(), os.getpid(), socket.gethostname(), json.dumps(sys.argv)),
                )
                return cur.lastrowid
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise UsageError(
                    f"--state {path}: the state file stayed busy (another process is writing "
                    "it); try again later"
                ) from None
            raise UsageError(f"--state {path}: cannot use the state file ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"--state {path}: not a usable bulk-sync state file ({exc})") from None

    def close(self) -> None:
        """Commit what is buffered, log the run's end and close the file. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
            if self.run_id is not None:
                with contextlib.suppress(sqlite3.Error), _transaction(self._conn):
                    self._conn.execute(
                        "UPDATE runs SET ended_at = ?, checked = ?, unchanged = ?, recorded = ? "
                        "WHERE id = ?",
                        (_utc_now(), self._checked, self._unchanged, self._recorded, self.run_id),
                    )
        finally:
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- lookups ------------------------------------------------------------------------

    def is_synced(self, customer_id: str, pair: Pair) -> bool:
        """True when the state records exactly ``pair.value`` for (customer, attribute)."""
        if self._buffer:
            self.flush()
        self._checked += 1
        h = pair_hash(customer_id, pair.attribute, pair.value)
        hashes = self._hashes
        if hashes is None:
            if self._point_queries < POINT_QUERY_LIMIT:
                self._point_queries += 1
                row = self._conn.execute(
                    "SELECT 1 FROM pairs WHERE customer_id = ? AND attribute = ? AND pair_hash = ?",
                    (customer_id, pair.attribute, h),
                ).fetchone()
                found = row is not None
                self._unchanged += found
                return found
            hashes = self._hashes = self._load_hashes()
        found = h in hashes
        self._unchanged += found
        return found

    def _load_hashes(self) -> set[bytes]:
        return {h for (h,) in self._conn.execute("SELECT pair_hash FROM pairs")}

    def count(self) -> int:
        """Pairs recorded (buffered records are committed first).

        Not ``__len__``: an empty store must not be falsy (``if state:`` would skip it).
        """
        self.flush()
        row = self._conn.execute("SELECT count(*) FROM pairs").fetchone()
        return int(row[0])

    # -- recording ----------------------------------------------------------------------

    def record(self, customer_id: str, accepted: Iterable[tuple[str, str]]) -> None:
        """Remember that the API accepted these (attribute, value) pairs for the customer.

        Buffered; committed every :data:`FLUSH_EVERY_RECORDS` records or
        :data:`FLUSH_EVERY_SECONDS` seconds, and by :meth:`flush`/:meth:`close`.
        """
        if self._closed:
            raise RuntimeError("StateStore is closed")
        now = _utc_now()
        run_id = self.run_id
        buf = self._buffer
        for attribute, value in accepted:
            buf.append(
                (
                    customer_id,
                    attribute,
                    value_hash(value),
                    pair_hash(customer_id, attribute, value),
                    now,
                    run_id,
                )
            )
        self._hashes = None  # the in-memory view is stale now; reload when next asked
        if (
            len(buf) >= FLUSH_EVERY_RECORDS
            or self._clock() - self._last_flush >= FLUSH_EVERY_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Commit the buffered records in one transaction."""
        self._last_flush = self._clock()
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            with _transaction(self._conn):
                self._conn.executemany(_UPSERT, batch)
        except sqlite3.Error as exc:
            # Losing records is safe: those pairs are simply sent again by the next run.
            # Stopping an upload because the state file is full would not be.
            log.warning(
                "cannot write the state file %s: %s; %d accepted pairs were not recorded "
                "and will be sent again by the next run",
                self.path,
                exc,
                len(batch),
                extra={"event": "state_write_failed", "pairs": len(batch)},
            )
            return
        self._recorded += len(batch)

    # -- inspection ---------------------------------------------------------------------

    def runs(self) -> list[dict[str, object]]:
        """The run log, oldest first."""
        cur = self._conn.execute(
            "SELECT id, started_at, ended_at, pid, host, command, checked, unchanged, recorded "
            "FROM runs ORDER BY id"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def last_synced(self, customer_id: str, attribute: str) -> str | None:
        """When (UTC, ISO 8601) this pair was last recorded, or ``None``."""
        row = self._conn.execute(
            "SELECT synced_at FROM pairs WHERE customer_id = ? AND attribute = ?",
            (customer_id, attribute),
        ).fetchone()
        return None if row is None else str(row[0])


def _read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if found is None:
        return {}
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}


def _check_meta(meta: Mapping[str, str], path: Path, scope: str | None) -> None:
    try:
        version = int(meta.get("schema_version", "0"))
    except ValueError:
        version = SCHEMA_VERSION + 1
    if version > SCHEMA_VERSION:
        raise UsageError(
            f"--state {path} was written by a newer bulk-sync (state schema "
            f"{meta.get('schema_version')}, this one knows {SCHEMA_VERSION}); upgrade bulk-sync"
        )
    known = meta.get("scope")
    if scope is not None and known is not None and known != scope:
        raise UsageError(
            f"--state {path} records what was synced to {known}, not to {scope}; use a "
            "separate --state file for each API (for example one for the emulator, one for "
            "production)"
        )


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit
    connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
