"""bulk_sync.redaction: the one rule that takes the API key out of any text."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_sync.observability import Redactor as LogRedactor
from bulk_sync.redaction import MASK, NO_REDACTION, Redactor, redact_then_shorten

KEY = "3f9c2a7d5e1b8c40a6d2e9f7b3c15e08d4a1c7e2f9b6038d5c2e7a9f1d4b6e3c"


def runs_of(key: str, text: str, size: int = 16) -> list[str]:
    """Every ``size``-character piece of ``key`` found in ``text``, in any case."""
    lowered = text.lower()
    return [
        key[i : i + size]
        for i in range(len(key) - size + 1)
        if key[i : i + size].lower() in lowered
    ]


def test_the_whole_key_and_its_bearer_form_are_masked() -> None:
    redact = Redactor([KEY])
    assert redact(f"token {KEY} refused") == "token *** refused"
    assert redact(f"Authorization: Bearer {KEY}") == "Authorization: Bearer ***"


def test_an_upper_cased_echo_is_masked() -> None:
    assert Redactor([KEY])(f"bad auth BEARER {KEY.upper()}") == "bad auth BEARER ***"


def test_any_run_of_16_characters_of_the_key_is_masked_and_15_are_not() -> None:
    redact = Redactor([KEY])
    assert redact(f"<{KEY[10:26]}>") == "<***>"
    assert redact(f"<{KEY[-16:]}>") == "<***>"
    assert redact(f"<{KEY[10:25]}>") == f"<{KEY[10:25]}>"  # 15: an ordinary hex string


def squeezed(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


def test_a_key_broken_up_by_separators_is_masked_however_short_the_pieces() -> None:
    # A server that formats what it echoes: groups of 4 or 8, a line per piece, a JSON
    # array of pieces. No piece holds 16 characters of the key, the whole key is there.
    redact = Redactor([KEY])
    groups = [KEY[i : i + 4] for i in range(0, 64, 4)]
    for text in (
        "-".join(groups),
        " ".join(KEY[i : i + 8] for i in range(0, 64, 8)).upper(),
        "\n".join(KEY[i : i + 10] for i in range(0, 64, 10)),
        json.dumps([KEY[i : i + 5] for i in range(0, 64, 5)]),
        "key: " + ":".join(groups[3:9]) + ", bye",  # 24 characters of it, in groups of 4
    ):
        shown = redact(f"refused: {text} (see docs)")
        assert runs_of(KEY, squeezed(shown)) == [], shown
        assert shown.startswith("refused: ")
        assert shown.endswith(" (see docs)")


def test_pieces_of_the_key_between_ordinary_words_are_left_alone() -> None:
    redact = Redactor([KEY])
    text = f"ids {KEY[:8]} and {KEY[8:16]}, then {KEY[16:28]}"  # words break the run
    assert redact(text) == text
    uuid = "550e8400-e29b-41d4-a716-446655440000"
    assert redact(f"request {uuid} failed") == f"request {uuid} failed"


def test_overlapping_and_adjacent_runs_become_one_mask() -> None:
    redact = Redactor([KEY])
    assert redact(KEY[:40] + KEY[20:]) == MASK
    assert redact(KEY[:20] + KEY[30:50]) == MASK


def test_redacting_before_cutting_leaves_nothing_of_a_padded_echo() -> None:
    # the review's reproducer: padded so that a 300-character cut keeps 63 of 64 characters
    text = json.dumps({"message": "x" * 223 + KEY + " was refused"})
    cut_first = text[:297]
    assert runs_of(KEY, cut_first)  # what shortening first would have shown
    shown = redact_then_shorten(text, Redactor([KEY]), 300)
    assert runs_of(KEY, shown) == []
    assert shown.endswith('*** was refused"}')


def test_json_escaped_and_percent_encoded_forms_of_a_key_are_masked() -> None:
    key = 'ab"cd\\ef/gh ij+kl==mn'
    redact = Redactor([key])
    assert redact(json.dumps({"k": key})) == '{"k": "***"}'
    assert redact(f"/x?key={quote(key, safe='')}") == "/x?key=***"


def test_short_test_tokens_do_not_shred_ordinary_text() -> None:
    one = Redactor(["T"])
    assert one("HTTP 401: Too many Tests; T-shirt") == "HTTP 401: Too many Tests; T-shirt"
    assert one("Authorization: Bearer T") == "Authorization: Bearer ***"
    assert one("bearer Tx") == "bearer Tx"
    word = Redactor(["secret-token"])
    assert (
        word("secret-tokens are fine, SECRET-TOKEN is not") == "secret-tokens are fine, *** is not"
    )


def test_no_secret_changes_nothing_and_the_repr_shows_no_key() -> None:
    assert Redactor([None, ""])("anything " + KEY) == "anything " + KEY
    assert not Redactor([None])
    assert NO_REDACTION("x") == "x"
    assert KEY not in repr(Redactor([KEY]))
    assert Redactor([KEY]).leaks(KEY[5:30]) is True
    assert Redactor([KEY]).leaks("hello") is False


def test_shortening_makes_one_line_of_the_limit() -> None:
    assert redact_then_shorten("a\n\tb\x00c  d", NO_REDACTION, 100) == "a b c d"
    assert redact_then_shorten("abcdefghij", NO_REDACTION, 8) == "abcde..."


def test_the_logging_filter_uses_the_same_rule() -> None:
    record = logging.makeLogRecord({"msg": "server said %s", "args": (KEY.upper()[3:40],)})
    LogRedactor([KEY]).filter(record)
    assert record.getMessage() == "server said ***"


pieces = st.one_of(
    st.text(alphabet='0123456789abcdefABCDEF xyz"\\:', max_size=30),
    st.integers(0, 63).flatmap(lambda i: st.integers(i + 1, 64).map(lambda j: KEY[i:j])),
    st.integers(0, 63).flatmap(lambda i: st.integers(i + 1, 64).map(lambda j: KEY[i:j].upper())),
    st.just("Bearer " + KEY),
)


@given(st.lists(pieces, max_size=12))
@settings(max_examples=200, deadline=None)
def test_no_16_character_run_of_the_key_survives_in_any_text(parts: list[str]) -> None:
    text = "".join(parts)
    redacted = Redactor([KEY])(text)
    assert runs_of(KEY, redacted) == []
    assert len(redacted) <= len(text) + len(MASK)


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_text_without_the_key_is_left_unchanged(text: str) -> None:
    if not runs_of(KEY, text) and "bearer" not in text.lower():
        assert Redactor([KEY])(text) == text
