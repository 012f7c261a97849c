"""Files written where others may write too: never through a symlink, never half-written.

The folders bulk_sync writes into (the report's folder, an inbox archive, the metrics
folder of node_exporter) may be shared with other users or services. Whoever can write
there can plant a symbolic link (or a hard link) at a name bulk_sync is about to use,
hoping that the run writes customer data into, or truncates, a file the link points to.
So:

- :func:`open_private` opens a file that bulk_sync keeps open and appends to or
  truncates (a journal, a lock file) with ``O_NOFOLLOW``, creating it with ``O_EXCL``
  where it is new, and refuses anything but a plain regular file with one link;
- :func:`atomic_write` replaces a file by writing a temporary file created with
  ``O_EXCL`` and renaming it over the target: a symlink at the target is replaced, never
  followed. The new file gets the mode a plain ``open()`` would give it (``0o666``
  less the umask), or the mode of the file it replaces.

A refusal is a :class:`~bulk_sync.errors.UsageError` whose message names the path and
says why, so the run stops with exit 2 before anything is written through the link.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from bulk_sync.errors import UsageError

__all__ = [
    "atomic_write",
    "escape_controls",
    "fsync_directory",
    "lexists",
    "open_private",
    "safe_text",
    "show_path",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def safe_text(text: str) -> str:
    """``text`` with what UTF-8 cannot carry made visible: the bytes of a file name that
    was not UTF-8 (decoded by Python as surrogate escapes) become ``\\xNN``, other lone
    surrogates ``\\udXXX``. The result always encodes to UTF-8 (JSON, logs, lock files)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for c in text:
        if "\udc80" <= c <= "\udcff":
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif "\ud800" <= c <= "\udfff":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)


def show_path(path: Path | str) -> str:
    """``path`` as text safe to print on a terminal or in a text log: bytes that were not
    UTF-8 become ``\\xNN`` and control characters (an ANSI escape, a line break that
    would forge a log line) their backslash escapes (``\\x1b``, ``\\n``)."""
    text = safe_text(os.fspath(path) if not isinstance(path, str) else path)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def escape_controls(text: str) -> str:
    """``text`` with control characters escaped (line breaks and tabs kept)."""
    text = safe_text(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    return c.encode("unicode_escape").decode("ascii")


def lexists(path: Path) -> bool:
    """Whether anything, a dangling symlink included, has the name ``path``."""
    return os.path.lexists(path)


def open_private(path: Path, *, what: str, append: bool = False) -> int:
    """A descriptor on the regular file ``path`` (read and write), created if missing.

    A symbolic link at ``path`` is refused, and so is anything but a regular file with a
    single link (a hard link to a file elsewhere, a FIFO, a device). ``what`` names the
    file in the messages ("the journal", "the lock file"). ``append`` opens it
    ``O_APPEND``. Raises :class:`UsageError`.
    """
    flags = os.O_RDWR | _NOFOLLOW | _CLOEXEC | _NONBLOCK | (os.O_APPEND if append else 0)
    verb = "create"
    try:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            verb = "open"
            fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EEXIST and os.path.islink(path)):
            raise UsageError(_symlink_message(path, what)) from None
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads
            raise UsageError(_not_regular_message(path, what, "a pipe")) from None
        raise UsageError(f"cannot {verb} {what} {show_path(path)}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(_not_regular_message(path, what, _kind(info.st_mode)))
        if info.st_nlink > 1:
            raise UsageError(
                f"{what} {show_path(path)} has {info.st_nlink} hard links: it may be another "
                "file in disguise, so bulk-sync will not write to it. Remove it (or choose "
                "another path) and run again"
            )
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _symlink_message(path: Path, what: str) -> str:
    return (
        f"{what} {show_path(path)} is a symbolic link; bulk-sync never writes through a "
        "link (someone may have planted it to make the run overwrite another file). "
        "Remove the link (or choose another path) and run again"
    )


def _not_regular_message(path: Path, what: str, kind: str) -> str:
    return f"{what} {show_path(path)} is {kind}, not a regular file; remove it and run again"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a plain file"


def _existing_mode(path: Path) -> int | None:
    """The permission bits of the regular file at ``path`` (a symlink is not looked through)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else None


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Replace ``path`` with what ``write(f)`` writes into ``f``, a fresh temporary file.

    The temporary file is created beside ``path`` with ``O_EXCL`` (so not through a link)
    and the mode a plain ``open()`` would give (``0o666`` less the umask); when a regular
    file is being replaced, its mode is kept. ``write`` gets the open binary file (never
    a name to open again, which someone could swap for a link meanwhile) and must not
    close it. The file is fsynced and renamed over ``path`` (a symlink at ``path`` is
    replaced, not followed), then the folder is fsynced.
    """
    path = Path(path)
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666)
    try:
        try:
            mode = _existing_mode(path)
            if mode is not None:
                os.fchmod(fd, mode)
            f = os.fdopen(fd, "wb", buffering=1 << 20)
        except BaseException:
            os.close(fd)
            raise
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
