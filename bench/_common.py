"""Shared helpers of the bench scripts: paths, machine facts, child processes, servers.

Every process a bench script starts goes through :func:`run_child` (waited for, with a
time limit, its own peak RSS read from ``os.wait4``) or :class:`Server` (a context
manager that always stops it). Servers only ever listen on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = BENCH / "data"
OUT = BENCH / "out"
PYTHON = sys.executable
HOST = "127.0.0.1"
TOKEN = "b" * 64

LIBRARIES = (
    "aiohttp",
    "httpx",
    "httpx-aiohttp",
    "pandas",
    "pyarrow",
    "numpy",
    "python-calamine",
    "openpyxl",
    "tenacity",
)


def ensure_dirs() -> None:
    DATA.mkdir(exist_ok=True)
    OUT.mkdir(exist_ok=True)


def machine() -> dict[str, Any]:
    """Date, cores, CPU model, RAM, Python and library versions."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    versions = {}
    for name in ("bulk-sync", *LIBRARIES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram": ram,
        "python": platform.python_version(),
        "versions": versions,
    }


def print_machine() -> None:
    m = machine()
    libs = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    print(f"# {m['date']}; nproc {m['nproc']}; {m['cpu']}; RAM {m['ram']}; Python {m['python']}")
    print(f"# {libs}")


@dataclass
class ChildResult:
    returncode: int
    wall: float  # seconds, start to exit
    maxrss_mb: float  # peak resident memory of that child (and its waited-for children)
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """The last line of stdout as JSON (the bench children print one)."""
        lines = [ln for ln in self.stdout.splitlines() if ln.strip()]
        if self.returncode != 0 or not lines:
            raise RuntimeError(
                f"child failed (exit {self.returncode}): {self.stderr.strip()[-2000:]}"
            )
        result: dict[str, Any] = json.loads(lines[-1])
        return result


def run_child(
    cmd: Sequence[str],
    *,
    timeout: float = 300.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ChildResult:
    """Run ``cmd`` to completion (killed after ``timeout``); its wall time and peak RSS.

    The peak RSS comes from ``os.wait4`` on that very child (the per-child form of
    ``getrusage(RUSAGE_CHILDREN).ru_maxrss``), in kilobytes on Linux.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        text=True,
        start_new_session=True,
    )
    out: list[str] = []
    err: list[str] = []
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None
    assert proc.stderr is not None
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    open_streams = 2
    deadline = started + timeout
    try:
        while open_streams:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"{cmd[:4]} still running after {timeout:.0f}s")
            for key, _ in sel.select(min(left, 1.0)):
                chunk = key.fileobj.readline()  # type: ignore[union-attr]
                if chunk:
                    key.data.append(chunk)
                else:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildResult(proc.returncode, wall, usage.ru_maxrss / 1024, "".join(out), "".join(err))


def before_src(rev: str) -> Path:
    """The package as it was at git revision ``rev``, extracted once (``git archive``)
    into bench/out/before-REV/src: put it on PYTHONPATH to run the code before."""
    target = OUT / f"before-{rev}"
    if not (target / "src" / "bulk_sync" / "__init__.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "src"


_LISTENING = re.compile(r"(http://127\.0\.0\.1:\d+)")


class Server:
    """A server in its own process; the base URL is read from its output.

    Use as a context manager: the process group is sent SIGTERM on exit, then SIGKILL
    if it is still there after 5 s.
    """

    def __init__(self, cmd: Sequence[str], *, start_timeout: float = 20.0) -> None:
        self.cmd = list(cmd)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.log: list[str] = []

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.start_timeout
        try:
            while not self.base_url:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"server did not start: {' '.join(self.cmd)}: {self.log}")
                if sel.select(min(left, 0.5)):
                    line = self.proc.stdout.readline()
                    self.log.append(line)
                    found = _LISTENING.search(line)
                    if found:
                        self.base_url = found.group(1)
        except BaseException:
            sel.close()
            self.stop()
            raise
        sel.close()
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def emulator(*extra: str) -> Server:
    """The bulk_sync emulator in its own process on a free port of 127.0.0.1."""
    cmd = [PYTHON, "-m", "bulk_sync", "emulator", "--host", HOST, "--port", "0"]
    return Server([*cmd, "--token", TOKEN, *extra])


def minimal_server(*extra: str) -> Server:
    """bench/minimal_server.py in its own process (zero latency, echoes the body)."""
    return Server([PYTHON, str(BENCH / "minimal_server.py"), "--port", "0", *extra])


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    t = time.perf_counter()
    yield
    print(f"  ({label}: {time.perf_counter() - t:.1f}s)", file=sys.stderr)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (printed, and pasted into docs/benchmarks.md)."""
    cells = [[str(c) for c in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
