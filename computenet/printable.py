"""Which characters must never reach a terminal as they are, and how to write them instead."""

from __future__ import annotations

import re

# C0 and C1 controls and DEL (escape sequences, bells, cursor moves), bidirectional overrides and
# isolates (text that reads differently from what it is), line and paragraph separators (a fake
# second line), the byte-order mark, and lone surrogates (no encoding can write them).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)

# What json.dumps(ensure_ascii=False) leaves raw among the above: it escapes C0 itself, and a
# newline left in its output is indentation between tokens, which must stay.
_UNSAFE_AFTER_JSON = re.compile(
    "[\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def has_unsafe(text: str) -> bool:
    """True if `text` holds a character that `escaped` would rewrite."""
    return _UNSAFE.search(text) is not None


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escaped(text: str) -> str:
    """`text` with every unsafe character written as a Python-style escape (`\\x1b`, `\\u202e`).

    Everything else, non-ASCII letters included, is kept as it is.
    """
    return _UNSAFE.sub(_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escaped_json(document: str) -> str:
    """A JSON document with unsafe characters inside its strings written as `\\uXXXX` escapes.

    `json.dumps(..., ensure_ascii=False)` leaves DEL, C1 controls, bidi controls and lone
    surrogates raw; outside strings JSON is plain ASCII, so replacing them anywhere is safe and
    the document still decodes to the same values.
    """
    return _UNSAFE_AFTER_JSON.sub(_json_escape, document)


def shortened(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars` characters with an ellipsis and the full length when longer."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… ({len(text)} characters)"
