"""How spreadsheet cells become strings (DESIGN.md section 4). Pure functions.

Everything is read as text; nothing is guessed into numbers:

- text: kept exactly, surrounding whitespace trimmed with :meth:`str.strip` (Unicode
  whitespace, so a non-breaking space U+00A0 pasted from a web page is trimmed too);
- booleans: ``true`` / ``false``;
- integers, and floats that are whole numbers: their digits (``12345``, never
  ``12345.0``, never scientific: ``1e20`` is ``100000000000000000000``), all of them up
  to 2**53 (``1234567890123456``), past it rounded to 15 significant digits like others;
- other floats: rounded to 15 significant digits, as Excel shows them, then the shortest
  form without an exponent (``3.5``, ``0.1``, ``0.0000001``; ``3.9299999999999997``, a
  binary artefact of ``3.93``, is ``3.93``);
- NaN and infinities: empty (a cell with no usable value);
- dates ``YYYY-MM-DD``; date-times ``YYYY-MM-DDTHH:MM:SS``; times ``HH:MM:SS``;
  fractional seconds, when there are any, follow as ``.fff`` (whole milliseconds, which
  is all Excel keeps) or ``.ffffff``;
- durations (timedelta): ``H:MM:SS`` with hours counting past 24 (as Excel's
  ``[h]:mm:ss`` shows them), ``-`` in front when negative;
- ``None``: empty.

Note on dates: python-calamine reports a date-time value whose time is exactly
midnight as a :class:`datetime.date` (Excel stores both as the same serial number),
so such cells read as ``YYYY-MM-DD`` unless their format shows a time
(:func:`formatted_cell`: ``YYYY-MM-DDT00:00:00``, or ``00:00:00`` for a time format).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bulk_sync import numfmt
from bulk_sync.numfmt import Kind

__all__ = [
    "CellText",
    "cell_to_str",
    "column_texts",
    "float_to_str",
    "formatted_cell",
    "normalize_header",
]


def _fraction(microsecond: int) -> str:
    if not microsecond:
        return ""
    if microsecond % 1000 == 0:
        return f".{microsecond // 1000:03d}"
    return f".{microsecond:06d}"


_EXACT_WHOLE = 2.0**53  # every whole number up to this is held exactly by a float


def float_to_str(value: float) -> str:
    """A float as a person would type it: no ``.0`` on whole numbers, no exponent; a
    whole number the float holds exactly (up to 2**53) with all its digits, any other
    number with at most 15 significant digits (Excel keeps and shows no more)."""
    if not math.isfinite(value):
        return ""
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) <= _EXACT_WHOLE:
        return str(int(value))  # a whole number the float holds exactly: all its digits
    text = repr(value)
    if len(text) > 16:  # more than 15 significant digits: round as Excel shows it
        text = f"{value:.15g}"
    elif text.endswith(".0"):
        return text[:-2]
    if "e" in text:
        return format(Decimal(text), "f")
    return text


_SEP = "\x1f"  # joins the texts of a batch formatted at once; never in a number's text


def _float_texts(values: Sequence[float]) -> list[str]:
    """:func:`float_to_str` of each float, formatted in one batch: ``%.15g`` gives the
    same text for every finite non-zero float short of the exponent range (a float whose
    shortest form has at most 15 significant digits keeps it when rounded to 15); the
    others (exponents, NaN, infinities, -0) go through :func:`float_to_str`."""
    if not values:
        return []
    batch = (("%.15g" + _SEP) * len(values)) % tuple(values)
    texts = batch.split(_SEP)
    texts.pop()
    if "e" in batch or "n" in batch or ("-0" + _SEP) in batch:  # exponent, nan/inf, -0
        return [
            float_to_str(v) if ("e" in t or "n" in t or t == "-0") else t
            for t, v in zip(texts, values, strict=True)
        ]
    return texts


def column_texts(cells: Sequence[object]) -> list[str]:
    """:func:`cell_to_str` of every cell of a column, quicker than a call per cell for
    the usual columns of text and numbers."""
    kinds = set(map(type, cells))
    if kinds <= {str}:
        return list(map(str.strip, cells))  # type: ignore[arg-type]
    if kinds == {float}:
        return _float_texts(cells)  # type: ignore[arg-type]
    texts = [
        c.strip() if type(c) is str else "" if type(c) is float else cell_to_str(c) for c in cells
    ]
    if float in kinds:
        at = [k for k, c in enumerate(cells) if type(c) is float]
        for k, text in zip(at, _float_texts([cells[k] for k in at]), strict=True):  # type: ignore[misc]
            texts[k] = text
    return texts


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


# --------------------------------------------------------------------------- formats


@dataclass(frozen=True, slots=True)
class CellText:
    """What is sent for a number cell with a format, and what a person sees when that
    differs (``shown`` is empty when they are the same)."""

    sent: str
    shown: str = ""


_DATE_KINDS = (Kind.DATE, Kind.TIME, Kind.DATETIME, Kind.ELAPSED)


def _elapsed_text(value: dt.timedelta, width: int) -> str:
    text = _timedelta_to_str(value)
    sign = "-" if text.startswith("-") else ""
    hours, _, rest = text.lstrip("-").partition(":")
    return f"{sign}{hours.zfill(width)}:{rest}"


def _exact_percent(value: float) -> tuple[str, Decimal]:
    scaled = Decimal(f"{value * 100:.15g}")
    return float_to_str(float(scaled)) + "%", scaled


def formatted_cell(
    value: object,
    code: str,
    *,
    date1904: bool = False,
    as_shown: bool = False,
    want_shown: bool = True,
) -> CellText:
    """The text of a cell whose format code is ``code`` (README "How cells become
    strings"): a format of zeros gives the padded digits, a percentage its percent text,
    a date, time or duration format ISO text or ``H:MM:SS``; any other format
    (separators, currency, rounding, scientific, fractions) the exact number, with what
    is shown beside it, unless ``as_shown``. ``want_shown=False`` skips drawing what is
    shown for display-only formats (the caller already has its example)."""
    if type(value) is bool or not isinstance(value, (int, float, dt.date, dt.time, dt.timedelta)):
        return CellText(cell_to_str(value))
    if isinstance(value, (dt.date, dt.time, dt.timedelta)):
        section = numfmt.parse(code)[0]
        value = _shown_precision(value, section)
        if isinstance(value, dt.timedelta) and section.kind == Kind.ELAPSED:
            return CellText(_elapsed_text(value, section.hour_width))
        if isinstance(value, dt.datetime) and section.kind == Kind.DATE:
            return CellText(value.date().isoformat())
        if isinstance(value, dt.datetime) and section.kind == Kind.TIME:
            return CellText(cell_to_str(value.time()))
        if type(value) is dt.date and section.kind in (Kind.DATETIME, Kind.TIME):
            # a date-time at midnight, which python-calamine hands over as a date
            midnight = dt.datetime.combine(value, dt.time())
            return CellText(cell_to_str(midnight if section.kind == Kind.DATETIME else dt.time()))
        return CellText(cell_to_str(value))
    number = float(value)
    if not math.isfinite(number):
        return CellText("")
    section, _ = numfmt.section_for(code, number)
    kind = section.kind
    if kind == Kind.GENERAL:
        return CellText(cell_to_str(value))
    if kind in _DATE_KINDS:
        return CellText(_serial_text(number, section, date1904, value))
    if kind == Kind.ZERO_PADDED and number.is_integer():
        padded = _zero_padding(section)
        if padded is not None and number >= 0:
            prefix, width, suffix = padded
            return CellText(f"{prefix}{int(number):0{width}d}{suffix}")
        return CellText(numfmt.render_number(code, number).strip())
    if kind == Kind.PERCENT:  # as shown, with the format's decimals (issue 15 A2)
        return CellText(numfmt.render_number(code, number).strip())
    if not (want_shown or as_shown):
        return CellText(cell_to_str(value))  # a display-only format: the exact number
    exact = cell_to_str(value)
    shown = numfmt.render_number(code, number).strip()
    if as_shown or shown == exact:
        return CellText(shown)
    return CellText(exact, shown)


def _shown_precision(value: Any, section: numfmt.Section) -> Any:
    """A time value rounded to the seconds' decimals its format shows."""
    if section.kind not in _DATE_KINDS:
        return value
    unit = 10 ** (6 - section.second_decimals)
    if isinstance(value, dt.timedelta):
        micro = round(value / dt.timedelta(microseconds=unit)) * unit
        return dt.timedelta(microseconds=micro)
    if isinstance(value, (dt.datetime, dt.time)) and value.microsecond % unit:
        micro = round(value.microsecond / unit) * unit
        if isinstance(value, dt.datetime):
            return value.replace(microsecond=0) + dt.timedelta(microseconds=micro)
        carry = dt.datetime.combine(dt.date(2000, 1, 1), value.replace(microsecond=0))
        return (carry + dt.timedelta(microseconds=micro)).time()
    return value


def _serial_text(number: float, section: numfmt.Section, date1904: bool, value: object) -> str:
    kind = section.kind
    if not abs(number) < 1e11:  # far outside any calendar or clock (and NaN)
        return cell_to_str(value)
    # to the precision the format shows: whole seconds unless it shows decimals (ss.0)
    step = 86_400 * 10**section.second_decimals
    number = math.floor(number * step + 0.5) / step  # half up, as Excel shows it
    if kind == Kind.ELAPSED:
        ms = round(number * 86_400_000)
        try:
            return _elapsed_text(dt.timedelta(milliseconds=ms), section.hour_width)
        except OverflowError:  # a billion days and more: the number, as for dates
            return cell_to_str(value)
    try:
        moment = numfmt.serial_to_datetime(number, date1904)
    except (OverflowError, ValueError):  # far outside what a calendar shows
        return cell_to_str(value)
    if kind == Kind.TIME:
        return cell_to_str(moment.time())
    if kind == Kind.DATE:
        return moment.date().isoformat()
    return cell_to_str(moment)


_ZEROS_SHAPE = re.compile(r"(L*)(0+)(L*)")  # literals, zeros, literals
_PERCENT_SHAPE = re.compile(r"[#0]*0(?:\.(0+))?%")


@functools.lru_cache(maxsize=256)
def _zero_padding(section: numfmt.Section) -> tuple[str, int, str] | None:
    """(text before, number of zeros, text after) of a format that is one run of zeros
    between literals; None for other shapes (``000-00-0000``)."""
    types = "".join("0" if t == "0" else "L" for t, _ in section.tokens)
    match = _ZEROS_SHAPE.fullmatch(types)
    if match is None:
        return None
    texts = [v for _, v in section.tokens]
    before = "".join(texts[: match.end(1)])
    after = "".join(texts[match.start(3) :])
    return before, len(match.group(2)), after


def _decimal_places(section: numfmt.Section) -> int:
    types = [t for t, _ in section.tokens]
    if "." not in types:
        return 0
    return sum(1 for t in types[types.index(".") + 1 :] if t in "0#?")


# --------------------------------------------------------------------------- fast paths

_DAY_MS = 86_400_000
_MAX_SERIAL = 2_958_465  # 9999-12-31


@functools.lru_cache(maxsize=256)
def fast_sent(code: str, date1904: bool = False) -> Callable[[float], str | None] | None:
    """A quick function giving the sent text of a number under ``code``, for the common
    shapes of the formats that change it (zeros, dates, times, durations, simple
    percentages); it answers None for a number it does not handle, which then goes
    through :func:`formatted_cell`. None when there is no quick path for ``code``.
    It gives no notice: for percentages (which may be rounded for display) use it once
    the column's notice is found."""
    sections, conditional = numfmt.number_sections(code)
    if conditional:
        return None
    section = sections[0]
    kind = section.kind
    positive_only = len(sections) > 1  # other sections show negatives (and zero)
    if kind == Kind.ZERO_PADDED:
        padded = _zero_padding(section)
        if padded is None:
            return None
        before, width, after = padded

        def zeros(v: float) -> str | None:
            if not 0 <= v < 1e15 or v != int(v) or (positive_only and v == 0):  # (NaN too)
                return None
            return f"{before}{int(v):0{width}d}{after}"

        return zeros
    if kind in _DATE_KINDS:
        return _fast_serial(section, date1904, positive_only)
    if kind == Kind.PERCENT:
        places = _percent_places(section)
        if places is None:
            return None
        step = Decimal(1).scaleb(-places)
        # Below this, the grid of ``places`` decimals is coarser than that of 15
        # significant digits: rounding the float itself gives the same digits as rounding
        # its 15-digit decimal, unless that decimal lies half-way (…5): Decimal then.
        limit = 10.0 ** (13 - places)

        def percent(v: float) -> str | None:
            x = v * 100 + 0.0  # (+ 0.0: -0.0 shows as 0%, as formatted_cell draws it)
            if not 0 <= x < limit or (positive_only and v == 0):  # (NaN too)
                return None
            shortest = f"{x:.15g}"
            if "e" not in shortest:
                decimals = shortest.partition(".")[2]
                if len(decimals) != places + 1 or decimals[-1] != "5":
                    return f"{x:.{places}f}%"
            scaled = Decimal(shortest).quantize(step, rounding=ROUND_HALF_UP)
            return f"{scaled:.{places}f}%"

        return percent
    return None


@functools.lru_cache(maxsize=256)
def fast_sent_many(
    code: str, date1904: bool = False
) -> Callable[[Sequence[float]], list[str | None]] | None:
    """:func:`fast_sent` for a batch of floats at once (a column's cells in one format):
    the same texts, None where :func:`fast_sent` gives None. Zero-padded numbers are
    formatted in one operation; other formats a number at a time."""
    fast = fast_sent(code, date1904)
    if fast is None:
        return None
    sections, _ = numfmt.number_sections(code)
    positive_only = len(sections) > 1
    places = _percent_places(sections[0]) if sections[0].kind == Kind.PERCENT else None
    if places is not None:
        return _percents(fast, places, positive_only)
    padded = _zero_padding(sections[0]) if sections[0].kind == Kind.ZERO_PADDED else None
    if padded is None or _SEP in padded[0] + padded[2]:

        def each(values: Sequence[float]) -> list[str | None]:
            return list(map(fast, values))

        return each
    before, width, after = padded
    pattern = before.replace("%", "%%") + f"%0{width}d" + after.replace("%", "%%") + _SEP

    def zeros(values: Sequence[float]) -> list[str | None]:
        import numpy as np

        numbers = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            ok = (numbers >= 0) & (numbers < 1e15) & (numbers == np.floor(numbers))
        if positive_only:
            ok &= numbers != 0
        if not ok.all():
            return list(map(fast, values))
        texts: list[str | None] = list((pattern * len(values) % tuple(values)).split(_SEP))
        texts.pop()
        return texts

    return zeros


def _percents(
    fast: Callable[[float], str | None], places: int, positive_only: bool
) -> Callable[[Sequence[float]], list[str | None]]:
    """The quick percentages (see :func:`fast_sent`) of a batch: each number scaled by
    numpy, formatted by one %-operation; the numbers whose 15-digit decimal lies half-way
    or needs an exponent one at a time."""
    import numpy as np

    limit = 10.0 ** (13 - places)
    shown = f"%.{places}f%%{_SEP}"
    odd = re.compile(r"e|\." + r"\d" * places + "5" + _SEP)  # an exponent, or half-way

    def percents(values: Sequence[float]) -> list[str | None]:
        with np.errstate(over="ignore", invalid="ignore"):  # (huge numbers: inf, declined)
            numbers = np.asarray(values, dtype=np.float64) * 100 + 0.0
        ok = (numbers >= 0) & (numbers < limit)
        if positive_only:
            ok &= numbers != 0
        if not ok.all():
            return list(map(fast, values))
        scaled = tuple(numbers.tolist())
        texts: list[str | None] = list((shown * len(scaled) % scaled).split(_SEP))
        texts.pop()
        shortest = ("%.15g" + _SEP) * len(scaled) % scaled
        if odd.search(shortest):
            for k, text in enumerate(shortest.split(_SEP)[:-1]):
                if "e" in text or (text[-1] == "5" and len(text.partition(".")[2]) == places + 1):
                    texts[k] = fast(values[k])
        return texts

    return percents


def _percent_places(section: numfmt.Section) -> int | None:
    """The decimals of a plain percentage format (``0%``, ``0.00%``), else None."""
    types = "".join(t if t in "0#.%" else "L" for t, _ in section.tokens)
    match = _PERCENT_SHAPE.fullmatch(types)
    return None if match is None else len(match.group(1) or "")


@functools.lru_cache(maxsize=256)
def fast_moment(code: str) -> Callable[[object], str | None]:
    """A quick function giving :func:`formatted_cell`'s text of a date-time the reader
    already made (python-calamine turns cells in date formats into ``datetime``), None
    for any other value, which then goes through :func:`formatted_cell`."""
    section = numfmt.parse(code)[0]
    kind = section.kind
    unit = 10 ** (6 - section.second_decimals) if kind in _DATE_KINDS else 1

    def moment(value: object) -> str | None:
        if type(value) is not dt.datetime or value.tzinfo is not None:
            return None
        if kind == Kind.DATE:
            # shown to the second (or its decimals): only 23:59:59.5 and later may
            # round into the next day
            if value.microsecond and (value.hour, value.minute, value.second) == (23, 59, 59):
                return None
            return value.date().isoformat()
        micro = value.microsecond
        if micro % unit:  # rounded to the seconds' decimals shown, as formatted_cell does
            value = value.replace(microsecond=0) + dt.timedelta(
                microseconds=round(micro / unit) * unit
            )
        if kind == Kind.TIME:
            return cell_to_str(value.time())
        return cell_to_str(value)

    return moment


_TZINFO = operator.attrgetter("tzinfo")


@functools.lru_cache(maxsize=256)
def fast_moments(code: str) -> Callable[[Sequence[dt.datetime]], list[str | None]]:
    """:func:`fast_moment` for a batch of date-times: a date format's ISO dates in one
    pass of C-level maps (none of them at 23:59:59 and a fraction, which may round into
    the next day); other formats, or such a time, one at a time."""
    one = fast_moment(code)
    if numfmt.parse(code)[0].kind != Kind.DATE:

        def each(values: Sequence[dt.datetime]) -> list[str | None]:
            return list(map(one, values))

        return each
    last = dt.time(23, 59, 59)

    def dates(values: Sequence[dt.datetime]) -> list[str | None]:
        if set(map(type, values)) != {dt.datetime} or any(map(_TZINFO, values)):
            return list(map(one, values))
        if any(map(last.__lt__, map(dt.datetime.time, values))):
            return list(map(one, values))
        return list(map(dt.date.isoformat, map(dt.datetime.date, values)))

    return dates


def _fast_serial(
    section: numfmt.Section, date1904: bool, positive_only: bool
) -> Callable[[float], str | None]:
    kind = section.kind
    width = section.hour_width
    base = dt.date(1904, 1, 1) if date1904 else dt.date(1899, 12, 31)
    step = 86_400 * 10**section.second_decimals
    last_day = (dt.date(9999, 12, 31) - base).days

    def serial(v: float) -> str | None:
        if not 0 <= v <= _MAX_SERIAL or (positive_only and v == 0):  # (NaN too)
            return None
        v = math.floor(v * step + 0.5) / step
        if kind == Kind.ELAPSED:
            ms = round(v * _DAY_MS)
            seconds, milli = divmod(ms, 1000)
            minutes, second = divmod(seconds, 60)
            hours, minute = divmod(minutes, 60)
            frac = f".{milli:03d}" if milli else ""
            return f"{hours:0{width}d}:{minute:02d}:{second:02d}{frac}"
        if not date1904 and v >= 61:
            v -= 1
        days, ms = divmod(round(v * _DAY_MS), _DAY_MS)
        if days > last_day:  # past 9999-12-31: formatted_cell says what then
            return None
        if kind == Kind.DATE:
            return (base + dt.timedelta(days=days)).isoformat()
        seconds, milli = divmod(ms, 1000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        clock = f"{hour:02d}:{minute:02d}:{second:02d}{f'.{milli:03d}' if milli else ''}"
        if kind == Kind.TIME:
            return clock
        return f"{(base + dt.timedelta(days=days)).isoformat()}T{clock}"

    return serial
