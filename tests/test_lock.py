"""The run lock: one run at a time on a state file, and never blocked by a dead run."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk_sync.cli import cli
from bulk_sync.emulator import EmulatorThread
from bulk_sync.errors import LockedError, UsageError
from bulk_sync.lock import RunLock, describe_holder, read_holder

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bulk_sync.lock import RunLock
    lock = RunLock(Path(sys.argv[1]), command=["bulk-sync", "sync", "nightly.csv"])
    lock.acquire()
    print("locked", flush=True)
    sys.stdin.readline()  # hold it until told to go (or killed)
    lock.release()
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Another process holding the lock on tmp_path/state.db.lock."""
    path = tmp_path / "state.db.lock"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc, path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_a_second_process_is_refused_with_the_holders_pid_host_and_command(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, path = holder
    with pytest.raises(LockedError) as info, RunLock(path):
        pass
    message = str(info.value)
    assert f"another bulk-sync run holds the lock {path}" in message
    assert f"pid {proc.pid} on host {socket.gethostname()}" in message
    assert "started 20" in message
    assert "command: bulk-sync sync nightly.csv" in message
    assert isinstance(info.value, UsageError)  # exit code 2


def test_the_lock_is_free_again_once_the_holder_is_done(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, path = holder
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.wait(timeout=30) == 0
    assert path.exists()  # left in place, emptied
    assert path.read_text() == ""
    with RunLock(path) as lock:
        assert lock.held


def test_a_lock_whose_holder_was_killed_with_sigkill_is_takeable(
    holder: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, path = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert read_holder(path)["pid"] == proc.pid  # stale description left behind ...
    with RunLock(path):  # ... but the OS released the lock itself
        assert read_holder(path)["pid"] == os.getpid()


def test_the_holder_describes_itself_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with RunLock(path, command=["bulk-sync", "sync", "a.csv"]):
        info = json.loads(path.read_text())
    assert info["pid"] == os.getpid()
    assert info["host"] == socket.gethostname()
    assert info["started"].endswith("Z")
    assert info["command"] == ["bulk-sync", "sync", "a.csv"]
    assert path.read_text() == ""


def test_a_second_lock_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with RunLock(path), pytest.raises(LockedError, match=f"pid {os.getpid()}"), RunLock(path):
        pass
    with RunLock(path):  # released by both
        pass


def test_a_lock_in_a_missing_folder_is_a_usage_error_not_locked(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot create the lock file") as info:
        RunLock(tmp_path / "missing" / "x.lock").acquire()
    assert not isinstance(info.value, LockedError)


def test_a_holder_that_has_not_written_yet_is_described_as_starting() -> None:
    assert describe_holder({}) == "holder not known yet: it is starting"
    long = {"pid": 7, "host": "h", "started": "t", "command": ["x" * 300]}
    assert describe_holder(long).endswith("...")
    assert len(describe_holder(long)) < 260


def test_a_sync_on_a_locked_state_exits_2_at_once_naming_the_holder(
    tmp_path: Path, holder: tuple[subprocess.Popen[str], Path], api_token: str
) -> None:
    proc, lock_path = holder  # tmp_path/state.db.lock: the lock beside --state state.db
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as f:
        csv.writer(f).writerows([("customer_id", "attribute", "value"), ("C1", "a", "1")])
    result = CliRunner().invoke(
        cli,
        ["sync", str(src), "--state", str(tmp_path / "state.db"),
         "--report", str(tmp_path / "r.csv"), "--base-url", "http://127.0.0.1:9"],
        env={"IC_API_TOKEN": api_token},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"holds the lock {lock_path}" in result.output
    assert f"pid {proc.pid}" in result.output
    assert not (tmp_path / "r.csv").exists()
    assert not (tmp_path / "state.db").exists()  # refused before opening the state


def test_lock_option_locks_without_a_state_file(
    tmp_path: Path, holder: tuple[subprocess.Popen[str], Path], api_token: str
) -> None:
    proc, lock_path = holder
    src = tmp_path / "in.csv"
    src.write_text("customer_id,attribute,value\nC1,a,1\n")
    result = CliRunner().invoke(
        cli,
        ["sync", str(src), "--lock", str(lock_path), "--report", str(tmp_path / "r.csv"),
         "--base-url", "http://127.0.0.1:9"],
        env={"IC_API_TOKEN": api_token},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"pid {proc.pid}" in result.output


@pytest.mark.slow
def test_two_runs_started_together_on_one_state_one_runs_and_the_other_exits_2(
    tmp_path: Path, emulator_thread: Callable[..., EmulatorThread], api_token: str
) -> None:
    server = emulator_thread(latency=0.2)  # the run lasts long enough to overlap
    src = tmp_path / "in.csv"
    src.write_text("customer_id,attribute,value\nC1,a,1\nC2,a,1\nC3,a,1\n")
    env = {**os.environ, "IC_API_TOKEN": api_token}

    def start(n: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "bulk_sync", "sync", str(src),
             "--state", str(tmp_path / "state.db"), "--concurrency", "1",
             "--report", str(tmp_path / f"r{n}.csv"), "--base-url", server.base_url],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    procs = [start(1), start(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    results = [(p.returncode, err) for p, (_, err) in zip(procs, outputs, strict=True)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    winner = next(p for p, (code, _) in zip(procs, results, strict=True) if code == 0)
    assert f"pid {winner.pid}" in loser
    assert server.state.requests_total == 3  # only the winner sent anything
