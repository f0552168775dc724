"""Token counting for the budget, with per-piece caching that never changes the result.

The budget is defined on the *whole* composed context: tokenize it, keep the last ``max_tokens``
ids. Tokenizing every file for every datapoint would be slow, so :class:`TokenCounter` encodes each
rendered piece once (cached by format, path and content) and concatenates. That is exact when every
piece starts with a special token that the tokenizer splits off before anything else (``<file_sep>``
in OpenCoder's vocabulary): text on both sides of an added token is encoded independently. The
counter checks this property on the tokenizer at hand (:meth:`TokenCounter.segment_safe`); when it
does not hold (the LCA format, a tokenizer without the token), the engine encodes the joined tail
of the context in one go instead (see :mod:`.pipeline`).

For a huge piece of which only the end fits (a 5 MB file), :meth:`TokenCounter.encode_tail` encodes
only a suffix that starts next to a newline where byte-level pre-tokenizers always end a pre-token
(after a newline followed by a non-blank character, or before a newline that follows a letter or
digit; checked on the tokenizer at hand), so the suffix's ids are the ids of the whole piece's end.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from .text import TextCache

_COUNTERS: "weakref.WeakKeyDictionary[Any, TokenCounter]" = weakref.WeakKeyDictionary()
_COUNTERS_BY_ID: dict[int, "TokenCounter"] = {}

#: Pieces longer than this many characters are tail-encoded when only their end fits.
TAIL_MIN_CHARS = 200_000


class TokenCounter:
    """Encodes text with a transformers (or ``tokenizers``) tokenizer, memoizing per piece."""

    def __init__(self, tokenizer: Any, cache_chars: int = 400_000_000) -> None:
        self.tokenizer = tokenizer
        self.cache = TextCache(cache_chars)
        backend = getattr(tokenizer, "_tokenizer", None) or getattr(tokenizer, "backend_tokenizer", None)
        if backend is None and hasattr(tokenizer, "encode_batch"):  # a bare tokenizers.Tokenizer
            backend = tokenizer
        self._backend = backend
        self._safe: dict[str, bool] = {}
        self._tail_ok: bool | None = None
        self._plain_ids: np.ndarray | None = None

    # -- encoding ---------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without added BOS/EOS (not cached)."""
        if not text:
            return []
        if self._backend is not None:
            return self._backend.encode(text, add_special_tokens=False).ids
        out = self.tokenizer(text, add_special_tokens=False)
        return list(out["input_ids"])

    def encode_offsets(self, text: str) -> tuple[list[int], list[int]]:
        """Token ids and the character offset where each token starts."""
        if not text:
            return [], []
        if self._backend is not None:
            enc = self._backend.encode(text, add_special_tokens=False)
            return enc.ids, [a for a, _ in enc.offsets]
        out = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(out["input_ids"]), [a for a, _ in out["offset_mapping"]]

    def encode_cached(self, key: Any, text: str) -> list[int]:
        """``encode(text)`` memoized under ``key`` (e.g. (format, path, content))."""
        hit = self.cache.get(key)
        if hit is None:
            hit = self.cache.put(key, self.encode(text), len(text))
        return hit

    def count_cached(self, key: Any, text: str) -> int:
        return len(self.encode_cached(key, text))

    def decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        if self._backend is not None:
            return self._backend.decode(list(ids), skip_special_tokens=False)
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    # -- properties of the tokenizer --------------------------------------------------------------
    def is_single_added_token(self, token: str) -> bool:
        if not token:
            return False
        ids = self.encode(token)
        if len(ids) != 1:
            return False
        added = self._added_vocab()
        return token in added

    def _added_vocab(self) -> dict[str, int]:
        if hasattr(self.tokenizer, "get_added_vocab"):
            return dict(self.tokenizer.get_added_vocab())
        if self._backend is not None and hasattr(self._backend, "get_added_tokens_decoder"):
            return {t.content: i for i, t in self._backend.get_added_tokens_decoder().items()}
        return {}

    def segment_safe(self, sep: str) -> bool:
        """Whether ``encode(a + sep + b) == encode(a) + encode(sep + b)`` for any ``a``, ``b``.

        True when ``sep`` is a single added token; confirmed on probes whose sides would merge
        under any ordinary pre-tokenizer (trailing blanks, leading blanks, letters on both sides).
        """
        if sep in self._safe:
            return self._safe[sep]
        ok = self.is_single_added_token(sep)
        if ok:
            probes = [("x = 1\n", "# a.py\nimport os\n"), ("def f():  \n    ", "  y\n"),
                      ("abc", "def"), ("\n\n", "\n\nz"), ("é", "é")]
            ok = all(self.encode(a + sep + b) == self.encode(a) + self.encode(sep + b)
                     for a, b in probes)
        self._safe[sep] = ok
        return ok

    def tail_safe(self) -> bool:
        """Whether the split points of :func:`_line_boundary` always end a pre-token."""
        if self._tail_ok is None:
            probes = ["class A:\n    def f(self):\n        return 1  \nx = [1,\n2]\n",
                      "a  \n\n\nb = 'é'\n# c\n)\n", "    \n  \nz\n", "    # pad\n    # pad2\n  x\n",
                      "é\n  ü\n\t9\n):\n"]
            ok = True
            for p in probes:
                for i in range(1, len(p)):
                    if _line_boundary(p, i) == i:
                        ok &= self.encode(p) == self.encode(p[:i]) + self.encode(p[i:])
            self._tail_ok = ok
        return self._tail_ok

    def encode_tail(self, text: str, need: int) -> tuple[list[int], bool]:
        """The last ``need`` or more ids of ``encode(text)``; ``(ids, complete)``.

        ``complete`` is True when ``ids`` is the encoding of the whole text. For long texts on a
        tokenizer where :meth:`tail_safe` holds, only a suffix starting at a pre-token boundary
        next to a newline is encoded, doubled until it has at least ``need`` tokens.
        """
        if len(text) < TAIL_MIN_CHARS or not self.tail_safe():
            return self.encode(text), True
        width = max(4096, need * 8)
        while width < len(text):
            start = _line_boundary(text, len(text) - width)
            if start <= 0:
                break
            ids = self.encode(text[start:])
            if len(ids) >= need:
                return ids, False
            width *= 2
        return self.encode(text), True

    def plain_ids(self) -> np.ndarray:
        """Ids of ordinary (non-special, non-added) tokens, for random-token composers."""
        if self._plain_ids is None:
            vocab = self.tokenizer.get_vocab() if hasattr(self.tokenizer, "get_vocab") else {}
            special = set(self._added_vocab().values())
            special |= set(getattr(self.tokenizer, "all_special_ids", []) or [])
            ids = sorted(i for i in vocab.values() if i not in special)
            self._plain_ids = np.asarray(ids, dtype=np.int64)
        return self._plain_ids


def _line_boundary(text: str, pos: int) -> int:
    """First index >= pos where a pre-token must end: after a newline that a non-blank character
    follows, or before a newline that a letter or digit precedes (-1 if none)."""
    i = pos
    while True:
        nl = text.find("\n", i)
        if nl < 0 or nl + 1 >= len(text):
            return -1
        if nl > pos and text[nl - 1].isalnum():
            return nl
        if not text[nl + 1].isspace():
            return nl + 1
        i = nl + 1


def counter_for(tokenizer: Any) -> TokenCounter:
    """The shared :class:`TokenCounter` of a tokenizer (one cache per tokenizer object)."""
    try:
        tc = _COUNTERS.get(tokenizer)
        if tc is None:
            tc = _COUNTERS[tokenizer] = TokenCounter(tokenizer)
        return tc
    except TypeError:  # not weak-referenceable
        tc = _COUNTERS_BY_ID.get(id(tokenizer))
        if tc is None or tc.tokenizer is not tokenizer:
            tc = _COUNTERS_BY_ID[id(tokenizer)] = TokenCounter(tokenizer)
        return tc
