"""Micro batches without padding waste, and without attention across sequence boundaries.

A step's sequences are grouped into micro batches in one of two ways:

* **packing** (default on CPU): sequences are laid end to end in one row of at most
  ``max_tokens`` tokens (first-fit decreasing, deterministic). Position ids restart at 0 for every
  sequence; transformers (5.x) reads those resets and builds a block-diagonal causal mask (sdpa,
  eager) or variable-length kernels (FlashAttention-2), so no token ever attends to another
  sequence. The first label of each sequence is ``-100``, so no token is trained to predict across
  a boundary either. Packed and separate forward passes give the same losses
  (``tests/test_training_packing.py``). Sequences of equal length are stacked as a batch instead.
* **padding** (the baseline of ``bench/bench_training.py``, and what the paper's micro batch of one
  sequence degenerates to with no padding at all): up to ``max_sequences`` sequences of similar
  length per micro batch, padded on the right, with an attention mask.

The paper trains with one sequence per micro batch and no packing (SPEC section 5); the ``paper``
profile does exactly that.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq

import torch

from .sequences import IGNORE, TrainSequence


def first_fit_decreasing(lengths: Seq[int], capacity: int, max_items: int | None = None) -> list[list[int]]:
    """Indices grouped into bins of total length <= ``capacity`` (longer items get a bin alone).

    Deterministic: ties keep input order. ``max_items`` caps the number of items per bin.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        for b in range(len(bins)):
            if n <= room[b] and (max_items is None or len(bins[b]) < max_items):
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(capacity - n)
    return [sorted(b) for b in bins]


def group_micro_batches(seqs: Seq[TrainSequence], *, packing: bool, max_tokens: int,
                        max_sequences: int | None = None) -> list[list[TrainSequence]]:
    """Split one step's sequences into micro batches.

    With ``packing`` a micro batch holds at most ``max_tokens`` tokens (and ``max_sequences``
    sequences if given). Without packing, sequences are sorted by length and chunked into groups of
    ``max_sequences`` (bucketing keeps padding small); ``max_tokens`` then bounds the padded size.
    """
    if not seqs:
        return []
    if packing:
        bins = first_fit_decreasing([len(s) for s in seqs], max_tokens, max_sequences)
        return [[seqs[i] for i in b] for b in bins]
    order = sorted(range(len(seqs)), key=lambda i: (-len(seqs[i]), i))
    per = max(1, int(max_sequences or 1))
    groups: list[list[TrainSequence]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) >= per or len(seqs[cur[0]]) * (len(cur) + 1) > max(max_tokens, len(seqs[cur[0]]))):
            groups.append([seqs[j] for j in cur])
            cur = []
        cur.append(i)
    if cur:
        groups.append([seqs[j] for j in cur])
    return groups


def collate_packed(group: Seq[TrainSequence]) -> dict[str, torch.Tensor]:
    """One row holding every sequence of ``group`` end to end, positions restarting per sequence.

    Sequences of one and the same length (full windows, the common case at the long length) are
    stacked as a plain ``[B, L]`` batch instead: no padding either, and attention keeps its fast
    causal path (no block mask).
    """
    docs = any(s.meta.get("doc_length") for s in group)
    if len(group) > 1 and len({len(s) for s in group}) == 1 and not docs:
        labels = []
        for s in group:
            lab = list(s.labels)
            lab[0] = IGNORE
            labels.append(lab)
        n = len(group[0])
        return {"input_ids": torch.tensor([s.input_ids for s in group], dtype=torch.long),
                "position_ids": torch.arange(n).repeat(len(group), 1),
                "labels": torch.tensor(labels, dtype=torch.long)}
    ids: list[int] = []
    pos: list[int] = []
    labels: list[int] = []
    for s in group:
        ids.extend(s.input_ids)
        doc = int(s.meta.get("doc_length") or 0)  # a sequence of isolated documents (repeat_isolated)
        pos.extend(i % doc if doc else i for i in range(len(s.input_ids)))
        lab = list(s.labels)
        lab[0] = IGNORE
        labels.extend(lab)
    return {"input_ids": torch.tensor([ids], dtype=torch.long),
            "position_ids": torch.tensor([pos], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long)}


def collate_padded(group: Seq[TrainSequence], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Sequences padded on the right to the longest one, with an attention mask."""
    if any(s.meta.get("doc_length") for s in group):
        raise ValueError("sequences of isolated documents (repeat_isolated) need packing = true")
    width = max(len(s) for s in group)
    ids = torch.full((len(group), width), pad_id, dtype=torch.long)
    labels = torch.full((len(group), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(group), width), dtype=torch.long)
    for r, s in enumerate(group):
        n = len(s)
        ids[r, :n] = torch.tensor(s.input_ids)
        lab = list(s.labels)
        lab[0] = IGNORE
        labels[r, :n] = torch.tensor(lab)
        mask[r, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def collate(group: Seq[TrainSequence], *, packing: bool, pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Packed row (``packing``) or padded batch; a single sequence is never padded either way."""
    if packing or len(group) == 1:
        return collate_packed(group)
    return collate_padded(group, pad_id)


def count_loss_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens that carry a loss in a collated micro batch (labels shifted by one, as in the loss)."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum (not mean) of next-token cross-entropies over the labelled positions, in fp32.

    Summing here and dividing once by the step's global count of loss tokens is what makes a step's
    gradient independent of how its sequences were split into micro batches and processes.
    """
    shift_logits = logits[:, :-1, :].float().reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1).to(shift_logits.device)
    return torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE,
                                             reduction="sum")


def forward_loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Run the model on a collated micro batch and return the summed token loss."""
    kwargs = {k: v for k, v in batch.items() if k != "labels"}
    out = model(**kwargs, use_cache=False)
    return token_loss_sum(out.logits, batch["labels"])
