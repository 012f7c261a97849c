"""Operations through the command line: shards, machine-readable output, splitting,
conflict policy and wide files, against the emulator over loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bulk_sync.cli import cli
from bulk_sync.emulator import EmulatorThread
from bulk_sync.runner import Shard, shard_of
from helpers import report_lines as read_report
from helpers import write_csv

FAST = "backoff_initial: 0.001\nbackoff_max: 0.01\n"


@pytest.fixture
def run_cli(api_token: str, tmp_path: Path) -> Callable[..., Result]:
    config = tmp_path / "fast.yaml"
    config.write_text(FAST)

    def run(*args: str) -> Result:
        return CliRunner().invoke(
            cli,
            [*args, "--config", str(config)],
            env={"IC_API_TOKEN": api_token},
            catch_exceptions=False,
        )

    return run


def test_shards_cover_every_customer_exactly_once(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    rows = [(f"C{c}", f"a{a}", f"v{c}{a}") for c in range(200) for a in range(2)]
    src = write_csv(tmp_path / "in.csv", rows)
    seen: list[tuple[str, str]] = []
    per_shard = []
    for k in range(3):
        report = tmp_path / f"r{k}.csv"
        result = run_cli(
            "sync", str(src), "--dry-run", "--shard", f"{k}/3", "--report", str(report)
        )
        assert result.exit_code == 0, result.output
        out = read_report(report)
        per_shard.append({r["customer_id"] for r in out})
        seen += [(r["customer_id"], r["attribute"]) for r in out]
    assert sorted(seen) == sorted((c, a) for c, a, _ in rows)
    assert all(len(s) > 30 for s in per_shard)  # a usable spread, not one shard with everything
    assert per_shard[0].isdisjoint(per_shard[1])


def test_shard_hash_is_stable_across_processes_with_different_hash_seeds() -> None:
    ids = ["C1", "Região Norte", "00123", "x/y"]
    code = (
        "import sys; from bulk_sync.runner import shard_of; "
        "print([shard_of(i, 7) for i in sys.argv[1:]])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code, *ids],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outs) == 1
    assert outs.pop().strip() == str([shard_of(i, 7) for i in ids])


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1", "a/b", "0/0"])
def test_bad_shard_specs_are_refused(text: str) -> None:
    from bulk_sync.errors import ConfigError

    with pytest.raises(ConfigError):
        Shard.parse(text)


def test_json_logs_summary_json_and_metrics_agree_with_the_report(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread(customers=frozenset({"C1", "C2"}))
    src = write_csv(
        tmp_path / "in.csv", [("C1", "a", "1"), ("C2", "a", "2"), ("C3", "a", "3"), ("C4", "a", "")]
    )
    report, summary, metrics = tmp_path / "r.csv", tmp_path / "s.json", tmp_path / "m.prom"
    result = run_cli(
        "sync",
        str(src),
        "--report",
        str(report),
        "--base-url",
        server.base_url,
        "--log-format",
        "json",
        "--summary-json",
        str(summary),
        "--metrics-file",
        str(metrics),
    )
    assert result.exit_code == 1
    doc = json.loads(summary.read_text())
    assert doc["exit_code"] == 1
    assert doc["counts"] == {
        "ok": 2,
        "skipped": 0,
        "valid": 0,
        "invalid": 1,
        "failed": 1,
        "not_sent": 0,
    }
    assert doc["requests"] == 3
    assert doc["report"] == str(report)
    [failure] = doc["failures"]
    assert failure["count"] == 1
    assert "customer not found" in failure["error"]
    assert "Most frequent failures:" in result.stdout
    statuses = [r["status"] for r in read_report(report)]
    assert statuses == ["ok", "ok", "failed", "invalid"]
    prom = dict(
        line.rsplit(" ", 1) for line in metrics.read_text().splitlines() if not line.startswith("#")
    )
    assert prom['bulk_sync_rows{job="bulk_sync",status="ok"}'] == "2"
    assert prom['bulk_sync_rows{job="bulk_sync",status="failed"}'] == "1"
    assert prom['bulk_sync_exit_code{job="bulk_sync"}'] == "1"
    assert not any(k.startswith("bulk_sync_last_success") for k in prom)
    json_lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    assert json_lines
    events = [json.loads(line) for line in json_lines]
    assert any(e.get("event") == "summary" and e["counts"]["ok"] == 2 for e in events)


def test_last_success_timestamp_survives_a_failed_run(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    metrics = tmp_path / "m.prom"
    ok_src = write_csv(tmp_path / "ok.csv", [("C1", "a", "1")])
    bad_src = write_csv(tmp_path / "bad.csv", [("C1", "a", "")])
    assert (
        run_cli(
            "sync",
            str(ok_src),
            "--report",
            str(tmp_path / "1.csv"),
            "--base-url",
            server.base_url,
            "--metrics-file",
            str(metrics),
        ).exit_code
        == 0
    )
    first = [
        line
        for line in metrics.read_text().splitlines()
        if line.startswith("bulk_sync_last_success")
    ]
    assert (
        run_cli(
            "sync",
            str(bad_src),
            "--report",
            str(tmp_path / "2.csv"),
            "--base-url",
            server.base_url,
            "--metrics-file",
            str(metrics),
        ).exit_code
        == 1
    )
    second = [
        line
        for line in metrics.read_text().splitlines()
        if line.startswith("bulk_sync_last_success")
    ]
    assert first
    assert first == second


def test_large_maps_are_split_into_several_requests(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    src = write_csv(tmp_path / "in.csv", [("C1", f"a{i}", str(i)) for i in range(25)])
    report = tmp_path / "r.csv"
    result = run_cli(
        "sync",
        str(src),
        "--report",
        str(report),
        "--base-url",
        server.base_url,
        "--max-attributes-per-request",
        "10",
    )
    assert result.exit_code == 0, result.output
    assert server.state.posts_by_customer["C1"] == 3
    assert len(server.state.customers["C1"]) == 25


def test_on_conflict_last_lets_the_last_row_win_and_skips_the_others(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    src = write_csv(
        tmp_path / "in.csv", [("C1", "seg", "old"), ("C1", "seg", "new"), ("C1", "x", "1")]
    )
    report = tmp_path / "r.csv"
    result = run_cli(
        "sync",
        str(src),
        "--report",
        str(report),
        "--base-url",
        server.base_url,
        "--on-conflict",
        "last",
    )
    assert result.exit_code == 0, result.output
    out = read_report(report)
    assert [r["status"] for r in out] == ["skipped", "ok", "ok"]
    assert "superseded by row 3" in out[0]["error"]
    assert server.state.customers["C1"] == {"seg": "new", "x": "1"}


def test_conflicting_duplicates_are_invalid_by_default_and_not_sent(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    src = write_csv(
        tmp_path / "in.csv", [("C1", "seg", "old"), ("C1", "seg", "new"), ("C1", "x", "1")]
    )
    report = tmp_path / "r.csv"
    result = run_cli("sync", str(src), "--report", str(report), "--base-url", server.base_url)
    assert result.exit_code == 1
    assert [r["status"] for r in read_report(report)] == ["invalid", "invalid", "ok"]
    assert server.state.customers["C1"] == {"x": "1"}


def test_wide_files_send_one_pair_per_non_empty_cell(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    src = write_csv(
        tmp_path / "wide.csv",
        [("C1", "retail", ""), ("C2", "", "Ana"), ("C3", "", "")],
        header=("Customer ID", "segment", "manager"),
    )
    report = tmp_path / "r.csv"
    result = run_cli(
        "sync", str(src), "--wide", "--report", str(report), "--base-url", server.base_url
    )
    assert result.exit_code == 0, result.output
    assert server.state.customers == {"C1": {"segment": "retail"}, "C2": {"manager": "Ana"}}
    assert [(r["row"], r["attribute"], r["status"]) for r in read_report(report)] == [
        ("2", "segment", "ok"),
        ("3", "manager", "ok"),
        ("4", "", "skipped"),  # every row of the file is accounted for
    ]


def test_wide_value_under_a_column_without_header_is_invalid_not_dropped(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    src = write_csv(tmp_path / "w.csv", [("C1", "x", "stray")], header=("customer_id", "seg", ""))
    report = tmp_path / "r.csv"
    result = run_cli("sync", str(src), "--wide", "--dry-run", "--report", str(report))
    assert result.exit_code == 1
    lines = read_report(report)
    assert [(r["value"], r["status"]) for r in lines] == [("x", "valid"), ("stray", "invalid")]
    assert "unnamed column 3" in lines[1]["error"]


def test_report_placeholder_timestamp_gives_a_new_file_each_run(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    result = run_cli(
        "sync", str(src), "--dry-run", "--report", str(tmp_path / "run-{timestamp}.csv")
    )
    assert result.exit_code == 0
    [made] = list(tmp_path.glob("run-2*.csv"))
    assert read_report(made)[0]["status"] == "valid"


def test_inputs_and_inbox_together_are_refused(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    (tmp_path / "in").mkdir()
    (tmp_path / "arch").mkdir()
    result = run_cli(
        "sync", str(src), "--inbox", str(tmp_path / "in"), "--archive", str(tmp_path / "arch")
    )
    assert result.exit_code == 2
    assert "exclusive" in result.output


def test_with_json_logs_even_errors_are_json_lines(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    result = run_cli("sync", str(tmp_path / "missing.csv"), "--dry-run", "--log-format", "json")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines
    docs = [json.loads(line) for line in lines]
    assert docs[-1]["level"] == "error"
    assert docs[-1]["exit_code"] == 2
    assert "missing.csv" in docs[-1]["message"]


def test_xlsx_report_has_a_summary_sheet_with_the_counts(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    import openpyxl

    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1"), ("C2", "a", ""), ("C3", "b", "2")])
    report = tmp_path / "r.xlsx"
    assert run_cli("sync", str(src), "--dry-run", "--report", str(report)).exit_code == 1
    wb = openpyxl.load_workbook(report)
    summary = {row[0].value: row[1].value for row in wb["summary"].iter_rows(min_row=2)}
    assert summary["mode"] == "dry run"
    assert summary["rows valid"] == 2
    assert summary["rows invalid"] == 1
    assert summary["rows"] == 3


def test_retry_dry_run_lists_what_would_be_resent_and_sends_nothing(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    down = emulator_thread(error_rate=1.0, retry_after=0.0)
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1"), ("C2", "a", "")])
    first = tmp_path / "first.csv"
    result = run_cli(
        "sync", str(src), "--report", str(first), "--base-url", down.base_url,
        "--max-attempts", "1",
    )  # fmt: skip
    assert result.exit_code == 1
    before = down.state.requests_total
    out = tmp_path / "again.csv"
    result = run_cli("retry", str(first), "--dry-run", "--report", str(out))
    assert result.exit_code == 0, result.output
    assert [(r["row"], r["status"]) for r in read_report(out)] == [("2", "valid")]
    assert down.state.requests_total == before


def test_default_retry_report_names_keep_a_report_suffix(tmp_path: Path) -> None:
    from bulk_sync.runner import default_retry_report_path

    made = default_retry_report_path(tmp_path / "out.csv.journal.jsonl")
    assert made.parent == tmp_path
    assert made.name.startswith("out.retry-")
    assert made.suffix == ".csv"
    assert default_retry_report_path(tmp_path / "r.xlsx").suffix == ".xlsx"


@pytest.mark.parametrize("spec", ["3/3", "a/b", "0/0"])
def test_a_bad_shard_is_exit_2_with_a_message_not_a_traceback(
    tmp_path: Path, run_cli: Callable[..., Result], spec: str
) -> None:
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    result = run_cli("sync", str(src), "--dry-run", "--shard", spec)
    assert result.exit_code == 2
    assert "--shard" in result.stderr
    assert "Traceback" not in result.output


def test_early_errors_are_json_lines_with_json_logs(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    result = run_cli("sync", str(src), "--dry-run", "--shard", "9/2", "--log-format", "json")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert json.loads(line)["exit_code"] == 2


@pytest.mark.parametrize("command", ["sync", "retry"])
@pytest.mark.parametrize("mistake", [["--max-outage", "-5"], ["--log-fromat", "text"]])
def test_option_errors_are_one_json_line_and_refresh_the_summary_with_json_logs(
    command: str,
    mistake: list[str],
    tmp_path: Path,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    """A cron entry with a mistyped option: with --log-format json, stderr is still one
    JSON object a line (no click usage text) and the summary/metrics say exit 2."""
    server = emulator_thread()
    summary, metrics = tmp_path / "s.json", tmp_path / "m.prom"
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    outputs = ["--log-format", "json", "--summary-json", str(summary)]
    outputs += ["--metrics-file", str(metrics)]
    first = run_cli(
        "sync", str(src), "--report", str(tmp_path / "r.csv"), "--base-url", server.base_url,
        *outputs,
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    assert json.loads(summary.read_text())["exit_code"] == 0
    target = str(src) if command == "sync" else str(tmp_path / "r.csv")
    result = run_cli(command, target, "--base-url", server.base_url, *outputs, *mistake)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    doc = json.loads(lines[0])
    assert doc["level"] == "error"
    assert doc["exit_code"] == 2
    assert mistake[0] in doc["message"]
    assert json.loads(summary.read_text())["exit_code"] == 2
    assert 'bulk_sync_exit_code{job="bulk_sync"} 2' in metrics.read_text()
    assert server.state.requests_total == 1  # the first run's only


@pytest.mark.parametrize("flag", ["--summary-json", "--metrics-file"])
def test_an_output_file_in_a_missing_folder_is_refused_before_anything_is_sent(
    flag: str,
    tmp_path: Path,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    """A mistyped folder in the cron entry: exit 2 and nothing sent (as for --report),
    not a whole run sent and then "internal error" (exit 3) when the file is written;
    the other output file still says so."""
    server = emulator_thread()
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    good = {"--summary-json": tmp_path / "s.json", "--metrics-file": tmp_path / "m.prom"}
    good.pop(flag)
    [(other, other_path)] = good.items()
    result = run_cli(
        "sync", str(src), "--base-url", server.base_url, "--report", str(tmp_path / "r.csv"),
        "--state", str(tmp_path / "state.db"), "--log-format", "json",
        flag, str(tmp_path / "no-such-folder" / "out"), other, str(other_path),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert server.state.requests_total == 0
    docs = [json.loads(line) for line in result.stderr.splitlines()]  # one JSON object each
    doc = docs[-1]
    assert doc["exit_code"] == 2
    assert flag in doc["message"]
    assert "no-such-folder" in doc["message"]
    assert "internal error" not in doc["message"]
    assert not (tmp_path / "r.csv").exists()
    if other == "--summary-json":
        assert json.loads(other_path.read_text())["exit_code"] == 2
    else:
        assert 'bulk_sync_exit_code{job="bulk_sync"} 2' in other_path.read_text()


def test_retry_refuses_a_journal_and_points_at_resume(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    journal = tmp_path / "r.csv.journal.jsonl"
    journal.write_text('{"bulk_sync_journal": 1}\n')
    result = run_cli("retry", str(journal))
    assert result.exit_code == 2
    assert "--resume" in result.stderr


@pytest.mark.parametrize(
    "case",
    ["missing input", "bad header", "lock held", "bad shard", "bad option value", "unknown option"],
)
def test_a_run_that_exits_2_still_writes_its_summary_json_and_metrics(
    case: str,
    tmp_path: Path,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    """The alert `bulk_sync_exit_code != 0` (docs/operations.md) must see a run that sent
    nothing: the files of the previous, successful run may not stay as they were."""
    server = emulator_thread()
    metrics, summary = tmp_path / "m.prom", tmp_path / "s.json"
    ok_src = write_csv(tmp_path / "ok.csv", [("C1", "a", "1")])
    outputs = ["--metrics-file", str(metrics), "--summary-json", str(summary)]
    first = run_cli(
        "sync", str(ok_src), "--report", str(tmp_path / "1.csv"), "--base-url", server.base_url,
        *outputs,
    )  # fmt: skip
    assert first.exit_code == 0
    before = json.loads(summary.read_text())
    assert before["exit_code"] == 0
    args = ["sync", str(ok_src), "--report", str(tmp_path / "2.csv"), "--base-url", server.base_url]
    if case == "missing input":
        args[1] = str(tmp_path / "absent.csv")
    elif case == "bad header":
        bad = tmp_path / "bad.csv"
        bad.write_text("a,b\n1,2\n", encoding="utf-8")
        args[1] = str(bad)
    elif case == "lock held":
        from bulk_sync.lock import RunLock

        args += ["--lock", str(tmp_path / "run.lock")]
        held = RunLock(tmp_path / "run.lock")
        held.acquire()
    elif case == "bad option value":  # refused by click while parsing, before the command
        args += ["--concurrency", "0"]
    elif case == "unknown option":  # a typo in the cron entry
        args += ["--concurency", "4"]
    else:
        args += ["--shard", "5/2"]
    try:
        result = run_cli(*args, *outputs)
    finally:
        if case == "lock held":
            held.release()
    assert result.exit_code == 2, result.output
    doc = json.loads(summary.read_text())
    assert doc["exit_code"] == 2
    assert doc["counts"]["ok"] == 0
    assert doc["requests"] == 0
    assert doc["error"]
    prom = dict(
        line.rsplit(" ", 1) for line in metrics.read_text().splitlines() if not line.startswith("#")
    )
    assert prom['bulk_sync_exit_code{job="bulk_sync"}'] == "2"
    last_success = 'bulk_sync_last_success_timestamp_seconds{job="bulk_sync"}'
    assert float(prom[last_success]) > 0  # carried over from the first run
    assert float(prom['bulk_sync_last_run_timestamp_seconds{job="bulk_sync"}']) >= float(
        prom[last_success]
    )


def test_the_report_never_replaces_an_input_file_even_with_overwrite(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread(customers=frozenset({"C1"}))
    src = write_csv(tmp_path / "customers.csv", [("C1", "a", "1"), ("C2", "a", "2")])
    data = src.read_bytes()
    for args in (["--dry-run"], ["--base-url", server.base_url]):
        result = run_cli("sync", str(src), "--report", str(src), "--overwrite", *args)
        assert result.exit_code == 2, result.output
        assert "is an input file" in result.output
        assert src.read_bytes() == data
    (tmp_path / "link.csv").symlink_to(src)
    result = run_cli("sync", str(tmp_path / "link.csv"), "--report", str(src), "--overwrite")
    assert result.exit_code == 2, result.output
    assert src.read_bytes() == data
    # retry: the report it reads is its input
    report = tmp_path / "r.csv"
    assert (
        run_cli("sync", str(src), "--report", str(report), "--base-url", server.base_url).exit_code
        == 1
    )
    before = report.read_bytes()
    result = run_cli(
        "retry", str(report), "--report", str(report), "--overwrite", "--base-url", server.base_url
    )
    assert result.exit_code == 2, result.output
    assert "is an input file" in result.output
    assert report.read_bytes() == before
