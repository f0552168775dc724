"""Packing without cross-sequence attention, loss normalisation over micro batches, golden losses."""

from __future__ import annotations

import copy

import pytest
import torch

from rlctx_utils.models import build_model
from rlctx_utils.training.packing import (collate_packed, collate_padded, first_fit_decreasing,
                                          forward_loss_sum, group_micro_batches)
from rlctx_utils.training.sequences import IGNORE, TrainSequence, make_labels

VOCAB = 2048


def _random_seqs(lengths, seed=0, masked=True):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(7, VOCAB, (n,), generator=g).tolist()
        out.append(TrainSequence(ids, make_labels(ids, n // 3 if masked else 0, "masked" if masked else "full")))
    return out


@pytest.fixture(scope="module")
def model():
    return build_model("smoke", VOCAB, seed=0).eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_separate_loss(model, attn):
    m = copy.deepcopy(model)
    m.config._attn_implementation = attn
    seqs = _random_seqs([50, 17, 80, 33])
    with torch.no_grad():
        same = _random_seqs([40, 40], seed=3)
        stacked = forward_loss_sum(m, collate_packed(same))
        assert collate_packed(same)["input_ids"].shape == (2, 40)
        assert torch.allclose(stacked, sum(forward_loss_sum(m, collate_packed([s])) for s in same), rtol=2e-6)
        separate = sum(forward_loss_sum(m, collate_packed([s])) for s in seqs)
        packed = forward_loss_sum(m, collate_packed(seqs))
        padded = forward_loss_sum(m, collate_padded(seqs, pad_id=0))
        # Sanity check that the test can fail: without position resets, attention crosses sequences.
        leaky = collate_packed(seqs)
        leaky["position_ids"] = torch.arange(leaky["input_ids"].shape[1]).view(1, -1)
        crossed = forward_loss_sum(m, leaky)
    assert torch.allclose(packed, separate, rtol=2e-6), (packed, separate)
    assert torch.allclose(padded, separate, rtol=2e-6), (padded, separate)
    assert abs(float(crossed - separate)) > 2e-5 * float(separate)  # a random model barely attends


def test_packed_row_masks_boundaries():
    seqs = _random_seqs([5, 4], masked=False)
    b = collate_packed(seqs)
    assert b["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3]]
    labels = b["labels"][0].tolist()
    assert labels[0] == IGNORE and labels[5] == IGNORE  # nothing predicts a sequence's first token
    assert labels[1:5] == seqs[0].input_ids[1:] and labels[6:] == seqs[1].input_ids[1:]


def test_first_fit_decreasing_respects_capacity():
    lengths = [90, 10, 60, 40, 30, 70, 120]
    bins = first_fit_decreasing(lengths, 100)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    for b in bins:
        assert len(b) == 1 or sum(lengths[i] for i in b) <= 100
    assert len(bins) == 4  # 120 | 90+10 | 70+30 | 60+40
    groups = group_micro_batches(_random_seqs([30, 20, 10]), packing=False, max_tokens=1000, max_sequences=2)
    assert [len(g) for g in groups] == [2, 1]


def _accelerator():
    from accelerate import Accelerator

    return Accelerator(cpu=True)


def _grads(model, seqs, run):
    from rlctx_utils.training.loop import accumulate_gradients

    acc = _accelerator()
    m = acc.prepare(model)
    out = accumulate_gradients(m, acc, seqs, run)
    return out, {n: p.grad.clone() for n, p in m.named_parameters()}


RUN = dict(lr=1e-3, min_lr=1e-4, warmup_steps=1, schedule_steps=10, stop_step=10, clip=2.0,
           weight_decay=0.01, packing=True)


def test_one_micro_batch_of_n_equals_n_micro_batches_of_one(model):
    seqs = _random_seqs([64, 20, 100, 7, 45, 33])
    big, g_big = _grads(copy.deepcopy(model).train(), seqs, {**RUN, "micro_batch_tokens": 10_000})
    ones, g_ones = _grads(copy.deepcopy(model).train(), seqs, {**RUN, "micro_batch_tokens": 1,
                                                               "micro_batch_sequences": 1})
    padded, g_pad = _grads(copy.deepcopy(model).train(), seqs, {**RUN, "packing": False,
                                                                "micro_batch_tokens": 10_000,
                                                                "micro_batch_sequences": 3})
    assert big["micro_batches"] == 1 and ones["micro_batches"] == len(seqs) and padded["micro_batches"] == 2
    assert big["loss_tokens"] == ones["loss_tokens"] == sum(s.n_loss_tokens for s in seqs)
    assert big["loss"] == pytest.approx(ones["loss"], rel=1e-6)
    assert big["loss"] == pytest.approx(padded["loss"], rel=1e-6)
    for name, g in g_big.items():
        assert torch.allclose(g, g_ones[name], rtol=1e-4, atol=1e-7), name
        assert torch.allclose(g, g_pad[name], rtol=1e-4, atol=1e-7), name
    # Sanity check: averaging per-micro-batch means instead would give another gradient.
    per_mb = [_grads(copy.deepcopy(model).train(), [s], {**RUN, "micro_batch_tokens": 10_000})[1] for s in seqs]
    name = "lm_head.weight"
    mean_of_means = sum(g[name] for g in per_mb) / len(per_mb)
    assert not torch.allclose(mean_of_means, g_big[name], rtol=1e-2, atol=1e-6)


def _motif_seqs(lengths, seed):
    """Learnable data: each sequence repeats a short random motif (the loss falls within steps)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        motif = torch.randint(7, 64, (5,), generator=g).tolist()
        ids = (motif * (n // 5 + 1))[:n]
        out.append(TrainSequence(ids, make_labels(ids, n // 4, "masked")))
    return out


def test_golden_losses():
    """Fixed seed, smoke preset, random token data: the first losses are pinned (torch 2.13, fp32)."""
    torch.manual_seed(0)
    model = build_model("smoke", VOCAB, seed=1234).train()
    from rlctx_utils.training.loop import make_optimizer, make_scheduler, train_step

    run = {**RUN, "lr": 1e-2, "micro_batch_tokens": 512}
    acc = _accelerator()
    opt = make_optimizer(model, run)
    sch = make_scheduler(opt, run)
    m, o = acc.prepare(model, opt)
    losses = [train_step(m, acc, o, sch, _motif_seqs([120, 90, 60, 200], seed=step), run)["loss"]
              for step in range(6)]
    assert losses == pytest.approx(GOLDEN, abs=2e-4)


GOLDEN = [7.695968, 7.536905, 7.264608, 7.002389, 6.741600, 6.229561]
