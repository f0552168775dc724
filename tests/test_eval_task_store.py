"""Evaluation inputs built once (evaluation/task_store.py): stored prompts give the same evaluation."""

from __future__ import annotations

import pytest

from test_evaluation import _datapoints


@pytest.mark.parametrize("protocol", ["thesis"])
def test_stored_tasks_evaluate_like_built_ones(py_tokenizer, tmp_path, monkeypatch, protocol):
    from rlctx_utils import composers
    from rlctx_utils.evaluation import task_store
    from rlctx_utils.evaluation.runner import build_tasks, evaluate
    from rlctx_utils.models import build_model

    dps = _datapoints()
    model = build_model("smoke", len(py_tokenizer), seed=0, rope_theta=500000.0, max_position_embeddings=1024)
    kw = dict(composer="path_distance_py", max_context=200, protocol=protocol, mode="original",
              fmt="opencoder", seed=3, categories=("inproject", "infile"))
    built = evaluate(model, py_tokenizer, dps, **kw)
    key = task_store.task_key(dps, py_tokenizer, **kw)
    tasks = build_tasks(dps, py_tokenizer, **kw)
    task_store.save_tasks(tmp_path, key, tasks, setting=kw)
    assert task_store.load_tasks(tmp_path, "other-key") is None

    def no_compose(*a, **k):
        raise AssertionError("the composer ran although the tasks were stored")

    monkeypatch.setattr(composers, "compose", no_compose)
    monkeypatch.setenv("RLCTX_EVAL_TASKS", str(tmp_path))
    stored = evaluate(model, py_tokenizer, dps, **kw)
    assert stored.drop(columns=["line_loss"]).equals(built.drop(columns=["line_loss"]))
    assert (stored["line_loss"] - built["line_loss"]).abs().max() < 1e-5
    # another setting is not in the store: built as usual (and here the composer is stubbed out)
    with pytest.raises(AssertionError, match="composer ran"):
        evaluate(model, py_tokenizer, dps, **{**kw, "max_context": 300})
