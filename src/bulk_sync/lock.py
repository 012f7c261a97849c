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
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bulk_sync.errors import LockedError, UsageError

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
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise UsageError(
                f"cannot create the lock file {self.path}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(self._held_message()) from None
            raise UsageError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
        try:
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "command": self.command,
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
            f"another bulk-sync run holds the lock {self.path} ({details}); "
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
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        data = json.loads(text)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 1234 on host h, started 2026-11-28T10:00:00Z, command: bulk-sync sync ...``"""
    if not holder.get("pid"):
        return "holder not known yet: it is starting"
    parts = [f"pid {holder['pid']}"]
    if holder.get("host"):
        parts[0] += f" on host {holder['host']}"
    if holder.get("started"):
        parts.append(f"started {holder['started']}")
    command = holder.get("command")
    if isinstance(command, list) and command:
        text = " ".join(str(c) for c in command)
        parts.append("command: " + (text if len(text) <= 200 else text[:197] + "..."))
    return ", ".join(parts)
