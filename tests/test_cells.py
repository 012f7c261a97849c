"""How cells become strings (DESIGN.md section 4)."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulk_sync.cells import cell_to_str, float_to_str, normalize_header


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  00123 ", "00123"),
        ("NA", "NA"),
        ("null", "null"),
        ("None", "None"),
        ("\u00a0João Gonçalves\t", "João Gonçalves"),
        ("", ""),
        (None, ""),
    ],
)
def test_text_is_kept_exactly_but_trimmed(value: object, expected: str) -> None:
    assert cell_to_str(value) == expected


def test_booleans_are_lowercase_words_not_numbers() -> None:
    assert cell_to_str(True) == "true"
    assert cell_to_str(False) == "false"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12345, "12345"),
        (12345.0, "12345"),
        (-7.0, "-7"),
        (-0.0, "0"),
        (1e20, "100000000000000000000"),
        (3.5, "3.5"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.3"),  # 15 significant digits, as Excel shows it
        (3.9299999999999997, "3.93"),
        (1.0999999999999999, "1.1"),
        (0.010000000000000002, "0.01"),
        (819805.9999999999, "819806"),
        (123456789012345.6, "123456789012346"),
        (1e-07, "0.0000001"),
        (-2.5e-10, "-0.00000000025"),
        (123456789.125, "123456789.125"),
    ],
)
def test_numbers_have_no_trailing_zero_and_no_exponent(value: object, expected: str) -> None:
    assert cell_to_str(value) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_read_as_empty(value: float) -> None:
    assert cell_to_str(value) == ""


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_float_reads_back_as_the_number_excel_shows(value: float) -> None:
    text = float_to_str(value)
    assert "e" not in text.lower()
    if value.is_integer() and abs(value) <= 2**53:  # a whole number: all its digits
        assert int(text) == int(value)
    else:
        assert float(text) == float(f"{value:.15g}")  # Excel shows 15 significant digits
    assert not text.endswith(".0")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1234567890123456.0, "1234567890123456"),  # a 16-digit id written by a program
        (9007199254740992.0, "9007199254740992"),  # 2**53
        (-1000000000000001.0, "-1000000000000001"),
        (1e20, "100000000000000000000"),
        (123456789012345678.0, "123456789012346000"),  # beyond 2**53: as Excel shows it
    ],
)
def test_whole_numbers_are_sent_with_every_digit_the_float_holds(
    value: float, expected: str
) -> None:
    """DESIGN.md section 4: whole numbers without a decimal point; the 15-digit rounding
    is for the others (0.1 + 0.2). A whole number up to 2**53 is held exactly: rounding
    1234567890123456 to 1234567890123460 would send another id."""
    assert cell_to_str(value) == expected
    from bulk_sync.cells import column_texts

    assert column_texts([value, 1.5]) == [expected, "1.5"]


@given(st.decimals(min_value=-(10**14), max_value=10**14, places=6))
def test_a_number_typed_with_up_to_15_digits_reads_back_as_typed(value: Decimal) -> None:
    typed = Decimal(f"{value:.15g}")
    expected = format(typed, "f")
    if "." in expected:
        expected = expected.rstrip("0").rstrip(".")
    if expected in ("-0", ""):
        expected = "0"
    assert float_to_str(float(typed)) == expected


def test_dates_and_times_are_iso() -> None:
    assert cell_to_str(dt.date(2024, 1, 2)) == "2024-01-02"
    assert cell_to_str(dt.datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05"
    assert cell_to_str(dt.datetime(2024, 1, 2)) == "2024-01-02T00:00:00"
    assert cell_to_str(dt.time(3, 4, 5)) == "03:04:05"


def test_fractional_seconds_are_shown_only_when_present() -> None:
    assert cell_to_str(dt.datetime(2024, 1, 2, 3, 4, 5, 123000)) == "2024-01-02T03:04:05.123"
    assert cell_to_str(dt.datetime(2024, 1, 2, 3, 4, 5, 123456)) == "2024-01-02T03:04:05.123456"
    assert cell_to_str(dt.time(3, 4, 5, 500000)) == "03:04:05.500"


def test_durations_count_hours_past_a_day() -> None:
    assert cell_to_str(dt.timedelta(hours=30, minutes=1, seconds=5)) == "30:01:05"
    assert cell_to_str(dt.timedelta(seconds=59)) == "0:00:59"
    assert cell_to_str(-dt.timedelta(minutes=90)) == "-1:30:00"


def test_decimals_follow_the_float_rules() -> None:
    assert cell_to_str(Decimal("12345.000")) == "12345"
    assert cell_to_str(Decimal("1E-7")) == "0.0000001"
    assert cell_to_str(Decimal("NaN")) == ""


def test_subclasses_of_str_and_int_are_handled_like_their_base() -> None:
    class Text(str):
        pass

    class Number(int):
        pass

    assert cell_to_str(Text(" x ")) == "x"
    assert cell_to_str(Number(5)) == "5"


@pytest.mark.parametrize(
    "text",
    [
        "customer_id",
        "Customer ID",
        "customer-id",
        "CUSTOMER_ID",
        "  Customer   Id ",
        "customer - id",
        "\ufeffcustomer_id",
        "Customer\u00a0ID",
        "_customer_id_",
    ],
)
def test_header_variants_normalize_alike(text: str) -> None:
    assert normalize_header(text) == "customer_id"


def test_header_normalization_keeps_other_characters() -> None:
    assert normalize_header("Região Norte") == "região_norte"
    assert normalize_header("customerid") != normalize_header("customer_id")
    assert normalize_header("Straße") == "strasse"  # casefold, not lower


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (12345678901234567890.0, "12345678901234600000"),  # Excel: 1.23456789012346E+19
        (2.0**53 + 2, "9007199254740990"),  # past 2**53: as Excel shows it
        (2.0**53, "9007199254740992"),  # held exactly: a whole number, every digit
        (2.0**53 - 1, "9007199254740991"),
        (-1e20, "-100000000000000000000"),
    ],
)
def test_whole_numbers_beyond_float_precision_gain_no_digits_nobody_typed(
    number: float, text: str
) -> None:
    assert cell_to_str(number) == text
