"""Fault suite: the real command against the emulator over loopback, with the network
and the server misbehaving and the job itself killed.

After every run, whatever happened, three things must hold:

1. every input row appears exactly once in the report: the multiset of
   (source, row, customer_id, attribute, value) equals the input's;
2. every row the report calls ``ok`` is on the server with exactly that value;
3. ``--resume`` with that report sends the rest and ends with every row ``ok`` or
   ``skipped`` (and the server holding every input value).

Retries use a tiny backoff (``backoff_initial: 0.001``, ``backoff_max: 0.01``) so that
nothing here waits on a real backoff; the runs that must wait (timeouts, a restart)
are bounded by the timeout and the restart itself.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_sync.cli import cli
from bulk_sync.emulator import EmulatorThread, free_port
from bulk_sync.models import Status
from bulk_sync.report import Journal, journal_path_for, read_report
from helpers import report_lines
from helpers import spawn_cli as _spawn_cli
from helpers import wait_for as _wait_for

FAST = (
    "backoff_initial: 0.001\nbackoff_max: 0.01\nmax_attempts: 8\ndeadline: 60\n"
    "probe_interval: 0.01\nprobe_interval_max: 0.05\n"
)
TOKEN = "0123456789abcdef" * 4  # what conftest's emulators require

pytestmark = pytest.mark.timeout(60)

Triple = tuple[str, str, str]
Key = tuple[str, int, str, str, str]  # (source, row, customer_id, attribute, value)


# ----------------------------------------------------------------------------- helpers


def make_rows(customers: int, attributes: int, tag: str = "") -> list[Triple]:
    return [
        (f"F{c:04d}", f"attr_{a}", f"v{c}-{a}{tag} ção")
        for c in range(customers)
        for a in range(attributes)
    ]


def write_input(path: Path, rows: list[Triple]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["customer_id", "attribute", "value"])
        writer.writerows(rows)
    return path


def input_keys(path: Path, rows: list[Triple]) -> Counter[Key]:
    return Counter((path.name, n, c, a, v) for n, (c, a, v) in enumerate(rows, start=2))


def keys_of(lines: list[dict[str, str]]) -> Counter[Key]:
    return Counter(
        (r["source"], int(r["row"]), r["customer_id"], r["attribute"], r["value"]) for r in lines
    )


def journal_lines(path: Path) -> list[list[Any]]:
    """The complete lines of a journal (a torn last line is what a kill leaves)."""
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines()[1:]:
        with contextlib.suppress(ValueError):
            item = json.loads(raw)
            if isinstance(item, list):
                out.append(item)
    return out


def assert_exactly_once(report: Path, want: Counter[Key]) -> list[dict[str, str]]:
    lines = report_lines(report)
    got = keys_of(lines)
    assert got == want, (
        f"missing {list((want - got).elements())[:5]}, extra {list((got - want).elements())[:5]}"
    )
    return lines


def assert_ok_rows_on_server(
    lines: list[dict[str, str]], server: Mapping[str, Mapping[str, str]]
) -> None:
    for r in lines:
        if r["status"] == "ok":
            assert server.get(r["customer_id"], {}).get(r["attribute"]) == r["value"], r


def assert_all_on_server(rows: list[Triple], server: Mapping[str, Mapping[str, str]]) -> None:
    missing = [(c, a, v) for c, a, v in rows if server.get(c, {}).get(a) != v]
    assert not missing, f"{len(missing)} input values not on the server, e.g. {missing[:3]}"


@pytest.fixture
def fast_config(tmp_path: Path) -> Path:
    path = tmp_path / "fast.yaml"
    path.write_text(FAST)
    return path


@pytest.fixture
def run(api_token: str, fast_config: Path) -> Callable[..., Result]:
    def invoke(*args: str, config: Path | None = None) -> Result:
        cfg = config or fast_config
        return CliRunner().invoke(
            cli,
            [*args, "--config", str(cfg), "--no-progress"],
            env={"IC_API_TOKEN": api_token},
            catch_exceptions=False,
        )

    return invoke


def resume_and_check(
    run: Callable[..., Result],
    src: Path,
    rows: list[Triple],
    previous: Path,
    healthy: EmulatorThread,
    out: Path,
) -> None:
    """``--resume previous`` against a healthy server: the rest is sent, nothing done twice."""
    done_before = {
        (r["customer_id"], r["attribute"])
        for r in report_lines(previous)
        if r["status"] in ("ok", "skipped")
    }
    # The healthy server stands for the same API back on its feet (it starts with the
    # faulty one's data), at another port: hence --resume-any-url.
    result = run(
        "sync", str(src), "--resume", str(previous), "--report", str(out),
        "--base-url", healthy.base_url, "--resume-any-url",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = assert_exactly_once(out, input_keys(src, rows))
    for r in lines:
        pair = (r["customer_id"], r["attribute"])
        assert r["status"] == ("skipped" if pair in done_before else "ok"), r
    assert_ok_rows_on_server(lines, healthy.state.customers)
    assert_all_on_server(rows, healthy.state.customers)
    # Only customers with something left were posted to.
    left = {c for c, a, _ in rows if (c, a) not in done_before}
    assert set(healthy.state.posts_by_customer) == left


# ----------------------------------------------------------------------------- random faults


FAULTS = [
    # error (503), throttle (429), drop, retry_after, seed, transport
    pytest.param(0.2, 0.0, 0.0, 0.0, 1, "aiohttp", id="5xx-20%-seed1"),
    pytest.param(0.0, 0.25, 0.0, 0.0, 2, "aiohttp", id="429-25%-seed2"),
    pytest.param(0.0, 0.1, 0.0, 0.02, 3, "aiohttp", id="429-retry-after-pauses-seed3"),
    pytest.param(0.0, 0.0, 0.2, 0.0, 4, "aiohttp", id="drop-20%-seed4"),
    pytest.param(0.1, 0.1, 0.1, 0.0, 5, "aiohttp", id="mixed-30%-seed5"),
    pytest.param(0.1, 0.1, 0.1, 0.0, 6, "httpx", id="mixed-30%-seed6-httpx"),
    pytest.param(0.25, 0.2, 0.25, 0.0, 7, "aiohttp", id="mixed-70%-seed7"),
    pytest.param(0.25, 0.2, 0.25, 0.0, 8, "httpx", id="mixed-70%-seed8-httpx"),
    pytest.param(0.4, 0.2, 0.3, 0.0, 9, "aiohttp", id="mixed-90%-seed9"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("error", "throttle", "drop", "retry_after", "seed", "transport"), FAULTS)
def test_random_faults_leave_every_row_once_ok_rows_stored_and_resume_completes(
    tmp_path: Path,
    run: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
    error: float,
    throttle: float,
    drop: float,
    retry_after: float,
    seed: int,
    transport: str,
) -> None:
    rows = make_rows(60, 3, tag=f"s{seed}")
    src = write_input(tmp_path / "in.csv", rows)
    faulty = emulator_thread(
        error_rate=error, throttle_rate=throttle, drop_rate=drop, retry_after=retry_after, seed=seed
    )
    first = tmp_path / "first.csv"
    result = run(
        "sync", str(src), "--report", str(first), "--base-url", faulty.base_url,
        "--concurrency", "8", "--transport", transport,
    )  # fmt: skip
    lines = assert_exactly_once(first, input_keys(src, rows))
    statuses = Counter(r["status"] for r in lines)
    assert set(statuses) <= {"ok", "failed"}, statuses
    assert result.exit_code == (0 if statuses["failed"] == 0 else 1), result.output
    assert faulty.state.requests_total > 60  # the faults did happen and were retried
    assert_ok_rows_on_server(lines, faulty.state.customers)
    for r in lines:
        attempts = int(r["attempts"])  # requests made, those failed in an outage included
        if r["status"] == "failed":
            assert attempts >= 8, r  # gave up only after every attempt
            assert r["http_status"] in ("", "429", "503"), r
            assert "gave up after 8 attempts" in r["error"], r
        else:
            assert attempts >= 1
    if error + throttle + drop >= 0.9:
        assert statuses["failed"], "90% faults with 8 attempts should fail somewhere"

    healthy = emulator_thread(initial_state=faulty.state.customers)
    resume_and_check(run, src, rows, first, healthy, tmp_path / "second.csv")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("transport", "seed"), [("aiohttp", 11), ("httpx", 12)])
def test_responses_slower_than_the_timeout_are_retried_and_never_lost(
    tmp_path: Path,
    run: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
    transport: str,
    seed: int,
) -> None:
    # latency 0.05 + jitter up to 0.45: about half the answers come after the 0.2 s timeout.
    slow = emulator_thread(latency=0.05, jitter=0.45, seed=seed)
    rows = make_rows(24, 2)
    src = write_input(tmp_path / "in.csv", rows)
    first = tmp_path / "first.csv"
    config = tmp_path / "slow.yaml"
    config.write_text(FAST.replace("max_attempts: 8", "max_attempts: 3"))
    started = time.monotonic()
    result = run(
        "sync", str(src), "--report", str(first), "--base-url", slow.base_url,
        "--timeout", "0.2", "--concurrency", "8", "--transport", transport, config=config,
    )  # fmt: skip
    assert time.monotonic() - started < 20
    lines = assert_exactly_once(first, input_keys(src, rows))
    statuses = Counter(r["status"] for r in lines)
    assert result.exit_code == (0 if statuses["failed"] == 0 else 1), result.output
    assert any(int(r["attempts"]) > 1 for r in lines), "no request timed out"
    for r in lines:
        if r["status"] == "failed":
            assert "timed out waiting for the response" in r["error"], r
    slow.stop()  # late answers are still applied by the server: let them land first
    assert_ok_rows_on_server(lines, slow.state.customers)

    healthy = emulator_thread(initial_state=slow.state.customers)
    resume_and_check(run, src, rows, first, healthy, tmp_path / "second.csv")


# ----------------------------------------------------------------------------- real processes


class EmulatorProcess:
    """``python -m bulk_sync emulator`` on a fixed port with a state file: the process can
    be stopped and a new one started on the same port with the same state."""

    def __init__(self, port: int, state_file: Path, *extra: str) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.state_file = state_file
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None
        self.stderr = ""

    def start(self) -> None:
        env = dict(os.environ)
        env.pop("IC_EMULATOR_TOKEN", None)
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "bulk_sync", "emulator", "--port", str(self.port),
                "--token", TOKEN, "--state-file", str(self.state_file), *self.extra,
            ],
            env=env,
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "bulk-sync emulator listening on ..."
        assert "listening on" in line, line

    def stop(self) -> str:
        """SIGTERM (the emulator saves its state and exits); returns its stderr."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=15)
        assert self.proc.returncode == 0, err
        self.proc = None
        self.stderr += err
        return err

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.communicate(timeout=15)
            self.proc = None

    def get(self, what: str) -> Any:
        import urllib.request

        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            f"{self.base_url}/_emulator/{what}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return json.loads(response.read())


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[Callable[..., EmulatorProcess]]:
    started: list[EmulatorProcess] = []

    def make(*extra: str) -> EmulatorProcess:
        emu = EmulatorProcess(free_port(), tmp_path / "emulator-state.json", *extra)
        emu.start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.kill()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_server_restarting_mid_run_is_ridden_out_by_retries(
    tmp_path: Path,
    run: Callable[..., Result],
    emulator_process: Callable[..., EmulatorProcess],
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    server = emulator_process("--latency", "0.01")
    rows = make_rows(200, 2)
    src = write_input(tmp_path / "in.csv", rows)
    report = tmp_path / "r.csv"
    config = tmp_path / "restart.yaml"
    # Connection refused is instant: many tiny retries span the restart (a few seconds).
    config.write_text("backoff_initial: 0.005\nbackoff_max: 0.02\nmax_attempts: 600\n")
    job = _spawn_cli(
        ["sync", str(src), "--report", str(report), "--base-url", server.base_url,
         "--config", str(config), "--concurrency", "4"],
        TOKEN,
    )  # fmt: skip
    _wait_for(lambda: server.get("stats")["requests_total"] >= 40)
    server.stop()
    assert job.poll() is None, "the job finished before the restart"
    time.sleep(0.3)  # a moment of connection refused
    server.start()  # same port, same state file
    _, err = job.communicate(timeout=45)
    assert "Traceback" not in err
    lines = assert_exactly_once(report, input_keys(src, rows))
    statuses = Counter(r["status"] for r in lines)
    assert job.returncode == (0 if statuses["failed"] == 0 else 1), err
    assert statuses["ok"] > 0
    assert any(int(r["attempts"]) > 1 for r in lines), "no request met the restart"
    stats = server.get("stats")
    assert stats["requests_total"] > 0, "the restarted server got nothing"
    customers = server.get("customers")
    assert_ok_rows_on_server(lines, customers)
    server.stop()

    if statuses["failed"]:
        healthy = emulator_thread(initial_state=customers)
        resume_and_check(run, src, rows, report, healthy, tmp_path / "r2.csv")
    else:
        assert job.returncode == 0
        assert_all_on_server(rows, customers)


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_kill_9_at_random_moments_then_resume_until_done(
    tmp_path: Path,
    api_token: str,
    emulator_thread: Callable[..., EmulatorThread],
    fast_config: Path,
    seed: int,
) -> None:
    rnd = random.Random(seed)
    # about 1.2 s of upload for a whole run: kills land before, during and after it
    server = emulator_thread(latency=0.03, drop_rate=0.05, error_rate=0.05, seed=seed)
    rows = make_rows(80, 2, tag=f"k{seed}")
    src = write_input(tmp_path / "in.csv", rows)
    want = input_keys(src, rows)

    def customers_left() -> int:
        stored = server.state.customers
        return len({c for c, a, v in rows if stored.get(c, {}).get(a) != v})

    resume_from: Path | None = None
    kills = mid_upload = 0
    for attempt in range(1, 10):
        report = tmp_path / f"r{attempt}.csv"
        args = ["sync", str(src), "--report", str(report), "--base-url", server.base_url,
                "--config", str(fast_config), "--concurrency", "2", "--no-progress"]  # fmt: skip
        if resume_from is not None:
            args += ["--resume", str(resume_from)]
        before = server.state.requests_total
        left = customers_left()
        job = _spawn_cli(args, api_token)
        last = kills >= 3
        if not last:
            if rnd.random() < 0.25:  # a moment in time: maybe still starting, maybe done
                time.sleep(rnd.uniform(0.05, 2.0))
            else:  # a moment of the upload: after a random number of requests
                target = before + rnd.randint(1, max(1, left - left // 8))
                deadline = time.monotonic() + 20
                while server.state.requests_total < target and job.poll() is None:
                    assert time.monotonic() < deadline, "the job made no progress"
                    time.sleep(0.005)
                time.sleep(rnd.uniform(0, 0.03))
            job.kill()
            kills += 1
        _, err = job.communicate(timeout=45)
        assert "Traceback" not in err
        journal = journal_path_for(report)
        if report.exists() and report.stat().st_size > 0:
            # finished before the kill (or not killed): a complete report (an empty file
            # is only the path's reservation, left by a run killed before it wrote it)
            lines = assert_exactly_once(report, want)
            assert_ok_rows_on_server(lines, server.state.customers)
            if last or job.returncode == 0:
                assert job.returncode == 0, err
                assert {r["status"] for r in lines} <= {"ok", "skipped"}
                break
            resume_from = report
        elif journal.exists():
            # killed mid-run: every line the journal holds is true, and no row twice
            mid_upload += 1
            lines_j = journal_lines(journal)
            seen = Counter((line[0], line[2]) for line in lines_j)
            assert all(n == 1 for n in seen.values()), "a row journaled twice"
            for line in lines_j:
                key = (line[0], line[2], line[3], line[4], line[5])
                assert want[key] == 1, line
                if line[6] == "ok":
                    assert server.state.customers[line[3]][line[4]] == line[5]
                assert line[6] in ("ok", "skipped", "failed"), line
            resume_from = report
        # else: killed before the upload began; the next run starts over (or resumes
        # from the last report that exists).
    else:
        pytest.fail("the job never completed")
    assert mid_upload >= 1, "no kill landed in the middle of an upload"
    assert_all_on_server(rows, server.state.customers)


# ----------------------------------------------------------------------------- journal


_text = st.text(max_size=12)
_jline = st.tuples(
    _text,
    _text,
    st.integers(min_value=1, max_value=10**6),
    _text,
    _text,
    _text,
    st.sampled_from(list(Status)),
    st.none() | st.integers(min_value=100, max_value=599),
    _text,
    st.integers(min_value=0, max_value=9),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_jline, min_size=1, max_size=6), cut=st.floats(0, 1))
def test_a_journal_cut_at_any_byte_reads_back_a_prefix_of_what_was_appended(
    tmp_path: Path, lines: list[tuple[Any, ...]], cut: float
) -> None:
    """kill -9 can stop a write anywhere: what is left is always a readable prefix."""
    path = tmp_path / "cut.journal.jsonl"
    path.unlink(missing_ok=True)
    with Journal.open(path, {"report": "x.csv"}) as journal:
        for line in lines:
            journal.append([line])
    data = path.read_bytes()
    header_end = data.index(b"\n") + 1
    keep = header_end + int((len(data) - header_end) * cut)
    path.write_bytes(data[:keep])
    back = [
        (r.source, r.sheet, r.row, r.customer_id, r.attribute, r.value, r.status,
         r.http_status, r.error, r.attempts)
        for r in read_report(path)
    ]  # fmt: skip
    expected = [(*line[:6], Status(line[6]), *line[7:]) for line in lines]
    assert back == expected[: len(back)]
    complete = data[:keep].count(b"\n") - 1  # newline-terminated lines after the header
    # a last line cut exactly after its closing bracket is whole: it may be read too
    assert len(back) in (complete, complete + 1)
    # and a resumed run appends after the torn tail (which it cuts off)
    with Journal.open(path) as journal:
        journal.append([lines[0]])
    assert len(list(read_report(path))) == complete + 1
