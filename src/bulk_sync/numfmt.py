"""Excel number format codes (``0000``, ``0.0%``, ``[h]:mm:ss``, ``#,##0.00 "€"``): parsed,
classified, and rendered the way Excel and LibreOffice show a number. Pure functions.

The readers give a cell's number and the code of its format (XLSX and XLS store codes;
ODS data styles are translated to codes by the ODS reader); :mod:`bulk_sync.cells`
decides from the :class:`Kind` of the section that applies what text is sent.

What is understood: up to four ``;``-separated sections (positive, negative, zero,
text) or conditional sections (``[<4.17]``); literals (``"text"``, ``\\x``, ``$ - + ( ) :
/ space``); ``_x`` (a space) and ``*x`` (fill, dropped); colours and locale tags
(``[Red]``, ``[$-409]``); currency tags (``[$€-407]`` shows ``€``); digit placeholders
``0 # ?``; the decimal point; thousands separators and scaling commas; ``%``;
scientific ``E+``/``E-``; fractions (``# ?/?``, ``# ??/16``); date and time parts
(``y m d h s AM/PM``, elapsed ``[h] [m] [s]``); ``General`` and ``@``.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction

__all__ = [
    "BUILTIN_FORMATS",
    "Kind",
    "Section",
    "parse",
    "render_number",
    "section_for",
    "serial_to_datetime",
]


class Kind(enum.Enum):
    """What a format section shows a number as."""

    GENERAL = "general"  # General, @, or nothing: the number itself
    ZERO_PADDED = "zero_padded"  # only 0 placeholders (two or more), literals allowed
    PERCENT = "percent"
    DATE = "date"  # date parts only
    TIME = "time"  # time of day only
    DATETIME = "datetime"
    ELAPSED = "elapsed"  # [h]:mm:ss and the like: a duration
    DISPLAY = "display"  # any other number format: separators, currency, rounding, ...
    LITERAL = "literal"  # text only, no number shown (e.g. "-" for zero in accounting)


# Excel's built-in formats (ECMA-376 18.8.30), by numFmtId; 5-8 are shown with the
# locale's currency symbol, here "$"; 27-36 and 50-81 are East Asian dates.
BUILTIN_FORMATS: dict[int, str] = {
    0: "General",
    1: "0",
    2: "0.00",
    3: "#,##0",
    4: "#,##0.00",
    5: '"$"#,##0_);("$"#,##0)',
    6: '"$"#,##0_);[Red]("$"#,##0)',
    7: '"$"#,##0.00_);("$"#,##0.00)',
    8: '"$"#,##0.00_);[Red]("$"#,##0.00)',
    9: "0%",
    10: "0.00%",
    11: "0.00E+00",
    12: "# ?/?",
    13: "# ??/??",
    14: "mm-dd-yy",
    15: "d-mmm-yy",
    16: "d-mmm",
    17: "mmm-yy",
    18: "h:mm AM/PM",
    19: "h:mm:ss AM/PM",
    20: "h:mm",
    21: "h:mm:ss",
    22: "m/d/yy h:mm",
    37: "#,##0 ;(#,##0)",
    38: "#,##0 ;[Red](#,##0)",
    39: "#,##0.00;(#,##0.00)",
    40: "#,##0.00;[Red](#,##0.00)",
    41: '_(* #,##0_);_(* (#,##0);_(* "-"_);_(@_)',
    42: '_("$"* #,##0_);_("$"* (#,##0);_("$"* "-"_);_(@_)',
    43: '_(* #,##0.00_);_(* (#,##0.00);_(* "-"??_);_(@_)',
    44: '_("$"* #,##0.00_);_("$"* (#,##0.00);_("$"* "-"??_);_(@_)',
    45: "mm:ss",
    46: "[h]:mm:ss",
    47: "mmss.0",
    48: "##0.0E+0",
    49: "@",
}
for _id in (*range(27, 37), *range(50, 59)):
    BUILTIN_FORMATS[_id] = "yyyy-mm-dd"
for _id in range(59, 82):
    BUILTIN_FORMATS.setdefault(_id, "0")


@dataclass(frozen=True)
class Section:
    """One ``;``-separated part of a format code, tokenized."""

    tokens: tuple[tuple[str, str], ...]  # (type, text); types below
    condition: tuple[str, float] | None
    kind: Kind
    hour_width: int = 1  # elapsed formats: digits of [h]/[hh]

    @property
    def second_decimals(self) -> int:
        """Decimals of seconds a date/time section shows (``ss.00`` shows 2)."""
        types = [t for t, _ in self.tokens]
        if "." not in types:
            return 0
        after = types[types.index(".") + 1 :]
        count = 0
        for t in after:
            if t != "0":
                break
            count += 1
        return min(count, 3)

    # token types: "lit" literal text; "0" "#" "?" digit placeholders; "." decimal point;
    # "," comma; "%" percent; "E" exponent marker (text "E+"/"E-"); "/" fraction bar;
    # "general"; "@" the text; "date" a date/time part (text is the part, lower case).


_DATE_PART = re.compile(r"(\[(?:h+|m+|s+)\])|(am/pm|a/p)|(y+|e+|m+|d+|h+|s+|b+|g+)", re.IGNORECASE)
_COND = re.compile(r"\[(<=|>=|<>|<|>|=)\s*(-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\]")
_COLOURS = {
    "black",
    "blue",
    "cyan",
    "green",
    "magenta",
    "red",
    "white",
    "yellow",
}


def _split_sections(code: str) -> list[str]:
    sections: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(code):
        ch = code[i]
        if ch == '"':
            end = code.find('"', i + 1)
            end = len(code) if end == -1 else end + 1
            current.append(code[i:end])
            i = end
            continue
        if ch == "\\" and i + 1 < len(code):
            current.append(code[i : i + 2])
            i += 2
            continue
        if ch == "[":
            end = code.find("]", i)
            end = len(code) if end == -1 else end + 1
            current.append(code[i:end])
            i = end
            continue
        if ch == ";":
            sections.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    sections.append("".join(current))
    return sections


def _tokenize(text: str) -> tuple[list[tuple[str, str]], tuple[str, float] | None]:
    tokens: list[tuple[str, str]] = []
    condition: tuple[str, float] | None = None
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        low = text[i:].lower()
        if ch == '"':
            end = text.find('"', i + 1)
            end = n if end == -1 else end
            tokens.append(("lit", text[i + 1 : end]))
            i = end + 1
        elif ch == "\\":
            tokens.append(("lit", text[i + 1 : i + 2]))
            i += 2
        elif ch == "_":
            tokens.append(("lit", " "))
            i += 2
        elif ch == "*":
            i += 2  # fill: nothing in text output
        elif ch == "[":
            end = text.find("]", i)
            end = n if end == -1 else end
            inner = text[i + 1 : end]
            m = _COND.fullmatch(text[i : end + 1])
            if m:
                condition = (m.group(1), float(m.group(2)))
            elif re.fullmatch(r"h+|m+|s+", inner, re.IGNORECASE):
                tokens.append(("date", f"[{inner.lower()}]"))
            elif inner.startswith("$"):
                symbol = inner[1:].split("-", 1)[0]
                if symbol:
                    tokens.append(("lit", symbol))
            # colours, [ColorN], [DBNum1], [NatNum], locale tags: nothing shown
            i = end + 1
        elif low.startswith("general"):
            tokens.append(("general", "General"))
            i += 7
        elif ch in "0#?.,%/@":
            tokens.append((ch, ch))
            i += 1
        elif ch in "eE" and text[i + 1 : i + 2] in ("+", "-"):
            tokens.append(("E", "E" + text[i + 1]))
            i += 2
        else:
            m = _DATE_PART.match(text, i)
            if m:
                tokens.append(("date", m.group(0).lower()))
                i = m.end()
            else:
                tokens.append(("lit", ch))
                i += 1
    return tokens, condition


def _kind(tokens: list[tuple[str, str]]) -> tuple[Kind, int]:
    types = [t for t, _ in tokens]
    dates = [v for t, v in tokens if t == "date"]
    if dates:
        elapsed = [d for d in dates if d.startswith("[")]
        if elapsed:
            hours = [d for d in elapsed if d.startswith("[h")]
            return Kind.ELAPSED, (len(hours[0]) - 2 if hours else 1)
        has_date = any(d[0] in "yedbg" for d in dates)
        has_time = any(d[0] in "hs" or d in ("am/pm", "a/p") for d in dates)
        # "m" is minutes right after an hour part or right before a seconds part
        months = False
        parts = [d for d in dates if d not in ("am/pm", "a/p")]
        for k, d in enumerate(parts):
            if d[0] == "m":
                after_h = k > 0 and parts[k - 1][0] == "h"
                before_s = k + 1 < len(parts) and parts[k + 1][0] == "s"
                if after_h or before_s:
                    has_time = True
                else:
                    months = True
        has_date = has_date or months
        if has_date and has_time:
            return Kind.DATETIME, 1
        return (Kind.DATE if has_date else Kind.TIME), 1
    if "general" in types or not any(t in types for t in "0#?"):
        if "general" in types or "@" in types or not tokens:
            return Kind.GENERAL, 1
        return Kind.LITERAL, 1
    if "%" in types:
        return Kind.PERCENT, 1
    digits = [t for t in types if t in "0#?.,E/"]
    if digits and all(t == "0" for t in digits) and len(digits) >= 2:
        return Kind.ZERO_PADDED, 1
    return Kind.DISPLAY, 1


@functools.lru_cache(maxsize=1024)
def parse(code: str) -> tuple[Section, ...]:
    """The sections of a format code (at least one)."""
    sections: list[Section] = []
    for k, text in enumerate(_split_sections(code)[:4]):
        tokens, condition = _tokenize(text)
        kind, width = _kind(tokens)
        if k and not tokens:  # an empty section shows nothing (e.g. zero hidden: "0;-0;")
            kind = Kind.LITERAL
        sections.append(Section(tuple(tokens), condition, kind, width))
    return tuple(sections)


def _holds(condition: tuple[str, float], value: float) -> bool:
    op, limit = condition
    return {
        "<": value < limit,
        "<=": value <= limit,
        ">": value > limit,
        ">=": value >= limit,
        "=": value == limit,
        "<>": value != limit,
    }[op]


@functools.lru_cache(maxsize=1024)
def number_sections(code: str) -> tuple[tuple[Section, ...], bool]:
    """The sections that show numbers (not the text one), and whether any has a condition."""
    sections = tuple(s for s in parse(code) if not any(t == "@" for t, _ in s.tokens)) or parse(
        code
    )
    return sections, any(s.condition for s in sections)


@functools.lru_cache(maxsize=1024)
def changes_numbers(code: str) -> bool:
    """Whether some number is sent otherwise than its General form under ``code``:
    zero padding, a percentage, a date, time or duration. (Other formats only change
    what is shown.)"""
    keep = (Kind.GENERAL, Kind.DISPLAY, Kind.LITERAL)
    return any(s.kind not in keep for s in parse(code))


def section_for(code: str, value: float) -> tuple[Section, bool]:
    """The section that shows ``value``, and whether a minus sign is to be drawn (False
    when the section is the negative one, which draws its own sign if any)."""
    sections, conditional = number_sections(code)
    if len(sections) == 1 and not conditional:
        return sections[0], value < 0
    if conditional:
        for s in sections:
            if s.condition is None:
                return s, value < 0
            if _holds(s.condition, value):
                # Excel: a value caught by a condition shows its sign unless the
                # condition admits only negatives (the section then draws its own)
                op, limit = s.condition
                only_negative = op in ("<", "<=") and limit <= 0
                return s, value < 0 and not only_negative
        return sections[-1], value < 0
    if value < 0 and len(sections) >= 2:
        return sections[1], False
    if value == 0 and len(sections) >= 3:
        return sections[2], False
    return sections[0], value < 0


# --------------------------------------------------------------------------- numbers


_ANY_FLOAT = Context(prec=400)  # digits enough for any float with its decimals shown


def _decimal(value: float) -> Decimal:
    """The number as Excel holds it for display: 15 significant digits."""
    return Decimal(f"{value:.15g}")


def render_number(code: str, value: float) -> str:
    """``value`` as Excel shows it with format ``code`` (numbers only; a date section
    gives the number's General form, callers handle dates themselves)."""
    section, sign = section_for(code, value)
    text = _render(section, abs(value))
    return ("-" + text) if sign and text and any(c.isdigit() and c != "0" for c in text) else text


def general(value: float) -> str:
    """Excel's General for a number: up to 15 significant digits, no exponent unless huge
    or tiny (the 11-character cell width rule is not applied: that is a column's width)."""
    d = _decimal(value)
    if d == 0:
        return "0"
    exponent = d.adjusted()
    if exponent >= 21 or exponent <= -10:
        mantissa = (d / Decimal(10) ** exponent).normalize()
        return f"{mantissa}E{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"
    text = format(d.normalize(), "f")
    return text


def _render(section: Section, value: float) -> str:
    tokens = list(section.tokens)
    kind = section.kind
    if kind in (Kind.GENERAL,):
        out = []
        for t, v in tokens:
            out.append(general(value) if t in ("general", "@") else v if t == "lit" else "")
        return "".join(out) if tokens else general(value)
    if kind == Kind.LITERAL:
        return "".join(v for t, v in tokens if t == "lit")
    if kind in (Kind.DATE, Kind.TIME, Kind.DATETIME, Kind.ELAPSED):
        return general(value)
    types = [t for t, _ in tokens]
    scaled = value
    for _ in range(types.count("%")):
        scaled *= 100
    if math.isinf(scaled):  # a percentage beyond any float: the number itself
        return general(value)
    value = scaled
    if "/" in types and any(t in "0#?" for t in types[: types.index("/")]):
        return _render_fraction(tokens, value)
    if "E" in types:
        return _render_scientific(tokens, value)
    return _render_fixed(tokens, value)


def _split_placeholders(
    tokens: list[tuple[str, str]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], bool, int]:
    """(integer-part tokens, decimal-part tokens, grouping, scaling by 1000s)."""
    if any(t == "." for t, _ in tokens):
        k = next(k for k, (t, _) in enumerate(tokens) if t == ".")
        int_part, dec_part = tokens[:k], tokens[k + 1 :]
    else:
        int_part, dec_part = tokens, []
    placeholder_positions = [k for k, (t, _) in enumerate(int_part) if t in "0#?"]
    grouping = False
    scale = 0
    cleaned: list[tuple[str, str]] = []
    for k, (t, v) in enumerate(int_part):
        if t == ",":
            if placeholder_positions and placeholder_positions[0] < k < placeholder_positions[-1]:
                grouping = True
            elif placeholder_positions and k > placeholder_positions[-1]:
                scale += 1
            continue
        cleaned.append((t, v))
    dec_clean: list[tuple[str, str]] = []
    for t, v in dec_part:
        if t == ",":
            scale += 1
            continue
        dec_clean.append((t, v))
    return cleaned, dec_clean, grouping, scale


def _fill_integer(tokens: list[tuple[str, str]], digits: str, grouping: bool) -> str:
    """The integer part: digits fill the placeholders from the right, literals stay where
    they stand (``000-00-0000``), digits beyond the placeholders go to the leftmost."""
    placeholders = [k for k, (t, _) in enumerate(tokens) if t in "0#?"]
    digits = "" if digits == "0" else digits
    if grouping and digits:
        digits = f"{int(digits):,}"
    if not placeholders:
        return "".join(v for t, v in tokens if t in ("lit", "%")) + digits
    slots: dict[int, str] = {}
    rest = digits
    for n, k in enumerate(reversed(placeholders)):
        last = n == len(placeholders) - 1
        if last:
            body, rest = rest, ""
        else:
            body, rest = rest[-1:], rest[:-1]
            if body == "," and rest:  # a grouping comma travels with the next digit
                body, rest = rest[-1:] + body, rest[:-1]
        if not body:
            body = {"0": "0", "?": " ", "#": ""}[tokens[k][0]]
        slots[k] = body
    out: list[str] = []
    for k, (t, v) in enumerate(tokens):
        if k in slots:
            out.append(slots[k])
        elif t in ("lit", "%"):
            out.append(v)
    text = "".join(out)
    if grouping:  # zero padding added in front of grouped digits: regroup the run
        text = re.sub(r"\d[\d,]*", lambda m: _group(m.group().replace(",", "")), text, count=1)
    return text


def _group(digits: str) -> str:
    head = len(digits) % 3 or 3
    return ",".join([digits[:head], *(digits[k : k + 3] for k in range(head, len(digits), 3))])


def _render_fixed(tokens: list[tuple[str, str]], value: float) -> str:
    int_tokens, dec_tokens, grouping, scale = _split_placeholders(tokens)
    value = value / (1000**scale) if scale else value
    dec_places = [t for t, _ in dec_tokens if t in "0#?"]
    quant = Decimal(1).scaleb(-len(dec_places))
    rounded = _decimal(value).quantize(quant, rounding=ROUND_HALF_UP, context=_ANY_FLOAT)
    text = format(rounded, "f")
    int_digits, _, frac_digits = text.partition(".")
    int_text = _fill_integer(int_tokens, int_digits, grouping)
    if not dec_tokens and not any(t == "." for t, _ in tokens):
        return int_text
    frac = list(frac_digits)
    # trailing digits of # and ? placeholders are dropped (or spaces) when zero
    for j in range(len(dec_places) - 1, -1, -1):
        if frac[j] == "0" and dec_places[j] != "0":
            frac[j] = " " if dec_places[j] == "?" else ""
        else:
            break
    out = [int_text, "."]
    j = 0
    for t, v in dec_tokens:
        if t in "0#?":
            out.append(frac[j])
            j += 1
        elif t in ("lit", "%"):
            out.append(v)
    return "".join(out)


def _render_scientific(tokens: list[tuple[str, str]], value: float) -> str:
    k = next(k for k, (t, _) in enumerate(tokens) if t == "E")
    mantissa_tokens, exp_tokens = tokens[:k], tokens[k + 1 :]
    sign_always = tokens[k][1] == "E+"
    int_tokens, dec_tokens, _, _ = _split_placeholders(mantissa_tokens)
    int_places = max(1, sum(1 for t, _ in int_tokens if t in "0#?"))
    dec_places = sum(1 for t, _ in dec_tokens if t in "0#?")
    d = _decimal(value)
    if d == 0:
        exponent = 0
    else:
        exponent = d.adjusted()
        if int_places > 1:  # engineering style: exponent a multiple of the int places
            exponent -= exponent % int_places
    mantissa = (d / Decimal(10) ** exponent) if d else Decimal(0)
    mantissa = mantissa.quantize(Decimal(1).scaleb(-dec_places), rounding=ROUND_HALF_UP)
    if d and abs(mantissa) >= Decimal(10) ** int_places:
        exponent += int_places
        mantissa = (d / Decimal(10) ** exponent).quantize(
            Decimal(1).scaleb(-dec_places), rounding=ROUND_HALF_UP
        )
    text = _render_fixed(mantissa_tokens, float(mantissa))
    exp_digits = sum(1 for t, _ in exp_tokens if t in "0#?") or 1
    sign = "-" if exponent < 0 else ("+" if sign_always else "")
    lits = "".join(v for t, v in exp_tokens if t == "lit")
    return f"{text}E{sign}{abs(exponent):0{exp_digits}d}{lits}"


def _render_fraction(tokens: list[tuple[str, str]], value: float) -> str:
    k = next(k for k, (t, _) in enumerate(tokens) if t == "/")
    left, right = tokens[:k], tokens[k + 1 :]
    # the denominator: fixed digits ("16") or its number of placeholders
    den_places = [t for t, _ in right if t in "0#?"]
    den_digits = "".join(v for t, v in right if t == "lit" and v.isdigit())
    fixed = bool(den_digits) and not den_places
    # split left into a whole part and a numerator: placeholders separated by a literal
    groups: list[list[int]] = []
    current: list[int] = []
    for j, (t, _) in enumerate(left):
        if t in "0#?":
            current.append(j)
        elif current:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    has_whole = len(groups) >= 2
    whole = int(value) if has_whole else 0
    rest = value - whole
    if fixed:
        den = int(den_digits)
        num = round(rest * den)
    else:
        limit = 10 ** max(1, len(den_places)) - 1
        frac = Fraction(rest).limit_denominator(limit)
        num, den = frac.numerator, frac.denominator
    if num == den and den:
        whole, num = whole + 1, 0
    if has_whole:
        whole_text = str(whole) if whole else ""
        if num == 0:
            return whole_text or "0"
        return f"{whole_text} {num}/{den}".strip()
    return f"{num}/{den}"


# --------------------------------------------------------------------------- dates


_EPOCH_1900 = dt.datetime(1899, 12, 31)
_EPOCH_1904 = dt.datetime(1904, 1, 1)


def serial_to_datetime(serial: float, date1904: bool = False) -> dt.datetime:
    """The date and time a serial number stands for, to the millisecond (Excel's 1900
    system counts the nonexistent 1900-02-29 as day 60)."""
    if date1904:
        base = _EPOCH_1904
    else:
        base = _EPOCH_1900
        if serial >= 61:
            serial -= 1
    ms = round(serial * 86_400_000)
    return base + dt.timedelta(milliseconds=ms)
