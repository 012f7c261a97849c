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
import re
import stat
import threading
import time
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


# -- 11.2: a file of the inbox swapped for a link while an earlier one is processed -------------


def _slow_then_swap(server: EmulatorThread, swap: Callable[[], None]) -> threading.Thread:
    """A thread that performs ``swap`` as soon as the first request reaches the server,
    while its answer is still delayed by the server's latency (the run is then busy with
    the first file, and has not opened the next)."""

    def run() -> None:
        deadline = time.monotonic() + 20
        while server.state.max_in_flight < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        swap()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_an_inbox_file_swapped_for_a_symlink_mid_run_is_never_read_through_it(
    tmp_path: Path,
    api_token: str,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    server = emulator_thread(latency=0.3)
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    archive.mkdir()
    secret = tmp_path / "etc" / "bulk-sync.env"  # what a systemd unit reads the key from
    secret.parent.mkdir()
    secret.write_text(f"IC_API_TOKEN={api_token}\n")
    a = write_csv(inbox / "a.csv", [("C1", "plan", "gold")])
    b = write_csv(inbox / "b.csv", [("C2", "plan", "silver")])
    os.utime(a, (time.time() - 60,) * 2)  # a first, then b
    os.utime(b, (time.time() - 30,) * 2)

    def swap() -> None:
        b.unlink()
        b.symlink_to(secret)

    thread = _slow_then_swap(server, swap)
    summary = tmp_path / "summary.json"
    result = run_cli(
        "sync", "--inbox", str(inbox), "--archive", str(archive), "--base-url", server.base_url,
        "--summary-json", str(summary),
    )  # fmt: skip
    thread.join()
    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.stderr
    assert server.state.customers == {"C1": {"plan": "gold"}}  # only a.csv was sent
    assert b.is_symlink()  # left alone, not moved
    assert secret.read_text() == f"IC_API_TOKEN={api_token}\n"
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink() and p != secret]
    for path in written:
        assert api_token[:16] not in path.read_text(errors="replace"), path
    assert api_token[:16] not in result.output
    outcomes = {f["source"]: f["outcome"] for f in json.loads(summary.read_text())["files"]}
    assert outcomes == {"a.csv": "done", "b.csv": "failed"}


def test_the_file_archived_is_the_very_file_that_was_read(tmp_path: Path) -> None:
    from bulk_sync.inbox import InboxFile, process_inbox
    from bulk_sync.runner import Summary

    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    archive.mkdir()
    for k, name in enumerate(("a.csv", "b.csv", "c.csv")):
        (inbox / name).write_text(f"customer_id,attribute,value\nC{k},x,original {name}\n")
        os.utime(inbox / name, (1_000 + k,) * 2)
    seen: dict[str, bytes] = {}

    def run_file(file: InboxFile, report: Path) -> Summary:
        seen[file.name] = file.data
        if file.name == "a.csv":
            # while a.csv is processed: a.csv is replaced by another file, b.csv by a pipe
            new = inbox / "a.new"
            new.write_text("customer_id,attribute,value\nC9,x,replacement\n")
            os.replace(new, inbox / "a.csv")
            (inbox / "b.csv").unlink()
            os.mkfifo(inbox / "b.csv")
        report.write_text("report\n")
        counts = {s: 0 for s in ("ok", "skipped", "valid", "invalid", "failed", "not_sent")}
        return Summary(counts, 1, 1, 1, 0, 0.1, report, 0, False)

    result = process_inbox(inbox, archive, run_file, min_age=0, clock=lambda: 2_000_000_000.0)
    assert sorted(seen) == ["a.csv", "c.csv"]  # b.csv, a pipe by then, was not read
    assert (archive / "a.csv").read_text().endswith("original a.csv\n")  # what was read
    assert (inbox / "a.csv").read_text().endswith("replacement\n")  # the newcomer waits
    assert (archive / "c.csv").read_text().endswith("original c.csv\n")
    assert not (inbox / "c.csv").exists()
    assert stat.S_ISFIFO(os.lstat(inbox / "b.csv").st_mode)  # left alone
    assert [(f.source.name, f.outcome) for f in result.files] == [
        ("a.csv", "done"),
        ("b.csv", "failed"),
        ("c.csv", "done"),
    ]
    assert "no longer a plain file" in result.files[1].error


def test_an_error_file_never_quotes_the_files_cells_and_keeps_its_mode(
    tmp_path: Path, api_token: str, run_cli: Callable[..., Result]
) -> None:
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    archive.mkdir()
    bad = inbox / "b.csv"
    bad.write_text(f"IC_API_TOKEN={api_token}\nsecond line\n")  # no usable header
    bad.chmod(0o600)
    os.utime(bad, (time.time() - 60,) * 2)
    result = run_cli("sync", "--inbox", str(inbox), "--archive", str(archive), "--dry-run")
    assert result.exit_code == 2  # a dry run leaves it in place
    result = run_cli(
        "sync", "--inbox", str(inbox), "--archive", str(archive), "--base-url",
        "http://127.0.0.1:9",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    error = archive / "failed" / "b.csv.error.txt"
    text = error.read_text()
    assert "missing column" in text
    assert "'customer_id'" in text
    assert "'…'" in text  # the header found is not repeated
    assert api_token[:16] not in text
    assert stat.S_IMODE(error.stat().st_mode) == 0o600  # as readable as the file itself
    assert (archive / "failed" / "b.csv").read_text().startswith("IC_API_TOKEN=")


# -- 11.5: file names that cannot be used as they are ------------------------------------------


def test_bad_names_are_set_aside_under_a_safe_name_and_the_inbox_goes_on(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    server = emulator_thread()
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    archive.mkdir()
    names = {
        b"a" * 216 + b".csv": "too long",
        b"caf\xe9.csv": "not valid UTF-8",
        b"\x1b[31mred\x1b[0m.csv": "control characters",
        b"line\nbreak.csv": "control characters",
        b"\xe2\x80\xaefdp.csv": "control characters",  # right-to-left override
    }
    for k, raw in enumerate(names):
        path = os.path.join(os.fsencode(inbox), raw)
        with open(path, "wb") as f:
            f.write(f"customer_id,attribute,value\nB{k},x,y\n".encode())
        os.utime(path, (time.time() - 100 + k,) * 2)
    write_csv(inbox / "good.csv", [("C1", "plan", "gold")])
    os.utime(inbox / "good.csv", (time.time() - 50,) * 2)
    summary = tmp_path / "summary.json"
    result = run_cli(
        "sync", "--inbox", str(inbox), "--archive", str(archive), "--base-url", server.base_url,
        "--summary-json", str(summary),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert server.state.customers == {"C1": {"plan": "gold"}}  # the rest went on
    assert os.listdir(inbox) == []
    failed = sorted(os.listdir(os.fsencode(archive / "failed")))
    errors = [n for n in failed if n.endswith(b".error.txt")]
    assert len(errors) == len(names) == len(failed) - len(errors)
    for n in failed:
        assert re.fullmatch(rb"[A-Za-z0-9._-]+", n), n  # safe names only
    texts = "\n".join((archive / "failed" / os.fsdecode(n)).read_text() for n in errors)
    for why in names.values():
        assert why in texts
    assert "caf\\xe9.csv" in texts
    assert "\\x1b[31mred\\x1b[0m.csv" in texts
    assert "line\\nbreak.csv" in texts
    # logs: escaped, nothing that repaints a terminal or forges a line
    assert "\x1b" not in result.stderr
    assert "\u202e" not in result.stderr
    assert "\\x1b[31mred" in result.stderr
    assert not any(line.startswith("break.csv") for line in result.stderr.splitlines())
    doc = json.loads(summary.read_text(encoding="utf-8"))  # valid UTF-8 JSON
    sources = {f["source"]: f["outcome"] for f in doc["files"]}
    assert sources["caf\\xe9.csv"] == "failed"
    assert sources["good.csv"] == "done"


def test_a_non_utf8_input_name_with_state_and_summary_json_works(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    name = os.fsdecode(b"clientes-\xe9t\xe9.csv")  # Latin-1 bytes from an old system
    src = write_csv(tmp_path / name, [("C1", "plan", "gold")])
    summary = tmp_path / "summary.json"
    result = run_cli(
        "sync", str(src), "--report", str(tmp_path / "r.csv"), "--base-url", server.base_url,
        "--state", str(tmp_path / "state.db"), "--summary-json", str(summary),
        "--log-format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert server.state.customers == {"C1": {"plan": "gold"}}
    doc = json.loads(summary.read_bytes().decode("utf-8"))
    assert doc["inputs"] == [str(tmp_path / "clientes-\\xe9t\\xe9.csv")]
    for line in result.stderr.splitlines():  # every JSON log line is valid UTF-8 JSON
        json.loads(line.encode("utf-8", "strict"))


def test_the_lock_holder_record_survives_a_non_utf8_argument(tmp_path: Path) -> None:
    from bulk_sync.lock import read_holder

    lock = tmp_path / "run.lock"
    with RunLock(lock, command=["bulk-sync", "sync", os.fsdecode(b"caf\xe9.csv")]):
        assert read_holder(lock)["command"] == ["bulk-sync", "sync", "caf\\xe9.csv"]


# -- found when trying the rest as an attacker would ------------------------------------------


@pytest.mark.parametrize("planted", ["state.db", "state.db-wal", "state.db-shm"])
def test_a_link_planted_at_the_state_file_or_its_wal_is_refused(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
    planted: str,
) -> None:
    """SQLite follows links and writes its -wal and -shm files beside the database: a link
    at any of those names had the run create or overwrite the file it points to."""
    server = emulator_thread()
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "gold")])
    victim = tmp_path / "victim"
    (tmp_path / planted).symlink_to(victim)
    result = run_cli(
        "sync", str(src), "--state", str(tmp_path / "state.db"), "--report",
        str(tmp_path / "r.csv"), "--base-url", server.base_url,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.stderr
    assert not victim.exists()
    assert server.state.requests_total == 0


def test_a_failed_folder_that_is_a_link_stops_the_inbox_before_any_file_moves(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    inbox, archive, elsewhere = tmp_path / "inbox", tmp_path / "archive", tmp_path / "cron.d"
    for folder in (inbox, archive, elsewhere):
        folder.mkdir()
    (archive / "failed").symlink_to(elsewhere)
    bad = inbox / "bad.csv"
    bad.write_text("not,the,columns\n1,2,3\n")
    os.utime(bad, (time.time() - 60,) * 2)
    result = run_cli(
        "sync", "--inbox", str(inbox), "--archive", str(archive), "--base-url",
        "http://127.0.0.1:9",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "'failed'" in result.stderr
    assert list(elsewhere.iterdir()) == []
    assert bad.exists()


def test_retry_reports_never_take_a_name_someone_planted(tmp_path: Path) -> None:
    from bulk_sync.runner import default_retry_report_path

    old = tmp_path / "old.csv"
    first = default_retry_report_path(old)
    first.symlink_to(tmp_path / "victim")  # planted at the predictable name
    assert default_retry_report_path(old) != first


def test_an_inbox_file_over_the_size_limit_is_refused_without_being_read(tmp_path: Path) -> None:
    from bulk_sync.inbox import InboxFile, process_inbox
    from bulk_sync.runner import Summary

    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    archive.mkdir()
    big = inbox / "big.csv"
    with big.open("wb") as f:  # sparse: 3 GiB that cost no disk
        f.truncate(3 << 30)
    os.utime(big, (1_000,) * 2)

    def run_file(file: InboxFile, report: Path) -> Summary:
        raise AssertionError("a file over the limit is never handed to the run")

    result = process_inbox(
        inbox, archive, run_file, min_age=0, clock=lambda: 2_000_000_000.0, max_bytes=1 << 20
    )
    [outcome] = result.files
    assert outcome.outcome == "failed"
    assert "too large" in outcome.error
    assert (archive / "failed" / "big.csv").stat().st_size == 3 << 30
    assert "too large" in (archive / "failed" / "big.csv.error.txt").read_text()
    assert not big.exists()
