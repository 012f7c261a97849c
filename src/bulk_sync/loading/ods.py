"""ODS files python-calamine refuses although LibreOffice opens them, made readable: a
``content.xml`` indented with whitespace between the table elements ("Expecting
'table-cell', found 'Text(...)'"), and a package without its ``mimetype`` entry. The
package is rewritten in memory (whitespace after table tags dropped, the mimetype added)
and handed to python-calamine again.

Also: python-calamine gives an ODS duration (``office:time-value``) as its ISO-8601 text
(``PT255H10M10S``); :func:`duration_text` turns it into ``255:10:10`` as for the other
formats.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

__all__ = ["duration_text", "repaired"]

_TABLE_TAG_SPACE = re.compile(rb"(</?table:[^>]*>)\s+(?=<)")
_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
_DURATION = re.compile(r"-?PT(\d+)H(\d+)M(\d+)(?:\.(\d+))?S")


def repaired(data: Path | bytes) -> bytes | None:
    """The package with its content.xml un-indented and a mimetype entry; None when there
    is nothing to repair."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    try:
        source = zipfile.ZipFile(io.BytesIO(raw))
        names = source.namelist()
        if "content.xml" not in names:
            return None
        content = source.read("content.xml")
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError):
        return None
    flat = _TABLE_TAG_SPACE.sub(rb"\1", content)
    if flat == content and "mimetype" in names:
        return None
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        target.writestr(zipfile.ZipInfo("mimetype"), _MIMETYPE, zipfile.ZIP_STORED)
        for info in source.infolist():
            if info.filename == "mimetype":
                continue
            body = flat if info.filename == "content.xml" else source.read(info)
            target.writestr(info.filename, body)
    return out.getvalue()


def duration_text(value: str) -> str | None:
    """``PT255H10M10S`` as ``255:10:10`` (fractions of a second as milliseconds); None
    when ``value`` is not such a duration."""
    m = _DURATION.fullmatch(value)
    if m is None:
        return None
    hours, minutes, seconds, fraction = m.groups()
    total = int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    h, rest = divmod(total, 3600)
    mm, ss = divmod(rest, 60)
    frac = f".{(fraction + '000')[:3]}" if fraction and int(fraction) else ""
    sign = "-" if value.startswith("-") else ""
    return f"{sign}{h}:{mm:02d}:{ss:02d}{frac}"
