"""Stage-A recipe options of the tuning sweep: the WSD schedule and repeat sequences."""

from __future__ import annotations

import pytest

from rlctx_utils.training.loop import lr_factor
from rlctx_utils.training.source import DataError, corpus_source


def test_wsd_holds_then_decays_linearly_to_the_floor():
    kw = dict(warmup_steps=10, schedule_steps=110, lr=1e-3, min_lr=1e-4, schedule="wsd", decay_steps=20)
    assert lr_factor(0, **kw) == pytest.approx(0.1)
    assert lr_factor(9, **kw) == pytest.approx(1.0)
    assert lr_factor(89, **kw) == pytest.approx(1.0)  # stable until the last 20 steps
    assert lr_factor(100, **kw) == pytest.approx(1.0 - 0.9 * 0.5)
    assert lr_factor(110, **kw) == pytest.approx(0.1)
    assert lr_factor(500, **kw) == pytest.approx(0.1)
    # cosine (the default) is unchanged: half-way down at the middle of the schedule
    assert lr_factor(60, warmup_steps=10, schedule_steps=110, lr=1e-3, min_lr=0.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor(5, **{**kw, "schedule": "linear"})


@pytest.mark.parametrize("kind", ["code", "random"])
def test_repeat_sequences_are_a_span_written_twice_at_the_asked_share(py_tokenizer, kind):
    files = [(f"pkg/m{i}.py", "\n".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}" for j in range(60)))
             for i in range(12)]
    plain = corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=3)
    mixed = corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=3, repeat_fraction=0.25,
                          repeat_kind=kind)
    n_rep = len(mixed) - len(plain)
    assert n_rep == round(len(plain) / 3)  # a quarter of all items
    special = set(py_tokenizer.all_special_ids)
    reps = [mixed.build(i) for i in range(len(plain), len(mixed))]
    for seq in reps:
        half = len(seq.input_ids) // 2
        assert seq.input_ids[:half] == seq.input_ids[half:]
        assert not special & set(seq.input_ids)
    # deterministic in the seed, different across items
    again = corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=3, repeat_fraction=0.25, repeat_kind=kind)
    assert [again.build(i).input_ids for i in range(len(plain), len(again))] == [s.input_ids for s in reps]
    assert len({tuple(s.input_ids) for s in reps}) > len(reps) // 2
    # the plain windows are untouched
    assert [mixed.build(i).input_ids for i in range(len(plain))] == [plain.build(i).input_ids for i in range(len(plain))]
    with pytest.raises(DataError, match="repeat_fraction"):
        corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=3, repeat_fraction=1.0)


def test_repeat_warmup_comes_first_then_the_usual_order(py_tokenizer):
    files = [(f"pkg/m{i}.py", "\n".join(f"def g{i}_{j}(y):\n    return y - {j} * {i}" for j in range(60)))
             for i in range(8)]
    plain = corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=5)
    warm = corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=5, repeat_warmup=6)
    first = [warm.get(p) for p in range(6)]
    assert all(s.meta["id"].startswith("repeat-warmup-code:") for s in first)
    assert all(s.input_ids[: len(s) // 2] == s.input_ids[len(s) // 2:] for s in first)
    # after the warm-up: exactly the order (and the epochs) of the source without one
    n = len(plain)
    assert [warm.get(6 + p).meta["id"] for p in range(2 * n)] == [plain.get(p).meta["id"] for p in range(2 * n)]
    assert plain.order_hash() == corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=5).order_hash()


def test_random_repeats_can_draw_from_a_small_alphabet(py_tokenizer):
    files = [(f"pkg/m{i}.py", "\n".join(f"x{i}_{j} = {j}" for j in range(80))) for i in range(6)]
    src = corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=2, repeat_fraction=0.5,
                        repeat_kind="random", repeat_alphabet=20)
    n = len(corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=2))
    used = {t for i in range(n, len(src)) for t in src.build(i).input_ids}
    assert 10 < len(used) <= 20 and not used & set(py_tokenizer.all_special_ids)


@pytest.mark.parametrize("kind", ["code", "random"])
def test_repeat_span_makes_blocks_written_twice(py_tokenizer, kind):
    files = [(f"pkg/m{i}.py", "\n".join(f"def h{i}_{j}(z):\n    return z + {j} - {i}" for j in range(60)))
             for i in range(6)]
    kw = dict(tokenizer=py_tokenizer, seq_len=64, seed=4, repeat_fraction=0.5, repeat_kind=kind)
    halves = corpus_source(files, **kw)
    n = len(corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=4))
    # random: a span of the half itself is the span written twice, token for token the same (code
    # spans with repeat_span look for a window long enough for a whole block first)
    assert kind == "code" or [corpus_source(files, **kw, repeat_span=32).build(i).input_ids for i in range(n, len(halves))] == \
        [halves.build(i).input_ids for i in range(n, len(halves))]
    blocks = corpus_source(files, **kw, repeat_span=8)
    for i in range(n, len(blocks)):
        ids = blocks.build(i).input_ids
        assert len(ids) == 64
        for b in range(0, 64, 16):
            assert ids[b:b + 8] == ids[b + 8:b + 16]
    with pytest.raises(DataError, match="repeat_span"):
        corpus_source(files, **kw, repeat_span=-1)


def test_isolated_repeat_pairs_are_separate_documents(py_tokenizer):
    """repeat_isolated: each block pair is its own document. The packed row's loss equals the sum of
    the pairs' losses computed one by one (no attention or prediction across pairs)."""
    import torch

    from rlctx_utils.models import build_model
    from rlctx_utils.training.packing import collate, forward_loss_sum
    from rlctx_utils.training.sequences import IGNORE, TrainSequence

    files = [(f"pkg/m{i}.py", "\n".join(f"v{i}_{j} = {j} * {i}" for j in range(80))) for i in range(4)]
    src = corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=1, repeat_warmup=2, repeat_kind="random",
                        repeat_span=8, repeat_isolated=True)
    seqs = [src.get(0), src.get(1)]
    assert all(s.meta["doc_length"] == 16 for s in seqs)
    batch = collate(seqs, packing=True)
    assert batch["input_ids"].shape == (1, 128)
    assert batch["position_ids"][0, :33].tolist() == [i % 16 for i in range(33)]
    model = build_model("smoke", len(py_tokenizer), seed=0)
    model.eval()
    with torch.no_grad():
        packed = float(forward_loss_sum(model, batch))
        alone = 0.0
        for s in seqs:
            for start in range(0, 64, 16):
                ids = s.input_ids[start:start + 16]
                doc = TrainSequence(ids, [IGNORE] + ids[1:], n_completion=16)
                alone += float(forward_loss_sum(model, collate([doc], packing=True)))
    assert packed == pytest.approx(alone, rel=1e-4)
    with pytest.raises(ValueError, match="packing"):
        collate(seqs, packing=False)
    with pytest.raises(DataError, match="repeat_span"):
        corpus_source(files, tokenizer=py_tokenizer, seq_len=64, seed=1, repeat_isolated=True)
