"""Pre-tokenized sequences (training/source.py): the same order, tokens and labels as composing."""

from __future__ import annotations

import pytest

from rlctx_utils.config import load_profile
from rlctx_utils.training.runs import resolve_run
from rlctx_utils.training.source import (DataError, array_source, composition, datapoint_source,
                                         save_sequences, sequences_key)

from test_training_runs import make_datapoints  # noqa: F401


def _repo_run(loss: str, **extra):
    cfg = load_profile("smoke", ["repo_training.sequences_per_step=4", "repo_training.stop_step=2",
                                 f'repo_training.loss="{loss}"', 'repo_training.composer="path_distance_py"',
                                 *[f"repo_training.{k}={v}" for k, v in extra.items()]])
    return resolve_run(cfg, "repo", "pd")


def _lazy(run, tok, dps):
    kw = dict(composer=run["composer"], mode=run["mode"], tokenizer=tok, seq_len=int(run["seq_len"]),
              loss=run["loss"], completion_max=run.get("completion_max_tokens") or None,
              fmt=run.get("fmt", "opencoder"), repo_name_header=bool(run.get("repo_name_header", False)))
    return datapoint_source(dps, build_kwargs=kw, seed=int(run["seed"]))


def test_arrays_give_the_composed_sequences_for_both_losses(py_tokenizer, tmp_path):
    dps = make_datapoints(6)
    masked = _repo_run("masked")
    src = _lazy(masked, py_tokenizer, dps)
    meta = save_sequences(tmp_path / sequences_key(masked), src, n_positions=8, params=composition(masked))
    assert meta["n_sequences"] == 6 and meta["order_hash"] == src.order_hash()
    for loss in ("masked", "full"):
        run = _repo_run(loss)
        lazy, arr = _lazy(run, py_tokenizer, dps), array_source(tmp_path, run)  # folder of folders
        assert arr.order_hash() == lazy.order_hash()
        for p in range(8):
            a, b = arr.get(p), lazy.get(p)
            assert a.input_ids == b.input_ids and a.labels == b.labels
    other = _repo_run("masked", mode='"reversed"')
    with pytest.raises(DataError, match="no pre-tokenized sequences"):
        array_source(tmp_path, other)
    with pytest.raises(DataError, match="composed for"):
        array_source(tmp_path / sequences_key(masked), other)
    longer = _repo_run("masked", stop_step=3)
    with pytest.raises(DataError, match="needs 12 sequences"):
        array_source(tmp_path, longer)
