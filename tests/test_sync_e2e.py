"""End to end: the `bulk-sync` command against the emulator over real loopback HTTP.

In-process runs use click's CliRunner with an emulator in a thread; the tests about
signals and crashes run the command as a real process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bulk_sync.cli import cli
from bulk_sync.emulator import EmulatorThread
from bulk_sync.report import journal_path_for
from helpers import report_lines as read_report
from helpers import spawn_cli as _spawn
from helpers import wait_for as _wait_for
from helpers import write_csv

FAST_RETRIES = "backoff_initial: 0.001\nbackoff_max: 0.01\nmax_attempts: 8\n"


def many_rows(customers: int, attributes: int = 3) -> list[tuple[str, str, str]]:
    return [
        (f"C{c:05d}", f"attr_{a}", f"v{c}-{a}") for c in range(customers) for a in range(attributes)
    ]


@pytest.fixture
def run_cli(api_token: str, tmp_path: Path) -> Callable[..., Result]:
    config = tmp_path / "fast.yaml"
    config.write_text(FAST_RETRIES)

    def run(*args: str, token: str | None = api_token, fast: bool = True) -> Result:
        env = {"IC_API_TOKEN": token} if token is not None else {"IC_API_TOKEN": ""}
        extra = ["--config", str(config)] if fast and args and args[0] in ("sync", "retry") else []
        return CliRunner().invoke(cli, [*args, *extra], env=env, catch_exceptions=False)

    return run


@pytest.fixture
def emu(emulator_thread: Callable[..., EmulatorThread]) -> Callable[..., EmulatorThread]:
    return emulator_thread


def test_dry_run_reports_valid_and_invalid_rows_and_sends_nothing(
    tmp_path: Path, run_cli: Callable[..., Result], emu: Callable[..., EmulatorThread]
) -> None:
    server = emu()
    src = write_csv(
        tmp_path / "in.csv", [("C1", "segment", "retail"), ("C2", "segment", ""), ("", "x", "y")]
    )
    report = tmp_path / "r.csv"
    result = run_cli(
        "sync", str(src), "--dry-run", "--report", str(report), "--base-url", server.base_url
    )
    assert result.exit_code == 1, result.output
    rows = read_report(report)
    assert [(r["row"], r["status"]) for r in rows] == [
        ("2", "valid"),
        ("3", "invalid"),
        ("4", "invalid"),
    ]
    assert "value" in rows[1]["error"]
    assert server.state.requests_total == 0
    assert "Report:" in result.output


def test_sync_sends_every_customer_once_and_reports_ok(
    tmp_path: Path, run_cli: Callable[..., Result], emu: Callable[..., EmulatorThread]
) -> None:
    server = emu()
    rows = many_rows(40)
    src = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "r.csv"
    result = run_cli("sync", str(src), "--report", str(report), "--base-url", server.base_url)
    assert result.exit_code == 0, result.output
    out = read_report(report)
    assert len(out) == len(rows)
    assert {r["status"] for r in out} == {"ok"}
    assert {r["http_status"] for r in out} == {"200"}
    assert server.state.customers["C00007"] == {
        "attr_0": "v7-0",
        "attr_1": "v7-1",
        "attr_2": "v7-2",
    }
    assert sum(server.state.posts_by_customer.values()) == 40
    assert not journal_path_for(report).exists()


def test_twenty_percent_faults_still_end_with_every_row_ok(
    tmp_path: Path, run_cli: Callable[..., Result], emu: Callable[..., EmulatorThread]
) -> None:
    server = emu(error_rate=0.08, throttle_rate=0.06, retry_after=0.0, drop_rate=0.06, seed=3)
    rows = many_rows(120, 2)
    src = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "r.csv"
    result = run_cli(
        "sync",
        str(src),
        "--report",
        str(report),
        "--base-url",
        server.base_url,
        "--concurrency",
        "16",
    )
    assert result.exit_code == 0, result.output
    out = read_report(report)
    assert len(out) == len(rows)
    assert {r["status"] for r in out} == {"ok"}
    assert any(int(r["attempts"]) > 1 for r in out)
    for cid, attr, value in rows:
        assert server.state.customers[cid][attr] == value


def test_bad_token_stops_at_once_with_exit_3_and_rows_not_sent(
    tmp_path: Path, run_cli: Callable[..., Result], emu: Callable[..., EmulatorThread]
) -> None:
    server = emu()
    src = write_csv(tmp_path / "in.csv", many_rows(200, 1))
    report = tmp_path / "r.csv"
    result = run_cli(
        "sync", str(src), "--report", str(report), "--base-url", server.base_url, token="f" * 64
    )
    assert result.exit_code == 3, result.output
    out = read_report(report)
    assert len(out) == 200
    assert {r["status"] for r in out} == {"not_sent"}
    assert server.state.requests_total <= 8  # only what was already in flight
    assert "f" * 64 not in result.output


def test_missing_token_is_unusable_before_anything_is_read(
    tmp_path: Path, run_cli: Callable[..., Result], emu: Callable[..., EmulatorThread]
) -> None:
    server = emu()
    src = write_csv(tmp_path / "in.csv", many_rows(2, 1))
    result = run_cli(
        "sync",
        str(src),
        "--report",
        str(tmp_path / "r.csv"),
        "--base-url",
        server.base_url,
        token=None,
    )
    assert result.exit_code == 2
    assert "IC_API_TOKEN" in result.output
    assert server.state.requests_total == 0


def test_422_isolates_the_offending_rows(
    tmp_path: Path, run_cli: Callable[..., Result], emu: Callable[..., EmulatorThread]
) -> None:
    server = emu(max_value_length=10)
    src = write_csv(
        tmp_path / "in.csv",
        [
            ("C1", "a", "short"),
            ("C1", "b", "far too long a value"),
            ("C1", "c", "ok"),
            ("C2", "a", "fine"),
        ],
    )
    report = tmp_path / "r.csv"
    result = run_cli("sync", str(src), "--report", str(report), "--base-url", server.base_url)
    assert result.exit_code == 1, result.output
    out = read_report(report)
    assert [r["status"] for r in out] == ["ok", "failed", "ok", "ok"]
    assert out[1]["http_status"] == "422"
    assert server.state.customers["C1"] == {"a": "short", "c": "ok"}


def test_unknown_customer_fails_its_rows_and_the_run_goes_on(
    tmp_path: Path, run_cli: Callable[..., Result], emu: Callable[..., EmulatorThread]
) -> None:
    server = emu(customers=frozenset({"C1", "C3"}))
    src = write_csv(
        tmp_path / "in.csv",
        [("C1", "a", "1"), ("C2", "a", "2"), ("C2", "b", "3"), ("C3", "a", "4")],
    )
    report = tmp_path / "r.csv"
    result = run_cli("sync", str(src), "--report", str(report), "--base-url", server.base_url)
    assert result.exit_code == 1
    out = read_report(report)
    assert [r["status"] for r in out] == ["ok", "failed", "failed", "ok"]
    assert out[1]["http_status"] == "404"
    assert server.state.posts_by_customer["C2"] == 1  # 404 is not retried


def test_an_existing_report_is_never_silently_overwritten(
    tmp_path: Path, run_cli: Callable[..., Result], emu: Callable[..., EmulatorThread]
) -> None:
    server = emu()
    src = write_csv(tmp_path / "in.csv", many_rows(2, 1))
    report = tmp_path / "r.csv"
    report.write_text("precious")
    result = run_cli("sync", str(src), "--report", str(report), "--base-url", server.base_url)
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert report.read_text() == "precious"
    assert server.state.requests_total == 0
    again = run_cli(
        "sync", str(src), "--report", str(report), "--base-url", server.base_url, "--overwrite"
    )
    assert again.exit_code == 0
    assert len(read_report(report)) == 2


def test_a_missing_input_file_stops_before_the_first_request(
    tmp_path: Path, run_cli: Callable[..., Result], emu: Callable[..., EmulatorThread]
) -> None:
    server = emu()
    good = write_csv(tmp_path / "good.csv", many_rows(3, 1))
    result = run_cli(
        "sync",
        str(good),
        str(tmp_path / "missing.csv"),
        "--report",
        str(tmp_path / "r.csv"),
        "--base-url",
        server.base_url,
    )
    assert result.exit_code == 2
    assert "missing.csv" in result.output
    assert "Traceback" not in result.output
    assert server.state.requests_total == 0
    assert not (tmp_path / "r.csv").exists()


def test_retry_resends_failed_rows_from_the_report(
    tmp_path: Path, run_cli: Callable[..., Result], emu: Callable[..., EmulatorThread]
) -> None:
    broken = emu(error_rate=1.0, retry_after=0.0)
    src = write_csv(
        tmp_path / "in.csv", [("C1", "a", "=1+2"), ("C2", "a", "00123"), ("C2", "b", "")]
    )
    first = tmp_path / "first.csv"
    result = run_cli(
        "sync",
        str(src),
        "--report",
        str(first),
        "--base-url",
        broken.base_url,
        "--max-attempts",
        "2",
    )
    assert result.exit_code == 1
    assert [r["status"] for r in read_report(first)] == ["failed", "failed", "invalid"]

    healthy = emu()
    second = tmp_path / "second.csv"
    result = run_cli("retry", str(first), "--report", str(second), "--base-url", healthy.base_url)
    assert result.exit_code == 0, result.output
    out = read_report(second)
    assert [(r["row"], r["status"]) for r in out] == [("2", "ok"), ("3", "ok")]
    assert healthy.state.customers == {"C1": {"a": "=1+2"}, "C2": {"a": "00123"}}


def test_resume_skips_rows_an_earlier_report_marks_ok(
    tmp_path: Path, run_cli: Callable[..., Result], emu: Callable[..., EmulatorThread]
) -> None:
    server = emu(customers=frozenset({"C1"}))
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1"), ("C2", "a", "2")])
    first = tmp_path / "first.csv"
    assert (
        run_cli("sync", str(src), "--report", str(first), "--base-url", server.base_url).exit_code
        == 1
    )

    server2 = emu()
    second = tmp_path / "second.csv"
    result = run_cli(
        "sync",
        str(src),
        "--resume",
        str(first),
        "--report",
        str(second),
        "--base-url",
        server2.base_url,
        "--resume-any-url",  # a second server, to count what the resume sends
    )
    assert result.exit_code == 0, result.output
    out = read_report(second)
    assert [r["status"] for r in out] == ["skipped", "ok"]
    assert server2.state.posts_by_customer == {"C2": 1}


# -- real processes: signals and crashes -------------------------------------------------


def _start_sync(
    tmp_path: Path, rows: list[tuple[str, str, str]], server: EmulatorThread, token: str
) -> tuple[Path, Path, subprocess.Popen[str]]:
    """A real `bulk-sync sync` process uploading ``rows`` to ``server``: (input, report, proc)."""
    src = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / "r.csv"
    args = ["sync", str(src), "--report", str(report), "--base-url", server.base_url,
            "--concurrency", "4"]  # fmt: skip
    return src, report, _spawn(args, token)


@pytest.fixture
def slow_server(emulator_thread: Callable[..., EmulatorThread]) -> EmulatorThread:
    return emulator_thread(latency=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_writes_the_report_then_resume_sends_only_the_rest(
    tmp_path: Path,
    api_token: str,
    slow_server: EmulatorThread,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
    sig: signal.Signals,
) -> None:
    rows = many_rows(300, 2)
    src, report, proc = _start_sync(tmp_path, rows, slow_server, api_token)
    _wait_for(lambda: slow_server.state.requests_total >= 20)
    sent_at = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - sent_at < 5
    assert proc.returncode == 3, err
    out = read_report(report)
    assert len(out) == len(rows)
    statuses = {r["status"] for r in out}
    assert statuses == {"ok", "not_sent"}
    done = {r["customer_id"] for r in out if r["status"] == "ok"}

    fresh = emulator_thread()
    second = tmp_path / "r2.csv"
    result = run_cli(
        "sync", str(src), "--resume", str(report), "--report", str(second),
        "--base-url", fresh.base_url, "--resume-any-url",  # a fresh server counts what is sent
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert set(fresh.state.posts_by_customer).isdisjoint(done)
    assert len(fresh.state.posts_by_customer) == 300 - len(done)
    assert {r["status"] for r in read_report(second)} == {"ok", "skipped"}


@pytest.mark.slow
def test_after_kill_9_the_journal_lets_resume_skip_what_was_accepted(
    tmp_path: Path,
    api_token: str,
    slow_server: EmulatorThread,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    rows = many_rows(300, 2)
    src, report, proc = _start_sync(tmp_path, rows, slow_server, api_token)
    _wait_for(lambda: slow_server.state.requests_total >= 30)
    proc.kill()
    proc.communicate(timeout=10)
    journal = journal_path_for(report)
    assert journal.exists()
    assert not report.exists() or report.stat().st_size == 0  # only its reservation
    accepted = set()
    for line in journal.read_text(encoding="utf-8").splitlines()[1:]:
        try:
            fields = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill
        if fields[6] == "ok":
            accepted.add(fields[3])
    assert accepted

    fresh = emulator_thread()
    second = tmp_path / "r2.csv"
    result = run_cli(
        "sync", str(src), "--resume", str(report), "--report", str(second),
        "--base-url", fresh.base_url, "--resume-any-url",  # a fresh server counts what is sent
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert set(fresh.state.posts_by_customer).isdisjoint(accepted)
    out = read_report(second)
    assert len(out) == len(rows)
    assert {r["status"] for r in out} == {"ok", "skipped"}


@pytest.mark.slow
def test_a_second_signal_exits_at_once_and_the_journal_still_allows_resume(
    tmp_path: Path, api_token: str, emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread(latency=0.5)  # in-flight requests would hold the grace period
    rows = many_rows(200, 1)
    _, report, proc = _start_sync(tmp_path, rows, server, api_token)
    _wait_for(lambda: server.state.requests_total >= 8)
    _wait_for(lambda: journal_path_for(report).exists())
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)
    sent_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - sent_at < 1.5
    assert proc.returncode == 3, err
    assert "exiting at once" in err
    assert "Traceback" not in err
    assert journal_path_for(report).exists()


@pytest.mark.slow
def test_a_repeated_sigterm_still_stops_gracefully_with_the_report(
    tmp_path: Path, api_token: str, emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread(latency=0.2)
    rows = many_rows(200, 1)
    _, report, proc = _start_sync(tmp_path, rows, server, api_token)
    _wait_for(lambda: server.state.requests_total >= 8)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 3, err
    assert len(read_report(report)) == len(rows)
