"""Relevance measures and the shared preprocessing of SPEC section 4.

- :func:`path_distance`: how far apart two files sit in the folder tree.
- :func:`line_set` / :func:`lines_iou`: overlap of the non-trivial lines of two files.
- :func:`normalize_text` / :func:`normalize_path`: line endings to ``\\n``, text that the tokenizer
  can always encode, and one spelling per path.

Per-text results are memoized in bounded caches keyed by the text itself: a Python string caches
its hash, so looking up the same snapshot text again costs a pointer comparison.
"""

from __future__ import annotations

import posixpath
from typing import Any

#: Lines shorter than this (after stripping) are ignored by the lines IoU (SPEC section 4).
MIN_IOU_LINE_CHARS = 5


class TextCache:
    """A bounded memo keyed by (kind, text, ...): cleared whole when it grows past ``max_chars``."""

    def __init__(self, max_chars: int = 400_000_000) -> None:
        self.max_chars = max_chars
        self._data: dict[Any, Any] = {}
        self._chars = 0

    def get(self, key: Any) -> Any:
        return self._data.get(key)

    def put(self, key: Any, value: Any, n_chars: int) -> Any:
        if self._chars + n_chars > self.max_chars:
            self._data.clear()
            self._chars = 0
        self._data[key] = value
        self._chars += n_chars
        return value

    def clear(self) -> None:
        self._data.clear()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._data)


CACHE = TextCache()


def normalize_path(path: str) -> str:
    """One spelling per path: ``/`` separators, no ``./``, no doubled or leading slashes."""
    p = path.replace("\\", "/")
    p = posixpath.normpath(p) if p else p
    p = p.lstrip("/")
    return "" if p == "." else p


def normalize_text(text: str | bytes) -> str:
    """Line endings to ``\\n``; undecodable bytes and lone surrogates become U+FFFD.

    Bytes are decoded as UTF-8 with replacement, so a non-UTF-8 file never stops a composer.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    hit = CACHE.get(("norm", text))
    if hit is not None:
        return hit
    out = text
    if "\r" in out:
        out = out.replace("\r\n", "\n").replace("\r", "\n")
    if not out.isascii():
        try:
            out.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (e.g. from surrogateescape decoding)
            out = out.encode("utf-8", errors="replace").decode("utf-8")
    return CACHE.put(("norm", text), out, len(text))


def path_components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


def path_distance(a: str, b: str) -> int:
    """Path distance of SPEC section 4.

    Split both paths into components and let ``c`` be the number of leading components they share;
    the distance is ``(len(a) - c - 1) + (len(b) - c - 1)``. Files in the same folder are at 0, files
    in sibling folders at 2, a file one folder below at 1.
    """
    ca, cb = path_components(a), path_components(b)
    common = 0
    for x, y in zip(ca, cb):
        if x != y:
            break
        common += 1
    return (len(ca) - common - 1) + (len(cb) - common - 1)


def line_set(text: str) -> frozenset[str]:
    """The set of lines of ``text``, stripped, keeping those of at least 5 characters."""
    hit = CACHE.get(("lines", text))
    if hit is not None:
        return hit
    out = frozenset(s for s in (ln.strip() for ln in text.split("\n")) if len(s) >= MIN_IOU_LINE_CHARS)
    return CACHE.put(("lines", text), out, len(text))


def set_iou(a: frozenset[str], b: frozenset[str]) -> float:
    """|A and B| / |A or B|, 0.0 when both are empty."""
    if not a or not b:
        return 0.0
    inter = len(a & b) if len(a) < len(b) else len(b & a)
    return inter / (len(a) + len(b) - inter)


def lines_iou(a: str, b: str) -> float:
    """Lines IoU of SPEC section 4 between two file texts."""
    return set_iou(line_set(a), line_set(b))
