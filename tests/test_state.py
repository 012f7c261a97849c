"""The incremental state (``--state``): what is recorded, when it is committed, what a
crash leaves, and the incremental runs it makes possible (end to end, via the CLI)."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bulk_sync import state as state_mod
from bulk_sync.cli import cli
from bulk_sync.emulator import EmulatorThread
from bulk_sync.errors import UsageError
from bulk_sync.models import Pair
from bulk_sync.state import POINT_QUERY_LIMIT, StateStore, pair_hash
from helpers import write_csv as _write_csv


def p(attribute: str, value: str) -> Pair:
    return Pair(attribute, value, (0,))


@pytest.fixture(params=["point-queries", "in-memory"])
def lookup_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run lookup tests both ways: one query per pair, and the loaded set of hashes."""
    if request.param == "in-memory":
        monkeypatch.setattr(state_mod, "POINT_QUERY_LIMIT", 0)
    return str(request.param)


# -- recording and looking up -------------------------------------------------------------


def test_recorded_pair_is_synced_only_with_the_same_value(tmp_path: Path, lookup_mode: str) -> None:
    with StateStore.open(tmp_path / "s.db") as s:
        s.record("C1", [("plan", "gold"), ("segment", "retail")])
        s.flush()
        assert s.is_synced("C1", p("plan", "gold"))
        assert s.is_synced("C1", p("segment", "retail"))
        assert not s.is_synced("C1", p("plan", "silver"))  # changed value
        assert not s.is_synced("C2", p("plan", "gold"))  # other customer
        assert not s.is_synced("C1", p("region", "gold"))  # other attribute
        assert not s.is_synced("C1", p("plan", "gold "))  # exact, not "similar"


def test_state_survives_closing_and_reopening(tmp_path: Path, lookup_mode: str) -> None:
    with StateStore.open(tmp_path / "s.db") as s:
        s.record("C1", [("plan", "gold")])
    with StateStore.open(tmp_path / "s.db") as s:
        assert s.is_synced("C1", p("plan", "gold"))
        assert s.count() == 1


def test_a_newer_value_replaces_the_old_one(tmp_path: Path, lookup_mode: str) -> None:
    with StateStore.open(tmp_path / "s.db") as s:
        s.record("C1", [("plan", "gold")])
        assert s.is_synced("C1", p("plan", "gold"))  # loads the in-memory view, if any
        s.record("C1", [("plan", "silver")])
        assert s.is_synced("C1", p("plan", "silver"))
        assert not s.is_synced("C1", p("plan", "gold"))
        assert s.count() == 1


def test_buffered_records_are_seen_by_lookups_of_the_same_store(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as s:
        s.record("C1", [("plan", "gold")])  # not flushed yet
        assert s.is_synced("C1", p("plan", "gold"))


def test_fields_cannot_run_into_each_other() -> None:
    assert pair_hash("ab", "c", "d") != pair_hash("a", "bc", "d")
    assert pair_hash("a", "b1:c", "") != pair_hash("a", "b", "1:c")
    assert pair_hash("a", "b", "c\ud800") != pair_hash("a", "b", "c")  # lone surrogates hash


def test_last_synced_time_is_stored_per_pair(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as s:
        assert s.last_synced("C1", "plan") is None
        s.record("C1", [("plan", "gold")])
        s.flush()
        stamp = s.last_synced("C1", "plan")
    assert stamp is not None
    assert stamp.endswith("Z")
    assert stamp[:4].isdigit()


def test_the_file_holds_hashes_not_values(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as s:
        s.record("C1", [("iban", "PT50000201231234567890154")])
    assert b"PT50000201231234567890154" not in (tmp_path / "s.db").read_bytes()


def test_run_log_records_each_run_with_counts(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as s:
        s.record("C1", [("a", "1"), ("b", "2")])
    with StateStore.open(tmp_path / "s.db") as s:
        s.is_synced("C1", p("a", "1"))
        s.is_synced("C1", p("b", "3"))
    with StateStore.open(tmp_path / "s.db", log_run=False) as s:
        runs = s.runs()
    assert [(r["recorded"], r["checked"], r["unchanged"]) for r in runs] == [(2, 0, 0), (0, 2, 1)]
    assert all(r["ended_at"] for r in runs)


# -- commits, crashes and concurrent readers ------------------------------------------------


def test_records_are_committed_every_500_records(tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "s.db") as writer:
        writer.record("C1", [(f"a{i}", "v") for i in range(499)])
        assert _committed(tmp_path / "s.db") == 0
        writer.record("C1", [("a499", "v")])
        assert _committed(tmp_path / "s.db") == 500


def test_records_are_committed_after_a_second(tmp_path: Path) -> None:
    now = [100.0]
    with StateStore.open(tmp_path / "s.db", clock=lambda: now[0]) as writer:
        writer.record("C1", [("a", "1")])
        assert _committed(tmp_path / "s.db") == 0
        now[0] += 1.0
        writer.record("C1", [("b", "2")])
        assert _committed(tmp_path / "s.db") == 2


def test_a_crash_before_the_commit_records_nothing_of_the_uncommitted_records(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from bulk_sync.state import StateStore
        s = StateStore.open(Path({str(db)!r}))
        s.record("C1", [("committed", "yes")])
        s.flush()
        s.record("C1", [("buffered", "lost")])
        s.record("C2", [("x", str(i)) for i in range(100)])
        os._exit(9)  # like kill -9: no close, no flush
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 9, proc.stderr.decode()
    with StateStore.open(db) as s:
        assert s.is_synced("C1", p("committed", "yes"))
        assert not s.is_synced("C1", p("buffered", "lost"))
        assert s.count() == 1


def test_a_failed_transaction_commits_nothing_of_its_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "s.db"
    with StateStore.open(db) as writer:
        writer.record("C0", [("a", "1")])
        writer.flush()
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("PRAGMA busy_timeout = 0")
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        writer._conn.execute("PRAGMA busy_timeout = 0")
        writer.record("C1", [("a", "1"), ("b", "2")])
        writer.flush()  # fails: logged, the batch is dropped (it will simply be re-sent)
        blocker.execute("ROLLBACK")
        blocker.close()
        assert "not recorded" in caplog.text
        assert not writer.is_synced("C1", p("a", "1"))
        assert writer.is_synced("C0", p("a", "1"))
        writer.record("C2", [("a", "1")])  # and the store keeps working
        writer.flush()
        assert writer.is_synced("C2", p("a", "1"))


def test_another_process_can_read_while_a_run_writes(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with StateStore.open(db) as writer:
        writer.record("C1", [("a", "1")])
        writer.flush()
        writer._conn.execute("BEGIN IMMEDIATE")  # a commit in progress
        writer._conn.execute(
            "UPDATE pairs SET pair_hash = ? WHERE customer_id = 'C1'", (b"x" * 16,)
        )
        started = time.monotonic()
        with StateStore.open(db, log_run=False) as reader:
            assert reader.is_synced("C1", p("a", "1"))  # the committed version
        assert time.monotonic() - started < 1.0  # WAL: the reader did not wait
        writer._conn.execute("ROLLBACK")


def _committed(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM pairs").fetchone()[0])
    finally:
        conn.close()


# -- files that cannot be used ----------------------------------------------------------------


def test_the_file_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    StateStore.open(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()
    assert meta["schema_version"] == str(state_mod.SCHEMA_VERSION)


def test_a_file_that_is_not_a_state_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "s.db"
    bad.write_text("customer_id,attribute,value\n" * 100)
    with pytest.raises(UsageError, match=r"s\.db: not a usable bulk-sync state file"):
        StateStore.open(bad)


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        StateStore.open(tmp_path / "nope" / "s.db")


def test_a_state_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    StateStore.open(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    with conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(UsageError, match="newer bulk-sync"):
        StateStore.open(tmp_path / "s.db")


def test_a_state_of_another_api_is_refused(tmp_path: Path) -> None:
    StateStore.open(tmp_path / "s.db", scope="http://127.0.0.1:8080").close()
    StateStore.open(tmp_path / "s.db", scope="http://127.0.0.1:8080").close()
    StateStore.open(tmp_path / "s.db").close()  # no scope given: not checked
    with pytest.raises(UsageError, match="separate --state file"):
        StateStore.open(tmp_path / "s.db", scope="https://api.invisiblecollector.com")


# -- speed --------------------------------------------------------------------------------


@pytest.mark.slow
def test_checking_many_pairs_costs_a_bounded_number_of_queries(tmp_path: Path) -> None:
    """Checking is one bulk read of the hashes after a few point queries, not one query a
    pair (how fast that is, bench/ measures; here, that it cannot grow with the input)."""
    n = 200_000
    pairs = [(f"C{i // 4:07d}", p(f"attr{i % 4}", f"value-{i}")) for i in range(n)]
    conn = sqlite3.connect(tmp_path / "s.db")
    StateStore.open(tmp_path / "s.db").close()
    with conn:  # filled directly: recording is not what is checked here
        conn.executemany(
            "INSERT INTO pairs VALUES (?, ?, ?, ?, '2026-01-01T00:00:00Z', NULL)",
            ((cid, q.attribute, b"", pair_hash(cid, q.attribute, q.value)) for cid, q in pairs),
        )
    conn.close()
    statements: list[str] = []
    with StateStore.open(tmp_path / "s.db") as s:
        s._conn.set_trace_callback(statements.append)
        unchanged = sum(s.is_synced(cid, q) for cid, q in pairs)
        s._conn.set_trace_callback(None)
    assert unchanged == n
    assert len(statements) <= POINT_QUERY_LIMIT + 5


# -- incremental runs, end to end -----------------------------------------------------------


def _statuses(report: Path) -> list[tuple[str, str, str]]:
    with report.open(newline="", encoding="utf-8") as f:
        return [(r["customer_id"], r["attribute"], r["status"]) for r in csv.DictReader(f)]


@pytest.fixture
def run_sync(api_token: str, tmp_path: Path) -> Callable[..., Result]:
    config = tmp_path / "fast.yaml"
    config.write_text("backoff_initial: 0.001\nbackoff_max: 0.01\n")

    def run(*args: str) -> Result:
        return CliRunner().invoke(
            cli,
            ["sync", *args, "--config", str(config)],
            env={"IC_API_TOKEN": api_token},
            catch_exceptions=False,
        )

    return run


def test_second_incremental_run_sends_nothing_and_a_changed_value_sends_one_pair(
    tmp_path: Path,
    run_sync: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    server = emulator_thread()
    rows = [(f"C{c}", f"attr{a}", f"v{c}{a}") for c in range(5) for a in range(3)]
    src = _write_csv(tmp_path / "in.csv", rows)
    db = tmp_path / "state.db"
    url = server.base_url

    first = run_sync(str(src), "--state", str(db), "--report", str(tmp_path / "1.csv"),
                     "--base-url", url)  # fmt: skip
    assert first.exit_code == 0, first.output
    assert server.state.requests_total == 5

    second = run_sync(str(src), "--state", str(db), "--report", str(tmp_path / "2.csv"),
                      "--base-url", url)  # fmt: skip
    assert second.exit_code == 0, second.output
    assert server.state.requests_total == 5  # nothing sent
    assert {s for _, _, s in _statuses(tmp_path / "2.csv")} == {"skipped"}
    with (tmp_path / "2.csv").open(newline="", encoding="utf-8") as f:
        assert {r["error"] for r in csv.DictReader(f)} == {
            "already synced; unchanged since the last run (state)"
        }

    rows[4] = ("C1", "attr1", "changed")
    _write_csv(src, rows)
    third = run_sync(str(src), "--state", str(db), "--report", str(tmp_path / "3.csv"),
                     "--base-url", url)  # fmt: skip
    assert third.exit_code == 0, third.output
    assert server.state.requests_total == 6  # one request ...
    assert server.state.customers["C1"]["attr1"] == "changed"
    statuses = _statuses(tmp_path / "3.csv")
    assert [r for r in statuses if r[2] == "ok"] == [("C1", "attr1", "ok")]  # ... one pair

    full = run_sync(str(src), "--state", str(db), "--full", "--report", str(tmp_path / "4.csv"),
                    "--base-url", url)  # fmt: skip
    assert full.exit_code == 0, full.output
    assert server.state.requests_total == 11  # --full sends everything again
    assert {s for _, _, s in _statuses(tmp_path / "4.csv")} == {"ok"}


def test_rows_the_api_refused_are_not_recorded(
    tmp_path: Path,
    run_sync: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    server = emulator_thread(customers=frozenset({"C1"}))  # C2 gets 404
    src = _write_csv(tmp_path / "in.csv", [("C1", "a", "1"), ("C2", "a", "1")])
    db = tmp_path / "state.db"
    result = run_sync(str(src), "--state", str(db), "--report", str(tmp_path / "r.csv"),
                      "--base-url", server.base_url)  # fmt: skip
    assert result.exit_code == 1, result.output
    with StateStore.open(db, log_run=False) as s:
        assert s.is_synced("C1", p("a", "1"))
        assert not s.is_synced("C2", p("a", "1"))
        assert s.count() == 1
