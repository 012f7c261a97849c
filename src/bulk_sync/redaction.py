"""Taking the API key out of any text before it is shown, logged or stored.

One rule for every place where text that may hold the key goes out: error messages and
exception texts (the client), log lines (:mod:`bulk_sync.observability`), the report's
``error`` column, the summary and ``--summary-json``, and the ops web page::

    from bulk_sync.redaction import Redactor

    redact = Redactor([api_key])          # build once per key (it compiles a pattern)
    safe = redact(server_text)            # the same text with the key replaced by "***"
    if redact.leaks(text): ...            # True if redact(text) would change it

The rule, for a key of at least :data:`MIN_RUN` (16) characters (a real Invisible
Collector key has 64):

- every run of 16 or more consecutive characters of the key is replaced by ``***``,
  case-insensitively (a server echoing ``header.upper()``, or half the key, is caught);
  overlapping and adjacent runs become one ``***``;
- the key's other spellings are covered the same way: as JSON writes it (``\\"``,
  ``\\\\``) and percent-encoded (as a URL would carry it);
- the same runs with separators inside: a key echoed in groups (``3f9c-2a7d-...``), a
  piece per line or a JSON array of pieces is still the key. Characters other than
  letters and digits between the key's characters are skipped when looking for a run
  (ordinary words between pieces break it); the mask covers the run, separators and all;
- ``Bearer <key>`` (the header value) becomes ``Bearer ***``.

Shorter keys are test tokens (``T``, ``secret-token``): redacting every occurrence of a
letter or a common word would shred ordinary text. For them, only whole occurrences
that are not part of a longer word are replaced (keys of :data:`MIN_WORD` characters or
more), and the ``Bearer <key>`` form always.

**Redact before you shorten.** Cutting a message to 300 characters first can leave 63
characters of a 64-character key, which no longer match the whole key; the run rule
catches such a cut at 16 characters, but only a redaction done first removes it all.
:func:`redact_then_shorten` does both in that order.

:class:`Redactor` is immutable and cheap to call on short texts (log lines, messages);
it is safe to share between threads and tasks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote

__all__ = ["MASK", "MIN_RUN", "MIN_WORD", "NO_REDACTION", "Redactor", "redact_then_shorten"]

MASK: Final = "***"
MIN_RUN: Final = 16  # the shortest run of a key's characters that is redacted
MIN_WORD: Final = 6  # a shorter key is redacted only in its Bearer form
_SEPARATORS: Final = re.compile(r"[\W_]+")  # what may come between the key's characters
_KEPT: Final = re.compile(r"[^\W_]")


def _forms(secret: str) -> set[str]:
    """The spellings under which ``secret`` can appear in text we handle."""
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe="")} - {""}


def _windows(text: str, n: int) -> set[str]:
    """Every run of ``n`` characters of ``text``, lower-cased (none if it is shorter)."""
    return {text[i : i + n].lower() for i in range(len(text) - n + 1)}


def _run_patterns(
    runs: set[str], min_run: int
) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """The search for ``runs`` and its cheap prefilter (``None, None`` without runs).

    A zero-width lookahead finds every start of a run, overlapping ones included;
    redact() merges them. The prefilter is a first look: a run needs ``min_run``
    characters in a row from the runs' alphabet; most texts (log lines, messages) have
    none and skip the search."""
    if not runs:
        return None, None
    alternation = "|".join(re.escape(r) for r in sorted(runs))
    charset = "".join(re.escape(c) for c in sorted({c for r in runs for c in r}))
    return (
        re.compile(f"(?=({alternation}))", re.IGNORECASE),
        re.compile(f"[{charset}]{{{min_run}}}", re.IGNORECASE),
    )


class Redactor:
    """Replaces a set of secrets (API keys) in text with ``***``; see the module doc.

    ``secrets`` may hold ``None`` and empty strings (ignored), so
    ``Redactor([settings.token()])`` works whether a key is set or not. Calling the
    object, or :meth:`redact`, returns the redacted text; a redactor without secrets
    returns its input unchanged (and is false in a boolean context).
    """

    __slots__ = ("_others", "_prefilter", "_runs", "_split", "_split_prefilter", "secrets")

    def __init__(self, secrets: Iterable[str | None] = (), *, min_run: int = MIN_RUN) -> None:
        if min_run < 4:
            raise ValueError("min_run must be at least 4")
        self.secrets: tuple[str, ...] = tuple(dict.fromkeys(s for s in secrets if s))
        runs: set[str] = set()
        split: set[str] = set()  # runs of the key without its own separators, if any
        words: set[str] = set()
        bearers: set[str] = set()
        for secret in self.secrets:
            for form in _forms(secret):
                bearers.add(form)
                if len(form) >= min_run:
                    runs.update(_windows(form, min_run))
                elif len(form) >= MIN_WORD:
                    words.add(form)
            split.update(_windows(_SEPARATORS.sub("", secret), min_run))
        self._runs, self._prefilter = _run_patterns(runs, min_run)
        self._split, self._split_prefilter = _run_patterns(split, min_run)
        others: list[str] = []
        if words:
            alternation = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
            others.append(rf"(?<![^\W_])({alternation})(?![^\W_])")
        if bearers:
            alternation = "|".join(re.escape(b) for b in sorted(bearers, key=len, reverse=True))
            others.append(rf"\bbearer[ \t]+({alternation})(?![^\W_])")
        self._others = re.compile("|".join(others), re.IGNORECASE) if others else None

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def __repr__(self) -> str:  # never the secrets themselves
        return f"Redactor({len(self.secrets)} secret{'' if len(self.secrets) == 1 else 's'})"

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        if self._runs is not None and self._prefilter is not None and self._prefilter.search(text):
            found += (m.span(1) for m in self._runs.finditer(text))
        if self._split is not None:
            found += self._split_spans(text)
        if self._others is not None:
            # each alternative has one group, the part to mask: the one that matched
            found += (m.span(m.lastindex or 0) for m in self._others.finditer(text))
        if not found:
            return found
        found.sort()
        merged = [found[0]]
        for start, end in found[1:]:
            last_start, last_end = merged[-1]
            if start <= last_end:
                merged[-1] = (last_start, max(last_end, end))
            else:
                merged.append((start, end))
        return merged

    def _split_spans(self, text: str) -> list[tuple[int, int]]:
        """Runs of the key with separators between its characters, as spans of ``text``."""
        assert self._split is not None
        assert self._split_prefilter is not None
        bare = _SEPARATORS.sub("", text)
        if len(bare) == len(text) or not self._split_prefilter.search(bare):
            return []  # no separator (the plain rule has looked already), or no run at all
        hits = [m.span(1) for m in self._split.finditer(bare)]
        if not hits:
            return []
        kept = [m.start() for m in _KEPT.finditer(text)]  # where each of bare's characters is
        return [(kept[start], kept[end - 1] + 1) for start, end in hits]

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the secrets (as the module doc says) masked."""
        if not self.secrets or not text:
            return text
        spans = self._spans(text)
        if not spans:
            return text
        out: list[str] = []
        last = 0
        for start, end in spans:
            out.append(text[last:start])
            out.append(MASK)
            last = end
        out.append(text[last:])
        return "".join(out)

    def leaks(self, text: str) -> bool:
        """True if ``text`` holds something :meth:`redact` would mask."""
        return bool(self.secrets and text and self._spans(text))


NO_REDACTION: Final = Redactor()

# control characters, and the bidirectional overrides that can make a terminal show
# text in another order than it is written
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]+")
_SPACES = re.compile(r"\s+")


def redact_then_shorten(text: str, redactor: Redactor, limit: int) -> str:
    """One line of at most ``limit`` characters, the secrets masked *before* the cut.

    Control characters (terminal escapes included), bidirectional overrides and runs of
    white space become one space; a longer text is cut and ends with ``...``.
    """
    text = redactor.redact(text)
    text = _SPACES.sub(" ", _CONTROL_CHARS.sub(" ", text)).strip()
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 3)].rstrip() + "..."
