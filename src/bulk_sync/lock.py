"""One run at a time: an exclusive lock on a file (``--lock``, or ``<state>.lock``).

    >>> with RunLock(Path("state.db.lock")):  # doctest: +SKIP
    ...     ...  # nobody else holds it until the block ends

The lock is ``flock(LOCK_EX | LOCK_NB)`` on a file kept open for the whole run, so:

- a second run does not wait: it fails at once with :class:`LockedError`, whose
  message names the holder (pid, host, start time, command) as written in the file;
- the operating system releases the lock when the holder's process ends, however it
  ends (``kill -9`` and crashes included): a dead run never blocks the next one;
- it is a lock between processes of ONE machine. ``flock`` on NFS or other network
  file systems is not reliable across hosts; runs on several machines (``--shard``)
  each need their own state and lock files on local disk.

The file is left in place when the run ends (emptied): removing it could race with a
process that has just opened it and would then lock a file nobody else sees.
POSIX only (Linux, macOS).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bulk_sync.errors import LockedError, UsageError
from bulk_sync.files import open_private, safe_text, show_path

__all__ = ["RunLock", "read_holder"]


class RunLock:
    """Exclusive, non-blocking, process-lifetime lock on ``path``. A context manager."""

    def __init__(self, path: Path, *, command: list[str] | None = None) -> None:
        self.path = Path(path)
        self.command = list(sys.argv if command is None else command)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`LockedError` (held) / :class:`UsageError`."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this RunLock")
        # Never through a symlink: a link planted at the lock path would have the run
        # truncate whatever file it points to.
        fd = open_private(self.path, what="the lock file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(self._held_message()) from None
            raise UsageError(f"cannot lock {show_path(self.path)}: {exc.strerror or exc}") from None
        try:
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                # A file name in argv may not be UTF-8 (surrogate escapes): shown as \xNN.
                "command": [safe_text(c) for c in self.command],
            }
            data = (json.dumps(info, ensure_ascii=False) + "\n").encode("utf-8")
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:
            pass  # the lock holds all the same; only the holder's description is missing
        self._fd = fd

    def release(self) -> None:
        """Empty the file and release the lock. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # while still holding it: nobody reads a stale holder
        except OSError:
            pass
        finally:
            os.close(fd)  # closing releases the flock

    def _held_message(self) -> str:
        holder = read_holder(self.path)
        details = describe_holder(holder)
        return (
            f"another bulk-sync run holds the lock {show_path(self.path)} ({details}); "
            "wait for it to finish, or stop it"
        )

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def read_holder(path: Path) -> dict[str, Any]:
    """What the holder of the lock wrote into it; ``{}`` when unknown or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}
        text = os.read(fd, 1 << 16).decode("utf-8", errors="replace")
        data = json.loads(text)
    except (OSError, ValueError, RecursionError):
        return {}
    finally:
        os.close(fd)
    return data if isinstance(data, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 1234 on host h, started 2026-11-28T10:00:00Z, command: bulk-sync sync ...``"""
    if not holder.get("pid"):
        return "holder not known yet: it is starting"
    # The file is anyone's to write: what it says is shown escaped and cut short.
    parts = [f"pid {_shown(holder['pid'], 20)}"]
    if holder.get("host"):
        parts[0] += f" on host {_shown(holder['host'], 100)}"
    if holder.get("started"):
        parts.append(f"started {_shown(holder['started'], 40)}")
    command = holder.get("command")
    if isinstance(command, list) and command:
        parts.append("command: " + _shown(" ".join(str(c) for c in command), 200))
    return ", ".join(parts)


def _shown(value: object, most: int) -> str:
    text = show_path(str(value))
    return text if len(text) <= most else text[: most - 3] + "..."
