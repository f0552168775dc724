"""The values a composer produces: pieces of context and the finished composition.

A *piece* is one file (or one chunk of a file) placed in the context. A *composition* is the
context string and its token ids after the budget cut of SPEC section 4 ("keep the most relevant
pieces that fit; truncation always cuts from the left"), together with the pieces that made it, in
context order, the most relevant one last (in ``original`` mode).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ComposerError(ValueError):
    """Bad input to a composer: unknown name, unsupported mode, stage or format, bad budget."""


class UnknownComposerError(ComposerError, KeyError):
    """No composer is registered under that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown composer"


@dataclass(frozen=True)
class Candidate:
    """A file (or a chunk of one) that a composer may place in the context.

    ``index`` is the position of the file in the snapshot as given (the LCA baselines break ties by
    it); ``chunk`` numbers the chunks of one file from 0; ``text`` is the normalized original text
    (line endings ``\\n``), before any composer-specific reduction.
    """

    path: str
    text: str
    index: int
    chunk: int = 0


@dataclass
class Piece:
    """One piece of a composed context.

    ``text`` is the piece's content as the composer produced it (after reductions such as
    "declarations only"), before rendering; ``rank_key`` holds the values of the composer's ranking
    keys (natural units: a path distance of 2, an IoU of 0.31, ...), primary key first;
    ``n_tokens`` is how many of the rendered piece's tokens are inside the window; ``cut`` is True
    for the one piece the left cut went through.
    """

    path: str
    text: str
    rank_key: tuple[Any, ...] = ()
    n_tokens: int = 0
    cut: bool = False


@dataclass
class Composition:
    """A composed context, cut to the budget.

    ``context`` is the rendered context (ending right before the completion file's own header);
    ``context_ids`` its token ids (``len <= max_tokens``); training and evaluation use the ids, so
    that string round trips never matter. ``pieces`` are in context order. ``ranked`` is every
    candidate the composer ranked, least relevant first, as ``(path, rank_key)``.
    ``n_tokens_full`` (tokens of the whole composed context before the cut) is computed on first
    access when the composer stopped early.
    """

    context: str
    context_ids: list[int]
    pieces: list[Piece]
    composer: str
    mode: str
    stage: str = "train"
    fmt: str = "opencoder"
    max_tokens: int = 0
    seed: int = 0
    truncated: bool = False
    leaks_target: bool = False
    ranked: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    _n_tokens_full: int | None = field(default=None, repr=False)
    _full_counter: Callable[[], int] | None = field(default=None, repr=False, compare=False)

    @property
    def n_tokens(self) -> int:
        """Tokens in the window (``len(context_ids)``)."""
        return len(self.context_ids)

    @property
    def n_tokens_full(self) -> int:
        """Tokens of the fully composed context before the left cut (exact; computed lazily)."""
        if self._n_tokens_full is None:
            self._n_tokens_full = self._full_counter() if self._full_counter else self.n_tokens
            self._full_counter = None
        return self._n_tokens_full

    @property
    def paths(self) -> list[str]:
        """Paths of the pieces, in context order."""
        return [p.path for p in self.pieces]
