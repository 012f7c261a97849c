"""Inbox mode: ``bulk-sync sync --inbox DIR --archive DIR`` serves a drop folder.

Each run (typically from cron or a systemd timer) takes the lock, then processes the
files waiting in the inbox one at a time, oldest first (by modification time, then
name):

- the file is synced like ``bulk-sync sync FILE`` with the other options given;
  its report is written into the archive as ``<name>.<UTC time>.report.csv``
  (``.report.xlsx`` when the input is a workbook);
- then the file is moved into the archive (as ``<stem>.<UTC time><suffix>`` when a
  file of that name is already there);
- a file that cannot be used (unreadable, missing columns: what makes a plain run
  exit 2) goes to ``<archive>/failed/`` with ``<name>.error.txt`` beside it saying
  why, and the run goes on with the next file;
- an aborted run (SIGINT/SIGTERM, credentials rejected: exit 3) stops there. The
  file stays in the inbox and the next run starts again with it: rows already
  accepted are sent again (the API is idempotent), or skipped with ``--state``.

Only regular files with a supported suffix (:data:`SUPPORTED_SUFFIXES`) are taken;
hidden files (``.name``, as many SFTP servers write uploads in progress) are ignored,
and so is a file modified less than ``BULK_SYNC_INBOX_MIN_AGE`` seconds ago
(default 10): it may still be being written; the next run takes it.

``--dry-run`` changes nothing in the inbox: it writes the reports (named
``<name>.<UTC time>.dry-run.report.csv``) into the archive and leaves every file where
it is, so that a rehearsal never makes the real run miss a file.

The exit code is the worst of the files' (3 > 2 > 1 > 0); 0 for an empty inbox.
``--summary-json`` and ``--metrics-file`` describe the whole inbox run (counts summed
over the files, one entry per file under ``files``), so an empty inbox still tells
monitoring that the job ran.

A run always holds ``<archive>/.bulk-sync.lock`` (besides the lock of ``--state`` or
``--lock``), so two runs never take the same files.

The inbox is a folder others write to, so nothing in it is trusted:

- each file is opened once, with ``O_NOFOLLOW``, and must be a plain file with one link
  (``fstat`` on the open descriptor): a file swapped for a symbolic link (or a pipe) after
  the inbox was listed is left alone and nothing is read through it. Its bytes are read
  from that descriptor and loaded from memory (workbooks included), and the file moved to
  the archive is the very one that was read (a hard link made through the descriptor,
  else a copy of the bytes read; the inbox name is removed only if it still names that
  file);
- a file whose name cannot be used safely (not UTF-8, control characters such as an ANSI
  escape or a line break, too long for the names derived from it) is set aside in
  ``failed/`` under a safe name (``<cleaned stem>-<hash><suffix>``) with an
  ``.error.txt`` saying why and what the name was (escaped); the rest of the inbox goes on;
- an ``.error.txt`` never repeats the file's cells (a header quoted in a message is shown
  as ``'…'``: the file may not be what it claims), and gets the file's own mode bits;
- names are escaped wherever they are shown (``\\xNN`` for bytes that are not UTF-8,
  ``\\x1b`` for control characters).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import logging
import os
import re
import shutil
import stat
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulk_sync.errors import BulkSyncError, ConfigError, InputError, UsageError
from bulk_sync.files import safe_text, show_path
from bulk_sync.loading import DELIMITED_EXTENSIONS, WORKBOOK_EXTENSIONS, LoadOptions
from bulk_sync.loading.options import size_text
from bulk_sync.lock import RunLock

if TYPE_CHECKING:
    from bulk_sync.config import Settings
    from bulk_sync.runner import Summary

log = logging.getLogger(__name__)

WORKBOOK_SUFFIXES: frozenset[str] = frozenset(WORKBOOK_EXTENSIONS)
SUPPORTED_SUFFIXES: tuple[str, ...] = (*DELIMITED_EXTENSIONS, *WORKBOOK_EXTENSIONS)
MIN_AGE_ENV = "BULK_SYNC_INBOX_MIN_AGE"
DEFAULT_MIN_AGE = 10.0
FAILED_FOLDER = "failed"
LOCK_NAME = ".bulk-sync.lock"

EXIT_OK, EXIT_ROWS, EXIT_UNUSABLE, EXIT_ABORTED = 0, 1, 2, 3

# Room kept for what is added to a file's name: the time, -N, ".dry-run.report.xlsx",
# ".full.csv", ".meta.json", ".journal.jsonl" and a temporary file's ".PID.HEX.tmp".
NAME_ROOM = 100
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class InboxFile:
    """A file of the inbox as it was read: once, through ``fd`` opened with ``O_NOFOLLOW``."""

    path: Path  # where it is in the inbox
    data: bytes  # its content, read from ``fd`` (nothing when over the size limit)
    fd: int  # still open: the file is archived through it
    info: os.stat_result  # fstat of ``fd``
    too_large: bool = False  # larger than the loader takes: not read at all

    @property
    def name(self) -> str:
        return self.path.name


RunFile = Callable[[InboxFile, Path], "Summary"]
"""Sync one inbox file (its bytes), writing its report at the given path; raises
UsageError when the file cannot be used."""


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one inbox file."""

    source: Path  # where it was in the inbox
    outcome: str  # "done", "failed" (unusable, moved to failed/), "stopped", "dry_run"
    exit_code: int
    report: Path | None = None
    archived_as: Path | None = None
    error: str = ""
    summary: Summary | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": safe_text(self.source.name),
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "report": str(self.report) if self.report else None,
            "archived_as": safe_text(str(self.archived_as)) if self.archived_as else None,
            "error": safe_text(self.error) or None,
        }


@dataclass(frozen=True)
class InboxResult:
    files: tuple[FileOutcome, ...]
    waiting: tuple[Path, ...]  # too recently modified: left for the next run
    elapsed: float

    @property
    def exit_code(self) -> int:
        return max((f.exit_code for f in self.files), default=EXIT_OK)


# -- listing ----------------------------------------------------------------------------


def min_age_from_env(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a file must have been left alone before it is taken (``BULK_SYNC_INBOX_MIN_AGE``)."""
    env = os.environ if environ is None else environ
    text = env.get(MIN_AGE_ENV, "").strip()
    if not text:
        return DEFAULT_MIN_AGE
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses NaN
        raise ConfigError(f"{MIN_AGE_ENV} must be a number of seconds >= 0 (got {text!r})")
    return value


def name_problem(name: str, limit: int) -> str:
    """Why ``name`` cannot be used as it is ("" when it can): not UTF-8, control
    characters, or more than ``limit`` bytes."""
    if any("\udc80" <= c <= "\udcff" for c in name):
        return "its name is not valid UTF-8"
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in _BIDI for c in name):
        return "its name holds control characters (an escape sequence, a line break...)"
    size = len(os.fsencode(name))
    if size > limit:
        return (
            f"its name is too long ({size} bytes; at most {limit}, to leave room for the "
            "names of its report and archive copy)"
        )
    return ""


def safe_name(name: str) -> str:
    """A name to set ``name`` aside under: its letters, digits and ``._-`` (at most 60),
    a hash of the whole name (so that two never clash) and its suffix."""
    raw = os.fsencode(name)
    digest = hashlib.sha256(raw).hexdigest()[:10]
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        suffix = ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    clean = _UNSAFE_NAME_CHARS.sub("_", stem.encode("ascii", "replace").decode("ascii"))
    clean = clean.strip("._") or "file"
    return f"{clean[:60]}-{digest}{suffix}"


def name_limit(folder: Path) -> int:
    """The longest inbox name (bytes) whose derived names all fit in ``folder``."""
    try:
        name_max = int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        name_max = 255
    return max(32, min(name_max, 255) - NAME_ROOM)


def scan_inbox(
    inbox: Path, *, min_age: float, now: float, limit: int = 255 - NAME_ROOM
) -> tuple[list[Path], list[Path], list[tuple[Path, str]]]:
    """The files to process, oldest first; those too recently modified to take yet; and
    those whose name cannot be used (with the reason), to set aside."""
    ready: list[tuple[float, str, Path]] = []
    waiting: list[Path] = []
    bad: list[tuple[Path, str]] = []
    with os.scandir(inbox) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if entry.is_symlink():
                log.info(
                    "inbox: ignoring %s: a symbolic link (only plain files are taken)",
                    show_path(name),
                )
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                log.info(
                    "inbox: ignoring %s: not a supported file type (%s)",
                    show_path(name),
                    " ".join(SUPPORTED_SUFFIXES),
                )
                continue
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if now - mtime < min_age:
                waiting.append(Path(entry.path))
                continue
            problem = name_problem(name, limit)
            if problem:
                bad.append((Path(entry.path), problem))
            else:
                ready.append((mtime, name, Path(entry.path)))
    ready.sort(key=lambda t: (t[0], t[1]))
    waiting.sort()
    bad.sort()
    return [p for _, _, p in ready], waiting, bad


# -- naming -----------------------------------------------------------------------------


def _stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")


def _taken(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def report_path_for(archive: Path, source: Path, stamp: str, *, dry_run: bool = False) -> Path:
    """``<archive>/<name>.<stamp>[.dry-run].report.csv|xlsx``, not yet used (nor its journal)."""
    suffix = ".xlsx" if source.suffix.lower() in WORKBOOK_SUFFIXES else ".csv"
    kind = ".dry-run.report" if dry_run else ".report"
    base = f"{source.name}.{stamp}"
    n = 0
    while True:
        candidate = archive / f"{base}{f'-{n}' if n else ''}{kind}{suffix}"
        journal = candidate.with_name(candidate.name + ".journal.jsonl")
        if not _taken(candidate) and not _taken(journal):
            return candidate
        n += 1


def free_name(folder: Path, name: str, stamp: str) -> Path:
    """``folder/name``, or ``folder/<stem>.<stamp>[-n]<suffix>`` when that is taken."""
    candidate = folder / name
    if not _taken(candidate):
        return candidate
    p = Path(name)
    n = 0
    while True:
        candidate = folder / f"{p.stem}.{stamp}{f'-{n}' if n else ''}{p.suffix}"
        if not _taken(candidate):
            return candidate
        n += 1


def _move(source: Path, folder: Path, stamp: str, name: str | None = None) -> Path:
    """Move the directory entry ``source`` (not what it may point to) into ``folder``."""
    dest = free_name(folder, name or source.name, stamp)
    try:
        _own_folder(folder)
        shutil.move(source, dest)
    except OSError as exc:
        raise BulkSyncError(
            f"inbox: cannot move {show_path(source)} to {show_path(dest)}: "
            f"{exc.strerror or exc}; the file stays in the inbox and the next run takes it again"
        ) from None
    return dest


def _own_folder(folder: Path) -> None:
    """``folder`` exists and is a real folder, not a link to somewhere else."""
    folder.mkdir(exist_ok=True)
    if os.path.islink(folder) or not folder.is_dir():
        raise OSError(errno.ENOTDIR, "it is a symbolic link, not a folder")


class NotAPlainFile(Exception):
    """An inbox entry that is no longer a plain file (swapped for a link, a pipe...)."""


def read_inbox_file(path: Path, max_bytes: int) -> InboxFile:
    """Open ``path`` with ``O_NOFOLLOW``, check the descriptor is a plain file with one
    link, and read it (at most ``max_bytes + 1`` bytes: the loader refuses more).
    The caller closes ``fd``. Raises :class:`NotAPlainFile`."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAPlainFile("it is now a symbolic link") from None
        raise NotAPlainFile(f"it cannot be opened: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotAPlainFile("it is no longer a plain file")
        if info.st_nlink > 1:
            raise NotAPlainFile(
                f"it has {info.st_nlink} hard links (it may be another file in disguise)"
            )
        os.set_blocking(fd, True)
        if info.st_size > max_bytes:  # refused without reading gigabytes first
            return InboxFile(path, b"", fd, info, too_large=True)
        chunks = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return InboxFile(path, b"".join(chunks), fd, info)
    except BaseException:
        os.close(fd)
        raise


def _archive_read_file(file: InboxFile, folder: Path, stamp: str) -> Path:
    """Put the very file that was read into ``folder``: a hard link made through its
    descriptor, else a new file holding the bytes read; then remove its inbox name if
    that still names the same file."""
    dest = free_name(folder, file.name, stamp)
    try:
        _own_folder(folder)
        try:
            os.link(f"/proc/self/fd/{file.fd}", dest)
        except OSError:  # no /proc, another file system, protected_hardlinks...
            if file.too_large:  # not read: move the name, if it is still that file
                if _same_file(file):
                    shutil.move(file.path, dest)
                return dest
            _write_new(dest, file.data, stat.S_IMODE(file.info.st_mode))
            os.utime(dest, ns=(file.info.st_atime_ns, file.info.st_mtime_ns))
    except OSError as exc:
        raise BulkSyncError(
            f"inbox: cannot move {show_path(file.path)} to {show_path(dest)}: "
            f"{exc.strerror or exc}; the file stays in the inbox and the next run takes it again"
        ) from None
    try:
        if _same_file(file):
            os.unlink(file.path)
        elif os.path.lexists(file.path):
            log.warning(
                "inbox: %s was replaced while it was processed; the file that was read is "
                "in the archive, the new one stays in the inbox",
                show_path(file.name),
            )
    except FileNotFoundError:
        pass
    return dest


def _same_file(file: InboxFile) -> bool:
    """Whether the inbox name still names the file that was opened."""
    try:
        now = os.lstat(file.path)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (file.info.st_dev, file.info.st_ino)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never through a link, never over a file) holding ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'" + r'|"(?:[^"\\\n]|\\.)*"')


def error_text(exc: UsageError) -> str:
    """The message of ``exc`` for an ``.error.txt``: cells of the file (a header a
    message quotes) become ``'…'``; the needed column names and the sheet stay."""
    keep = {"'customer_id'", "'attribute'", "'value'"}
    sheet = exc.sheet if isinstance(exc, InputError) else ""
    if sheet:
        keep.add(repr(sheet))
    return _QUOTED.sub(lambda m: m.group() if m.group() in keep else "'…'", str(exc))


# -- the loop ---------------------------------------------------------------------------


def process_inbox(
    inbox: Path,
    archive: Path,
    run_file: RunFile,
    *,
    dry_run: bool = False,
    min_age: float = DEFAULT_MIN_AGE,
    clock: Callable[[], float] = time.time,
    max_bytes: int | None = None,
) -> InboxResult:
    """Process the files waiting in ``inbox`` (see the module's documentation).

    ``run_file(file, report)`` syncs one file from the bytes read; a :class:`UsageError`
    from it sends the file to ``failed/``. Other exceptions propagate, leaving the file
    in the inbox. ``max_bytes`` (default: the loader's limit) bounds what is read.
    """
    started = clock()
    limit = max_bytes if max_bytes is not None else LoadOptions().max_file_bytes
    ready, waiting, bad = scan_inbox(inbox, min_age=min_age, now=started, limit=name_limit(archive))
    for path in waiting:
        log.info(
            "inbox: %s was modified less than %gs ago (it may still be being written); "
            "leaving it for the next run",
            show_path(path.name),
            min_age,
            extra={"event": "inbox_waiting", "file": safe_text(path.name)},
        )
    outcomes: list[FileOutcome] = [
        _set_aside(path, reason, archive, dry_run=dry_run, now=clock()) for path, reason in bad
    ]
    if not ready:
        log.info(
            "inbox empty: no file in %s to process",
            show_path(inbox),
            extra={"event": "inbox_empty", "waiting": len(waiting)},
        )
        return InboxResult(tuple(outcomes), tuple(waiting), clock() - started)
    log.info(
        "inbox: %d file(s) to process, oldest first: %s",
        len(ready),
        ", ".join(show_path(p.name) for p in ready),
        extra={"event": "inbox_start", "files": [safe_text(p.name) for p in ready]},
    )
    for k, path in enumerate(ready):
        try:
            file = read_inbox_file(path, limit)
        except NotAPlainFile as exc:
            if not os.path.lexists(path):
                log.warning(
                    "inbox: %s disappeared before it was processed; skipping it",
                    show_path(path.name),
                )
                continue
            message = f"{show_path(path.name)}: {exc}; left alone, nothing was read from it"
            log.error(message, extra={"event": "inbox_failed", "file": safe_text(path.name)})
            outcomes.append(FileOutcome(path, "failed", EXIT_UNUSABLE, error=message))
            continue
        try:
            outcome = _process_one(
                file, archive, run_file, dry_run=dry_run, now=clock(), limit=limit
            )
        finally:
            os.close(file.fd)
        outcomes.append(outcome)
        if outcome.outcome == "stopped":
            left = len(ready) - k - 1
            log.warning(
                "inbox: run aborted while processing %s; it stays in the inbox (and %d "
                "file(s) after it) for the next run, which sends its rows again "
                "(with --state, only those not yet recorded)",
                show_path(path.name),
                left,
                extra={"event": "inbox_stopped", "file": safe_text(path.name), "left": left},
            )
            break
    return InboxResult(tuple(outcomes), tuple(waiting), clock() - started)


def _set_aside(path: Path, reason: str, archive: Path, *, dry_run: bool, now: float) -> FileOutcome:
    """A file whose name cannot be used: into ``failed/`` under a safe name, with why."""
    shown = show_path(path.name)
    if dry_run:
        log.error(
            "inbox: %s cannot be used: %s (dry run: left in the inbox)",
            shown,
            reason,
            extra={"event": "inbox_failed", "file": safe_text(path.name)},
        )
        return FileOutcome(path, "failed", EXIT_UNUSABLE, error=f"{shown}: {reason}")
    stamp = _stamp(now)
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode) & 0o666
    except OSError:
        mode = 0o600
    dest = _move(path, archive / FAILED_FOLDER, stamp, name=safe_name(path.name))
    _write_error_file(
        dest,
        f"A file dropped into the inbox could not be used because of its name; nothing was "
        f"sent and nothing was read from it.\n\nIts name was: {shown}\n"
        f"(bytes that are not UTF-8 are shown as \\xNN, control characters as escapes)\n\n"
        f"Why: {reason}.\n\nIt was set aside as {dest.name}. Give it a plain name (UTF-8, "
        "no control characters, not too long) and drop it into the inbox again.\n",
        mode,
    )
    log.error(
        "inbox: %s cannot be used: %s; set aside as %s",
        shown,
        reason,
        show_path(dest),
        extra={"event": "inbox_failed", "file": safe_text(path.name), "moved_to": str(dest)},
    )
    return FileOutcome(path, "failed", EXIT_UNUSABLE, archived_as=dest, error=f"{shown}: {reason}")


def _write_error_file(archived: Path, text: str, mode: int) -> None:
    """``<archived>.error.txt``, new (never over a file or through a link), ``mode``."""
    error_file = free_name(archived.parent, archived.name + ".error.txt", "")
    try:
        _write_new(error_file, text.encode("utf-8", "backslashreplace"), mode)
    except OSError as exc:
        log.warning("inbox: cannot write %s: %s", show_path(error_file), exc.strerror or exc)


def _process_one(
    file: InboxFile, archive: Path, run_file: RunFile, *, dry_run: bool, now: float, limit: int
) -> FileOutcome:
    path = file.path
    stamp = _stamp(now)
    report = report_path_for(archive, path, stamp, dry_run=dry_run)
    log.info(
        "inbox: processing %s (report %s)",
        show_path(path.name),
        show_path(report),
        extra={"event": "inbox_file", "file": safe_text(path.name), "report": str(report)},
    )
    try:
        if file.too_large:
            raise InputError(
                f"file is too large ({size_text(file.info.st_size)}; the limit is "
                f"{size_text(limit)})",
                source=path.name,
            )
        summary = run_file(file, report)
    except UsageError as exc:
        message = str(exc)
        if dry_run:
            log.error(
                "inbox: %s cannot be used: %s (dry run: left in the inbox)",
                show_path(path.name),
                message,
                extra={"event": "inbox_failed", "file": safe_text(path.name)},
            )
            return FileOutcome(path, "failed", EXIT_UNUSABLE, error=message)
        dest = _archive_read_file(file, archive / FAILED_FOLDER, stamp)
        _write_error_file(
            dest,
            f"{show_path(path.name)} could not be used; nothing was sent.\n\n{error_text(exc)}"
            "\n\n(The file's own cells are not repeated here: a header or value a message "
            "quotes is shown as '…'.)\n\nFix the file and drop it into the inbox again.\n",
            stat.S_IMODE(file.info.st_mode) & 0o666,
        )
        log.error(
            "inbox: %s cannot be used: %s; moved to %s",
            show_path(path.name),
            message,
            show_path(dest),
            extra={"event": "inbox_failed", "file": safe_text(path.name), "moved_to": str(dest)},
        )
        return FileOutcome(path, "failed", EXIT_UNUSABLE, archived_as=dest, error=message)
    code = summary.exit_code
    if code >= EXIT_ABORTED:
        return FileOutcome(
            path, "stopped", code, report=report, error=summary.aborted, summary=summary
        )
    if dry_run:
        return FileOutcome(path, "dry_run", code, report=report, summary=summary)
    dest = _archive_read_file(file, archive, stamp)
    log.info(
        "inbox: %s done (exit code %d); moved to %s",
        show_path(path.name),
        code,
        show_path(dest),
        extra={
            "event": "inbox_done",
            "file": safe_text(path.name),
            "exit_code": code,
            "moved_to": str(dest),
        },
    )
    return FileOutcome(path, "done", code, report=report, archived_as=dest, summary=summary)


# -- the command ------------------------------------------------------------------------


def _folders(opts: Mapping[str, Any]) -> tuple[Path, Path]:
    inbox, archive = opts.get("inbox"), opts.get("archive")
    if inbox is None or archive is None:
        raise UsageError("--inbox and --archive go together: give both folders")
    inbox, archive = Path(inbox), Path(archive)
    for flag, folder in (("--inbox", inbox), ("--archive", archive)):
        if not folder.is_dir():
            raise UsageError(f"{flag} {folder}: no such folder")
    if inbox.resolve() == archive.resolve():
        raise UsageError("--archive must be another folder than --inbox")
    if not os.access(archive, os.W_OK | os.X_OK):
        raise UsageError(f"--archive {archive}: folder is not writable")
    failed = archive / FAILED_FOLDER
    if os.path.islink(failed) or (os.path.lexists(failed) and not failed.is_dir()):
        raise UsageError(
            f"--archive {show_path(archive)}: {FAILED_FOLDER!r} in it is not a folder (a "
            "symbolic link?); unusable files would be moved wherever it points. Remove it"
        )
    for flag in ("resume", "report"):
        if opts.get(flag):
            raise UsageError(
                f"--{flag} does not apply to --inbox: each file's report is written into the "
                "archive folder as <name>.<time>.report.csv (.xlsx for workbooks)"
            )
    return inbox, archive


def run_inbox_cli(settings: Settings, opts: dict[str, Any], hooks: dict[str, Any]) -> int:
    """``bulk-sync sync --inbox DIR --archive DIR [options]``; returns the exit code.

    ``hooks`` come from the CLI: ``lock_and_state(settings, opts)`` (context manager
    yielding the state store or ``None``), ``run_async(make, settings, opts)`` and
    ``finish(summary, settings, quiet)``.
    """
    from bulk_sync.runner import InputBytes, Shard, check_base_url, sync_async

    inbox, archive = _folders(opts)
    min_age = opts.get("inbox_min_age")
    min_age = min_age_from_env() if min_age is None else float(min_age)
    dry_run = bool(opts.get("dry_run"))
    quiet = bool(opts.get("quiet"))
    if quiet:  # as each file's run does: only warnings and errors, from the first line
        logging.getLogger("bulk_sync").setLevel(logging.WARNING)
    full = bool(opts.get("full"))
    shard = Shard.parse(opts["shard"]) if opts.get("shard") else None
    if shard is not None and settings.rate:
        settings = settings.replace(rate=settings.rate / shard.count)
    if not dry_run:
        # Problems of the run, not of a file: refuse before any file is touched.
        check_base_url(settings)
        token = settings.token()
        if token is None:
            raise ConfigError(
                f"no API key: set the environment variable {settings.token_env} "
                "(or run with --dry-run)"
            )
        check_base_url(settings, token)
    # Each file's summary goes to the terminal; the files (summary JSON, metrics)
    # describe the whole inbox run and are written once at the end.
    per_file = dataclasses.replace(settings, summary_json=None, metrics_file=None)

    with contextlib.ExitStack() as stack:
        archive_lock = archive / LOCK_NAME
        if not dry_run and (
            settings.lock is None or settings.lock.resolve() != archive_lock.resolve()
        ):
            # Two runs must never take the same files, whatever their --state or --lock:
            # the archive's lock is always held (besides the state's).
            stack.enter_context(RunLock(archive_lock))
        state = stack.enter_context(hooks["lock_and_state"](settings, opts))

        def run_file(file: InboxFile, report: Path) -> Summary:
            summary: Summary = hooks["run_async"](
                lambda stop, on_event: sync_async(
                    [InputBytes(str(file.path), file.data)],
                    settings,
                    report=report,
                    dry_run=dry_run,
                    shard=shard,
                    state=state,
                    full=full,
                    stop=stop,
                    on_event=on_event,
                ),
                settings,
                opts,
            )
            hooks["finish"](summary, per_file, quiet)
            return summary

        result = process_inbox(inbox, archive, run_file, dry_run=dry_run, min_age=min_age)

    total = inbox_summary(result, inbox=inbox, archive=archive, dry_run=dry_run)
    log.info(
        "inbox run finished: %d file(s), exit code %d",
        len(result.files),
        total.exit_code,
        extra={"event": "inbox_summary", **total.to_dict()},
    )
    if settings.summary_json is not None or settings.metrics_file is not None:
        from bulk_sync.observability import write_metrics, write_summary_json

        if settings.summary_json is not None:
            write_summary_json(settings.summary_json, total)
        if settings.metrics_file is not None:
            write_metrics(settings.metrics_file, total, job=settings.metrics_job)
    return total.exit_code


def inbox_summary(result: InboxResult, *, inbox: Path, archive: Path, dry_run: bool) -> Summary:
    """One :class:`~bulk_sync.runner.Summary` for the whole inbox run."""
    from bulk_sync.models import Status
    from bulk_sync.runner import Summary

    counts = {s.value: 0 for s in Status}
    summaries: Sequence[Summary] = [f.summary for f in result.files if f.summary is not None]
    for s in summaries:
        for key, n in s.counts.items():
            counts[key] = counts.get(key, 0) + n
    aborted = next((f.error or "aborted" for f in result.files if f.outcome == "stopped"), "")
    return Summary(
        counts=counts,
        rows=sum(s.rows for s in summaries),
        customers=sum(s.customers for s in summaries),
        requests=sum(s.requests for s in summaries),
        retries=sum(s.retries for s in summaries),
        elapsed=result.elapsed,
        report=archive,
        exit_code=result.exit_code,
        dry_run=dry_run,
        aborted=aborted,
        throttled=sum(s.throttled for s in summaries),
        inputs=tuple(str(f.source) for f in result.files),
        extra={
            "inbox": str(inbox),
            "archive": str(archive),
            "files": [f.to_dict() for f in result.files],
            "files_failed": sum(f.outcome == "failed" for f in result.files),
            "files_waiting": [p.name for p in result.waiting],
        },
    )
