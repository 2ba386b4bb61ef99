"""The one rule for a raw user or item id, shared by ingest and the events API.

A text id is stripped of surrounding whitespace (what :meth:`str.strip`
removes, the same set as Arrow's ``utf8_trim_whitespace``), so ``" u1 "`` and
``"u1"`` are the same user wherever they come from.  What is left must be
non-empty, at most :data:`MAX_ID_LENGTH` characters, and hold no control
character (Unicode category Cc: NUL, tab, newline, DEL, U+0080..U+009F) and no
lone surrogate.  Integer ids are ids as they are.

:func:`normalize_id` applies the rule to one id; :func:`normalize_ids` to an
Arrow string array at once (for ingest, on the distinct values).  Both give
the same answer for every string (tested).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["MAX_ID_LENGTH", "ID_RULE", "normalize_id", "normalize_ids"]

#: Longest user or item id accepted (characters, after stripping).
MAX_ID_LENGTH = 512

#: The rule in words, for error messages.
ID_RULE = f"no control characters (NUL, tab, newline...), at most {MAX_ID_LENGTH} characters"

_CONTROL = "\x00-\x1f\x7f-\x9f"
_BAD_PY = re.compile(f"[{_CONTROL}\ud800-\udfff]")
_BAD_ARROW = r"[\x{00}-\x{1f}\x{7f}-\x{9f}]"  # RE2; Arrow strings are UTF-8, so they hold no surrogate


def normalize_id(value: str) -> str:
    """The id as every part of zenrec stores it: stripped, and checked.

    Raises :class:`ValueError` with a short phrase saying what is wrong
    (``"must not be empty"``...), for the caller to prefix with the field.
    """
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > MAX_ID_LENGTH:
        raise ValueError(f"is longer than {MAX_ID_LENGTH} characters ({len(text)})")
    bad = _BAD_PY.search(text)
    if bad is not None:
        ch = bad.group()
        what = "a lone surrogate" if "\ud800" <= ch <= "\udfff" else "a control character"
        name = "NUL" if ch == "\x00" else f"U+{ord(ch):04X}"
        at = bad.start() + len(value) - len(value.lstrip()) + 1
        raise ValueError(f"must not contain {what} ({name} at character {at}); ids are printable text")
    return text


def normalize_ids(text: pa.Array | pa.ChunkedArray) -> tuple[pa.Array | pa.ChunkedArray, np.ndarray]:
    """Stripped ids (empty strings stay empty: the caller counts them as missing) and a mask of
    the ids the rule refuses (too long, or a control character)."""
    text = pc.utf8_trim_whitespace(text)
    bad = pc.or_(pc.greater(pc.utf8_length(text), MAX_ID_LENGTH), pc.match_substring_regex(text, _BAD_ARROW))
    return text, pc.fill_null(bad, False).to_numpy(zero_copy_only=False)
