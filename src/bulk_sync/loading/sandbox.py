"""A reader run in a forked child with a memory, CPU and wall-clock limit, so a reader
that aborts the process (the Rust reader does, on some damaged files) costs a clean error
instead of the run."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from bulk_sync.errors import InputError
from bulk_sync.loading.options import GiB

log = logging.getLogger("bulk_sync.loading")

T = TypeVar("T")


# The Rust reader aborts the whole process (no exception: "memory allocation of N bytes
# failed", SIGABRT) on some damaged or crafted files: an XLS whose records or sector
# chains are garbled, a cell at XFD1048576, a shared-strings table declaring billions of
# strings (upstream calamine issues #550, #684, #714). Every workbook is therefore read in
# a forked child with a memory and CPU limit (the fork and the hand-back of the tables cost
# a few hundredths of a second per 100,000 rows). A damaged file of any size then ends in
# a clean error, never in a signal.
_CHILD_EXTRA_MEMORY = 2 * GiB  # address space the child may add to what it inherits...
_CHILD_MEMORY_PER_BYTE = 40  # ...or this many times the workbook's size, if more
_CHILD_CPU_SECONDS = 60
_CHILD_WALL_SECONDS = 120  # the child is killed after this long, busy or not


def isolated(work: Callable[[], T], fmt: str, source: str, size: int = 0) -> T:
    """``work()`` run in a forked child: what it returns (tables, or any value that
    pickles: a :class:`~bulk_sync.loading.peek.Peek`), its InputError, or an InputError
    saying the file made the reader give up. Log records of the child are re-emitted."""
    import faulthandler
    import pickle
    import signal

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read_fd)
            with contextlib.suppress(Exception):
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)  # the reader's abort message is for us, not the user
                faulthandler.disable()  # nor a Python crash report, wherever it would go
                # Signals are the parent's business (it acts on them once the file is
                # read, as it would reading in-process); the child never writes to the
                # parent's event-loop wakeup descriptor either.
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _limit_child(max(_CHILD_EXTRA_MEMORY, _CHILD_MEMORY_PER_BYTE * size))
            # No cycle collection in a child that lives for one read: what it makes (a
            # list per row of the sheet) is not cyclic garbage, and collecting it took
            # more time than the reader's own Python objects (and copied the inherited
            # pages it walked). Memory stays bounded by the limit above.
            gc.disable()
            # A wall-clock bound as well: a child that blocks (a lock some thread of the
            # parent held at fork time) dies of SIGALRM instead of hanging the run.
            signal.alarm(_CHILD_WALL_SECONDS)
            records: list[tuple[int, str]] = []
            handler = _Collect(records)
            logging.getLogger("bulk_sync").addHandler(handler)
            outcome: tuple[Any, ...]
            try:
                outcome = ("tables", work())
            except InputError as exc:
                outcome = ("input", exc.reason, exc.source, exc.sheet, exc.row, exc.column)
            except MemoryError:
                outcome = ("memory",)
            except BaseException as exc:
                outcome = ("error", f"{type(exc).__name__}: {exc}")
            data = pickle.dumps((records, outcome), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as f:
                f.write(data)
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as f:
            data = f.read()
    except BaseException:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    try:
        records, outcome = pickle.loads(data)  # noqa: S301 - written by our own child
    except Exception:  # the child died before saying anything
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGALRM):
            why = f"reading it takes more than {_CHILD_CPU_SECONDS} seconds"
        else:
            why = (
                "reading it would need far more memory than its size justifies (a garbled "
                "structure, or a cell far outside the data such as XFD1048576)"
            )
        raise ReaderDied(
            f"not a valid {fmt} workbook: the file is damaged: {why}",
            source=source,
            timed_out=os.WIFSIGNALED(status)
            and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGALRM),
        ) from None
    # The child has said all and is exiting: it is reaped in the background, as the
    # kernel takes its memory back (tens of milliseconds for a large sheet).
    threading.Thread(target=_reap, args=(pid,), name="bulk-sync-reaper", daemon=True).start()
    for level, message in records:
        log.log(level, "%s", message)
    kind = outcome[0]
    if kind == "tables":
        result: T = outcome[1]
        return result
    if kind == "input":
        _, reason, src, sheet, row, column = outcome
        raise InputError(reason, source=src, sheet=sheet, row=row, column=column)
    if kind == "memory":
        raise MemoryError
    raise InputError(f"cannot be read ({outcome[1]})", source=source)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # (reaped by someone else already)
        os.waitpid(pid, 0)


class ReaderDied(InputError):
    """The child ended without a word (the reader aborted it, or a limit killed it)."""

    def __init__(self, reason: str, *, source: str, timed_out: bool) -> None:
        super().__init__(reason, source=source)
        self.timed_out = timed_out  # killed for taking too long (CPU or wall clock)


class _Collect(logging.Handler):
    def __init__(self, records: list[tuple[int, str]]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))


def _limit_child(extra_memory: int) -> None:
    """Cap the child's address space (what it inherited plus a margin) and CPU time, so a
    runaway allocation fails and a runaway loop stops. Best effort: Linux only."""
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as f:
            inherited = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = inherited + extra_memory
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        cpu = _CHILD_CPU_SECONDS
        if hard != resource.RLIM_INFINITY:
            cpu = min(cpu, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, hard))
    except (ImportError, OSError, ValueError):
        pass
