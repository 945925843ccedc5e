"""Printing Chinese tables that line up: a Chinese character (or full-width sign) takes two columns in a
terminal or a notebook's output, but `f"{text:>8}"` counts it as one, so a mixed row drifts. These helpers
pad by shown width instead; `yes` prints a verdict inside a Chinese sentence as 是 / 否 rather than True / False."""
from __future__ import annotations

import unicodedata


def shown_width(text: str) -> int:
    """Columns `text` takes when printed: 2 for a wide or full-width character, 1 otherwise."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def right(text: str, width: int) -> str:
    """`text` right-aligned in `width` shown columns (unchanged when it is already wider)."""
    return " " * max(0, width - shown_width(text)) + text


def left(text: str, width: int) -> str:
    """`text` left-aligned in `width` shown columns (unchanged when it is already wider)."""
    return text + " " * max(0, width - shown_width(text))


def yes(flag: object) -> str:
    """是 for a true value, 否 for a false one (numpy booleans included)."""
    return "是" if flag else "否"
