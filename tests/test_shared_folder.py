"""A folder others can write to: links planted where bulk-sync is about to write, bad file
names, modes of the files monitoring reads (issue 11, items 2, 5, 6 and 9).

Whoever can write into the report's folder, the archive or the metrics folder can put a
symbolic link (or a hard link) at a name bulk-sync will use, hoping the run writes
customer data into another file or truncates it. Each test plants the trap and checks
that the run refuses (exit 2, saying why) and that the target is untouched.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bulk_sync.cli import cli
from bulk_sync.emulator import EmulatorThread
from bulk_sync.errors import UsageError
from bulk_sync.lock import RunLock
from bulk_sync.report import Journal, read_report
from helpers import report_lines, write_csv

FAST = "backoff_initial: 0.001\nbackoff_max: 0.01\n"
PRECIOUS = "precious content that must survive\n"


@pytest.fixture
def run_cli(api_token: str, tmp_path: Path) -> Callable[..., Result]:
    config = tmp_path / "fast.yaml"
    config.write_text(FAST)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(
            cli,
            [*args, "--config", str(config)],
            env={"IC_API_TOKEN": api_token, "BULK_SYNC_INBOX_MIN_AGE": "0", **(env or {})},
            catch_exceptions=False,
        )

    return run


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# -- 11.6: the journal and the lock files never follow a link ---------------------------------


def test_a_dangling_symlink_at_the_journal_path_is_refused_and_its_target_never_created(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "gold")])
    target = tmp_path / "elsewhere" / "authorized_keys"
    target.parent.mkdir()
    report = tmp_path / "out.csv"
    (tmp_path / "out.csv.journal.jsonl").symlink_to(target)

    result = run_cli("sync", str(src), "--report", str(report), "--base-url", server.base_url)

    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.stderr
    assert not target.exists()
    assert not os.path.lexists(report)  # nothing written, reservation released
    assert server.state.customers == {}  # refused before anything was sent


def test_the_journal_refuses_links_pipes_and_hard_links_to_other_files(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_text(PRECIOUS)
    link = tmp_path / "link.journal.jsonl"
    link.symlink_to(target)
    hard = tmp_path / "hard.journal.jsonl"
    os.link(target, hard)
    fifo = tmp_path / "fifo.journal.jsonl"
    os.mkfifo(fifo)
    for path, why in ((link, "symbolic link"), (hard, "hard links"), (fifo, "a pipe")):
        with pytest.raises(UsageError, match=why):
            Journal.open(path, {"report": "x"})
    assert target.read_text() == PRECIOUS
    with Journal.open(tmp_path / "fine.journal.jsonl", {"report": "x"}) as journal:
        journal.append([("a.csv", "", 2, "C1", "a", "v", "ok", 200, "", 1)])
    assert (tmp_path / "fine.journal.jsonl").read_text().count("\n") == 2


def test_timestamped_report_names_skip_links_planted_at_the_predictable_names(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "gold")])
    out = tmp_path / "out"
    out.mkdir()
    victims = tmp_path / "victims"
    victims.mkdir()
    now = datetime.now(UTC)
    for k in range(-1, 6):  # the names of the next few seconds, report and journal alike
        stamp = (now + timedelta(seconds=k)).strftime("%Y%m%dT%H%M%SZ")
        (out / f"run-{stamp}.csv").symlink_to(victims / f"report-{k}")
        (out / f"run-{stamp}.csv.journal.jsonl").symlink_to(victims / f"journal-{k}")

    result = run_cli(
        "sync", str(src), "--report", str(out / "run-{timestamp}.csv"), "--base-url",
        server.base_url,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert list(victims.iterdir()) == []
    reports = [p for p in out.iterdir() if not p.is_symlink() and p.suffix == ".csv"]
    assert len(reports) == 1
    assert reports[0].name.endswith("-1.csv")
    assert [r["status"] for r in report_lines(reports[0])] == ["ok"]


def test_a_symlink_at_the_lock_path_is_refused_and_its_target_not_truncated(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "gold")])
    target = tmp_path / "important.conf"
    target.write_text(PRECIOUS)
    lock = tmp_path / "run.lock"
    lock.symlink_to(target)

    result = run_cli(
        "sync", str(src), "--lock", str(lock), "--report", str(tmp_path / "r.csv"),
        "--base-url", server.base_url,
    )  # fmt: skip

    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.stderr
    assert target.read_text() == PRECIOUS
    assert server.state.customers == {}


def test_the_state_lock_and_the_archive_lock_refuse_links_too(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    target = tmp_path / "important.conf"
    target.write_text(PRECIOUS)
    # beside --state
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "gold")])
    (tmp_path / "state.db.lock").symlink_to(target)
    result = run_cli(
        "sync", str(src), "--state", str(tmp_path / "state.db"), "--report",
        str(tmp_path / "r.csv"), "--base-url", server.base_url,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.stderr
    # the inbox's archive lock
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    archive.mkdir()
    write_csv(inbox / "a.csv", [("C1", "plan", "gold")])
    (archive / ".bulk-sync.lock").symlink_to(target)
    result = run_cli(
        "sync", "--inbox", str(inbox), "--archive", str(archive), "--base-url", server.base_url
    )
    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.stderr
    assert (inbox / "a.csv").exists()  # untouched: the run stopped before any file

    assert target.read_text() == PRECIOUS
    assert server.state.customers == {}


def test_a_lock_file_hard_linked_to_another_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "important.conf"
    target.write_text(PRECIOUS)
    lock = tmp_path / "run.lock"
    os.link(target, lock)
    with pytest.raises(UsageError, match="hard links"), RunLock(lock):
        pass
    assert target.read_text() == PRECIOUS


def test_a_tampered_lock_file_cannot_put_escapes_on_the_terminal(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    with RunLock(lock, command=["bulk-sync", "sync", "x.csv"]):
        lock.write_text(
            json.dumps({"pid": 1, "host": "h\x1b[2J", "command": ["a\x1b]0;pwned\x07", "\n"]})
        )
        with pytest.raises(UsageError) as caught, RunLock(lock):
            pass
    message = str(caught.value)
    assert "\x1b" not in message
    assert "\x07" not in message
    assert "\n" not in message
    assert "\\x1b[2J" in message


# -- 11.9: the files monitoring reads get a normal mode -----------------------------------------


def test_metrics_and_summary_get_the_umask_mode_and_keep_an_existing_mode(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
    umask_022: None,
) -> None:
    server = emulator_thread()
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "gold")])
    metrics, summary = tmp_path / "bulk_sync.prom", tmp_path / "summary.json"

    def run(report: str) -> None:
        result = run_cli(
            "sync", str(src), "--report", str(tmp_path / report), "--base-url",
            server.base_url, "--metrics-file", str(metrics), "--summary-json", str(summary),
        )  # fmt: skip
        assert result.exit_code == 0, result.output

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    run("1.csv")
    assert mode(metrics) == 0o644  # node_exporter, another user, can read it
    assert mode(summary) == 0o644
    assert mode(tmp_path / "1.csv") == 0o644
    metrics.chmod(0o640)
    summary.chmod(0o600)
    run("2.csv")
    assert mode(metrics) == 0o640  # kept when replaced
    assert mode(summary) == 0o600
    assert json.loads(summary.read_text())["exit_code"] == 0


def test_a_symlink_at_the_metrics_path_is_replaced_not_written_through(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "gold")])
    target = tmp_path / "important.conf"
    target.write_text(PRECIOUS)
    metrics = tmp_path / "bulk_sync.prom"
    metrics.symlink_to(target)
    result = run_cli(
        "sync", str(src), "--report", str(tmp_path / "r.csv"), "--base-url", server.base_url,
        "--metrics-file", str(metrics),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert target.read_text() == PRECIOUS
    assert not metrics.is_symlink()
    assert "bulk_sync_exit_code" in metrics.read_text()


def test_no_temporary_file_is_left_when_writing_the_report_fails(tmp_path: Path) -> None:
    from bulk_sync.report import write_report

    def lines() -> Iterator[tuple[object, ...]]:
        yield ("a.csv", "", 2, "C1", "a", "v", "ok", 200, "", 1)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_report(tmp_path / "r.csv", lines())
    assert list(tmp_path.iterdir()) == []


def test_reports_are_written_through_their_open_file_never_reopened_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A folder without the sticky bit lets anyone rename our temporary file and put a link
    # in its place: the writer must never open the temporary file by its name again.
    import builtins
    import io

    from bulk_sync.report import write_report

    opened: list[str] = []
    real_open = builtins.open

    def spy(file: object, *args: object, **kwargs: object) -> object:
        if isinstance(file, str | Path) and ".tmp" in str(file):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)  # what zipfile (openpyxl's save) calls
    for name in ("r.csv", "r.xlsx"):
        write_report(tmp_path / name, [("a.csv", "", 2, "C1", "a", "v", "ok", 200, "", 1)])
    monkeypatch.undo()
    assert opened == []
    assert report_lines(tmp_path / "r.csv")[0]["value"] == "v"
    assert [r.value for r in read_report(tmp_path / "r.xlsx")] == ["v"]
