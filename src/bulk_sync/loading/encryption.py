"""Encrypted workbooks. Excel encrypts some workbooks with its built-in default password
("VelvetSweatshop": a protected workbook structure, some exports); Excel and LibreOffice
open those without asking, and so does bulk_sync, decrypting them with msoffcrypto-tool.
A workbook encrypted with a password of its owner is refused, saying so.
"""

from __future__ import annotations

import io
from pathlib import Path

from bulk_sync.errors import InputError

__all__ = ["DEFAULT_PASSWORD", "unlock"]

DEFAULT_PASSWORD = "VelvetSweatshop"  # noqa: S105 - Excel's published built-in password

PROTECTED_MESSAGE = (
    "the workbook is password-protected (encrypted with a password); open it in Excel, "
    "remove the password (File > Info > Protect Workbook) and save it again"
)


def unlock(data: Path | bytes, fmt: str, source: str) -> bytes | None:
    """The decrypted workbook when ``data`` (an OLE compound file) is encrypted with
    Excel's default password; None when it is not encrypted (or not an Office file the
    decrypter knows: the reader then says what it is). InputError when a password of its
    owner is needed, or the default-password encryption cannot be undone."""
    try:
        import msoffcrypto
        from msoffcrypto.exceptions import (
            DecryptionError,
            InvalidKeyError,
        )
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    raw = data.read_bytes() if isinstance(data, Path) else data
    try:
        office = msoffcrypto.OfficeFile(io.BytesIO(raw))
        encrypted = office.is_encrypted()
    except Exception:  # not an Office file msoffcrypto knows (BIFF5, damaged): not ours
        return None
    if not encrypted:
        return None
    try:
        office.load_key(password=DEFAULT_PASSWORD)
        out = io.BytesIO()
        office.decrypt(out)
    except (InvalidKeyError, DecryptionError) as exc:
        if "password" in str(exc).lower() or "key" in str(exc).lower():
            raise InputError(PROTECTED_MESSAGE, source=source) from None
        raise InputError(_cannot(fmt), source=source) from None
    except Exception:
        raise InputError(_cannot(fmt), source=source) from None
    return out.getvalue()


def _cannot(fmt: str) -> str:
    return (
        f"the {fmt} workbook is encrypted (with Excel's default password, or a kind of "
        "encryption bulk-sync cannot undo); open it in Excel and save it again"
    )
