"""Inbox mode: ``bulk-sync sync --inbox DIR --archive DIR`` for a drop folder.

The loop is tested with a fake runner (order, moves, failures, interruptions), then
end to end through the CLI against the emulator.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bulk_sync.cli import cli
from bulk_sync.emulator import EmulatorThread
from bulk_sync.errors import ConfigError, InputError, UsageError
from bulk_sync.inbox import (
    DEFAULT_MIN_AGE,
    LOCK_NAME,
    InboxFile,
    min_age_from_env,
    process_inbox,
    report_path_for,
)
from bulk_sync.lock import RunLock
from bulk_sync.models import Status
from bulk_sync.runner import Summary

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def summary(code: int, report: Path, aborted: str = "") -> Summary:
    counts = {s.value: 0 for s in Status}
    counts["ok"] = 1
    return Summary(counts, 1, 1, 1, 0, 0.1, report, code, False, aborted=aborted)


def drop(folder: Path, name: str, age: float, text: str = "customer_id,attribute,value\n") -> Path:
    """A file in ``folder`` last modified ``age`` seconds before NOW."""
    path = folder / name
    path.write_text(text)
    os.utime(path, (NOW - age, NOW - age))
    return path


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    archive.mkdir()
    return inbox, archive


class FakeRunner:
    """Stands for one sync per file: records the calls, writes the report, answers
    with the exit code (or exception) planned for each file name."""

    def __init__(self, plan: dict[str, int | Exception] | None = None) -> None:
        self.plan = plan or {}
        self.calls: list[tuple[str, Path]] = []

    def __call__(self, file: InboxFile, report: Path) -> Summary:
        assert file.data == file.path.read_bytes()  # read once, through the descriptor
        self.calls.append((file.name, report))
        outcome = self.plan.get(file.name, 0)
        if isinstance(outcome, Exception):
            raise outcome
        report.write_text("report\n")
        return summary(outcome, report, aborted="interrupted by SIGTERM" if outcome == 3 else "")


# -- the loop, with a fake runner ------------------------------------------------------------


def test_files_are_processed_oldest_first_then_by_name(folders: tuple[Path, Path]) -> None:
    inbox, archive = folders
    drop(inbox, "c.csv", age=300)
    drop(inbox, "b.xlsx", age=100)
    drop(inbox, "a.csv", age=100)
    drop(inbox, "d.tsv", age=900)
    run = FakeRunner()
    result = process_inbox(inbox, archive, run, clock=lambda: NOW)
    assert [name for name, _ in run.calls] == ["d.tsv", "c.csv", "a.csv", "b.xlsx"]
    assert result.exit_code == 0
    assert list(inbox.iterdir()) == []


def test_each_file_is_moved_to_the_archive_with_its_report_beside_it(
    folders: tuple[Path, Path],
) -> None:
    inbox, archive = folders
    drop(inbox, "customers.csv", age=60, text="original")
    drop(inbox, "book.xlsx", age=30)
    run = FakeRunner()
    result = process_inbox(inbox, archive, run, clock=lambda: NOW)
    assert (archive / "customers.csv").read_text() == "original"
    assert sorted(p.name for p in archive.iterdir()) == [
        "book.xlsx",
        "book.xlsx.20270115T080000Z.report.xlsx",  # a workbook gets a workbook report
        "customers.csv",
        "customers.csv.20270115T080000Z.report.csv",
    ]
    assert [(f.outcome, f.archived_as) for f in result.files] == [
        ("done", archive / "customers.csv"),
        ("done", archive / "book.xlsx"),
    ]


def test_a_name_already_in_the_archive_gets_the_time_added(folders: tuple[Path, Path]) -> None:
    inbox, archive = folders
    (archive / "daily.csv").write_text("yesterday's")
    (archive / "daily.csv.20270115T080000Z.report.csv").write_text("an earlier report")
    drop(inbox, "daily.csv", age=60, text="today's")
    run = FakeRunner()
    process_inbox(inbox, archive, run, clock=lambda: NOW)
    assert (archive / "daily.csv").read_text() == "yesterday's"
    assert (archive / "daily.20270115T080000Z.csv").read_text() == "today's"
    assert run.calls[0][1] == archive / "daily.csv.20270115T080000Z-1.report.csv"


def test_hidden_unsupported_recent_files_and_folders_are_left_alone(
    folders: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    inbox, archive = folders
    drop(inbox, ".upload.csv", age=600)  # an SFTP upload in progress
    drop(inbox, "notes.pdf", age=600)
    drop(inbox, "fresh.csv", age=DEFAULT_MIN_AGE - 1)  # may still be being written
    (inbox / "sub.csv").mkdir()
    drop(inbox, "ready.csv", age=DEFAULT_MIN_AGE + 1)
    run = FakeRunner()
    with caplog.at_level(logging.INFO, logger="bulk_sync"):
        result = process_inbox(inbox, archive, run, clock=lambda: NOW)
    assert [name for name, _ in run.calls] == ["ready.csv"]
    assert sorted(p.name for p in inbox.iterdir()) == [".upload.csv", "fresh.csv", "notes.pdf",
                                                       "sub.csv"]  # fmt: skip
    assert [p.name for p in result.waiting] == ["fresh.csv"]
    assert "fresh.csv was modified less than 10s ago" in caplog.text


def test_an_unusable_file_goes_to_failed_with_its_error_and_the_run_goes_on(
    folders: tuple[Path, Path],
) -> None:
    inbox, archive = folders
    drop(inbox, "bad.xlsx", age=200)
    drop(inbox, "good.csv", age=100)
    error = InputError("not an XLSX workbook (it is a text file)", source="bad.xlsx")
    run = FakeRunner({"bad.xlsx": error})
    result = process_inbox(inbox, archive, run, clock=lambda: NOW)
    assert [name for name, _ in run.calls] == ["bad.xlsx", "good.csv"]
    assert (archive / "failed" / "bad.xlsx").exists()
    text = (archive / "failed" / "bad.xlsx.error.txt").read_text()
    assert "bad.xlsx: not an XLSX workbook (it is a text file)" in text
    assert "nothing was sent" in text
    assert (archive / "good.csv").exists()
    assert [(f.outcome, f.exit_code) for f in result.files] == [("failed", 2), ("done", 0)]
    assert result.exit_code == 2


def test_an_aborted_run_stops_and_leaves_the_file_in_the_inbox(
    folders: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    inbox, archive = folders
    drop(inbox, "first.csv", age=300)
    drop(inbox, "second.csv", age=200)
    drop(inbox, "third.csv", age=100)
    run = FakeRunner({"second.csv": 3})
    result = process_inbox(inbox, archive, run, clock=lambda: NOW)
    assert [name for name, _ in run.calls] == ["first.csv", "second.csv"]
    assert sorted(p.name for p in inbox.iterdir()) == ["second.csv", "third.csv"]
    assert (archive / "first.csv").exists()
    assert result.exit_code == 3
    assert result.files[-1].outcome == "stopped"
    assert "stays in the inbox (and 1 file(s) after it)" in caplog.text


def test_the_exit_code_is_the_worst_of_the_files(folders: tuple[Path, Path]) -> None:
    inbox, archive = folders
    for age, name in enumerate(["ok.csv", "rows.csv", "ok2.csv"]):
        drop(inbox, name, age=100 - age)
    result = process_inbox(inbox, archive, FakeRunner({"rows.csv": 1}), clock=lambda: NOW)
    assert [f.exit_code for f in result.files] == [0, 1, 0]
    assert result.exit_code == 1


def test_an_empty_inbox_exits_0_and_says_so(
    folders: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    inbox, archive = folders
    with caplog.at_level(logging.INFO, logger="bulk_sync"):
        result = process_inbox(inbox, archive, FakeRunner(), clock=lambda: NOW)
    assert result.exit_code == 0
    assert result.files == ()
    assert "inbox empty" in caplog.text


def test_a_dry_run_moves_nothing(folders: tuple[Path, Path]) -> None:
    inbox, archive = folders
    drop(inbox, "a.csv", age=100)
    drop(inbox, "bad.csv", age=50)
    run = FakeRunner({"bad.csv": InputError("no customer_id column", source="bad.csv")})
    result = process_inbox(inbox, archive, run, dry_run=True, clock=lambda: NOW)
    assert sorted(p.name for p in inbox.iterdir()) == ["a.csv", "bad.csv"]
    assert [p.name for p in archive.iterdir()] == ["a.csv.20270115T080000Z.dry-run.report.csv"]
    assert [(f.outcome, f.exit_code) for f in result.files] == [("dry_run", 0), ("failed", 2)]


def test_report_names_never_reuse_a_report_or_a_journal(tmp_path: Path) -> None:
    (tmp_path / "a.csv.T.report.csv.journal.jsonl").write_text("")
    assert report_path_for(tmp_path, Path("a.csv"), "T").name == "a.csv.T-1.report.csv"


def test_min_age_comes_from_the_environment() -> None:
    assert min_age_from_env({}) == DEFAULT_MIN_AGE
    assert min_age_from_env({"BULK_SYNC_INBOX_MIN_AGE": "0"}) == 0.0
    assert min_age_from_env({"BULK_SYNC_INBOX_MIN_AGE": " 2.5 "}) == 2.5
    for bad in ("-1", "soon", "nan"):
        with pytest.raises(ConfigError, match="BULK_SYNC_INBOX_MIN_AGE"):
            min_age_from_env({"BULK_SYNC_INBOX_MIN_AGE": bad})


# -- end to end, through the CLI ------------------------------------------------------------


def write_csv(path: Path, rows: list[tuple[str, str, str]], age: float) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(("customer_id", "attribute", "value"))
        w.writerows(rows)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def report_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def run_cli(api_token: str, tmp_path: Path) -> Callable[..., Result]:
    config = tmp_path / "fast.yaml"
    config.write_text("backoff_initial: 0.001\nbackoff_max: 0.01\n")

    def run(*args: str, token: str = api_token) -> Result:
        return CliRunner().invoke(
            cli,
            ["sync", *args, "--config", str(config)],
            env={"IC_API_TOKEN": token, "BULK_SYNC_INBOX_MIN_AGE": "5"},
            catch_exceptions=False,
        )

    return run


def test_inbox_run_end_to_end(
    folders: tuple[Path, Path],
    tmp_path: Path,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    inbox, archive = folders
    server = emulator_thread()
    write_csv(inbox / "tuesday.csv", [("C1", "plan", "gold"), ("C2", "plan", "")], age=60)
    write_csv(inbox / "monday.csv", [("C1", "plan", "silver"), ("C3", "plan", "gold")], age=120)
    garbage = inbox / "garbage.xlsx"
    garbage.write_bytes(b"this is not a workbook at all\n")
    os.utime(garbage, (time.time() - 90,) * 2)
    write_csv(inbox / "fresh.csv", [("C9", "plan", "x")], age=0)  # too recent: waits

    summary_json, metrics = tmp_path / "summary.json", tmp_path / "bulk_sync.prom"
    result = run_cli("--inbox", str(inbox), "--archive", str(archive),
                     "--base-url", server.base_url, "--summary-json", str(summary_json),
                     "--metrics-file", str(metrics))  # fmt: skip
    assert result.exit_code == 2, result.output  # the worst: garbage.xlsx could not be used

    # oldest first: monday (silver), then tuesday (gold) wins for C1
    assert server.state.customers["C1"] == {"plan": "gold"}
    assert server.state.customers["C3"] == {"plan": "gold"}
    assert sorted(p.name for p in inbox.iterdir()) == ["fresh.csv"]
    names = sorted(p.name for p in archive.iterdir() if p.name != LOCK_NAME)
    reports = [n for n in names if n.endswith(".report.csv")]
    metas = [n for n in names if n.endswith(".report.csv.meta.json")]  # each report's facts
    assert metas == [f"{n}.meta.json" for n in reports]
    assert [n for n in names if n not in reports + metas] == [
        "failed",
        "monday.csv",
        "tuesday.csv",
    ]
    assert [n.split(".csv.")[0] for n in reports] == ["monday", "tuesday"]  # no journal left
    assert (archive / LOCK_NAME).exists()  # locked, although --state was not given

    tuesday = report_rows(archive / reports[1])
    assert [(r["customer_id"], r["status"]) for r in tuesday] == [("C1", "ok"), ("C2", "invalid")]
    assert (archive / "failed" / "garbage.xlsx").read_bytes().startswith(b"this is not")
    error = (archive / "failed" / "garbage.xlsx.error.txt").read_text()
    assert "garbage.xlsx" in error
    assert "nothing was sent" in error

    doc = json.loads(summary_json.read_text())
    assert doc["exit_code"] == 2
    assert [(f["source"], f["outcome"], f["exit_code"]) for f in doc["files"]] == [
        ("monday.csv", "done", 0),
        ("garbage.xlsx", "failed", 2),
        ("tuesday.csv", "done", 1),
    ]
    assert doc["counts"]["ok"] == 3
    assert doc["counts"]["invalid"] == 1
    assert doc["files_waiting"] == ["fresh.csv"]
    assert 'bulk_sync_exit_code{job="bulk_sync"} 2' in metrics.read_text()


def test_quiet_inbox_runs_log_only_warnings_and_errors(
    folders: tuple[Path, Path],
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    """--quiet (the cron entry of docs/operations.md): no info lines, not even the
    inbox's own ones before the first file's run, nor "inbox empty" every 5 minutes."""
    inbox, archive = folders
    server = emulator_thread()
    write_csv(inbox / "a.csv", [("C1", "plan", "gold")], age=60)
    write_csv(inbox / "b.csv", [("C2", "plan", "")], age=30)
    args = ["--inbox", str(inbox), "--archive", str(archive), "--base-url", server.base_url]
    for expected in (1, 0):  # two files (one row invalid), then an empty inbox
        result = run_cli(*args, "--quiet", "--log-format", "json")
        assert result.exit_code == expected, result.output
        assert result.stdout == ""
        levels = [json.loads(line)["level"] for line in result.stderr.splitlines()]
        assert set(levels) <= {"warning", "error"}, result.stderr
    assert server.state.customers["C1"] == {"plan": "gold"}
    loud = run_cli(*args, "--log-format", "json")  # without --quiet the info lines remain
    assert "inbox empty" in loud.stderr


def test_inbox_with_state_skips_what_an_earlier_file_already_synced(
    folders: tuple[Path, Path],
    tmp_path: Path,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    inbox, archive = folders
    server = emulator_thread()
    state = str(tmp_path / "state.db")
    write_csv(inbox / "a.csv", [("C1", "plan", "gold"), ("C2", "plan", "gold")], age=60)
    first = run_cli("--inbox", str(inbox), "--archive", str(archive), "--state", state,
                    "--base-url", server.base_url)  # fmt: skip
    assert first.exit_code == 0, first.output
    assert server.state.requests_total == 2

    write_csv(inbox / "a.csv", [("C1", "plan", "gold"), ("C2", "plan", "silver")], age=60)
    second = run_cli("--inbox", str(inbox), "--archive", str(archive), "--state", state,
                     "--base-url", server.base_url,
                     "--summary-json", str(tmp_path / "s.json"))  # fmt: skip
    assert second.exit_code == 0, second.output
    assert server.state.requests_total == 3  # only the changed pair
    assert (archive / "a.csv").exists()
    names = sorted(p.name for p in archive.iterdir())
    assert [n for n in names if re.fullmatch(r"a\.\d{8}T\d{6}Z\.csv", n)]  # 2nd a.csv, renamed
    (file,) = json.loads((tmp_path / "s.json").read_text())["files"]
    assert [r["status"] for r in report_rows(Path(file["report"]))] == ["skipped", "ok"]


def test_inbox_dry_run_writes_reports_and_leaves_every_file(
    folders: tuple[Path, Path],
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    inbox, archive = folders
    server = emulator_thread()
    write_csv(inbox / "a.csv", [("C1", "plan", "gold")], age=60)
    (inbox / "bad.xlsx").write_bytes(b"garbage")
    os.utime(inbox / "bad.xlsx", (time.time() - 60,) * 2)
    result = run_cli("--inbox", str(inbox), "--archive", str(archive), "--dry-run",
                     "--base-url", server.base_url)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert sorted(p.name for p in inbox.iterdir()) == ["a.csv", "bad.xlsx"]
    (report,) = archive.glob("a.csv.*.dry-run.report.csv")
    assert [r["status"] for r in report_rows(report)] == ["valid"]
    assert server.state.requests_total == 0
    assert "bad.xlsx" in result.output


def test_an_empty_inbox_exits_0(folders: tuple[Path, Path], run_cli: Callable[..., Result]) -> None:
    inbox, archive = folders
    result = run_cli("--inbox", str(inbox), "--archive", str(archive),
                     "--base-url", "http://127.0.0.1:9")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "inbox empty" in result.output


@pytest.mark.parametrize("state", [[], ["--state", "{tmp}/other-state.db"]])
def test_a_second_inbox_run_exits_2_while_the_first_holds_the_lock(
    folders: tuple[Path, Path], tmp_path: Path, run_cli: Callable[..., Result], state: list[str]
) -> None:
    inbox, archive = folders
    write_csv(inbox / "a.csv", [("C1", "plan", "gold")], age=60)
    state = [a.format(tmp=tmp_path) for a in state]  # even with a state of its own
    with RunLock(archive / LOCK_NAME):
        result = run_cli("--inbox", str(inbox), "--archive", str(archive), *state,
                         "--base-url", "http://127.0.0.1:9")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "holds the lock" in result.output
    assert (inbox / "a.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inbox", "{inbox}"], "--inbox and --archive go together"),
        (["--archive", "{archive}"], "--inbox and --archive go together"),
        (["--inbox", "{inbox}", "--archive", "{tmp}/nope"], "--archive {tmp}/nope: no such"),
        (["--inbox", "{tmp}/nope", "--archive", "{archive}"], "--inbox {tmp}/nope: no such"),
        (["--inbox", "{inbox}", "--archive", "{inbox}"], "another folder than --inbox"),
        (["--inbox", "{inbox}", "--archive", "{archive}", "--report", "{tmp}/r.csv"],
         "--report does not apply to --inbox"),
    ],
)  # fmt: skip
def test_unusable_inbox_commands_exit_2_and_touch_nothing(
    folders: tuple[Path, Path],
    tmp_path: Path,
    run_cli: Callable[..., Result],
    args: list[str],
    message: str,
) -> None:
    inbox, archive = folders
    write_csv(inbox / "a.csv", [("C1", "plan", "gold")], age=60)
    fill = {"inbox": str(inbox), "archive": str(archive), "tmp": str(tmp_path)}
    result = run_cli(*[a.format(**fill) for a in args], "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 2, result.output
    assert message.format(**fill) in result.output
    assert (inbox / "a.csv").exists()


def test_without_an_api_key_no_file_is_touched(
    folders: tuple[Path, Path], run_cli: Callable[..., Result]
) -> None:
    inbox, archive = folders
    write_csv(inbox / "a.csv", [("C1", "plan", "gold")], age=60)
    result = run_cli("--inbox", str(inbox), "--archive", str(archive),
                     "--base-url", "http://127.0.0.1:9", token="")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "IC_API_TOKEN" in result.output
    assert (inbox / "a.csv").exists()
    assert list(archive.iterdir()) == []


def test_usage_error_is_the_base_of_what_sends_a_file_to_failed() -> None:
    # The contract with the runner: what makes a plain run exit 2 is a UsageError.
    assert issubclass(InputError, UsageError)
    assert issubclass(ConfigError, UsageError)
