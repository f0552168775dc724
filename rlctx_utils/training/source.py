"""The data order of a run: which sequence each optimizer step sees.

Comparisons across the grid are only fair if every run sees the same datapoints in the same order
(SPEC section 5: "Same data order and hyperparameters for every run"). Here the order is a
function of the seed and of the datapoint ids only, never of the composer:

* items are sorted by id, then shuffled with a generator seeded by ``(seed, epoch)``;
* step ``k`` consumes positions ``k*B .. (k+1)*B - 1`` of that endless order (``B`` sequences per
  step), and process ``r`` of ``P`` builds positions ``r, r+P, ...`` of the step;
* a sequence is built lazily from its datapoint with a per-datapoint seed derived from
  ``(seed, datapoint id)``, so it does not depend on what was built before it (exact resume).

:meth:`SequenceSource.order_hash` fingerprints the first epoch; a grid's runs share it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Sequence as Seq
from typing import Any

from .sequences import TrainSequence, corpus_item, derive_seed, make_labels


class DataError(ValueError):
    """Training data that is missing or empty; the message says how to make it."""


class SequenceSource:
    """An endless, seeded order over items, each turned into a :class:`TrainSequence` on demand."""

    def __init__(self, ids: Seq[str], build: Callable[[int], TrainSequence], seed: int):
        if not ids:
            raise DataError("no training items: the data set is empty")
        self._sorted = sorted(range(len(ids)), key=lambda i: ids[i])
        self.ids = list(ids)
        self.build = build
        self.seed = int(seed)
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def order(self, epoch: int) -> list[int]:
        """Item indices in the order of ``epoch`` (a seeded shuffle of the id-sorted items)."""
        if epoch not in self._orders:
            idx = list(self._sorted)
            random.Random(derive_seed(self.seed, f"order:{epoch}")).shuffle(idx)
            self._orders = {epoch: idx}  # keep one epoch in memory
        return self._orders[epoch]

    def item_at(self, pos: int) -> int:
        epoch, k = divmod(int(pos), len(self.ids))
        return self.order(epoch)[k]

    def get(self, pos: int) -> TrainSequence:
        return self.build(self.item_at(pos))

    def ids_in_order(self, n: int | None = None) -> list[str]:
        n = len(self.ids) if n is None else n
        return [self.ids[self.item_at(p)] for p in range(n)]

    def order_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the first epoch's id order."""
        return hashlib.sha256("\n".join(self.ids_in_order()).encode()).hexdigest()[:16]


def datapoint_source(datapoints: Seq[Any], *, build_kwargs: dict[str, Any], seed: int) -> SequenceSource:
    """Stage B: one sequence per datapoint, composed lazily (see :func:`build_repo_sequence`)."""
    from .sequences import build_repo_sequence

    dps = list(datapoints)
    return SequenceSource([dp.id for dp in dps],
                          lambda i: build_repo_sequence(dps[i], seed=seed, **build_kwargs), seed)


def _encode_batch(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    return [list(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def corpus_source(items: Iterable[Any], *, tokenizer: Any, seq_len: int, seed: int,
                  fmt: str = "opencoder", batch: int = 256) -> SequenceSource:
    """Stage A: every file rendered and cut into windows of ``seq_len`` tokens (full loss).

    Files are tokenized in batches up front (the corpus is small at CPU scale); the windows are the
    items the seeded order shuffles. A window id is the file's content hash and the window index.
    """
    from rlctx_utils.composers import render_completion

    windows: list[list[int]] = []
    ids: list[str] = []
    pending: list[tuple[str, str]] = []
    min_len = min(32, max(2, seq_len // 10))

    def flush() -> None:
        encoded = _encode_batch(tokenizer, [r for _, r in pending])
        for (key, _), toks in zip(pending, encoded):
            for w, start in enumerate(range(0, len(toks), seq_len)):
                win = toks[start:start + seq_len]
                if len(win) < 2 or (start > 0 and len(win) < min_len):
                    break
                windows.append(win)
                ids.append(f"{key}:{w}")
        pending.clear()

    for n, item in enumerate(items):
        path, text = corpus_item(item)
        if not text or not text.strip():
            continue
        key = hashlib.sha1(f"{path}\0{text}".encode()).hexdigest()[:16]
        pending.append((key, render_completion(path or f"file_{n}.py", text, fmt)))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    if not windows:
        raise DataError("the file-level corpus holds no text")

    def build(i: int) -> TrainSequence:
        w = windows[i]
        return TrainSequence(w, make_labels(w, 0, "full"), n_completion=len(w), meta={"id": ids[i]})

    return SequenceSource(ids, build, seed)
