"""What a file's first bytes say it is, and the checks on a workbook's container made before
the reader opens it: the right kind for the extension, zip bombs, a damaged shared-strings
count, a zip holding no workbook."""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path

from bulk_sync.errors import InputError
from bulk_sync.loading import ooxml
from bulk_sync.loading.options import LoadOptions, MiB, size_text

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
BINARY_RATIO = 0.10  # more control characters than this: not a text file
_BINARY_MIN_SAMPLE = 256  # below this, rows speak for themselves (validation flags controls)
# A workbook expanding past this much AND more than max_compression_ratio times its size
# is a zip bomb: real workbooks compress 5-20 times (even identical rows stay under 20),
# and the reader needs about four times the unpacked size in memory.
_BOMB_FLOOR = 32 * MiB


def control_ratio(text: str) -> float:
    """Share of characters that never appear in text files (C0 controls but tab/CR/LF, DEL);
    0 for samples too small to judge. (U+FFFD is not counted: a cp1252 file read as UTF-8
    is full of them.)"""
    if len(text) < _BINARY_MIN_SAMPLE:
        return 0.0
    bad = sum(1 for ch in text if (ch < " " and ch not in "\t\r\n") or ch == "\x7f")
    return bad / len(text)


def is_raw_biff(head: bytes) -> bool:
    """An Excel 2-4 workbook: a bare BIFF stream (a BOF record), not an OLE container."""
    return (
        len(head) >= 8
        and head[0] == 0x09
        and head[1] in (0x00, 0x02, 0x04, 0x08)
        and head[3] == 0
        and 4 <= head[2] <= 20
    )


def content_kind(head: bytes) -> str:
    """What the first bytes of a file say it is: zip, ole, gzip, pdf, html, text, binary."""
    if not head:
        return "empty"
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(OLE_MAGIC):
        return "ole"
    if is_raw_biff(head):
        return "biff"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return "text"
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        return "html"
    if control_ratio(head.decode("latin-1")) > BINARY_RATIO:
        return "binary"
    return "text"


def check_workbook_container(
    data: Path | bytes, head: bytes, size: int, fmt: str, options: LoadOptions, source: str
) -> None:
    """Refuse what the reader should not open: the wrong kind of file for the extension, a
    zip bomb, a damaged shared-strings count, a zip without a workbook. ``data`` is the
    workbook's path or its bytes."""
    kind = content_kind(head)
    if kind == "empty":
        raise InputError("file is empty", source=source)
    expected = ("ole", "biff") if fmt == "XLS" else ("zip",)
    if kind not in expected:
        if kind == "text":
            detail = "it looks like a text (CSV) file; rename it to .csv"
        elif kind == "html":
            detail = (
                "it is an HTML/XML page saved under a workbook name (some systems export like "
                "this); open it in Excel and save it as .xlsx, or export it as CSV"
            )
        elif kind == "zip":
            detail = "it is a zip-based workbook (XLSX or ODS); rename it to .xlsx or .ods"
        elif kind in ("ole", "biff"):
            # (an encrypted workbook, also an OLE file, was told apart before this)
            detail = "it is an old-format Excel (XLS) workbook; rename it to .xls"
        else:
            detail = "the content is not a spreadsheet"
        raise InputError(f"not a valid {fmt} workbook: {detail}", source=source)
    if kind != "zip":
        return
    try:
        with zipfile.ZipFile(data if isinstance(data, Path) else io.BytesIO(data)) as archive:
            infos = archive.infolist()
            strings = _declared_shared_strings(archive)
            workbook = ooxml.workbook_part(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise InputError(
            f"not a valid {fmt} workbook: the file is damaged or incomplete ({exc})",
            source=source,
        ) from None
    total = sum(info.file_size for info in infos)
    largest = max((info.file_size for info in infos), default=0)
    if total > options.max_uncompressed_bytes or (
        total > _BOMB_FLOOR and total > options.max_compression_ratio * max(size, 1)
    ):
        raise InputError(
            f"looks like a zip bomb: {size_text(size)} would expand to {size_text(total)} "
            f"(largest part {size_text(largest)}); refusing to open it",
            source=source,
        )
    if strings is not None and strings[0] > strings[1] // 5 + 1:  # "<si/>" is 5 bytes
        raise InputError(
            f"not a valid {fmt} workbook: the file is damaged: its shared-strings table "
            f"declares {strings[0]:,} strings but has room for at most {strings[1] // 5 + 1:,}",
            source=source,
        )
    names = {info.filename.replace("\\", "/").lstrip("/").casefold() for info in infos}
    is_ods = "content.xml" in names and workbook is None
    is_ooxml = workbook is not None
    binary = workbook is not None and workbook.casefold().endswith(".bin")
    if fmt == "ODS" and not is_ods:
        detail = "rename it to .xlsx" if is_ooxml else "it has no spreadsheet content"
        raise InputError(f"not a valid ODS workbook: {detail}", source=source)
    if fmt != "ODS" and not is_ooxml:
        detail = (
            "it is an OpenDocument spreadsheet; rename it to .ods"
            if is_ods
            else "it is a zip file without a workbook inside (a Word or other Office file?)"
        )
        raise InputError(f"not a valid {fmt} workbook: {detail}", source=source)
    if fmt == "XLSB" and not binary:
        raise InputError("not a valid XLSB workbook: rename it to .xlsx", source=source)
    if fmt in ("XLSX", "XLSM") and binary:
        raise InputError(f"not a valid {fmt} workbook: rename it to .xlsb", source=source)


_UNIQUE_COUNT = re.compile(rb"<(?:\w+:)?sst\b[^>]*?\buniqueCount\s*=\s*[\"'](\d{1,20})[\"']")


def _declared_shared_strings(archive: zipfile.ZipFile) -> tuple[int, int] | None:
    """(uniqueCount, size) of an XLSX shared-strings table: the reader reserves room for
    uniqueCount strings before reading any, so a damaged count must be caught first."""
    try:
        info = next(
            i
            for i in archive.infolist()
            if i.filename.replace("\\", "/").casefold().endswith("sharedstrings.xml")
        )
        with archive.open(info) as f:
            head = f.read(4096)
    except (StopIteration, OSError, zipfile.BadZipFile, ValueError, EOFError, zlib.error):
        return None
    match = _UNIQUE_COUNT.search(head)
    return (int(match.group(1)), info.file_size) if match else None
