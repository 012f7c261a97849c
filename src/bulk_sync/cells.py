"""How spreadsheet cells become strings (DESIGN.md section 4). Pure functions.

Everything is read as text; nothing is guessed into numbers:

- text: kept exactly, surrounding whitespace trimmed with :meth:`str.strip` (Unicode
  whitespace, so a non-breaking space U+00A0 pasted from a web page is trimmed too);
- booleans: ``true`` / ``false``;
- integers, and floats that are whole numbers: their digits (``12345``, never
  ``12345.0``, never scientific: ``1e20`` is ``100000000000000000000``);
- other floats: the shortest form that reads back as the same number, without an
  exponent (``3.5``, ``0.1``, ``0.30000000000000004``, ``0.0000001``);
- NaN and infinities: empty (a cell with no usable value);
- dates ``YYYY-MM-DD``; date-times ``YYYY-MM-DDTHH:MM:SS``; times ``HH:MM:SS``;
  fractional seconds, when there are any, follow as ``.fff`` (whole milliseconds, which
  is all Excel keeps) or ``.ffffff``;
- durations (timedelta): ``H:MM:SS`` with hours counting past 24 (as Excel's
  ``[h]:mm:ss`` shows them), ``-`` in front when negative;
- ``None``: empty.

Note on dates: python-calamine reports a date-time value whose time is exactly
midnight as a :class:`datetime.date` (Excel stores both as the same serial number),
so such cells read as ``YYYY-MM-DD``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal

__all__ = ["cell_to_str", "float_to_str", "normalize_header"]


def _fraction(microsecond: int) -> str:
    if not microsecond:
        return ""
    if microsecond % 1000 == 0:
        return f".{microsecond // 1000:03d}"
    return f".{microsecond:06d}"


_EXACT_INTEGERS = 2.0**53  # below this every whole float is exactly an integer


def float_to_str(value: float) -> str:
    """A float as a person would type it: no ``.0`` on whole numbers, no exponent."""
    if not math.isfinite(value):
        return ""
    if value.is_integer():
        if abs(value) < _EXACT_INTEGERS:
            return str(int(value))
        # Beyond 2**53 a float's binary expansion has digits nobody typed
        # (12345678901234567890 is stored as ...69216): its shortest form instead.
        text = repr(value)
        return text[:-2] if text.endswith(".0") else format(Decimal(text), "f")
    text = repr(value)
    if "e" in text or "E" in text:
        return format(Decimal(text), "f")
    return text


def _timedelta_to_str(value: dt.timedelta) -> str:
    sign = ""
    if value < dt.timedelta(0):
        sign, value = "-", -value
    total = value.days * 86400 + value.seconds
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours}:{minutes:02d}:{seconds:02d}{_fraction(value.microseconds)}"


def cell_to_str(value: object) -> str:
    """The text of one cell as it travels through the pipeline (see module docstring)."""
    if type(value) is str:
        return value.strip()
    if value is None:
        return ""
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is float:
        return float_to_str(value)
    if type(value) is int:
        return str(value)
    # Subclasses and less common types: order matters (bool is an int, datetime is a date).
    if isinstance(value, str):
        return str.strip(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return float_to_str(float(value))
    if isinstance(value, dt.datetime):
        text = value.replace(microsecond=0).isoformat(timespec="seconds")
        if value.tzinfo is None:
            return text + _fraction(value.microsecond)
        return text  # an aware datetime keeps its offset (never produced by the readers)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.replace(microsecond=0).isoformat(timespec="seconds") + _fraction(
            value.microsecond
        )
    if isinstance(value, dt.timedelta):
        return _timedelta_to_str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return ""
        if value == value.to_integral_value():
            return str(int(value))
        return format(value.normalize(), "f")
    return str(value).strip()


_SEPARATORS = re.compile(r"[\s\-_]+")


def normalize_header(text: str) -> str:
    """Header text as it is compared: ``" Customer-ID "`` -> ``"customer_id"``.

    Case-folded and trimmed; every run of whitespace, ``-`` and ``_`` becomes one ``_``;
    separators (and a stray byte-order mark) at either end are dropped.
    """
    return _SEPARATORS.sub("_", text.casefold()).strip("_\ufeff")
