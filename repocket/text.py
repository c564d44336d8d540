"""Showing values and stored names in messages: one rule for all of repocket."""

from __future__ import annotations

from typing import Any

__all__ = ["as_text", "short_repr"]


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (then ``...``), for error
    messages.  Never raises: the repr of a huge int (which Python refuses
    to write past a digit limit) or of absurdly nested containers is
    replaced by a description."""
    if isinstance(value, int) and value.bit_length() > 3 * limit:
        return f"<int of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        return f"<{type(value).__name__} that cannot be shown>"
    return text if len(text) <= limit else text[:limit] + "..."


def as_text(value: str | bytes) -> str:
    """A name or text read from storage, as text.  Names repocket wrote are
    UTF-8; other bytes (written by other software) are shown with backslash
    escapes (``\\xff``), so they reach messages and the model layer as
    printable names that no model has, instead of raising."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value
