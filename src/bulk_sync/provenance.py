"""Where a report came from: the API it was made against and the input files it read.

``--resume REPORT`` skips the rows REPORT calls ``ok``. That is right only when those
rows were accepted by the API this run talks to: a rehearsal report made against the
emulator, reused against production, would otherwise mark every row ``skipped`` and send
nothing (exit 0, data silently not migrated). So every report records its facts:

- the XLSX report in its ``summary`` sheet, the CSV report in ``REPORT.meta.json`` beside
  it (its columns are a contract: no extra line or column), the journal in its header
  line: ``base_url`` and ``input files`` (name, size and SHA-256 of each input);
- ``--resume`` compares the base URL of every source it reads (the report and the
  journal beside it) with this run's and refuses another one, or an unknown one, unless
  ``--resume-any-url``; different input files only bring a warning (a corrected file is
  a normal thing to resume with: rows are matched by customer, attribute and value).

``--state`` makes the same check with the scope recorded in the state file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from bulk_sync.errors import UsageError
from bulk_sync.files import show_path
from bulk_sync.report import journal_path_for, meta_path_for, read_journal_header, read_meta

log = logging.getLogger(__name__)

__all__ = ["bytes_identity", "check_resume", "path_identity", "same_api"]

INPUT_FILES = "input files"  # the key of the facts and of the journal header


def bytes_identity(name: str, data: bytes) -> dict[str, object]:
    """``{"file": name, "bytes": n, "sha256": hex}`` of an input read into memory."""
    return {"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def path_identity(path: Path) -> dict[str, object]:
    """The same for a file on disk (read once more, in blocks); size and hash ``None``
    when it cannot be read (loading it then says why)."""
    try:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
            size: int | None = f.tell()
    except OSError:
        digest, size = None, None
    return {"file": Path(path).name, "bytes": size, "sha256": digest}


def _api(url: str) -> tuple[str, ...]:
    text = url.strip()
    try:
        p = urlsplit(text)
        scheme = p.scheme.lower()
        port = p.port or {"https": 443, "http": 80}.get(scheme, 0)
        return (scheme, (p.hostname or "").lower(), str(port), p.path.rstrip("/"))
    except ValueError:
        return (text.rstrip("/"),)


def same_api(a: str, b: str) -> bool:
    """Whether two base URLs name the same API (case of scheme and host, default port
    and a trailing slash aside)."""
    return _api(a) == _api(b)


def _sources(resume: Path) -> list[tuple[str, Mapping[str, object] | None]]:
    """(what, its facts or None) for each file ``--resume`` reads."""
    if resume.suffix.lower() == ".jsonl":
        return [(f"the header of the journal {show_path(resume)}", read_journal_header(resume))]
    out: list[tuple[str, Mapping[str, object] | None]] = []
    if resume.exists() and resume.stat().st_size > 0:
        where = (
            f"the summary sheet of {show_path(resume)}"
            if resume.suffix.lower() == ".xlsx"
            else f"{show_path(meta_path_for(resume))}"
        )
        out.append((where, read_meta(resume)))
    journal = journal_path_for(resume)
    if journal.exists():
        out.append(
            (f"the header of the journal {show_path(journal)}", read_journal_header(journal))
        )
    return out


def check_resume(
    resume: Path,
    base_url: str,
    input_files: Sequence[Mapping[str, object]],
    *,
    any_url: bool = False,
) -> None:
    """Refuse (:class:`UsageError`, exit 2) to resume from a report made against another
    API than ``base_url``, or one that does not say, unless ``any_url``; warn when it was
    made from other input files. Call it only when the report has rows it would skip."""
    resume = Path(resume)
    for where, facts in _sources(resume):
        recorded = facts.get("base_url") if facts else None
        if not isinstance(recorded, str) or not recorded:
            if not any_url:
                raise UsageError(
                    f"--resume {show_path(resume)}: {where} does not say which API the report "
                    "was made against (an older bulk-sync made it, or that file was not kept), "
                    f"so the rows it calls ok may not be on {base_url}. Pass --resume-any-url "
                    "if you are sure they are"
                )
            log.warning(
                "--resume-any-url: %s does not say which API it was made against; its ok rows "
                "are taken as done on %s",
                where,
                base_url,
                extra={"event": "resume_any_url"},
            )
        elif not same_api(recorded, base_url):
            if not any_url:
                raise UsageError(
                    f"--resume {show_path(resume)} was made against {recorded} ({where}), not "
                    f"{base_url}: the rows it calls ok were accepted by that API, and skipping "
                    f"them here would leave them missing. Run with --base-url {recorded} to "
                    "finish that run, or pass --resume-any-url if both are truly the same API"
                )
            log.warning(
                "--resume-any-url: %s was made against %s, not %s; its ok rows are taken as "
                "done here",
                where,
                recorded,
                base_url,
                extra={"event": "resume_any_url"},
            )
        _warn_other_inputs(where, facts, input_files)


def _warn_other_inputs(
    where: str,
    facts: Mapping[str, object] | None,
    input_files: Sequence[Mapping[str, object]],
) -> None:
    recorded = facts.get(INPUT_FILES) if facts else None
    if isinstance(recorded, str):  # in a summary sheet: JSON text
        try:
            recorded = json.loads(recorded)
        except (ValueError, RecursionError):
            return
    if not isinstance(recorded, list) or not input_files:
        return
    then = {(str(f.get("file")), str(f.get("sha256"))) for f in recorded if isinstance(f, dict)}
    now = {(str(f.get("file")), str(f.get("sha256"))) for f in input_files}
    if then != now:
        log.warning(
            "--resume: %s lists other input files (%s) than this run reads (%s); rows are "
            "skipped only where customer, attribute and value are the same",
            where,
            ", ".join(sorted(show_path(n) for n, _ in then)) or "none",
            ", ".join(sorted(show_path(n) for n, _ in now)),
            extra={"event": "resume_other_inputs"},
        )
