"""Training sequences for the two pretraining stages, with their loss masks (SPEC sections 3 and 5).

Stage A (base pretraining, our stand-in for OpenCoder's original pretraining) sees single files:
each file is rendered as ``<file_sep># path\\ncontent\\n`` and cut into windows of the base length;
every token is a loss token.

Stage B (repository-level pretraining) turns one datapoint (repository snapshot + completion file)
into one sequence of at most ``seq_len`` tokens:

* the completion file is rendered in the input format and cut to at most ``completion_max`` tokens
  (``seq_len // 4`` by default: 4,096 of 16,384 in the paper), its *end* cut;
* the composer's context (most relevant piece last) is cut from the *left* to fill the rest;
* an optional ``<repo_name>{repo}\\n`` header (the paper's training code had one) comes first;
* File-level runs use the completion file alone (the composer is not called).

Loss masks follow the Hugging Face ``labels`` convention: ``labels[i]`` is the token the model must
predict at position ``i - 1`` (``-100`` = no loss). With the *masked* loss only completion-file
tokens carry a label; with the *full* loss every token but the first does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from typing import Any

IGNORE = -100
LOSSES = ("masked", "full")
FILE_LEVEL = "file_level"


class SequenceError(ValueError):
    """A sequence that cannot be built as asked (bad loss name, empty window...)."""


@dataclass
class TrainSequence:
    """One training sequence: token ids, labels (``-100`` = no loss) and where the parts are."""

    input_ids: list[int]
    labels: list[int]
    n_header: int = 0
    n_context: int = 0
    n_completion: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_loss_tokens(self) -> int:
        """Tokens that carry a loss (the first token never does: nothing precedes it)."""
        return sum(1 for x in self.labels[1:] if x != IGNORE)


def derive_seed(seed: int, key: str) -> int:
    """A per-item seed from the run seed and an item id (stable across Python runs and machines)."""
    h = hashlib.sha256(f"{int(seed)}\0{key}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def make_labels(input_ids: Seq[int], loss_start: int, loss: str) -> list[int]:
    """Labels for ``input_ids``: tokens from ``loss_start`` on (masked) or all tokens (full)."""
    if loss not in LOSSES:
        raise SequenceError(f"unknown loss {loss!r}: give one of {LOSSES}")
    start = 0 if loss == "full" else loss_start
    labels = [IGNORE] * start + list(input_ids[start:])
    if labels:
        labels[0] = IGNORE  # nothing precedes the first token
    return labels


def build_repo_sequence(datapoint: Any, *, composer: str, mode: str, tokenizer: Any, seq_len: int,
                        seed: int, loss: str = "masked", completion_max: int | None = None,
                        fmt: str = "opencoder", repo_name_header: bool = False) -> TrainSequence:
    """The stage-B sequence of one datapoint (see the module docstring for the layout).

    ``seed`` is the run seed; the composer gets a per-datapoint seed derived from it and the
    datapoint id, so a datapoint's sequence does not depend on which other datapoints came before.
    """
    from rlctx_utils.composers import compose, render_completion

    if seq_len < 2:
        raise SequenceError(f"seq_len must be >= 2, got {seq_len}")
    completion_max = int(completion_max or max(1, seq_len // 4))
    comp_text = render_completion(datapoint.completion_path, datapoint.completion_content, fmt)
    comp_ids = _encode(tokenizer, comp_text)[:min(completion_max, seq_len)]
    header: list[int] = []
    if repo_name_header and composer != FILE_LEVEL:
        header = _encode(tokenizer, f"<repo_name>{datapoint.repo}\n")
        header = header[:max(0, seq_len - len(comp_ids))]
    budget = seq_len - len(comp_ids) - len(header)
    ctx: list[int] = []
    dp_seed = derive_seed(seed, datapoint.id)
    if composer != FILE_LEVEL and budget > 0:
        comp = compose(composer, datapoint.snapshot, datapoint.completion_path,
                       datapoint.completion_content, mode=mode, stage="train", tokenizer=tokenizer,
                       max_tokens=budget, seed=dp_seed, fmt=fmt, repo_name=None)
        ctx = list(comp.context_ids)
        ctx = ctx[len(ctx) - budget:] if len(ctx) > budget else ctx  # cut from the left
    ids = header + ctx + comp_ids
    labels = make_labels(ids, len(header) + len(ctx), loss)
    return TrainSequence(ids, labels, n_header=len(header), n_context=len(ctx),
                         n_completion=len(comp_ids),
                         meta={"id": datapoint.id, "composer": composer, "mode": mode})


def corpus_item(item: Any) -> tuple[str | None, str]:
    """(path, text) of one corpus item: a string, a (path, text) pair or a dict with path/text."""
    if isinstance(item, str):
        return None, item
    if isinstance(item, dict):
        return item.get("path") or item.get("filename"), item.get("text") or item.get("content") or ""
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    raise SequenceError(f"corpus items must be str, (path, text) or dicts, got {type(item).__name__}")
